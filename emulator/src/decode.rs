//! Structural checks, as the kernel makes them before it looks at values:
//! opcodes, reserved fields, registers, `lddw` pairs, jump targets, the last
//! instruction and reachability. The result is one [`Op`] per instruction
//! (the second slot of an `lddw` has none).

use devcg_engine::insn::{op, Insn};

use crate::EmuError;

/// Programs longer than this are refused by the kernel (BPF_COMPLEXITY_LIMIT_INSNS).
pub(crate) const KERNEL_MAX_INSNS: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Src {
    Reg(u8),
    Imm(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// ALU and ALU64 binary operations, MOV included (`operation` is the
    /// opcode's operation field).
    Alu {
        w64: bool,
        operation: u8,
        dst: u8,
        src: Src,
    },
    Neg {
        w64: bool,
        dst: u8,
    },
    /// Byte order conversion (ALU class only).
    End {
        to_be: bool,
        bits: u32,
        dst: u8,
    },
    /// `map` is the index into `program.maps` for a pseudo map-fd load.
    Lddw {
        dst: u8,
        value: u64,
        map: Option<u32>,
    },
    Ldx {
        size: usize,
        dst: u8,
        src: u8,
        off: i16,
    },
    St {
        size: usize,
        dst: u8,
        off: i16,
        imm: i32,
    },
    Stx {
        size: usize,
        dst: u8,
        src: u8,
        off: i16,
    },
    Ja {
        target: usize,
    },
    Jcond {
        w64: bool,
        cond: u8,
        dst: u8,
        src: Src,
        target: usize,
    },
    Call {
        helper: i32,
    },
    Exit,
    /// cpu v4 signed division or modulo (`off` 1).
    SDiv {
        w64: bool,
        modulo: bool,
        dst: u8,
        src: Src,
    },
    /// cpu v4 unconditional byte swap of the low `bits` (zero-extended).
    Bswap {
        bits: u32,
        dst: u8,
    },
    /// cpu v4 `dst = (s<bits>) src`; the 32-bit form zero-extends.
    MovSx {
        w64: bool,
        bits: u32,
        dst: u8,
        src: u8,
    },
    /// cpu v4 sign-extending load.
    Ldsx {
        size: usize,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// BPF_STX|BPF_ATOMIC read-modify-write (`operation` is the imm).
    Atomic {
        size: usize,
        dst: u8,
        src: u8,
        off: i16,
        operation: i32,
    },
    /// bpf-to-bpf call to the subprogram starting at `target`.
    CallLocal {
        target: usize,
    },
    /// Falls through while the kernel's loop allowance lasts, then jumps.
    MayGoto {
        target: usize,
    },
}

impl Op {
    /// Where control can go next (the fall-through first).
    pub fn successors(&self, at: usize) -> Successors {
        match *self {
            Op::Ja { target } => Successors::One(target),
            Op::Jcond { target, .. } | Op::MayGoto { target } => Successors::Two(at + 1, target),
            Op::Exit => Successors::None,
            Op::Lddw { .. } => Successors::One(at + 2),
            _ => Successors::One(at + 1),
        }
    }

    pub fn jump_target(&self) -> Option<usize> {
        match *self {
            Op::Ja { target } | Op::Jcond { target, .. } | Op::MayGoto { target } => Some(target),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Successors {
    None,
    One(usize),
    Two(usize, usize),
}

impl Successors {
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let (a, b) = match self {
            Successors::None => (None, None),
            Successors::One(x) => (Some(x), None),
            Successors::Two(x, y) => (Some(x), Some(y)),
        };
        a.into_iter().chain(b)
    }
}

fn size_bytes(code: u8) -> usize {
    match op::size(code) {
        op::B => 1,
        op::H => 2,
        op::W => 4,
        _ => 8,
    }
}

fn reg(insn: usize, r: u8) -> Result<u8, EmuError> {
    if r > 10 {
        Err(EmuError::BadRegister { insn, reg: r })
    } else {
        Ok(r)
    }
}

/// A register the instruction writes: r10 is read-only.
fn dst_reg(insn: usize, r: u8) -> Result<u8, EmuError> {
    match reg(insn, r)? {
        10 => Err(EmuError::WriteR10 { insn }),
        r => Ok(r),
    }
}

fn reserved(insn: usize, what: &'static str) -> EmuError {
    EmuError::Reserved { insn, what }
}

fn decode_alu(i: usize, ins: &Insn) -> Result<Op, EmuError> {
    let code = ins.code;
    let w64 = op::class(code) == op::ALU64;
    let x = op::source(code) == op::X;
    let operation = op::operation(code);
    match operation {
        op::NEG => {
            if x || ins.src != 0 || ins.off != 0 || ins.imm != 0 {
                return Err(reserved(i, "BPF_NEG uses reserved fields"));
            }
            Ok(Op::Neg {
                w64,
                dst: dst_reg(i, ins.dst)?,
            })
        }
        op::END => {
            if w64 {
                // BPF_ALU64|BPF_END|BPF_TO_LE is the v4 unconditional bswap.
                if x || ins.src != 0 || ins.off != 0 || !matches!(ins.imm, 16 | 32 | 64) {
                    return Err(reserved(i, "BPF_END uses reserved fields"));
                }
                return Ok(Op::Bswap {
                    bits: ins.imm as u32,
                    dst: dst_reg(i, ins.dst)?,
                });
            }
            if ins.src != 0 || ins.off != 0 || !matches!(ins.imm, 16 | 32 | 64) {
                return Err(reserved(i, "BPF_END uses reserved fields"));
            }
            Ok(Op::End {
                to_be: x,
                bits: ins.imm as u32,
                dst: dst_reg(i, ins.dst)?,
            })
        }
        op::MOV => {
            if x {
                if ins.imm != 0 {
                    return Err(reserved(i, "BPF_MOV uses reserved fields"));
                }
                let movsx = if w64 {
                    matches!(ins.off, 8 | 16 | 32)
                } else {
                    matches!(ins.off, 8 | 16)
                };
                if movsx {
                    return Ok(Op::MovSx {
                        w64,
                        bits: ins.off as u32,
                        dst: dst_reg(i, ins.dst)?,
                        src: reg(i, ins.src)?,
                    });
                }
                if w64 && ins.off == 1 {
                    return Err(EmuError::Unsupported {
                        insn: i,
                        what: "addr_space_cast".into(),
                    });
                }
                if ins.off != 0 {
                    return Err(reserved(i, "BPF_MOV uses reserved fields"));
                }
                let src = Src::Reg(reg(i, ins.src)?);
                Ok(Op::Alu {
                    w64,
                    operation,
                    dst: dst_reg(i, ins.dst)?,
                    src,
                })
            } else {
                if ins.src != 0 || ins.off != 0 {
                    return Err(reserved(i, "BPF_MOV uses reserved fields"));
                }
                Ok(Op::Alu {
                    w64,
                    operation,
                    dst: dst_reg(i, ins.dst)?,
                    src: Src::Imm(ins.imm),
                })
            }
        }
        op::ADD
        | op::SUB
        | op::MUL
        | op::DIV
        | op::OR
        | op::AND
        | op::LSH
        | op::RSH
        | op::MOD
        | op::XOR
        | op::ARSH => {
            if x && ins.imm != 0 || !x && ins.src != 0 {
                return Err(reserved(i, "BPF_ALU uses reserved fields"));
            }
            let signed = ins.off == 1 && matches!(operation, op::DIV | op::MOD);
            if ins.off != 0 && !signed {
                return Err(reserved(i, "BPF_ALU uses reserved fields"));
            }
            let dst = dst_reg(i, ins.dst)?;
            let src = if x {
                Src::Reg(reg(i, ins.src)?)
            } else {
                let width = if w64 { 64 } else { 32 };
                match operation {
                    op::DIV | op::MOD if ins.imm == 0 => {
                        return Err(EmuError::DivByZero { insn: i })
                    }
                    op::LSH | op::RSH | op::ARSH if ins.imm < 0 || ins.imm >= width => {
                        return Err(EmuError::BadShift {
                            insn: i,
                            shift: ins.imm,
                            width: width as u32,
                        })
                    }
                    _ => {}
                }
                Src::Imm(ins.imm)
            };
            if signed {
                return Ok(Op::SDiv {
                    w64,
                    modulo: operation == op::MOD,
                    dst,
                    src,
                });
            }
            Ok(Op::Alu {
                w64,
                operation,
                dst,
                src,
            })
        }
        _ => Err(EmuError::UnknownOpcode { insn: i, code }),
    }
}

fn decode_atomic(i: usize, ins: &Insn) -> Result<Op, EmuError> {
    let rmw = matches!(
        ins.imm & !op::ATOMIC_FETCH,
        op::ATOMIC_ADD | op::ATOMIC_OR | op::ATOMIC_AND | op::ATOMIC_XOR
    ) || matches!(ins.imm, op::ATOMIC_XCHG | op::ATOMIC_CMPXCHG);
    if !rmw {
        // load-acquire and store-release (6.15) are not emulated.
        return Err(EmuError::Unsupported {
            insn: i,
            what: format!("atomic operation {:#x}", ins.imm),
        });
    }
    let size = size_bytes(ins.code);
    if size < 4 {
        return Err(EmuError::NotAllowed {
            insn: i,
            what: "an atomic operation narrower than 4 bytes",
        });
    }
    let fetches = ins.imm & op::ATOMIC_FETCH != 0;
    // A fetch writes its src register (cmpxchg writes r0).
    let src = if fetches && ins.imm != op::ATOMIC_CMPXCHG {
        dst_reg(i, ins.src)?
    } else {
        reg(i, ins.src)?
    };
    Ok(Op::Atomic {
        size,
        dst: reg(i, ins.dst)?,
        src,
        off: ins.off,
        operation: ins.imm,
    })
}

fn decode_jmp(i: usize, ins: &Insn, n: usize) -> Result<Op, EmuError> {
    let code = ins.code;
    let w64 = op::class(code) == op::JMP;
    let x = op::source(code) == op::X;
    let target = |off: i64| -> Result<usize, EmuError> {
        let t = i as i64 + 1 + off;
        if t < 0 || t >= n as i64 {
            Err(EmuError::JumpOutOfRange { insn: i, target: t })
        } else {
            Ok(t as usize)
        }
    };
    match op::operation(code) {
        op::JA => {
            // gotol (cpu v4) keeps its offset in imm, goto in off.
            if x || ins.src != 0 || ins.dst != 0 || (w64 && ins.imm != 0) || (!w64 && ins.off != 0)
            {
                return Err(reserved(i, "BPF_JA uses reserved fields"));
            }
            let t = if w64 {
                target(i64::from(ins.off))?
            } else {
                target(i64::from(ins.imm))?
            };
            Ok(Op::Ja { target: t })
        }
        op::JCOND => {
            if !w64 || x || ins.src != 0 || ins.dst != 0 || ins.imm != 0 {
                return Err(reserved(i, "may_goto uses reserved fields"));
            }
            Ok(Op::MayGoto {
                target: target(i64::from(ins.off))?,
            })
        }
        op::CALL => {
            if !w64 {
                return Err(EmuError::UnknownOpcode { insn: i, code });
            }
            if x || ins.off != 0 || ins.dst != 0 {
                return Err(reserved(i, "BPF_CALL uses reserved fields"));
            }
            match ins.src {
                0 => Ok(Op::Call { helper: ins.imm }),
                op::PSEUDO_CALL => Ok(Op::CallLocal {
                    target: target(i64::from(ins.imm))?,
                }),
                2 => Err(EmuError::Unsupported {
                    insn: i,
                    what: "kfunc call".into(),
                }),
                _ => Err(reserved(i, "BPF_CALL uses reserved fields")),
            }
        }
        op::EXIT => {
            // The kernel does not look at `off` here.
            if !w64 || x || ins.imm != 0 || ins.src != 0 || ins.dst != 0 {
                return Err(reserved(i, "BPF_EXIT uses reserved fields"));
            }
            Ok(Op::Exit)
        }
        cond @ (op::JEQ
        | op::JGT
        | op::JGE
        | op::JSET
        | op::JNE
        | op::JSGT
        | op::JSGE
        | op::JLT
        | op::JLE
        | op::JSLT
        | op::JSLE) => {
            if x && ins.imm != 0 || !x && ins.src != 0 {
                return Err(reserved(i, "BPF_JMP/JMP32 uses reserved fields"));
            }
            let dst = reg(i, ins.dst)?;
            let src = if x {
                Src::Reg(reg(i, ins.src)?)
            } else {
                Src::Imm(ins.imm)
            };
            Ok(Op::Jcond {
                w64,
                cond,
                dst,
                src,
                target: target(i64::from(ins.off))?,
            })
        }
        _ => Err(EmuError::UnknownOpcode { insn: i, code }),
    }
}

/// Decodes and checks every instruction. `maps` is the number of maps the
/// program brings (the range of valid pseudo map-fd immediates). With
/// `reachable`, every instruction must be reachable, as the kernel demands.
pub(crate) fn decode(
    insns: &[Insn],
    maps: usize,
    reachable: bool,
) -> Result<Vec<Option<Op>>, EmuError> {
    let n = insns.len();
    if n == 0 {
        return Err(EmuError::Empty);
    }
    if n > KERNEL_MAX_INSNS {
        return Err(EmuError::TooLarge {
            slots: n,
            limit: KERNEL_MAX_INSNS,
        });
    }
    let mut ops: Vec<Option<Op>> = vec![None; n];
    let mut second_half = vec![false; n];
    let mut i = 0;
    while i < n {
        let ins = &insns[i];
        let code = ins.code;
        let decoded = match op::class(code) {
            op::LD => {
                if ins.is_lddw() {
                    if ins.off != 0 {
                        return Err(reserved(i, "BPF_LD_IMM64 uses reserved fields"));
                    }
                    let Some(hi) = insns.get(i + 1) else {
                        return Err(EmuError::BadLddw {
                            insn: i,
                            what: "its second slot is missing",
                        });
                    };
                    if hi.code != 0 || hi.dst != 0 || hi.src != 0 || hi.off != 0 {
                        return Err(EmuError::BadLddw {
                            insn: i,
                            what: "its second slot uses reserved fields",
                        });
                    }
                    let dst = dst_reg(i, ins.dst)?;
                    let map = match ins.src {
                        0 => None,
                        op::PSEUDO_MAP_FD => {
                            if hi.imm != 0 {
                                return Err(EmuError::BadLddw {
                                    insn: i,
                                    what: "a map load has a nonzero upper half",
                                });
                            }
                            if ins.imm < 0 || ins.imm as usize >= maps {
                                return Err(EmuError::BadMapIndex {
                                    insn: i,
                                    index: ins.imm,
                                });
                            }
                            Some(ins.imm as u32)
                        }
                        s => {
                            return Err(EmuError::Unsupported {
                                insn: i,
                                what: format!("lddw with pseudo source {s}"),
                            })
                        }
                    };
                    let value = u64::from(ins.imm as u32) | u64::from(hi.imm as u32) << 32;
                    ops[i] = Some(Op::Lddw { dst, value, map });
                    second_half[i + 1] = true;
                    i += 2;
                    continue;
                }
                match op::mode(code) {
                    0x20 | 0x40 => {
                        return Err(EmuError::NotAllowed {
                            insn: i,
                            what: "BPF_LD_[ABS|IND] (only socket filters may use them)",
                        })
                    }
                    _ => return Err(EmuError::UnknownOpcode { insn: i, code }),
                }
            }
            op::LDX => match op::mode(code) {
                op::MEM => {
                    if ins.imm != 0 {
                        return Err(reserved(i, "BPF_LDX uses reserved fields"));
                    }
                    let src = reg(i, ins.src)?;
                    Op::Ldx {
                        size: size_bytes(code),
                        dst: dst_reg(i, ins.dst)?,
                        src,
                        off: ins.off,
                    }
                }
                op::MEMSX if op::size(code) != op::DW => {
                    if ins.imm != 0 {
                        return Err(reserved(i, "BPF_LDX uses reserved fields"));
                    }
                    Op::Ldsx {
                        size: size_bytes(code),
                        dst: dst_reg(i, ins.dst)?,
                        src: reg(i, ins.src)?,
                        off: ins.off,
                    }
                }
                _ => return Err(EmuError::UnknownOpcode { insn: i, code }),
            },
            op::ST => match op::mode(code) {
                op::MEM => {
                    if ins.src != 0 {
                        return Err(reserved(i, "BPF_ST uses reserved fields"));
                    }
                    Op::St {
                        size: size_bytes(code),
                        dst: reg(i, ins.dst)?,
                        off: ins.off,
                        imm: ins.imm,
                    }
                }
                _ => return Err(EmuError::UnknownOpcode { insn: i, code }),
            },
            op::STX => match op::mode(code) {
                op::MEM => {
                    if ins.imm != 0 {
                        return Err(reserved(i, "BPF_STX uses reserved fields"));
                    }
                    Op::Stx {
                        size: size_bytes(code),
                        dst: reg(i, ins.dst)?,
                        src: reg(i, ins.src)?,
                        off: ins.off,
                    }
                }
                op::ATOMIC => decode_atomic(i, ins)?,
                _ => return Err(EmuError::UnknownOpcode { insn: i, code }),
            },
            op::ALU | op::ALU64 => decode_alu(i, ins)?,
            _ => decode_jmp(i, ins, n)?,
        };
        ops[i] = Some(decoded);
        i += 1;
    }
    for (i, o) in ops.iter().enumerate() {
        let call = match o {
            Some(Op::CallLocal { target }) => Some(*target),
            _ => None,
        };
        if let Some(t) = o.and_then(|o| o.jump_target()).or(call) {
            if second_half[t] {
                return Err(EmuError::JumpIntoLddw { insn: i, target: t });
            }
        }
    }
    // The kernel's check_subprogs: jumps stay inside their subprogram, and
    // the last instruction of each must end its flow.
    let starts = subprogs(&ops);
    let sub_of = |pc: usize| starts.partition_point(|&s| s <= pc) - 1;
    for (i, o) in ops.iter().enumerate() {
        if let Some(t) = o.and_then(|o| o.jump_target()) {
            if sub_of(t) != sub_of(i) {
                return Err(EmuError::JumpOutOfSubprog { insn: i, target: t });
            }
        }
    }
    for (k, &start) in starts.iter().enumerate() {
        let last = starts.get(k + 1).copied().unwrap_or(n) - 1;
        debug_assert!(last >= start);
        if second_half[last] || !matches!(ops[last], Some(Op::Exit) | Some(Op::Ja { .. })) {
            return Err(EmuError::FallsOffEnd { insn: last });
        }
    }
    // The kernel's check_cfg: every instruction must be reachable.
    let mut seen = vec![false; n];
    let mut stack = vec![0usize];
    seen[0] = true;
    while let Some(i) = stack.pop() {
        let Some(o) = ops[i] else { continue };
        let callee = match o {
            Op::CallLocal { target } => Some(target),
            _ => None,
        };
        for s in o.successors(i).iter().chain(callee) {
            if s >= n {
                return Err(EmuError::FallsOffEnd { insn: i });
            }
            if !seen[s] {
                seen[s] = true;
                stack.push(s);
            }
        }
    }
    if let Some(i) = (0..n).find(|&i| reachable && !seen[i] && !second_half[i]) {
        return Err(EmuError::Unreachable { insn: i });
    }
    if let Some(i) = endless_loop(&ops) {
        return Err(EmuError::InfiniteLoop { insn: i });
    }
    Ok(ops)
}

/// Where each subprogram starts, in order: 0 and every bpf-to-bpf call
/// target.
pub(crate) fn subprogs(ops: &[Option<Op>]) -> Vec<usize> {
    let mut starts: Vec<usize> = std::iter::once(0)
        .chain(ops.iter().filter_map(|o| match o {
            Some(Op::CallLocal { target }) => Some(*target),
            _ => None,
        }))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Jumps that can repeat in one run: those to an instruction at or before
/// them whose target can reach them again (same strongly connected
/// component). Every cycle has one, since other edges go forward; a
/// backward jump outside any cycle (a shared tail) runs at most once.
pub(crate) fn loop_edges(ops: &[Option<Op>]) -> Vec<usize> {
    let comp = components(ops);
    (0..ops.len())
        .filter(|&i| match ops[i].and_then(|o| o.jump_target()) {
            Some(t) => t <= i && comp[t] == comp[i],
            None => false,
        })
        .collect()
}

/// A cycle that nothing leaves: no exit inside, no edge out. The kernel
/// finds its state repeating and refuses the program ("infinite loop
/// detected"); the first instruction of the first such cycle.
pub(crate) fn endless_loop(ops: &[Option<Op>]) -> Option<usize> {
    let comp = components(ops);
    let n = ops.len();
    let mut cyclic = vec![false; n];
    let mut leaves = vec![false; n];
    for (i, o) in ops.iter().enumerate() {
        let Some(o) = o else { continue };
        if matches!(o, Op::Exit) {
            leaves[comp[i]] = true;
        }
        for t in o.successors(i).iter() {
            if t >= n || comp[t] != comp[i] {
                leaves[comp[i]] = true;
            } else if t <= i {
                cyclic[comp[i]] = true;
            }
        }
    }
    (0..n)
        .find(|&i| ops[i].is_some() && comp[i] != usize::MAX && cyclic[comp[i]] && !leaves[comp[i]])
}

/// Strongly connected component of each instruction (`usize::MAX` for
/// the second slot of an `lddw`).
fn components(ops: &[Option<Op>]) -> Vec<usize> {
    let n = ops.len();
    let succ = |i: usize| ops[i].map(|o| o.successors(i)).unwrap_or(Successors::None);
    // Iterative Tarjan.
    const NONE: usize = usize::MAX;
    let mut index = vec![NONE; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut comp = vec![NONE; n];
    let mut stack = Vec::new();
    let mut next_index = 0;
    let mut ncomp = 0;
    for root in 0..n {
        if index[root] != NONE || ops[root].is_none() {
            continue;
        }
        // (node, next successor position)
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            let s: Vec<usize> = succ(v).iter().filter(|&w| w < n).collect();
            if let Some(&w) = s.get(*pos) {
                *pos += 1;
                if index[w] == NONE {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = ncomp;
                    if w == v {
                        break;
                    }
                }
                ncomp += 1;
            }
        }
    }
    comp
}
