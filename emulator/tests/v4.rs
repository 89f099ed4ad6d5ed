//! cpu-v4 instructions, atomics, bpf-to-bpf calls, `may_goto` and the
//! helpers beyond the map ones: values as the kernel computes them, and
//! refusals with the kernel's reasons. Programs come from the assembler.

use devcg_emulator::{Caller, EmuError, Emulator};
use devcg_engine::asm::{Asm, Cond, Size, Width};
use devcg_engine::insn::{helper, op, Program, Reg, R0, R1, R10, R2, R3, R6};
use devcg_engine::{Request, Verdict};
use rstest::rstest;

fn build(body: impl FnOnce(&mut Asm)) -> Program {
    let mut a = Asm::new();
    body(&mut a);
    Program::new(a.finish().expect("assembles"))
}

/// Runs `compute` (which leaves its result in r2), then allows exactly
/// when r2 equals `want`.
fn yields(compute: impl FnOnce(&mut Asm), want: u64) -> Result<Verdict, EmuError> {
    let p = build(|a| {
        compute(a);
        let yes = a.new_label();
        a.lddw(R3, want);
        a.jmp_reg(Width::W64, Cond::Eq, R2, R3, yes);
        a.ret(0);
        a.bind(yes);
        a.ret(1);
    });
    Emulator::new(&p)?.run_ctx(&[0; 12])
}

#[rstest]
#[case::sdiv64(|a: &mut Asm| { a.mov_imm(Width::W64, R2, -7); a.sdiv_imm(Width::W64, false, R2, 2); }, (-3i64) as u64)]
#[case::smod64(|a: &mut Asm| { a.mov_imm(Width::W64, R2, -7); a.sdiv_imm(Width::W64, true, R2, 2); }, (-1i64) as u64)]
#[case::sdiv64_by_zero_reg(|a: &mut Asm| { a.mov_imm(Width::W64, R2, -7); a.mov_imm(Width::W64, R3, 0); a.sdiv_reg(Width::W64, false, R2, R3); }, 0)]
#[case::smod64_by_zero_reg(|a: &mut Asm| { a.mov_imm(Width::W64, R2, -7); a.mov_imm(Width::W64, R3, 0); a.sdiv_reg(Width::W64, true, R2, R3); }, (-7i64) as u64)]
#[case::sdiv64_min_by_minus_one(|a: &mut Asm| { a.lddw(R2, i64::MIN as u64); a.sdiv_imm(Width::W64, false, R2, -1); }, i64::MIN as u64)]
#[case::smod64_by_minus_one(|a: &mut Asm| { a.mov_imm(Width::W64, R2, -7); a.sdiv_imm(Width::W64, true, R2, -1); }, 0)]
#[case::sdiv32(|a: &mut Asm| { a.mov_imm(Width::W32, R2, -7); a.sdiv_imm(Width::W32, false, R2, 2); }, 0xffff_fffd)]
#[case::smod32_by_zero_zero_extends(|a: &mut Asm| { a.lddw(R2, 0xdead_0000_0000_0005); a.mov_imm(Width::W64, R3, 0); a.sdiv_reg(Width::W32, true, R2, R3); }, 5)]
#[case::bswap16(|a: &mut Asm| { a.lddw(R2, 0x0102_0304_0506_0708); a.bswap(R2, 16); }, 0x0807)]
#[case::bswap32(|a: &mut Asm| { a.lddw(R2, 0x0102_0304_0506_0708); a.bswap(R2, 32); }, 0x0807_0605)]
#[case::bswap64(|a: &mut Asm| { a.lddw(R2, 0x0102_0304_0506_0708); a.bswap(R2, 64); }, 0x0807_0605_0403_0201)]
#[case::movsx64_8(|a: &mut Asm| { a.mov_imm(Width::W64, R3, 0x180); a.movsx(Width::W64, R2, R3, 8); }, 0xffff_ffff_ffff_ff80)]
#[case::movsx32_8(|a: &mut Asm| { a.mov_imm(Width::W64, R3, 0x180); a.movsx(Width::W32, R2, R3, 8); }, 0xffff_ff80)]
#[case::movsx32_16(|a: &mut Asm| { a.mov_imm(Width::W64, R3, 0x1_8000); a.movsx(Width::W32, R2, R3, 16); }, 0xffff_8000)]
#[case::movsx64_32(|a: &mut Asm| { a.lddw(R3, 0x1_ffff_ffff); a.movsx(Width::W64, R2, R3, 32); }, u64::MAX)]
#[case::movsx64_positive(|a: &mut Asm| { a.mov_imm(Width::W64, R3, 0x7f); a.movsx(Width::W64, R2, R3, 8); }, 0x7f)]
#[case::ldsx8(|a: &mut Asm| { a.st_imm(Size::DW, R10, -8, 0xfe); a.ldsx(Size::B, R2, R10, -8); }, (-2i64) as u64)]
#[case::ldsx16(|a: &mut Asm| { a.st_imm(Size::DW, R10, -8, 0x8001); a.ldsx(Size::H, R2, R10, -8); }, 0xffff_ffff_ffff_8001)]
#[case::ldsx32(|a: &mut Asm| { a.st_imm(Size::W, R10, -8, -5); a.ldsx(Size::W, R2, R10, -8); }, (-5i64) as u64)]
#[case::atomic_add(|a: &mut Asm| { a.st_imm(Size::DW, R10, -8, 40); a.mov_imm(Width::W64, R3, 2); a.atomic(Size::DW, op::ATOMIC_ADD, R10, -8, R3); a.ldx(Size::DW, R2, R10, -8); }, 42)]
#[case::atomic_fetch_add(|a: &mut Asm| { a.st_imm(Size::DW, R10, -8, 40); a.mov_imm(Width::W64, R2, 2); a.atomic(Size::DW, op::ATOMIC_ADD | op::ATOMIC_FETCH, R10, -8, R2); }, 40)]
#[case::atomic_or32(|a: &mut Asm| { a.st_imm(Size::W, R10, -4, 0x10); a.mov_imm(Width::W64, R3, 0x3); a.atomic(Size::W, op::ATOMIC_OR, R10, -4, R3); a.ldx(Size::W, R2, R10, -4); }, 0x13)]
#[case::atomic_fetch_and32_zero_extends(|a: &mut Asm| { a.st_imm(Size::W, R10, -4, -1); a.mov_imm(Width::W64, R2, 0xf); a.atomic(Size::W, op::ATOMIC_AND | op::ATOMIC_FETCH, R10, -4, R2); }, 0xffff_ffff)]
#[case::atomic_xor(|a: &mut Asm| { a.st_imm(Size::DW, R10, -8, 0xff); a.mov_imm(Width::W64, R3, 0x0f); a.atomic(Size::DW, op::ATOMIC_XOR, R10, -8, R3); a.ldx(Size::DW, R2, R10, -8); }, 0xf0)]
#[case::atomic_xchg(|a: &mut Asm| { a.st_imm(Size::DW, R10, -8, 7); a.mov_imm(Width::W64, R2, 9); a.atomic(Size::DW, op::ATOMIC_XCHG, R10, -8, R2); }, 7)]
#[case::cmpxchg_hit(|a: &mut Asm| { a.st_imm(Size::DW, R10, -8, 7); a.mov_imm(Width::W64, R0, 7); a.mov_imm(Width::W64, R3, 9); a.atomic(Size::DW, op::ATOMIC_CMPXCHG, R10, -8, R3); a.ldx(Size::DW, R2, R10, -8); }, 9)]
#[case::cmpxchg_miss(|a: &mut Asm| { a.st_imm(Size::DW, R10, -8, 7); a.mov_imm(Width::W64, R0, 8); a.mov_imm(Width::W64, R3, 9); a.atomic(Size::DW, op::ATOMIC_CMPXCHG, R10, -8, R3); a.ldx(Size::DW, R2, R10, -8); }, 7)]
fn v4_and_atomics_compute_what_the_kernel_does(
    #[case] compute: impl FnOnce(&mut Asm),
    #[case] want: u64,
) {
    assert_eq!(yields(compute, want), Ok(Verdict::Allow));
}

#[test]
fn gotol_jumps_by_its_immediate() {
    let p = build(|a| {
        let mid = a.new_label();
        let far = a.new_label();
        a.jmp_imm(Width::W64, Cond::Eq, R1, 0, mid);
        a.gotol(far);
        a.bind(mid);
        a.ret(0);
        a.bind(far);
        a.ret(1);
    });
    assert_eq!(p.insns[1].off, 0);
    assert_eq!(p.insns[1].imm, 2);
    let emu = Emulator::new(&p).unwrap();
    assert!(emu.runs_on_rbpf(), "gotol is lowered to goto");
    assert_eq!(emu.run_ctx(&[0; 12]), Ok(Verdict::Allow));
}

/// main: r1 = major; call twice; allow when r0 == 2 * major. The callee
/// has its own stack frame and preserves the caller's r6.
fn doubling() -> Program {
    build(|a| {
        let twice = a.new_label();
        let yes = a.new_label();
        a.ldx(Size::W, R6, R1, 4);
        a.st_imm(Size::DW, R10, -8, 5);
        a.mov_reg(Width::W64, R1, R6);
        a.call_local(twice);
        a.ldx(Size::DW, R3, R10, -8);
        a.jmp_imm(Width::W64, Cond::Ne, R3, 5, yes);
        a.alu_reg(Width::W64, op::SUB, R0, R6);
        a.jmp_reg(Width::W64, Cond::Eq, R0, R6, yes);
        a.ret(0);
        a.bind(yes);
        a.ret(1);
        a.bind(twice);
        a.st_imm(Size::DW, R10, -8, 0);
        a.stx(Size::DW, R10, -16, R1);
        a.ldx(Size::DW, R0, R10, -16);
        a.alu_reg(Width::W64, op::ADD, R0, R1);
        a.exit();
    })
}

#[test]
fn bpf_to_bpf_calls_run_with_frames_of_their_own() {
    let emu = Emulator::new(&doubling()).unwrap();
    assert!(!emu.runs_on_rbpf());
    for major in [0, 1, 7, u32::MAX] {
        let ctx = Request::new(
            devcg_engine::DeviceType::Char,
            major,
            1,
            devcg_engine::Access::READ,
        )
        .to_ctx();
        assert_eq!(emu.run_ctx(&ctx), Ok(Verdict::Allow), "major {major}");
    }
}

/// A callee that reads a caller-saved register it never received.
#[test]
fn callee_sees_no_callee_saved_registers() {
    let p = build(|a| {
        let f = a.new_label();
        a.mov_imm(Width::W64, R6, 1);
        a.call_local(f);
        a.exit();
        a.bind(f);
        a.mov_reg(Width::W64, R0, R6);
        a.exit();
    });
    assert_eq!(
        Emulator::new(&p).unwrap_err(),
        EmuError::UninitRegister { insn: 3, reg: 6 }
    );
}

#[rstest]
#[case::recursion(true)]
#[case::nine_frames(false)]
fn call_stacks_deeper_than_eight_frames_are_refused(#[case] recursive: bool) {
    let p = build(|a| {
        let depth = if recursive { 1 } else { 9 };
        let subs: Vec<_> = (0..depth).map(|_| a.new_label()).collect();
        a.call_local(subs[0]);
        a.ret(1);
        for k in 0..depth {
            a.bind(subs[k]);
            if recursive {
                a.call_local(subs[k]);
            } else if k + 1 < depth {
                a.call_local(subs[k + 1]);
            }
            a.ret(0);
        }
    });
    assert!(matches!(
        Emulator::new(&p),
        Err(EmuError::CallDepth { frames: 9, .. })
    ));
}

#[test]
fn returning_a_callee_stack_pointer_is_refused() {
    let p = build(|a| {
        let f = a.new_label();
        a.call_local(f);
        a.ret(1);
        a.bind(f);
        a.mov_reg(Width::W64, R0, R10);
        a.exit();
    });
    assert!(matches!(
        Emulator::new(&p),
        Err(EmuError::PointerLeak {
            insn: 4,
            reg: 0,
            ..
        })
    ));
}

#[test]
fn jumps_into_another_subprogram_are_refused() {
    let p = build(|a| {
        let f = a.new_label();
        let inside = a.new_label();
        a.jmp_imm(Width::W64, Cond::Eq, R1, 0, inside);
        a.call_local(f);
        a.ret(1);
        a.bind(f);
        a.bind(inside);
        a.ret(0);
    });
    assert_eq!(
        Emulator::new(&p).unwrap_err(),
        EmuError::JumpOutOfSubprog { insn: 0, target: 4 }
    );
}

#[test]
fn combined_stack_over_512_bytes_is_refused() {
    let p = build(|a| {
        let f = a.new_label();
        a.st_imm(Size::DW, R10, -512, 0);
        a.call_local(f);
        a.ret(1);
        a.bind(f);
        a.st_imm(Size::DW, R10, -8, 0);
        a.ret(0);
    });
    assert!(matches!(
        Emulator::new(&p),
        Err(EmuError::StackDepth { frames: 2, .. })
    ));
}

/// A loop bounded by may_goto alone: the kernel's allowance is time-based
/// on x86-64, so when the loop exits (and so the verdict) is not fixed.
#[test]
fn may_goto_bounded_loops_are_nondeterministic() {
    let p = build(|a| {
        let top = a.new_label();
        let out = a.new_label();
        a.mov_imm(Width::W64, R2, 0);
        a.bind(top);
        a.may_goto(out);
        a.alu_imm(Width::W64, op::ADD, R2, 1);
        a.ja(top);
        a.bind(out);
        a.mov_reg(Width::W64, R0, R2);
        a.alu_imm(Width::W64, op::AND, R0, 1);
        a.exit();
    });
    let emu = Emulator::new(&p).unwrap();
    assert!(matches!(
        emu.run_ctx(&[0; 12]),
        Err(EmuError::Nondeterministic { .. })
    ));
}

/// A loop that ends by its own count well within the allowance.
#[test]
fn may_goto_within_the_allowance_is_deterministic() {
    let p = build(|a| {
        let top = a.new_label();
        let out = a.new_label();
        a.mov_imm(Width::W64, R2, 10);
        a.bind(top);
        a.may_goto(out);
        a.alu_imm(Width::W64, op::SUB, R2, 1);
        a.jmp_imm(Width::W64, Cond::Ne, R2, 0, top);
        a.bind(out);
        a.mov_reg(Width::W64, R0, R2);
        a.alu_imm(Width::W64, op::ADD, R0, 1);
        a.alu_imm(Width::W64, op::AND, R0, 1);
        a.exit();
    });
    assert_eq!(
        Emulator::new(&p).unwrap().run_ctx(&[0; 12]),
        Ok(Verdict::Allow)
    );
}

/// `allow iff uid == 1000`.
fn uid_filter() -> Program {
    build(|a| {
        let yes = a.new_label();
        a.call(helper::GET_CURRENT_UID_GID);
        a.jmp_imm(Width::W32, Cond::Eq, R0, 1000, yes);
        a.ret(0);
        a.bind(yes);
        a.ret(1);
    })
}

#[test]
fn uid_comes_from_the_caller() {
    let emu = Emulator::new(&uid_filter()).unwrap();
    let req = Request::new(
        devcg_engine::DeviceType::Char,
        1,
        3,
        devcg_engine::Access::READ,
    );
    let as_uid = |uid| Caller {
        uid: Some(uid),
        gid: Some(0),
        cgroup_id: None,
    };
    assert_eq!(emu.run_as(&req, &as_uid(1000)).verdict, Ok(Verdict::Allow));
    assert_eq!(emu.run_as(&req, &as_uid(0)).verdict, Ok(Verdict::Deny));
    // Not given: the verdict depends on it.
    assert!(matches!(
        emu.run(&req),
        Err(EmuError::Nondeterministic { .. })
    ));
}

#[test]
fn prandom_verdicts_are_reported_as_nondeterministic() {
    let p = build(|a| {
        a.call(helper::GET_PRANDOM_U32);
        a.alu_imm(Width::W64, op::AND, R0, 1);
        a.exit();
    });
    let err = Emulator::new(&p).unwrap().run_ctx(&[0; 12]).unwrap_err();
    assert!(matches!(
        err,
        EmuError::Nondeterministic {
            allows: true,
            denies: true,
            ..
        }
    ));
    assert!(err.to_string().contains("bpf_get_prandom_u32"), "{err}");
}

/// A random value that does not decide the verdict leaves it one verdict.
#[test]
fn unused_nondeterminism_keeps_the_verdict() {
    let p = build(|a| {
        a.call(helper::KTIME_GET_NS);
        a.mov_reg(Width::W64, R6, R0);
        a.ret(1);
    });
    assert_eq!(
        Emulator::new(&p).unwrap().run_ctx(&[0; 12]),
        Ok(Verdict::Allow)
    );
}

#[test]
fn trace_printk_output_is_shown() {
    // "dev %d:%d\n" on the stack, then printed with major and minor.
    let p = build(|a| {
        let fmt = b"dev %d:%d\0\0\0\0\0\0\0";
        for (k, chunk) in fmt.chunks(4).enumerate() {
            let word = i32::from_le_bytes(chunk.try_into().unwrap());
            a.st_imm(Size::W, R10, -16 + 4 * k as i16, word);
        }
        a.ldx(Size::W, R3, R1, 4);
        a.ldx(Size::W, Reg(4), R1, 8);
        a.mov_imm(Width::W64, Reg(5), 0);
        a.mov_reg(Width::W64, R1, R10);
        a.alu_imm(Width::W64, op::ADD, R1, -16);
        a.mov_imm(Width::W64, R2, 16);
        a.call(helper::TRACE_PRINTK);
        a.ret(1);
    });
    let emu = Emulator::new(&p).unwrap();
    let req = Request::new(
        devcg_engine::DeviceType::Char,
        136,
        4,
        devcg_engine::Access::READ,
    );
    let run = emu.run_as(&req, &Caller::default());
    assert_eq!(run.verdict, Ok(Verdict::Allow));
    assert_eq!(run.trace, vec!["dev 136:4".to_string()]);
}

#[test]
fn local_storage_is_refused_with_a_reason() {
    let p = build(|a| {
        a.mov_imm(Width::W64, R1, 0);
        a.mov_imm(Width::W64, R2, 0);
        a.call(helper::GET_LOCAL_STORAGE);
        a.ret(1);
    });
    assert!(matches!(
        Emulator::new(&p),
        Err(EmuError::Unsupported { insn: 2, .. })
    ));
}

/// What a privileged loader (CAP_PERFMON: pointer leaks, uninitialized
/// stack) may do: loaded, and a verdict that depends on it is
/// nondeterministic.
#[rstest]
#[case::uninit_stack(|a: &mut Asm| { a.st_imm(Size::W, R10, -8, 0); a.ldx(Size::DW, R0, R10, -8); }, true)]
#[case::mov32_pointer(|a: &mut Asm| { a.mov_reg(Width::W32, R0, R10); }, true)]
#[case::mov32_pointer_unused(|a: &mut Asm| { a.mov_reg(Width::W32, R2, R10); a.mov_imm(Width::W64, R0, 1); }, false)]
#[case::pointer_compare(|a: &mut Asm| { let l = a.new_label(); a.mov_imm(Width::W64, R0, 0); a.jmp_reg(Width::W64, Cond::Gt, R1, R10, l); a.mov_imm(Width::W64, R0, 1); a.bind(l); }, true)]
fn privileged_relaxations_load(
    #[case] body: impl FnOnce(&mut Asm),
    #[case] nondeterministic: bool,
) {
    let p = build(|a| {
        body(a);
        a.alu_imm(Width::W64, op::AND, R0, 1);
        a.exit();
    });
    let got = Emulator::new(&p).unwrap().run_ctx(&[0; 12]);
    assert_eq!(
        matches!(got, Err(EmuError::Nondeterministic { .. })),
        nondeterministic,
        "{got:?}"
    );
}

/// What the kernel refuses, refused with its reason.
#[rstest]
#[case::stack_pointer_subtraction(|a: &mut Asm| {
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::SUB, R2, 8);
    a.ret(1);
}, "subtraction from stack pointer prohibited")]
#[case::goto_minus_one(|a: &mut Asm| {
    let l = a.new_label();
    a.mov_imm(Width::W64, R0, 1);
    a.bind(l);
    a.ja(l);
}, "infinite loop detected")]
#[case::cycle_without_exit(|a: &mut Asm| {
    let l = a.new_label();
    a.mov_imm(Width::W64, R0, 1);
    a.bind(l);
    a.alu_imm(Width::W64, op::ADD, R0, 1);
    a.ja(l);
}, "infinite loop detected")]
#[case::pointer_shift(|a: &mut Asm| {
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::LSH, R2, 1);
    a.ret(1);
}, "r2: only += and -= of a constant")]
#[case::register_shift_past_width_is_unknown(|a: &mut Asm| {
    a.mov_imm(Width::W64, R2, 2048);
    a.mov_imm(Width::W64, R0, 1);
    a.alu_reg(Width::W64, op::LSH, R0, R2);
    a.exit();
}, "r0 may be in [0, 18446744073709551615] at exit")]
#[case::register_shift_32_past_width_is_unknown(|a: &mut Asm| {
    a.mov_imm(Width::W64, R2, 32);
    a.mov_imm(Width::W64, R0, 0);
    a.alu_reg(Width::W32, op::RSH, R0, R2);
    a.exit();
}, "r0 may be in [0, 18446744073709551615] at exit")]
fn refused_as_the_kernel_refuses(#[case] body: impl FnOnce(&mut Asm), #[case] why: &str) {
    let err = Emulator::new(&build(body)).unwrap_err();
    assert!(err.to_string().contains(why), "{err}");
}

/// Fills of spilled constants stay known, narrow and sign-extending ones
/// too, and sign-extending loads from the context load (all *observed* on
/// 6.18).
#[rstest]
#[case::narrow_fill(|a: &mut Asm| { a.st_imm(Size::DW, R10, -8, 0x100); a.ldx(Size::B, R0, R10, -8); }, Verdict::Deny)]
#[case::sign_extending_fill(|a: &mut Asm| { a.st_imm(Size::DW, R10, -8, 1); a.ldsx(Size::B, R0, R10, -8); }, Verdict::Allow)]
#[case::sign_extending_ctx_load(|a: &mut Asm| { a.ldsx(Size::B, R2, R1, 0); a.mov_imm(Width::W64, R0, 1); }, Verdict::Allow)]
fn fills_and_context_loads_the_kernel_accepts(
    #[case] body: impl FnOnce(&mut Asm),
    #[case] want: Verdict,
) {
    let p = build(|a| {
        body(a);
        a.exit();
    });
    assert_eq!(Emulator::new(&p).unwrap().run_ctx(&[0; 12]), Ok(want));
}
