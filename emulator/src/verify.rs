//! The static verifier: abstract interpretation over register and stack
//! types, in the spirit of the kernel's, but join-based. Where paths meet,
//! agreeing types stay, scalar intervals merge and anything else becomes
//! `Unknown`, which may be moved or spilled but not used. Where it cannot
//! follow the kernel it refuses: a refused program is a typed error, never a
//! wrong verdict.

use std::collections::BTreeSet;

use foldhash::HashMap;

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
    /// r10 of call frame `frame` (0: the main program) plus a constant
    /// (negative) offset.
    Stack {
        frame: u8,
        off: i64,
    },
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
                | Val::Stack { .. }
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

/// A caller's frame, saved across a bpf-to-bpf call.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Frame {
    regs: [Val; 11],
    stack: [Slot; SLOTS],
    /// The call instruction; the caller resumes after it.
    callsite: usize,
    /// The subprogram the caller runs (index into `Verifier::subprogs`).
    sub: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    regs: [Val; 11],
    stack: [Slot; SLOTS],
    /// The subprogram running in the current frame.
    sub: usize,
    /// Callers, outermost first: the current frame is `callers.len()`.
    callers: Vec<Frame>,
}

impl State {
    fn entry() -> State {
        let mut regs = [Val::Uninit; 11];
        regs[1] = Val::Ctx(0);
        regs[10] = Val::Stack { frame: 0, off: 0 };
        State {
            regs,
            stack: [Slot::Misc(0); SLOTS],
            sub: 0,
            callers: Vec::new(),
        }
    }

    fn frame(&self) -> u8 {
        self.callers.len() as u8
    }

    fn slots(&self, frame: u8) -> &[Slot; SLOTS] {
        match self.callers.get(frame as usize) {
            Some(f) => &f.stack,
            None => &self.stack,
        }
    }

    fn slots_mut(&mut self, frame: u8) -> &mut [Slot; SLOTS] {
        match self.callers.get_mut(frame as usize) {
            Some(f) => &mut f.stack,
            None => &mut self.stack,
        }
    }

    /// The subprogram running in `frame`.
    fn sub_of(&self, frame: u8) -> usize {
        match self.callers.get(frame as usize) {
            Some(f) => f.sub,
            None => self.sub,
        }
    }

    /// Joins states of the same call context (same callers' call sites).
    fn join(&self, other: &State, widen: bool) -> State {
        let mut out = self.clone();
        let join_frame =
            |ra: &mut [Val; 11], sa: &mut [Slot; SLOTS], rb: &[Val; 11], sb: &[Slot; SLOTS]| {
                for (a, b) in ra.iter_mut().zip(rb.iter()) {
                    *a = a.join(*b, widen);
                }
                for (a, b) in sa.iter_mut().zip(sb.iter()) {
                    *a = a.join(*b, widen);
                }
            };
        join_frame(&mut out.regs, &mut out.stack, &other.regs, &other.stack);
        for (a, b) in out.callers.iter_mut().zip(other.callers.iter()) {
            join_frame(&mut a.regs, &mut a.stack, &b.regs, &b.stack);
        }
        out
    }

    /// Applies `f` to every register and spilled value, of every frame.
    fn map_vals(&mut self, f: impl Fn(Val) -> Val) {
        let frames = std::iter::once((&mut self.regs, &mut self.stack))
            .chain(self.callers.iter_mut().map(|c| (&mut c.regs, &mut c.stack)));
        for (regs, stack) in frames {
            for r in regs.iter_mut() {
                *r = f(*r);
            }
            for s in stack.iter_mut() {
                if let Slot::Spill(v) = s {
                    *v = f(*v);
                }
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
    /// The program needs the emulator's own interpreter (`step`): an
    /// instruction or helper rbpf cannot run, or a value only a privileged
    /// loader may compute (uninitialized stack, pointer bits as a scalar),
    /// whose nondeterminism the interpreter tracks.
    pub needs_step: bool,
}

struct Verifier<'a> {
    maps: &'a [MapSpec],
    facts: Facts,
    /// Deepest stack byte each subprogram touches.
    depth: Vec<i64>,
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

    /// Records a stack access at `addr` of `frame` for the stack depth
    /// of the subprogram running there.
    fn touch(&mut self, st: &State, frame: u8, addr: i64) {
        let sub = st.sub_of(frame);
        self.depth[sub] = self.depth[sub].max(-addr);
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
        &mut self,
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
            Val::Stack { frame, off: o } => {
                let addr = o + off;
                Self::stack_bounds(insn, addr, size, true)?;
                self.touch(st, frame, addr);
                let (idx, byte) = stack_index(addr);
                match st.slots(frame)[idx] {
                    Slot::Misc(m) => {
                        let mask = byte_mask(byte, size);
                        if m & mask != mask {
                            // A privileged loader may read it; the bytes are
                            // whatever the stack held: nondeterministic.
                            self.facts.needs_step = true;
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
            Val::Stack { frame, off: o } => {
                let addr = o + off;
                Self::stack_bounds(insn, addr, size, true)?;
                self.touch(st, frame, addr);
                if frame < st.frame() && matches!(value, Val::Stack { frame: f, .. } if f > frame) {
                    // A callee's stack pointer outlives the callee there.
                    return Err(EmuError::PointerLeak {
                        insn,
                        reg: vreg_num,
                        reason: "a callee's stack pointer stored into a caller's stack",
                    });
                }
                let (idx, byte) = stack_index(addr);
                if size == 8 {
                    st.slots_mut(frame)[idx] = Slot::Spill(value);
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
                let slot = &mut st.slots_mut(frame)[idx];
                *slot = match *slot {
                    Slot::Misc(m) => Slot::Misc(m | byte_mask(byte, size)),
                    Slot::Spill(Val::Scalar(_)) => Slot::Misc(0xff),
                    // A privileged loader may overwrite part of a spilled
                    // pointer: the slot is then scalar bytes, some of them
                    // pointer bits (nondeterministic).
                    Slot::Spill(_) => {
                        self.facts.needs_step = true;
                        Slot::Misc(0xff)
                    }
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
            Val::Stack { .. } if operation == op::SUB => {
                return err("subtraction from stack pointer prohibited")
            }
            Val::Stack { frame, off } => moved(off).map(|off| Val::Stack { frame, off }),
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
    fn mem_arg(&mut self, st: &State, insn: usize, arg: u8, len: u32) -> Result<(), EmuError> {
        let len = i64::from(len);
        match self.get(st, insn, arg)? {
            Val::Stack { frame, off: o } => {
                if o < -STACK_SIZE || o + len > 0 {
                    return Err(EmuError::HelperArg {
                        insn,
                        arg,
                        reason: "memory outside the stack",
                    });
                }
                if len > 0 {
                    self.touch(st, frame, o);
                }
                for addr in o..o + len {
                    let (idx, byte) = stack_index(addr);
                    match st.slots(frame)[idx] {
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

    /// A scalar argument (ARG_ANYTHING): initialized; a privileged loader
    /// may pass a pointer, whose bits are nondeterministic.
    fn anything_arg(&mut self, st: &State, insn: usize, arg: u8) -> Result<(), EmuError> {
        match self.get(st, insn, arg)? {
            Val::Scalar(_) => Ok(()),
            Val::Unknown => Err(EmuError::UnknownValue { insn, reg: arg }),
            _ => {
                self.facts.needs_step = true;
                Ok(())
            }
        }
    }

    /// The helpers without a map argument that this program type has
    /// (cgroup_dev_func_proto on 6.18: the base protos, the
    /// current-task protos and the cgroup common ones).
    fn call_plain(&mut self, st: &mut State, insn: usize, id: i32) -> Result<(), EmuError> {
        match id {
            helper::KTIME_GET_NS
            | helper::GET_PRANDOM_U32
            | helper::GET_SMP_PROCESSOR_ID
            | helper::GET_CURRENT_PID_TGID
            | helper::GET_CURRENT_UID_GID
            | helper::GET_CURRENT_CGROUP_ID
            | helper::GET_NUMA_NODE_ID
            | helper::JIFFIES64
            | helper::KTIME_GET_BOOT_NS => {}
            helper::TRACE_PRINTK => {
                // fmt: readable memory of the size in r2, a known nonzero
                // size (ARG_CONST_SIZE); three values printed.
                let size = match self.get(st, insn, 2)? {
                    Val::Scalar(r) if r.lo > 0 && r.hi <= MAX_PTR_OFF as u64 => r.hi,
                    Val::Scalar(_) => {
                        return Err(EmuError::HelperArg {
                            insn,
                            arg: 2,
                            reason: "the format size must be a known nonzero bound",
                        })
                    }
                    Val::Unknown => return Err(EmuError::UnknownValue { insn, reg: 2 }),
                    _ => {
                        return Err(EmuError::HelperArg {
                            insn,
                            arg: 2,
                            reason: "the format size must be a scalar",
                        })
                    }
                };
                self.mem_arg(st, insn, 1, size as u32)?;
                for arg in 3..=5 {
                    self.anything_arg(st, insn, arg)?;
                }
            }
            helper::GET_LOCAL_STORAGE => {
                return Err(EmuError::Unsupported {
                    insn,
                    what: "bpf_get_local_storage (cgroup storage maps are not modelled)".into(),
                })
            }
            _ => return Err(EmuError::UnknownHelper { insn, id }),
        }
        self.facts.needs_step = true;
        for r in 1..=5 {
            st.regs[r] = Val::Uninit;
        }
        // RET_INTEGER: the kernel knows nothing of the value.
        st.regs[0] = Val::Scalar(Range::FULL);
        Ok(())
    }

    fn call(&mut self, st: &mut State, insn: usize, id: i32) -> Result<(), EmuError> {
        if !matches!(
            id,
            helper::MAP_LOOKUP_ELEM | helper::MAP_UPDATE_ELEM | helper::MAP_DELETE_ELEM
        ) {
            return self.call_plain(st, insn, id);
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

    /// BPF_STX|BPF_ATOMIC on the stack or a map value.
    #[allow(clippy::too_many_arguments)]
    fn atomic(
        &mut self,
        st: &mut State,
        insn: usize,
        size: usize,
        dst: u8,
        src: u8,
        off: i16,
        operation: i32,
    ) -> Result<(), EmuError> {
        self.facts.needs_step = true;
        let cmpxchg = operation == op::ATOMIC_CMPXCHG;
        let fetch = operation & op::ATOMIC_FETCH != 0;
        for r in std::iter::once(src).chain(cmpxchg.then_some(0)) {
            match self.get(st, insn, r)? {
                Val::Scalar(_) => {}
                Val::Unknown => return Err(EmuError::UnknownValue { insn, reg: r }),
                _ => {
                    return Err(EmuError::PointerLeak {
                        insn,
                        reg: r,
                        reason: "a pointer as the operand of an atomic operation",
                    })
                }
            }
        }
        let base = self.get(st, insn, dst)?;
        match base {
            Val::Stack { frame, off: o } => {
                let addr = o + i64::from(off);
                Self::stack_bounds(insn, addr, size, true)?;
                if let Slot::Spill(v) = st.slots(frame)[stack_index(addr).0] {
                    if !matches!(v, Val::Scalar(_)) {
                        return Err(EmuError::StackAccess {
                            insn,
                            off: addr,
                            size,
                            reason: "atomic operation on a spilled pointer",
                        });
                    }
                }
            }
            Val::MapValue { map, off: o } => {
                let addr = o + i64::from(off);
                self.map_value_bounds(insn, map, addr, size)?;
                if addr % size as i64 != 0 {
                    return Err(EmuError::MapValueAccess {
                        insn,
                        map: map as usize,
                        off: addr,
                        size,
                        reason: "misaligned atomic access",
                    });
                }
            }
            Val::Ctx(_) => {
                return Err(EmuError::CtxAccess {
                    insn,
                    off: i64::from(off),
                    size,
                    reason: "BPF_ATOMIC stores into the context are not allowed",
                })
            }
            other => return Err(Self::bad_base(insn, dst, other)),
        }
        // Reads, then writes a scalar of the operation's size.
        self.load(st, insn, dst, off, size)?;
        let v = Val::Scalar(Range::FULL);
        if size == 8 {
            // Not a spill in the kernel: scalar bytes.
            if let Val::Stack { frame, off: o } = base {
                let (idx, _) = stack_index(o + i64::from(off));
                st.slots_mut(frame)[idx] = Slot::Misc(0xff);
            } else {
                self.store(st, insn, dst, off, size, v, None)?;
            }
        } else {
            self.store(st, insn, dst, off, size, v, None)?;
        }
        let old = Val::Scalar(Range::of_size(size));
        if cmpxchg {
            st.regs[0] = old;
        } else if fetch {
            st.regs[src as usize] = old;
        }
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
                            // A privileged loader may copy a pointer's low
                            // half: an address, so nondeterministic.
                            _ => {
                                self.facts.needs_step = true;
                                Val::Scalar(Range::FULL32)
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
            Op::SDiv { w64, dst, src, .. } => {
                self.facts.needs_step = true;
                let b = self.operand(st, i, w64, src)?;
                let a = self.get(st, i, dst)?;
                let scalar = |v: Val, reg: u8| match v {
                    Val::Scalar(_) => Ok(()),
                    Val::Unknown => Err(EmuError::UnknownValue { insn: i, reg }),
                    _ => Err(EmuError::PointerArithmetic {
                        insn: i,
                        reg,
                        reason: "pointer arithmetic with a signed division prohibited",
                    }),
                };
                scalar(a, dst)?;
                scalar(b, if let Src::Reg(r) = src { r } else { dst })?;
                // Not tracked by the kernel's verifier: unknown.
                st.regs[dst as usize] = Val::Scalar(Range::FULL);
            }
            Op::Bswap { dst, .. } => {
                st.regs[dst as usize] = match self.get(st, i, dst)? {
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
            Op::MovSx {
                w64,
                bits,
                dst,
                src,
            } => {
                st.regs[dst as usize] = match self.get(st, i, src)? {
                    Val::Scalar(r) => Val::Scalar(scalar::movsx(r, w64, bits)),
                    Val::Unknown => return Err(EmuError::UnknownValue { insn: i, reg: src }),
                    _ => {
                        return Err(EmuError::PointerLeak {
                            insn: i,
                            reg: src,
                            reason: "sign-extending move of a pointer",
                        })
                    }
                };
            }
            Op::Ldsx {
                size,
                dst,
                src,
                off,
            } => {
                let v = self.load(st, i, src, off, size)?;
                st.regs[dst as usize] = match v {
                    // A spilled constant stays known through the fill
                    // (*observed*), then is sign-extended.
                    Val::Scalar(r) => Val::Scalar(scalar::movsx(r, true, 8 * size as u32)),
                    _ => {
                        return Err(EmuError::StackAccess {
                            insn: i,
                            off: i64::from(off),
                            size,
                            reason: "partial read of a spilled pointer",
                        })
                    }
                };
            }
            Op::Atomic {
                size,
                dst,
                src,
                off,
                operation,
            } => self.atomic(st, i, size, dst, src, off, operation)?,
            Op::Ja { .. }
            | Op::Jcond { .. }
            | Op::Exit
            | Op::CallLocal { .. }
            | Op::MayGoto { .. } => {
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
        &mut self,
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
            // A privileged loader may compare pointers with anything: both
            // edges, nothing learned; the outcome depends on an address,
            // which the own interpreter reports as nondeterministic.
            _ => {
                self.facts.needs_step = true;
                Ok((Some(st.clone()), Some(st.clone())))
            }
        }
    }
}

/// The kernel's MAX_CALL_FRAMES.
const MAX_FRAMES: usize = 8;

/// A node of the flow: a call context (interned list of call sites) and an
/// instruction. A subprogram is verified once per calling context, as the
/// kernel verifies static subprograms in their caller's state.
type Node = (u32, usize);

/// Block entry states, joined to a fixpoint: the main program's in a
/// vector (most programs have no calls), those of called contexts in a map.
struct Flow {
    contexts: Vec<Vec<usize>>,
    ctx_ids: HashMap<Vec<usize>, u32>,
    main: Vec<Option<Box<State>>>,
    main_visits: Vec<u32>,
    entry: HashMap<Node, Box<State>>,
    visits: HashMap<Node, u32>,
    /// (frames left, context, instruction): deeper frames first, so a
    /// callee settles before its caller resumes; then in address order.
    work: BTreeSet<(usize, u32, usize)>,
}

impl Flow {
    fn context(&mut self, chain: Vec<usize>) -> u32 {
        if let Some(&id) = self.ctx_ids.get(&chain) {
            return id;
        }
        let id = self.contexts.len() as u32;
        self.contexts.push(chain.clone());
        self.ctx_ids.insert(chain, id);
        id
    }

    fn get(&self, ctx: u32, at: usize) -> Option<&State> {
        if ctx == 0 {
            self.main[at].as_deref()
        } else {
            self.entry.get(&(ctx, at)).map(|b| &**b)
        }
    }

    fn propagate(&mut self, ctx: u32, to: usize, st: State) {
        let key = (MAX_FRAMES - self.contexts[ctx as usize].len(), ctx, to);
        if ctx != 0 {
            match self.entry.get_mut(&(ctx, to)) {
                None => {
                    self.entry.insert((ctx, to), Box::new(st));
                    self.work.insert(key);
                }
                Some(old) => {
                    let visits = self.visits.entry((ctx, to)).or_insert(0);
                    *visits += 1;
                    let joined = old.join(&st, *visits > WIDEN_AFTER);
                    if joined != **old {
                        **old = joined;
                        self.work.insert(key);
                    }
                }
            }
            return;
        }
        match &mut self.main[to] {
            None => {
                self.main[to] = Some(Box::new(st));
                self.work.insert(key);
            }
            Some(old) => {
                self.main_visits[to] += 1;
                let joined = old.join(&st, self.main_visits[to] > WIDEN_AFTER);
                if joined != **old {
                    **old = joined;
                    self.work.insert(key);
                }
            }
        }
    }
}

fn too_deep(insn: usize, frames: usize) -> EmuError {
    EmuError::CallDepth { insn, frames }
}

/// Verifies a decoded program against its maps.
pub(crate) fn verify(ops: &[Option<Op>], maps: &[MapSpec]) -> Result<Facts, EmuError> {
    let n = ops.len();
    let mut leader = vec![false; n];
    leader[0] = true;
    for (i, o) in ops.iter().enumerate() {
        match o {
            Some(Op::Jcond { target, .. } | Op::MayGoto { target } | Op::CallLocal { target }) => {
                leader[*target] = true;
                if i + 1 < n {
                    leader[i + 1] = true;
                }
            }
            Some(Op::Ja { target }) => leader[*target] = true,
            _ => {}
        }
    }
    let subprogs = decode::subprogs(ops);
    let sub_of = |pc: usize| subprogs.partition_point(|&s| s <= pc) - 1;
    let mut v = Verifier {
        maps,
        facts: Facts {
            loop_edges: decode::loop_edges(ops),
            map_inserts: vec![false; maps.len()],
            mutates_maps: false,
            needs_step: subprogs.len() > 1,
        },
        depth: vec![0; subprogs.len()],
    };
    let mut flow = Flow {
        contexts: Vec::new(),
        ctx_ids: HashMap::default(),
        main: (0..n).map(|_| None).collect(),
        main_visits: vec![0; n],
        entry: HashMap::default(),
        visits: HashMap::default(),
        work: BTreeSet::new(),
    };
    let main = flow.context(Vec::new());
    flow.propagate(main, 0, State::entry());
    let mut steps = 0usize;
    while let Some((_, ctx, start)) = flow.work.pop_first() {
        let mut st = flow
            .get(ctx, start)
            .expect("queued blocks have a state")
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
                        flow.propagate(ctx, pc + 1, s);
                    }
                    if let Some(s) = taken {
                        flow.propagate(ctx, target, s);
                    }
                    break;
                }
                Op::MayGoto { target } => {
                    v.facts.needs_step = true;
                    flow.propagate(ctx, pc + 1, st.clone());
                    flow.propagate(ctx, target, st);
                    break;
                }
                Op::Ja { target } => {
                    flow.propagate(ctx, target, st);
                    break;
                }
                Op::CallLocal { target } => {
                    let frames = st.callers.len() + 2;
                    if frames > MAX_FRAMES {
                        return Err(too_deep(pc, frames));
                    }
                    let mut regs = [Val::Uninit; 11];
                    regs[1..=5].copy_from_slice(&st.regs[1..=5]);
                    let frame = st.callers.len() as u8 + 1;
                    regs[10] = Val::Stack { frame, off: 0 };
                    let caller = Frame {
                        regs: st.regs,
                        stack: st.stack,
                        callsite: pc,
                        sub: st.sub,
                    };
                    st.callers.push(caller);
                    st.regs = regs;
                    st.stack = [Slot::Misc(0); SLOTS];
                    st.sub = sub_of(target);
                    let mut chain = flow.contexts[ctx as usize].clone();
                    chain.push(pc);
                    let callee = flow.context(chain);
                    flow.propagate(callee, target, st);
                    break;
                }
                Op::Exit => {
                    let Some(caller) = st.callers.pop() else {
                        v.exit(&st, pc)?;
                        break;
                    };
                    let frame = st.callers.len() as u8 + 1;
                    let r0 = match st.regs[0] {
                        Val::Uninit => return Err(EmuError::UninitRegister { insn: pc, reg: 0 }),
                        Val::Stack { frame: f, .. } if f == frame => {
                            return Err(EmuError::PointerLeak {
                                insn: pc,
                                reg: 0,
                                reason: "cannot return stack pointer to the caller",
                            })
                        }
                        r0 => r0,
                    };
                    st.regs = caller.regs;
                    st.stack = caller.stack;
                    st.sub = caller.sub;
                    st.regs[0] = r0;
                    for r in 1..=5 {
                        st.regs[r] = Val::Uninit;
                    }
                    st.map_vals(|v| match v {
                        Val::Stack { frame: f, .. } if f >= frame => Val::Unknown,
                        v => v,
                    });
                    let mut chain = flow.contexts[ctx as usize].clone();
                    chain.pop();
                    let back = flow.context(chain);
                    flow.propagate(back, caller.callsite + 1, st);
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
                        flow.propagate(ctx, next, st);
                        break;
                    }
                    pc = next;
                }
            }
        }
    }
    // The kernel's check_max_stack_depth: the frames of every call chain
    // together, each rounded up, fit the 512-byte stack.
    let round = |d: i64| (d.max(1) + 31) / 32 * 32;
    for chain in &flow.contexts {
        let mut total = round(v.depth[0]);
        for &site in chain {
            let Some(Op::CallLocal { target }) = ops[site] else {
                unreachable!("contexts are built from calls")
            };
            total += round(v.depth[sub_of(target)]);
        }
        if total > STACK_SIZE {
            return Err(EmuError::StackDepth {
                frames: chain.len() + 1,
                bytes: total as usize,
            });
        }
    }
    Ok(v.facts)
}
