//! Model of systemd's device program (`DevicePolicy=`, `DeviceAllow=`).
//!
//! # Source followed
//!
//! github.com/systemd/systemd. The repository is too large to fetch whole
//! here; files were read from the stored index:
//!
//! * `src/core/bpf-devices.c`, the revision whose allow-list helpers take a
//!   `CGroupDevicePermissions` and return 1 ("we did something"); its
//!   instruction templates (`bpf_prog_allow_list_device`, `_major`, `_class`,
//!   `bpf_devices_cgroup_init`, `bpf_devices_apply_policy` with the patched
//!   `PASS_JUMP_OFF` jumps) are byte-identical to those of the pinned,
//!   older revision `f7de333f18093b88d30a267198ae1fba84a2bd26` (access as a
//!   `const char *`), and `bpf_devices_allow_list_static` is the same list in
//!   both. The index did not give the newer revision's commit hash.
//! * `src/core/cgroup.c` `cgroup_apply_devices` and
//!   `cgroup_context_add_device_allow` (`LIST_PREPEND`; an empty permission
//!   set becomes `rwm`), at commit `ad009380e1cbee8cf6e965f1a9b5671bd74ac146`
//!   (the newest stored revision differs only in counting `r > 0` instead of
//!   `r >= 0` as "any", which changes nothing modelled here).
//! * `src/core/load-fragment.c` `config_parse_device_allow` at commit
//!   `2557246cc8e616977cc233f92b4e7fbc45d0946f` (an empty `DeviceAllow=`
//!   resets the list; every other one adds an entry, never merging).
//! * `src/basic/devnum-util.c` `device_path_parse_major_minor` and
//!   `DEVICE_MAJOR_VALID`/`DEVICE_MINOR_VALID` (major < 2^12, minor < 2^20).
//!
//! # Mapping from the shared rule list
//!
//! systemd only allows. Each rule becomes unit-file lines, in order:
//!
//! * `deny a` → `DevicePolicy=strict` and `DeviceAllow=` (reset).
//! * `allow a` → `DevicePolicy=auto` and `DeviceAllow=` (reset).
//! * `allow c M:m ACC` → `DeviceAllow=/dev/char/M:m ACC` (`/dev/block/…` for
//!   `b`); systemd parses these paths without `stat`. `allow c M:* ACC` →
//!   `DeviceAllow=char-M ACC` (a numeric major); `allow c *:* ACC` →
//!   `DeviceAllow=char-* ACC`. Numbers are written in canonical decimal.
//! * Refused, with the reason: any `deny b/c` rule (no unit setting denies
//!   or removes a device); `*:m` with a real minor (no `DeviceAllow=` form);
//!   an empty access set (an omitted one means `rwm`); and a list that ends
//!   in `DevicePolicy=auto` with `DeviceAllow=` entries, i.e. allow rules
//!   without a `deny a` before them: v1 treats those as no-ops in allow-all
//!   mode, while any `DeviceAllow=` under `auto` turns on an allow list.
//!
//! `DevicePolicy=closed` is never produced by the mapping (`deny a` is
//! `strict`), but [`compile_unit`] models it and `auto` in full, static
//! device list included.
//!
//! What systemd then does, and this model reproduces: with `auto` and no
//! `DeviceAllow=` no program is attached (the stand-in `r0 = 1; exit`);
//! `closed`, or `auto` with entries, first allows the static list
//! (`/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random`, `/dev/urandom`,
//! `/dev/tty`, `/dev/ptmx`, `/run/systemd/inaccessible/{chr,blk}` rwm and
//! `char-pts` rw); the entries follow newest first; each passes when the
//! request's access is a subset of its own (no test for `rwm`), the type
//! and the given numbers match, by a `goto` to the final `r0 = 1`; falling
//! through all gives `r0 = 0`. When nothing was emitted the policy becomes
//! `strict` and the program is `r0 = 0; exit` (after the prologue when the
//! unit had `DeviceAllow=` entries).
//!
//! # Expected divergences from v1 (findings)
//!
//! * One `DeviceAllow=` per rule, never merged: `allow c 1:3 r` then
//!   `allow c 1:3 w` allow r and w separately, never `rw` together (v1 ORs
//!   them into one exception). Only requests with several bits are affected.
//! * A major above 4095 or a minor above 2^20-1 is skipped with a warning
//!   (no node can have it, but the rule list allowed it); if nothing is
//!   left the unit denies everything.
//!
//! # Approximations
//!
//! * The static list is resolved as on a standard Linux host: `/dev/null`
//!   1:3, `/dev/zero` 1:5, `/dev/full` 1:7, `/dev/random` 1:8,
//!   `/dev/urandom` 1:9, `/dev/tty` 5:0, `/dev/ptmx` 5:2 (systemd stats
//!   them; missing ones are skipped) and `pts` as char major 136 in
//!   `/proc/devices`.
//! * Unit files are modelled. `systemctl set-property … DeviceAllow=` (the
//!   D-Bus path, `cgroup_context_add_or_update_device_allow`) instead
//!   replaces the permissions of an entry with the same path, so there
//!   `allow c 1:3 r; allow c 1:3 w` would leave only `w`.
//! * Other `/dev/…` paths and `char-NAME` groups need `stat` and
//!   `/proc/devices`: [`compile_unit_on`] takes them as a [`Host`] (a
//!   group name is an `fnmatch` glob over `/proc/devices`, as
//!   `bpf_devices_allow_list_major` walks it, major 0 skipped); on the
//!   standard host of [`compile_unit`] they are refused (the mapping never
//!   produces them). `devcg runtime systemd` compares systemd 252's real
//!   programs with [`compile_unit_on`] on the guest's own tables.
//! * Attach details (`BPF_F_ALLOW_MULTI`, replacing the previous program)
//!   are outside the model.

use crate::asm::{Asm, Cond, Label, Width};
use crate::device::{Access, DeviceType, Exception, WILDCARD};
use crate::insn::{op, Program, R0, R1, R2, R3, R4, R5};
use crate::rules::{Rule, RuleKind};
use crate::strategy::models::common::{load_context, nothing_attached};
use crate::strategy::{CompileError, Strategy};
use crate::v1text::V1Text;

pub struct Systemd;

const NAME: &str = "systemd";

fn refused(reason: impl Into<String>) -> CompileError {
    CompileError::Refused {
        strategy: NAME,
        reason: reason.into(),
    }
}

/// `DevicePolicy=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevicePolicy {
    Auto,
    Closed,
    Strict,
}

/// One `DeviceAllow=` entry: a path or class and its permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAllow {
    pub path: String,
    pub permissions: Access,
}

impl DeviceAllow {
    /// As `config_parse_device_allow` stores it: no letters means `rwm`.
    pub fn new(path: impl Into<String>, permissions: Access) -> Self {
        let permissions = if permissions.is_empty() {
            Access::ALL
        } else {
            permissions
        };
        DeviceAllow {
            path: path.into(),
            permissions,
        }
    }
}

/// What an entry resolves to: a type with an optional major and, under a
/// major, an optional minor (`_class`, `_major`, `_device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pattern {
    ty: DeviceType,
    major: Option<u32>,
    minor: Option<u32>,
}

const MAJOR_LIMIT: u32 = 1 << 12;
const MINOR_LIMIT: u32 = 1 << 20;

/// Device nodes systemd would `stat`, as on a standard Linux host.
const STAT_TABLE: &[(&str, u32, u32)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
    ("/dev/ptmx", 5, 2),
];

/// `bpf_devices_allow_list_static`: the nodes (rwm), then `char-pts` rw.
pub const STATIC_NODES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/run/systemd/inaccessible/chr",
    "/run/systemd/inaccessible/blk",
];

/// What systemd reads from the machine to resolve an entry: the nodes it
/// would `stat` and the `/proc/devices` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Device nodes by path: type, major, minor.
    pub nodes: Vec<(String, DeviceType, u32, u32)>,
    /// `/proc/devices`: type, major, group name, in file order.
    pub groups: Vec<(DeviceType, u32, String)>,
    /// Whether `nodes` and `groups` are the whole machine: then a path or
    /// group not in them is skipped, as systemd skips it (a failed `stat`,
    /// no `/proc/devices` match). A partial host refuses them instead of
    /// guessing.
    pub complete: bool,
}

impl Host {
    /// A standard Linux host: the static nodes at their usual numbers and
    /// `pts` as char major 136, nothing else known.
    pub fn standard() -> Host {
        Host {
            nodes: STAT_TABLE
                .iter()
                .map(|&(p, ma, mi)| (p.to_string(), DeviceType::Char, ma, mi))
                .collect(),
            groups: vec![(DeviceType::Char, 136, "pts".into())],
            complete: false,
        }
    }

    /// What `stat` says of `path`, if it is a device node.
    pub fn node(&self, path: &str) -> Option<(DeviceType, u32, u32)> {
        self.nodes
            .iter()
            .find(|(p, ..)| p == path)
            .map(|&(_, ty, ma, mi)| (ty, ma, mi))
    }

    /// The majors of `ty` whose `/proc/devices` name matches `pattern`
    /// (fnmatch, no flags), in file order; major 0 is skipped as systemd
    /// skips it.
    pub fn majors(&self, ty: DeviceType, pattern: &str) -> Vec<u32> {
        self.groups
            .iter()
            .filter(|(t, m, name)| *t == ty && *m > 0 && fnmatch(pattern, name))
            .map(|&(_, m, _)| m)
            .collect()
    }
}

/// `fnmatch(pattern, name, 0)`: `*` and `?` match any characters (`/`
/// included, no FNM_PATHNAME), `[...]` a set (`!` or `^` negates, ranges),
/// `\` escapes.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    fn set(p: &[char], c: char) -> Option<(bool, usize)> {
        // p[0] == '['; returns (matched, length of the bracket expression).
        let mut i = 1;
        let negate = matches!(p.get(i), Some('!') | Some('^'));
        if negate {
            i += 1;
        }
        let mut hit = false;
        let mut first = true;
        loop {
            let &ch = p.get(i)?;
            if ch == ']' && !first {
                return Some((hit != negate, i + 1));
            }
            first = false;
            if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
                hit |= (ch..=p[i + 2]).contains(&c);
                i += 3;
            } else {
                hit |= ch == c;
                i += 1;
            }
        }
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match (set(p, *n.first().unwrap_or(&'\0')), n.first()) {
                (Some((true, len)), Some(_)) => go(&p[len..], &n[1..]),
                (Some(_), _) => false,
                // An unclosed `[` is an ordinary character.
                (None, Some('[')) => go(&p[1..], &n[1..]),
                (None, _) => false,
            },
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// `parse_devnum` on canonical decimal text: `None` where it fails, which
/// systemd logs and skips.
fn parse_devnum(s: &str) -> Option<(u32, u32)> {
    let (ma, mi) = s.split_once(':')?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(ma) || !digits(mi) {
        return None;
    }
    let (ma, mi): (u32, u32) = (ma.parse().ok()?, mi.parse().ok()?);
    (ma < MAJOR_LIMIT && mi < MINOR_LIMIT).then_some((ma, mi))
}

/// `bpf_devices_allow_list_device` / `_major` up to the emitting calls:
/// the patterns an entry becomes (none: systemd skips it with a warning).
fn resolve(host: &Host, path: &str) -> Result<Vec<Pattern>, CompileError> {
    let node = |ty, ma, mi| {
        vec![Pattern {
            ty,
            major: Some(ma),
            minor: Some(mi),
        }]
    };
    match path {
        "/run/systemd/inaccessible/chr" => return Ok(node(DeviceType::Char, 0, 0)),
        "/run/systemd/inaccessible/blk" => return Ok(node(DeviceType::Block, 0, 0)),
        _ => {}
    }
    let parsed = |rest: &str, ty| {
        parse_devnum(rest)
            .map(|(ma, mi)| node(ty, ma, mi))
            .unwrap_or_default()
    };
    if let Some(rest) = path.strip_prefix("/dev/char/") {
        return Ok(parsed(rest, DeviceType::Char));
    }
    if let Some(rest) = path.strip_prefix("/dev/block/") {
        return Ok(parsed(rest, DeviceType::Block));
    }
    if path.starts_with("/dev/") {
        return match host.node(path) {
            Some((ty, ma, mi)) => Ok(node(ty, ma, mi)),
            None if host.complete => Ok(Vec::new()),
            None => Err(refused(format!(
                "DeviceAllow={path} needs stat(): not modelled"
            ))),
        };
    }
    let class = |ty, name: &str| -> Result<Vec<Pattern>, CompileError> {
        let majors = |m: Vec<u32>| {
            m.into_iter()
                .map(|m| Pattern {
                    ty,
                    major: Some(m),
                    minor: None,
                })
                .collect::<Vec<_>>()
        };
        if name == "*" {
            return Ok(vec![Pattern {
                ty,
                major: None,
                minor: None,
            }]);
        }
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            // A numeric major outside the valid range falls through to
            // the /proc/devices name search, where no group is digits.
            return Ok(majors(match name.parse::<u32>() {
                Ok(m) if m < MAJOR_LIMIT => vec![m],
                _ => host.majors(ty, name),
            }));
        }
        let found = host.majors(ty, name);
        if found.is_empty() && !host.complete {
            return Err(refused(format!(
                "DeviceAllow={path} needs /proc/devices: not modelled"
            )));
        }
        Ok(majors(found))
    };
    if let Some(name) = path.strip_prefix("char-") {
        return class(DeviceType::Char, name);
    }
    if let Some(name) = path.strip_prefix("block-") {
        return class(DeviceType::Block, name);
    }
    if host.complete {
        // cgroup_apply_devices ignores any other specifier.
        return Ok(Vec::new());
    }
    Err(refused(format!(
        "DeviceAllow={path} needs stat(): not modelled"
    )))
}

/// `bpf_prog_allow_list_device`, `_major` and `_class`: the access test
/// (left out for `rwm`), the type, the numbers, then `goto PASS`.
fn emit(a: &mut Asm, p: Pattern, permissions: Access, pass: Label) {
    let next = a.new_label();
    if permissions != Access::ALL {
        a.mov_reg(Width::W32, R1, R3);
        a.alu_imm(Width::W32, op::AND, R1, i32::from(permissions.bits()));
        a.jmp_reg(Width::W64, Cond::Ne, R1, R3, next);
    }
    a.jmp_imm(Width::W64, Cond::Ne, R2, p.ty.code() as i32, next);
    if let Some(major) = p.major {
        a.jmp_imm(Width::W64, Cond::Ne, R4, major as i32, next);
        if let Some(minor) = p.minor {
            a.jmp_imm(Width::W64, Cond::Ne, R5, minor as i32, next);
        }
    }
    a.ja(pass);
    a.bind(next);
}

/// `cgroup_apply_devices` for a unit with this policy and these
/// `DeviceAllow=` entries (in unit-file order), on a standard host.
pub fn compile_unit(
    policy: DevicePolicy,
    device_allow: &[DeviceAllow],
) -> Result<Program, CompileError> {
    compile_unit_on(&Host::standard(), policy, device_allow)
}

/// `cgroup_apply_devices` on `host`: its nodes and `/proc/devices` resolve
/// the static list and the entries.
pub fn compile_unit_on(
    host: &Host,
    policy: DevicePolicy,
    device_allow: &[DeviceAllow],
) -> Result<Program, CompileError> {
    let allow_list = !device_allow.is_empty();
    // bpf_devices_cgroup_init: no program for auto without entries.
    if policy == DevicePolicy::Auto && !allow_list {
        return Ok(nothing_attached());
    }
    let mut a = Asm::new();
    if policy == DevicePolicy::Closed || allow_list {
        load_context(&mut a);
    }
    let pass = a.new_label();
    let mut any = false;
    if policy == DevicePolicy::Closed || (policy == DevicePolicy::Auto && allow_list) {
        for node in STATIC_NODES {
            for p in resolve(host, node)? {
                emit(&mut a, p, Access::ALL, pass);
                any = true;
            }
        }
        for p in resolve(host, "char-pts")? {
            emit(&mut a, p, Access::READ.union(Access::WRITE), pass);
            any = true;
        }
    }
    // LIST_PREPEND: the last DeviceAllow= comes first.
    for entry in device_allow.iter().rev() {
        for p in resolve(host, &entry.path)? {
            emit(&mut a, p, entry.permissions, pass);
            any = true;
        }
    }
    // No rule emitted: strict, since the verifier would reject the outro.
    let policy = if any { policy } else { DevicePolicy::Strict };
    // bpf_devices_apply_policy
    let deny_everything = policy == DevicePolicy::Strict && !any;
    let exit = a.new_label();
    if !deny_everything {
        a.mov_imm(Width::W64, R0, 0);
        a.ja(exit);
        a.bind(pass);
    }
    a.mov_imm(Width::W64, R0, if deny_everything { 0 } else { 1 });
    a.bind(exit);
    a.exit();
    Ok(Program::new(a.finish()?))
}

/// The `DeviceAllow=` line a user writes for a v1 allow rule.
fn device_allow_for(ex: &Exception, rule: &Rule) -> Result<DeviceAllow, CompileError> {
    if ex.access.is_empty() {
        return Err(refused(format!(
            "`{rule}` has no access letters; DeviceAllow= without them means rwm"
        )));
    }
    let (node_dir, class) = match ex.ty {
        DeviceType::Char => ("/dev/char", "char"),
        DeviceType::Block => ("/dev/block", "block"),
    };
    let path = match (ex.major, ex.minor) {
        (WILDCARD, WILDCARD) => format!("{class}-*"),
        (WILDCARD, _) => {
            return Err(refused(format!(
                "`{rule}`: DeviceAllow= cannot name a minor under any major"
            )));
        }
        (major, WILDCARD) => format!("{class}-{major}"),
        (major, minor) => format!("{node_dir}/{major}:{minor}"),
    };
    Ok(DeviceAllow::new(path, ex.access))
}

/// The unit a rule list becomes: its final `DevicePolicy=` and
/// `DeviceAllow=` list.
pub fn unit_from_rules(rules: &[Rule]) -> Result<(DevicePolicy, Vec<DeviceAllow>), CompileError> {
    let mut policy = DevicePolicy::Auto;
    let mut device_allow = Vec::new();
    for rule in rules {
        match (rule.kind, &rule.parsed) {
            (RuleKind::Deny, V1Text::All) => {
                policy = DevicePolicy::Strict;
                device_allow.clear();
            }
            (RuleKind::Allow, V1Text::All) => {
                policy = DevicePolicy::Auto;
                device_allow.clear();
            }
            (RuleKind::Deny, V1Text::Exception(_)) => {
                return Err(refused(format!(
                    "`{rule}`: systemd has no setting that denies or removes a device (DeviceAllow= only adds)"
                )));
            }
            (RuleKind::Allow, V1Text::Exception(ex)) => {
                device_allow.push(device_allow_for(ex, rule)?)
            }
        }
    }
    if policy == DevicePolicy::Auto && !device_allow.is_empty() {
        return Err(refused(
            "allow rules without a preceding `deny a` are no-ops in v1, but DeviceAllow= under \
             DevicePolicy=auto turns on an allow list",
        ));
    }
    Ok((policy, device_allow))
}

impl Strategy for Systemd {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        "model of systemd's DevicePolicy=/DeviceAllow= program (deny a = strict; allow rules = DeviceAllow=)"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError> {
        let (policy, device_allow) = unit_from_rules(rules)?;
        compile_unit(policy, &device_allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disasm::disassemble;
    use crate::rules::RuleFile;
    use rstest::rstest;

    fn rules(text: &str) -> Vec<Rule> {
        RuleFile::parse("test", text).expect("valid rules")
    }

    fn asm(text: &str) -> String {
        disassemble(&Systemd.compile(&rules(text)).expect("compiles").insns)
    }

    const PROLOGUE: &str = "   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
";

    /// `DevicePolicy=strict`, `DeviceAllow=/dev/char/1:3 rw`,
    /// `DeviceAllow=char-136 rw`, `DeviceAllow=block-* m`: the entries
    /// newest first, every pass jump patched to the `r0 = 1` before exit.
    #[test]
    fn strict_with_three_entries() {
        let text = "deny a\nallow c 1:3 rw\nallow c 136:* rw\nallow b *:* m\n";
        let (policy, allows) = unit_from_rules(&rules(text)).unwrap();
        assert_eq!(policy, DevicePolicy::Strict);
        let paths: Vec<_> = allows
            .iter()
            .map(|d| (d.path.as_str(), d.permissions.to_string()))
            .collect();
        assert_eq!(
            paths,
            [
                ("/dev/char/1:3", "rw".to_string()),
                ("char-136", "rw".to_string()),
                ("block-*", "m".to_string())
            ]
        );
        let want = "   6: (bc) w1 = w3
   7: (54) w1 &= 1
   8: (5d) if r1 != r3 goto pc+2
   9: (55) if r2 != 0x1 goto pc+1
  10: (05) goto pc+15
  11: (bc) w1 = w3
  12: (54) w1 &= 6
  13: (5d) if r1 != r3 goto pc+3
  14: (55) if r2 != 0x2 goto pc+2
  15: (55) if r4 != 0x88 goto pc+1
  16: (05) goto pc+9
  17: (bc) w1 = w3
  18: (54) w1 &= 6
  19: (5d) if r1 != r3 goto pc+4
  20: (55) if r2 != 0x2 goto pc+3
  21: (55) if r4 != 0x1 goto pc+2
  22: (55) if r5 != 0x3 goto pc+1
  23: (05) goto pc+2
  24: (b7) r0 = 0
  25: (05) goto pc+1
  26: (b7) r0 = 1
  27: (95) exit
";
        assert_eq!(asm(text), format!("{PROLOGUE}{want}"));
    }

    /// `DevicePolicy=closed` alone: the static list, rwm entries without an
    /// access test, `char-pts` rw last.
    #[test]
    fn closed_static_list() {
        let prog = compile_unit(DevicePolicy::Closed, &[]).unwrap();
        let want = "   6: (55) if r2 != 0x2 goto pc+3
   7: (55) if r4 != 0x1 goto pc+2
   8: (55) if r5 != 0x3 goto pc+1
   9: (05) goto pc+40
  10: (55) if r2 != 0x2 goto pc+3
  11: (55) if r4 != 0x1 goto pc+2
  12: (55) if r5 != 0x5 goto pc+1
  13: (05) goto pc+36
  14: (55) if r2 != 0x2 goto pc+3
  15: (55) if r4 != 0x1 goto pc+2
  16: (55) if r5 != 0x7 goto pc+1
  17: (05) goto pc+32
  18: (55) if r2 != 0x2 goto pc+3
  19: (55) if r4 != 0x1 goto pc+2
  20: (55) if r5 != 0x8 goto pc+1
  21: (05) goto pc+28
  22: (55) if r2 != 0x2 goto pc+3
  23: (55) if r4 != 0x1 goto pc+2
  24: (55) if r5 != 0x9 goto pc+1
  25: (05) goto pc+24
  26: (55) if r2 != 0x2 goto pc+3
  27: (55) if r4 != 0x5 goto pc+2
  28: (55) if r5 != 0x0 goto pc+1
  29: (05) goto pc+20
  30: (55) if r2 != 0x2 goto pc+3
  31: (55) if r4 != 0x5 goto pc+2
  32: (55) if r5 != 0x2 goto pc+1
  33: (05) goto pc+16
  34: (55) if r2 != 0x2 goto pc+3
  35: (55) if r4 != 0x0 goto pc+2
  36: (55) if r5 != 0x0 goto pc+1
  37: (05) goto pc+12
  38: (55) if r2 != 0x1 goto pc+3
  39: (55) if r4 != 0x0 goto pc+2
  40: (55) if r5 != 0x0 goto pc+1
  41: (05) goto pc+8
  42: (bc) w1 = w3
  43: (54) w1 &= 6
  44: (5d) if r1 != r3 goto pc+3
  45: (55) if r2 != 0x2 goto pc+2
  46: (55) if r4 != 0x88 goto pc+1
  47: (05) goto pc+2
  48: (b7) r0 = 0
  49: (05) goto pc+1
  50: (b7) r0 = 1
  51: (95) exit
";
        assert_eq!(disassemble(&prog.insns), format!("{PROLOGUE}{want}"));
    }

    /// `auto` with one entry: the static list first, then the entry.
    #[test]
    fn auto_with_an_entry_adds_the_static_list() {
        let prog = compile_unit(
            DevicePolicy::Auto,
            &[DeviceAllow::new("/dev/block/8:0", Access(2))],
        )
        .unwrap();
        let text = disassemble(&prog.insns);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 6 + 36 + 6 + 7 + 4);
        assert_eq!(lines[48], "  48: (bc) w1 = w3");
        assert_eq!(lines[52], "  52: (55) if r4 != 0x8 goto pc+2");
        assert_eq!(lines[54], "  54: (05) goto pc+2");
    }

    #[rstest]
    // Auto without entries attaches nothing.
    #[case::no_rules("", "   0: (b7) r0 = 1\n   1: (95) exit\n")]
    #[case::allow_all(
        "deny a\nallow c 1:3 r\nallow a\n",
        "   0: (b7) r0 = 1\n   1: (95) exit\n"
    )]
    // Strict without entries: no prologue, deny everything.
    #[case::deny_all("deny a\n", "   0: (b7) r0 = 0\n   1: (95) exit\n")]
    // Entries that all fail to resolve: the prologue stays, then deny.
    #[case::skipped_only(
        "deny a\nallow c 4096:1 r\nallow b 1:1048576 r\nallow c 5000:* rw\n",
        "   6: (b7) r0 = 0\n   7: (95) exit\n"
    )]
    fn edge_programs(#[case] text: &str, #[case] tail: &str) {
        let got = asm(text);
        if tail.starts_with("   0:") {
            assert_eq!(got, tail);
        } else {
            assert_eq!(got, format!("{PROLOGUE}{tail}"));
        }
    }

    #[rstest]
    #[case::allow_without_deny_all("allow c 1:3 r\n", "DevicePolicy=auto")]
    #[case::deny_exception("deny a\nallow c 1:3 rw\ndeny c 1:3 w\n", "no setting that denies")]
    #[case::any_major("deny a\nallow c *:3 r\n", "cannot name a minor")]
    fn refusals(#[case] text: &str, #[case] needle: &str) {
        match Systemd.compile(&rules(text)) {
            Err(CompileError::Refused {
                strategy: "systemd",
                reason,
            }) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn empty_access_is_refused() {
        let rule = Rule::new(RuleKind::Allow, "c 1:3 \nr").unwrap();
        let list = [Rule::new(RuleKind::Deny, "a").unwrap(), rule];
        assert!(matches!(
            Systemd.compile(&list),
            Err(CompileError::Refused { .. })
        ));
    }

    #[test]
    fn paths_resolve_like_systemd() {
        let host = Host::standard();
        let r = |path: &str| resolve(&host, path);
        let p = |ty, ma, mi| {
            vec![Pattern {
                ty,
                major: ma,
                minor: mi,
            }]
        };
        assert_eq!(
            r("/dev/char/1:3").unwrap(),
            p(DeviceType::Char, Some(1), Some(3))
        );
        assert_eq!(
            r("/dev/block/4095:1048575").unwrap(),
            p(DeviceType::Block, Some(4095), Some(1048575))
        );
        assert_eq!(r("/dev/char/4096:0").unwrap(), vec![]);
        assert_eq!(
            r("char-4095").unwrap(),
            p(DeviceType::Char, Some(4095), None)
        );
        assert_eq!(r("char-4096").unwrap(), vec![]);
        assert_eq!(r("block-*").unwrap(), p(DeviceType::Block, None, None));
        assert_eq!(
            r("/run/systemd/inaccessible/blk").unwrap(),
            p(DeviceType::Block, Some(0), Some(0))
        );
        assert!(r("/dev/sda").is_err());
        assert!(r("char-drm").is_err());
    }

    /// A complete host resolves from its own tables and skips what it
    /// lacks, as systemd does after a failed stat or lookup.
    #[test]
    fn a_complete_host_resolves_globs_and_skips_unknowns() {
        let host = Host {
            nodes: vec![("/dev/vda".into(), DeviceType::Block, 254, 0)],
            groups: vec![
                (DeviceType::Char, 4, "tty".into()),
                (DeviceType::Char, 4, "ttyS".into()),
                (DeviceType::Char, 5, "/dev/tty".into()),
                (DeviceType::Char, 136, "pts".into()),
                (DeviceType::Block, 7, "loop".into()),
            ],
            complete: true,
        };
        let majors = |path: &str| -> Vec<Option<u32>> {
            resolve(&host, path)
                .unwrap()
                .iter()
                .map(|p| p.major)
                .collect()
        };
        assert_eq!(majors("char-tty*"), [Some(4), Some(4)]);
        assert_eq!(majors("char-pt?"), [Some(136)]);
        assert_eq!(majors("char-*tty"), [Some(4), Some(5)]);
        assert_eq!(majors("block-loop"), [Some(7)]);
        assert_eq!(majors("char-loop"), Vec::<Option<u32>>::new());
        assert_eq!(majors("/dev/sda"), Vec::<Option<u32>>::new());
        assert_eq!(
            resolve(&host, "/dev/vda").unwrap(),
            vec![Pattern {
                ty: DeviceType::Block,
                major: Some(254),
                minor: Some(0)
            }]
        );
    }

    #[rstest]
    #[case("tty*", "ttyS", true)]
    #[case("tty*", "tty", true)]
    #[case("tty?", "tty", false)]
    #[case("cpu/*", "cpu/msr", true)]
    #[case("*", "", true)]
    #[case("[a-c]x", "bx", true)]
    #[case("[!a-c]x", "bx", false)]
    #[case("[]]", "]", true)]
    #[case("a\\*", "a*", true)]
    #[case("a\\*", "ab", false)]
    #[case("[ab", "[ab", true)]
    #[case("pts", "ptsx", false)]
    fn fnmatch_like_libc(#[case] pattern: &str, #[case] name: &str, #[case] want: bool) {
        assert_eq!(fnmatch(pattern, name), want, "{pattern} {name}");
    }
}
