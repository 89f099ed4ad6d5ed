//! `tree`: binary searches instead of a chain; cost grows with the log of
//! the rule count.
//!
//! Exceptions are unique per (type, major, minor), so the ones that can
//! match a request are exactly those keyed (major, minor), (major, `*`),
//! (`*`, minor) and (`*`, `*`). Each exception contributes a fixed set of
//! access masks, an 8-bit map over the masks 0..=7: in DENY mode the masks
//! it covers (allowed if any applicable exception covers), in ALLOW mode the
//! masks it shares a bit with (denied if any does). The verdict is one bit
//! of the OR of the four contributions, so the program does a binary search
//! over majors (a major's node ORs its `major:*` constant, then searches its
//! minors), one over the minors of `*:minor` exceptions, ORs constants into
//! r6 and tests bit `access` at the end.
//! The code is linear in the rule count; a request runs O(log n) of it.
//!
//! In ALLOW mode the kernel also treats a requested ~0 as a wildcard; such
//! a request can match exceptions of any number, so it is answered from
//! per-minor and per-major aggregates instead.
//!
//! Every search falls through to its end: a matching leaf ORs its constant
//! and skips only its siblings, so jumps stay short; the assembler puts
//! trampolines behind the few that span more than 16 bits can say.

use std::collections::BTreeMap;

use crate::asm::{Asm, Cond, Width};
use crate::device::{Access, Behavior, DeviceType, Exception, WILDCARD};
use crate::insn::{op, Program, Reg, R0, R6};
use crate::rules::{Rule, RuleSet};
use crate::strategy::linear::{load_context, ACCESS, MAJOR, MINOR, TYPE};
use crate::strategy::{CompileError, Strategy};

pub struct Tree;

/// Searches over at most this many values are a plain run of compares.
const CHAIN: usize = 4;

/// The accumulated access-mask map.
const ACC: Reg = R6;

/// The masks `ex` contributes: covered ones (DENY) or overlapping ones (ALLOW).
fn contribution(behavior: Behavior, ex: &Exception) -> u8 {
    Access::every()
        .filter(|&a| match behavior {
            Behavior::Deny => ex.access.contains(a),
            Behavior::Allow => ex.access.intersects(a),
        })
        .fold(0, |map, a| map | 1 << a.bits())
}

/// A search over one field: for each value, what to do when it matches.
enum Leaf {
    Or(u8),
    /// OR the constant, then search the next field.
    Then(u8, Reg, BTreeMap<u32, Leaf>),
}

fn emit_leaf(a: &mut Asm, leaf: &Leaf) {
    match leaf {
        Leaf::Or(map) => emit_or(a, *map),
        Leaf::Then(map, field, values) => {
            emit_or(a, *map);
            search(a, *field, values);
        }
    }
}

/// Runs the leaf of the value `field` holds, if any, then falls through.
fn emit_search(a: &mut Asm, field: Reg, values: &[(&u32, &Leaf)]) {
    if values.len() <= CHAIN {
        for (&v, leaf) in values {
            let skip = a.new_label();
            a.jmp_imm(Width::W32, Cond::Ne, field, v as i32, skip);
            emit_leaf(a, leaf);
            a.bind(skip);
        }
        return;
    }
    let mid = values.len() / 2;
    let (right, end) = (a.new_label(), a.new_label());
    a.jmp_imm(
        Width::W32,
        Cond::Gt,
        field,
        *values[mid - 1].0 as i32,
        right,
    );
    emit_search(a, field, &values[..mid]);
    a.ja(end);
    a.bind(right);
    emit_search(a, field, &values[mid..]);
    a.bind(end);
}

fn or_into(map: &mut BTreeMap<u32, Leaf>, key: u32, bits: u8) {
    if let Leaf::Or(m) = map.entry(key).or_insert(Leaf::Or(0)) {
        *m |= bits;
    }
}

fn emit_or(a: &mut Asm, bits: u8) {
    if bits != 0 {
        a.alu_imm(Width::W32, op::OR, ACC, i32::from(bits));
    }
}

fn search(a: &mut Asm, field: Reg, map: &BTreeMap<u32, Leaf>) {
    emit_search(a, field, &map.iter().collect::<Vec<_>>());
}

/// r0 = the verdict from the accumulated map and the access mask; exit.
fn emit_verdict(a: &mut Asm, behavior: Behavior) {
    a.mov_reg(Width::W64, R0, ACC);
    if behavior == Behavior::Allow {
        // The map holds denied masks.
        a.alu_imm(Width::W64, op::XOR, R0, 0xff);
    }
    a.alu_reg(Width::W64, op::RSH, R0, ACCESS);
    a.alu_imm(Width::W64, op::AND, R0, 1);
    a.exit();
}

/// Labels of the ~0-request code of one type (ALLOW mode only).
struct Wild {
    major: crate::asm::Label,
    minor: crate::asm::Label,
}

/// The four key forms of one type's exceptions, OR-ed, then the verdict.
fn emit_main(a: &mut Asm, behavior: Behavior, exs: &[&Exception], wild: Option<&Wild>) {
    let contrib = |e: &Exception| contribution(behavior, e);
    let mut exact: BTreeMap<u32, BTreeMap<u32, Leaf>> = BTreeMap::new();
    let mut any_minor = BTreeMap::new();
    let mut any_major = BTreeMap::new();
    let mut any_both = 0u8;
    for e in exs.iter().filter(|e| contrib(e) != 0) {
        match (e.major == WILDCARD, e.minor == WILDCARD) {
            (false, false) => or_into(exact.entry(e.major).or_default(), e.minor, contrib(e)),
            (false, true) => or_into(&mut any_minor, e.major, contrib(e)),
            (true, false) => or_into(&mut any_major, e.minor, contrib(e)),
            (true, true) => any_both |= contrib(e),
        }
    }
    if let Some(w) = wild {
        a.jmp_imm(Width::W32, Cond::Eq, MAJOR, WILDCARD as i32, w.major);
        a.jmp_imm(Width::W32, Cond::Eq, MINOR, WILDCARD as i32, w.minor);
    }
    // One search over majors serves (major, minor) and (major, *): a major's
    // node ORs its `major:*` constant, then searches its minors.
    let mut by_major = any_minor;
    for (ma, mins) in exact {
        let or = match by_major.remove(&ma) {
            Some(Leaf::Or(m)) => m,
            _ => 0,
        };
        by_major.insert(ma, Leaf::Then(or, MINOR, mins));
    }
    search(a, MAJOR, &by_major);
    search(a, MINOR, &any_major);
    emit_or(a, any_both);
    emit_verdict(a, behavior);
}

/// ALLOW mode: a requested ~0 major matches every major, a ~0 minor every
/// minor; answered from aggregates over the type's exceptions.
fn emit_wild(a: &mut Asm, behavior: Behavior, exs: &[&Exception], wild: &Wild) {
    let mut by_minor = BTreeMap::new();
    let mut by_major = BTreeMap::new();
    let (mut minor_any, mut major_any, mut all) = (0u8, 0u8, 0u8);
    for e in exs {
        let c = contribution(behavior, e);
        all |= c;
        if e.minor == WILDCARD {
            minor_any |= c;
        } else {
            or_into(&mut by_minor, e.minor, c);
        }
        if e.major == WILDCARD {
            major_any |= c;
        } else {
            or_into(&mut by_major, e.major, c);
        }
    }
    a.bind(wild.major);
    let only_major = a.new_label();
    a.jmp_imm(Width::W32, Cond::Ne, MINOR, WILDCARD as i32, only_major);
    emit_or(a, all);
    emit_verdict(a, behavior);
    a.bind(only_major);
    search(a, MINOR, &by_minor);
    emit_or(a, minor_any);
    emit_verdict(a, behavior);
    a.bind(wild.minor);
    search(a, MAJOR, &by_major);
    emit_or(a, major_any);
    emit_verdict(a, behavior);
}

pub fn compile_set(set: &RuleSet) -> Result<Program, CompileError> {
    let mut a = Asm::new();
    load_context(&mut a);
    a.mov_imm(Width::W64, ACC, 0);
    let types = [DeviceType::Char, DeviceType::Block];
    let entries = [a.new_label(), a.new_label()];
    // A request of neither type matches nothing (the kernel never sends
    // one). Only access bits 0..2 can overlap a rule's; in DENY mode a
    // higher bit can never be covered, so such a request matches nothing.
    let no_match = a.new_label();
    match set.behavior {
        Behavior::Allow => {
            a.alu_imm(Width::W32, op::AND, ACCESS, 7);
        }
        Behavior::Deny => {
            a.jmp_imm(Width::W32, Cond::Gt, ACCESS, 7, no_match);
        }
    }
    for (ty, entry) in types.iter().zip(entries) {
        a.jmp_imm(Width::W32, Cond::Eq, TYPE, ty.code() as i32, entry);
    }
    a.bind(no_match);
    emit_verdict(&mut a, set.behavior);
    for (&ty, entry) in types.iter().zip(entries) {
        let exs: Vec<&Exception> = set.exceptions.iter().filter(|e| e.ty == ty).collect();
        let wild = (set.behavior == Behavior::Allow).then(|| Wild {
            major: a.new_label(),
            minor: a.new_label(),
        });
        a.bind(entry);
        emit_main(&mut a, set.behavior, &exs, wild.as_ref());
        if let Some(w) = &wild {
            emit_wild(&mut a, set.behavior, &exs, w);
        }
    }
    Ok(Program::new(a.finish()?))
}

impl Strategy for Tree {
    fn name(&self) -> &'static str {
        "tree"
    }
    fn summary(&self) -> &'static str {
        "binary searches per key form (exact, major:*, *:minor), access-mask maps ORed, one bit tested"
    }
    fn is_own(&self) -> bool {
        true
    }
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError> {
        compile_set(&RuleSet::from_rules(rules))
    }
}
