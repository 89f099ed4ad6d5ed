//! Model of LXC's cgroup2 device program (`lxc.cgroup2.devices.*`).
//!
//! # Source followed
//!
//! github.com/lxc/lxc at commit `e7b855a51b81a6a562d121aa60e8581993beb203`:
//!
//! * `src/lxc/cgroups/cgroup2_devices.c`: `bpf_program_init` (the context
//!   prologue), `bpf_program_append_device` (one block per device),
//!   `bpf_program_finalize` (the default verdict), `bpf_list_add_device`
//!   (how entries are merged into the device list), `bpf_device_add` (which
//!   entries make it into the program), `__bpf_cgroup_devices`.
//! * `src/lxc/cgroups/cgfsng.c`: `device_cgroup_rule_parse` and
//!   `device_cgroup_parse_access` (LXC's own parser of the rule text),
//!   `bpf_device_cgroup_prepare`, `cgfsng_setup_limits`,
//!   `cgfsng_devices_activate` (attaches nothing when the list is empty).
//! * `src/lxc/confile.c` `parse_line` and `__set_config_cgroup_controller`,
//!   `src/lxc/parse.c` `lxc_file_for_each_line_mmap`,
//!   `src/lxc/string_utils.c` `lxc_char_left_gc`/`lxc_char_right_gc`,
//!   `src/lxc/conf.c` `lxc_clear_cgroups`, `src/lxc/utils.c` `lxc_safe_int`.
//!
//! # Mapping from the shared rule list
//!
//! Each rule becomes one config line `lxc.cgroup2.devices.allow = TEXT` or
//! `lxc.cgroup2.devices.deny = TEXT`, in order, with the rule's text exactly
//! as written (LXC parses it itself, not the kernel). The model then reads
//! that config as LXC does: the file is cut at the first NUL byte (nothing
//! after it is ever seen, later rules included), split into lines at `\r`
//! and `\n`, a line not starting with `lxc.` is ignored, the value is
//! trimmed of spaces and tabs (and trailing `\n`/NUL), one level of matching
//! quotes is removed, and an empty value clears every earlier entry of the
//! same key. Each surviving value is parsed by `device_cgroup_rule_parse`
//! and merged by `bpf_list_add_device`; the program is `__bpf_cgroup_devices`.
//!
//! What LXC then does, and this model reproduces:
//!
//! * The list starts in *allowlist* mode (block all), even with no `a` rule.
//!   Only the exact value `a` switches modes (`devices.deny = a` → allowlist,
//!   `devices.allow = a` → denylist) and clears the list. Any other text
//!   starting with `a` (`a *:* rwm`, `a 1:3 r`) is an ordinary entry of type
//!   `a`, which matches both block and char devices.
//! * In allowlist mode only allow entries are emitted, in denylist mode only
//!   deny entries; the others are silently dropped.
//! * Entries are prepended: the program checks the newest rule first.
//! * An entry with the same type, major, minor and access *string* (`rw` and
//!   `wr` differ) is not added again; if its allow flag differs it is
//!   flipped in place (so in allowlist mode `deny` of exactly the same text
//!   removes an earlier `allow`). Anything else is a new entry.
//! * Each entry matches when the requested access is a subset of its access
//!   (no check when it is `rwm`), the type matches (not checked for `a`), and
//!   major and minor match (not checked for `*`); then it returns allow (1)
//!   or deny (0). The end returns 0 in allowlist mode, 1 in denylist mode.
//! * Numbers go through `lxc_safe_int`, i.e. `strtol(…, 0)`: a leading zero
//!   means octal (`010` is 8, `08` is an error) and anything above
//!   2147483647 (so also 4294967295, the kernel's `*`) is an error.
//! * With an empty device list (no rules, or only `a` rules and removals),
//!   `cgfsng_devices_activate` attaches no program at all; the model returns
//!   the stand-in `r0 = 1; exit` for that.
//!
//! A value LXC's parser refuses is logged ("Failed to parse device rule")
//! and dropped, and the container starts without it:
//! `bpf_device_cgroup_prepare` returns `syserror_set(EINVAL, ...)`, a
//! *positive* EINVAL, and `cgfsng_setup_limits` only fails on a negative
//! one. Seen on Debian's lxc 5.0.2 (`devcg runtime lxc`); an earlier
//! version of this model refused such lists instead.
//!
//! # Expected divergences from v1 (findings)
//!
//! * No `deny a` first: v1 allows everything, LXC blocks everything but the
//!   allow rules (and `deny c 1:3 r` alone denies *every* device).
//! * `deny a` alone: nothing is attached, so everything stays allowed.
//! * Allowlist mode ignores `deny b/c` rules (v1 removes access bits:
//!   `allow c 1:3 rwm; deny c 1:3 w` keeps `w` in LXC); denylist mode
//!   ignores `allow b/c` rules. Removal only works for an identical text.
//! * Deny entries match only when the request is a *subset* of the entry's
//!   access (v1: any shared bit), so `allow a; deny c 1:3 w` still allows an
//!   O_RDWR open, and a request with no access bits (`access(F_OK)`) is
//!   denied by every matching deny entry.
//! * Same key, different access string: two entries, never OR-ed, so a
//!   request needing bits from both (e.g. `rm`) is refused in allowlist mode.
//! * `a …` entries other than the bare `a`; octal numbers; majors and minors
//!   above 2^31-1 (and `08`, `all`) dropped without a word: with `deny a`,
//!   dropping the only allow leaves nothing, and nothing is attached.
//!
//! # Approximations
//!
//! * `devices.allow` values that are absolute paths (LXC stats them) cannot
//!   come from a kernel-valid rule and are refused as not modelled; so are
//!   rule texts that would inject another `lxc.` config line.
//! * Only the device program is modelled: attach flags (`BPF_F_ALLOW_MULTI`,
//!   and `BPF_F_REPLACE` on live updates) and the pure-unified-layout
//!   requirement are outside it.

use crate::asm::{Asm, Cond, Width};
use crate::insn::{op, Program, R0, R1, R2, R3, R4, R5};
use crate::rules::Rule;
use crate::strategy::models::common::{load_context, nothing_attached};
use crate::strategy::{CompileError, Strategy};

pub struct Lxc;

const NAME: &str = "lxc";

fn refused(reason: impl Into<String>) -> CompileError {
    CompileError::Refused {
        strategy: NAME,
        reason: reason.into(),
    }
}

/// `lxc_bpf_devices_rule_t`; the value is also the program's default verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListType {
    /// `LXC_BPF_DEVICE_CGROUP_ALLOWLIST` = 0: block all, emit allow entries.
    AllowList = 0,
    /// `LXC_BPF_DEVICE_CGROUP_DENYLIST` = 1: allow all, emit deny entries.
    DenyList = 1,
}

/// `struct device_item`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DeviceItem {
    /// `a`, `b` or `c`.
    ty: u8,
    /// -1 for `*`.
    major: i32,
    minor: i32,
    /// The access letters as written, at most three.
    access: Vec<u8>,
    allow: bool,
}

/// `struct bpf_devices`; `devices[0]` is the list head (the newest entry).
struct BpfDevices {
    list_type: ListType,
    devices: Vec<DeviceItem>,
}

/// `bpf_device_add`: whether an entry counts in the current mode.
fn device_add(list_type: ListType, dev: &DeviceItem) -> bool {
    match list_type {
        ListType::AllowList => dev.allow,
        ListType::DenyList => !dev.allow,
    }
}

impl BpfDevices {
    fn new() -> Self {
        // lxc_conf_init: allowlist, empty list.
        BpfDevices {
            list_type: ListType::AllowList,
            devices: Vec::new(),
        }
    }

    /// `bpf_list_add_device`.
    fn add(&mut self, device: DeviceItem) {
        if device.ty == b'a' && device.major < 0 && device.minor < 0 && device.access.is_empty() {
            self.list_type = if device.allow {
                ListType::DenyList
            } else {
                ListType::AllowList
            };
            self.devices.clear();
            return;
        }
        let list_type = self.list_type;
        for dev in self.devices.iter_mut() {
            if dev.ty != device.ty
                || dev.major != device.major
                || dev.minor != device.minor
                || dev.access != device.access
            {
                continue;
            }
            if !device_add(list_type, dev) {
                continue;
            }
            // Switched, or reused as is.
            dev.allow = device.allow;
            return;
        }
        // list_add: at the head.
        self.devices.insert(0, device);
    }
}

/// C `isspace` in the C locale.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `lxc_safe_int` on a run of decimal digits: `strtol(s, &end, 0)`, so a
/// leading zero selects octal, and the whole string must be consumed and
/// fit in an `int`.
fn lxc_safe_int(digits: &[u8]) -> Option<i32> {
    let (radix, body) = if digits.len() > 1 && digits[0] == b'0' {
        (8u32, &digits[1..])
    } else {
        (10, digits)
    };
    let mut value: u64 = 0;
    for &d in body {
        let v = u32::from(d - b'0');
        if v >= radix {
            return None; // strtol stops here: *end != '\0'
        }
        value = value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(v))?;
        if value > i32::MAX as u64 {
            return None; // ERANGE, or above INT_MAX
        }
    }
    Some(value as i32)
}

/// The number fields of `device_cgroup_rule_parse`: `*` or digits (copied
/// into a 50-byte buffer, at most 49 of them).
fn parse_number(v: &[u8], i: &mut usize) -> Option<i32> {
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    if at(*i) == b'*' {
        *i += 1;
        return Some(-1);
    }
    if !at(*i).is_ascii_digit() {
        return None;
    }
    let start = *i;
    let mut count = 0;
    loop {
        *i += 1;
        count += 1;
        if !at(*i).is_ascii_digit() || count == 49 {
            break;
        }
    }
    lxc_safe_int(&v[start..*i])
}

/// `device_cgroup_rule_parse` (with `device_cgroup_parse_access`).
fn device_cgroup_rule_parse(key: &str, val: &[u8]) -> Option<DeviceItem> {
    let allow = key == "devices.allow";
    if val == b"a" {
        return Some(DeviceItem {
            ty: b'a',
            major: -1,
            minor: -1,
            access: Vec::new(),
            allow,
        });
    }
    let at = |i: usize| val.get(i).copied().unwrap_or(0);
    let ty = match at(0) {
        t @ (b'a' | b'b' | b'c') => t,
        _ => return None,
    };
    if !c_isspace(at(1)) {
        return None;
    }
    let mut i = 2;
    let major = parse_number(val, &mut i)?;
    if at(i) != b':' {
        return None;
    }
    i += 1;
    let minor = parse_number(val, &mut i)?;
    if !c_isspace(at(i)) {
        return None;
    }
    i += 1;
    let mut access = Vec::new();
    for _ in 0..3 {
        match at(i) {
            c @ (b'r' | b'w' | b'm') => access.push(c),
            b'\n' | 0 => break,
            _ => return None,
        }
        i += 1;
    }
    Some(DeviceItem {
        ty,
        major,
        minor,
        access,
        allow,
    })
}

/// `lxc_char_left_gc`.
fn left_gc(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    &s[n..]
}

/// `lxc_char_right_gc`.
fn right_gc(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t' | b'\n' | 0))
        .map_or(0, |i| i + 1);
    &s[..n]
}

/// `lxc_is_line_empty`.
fn line_is_empty(s: &[u8]) -> bool {
    s.iter()
        .all(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0))
}

/// The config lines the rules become: `lxc.cgroup2.devices.allow = TEXT`
/// or `... .deny = TEXT`, one per rule, in order (what a real LXC is given).
pub fn config_lines(rules: &[Rule]) -> Vec<u8> {
    let mut file = Vec::new();
    for rule in rules {
        file.extend_from_slice(format!("lxc.cgroup2.{} = ", rule.kind.file_name()).as_bytes());
        file.extend_from_slice(rule.text.as_bytes());
        file.push(b'\n');
    }
    file
}

/// The config file the rules become, read back as LXC reads it: the
/// `conf->cgroup2` list of (subsystem, value), after empty-value clears.
fn read_config(rules: &[Rule]) -> Result<Vec<(String, Vec<u8>)>, CompileError> {
    let mut file = config_lines(rules);
    // The buffer is a C string: nothing after the first NUL is seen.
    if let Some(nul) = file.iter().position(|&b| b == 0) {
        file.truncate(nul);
    }
    let mut cgroup2: Vec<(String, Vec<u8>)> = Vec::new();
    // lxc_iterate_parts(line, buf, "\r\n\0"): strtok, empty tokens skipped.
    for line in file
        .split(|&b| b == b'\r' || b == b'\n')
        .filter(|l| !l.is_empty())
    {
        if line_is_empty(line) {
            continue;
        }
        let line = left_gc(line);
        if line.first() == Some(&b'#') || !line.starts_with(b"lxc.") {
            continue;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return Err(refused(format!(
                "invalid configuration line {:?}",
                String::from_utf8_lossy(line)
            )));
        };
        let key = right_gc(&line[..eq]);
        let mut value = right_gc(left_gc(&line[eq + 1..]));
        if let Some(&q @ (b'\'' | b'"')) = value.first() {
            if value.len() > 1 && value[value.len() - 1] == q {
                value = &value[1..value.len() - 1];
            }
        }
        let subsystem = match key {
            b"lxc.cgroup2.devices.allow" => "devices.allow",
            b"lxc.cgroup2.devices.deny" => "devices.deny",
            other => {
                return Err(refused(format!(
                    "a rule text injects the config key {:?}, which is not modelled",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        if value.is_empty() {
            // lxc_clear_cgroups: drop earlier entries of the same key.
            cgroup2.retain(|(s, _)| s != subsystem);
        } else {
            cgroup2.push((subsystem.to_string(), value.to_vec()));
        }
    }
    Ok(cgroup2)
}

/// `bpf_access_mask`.
fn access_mask(access: &[u8]) -> u32 {
    access.iter().fold(0, |m, c| {
        m | match c {
            b'r' => 2,
            b'w' => 4,
            _ => 1,
        }
    })
}

/// `bpf_program_append_device`: every failed test jumps past this entry's
/// `r0 = allow; exit`.
fn append_device(a: &mut Asm, dev: &DeviceItem) {
    let next = a.new_label();
    let mask = access_mask(&dev.access);
    if mask != 7 {
        a.mov_reg(Width::W32, R1, R3);
        a.alu_imm(Width::W32, op::AND, R1, mask as i32);
        a.jmp_reg(Width::W64, Cond::Ne, R1, R3, next);
    }
    let device_type = match dev.ty {
        b'b' => 1,
        b'c' => 2,
        _ => 0,
    };
    if device_type > 0 {
        a.jmp_imm(Width::W64, Cond::Ne, R2, device_type, next);
    }
    if dev.major >= 0 {
        a.jmp_imm(Width::W64, Cond::Ne, R4, dev.major, next);
    }
    if dev.minor >= 0 {
        a.jmp_imm(Width::W64, Cond::Ne, R5, dev.minor, next);
    }
    a.mov_imm(Width::W64, R0, i32::from(dev.allow));
    a.exit();
    a.bind(next);
}

/// `__bpf_cgroup_devices`, or nothing when `cgfsng_devices_activate` skips.
fn program(devices: &BpfDevices) -> Result<Program, CompileError> {
    if devices.devices.is_empty() {
        return Ok(nothing_attached());
    }
    let mut a = Asm::new();
    load_context(&mut a);
    for dev in devices
        .devices
        .iter()
        .filter(|d| device_add(devices.list_type, d))
    {
        append_device(&mut a, dev);
    }
    // bpf_program_finalize
    a.mov_imm(Width::W64, R0, devices.list_type as i32);
    a.exit();
    Ok(Program::new(a.finish()?))
}

impl Strategy for Lxc {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        "model of LXC's lxc.cgroup2.devices program (lxc e7b855a5): allow/deny list mode, newest rule first"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError> {
        let mut devices = BpfDevices::new();
        for (subsystem, value) in read_config(rules)? {
            let shown = String::from_utf8_lossy(&value).into_owned();
            if subsystem == "devices.allow" && value.first() == Some(&b'/') {
                return Err(refused(format!(
                    "{subsystem} = {shown:?} names a device path, which LXC stats: not modelled"
                )));
            }
            // "Failed to parse device rule" is logged and the value dropped:
            // bpf_device_cgroup_prepare returns syserror_set(EINVAL, ...),
            // a positive EINVAL, and cgfsng_setup_limits fails only on a
            // negative value; the container starts without the rule.
            if let Some(item) = device_cgroup_rule_parse(&subsystem, &value) {
                devices.add(item);
            }
        }
        program(&devices)
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
        disassemble(&Lxc.compile(&rules(text)).expect("compiles").insns)
    }

    const PROLOGUE: &str = "   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
";

    /// The example of lxc.container.conf(5) (and the start of
    /// config/templates/common.conf.in): newest entry first, full-access
    /// entries without the access test, allowlist default 0.
    #[test]
    fn allowlist_from_the_manual() {
        let text = "deny a\nallow c *:* m\nallow b *:* m\nallow c 1:3 rwm\n";
        let want = "   6: (55) if r2 != 0x2 goto pc+4
   7: (55) if r4 != 0x1 goto pc+3
   8: (55) if r5 != 0x3 goto pc+2
   9: (b7) r0 = 1
  10: (95) exit
  11: (bc) w1 = w3
  12: (54) w1 &= 1
  13: (5d) if r1 != r3 goto pc+3
  14: (55) if r2 != 0x1 goto pc+2
  15: (b7) r0 = 1
  16: (95) exit
  17: (bc) w1 = w3
  18: (54) w1 &= 1
  19: (5d) if r1 != r3 goto pc+3
  20: (55) if r2 != 0x2 goto pc+2
  21: (b7) r0 = 1
  22: (95) exit
  23: (b7) r0 = 0
  24: (95) exit
";
        assert_eq!(asm(text), format!("{PROLOGUE}{want}"));
    }

    /// Denylist: allow entries dropped, deny entries return 0, default 1;
    /// `010` is octal; `a 1:3 r` is an entry without a type test.
    #[test]
    fn denylist_octal_and_type_a() {
        let text = "allow a\ndeny c 010:1 rw\nallow c 1:5 rwm\ndeny a 1:3 r\n";
        let want = "   6: (bc) w1 = w3
   7: (54) w1 &= 2
   8: (5d) if r1 != r3 goto pc+4
   9: (55) if r4 != 0x1 goto pc+3
  10: (55) if r5 != 0x3 goto pc+2
  11: (b7) r0 = 0
  12: (95) exit
  13: (bc) w1 = w3
  14: (54) w1 &= 6
  15: (5d) if r1 != r3 goto pc+5
  16: (55) if r2 != 0x2 goto pc+4
  17: (55) if r4 != 0x8 goto pc+3
  18: (55) if r5 != 0x1 goto pc+2
  19: (b7) r0 = 0
  20: (95) exit
  21: (b7) r0 = 1
  22: (95) exit
";
        assert_eq!(asm(text), format!("{PROLOGUE}{want}"));
    }

    #[rstest]
    // Allowlist by default: a lone deny is dropped and everything is denied.
    #[case::default_allowlist("deny c 1:3 r\n", "   6: (b7) r0 = 0\n   7: (95) exit\n")]
    // Same text flips the entry; a different access string does not.
    #[case::flip_removes(
        "deny a\nallow c 1:3 rw\ndeny c 1:3 rw\n",
        "   6: (b7) r0 = 0\n   7: (95) exit\n"
    )]
    #[case::reused_and_deny_ignored(
        "deny a\nallow c 1:3 r\nallow c 1:3 r\ndeny c 1:3 w\n",
        "   6: (bc) w1 = w3
   7: (54) w1 &= 2
   8: (5d) if r1 != r3 goto pc+5
   9: (55) if r2 != 0x2 goto pc+4
  10: (55) if r4 != 0x1 goto pc+3
  11: (55) if r5 != 0x3 goto pc+2
  12: (b7) r0 = 1
  13: (95) exit
  14: (b7) r0 = 0
  15: (95) exit
"
    )]
    fn list_handling(#[case] text: &str, #[case] tail: &str) {
        assert_eq!(asm(text), format!("{PROLOGUE}{tail}"));
    }

    /// An empty list attaches nothing: the stand-in allows everything.
    #[rstest]
    #[case::no_rules("")]
    #[case::deny_all_alone("deny a\n")]
    #[case::reset("allow c 1:3 r\ndeny a\n")]
    fn nothing_is_attached(#[case] text: &str) {
        assert_eq!(asm(text), "   0: (b7) r0 = 1\n   1: (95) exit\n");
    }

    /// LXC drops what its parser refuses: the program is the one of the
    /// list without that line.
    #[rstest]
    #[case::octal_digit("deny a\nallow c 1:3 r\nallow c 08:1 r\n", "deny a\nallow c 1:3 r\n")]
    #[case::kernel_wildcard_number("deny a\nallow c 4294967295:1 r\n", "deny a\n")]
    #[case::above_int_max(
        "allow a\ndeny c 1:2147483648 r\ndeny c 1:3 w\n",
        "allow a\ndeny c 1:3 w\n"
    )]
    #[case::all_with_text("deny all\n", "")]
    fn unparsable_values_are_dropped(#[case] text: &str, #[case] without: &str) {
        assert_eq!(asm(text), asm(without));
    }

    #[test]
    fn parser_details() {
        assert_eq!(lxc_safe_int(b"010"), Some(8));
        assert_eq!(lxc_safe_int(b"0"), Some(0));
        assert_eq!(lxc_safe_int(b"00000000001"), Some(1));
        assert_eq!(lxc_safe_int(b"2147483647"), Some(i32::MAX));
        assert_eq!(lxc_safe_int(b"09"), None);
        let item = device_cgroup_rule_parse("devices.deny", b"c 1:3 rwmx").unwrap();
        assert_eq!(item.access, b"rwm");
        assert!(!item.allow);
        assert_eq!(
            device_cgroup_rule_parse("devices.allow", b"c 1:3 r w"),
            None
        );
        // Untrimmed, a trailing space would leave an empty access set; config
        // values are right-trimmed first, and `c 1:3` has no separator.
        assert_eq!(
            device_cgroup_rule_parse("devices.allow", b"c 1:3 ")
                .unwrap()
                .access,
            b""
        );
        assert_eq!(device_cgroup_rule_parse("devices.allow", b"c 1:3"), None);
    }

    /// An empty value (what follows the newline is a separate line, ignored
    /// as it does not start with `lxc.`) clears the earlier entries of the
    /// same key, and only those.
    #[test]
    fn empty_value_clears_its_key() {
        let mut list = rules("allow c 1:3 r\ndeny c 1:9 r\n");
        list.push(Rule::new(crate::rules::RuleKind::Allow, "\nc 1:5 r").unwrap());
        let cfg = read_config(&list).unwrap();
        assert_eq!(cfg, vec![("devices.deny".to_string(), b"c 1:9 r".to_vec())]);
        let prog = Lxc.compile(&list).unwrap();
        assert_eq!(
            disassemble(&prog.insns),
            format!("{PROLOGUE}   6: (b7) r0 = 0\n   7: (95) exit\n")
        );
    }

    /// A NUL ends the config file: the rest of that rule and every later
    /// rule are never read.
    #[test]
    fn nul_ends_the_file() {
        let mut list = rules("deny a\nallow c 1:3 r\n");
        list.push(Rule::new(crate::rules::RuleKind::Allow, "c 1:5 rw\0garbage").unwrap());
        list.push(Rule::new(crate::rules::RuleKind::Allow, "c 1:7 r").unwrap());
        let cfg = read_config(&list).unwrap();
        assert_eq!(cfg.len(), 3);
        assert_eq!(cfg[2].1, b"c 1:5 rw");
    }
}
