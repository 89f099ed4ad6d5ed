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

    /// Resolves every jump: offset = target - (jump + 1).
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        if let Some(e) = self.errors.pop() {
            return Err(e);
        }
        for &(at, label) in &self.fixups {
            let target = self.bound[label.0].ok_or(AsmError::Unbound(label.0))?;
            let offset = target as i64 - (at as i64 + 1);
            self.insns[at].off = i16::try_from(offset).map_err(|_| AsmError::OutOfRange {
                at,
                label: label.0,
                offset,
            })?;
        }
        Ok(self.insns)
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

    #[test]
    fn too_far_is_an_error() {
        let mut a = Asm::new();
        let l = a.new_label();
        a.ja(l);
        for _ in 0..40_000 {
            a.exit();
        }
        a.bind(l);
        a.exit();
        assert!(matches!(
            a.finish(),
            Err(AsmError::OutOfRange { at: 0, .. })
        ));
    }
}
