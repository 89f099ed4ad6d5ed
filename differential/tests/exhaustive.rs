//! Exhaustive mode proves devcg's own strategies equivalent to the oracle on
//! rule sets of 1, 10, 100 and 1,000 rules, and finds a planted divergence.

use devcg_differential::exhaustive;
use devcg_differential::gen;
use devcg_engine::asm::{Asm, Cond, Width};
use devcg_engine::insn::{R2, R4, R5};

use devcg_engine::{strategy, Program, Rule, RuleFile};
use proptest::strategy::{Strategy as _, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rstest::rstest;

fn random_rules(len: usize, seed: u8) -> Vec<Rule> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let strat = (
        proptest::bool::ANY,
        proptest::collection::vec(gen::rule(), len),
    );
    let (allow_list, mut rules) = strat.new_tree(&mut runner).unwrap().current();
    if allow_list {
        rules[0] = Rule::new(devcg_engine::RuleKind::Deny, "a").unwrap();
    }
    rules
}

#[rstest]
fn own_strategies_are_equivalent(#[values(1, 10, 100, 1000)] len: usize, #[values(1, 2)] seed: u8) {
    let rules = random_rules(len, seed);
    for s in strategy::all().iter().filter(|s| s.is_own()) {
        let program = s.compile(&rules).unwrap();
        let outcome = exhaustive::run(&rules, &program).unwrap();
        assert!(
            outcome.equivalent(),
            "{} on {len} rules: {:?}",
            s.name(),
            &outcome.differences[..3.min(outcome.differences.len())]
        );
        assert!(outcome.classes >= 16, "{} classes", outcome.classes);
    }
}

#[test]
fn finds_a_planted_divergence() {
    // A program that allows exactly c 1:3 with any access, against rules
    // that allow c 1:3 only for reading.
    let rules = RuleFile::parse("planted", "deny a\nallow c 1:3 r\n").unwrap();
    let mut a = Asm::new();
    let deny = a.new_label();
    devcg_engine::strategy::linear::load_context(&mut a);
    a.jmp_imm(Width::W32, Cond::Ne, R2, 2, deny);
    a.jmp_imm(Width::W32, Cond::Ne, R4, 1, deny);
    a.jmp_imm(Width::W32, Cond::Ne, R5, 3, deny);
    a.ret(1);
    a.bind(deny);
    a.ret(0);
    let program = Program::new(a.finish().unwrap());
    let outcome = exhaustive::run(&rules, &program).unwrap();
    let diffs: Vec<&str> = outcome
        .differences
        .iter()
        .map(|d| d.request.as_str())
        .collect();
    // Everything but r and - on c 1:3 is allowed by the program and denied
    // by the rules: w, rw, m, rm, wm, rwm.
    assert_eq!(diffs.len(), 6, "{diffs:?}");
    assert!(
        diffs.contains(&"c 1:3 w") && diffs.contains(&"c 1:3 rwm"),
        "{diffs:?}"
    );
}

/// A program that exhausts its loop budget whatever the request is shown
/// to fail once, after the first classes, not decided class by class.
#[test]
fn a_program_that_always_fails_stops_the_run_early() {
    use devcg_engine::insn::{op, R0};
    let mut a = Asm::new();
    a.mov_imm(Width::W64, R0, 0);
    let top = a.new_label();
    a.bind(top);
    a.alu_imm(Width::W64, op::ADD, R0, 1);
    a.jmp_imm(Width::W64, Cond::Ne, R0, 0, top);
    a.ret(1);
    let looping = Program::new(a.finish().unwrap());
    let rules = random_rules(150, 3);
    let outcome = exhaustive::run(&rules, &looping).unwrap();
    let why = outcome.stopped.as_deref().expect("stopped early");
    assert!(why.contains("with the same error"), "{why}");
    assert_eq!(outcome.classes, 256, "{why}");
    assert!(!outcome.equivalent());
    // A program that fails only on some requests is decided in full.
    let mut a = Asm::new();
    let fine = a.new_label();
    a.ldx(devcg_engine::asm::Size::W, R2, devcg_engine::insn::R1, 4);
    a.jmp_imm(Width::W32, Cond::Ne, R2, 7, fine);
    a.mov_imm(Width::W64, R0, 0);
    let top = a.new_label();
    a.bind(top);
    a.alu_imm(Width::W64, op::ADD, R0, 1);
    a.jmp_imm(Width::W64, Cond::Ne, R0, 0, top);
    a.bind(fine);
    a.ret(1);
    let sometimes = Program::new(a.finish().unwrap());
    let outcome = exhaustive::run(&rules, &sometimes).unwrap();
    assert!(outcome.stopped.is_none());
    assert!(outcome.classes > 256);
}
