//! The static verifier: abstract interpretation over register and stack
//! types, in the spirit of the kernel's, but join-based. Where paths meet,
//! agreeing types stay, scalar intervals merge and anything else becomes
//! `Unknown`, which may be moved or spilled but not used. Where it cannot
//! follow the kernel it refuses: a refused program is a typed error, never a
//! wrong verdict.

use std::collections::BTreeSet;

use devcg_engine::insn::{helper, op, MapSpec};

use crate::decode::{self, Op, Src, Successors};
use crate::scalar::{self, Range};
use crate::EmuError;

const STACK_SIZE: i64 = 512;
const SLOTS: usize = (STACK_SIZE / 8) as usize;
/// The kernel's bound on constant pointer offsets (BPF_MAX_VAR_OFF).
const MAX_PTR_OFF: i64 = 1 << 29;
/// Joins into a block entry before growing intervals jump to the top.
const WIDEN_AFTER: u32 = 8;
/// Instructions processed before giving up (the kernel's limit is 1M).
const MAX_STEPS: usize = 4_000_000;
/// `sizeof(struct bpf_cgroup_dev_ctx)`
const CTX_SIZE: i64 = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Val {
    Uninit,
    Scalar(Range),
    /// Pointer to the context plus a constant offset.
    Ctx(i64),
    /// r10 plus a constant (negative) offset.
    Stack(i64),
    MapPtr(u32),
    /// A lookup result not yet compared with 0; `id` is the call site, so a
    /// null check refines every copy.
    MapValueOrNull {
        map: u32,
        id: u32,
    },
    MapValue {
        map: u32,
        off: i64,
    },
    /// Paths disagree on what this is.
    Unknown,
}

impl Val {
    fn join(self, other: Val, widen: bool) -> Val {
        match (self, other) {
            (a, b) if a == b => a,
            (Val::Uninit, _) | (_, Val::Uninit) => Val::Uninit,
            (Val::Scalar(a), Val::Scalar(b)) => {
                let u = a.union(b);
                if widen && u != a {
                    Val::Scalar(Range::FULL)
                } else {
                    Val::Scalar(u)
                }
            }
            _ => Val::Unknown,
        }
    }

    fn is_pointer(self) -> bool {
        matches!(
            self,
            Val::Ctx(_)
                | Val::Stack(_)
                | Val::MapPtr(_)
                | Val::MapValueOrNull { .. }
                | Val::MapValue { .. }
        )
    }
}

/// Eight stack bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Scalar bytes; bit i set when byte i was written.
    Misc(u8),
    /// A whole register stored with an aligned 8-byte store. `Unknown`
    /// marks a spilled pointer that was partly overwritten: unreadable.
    Spill(Val),
}

impl Slot {
    fn join(self, other: Slot, widen: bool) -> Slot {
        match (self, other) {
            (a, b) if a == b => a,
            (Slot::Misc(a), Slot::Misc(b)) => Slot::Misc(a & b),
            (Slot::Spill(a), Slot::Spill(b)) => Slot::Spill(a.join(b, widen)),
            (Slot::Misc(m), Slot::Spill(Val::Scalar(_)))
            | (Slot::Spill(Val::Scalar(_)), Slot::Misc(m)) => Slot::Misc(m),
            // Pointer bytes on one path: readable on none.
            _ => Slot::Misc(0),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    regs: [Val; 11],
    stack: [Slot; SLOTS],
}

impl State {
    fn entry() -> State {
        let mut regs = [Val::Uninit; 11];
        regs[1] = Val::Ctx(0);
        regs[10] = Val::Stack(0);
        State {
            regs,
            stack: [Slot::Misc(0); SLOTS],
        }
    }

    fn join(&self, other: &State, widen: bool) -> State {
        let mut out = self.clone();
        for (a, b) in out.regs.iter_mut().zip(other.regs.iter()) {
            *a = a.join(*b, widen);
        }
        for (a, b) in out.stack.iter_mut().zip(other.stack.iter()) {
            *a = a.join(*b, widen);
        }
        out
    }

    /// Applies `f` to every register and spilled value.
    fn map_vals(&mut self, f: impl Fn(Val) -> Val) {
        for r in self.regs.iter_mut() {
            *r = f(*r);
        }
        for s in self.stack.iter_mut() {
            if let Slot::Spill(v) = s {
                *v = f(*v);
            }
        }
    }
}

/// What the rest of the emulator needs to know about a verified program.
#[derive(Clone, Debug, Default)]
pub(crate) struct Facts {
    /// Sources of the jumps that close cycles (see `decode::loop_edges`).
    pub loop_edges: Vec<usize>,
    /// Per map: `bpf_map_update_elem` may insert into it.
    pub map_inserts: Vec<bool>,
    /// The program may change map contents (update, delete, stores).
    pub mutates_maps: bool,
}

struct Verifier<'a> {
    maps: &'a [MapSpec],
    facts: Facts,
}

fn stack_index(addr: i64) -> (usize, u32) {
    let from_bottom = addr + STACK_SIZE;
    ((from_bottom / 8) as usize, (from_bottom % 8) as u32)
}

fn byte_mask(byte: u32, size: usize) -> u8 {
    ((((1u16 << size) - 1) << byte) & 0xff) as u8
}

/// `cgroup_dev_is_valid_access` for a read.
fn ctx_read_ok(off: i64, size: usize) -> Result<(), &'static str> {
    let size_i = size as i64;
    if off < 0 || off + size_i > CTX_SIZE {
        return Err("outside struct bpf_cgroup_dev_ctx");
    }
    if off % size_i != 0 {
        return Err("misaligned");
    }
    if off < 4 {
        // access_type: narrow loads allowed.
        if size > 4 {
            return Err("wider than the field");
        }
    } else if size != 4 {
        return Err("major and minor allow only 4-byte loads");
    }
    Ok(())
}

fn imm_operand(w64: bool, k: i32) -> Val {
    Val::Scalar(Range::constant(if w64 {
        k as i64 as u64
    } else {
        u64::from(k as u32)
    }))
}

impl Verifier<'_> {
    fn get(&self, st: &State, insn: usize, reg: u8) -> Result<Val, EmuError> {
        match st.regs[reg as usize] {
            Val::Uninit => Err(EmuError::UninitRegister { insn, reg }),
            v => Ok(v),
        }
    }

    fn operand(&self, st: &State, insn: usize, w64: bool, src: Src) -> Result<Val, EmuError> {
        match src {
            Src::Imm(k) => Ok(imm_operand(w64, k)),
            Src::Reg(r) => self.get(st, insn, r),
        }
    }

    fn stack_bounds(insn: usize, addr: i64, size: usize, aligned: bool) -> Result<(), EmuError> {
        if addr < -STACK_SIZE || addr + size as i64 > 0 {
            return Err(EmuError::StackAccess {
                insn,
                off: addr,
                size,
                reason: "outside the 512-byte stack",
            });
        }
        if aligned && addr.rem_euclid(size as i64) != 0 {
            // The kernel checks stack alignment strictly on every arch.
            return Err(EmuError::StackAccess {
                insn,
                off: addr,
                size,
                reason: "misaligned",
            });
        }
        Ok(())
    }

    fn map_value_bounds(
        &self,
        insn: usize,
        map: u32,
        addr: i64,
        size: usize,
    ) -> Result<(), EmuError> {
        let value_size = i64::from(self.maps[map as usize].value_size);
        if addr < 0 || addr + size as i64 > value_size {
            return Err(EmuError::MapValueAccess {
                insn,
                map: map as usize,
                off: addr,
                size,
                reason: "outside the value",
            });
        }
        Ok(())
    }

    /// Why `base` cannot be dereferenced, for the non-pointer cases.
    fn bad_base(insn: usize, reg: u8, base: Val) -> EmuError {
        match base {
            Val::Unknown => EmuError::UnknownValue { insn, reg },
            Val::MapValueOrNull { .. } => EmuError::BadPointer {
                insn,
                reg,
                reason: "possibly NULL map value dereferenced; compare it with 0 first",
            },
            Val::MapPtr(_) => EmuError::BadPointer {
                insn,
                reg,
                reason: "a map pointer cannot be dereferenced",
            },
            _ => EmuError::BadPointer {
                insn,
                reg,
                reason: "a scalar used as a pointer",
            },
        }
    }

    fn load(
        &self,
        st: &State,
        insn: usize,
        reg: u8,
        off: i16,
        size: usize,
    ) -> Result<Val, EmuError> {
        let base = self.get(st, insn, reg)?;
        let off = i64::from(off);
        match base {
            Val::Ctx(o) => {
                if o != 0 {
                    return Err(EmuError::CtxAccess {
                        insn,
                        off: o + off,
                        size,
                        reason: "through a moved context pointer (the kernel refuses it)",
                    });
                }
                ctx_read_ok(off, size).map_err(|reason| EmuError::CtxAccess {
                    insn,
                    off,
                    size,
                    reason,
                })?;
                Ok(Val::Scalar(Range::of_size(size)))
            }
            Val::Stack(o) => {
                let addr = o + off;
                Self::stack_bounds(insn, addr, size, true)?;
                let (idx, byte) = stack_index(addr);
                match st.stack[idx] {
                    Slot::Misc(m) => {
                        let mask = byte_mask(byte, size);
                        if m & mask != mask {
                            // Root may read it in the kernel, but the bytes are garbage there.
                            return Err(EmuError::StackAccess {
                                insn,
                                off: addr,
                                size,
                                reason: "uninitialized",
                            });
                        }
                        Ok(Val::Scalar(Range::of_size(size)))
                    }
                    Slot::Spill(v) if size == 8 => Ok(v),
                    Slot::Spill(Val::Scalar(r)) => Ok(Val::Scalar(match r.as_const() {
                        Some(c) => Range::constant((c >> (8 * byte)) & Range::of_size(size).hi),
                        None => Range::of_size(size),
                    })),
                    Slot::Spill(_) => Err(EmuError::StackAccess {
                        insn,
                        off: addr,
                        size,
                        reason: "partial read of a spilled pointer",
                    }),
                }
            }
            Val::MapValue { map, off: o } => {
                self.map_value_bounds(insn, map, o + off, size)?;
                Ok(Val::Scalar(Range::of_size(size)))
            }
            other => Err(Self::bad_base(insn, reg, other)),
        }
    }

    /// A store of `value` (from register `vreg`, if any) through `reg`.
    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        st: &mut State,
        insn: usize,
        reg: u8,
        off: i16,
        size: usize,
        value: Val,
        vreg: Option<u8>,
    ) -> Result<(), EmuError> {
        let base = self.get(st, insn, reg)?;
        let off = i64::from(off);
        let vreg_num = vreg.unwrap_or(reg);
        match base {
            Val::Ctx(o) => Err(EmuError::CtxAccess {
                insn,
                off: o + off,
                size,
                reason: "the context is read-only",
            }),
            Val::Stack(o) => {
                let addr = o + off;
                Self::stack_bounds(insn, addr, size, true)?;
                let (idx, byte) = stack_index(addr);
                if size == 8 {
                    st.stack[idx] = Slot::Spill(value);
                    return Ok(());
                }
                match value {
                    Val::Scalar(_) => {}
                    Val::Unknown => {
                        return Err(EmuError::UnknownValue {
                            insn,
                            reg: vreg_num,
                        })
                    }
                    _ => {
                        return Err(EmuError::PointerLeak {
                            insn,
                            reg: vreg_num,
                            reason: "partial spill of a pointer",
                        })
                    }
                }
                st.stack[idx] = match st.stack[idx] {
                    Slot::Misc(m) => Slot::Misc(m | byte_mask(byte, size)),
                    Slot::Spill(Val::Scalar(_)) => Slot::Misc(0xff),
                    Slot::Spill(_) => Slot::Spill(Val::Unknown),
                };
                Ok(())
            }
            Val::MapValue { map, off: o } => {
                self.map_value_bounds(insn, map, o + off, size)?;
                match value {
                    Val::Scalar(_) => {}
                    Val::Unknown => {
                        return Err(EmuError::UnknownValue {
                            insn,
                            reg: vreg_num,
                        })
                    }
                    _ => {
                        return Err(EmuError::PointerLeak {
                            insn,
                            reg: vreg_num,
                            reason: "a pointer stored into a map value",
                        })
                    }
                }
                self.facts.mutates_maps = true;
                Ok(())
            }
            other => Err(Self::bad_base(insn, reg, other)),
        }
    }

    fn pointer_arith(
        insn: usize,
        reg: u8,
        p: Val,
        operation: u8,
        w64: bool,
        y: Range,
    ) -> Result<Val, EmuError> {
        let err = |reason| Err(EmuError::PointerArithmetic { insn, reg, reason });
        if !w64 {
            return err("32-bit arithmetic on a pointer");
        }
        if operation != op::ADD && operation != op::SUB {
            return err("only += and -= of a constant are emulated on pointers");
        }
        let Some(c) = y.as_const() else {
            return err("variable offset added to a pointer");
        };
        let c = c as i64;
        let delta = if operation == op::ADD {
            Some(c)
        } else {
            c.checked_neg()
        };
        let moved = |o: i64| {
            delta
                .and_then(|d| o.checked_add(d))
                .filter(|o| o.abs() < MAX_PTR_OFF)
        };
        let out = match p {
            Val::Ctx(o) => moved(o).map(Val::Ctx),
            Val::Stack(o) => moved(o).map(Val::Stack),
            Val::MapValue { map, off } => moved(off).map(|off| Val::MapValue { map, off }),
            Val::MapPtr(_) => return err("arithmetic on a map pointer"),
            Val::MapValueOrNull { .. } => return err("arithmetic on a possibly NULL map value"),
            _ => unreachable!("not a pointer"),
        };
        match out {
            Some(v) => Ok(v),
            None => err("pointer offset out of range"),
        }
    }

    /// A helper argument pointing at `len` readable bytes.
    fn mem_arg(&self, st: &State, insn: usize, arg: u8, len: u32) -> Result<(), EmuError> {
        let len = i64::from(len);
        match self.get(st, insn, arg)? {
            Val::Stack(o) => {
                if o < -STACK_SIZE || o + len > 0 {
                    return Err(EmuError::HelperArg {
                        insn,
                        arg,
                        reason: "memory outside the stack",
                    });
                }
                for addr in o..o + len {
                    let (idx, byte) = stack_index(addr);
                    match st.stack[idx] {
                        Slot::Misc(m) if m & (1 << byte) != 0 => {}
                        Slot::Misc(_) => {
                            return Err(EmuError::HelperArg {
                                insn,
                                arg,
                                reason: "reads uninitialized stack",
                            })
                        }
                        Slot::Spill(Val::Scalar(_)) => {}
                        Slot::Spill(_) => {
                            return Err(EmuError::HelperArg {
                                insn,
                                arg,
                                reason: "reads the bytes of a spilled pointer",
                            })
                        }
                    }
                }
                Ok(())
            }
            Val::MapValue { map, off } => {
                let value_size = i64::from(self.maps[map as usize].value_size);
                if off < 0 || off + len > value_size {
                    return Err(EmuError::HelperArg {
                        insn,
                        arg,
                        reason: "memory outside the map value",
                    });
                }
                Ok(())
            }
            Val::Unknown => Err(EmuError::UnknownValue { insn, reg: arg }),
            _ => Err(EmuError::HelperArg {
                insn,
                arg,
                reason: "expected a pointer to the stack or to a map value",
            }),
        }
    }

    fn call(&mut self, st: &mut State, insn: usize, id: i32) -> Result<(), EmuError> {
        if !matches!(
            id,
            helper::MAP_LOOKUP_ELEM | helper::MAP_UPDATE_ELEM | helper::MAP_DELETE_ELEM
        ) {
            return Err(EmuError::UnknownHelper { insn, id });
        }
        let map = match self.get(st, insn, 1)? {
            Val::MapPtr(m) => m,
            Val::Unknown => return Err(EmuError::UnknownValue { insn, reg: 1 }),
            _ => {
                return Err(EmuError::HelperArg {
                    insn,
                    arg: 1,
                    reason: "expected a map (lddw rX, map)",
                })
            }
        };
        let spec = &self.maps[map as usize];
        self.mem_arg(st, insn, 2, spec.key_size)?;
        match id {
            helper::MAP_UPDATE_ELEM => {
                self.mem_arg(st, insn, 3, spec.value_size)?;
                match self.get(st, insn, 4)? {
                    Val::Scalar(_) => {}
                    Val::Unknown => return Err(EmuError::UnknownValue { insn, reg: 4 }),
                    _ => {
                        return Err(EmuError::HelperArg {
                            insn,
                            arg: 4,
                            reason: "flags must be a scalar",
                        })
                    }
                }
                self.facts.map_inserts[map as usize] = true;
                self.facts.mutates_maps = true;
            }
            helper::MAP_DELETE_ELEM => self.facts.mutates_maps = true,
            _ => {}
        }
        // Caller-saved registers are clobbered; the kernel refuses reads of them.
        for r in 1..=5 {
            st.regs[r] = Val::Uninit;
        }
        st.regs[0] = if id == helper::MAP_LOOKUP_ELEM {
            // A loop can reach this call again: older results from here are
            // other pointers, so they must not share the null check.
            let id = insn as u32;
            st.map_vals(|v| match v {
                Val::MapValueOrNull { id: old, .. } if old == id => Val::Unknown,
                v => v,
            });
            Val::MapValueOrNull { map, id }
        } else {
            Val::Scalar(Range::FULL)
        };
        Ok(())
    }

    /// Every instruction but jumps and exit.
    fn step(&mut self, st: &mut State, i: usize, o: &Op) -> Result<(), EmuError> {
        match *o {
            Op::Alu {
                w64,
                operation,
                dst,
                src,
            } => {
                let b = self.operand(st, i, w64, src)?;
                let src_reg = match src {
                    Src::Reg(r) => r,
                    Src::Imm(_) => dst,
                };
                let d = dst as usize;
                if operation == op::MOV {
                    st.regs[d] = if w64 {
                        b
                    } else {
                        match b {
                            Val::Scalar(r) => Val::Scalar(r.low32()),
                            Val::Unknown => {
                                return Err(EmuError::UnknownValue {
                                    insn: i,
                                    reg: src_reg,
                                })
                            }
                            _ => {
                                return Err(EmuError::PointerLeak {
                                    insn: i,
                                    reg: src_reg,
                                    reason: "32-bit copy of a pointer",
                                })
                            }
                        }
                    };
                    return Ok(());
                }
                let a = self.get(st, i, dst)?;
                st.regs[d] = match (a, b) {
                    (Val::Scalar(x), Val::Scalar(y)) => {
                        Val::Scalar(scalar::tracked_alu(operation, w64, x, y))
                    }
                    (Val::Unknown, _) => return Err(EmuError::UnknownValue { insn: i, reg: dst }),
                    (_, Val::Unknown) => {
                        return Err(EmuError::UnknownValue {
                            insn: i,
                            reg: src_reg,
                        })
                    }
                    (p, Val::Scalar(y)) => Self::pointer_arith(i, dst, p, operation, w64, y)?,
                    (Val::Scalar(_), _) => {
                        return Err(EmuError::PointerArithmetic {
                            insn: i,
                            reg: src_reg,
                            reason: "a pointer as the operand of arithmetic",
                        })
                    }
                    _ => {
                        return Err(EmuError::PointerArithmetic {
                            insn: i,
                            reg: dst,
                            reason: "arithmetic between pointers",
                        })
                    }
                };
            }
            Op::Neg { dst, .. } => {
                st.regs[dst as usize] = match self.get(st, i, dst)? {
                    // Untracked by the kernel's verifier before 6.x: unknown.
                    Val::Scalar(_) => Val::Scalar(Range::FULL),
                    Val::Unknown => return Err(EmuError::UnknownValue { insn: i, reg: dst }),
                    _ => {
                        return Err(EmuError::PointerArithmetic {
                            insn: i,
                            reg: dst,
                            reason: "negation of a pointer",
                        })
                    }
                };
            }
            Op::End { dst, .. } => {
                st.regs[dst as usize] = match self.get(st, i, dst)? {
                    // The kernel's verifier does not track byte swaps.
                    Val::Scalar(_) => Val::Scalar(Range::FULL),
                    Val::Unknown => return Err(EmuError::UnknownValue { insn: i, reg: dst }),
                    _ => {
                        return Err(EmuError::PointerArithmetic {
                            insn: i,
                            reg: dst,
                            reason: "byte swap of a pointer",
                        })
                    }
                };
            }
            Op::Lddw { dst, value, map } => {
                st.regs[dst as usize] = match map {
                    Some(m) => Val::MapPtr(m),
                    None => Val::Scalar(Range::constant(value)),
                };
            }
            Op::Ldx {
                size,
                dst,
                src,
                off,
            } => {
                let v = self.load(st, i, src, off, size)?;
                st.regs[dst as usize] = v;
            }
            Op::St {
                size,
                dst,
                off,
                imm,
            } => {
                let v = Val::Scalar(Range::constant(imm as i64 as u64));
                self.store(st, i, dst, off, size, v, None)?;
            }
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => {
                let v = self.get(st, i, src)?;
                self.store(st, i, dst, off, size, v, Some(src))?;
            }
            Op::Call { helper } => self.call(st, i, helper)?,
            Op::Ja { .. } | Op::Jcond { .. } | Op::Exit => {
                unreachable!("control flow is handled by the walker")
            }
        }
        Ok(())
    }

    fn exit(&self, st: &State, insn: usize) -> Result<(), EmuError> {
        match st.regs[0] {
            Val::Uninit => Err(EmuError::UninitRegister { insn, reg: 0 }),
            Val::Scalar(r) if r.hi <= 1 => Ok(()),
            Val::Scalar(r) => Err(EmuError::ReturnRange {
                insn,
                min: r.lo,
                max: r.hi,
            }),
            Val::Unknown => Err(EmuError::UnknownValue { insn, reg: 0 }),
            _ => Err(EmuError::PointerLeak {
                insn,
                reg: 0,
                reason: "a pointer returned",
            }),
        }
    }

    /// The states on the taken and the fall-through edge (`None`: never).
    #[allow(clippy::type_complexity)]
    fn branch(
        &self,
        st: &State,
        i: usize,
        o: &Op,
    ) -> Result<(Option<State>, Option<State>), EmuError> {
        let Op::Jcond {
            w64,
            cond,
            dst,
            src,
            ..
        } = *o
        else {
            unreachable!("not a conditional jump")
        };
        let a = self.get(st, i, dst)?;
        let b = self.operand(st, i, w64, src)?;
        match (a, b) {
            (Val::Scalar(x), Val::Scalar(y)) => {
                let (taken, fall) = scalar::branch(cond, w64, x, y);
                let make = |e: scalar::Edge| {
                    e.map(|(ra, rb)| {
                        let mut s = st.clone();
                        s.regs[dst as usize] = Val::Scalar(ra);
                        if let Src::Reg(r) = src {
                            if r != dst {
                                s.regs[r as usize] = Val::Scalar(rb);
                            }
                        }
                        s
                    })
                };
                Ok((make(taken), make(fall)))
            }
            (Val::Unknown, _) => Err(EmuError::UnknownValue { insn: i, reg: dst }),
            (_, Val::Unknown) => Err(EmuError::UnknownValue {
                insn: i,
                reg: match src {
                    Src::Reg(r) => r,
                    Src::Imm(_) => dst,
                },
            }),
            (p, _)
                if p.is_pointer()
                    && w64
                    && src == Src::Imm(0)
                    && matches!(cond, op::JEQ | op::JNE) =>
            {
                let (null, nonnull) = match p {
                    Val::MapValueOrNull { map, id } => {
                        let mut z = st.clone();
                        z.map_vals(|v| match v {
                            Val::MapValueOrNull { id: j, .. } if j == id => {
                                Val::Scalar(Range::constant(0))
                            }
                            v => v,
                        });
                        let mut nn = st.clone();
                        nn.map_vals(|v| match v {
                            Val::MapValueOrNull { id: j, .. } if j == id => {
                                Val::MapValue { map, off: 0 }
                            }
                            v => v,
                        });
                        (Some(z), Some(nn))
                    }
                    // Never NULL: the kernel prunes the NULL edge too.
                    _ => (None, Some(st.clone())),
                };
                Ok(if cond == op::JEQ {
                    (null, nonnull)
                } else {
                    (nonnull, null)
                })
            }
            _ => Err(EmuError::PointerComparison { insn: i }),
        }
    }
}

/// Block entry states, joined to a fixpoint.
struct Flow {
    entry: Vec<Option<Box<State>>>,
    visits: Vec<u32>,
    work: BTreeSet<usize>,
}

impl Flow {
    fn propagate(&mut self, to: usize, st: State) {
        match &mut self.entry[to] {
            None => {
                self.entry[to] = Some(Box::new(st));
                self.work.insert(to);
            }
            Some(old) => {
                self.visits[to] += 1;
                let joined = old.join(&st, self.visits[to] > WIDEN_AFTER);
                if joined != **old {
                    **old = joined;
                    self.work.insert(to);
                }
            }
        }
    }
}

/// Verifies a decoded program against its maps.
pub(crate) fn verify(ops: &[Option<Op>], maps: &[MapSpec]) -> Result<Facts, EmuError> {
    let n = ops.len();
    let mut leader = vec![false; n];
    leader[0] = true;
    for (i, o) in ops.iter().enumerate() {
        match o {
            Some(Op::Jcond { target, .. }) => {
                leader[*target] = true;
                if i + 1 < n {
                    leader[i + 1] = true;
                }
            }
            Some(Op::Ja { target }) => leader[*target] = true,
            _ => {}
        }
    }
    let mut v = Verifier {
        maps,
        facts: Facts {
            loop_edges: decode::loop_edges(ops),
            map_inserts: vec![false; maps.len()],
            mutates_maps: false,
        },
    };
    let mut flow = Flow {
        entry: (0..n).map(|_| None).collect(),
        visits: vec![0; n],
        work: BTreeSet::new(),
    };
    flow.propagate(0, State::entry());
    let mut steps = 0usize;
    // Smallest index first: in a loop-free program every block is then
    // visited once, after all its predecessors.
    while let Some(start) = flow.work.pop_first() {
        let mut st = (**flow.entry[start]
            .as_ref()
            .expect("queued blocks have a state"))
        .clone();
        let mut pc = start;
        loop {
            steps += 1;
            if steps > MAX_STEPS {
                return Err(EmuError::TooComplex { insn: pc });
            }
            let o = ops[pc].expect("verified control flow only reaches instructions");
            match o {
                Op::Jcond { target, .. } => {
                    let (taken, fall) = v.branch(&st, pc, &o)?;
                    if let Some(s) = fall {
                        flow.propagate(pc + 1, s);
                    }
                    if let Some(s) = taken {
                        flow.propagate(target, s);
                    }
                    break;
                }
                Op::Ja { target } => {
                    flow.propagate(target, st);
                    break;
                }
                Op::Exit => {
                    v.exit(&st, pc)?;
                    break;
                }
                _ => {
                    v.step(&mut st, pc, &o)?;
                    let Successors::One(next) = o.successors(pc) else {
                        unreachable!("straight-line op")
                    };
                    if next >= n {
                        return Err(EmuError::FallsOffEnd { insn: pc });
                    }
                    if leader[next] {
                        flow.propagate(next, st);
                        break;
                    }
                    pc = next;
                }
            }
        }
    }
    Ok(v.facts)
}
