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
