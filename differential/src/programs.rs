//! Random cgroup device programs, for checking the emulator: against a
//! reference evaluator (the emulator's tests) and against the kernel
//! (kernel-tests' fidelity run). One generator, as proptest strategies over
//! a plain-data description ([`Shape`]) so that property tests shrink it;
//! [`crate::gen::Draw`] draws shapes from a seed.
//!
//! A shape initializes every value register ([`REGS`]), runs a list of
//! [`Item`]s (ALU and JMP/JMP32 of both widths, context and stack loads,
//! stack stores, `lddw`, forward jumps, early exits; cpu-v4 instructions
//! when asked), optionally as the body of a counted loop, and exits with a
//! constant or a computed bit. [`ProgramSpace`] says which families may
//! appear; with `invalid`, some shapes carry a [`Breach`] of one verifier
//! rule, placed so that every verifier meets it.

use devcg_engine::asm::{Asm, Cond, Label, Size, Width};
use devcg_engine::insn::{helper, op, Insn, Program, Reg, R0, R1, R10};
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};

/// Value registers: all but r1 (the context, throughout) and r10 (the
/// frame pointer).
pub const REGS: [u8; 9] = [0, 2, 3, 4, 5, 6, 7, 8, 9];

/// The counter of a counted loop; loop bodies never write it.
pub const COUNTER: u8 = 9;

/// Loop counts are drawn from `1..MAX_COUNT`.
pub const MAX_COUNT: u32 = 40;

/// Stack slots (r10-8 .. r10-8*SLOTS), zeroed by the prologue of any shape
/// that uses the stack, so that every load reads initialized bytes.
pub const SLOTS: i16 = 8;

/// Binary ALU operations (with MOV), register or immediate operand.
pub const ALU_OPS: [u8; 12] = [
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

pub const CONDS: [Cond; 11] = [
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

/// Immediates where ALU operations and comparisons go wrong: signs, byte
/// and half limits, shift widths, dev_t's 12- and 20-bit limits.
pub const SPECIAL_I32: [i32; 20] = [
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
    0x7f,
    0xff,
    0xffff,
    0x1_0000,
    0xfff,
    0x1000,
    0xf_ffff,
    i32::MAX,
    i32::MIN,
    -0x8000,
];

/// Context loads the kernel allows: full words of every field (major and
/// minor twice as often), narrow loads of `access_type`.
pub const CTX_LOADS: [(Size, i16); 11] = [
    (Size::W, 0),
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
];

/// Context loads the kernel refuses: narrow on major or minor, 8 bytes,
/// misaligned, out of range.
pub const BAD_CTX_LOADS: [(Size, i16); 6] = [
    (Size::B, 4),
    (Size::H, 8),
    (Size::DW, 0),
    (Size::W, 2),
    (Size::W, 12),
    (Size::H, 1),
];

/// Which programs [`shapes`] draws.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramSpace {
    /// cpu-v4 instructions (movsx, sdiv/smod, ALU64 bswap) in about one
    /// shape in five. The emulator refuses them today, so they are kept
    /// apart: a v4 shape would hide the rest of what it checks.
    pub v4: bool,
    /// A [`Breach`] of one verifier rule in about one shape in ten.
    pub invalid: bool,
    /// The classes beyond those: sign-extending loads, `gotol`, atomics
    /// on the stack, helper calls, bpf-to-bpf calls and `may_goto` loops
    /// (see [`Item::is_extended`]).
    pub extended: bool,
    /// Items per shape: `1..=max_items`.
    pub max_items: usize,
    /// Every shape is a counted loop: its items run `1..MAX_COUNT` times.
    pub loops: bool,
}

/// The second operand of an ALU operation, a comparison or a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    Imm(i32),
    Reg(u8),
}

/// A comparison `dst <cond> src` (JMP, or JMP32 when not `w64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Test {
    pub w64: bool,
    pub cond: Cond,
    pub dst: u8,
    pub src: Operand,
}

/// How a register is set before the items run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// `dst = *(size *)(r1 + off)`, one of [`CTX_LOADS`].
    Ctx {
        size: Size,
        off: i16,
    },
    Mov {
        w64: bool,
        imm: i32,
    },
    Lddw(u64),
}

/// How the program ends (at the end and at every early exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `r0 = value` (0 or 1)
    Const(i32),
    /// `r0 = (src >> shift) & 1`, in 32 or 64 bits (no shift when 0).
    Bit { w64: bool, src: u8, shift: i32 },
}

/// One instruction, or a few that belong together. Immediates are as
/// emitted: shifts in range, no division by a zero immediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// One of [`ALU_OPS`].
    Alu {
        w64: bool,
        operation: u8,
        dst: u8,
        src: Operand,
    },
    Neg {
        w64: bool,
        dst: u8,
    },
    /// Byte order (ALU class): to little endian, or to big endian.
    End {
        to_be: bool,
        bits: i32,
        dst: u8,
    },
    Lddw {
        dst: u8,
        value: u64,
    },
    /// One of [`CTX_LOADS`].
    CtxLoad {
        dst: u8,
        size: Size,
        off: i16,
    },
    /// `*(size *)(r10 + off) = src`, aligned, inside the zeroed slots.
    StackStore {
        size: Size,
        off: i16,
        src: Operand,
    },
    /// `dst = *(size *)(r10 + off)`, aligned, inside the zeroed slots.
    StackLoad {
        dst: u8,
        size: Size,
        off: i16,
    },
    /// `if test goto` the item `ahead` items on (or the end of the items).
    Jump {
        test: Test,
        ahead: usize,
    },
    /// `if test goto over; exit; over:` the jump keeps the code after the
    /// exit reachable (the kernel refuses unreachable code).
    EarlyExit {
        test: Test,
        exit: Exit,
    },
    /// cpu v4: `dst = (s8/s16/s32) src`, sign-extending.
    MovSx {
        w64: bool,
        dst: u8,
        src: u8,
        bits: i16,
    },
    /// cpu v4: signed division or modulo (`off` 1), nonzero immediates.
    SDiv {
        w64: bool,
        modulo: bool,
        dst: u8,
        src: Operand,
    },
    /// cpu v4: unconditional byte swap (ALU64 class).
    Bswap {
        bits: i32,
        dst: u8,
    },
    /// cpu v4: `dst = *(s8/s16/s32 *)(r1 + off)`, one of [`CTX_LOADS`].
    CtxLoadSx {
        dst: u8,
        size: Size,
        off: i16,
    },
    /// cpu v4: `dst = *(s8/s16/s32 *)(r10 + off)`, inside the zeroed slots.
    Ldsx {
        dst: u8,
        size: Size,
        off: i16,
    },
    /// `if test goto else; a; gotol end; else: b; end:` (cpu v4's 32-bit
    /// `gotol` when `long`, else `goto`).
    Diamond {
        test: Test,
        a: AluStep,
        b: AluStep,
        long: bool,
    },
    /// An atomic operation on a zeroed stack slot (`operation` one of
    /// [`ATOMIC_OPS`]; a fetch writes `src`, cmpxchg writes r0).
    Atomic {
        size: Size,
        operation: i32,
        off: i16,
        src: u8,
    },
    /// `call id; dst = r0`, then r1 (the context, saved on the stack by the
    /// prologue) and the clobbered r2-r5 are set again.
    Helper {
        id: i32,
        dst: u8,
    },
    /// A bpf-to-bpf call of subprogram `sub` (`SUBPROGS`) with r1-r5 as they
    /// are; `dst = r0` after, and r1-r5 set again as for a helper.
    Call {
        sub: u8,
        dst: u8,
    },
    /// `dst = n; top: may_goto out; dst -= 1; if dst != 0 goto top; out:`
    MayGotoLoop {
        dst: u8,
        n: i32,
    },
    /// What only a privileged loader may do; its values are addresses or
    /// leftovers, so verdicts built on them are nondeterministic.
    Privileged {
        kind: Privileged,
        dst: u8,
    },
}

/// The relaxed rules a root loader gets (allow_ptr_leaks,
/// allow_uninit_stack), one instruction pattern each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privileged {
    /// `dst = *(u32 *)(r10 - 128)`: stack never written.
    UninitLoad,
    /// `wDst = w10`: the low half of a pointer.
    PointerLow,
    /// `*(u64 *)(r10 - 80) = r10; *(u32 *)(r10 - 80) = 7; dst = *(u64 *)(r10 - 80)`:
    /// a spilled pointer partly overwritten, read back.
    PartialOverwrite,
    /// `if r10 > dst goto +0`: a pointer compared with a scalar.
    PointerCompare,
}

/// One ALU step of a [`Item::Diamond`] arm: `dst <op>= imm` (64-bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AluStep {
    pub operation: u8,
    pub dst: u8,
    pub imm: i32,
}

/// Atomic operations the generator draws (all four sizes W and DW).
pub const ATOMIC_OPS: [i32; 10] = [
    op::ATOMIC_ADD,
    op::ATOMIC_OR,
    op::ATOMIC_AND,
    op::ATOMIC_XOR,
    op::ATOMIC_ADD | op::ATOMIC_FETCH,
    op::ATOMIC_OR | op::ATOMIC_FETCH,
    op::ATOMIC_AND | op::ATOMIC_FETCH,
    op::ATOMIC_XOR | op::ATOMIC_FETCH,
    op::ATOMIC_XCHG,
    op::ATOMIC_CMPXCHG,
];

/// Helpers the generator calls: this program type has them on 6.18, none
/// writes memory, and their results are nondeterministic (time, random,
/// CPU, pid) or the caller's (uid/gid, cgroup id). `bpf_trace_printk` is
/// left out: loading it switches on a kernel-wide trace event.
pub const HELPERS: [i32; 6] = [
    helper::KTIME_GET_NS,
    helper::GET_PRANDOM_U32,
    helper::GET_SMP_PROCESSOR_ID,
    helper::GET_CURRENT_PID_TGID,
    helper::GET_CURRENT_UID_GID,
    helper::GET_CURRENT_CGROUP_ID,
];

/// Subprograms a [`Item::Call`] may call, laid out after the main
/// program: each reads its arguments r2 and r3 (scalars) and the context
/// through r1, uses its own stack frame, and returns a scalar.
pub const SUBPROGS: u8 = 3;

/// The stack slot (below the zeroed ones) where the prologue saves r1 for
/// helper and subprogram calls.
const CTX_SLOT: i16 = -8 * (SLOTS + 1);

impl Item {
    pub fn is_v4(&self) -> bool {
        matches!(
            self,
            Item::MovSx { .. } | Item::SDiv { .. } | Item::Bswap { .. }
        )
    }

    /// One of the classes [`ProgramSpace::extended`] adds.
    pub fn is_extended(&self) -> bool {
        matches!(
            self,
            Item::Ldsx { .. }
                | Item::CtxLoadSx { .. }
                | Item::Diamond { .. }
                | Item::Atomic { .. }
                | Item::Helper { .. }
                | Item::Call { .. }
                | Item::MayGotoLoop { .. }
                | Item::Privileged { .. }
        )
    }

    fn uses_stack(&self) -> bool {
        matches!(
            self,
            Item::StackStore { .. }
                | Item::StackLoad { .. }
                | Item::Ldsx { .. }
                | Item::Atomic { .. }
        )
    }

    fn calls(&self) -> bool {
        matches!(self, Item::Helper { .. } | Item::Call { .. })
    }
}

/// One broken verifier rule. The instruction ones come right after the
/// initialization, before any jump, and a bad return replaces every exit:
/// a verifier that prunes branches it can decide still meets the breach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breach {
    /// One of [`BAD_CTX_LOADS`].
    CtxLoad { dst: u8, size: Size, off: i16 },
    /// A shift by an immediate outside `0..width`.
    Shift {
        w64: bool,
        operation: u8,
        dst: u8,
        imm: i32,
    },
    /// Division or modulo by a zero immediate.
    DivByZero { w64: bool, modulo: bool, dst: u8 },
    /// Every exit returns `src | 1 << bit` (bit >= 1): never 0 or 1.
    Return { src: u8, bit: u8 },
    /// `dst = r10; dst -= 8`: subtraction from the stack pointer.
    StackSub { dst: u8 },
    /// `dst = r10; dst <<= 1`: a shift of a pointer.
    PointerShift { dst: u8 },
    /// `if r1 == 0 goto over; self: goto self; over:` an endless loop on
    /// the path every verifier takes (the context pointer is never NULL).
    EndlessLoop,
    /// Every exit returns `r0 = 64; r0 <<= r0`: a shift by a register of
    /// at least the width, an unknown value.
    WideShiftReturn,
}

/// A program, as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// One per register of [`REGS`], in order, before anything else: every
    /// path reads initialized registers.
    pub init: [Init; 9],
    pub items: Vec<Item>,
    pub exit: Exit,
    /// `Some(n)`: the items are a loop body run `n` times (at least once),
    /// counted down in [`COUNTER`].
    pub count: Option<u32>,
    pub breach: Option<Breach>,
}

fn width(w64: bool) -> Width {
    if w64 {
        Width::W64
    } else {
        Width::W32
    }
}

fn alu_class(w64: bool) -> u8 {
    if w64 {
        op::ALU64
    } else {
        op::ALU
    }
}

fn bytes(size: Size) -> i16 {
    match size {
        Size::B => 1,
        Size::H => 2,
        Size::W => 4,
        Size::DW => 8,
    }
}

impl Shape {
    /// Built to break a verifier rule: every verifier must refuse it.
    pub fn breaks_a_rule(&self) -> bool {
        self.breach.is_some()
    }

    /// Holds a cpu-v4 instruction.
    pub fn uses_v4(&self) -> bool {
        self.items.iter().any(Item::is_v4)
    }

    /// Holds an item of [`ProgramSpace::extended`].
    pub fn uses_extended(&self) -> bool {
        self.items.iter().any(Item::is_extended)
    }

    pub fn assemble(&self) -> Program {
        let mut a = Asm::new();
        for (&r, init) in REGS.iter().zip(&self.init) {
            match *init {
                Init::Ctx { size, off } => a.ldx(size, Reg(r), R1, off),
                Init::Mov { w64, imm } => a.mov_imm(width(w64), Reg(r), imm),
                Init::Lddw(v) => a.lddw(Reg(r), v),
            };
        }
        if self.items.iter().any(Item::uses_stack) {
            for slot in 1..=SLOTS {
                a.st_imm(Size::DW, R10, -8 * slot, 0);
            }
        }
        if self.items.iter().any(Item::calls) {
            a.stx(Size::DW, R10, CTX_SLOT, R1);
        }
        match self.breach {
            Some(Breach::CtxLoad { dst, size, off }) => {
                a.ldx(size, Reg(dst), R1, off);
            }
            Some(Breach::Shift {
                w64,
                operation,
                dst,
                imm,
            }) => {
                a.alu_imm(width(w64), operation, Reg(dst), imm);
            }
            Some(Breach::DivByZero { w64, modulo, dst }) => {
                let operation = if modulo { op::MOD } else { op::DIV };
                a.alu_imm(width(w64), operation, Reg(dst), 0);
            }
            Some(Breach::StackSub { dst }) => {
                a.mov_reg(Width::W64, Reg(dst), R10);
                a.alu_imm(Width::W64, op::SUB, Reg(dst), 8);
            }
            Some(Breach::PointerShift { dst }) => {
                a.mov_reg(Width::W64, Reg(dst), R10);
                a.alu_imm(Width::W64, op::LSH, Reg(dst), 1);
            }
            Some(Breach::EndlessLoop) => {
                let (over, spin) = (a.new_label(), a.new_label());
                a.jmp_imm(Width::W64, Cond::Eq, R1, 0, over);
                a.bind(spin);
                a.ja(spin);
                a.bind(over);
            }
            Some(Breach::Return { .. } | Breach::WideShiftReturn) | None => {}
        }
        let top = a.new_label();
        if let Some(n) = self.count {
            a.lddw(Reg(COUNTER), u64::from(n.max(1)));
        }
        a.bind(top);
        let n = self.items.len();
        let labels: Vec<Label> = (0..=n).map(|_| a.new_label()).collect();
        let subs: Vec<Option<Label>> = (0..SUBPROGS)
            .map(|k| {
                self.items
                    .iter()
                    .any(|i| matches!(i, Item::Call { sub, .. } if *sub == k))
                    .then(|| a.new_label())
            })
            .collect();
        for (p, item) in self.items.iter().enumerate() {
            a.bind(labels[p]);
            self.item(&mut a, item, &subs, labels[(p + 1).min(n)], |ahead| {
                labels[(p + ahead).min(n)]
            });
        }
        a.bind(labels[n]);
        if self.count.is_some() {
            a.alu_imm(Width::W64, op::SUB, Reg(COUNTER), 1);
            a.jmp_imm(Width::W64, Cond::Ne, Reg(COUNTER), 0, top);
        }
        self.exit(&mut a, self.exit);
        Self::subprograms(&mut a, &subs);
        Program::new(a.finish().expect("labels bound, jumps in range"))
    }

    /// The subprograms the items call, after the main program (`subs`: a
    /// label per [`SUBPROGS`], for those called).
    fn subprograms(a: &mut Asm, subs: &[Option<Label>]) {
        for (k, label) in subs.iter().enumerate() {
            let Some(label) = label else { continue };
            a.bind(*label);
            match k {
                0 => {
                    a.mov_reg(Width::W64, R0, Reg(2));
                    a.alu_reg(Width::W64, op::XOR, R0, Reg(3));
                }
                1 => {
                    // Its own frame: a spill and a fill.
                    a.ldx(Size::W, R0, R1, 4);
                    a.stx(Size::DW, R10, -8, R0);
                    a.alu_reg(Width::W64, op::ADD, R0, Reg(2));
                    a.ldx(Size::DW, Reg(2), R10, -8);
                    a.alu_reg(Width::W64, op::SUB, R0, Reg(2));
                }
                _ => {
                    let out = a.new_label();
                    a.mov_imm(Width::W64, R0, 1);
                    a.jmp_reg(Width::W32, Cond::Gt, Reg(2), Reg(3), out);
                    a.ldx(Size::W, R0, R1, 8);
                    a.bind(out);
                }
            }
            a.exit();
        }
    }

    fn item(
        &self,
        a: &mut Asm,
        item: &Item,
        subs: &[Option<Label>],
        next: Label,
        target: impl Fn(usize) -> Label,
    ) {
        match *item {
            Item::Alu {
                w64,
                operation,
                dst,
                src,
            } => match src {
                Operand::Imm(k) => a.alu_imm(width(w64), operation, Reg(dst), k),
                Operand::Reg(s) => a.alu_reg(width(w64), operation, Reg(dst), Reg(s)),
            },
            Item::Neg { w64, dst } => a.raw(Insn::new(alu_class(w64) | op::NEG, dst, 0, 0, 0)),
            Item::End { to_be, bits, dst } => {
                let source = if to_be { op::X } else { op::K };
                a.raw(Insn::new(op::ALU | op::END | source, dst, 0, 0, bits))
            }
            Item::Lddw { dst, value } => a.lddw(Reg(dst), value),
            Item::CtxLoad { dst, size, off } => a.ldx(size, Reg(dst), R1, off),
            Item::StackStore { size, off, src } => match src {
                Operand::Imm(k) => a.st_imm(size, R10, off, k),
                Operand::Reg(s) => a.stx(size, R10, off, Reg(s)),
            },
            Item::StackLoad { dst, size, off } => a.ldx(size, Reg(dst), R10, off),
            Item::Jump { test, ahead } => jump(a, test, target(ahead)),
            Item::EarlyExit { test, exit } => {
                jump(a, test, next);
                self.exit(a, exit);
                a
            }
            Item::MovSx {
                w64,
                dst,
                src,
                bits,
            } => a.raw(Insn::new(
                alu_class(w64) | op::MOV | op::X,
                dst,
                src,
                bits,
                0,
            )),
            Item::SDiv {
                w64,
                modulo,
                dst,
                src,
            } => {
                let operation = if modulo { op::MOD } else { op::DIV };
                let class = alu_class(w64) | operation;
                a.raw(match src {
                    Operand::Imm(k) => Insn::new(class | op::K, dst, 0, 1, k),
                    Operand::Reg(s) => Insn::new(class | op::X, dst, s, 1, 0),
                })
            }
            Item::Bswap { bits, dst } => {
                a.raw(Insn::new(op::ALU64 | op::END | op::K, dst, 0, 0, bits))
            }
            Item::Ldsx { dst, size, off } => a.ldsx(size, Reg(dst), R10, off),
            Item::CtxLoadSx { dst, size, off } => a.ldsx(size, Reg(dst), R1, off),
            Item::Diamond {
                test,
                a: x,
                b: y,
                long,
            } => {
                let (other, end) = (a.new_label(), a.new_label());
                jump(a, test, other);
                a.alu_imm(Width::W64, x.operation, Reg(x.dst), x.imm);
                if long {
                    a.gotol(end);
                } else {
                    a.ja(end);
                }
                a.bind(other);
                a.alu_imm(Width::W64, y.operation, Reg(y.dst), y.imm);
                a.bind(end);
                a
            }
            Item::Atomic {
                size,
                operation,
                off,
                src,
            } => a.atomic(size, operation, R10, off, Reg(src)),
            Item::Helper { id, dst } => {
                a.call(id);
                after_call(a, dst)
            }
            Item::Call { sub, dst } => {
                let label = subs[sub as usize].expect("called subprograms have labels");
                a.call_local(label);
                after_call(a, dst)
            }
            Item::Privileged { kind, dst } => match kind {
                Privileged::UninitLoad => a.ldx(Size::W, Reg(dst), R10, -128),
                Privileged::PointerLow => a.mov_reg(Width::W32, Reg(dst), R10),
                Privileged::PartialOverwrite => {
                    a.stx(Size::DW, R10, -80, R10);
                    a.st_imm(Size::W, R10, -80, 7);
                    a.ldx(Size::DW, Reg(dst), R10, -80)
                }
                Privileged::PointerCompare => {
                    let over = a.new_label();
                    a.jmp_reg(Width::W64, Cond::Gt, R10, Reg(dst), over);
                    a.bind(over);
                    a
                }
            },
            Item::MayGotoLoop { dst, n } => {
                let (top, out) = (a.new_label(), a.new_label());
                a.mov_imm(Width::W64, Reg(dst), n);
                a.bind(top);
                a.may_goto(out);
                a.alu_imm(Width::W64, op::SUB, Reg(dst), 1);
                a.jmp_imm(Width::W64, Cond::Ne, Reg(dst), 0, top);
                a.bind(out);
                a
            }
        };
    }

    fn exit(&self, a: &mut Asm, exit: Exit) {
        if let Some(Breach::WideShiftReturn) = self.breach {
            a.mov_imm(Width::W64, R0, 64);
            a.alu_reg(Width::W64, op::LSH, R0, R0);
            a.exit();
            return;
        }
        if let Some(Breach::Return { src, bit }) = self.breach {
            a.mov_reg(Width::W64, R0, Reg(src));
            a.alu_imm(Width::W64, op::OR, R0, (1u32 << bit) as i32);
            a.exit();
            return;
        }
        match exit {
            Exit::Const(v) => {
                a.ret(v);
            }
            Exit::Bit { w64, src, shift } => {
                a.mov_reg(width(w64), R0, Reg(src));
                if shift != 0 {
                    a.alu_imm(width(w64), op::RSH, R0, shift);
                }
                a.alu_imm(width(w64), op::AND, R0, 1);
                a.exit();
            }
        }
    }
}

/// After a call: `dst = r0`, r1 back from the stack, r2-r5 (clobbered)
/// set to small constants again.
fn after_call(a: &mut Asm, dst: u8) -> &mut Asm {
    if dst != 0 {
        a.mov_reg(Width::W64, Reg(dst), R0);
    }
    a.ldx(Size::DW, R1, R10, CTX_SLOT);
    for r in 2..=5u8 {
        if r != dst {
            a.mov_imm(Width::W64, Reg(r), i32::from(r) * 3 - 5);
        }
    }
    a
}

fn jump(a: &mut Asm, t: Test, target: Label) -> &mut Asm {
    match t.src {
        Operand::Imm(k) => a.jmp_imm(width(t.w64), t.cond, Reg(t.dst), k, target),
        Operand::Reg(s) => a.jmp_reg(width(t.w64), t.cond, Reg(t.dst), Reg(s), target),
    }
}

// ---------------------------------------------------------------- strategies

/// Immediates of every sign, weighted toward small ones and
/// [`SPECIAL_I32`].
pub fn imm() -> BoxedStrategy<i32> {
    prop_oneof![
        3 => -4i32..=4,
        3 => proptest::sample::select(&SPECIAL_I32[..]),
        1 => -256i32..256,
        2 => any::<i32>(),
    ]
    .boxed()
}

/// 64-bit constants where wide arithmetic goes wrong.
pub fn value() -> BoxedStrategy<u64> {
    prop_oneof![
        2 => Just(0u64),
        1 => Just(u64::MAX),
        1 => Just(1u64 << 63),
        1 => Just(0xffff_ffffu64),
        1 => Just(0x8000_0000u64),
        // Low half zero: zero divisors for 32-bit ops with live upper bits.
        1 => Just(0x1_0000_0000u64),
        1 => Just(0xffff_ffff_0000_0000u64),
        2 => 0u64..8,
        2 => any::<u64>(),
        1 => any::<i32>().prop_map(|v| v as i64 as u64),
    ]
    .boxed()
}

/// A register to read.
pub fn reg() -> BoxedStrategy<u8> {
    proptest::sample::select(&REGS[..]).boxed()
}

/// A register to write: all of [`REGS`], but the counter in a loop body.
fn dst(loops: bool) -> BoxedStrategy<u8> {
    if loops {
        let regs: Vec<u8> = REGS.into_iter().filter(|&r| r != COUNTER).collect();
        proptest::sample::select(regs).boxed()
    } else {
        reg()
    }
}

fn mem_size() -> impl Strategy<Value = Size> {
    proptest::sample::select(&[Size::B, Size::H, Size::W, Size::DW][..])
}

fn operand() -> BoxedStrategy<Operand> {
    prop_oneof![imm().prop_map(Operand::Imm), reg().prop_map(Operand::Reg)].boxed()
}

fn test() -> BoxedStrategy<Test> {
    let src = prop_oneof![
        3 => imm().prop_map(Operand::Imm),
        2 => reg().prop_map(Operand::Reg),
    ];
    (
        any::<bool>(),
        proptest::sample::select(&CONDS[..]),
        reg(),
        src,
    )
        .prop_map(|(w64, cond, dst, src)| Test {
            w64,
            cond,
            dst,
            src,
        })
        .boxed()
}

fn exit() -> BoxedStrategy<Exit> {
    // Bit 0 half the time (`r0 = src & 1`), else any bit of the width.
    let shift = prop_oneof![Just(0i32), 0i32..64];
    prop_oneof![
        1 => (0i32..=1).prop_map(Exit::Const),
        3 => (any::<bool>(), reg(), shift).prop_map(|(w64, src, shift)| Exit::Bit {
            w64,
            src,
            shift: shift % if w64 { 64 } else { 32 },
        }),
    ]
    .boxed()
}

fn init() -> BoxedStrategy<Init> {
    prop_oneof![
        2 => proptest::sample::select(&CTX_LOADS[..]).prop_map(|(size, off)| Init::Ctx { size, off }),
        1 => (any::<bool>(), imm()).prop_map(|(w64, imm)| Init::Mov { w64, imm }),
        1 => value().prop_map(Init::Lddw),
    ]
    .boxed()
}

/// An aligned offset inside stack slot `slot` (1..=SLOTS), for `size`.
fn stack_off(size: Size, slot: i16, pos: i16) -> i16 {
    -8 * slot + (pos / bytes(size)) * bytes(size)
}

fn alu_imm(dst: BoxedStrategy<u8>) -> BoxedStrategy<Item> {
    (
        any::<bool>(),
        proptest::sample::select(&ALU_OPS[..]),
        dst,
        imm(),
        any::<bool>(),
        0i32..64,
    )
        .prop_map(|(w64, operation, dst, k, edge, uniform)| {
            let bits = if w64 { 64 } else { 32 };
            // Immediates the verifier accepts; shift amounts either from
            // the interesting immediates (edges: 0, 1, width - 1) or
            // uniform over the width.
            let k = match operation {
                op::LSH | op::RSH | op::ARSH if edge => k.rem_euclid(bits),
                op::LSH | op::RSH | op::ARSH => uniform % bits,
                op::DIV | op::MOD if k == 0 => 1,
                _ => k,
            };
            Item::Alu {
                w64,
                operation,
                dst,
                src: Operand::Imm(k),
            }
        })
        .boxed()
}

/// The items of a shape in `space`; cpu-v4 ones only with `v4`.
fn item(space: &ProgramSpace, v4: bool) -> BoxedStrategy<Item> {
    let d = || dst(space.loops);
    let ahead = prop_oneof![4 => 1usize..6, 1 => 1usize..=space.max_items.max(1)];
    let mut arms: Vec<(u32, BoxedStrategy<Item>)> = vec![
        (6, alu_imm(d())),
        (
            6,
            (
                any::<bool>(),
                proptest::sample::select(&ALU_OPS[..]),
                d(),
                reg(),
            )
                .prop_map(|(w64, operation, dst, src)| Item::Alu {
                    w64,
                    operation,
                    dst,
                    src: Operand::Reg(src),
                })
                .boxed(),
        ),
        (
            1,
            (any::<bool>(), d())
                .prop_map(|(w64, dst)| Item::Neg { w64, dst })
                .boxed(),
        ),
        (
            1,
            (
                any::<bool>(),
                proptest::sample::select(&[16, 32, 64][..]),
                d(),
            )
                .prop_map(|(to_be, bits, dst)| Item::End { to_be, bits, dst })
                .boxed(),
        ),
        (
            1,
            (d(), value())
                .prop_map(|(dst, value)| Item::Lddw { dst, value })
                .boxed(),
        ),
        (
            2,
            (d(), proptest::sample::select(&CTX_LOADS[..]))
                .prop_map(|(dst, (size, off))| Item::CtxLoad { dst, size, off })
                .boxed(),
        ),
        (
            2,
            (mem_size(), 1..=SLOTS, 0i16..8, operand())
                .prop_map(|(size, slot, pos, src)| Item::StackStore {
                    size,
                    off: stack_off(size, slot, pos),
                    src,
                })
                .boxed(),
        ),
        (
            2,
            (d(), mem_size(), 1..=SLOTS, 0i16..8)
                .prop_map(|(dst, size, slot, pos)| Item::StackLoad {
                    dst,
                    size,
                    off: stack_off(size, slot, pos),
                })
                .boxed(),
        ),
        (
            6,
            (test(), ahead)
                .prop_map(|(test, ahead)| Item::Jump { test, ahead })
                .boxed(),
        ),
        (
            2,
            (test(), exit())
                .prop_map(|(test, exit)| Item::EarlyExit { test, exit })
                .boxed(),
        ),
    ];
    if space.extended {
        let step = || {
            (
                proptest::sample::select(
                    &[op::ADD, op::SUB, op::OR, op::AND, op::XOR, op::MUL][..],
                ),
                d(),
                imm(),
            )
                .prop_map(|(operation, dst, imm)| AluStep {
                    operation,
                    dst,
                    imm,
                })
        };
        arms.push((
            1,
            (
                d(),
                proptest::sample::select(&[Size::B, Size::H, Size::W][..]),
                1..=SLOTS,
                0i16..8,
            )
                .prop_map(|(dst, size, slot, pos)| Item::Ldsx {
                    dst,
                    size,
                    off: stack_off(size, slot, pos),
                })
                .boxed(),
        ));
        arms.push((
            1,
            (d(), proptest::sample::select(&CTX_LOADS[..]))
                .prop_map(|(dst, (size, off))| Item::CtxLoadSx { dst, size, off })
                .boxed(),
        ));
        arms.push((
            2,
            (test(), step(), step(), any::<bool>())
                .prop_map(|(test, a, b, long)| Item::Diamond { test, a, b, long })
                .boxed(),
        ));
        arms.push((
            2,
            (
                proptest::sample::select(&[Size::W, Size::DW][..]),
                proptest::sample::select(&ATOMIC_OPS[..]),
                1..=SLOTS,
                0i16..8,
                d(),
            )
                .prop_map(|(size, operation, slot, pos, src)| Item::Atomic {
                    size,
                    operation,
                    off: stack_off(size, slot, pos),
                    src,
                })
                .boxed(),
        ));
        arms.push((
            2,
            (proptest::sample::select(&HELPERS[..]), d())
                .prop_map(|(id, dst)| Item::Helper { id, dst })
                .boxed(),
        ));
        arms.push((
            2,
            (0..SUBPROGS, d())
                .prop_map(|(sub, dst)| Item::Call { sub, dst })
                .boxed(),
        ));
        arms.push((
            1,
            (d(), 1i32..12)
                .prop_map(|(dst, n)| Item::MayGotoLoop { dst, n })
                .boxed(),
        ));
        arms.push((
            1,
            (
                proptest::sample::select(
                    &[
                        Privileged::UninitLoad,
                        Privileged::PointerLow,
                        Privileged::PartialOverwrite,
                        Privileged::PointerCompare,
                    ][..],
                ),
                d(),
            )
                .prop_map(|(kind, dst)| Item::Privileged { kind, dst })
                .boxed(),
        ));
    }
    if v4 {
        arms.push((
            1,
            (any::<bool>(), d(), reg(), 0usize..3)
                .prop_map(|(w64, dst, src, b)| Item::MovSx {
                    w64,
                    dst,
                    src,
                    // movsx32 takes 8 and 16 only.
                    bits: [8, 16, 32][if w64 { b } else { b % 2 }],
                })
                .boxed(),
        ));
        arms.push((
            1,
            (any::<bool>(), any::<bool>(), d(), operand())
                .prop_map(|(w64, modulo, dst, src)| Item::SDiv {
                    w64,
                    modulo,
                    dst,
                    src: match src {
                        Operand::Imm(0) => Operand::Imm(-3),
                        src => src,
                    },
                })
                .boxed(),
        ));
        arms.push((
            1,
            (proptest::sample::select(&[16, 32, 64][..]), d())
                .prop_map(|(bits, dst)| Item::Bswap { bits, dst })
                .boxed(),
        ));
    }
    Union::new_weighted(arms).boxed()
}

fn breach(extended: bool) -> BoxedStrategy<Breach> {
    let shift = (
        any::<bool>(),
        proptest::sample::select(&[op::LSH, op::RSH, op::ARSH][..]),
        reg(),
        0usize..4,
    )
        .prop_map(|(w64, operation, dst, k)| {
            let bits = if w64 { 64 } else { 32 };
            Breach::Shift {
                w64,
                operation,
                dst,
                imm: [bits, bits + 1, -1, i32::MIN][k],
            }
        });
    let base = prop_oneof![
        3 => (reg(), proptest::sample::select(&BAD_CTX_LOADS[..]))
            .prop_map(|(dst, (size, off))| Breach::CtxLoad { dst, size, off }),
        2 => shift,
        1 => (any::<bool>(), any::<bool>(), reg())
            .prop_map(|(w64, modulo, dst)| Breach::DivByZero { w64, modulo, dst }),
        3 => (reg(), 1u8..=31).prop_map(|(src, bit)| Breach::Return { src, bit }),
    ];
    if !extended {
        return base.boxed();
    }
    let dst = || proptest::sample::select(&REGS[..]).prop_filter("not r0", |&r| r != 0);
    prop_oneof![
        6 => base,
        1 => dst().prop_map(|dst| Breach::StackSub { dst }),
        1 => dst().prop_map(|dst| Breach::PointerShift { dst }),
        1 => Just(Breach::EndlessLoop),
        1 => Just(Breach::WideShiftReturn),
    ]
    .boxed()
}

/// Shapes in `space`.
pub fn shapes(space: &ProgramSpace) -> BoxedStrategy<Shape> {
    let items = |v4| proptest::collection::vec(item(space, v4), 1..=space.max_items.max(1));
    let items = if space.v4 {
        prop_oneof![4 => items(false), 1 => items(true)].boxed()
    } else {
        items(false).boxed()
    };
    let count = if space.loops {
        (1..MAX_COUNT).prop_map(Some).boxed()
    } else {
        Just(None).boxed()
    };
    let breach = if space.invalid {
        prop_oneof![9 => Just(None), 1 => breach(space.extended).prop_map(Some)].boxed()
    } else {
        Just(None).boxed()
    };
    (
        proptest::array::uniform9(init()),
        items,
        exit(),
        count,
        breach,
    )
        .prop_map(|(init, items, exit, count, breach)| Shape {
            init,
            items,
            exit,
            count,
            breach,
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::Draw;
    use devcg_emulator::{EmuError, Emulator};
    use devcg_engine::disasm::disassemble;

    fn space(loops: bool) -> ProgramSpace {
        ProgramSpace {
            v4: true,
            invalid: true,
            extended: false,
            max_items: 40,
            loops,
        }
    }

    #[test]
    fn same_seed_same_programs() {
        let s = shapes(&space(false));
        let (mut a, mut b) = (Draw::new(11), Draw::new(11));
        for _ in 0..200 {
            let x = a.value(&s);
            assert_eq!(x, b.value(&s));
            assert_eq!(x.assemble(), x.assemble());
        }
        assert_ne!(Draw::new(11).value(&s), Draw::new(12).value(&s));
    }

    #[test]
    fn the_mix_is_about_one_breach_in_ten_and_one_v4_in_five() {
        let s = shapes(&space(false));
        let mut draw = Draw::new(5);
        let (mut breaches, mut v4) = (0, 0);
        for _ in 0..2000 {
            let shape = draw.value(&s);
            breaches += u32::from(shape.breaks_a_rule());
            v4 += u32::from(shape.uses_v4());
        }
        assert!((120..=280).contains(&breaches), "{breaches} breaches");
        // Not every v4 shape draws a v4 item.
        assert!((250..=450).contains(&v4), "{v4} with v4");
        let plain = shapes(&ProgramSpace {
            v4: false,
            invalid: false,
            extended: false,
            max_items: 40,
            loops: false,
        });
        for _ in 0..500 {
            let shape = draw.value(&plain);
            assert!(!shape.breaks_a_rule() && !shape.uses_v4(), "{shape:?}");
        }
    }

    #[test]
    fn the_emulator_accepts_valid_shapes_and_refuses_breaches() {
        let ctx = [0u8; 12];
        for loops in [false, true] {
            let s = shapes(&space(loops));
            let mut draw = Draw::new(3);
            let (mut accepted, mut refused) = (0, 0);
            for _ in 0..1500 {
                let shape = draw.value(&s);
                if shape.uses_v4() {
                    continue;
                }
                let p = shape.assemble();
                let listing = || format!("{shape:?}\n{}", disassemble(&p.insns));
                match Emulator::new(&p) {
                    Ok(emu) => {
                        assert!(!shape.breaks_a_rule(), "accepted a breach\n{}", listing());
                        emu.run_ctx(&ctx)
                            .unwrap_or_else(|e| panic!("run failed: {e}\n{}", listing()));
                        accepted += 1;
                    }
                    Err(e) => {
                        assert!(
                            shape.breaks_a_rule(),
                            "refused a valid shape: {e}\n{}",
                            listing()
                        );
                        assert!(
                            matches!(
                                e,
                                EmuError::CtxAccess { .. }
                                    | EmuError::BadShift { .. }
                                    | EmuError::DivByZero { .. }
                                    | EmuError::ReturnRange { .. }
                            ),
                            "refused for another reason: {e}\n{}",
                            listing()
                        );
                        refused += 1;
                    }
                }
            }
            assert!(accepted > 1000 && refused > 50, "{accepted} {refused}");
        }
    }

    #[test]
    fn the_emulator_accepts_extended_shapes_and_refuses_their_breaches() {
        let ctx = [0u8; 12];
        for loops in [false, true] {
            let s = shapes(&ProgramSpace {
                extended: true,
                ..space(loops)
            });
            let mut draw = Draw::new(4);
            let (mut accepted, mut extended) = (0, 0);
            for _ in 0..600 {
                let shape = draw.value(&s);
                extended += u32::from(shape.uses_extended());
                let p = shape.assemble();
                let listing = || format!("{shape:?}\n{}", disassemble(&p.insns));
                match Emulator::new(&p) {
                    Ok(emu) => {
                        assert!(!shape.breaks_a_rule(), "accepted a breach\n{}", listing());
                        match emu.run_ctx(&ctx) {
                            Ok(_) | Err(EmuError::Nondeterministic { .. }) => {}
                            Err(e) => panic!("run failed: {e}\n{}", listing()),
                        }
                        accepted += 1;
                    }
                    Err(e) => assert!(
                        shape.breaks_a_rule(),
                        "refused a valid shape: {e}\n{}",
                        listing()
                    ),
                }
            }
            assert!(accepted > 400 && extended > 300, "{accepted} {extended}");
        }
    }

    #[test]
    fn jumps_go_forward_but_the_loop_back_edge() {
        for loops in [false, true] {
            let s = shapes(&space(loops));
            let mut draw = Draw::new(9);
            for _ in 0..500 {
                let shape = draw.value(&s);
                let insns = shape.assemble().insns;
                assert_eq!(insns.last().unwrap().code, op::JMP | op::EXIT);
                let backward: Vec<usize> = (0..insns.len())
                    .filter(|&i| {
                        let c = insns[i].code;
                        matches!(op::class(c), op::JMP | op::JMP32)
                            && !matches!(op::operation(c), op::EXIT | op::CALL)
                            && insns[i].off < 0
                    })
                    .collect();
                if loops {
                    // One: `if r9 != 0 goto top`, right before the exit code.
                    assert_eq!(backward.len(), 1, "{}", disassemble(&insns));
                    let at = backward[0];
                    assert_eq!(insns[at].code, op::JMP | op::JNE | op::K);
                    assert_eq!(insns[at].dst, COUNTER);
                    assert!(insns[at + 1..]
                        .iter()
                        .all(|i| !matches!(op::class(i.code), op::JMP | op::JMP32)
                            || op::operation(i.code) == op::EXIT));
                } else {
                    assert!(backward.is_empty(), "{}", disassemble(&insns));
                }
            }
        }
    }

    #[test]
    fn loop_bodies_leave_the_counter_alone() {
        let s = shapes(&space(true));
        let mut draw = Draw::new(2);
        for _ in 0..300 {
            let shape = draw.value(&s);
            assert!(shape.count.is_some_and(|n| (1..MAX_COUNT).contains(&n)));
            let insns = shape.assemble().insns;
            let top = insns
                .iter()
                .rposition(|i| i.is_lddw() && i.dst == COUNTER)
                .unwrap();
            // The count is the last lddw into r9 (an init may be one too);
            // after it, only the decrement writes r9.
            let writes = insns[top + 2..]
                .iter()
                .filter(|i| {
                    i.dst == COUNTER
                        && matches!(op::class(i.code), op::ALU | op::ALU64 | op::LDX | op::LD)
                })
                .count();
            assert_eq!(writes, 1, "{}", disassemble(&insns));
        }
    }
}
