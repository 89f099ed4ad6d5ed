//! The emulator's own interpreter, for the programs rbpf 0.4.1 cannot run
//! with the kernel's semantics even after rewriting:
//!
//! * signed division and modulo (cpu v4): rbpf ignores `off` and divides
//!   unsigned; lowering needs a scratch register the program may be using.
//! * atomic read-modify-write on the stack or a map value: rbpf has no
//!   BPF_ATOMIC, and `cmpxchg`/`fetch` need a scratch register too.
//! * bpf-to-bpf calls: rbpf's frames share one 512-byte stack through a
//!   stack-usage callback, the kernel gives each frame its own.
//! * `may_goto`: a hidden per-frame counter rbpf has no place for.
//! * helpers other than the map ones, whose results are nondeterministic or
//!   come from the caller (uid, gid, cgroup id), and `bpf_trace_printk`,
//!   whose output is shown.
//! * programs a privileged loader may run with nondeterministic values:
//!   reads of stack never written, pointer bits used as a scalar.
//! * programs over rbpf's 32,767-slot jump range, up to the kernel's 1M.
//!
//! (bswap, movsx, ldsx and gotol lower to plain instructions without a
//! scratch register, so those stay on rbpf: see `rewrite`.)
//!
//! Besides values, it tracks where a value may come from something the
//! request does not fix (a helper's draw, uninitialized stack, an address):
//! a branch or a returned value that depends on one makes the verdict
//! nondeterministic, which [`crate::Emulator`] then reports as such.

use std::ops::Range;

use devcg_engine::insn::{helper, op};

use crate::decode::{Op, Src};
use crate::maps;
use crate::rewrite::MAP_HANDLE;
use crate::scalar::eval_alu;
use crate::EmuError;

/// Sources of nondeterminism (bit flags).
pub(crate) mod taint {
    pub const TIME: u16 = 1;
    pub const RANDOM: u16 = 2;
    pub const CPU: u16 = 4;
    pub const PID: u16 = 8;
    pub const UID: u16 = 16;
    pub const CGROUP: u16 = 32;
    pub const UNINIT: u16 = 64;
    pub const POINTER: u16 = 128;
    pub const MAY_GOTO: u16 = 256;

    /// The sources in `t`, in words.
    pub fn describe(t: u16) -> String {
        const NAMES: [(u16, &str); 9] = [
            (TIME, "the time (bpf_ktime_get_ns and kin)"),
            (RANDOM, "bpf_get_prandom_u32"),
            (
                CPU,
                "the CPU (bpf_get_smp_processor_id, bpf_get_numa_node_id)",
            ),
            (PID, "the caller's pid (bpf_get_current_pid_tgid)"),
            (UID, "the caller's uid and gid (not given)"),
            (CGROUP, "the caller's cgroup id (not given)"),
            (UNINIT, "stack never written"),
            (POINTER, "the bits of a pointer"),
            (MAY_GOTO, "may_goto's time-based allowance"),
        ];
        let names: Vec<&str> = NAMES
            .iter()
            .filter(|(bit, _)| t & bit != 0)
            .map(|(_, n)| *n)
            .collect();
        names.join(", ")
    }
}

/// Who makes the request, as the helpers see it. `None`: not given, so a
/// verdict that depends on it is nondeterministic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub cgroup_id: Option<u64>,
}

const FRAME: usize = 512;
const MAX_FRAMES: usize = 8;
/// Back-edges one run may take before [`EmuError::Budget`].
pub(crate) const STEP_BUDGET: usize = 1 << 20;
/// Instructions one run may execute: long loop bodies end too.
const MAX_EXECUTED: usize = 1 << 26;
/// `may_goto`s that fall through per frame. The x86-64 kernel then checks
/// the time (250 ms), so the count past this is nondeterministic.
const MAY_GOTO_ALLOWANCE: u32 = 0xffff;

/// The values nondeterministic helpers return in one run: random, or (in
/// every other run) the program's own constants, so that a filter
/// comparing with `uid == 1000` meets 1000.
pub(crate) struct Draw<'a> {
    state: u64,
    hints: &'a [u64],
    /// Runs with an odd seed go through the hints in turn, starting at
    /// this index (so each hint is some run's first value).
    hint: Option<usize>,
}

impl Draw<'_> {
    pub fn new(seed: u64, hints: &[u64]) -> Draw<'_> {
        Draw {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d,
            hints,
            hint: (seed % 2 == 1 && !hints.is_empty()).then_some((seed / 2) as usize),
        }
    }

    /// A value for a helper to return.
    fn value(&mut self) -> u64 {
        match &mut self.hint {
            Some(k) => {
                let h = self.hints[*k % self.hints.len()];
                *k += 1;
                h
            }
            None => self.next(),
        }
    }

    fn next(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A register: value, nondeterminism, and whether it holds a pointer.
#[derive(Clone, Copy, Debug, Default)]
struct Cell {
    v: u64,
    t: u16,
    p: bool,
}

impl Cell {
    fn scalar(v: u64, t: u16) -> Cell {
        Cell { v, t, p: false }
    }
    fn ptr(v: u64) -> Cell {
        Cell { v, t: 0, p: true }
    }
    /// Its taint once used as a number.
    fn as_number(self) -> u16 {
        self.t | if self.p { taint::POINTER } else { 0 }
    }
}

struct Frame {
    ret: usize,
    saved: [Cell; 4],
    may_goto: u32,
}

/// The result of one run.
pub(crate) struct Outcome {
    pub r0: u64,
    /// Nondeterminism the verdict may depend on (0: none).
    pub taint: u16,
}

pub(crate) struct Machine<'a> {
    ops: &'a [Option<Op>],
    ranges: &'a [Range<u64>],
    caller: &'a Caller,
    draw: Draw<'a>,
    pub trace: Vec<String>,
    regs: [Cell; 11],
    stack: Vec<u8>,
    written: Vec<bool>,
    stack_taint: Vec<u16>,
    stack_ptr: Vec<bool>,
    ctx: [u8; 12],
    /// Nondeterminism stored into map values.
    map_taint: u16,
    /// Nondeterminism control flow depended on.
    control: u16,
}

fn runtime(message: String) -> EmuError {
    EmuError::Runtime { message }
}

enum Region {
    Stack(usize),
    Ctx(usize),
    Map,
}

impl<'a> Machine<'a> {
    pub fn new(
        ops: &'a [Option<Op>],
        ranges: &'a [Range<u64>],
        caller: &'a Caller,
        ctx: &[u8; 12],
        seed: u64,
        hints: &'a [u64],
    ) -> Machine<'a> {
        let mut draw = Draw::new(seed, hints);
        // The kernel's stack holds leftovers: different ones per draw.
        let stack: Vec<u8> = (0..FRAME * MAX_FRAMES)
            .map(|_| if seed == 0 { 0 } else { draw.next() as u8 })
            .collect();
        Machine {
            ops,
            ranges,
            caller,
            draw,
            trace: Vec::new(),
            regs: [Cell::default(); 11],
            written: vec![false; stack.len()],
            stack_taint: vec![0; stack.len()],
            stack_ptr: vec![false; stack.len()],
            stack,
            ctx: *ctx,
            map_taint: 0,
            control: 0,
        }
    }

    fn frame_top(&self, frame: usize) -> u64 {
        self.stack.as_ptr() as u64 + ((frame + 1) * FRAME) as u64
    }

    fn region(&self, addr: u64, len: usize, pc: usize) -> Result<Region, EmuError> {
        let end = addr.checked_add(len as u64);
        let within = |r: Range<u64>| end.is_some_and(|e| addr >= r.start && e <= r.end);
        let sbase = self.stack.as_ptr() as u64;
        if within(sbase..sbase + self.stack.len() as u64) {
            return Ok(Region::Stack((addr - sbase) as usize));
        }
        let cbase = self.ctx.as_ptr() as u64;
        if within(cbase..cbase + 12) {
            return Ok(Region::Ctx((addr - cbase) as usize));
        }
        if self.ranges.iter().any(|r| within(r.clone())) {
            return Ok(Region::Map);
        }
        Err(runtime(format!(
            "instruction {pc}: access of {len} bytes at {addr:#x} outside the program's memory"
        )))
    }

    fn load(&self, addr: u64, len: usize, pc: usize) -> Result<Cell, EmuError> {
        let mut bytes = [0u8; 8];
        let cell = match self.region(addr, len, pc)? {
            Region::Stack(o) => {
                bytes[..len].copy_from_slice(&self.stack[o..o + len]);
                let mut t = 0;
                for b in o..o + len {
                    t |= self.stack_taint[b];
                    if !self.written[b] {
                        t |= taint::UNINIT;
                    }
                }
                let ptr_bytes = self.stack_ptr[o..o + len].iter().filter(|&&p| p).count();
                let v = u64::from_le_bytes(bytes);
                if len == 8 && ptr_bytes == 8 {
                    Cell { v, t, p: true }
                } else if ptr_bytes > 0 {
                    Cell::scalar(v, t | taint::POINTER)
                } else {
                    Cell::scalar(v, t)
                }
            }
            Region::Ctx(o) => {
                bytes[..len].copy_from_slice(&self.ctx[o..o + len]);
                Cell::scalar(u64::from_le_bytes(bytes), 0)
            }
            Region::Map => {
                // SAFETY: inside a map arena the emulator owns (checked by
                // `region`), valid for the whole run.
                unsafe {
                    std::ptr::copy_nonoverlapping(addr as *const u8, bytes.as_mut_ptr(), len)
                };
                Cell::scalar(u64::from_le_bytes(bytes), self.map_taint)
            }
        };
        Ok(cell)
    }

    fn store(&mut self, addr: u64, len: usize, val: Cell, pc: usize) -> Result<(), EmuError> {
        let bytes = val.v.to_le_bytes();
        match self.region(addr, len, pc)? {
            Region::Stack(o) => {
                self.stack[o..o + len].copy_from_slice(&bytes[..len]);
                for b in o..o + len {
                    self.written[b] = true;
                    self.stack_taint[b] = val.t;
                    self.stack_ptr[b] = val.p;
                }
            }
            Region::Ctx(_) => {
                return Err(runtime(format!(
                    "instruction {pc}: store into the read-only context"
                )))
            }
            Region::Map => {
                self.map_taint |= val.as_number();
                // SAFETY: as in `load`.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, len) };
            }
        }
        Ok(())
    }

    /// Taint of `len` bytes of memory a helper reads.
    fn mem_taint(&self, addr: u64, len: usize, pc: usize) -> Result<u16, EmuError> {
        Ok(match self.region(addr, len, pc)? {
            Region::Stack(o) => {
                let mut t = 0;
                for b in o..o + len {
                    t |= self.stack_taint[b];
                    if !self.written[b] {
                        t |= taint::UNINIT;
                    }
                    if self.stack_ptr[b] {
                        t |= taint::POINTER;
                    }
                }
                t
            }
            Region::Ctx(_) => 0,
            Region::Map => self.map_taint,
        })
    }

    fn operand(&self, w64: bool, src: Src) -> Cell {
        match src {
            Src::Imm(k) if w64 => Cell::scalar(k as i64 as u64, 0),
            Src::Imm(k) => Cell::scalar(u64::from(k as u32), 0),
            Src::Reg(r) => self.regs[r as usize],
        }
    }

    /// Runs from the first instruction to the main program's exit.
    pub fn run(&mut self) -> Result<Outcome, EmuError> {
        let mut frames: Vec<Frame> = Vec::new();
        let mut may_goto = 0u32;
        self.regs[1] = Cell::ptr(self.ctx.as_ptr() as u64);
        self.regs[10] = Cell::ptr(self.frame_top(0));
        let mut back_edges = 0usize;
        let mut executed = 0usize;
        let mut pc = 0usize;
        loop {
            let Some(o) = self.ops.get(pc).copied().flatten() else {
                return Err(runtime(format!("instruction {pc}: no instruction")));
            };
            let mut next = pc + 1;
            match o {
                Op::Alu {
                    w64,
                    operation,
                    dst,
                    src,
                } => {
                    let a = self.regs[dst as usize];
                    let b = self.operand(w64, src);
                    let v = eval_alu(operation, w64, a.v, b.v);
                    self.regs[dst as usize] = match operation {
                        op::MOV if w64 => b,
                        op::MOV => Cell::scalar(v, b.as_number()),
                        op::ADD | op::SUB if w64 && a.p != b.p => Cell {
                            v,
                            t: a.t | b.t,
                            p: true,
                        },
                        _ => Cell::scalar(v, a.as_number() | b.as_number()),
                    };
                }
                Op::Neg { w64, dst } => {
                    let a = self.regs[dst as usize];
                    self.regs[dst as usize] =
                        Cell::scalar(eval_alu(op::NEG, w64, a.v, 0), a.as_number());
                }
                Op::End { to_be, bits, dst } => {
                    let a = self.regs[dst as usize];
                    let v = if to_be {
                        swap(a.v, bits)
                    } else {
                        truncate(a.v, bits)
                    };
                    self.regs[dst as usize] = Cell::scalar(v, a.as_number());
                }
                Op::Bswap { bits, dst } => {
                    let a = self.regs[dst as usize];
                    self.regs[dst as usize] = Cell::scalar(swap(a.v, bits), a.as_number());
                }
                Op::MovSx {
                    w64,
                    bits,
                    dst,
                    src,
                } => {
                    let a = self.regs[src as usize];
                    let v = sign_extend(a.v, bits);
                    let v = if w64 { v } else { v & 0xffff_ffff };
                    self.regs[dst as usize] = Cell::scalar(v, a.as_number());
                }
                Op::SDiv {
                    w64,
                    modulo,
                    dst,
                    src,
                } => {
                    let a = self.regs[dst as usize];
                    let b = match src {
                        Src::Imm(k) => Cell::scalar(k as i64 as u64, 0),
                        Src::Reg(r) => self.regs[r as usize],
                    };
                    let v = sdiv(w64, modulo, a.v, b.v);
                    self.regs[dst as usize] = Cell::scalar(v, a.as_number() | b.as_number());
                }
                Op::Lddw { dst, value, map } => {
                    self.regs[dst as usize] = match map {
                        Some(m) => Cell::ptr(MAP_HANDLE | u64::from(m)),
                        None => Cell::scalar(value, 0),
                    };
                    next = pc + 2;
                }
                Op::Ldx {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    let addr = self.regs[src as usize].v.wrapping_add(off as i64 as u64);
                    self.regs[dst as usize] = self.load(addr, size, pc)?;
                }
                Op::Ldsx {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    let addr = self.regs[src as usize].v.wrapping_add(off as i64 as u64);
                    let c = self.load(addr, size, pc)?;
                    self.regs[dst as usize] =
                        Cell::scalar(sign_extend(c.v, 8 * size as u32), c.as_number());
                }
                Op::St {
                    size,
                    dst,
                    off,
                    imm,
                } => {
                    let addr = self.regs[dst as usize].v.wrapping_add(off as i64 as u64);
                    self.store(addr, size, Cell::scalar(imm as i64 as u64, 0), pc)?;
                }
                Op::Stx {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    let addr = self.regs[dst as usize].v.wrapping_add(off as i64 as u64);
                    let mut c = self.regs[src as usize];
                    if c.p && size != 8 {
                        c = Cell::scalar(c.v, c.as_number());
                    }
                    self.store(addr, size, c, pc)?;
                }
                Op::Atomic {
                    size,
                    dst,
                    src,
                    off,
                    operation,
                } => {
                    let addr = self.regs[dst as usize].v.wrapping_add(off as i64 as u64);
                    let old = self.load(addr, size, pc)?;
                    let s = self.regs[src as usize];
                    let mask = if size == 8 { u64::MAX } else { 0xffff_ffff };
                    let t = old.as_number() | s.as_number();
                    let new = match operation & !op::ATOMIC_FETCH {
                        op::ATOMIC_ADD => Some(old.v.wrapping_add(s.v)),
                        op::ATOMIC_OR => Some(old.v | s.v),
                        op::ATOMIC_AND => Some(old.v & s.v),
                        op::ATOMIC_XOR => Some(old.v ^ s.v),
                        _ if operation == op::ATOMIC_XCHG => Some(s.v),
                        _ => {
                            // cmpxchg: compares r0 at the operation's width.
                            let r0 = self.regs[0];
                            self.control |= r0.as_number() | old.t;
                            ((r0.v & mask) == (old.v & mask)).then_some(s.v)
                        }
                    };
                    if let Some(v) = new {
                        self.store(addr, size, Cell::scalar(v & mask, t), pc)?;
                    }
                    let old_cell = Cell::scalar(old.v & mask, old.as_number());
                    if operation == op::ATOMIC_CMPXCHG {
                        self.regs[0] = old_cell;
                    } else if operation & op::ATOMIC_FETCH != 0 {
                        self.regs[src as usize] = old_cell;
                    }
                }
                Op::Ja { target } => next = target,
                Op::Jcond {
                    w64,
                    cond,
                    dst,
                    src,
                    target,
                } => {
                    let a = self.regs[dst as usize];
                    let b = self.operand(w64, src);
                    let null_check = matches!(cond, op::JEQ | op::JNE) && w64 && src == Src::Imm(0);
                    let t = if null_check {
                        a.t
                    } else {
                        a.as_number() | b.as_number()
                    };
                    self.control |= t;
                    if crate::scalar::eval_cond(cond, w64, a.v, b.v) {
                        next = target;
                    }
                }
                Op::MayGoto { target } => {
                    if may_goto >= MAY_GOTO_ALLOWANCE {
                        self.control |= taint::MAY_GOTO;
                        next = target;
                    } else {
                        may_goto += 1;
                    }
                }
                Op::Call { helper } => self.call(helper, pc)?,
                Op::CallLocal { target } => {
                    if frames.len() + 1 >= MAX_FRAMES {
                        return Err(runtime(format!("instruction {pc}: call stack too deep")));
                    }
                    let mut saved = [Cell::default(); 4];
                    saved.copy_from_slice(&self.regs[6..10]);
                    frames.push(Frame {
                        ret: pc + 1,
                        saved,
                        may_goto,
                    });
                    may_goto = 0;
                    // A fresh frame: whatever an earlier callee left there
                    // lies elsewhere in the kernel's frame layout.
                    let k = frames.len();
                    self.written[k * FRAME..(k + 1) * FRAME].fill(false);
                    self.stack_ptr[k * FRAME..(k + 1) * FRAME].fill(false);
                    self.regs[10] = Cell::ptr(self.frame_top(k));
                    next = target;
                }
                Op::Exit => match frames.pop() {
                    None => {
                        let r0 = self.regs[0];
                        return Ok(Outcome {
                            r0: r0.v,
                            taint: self.control | r0.as_number(),
                        });
                    }
                    Some(f) => {
                        self.regs[6..10].copy_from_slice(&f.saved);
                        self.regs[10] = Cell::ptr(self.frame_top(frames.len()));
                        may_goto = f.may_goto;
                        next = f.ret;
                    }
                },
            }
            let jumps = matches!(o, Op::Ja { .. } | Op::Jcond { .. } | Op::MayGoto { .. });
            executed += 1;
            if jumps && next <= pc || executed > MAX_EXECUTED {
                back_edges += 1;
                if back_edges > STEP_BUDGET || executed > MAX_EXECUTED {
                    return Err(EmuError::Budget {
                        insn: pc,
                        budget: STEP_BUDGET,
                    });
                }
            }
            pc = next;
        }
    }

    fn call(&mut self, id: i32, pc: usize) -> Result<(), EmuError> {
        let args: [Cell; 5] = [
            self.regs[1],
            self.regs[2],
            self.regs[3],
            self.regs[4],
            self.regs[5],
        ];
        let r0 = match id {
            helper::MAP_LOOKUP_ELEM | helper::MAP_UPDATE_ELEM | helper::MAP_DELETE_ELEM => {
                let (key_len, value_len) = maps::sizes(args[0].v)
                    .ok_or_else(|| runtime(format!("instruction {pc}: not a map")))?;
                let key_t = self.mem_taint(args[1].v, key_len, pc)?;
                match id {
                    helper::MAP_LOOKUP_ELEM => {
                        let v = maps::helper_lookup(args[0].v, args[1].v, 0, 0, 0);
                        Cell {
                            v,
                            t: key_t | self.map_taint,
                            p: true,
                        }
                    }
                    helper::MAP_UPDATE_ELEM => {
                        let value_t = self.mem_taint(args[2].v, value_len, pc)?;
                        self.map_taint |= key_t | value_t | args[3].as_number();
                        let v = maps::helper_update(args[0].v, args[1].v, args[2].v, args[3].v, 0);
                        Cell::scalar(v, self.map_taint)
                    }
                    _ => {
                        self.map_taint |= key_t;
                        let v = maps::helper_delete(args[0].v, args[1].v, 0, 0, 0);
                        Cell::scalar(v, self.map_taint)
                    }
                }
            }
            helper::KTIME_GET_NS | helper::KTIME_GET_BOOT_NS | helper::JIFFIES64 => {
                Cell::scalar(self.draw.value(), taint::TIME)
            }
            helper::GET_PRANDOM_U32 => Cell::scalar(self.draw.value() & 0xffff_ffff, taint::RANDOM),
            helper::GET_SMP_PROCESSOR_ID | helper::GET_NUMA_NODE_ID => {
                Cell::scalar(self.draw.value() & 0xffff_ffff, taint::CPU)
            }
            helper::GET_CURRENT_PID_TGID => {
                let (pid, tgid) = (self.draw.value(), self.draw.value());
                Cell::scalar(tgid << 32 | (pid & 0xffff_ffff), taint::PID)
            }
            helper::GET_CURRENT_UID_GID => match (self.caller.uid, self.caller.gid) {
                (Some(uid), Some(gid)) => Cell::scalar(u64::from(gid) << 32 | u64::from(uid), 0),
                _ => {
                    let (uid, gid) = (self.draw.value(), self.draw.value());
                    Cell::scalar(gid << 32 | (uid & 0xffff_ffff), taint::UID)
                }
            },
            helper::GET_CURRENT_CGROUP_ID => match self.caller.cgroup_id {
                Some(id) => Cell::scalar(id, 0),
                None => Cell::scalar(self.draw.value(), taint::CGROUP),
            },
            helper::TRACE_PRINTK => self.trace_printk(&args, pc)?,
            _ => {
                return Err(runtime(format!(
                    "instruction {pc}: helper #{id} not emulated"
                )))
            }
        };
        for r in 1..=5 {
            // Clobbered: the verifier refuses reads, so any value will do.
            self.regs[r] = Cell::default();
        }
        self.regs[0] = r0;
        Ok(())
    }

    fn trace_printk(&mut self, args: &[Cell; 5], pc: usize) -> Result<Cell, EmuError> {
        let len = args[1].v as usize;
        let mut fmt = Vec::with_capacity(len);
        for k in 0..len {
            fmt.push(self.load(args[0].v.wrapping_add(k as u64), 1, pc)?.v as u8);
        }
        let t = args[2..].iter().fold(0, |t, c| t | c.as_number());
        let values = [args[2].v, args[3].v, args[4].v];
        Ok(match printk(&fmt, &values) {
            Some(line) => {
                let n = line.len() as u64;
                self.trace.push(line);
                Cell::scalar(n, t)
            }
            None => Cell::scalar((-22i64) as u64, 0),
        })
    }
}

fn truncate(v: u64, bits: u32) -> u64 {
    if bits == 64 {
        v
    } else {
        v & ((1u64 << bits) - 1)
    }
}

/// The low `bits` byte-swapped, zero-extended.
fn swap(v: u64, bits: u32) -> u64 {
    match bits {
        16 => u64::from((v as u16).swap_bytes()),
        32 => u64::from((v as u32).swap_bytes()),
        _ => v.swap_bytes(),
    }
}

fn sign_extend(v: u64, bits: u32) -> u64 {
    let shift = 64 - bits;
    ((v << shift) as i64 >> shift) as u64
}

/// The kernel's signed division after its fixups: by 0, sdiv gives 0 and
/// smod leaves dst; by -1, sdiv negates and smod gives 0 (no overflow
/// trap). The 32-bit form works on the low halves and zero-extends.
fn sdiv(w64: bool, modulo: bool, a: u64, b: u64) -> u64 {
    if w64 {
        let (x, y) = (a as i64, b as i64);
        (match (y, modulo) {
            (0, false) => 0,
            (0, true) => x,
            (-1, false) => x.wrapping_neg(),
            (-1, true) => 0,
            (_, false) => x / y,
            (_, true) => x % y,
        }) as u64
    } else {
        let (x, y) = (a as i32, b as i32);
        u64::from(
            (match (y, modulo) {
                (0, false) => 0,
                (0, true) => x,
                (-1, false) => x.wrapping_neg(),
                (-1, true) => 0,
                (_, false) => x / y,
                (_, true) => x % y,
            }) as u32,
        )
    }
}

/// `bpf_trace_printk`'s formatting (the kernel's bpf_bprintf_prepare
/// rules): a NUL within the size, at most three conversions among
/// `%d %i %u %x %X %c %p %%` with `l`/`ll` and a `[0 +-][width]` prefix.
/// `None` where the kernel answers -EINVAL (`%s` of kernel memory is not
/// emulated and counts as such).
pub(crate) fn printk(fmt: &[u8], values: &[u64; 3]) -> Option<String> {
    let end = fmt.iter().position(|&b| b == 0)?;
    let fmt = &fmt[..end];
    let mut out = String::new();
    let mut next = values.iter();
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        if c != b'%' {
            out.push(c as char);
            i += 1;
            continue;
        }
        i += 1;
        if fmt.get(i) == Some(&b'%') {
            out.push('%');
            i += 1;
            continue;
        }
        let mut zero = false;
        let mut left = false;
        while let Some(&f) = fmt.get(i) {
            match f {
                b'0' => zero = true,
                b'-' => left = true,
                b' ' | b'+' => {}
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        while let Some(d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
            width = width * 10 + usize::from(d - b'0');
            i += 1;
        }
        let mut longs = 0;
        while fmt.get(i) == Some(&b'l') {
            longs += 1;
            i += 1;
        }
        if longs > 2 {
            return None;
        }
        let conv = *fmt.get(i)?;
        i += 1;
        let v = *next.next()?;
        let v = if longs == 0 && conv != b'p' {
            v & 0xffff_ffff
        } else {
            v
        };
        let text = match conv {
            b'd' | b'i' if longs == 0 => (v as u32 as i32).to_string(),
            b'd' | b'i' => (v as i64).to_string(),
            b'u' => v.to_string(),
            b'x' => format!("{v:x}"),
            b'X' => format!("{v:X}"),
            b'c' if longs == 0 => ((v as u8) as char).to_string(),
            b'p' => format!("{v:#x}"),
            _ => return None,
        };
        let pad = width.saturating_sub(text.len());
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else if zero && conv != b'c' {
            let (sign, digits) = text.split_at(usize::from(text.starts_with('-')));
            out.push_str(sign);
            out.push_str(&"0".repeat(pad));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&text);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printk_formats_like_the_kernel() {
        assert_eq!(
            printk(b"dev %d:%u x=%05x\0", &[0xffff_ffff, 7, 0xab]).as_deref(),
            Some("dev -1:7 x=000ab")
        );
        assert_eq!(printk(b"%lld\0", &[u64::MAX, 0, 0]).as_deref(), Some("-1"));
        assert_eq!(printk(b"no nul", &[0; 3]), None);
        assert_eq!(printk(b"%s\0", &[0; 3]), None);
        assert_eq!(printk(b"%d %d %d %d\0", &[0; 3]), None);
    }

    #[test]
    fn signed_division_follows_the_kernel_fixups() {
        assert_eq!(sdiv(true, false, (-7i64) as u64, 2), (-3i64) as u64);
        assert_eq!(sdiv(true, true, (-7i64) as u64, 2), (-1i64) as u64);
        assert_eq!(
            sdiv(true, false, i64::MIN as u64, u64::MAX),
            i64::MIN as u64
        );
        assert_eq!(sdiv(true, true, 5, 0), 5);
        assert_eq!(sdiv(false, true, 0x1_0000_0005, 0), 5);
        assert_eq!(sdiv(false, false, 0xffff_fff9, 2), 0xffff_fffd);
    }
}
