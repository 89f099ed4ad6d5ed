//! `linear`: a compare chain over the normalized v1 state, one chain per
//! device type.
//!
//! The context fields are 32-bit, so every comparison is a JMP32: a 64-bit
//! compare against an immediate would sign-extend majors of 2^31 and above
//! and never match.
//!
//! * DENY behavior (an allow list): allowed iff one exception covers the
//!   request completely: same type, each number equal or `*` in the rule,
//!   and no requested bit outside the rule's access.
//! * ALLOW behavior (a deny list): denied iff one exception matches
//!   partially: same type, each number equal or `*` on *either* side (the
//!   kernel treats a requested ~0 as a wildcard too), and any shared bit.
//!
//! Both verdicts are order-free, so the type is tested once, at the top,
//! and each type gets its own chain.
//!
//! Shaped for the kernel verifier. A test that falls through learns the
//! field's value; a path that carries that knowledge down the chain decides
//! every later test on the field statically, marks it precise and so defeats
//! state pruning at every later rule: about N²/2 steps, over the verifier's
//! 1M at 1,000 rules. So a rule that fails after its first test leaves
//! through a `restore` block that reloads the fields it tested; every path
//! then reaches the next rule with the same unknown fields and the verifier
//! walks the chain once. The common miss, the rule's first test, jumps
//! straight on.
//!
//! What remains is the verifier's stack of pending branches (8,192): each
//! rule leaves about one pending (two for a deny list) while the verifier
//! walks on, so 6.18 loads about 4,000 rules of an allow list and 2,000 of
//! a deny list. Past that, `tree` and `map`.

use crate::asm::{Asm, Cond, Label, Size, Width};
use crate::device::{Behavior, DeviceType, Exception, WILDCARD};
use crate::insn::{op, Program, Reg, R1, R2, R3, R4, R5};
use crate::rules::{Rule, RuleSet};
use crate::strategy::{ctx, CompileError, Strategy};

pub struct Linear;

pub(crate) const TYPE: Reg = R2;
pub(crate) const ACCESS: Reg = R3;
pub(crate) const MAJOR: Reg = R4;
pub(crate) const MINOR: Reg = R5;

/// r2 = type, r3 = access, r4 = major, r5 = minor.
pub fn load_context(a: &mut Asm) {
    a.ldx(Size::W, TYPE, R1, ctx::ACCESS_TYPE);
    a.alu_imm(Width::W32, op::AND, TYPE, 0xffff);
    load_access(a);
    load_number(a, MAJOR);
    load_number(a, MINOR);
}

fn load_access(a: &mut Asm) {
    a.ldx(Size::W, ACCESS, R1, ctx::ACCESS_TYPE);
    a.alu_imm(Width::W32, op::RSH, ACCESS, 16);
}

fn load_number(a: &mut Asm, field: Reg) {
    let off = if field == MAJOR {
        ctx::MAJOR
    } else {
        ctx::MINOR
    };
    a.ldx(Size::W, field, R1, off);
}

/// One test of a rule, in the order emitted.
#[derive(Clone, Copy)]
enum Test {
    Number { field: Reg, want: u32 },
    Access,
}

/// The tests of `ex` other than its access: `*` always matches.
fn number_tests(ex: &Exception) -> impl Iterator<Item = Test> {
    [(MAJOR, ex.major), (MINOR, ex.minor)]
        .into_iter()
        .filter(|&(_, want)| want != WILDCARD)
        .map(|(field, want)| Test::Number { field, want })
}

/// Reloads every field a rule's tests may have narrowed, then goes on.
fn restore(a: &mut Asm, tests: &[Test]) {
    for t in tests {
        match *t {
            Test::Number { field, .. } => load_number(a, field),
            Test::Access => load_access(a),
        }
    }
}

/// Jumps to `miss` unless the field equals `want`. With `request_wildcard`,
/// a requested ~0 matches as well.
fn number_test(a: &mut Asm, field: Reg, want: u32, request_wildcard: bool, miss: Label) {
    if request_wildcard {
        let hit = a.new_label();
        a.jmp_imm(Width::W32, Cond::Eq, field, want as i32, hit);
        a.jmp_imm(Width::W32, Cond::Ne, field, WILDCARD as i32, miss);
        a.bind(hit);
    } else {
        a.jmp_imm(Width::W32, Cond::Ne, field, want as i32, miss);
    }
}

/// Allowed iff some exception covers the request completely.
fn allow_chain(a: &mut Asm, exceptions: &[&Exception]) {
    for ex in exceptions {
        let tests: Vec<Test> = number_tests(ex).chain([Test::Access]).collect();
        let next = a.new_label();
        let narrowed = a.new_label();
        for (i, t) in tests.iter().enumerate() {
            let miss = if i == 0 { next } else { narrowed };
            match *t {
                Test::Number { field, want } => number_test(a, field, want, false, miss),
                // Any requested bit outside the rule's access: not covered.
                Test::Access => {
                    a.jmp_imm(
                        Width::W32,
                        Cond::Set,
                        ACCESS,
                        !i32::from(ex.access.bits()),
                        miss,
                    );
                }
            }
        }
        a.ret(1);
        if tests.len() > 1 {
            a.bind(narrowed);
            restore(a, &tests[..tests.len() - 1]);
        }
        a.bind(next);
    }
    a.ret(0);
}

/// Rules per shared `ret 0` in a deny chain: keeps every jump to it short,
/// so the assembler needs no trampolines however long the chain.
const RULES_PER_DENY: usize = 256;

/// Denied iff some exception matches partially.
fn deny_chain(a: &mut Asm, exceptions: &[&Exception]) {
    for group in exceptions.chunks(RULES_PER_DENY) {
        let deny = a.new_label();
        for ex in group {
            let tests: Vec<Test> = number_tests(ex).collect();
            let next = a.new_label();
            let narrowed = a.new_label();
            for (i, t) in tests.iter().enumerate() {
                let miss = if i == 0 { next } else { narrowed };
                if let Test::Number { field, want } = *t {
                    number_test(a, field, want, true, miss);
                }
            }
            a.jmp_imm(
                Width::W32,
                Cond::Set,
                ACCESS,
                i32::from(ex.access.bits()),
                deny,
            );
            // Falling through, the access test narrowed the access too.
            a.bind(narrowed);
            restore(a, &tests);
            load_access(a);
            a.bind(next);
        }
        let on = a.new_label();
        a.ja(on);
        a.bind(deny);
        a.ret(0);
        a.bind(on);
    }
    a.ret(1);
}

/// The program for a normalized state.
pub fn compile_set(set: &RuleSet) -> Result<Program, CompileError> {
    let mut a = Asm::new();
    load_context(&mut a);
    // An exception without access bits can never match partially, and
    // never covers a request that asks for anything; for one that asks for
    // nothing (access 0) it still does, so the allow list keeps it.
    let keep = |ex: &&Exception| set.behavior == Behavior::Deny || !ex.access.is_empty();
    let chains: Vec<(DeviceType, Vec<&Exception>, Label)> = DeviceType::ALL
        .into_iter()
        .map(|ty| {
            let list: Vec<&Exception> = set
                .exceptions
                .iter()
                .filter(|ex| ex.ty == ty)
                .filter(keep)
                .collect();
            (ty, list, a.new_label())
        })
        .filter(|(_, list, _)| !list.is_empty())
        .collect();
    for (ty, _, start) in &chains {
        a.jmp_imm(Width::W32, Cond::Eq, TYPE, ty.code() as i32, *start);
    }
    // No exception names the request's type: the default.
    let default = match set.behavior {
        Behavior::Deny => 0,
        Behavior::Allow => 1,
    };
    a.ret(default);
    for (_, list, start) in &chains {
        a.bind(*start);
        match set.behavior {
            Behavior::Deny => allow_chain(&mut a, list),
            Behavior::Allow => deny_chain(&mut a, list),
        }
    }
    Ok(Program::new(a.finish()?))
}

impl Strategy for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn summary(&self) -> &'static str {
        "compare chain per device type over the normalized v1 exception list"
    }
    fn is_own(&self) -> bool {
        true
    }
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError> {
        compile_set(&RuleSet::from_rules(rules))
    }
}
