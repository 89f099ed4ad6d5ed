//! The programs the checks attach (allow, deny, deny one device, run counter), counters read.

use devcg_engine::asm::{Asm, Cond, Size, Width};
use devcg_engine::insn::{helper, op, MapKind, MapSpec, Program, R0, R1, R10, R2, R3, R4, R5, R6};
use devcg_engine::{Access, DeviceType};

use crate::bpf::{self, LoadedProgram};
use crate::device::Device;
use crate::error::KernelError;

pub(super) const DEV: Device = Device {
    ty: DeviceType::Char,
    major: 100,
    minor: 1,
};

pub(super) fn dev(minor: u32) -> Device {
    Device::new(DeviceType::Char, 100, minor)
}

pub(super) fn ret(verdict: i32) -> Program {
    let mut a = Asm::new();
    a.ret(verdict);
    Program::new(a.finish().expect("no labels"))
}

/// Denies `dev` (any access, or only `access`), allows everything else.
pub(super) fn deny_device(dev: Device, access: Option<Access>) -> Program {
    let mut a = Asm::new();
    let allow = a.new_label();
    a.ldx(Size::W, R2, R1, 0);
    a.alu_imm(Width::W32, op::AND, R2, 0xffff);
    a.ldx(Size::W, R3, R1, 0);
    a.alu_imm(Width::W32, op::RSH, R3, 16);
    a.ldx(Size::W, R4, R1, 4);
    a.ldx(Size::W, R5, R1, 8);
    a.jmp_imm(Width::W32, Cond::Ne, R2, dev.ty.code() as i32, allow);
    a.jmp_imm(Width::W32, Cond::Ne, R4, dev.major as i32, allow);
    a.jmp_imm(Width::W32, Cond::Ne, R5, dev.minor as i32, allow);
    if let Some(acc) = access {
        a.jmp_imm(Width::W32, Cond::Ne, R3, i32::from(acc.bits()), allow);
    }
    a.ret(0);
    a.bind(allow);
    a.ret(1);
    Program::new(a.finish().expect("labels bound"))
}

/// Counts its runs per (type, access) in an array map of 16 u64 slots,
/// slot `(type - 1) * 8 + access`, then returns `verdict`.
pub(super) fn counter(verdict: i32) -> Program {
    let mut a = Asm::new();
    let out = a.new_label();
    a.mov_reg(Width::W64, R6, R1);
    a.ldx(Size::W, R2, R6, 0);
    a.mov_reg(Width::W32, R3, R2);
    a.alu_imm(Width::W32, op::AND, R3, 0xffff);
    a.alu_imm(Width::W32, op::RSH, R2, 16);
    a.alu_imm(Width::W32, op::SUB, R3, 1);
    a.alu_imm(Width::W32, op::LSH, R3, 3);
    a.alu_reg(Width::W32, op::ADD, R3, R2);
    a.stx(Size::W, R10, -4, R3);
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jmp_imm(Width::W64, Cond::Eq, R0, 0, out);
    a.ldx(Size::DW, R1, R0, 0);
    a.alu_imm(Width::W64, op::ADD, R1, 1);
    a.stx(Size::DW, R0, 0, R1);
    a.bind(out);
    a.ret(verdict);
    Program {
        insns: a.finish().expect("labels bound"),
        maps: vec![MapSpec {
            name: "devcg_count".into(),
            kind: MapKind::Array,
            key_size: 4,
            value_size: 8,
            max_entries: 16,
            entries: Vec::new(),
        }],
    }
}

/// The counter slot of a (type, access) pair.
fn slot(ty: DeviceType, access: Access) -> u32 {
    (ty.code() - 1) * 8 + u32::from(access.bits())
}

/// Non-zero counters: (type, access, runs).
type Counts = Vec<(DeviceType, Access, u64)>;

/// Every non-zero counter and their total.
pub(super) fn counts(prog: &LoadedProgram) -> Result<(Counts, u64), KernelError> {
    let mut out = Vec::new();
    let mut total = 0;
    for ty in DeviceType::ALL {
        for access in Access::every() {
            let key = slot(ty, access).to_ne_bytes();
            let v = bpf::map_lookup(&prog.maps[0], &key, 8)?
                .map_or(0, |v| u64::from_ne_bytes(v.try_into().expect("8 bytes")));
            if v != 0 {
                out.push((ty, access, v));
                total += v;
            }
        }
    }
    Ok((out, total))
}

pub(super) fn count_of(
    prog: &LoadedProgram,
    ty: DeviceType,
    access: Access,
) -> Result<u64, KernelError> {
    Ok(counts(prog)?
        .0
        .iter()
        .find(|(t, a, _)| *t == ty && *a == access)
        .map_or(0, |c| c.2))
}

pub(super) fn show_counts(prog: &LoadedProgram) -> Result<String, KernelError> {
    let (c, _) = counts(prog)?;
    if c.is_empty() {
        return Ok("no runs".into());
    }
    Ok(c.iter()
        .map(|(t, a, n)| {
            let acc = if a.is_empty() {
                "-".to_string()
            } else {
                a.to_string()
            };
            format!("{t} {acc}: {n}")
        })
        .collect::<Vec<_>>()
        .join(", "))
}

pub(super) fn load(p: &Program, name: &str) -> Result<LoadedProgram, KernelError> {
    Ok(bpf::load(p, name)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_slots_are_distinct() {
        let mut slots: Vec<u32> = DeviceType::ALL
            .iter()
            .flat_map(|&t| Access::every().map(move |a| slot(t, a)))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots, (0..16).collect::<Vec<_>>());
    }

    #[test]
    fn helper_programs_pass_the_emulator() {
        for p in [
            ret(0),
            ret(1),
            deny_device(DEV, None),
            deny_device(DEV, Some(Access::NONE)),
            counter(1),
        ] {
            devcg_emulator::Emulator::new(&p).expect("valid program");
        }
        let e = devcg_emulator::Emulator::new(&deny_device(DEV, None)).unwrap();
        assert_eq!(
            e.run(&DEV.request(Access::READ)).unwrap(),
            devcg_engine::Verdict::Deny
        );
        assert_eq!(
            e.run(&dev(2).request(Access::READ)).unwrap(),
            devcg_engine::Verdict::Allow
        );
    }
}
