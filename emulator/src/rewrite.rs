//! Turns a verified program into one rbpf's interpreter runs with the
//! kernel's semantics: every gap between the two is closed here by
//! rewriting, with all jump offsets re-resolved through the engine's
//! label-based assembler.
//!
//! * 64-bit `JEQ/JNE/JGT/JGE/JLT/JLE` against a negative immediate: rbpf
//!   zero-extends the immediate, the kernel sign-extends it. Each becomes a
//!   pair of signed jumps, whose immediates rbpf does sign-extend, so no
//!   scratch register is needed.
//! * 32-bit `MOD` by a register: on a zero divisor rbpf leaves the whole
//!   64-bit register, the kernel zero-extends it. A `w = w` follows.
//! * 64-bit `NEG`: rbpf negates with `-(x as i64)`, which panics on i64::MIN
//!   when overflow checks are on. It becomes `x ^= -1; x += 1`.
//! * Map loads (`lddw` with BPF_PSEUDO_MAP_FD) become a constant handle the
//!   helpers understand.
//! * cpu v4, where no scratch register is needed: `bswapN` becomes `beN`
//!   (rbpf runs on little-endian hosts only), `movsx` and `ldsx` a move or
//!   plain load and two shifts of the destination, `gotol` a `goto` with
//!   its offset re-resolved (far ones through the assembler's
//!   trampolines). sdiv/smod, atomics, calls and `may_goto` need the
//!   emulator's own interpreter (`step`).
//! * Loops: the program is laid out `copies` times; a back-edge in copy c
//!   jumps into copy c+1, and in the last copy to a block that returns a
//!   budget tag naming the jump. rbpf itself never loops.

use devcg_engine::asm::{Asm, AsmError, Cond, Label, Size, Width};
use devcg_engine::insn::{decode_all, op, Insn, Reg, R0};

use crate::decode::{self, Op, Src};
use crate::verify::Facts;
use crate::EmuError;

/// rbpf computes jump targets as `insn_ptr as i16 + off`: every slot index
/// must fit in an i16.
pub(crate) const MAX_SLOTS: usize = i16::MAX as usize;
/// Upper bound on loop copies (and so on back-edges taken per run).
pub(crate) const MAX_COPIES: usize = 1024;
/// `r1` for the map helpers: this tag plus the map's index.
pub(crate) const MAP_HANDLE: u64 = 0x4d41_5048_0000_0000;
/// `r0` of an over-budget exit: this tag plus the back-edge's instruction.
pub(crate) const BUDGET_TAG: u64 = 0x4255_4447_0000_0000;
pub(crate) const TAG_MASK: u64 = 0xffff_ffff_0000_0000;

pub(crate) struct Rewritten {
    pub insns: Vec<Insn>,
    /// Copies of the loop body laid out: back-edges may be taken
    /// `copies - 1` times in one run.
    pub copies: usize,
}

fn cond_of(operation: u8) -> Cond {
    match operation {
        op::JEQ => Cond::Eq,
        op::JNE => Cond::Ne,
        op::JGT => Cond::Gt,
        op::JGE => Cond::Ge,
        op::JLT => Cond::Lt,
        op::JLE => Cond::Le,
        op::JSGT => Cond::Sgt,
        op::JSGE => Cond::Sge,
        op::JSLT => Cond::Slt,
        op::JSLE => Cond::Sle,
        op::JSET => Cond::Set,
        _ => unreachable!("not a condition: {operation:#x}"),
    }
}

/// A 64-bit unsigned compare against a negative immediate: rbpf would
/// compare against the zero-extended value.
fn needs_sign_fix(o: &Op) -> bool {
    matches!(
        o,
        Op::Jcond { w64: true, cond: op::JEQ | op::JNE | op::JGT | op::JGE | op::JLT | op::JLE, src: Src::Imm(k), .. }
            if *k < 0
    )
}

/// Refuses early a program whose rewrite cannot fit rbpf's jump range,
/// before verifying it at length.
pub(crate) fn check_size(ops: &[Option<Op>]) -> Result<(), EmuError> {
    let slots: usize = ops.iter().flatten().map(emitted_len).sum();
    if slots > MAX_SLOTS {
        return Err(too_large(slots));
    }
    Ok(())
}

/// Slots an instruction takes once rewritten.
fn emitted_len(o: &Op) -> usize {
    match o {
        Op::Lddw { .. } => 2,
        Op::Alu {
            w64: false,
            operation: op::MOD,
            src: Src::Reg(_),
            ..
        } => 2,
        Op::Neg { w64: true, .. } => 2,
        Op::MovSx { .. } | Op::Ldsx { .. } => 3,
        o if needs_sign_fix(o) => 2,
        _ => 1,
    }
}

fn too_large(slots: usize) -> EmuError {
    EmuError::TooLarge {
        slots,
        limit: MAX_SLOTS,
    }
}

struct Emitter<'a> {
    asm: Asm,
    insns: &'a [Insn],
    /// Per copy, the label of each instruction laid out in it.
    labels: Vec<Vec<Option<Label>>>,
    /// Over-budget exit per loop edge source (None: not a loop edge).
    budget: Vec<Option<Label>>,
}

impl Emitter<'_> {
    /// Where a jump from `from` to `to` in copy `c` lands.
    fn target(&self, c: usize, from: usize, to: usize) -> Label {
        if self.budget[from].is_none() {
            self.labels[c][to].expect("targets of other jumps are laid out in the same copy")
        } else if c + 1 < self.labels.len() {
            self.labels[c + 1][to].expect("loop targets are laid out in every later copy")
        } else {
            self.budget[from].expect("budget exit")
        }
    }

    fn emit(&mut self, c: usize, i: usize, o: &Op) {
        let a = &mut self.asm;
        match *o {
            Op::Alu {
                w64: false,
                operation: op::MOD,
                dst,
                src: Src::Reg(_),
            } => {
                a.raw(self.insns[i]);
                // The kernel's fixup: `w mod 0` leaves w zero-extended.
                a.mov_reg(Width::W32, Reg(dst), Reg(dst));
            }
            Op::Neg { w64: true, dst } => {
                a.alu_imm(Width::W64, op::XOR, Reg(dst), -1);
                a.alu_imm(Width::W64, op::ADD, Reg(dst), 1);
            }
            Op::Lddw { dst, value, map } => {
                a.lddw(Reg(dst), map.map_or(value, |m| MAP_HANDLE | u64::from(m)));
            }
            // bswapN is be<N> on a little-endian host, where rbpf's be
            // swaps and zero-extends as the kernel's bswap does.
            Op::Bswap { bits, dst } => {
                a.raw(Insn::new(op::ALU | op::END | op::X, dst, 0, 0, bits as i32));
            }
            // Sign extension as two shifts of dst itself: no scratch
            // register. ALU32 shifts zero-extend, as the 32-bit movsx does.
            Op::MovSx {
                w64,
                bits,
                dst,
                src,
            } => {
                let (width, total) = if w64 {
                    (Width::W64, 64)
                } else {
                    (Width::W32, 32)
                };
                let shift = (total - bits) as i32;
                a.mov_reg(width, Reg(dst), Reg(src));
                a.alu_imm(width, op::LSH, Reg(dst), shift);
                a.alu_imm(width, op::ARSH, Reg(dst), shift);
            }
            Op::Ldsx {
                size,
                dst,
                src,
                off,
            } => {
                let shift = 64 - 8 * size as i32;
                let sz = match size {
                    1 => Size::B,
                    2 => Size::H,
                    _ => Size::W,
                };
                a.ldx(sz, Reg(dst), Reg(src), off);
                a.alu_imm(Width::W64, op::LSH, Reg(dst), shift);
                a.alu_imm(Width::W64, op::ARSH, Reg(dst), shift);
            }
            Op::Ja { target } => {
                let t = self.target(c, i, target);
                self.asm.ja(t);
            }
            Op::Jcond {
                w64,
                cond,
                dst,
                src,
                target,
            } => {
                let t = self.target(c, i, target);
                let a = &mut self.asm;
                let d = Reg(dst);
                if needs_sign_fix(o) {
                    let Src::Imm(k) = src else { unreachable!() };
                    // With k < 0 the kernel compares against 2^64 + k, which
                    // only values that are negative as i64 can reach, and
                    // among those unsigned order is signed order.
                    let fall = a.new_label();
                    match cond {
                        op::JEQ => {
                            a.jmp_imm(Width::W64, Cond::Slt, d, k, fall);
                            a.jmp_imm(Width::W64, Cond::Sle, d, k, t);
                        }
                        op::JNE => {
                            a.jmp_imm(Width::W64, Cond::Slt, d, k, t);
                            a.jmp_imm(Width::W64, Cond::Sgt, d, k, t);
                        }
                        op::JGT => {
                            a.jmp_imm(Width::W64, Cond::Sge, d, 0, fall);
                            a.jmp_imm(Width::W64, Cond::Sgt, d, k, t);
                        }
                        op::JGE => {
                            a.jmp_imm(Width::W64, Cond::Sge, d, 0, fall);
                            a.jmp_imm(Width::W64, Cond::Sge, d, k, t);
                        }
                        op::JLT => {
                            a.jmp_imm(Width::W64, Cond::Sge, d, 0, t);
                            a.jmp_imm(Width::W64, Cond::Slt, d, k, t);
                        }
                        op::JLE => {
                            a.jmp_imm(Width::W64, Cond::Sge, d, 0, t);
                            a.jmp_imm(Width::W64, Cond::Sle, d, k, t);
                        }
                        _ => unreachable!(),
                    }
                    a.bind(fall);
                } else {
                    let width = if w64 { Width::W64 } else { Width::W32 };
                    match src {
                        Src::Imm(k) => a.jmp_imm(width, cond_of(cond), d, k, t),
                        Src::Reg(s) => a.jmp_reg(width, cond_of(cond), d, Reg(s), t),
                    };
                }
            }
            // Everything else runs in rbpf exactly as in the kernel.
            _ => {
                a.raw(self.insns[i]);
            }
        }
    }
}

/// Instructions reachable from a loop edge's target without taking a loop
/// edge: what every copy after the first must contain.
fn loop_part(ops: &[Option<Op>], facts: &Facts) -> Vec<bool> {
    let mut is_loop_edge = vec![false; ops.len()];
    for &i in &facts.loop_edges {
        is_loop_edge[i] = true;
    }
    let mut inside = vec![false; ops.len()];
    let mut stack: Vec<usize> = facts
        .loop_edges
        .iter()
        .filter_map(|&i| ops[i].and_then(|o| o.jump_target()))
        .collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut inside[i], true) {
            continue;
        }
        let o = ops[i].expect("instruction");
        for s in o.successors(i).iter() {
            // A loop edge's jump leaves the copy; a conditional one's
            // fall-through stays.
            let leaves = is_loop_edge[i] && Some(s) == o.jump_target() && s != i + 1;
            if !leaves && s < ops.len() && !inside[s] {
                stack.push(s);
            }
        }
    }
    inside
}

pub(crate) fn rewrite(
    insns: &[Insn],
    ops: &[Option<Op>],
    facts: &Facts,
) -> Result<Rewritten, EmuError> {
    let n = ops.len();
    let size0: usize = ops.iter().flatten().map(emitted_len).sum();
    let inside = loop_part(ops, facts);
    let size_loop: usize = ops
        .iter()
        .zip(&inside)
        .filter(|(_, &x)| x)
        .filter_map(|(o, _)| o.as_ref())
        .map(emitted_len)
        .sum();
    let budget_slots = 3 * facts.loop_edges.len();
    let fixed = size0 + budget_slots;
    if fixed > MAX_SLOTS {
        return Err(too_large(fixed));
    }
    let copies = if facts.loop_edges.is_empty() {
        1
    } else {
        1 + ((MAX_SLOTS - fixed) / size_loop.max(1)).min(MAX_COPIES - 1)
    };
    let mut e = Emitter {
        asm: Asm::new(),
        insns,
        labels: Vec::with_capacity(copies),
        budget: vec![None; n],
    };
    for c in 0..copies {
        let mut row = vec![None; n];
        for i in 0..n {
            if ops[i].is_some() && (c == 0 || inside[i]) {
                row[i] = Some(e.asm.new_label());
            }
        }
        e.labels.push(row);
    }
    for &i in &facts.loop_edges {
        e.budget[i] = Some(e.asm.new_label());
    }
    for c in 0..copies {
        for (i, o) in ops.iter().enumerate() {
            let Some(label) = e.labels[c][i] else {
                continue;
            };
            let o = o.expect("labelled slots hold instructions");
            e.asm.bind(label);
            e.emit(c, i, &o);
        }
    }
    for &i in &facts.loop_edges {
        let label = e.budget[i].expect("budget label");
        e.asm.bind(label);
        e.asm.lddw(R0, BUDGET_TAG | i as u64);
        e.asm.exit();
    }
    let len = e.asm.len();
    if len > MAX_SLOTS {
        return Err(too_large(len));
    }
    let insns = e.asm.finish().map_err(|err| match err {
        AsmError::OutOfRange { .. } => too_large(len),
        other => EmuError::Runtime {
            message: format!("internal: assembler: {other}"),
        },
    })?;
    Ok(Rewritten { insns, copies })
}

/// rbpf's verifier for the rewritten program: the structural checks again
/// (every opcode one rbpf's interpreter implements, every jump in range),
/// plus the i16 bound of rbpf's jump arithmetic. It guards the rewriter:
/// values were verified on the original.
pub(crate) fn rbpf_verifier(prog: &[u8]) -> Result<(), std::io::Error> {
    let fail = |m: String| Err(std::io::Error::other(format!("[devcg verifier] {m}")));
    let insns = match decode_all(prog) {
        Ok(i) => i,
        Err(e) => return fail(e.to_string()),
    };
    if insns.len() > MAX_SLOTS {
        return fail(format!(
            "{} slots exceed rbpf's i16 jump arithmetic",
            insns.len()
        ));
    }
    // No map loads remain after relocation, hence no maps. Later loop
    // copies may be partly unreachable: harmless here.
    match decode::decode(&insns, 0, false) {
        Ok(_) => Ok(()),
        Err(e) => fail(e.to_string()),
    }
}
