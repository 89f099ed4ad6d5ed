//! The differential as a property: for random rule lists (both modes,
//! wildcards, every access subset, boundary numbers) and random requests,
//! the oracle and the emulated `linear` program agree. A failure shows the
//! shrunk rule list and the request.

use devcg_differential::counterexample::Answer;
use devcg_differential::gen;
use devcg_differential::sampled::program_answer;
use devcg_engine::strategy;
use devcg_oracle::Policy;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn oracle_agrees_with_every_own_strategy((rules, requests) in gen::case(12, 32)) {
        let oracle = Policy::of(&rules);
        for s in strategy::all().iter().filter(|s| s.is_own()) {
            for req in &requests {
                let want = Answer::Verdict(oracle.decide(req));
                let got = program_answer(s.as_ref(), &rules, req);
                prop_assert_eq!(
                    got.as_ref(), Some(&want),
                    "strategy {} on {} with rules:\n{}",
                    s.name(), req,
                    rules.iter().map(|r| format!("  {r}")).collect::<Vec<_>>().join("\n")
                );
            }
        }
    }
}
