//! Small pieces several models share. Each is something the modelled
//! projects emit identically; the models cite their own sources.

use crate::asm::{Asm, Size, Width};
use crate::insn::{op, Program, R1, R2, R3, R4, R5};
use crate::strategy::ctx;

/// The context prologue lxc (`bpf_program_init`) and systemd
/// (`bpf_devices_cgroup_init`) both emit, instruction for instruction:
/// r2 = type (`access_type & 0xffff`), r3 = access (`access_type >> 16`),
/// r4 = major, r5 = minor, all with 32-bit ALU operations.
pub(crate) fn dev_ctx_prologue(a: &mut Asm) {
    a.ldx(Size::W, R2, R1, ctx::ACCESS_TYPE);
    a.alu_imm(Width::W32, op::AND, R2, 0xffff);
    a.ldx(Size::W, R3, R1, ctx::ACCESS_TYPE);
    a.alu_imm(Width::W32, op::RSH, R3, 16);
    a.ldx(Size::W, R4, R1, ctx::MAJOR);
    a.ldx(Size::W, R5, R1, ctx::MINOR);
}

/// What stands in for "the project attaches no device program at all":
/// the cgroup then adds no BPF verdict of its own, exactly as if it carried
/// `r0 = 1; exit`. Models return this where the project skips the attach, and
/// say so in their documentation.
pub(crate) fn nothing_attached() -> Program {
    let mut a = Asm::new();
    a.ret(1);
    Program::new(a.finish().expect("no labels"))
}

/// A small interpreter for the instruction shapes the lxc, systemd and
/// libvirt models emit, with the kernel's semantics (32-bit ALU results
/// zero-extended, 64-bit compares against a sign-extended immediate) and
/// hash-map lookups on `program.maps`. Tests only: no verifier, not the
/// project's emulator.
#[cfg(test)]
pub(crate) fn run(program: &Program, req: &crate::Request) -> u64 {
    use crate::insn::helper;

    const CTX: u64 = 0x1000_0000;
    const STACK_TOP: u64 = 0x2000_0000;
    const VALUES: u64 = 0x3000_0000;
    const MAPS: u64 = 0x4000_0000;
    let ctx = req.to_ctx();
    let mut stack = [0u8; 512];
    // (map index, entry index) of every value pointer handed out.
    let mut values: Vec<(usize, usize)> = Vec::new();
    let mut r = [0u64; 11];
    r[1] = CTX;
    r[10] = STACK_TOP;
    let mut pc = 0usize;
    for _ in 0..100_000 {
        let i = program.insns[pc];
        pc += 1;
        let (d, s) = (usize::from(i.dst), usize::from(i.src));
        match op::class(i.code) {
            op::LD => {
                assert!(i.is_lddw(), "only lddw");
                let hi = program.insns[pc].imm as u32 as u64;
                pc += 1;
                r[d] = if i.src == op::PSEUDO_MAP_FD {
                    MAPS + i.imm as u64
                } else {
                    (hi << 32) | i.imm as u32 as u64
                };
            }
            op::LDX => {
                assert_eq!(op::size(i.code), op::W, "only 32-bit loads");
                let addr = r[s].wrapping_add(i.off as i64 as u64);
                let word = if (CTX..CTX + 12).contains(&addr) {
                    let at = (addr - CTX) as usize;
                    ctx[at..at + 4].try_into().unwrap()
                } else {
                    assert!((VALUES..MAPS).contains(&addr), "load from {addr:#x}");
                    let (m, e) = values[(addr - VALUES) as usize];
                    program.maps[m].entries[e].1[..4].try_into().unwrap()
                };
                r[d] = u64::from(u32::from_le_bytes(word));
            }
            op::STX => {
                assert_eq!(op::size(i.code), op::DW, "only 64-bit stores");
                let at =
                    (r[d].wrapping_add(i.off as i64 as u64)).wrapping_sub(STACK_TOP - 512) as usize;
                stack[at..at + 8].copy_from_slice(&r[s].to_le_bytes());
            }
            class @ (op::ALU | op::ALU64) => {
                let src = if op::source(i.code) == op::X {
                    r[s]
                } else {
                    i.imm as i64 as u64
                };
                let dst = r[d];
                let v = match op::operation(i.code) {
                    op::MOV => src,
                    op::ADD => dst.wrapping_add(src),
                    op::AND => dst & src,
                    op::OR => dst | src,
                    op::RSH if class == op::ALU => u64::from((dst as u32) >> (src & 31)),
                    op::RSH => dst >> (src & 63),
                    op::LSH => dst << (src & 63),
                    other => panic!("ALU op {other:#x} not modelled"),
                };
                r[d] = if class == op::ALU {
                    u64::from(v as u32)
                } else {
                    v
                };
            }
            class @ (op::JMP | op::JMP32) => {
                let operation = op::operation(i.code);
                if operation == op::EXIT {
                    return r[0];
                }
                if operation == op::CALL {
                    assert_eq!(i.imm, helper::MAP_LOOKUP_ELEM, "only map lookups");
                    let m = (r[1] - MAPS) as usize;
                    let spec = &program.maps[m];
                    let at = r[2].wrapping_sub(STACK_TOP - 512) as usize;
                    let key = &stack[at..at + spec.key_size as usize];
                    r[0] = match spec.entries.iter().position(|(k, _)| k == key) {
                        Some(e) => {
                            values.push((m, e));
                            VALUES + (values.len() - 1) as u64
                        }
                        None => 0,
                    };
                    continue;
                }
                let src = if op::source(i.code) == op::X {
                    r[s]
                } else {
                    i.imm as i64 as u64
                };
                let (a, b) = if class == op::JMP32 {
                    (u64::from(r[d] as u32), u64::from(src as u32))
                } else {
                    (r[d], src)
                };
                let taken = match operation {
                    op::JA => true,
                    op::JEQ => a == b,
                    op::JNE => a != b,
                    op::JSET => a & b != 0,
                    other => panic!("jump op {other:#x} not modelled"),
                };
                if taken {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            other => panic!("class {other:#x} not modelled"),
        }
    }
    panic!("no exit within 100000 steps");
}

/// The model's verdict and v1's (through devcg's `linear`) for a request
/// written `c 1:3 rw` (`-` for no access bits).
#[cfg(test)]
pub(crate) fn verdicts(program: &Program, rules: &[crate::Rule], request: &str) -> (u64, u64) {
    let req = crate::Request::parse(request).expect("request");
    let v1 = crate::strategy::linear::compile_set(&crate::RuleSet::from_rules(rules))
        .expect("linear compiles");
    (run(program, &req), run(&v1, &req))
}
