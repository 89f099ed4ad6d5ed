//! Prints instructions one per line in bpftool's `prog dump xlated` style
//! (kernel/bpf/disasm.c), for golden files and `--format asm`.

use std::fmt::Write;

use crate::insn::{helper, op, Insn};

fn alu_op(code: u8) -> &'static str {
    match op::operation(code) {
        op::ADD => "+=",
        op::SUB => "-=",
        op::MUL => "*=",
        op::DIV => "/=",
        op::OR => "|=",
        op::AND => "&=",
        op::LSH => "<<=",
        op::RSH => ">>=",
        op::MOD => "%=",
        op::XOR => "^=",
        op::MOV => "=",
        op::ARSH => "s>>=",
        _ => "?=",
    }
}

fn jmp_op(code: u8) -> Option<&'static str> {
    Some(match op::operation(code) {
        op::JEQ => "==",
        op::JGT => ">",
        op::JGE => ">=",
        op::JSET => "&",
        op::JNE => "!=",
        op::JSGT => "s>",
        op::JSGE => "s>=",
        op::JLT => "<",
        op::JLE => "<=",
        op::JSLT => "s<",
        op::JSLE => "s<=",
        _ => return None,
    })
}

fn size_name(code: u8) -> &'static str {
    match op::size(code) {
        op::B => "u8",
        op::H => "u16",
        op::W => "u32",
        _ => "u64",
    }
}

/// One instruction without its index. `next` is the following slot, used for
/// the upper half of an `lddw`.
pub fn format_insn(insn: &Insn, next: Option<&Insn>) -> String {
    let c = insn.code;
    let (d, s) = (insn.dst, insn.src);
    let body = match op::class(c) {
        op::ALU | op::ALU64 => {
            let r = if op::class(c) == op::ALU64 { 'r' } else { 'w' };
            match op::operation(c) {
                op::NEG => format!("{r}{d} = -{r}{d}"),
                op::END if op::class(c) == op::ALU64 => format!("r{d} = bswap{} r{d}", insn.imm),
                op::END => {
                    let order = if op::source(c) == op::X { "be" } else { "le" };
                    format!("r{d} = {order}{} r{d}", insn.imm)
                }
                op::MOV if op::source(c) == op::X && insn.off != 0 => {
                    format!("{r}{d} = (s{}){r}{s}", insn.off)
                }
                op::DIV | op::MOD if insn.off == 1 => {
                    let sop = if op::operation(c) == op::DIV {
                        "s/="
                    } else {
                        "s%="
                    };
                    if op::source(c) == op::X {
                        format!("{r}{d} {sop} {r}{s}")
                    } else {
                        format!("{r}{d} {sop} {}", insn.imm)
                    }
                }
                _ if op::source(c) == op::X => format!("{r}{d} {} {r}{s}", alu_op(c)),
                _ => format!("{r}{d} {} {}", alu_op(c), insn.imm),
            }
        }
        op::LDX if op::mode(c) == op::MEM => {
            format!("r{d} = *({} *)(r{s} {:+})", size_name(c), insn.off)
        }
        op::LDX if op::mode(c) == op::MEMSX => {
            format!("r{d} = *(s{} *)(r{s} {:+})", &size_name(c)[1..], insn.off)
        }
        op::STX if op::mode(c) == op::ATOMIC => atomic(insn),
        op::STX if op::mode(c) == op::MEM => {
            format!("*({} *)(r{d} {:+}) = r{s}", size_name(c), insn.off)
        }
        op::ST if op::mode(c) == op::MEM => {
            format!("*({} *)(r{d} {:+}) = {}", size_name(c), insn.off, insn.imm)
        }
        op::LD if insn.is_lddw() => {
            if s == op::PSEUDO_MAP_FD {
                format!("r{d} = map[idx:{}]", insn.imm)
            } else {
                let hi = next.map_or(0, |n| n.imm as u32 as u64);
                format!("r{d} = {:#x}", (hi << 32) | insn.imm as u32 as u64)
            }
        }
        op::JMP | op::JMP32 => {
            let r = if op::class(c) == op::JMP { 'r' } else { 'w' };
            match op::operation(c) {
                op::JA if op::class(c) == op::JMP32 => format!("gotol pc{:+}", insn.imm),
                op::JA => format!("goto pc{:+}", insn.off),
                op::JCOND => format!("may_goto pc{:+}", insn.off),
                op::EXIT => "exit".to_string(),
                op::CALL if s == op::PSEUDO_CALL => format!("call pc{:+}", insn.imm),
                op::CALL => match helper::name(insn.imm) {
                    Some(name) => format!("call {name}#{}", insn.imm),
                    None => format!("call #{}", insn.imm),
                },
                _ => match (jmp_op(c), op::source(c) == op::X) {
                    (Some(cmp), true) => format!("if {r}{d} {cmp} {r}{s} goto pc{:+}", insn.off),
                    (Some(cmp), false) => format!(
                        "if {r}{d} {cmp} {:#x} goto pc{:+}",
                        insn.imm as u32, insn.off
                    ),
                    (None, _) => format!("BUG_{c:02x}"),
                },
            }
        }
        _ => format!("BUG_{c:02x}"),
    };
    format!("({c:02x}) {body}")
}

/// BPF_STX|BPF_ATOMIC, as the kernel's disassembler words it.
fn atomic(insn: &Insn) -> String {
    let (d, s, off) = (insn.dst, insn.src, insn.off);
    let (ty, bits) = if op::size(insn.code) == op::DW {
        ("u64", "64")
    } else {
        ("u32", "")
    };
    let sym = match insn.imm & !op::ATOMIC_FETCH {
        op::ATOMIC_ADD => Some(("+=", "add")),
        op::ATOMIC_OR => Some(("|=", "or")),
        op::ATOMIC_AND => Some(("&=", "and")),
        op::ATOMIC_XOR => Some(("^=", "xor")),
        _ => None,
    };
    match (insn.imm, sym) {
        (op::ATOMIC_XCHG, _) => format!("r{s} = atomic{bits}_xchg(({ty} *)(r{d} {off:+}), r{s})"),
        (op::ATOMIC_CMPXCHG, _) => {
            format!("r0 = atomic{bits}_cmpxchg(({ty} *)(r{d} {off:+}), r0, r{s})")
        }
        (k, Some((_, name))) if k & op::ATOMIC_FETCH != 0 => {
            format!("r{s} = atomic{bits}_fetch_{name}(({ty} *)(r{d} {off:+}), r{s})")
        }
        (_, Some((sym, _))) => format!("lock *({ty} *)(r{d} {off:+}) {sym} r{s}"),
        _ => format!("BUG_{:02x}", insn.code),
    }
}

/// The whole program, `%4d: ` numbered; an `lddw` prints once and its
/// second slot keeps its number, as bpftool does.
pub fn disassemble(insns: &[Insn]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < insns.len() {
        let insn = &insns[i];
        let _ = writeln!(out, "{i:4}: {}", format_insn(insn, insns.get(i + 1)));
        i += if insn.is_lddw() { 2 } else { 1 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::{Asm, Cond, Size, Width};
    use crate::insn::{R0, R1, R2, R3};

    #[test]
    fn prints_like_bpftool() {
        let mut a = Asm::new();
        let l = a.new_label();
        a.ldx(Size::W, R2, R1, 0);
        a.alu_imm(Width::W32, op::AND, R2, 0xffff);
        a.alu_imm(Width::W32, op::RSH, R3, 16);
        a.jmp_imm(Width::W32, Cond::Ne, R2, -1, l);
        a.jmp_reg(Width::W64, Cond::Sgt, R2, R3, l);
        a.lddw(R0, 0x1_0000_0002);
        a.ld_map(R1, 0);
        a.call(1);
        a.bind(l);
        a.ret(1);
        let text = disassemble(&a.finish().unwrap());
        let want = "   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (74) w3 >>= 16
   3: (56) if w2 != 0xffffffff goto pc+6
   4: (6d) if r2 s> r3 goto pc+5
   5: (18) r0 = 0x100000002
   7: (18) r1 = map[idx:0]
   9: (85) call bpf_map_lookup_elem#1
  10: (b7) r0 = 1
  11: (95) exit
";
        assert_eq!(text, want);
    }
}
