//! Splits the requests of one device type into boxes of majors and minors
//! on each of which a program takes a single path per access, by running it
//! with the major and minor left symbolic and the access decided lane by
//! lane.
//!
//! Why: a program over thousands of rules compares the major and the minor
//! with thousands of numbers. Pairing every major class with every minor
//! class is too many requests to run, and guessing which pairs matter from
//! the program's constants is a heuristic. Following the program instead
//! gives exactly the classes it distinguishes: where a path compares the
//! major with 8, the box splits into majors below, at and above 8, and each
//! part goes on alone. A map lookup whose key holds the major and minor
//! splits the box into the keys' points (each finding its element) and the
//! rest (finding none).
//!
//! A register holds eight bytes, each known, a byte of the major or minor,
//! or unknown; or one number per access (a "lane"), for values computed
//! from the access: those run lane by lane, so the accesses share every
//! path until they lead to different places (then the lanes split), and a
//! path usually ends with one verdict per lane. Byte moves (`mov`, loads,
//! stores, shifts by whole bytes, `and`/`or` with masks of whole bytes,
//! byte swaps) keep the symbols; anything else on a symbolic byte, a
//! comparison of a register that is not exactly the major or minor, or a
//! return value made of them is [`SymbolicError::Unsupported`]: the caller
//! falls back to another way of choosing classes, never to a guess.
//!
//! The program must have passed [`crate::Emulator::new`] (structure, types,
//! bounds); this module trusts those checks.

use std::collections::HashMap;
use std::rc::Rc;

use devcg_engine::insn::{helper, op, MapKind, MapSpec, Program};
use devcg_engine::{Access, DeviceType, Request};
use thiserror::Error;

use crate::decode::{self, Op, Src};
use crate::scalar::{eval_alu, eval_cond};

/// An inclusive range of numbers.
pub type Span = (u32, u32);

/// Majors `majors` with minors `minors`: a box of the request plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    pub majors: Span,
    pub minors: Span,
}

/// A set of lanes: bit i is the i-th access given to [`partition`].
pub type Lanes = u8;

/// One path's end: for the requests of `region` with the accesses of
/// `lanes`, the program allows those of `allowed` and denies the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub region: Region,
    pub lanes: Lanes,
    pub allowed: Lanes,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SymbolicError {
    #[error("instruction {insn}: {what}")]
    Unsupported { insn: usize, what: &'static str },
    #[error("more than {limit} instructions on all paths together")]
    Budget { limit: usize },
    #[error("{count} accesses are more than the {LANES} lanes")]
    TooManyAccesses { count: usize },
    #[error(transparent)]
    Refused(#[from] crate::EmuError),
}

/// The most accesses decided together.
pub const LANES: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Field {
    Major,
    Minor,
}

/// One byte of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Byte {
    Known(u8),
    /// Byte `.1` (little-endian) of the field.
    Of(Field, u8),
    Unknown,
}

const ZERO: Byte = Byte::Known(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Bytes([Byte; 8]),
    /// One number per lane (the lanes outside the state's set are stale).
    Lanes([u64; LANES]),
    Ctx,
    /// The frame pointer plus an offset.
    Stack(i64),
    Map(u32),
    /// A pointer into one of [`Maps`]' values, plus an offset.
    Value {
        value: u32,
        off: i64,
    },
}

impl Val {
    fn known(v: u64) -> Val {
        Val::Bytes(v.to_le_bytes().map(Byte::Known))
    }

    const UNKNOWN: Val = Val::Bytes([Byte::Unknown; 8]);

    /// Per lane, when the value is a number that does not depend on the
    /// major or minor.
    fn lanes(&self, width: usize) -> Option<[u64; LANES]> {
        match self {
            Val::Lanes(l) => Some(*l),
            Val::Bytes(b) => known(b, width).map(|v| [v; LANES]),
            _ => None,
        }
    }
}

/// `values` as one number when all of `lanes` agree.
fn settle(values: [u64; LANES], lanes: Lanes) -> Val {
    let mut live = (0..LANES)
        .filter(|i| lanes & (1 << i) != 0)
        .map(|i| values[i]);
    let first = live.next().unwrap_or(0);
    if live.all(|v| v == first) {
        Val::known(first)
    } else {
        Val::Lanes(values)
    }
}

/// The number the bytes hold, when all of the first `width` are known.
fn known(bytes: &[Byte; 8], width: usize) -> Option<u64> {
    let mut out = [0u8; 8];
    for (o, b) in out.iter_mut().zip(&bytes[..width]) {
        match b {
            Byte::Known(v) => *o = *v,
            _ => return None,
        }
    }
    Some(u64::from_le_bytes(out))
}

/// The field the first `width` bytes are exactly (zero-extended).
fn exactly(bytes: &[Byte; 8], width: usize) -> Option<Field> {
    let Byte::Of(field, 0) = bytes[0] else {
        return None;
    };
    let field_bytes = (0..4).all(|i| bytes[i] == Byte::Of(field, i as u8));
    let zero_above = bytes[4..width].iter().all(|&b| b == ZERO);
    (field_bytes && zero_above).then_some(field)
}

/// The value of the operand at the operation's width: 32-bit operations
/// see the low half, and write it zero-extended.
fn truncate(mut bytes: [Byte; 8], w64: bool) -> [Byte; 8] {
    if !w64 {
        bytes[4..].fill(ZERO);
    }
    bytes
}

fn truncate_val(v: Val, w64: bool) -> Val {
    match v {
        Val::Bytes(b) => Val::Bytes(truncate(b, w64)),
        Val::Lanes(l) if !w64 => Val::Lanes(l.map(|x| x & u64::from(u32::MAX))),
        other => other,
    }
}

/// A byte swap as the kernel does it (the host is little-endian: to_be
/// reverses, to_le only truncates).
fn end(to_be: bool, bits: u32, v: u64) -> u64 {
    match (to_be, bits) {
        (true, 16) => u64::from((v as u16).swap_bytes()),
        (true, 32) => u64::from((v as u32).swap_bytes()),
        (true, _) => v.swap_bytes(),
        (false, 16) => v & 0xffff,
        (false, 32) => v & u64::from(u32::MAX),
        (false, _) => v,
    }
}

/// The map values a lookup can point into: per map, its elements' values
/// by key (the last entry of a key wins, as an update does).
struct Maps<'a> {
    specs: &'a [MapSpec],
    /// Every value, pointed at by [`Val::Value`].
    values: Vec<Vec<u8>>,
    /// Per map, key to value index.
    by_key: Vec<HashMap<Vec<u8>, u32>>,
    /// Per map and key pattern: the elements it can find, with the field
    /// values that find each, sorted.
    matches: HashMap<(u32, Vec<Byte>), Vec<Match>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Match {
    major: Option<u32>,
    minor: Option<u32>,
    value: u32,
}

impl<'a> Maps<'a> {
    fn new(specs: &'a [MapSpec]) -> Maps<'a> {
        let mut values = Vec::new();
        let mut by_key = Vec::new();
        for spec in specs {
            let mut keys = HashMap::new();
            match spec.kind {
                MapKind::Hash => {
                    for (k, v) in &spec.entries {
                        values.push(v.clone());
                        keys.insert(k.clone(), values.len() as u32 - 1);
                    }
                }
                MapKind::Array => {
                    let mut slots = vec![None; spec.max_entries as usize];
                    for (k, v) in &spec.entries {
                        let idx = u32::from_le_bytes(k[..4].try_into().expect("4-byte key"));
                        slots[idx as usize] = Some(v.clone());
                    }
                    for (idx, v) in slots.into_iter().enumerate() {
                        values.push(v.unwrap_or_else(|| vec![0; spec.value_size as usize]));
                        keys.insert((idx as u32).to_le_bytes().to_vec(), values.len() as u32 - 1);
                    }
                }
            }
            by_key.push(keys);
        }
        Maps {
            specs,
            values,
            by_key,
            matches: HashMap::new(),
        }
    }

    /// The elements `pattern` can find in `map`, with the field values that
    /// find them; `None` if a field is only partly in the key.
    fn matches(&mut self, map: u32, pattern: &[Byte]) -> Option<&[Match]> {
        let cache_key = (map, pattern.to_vec());
        if !self.matches.contains_key(&cache_key) {
            let mut found = Vec::new();
            let mut seen = [[false; 4]; 2];
            for b in pattern {
                match b {
                    Byte::Of(f, i) => seen[*f as usize][*i as usize] = true,
                    Byte::Unknown => return None,
                    Byte::Known(_) => {}
                }
            }
            let whole = |s: [bool; 4]| s.iter().all(|&x| x) || s.iter().all(|&x| !x);
            if !whole(seen[0]) || !whole(seen[1]) {
                return None;
            }
            'keys: for (key, &value) in &self.by_key[map as usize] {
                let mut fields = [[None::<u8>; 4]; 2];
                for (b, &k) in pattern.iter().zip(key) {
                    match *b {
                        Byte::Known(v) if v != k => continue 'keys,
                        Byte::Of(f, i) => {
                            let slot = &mut fields[f as usize][i as usize];
                            if slot.is_some_and(|x| x != k) {
                                continue 'keys;
                            }
                            *slot = Some(k);
                        }
                        _ => {}
                    }
                }
                let number = |f: [Option<u8>; 4]| -> Option<u32> {
                    Some(u32::from_le_bytes([f[0]?, f[1]?, f[2]?, f[3]?]))
                };
                found.push(Match {
                    major: number(fields[0]),
                    minor: number(fields[1]),
                    value,
                });
            }
            found.sort_unstable();
            self.matches.insert(cache_key.clone(), found);
        }
        self.matches.get(&cache_key).map(Vec::as_slice)
    }
}

#[derive(Clone)]
struct State {
    pc: usize,
    regs: [Val; 11],
    /// Shared between forks until one writes.
    stack: Rc<[Byte; STACK]>,
    region: Region,
    lanes: Lanes,
}

const STACK: usize = 512;

impl State {
    fn span(&mut self, field: Field) -> &mut Span {
        match field {
            Field::Major => &mut self.region.majors,
            Field::Minor => &mut self.region.minors,
        }
    }

    /// The register a lane-by-lane value must become one number in, for
    /// this instruction: where it meets the major, the minor or a pointer,
    /// or is stored or used as an address.
    fn needs_one_number(&self, insn: Op) -> Option<u8> {
        let is_lanes = |r: u8| matches!(self.regs[r as usize], Val::Lanes(_));
        let with_number = |r: u8, other: Val, width: usize| {
            (is_lanes(r) && other.lanes(width).is_none()).then_some(r)
        };
        match insn {
            Op::Alu {
                w64,
                operation,
                dst,
                src,
            }
            | Op::Jcond {
                w64,
                cond: operation,
                dst,
                src,
                ..
            } => {
                let width = if w64 { 8 } else { 4 };
                let mov = matches!(insn, Op::Alu { .. }) && operation == op::MOV;
                let s = match src {
                    Src::Reg(r) => Some(r),
                    Src::Imm(_) => None,
                };
                let src_val = s.map_or(Val::known(0), |r| self.regs[r as usize]);
                if mov {
                    return None;
                }
                with_number(dst, truncate_val(src_val, w64), width).or_else(|| {
                    s.and_then(|r| {
                        with_number(r, truncate_val(self.regs[dst as usize], w64), width)
                    })
                })
            }
            Op::Ldx { src, .. } => is_lanes(src).then_some(src),
            Op::St { dst, .. } => is_lanes(dst).then_some(dst),
            Op::Stx { dst, src, .. } => [dst, src].into_iter().find(|&r| is_lanes(r)),
            Op::Call { .. } => [1, 2].into_iter().find(|&r| is_lanes(r)),
            _ => None,
        }
    }

    /// One state per distinct value of `reg` over the lanes, each with the
    /// lanes that have it and the register as that one number.
    fn one_number_each(self, reg: u8) -> Vec<State> {
        let Val::Lanes(values) = self.regs[reg as usize] else {
            unreachable!("only lane values are split")
        };
        let mut groups: Vec<(u64, Lanes)> = Vec::new();
        for i in (0..LANES).filter(|i| self.lanes & (1 << i) != 0) {
            match groups.iter_mut().find(|g| g.0 == values[i]) {
                Some(g) => g.1 |= 1 << i,
                None => groups.push((values[i], 1 << i)),
            }
        }
        groups
            .into_iter()
            .map(|(v, lanes)| {
                let mut st = self.clone();
                st.lanes = lanes;
                st.regs[reg as usize] = Val::known(v);
                st
            })
            .collect()
    }
}

/// Splits `region` for requests of `ty`, deciding the `accesses` together
/// (lane i is `accesses[i]`), into the boxes on which `program` takes one
/// path per lane. `region` should hold only numbers a request can carry.
/// Stops after `budget` instructions over all paths.
pub fn partition(
    program: &Program,
    ty: DeviceType,
    accesses: &[Access],
    region: Region,
    budget: usize,
) -> Result<Vec<Leaf>, SymbolicError> {
    if accesses.is_empty() || accesses.len() > LANES {
        return Err(SymbolicError::TooManyAccesses {
            count: accesses.len(),
        });
    }
    let ops = decode::decode(&program.insns, program.maps.len(), true)?;
    let mut ctx = [[0u8; 12]; LANES];
    for (c, &a) in ctx.iter_mut().zip(accesses) {
        *c = Request::new(ty, 0, 0, a).to_ctx();
    }
    let all_lanes: Lanes = ((1u16 << accesses.len()) - 1) as u8;
    let mut maps = Maps::new(&program.maps);
    let mut regs = [Val::UNKNOWN; 11];
    regs[1] = Val::Ctx;
    regs[10] = Val::Stack(0);
    let mut work = vec![State {
        pc: 0,
        regs,
        stack: Rc::new([Byte::Unknown; STACK]),
        region,
        lanes: all_lanes,
    }];
    let mut leaves = Vec::new();
    let mut steps = 0usize;
    'paths: while let Some(mut st) = work.pop() {
        loop {
            steps += 1;
            if steps > budget {
                return Err(SymbolicError::Budget { limit: budget });
            }
            let at = st.pc;
            let unsupported = |what| SymbolicError::Unsupported { insn: at, what };
            let Some(insn) = ops.get(at).copied().flatten() else {
                return Err(unsupported("no instruction here"));
            };
            if let Some(reg) = st.needs_one_number(insn) {
                work.extend(st.one_number_each(reg));
                continue 'paths;
            }
            match insn {
                Op::Alu {
                    w64,
                    operation,
                    dst,
                    src,
                } => {
                    let b = operand(&st, src, w64);
                    st.regs[dst as usize] = alu(operation, w64, st.regs[dst as usize], b, st.lanes)
                        .ok_or(unsupported(
                            "arithmetic on the major or minor (only whole-byte moves are followed)",
                        ))?;
                    st.pc += 1;
                }
                Op::Neg { w64, dst } => {
                    let v = st.regs[dst as usize]
                        .lanes(8)
                        .ok_or(unsupported("negates the major, the minor or a pointer"))?;
                    st.regs[dst as usize] =
                        settle(v.map(|x| eval_alu(op::NEG, w64, x, 0)), st.lanes);
                    st.pc += 1;
                }
                Op::End { to_be, bits, dst } => {
                    st.regs[dst as usize] = match st.regs[dst as usize] {
                        Val::Bytes(b) => {
                            let n = bits as usize / 8;
                            let mut out = [ZERO; 8];
                            out[..n].copy_from_slice(&b[..n]);
                            if to_be {
                                out[..n].reverse();
                            }
                            Val::Bytes(out)
                        }
                        Val::Lanes(l) => settle(l.map(|x| end(to_be, bits, x)), st.lanes),
                        _ => return Err(unsupported("swaps the bytes of a pointer")),
                    };
                    st.pc += 1;
                }
                Op::Lddw { dst, value, map } => {
                    st.regs[dst as usize] = match map {
                        Some(m) => Val::Map(m),
                        None => Val::known(value),
                    };
                    st.pc += 2;
                }
                Op::Ldx {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    st.regs[dst as usize] = match st.regs[src as usize] {
                        Val::Ctx => {
                            let from = off as usize;
                            if from < 4 {
                                // The access and the type: per lane.
                                let mut values = [0u64; LANES];
                                for (v, c) in values.iter_mut().zip(&ctx) {
                                    let mut b = [0u8; 8];
                                    b[..size].copy_from_slice(&c[from..from + size]);
                                    *v = u64::from_le_bytes(b);
                                }
                                settle(values, st.lanes)
                            } else {
                                let mut out = [ZERO; 8];
                                for (i, o) in out[..size].iter_mut().enumerate() {
                                    let at = from + i;
                                    *o = match at {
                                        4..8 => Byte::Of(Field::Major, (at - 4) as u8),
                                        _ => Byte::Of(Field::Minor, (at - 8) as u8),
                                    };
                                }
                                Val::Bytes(out)
                            }
                        }
                        Val::Stack(base) => {
                            let from = stack_index(base + i64::from(off), size)
                                .ok_or(unsupported("reads outside the stack"))?;
                            let mut out = [ZERO; 8];
                            out[..size].copy_from_slice(&st.stack[from..from + size]);
                            Val::Bytes(out)
                        }
                        Val::Value { value, off: base } => {
                            let bytes = &maps.values[value as usize];
                            let from = usize::try_from(base + i64::from(off))
                                .ok()
                                .filter(|&f| f + size <= bytes.len())
                                .ok_or(unsupported("reads outside the map value"))?;
                            let mut out = [ZERO; 8];
                            for (o, &v) in out[..size].iter_mut().zip(&bytes[from..]) {
                                *o = Byte::Known(v);
                            }
                            Val::Bytes(out)
                        }
                        _ => return Err(unsupported("loads through a value that is no pointer")),
                    };
                    st.pc += 1;
                }
                Op::St {
                    size,
                    dst,
                    off,
                    imm,
                } => {
                    let bytes = (imm as i64 as u64).to_le_bytes().map(Byte::Known);
                    store(&mut st, dst, off, size, bytes).map_err(unsupported)?;
                    st.pc += 1;
                }
                Op::Stx {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    let Val::Bytes(bytes) = st.regs[src as usize] else {
                        return Err(unsupported("spills a pointer to the stack"));
                    };
                    store(&mut st, dst, off, size, bytes).map_err(unsupported)?;
                    st.pc += 1;
                }
                Op::Ja { target } => st.pc = target,
                Op::Jcond {
                    w64,
                    cond,
                    dst,
                    src,
                    target,
                } => {
                    let a = truncate_val(st.regs[dst as usize], w64);
                    let b = operand(&st, src, w64);
                    branch(&mut st, &mut work, cond, w64, a, b, target).map_err(unsupported)?;
                }
                Op::Call { helper } => {
                    if helper != helper::MAP_LOOKUP_ELEM {
                        return Err(unsupported("calls a helper other than map lookup"));
                    }
                    let forks = lookup(&mut st, &mut maps).map_err(unsupported)?;
                    for r in 1..=5 {
                        st.regs[r] = Val::UNKNOWN;
                    }
                    st.pc += 1;
                    for (region, r0) in forks {
                        let mut fork = st.clone();
                        fork.region = region;
                        fork.regs[0] = r0;
                        work.push(fork);
                    }
                    // `st` itself has no region left: the forks cover it.
                    continue 'paths;
                }
                Op::Exit => {
                    let values = st.regs[0].lanes(4).ok_or(unsupported(
                        "returns a pointer or a value made of the major or minor",
                    ))?;
                    let mut allowed = 0;
                    for i in (0..LANES).filter(|i| st.lanes & (1 << i) != 0) {
                        match values[i] & u64::from(u32::MAX) {
                            0 => {}
                            1 => allowed |= 1 << i,
                            _ => return Err(unsupported("returns a value other than 0 or 1")),
                        }
                    }
                    leaves.push(Leaf {
                        region: st.region,
                        lanes: st.lanes,
                        allowed,
                    });
                    continue 'paths;
                }
                // cpu-v4 forms, atomics, subprogram calls and may_goto run
                // on the emulator's own interpreter; the split does not
                // follow them (the audit then pairs numbers instead).
                Op::SDiv { .. }
                | Op::Bswap { .. }
                | Op::MovSx { .. }
                | Op::Ldsx { .. }
                | Op::Atomic { .. }
                | Op::CallLocal { .. }
                | Op::MayGoto { .. } => {
                    return Err(unsupported(
                        "a cpu-v4 instruction, an atomic, a subprogram call or may_goto",
                    ))
                }
            }
        }
    }
    Ok(leaves)
}

/// The second operand at the operation's width.
fn operand(st: &State, src: Src, w64: bool) -> Val {
    match src {
        Src::Imm(k) if w64 => Val::known(k as i64 as u64),
        Src::Imm(k) => Val::known(u64::from(k as u32)),
        Src::Reg(r) => truncate_val(st.regs[r as usize], w64),
    }
}

fn stack_index(addr: i64, size: usize) -> Option<usize> {
    let from = usize::try_from(STACK as i64 + addr).ok()?;
    (from + size <= STACK).then_some(from)
}

fn store(
    st: &mut State,
    dst: u8,
    off: i16,
    size: usize,
    bytes: [Byte; 8],
) -> Result<(), &'static str> {
    let Val::Stack(base) = st.regs[dst as usize] else {
        return Err("stores elsewhere than the stack");
    };
    let from = stack_index(base + i64::from(off), size).ok_or("writes outside the stack")?;
    Rc::make_mut(&mut st.stack)[from..from + size].copy_from_slice(&bytes[..size]);
    Ok(())
}

/// `dst <operation> src` (`src` already at the width), following the bytes
/// where they are moved whole and the lanes where they are numbers.
fn alu(operation: u8, w64: bool, dst: Val, src: Val, lanes: Lanes) -> Option<Val> {
    let width = if w64 { 8 } else { 4 };
    match (operation, dst, src) {
        (op::MOV, _, Val::Bytes(_) | Val::Lanes(_)) => return Some(src),
        (op::MOV, _, pointer) if w64 => return Some(pointer),
        (op::ADD | op::SUB, pointer, Val::Bytes(s))
            if w64 && matches!(pointer, Val::Stack(_) | Val::Value { .. }) =>
        {
            let k = known(&s, 8)? as i64;
            let k = if operation == op::SUB {
                k.wrapping_neg()
            } else {
                k
            };
            return match pointer {
                Val::Stack(o) => Some(Val::Stack(o.checked_add(k)?)),
                Val::Value { value, off } => Some(Val::Value {
                    value,
                    off: off.checked_add(k)?,
                }),
                _ => None,
            };
        }
        _ => {}
    }
    let dst = truncate_val(dst, w64);
    if let (Some(x), Some(y)) = (dst.lanes(width), src.lanes(width)) {
        let mut out = [0u64; LANES];
        for i in 0..LANES {
            out[i] = eval_alu(operation, w64, x[i], y[i]);
        }
        return Some(settle(out, lanes));
    }
    let (Val::Bytes(d), Val::Bytes(s)) = (dst, src) else {
        return None;
    };
    let mut out = [ZERO; 8];
    match operation {
        op::AND | op::OR => {
            for i in 0..width {
                out[i] = match (d[i], s[i]) {
                    (Byte::Known(x), Byte::Known(y)) if operation == op::AND => Byte::Known(x & y),
                    (Byte::Known(x), Byte::Known(y)) => Byte::Known(x | y),
                    (Byte::Known(k), other) | (other, Byte::Known(k)) => match (operation, k) {
                        (op::AND, 0) => ZERO,
                        (op::AND, 0xff) | (op::OR, 0) => other,
                        (op::OR, 0xff) => Byte::Known(0xff),
                        _ => return None,
                    },
                    _ => return None,
                };
            }
        }
        op::LSH | op::RSH | op::ADD | op::SUB | op::XOR => {
            let k = known(&s, width)?;
            let shift = match operation {
                op::LSH | op::RSH => k & (width as u64 * 8 - 1),
                _ if k == 0 => 0,
                _ => return None,
            };
            if shift % 8 != 0 {
                return None;
            }
            let n = shift as usize / 8;
            for (i, o) in out[..width].iter_mut().enumerate() {
                *o = match operation {
                    op::LSH if i >= n => d[i - n],
                    op::RSH if i + n < width => d[i + n],
                    op::LSH | op::RSH => ZERO,
                    _ => d[i],
                };
            }
        }
        _ => return None,
    }
    Some(Val::Bytes(out))
}

/// A conditional jump (operands at its width): continues `st` on one edge
/// and pushes the states of the other edges onto `work`, if the jump
/// splits the region or the lanes.
fn branch(
    st: &mut State,
    work: &mut Vec<State>,
    cond: u8,
    w64: bool,
    a: Val,
    b: Val,
    target: usize,
) -> Result<(), &'static str> {
    let width = if w64 { 8 } else { 4 };
    let (x, y) = match (a.lanes(width), b.lanes(width)) {
        (Some(x), Some(y)) => (x, y),
        _ => {
            return match (a, b) {
                (Val::Bytes(x), Val::Bytes(y)) => match (known(&x, width), known(&y, width)) {
                    (None, Some(k)) => split(st, work, cond, w64, x, k, true, target),
                    (Some(k), None) => split(st, work, cond, w64, y, k, false, target),
                    _ => Err("compares two values made of the major or minor"),
                },
                // A pointer the verifier let through to a compare with 0:
                // the lookup's result. It is never null once it is a
                // pointer here.
                (Val::Value { .. } | Val::Stack(_) | Val::Ctx | Val::Map(_), Val::Bytes(y))
                    if known(&y, width) == Some(0) && matches!(cond, op::JEQ | op::JNE) =>
                {
                    st.pc = if cond == op::JNE { target } else { st.pc + 1 };
                    Ok(())
                }
                _ => Err("compares a pointer with something other than 0"),
            };
        }
    };
    let mut taken: Lanes = 0;
    for i in (0..LANES).filter(|i| st.lanes & (1 << i) != 0) {
        if eval_cond(cond, w64, x[i], y[i]) {
            taken |= 1 << i;
        }
    }
    let fall = st.lanes & !taken;
    if taken != 0 && fall != 0 {
        let mut other = st.clone();
        other.lanes = fall;
        other.pc += 1;
        st.lanes = taken;
        st.pc = target;
        work.push(other);
        return Ok(());
    }
    st.pc = if taken != 0 { target } else { st.pc + 1 };
    Ok(())
}

/// Splits the region where `sym <cond> k` (or `k <cond> sym` when
/// `!sym_first`) changes truth; `st` takes the first piece, the others go
/// onto `work`.
#[allow(clippy::too_many_arguments)]
fn split(
    st: &mut State,
    work: &mut Vec<State>,
    cond: u8,
    w64: bool,
    sym: [Byte; 8],
    k: u64,
    sym_first: bool,
    target: usize,
) -> Result<(), &'static str> {
    let width = if w64 { 8 } else { 4 };
    let field = exactly(&sym, width).ok_or("compares part of the major or minor")?;
    if cond == op::JSET {
        return Err("tests bits of the major or minor");
    }
    let (lo, hi) = *st.span(field);
    let eval = |v: u32| {
        if sym_first {
            eval_cond(cond, w64, u64::from(v), k)
        } else {
            eval_cond(cond, w64, k, u64::from(v))
        }
    };
    // The truth of a comparison with k changes only at k, k + 1 and, for
    // signed 32-bit order, at 2^31 (the field is below 2^32, so its 64-bit
    // signed value is its unsigned one): at most four pieces.
    let mut cuts = [k, k.wrapping_add(1), 1 << 31];
    cuts.sort_unstable();
    let mut pieces = [((0u32, 0u32), false); 4];
    let mut count = 0;
    let mut start = lo;
    let inner = cuts
        .into_iter()
        .filter(|&c| c > u64::from(lo) && c <= u64::from(hi))
        .map(|c| c as u32 - 1);
    for end in inner.chain([hi]) {
        if end < start {
            continue; // a repeated cut
        }
        let t = eval(start);
        if count > 0 && pieces[count - 1].1 == t {
            pieces[count - 1].0 .1 = end;
        } else {
            pieces[count] = ((start, end), t);
            count += 1;
        }
        start = end.wrapping_add(1);
    }
    let next = |pc: usize, truth: bool| if truth { target } else { pc + 1 };
    for &(span, truth) in &pieces[1..count] {
        let mut other = st.clone();
        *other.span(field) = span;
        other.pc = next(st.pc, truth);
        work.push(other);
    }
    let (span, truth) = pieces[0];
    st.pc = next(st.pc, truth);
    *st.span(field) = span;
    Ok(())
}

/// `bpf_map_lookup_elem(r1, r2)`: the regions the lookup splits the state's
/// region into, each with r0.
fn lookup(st: &mut State, maps: &mut Maps) -> Result<Vec<(Region, Val)>, &'static str> {
    let (Val::Map(map), Val::Stack(at)) = (st.regs[1], st.regs[2]) else {
        return Err("looks up with arguments that are not a map and a stack key");
    };
    let spec = &maps.specs[map as usize];
    let size = spec.key_size as usize;
    let from = stack_index(at, size).ok_or("reads a key outside the stack")?;
    let pattern: Vec<Byte> = st.stack[from..from + size].to_vec();
    let region = st.region;
    if let Some(key) = pattern
        .iter()
        .map(|b| match b {
            Byte::Known(v) => Some(*v),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()
    {
        let r0 = match maps.by_key[map as usize].get(&key) {
            Some(&value) => Val::Value { value, off: 0 },
            None => Val::known(0),
        };
        return Ok(vec![(region, r0)]);
    }
    let has = |f: Field| {
        pattern
            .iter()
            .any(|b| matches!(b, Byte::Of(x, _) if *x == f))
    };
    let (by_major, by_minor) = (has(Field::Major), has(Field::Minor));
    if spec.kind == MapKind::Array {
        return Err("indexes an array map by the major or minor");
    }
    let all = maps
        .matches(map, &pattern)
        .ok_or("looks up a key holding part of the major or minor")?;
    let inside = |m: &&Match| {
        m.major
            .is_none_or(|v| v >= region.majors.0 && v <= region.majors.1)
            && m.minor
                .is_none_or(|v| v >= region.minors.0 && v <= region.minors.1)
    };
    // Sorted by major first: only the slice of the region's majors.
    let slice = if by_major {
        let lo = all.partition_point(|m| m.major < Some(region.majors.0));
        let hi = all.partition_point(|m| m.major <= Some(region.majors.1));
        &all[lo..hi]
    } else {
        all
    };
    let found: Vec<Match> = slice.iter().filter(inside).copied().collect();
    let mut out: Vec<(Region, Val)> = found
        .iter()
        .map(|m| {
            let point = |v: Option<u32>, span: Span| v.map_or(span, |v| (v, v));
            (
                Region {
                    majors: point(m.major, region.majors),
                    minors: point(m.minor, region.minors),
                },
                Val::Value {
                    value: m.value,
                    off: 0,
                },
            )
        })
        .collect();
    // The rest of the region finds nothing.
    let miss = Val::known(0);
    match (by_major, by_minor) {
        (true, true) => {
            let mut rows: Vec<(u32, Vec<u32>)> = Vec::new();
            for m in &found {
                let (ma, mi) = (m.major.expect("keyed"), m.minor.expect("keyed"));
                match rows.last_mut() {
                    Some((r, mins)) if *r == ma => mins.push(mi),
                    _ => rows.push((ma, vec![mi])),
                }
            }
            let majors: Vec<u32> = rows.iter().map(|r| r.0).collect();
            for span in gaps(region.majors, &majors) {
                out.push((
                    Region {
                        majors: span,
                        ..region
                    },
                    miss,
                ));
            }
            for (major, minors) in rows {
                for span in gaps(region.minors, &minors) {
                    out.push((
                        Region {
                            majors: (major, major),
                            minors: span,
                        },
                        miss,
                    ));
                }
            }
        }
        (true, false) => {
            let majors: Vec<u32> = found.iter().map(|m| m.major.expect("keyed")).collect();
            for span in gaps(region.majors, &majors) {
                out.push((
                    Region {
                        majors: span,
                        ..region
                    },
                    miss,
                ));
            }
        }
        (false, true) => {
            let mut minors: Vec<u32> = found.iter().map(|m| m.minor.expect("keyed")).collect();
            minors.sort_unstable();
            for span in gaps(region.minors, &minors) {
                out.push((
                    Region {
                        minors: span,
                        ..region
                    },
                    miss,
                ));
            }
        }
        (false, false) => unreachable!("a key with no known byte has a field"),
    }
    Ok(out)
}

/// `span` without the sorted `points`, as ranges.
fn gaps(span: Span, points: &[u32]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut next = u64::from(span.0);
    for &p in points {
        if u64::from(p) > next {
            out.push((next as u32, p - 1));
        }
        next = next.max(u64::from(p) + 1);
    }
    if next <= u64::from(span.1) {
        out.push((next as u32, span.1));
    }
    out
}
