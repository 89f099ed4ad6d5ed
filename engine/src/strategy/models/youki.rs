//! Model of youki's cgroup v2 device program.
//!
//! # Sources followed
//!
//! * github.com/youki-dev/youki at commit
//!   `bc78720681ad34be682fe1a6daa61cb3bf47762d`:
//!   `crates/libcgroups/src/v2/devices/controller.rs`
//!   (`Devices::apply_devices`), `.../devices/emulator.rs` (`Emulator`),
//!   `.../devices/program.rs` (`Program::from_rules`, `init`, `add_rule`,
//!   `finalize`, `bpf_dev_type`, `bpf_access`), `crates/libcgroups/src/common.rs`
//!   (`default_devices`, `default_allow_devices`).
//! * oci-spec 0.10.0 (youki's lockfile): `LinuxDeviceType::default()` is `A`,
//!   `From<&LinuxDevice> for LinuxDeviceCgroup` gives `allow: true`, both
//!   numbers present, access `rwm`.
//! * rbpf 0.4.1 `insn_builder` (the encoder youki uses): `jump_conditional`
//!   is always class `BPF_JMP` (64-bit), `Arch::X32` movs and ALU are class
//!   `BPF_ALU`.
//!
//! The program exists only when libcgroups is built with the
//! `cgroupsv2_devices` feature, which no crate enables by default; without
//! it `Devices::apply` returns `Ok(())` and nothing is attached. The model
//! assumes the feature.
//!
//! # Input mapping
//!
//! Each devcg rule is one `LinuxDeviceCgroup` (see `common.rs`): `allow`
//! from the file, type `a`/`b`/`c`, a `*` number `None`, a number written in
//! digits `Some(n)` (a literal 4294967295 too), access `Some(letters)`
//! (possibly empty); a bare `a` is `{"type":"a","access":"rwm"}`.
//!
//! # What youki does
//!
//! 1. `Emulator::with_default_allow(false)`: a deny-all start.
//! 2. User entries in order: type `a` (or none) sets the default from
//!    `allow` and clears the list, other fields ignored; an entry with no
//!    access is dropped; anything else is appended, unmerged.
//! 3. Then the defaults are appended: `default_devices()` converted (`c 1:3`,
//!    `c 1:5`, `c 1:7`, `c 5:0`, `c 1:9`, `c 1:8`, `rwm`), then
//!    `default_allow_devices()` (`c *:* m`, `b *:* m`, `c 5:1`, `c 136:*`,
//!    `c 5:2`, `c 10:200`, `rwm`), all allow.
//! 4. The program walks the list **backwards** (defaults first, then the
//!    user's entries last to first), one block each: `if r2 != type`;
//!    unless the access is `rwm`: `w1 = w3; w1 &= mask; if r1 != r3`;
//!    `if r4 != major as i32`, `if r5 != minor as i32` for numbers ≥ 0;
//!    `w0 = allow; exit`; then `w0 = default; exit`. Jumps are 64-bit, so a
//!    number ≥ 2^31 is a negative immediate, sign-extended: never equal.
//!    Offsets are hand-counted upstream (checked to be right; labels here).
//!
//! # Expected divergences from v1
//!
//! * Deny-all start; first match from the last entry; no v1 add/remove
//!   bookkeeping (later rules override earlier ones, holes in wildcards
//!   work).
//! * The defaults come first and beat every user rule (`deny c 1:3` cannot
//!   take `/dev/null` away; `m` is always allowed), and survive `a`.
//! * Deny blocks match only requests whose access is a subset of theirs,
//!   and access 0; an entry with empty access matches access 0 only.
//! * Numbers ≥ 2^31 (and a literal 4294967295) never match.
//!
//! Refusals (`program error: invalid access: x`, `... device not
//! supported`) cannot arise from devcg rules: access letters are normalized
//! and types are `a`/`b`/`c`.

use crate::asm::{Asm, Width};
use crate::insn::Program;
use crate::rules::Rule;
use crate::strategy::models::common::{self, Block, OciDevice};
use crate::strategy::{CompileError, Strategy};

pub struct Youki;

const NAME: &str = "youki";

fn refused(reason: impl Into<String>) -> CompileError {
    CompileError::Refused {
        strategy: NAME,
        reason: reason.into(),
    }
}

/// `default_devices()` (as `LinuxDeviceCgroup`), then
/// `default_allow_devices()`.
fn defaults() -> Vec<OciDevice> {
    let mut v: Vec<OciDevice> = [(1, 3), (1, 5), (1, 7), (5, 0), (1, 9), (1, 8)]
        .into_iter()
        .map(|(major, minor)| OciDevice::new(true, 'c', Some(major), Some(minor), "rwm"))
        .collect();
    v.extend([
        OciDevice::new(true, 'c', None, None, "m"),
        OciDevice::new(true, 'b', None, None, "m"),
        OciDevice::new(true, 'c', Some(5), Some(1), "rwm"),
        OciDevice::new(true, 'c', Some(136), None, "rwm"),
        OciDevice::new(true, 'c', Some(5), Some(2), "rwm"),
        OciDevice::new(true, 'c', Some(10), Some(200), "rwm"),
    ]);
    v
}

/// `emulator::Emulator`.
struct Emulator {
    default_allow: bool,
    rules: Vec<OciDevice>,
}

impl Emulator {
    fn add_rule(&mut self, rule: &OciDevice) {
        if rule.ty == 'a' {
            self.default_allow = rule.allow;
            self.rules.clear();
            return;
        }
        // `access: None` is dropped upstream; devcg rules always carry one.
        self.rules.push(rule.clone());
    }
}

/// `Program::add_rule`.
fn add_rule(a: &mut Asm, rule: &OciDevice) -> Result<(), String> {
    let ty = match rule.ty {
        'c' | 'b' => common::dev_type_code(rule.ty).expect("b or c"),
        _ => {
            return Err(
                "program error: wildcard device type should be removed when cleaning rules".into(),
            )
        }
    };
    let mut mask = 0i32;
    for c in rule.access.chars() {
        mask |= match c {
            'r' => 2,
            'w' => 4,
            'm' => 1,
            other => return Err(format!("program error: invalid access: {other}")),
        };
    }
    let number = |n: Option<i64>| n.filter(|&n| n >= 0).map(|n| n as i32);
    common::emit_block(
        a,
        &Block {
            ty: Some(ty),
            access: (mask != 7).then_some(mask),
            major: number(rule.major),
            minor: number(rule.minor),
            verdict: i32::from(rule.allow),
            mov: Width::W32,
        },
    );
    Ok(())
}

fn apply_devices(rules: &[Rule], with_defaults: bool) -> Result<Program, CompileError> {
    let mut emulator = Emulator {
        default_allow: false,
        rules: Vec::new(),
    };
    for d in common::oci_devices(rules) {
        emulator.add_rule(&d);
    }
    if with_defaults {
        for d in defaults() {
            emulator.add_rule(&d);
        }
    }
    let mut a = Asm::new();
    common::load_context(&mut a);
    for rule in emulator.rules.iter().rev() {
        add_rule(&mut a, rule).map_err(refused)?;
    }
    common::emit_return(&mut a, Width::W32, i32::from(emulator.default_allow));
    Ok(Program::new(a.finish()?))
}

/// What youki attaches: the entries plus its default devices. The
/// registered strategy takes the entries alone.
pub fn compile_with_defaults(rules: &[Rule]) -> Result<Program, CompileError> {
    apply_devices(rules, true)
}

impl Strategy for Youki {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        "model of youki (libcgroups v2 devices: emulator + program, cgroupsv2_devices feature)"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError> {
        apply_devices(rules, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disasm::disassemble;
    use crate::rules::RuleFile;
    use rstest::rstest;

    /// Prologue and the twelve defaults (last added first).
    const PREFIX: &str = "   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (55) if r2 != 0x2 goto pc+4
   7: (55) if r4 != 0xa goto pc+3
   8: (55) if r5 != 0xc8 goto pc+2
   9: (b4) w0 = 1
  10: (95) exit
  11: (55) if r2 != 0x2 goto pc+4
  12: (55) if r4 != 0x5 goto pc+3
  13: (55) if r5 != 0x2 goto pc+2
  14: (b4) w0 = 1
  15: (95) exit
  16: (55) if r2 != 0x2 goto pc+3
  17: (55) if r4 != 0x88 goto pc+2
  18: (b4) w0 = 1
  19: (95) exit
  20: (55) if r2 != 0x2 goto pc+4
  21: (55) if r4 != 0x5 goto pc+3
  22: (55) if r5 != 0x1 goto pc+2
  23: (b4) w0 = 1
  24: (95) exit
  25: (55) if r2 != 0x1 goto pc+5
  26: (bc) w1 = w3
  27: (54) w1 &= 1
  28: (5d) if r1 != r3 goto pc+2
  29: (b4) w0 = 1
  30: (95) exit
  31: (55) if r2 != 0x2 goto pc+5
  32: (bc) w1 = w3
  33: (54) w1 &= 1
  34: (5d) if r1 != r3 goto pc+2
  35: (b4) w0 = 1
  36: (95) exit
  37: (55) if r2 != 0x2 goto pc+4
  38: (55) if r4 != 0x1 goto pc+3
  39: (55) if r5 != 0x8 goto pc+2
  40: (b4) w0 = 1
  41: (95) exit
  42: (55) if r2 != 0x2 goto pc+4
  43: (55) if r4 != 0x1 goto pc+3
  44: (55) if r5 != 0x9 goto pc+2
  45: (b4) w0 = 1
  46: (95) exit
  47: (55) if r2 != 0x2 goto pc+4
  48: (55) if r4 != 0x5 goto pc+3
  49: (55) if r5 != 0x0 goto pc+2
  50: (b4) w0 = 1
  51: (95) exit
  52: (55) if r2 != 0x2 goto pc+4
  53: (55) if r4 != 0x1 goto pc+3
  54: (55) if r5 != 0x7 goto pc+2
  55: (b4) w0 = 1
  56: (95) exit
  57: (55) if r2 != 0x2 goto pc+4
  58: (55) if r4 != 0x1 goto pc+3
  59: (55) if r5 != 0x5 goto pc+2
  60: (b4) w0 = 1
  61: (95) exit
  62: (55) if r2 != 0x2 goto pc+4
  63: (55) if r4 != 0x1 goto pc+3
  64: (55) if r5 != 0x3 goto pc+2
  65: (b4) w0 = 1
  66: (95) exit
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
    #[case::typical(
        "deny a\nallow c 4:* rw\ndeny c 4:1 w",
        "  67: (55) if r2 != 0x2 goto pc+7
  68: (bc) w1 = w3
  69: (54) w1 &= 4
  70: (5d) if r1 != r3 goto pc+4
  71: (55) if r4 != 0x4 goto pc+3
  72: (55) if r5 != 0x1 goto pc+2
  73: (b4) w0 = 0
  74: (95) exit
  75: (55) if r2 != 0x2 goto pc+6
  76: (bc) w1 = w3
  77: (54) w1 &= 6
  78: (5d) if r1 != r3 goto pc+3
  79: (55) if r4 != 0x4 goto pc+2
  80: (b4) w0 = 1
  81: (95) exit
  82: (b4) w0 = 0
  83: (95) exit
"
    )]
    // No `a`: still deny-all. Major 2^31 as i32 in a 64-bit compare.
    #[case::sign_extension(
        "allow c 2147483648:1 r",
        "  67: (55) if r2 != 0x2 goto pc+7
  68: (bc) w1 = w3
  69: (54) w1 &= 2
  70: (5d) if r1 != r3 goto pc+4
  71: (55) if r4 != 0x80000000 goto pc+3
  72: (55) if r5 != 0x1 goto pc+2
  73: (b4) w0 = 1
  74: (95) exit
  75: (b4) w0 = 0
  76: (95) exit
"
    )]
    // `a` clears the user's earlier entries but not the defaults.
    #[case::allow_all(
        "deny c 1:3 rwm\nallow a",
        "  67: (b4) w0 = 1
  68: (95) exit
"
    )]
    // Where runc refuses (a hole in a wildcard), youki just layers.
    #[case::hole(
        "deny a\nallow c 1:* rw\ndeny c 1:3 w",
        "  67: (55) if r2 != 0x2 goto pc+7
  68: (bc) w1 = w3
  69: (54) w1 &= 4
  70: (5d) if r1 != r3 goto pc+4
  71: (55) if r4 != 0x1 goto pc+3
  72: (55) if r5 != 0x3 goto pc+2
  73: (b4) w0 = 0
  74: (95) exit
  75: (55) if r2 != 0x2 goto pc+6
  76: (bc) w1 = w3
  77: (54) w1 &= 6
  78: (5d) if r1 != r3 goto pc+3
  79: (55) if r4 != 0x1 goto pc+2
  80: (b4) w0 = 1
  81: (95) exit
  82: (b4) w0 = 0
  83: (95) exit
"
    )]
    fn with_defaults(#[case] text: &str, #[case] tail: &str) {
        let p = compile_with_defaults(&rules(text)).expect("youki compiles devcg rules");
        assert_eq!(disassemble(&p.insns), format!("{PREFIX}{tail}"));
    }

    #[test]
    fn without_defaults_nothing_is_deny_all() {
        let p = Youki.compile(&[]).unwrap();
        assert_eq!(
            disassemble(&p.insns),
            "   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (b4) w0 = 0
   7: (95) exit
"
        );
    }

    #[test]
    fn program_refuses_what_devcg_cannot_produce() {
        let mut a = Asm::new();
        let bad = OciDevice::new(true, 'c', Some(1), Some(3), "rx");
        assert_eq!(
            add_rule(&mut a, &bad),
            Err("program error: invalid access: x".to_string())
        );
        let all = OciDevice::new(true, 'a', None, None, "rwm");
        assert!(add_rule(&mut a, &all).is_err());
    }
}
