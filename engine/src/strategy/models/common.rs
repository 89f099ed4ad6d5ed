//! Pieces the runc, crun and youki models share: how one devcg rule becomes
//! the OCI `linux.resources.devices` entry those runtimes read, and the
//! instruction shapes their generators have in common (all three descend
//! from crun 0.10's `ebpf.c`, itself "taken from systemd").
//!
//! # From a devcg rule to an OCI entry
//!
//! devcg's OCI reader turns an entry into the text runc would write to
//! `devices.allow`/`devices.deny` (`TYPE MAJ:MIN ACCESS`, `*` for an absent
//! or -1 number); v1 files carry such texts directly. [`oci_device`] reads
//! that text back:
//!
//! * `b`/`c`: type as written; a number written `*` is absent, any number
//!   written in digits is present with that value. So a literal
//!   `4294967295`, which the kernel stores as `*`, stays the number
//!   4294967295 here, as it would in an OCI file. The access is the set the
//!   kernel parsed, in `rwm` order (so `rrr` or the ignored tail of `rwmx`
//!   are normalized; an empty access stays empty).
//! * `a`: when the text has the OCI shape `a MAJ:MIN [ACCESS]` (what the OCI
//!   reader writes for a `type: a` or type-less entry) the numbers and the
//!   access are kept as written (`*` absent, `-5` stays -5, a missing access
//!   is empty): runtimes other than the kernel may look at them. Any other
//!   `a...` text (`a`, `all`) is `{"type":"a","access":"rwm"}`, numbers
//!   absent.
//! * `allow` is the file the rule is written to.

use crate::asm::{Asm, Cond, Width};
use crate::device::{Access, DeviceType, WILDCARD};
use crate::insn::{op, Program, R0, R1, R2, R3, R4, R5};
use crate::rules::{Rule, RuleKind};
use crate::v1text::V1Text;

/// One `LinuxDeviceCgroup` entry as the runtimes read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OciDevice {
    pub allow: bool,
    /// `a`, `b` or `c`.
    pub ty: char,
    /// `None` when absent (`*`).
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl OciDevice {
    pub(crate) fn new(
        allow: bool,
        ty: char,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> Self {
        OciDevice {
            allow,
            ty,
            major,
            minor,
            access: access.to_string(),
        }
    }
}

/// The kernel's `isspace` (HT, LF, VT, FF, CR, space, Latin-1 NBSP).
fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0xa0)
}

/// The kernel's view of a write: cut at NUL, then `strstrip`.
fn stripped(text: &str) -> &[u8] {
    let b = text.as_bytes();
    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    let start = b.iter().position(|&c| !is_space(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| !is_space(c))
        .map_or(start, |i| i + 1);
    &b[start..end]
}

/// Canonical `rwm`-ordered letters of an access set.
pub(crate) fn letters(access: Access) -> String {
    let mut s = String::new();
    for (bit, ch) in [
        (Access::READ, 'r'),
        (Access::WRITE, 'w'),
        (Access::MKNOD, 'm'),
    ] {
        if access.contains(bit) {
            s.push(ch);
        }
    }
    s
}

/// A number field of a `b`/`c` text: `*` is absent, digits are the value
/// the kernel parsed (even 4294967295).
fn literal(first: Option<u8>, parsed: u32) -> Option<i64> {
    match first {
        Some(b'*') => None,
        Some(c) if c.is_ascii_digit() => Some(i64::from(parsed)),
        // Text and parse disagree (a hand-built Rule): trust the parse.
        _ if parsed == WILDCARD => None,
        _ => Some(i64::from(parsed)),
    }
}

/// `a MAJ:MIN [ACCESS]` after the `a`, or `None` for any other shape.
fn oci_shaped_all(rest: &[u8]) -> Option<(Option<i64>, Option<i64>, String)> {
    if !rest.first().copied().is_some_and(is_space) {
        return None;
    }
    let tokens: Vec<&[u8]> = rest
        .split(|&c| is_space(c))
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() || tokens.len() > 2 {
        return None;
    }
    let text = std::str::from_utf8(tokens[0]).ok()?;
    let (maj, min) = text.split_once(':')?;
    let num = |s: &str| -> Option<Option<i64>> {
        if s == "*" {
            Some(None)
        } else {
            s.parse::<i64>().ok().map(Some)
        }
    };
    let access = match tokens.get(1) {
        Some(t) => String::from_utf8_lossy(t).into_owned(),
        None => String::new(),
    };
    Some((num(maj)?, num(min)?, access))
}

/// The OCI entry equivalent to one rule (see the module documentation).
pub(crate) fn oci_device(rule: &Rule) -> OciDevice {
    let allow = rule.kind == RuleKind::Allow;
    let s = stripped(&rule.text);
    match rule.parsed {
        V1Text::Exception(ex) => {
            let major = literal(s.get(2).copied(), ex.major);
            let minor_at = s.iter().skip(2).position(|&c| c == b':').map(|p| p + 2 + 1);
            let minor = literal(minor_at.and_then(|i| s.get(i).copied()), ex.minor);
            OciDevice {
                allow,
                ty: ex.ty.as_char(),
                major,
                minor,
                access: letters(ex.access),
            }
        }
        V1Text::All => match s.first().and_then(|_| oci_shaped_all(&s[1..])) {
            Some((major, minor, access)) => OciDevice {
                allow,
                ty: 'a',
                major,
                minor,
                access,
            },
            None => OciDevice::new(allow, 'a', None, None, "rwm"),
        },
    }
}

pub(crate) fn oci_devices(rules: &[Rule]) -> Vec<OciDevice> {
    rules.iter().map(oci_device).collect()
}

/// `BPF_DEVCG_DEV_*` of a type letter (callers decide what `a` means).
pub(crate) fn dev_type_code(ty: char) -> Option<i32> {
    DeviceType::from_char(ty).map(|t| t.code() as i32)
}

/// The prologue every modelled generator emits, instruction for instruction
/// (r2 type, r3 access, r4 major, r5 minor; 32-bit loads and ALU): the same
/// as devcg's own.
pub(crate) use crate::strategy::linear::load_context;

/// One rule block in the shape the three generators share. Every test that
/// is present jumps to the next block when it fails; all jumps are 64-bit
/// `JMP` (class 0x05), so immediates are sign-extended against registers
/// that hold zero-extended 32-bit values.
pub(crate) struct Block {
    /// `if r2 != type goto next`
    pub ty: Option<i32>,
    /// `w1 = w3; w1 &= access; if r1 != r3 goto next` (request ⊆ access)
    pub access: Option<i32>,
    /// `if r4 != major goto next`
    pub major: Option<i32>,
    /// `if r5 != minor goto next`
    pub minor: Option<i32>,
    /// `r0 = verdict` (64-bit mov) or `w0 = verdict` (32-bit mov), then exit.
    pub verdict: i32,
    pub mov: Width,
}

pub(crate) fn emit_block(a: &mut Asm, b: &Block) {
    let next = a.new_label();
    if let Some(ty) = b.ty {
        a.jmp_imm(Width::W64, Cond::Ne, R2, ty, next);
    }
    if let Some(access) = b.access {
        a.mov_reg(Width::W32, R1, R3);
        a.alu_imm(Width::W32, op::AND, R1, access);
        a.jmp_reg(Width::W64, Cond::Ne, R1, R3, next);
    }
    if let Some(major) = b.major {
        a.jmp_imm(Width::W64, Cond::Ne, R4, major, next);
    }
    if let Some(minor) = b.minor {
        a.jmp_imm(Width::W64, Cond::Ne, R5, minor, next);
    }
    a.mov_imm(b.mov, R0, b.verdict);
    a.exit();
    a.bind(next);
}

/// `r0 = verdict; exit` with the given mov width.
pub(crate) fn emit_return(a: &mut Asm, mov: Width, verdict: i32) {
    a.mov_imm(mov, R0, verdict);
    a.exit();
}

/// Stands in for "the runtime attaches no device program": the cgroup then
/// adds no BPF verdict of its own, as if it carried `r0 = 1; exit`.
pub(crate) fn nothing_attached() -> Program {
    let mut a = Asm::new();
    emit_return(&mut a, Width::W64, 1);
    Program::new(a.finish().expect("no labels"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleFile;
    use rstest::rstest;

    fn one(file: &str, text: &str) -> OciDevice {
        let rules = RuleFile::parse(file, text).expect("valid rules");
        assert_eq!(rules.len(), 1);
        oci_device(&rules[0])
    }

    #[rstest]
    #[case("allow c 1:3 rwm", OciDevice::new(true, 'c', Some(1), Some(3), "rwm"))]
    #[case("deny b *:* mr", OciDevice::new(false, 'b', None, None, "rm"))]
    #[case(
        "allow c 4294967295:* r",
        OciDevice::new(true, 'c', Some(4294967295), None, "r")
    )]
    #[case("allow c 01:*\tw", OciDevice::new(true, 'c', Some(1), None, "w"))]
    #[case("allow c 1:3 rwmx", OciDevice::new(true, 'c', Some(1), Some(3), "rwm"))]
    #[case("deny a", OciDevice::new(false, 'a', None, None, "rwm"))]
    #[case("allow all the things", OciDevice::new(true, 'a', None, None, "rwm"))]
    #[case("deny a *:* r", OciDevice::new(false, 'a', None, None, "r"))]
    #[case("deny a 1:-5 rw", OciDevice::new(false, 'a', Some(1), Some(-5), "rw"))]
    fn v1_lines(#[case] line: &str, #[case] want: OciDevice) {
        assert_eq!(one("t", line), want);
    }

    #[rstest]
    #[case(r#"[{"allow":false}]"#, OciDevice::new(false, 'a', None, None, ""))]
    #[case(
        r#"[{"allow":true,"access":"rwm"}]"#,
        OciDevice::new(true, 'a', None, None, "rwm")
    )]
    #[case(
        r#"[{"allow":false,"type":"a","major":1,"access":"r"}]"#,
        OciDevice::new(false, 'a', Some(1), None, "r")
    )]
    #[case(
        r#"[{"allow":true,"type":"c","major":-1,"minor":2,"access":"w"}]"#,
        OciDevice::new(true, 'c', None, Some(2), "w")
    )]
    #[case(
        r#"[{"allow":true,"type":"b","major":2147483648,"access":"m"}]"#,
        OciDevice::new(true, 'b', Some(2147483648), None, "m")
    )]
    fn oci_entries(#[case] json: &str, #[case] want: OciDevice) {
        assert_eq!(one("t.json", json), want);
    }

    #[test]
    fn canonical_texts_round_trip() {
        let rule = Rule::from_parsed(
            RuleKind::Allow,
            V1Text::Exception(crate::Exception {
                ty: DeviceType::Char,
                major: WILDCARD,
                minor: 7,
                access: Access(3),
            }),
        );
        assert_eq!(
            oci_device(&rule),
            OciDevice::new(true, 'c', None, Some(7), "rm")
        );
    }
}
