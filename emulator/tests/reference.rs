//! The emulator against a tiny evaluator written here from the kernel's
//! semantics (`___bpf_prog_run` plus the verifier's div/mod fixups), on
//! random valid loop-free programs built with the assembler.

mod common;

use devcg_emulator::Emulator;
use devcg_engine::asm::{Asm, Cond, Label, Size, Width};
use devcg_engine::insn::{op, Insn, Program, Reg, R0, R1, R10};
use devcg_engine::Verdict;
use proptest::prelude::*;

// ---------------------------------------------------------------- reference

/// Runs `insns` as the kernel would (spelled out, not `checked_div`: this
/// is the specification). The generated programs use r1 only as
/// the context base and r10 only as the stack base, so memory is two arrays.
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

// ---------------------------------------------------------------- generator

/// Scratch registers: everything but r1 (context) and r10 (stack).
const REGS: [u8; 9] = [0, 2, 3, 4, 5, 6, 7, 8, 9];
const ALU_OPS: [u8; 12] = [
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
const CONDS: [Cond; 11] = [
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

#[derive(Clone, Debug)]
enum Item {
    AluImm {
        w64: bool,
        o: u8,
        dst: u8,
        imm: i32,
    },
    AluReg {
        w64: bool,
        o: u8,
        dst: u8,
        src: u8,
    },
    Neg {
        w64: bool,
        dst: u8,
    },
    End {
        be: bool,
        bits: i32,
        dst: u8,
    },
    Lddw {
        dst: u8,
        value: u64,
    },
    CtxLoad {
        dst: u8,
        size: Size,
        off: i16,
    },
    StackStore {
        size: Size,
        slot: i16,
        src: Option<u8>,
        imm: i32,
    },
    StackLoad {
        dst: u8,
        size: Size,
        slot: i16,
    },
    JmpImm {
        w64: bool,
        c: Cond,
        dst: u8,
        imm: i32,
        ahead: usize,
    },
    JmpReg {
        w64: bool,
        c: Cond,
        dst: u8,
        src: u8,
        ahead: usize,
    },
}

fn interesting_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => -4i32..=4,
        1 => Just(i32::MIN),
        1 => Just(i32::MAX),
        1 => Just(-0x8000),
        1 => Just(0xffff),
        2 => any::<i32>(),
    ]
}

fn interesting_u64() -> impl Strategy<Value = u64> {
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
}

fn reg() -> impl Strategy<Value = u8> {
    proptest::sample::select(&REGS[..])
}

fn mem_size() -> impl Strategy<Value = Size> {
    proptest::sample::select(vec![Size::B, Size::H, Size::W, Size::DW])
}

fn item() -> impl Strategy<Value = Item> {
    let alu_imm =
        (any::<bool>(), 0usize..12, reg(), interesting_i32()).prop_map(|(w64, o, dst, imm)| {
            let o = ALU_OPS[o];
            let width = if w64 { 64 } else { 32 };
            // Keep immediates the verifier accepts.
            let imm = match o {
                op::DIV | op::MOD if imm == 0 => 3,
                op::LSH | op::RSH | op::ARSH => imm.rem_euclid(width),
                _ => imm,
            };
            Item::AluImm { w64, o, dst, imm }
        });
    let alu_reg =
        (any::<bool>(), 0usize..12, reg(), reg()).prop_map(|(w64, o, dst, src)| Item::AluReg {
            w64,
            o: ALU_OPS[o],
            dst,
            src,
        });
    let ctx_load = prop_oneof![
        (reg(), 0i16..4).prop_map(|(dst, off)| Item::CtxLoad {
            dst,
            size: Size::B,
            off
        }),
        (reg(), 0i16..2).prop_map(|(dst, off)| Item::CtxLoad {
            dst,
            size: Size::H,
            off: off * 2
        }),
        (reg(), 0i16..3).prop_map(|(dst, off)| Item::CtxLoad {
            dst,
            size: Size::W,
            off: off * 4
        }),
    ];
    prop_oneof![
        6 => alu_imm,
        6 => alu_reg,
        1 => (any::<bool>(), reg()).prop_map(|(w64, dst)| Item::Neg { w64, dst }),
        1 => (any::<bool>(), 0usize..3, reg()).prop_map(|(be, b, dst)| Item::End { be, bits: [16, 32, 64][b], dst }),
        1 => (reg(), interesting_u64()).prop_map(|(dst, value)| Item::Lddw { dst, value }),
        2 => ctx_load,
        2 => (mem_size(), 1i16..=8, proptest::option::of(reg()), interesting_i32())
            .prop_map(|(size, slot, src, imm)| Item::StackStore { size, slot, src, imm }),
        2 => (reg(), mem_size(), 1i16..=8).prop_map(|(dst, size, slot)| Item::StackLoad { dst, size, slot }),
        4 => (any::<bool>(), 0usize..11, reg(), interesting_i32(), 1usize..6)
            .prop_map(|(w64, c, dst, imm, ahead)| Item::JmpImm { w64, c: CONDS[c], dst, imm, ahead }),
        2 => (any::<bool>(), 0usize..11, reg(), reg(), 1usize..6)
            .prop_map(|(w64, c, dst, src, ahead)| Item::JmpReg { w64, c: CONDS[c], dst, src, ahead }),
    ]
}

fn bytes(size: Size) -> i16 {
    match size {
        Size::B => 1,
        Size::H => 2,
        Size::W => 4,
        Size::DW => 8,
    }
}

fn width(w64: bool) -> Width {
    if w64 {
        Width::W64
    } else {
        Width::W32
    }
}

/// Assembles items between a prologue that initializes every register and
/// the stack, and an epilogue `r0 = (rX >> k) & 1`.
fn assemble(init: &[u64; 9], items: &[Item], out: (u8, i32)) -> Vec<Insn> {
    assemble_loop(init, items, out, None)
}

/// With `count`, the items are a loop body run `count` times (at least
/// once), counted down in r9, which the body must not write.
fn assemble_loop(init: &[u64; 9], items: &[Item], out: (u8, i32), count: Option<u32>) -> Vec<Insn> {
    let mut a = Asm::new();
    for (k, &v) in init.iter().enumerate() {
        a.lddw(Reg(REGS[k]), v);
    }
    for slot in 1..=8i16 {
        a.st_imm(Size::DW, R10, -8 * slot, 0);
    }
    let top = a.new_label();
    if let Some(n) = count {
        a.lddw(Reg(9), u64::from(n.max(1)));
    }
    a.bind(top);
    let labels: Vec<Label> = (0..=items.len()).map(|_| a.new_label()).collect();
    for (p, item) in items.iter().enumerate() {
        a.bind(labels[p]);
        let target = |ahead: usize| labels[(p + ahead).min(items.len())];
        match *item {
            Item::AluImm { w64, o, dst, imm } => {
                a.alu_imm(width(w64), o, Reg(dst), imm);
            }
            Item::AluReg { w64, o, dst, src } => {
                a.alu_reg(width(w64), o, Reg(dst), Reg(src));
            }
            Item::Neg { w64, dst } => {
                let class = if w64 { op::ALU64 } else { op::ALU };
                a.raw(Insn::new(class | op::NEG, dst, 0, 0, 0));
            }
            Item::End { be, bits, dst } => {
                a.raw(Insn::new(
                    op::ALU | op::END | if be { op::X } else { op::K },
                    dst,
                    0,
                    0,
                    bits,
                ));
            }
            Item::Lddw { dst, value } => {
                a.lddw(Reg(dst), value);
            }
            Item::CtxLoad { dst, size, off } => {
                a.ldx(size, Reg(dst), R1, off);
            }
            Item::StackStore {
                size,
                slot,
                src,
                imm,
            } => {
                // Aligned inside slot `slot` (r10 - 8 * slot).
                let off = -8 * slot + (imm.rem_euclid(8) as i16 / bytes(size)) * bytes(size);
                match src {
                    Some(s) => a.stx(size, R10, off, Reg(s)),
                    None => a.st_imm(size, R10, off, imm),
                };
            }
            Item::StackLoad { dst, size, slot } => {
                a.ldx(size, Reg(dst), R10, -8 * slot + 8 - bytes(size));
            }
            Item::JmpImm {
                w64,
                c,
                dst,
                imm,
                ahead,
            } => {
                a.jmp_imm(width(w64), c, Reg(dst), imm, target(ahead));
            }
            Item::JmpReg {
                w64,
                c,
                dst,
                src,
                ahead,
            } => {
                a.jmp_reg(width(w64), c, Reg(dst), Reg(src), target(ahead));
            }
        }
    }
    a.bind(labels[items.len()]);
    if count.is_some() {
        a.alu_imm(Width::W64, op::SUB, Reg(9), 1);
        a.jmp_imm(Width::W64, Cond::Ne, Reg(9), 0, top);
    }
    a.mov_reg(Width::W64, R0, Reg(out.0));
    a.alu_imm(Width::W64, op::RSH, R0, out.1);
    a.alu_imm(Width::W64, op::AND, R0, 1);
    a.exit();
    a.finish().expect("assembles")
}

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn emulator_agrees_with_the_kernel_semantics(
        init in proptest::array::uniform9(interesting_u64()),
        items in proptest::collection::vec(item(), 1..40),
        out in (reg(), 0i32..64),
        ctxs in proptest::collection::vec(ctx(), 1..6),
    ) {
        let insns = assemble(&init, &items, out);
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

/// Items that leave r9 alone.
fn without_r9(items: Vec<Item>) -> Vec<Item> {
    let fix = |r: u8| if r == 9 { 8 } else { r };
    items
        .into_iter()
        .map(|i| match i {
            Item::AluImm { w64, o, dst, imm } => Item::AluImm {
                w64,
                o,
                dst: fix(dst),
                imm,
            },
            Item::AluReg { w64, o, dst, src } => Item::AluReg {
                w64,
                o,
                dst: fix(dst),
                src,
            },
            Item::Neg { w64, dst } => Item::Neg { w64, dst: fix(dst) },
            Item::End { be, bits, dst } => Item::End {
                be,
                bits,
                dst: fix(dst),
            },
            Item::Lddw { dst, value } => Item::Lddw {
                dst: fix(dst),
                value,
            },
            Item::CtxLoad { dst, size, off } => Item::CtxLoad {
                dst: fix(dst),
                size,
                off,
            },
            Item::StackLoad { dst, size, slot } => Item::StackLoad {
                dst: fix(dst),
                size,
                slot,
            },
            other => other,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Counted loops (a back-edge taken up to 40 times) agree too.
    #[test]
    fn loops_agree_with_the_kernel_semantics(
        init in proptest::array::uniform9(interesting_u64()),
        items in proptest::collection::vec(item(), 1..12),
        out in (reg(), 0i32..64),
        count in 1u32..40,
        c in ctx(),
    ) {
        let insns = assemble_loop(&init, &without_r9(items), out, Some(count));
        let emu = Emulator::new(&Program::new(insns.clone()))
            .map_err(|e| TestCaseError::fail(format!("refused: {e}\n{}", devcg_engine::disasm::disassemble(&insns))))?;
        prop_assert!(emu.loop_budget() >= 40);
        let want = reference(&insns, &c);
        let got = emu.run_ctx(&c).map_err(|e| TestCaseError::fail(format!("run failed: {e}")))?;
        prop_assert_eq!(got, Verdict::from_allowed(want == 1));
    }
}

/// The reference evaluator itself catches rbpf's known difference.
#[test]
fn reference_sign_extends_jmp64_immediates() {
    let insns = assemble(
        &[0, 0xffff_ffff, 0, 0, 0, 0, 0, 0, 0],
        &[
            Item::JmpImm {
                w64: true,
                c: Cond::Eq,
                dst: 2,
                imm: -1,
                ahead: 2,
            },
            Item::AluImm {
                w64: true,
                o: op::MOV,
                dst: 0,
                imm: 1,
            },
        ],
        (0, 0),
    );
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
