//! The emulator against a tiny evaluator written here from the kernel's
//! semantics (`___bpf_prog_run` plus the verifier's div/mod fixups), on
//! random valid programs from `devcg_differential::programs` (loop-free,
//! and counted loops).

mod common;

use devcg_differential::programs::{shapes, Exit, Init, Item, Operand, ProgramSpace, Shape, Test};
use devcg_emulator::Emulator;
use devcg_engine::asm::Cond;
use devcg_engine::insn::{op, Insn, Program};
use devcg_engine::Verdict;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

// ---------------------------------------------------------------- reference

/// Runs `insns` as the kernel would (spelled out, not `checked_div`: this
/// is the specification). The generated programs use r1 only as
/// the context base and r10 only as the stack base, so memory is two arrays.
/// No cpu-v4 instructions: the emulator refuses them.
#[allow(clippy::manual_checked_ops)]
fn reference(insns: &[Insn], ctx: &[u8; 12]) -> u64 {
    let mut r = [0u64; 11];
    let mut stack = [0u8; 512];
    let mut pc = 0usize;
    for _ in 0..100_000 {
        let i = insns[pc];
        let code = i.code;
        let (d, s) = (i.dst as usize, i.src as usize);
        let class = code & 7;
        let x = code & op::X != 0;
        pc += 1;
        match class {
            op::ALU64 | op::ALU => {
                let w64 = class == op::ALU64;
                let operation = code & 0xf0;
                if operation == op::END {
                    r[d] = match (x, i.imm) {
                        (false, 16) => r[d] as u16 as u64,
                        (false, 32) => r[d] as u32 as u64,
                        (false, _) => r[d],
                        (true, 16) => (r[d] as u16).swap_bytes() as u64,
                        (true, 32) => (r[d] as u32).swap_bytes() as u64,
                        (true, _) => r[d].swap_bytes(),
                    };
                    continue;
                }
                if w64 {
                    let a = r[d];
                    let b = if x { r[s] } else { i.imm as i64 as u64 };
                    r[d] = match operation {
                        op::ADD => a.wrapping_add(b),
                        op::SUB => a.wrapping_sub(b),
                        op::MUL => a.wrapping_mul(b),
                        op::DIV => {
                            if b == 0 {
                                0
                            } else {
                                a / b
                            }
                        }
                        op::MOD => {
                            if b == 0 {
                                a
                            } else {
                                a % b
                            }
                        }
                        op::OR => a | b,
                        op::AND => a & b,
                        op::XOR => a ^ b,
                        op::LSH => a << (b & 63),
                        op::RSH => a >> (b & 63),
                        op::ARSH => ((a as i64) >> (b & 63)) as u64,
                        op::NEG => 0u64.wrapping_sub(a),
                        op::MOV => b,
                        _ => panic!("generated an unknown ALU op"),
                    };
                } else {
                    let a = r[d] as u32;
                    let b = if x { r[s] as u32 } else { i.imm as u32 };
                    r[d] = u64::from(match operation {
                        op::ADD => a.wrapping_add(b),
                        op::SUB => a.wrapping_sub(b),
                        op::MUL => a.wrapping_mul(b),
                        op::DIV => {
                            if b == 0 {
                                0
                            } else {
                                a / b
                            }
                        }
                        op::MOD => {
                            if b == 0 {
                                a
                            } else {
                                a % b
                            }
                        }
                        op::OR => a | b,
                        op::AND => a & b,
                        op::XOR => a ^ b,
                        op::LSH => a << (b & 31),
                        op::RSH => a >> (b & 31),
                        op::ARSH => ((a as i32) >> (b & 31)) as u32,
                        op::NEG => 0u32.wrapping_sub(a),
                        op::MOV => b,
                        _ => panic!("generated an unknown ALU op"),
                    });
                }
            }
            op::LD => {
                r[d] = u64::from(i.imm as u32) | u64::from(insns[pc].imm as u32) << 32;
                pc += 1;
            }
            op::LDX => {
                let n = size(code);
                let bytes: &[u8] = if s == 1 {
                    &ctx[i.off as usize..i.off as usize + n]
                } else {
                    let a = (512 + i.off as i64) as usize;
                    &stack[a..a + n]
                };
                let mut v = [0u8; 8];
                v[..n].copy_from_slice(bytes);
                r[d] = u64::from_le_bytes(v);
            }
            op::ST | op::STX => {
                let n = size(code);
                let v = if class == op::ST {
                    i.imm as i64 as u64
                } else {
                    r[s]
                };
                let a = (512 + i.off as i64) as usize;
                stack[a..a + n].copy_from_slice(&v.to_le_bytes()[..n]);
            }
            op::JMP | op::JMP32 => {
                let operation = code & 0xf0;
                if operation == op::EXIT {
                    return r[0];
                }
                let taken = if operation == op::JA {
                    true
                } else if class == op::JMP {
                    let a = r[d];
                    let b = if x { r[s] } else { i.imm as i64 as u64 };
                    cond(operation, a, b, a as i64, b as i64)
                } else {
                    let a = r[d] as u32;
                    let b = if x { r[s] as u32 } else { i.imm as u32 };
                    cond(
                        operation,
                        a as u64,
                        b as u64,
                        a as i32 as i64,
                        b as i32 as i64,
                    )
                };
                if taken {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            _ => panic!("generated an unknown class"),
        }
    }
    panic!("reference evaluator looped")
}

fn size(code: u8) -> usize {
    match code & 0x18 {
        op::B => 1,
        op::H => 2,
        op::W => 4,
        _ => 8,
    }
}

fn cond(operation: u8, a: u64, b: u64, sa: i64, sb: i64) -> bool {
    match operation {
        op::JEQ => a == b,
        op::JNE => a != b,
        op::JGT => a > b,
        op::JGE => a >= b,
        op::JLT => a < b,
        op::JLE => a <= b,
        op::JSET => a & b != 0,
        op::JSGT => sa > sb,
        op::JSGE => sa >= sb,
        op::JSLT => sa < sb,
        op::JSLE => sa <= sb,
        _ => panic!("generated an unknown condition"),
    }
}

// ---------------------------------------------------------------- programs

fn ctx() -> impl Strategy<Value = [u8; 12]> {
    let field = prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(u32::MAX),
        any::<u32>()
    ];
    (field.clone(), field.clone(), field).prop_map(|(t, ma, mi)| common::ctx(t, ma, mi))
}

/// Loop-free valid programs of up to 39 items.
fn loop_free() -> BoxedStrategy<Shape> {
    shapes(&ProgramSpace {
        v4: false,
        invalid: false,
        extended: false,
        max_items: 39,
        loops: false,
    })
}

/// Counted loops (bodies run 1 to 39 times) of up to 11 items.
fn loops() -> BoxedStrategy<Shape> {
    shapes(&ProgramSpace {
        v4: false,
        invalid: false,
        extended: false,
        max_items: 11,
        loops: true,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn emulator_agrees_with_the_kernel_semantics(
        shape in loop_free(),
        ctxs in proptest::collection::vec(ctx(), 1..6),
    ) {
        let insns = shape.assemble().insns;
        let emu = Emulator::new(&Program::new(insns.clone()));
        let emu = match emu {
            Ok(e) => e,
            Err(e) => return Err(TestCaseError::fail(format!("refused a valid program: {e}\n{}", devcg_engine::disasm::disassemble(&insns)))),
        };
        for c in &ctxs {
            let want = reference(&insns, c);
            prop_assert!(want <= 1);
            let got = emu.run_ctx(c).map_err(|e| TestCaseError::fail(format!("run failed: {e}")))?;
            prop_assert_eq!(got, Verdict::from_allowed(want == 1), "ctx {:?}\n{}", c, devcg_engine::disasm::disassemble(&insns));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// The emulator's own interpreter (for programs rbpf cannot run) gives
    /// the reference's verdicts on the same programs.
    #[test]
    fn own_interpreter_agrees_with_the_kernel_semantics(
        shape in loop_free(),
        ctxs in proptest::collection::vec(ctx(), 1..4),
    ) {
        let insns = shape.assemble().insns;
        let emu = Emulator::new_on_own_interpreter(&Program::new(insns.clone()))
            .map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
        prop_assert!(!emu.runs_on_rbpf());
        for c in &ctxs {
            let want = reference(&insns, c);
            let got = emu.run_ctx(c).map_err(|e| TestCaseError::fail(format!("run failed: {e}")))?;
            prop_assert_eq!(got, Verdict::from_allowed(want == 1), "ctx {:?}\n{}", c, devcg_engine::disasm::disassemble(&insns));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// cpu v4 and the extended classes: rbpf with the lowerings (movsx,
    /// bswap, ldsx, gotol) where the program allows, and the own
    /// interpreter, two implementations of one semantics, agree.
    #[test]
    fn lowerings_agree_with_the_own_interpreter(
        shape in shapes(&ProgramSpace { v4: true, invalid: false, extended: true, max_items: 25, loops: false }),
        ctxs in proptest::collection::vec(ctx(), 1..4),
    ) {
        let p = shape.assemble();
        let emu = Emulator::new(&p).map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
        let own = Emulator::new_on_own_interpreter(&p).map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
        for c in &ctxs {
            prop_assert_eq!(emu.run_ctx(c), own.run_ctx(c), "ctx {:?}\n{}", c, devcg_engine::disasm::disassemble(&p.insns));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Counted loops agree too.
    #[test]
    fn loops_agree_with_the_kernel_semantics(shape in loops(), c in ctx()) {
        let insns = shape.assemble().insns;
        let emu = Emulator::new(&Program::new(insns.clone()))
            .map_err(|e| TestCaseError::fail(format!("refused: {e}\n{}", devcg_engine::disasm::disassemble(&insns))))?;
        prop_assert!(emu.loop_budget() >= 40);
        let want = reference(&insns, &c);
        let got = emu.run_ctx(&c).map_err(|e| TestCaseError::fail(format!("run failed: {e}")))?;
        prop_assert_eq!(got, Verdict::from_allowed(want == 1), "ctx {:?}\n{}", c, devcg_engine::disasm::disassemble(&insns));
        let own = Emulator::new_on_own_interpreter(&Program::new(insns.clone()))
            .map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
        prop_assert_eq!(own.run_ctx(&c), Ok(got));
    }
}

/// The reference evaluator itself catches rbpf's known difference.
#[test]
fn reference_sign_extends_jmp64_immediates() {
    let mut init = [Init::Lddw(0); 9];
    init[1] = Init::Lddw(0xffff_ffff); // r2
    let shape = Shape {
        init,
        items: vec![
            Item::Jump {
                test: Test {
                    w64: true,
                    cond: Cond::Eq,
                    dst: 2,
                    src: Operand::Imm(-1),
                },
                ahead: 2,
            },
            Item::Alu {
                w64: true,
                operation: op::MOV,
                dst: 0,
                src: Operand::Imm(1),
            },
        ],
        exit: Exit::Bit {
            w64: true,
            src: 0,
            shift: 0,
        },
        count: None,
        breach: None,
    };
    let insns = shape.assemble().insns;
    assert_eq!(
        reference(&insns, &[0; 12]),
        1,
        "not equal: falls through to r0 = 1"
    );
    assert_eq!(
        common::raw_rbpf(&insns, &[0; 12]),
        Ok(0),
        "rbpf jumps over it"
    );
    assert_eq!(
        Emulator::new(&Program::new(insns))
            .unwrap()
            .run_ctx(&[0; 12])
            .unwrap(),
        Verdict::Allow
    );
}
