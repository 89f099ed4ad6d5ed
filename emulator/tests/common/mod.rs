//! Helpers shared by the emulator's integration tests.
#![allow(dead_code)]

use devcg_emulator::{EmuError, Emulator};
use devcg_engine::insn::{encode_all, op, Insn, Program};
use devcg_engine::{Access, DeviceType, Request, Verdict};

pub fn ctx(access_type: u32, major: u32, minor: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0..4].copy_from_slice(&access_type.to_le_bytes());
    c[4..8].copy_from_slice(&major.to_le_bytes());
    c[8..12].copy_from_slice(&minor.to_le_bytes());
    c
}

pub fn char_req(major: u32, minor: u32, access: u8) -> Request {
    Request::new(DeviceType::Char, major, minor, Access(access))
}

pub fn emulator(insns: &[Insn]) -> Result<Emulator, EmuError> {
    Emulator::new(&Program::new(insns.to_vec()))
}

/// Verdict of the emulator on a context, panicking on refusal.
pub fn verdict(insns: &[Insn], c: &[u8; 12]) -> Verdict {
    emulator(insns)
        .expect("program accepted")
        .run_ctx(c)
        .expect("run succeeds")
}

fn no_verifier(_: &[u8]) -> Result<(), std::io::Error> {
    Ok(())
}

/// The program on plain rbpf (interpreter, its verifier off): what the
/// emulator would answer without its checks and rewrites.
pub fn raw_rbpf(insns: &[Insn], c: &[u8; 12]) -> Result<u64, String> {
    let bytes = encode_all(insns);
    let mut vm = rbpf::EbpfVmRaw::new(None).map_err(|e| e.to_string())?;
    vm.set_verifier(no_verifier).map_err(|e| e.to_string())?;
    vm.set_program(&bytes).map_err(|e| e.to_string())?;
    let mut mem = *c;
    vm.execute_program(&mut mem).map_err(|e| e.to_string())
}

// Raw instruction constructors, kernel style.
pub fn alu64_imm(operation: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(op::ALU64 | operation | op::K, dst, 0, 0, imm)
}
pub fn alu32_imm(operation: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(op::ALU | operation | op::K, dst, 0, 0, imm)
}
pub fn alu64_reg(operation: u8, dst: u8, src: u8) -> Insn {
    Insn::new(op::ALU64 | operation | op::X, dst, src, 0, 0)
}
pub fn alu32_reg(operation: u8, dst: u8, src: u8) -> Insn {
    Insn::new(op::ALU | operation | op::X, dst, src, 0, 0)
}
pub fn mov64(dst: u8, imm: i32) -> Insn {
    alu64_imm(op::MOV, dst, imm)
}
pub fn mov64_reg(dst: u8, src: u8) -> Insn {
    alu64_reg(op::MOV, dst, src)
}
pub fn ldx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(op::LDX | op::MEM | size, dst, src, off, 0)
}
pub fn stx(size: u8, dst: u8, off: i16, src: u8) -> Insn {
    Insn::new(op::STX | op::MEM | size, dst, src, off, 0)
}
pub fn st(size: u8, dst: u8, off: i16, imm: i32) -> Insn {
    Insn::new(op::ST | op::MEM | size, dst, 0, off, imm)
}
pub fn jmp_imm(cond: u8, dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(op::JMP | cond | op::K, dst, 0, off, imm)
}
pub fn jmp32_imm(cond: u8, dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(op::JMP32 | cond | op::K, dst, 0, off, imm)
}
pub fn jmp_reg(cond: u8, dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(op::JMP | cond | op::X, dst, src, off, 0)
}
pub fn ja(off: i16) -> Insn {
    Insn::new(op::JMP | op::JA, 0, 0, off, 0)
}
pub fn call(id: i32) -> Insn {
    Insn::new(op::JMP | op::CALL, 0, 0, 0, id)
}
pub fn exit() -> Insn {
    Insn::new(op::JMP | op::EXIT, 0, 0, 0, 0)
}
/// `lddw dst, value`: two slots.
pub fn lddw(dst: u8, value: u64) -> [Insn; 2] {
    [
        Insn::new(op::LD | op::IMM | op::DW, dst, 0, 0, value as u32 as i32),
        Insn::new(0, 0, 0, 0, (value >> 32) as u32 as i32),
    ]
}
/// `r0 = v; exit`
pub fn ret(v: i32) -> [Insn; 2] {
    [mov64(0, v), exit()]
}

/// Concatenates instruction groups.
#[macro_export]
macro_rules! prog {
    ($($e:expr),* $(,)?) => {{
        let mut v: Vec<devcg_engine::insn::Insn> = Vec::new();
        $( v.extend_from_slice(&$crate::common::AsInsns::insns(&$e)); )*
        v
    }};
}

pub trait AsInsns {
    fn insns(&self) -> Vec<Insn>;
}
impl AsInsns for Insn {
    fn insns(&self) -> Vec<Insn> {
        vec![*self]
    }
}
impl<const N: usize> AsInsns for [Insn; N] {
    fn insns(&self) -> Vec<Insn> {
        self.to_vec()
    }
}
impl AsInsns for Vec<Insn> {
    fn insns(&self) -> Vec<Insn> {
        self.clone()
    }
}
