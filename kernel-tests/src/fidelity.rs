//! The emulator against the kernel on random device programs.
//!
//! Programs come from `devcg_differential::programs` ([`space`]): loop-free
//! (forward jumps and early exits), they read the context with narrow and
//! full-width loads, use the stack, compute with ALU32 and ALU64 operations
//! (immediates of every sign, register operands, divisions, shifts, byte
//! swaps, cpu-v4 sign-extending moves, loads and signed divisions), branch
//! on JMP and JMP32 conditions (and `gotol`), run atomics on the stack,
//! call helpers and subprograms, loop under `may_goto`, and return a
//! computed bit or a constant. A few deliberately break a verifier rule, to
//! compare what each side refuses. The emulator runs each probe as the
//! probing child calls: uid and gid 0, the cgroup id of the program's
//! scratch cgroup; a verdict it finds nondeterministic (time, random
//! numbers) is counted, not compared.
//! Every program the kernel loads is attached to its own scratch cgroup and
//! probed on realizable, driverless devices chosen for their bit patterns;
//! the emulator must give the kernel's verdict on every probe.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use devcg_differential::gen::Draw;
use devcg_differential::programs::{shapes, Item, ProgramSpace, Shape};
use devcg_emulator::{Caller, EmuError, Emulator};
use devcg_engine::disasm::disassemble;
use devcg_engine::insn::Program;
use devcg_engine::{DeviceType, Request, Verdict};
use serde::Serialize;

use crate::bpf::{self, AttachFlags, BpfError};
use crate::device::{Device, Drivers};
use crate::error::KernelError;
use crate::v2::{Cgroup, Scratch};

/// Programs attached and probed per forked child.
const BATCH: usize = 16;
const EXAMPLES: usize = 5;

#[derive(Clone, Debug, Default, Serialize)]
pub struct FidelityReport {
    pub seed: u64,
    pub programs: u64,
    /// Programs built to break one verifier rule.
    pub breaching: u64,
    /// Of those, loaded by the kernel: the generator was wrong about a rule.
    pub breaching_loaded: u64,
    pub breaching_loaded_examples: Vec<String>,
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
    /// The kernel's reasons for those.
    pub emulator_accepts_reasons: BTreeMap<String, u64>,
    pub emulator_accepts_examples: Vec<String>,
    /// Per instruction class (a program counts once for each class it
    /// holds): programs, loaded by the kernel, of those refused by the
    /// emulator.
    pub classes: BTreeMap<String, ClassCount>,
    /// Kernel verdicts compared with the emulator's.
    pub probes: u64,
    /// Probes where the emulator found the verdict nondeterministic (it
    /// depends on the time, a random number, the CPU or the pid): not
    /// compared.
    pub nondeterministic: u64,
    /// Probes with no verdict from the kernel (not compared).
    pub unexpected: u64,
    pub divergences: Vec<Divergence>,
    pub divergent_programs: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ClassCount {
    pub programs: u64,
    pub loaded: u64,
    pub emulator_refused: u64,
}

/// The classes of instructions a shape holds, for [`ClassCount`]s.
fn classes(shape: &Shape) -> Vec<String> {
    let mut out: Vec<String> = shape
        .items
        .iter()
        .filter_map(|i| {
            Some(match i {
                Item::SDiv { .. } => "sdiv/smod".to_string(),
                Item::MovSx { .. } => "movsx".to_string(),
                Item::Bswap { .. } => "bswap".to_string(),
                Item::Ldsx { .. } => "ldsx".to_string(),
                Item::CtxLoadSx { .. } => "ldsx from the context".to_string(),
                Item::Diamond { long: true, .. } => "gotol".to_string(),
                Item::Atomic { .. } => "atomic".to_string(),
                Item::Helper { id, .. } => format!(
                    "helper {}",
                    devcg_engine::insn::helper::name(*id).unwrap_or("?")
                ),
                Item::Call { .. } => "bpf-to-bpf call".to_string(),
                Item::MayGotoLoop { .. } => "may_goto".to_string(),
                Item::Privileged { kind, .. } => format!("privileged {kind:?}"),
                _ => return None,
            })
        })
        .collect();
    if out.is_empty() {
        out.push("base".to_string());
    }
    if let Some(b) = &shape.breach {
        let name = format!("{b:?}");
        let kind = name.split([' ', '{']).next().unwrap_or("").to_string();
        out.push(format!("breach {kind}"));
    }
    out.sort();
    out.dedup();
    out
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

/// The programs the kernel is asked to load: loop-free, every instruction
/// family; cpu v4 in about one in five, a breach of one verifier rule in
/// about one in ten (to compare what each side refuses).
pub fn space() -> ProgramSpace {
    ProgramSpace {
        v4: true,
        invalid: true,
        extended: true,
        max_items: 40,
        loops: false,
    }
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
    let strategy = shapes(&space());
    let mut draw = Draw::new(seed);
    let mut report = FidelityReport {
        seed,
        ..FidelityReport::default()
    };
    let mut pending: Vec<Pending> = Vec::new();
    for n in 0..programs {
        let shape = draw.value(&strategy);
        let program = shape.assemble();
        report.programs += 1;
        report.breaching += u64::from(shape.breaks_a_rule());
        let emulator = Emulator::new(&program).map_err(|e| e.to_string());
        let kinds = classes(&shape);
        let loaded = bpf::load(&program, "devcg_fidelity");
        for k in &kinds {
            let c = report.classes.entry(k.clone()).or_default();
            c.programs += 1;
            c.loaded += u64::from(loaded.is_ok());
            c.emulator_refused += u64::from(loaded.is_ok() && emulator.is_err());
        }
        match loaded {
            Ok(loaded) => {
                report.loaded += 1;
                if shape.breaks_a_rule() {
                    report.breaching_loaded += 1;
                    if report.breaching_loaded_examples.len() < EXAMPLES {
                        report.breaching_loaded_examples.push(format!(
                            "{:?}\n{}",
                            shape.breach,
                            disassemble(&program.insns)
                        ));
                    }
                }
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
                    *report
                        .emulator_accepts_reasons
                        .entry(reason_class(&first_error))
                        .or_default() += 1;
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
        // The probing child: root, in the program's scratch cgroup (whose
        // id is its directory's inode number).
        let caller = Caller {
            uid: Some(0),
            gid: Some(0),
            cgroup_id: std::fs::metadata(p.cgroup.path())
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m)),
        };
        for probe in probes {
            let Some(kernel) = probe.outcome.verdict() else {
                report.unexpected += 1;
                continue;
            };
            let Ok(emu) = &p.emulator else { continue };
            let got = emu.run_as(&probe.request, &caller).verdict;
            if let Err(EmuError::Nondeterministic { .. }) = got {
                report.nondeterministic += 1;
                continue;
            }
            report.probes += 1;
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
         {} probes compared, {} nondeterministic (not compared), {} unexpected, \
         {} divergences in {} programs; \
         {} built to break a verifier rule, {} of those loaded by the kernel",
        r.seed,
        r.programs,
        r.loaded,
        r.kernel_refusals,
        r.emulator_accepts_kernel_refuses,
        r.emulator_refusals,
        r.probes,
        r.nondeterministic,
        r.unexpected,
        r.divergences.len(),
        r.divergent_programs,
        r.breaching,
        r.breaching_loaded
    );
    for (why, n) in &r.kernel_refusal_reasons {
        let _ = writeln!(out, "  kernel refused {n}x: {why}");
    }
    for (why, n) in &r.emulator_refusal_reasons {
        let _ = writeln!(out, "  emulator refused {n}x (kernel loaded): {why}");
    }
    for (why, n) in &r.emulator_accepts_reasons {
        let _ = writeln!(out, "  emulator accepted {n}x (kernel refused): {why}");
    }
    for (class, c) in &r.classes {
        let _ = writeln!(
            out,
            "  class {class}: {} programs, {} loaded, {} of those refused by the emulator",
            c.programs, c.loaded, c.emulator_refused
        );
    }
    for ex in &r.breaching_loaded_examples {
        let _ = writeln!(out, "  kernel loaded a breach: {ex}");
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
    fn reasons_group_without_numbers() {
        assert_eq!(
            reason_class("R3 invalid mem access 'scalar' at 12"),
            "RN invalid mem access 'scalar' at N"
        );
    }
}
