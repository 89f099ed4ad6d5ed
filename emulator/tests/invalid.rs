//! Every class of invalid program gets a typed error, never a panic or a hang.

mod common;

use common::*;
use devcg_emulator::{EmuError, Emulator};
use devcg_engine::insn::{encode_all, helper, op, Insn, MapKind, MapSpec, Program};
use rstest::rstest;

#[rstest]
#[case::empty(vec![], EmuError::Empty)]
#[case::twelve_bytes(vec![0; 12], EmuError::Length { len: 12 })]
#[case::one_byte(vec![0x95], EmuError::Length { len: 1 })]
fn bad_lengths(#[case] bytes: Vec<u8>, #[case] want: EmuError) {
    assert_eq!(Emulator::from_bytes(&bytes).unwrap_err(), want);
}

#[test]
fn empty_program_value() {
    assert_eq!(
        Emulator::new(&Program::default()).unwrap_err(),
        EmuError::Empty
    );
}

fn bad(code: u8) -> Insn {
    Insn::new(code, 0, 0, 0, 0)
}

#[rstest]
// Structure.
#[case::unknown_class_ld(prog![bad(op::LD | 0x60 | op::W), ret(1)], EmuError::UnknownOpcode { insn: 0, code: 0x60 })]
#[case::unknown_alu_op(prog![bad(op::ALU64 | 0xf0), ret(1)], EmuError::UnknownOpcode { insn: 0, code: 0xf7 })]
#[case::unknown_jmp_op(prog![bad(op::JMP | 0xf0), ret(1)], EmuError::UnknownOpcode { insn: 0, code: 0xf5 })]
#[case::call_in_jmp32(prog![bad(op::JMP32 | op::CALL), ret(1)], EmuError::UnknownOpcode { insn: 0, code: 0x86 })]
#[case::ldx_mode(prog![bad(op::LDX | 0x20 | op::W), ret(1)], EmuError::UnknownOpcode { insn: 0, code: 0x21 })]
#[case::register_11(prog![Insn::new(op::ALU64 | op::MOV | op::K, 11, 0, 0, 1), ret(1)], EmuError::BadRegister { insn: 0, reg: 11 })]
#[case::src_register_15(prog![Insn::new(op::ALU64 | op::MOV | op::X, 0, 15, 0, 0), ret(1)], EmuError::BadRegister { insn: 0, reg: 15 })]
#[case::write_r10_alu(prog![mov64(10, 0), ret(1)], EmuError::WriteR10 { insn: 0 })]
#[case::write_r10_ldx(prog![ldx(op::W, 10, 1, 0), ret(1)], EmuError::WriteR10 { insn: 0 })]
#[case::write_r10_lddw(prog![lddw(10, 5), ret(1)], EmuError::WriteR10 { insn: 0 })]
#[case::jump_past_end(prog![jmp_imm(op::JEQ, 1, 0, 5), ret(1)], EmuError::JumpOutOfRange { insn: 0, target: 6 })]
#[case::jump_before_start(prog![mov64(0, 1), ja(-3), exit()], EmuError::JumpOutOfRange { insn: 1, target: -1 })]
#[case::jump_into_lddw(prog![mov64(0, 1), jmp_imm(op::JEQ, 0, 0, 1), lddw(2, 1), exit()], EmuError::JumpIntoLddw { insn: 1, target: 3 })]
#[case::lddw_cut_off(prog![mov64(0, 1), exit(), Insn::new(op::LD | op::IMM | op::DW, 0, 0, 0, 0)], EmuError::BadLddw { insn: 2, what: "its second slot is missing" })]
#[case::lddw_reserved_off(prog![Insn::new(op::LD | op::IMM | op::DW, 0, 0, 1, 0), Insn::new(0, 0, 0, 0, 0), ret(1)], EmuError::Reserved { insn: 0, what: "BPF_LD_IMM64 uses reserved fields" })]
#[case::lddw_bad_pseudo(prog![Insn::new(op::LD | op::IMM | op::DW, 0, 2, 0, 0), Insn::new(0, 0, 0, 0, 0), ret(1)], EmuError::Unsupported { insn: 0, what: "lddw with pseudo source 2".into() })]
#[case::map_without_maps(prog![Insn::new(op::LD | op::IMM | op::DW, 1, 1, 0, 0), Insn::new(0, 0, 0, 0, 0), ret(1)], EmuError::BadMapIndex { insn: 0, index: 0 })]
#[case::falls_off(prog![mov64(0, 1)], EmuError::FallsOffEnd { insn: 0 })]
#[case::ends_with_cond_jump(prog![mov64(0, 1), jmp_imm(op::JEQ, 0, 1, -2)], EmuError::FallsOffEnd { insn: 1 })]
#[case::ends_with_lddw(prog![mov64(0, 1), lddw(2, 1)], EmuError::FallsOffEnd { insn: 2 })]
#[case::unreachable(prog![ret(1), mov64(0, 0), exit()], EmuError::Unreachable { insn: 2 })]
#[case::exit_reserved(prog![mov64(0, 1), Insn::new(op::JMP | op::EXIT, 0, 0, 0, 3)], EmuError::Reserved { insn: 1, what: "BPF_EXIT uses reserved fields" })]
#[case::ja_reserved(prog![mov64(0, 1), Insn::new(op::JMP | op::JA, 1, 0, 0, 0), exit()], EmuError::Reserved { insn: 1, what: "BPF_JA uses reserved fields" })]
#[case::jmp_k_with_src(prog![mov64(0, 1), Insn::new(op::JMP | op::JEQ | op::K, 0, 2, 0, 0), exit()], EmuError::Reserved { insn: 1, what: "BPF_JMP/JMP32 uses reserved fields" })]
#[case::st_with_src(prog![Insn::new(op::ST | op::MEM | op::W, 10, 1, -4, 0), ret(1)], EmuError::Reserved { insn: 0, what: "BPF_ST uses reserved fields" })]
#[case::stx_with_imm(prog![Insn::new(op::STX | op::MEM | op::W, 10, 1, -4, 1), ret(1)], EmuError::Reserved { insn: 0, what: "BPF_STX uses reserved fields" })]
#[case::end_width(prog![mov64(0, 1), Insn::new(op::ALU | op::END, 0, 0, 0, 24), exit()], EmuError::Reserved { insn: 1, what: "BPF_END uses reserved fields" })]
#[case::div_by_zero_imm(prog![mov64(0, 1), alu32_imm(op::MOD, 0, 0), exit()], EmuError::DivByZero { insn: 1 })]
#[case::shift_64(prog![mov64(0, 1), alu64_imm(op::RSH, 0, 64), exit()], EmuError::BadShift { insn: 1, shift: 64, width: 64 })]
#[case::shift_negative(prog![mov64(0, 1), alu64_imm(op::ARSH, 0, -1), exit()], EmuError::BadShift { insn: 1, shift: -1, width: 64 })]
#[case::ld_abs(prog![Insn::new(op::LD | 0x20 | op::B, 0, 0, 0, 0), ret(1)], EmuError::NotAllowed { insn: 0, what: "BPF_LD_[ABS|IND] (only socket filters may use them)" })]
// Registers.
#[case::uninit_r0_at_exit(prog![exit()], EmuError::UninitRegister { insn: 0, reg: 0 })]
#[case::uninit_src(prog![mov64(0, 0), alu64_reg(op::ADD, 0, 3), exit()], EmuError::UninitRegister { insn: 1, reg: 3 })]
#[case::uninit_dst(prog![alu64_imm(op::ADD, 4, 1), ret(1)], EmuError::UninitRegister { insn: 0, reg: 4 })]
#[case::uninit_on_one_path(prog![ldx(op::W, 2, 1, 4), jmp_imm(op::JEQ, 2, 0, 1), mov64(3, 1), mov64_reg(0, 3), exit()], EmuError::UninitRegister { insn: 3, reg: 3 })]
// Context.
#[case::ctx_write(prog![st(op::W, 1, 0, 1), ret(1)], EmuError::CtxAccess { insn: 0, off: 0, size: 4, reason: "the context is read-only" })]
#[case::ctx_stx(prog![mov64(2, 0), stx(op::W, 1, 8, 2), ret(1)], EmuError::CtxAccess { insn: 1, off: 8, size: 4, reason: "the context is read-only" })]
#[case::ctx_out_of_bounds(prog![ldx(op::W, 0, 1, 12), ret(1)], EmuError::CtxAccess { insn: 0, off: 12, size: 4, reason: "outside struct bpf_cgroup_dev_ctx" })]
#[case::ctx_negative(prog![ldx(op::W, 0, 1, -4), ret(1)], EmuError::CtxAccess { insn: 0, off: -4, size: 4, reason: "outside struct bpf_cgroup_dev_ctx" })]
#[case::ctx_dw(prog![ldx(op::DW, 0, 1, 0), ret(1)], EmuError::CtxAccess { insn: 0, off: 0, size: 8, reason: "wider than the field" })]
#[case::ctx_dw_major(prog![ldx(op::DW, 0, 1, 4), ret(1)], EmuError::CtxAccess { insn: 0, off: 4, size: 8, reason: "misaligned" })]
#[case::ctx_narrow_major(prog![ldx(op::H, 0, 1, 4), ret(1)], EmuError::CtxAccess { insn: 0, off: 4, size: 2, reason: "major and minor allow only 4-byte loads" })]
#[case::ctx_narrow_minor(prog![ldx(op::B, 0, 1, 9), ret(1)], EmuError::CtxAccess { insn: 0, off: 9, size: 1, reason: "major and minor allow only 4-byte loads" })]
#[case::ctx_narrow_misaligned(prog![ldx(op::H, 0, 1, 1), ret(1)], EmuError::CtxAccess { insn: 0, off: 1, size: 2, reason: "misaligned" })]
#[case::ctx_moved(prog![alu64_imm(op::ADD, 1, 4), ldx(op::W, 0, 1, 0), ret(1)], EmuError::CtxAccess { insn: 1, off: 4, size: 4, reason: "through a moved context pointer (the kernel refuses it)" })]
// Stack.
#[case::stack_below(prog![st(op::DW, 10, -520, 0), ret(1)], EmuError::StackAccess { insn: 0, off: -520, size: 8, reason: "outside the 512-byte stack" })]
#[case::stack_above(prog![st(op::W, 10, 0, 0), ret(1)], EmuError::StackAccess { insn: 0, off: 0, size: 4, reason: "outside the 512-byte stack" })]
#[case::stack_straddles_top(prog![st(op::DW, 10, -4, 0), ret(1)], EmuError::StackAccess { insn: 0, off: -4, size: 8, reason: "outside the 512-byte stack" })]
#[case::stack_misaligned(prog![st(op::W, 10, -6, 0), ret(1)], EmuError::StackAccess { insn: 0, off: -6, size: 4, reason: "misaligned" })]
#[case::stack_partial_pointer(prog![stx(op::DW, 10, -8, 1), ldx(op::W, 0, 10, -8), ret(1)], EmuError::StackAccess { insn: 1, off: -8, size: 4, reason: "partial read of a spilled pointer" })]
#[case::stack_partial_spill(prog![stx(op::W, 10, -8, 1), ret(1)], EmuError::PointerLeak { insn: 0, reg: 1, reason: "partial spill of a pointer" })]
// Pointers.
#[case::return_pointer(prog![mov64_reg(0, 1), exit()], EmuError::PointerLeak { insn: 1, reg: 0, reason: "a pointer returned" })]
#[case::scalar_deref(prog![mov64(2, 0), ldx(op::W, 0, 2, 0), ret(1)], EmuError::BadPointer { insn: 1, reg: 2, reason: "a scalar used as a pointer" })]
#[case::pointer_and(prog![mov64_reg(2, 10), alu64_imm(op::AND, 2, -8), ret(1)], EmuError::PointerArithmetic { insn: 1, reg: 2, reason: "only += and -= of a constant are emulated on pointers" })]
#[case::pointer_plus_variable(prog![ldx(op::W, 3, 1, 4), mov64_reg(2, 10), alu64_reg(op::ADD, 2, 3), ret(1)], EmuError::PointerArithmetic { insn: 2, reg: 2, reason: "variable offset added to a pointer" })]
#[case::scalar_plus_pointer(prog![mov64(2, 0), alu64_reg(op::ADD, 2, 10), ret(1)], EmuError::PointerArithmetic { insn: 1, reg: 10, reason: "a pointer as the operand of arithmetic" })]
#[case::pointer32(prog![mov64_reg(2, 10), alu32_imm(op::ADD, 2, -8), ret(1)], EmuError::PointerArithmetic { insn: 1, reg: 2, reason: "32-bit arithmetic on a pointer" })]
#[case::pointer_or_scalar(prog![ldx(op::W, 2, 1, 4), mov64_reg(3, 10), jmp_imm(op::JEQ, 2, 0, 1), mov64(3, 0), ldx(op::W, 0, 3, -4), ret(1)], EmuError::UnknownValue { insn: 4, reg: 3 })]
// Helpers and exit.
#[case::unknown_helper(prog![call(4), ret(1)], EmuError::UnknownHelper { insn: 0, id: 4 })]
#[case::tail_call(prog![call(12), ret(1)], EmuError::UnknownHelper { insn: 0, id: 12 })]
#[case::lookup_without_map(prog![mov64(1, 0), call(helper::MAP_LOOKUP_ELEM), ret(1)], EmuError::HelperArg { insn: 1, arg: 1, reason: "expected a map (lddw rX, map)" })]
#[case::return_two(prog![ret(2)], EmuError::ReturnRange { insn: 1, min: 2, max: 2 })]
#[case::return_minus_one(prog![ret(-1)], EmuError::ReturnRange { insn: 1, min: u64::MAX, max: u64::MAX })]
#[case::return_ctx_field(prog![ldx(op::B, 0, 1, 2), exit()], EmuError::ReturnRange { insn: 1, min: 0, max: 255 })]
fn invalid_programs(#[case] p: Vec<Insn>, #[case] want: EmuError) {
    assert_eq!(Emulator::new(&Program::new(p.clone())).unwrap_err(), want);
    // The same refusal through raw bytes.
    assert_eq!(Emulator::from_bytes(&encode_all(&p)).unwrap_err(), want);
}

fn map(
    kind: MapKind,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
) -> MapSpec {
    MapSpec {
        name: "m".into(),
        kind,
        key_size,
        value_size,
        max_entries,
        entries,
    }
}

fn ld_map(dst: u8, index: i32) -> [Insn; 2] {
    [
        Insn::new(op::LD | op::IMM | op::DW, dst, op::PSEUDO_MAP_FD, 0, index),
        Insn::new(0, 0, 0, 0, 0),
    ]
}

/// r0 = lookup(map 0, key at r10-8 (8 bytes, initialized)); then `tail`.
fn lookup_then(tail: Vec<Insn>) -> Vec<Insn> {
    let mut p = prog![
        st(op::DW, 10, -8, 0),
        mov64_reg(2, 10),
        alu64_imm(op::ADD, 2, -8)
    ];
    p.extend(ld_map(1, 0));
    p.push(call(helper::MAP_LOOKUP_ELEM));
    p.extend(tail);
    p
}

fn hash8() -> MapSpec {
    map(MapKind::Hash, 8, 4, 4, vec![])
}

#[rstest]
#[case::null_deref(vec![hash8()], lookup_then(prog![ldx(op::W, 0, 0, 0), ret(1)]), EmuError::BadPointer { insn: 6, reg: 0, reason: "possibly NULL map value dereferenced; compare it with 0 first" })]
#[case::value_oob(vec![hash8()], lookup_then(prog![jmp_imm(op::JEQ, 0, 0, 3), ldx(op::W, 0, 0, 4), ret(1), ret(0)]), EmuError::MapValueAccess { insn: 7, map: 0, off: 4, size: 4, reason: "outside the value" })]
#[case::value_negative(vec![hash8()], lookup_then(prog![jmp_imm(op::JEQ, 0, 0, 3), ldx(op::B, 0, 0, -1), ret(1), ret(0)]), EmuError::MapValueAccess { insn: 7, map: 0, off: -1, size: 1, reason: "outside the value" })]
#[case::pointer_into_value(vec![hash8()], lookup_then(prog![jmp_imm(op::JEQ, 0, 0, 3), stx(op::W, 0, 0, 10), ret(1), ret(0)]), EmuError::PointerLeak { insn: 7, reg: 10, reason: "a pointer stored into a map value" })]
#[case::arith_on_nullable(vec![hash8()], lookup_then(prog![alu64_imm(op::ADD, 0, 1), ret(1)]), EmuError::PointerArithmetic { insn: 6, reg: 0, reason: "arithmetic on a possibly NULL map value" })]
#[case::return_map_value(vec![hash8()], lookup_then(prog![exit()]), EmuError::PointerLeak { insn: 6, reg: 0, reason: "a pointer returned" })]
#[case::map_deref(vec![hash8()], prog![ld_map(2, 0), ldx(op::W, 0, 2, 0), ret(1)], EmuError::BadPointer { insn: 2, reg: 2, reason: "a map pointer cannot be dereferenced" })]
#[case::map_index(vec![hash8()], prog![ld_map(2, 1), ret(1)], EmuError::BadMapIndex { insn: 0, index: 1 })]
#[case::key_too_short(vec![map(MapKind::Hash, 16, 4, 4, vec![])], lookup_then(prog![ret(1)]), EmuError::HelperArg { insn: 5, arg: 2, reason: "memory outside the stack" })]
#[case::key_uninit(vec![map(MapKind::Hash, 4, 4, 4, vec![])], prog![mov64_reg(2, 10), alu64_imm(op::ADD, 2, -4), ld_map(1, 0), call(helper::MAP_LOOKUP_ELEM), ret(1)], EmuError::HelperArg { insn: 4, arg: 2, reason: "reads uninitialized stack" })]
#[case::key_is_ctx(vec![hash8()], prog![mov64_reg(2, 1), ld_map(1, 0), call(helper::MAP_LOOKUP_ELEM), ret(1)], EmuError::HelperArg { insn: 3, arg: 2, reason: "expected a pointer to the stack or to a map value" })]
#[case::r1_clobbered(vec![hash8()], lookup_then(prog![mov64_reg(0, 1), exit()]), EmuError::UninitRegister { insn: 6, reg: 1 })]
fn invalid_map_programs(
    #[case] maps: Vec<MapSpec>,
    #[case] insns: Vec<Insn>,
    #[case] want: EmuError,
) {
    assert_eq!(Emulator::new(&Program { insns, maps }).unwrap_err(), want);
}

#[rstest]
#[case::zero_key(map(MapKind::Hash, 0, 4, 1, vec![]), "key_size, value_size and max_entries must be nonzero")]
#[case::zero_entries(map(MapKind::Array, 4, 4, 0, vec![]), "key_size, value_size and max_entries must be nonzero")]
#[case::array_key(map(MapKind::Array, 8, 4, 1, vec![]), "an array map has 4-byte keys")]
#[case::entry_size(map(MapKind::Hash, 4, 4, 1, vec![(vec![0; 3], vec![0; 4])]), "an entry has a 3-byte key and a 4-byte value")]
#[case::too_many(map(MapKind::Hash, 4, 4, 1, vec![(vec![0; 4], vec![0; 4]), (vec![1; 4], vec![0; 4])]), "2 entries exceed max_entries 1")]
#[case::array_index(map(MapKind::Array, 4, 4, 2, vec![(2u32.to_le_bytes().to_vec(), vec![0; 4])]), "entry index 2 is not below max_entries 2")]
#[case::huge(map(MapKind::Array, 4, 1 << 20, 1 << 20, vec![]), "1048576 values of 1048576 bytes are too many to emulate")]
fn bad_maps(#[case] m: MapSpec, #[case] reason: &str) {
    let program = Program {
        insns: prog![ret(1)],
        maps: vec![m],
    };
    assert_eq!(
        Emulator::new(&program).unwrap_err(),
        EmuError::BadMap {
            map: 0,
            reason: reason.into()
        }
    );
}

/// Every error names its instruction in its message.
#[test]
fn messages_name_the_instruction() {
    let e = Emulator::new(&Program::new(prog![
        mov64(0, 1),
        alu64_imm(op::DIV, 0, 0),
        exit()
    ]))
    .unwrap_err();
    assert_eq!(e.to_string(), "instruction 1: division by zero immediate");
}
