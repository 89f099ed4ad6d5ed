//! `linear`: a first-match compare chain over the normalized v1 state.
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

use crate::asm::{Asm, Cond, Label, Size, Width};
use crate::device::{Behavior, Exception, WILDCARD};
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
    a.ldx(Size::W, ACCESS, R1, ctx::ACCESS_TYPE);
    a.alu_imm(Width::W32, op::RSH, ACCESS, 16);
    a.ldx(Size::W, MAJOR, R1, ctx::MAJOR);
    a.ldx(Size::W, MINOR, R1, ctx::MINOR);
}

/// Jumps to `miss` unless the field equals `want` (`*` in the rule always
/// matches). With `request_wildcard`, a requested ~0 matches as well.
fn number_test(a: &mut Asm, field: Reg, want: u32, request_wildcard: bool, miss: Label) {
    if want == WILDCARD {
        return;
    }
    if request_wildcard {
        let hit = a.new_label();
        a.jmp_imm(Width::W32, Cond::Eq, field, want as i32, hit);
        a.jmp_imm(Width::W32, Cond::Ne, field, WILDCARD as i32, miss);
        a.bind(hit);
    } else {
        a.jmp_imm(Width::W32, Cond::Ne, field, want as i32, miss);
    }
}

fn allow_list(a: &mut Asm, exceptions: &[Exception]) {
    for ex in exceptions {
        let next = a.new_label();
        a.jmp_imm(Width::W32, Cond::Ne, TYPE, ex.ty.code() as i32, next);
        number_test(a, MAJOR, ex.major, false, next);
        number_test(a, MINOR, ex.minor, false, next);
        // Any requested bit outside the rule's access: not covered.
        a.jmp_imm(
            Width::W32,
            Cond::Set,
            ACCESS,
            !i32::from(ex.access.bits()),
            next,
        );
        a.ret(1);
        a.bind(next);
    }
    a.ret(0);
}

fn deny_list(a: &mut Asm, exceptions: &[Exception]) {
    // An exception without access bits can never match partially.
    let live: Vec<&Exception> = exceptions
        .iter()
        .filter(|ex| !ex.access.is_empty())
        .collect();
    if live.is_empty() {
        // No deny block: the verifier refuses unreachable code.
        a.ret(1);
        return;
    }
    let deny = a.new_label();
    for ex in live {
        let next = a.new_label();
        a.jmp_imm(Width::W32, Cond::Ne, TYPE, ex.ty.code() as i32, next);
        number_test(a, MAJOR, ex.major, true, next);
        number_test(a, MINOR, ex.minor, true, next);
        a.jmp_imm(
            Width::W32,
            Cond::Set,
            ACCESS,
            i32::from(ex.access.bits()),
            deny,
        );
        a.bind(next);
    }
    a.ret(1);
    a.bind(deny);
    a.ret(0);
}

/// The program for a normalized state.
pub fn compile_set(set: &RuleSet) -> Result<Program, CompileError> {
    let mut a = Asm::new();
    load_context(&mut a);
    match set.behavior {
        Behavior::Deny => allow_list(&mut a, &set.exceptions),
        Behavior::Allow => deny_list(&mut a, &set.exceptions),
    }
    Ok(Program::new(a.finish()?))
}

impl Strategy for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn summary(&self) -> &'static str {
        "first-match compare chain over the normalized v1 exception list"
    }
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError> {
        compile_set(&RuleSet::from_rules(rules))
    }
}
