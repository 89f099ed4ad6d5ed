//! eBPF instructions as the kernel encodes them (`struct bpf_insn`), and the
//! `Program` a strategy hands to an executor.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Opcode fields (include/uapi/linux/bpf_common.h and bpf.h).
pub mod op {
    // Classes.
    pub const LD: u8 = 0x00;
    pub const LDX: u8 = 0x01;
    pub const ST: u8 = 0x02;
    pub const STX: u8 = 0x03;
    pub const ALU: u8 = 0x04;
    pub const JMP: u8 = 0x05;
    pub const JMP32: u8 = 0x06;
    pub const ALU64: u8 = 0x07;
    // Sizes.
    pub const W: u8 = 0x00;
    pub const H: u8 = 0x08;
    pub const B: u8 = 0x10;
    pub const DW: u8 = 0x18;
    // Modes.
    pub const IMM: u8 = 0x00;
    pub const MEM: u8 = 0x60;
    // Source.
    pub const K: u8 = 0x00;
    pub const X: u8 = 0x08;
    // ALU operations.
    pub const ADD: u8 = 0x00;
    pub const SUB: u8 = 0x10;
    pub const MUL: u8 = 0x20;
    pub const DIV: u8 = 0x30;
    pub const OR: u8 = 0x40;
    pub const AND: u8 = 0x50;
    pub const LSH: u8 = 0x60;
    pub const RSH: u8 = 0x70;
    pub const NEG: u8 = 0x80;
    pub const MOD: u8 = 0x90;
    pub const XOR: u8 = 0xa0;
    pub const MOV: u8 = 0xb0;
    pub const ARSH: u8 = 0xc0;
    pub const END: u8 = 0xd0;
    // Jump operations.
    pub const JA: u8 = 0x00;
    pub const JEQ: u8 = 0x10;
    pub const JGT: u8 = 0x20;
    pub const JGE: u8 = 0x30;
    pub const JSET: u8 = 0x40;
    pub const JNE: u8 = 0x50;
    pub const JSGT: u8 = 0x60;
    pub const JSGE: u8 = 0x70;
    pub const CALL: u8 = 0x80;
    pub const EXIT: u8 = 0x90;
    pub const JLT: u8 = 0xa0;
    pub const JLE: u8 = 0xb0;
    pub const JSLT: u8 = 0xc0;
    pub const JSLE: u8 = 0xd0;
    /// `src_reg` of an `lddw` whose immediate is a map fd (BPF_PSEUDO_MAP_FD).
    pub const PSEUDO_MAP_FD: u8 = 1;
    /// `src_reg` of a bpf-to-bpf call (BPF_PSEUDO_CALL).
    pub const PSEUDO_CALL: u8 = 1;
    /// `may_goto` (BPF_JMP|BPF_JCOND, `src_reg` BPF_MAY_GOTO = 0).
    pub const JCOND: u8 = 0xe0;
    /// Sign-extending load mode (cpu v4).
    pub const MEMSX: u8 = 0x80;
    /// Atomic mode of BPF_STX.
    pub const ATOMIC: u8 = 0xc0;
    /// Atomic operations (the `imm` of BPF_STX|BPF_ATOMIC).
    pub const ATOMIC_ADD: i32 = 0x00;
    pub const ATOMIC_OR: i32 = 0x40;
    pub const ATOMIC_AND: i32 = 0x50;
    pub const ATOMIC_XOR: i32 = 0xa0;
    /// Or-ed into ADD/OR/AND/XOR: the old value lands in `src`.
    pub const ATOMIC_FETCH: i32 = 0x01;
    pub const ATOMIC_XCHG: i32 = 0xe1;
    pub const ATOMIC_CMPXCHG: i32 = 0xf1;

    pub fn class(code: u8) -> u8 {
        code & 0x07
    }
    pub fn size(code: u8) -> u8 {
        code & 0x18
    }
    pub fn mode(code: u8) -> u8 {
        code & 0xe0
    }
    pub fn source(code: u8) -> u8 {
        code & 0x08
    }
    pub fn operation(code: u8) -> u8 {
        code & 0xf0
    }
}

/// Helper function numbers (enum bpf_func_id).
pub mod helper {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const MAP_DELETE_ELEM: i32 = 3;
    pub const KTIME_GET_NS: i32 = 5;
    pub const TRACE_PRINTK: i32 = 6;
    pub const GET_PRANDOM_U32: i32 = 7;
    pub const GET_SMP_PROCESSOR_ID: i32 = 8;
    pub const GET_CURRENT_PID_TGID: i32 = 14;
    pub const GET_CURRENT_UID_GID: i32 = 15;
    pub const GET_NUMA_NODE_ID: i32 = 42;
    pub const GET_CURRENT_CGROUP_ID: i32 = 80;
    pub const GET_LOCAL_STORAGE: i32 = 81;
    pub const JIFFIES64: i32 = 118;
    pub const KTIME_GET_BOOT_NS: i32 = 125;
    pub const KTIME_GET_COARSE_NS: i32 = 160;
    pub const KTIME_GET_TAI_NS: i32 = 208;

    pub fn name(id: i32) -> Option<&'static str> {
        Some(match id {
            MAP_LOOKUP_ELEM => "bpf_map_lookup_elem",
            MAP_UPDATE_ELEM => "bpf_map_update_elem",
            MAP_DELETE_ELEM => "bpf_map_delete_elem",
            KTIME_GET_NS => "bpf_ktime_get_ns",
            TRACE_PRINTK => "bpf_trace_printk",
            GET_PRANDOM_U32 => "bpf_get_prandom_u32",
            GET_SMP_PROCESSOR_ID => "bpf_get_smp_processor_id",
            GET_CURRENT_PID_TGID => "bpf_get_current_pid_tgid",
            GET_CURRENT_UID_GID => "bpf_get_current_uid_gid",
            GET_NUMA_NODE_ID => "bpf_get_numa_node_id",
            GET_CURRENT_CGROUP_ID => "bpf_get_current_cgroup_id",
            GET_LOCAL_STORAGE => "bpf_get_local_storage",
            JIFFIES64 => "bpf_jiffies64",
            KTIME_GET_BOOT_NS => "bpf_ktime_get_boot_ns",
            KTIME_GET_COARSE_NS => "bpf_ktime_get_coarse_ns",
            KTIME_GET_TAI_NS => "bpf_ktime_get_tai_ns",
            _ => return None,
        })
    }
}

/// Registers r0..r10; r10 is the read-only frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u8);

pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R8: Reg = Reg(8);
pub const R9: Reg = Reg(9);
pub const R10: Reg = Reg(10);

/// One 8-byte instruction slot. An `lddw` takes two slots: the second has
/// code 0 and carries the upper half of the constant in `imm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub const SIZE: usize = 8;

    pub fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The kernel's little-endian layout: code, dst:4|src:4, off, imm.
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; 8]) -> Self {
        Insn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// The first slot of a 16-byte `lddw`.
    pub fn is_lddw(&self) -> bool {
        self.code == op::LD | op::IMM | op::DW
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("program is {0} bytes, not a multiple of 8")]
    Length(usize),
    #[error("program is empty")]
    Empty,
}

/// Splits raw bytes into instruction slots.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if !bytes.len().is_multiple_of(Insn::SIZE) {
        return Err(DecodeError::Length(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Insn::decode(c.try_into().expect("8 bytes")))
        .collect())
}

pub fn encode_all(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.encode()).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapKind {
    Hash,
    Array,
}

/// A map a program refers to, with the contents the strategy put in it.
/// `lddw rX, map` carries the map's index in this list as its immediate,
/// with `src_reg = BPF_PSEUDO_MAP_FD`; loaders relocate it to a real fd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapSpec {
    pub name: String,
    pub kind: MapKind,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A device program: instructions plus, for map strategies, its maps.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Program {
    pub insns: Vec<Insn>,
    pub maps: Vec<MapSpec>,
}

impl Program {
    pub fn new(insns: Vec<Insn>) -> Self {
        Program {
            insns,
            maps: Vec::new(),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Program::new(decode_all(bytes)?))
    }

    /// The raw `bpf_insn` array, as passed to BPF_PROG_LOAD.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_all(&self.insns)
    }

    /// Instruction slots (an `lddw` counts two), the kernel's `insn_cnt`.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encode_decode_round_trip(code: u8, dst in 0u8..16, src in 0u8..16, off: i16, imm: i32) {
            let insn = Insn::new(code, dst, src, off, imm);
            prop_assert_eq!(Insn::decode(&insn.encode()), insn);
        }
    }

    #[test]
    fn encoding_is_the_kernels() {
        // r2 = *(u32 *)(r1 + 4): code 0x61, dst 2, src 1, off 4.
        let insn = Insn::new(op::LDX | op::MEM | op::W, 2, 1, 4, 0);
        assert_eq!(insn.encode(), [0x61, 0x12, 4, 0, 0, 0, 0, 0]);
        // if w3 != -1 goto +5: imm little-endian.
        let insn = Insn::new(op::JMP32 | op::JNE | op::K, 3, 0, 5, -1);
        assert_eq!(insn.encode(), [0x56, 0x03, 5, 0, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn bad_lengths_are_refused() {
        assert_eq!(decode_all(&[0; 12]), Err(DecodeError::Length(12)));
        assert_eq!(decode_all(&[]), Err(DecodeError::Empty));
    }
}
