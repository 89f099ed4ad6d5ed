//! Model of crun's cgroup v2 device program (cgroupfs driver).
//!
//! # Sources followed
//!
//! github.com/containers/crun at commit
//! `ba38286f7d232be8087dbd393315bb05018da68c` (both files last changed in
//! `d0277ef88157b59b184c1c29b9c4ed2d0df32225`):
//!
//! * `src/libcrun/ebpf.c`: `bpf_program_init_dev`, `bpf_program_append_dev`,
//!   `bpf_program_complete_dev`;
//! * `src/libcrun/cgroup-resources.c`: `default_devices[]`, `create_dev_bpf`,
//!   `update_cgroup_v2_resources` (`if (need_bpf_dev &&
//!   resources->devices_len)`); `cgroup-resources.h` (`struct default_dev_s`
//!   with `int major, minor`).
//!
//! # Versions
//!
//! The defaults changed across releases (see [`default_devices`]): crun
//! 1.5 to 1.19 do not grant `c 10:200`, and before 1.18 the array has no
//! terminator. [`compile_for_version`] builds what a given release
//! attaches (Debian 12's 1.8.1: checked against the real binary by
//! `devcg runtime crun`); [`compile_with_defaults`] is the upstream revision.
//!
//! # Input mapping
//!
//! Each devcg rule is one OCI `linux.resources.devices` entry (see
//! `common.rs`): `allow` from the file, type `a`/`b`/`c`, a `*` number
//! absent, access letters; a bare `a` is `{"access":"rwm"}`; an `a` written
//! in OCI shape keeps its numbers and access. crun reads the int64 numbers
//! into `int` (`major = devs[i]->major`): C's conversion keeps the low 32
//! bits, so 2^31..2^32-1 become negative, and negative means "absent".
//!
//! # The program `create_dev_bpf` builds
//!
//! 1. The prologue (r2 type, r3 access, r4 major, r5 minor).
//! 2. `default_devices[]` walked **backwards from `sizeof/sizeof - 1`**, which
//!    is the `{ 0, 0, 0, NULL }` terminator: it is emitted as a rule
//!    (type 0 → CHAR, access "" → mask 0, major 0, minor 0, allow), then
//!    `c 10:200`, `c 5:2`, `c 136:*`, `c 5:1`, `c 1:9`, `c 1:5`, `c 5:0`,
//!    `c 1:7`, `c 1:8`, `c 1:3` (all `rwm`), `b *:* m`, `c *:* m`, all allow.
//! 3. The user's entries **last to first**.
//! 4. `r0 = 0; exit`, unless a block had no test at all (type `a`, access
//!    exactly `rwm`, no numbers): that block sets `HAS_WILDCARD`, every later
//!    append is dropped and so is the final deny.
//!
//! A block: `if r2 != type` (absent for type `a`), unless the access is
//! `rwm` `w1 = w3; w1 &= mask; if r1 != r3` (request ⊆ mask; unknown letters
//! ignored), `if r4 != major`, `if r5 != minor` (numbers ≥ 0 only), then
//! `r0 = accept; exit` with a **64-bit** mov. All jumps are 64-bit `JMP`
//! (hand-counted offsets upstream, checked to be right; labels here).
//!
//! With no entries at all the cgroupfs driver attaches no program; the model
//! returns `r0 = 1; exit` as the stand-in for "nothing attached". (The
//! systemd driver, `add_bpf_program`, would build the program anyway.)
//!
//! # Expected divergences from v1
//!
//! * First match from the last entry, default deny: no allow-all start, no
//!   v1 add/remove bookkeeping (a later `allow c 1:3` punches a hole in an
//!   earlier `deny c 1:*`, a later `deny c 1:3 w` narrows an earlier
//!   `allow c 1:* rw`).
//! * The defaults come first, so they beat every user rule: `deny c 1:3`
//!   cannot take `/dev/null` away, and `m` on every device is always
//!   allowed.
//! * Deny blocks match only requests whose access is a subset of theirs
//!   (v1 allow-all mode: any shared bit) and they match access 0.
//! * Type `a` with numbers or with an access other than `rwm` is a filter
//!   on both types rather than "everything"; `a` with no access matches
//!   only access 0.
//! * Numbers 2^31..2^32-1 (and a literal 4294967295) become wildcards.
//! * The terminator block allows `c 0:0` with access 0 (not realizable).
//!
//! crun itself never refuses a rule list here.

use crate::asm::{Asm, Width};
use crate::insn::Program;
use crate::rules::Rule;
use crate::strategy::models::common::{self, Block};
use crate::strategy::{CompileError, Strategy};

pub struct Crun;

/// A crun release, as `crun --version` prints it (`1.8.1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32);

impl Version {
    /// The revision the model follows (`ba38286f`, after 1.20).
    pub const UPSTREAM: Version = Version(u32::MAX, 0);

    /// From `crun version 1.8.1` (the first line `crun --version` prints)
    /// or `1.8.1`.
    pub fn parse(text: &str) -> Option<Version> {
        let number = text
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
        let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
        Some(Version(parts.next()??, parts.next().flatten().unwrap_or(0)))
    }
}

/// `default_devices[]` of the upstream revision, terminator included:
/// (type, major, minor, access). Older releases differ (see
/// [`default_devices`]).
const DEFAULT_DEVICES: [(u8, i32, i32, Option<&str>); 13] = [
    (b'c', -1, -1, Some("m")),
    (b'b', -1, -1, Some("m")),
    (b'c', 1, 3, Some("rwm")),
    (b'c', 1, 8, Some("rwm")),
    (b'c', 1, 7, Some("rwm")),
    (b'c', 5, 0, Some("rwm")),
    (b'c', 1, 5, Some("rwm")),
    (b'c', 1, 9, Some("rwm")),
    (b'c', 5, 1, Some("rwm")),
    (b'c', 136, -1, Some("rwm")),
    (b'c', 5, 2, Some("rwm")),
    (b'c', 10, 200, Some("rwm")),
    (0, 0, 0, None),
];

/// `default_devices[]` as `version` has it (containers/crun history of
/// `src/libcrun/cgroup-resources.c`):
/// * `c 10:200` (tun/tap) was dropped in 1e304242 (first in 1.5) and put
///   back in 179686b7 (first in 1.20);
/// * the list became a shared array ending in a `{ 0, 0, 0, NULL }`
///   terminator in 667442e4 (first in 1.18), and the backwards walk starts
///   at that terminator from then on; before, the array had no terminator
///   (as in 1.8.1, tag `f8a096be`).
pub fn default_devices(version: Version) -> Vec<(u8, i32, i32, Option<&'static str>)> {
    let tun = version >= Version(1, 20) || version < Version(1, 5);
    let terminator = version >= Version(1, 18);
    DEFAULT_DEVICES
        .iter()
        .copied()
        .filter(|&(ty, major, minor, _)| match (ty, major, minor) {
            (0, ..) => terminator,
            (b'c', 10, 200) => tun,
            _ => true,
        })
        .collect()
}

/// `struct bpf_program` with its `private & HAS_WILDCARD` flag.
struct BpfProgram {
    asm: Asm,
    has_wildcard: bool,
}

impl BpfProgram {
    /// `bpf_program_append_dev`.
    fn append_dev(&mut self, access: Option<&str>, ty: u8, major: i32, minor: i32, accept: bool) {
        if self.has_wildcard {
            return;
        }
        let access = access.unwrap_or("");
        let mut mask = 0i32;
        for c in access.bytes() {
            match c {
                b'r' => mask |= 2,
                b'w' => mask |= 4,
                b'm' => mask |= 1,
                _ => {}
            }
        }
        let bpf_type = if ty == b'b' { 1 } else { 2 };
        let has_type = ty != b'a';
        let has_major = major >= 0;
        let has_minor = minor >= 0;
        let has_access = mask != 7;
        common::emit_block(
            &mut self.asm,
            &Block {
                ty: has_type.then_some(bpf_type),
                access: has_access.then_some(mask),
                major: has_major.then_some(major),
                minor: has_minor.then_some(minor),
                verdict: i32::from(accept),
                mov: Width::W64,
            },
        );
        if !has_type && !has_access && !has_major && !has_minor {
            self.has_wildcard = true;
        }
    }

    /// `bpf_program_complete_dev`.
    fn complete(mut self) -> Result<Program, CompileError> {
        if !self.has_wildcard {
            common::emit_return(&mut self.asm, Width::W64, 0);
        }
        Ok(Program::new(self.asm.finish()?))
    }
}

/// C's `int x = (int64_t) v`: the low 32 bits.
fn to_c_int(v: Option<i64>) -> i32 {
    v.map_or(-1, |v| v as i32)
}

fn create_dev_bpf(rules: &[Rule], defaults: Option<Version>) -> Result<Program, CompileError> {
    let devs = common::oci_devices(rules);
    if devs.is_empty() {
        return Ok(common::nothing_attached());
    }
    let mut p = BpfProgram {
        asm: Asm::new(),
        has_wildcard: false,
    };
    common::load_context(&mut p.asm);
    if let Some(version) = defaults {
        for &(ty, major, minor, access) in default_devices(version).iter().rev() {
            p.append_dev(access, ty, major, minor, true);
        }
    }
    for d in devs.iter().rev() {
        p.append_dev(
            Some(&d.access),
            d.ty as u8,
            to_c_int(d.major),
            to_c_int(d.minor),
            d.allow,
        );
    }
    p.complete()
}

/// What crun attaches: `default_devices[]` first, then the user's entries.
/// The registered strategy takes the user's entries alone.
pub fn compile_with_defaults(rules: &[Rule]) -> Result<Program, CompileError> {
    create_dev_bpf(rules, Some(Version::UPSTREAM))
}

/// What crun `version` attaches: its own `default_devices[]` first.
pub fn compile_for_version(version: Version, rules: &[Rule]) -> Result<Program, CompileError> {
    create_dev_bpf(rules, Some(version))
}

impl Strategy for Crun {
    fn name(&self) -> &'static str {
        "crun"
    }
    fn summary(&self) -> &'static str {
        "model of crun (ebpf.c create_dev_bpf: defaults first, user rules last-to-first)"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError> {
        create_dev_bpf(rules, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disasm::disassemble;
    use crate::rules::RuleFile;
    use rstest::rstest;

    /// Prologue, the terminator and the twelve defaults, which open every
    /// crun program with at least one entry.
    const PREFIX: &str = "   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x2 goto pc+7
   7: (bc) w1 = w3
   8: (54) w1 &= 0
   9: (5d) if r1 != r3 goto pc+4
  10: (55) if r4 != 0x0 goto pc+3
  11: (55) if r5 != 0x0 goto pc+2
  12: (b7) r0 = 1
  13: (95) exit
  14: (55) if r2 != 0x2 goto pc+4
  15: (55) if r4 != 0xa goto pc+3
  16: (55) if r5 != 0xc8 goto pc+2
  17: (b7) r0 = 1
  18: (95) exit
  19: (55) if r2 != 0x2 goto pc+4
  20: (55) if r4 != 0x5 goto pc+3
  21: (55) if r5 != 0x2 goto pc+2
  22: (b7) r0 = 1
  23: (95) exit
  24: (55) if r2 != 0x2 goto pc+3
  25: (55) if r4 != 0x88 goto pc+2
  26: (b7) r0 = 1
  27: (95) exit
  28: (55) if r2 != 0x2 goto pc+4
  29: (55) if r4 != 0x5 goto pc+3
  30: (55) if r5 != 0x1 goto pc+2
  31: (b7) r0 = 1
  32: (95) exit
  33: (55) if r2 != 0x2 goto pc+4
  34: (55) if r4 != 0x1 goto pc+3
  35: (55) if r5 != 0x9 goto pc+2
  36: (b7) r0 = 1
  37: (95) exit
  38: (55) if r2 != 0x2 goto pc+4
  39: (55) if r4 != 0x1 goto pc+3
  40: (55) if r5 != 0x5 goto pc+2
  41: (b7) r0 = 1
  42: (95) exit
  43: (55) if r2 != 0x2 goto pc+4
  44: (55) if r4 != 0x5 goto pc+3
  45: (55) if r5 != 0x0 goto pc+2
  46: (b7) r0 = 1
  47: (95) exit
  48: (55) if r2 != 0x2 goto pc+4
  49: (55) if r4 != 0x1 goto pc+3
  50: (55) if r5 != 0x7 goto pc+2
  51: (b7) r0 = 1
  52: (95) exit
  53: (55) if r2 != 0x2 goto pc+4
  54: (55) if r4 != 0x1 goto pc+3
  55: (55) if r5 != 0x8 goto pc+2
  56: (b7) r0 = 1
  57: (95) exit
  58: (55) if r2 != 0x2 goto pc+4
  59: (55) if r4 != 0x1 goto pc+3
  60: (55) if r5 != 0x3 goto pc+2
  61: (b7) r0 = 1
  62: (95) exit
  63: (55) if r2 != 0x1 goto pc+5
  64: (bc) w1 = w3
  65: (54) w1 &= 1
  66: (5d) if r1 != r3 goto pc+2
  67: (b7) r0 = 1
  68: (95) exit
  69: (55) if r2 != 0x2 goto pc+5
  70: (bc) w1 = w3
  71: (54) w1 &= 1
  72: (5d) if r1 != r3 goto pc+2
  73: (b7) r0 = 1
  74: (95) exit
";

    fn rules(text: &str) -> Vec<Rule> {
        let name = if text.trim_start().starts_with('[') {
            "t.json"
        } else {
            "t"
        };
        RuleFile::parse(name, text).expect("valid rules")
    }

    #[rstest]
    #[case("crun version 1.8.1", Version(1, 8), 11)]
    #[case("1.17", Version(1, 17), 11)]
    #[case("crun version 1.18", Version(1, 18), 12)]
    #[case("crun version 1.20.1", Version(1, 20), 13)]
    #[case("crun version 1.4", Version(1, 4), 12)]
    fn defaults_follow_the_version(
        #[case] text: &str,
        #[case] version: Version,
        #[case] len: usize,
    ) {
        assert_eq!(Version::parse(text), Some(version));
        let d = default_devices(version);
        assert_eq!(d.len(), len, "{text}");
        let tun = d.iter().any(|e| (e.0, e.1, e.2) == (b'c', 10, 200));
        let terminator = d.iter().any(|e| e.0 == 0);
        assert_eq!(tun, version >= Version(1, 20) || version < Version(1, 5));
        assert_eq!(terminator, version >= Version(1, 18));
        assert_eq!(
            default_devices(Version::UPSTREAM).len(),
            DEFAULT_DEVICES.len()
        );
    }

    #[rstest]
    // Last entry first; `deny a` is the test-less wildcard: no final deny.
    #[case::typical(
        "deny a\nallow c 4:* rw\ndeny c 4:1 w",
        "  75: (55) if r2 != 0x2 goto pc+7
  76: (bc) w1 = w3
  77: (54) w1 &= 4
  78: (5d) if r1 != r3 goto pc+4
  79: (55) if r4 != 0x4 goto pc+3
  80: (55) if r5 != 0x1 goto pc+2
  81: (b7) r0 = 0
  82: (95) exit
  83: (55) if r2 != 0x2 goto pc+6
  84: (bc) w1 = w3
  85: (54) w1 &= 6
  86: (5d) if r1 != r3 goto pc+3
  87: (55) if r4 != 0x4 goto pc+2
  88: (b7) r0 = 1
  89: (95) exit
  90: (b7) r0 = 0
  91: (95) exit
"
    )]
    // Major 2^31 is INT_MIN as a C int: "absent", so `c *:1 r`.
    #[case::int_truncation(
        "allow c 2147483648:1 r",
        "  75: (55) if r2 != 0x2 goto pc+6
  76: (bc) w1 = w3
  77: (54) w1 &= 2
  78: (5d) if r1 != r3 goto pc+3
  79: (55) if r5 != 0x1 goto pc+2
  80: (b7) r0 = 1
  81: (95) exit
  82: (b7) r0 = 0
  83: (95) exit
"
    )]
    // An OCI `type: a` entry with numbers and access `r`: no type test.
    #[case::typed_all(
        r#"[{"allow":false,"type":"a","major":1,"minor":3,"access":"r"}]"#,
        "  75: (bc) w1 = w3
  76: (54) w1 &= 2
  77: (5d) if r1 != r3 goto pc+4
  78: (55) if r4 != 0x1 goto pc+3
  79: (55) if r5 != 0x3 goto pc+2
  80: (b7) r0 = 0
  81: (95) exit
  82: (b7) r0 = 0
  83: (95) exit
"
    )]
    // The wildcard stops the walk: `deny c 1:3 w`, earlier, is dropped.
    #[case::wildcard_stops(
        "deny c 1:3 w\nallow a",
        "  75: (b7) r0 = 1
  76: (95) exit
"
    )]
    fn with_defaults(#[case] text: &str, #[case] tail: &str) {
        let p = compile_with_defaults(&rules(text)).expect("crun never refuses");
        assert_eq!(disassemble(&p.insns), format!("{PREFIX}{tail}"));
    }

    #[test]
    fn no_entries_attach_nothing() {
        let p = compile_with_defaults(&[]).unwrap();
        assert_eq!(
            disassemble(&p.insns),
            "   0: (b7) r0 = 1\n   1: (95) exit\n"
        );
    }

    #[test]
    fn without_defaults() {
        let p = Crun.compile(&rules("allow a\ndeny b 8:* rwm")).unwrap();
        assert_eq!(
            disassemble(&p.insns),
            "   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x1 goto pc+3
   7: (55) if r4 != 0x8 goto pc+2
   8: (b7) r0 = 0
   9: (95) exit
  10: (b7) r0 = 1
  11: (95) exit
"
        );
    }
}
