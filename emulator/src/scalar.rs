//! Scalars for the static verifier: an unsigned interval `[lo, hi]` over the
//! full 64-bit register, plus the kernel's exact ALU semantics for constant
//! folding (`___bpf_prog_run` after the verifier's div/mod fixups).

use devcg_engine::insn::op;

const U32: u64 = u32::MAX as u64;

/// An unsigned interval `lo..=hi` of 64-bit register values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Range {
    pub lo: u64,
    pub hi: u64,
}

impl Range {
    pub const FULL: Range = Range {
        lo: 0,
        hi: u64::MAX,
    };
    pub const FULL32: Range = Range { lo: 0, hi: U32 };

    pub fn new(lo: u64, hi: u64) -> Range {
        debug_assert!(lo <= hi);
        Range { lo, hi }
    }

    pub fn constant(v: u64) -> Range {
        Range { lo: v, hi: v }
    }

    pub fn full(w64: bool) -> Range {
        if w64 {
            Range::FULL
        } else {
            Range::FULL32
        }
    }

    /// Values a load of `bytes` bytes can produce (zero-extended).
    pub fn of_size(bytes: usize) -> Range {
        match bytes {
            8 => Range::FULL,
            n => Range::new(0, (1u64 << (8 * n)) - 1),
        }
    }

    pub fn as_const(self) -> Option<u64> {
        (self.lo == self.hi).then_some(self.lo)
    }

    pub fn union(self, other: Range) -> Range {
        Range::new(self.lo.min(other.lo), self.hi.max(other.hi))
    }

    /// The low 32 bits as an interval: exact when the value fits in 32 bits.
    pub fn low32(self) -> Range {
        if self.hi <= U32 {
            self
        } else {
            Range::FULL32
        }
    }
}

/// `0b0..01..1` covering every bit set in `x`.
fn ones_below(x: u64) -> u64 {
    if x == 0 {
        0
    } else {
        u64::MAX >> x.leading_zeros()
    }
}

/// The kernel's result of `dst = dst <op> src` for known operands; `src` is
/// already the operand the kernel uses (sign-extended imm for 64-bit ops,
/// `(u32) imm` for 32-bit ones). Shifts by at least the width are refused
/// for immediates by the verifier and masked for registers by the
/// interpreter. Division by zero follows the verifier's patch: div → 0,
/// mod → dst unchanged (zero-extended for the 32-bit form).
pub(crate) fn eval_alu(operation: u8, w64: bool, dst: u64, src: u64) -> u64 {
    if w64 {
        match operation {
            op::ADD => dst.wrapping_add(src),
            op::SUB => dst.wrapping_sub(src),
            op::MUL => dst.wrapping_mul(src),
            op::DIV => dst.checked_div(src).unwrap_or(0),
            op::MOD => dst.checked_rem(src).unwrap_or(dst),
            op::OR => dst | src,
            op::AND => dst & src,
            op::XOR => dst ^ src,
            op::LSH => dst << (src & 63),
            op::RSH => dst >> (src & 63),
            op::ARSH => ((dst as i64) >> (src & 63)) as u64,
            op::MOV => src,
            op::NEG => (dst as i64).wrapping_neg() as u64,
            _ => unreachable!("not an ALU operation: {operation:#x}"),
        }
    } else {
        let (d, s) = (dst as u32, src as u32);
        u64::from(match operation {
            op::ADD => d.wrapping_add(s),
            op::SUB => d.wrapping_sub(s),
            op::MUL => d.wrapping_mul(s),
            op::DIV => d.checked_div(s).unwrap_or(0),
            op::MOD => d.checked_rem(s).unwrap_or(d),
            op::OR => d | s,
            op::AND => d & s,
            op::XOR => d ^ s,
            op::LSH => d << (s & 31),
            op::RSH => d >> (s & 31),
            op::ARSH => ((d as i32) >> (s & 31)) as u32,
            op::MOV => s,
            op::NEG => (d as i32).wrapping_neg() as u32,
            _ => unreachable!("not an ALU operation: {operation:#x}"),
        })
    }
}

/// Whether `a <cond> b` holds at the width, as the kernel compares: 32-bit
/// jumps see the low halves, signed conditions their two's complement.
pub(crate) fn eval_cond(cond: u8, w64: bool, a: u64, b: u64) -> bool {
    let (a, b) = if w64 {
        (a, b)
    } else {
        (a & 0xffff_ffff, b & 0xffff_ffff)
    };
    let (sa, sb) = if w64 {
        (a as i64, b as i64)
    } else {
        (i64::from(a as u32 as i32), i64::from(b as u32 as i32))
    };
    match cond {
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
        _ => unreachable!("not a condition: {cond:#x}"),
    }
}

/// Interval of `dst <op> src` (both already reduced to the operation's
/// width: 32-bit operands are their `low32()`).
pub(crate) fn alu(operation: u8, w64: bool, a: Range, b: Range) -> Range {
    let (a, b) = if w64 { (a, b) } else { (a.low32(), b.low32()) };
    if let (Some(x), Some(y)) = (a.as_const(), b.as_const()) {
        return Range::constant(eval_alu(operation, w64, x, y));
    }
    let bits = if w64 { 64 } else { 32 };
    let full = Range::full(w64);
    let sign = 1u64 << (bits - 1);
    let r = match operation {
        op::MOV => b,
        op::ADD => {
            let (lo, o1) = a.lo.overflowing_add(b.lo);
            let (hi, o2) = a.hi.overflowing_add(b.hi);
            if o1 == o2 && lo <= hi {
                Range::new(lo, hi)
            } else {
                full
            }
        }
        op::SUB => {
            if a.lo >= b.hi {
                Range::new(a.lo - b.hi, a.hi - b.lo)
            } else if w64 && a.hi < b.lo {
                // Every difference borrows: the wrapped values keep their order.
                Range::new(a.lo.wrapping_sub(b.hi), a.hi.wrapping_sub(b.lo))
            } else {
                full
            }
        }
        op::MUL => match a.hi.checked_mul(b.hi) {
            Some(hi) => Range::new(a.lo * b.lo, hi),
            None => full,
        },
        op::DIV => match a.hi.checked_div(b.lo) {
            Some(hi) => Range::new(a.lo / b.hi, hi),
            // A zero divisor is possible: x / 0 = 0.
            None => Range::new(0, a.hi),
        },
        op::MOD => {
            if b.lo > 0 {
                Range::new(0, a.hi.min(b.hi - 1))
            } else {
                Range::new(0, a.hi)
            }
        }
        op::AND => Range::new(0, a.hi.min(b.hi)),
        op::OR => Range::new(a.lo.max(b.lo), ones_below(a.hi | b.hi)),
        op::XOR => Range::new(0, ones_below(a.hi | b.hi)),
        op::LSH => match b.as_const() {
            Some(k) => {
                let k = k & (bits - 1);
                if a.hi.leading_zeros() as u64 >= k {
                    Range::new(a.lo << k, a.hi << k)
                } else {
                    full
                }
            }
            None => full,
        },
        op::RSH => match b.as_const() {
            Some(k) => {
                let k = k & (bits - 1);
                Range::new(a.lo >> k, a.hi >> k)
            }
            None => Range::new(0, a.hi),
        },
        op::ARSH => {
            if a.hi < sign {
                // Non-negative: an arithmetic shift is a logical one.
                alu(op::RSH, w64, a, b)
            } else if let (Some(k), true) = (b.as_const(), a.lo >= sign) {
                // All negative: order is kept.
                Range::new(
                    eval_alu(op::ARSH, w64, a.lo, k),
                    eval_alu(op::ARSH, w64, a.hi, k),
                )
            } else {
                full
            }
        }
        op::NEG => full,
        _ => full,
    };
    if w64 || r.hi <= U32 {
        r
    } else {
        Range::FULL32
    }
}

/// What the kernel's verifier is sure to know after `dst <op> src`, in
/// every version this emulator stands in for: it tracks ADD, SUB, AND, OR
/// and XOR always, MUL and shifts only by a constant, and nothing after
/// DIV and MOD (tracked only since 2025). Knowing more than the kernel
/// would let the emulator accept programs the kernel refuses, e.g. at the
/// exit's `r0 in [0, 1]` check.
pub(crate) fn tracked_alu(operation: u8, w64: bool, a: Range, b: Range) -> Range {
    let b_w = if w64 { b } else { b.low32() };
    let b_const = b_w.as_const().is_some();
    let width = if w64 { 64 } else { 32 };
    match operation {
        // A shift by a register holding at least the width: the kernel's
        // verifier marks the result unknown (the interpreter masks it).
        op::LSH | op::RSH | op::ARSH if b_w.hi >= width => Range::FULL,
        // OR and XOR of unknowns: the kernel's tnums bound the result by
        // the operands' highest bits, no tighter than `alu`'s ones_below.
        op::MOV | op::ADD | op::SUB | op::AND | op::OR | op::XOR => alu(operation, w64, a, b),
        op::MUL | op::LSH | op::RSH | op::ARSH if b_const => alu(operation, w64, a, b),
        _ => Range::FULL,
    }
}

/// What a conditional jump allows on each edge: `None` if the edge cannot
/// be taken, else the refined intervals of (dst, src).
pub(crate) type Edge = Option<(Range, Range)>;

/// Unsigned comparison `a <cond> b` with `cond` one of JEQ, JNE, JGT, JGE,
/// JLT, JLE, JSET. Returns (taken, fall-through).
fn ucmp(cond: u8, a: Range, b: Range) -> (Edge, Edge) {
    match cond {
        op::JGT => {
            let taken = (a.hi > b.lo).then(|| {
                (
                    Range::new(a.lo.max(b.lo + 1), a.hi),
                    Range::new(b.lo, b.hi.min(a.hi - 1)),
                )
            });
            let fall = (a.lo <= b.hi).then(|| {
                (
                    Range::new(a.lo, a.hi.min(b.hi)),
                    Range::new(b.lo.max(a.lo), b.hi),
                )
            });
            (taken, fall)
        }
        op::JGE => {
            let taken = (a.hi >= b.lo).then(|| {
                (
                    Range::new(a.lo.max(b.lo), a.hi),
                    Range::new(b.lo, b.hi.min(a.hi)),
                )
            });
            let fall = (a.lo < b.hi).then(|| {
                (
                    Range::new(a.lo, a.hi.min(b.hi - 1)),
                    Range::new(b.lo.max(a.lo + 1), b.hi),
                )
            });
            (taken, fall)
        }
        op::JLT => {
            let (t, f) = ucmp(op::JGT, b, a);
            (t.map(|(x, y)| (y, x)), f.map(|(x, y)| (y, x)))
        }
        op::JLE => {
            let (t, f) = ucmp(op::JGE, b, a);
            (t.map(|(x, y)| (y, x)), f.map(|(x, y)| (y, x)))
        }
        op::JEQ => {
            let lo = a.lo.max(b.lo);
            let hi = a.hi.min(b.hi);
            let taken = (lo <= hi).then(|| (Range::new(lo, hi), Range::new(lo, hi)));
            let same_const = a.as_const().is_some() && a.as_const() == b.as_const();
            let fall = (!same_const).then(|| (exclude(a, b), exclude(b, a)));
            (taken, fall)
        }
        op::JNE => {
            let (t, f) = ucmp(op::JEQ, a, b);
            (f, t)
        }
        op::JSET => match (a.as_const(), b.as_const()) {
            (Some(x), Some(y)) => {
                if x & y != 0 {
                    (Some((a, b)), None)
                } else {
                    (None, Some((a, b)))
                }
            }
            _ => {
                let never = ones_below(a.hi) & ones_below(b.hi) == 0;
                ((!never).then_some((a, b)), Some((a, b)))
            }
        },
        _ => unreachable!("not an unsigned condition: {cond:#x}"),
    }
}

/// `a` without the value of `b` when `b` is a constant at an edge of `a`.
fn exclude(a: Range, b: Range) -> Range {
    match b.as_const() {
        Some(k) if k == a.lo && a.lo < a.hi => Range::new(a.lo + 1, a.hi),
        Some(k) if k == a.hi && a.lo < a.hi => Range::new(a.lo, a.hi - 1),
        _ => a,
    }
}

fn unsigned_of(cond: u8) -> u8 {
    match cond {
        op::JSGT => op::JGT,
        op::JSGE => op::JGE,
        op::JSLT => op::JLT,
        op::JSLE => op::JLE,
        c => c,
    }
}

fn is_signed(cond: u8) -> bool {
    matches!(cond, op::JSGT | op::JSGE | op::JSLT | op::JSLE)
}

/// A conditional jump on scalars `a <cond> b` at width 64 or 32. Returns the
/// feasible edges with refined intervals. Where the width or signedness
/// makes intervals incomparable, both edges stay feasible, unrefined.
pub(crate) fn branch(cond: u8, w64: bool, a: Range, b: Range) -> (Edge, Edge) {
    let both = (Some((a, b)), Some((a, b)));
    // The operands as the comparison sees them; refinement only flows back
    // to a register whose full value is what was compared.
    let (ca, cb) = if w64 { (a, b) } else { (a.low32(), b.low32()) };
    let a_exact = w64 || a.hi <= U32;
    let b_exact = w64 || b.hi <= U32;
    let sign = if w64 { 1u64 << 63 } else { 1u64 << 31 };
    let (taken, fall) = if is_signed(cond) {
        let a_nonneg = ca.hi < sign;
        let b_nonneg = cb.hi < sign;
        let a_neg = ca.lo >= sign;
        let b_neg = cb.lo >= sign;
        if a_nonneg && b_nonneg || a_neg && b_neg {
            // Same sign throughout: signed order is unsigned order.
            ucmp(unsigned_of(cond), ca, cb)
        } else if a_nonneg && b_neg || a_neg && b_nonneg {
            let greater = a_nonneg; // a s> b on every value
            let holds = match cond {
                op::JSGT | op::JSGE => greater,
                _ => !greater,
            };
            if holds {
                (Some((ca, cb)), None)
            } else {
                (None, Some((ca, cb)))
            }
        } else {
            return both;
        }
    } else {
        ucmp(cond, ca, cb)
    };
    let back = |e: Edge| e.map(|(x, y)| (if a_exact { x } else { a }, if b_exact { y } else { b }));
    (back(taken), back(fall))
}

/// `(s<bits>) a`, sign-extended to 64 bits (`w64`) or to 32 bits and then
/// zero-extended. Exact for constants and for values that stay
/// nonnegative; else everything the width allows.
pub(crate) fn movsx(a: Range, w64: bool, bits: u32) -> Range {
    let ext = |v: u64| -> u64 {
        let shift = 64 - bits;
        let wide = ((v << shift) as i64 >> shift) as u64;
        if w64 {
            wide
        } else {
            wide & U32
        }
    };
    if let Some(c) = a.as_const() {
        return Range::constant(ext(c));
    }
    if a.hi < 1u64 << (bits - 1) {
        return a;
    }
    Range::full(w64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn holds(cond: u8, w64: bool, x: u64, y: u64) -> bool {
        let (x, y) = if w64 {
            (x, y)
        } else {
            (x as u32 as u64, y as u32 as u64)
        };
        let (sx, sy) = if w64 {
            (x as i64, y as i64)
        } else {
            (x as u32 as i32 as i64, y as u32 as i32 as i64)
        };
        match cond {
            op::JEQ => x == y,
            op::JNE => x != y,
            op::JGT => x > y,
            op::JGE => x >= y,
            op::JLT => x < y,
            op::JLE => x <= y,
            op::JSET => x & y != 0,
            op::JSGT => sx > sy,
            op::JSGE => sx >= sy,
            op::JSLT => sx < sy,
            op::JSLE => sx <= sy,
            _ => unreachable!(),
        }
    }

    fn pick(r: Range, t: u64) -> u64 {
        if r.hi - r.lo == u64::MAX {
            t
        } else {
            r.lo + t % (r.hi - r.lo + 1)
        }
    }

    fn range() -> impl Strategy<Value = Range> {
        prop_oneof![
            (any::<u64>(), any::<u64>()).prop_map(|(a, b)| Range::new(a.min(b), a.max(b))),
            (0u64..20, 0u64..20).prop_map(|(a, b)| Range::new(a.min(b), a.max(b))),
            any::<u64>().prop_map(Range::constant),
            (0u64..=u32::MAX as u64).prop_map(Range::constant),
        ]
    }

    const CONDS: [u8; 11] = [
        op::JEQ,
        op::JNE,
        op::JGT,
        op::JGE,
        op::JLT,
        op::JLE,
        op::JSET,
        op::JSGT,
        op::JSGE,
        op::JSLT,
        op::JSLE,
    ];
    const OPS: [u8; 12] = [
        op::ADD,
        op::SUB,
        op::MUL,
        op::DIV,
        op::MOD,
        op::OR,
        op::AND,
        op::XOR,
        op::LSH,
        op::RSH,
        op::ARSH,
        op::MOV,
    ];

    proptest! {
        /// Every concrete result lies in the computed interval.
        #[test]
        fn alu_interval_is_sound(o in 0usize..12, w64: bool, a in range(), b in range(), t1: u64, t2: u64) {
            let operation = OPS[o];
            let (x, y) = (pick(a, t1), pick(b, t2));
            let r = alu(operation, w64, a, b);
            let v = eval_alu(operation, w64, x, y);
            prop_assert!(r.lo <= v && v <= r.hi, "{operation:#x} w64={w64} {a:?} {b:?}: {x:#x},{y:#x} -> {v:#x} not in {r:?}");
        }

        /// A concrete pair that takes an edge is inside that edge's refinement.
        #[test]
        fn branch_refinement_is_sound(c in 0usize..11, w64: bool, a in range(), b in range(), t1: u64, t2: u64) {
            let cond = CONDS[c];
            let (x, y) = (pick(a, t1), pick(b, t2));
            let (taken, fall) = branch(cond, w64, a, b);
            let edge = if holds(cond, w64, x, y) { taken } else { fall };
            let (ra, rb) = edge.expect("a feasible concrete pair has its edge");
            prop_assert!(ra.lo <= x && x <= ra.hi);
            prop_assert!(rb.lo <= y && y <= rb.hi);
        }

    }
}
