//! An assembler with symbolic labels. Jumps name a [`Label`]; offsets are
//! resolved in one place, [`Asm::finish`], never counted by hand.

use thiserror::Error;

use crate::insn::{op, Insn, Reg};

/// A jump target, bound to a position with [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(usize);

/// Jump conditions (the JMP/JMP32 operation field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cond {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Sgt,
    Sge,
    Slt,
    Sle,
    /// `dst & src != 0`
    Set,
}

impl Cond {
    pub fn code(self) -> u8 {
        match self {
            Cond::Eq => op::JEQ,
            Cond::Ne => op::JNE,
            Cond::Gt => op::JGT,
            Cond::Ge => op::JGE,
            Cond::Lt => op::JLT,
            Cond::Le => op::JLE,
            Cond::Sgt => op::JSGT,
            Cond::Sge => op::JSGE,
            Cond::Slt => op::JSLT,
            Cond::Sle => op::JSLE,
            Cond::Set => op::JSET,
        }
    }
}

/// Operand width of ALU and jump instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    W32,
    W64,
}

/// Load/store sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub fn code(self) -> u8 {
        match self {
            Size::B => op::B,
            Size::H => op::H,
            Size::W => op::W,
            Size::DW => op::DW,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AsmError {
    #[error("label {0} is used but never bound")]
    Unbound(usize),
    #[error("label {0} is bound twice")]
    BoundTwice(usize),
    #[error("jump at instruction {at} to label {label} needs offset {offset}, beyond 16 bits")]
    OutOfRange {
        at: usize,
        label: usize,
        offset: i64,
    },
}

#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    /// (slot of the jump, its target)
    fixups: Vec<(usize, Label)>,
    /// (slot, target) of instructions whose 32-bit `imm` holds the offset:
    /// bpf-to-bpf calls and `gotol`.
    imm_fixups: Vec<(usize, Label)>,
    bound: Vec<Option<usize>>,
    errors: Vec<AsmError>,
}

impl Asm {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn new_label(&mut self) -> Label {
        self.bound.push(None);
        Label(self.bound.len() - 1)
    }

    /// Binds `label` to the next instruction emitted.
    pub fn bind(&mut self, label: Label) {
        match self.bound[label.0] {
            Some(_) => self.errors.push(AsmError::BoundTwice(label.0)),
            None => self.bound[label.0] = Some(self.insns.len()),
        }
    }

    /// Instruction slots emitted so far.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    pub fn raw(&mut self, insn: Insn) -> &mut Self {
        self.insns.push(insn);
        self
    }

    fn class(width: Width) -> u8 {
        match width {
            Width::W32 => op::ALU,
            Width::W64 => op::ALU64,
        }
    }

    pub fn alu_imm(&mut self, width: Width, operation: u8, dst: Reg, imm: i32) -> &mut Self {
        self.raw(Insn::new(
            Self::class(width) | operation | op::K,
            dst.0,
            0,
            0,
            imm,
        ))
    }

    pub fn alu_reg(&mut self, width: Width, operation: u8, dst: Reg, src: Reg) -> &mut Self {
        self.raw(Insn::new(
            Self::class(width) | operation | op::X,
            dst.0,
            src.0,
            0,
            0,
        ))
    }

    pub fn mov_imm(&mut self, width: Width, dst: Reg, imm: i32) -> &mut Self {
        self.alu_imm(width, op::MOV, dst, imm)
    }

    pub fn mov_reg(&mut self, width: Width, dst: Reg, src: Reg) -> &mut Self {
        self.alu_reg(width, op::MOV, dst, src)
    }

    /// `dst = *(size *)(src + off)`
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.raw(Insn::new(
            op::LDX | op::MEM | size.code(),
            dst.0,
            src.0,
            off,
            0,
        ))
    }

    /// `*(size *)(dst + off) = src`
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.raw(Insn::new(
            op::STX | op::MEM | size.code(),
            dst.0,
            src.0,
            off,
            0,
        ))
    }

    /// `*(size *)(dst + off) = imm`
    pub fn st_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Self {
        self.raw(Insn::new(
            op::ST | op::MEM | size.code(),
            dst.0,
            0,
            off,
            imm,
        ))
    }

    /// A 64-bit constant (`lddw`, two slots).
    pub fn lddw(&mut self, dst: Reg, value: u64) -> &mut Self {
        self.raw(Insn::new(
            op::LD | op::IMM | op::DW,
            dst.0,
            0,
            0,
            value as u32 as i32,
        ));
        self.raw(Insn::new(0, 0, 0, 0, (value >> 32) as u32 as i32))
    }

    /// `dst = &maps[index]`, relocated by whoever loads the program.
    pub fn ld_map(&mut self, dst: Reg, index: u32) -> &mut Self {
        self.raw(Insn::new(
            op::LD | op::IMM | op::DW,
            dst.0,
            op::PSEUDO_MAP_FD,
            0,
            index as i32,
        ));
        self.raw(Insn::new(0, 0, 0, 0, 0))
    }

    fn jump(&mut self, insn: Insn, target: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), target));
        self.raw(insn)
    }

    fn jmp_class(width: Width) -> u8 {
        match width {
            Width::W32 => op::JMP32,
            Width::W64 => op::JMP,
        }
    }

    /// `if dst <cond> imm goto target`. With `W64` the kernel sign-extends
    /// `imm` to 64 bits; compare 32-bit context fields with `W32`.
    pub fn jmp_imm(
        &mut self,
        width: Width,
        cond: Cond,
        dst: Reg,
        imm: i32,
        target: Label,
    ) -> &mut Self {
        self.jump(
            Insn::new(
                Self::jmp_class(width) | cond.code() | op::K,
                dst.0,
                0,
                0,
                imm,
            ),
            target,
        )
    }

    pub fn jmp_reg(
        &mut self,
        width: Width,
        cond: Cond,
        dst: Reg,
        src: Reg,
        target: Label,
    ) -> &mut Self {
        self.jump(
            Insn::new(
                Self::jmp_class(width) | cond.code() | op::X,
                dst.0,
                src.0,
                0,
                0,
            ),
            target,
        )
    }

    pub fn ja(&mut self, target: Label) -> &mut Self {
        self.jump(Insn::new(op::JMP | op::JA, 0, 0, 0, 0), target)
    }

    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.raw(Insn::new(op::JMP | op::CALL, 0, 0, 0, helper))
    }

    pub fn exit(&mut self) -> &mut Self {
        self.raw(Insn::new(op::JMP | op::EXIT, 0, 0, 0, 0))
    }

    /// `r0 = verdict; exit`
    pub fn ret(&mut self, verdict: i32) -> &mut Self {
        self.mov_imm(Width::W64, crate::insn::R0, verdict).exit()
    }

    /// Resolves every jump: offset = target - (jump + 1). A jump beyond the
    /// 16-bit range goes through trampolines (`ja target`) inserted within
    /// range, preferably where nothing falls through (after an `exit` or a
    /// `ja`), else behind a `ja` that skips them; so generators need not
    /// care how large their programs grow.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        if let Some(e) = self.errors.pop() {
            return Err(e);
        }
        // Each round fixes the first jump out of range; a trampoline that is
        // itself out of range is fixed in a later round.
        while let Some(i) = self.first_out_of_range()? {
            self.add_trampoline(i);
        }
        for &(at, label) in &self.fixups {
            let target = self.bound[label.0].expect("checked by first_out_of_range");
            self.insns[at].off = (target as i64 - (at as i64 + 1)) as i16;
        }
        for &(at, label) in &self.imm_fixups {
            let target = self.bound[label.0].ok_or(AsmError::Unbound(label.0))?;
            // A program has at most 1M slots: the offset fits in an i32.
            self.insns[at].imm = (target as i64 - (at as i64 + 1)) as i32;
        }
        Ok(self.insns)
    }

    fn first_out_of_range(&self) -> Result<Option<usize>, AsmError> {
        for (i, &(at, label)) in self.fixups.iter().enumerate() {
            let target = self.bound[label.0].ok_or(AsmError::Unbound(label.0))?;
            if i16::try_from(target as i64 - (at as i64 + 1)).is_err() {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Whether execution can fall from slot `p - 1` into slot `p`.
    fn falls_into(&self, p: usize) -> bool {
        let prev = self.insns[p - 1].code;
        let after_lddw = p >= 2 && self.insns[p - 2].is_lddw();
        let stops = op::class(prev) == op::JMP && matches!(op::operation(prev), op::JA | op::EXIT);
        after_lddw || !stops
    }

    fn add_trampoline(&mut self, fixup: usize) {
        const REACH: i64 = 32_000;
        let (at, label) = self.fixups[fixup];
        let target = self.bound[label.0].expect("bound") as i64;
        let (at_i, forward) = (at as i64, target > at as i64);
        // Candidate slots: from the jump up to REACH towards the target.
        let (lo, hi) = if forward {
            (at_i + 2, at_i + 1 + REACH)
        } else {
            (at_i - REACH, at_i)
        };
        let (lo, hi) = (lo.max(1) as usize, hi.min(self.insns.len() as i64) as usize);
        let quiet = |p: &usize| !self.falls_into(*p);
        let found = if forward {
            (lo..=hi).rev().find(quiet)
        } else {
            (lo..=hi).find(quiet)
        };
        let (p, skip) = match found {
            Some(p) => (p, false),
            None => {
                let p = if forward { hi } else { lo };
                // Never between the two slots of an lddw.
                (
                    if self.insns[p - 1].is_lddw() {
                        p - 1
                    } else {
                        p
                    },
                    true,
                )
            }
        };
        let k = 1 + usize::from(skip);
        let ja = Insn::new(op::JMP | op::JA, 0, 0, 0, 0);
        self.insns.splice(p..p, std::iter::repeat_n(ja, k));
        for (f_at, _) in self.fixups.iter_mut().chain(self.imm_fixups.iter_mut()) {
            if *f_at >= p {
                *f_at += k;
            }
        }
        for pos in self.bound.iter_mut().flatten() {
            if *pos >= p {
                *pos += k;
            }
        }
        let tramp_at = p + k - 1;
        if skip {
            // Over the trampoline, for the code that falls through; a label,
            // so that later insertions keep it right.
            let over = self.new_label();
            self.bound[over.0] = Some(p + k);
            self.fixups.push((p, over));
        }
        let tramp = self.new_label();
        self.bound[tramp.0] = Some(tramp_at);
        self.fixups[fixup].1 = tramp;
        self.fixups.push((tramp_at, label));
    }
}

/// cpu-v4 instructions, bpf-to-bpf calls, atomics and `may_goto`.
impl Asm {
    /// `call target`: a bpf-to-bpf call (BPF_PSEUDO_CALL) to the
    /// subprogram starting at `target`.
    pub fn call_local(&mut self, target: Label) -> &mut Self {
        self.imm_fixups.push((self.insns.len(), target));
        self.raw(Insn::new(op::JMP | op::CALL, 0, op::PSEUDO_CALL, 0, 0))
    }

    /// `gotol target`: BPF_JMP32|BPF_JA, the offset in `imm` (cpu v4).
    pub fn gotol(&mut self, target: Label) -> &mut Self {
        self.imm_fixups.push((self.insns.len(), target));
        self.raw(Insn::new(op::JMP32 | op::JA, 0, 0, 0, 0))
    }

    /// `may_goto target`: taken once the kernel's loop allowance is spent.
    pub fn may_goto(&mut self, target: Label) -> &mut Self {
        self.jump(Insn::new(op::JMP | op::JCOND, 0, 0, 0, 0), target)
    }

    /// `dst s/= imm` or `dst s%= imm` (cpu v4: `off` 1).
    pub fn sdiv_imm(&mut self, width: Width, modulo: bool, dst: Reg, imm: i32) -> &mut Self {
        let operation = if modulo { op::MOD } else { op::DIV };
        self.raw(Insn::new(
            Self::class(width) | operation | op::K,
            dst.0,
            0,
            1,
            imm,
        ))
    }

    pub fn sdiv_reg(&mut self, width: Width, modulo: bool, dst: Reg, src: Reg) -> &mut Self {
        let operation = if modulo { op::MOD } else { op::DIV };
        self.raw(Insn::new(
            Self::class(width) | operation | op::X,
            dst.0,
            src.0,
            1,
            0,
        ))
    }

    /// `dst = (s8|s16|s32) src` (cpu v4 movsx; `bits` 8, 16 or 32).
    pub fn movsx(&mut self, width: Width, dst: Reg, src: Reg, bits: i16) -> &mut Self {
        self.raw(Insn::new(
            Self::class(width) | op::MOV | op::X,
            dst.0,
            src.0,
            bits,
            0,
        ))
    }

    /// `dst = *(s8|s16|s32 *)(src + off)`, sign-extended (cpu v4 ldsx).
    pub fn ldsx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.raw(Insn::new(
            op::LDX | op::MEMSX | size.code(),
            dst.0,
            src.0,
            off,
            0,
        ))
    }

    /// `dst = bswapN dst` (cpu v4: BPF_ALU64|BPF_END|BPF_TO_LE).
    pub fn bswap(&mut self, dst: Reg, bits: i32) -> &mut Self {
        self.raw(Insn::new(op::ALU64 | op::END | op::K, dst.0, 0, 0, bits))
    }

    /// `lock *(size *)(dst + off) <operation>= src`: one of the
    /// `op::ATOMIC_*` operations, BPF_W or BPF_DW.
    pub fn atomic(
        &mut self,
        size: Size,
        operation: i32,
        dst: Reg,
        off: i16,
        src: Reg,
    ) -> &mut Self {
        self.raw(Insn::new(
            op::STX | op::ATOMIC | size.code(),
            dst.0,
            src.0,
            off,
            operation,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{R0, R2};

    #[test]
    fn forward_and_backward_jumps_resolve() {
        let mut a = Asm::new();
        let top = a.new_label();
        let out = a.new_label();
        a.bind(top);
        a.jmp_imm(Width::W32, Cond::Eq, R2, 1, out); // 0 -> 3: off 2
        a.lddw(R0, 7); // 1, 2
        a.bind(out);
        a.ja(top); // 3 -> 0: off -4
        let insns = a.finish().unwrap();
        assert_eq!(insns[0].off, 2);
        assert_eq!(insns[3].off, -4);
    }

    #[test]
    fn unbound_label_is_an_error() {
        let mut a = Asm::new();
        let l = a.new_label();
        a.ja(l);
        assert_eq!(a.finish(), Err(AsmError::Unbound(0)));
    }

    #[test]
    fn double_bind_is_an_error() {
        let mut a = Asm::new();
        let l = a.new_label();
        a.bind(l);
        a.exit();
        a.bind(l);
        assert_eq!(a.finish(), Err(AsmError::BoundTwice(0)));
    }

    /// Follows `ja`s from slot `pc`; returns the first other slot.
    fn land(insns: &[Insn], mut pc: usize) -> usize {
        while insns[pc].code == op::JMP | op::JA {
            pc = (pc as i64 + 1 + i64::from(insns[pc].off)) as usize;
        }
        pc
    }

    #[test]
    fn far_jumps_go_through_trampolines() {
        let mut a = Asm::new();
        let (far, back) = (a.new_label(), a.new_label());
        a.bind(back);
        a.jmp_imm(Width::W32, Cond::Eq, R2, 7, far); // 0: conditional, forward
        for n in 0..40_000 {
            a.mov_imm(Width::W64, R0, n); // nothing stops here: needs a skip
        }
        for _ in 0..40_000 {
            a.exit(); // quiet slots: a trampoline fits after any of them
        }
        a.bind(far);
        a.mov_imm(Width::W64, R0, -1);
        a.ja(back); // backward, far
        let insns = a.finish().unwrap();
        let far_at = land(&insns, (1 + i64::from(insns[0].off)) as usize);
        assert_eq!(
            insns[far_at],
            Insn::new(op::ALU64 | op::MOV | op::K, 0, 0, 0, -1)
        );
        assert_eq!(land(&insns, far_at + 1), 0, "the back edge reaches slot 0");
        // Falling through skips every trampoline: the movs run in order.
        let mut pc = 1;
        for n in 0..40_000 {
            pc = land(&insns, pc);
            assert_eq!(insns[pc].imm, n, "mov {n}");
            pc += 1;
        }
        assert_eq!(insns[land(&insns, pc)].code, op::JMP | op::EXIT);
    }
}
