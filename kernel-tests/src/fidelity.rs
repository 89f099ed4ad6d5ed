//! The emulator against the kernel on random device programs.
//!
//! Programs are loop-free (forward jumps only) and read the context with
//! narrow and full-width loads, compute with ALU32 and ALU64 operations
//! (immediates of every sign, register operands, divisions, shifts, byte
//! swaps, sign-extending moves), branch on JMP and JMP32 conditions, and
//! return a computed bit (`r0 = rX & 1`) or a constant. A few deliberately
//! break a verifier rule, to compare what each side refuses. Every program
//! the kernel loads is attached to its own scratch cgroup and probed on
//! realizable, driverless devices chosen for their bit patterns; the
//! emulator must give the kernel's verdict on every probe.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use devcg_emulator::Emulator;
use devcg_engine::asm::{Asm, Cond, Label, Size, Width};
use devcg_engine::disasm::disassemble;
use devcg_engine::insn::{op, Insn, Program, Reg, R0, R1};
use devcg_engine::{DeviceType, Request, Verdict};
use serde::Serialize;

use crate::bpf::{self, AttachFlags, BpfError};
use crate::device::{Device, Drivers};
use crate::error::KernelError;
use crate::v2::{Cgroup, Scratch};
use devcg_differential::rng::Rng;

/// Programs attached and probed per forked child.
const BATCH: usize = 16;
const EXAMPLES: usize = 5;

#[derive(Clone, Debug, Default, Serialize)]
pub struct FidelityReport {
    pub seed: u64,
    pub programs: u64,
    /// Programs the kernel loaded (and that were attached and probed).
    pub loaded: u64,
    pub kernel_refusals: u64,
    /// Verifier reasons, numbers stripped, with how often each came.
    pub kernel_refusal_reasons: BTreeMap<String, u64>,
    /// Loaded by the kernel, refused by the emulator (allowed, but counted).
    pub emulator_refusals: u64,
    pub emulator_refusal_reasons: BTreeMap<String, u64>,
    /// Refused by the kernel but accepted by the emulator's verifier.
    pub emulator_accepts_kernel_refuses: u64,
    pub emulator_accepts_examples: Vec<String>,
    /// Kernel verdicts compared with the emulator's.
    pub probes: u64,
    /// Probes with no verdict from the kernel (not compared).
    pub unexpected: u64,
    pub divergences: Vec<Divergence>,
    pub divergent_programs: u64,
}

/// One probe where the emulator and the kernel disagree.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    /// bpftool-style listing.
    pub program: String,
    /// The raw instructions, 16 hex digits each (code, regs, off, imm as
    /// the kernel lays them out).
    pub raw: Vec<String>,
    pub request: Request,
    pub kernel: Verdict,
    /// The emulator's verdict, or its error.
    pub emulator: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: kernel {}, emulator {}",
            self.request, self.kernel, self.emulator
        )?;
        write!(f, "{}", self.program)?;
        writeln!(f, "raw: {}", self.raw.join(" "))
    }
}

/// Devices whose numbers exercise bit patterns (sign bits of bytes and
/// halves, 12/20-bit limits); those with a driver here are dropped.
fn devices(drivers: &Drivers) -> Vec<Device> {
    let majors = [
        0u32, 2, 3, 0x7f, 0x80, 0xff, 0x100, 0x7ff, 0x800, 0xffe, 0xfff,
    ];
    let minors = [
        0u32, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x10000, 0x80000, 0xfffff,
    ];
    let mut out = Vec::new();
    for (i, ty) in DeviceType::ALL.into_iter().enumerate() {
        for (j, &major) in majors.iter().enumerate() {
            // A diagonal and a few more, not the whole product.
            for k in [j, (j + 3 + i) % minors.len(), (j * 5 + 1) % minors.len()] {
                let d = Device::new(ty, major, minors[k]);
                if drivers.probeable(d).is_ok() && !out.contains(&d) {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// Value registers: r1 holds the context throughout, r10 is the frame.
const REGS: [u8; 8] = [2, 3, 4, 5, 6, 7, 8, 9];

fn imm(rng: &mut Rng) -> i32 {
    const SPECIAL: [i32; 20] = [
        0,
        1,
        -1,
        2,
        -2,
        7,
        16,
        31,
        32,
        63,
        0xff,
        0xffff,
        0x1_0000,
        0xfff,
        0x1000,
        0xf_ffff,
        i32::MAX,
        i32::MIN,
        -0x8000,
        0x7f,
    ];
    match rng.below(4) {
        0 => rng.next_u32() as i32,
        1 => (rng.below(512) as i32) - 256,
        _ => rng.pick(&SPECIAL),
    }
}

fn reg(rng: &mut Rng) -> Reg {
    Reg(rng.pick(&REGS))
}

fn width(rng: &mut Rng) -> Width {
    if rng.chance(1, 2) {
        Width::W32
    } else {
        Width::W64
    }
}

fn class(w: Width) -> u8 {
    match w {
        Width::W32 => op::ALU,
        Width::W64 => op::ALU64,
    }
}

/// A context load into `dst`: full words of every field, narrow loads of
/// `access_type`; rarely one the kernel refuses (narrow on major or minor,
/// 8 bytes, misaligned, out of range).
fn ctx_load(a: &mut Asm, rng: &mut Rng, dst: Reg, invalid: bool) {
    if invalid {
        let (size, off) = rng.pick(&[
            (Size::B, 4i16),
            (Size::H, 8),
            (Size::DW, 0),
            (Size::W, 2),
            (Size::W, 12),
            (Size::H, 1),
        ]);
        a.ldx(size, dst, R1, off);
        return;
    }
    let (size, off) = rng.pick(&[
        (Size::W, 0i16),
        (Size::W, 4),
        (Size::W, 8),
        (Size::W, 4),
        (Size::W, 8),
        (Size::B, 0),
        (Size::B, 1),
        (Size::B, 2),
        (Size::B, 3),
        (Size::H, 0),
        (Size::H, 2),
    ]);
    a.ldx(size, dst, R1, off);
}

/// One ALU instruction on `dst`.
fn alu(a: &mut Asm, rng: &mut Rng, invalid: bool, v4: bool) {
    let w = width(rng);
    let dst = reg(rng);
    let bits = if w == Width::W32 { 32 } else { 64 };
    const OPS: [u8; 12] = [
        op::ADD,
        op::SUB,
        op::MUL,
        op::DIV,
        op::OR,
        op::AND,
        op::LSH,
        op::RSH,
        op::MOD,
        op::XOR,
        op::MOV,
        op::ARSH,
    ];
    // cpu v4 instructions (bswap, movsx, sdiv/smod) only in v4 programs:
    // the emulator may refuse them, which would hide the rest.
    let pick = match rng.below(14) {
        7 | 8 if !v4 => 9,
        n => n,
    };
    match pick {
        // Register operand (division by a zero register is defined).
        0..=4 => {
            let operation = rng.pick(&OPS);
            let src = reg(rng);
            a.alu_reg(w, operation, dst, src);
        }
        5 => {
            a.raw(Insn::new(class(w) | op::NEG, dst.0, 0, 0, 0));
        }
        // Byte order: to-le/to-be (ALU) and unconditional swap (ALU64, v4).
        6 => {
            let size = rng.pick(&[16, 32, 64]);
            let code = match rng.below(if v4 { 3 } else { 2 }) {
                0 => op::ALU | op::END | op::K,
                1 => op::ALU | op::END | op::X,
                _ => op::ALU64 | op::END | op::K,
            };
            a.raw(Insn::new(code, dst.0, 0, 0, size));
        }
        // v4: sign-extending moves and signed division/modulo.
        7 => {
            let src = reg(rng);
            let off = if w == Width::W32 {
                rng.pick(&[8i16, 16])
            } else {
                rng.pick(&[8i16, 16, 32])
            };
            a.raw(Insn::new(class(w) | op::MOV | op::X, dst.0, src.0, off, 0));
        }
        8 => {
            let operation = rng.pick(&[op::DIV, op::MOD]);
            if rng.chance(1, 2) {
                let src = reg(rng);
                a.raw(Insn::new(class(w) | operation | op::X, dst.0, src.0, 1, 0));
            } else {
                let mut k = imm(rng);
                if k == 0 {
                    k = -3;
                }
                a.raw(Insn::new(class(w) | operation | op::K, dst.0, 0, 1, k));
            }
        }
        // Immediate operand of any sign.
        _ => {
            let operation = rng.pick(&OPS);
            let mut k = imm(rng);
            match operation {
                op::LSH | op::RSH | op::ARSH => {
                    k = if invalid {
                        rng.pick(&[bits, bits + 1, -1])
                    } else {
                        rng.below(bits as u64) as i32
                    }
                }
                op::DIV | op::MOD if k == 0 && !invalid => k = 1,
                _ => {}
            }
            a.alu_imm(w, operation, dst, k);
        }
    }
}

const CONDS: [Cond; 11] = [
    Cond::Eq,
    Cond::Ne,
    Cond::Gt,
    Cond::Ge,
    Cond::Lt,
    Cond::Le,
    Cond::Sgt,
    Cond::Sge,
    Cond::Slt,
    Cond::Sle,
    Cond::Set,
];

/// `r0 = (src & 1)` or a constant, then exit.
fn exit(a: &mut Asm, rng: &mut Rng, invalid: bool) {
    if invalid {
        // r0 unbounded at exit: the kernel refuses.
        let src = reg(rng);
        a.mov_reg(Width::W64, R0, src);
        a.exit();
        return;
    }
    match rng.below(4) {
        0 => {
            a.ret(rng.below(2) as i32);
        }
        _ => {
            let w = width(rng);
            let src = reg(rng);
            a.mov_reg(w, R0, src);
            a.alu_imm(w, op::AND, R0, 1);
            a.exit();
        }
    }
}

/// A random program and whether it was built to break a verifier rule.
pub fn program(rng: &mut Rng) -> (Program, bool) {
    let invalid = rng.chance(1, 10);
    let v4 = rng.chance(1, 5);
    // Which part breaks the rule, if any.
    let breaks = if invalid { rng.below(3) } else { 9 };
    let mut a = Asm::new();
    // Every value register is written before any jump, so every path
    // reads initialized registers.
    for r in REGS {
        if rng.chance(2, 3) {
            ctx_load(&mut a, rng, Reg(r), false);
        } else if rng.chance(1, 2) {
            a.mov_imm(width(rng), Reg(r), imm(rng));
        } else {
            a.lddw(Reg(r), rng.next_u64());
        }
    }
    let segments = 2 + rng.below(6) as usize;
    let labels: Vec<Label> = (0..=segments).map(|_| a.new_label()).collect();
    let bad_at = rng.below(segments as u64) as usize;
    for (seg, label) in labels.iter().enumerate().take(segments) {
        a.bind(*label);
        for _ in 0..1 + rng.below(5) {
            match rng.below(10) {
                0..=1 => {
                    let dst = reg(rng);
                    ctx_load(&mut a, rng, dst, breaks == 0 && seg == bad_at);
                }
                _ => alu(&mut a, rng, breaks == 1 && seg == bad_at, v4),
            }
        }
        // A conditional jump to some later segment (or the last exit); to
        // the next one when this segment ends in an exit, so that every
        // segment stays reachable (the kernel refuses unreachable code).
        let early_exit = rng.chance(1, 4);
        let target = if early_exit {
            labels[seg + 1]
        } else {
            labels[seg + 1 + rng.below((segments - seg) as u64) as usize]
        };
        let w = width(rng);
        let cond = rng.pick(&CONDS);
        let dst = reg(rng);
        if rng.chance(1, 2) {
            a.jmp_imm(w, cond, dst, imm(rng), target);
        } else {
            let src = reg(rng);
            a.jmp_reg(w, cond, dst, src, target);
        }
        if early_exit {
            exit(&mut a, rng, false);
        }
    }
    a.bind(labels[segments]);
    exit(&mut a, rng, breaks == 2);
    let insns = a.finish().expect("labels bound, forward jumps");
    (Program::new(insns), invalid)
}

/// Numbers in a verifier message replaced by `N`, so that reasons group.
fn reason_class(line: &str) -> String {
    let mut out = String::new();
    let mut in_num = false;
    for ch in line.chars() {
        if ch.is_ascii_digit() {
            if !in_num {
                out.push('N');
            }
            in_num = true;
        } else {
            in_num = false;
            out.push(ch);
        }
    }
    out
}

fn raw(p: &Program) -> Vec<String> {
    p.insns
        .iter()
        .map(|i| {
            i.encode()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        })
        .collect()
}

/// A loaded program waiting for its probes.
struct Pending {
    program: Program,
    emulator: Result<Emulator, String>,
    cgroup: Cgroup,
    _loaded: bpf::LoadedProgram,
}

/// Loads `programs` random programs into the kernel and compares every
/// probed verdict with the emulator's.
pub fn fidelity(programs: u64, seed: u64) -> Result<FidelityReport, KernelError> {
    if let Some(why) = crate::v2::skip_reason() {
        return Err(KernelError::Unavailable(why));
    }
    let mut scratch = Scratch::new()?.ok_or(KernelError::NoCgroup2)?;
    let devices = devices(scratch.drivers());
    let mut rng = Rng::new(seed);
    let mut report = FidelityReport {
        seed,
        ..FidelityReport::default()
    };
    let mut pending: Vec<Pending> = Vec::new();
    for n in 0..programs {
        let (program, _invalid) = program(&mut rng);
        report.programs += 1;
        let emulator = Emulator::new(&program).map_err(|e| e.to_string());
        match bpf::load(&program, "devcg_fidelity") {
            Ok(loaded) => {
                report.loaded += 1;
                if let Err(e) = &emulator {
                    report.emulator_refusals += 1;
                    *report
                        .emulator_refusal_reasons
                        .entry(reason_class(e))
                        .or_default() += 1;
                }
                let cgroup = scratch.mkdir(&format!("f{n}"))?;
                scratch.attach(&cgroup, &loaded, AttachFlags::NONE)?;
                pending.push(Pending {
                    program,
                    emulator,
                    cgroup,
                    _loaded: loaded,
                });
            }
            Err(BpfError::Load { first_error, .. }) => {
                report.kernel_refusals += 1;
                *report
                    .kernel_refusal_reasons
                    .entry(reason_class(&first_error))
                    .or_default() += 1;
                if emulator.is_ok() {
                    report.emulator_accepts_kernel_refuses += 1;
                    if report.emulator_accepts_examples.len() < EXAMPLES {
                        report.emulator_accepts_examples.push(format!(
                            "kernel: {first_error}\n{}",
                            disassemble(&program.insns)
                        ));
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        if pending.len() == BATCH || (n + 1 == programs && !pending.is_empty()) {
            flush(&mut scratch, &devices, &mut pending, &mut report)?;
        }
    }
    Ok(report)
}

/// Probes every pending program from one child, compares, removes their
/// cgroups.
fn flush(
    scratch: &mut Scratch,
    devices: &[Device],
    pending: &mut Vec<Pending>,
    report: &mut FidelityReport,
) -> Result<(), KernelError> {
    let groups: Vec<(&Cgroup, &[Device])> = pending.iter().map(|p| (&p.cgroup, devices)).collect();
    let results = scratch.probe_many(&groups)?;
    for (p, probes) in pending.iter().zip(&results) {
        let mut diverged = false;
        for probe in probes {
            let Some(kernel) = probe.outcome.verdict() else {
                report.unexpected += 1;
                continue;
            };
            let Ok(emu) = &p.emulator else { continue };
            report.probes += 1;
            let got = emu.run(&probe.request);
            if got.as_ref().ok() != Some(&kernel) {
                diverged = true;
                if report.divergences.len() < 50 {
                    report.divergences.push(Divergence {
                        program: disassemble(&p.program.insns),
                        raw: raw(&p.program),
                        request: probe.request,
                        kernel,
                        emulator: match got {
                            Ok(v) => v.to_string(),
                            Err(e) => format!("error: {e}"),
                        },
                    });
                }
            }
        }
        report.divergent_programs += u64::from(diverged);
    }
    for p in pending.drain(..) {
        scratch.rmdir(p.cgroup)?;
    }
    Ok(())
}

/// A summary for humans: counts, reasons, the first divergences.
pub fn summary(r: &FidelityReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "emulator fidelity: seed {:#x}, {} programs, {} loaded, {} refused by the kernel \
         ({} of those accepted by the emulator), {} loaded but refused by the emulator, \
         {} probes compared, {} unexpected, {} divergences in {} programs",
        r.seed,
        r.programs,
        r.loaded,
        r.kernel_refusals,
        r.emulator_accepts_kernel_refuses,
        r.emulator_refusals,
        r.probes,
        r.unexpected,
        r.divergences.len(),
        r.divergent_programs
    );
    for (why, n) in &r.kernel_refusal_reasons {
        let _ = writeln!(out, "  kernel refused {n}x: {why}");
    }
    for (why, n) in &r.emulator_refusal_reasons {
        let _ = writeln!(out, "  emulator refused {n}x (kernel loaded): {why}");
    }
    for ex in &r.emulator_accepts_examples {
        let _ = writeln!(out, "  emulator accepted, {ex}");
    }
    for d in r.divergences.iter().take(5) {
        let _ = writeln!(out, "  divergence {d}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_loop_free_and_end_in_exit() {
        let mut rng = Rng::new(3);
        for _ in 0..500 {
            let (p, _) = program(&mut rng);
            let last = p.insns.last().unwrap();
            assert_eq!(last.code, op::JMP | op::EXIT);
            for i in &p.insns {
                if matches!(op::class(i.code), op::JMP | op::JMP32)
                    && op::operation(i.code) != op::EXIT
                    && op::operation(i.code) != op::CALL
                {
                    assert!(i.off >= 0, "backward jump");
                }
            }
        }
    }

    #[test]
    fn reasons_group_without_numbers() {
        assert_eq!(
            reason_class("R3 invalid mem access 'scalar' at 12"),
            "RN invalid mem access 'scalar' at N"
        );
    }
}
