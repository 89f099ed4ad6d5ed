//! Every place found where rbpf 0.4.1's interpreter differs from the kernel
//! (`___bpf_prog_run` after the verifier's fixups), each with a test that
//! fails without the emulator's handling. Where it helps, the test also
//! shows what plain rbpf does with the same program.

mod common;

use common::*;
use devcg_emulator::{EmuError, Emulator};
use devcg_engine::insn::{helper, op, Insn, MapKind, MapSpec, Program};
use devcg_engine::Verdict;
use rstest::rstest;

const MAJOR_MAX: [u8; 12] = [2, 0, 2, 0, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0];

/// `if r4 == -1` where r4 holds the zero-extended major 0xffffffff.
/// Kernel: r4 = 0x00000000_ffffffff, imm sign-extends to all ones: not
/// equal, deny. rbpf zero-extends the imm and says equal.
#[test]
fn gap_jmp64_imm_is_sign_extended() {
    let p = prog![
        ldx(op::W, 4, 1, 4),
        jmp_imm(op::JEQ, 4, -1, 2),
        ret(0),
        ret(1)
    ];
    assert_eq!(raw_rbpf(&p, &MAJOR_MAX), Ok(1), "rbpf zero-extends");
    assert_eq!(verdict(&p, &MAJOR_MAX), Verdict::Deny);
}

/// All six unsigned 64-bit conditions against negative immediates, on
/// values around the sign-extended and zero-extended constants.
#[rstest]
fn gap_jmp64_imm_sign_extension_every_condition(
    #[values(op::JEQ, op::JNE, op::JGT, op::JGE, op::JLT, op::JLE)] cond: u8,
    #[values(-1, -2, i32::MIN, -100)] imm: i32,
    #[values(0, 1, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, 0xffff_ffff, 0xffff_fffe, u64::MAX, u64::MAX - 1, u64::MAX - 2, 0xffff_ffff_8000_0000, 0xffff_ffff_7fff_ffff, 0xffff_ffff_ffff_ff9c)]
    value: u64,
) {
    let k = imm as i64 as u64;
    let want = match cond {
        op::JEQ => value == k,
        op::JNE => value != k,
        op::JGT => value > k,
        op::JGE => value >= k,
        op::JLT => value < k,
        _ => value <= k,
    };
    let p = prog![lddw(2, value), jmp_imm(cond, 2, imm, 2), ret(0), ret(1)];
    assert_eq!(
        verdict(&p, &[0; 12]),
        Verdict::from_allowed(want),
        "{value:#x} cond {cond:#x} {imm}"
    );
}

/// `w2 %= w3` with w3 = 0: the kernel leaves w2 zero-extended (its fixup
/// ends in `w2 = w2`); rbpf leaves the whole 64-bit register.
#[test]
fn gap_mod32_by_zero_zero_extends() {
    let p = prog![
        lddw(2, 0x1_0000_0005),
        alu32_imm(op::MOV, 3, 0),
        alu32_reg(op::MOD, 2, 3),
        mov64_reg(0, 2),
        alu64_imm(op::RSH, 0, 32),
        alu64_imm(op::AND, 0, 1),
        exit(),
    ];
    assert_eq!(raw_rbpf(&p, &[0; 12]), Ok(1), "rbpf keeps the upper half");
    assert_eq!(verdict(&p, &[0; 12]), Verdict::Deny);
}

/// Division and modulo by a zero register, both widths: div gives 0, mod
/// leaves dst (zero-extended at 32 bits). Only mod32 differs in rbpf.
#[rstest]
#[case::div64(op::ALU64, op::DIV, 0)]
#[case::mod64(op::ALU64, op::MOD, 0x1_0000_0005)]
#[case::div32(op::ALU, op::DIV, 0)]
#[case::mod32(op::ALU, op::MOD, 5)]
fn gap_division_by_zero_register(#[case] class: u8, #[case] operation: u8, #[case] want: u64) {
    // r0 = (r2 == want) after r2 <op>= 0
    let p = prog![
        lddw(2, 0x1_0000_0005),
        mov64(3, 0),
        Insn::new(class | operation | op::X, 2, 3, 0, 0),
        lddw(4, want),
        jmp_reg(op::JEQ, 2, 4, 2),
        ret(0),
        ret(1),
    ];
    assert_eq!(verdict(&p, &[0; 12]), Verdict::Allow);
}

/// `r2 = -r2` with r2 = i64::MIN: the kernel wraps; rbpf computes
/// `-(x as i64)`, which panics when overflow checks are on (debug builds,
/// the test profile).
#[test]
fn gap_neg64_of_min_does_not_panic() {
    let p = prog![
        lddw(2, 1 << 63),
        Insn::new(op::ALU64 | op::NEG, 2, 0, 0, 0),
        mov64_reg(0, 2),
        alu64_imm(op::RSH, 0, 63),
        exit(),
    ];
    let raw = std::panic::catch_unwind(|| raw_rbpf(&p, &[0; 12]));
    if cfg!(debug_assertions) {
        assert!(
            raw.is_err(),
            "rbpf panics on -i64::MIN with overflow checks"
        );
    }
    assert_eq!(verdict(&p, &[0; 12]), Verdict::Allow);
}

/// rbpf has no instruction budget: a loop would hang it. Back-edges are
/// unrolled into copies; past the last copy the run stops with `Budget`.
#[test]
fn gap_loops_are_bounded() {
    // 0: ja -1, forever: refused as the kernel does.
    let forever = prog![ja(-1)];
    assert_eq!(
        emulator(&forever).unwrap_err(),
        EmuError::InfiniteLoop { insn: 0 }
    );

    // Count down from the major: fine for small ones, over budget for big.
    let countdown = prog![
        ldx(op::W, 2, 1, 4),
        jmp_imm(op::JEQ, 2, 0, 2), // 1: -> 4
        alu64_imm(op::SUB, 2, 1),
        ja(-3), // 3: -> 1
        ret(1), // 4
    ];
    let emu = emulator(&countdown).unwrap();
    let budget = emu.loop_budget();
    assert!(budget >= 100, "budget {budget}");
    assert_eq!(emu.run_ctx(&ctx(2, 10, 0)).unwrap(), Verdict::Allow);
    assert_eq!(
        emu.run_ctx(&ctx(2, budget as u32, 0)).unwrap(),
        Verdict::Allow
    );
    assert_eq!(
        emu.run_ctx(&ctx(2, budget as u32 + 1, 0)),
        Err(EmuError::Budget { insn: 3, budget })
    );
    assert_eq!(
        emu.run_ctx(&ctx(2, u32::MAX, 0)),
        Err(EmuError::Budget { insn: 3, budget })
    );
}

/// A bounded loop the kernel accepts: sum 1..=10, allow if 55.
#[test]
fn bounded_loop_gives_the_kernels_answer() {
    let p = prog![
        mov64(2, 0),
        mov64(3, 0),
        alu64_imm(op::ADD, 2, 1), // 2
        alu64_reg(op::ADD, 3, 2),
        jmp_imm(op::JLT, 2, 10, -3), // 4: -> 2
        jmp_imm(op::JEQ, 3, 55, 2),
        ret(0),
        ret(1),
    ];
    assert_eq!(verdict(&p, &[0; 12]), Verdict::Allow);
}

/// Kernel 6.6+ reads `off` of ALU and load instructions (sdiv/smod, movsx,
/// sign-extending loads, bswap, gotol); rbpf ignores `off` or does not know
/// the opcode (its interpreter hits `unreachable!`). The emulator lowers
/// what needs no scratch register and runs the rest on its own
/// interpreter (`tests/v4.rs` checks their values).
#[rstest]
#[case::sdiv(Insn::new(op::ALU64 | op::DIV | op::X, 2, 3, 1, 0), false)]
#[case::smod32(Insn::new(op::ALU | op::MOD | op::K, 2, 0, 1, 3), false)]
#[case::movsx8(Insn::new(op::ALU64 | op::MOV | op::X, 2, 3, 8, 0), true)]
#[case::movsx32_16(Insn::new(op::ALU | op::MOV | op::X, 2, 3, 16, 0), true)]
#[case::bswap(Insn::new(op::ALU64 | op::END, 2, 0, 0, 16), true)]
#[case::gotol(Insn::new(op::JMP32 | op::JA, 0, 0, 0, 0), true)]
#[case::atomic(Insn::new(op::STX | 0xc0 | op::DW, 10, 2, -8, 0), false)]
fn gap_cpu_v4_and_other_unemulated_instructions_are_lowered_or_stepped(
    #[case] insn: Insn,
    #[case] on_rbpf: bool,
) {
    let p = prog![
        st(op::DW, 10, -8, 0),
        mov64(2, 7),
        mov64(3, 2),
        insn,
        ret(1)
    ];
    let emu = emulator(&p).unwrap();
    assert_eq!(emu.runs_on_rbpf(), on_rbpf);
    assert_eq!(emu.run_ctx(&[0; 12]), Ok(Verdict::Allow));
}

/// What rbpf would do with `sdiv` -7 / 2: an unsigned division. The
/// emulator's own interpreter divides signed, as the kernel.
#[test]
fn gap_sdiv_would_divide_unsigned_in_rbpf() {
    let p = prog![
        mov64(2, -7),
        mov64(3, 2),
        Insn::new(op::ALU64 | op::DIV | op::X, 2, 3, 1, 0),
        mov64_reg(0, 2),
        exit(),
    ];
    // Kernel: -3. rbpf: (2^64 - 7) / 2.
    assert_eq!(raw_rbpf(&p, &[0; 12]), Ok((u64::MAX - 6) / 2));
    let checked = prog![
        mov64(2, -7),
        mov64(3, 2),
        Insn::new(op::ALU64 | op::DIV | op::X, 2, 3, 1, 0),
        jmp_imm(op::JEQ, 2, -3, 2),
        ret(0),
        ret(1),
    ];
    assert_eq!(verdict(&checked, &[0; 12]), Verdict::Allow);
}

/// rbpf's interpreter panics (`unreachable!`) on opcodes and widths its own
/// verifier would catch; with our verifier they are typed errors.
#[rstest]
#[case::bad_end_width(Insn::new(op::ALU | op::END, 2, 0, 0, 8))]
#[case::unknown_alu(Insn::new(op::ALU64 | 0xe0, 2, 0, 0, 0))]
#[case::unknown_jmp(Insn::new(op::JMP | 0xe0, 2, 0, 0, 0))]
fn gap_rbpf_panics_become_errors(#[case] insn: Insn) {
    let p = prog![mov64(2, 1), insn, ret(1)];
    let raw = std::panic::catch_unwind(|| raw_rbpf(&p, &[0; 12]));
    assert!(raw.is_err(), "rbpf's interpreter panics");
    assert!(emulator(&p).is_err());
}

/// rbpf computes jump targets as `insn_ptr as i16 + off`: past 32767 slots
/// a jump lands elsewhere (or panics). The kernel loads up to 1M
/// instructions; the emulator runs longer programs on its own interpreter.
#[test]
fn gap_rbpf_jump_arithmetic_is_i16() {
    let mut p = vec![mov64(0, 0); 33_000];
    p.extend(prog![jmp_imm(op::JEQ, 0, 0, 2), ret(0), ret(1)]);
    let raw = std::panic::catch_unwind(|| raw_rbpf(&p, &[0; 12]));
    assert!(!matches!(raw, Ok(Ok(1))), "rbpf cannot take this jump");
    let emu = emulator(&p).unwrap();
    assert!(!emu.runs_on_rbpf());
    assert_eq!(emu.run_ctx(&[0; 12]), Ok(Verdict::Allow));
    let mut too_long = vec![mov64(0, 0); 1_000_001];
    too_long.push(exit());
    assert!(matches!(
        emulator(&too_long),
        Err(EmuError::TooLarge {
            limit: 1_000_000,
            ..
        })
    ));
    // Just below the limit works.
    let mut p = vec![mov64(0, 0); 32_000];
    p.extend(prog![jmp_imm(op::JEQ, 0, 0, 2), ret(0), ret(1)]);
    assert_eq!(verdict(&p, &[0; 12]), Verdict::Allow);
}

/// rbpf's interpreter `unreachable!()`s when control runs past the end.
#[test]
fn gap_falling_off_the_end_is_refused() {
    let p = prog![mov64(0, 1)];
    assert!(std::panic::catch_unwind(|| raw_rbpf(&p, &[0; 12])).is_err());
    assert_eq!(emulator(&p).unwrap_err(), EmuError::FallsOffEnd { insn: 0 });
    let p = prog![mov64(0, 1), jmp_imm(op::JEQ, 0, 1, -2)];
    assert_eq!(emulator(&p).unwrap_err(), EmuError::FallsOffEnd { insn: 1 });
}

/// rbpf zero-initializes registers; the kernel refuses reading unwritten ones.
#[test]
fn gap_uninitialized_register_read_is_refused() {
    let p = prog![mov64_reg(0, 5), exit()];
    assert_eq!(raw_rbpf(&p, &[0; 12]), Ok(0));
    assert_eq!(
        emulator(&p).unwrap_err(),
        EmuError::UninitRegister { insn: 0, reg: 5 }
    );
}

/// rbpf keeps r1..r5 across a helper call; the kernel clobbers them and
/// refuses reads.
#[test]
fn gap_helper_call_clobbers_r1_to_r5() {
    let map = hash_map(vec![]);
    let mut p = prog![
        st(op::W, 10, -4, 0),
        mov64_reg(2, 10),
        alu64_imm(op::ADD, 2, -4)
    ];
    p.extend(ld_map(1, 0));
    p.extend(prog![
        call(helper::MAP_LOOKUP_ELEM),
        mov64_reg(0, 2),
        exit()
    ]);
    let program = Program {
        insns: p,
        maps: vec![map],
    };
    assert_eq!(
        Emulator::new(&program).unwrap_err(),
        EmuError::UninitRegister { insn: 6, reg: 2 }
    );
}

/// rbpf lets a program write its input buffer; the context is read-only.
#[test]
fn gap_context_is_read_only() {
    let p = prog![st(op::W, 1, 4, 0), ret(1)];
    assert_eq!(raw_rbpf(&p, &[0; 12]), Ok(1));
    assert!(matches!(
        emulator(&p),
        Err(EmuError::CtxAccess { insn: 0, .. })
    ));
}

/// rbpf ignores fields the kernel requires to be zero.
#[rstest]
#[case::mov_imm_with_src(Insn::new(op::ALU64 | op::MOV | op::K, 0, 3, 0, 1))]
#[case::alu_reg_with_imm(Insn::new(op::ALU64 | op::ADD | op::X, 0, 0, 0, 5))]
#[case::alu_with_off(Insn::new(op::ALU64 | op::ADD | op::K, 0, 0, 2, 5))]
#[case::ldx_with_imm(Insn::new(op::LDX | op::MEM | op::W, 0, 1, 0, 9))]
#[case::neg_with_imm(Insn::new(op::ALU64 | op::NEG, 0, 0, 0, 9))]
fn gap_reserved_fields_are_refused(#[case] insn: Insn) {
    let p = prog![mov64(0, 0), insn, alu64_imm(op::AND, 0, 1), exit()];
    assert!(
        matches!(emulator(&p), Err(EmuError::Reserved { insn: 1, .. })),
        "{:?}",
        emulator(&p)
    );
}

/// rbpf returns whatever r0 holds; the kernel demands r0 in [0, 1].
#[test]
fn gap_return_value_must_be_0_or_1() {
    let p = prog![ret(2)];
    assert_eq!(raw_rbpf(&p, &[0; 12]), Ok(2));
    assert_eq!(
        emulator(&p).unwrap_err(),
        EmuError::ReturnRange {
            insn: 1,
            min: 2,
            max: 2
        }
    );
    let p = prog![ldx(op::W, 0, 1, 4), exit()];
    assert_eq!(
        emulator(&p).unwrap_err(),
        EmuError::ReturnRange {
            insn: 1,
            min: 0,
            max: u32::MAX as u64
        }
    );
    // Proven by the interval: `r0 & 1`, and `r0 > 1` refined away.
    assert!(emulator(&prog![
        ldx(op::W, 0, 1, 4),
        alu64_imm(op::AND, 0, 1),
        exit()
    ])
    .is_ok());
    assert!(emulator(&prog![
        ldx(op::W, 0, 1, 4),
        jmp_imm(op::JGT, 0, 1, 1),
        exit(),
        ret(0)
    ])
    .is_ok());
}

/// rbpf divides by a zero immediate (giving 0) and masks shift counts; the
/// kernel refuses both at load time.
#[test]
fn gap_div_by_zero_and_wide_shift_immediates_are_refused() {
    let div = prog![mov64(0, 1), alu64_imm(op::DIV, 0, 0), exit()];
    assert_eq!(raw_rbpf(&div, &[0; 12]), Ok(0));
    assert_eq!(emulator(&div).unwrap_err(), EmuError::DivByZero { insn: 1 });
    let shift = prog![mov64(0, 1), alu32_imm(op::LSH, 0, 32), exit()];
    assert_eq!(raw_rbpf(&shift, &[0; 12]), Ok(1));
    assert_eq!(
        emulator(&shift).unwrap_err(),
        EmuError::BadShift {
            insn: 1,
            shift: 32,
            width: 32
        }
    );
}

/// rbpf reads unaligned stack and (zeroed) uninitialized stack; the kernel
/// checks stack alignment strictly and its stack holds garbage.
#[test]
fn gap_stack_alignment_and_initialization() {
    let misaligned = prog![
        st(op::DW, 10, -8, 1),
        ldx(op::W, 0, 10, -6),
        alu64_imm(op::AND, 0, 1),
        exit()
    ];
    assert!(raw_rbpf(&misaligned, &[0; 12]).is_ok());
    assert!(matches!(
        emulator(&misaligned),
        Err(EmuError::StackAccess { insn: 1, .. })
    ));
    // A privileged loader may read stack never written: garbage, so the
    // verdict is nondeterministic, never rbpf's zero.
    let uninit = prog![ldx(op::W, 0, 10, -4), alu64_imm(op::AND, 0, 1), exit()];
    assert_eq!(raw_rbpf(&uninit, &[0; 12]), Ok(0));
    assert!(matches!(
        emulator(&uninit).unwrap().run_ctx(&[0; 12]),
        Err(EmuError::Nondeterministic {
            allows: true,
            denies: true,
            ..
        })
    ));
}

/// rbpf's allowed-memory check looks at the first byte only; value bounds
/// are checked statically instead.
#[test]
fn gap_map_value_bounds_are_static() {
    let map = MapSpec {
        name: "a".into(),
        kind: MapKind::Array,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        entries: vec![],
    };
    let mut p = prog![
        st(op::W, 10, -4, 0),
        mov64_reg(2, 10),
        alu64_imm(op::ADD, 2, -4)
    ];
    p.extend(ld_map(1, 0));
    p.extend(prog![
        call(helper::MAP_LOOKUP_ELEM),
        jmp_imm(op::JEQ, 0, 0, 3),
        ldx(op::DW, 0, 0, 0)
    ]);
    p.extend(prog![alu64_imm(op::AND, 0, 1), exit(), ret(0)]);
    let program = Program {
        insns: p,
        maps: vec![map],
    };
    assert!(matches!(
        Emulator::new(&program),
        Err(EmuError::MapValueAccess { insn: 7, .. })
    ));
}

/// rbpf loads a pseudo map-fd `lddw` as the plain index; the emulator
/// relocates it to a map the helpers know.
#[test]
fn gap_map_fd_loads_are_relocated() {
    let map = hash_map(vec![(7u32.to_le_bytes().to_vec(), vec![1, 0, 0, 0])]);
    // allow iff map[major] exists and its first byte is 1
    let mut p = prog![
        ldx(op::W, 2, 1, 4),
        stx(op::W, 10, -4, 2),
        mov64_reg(2, 10),
        alu64_imm(op::ADD, 2, -4)
    ];
    p.extend(ld_map(1, 0));
    p.extend(prog![
        call(helper::MAP_LOOKUP_ELEM),
        jmp_imm(op::JEQ, 0, 0, 3),
        ldx(op::B, 0, 0, 0)
    ]);
    p.extend(prog![alu64_imm(op::AND, 0, 1), exit(), ret(0)]);
    let program = Program {
        insns: p,
        maps: vec![map],
    };
    let emu = Emulator::new(&program).unwrap();
    assert_eq!(emu.run_ctx(&ctx(2, 7, 0)).unwrap(), Verdict::Allow);
    assert_eq!(emu.run_ctx(&ctx(2, 8, 0)).unwrap(), Verdict::Deny);
}

/// The kernel refuses unreachable instructions and legacy packet loads;
/// rbpf runs them.
#[test]
fn gap_kernel_only_structural_rules() {
    let dead = prog![ret(1), ret(0)];
    assert_eq!(raw_rbpf(&dead, &[0; 12]), Ok(1));
    assert_eq!(
        emulator(&dead).unwrap_err(),
        EmuError::Unreachable { insn: 2 }
    );
    let ld_abs = prog![Insn::new(op::LD | 0x20 | op::W, 0, 0, 0, 0), ret(1)];
    assert!(matches!(
        emulator(&ld_abs),
        Err(EmuError::NotAllowed { insn: 0, .. })
    ));
    let mut bad_lddw = lddw(0, 1).to_vec();
    bad_lddw[1].dst = 3;
    let p = prog![bad_lddw, ret(1)];
    assert!(matches!(
        emulator(&p),
        Err(EmuError::BadLddw { insn: 0, .. })
    ));
}

// ---- checked and found equal: kept as tests so a change in rbpf shows ----

fn same_as_reference(p: &[Insn], want: u64) {
    // r0 = (result == want)
    let mut full = p.to_vec();
    full.extend(lddw(9, want));
    full.extend(prog![jmp_reg(op::JEQ, 0, 9, 2), ret(0), ret(1)]);
    assert_eq!(
        verdict(&full, &ctx(0x0006_0002, 0x8000_0001, 0xffff_fffe)),
        Verdict::Allow,
        "want {want:#x}"
    );
}

#[rstest]
#[case::alu32_add_zero_extends(prog![lddw(0, u64::MAX), alu32_imm(op::ADD, 0, 1)], 0)]
#[case::alu32_mov_zero_extends(prog![alu32_imm(op::MOV, 0, -1)], 0xffff_ffff)]
#[case::alu64_mov_sign_extends(prog![mov64(0, -1)], u64::MAX)]
#[case::alu64_and_imm_sign_extends(prog![lddw(0, u64::MAX), alu64_imm(op::AND, 0, -2)], u64::MAX - 1)]
#[case::arsh32(prog![alu32_imm(op::MOV, 0, -8), alu32_imm(op::ARSH, 0, 1)], 0xffff_fffc)]
#[case::arsh64(prog![mov64(0, -8), alu64_imm(op::ARSH, 0, 1)], (-4i64) as u64)]
#[case::lsh32_by_reg_masks(prog![mov64(0, 1), mov64(2, 33), alu32_reg(op::LSH, 0, 2)], 2)]
#[case::rsh64_by_reg_masks(prog![mov64(0, 4), mov64(2, 65), alu64_reg(op::RSH, 0, 2)], 2)]
#[case::neg32(prog![mov64(0, 1), Insn::new(op::ALU | op::NEG, 0, 0, 0, 0)], 0xffff_ffff)]
#[case::mul32(prog![lddw(0, 0x1_0000_0003), alu32_imm(op::MUL, 0, -1)], 0xffff_fffd)]
#[case::div64_imm_sign_extends(prog![mov64(0, -1), alu64_imm(op::DIV, 0, -1)], 1)]
#[case::mod64_imm(prog![mov64(0, 7), alu64_imm(op::MOD, 0, -1)], 7)]
#[case::le16(prog![lddw(0, 0x1122_3344_5566_7788), Insn::new(op::ALU | op::END, 0, 0, 0, 16)], 0x7788)]
#[case::be32(prog![lddw(0, 0x1122_3344_5566_7788), Insn::new(op::ALU | op::END | op::X, 0, 0, 0, 32)], 0x8877_6655)]
#[case::be64(prog![lddw(0, 0x1122_3344_5566_7788), Insn::new(op::ALU | op::END | op::X, 0, 0, 0, 64)], 0x8877_6655_4433_2211)]
#[case::narrow_access_byte(prog![ldx(op::B, 0, 1, 2)], 6)]
#[case::narrow_type_half(prog![ldx(op::H, 0, 1, 0)], 2)]
#[case::jmp32_signed(prog![ldx(op::W, 2, 1, 4), mov64(0, 0), jmp32_imm(op::JSLT, 2, 0, 1), exit(), mov64(0, 1)], 1)]
#[case::jset64_imm_sign_extends(prog![lddw(2, 1 << 40), mov64(0, 0), jmp_imm(op::JSET, 2, -1, 1), exit(), mov64(0, 1)], 1)]
#[case::jsgt64_imm(prog![mov64(2, -5), mov64(0, 0), jmp_imm(op::JSGT, 2, -6, 1), exit(), mov64(0, 1)], 1)]
fn same_semantics_as_the_kernel(#[case] p: Vec<Insn>, #[case] want: u64) {
    same_as_reference(&p, want);
}

fn hash_map(entries: Vec<(Vec<u8>, Vec<u8>)>) -> MapSpec {
    MapSpec {
        name: "h".into(),
        kind: MapKind::Hash,
        key_size: 4,
        value_size: 4,
        max_entries: 16,
        entries,
    }
}

fn ld_map(dst: u8, index: i32) -> [Insn; 2] {
    [
        Insn::new(op::LD | op::IMM | op::DW, dst, op::PSEUDO_MAP_FD, 0, index),
        Insn::new(0, 0, 0, 0, 0),
    ]
}

/// A backward jump that closes no cycle (a shared tail, as the tree
/// strategy emits) runs at most once: no unrolling, no budget.
#[test]
fn backward_jump_outside_a_cycle_is_not_a_loop() {
    // 4 jumps back to the `exit` at 3; r0 is only set on the other path.
    let p = prog![
        ldx(op::W, 2, 1, 4),
        jmp_imm(op::JEQ, 2, 7, 2), // 1: -> 4
        ret(0),                    // 2, 3
        ja(-2),                    // 4: -> 3
    ];
    assert_eq!(
        emulator(&p).unwrap_err(),
        EmuError::UninitRegister { insn: 3, reg: 0 }
    );
    let p = prog![
        ldx(op::W, 2, 1, 4),
        mov64(0, 1),
        jmp_imm(op::JEQ, 2, 7, 2), // 2: -> 5
        mov64(0, 0),
        exit(), // 4
        ja(-2), // 5: -> 4
    ];
    let emu = emulator(&p).unwrap();
    assert_eq!(emu.loop_budget(), 0);
    assert_eq!(emu.run_ctx(&ctx(2, 7, 0)).unwrap(), Verdict::Allow);
    assert_eq!(emu.run_ctx(&ctx(2, 8, 0)).unwrap(), Verdict::Deny);
}

#[test]
fn tree_strategy_programs_have_no_loops() {
    let mut text = String::from("deny a\n");
    for i in 0..20 {
        text.push_str(&format!("allow c {}:{} rw\nallow b {}:* m\n", i % 5, i, i));
    }
    let rules = devcg_engine::rules::RuleFile::parse("t.rules", &text).unwrap();
    let program = devcg_engine::strategy::by_name("tree")
        .unwrap()
        .compile(&rules)
        .unwrap();
    assert_eq!(Emulator::new(&program).unwrap().loop_budget(), 0);
}

/// Nested loops: 3 outer x 4 inner iterations, 12 increments.
#[test]
fn nested_loops_run_to_completion() {
    let p = prog![
        mov64(5, 0),              // counter
        mov64(2, 3),              // outer
        mov64(3, 4),              // 2: inner
        alu64_imm(op::ADD, 5, 1), // 3
        alu64_imm(op::SUB, 3, 1),
        jmp_imm(op::JNE, 3, 0, -3), // 5: -> 3
        alu64_imm(op::SUB, 2, 1),
        jmp_imm(op::JNE, 2, 0, -6), // 7: -> 2
        jmp_imm(op::JEQ, 5, 12, 2),
        ret(0),
        ret(1),
    ];
    let emu = emulator(&p).unwrap();
    assert!(emu.loop_budget() >= 15);
    assert_eq!(emu.run_ctx(&[0; 12]).unwrap(), Verdict::Allow);
}

/// A lookup inside a loop: each iteration's result is its own pointer.
#[test]
fn lookup_in_a_loop_verifies_and_runs() {
    let map = MapSpec {
        name: "a".into(),
        kind: MapKind::Array,
        key_size: 4,
        value_size: 4,
        max_entries: 4,
        entries: vec![(3u32.to_le_bytes().to_vec(), vec![1, 0, 0, 0])],
    };
    // for i in 0..4: if a[i] & 1 { allow }; deny
    let mut p = prog![
        mov64(6, 0),
        stx(op::W, 10, -4, 6),
        mov64_reg(2, 10),
        alu64_imm(op::ADD, 2, -4)
    ]; // 0..3
    p.extend(ld_map(1, 0)); // 4, 5
    p.extend(prog![
        call(helper::MAP_LOOKUP_ELEM), // 6
        jmp_imm(op::JEQ, 0, 0, 3),     // 7: -> 11
        ldx(op::W, 7, 0, 0),           // 8
        jmp_imm(op::JSET, 7, 1, 5),    // 9: -> 15
        alu64_imm(op::ADD, 6, 0),      // 10
        alu64_imm(op::ADD, 6, 1),      // 11
        jmp_imm(op::JLT, 6, 4, -12),   // 12: -> 1
        ret(0),                        // 13, 14
        ret(1),                        // 15, 16
    ]);
    let program = Program {
        insns: p,
        maps: vec![map],
    };
    let emu = Emulator::new(&program).unwrap();
    assert_eq!(emu.run_ctx(&[0; 12]).unwrap(), Verdict::Allow);
}
