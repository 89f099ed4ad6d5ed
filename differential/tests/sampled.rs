//! The sampled run on a model that diverges: the divergence is found, and
//! the counterexample it reports is shrunk, reproducible and 1-minimal.

use devcg_differential::counterexample::Answer;
use devcg_differential::sampled::{self, program_answer, SampleConfig};
use devcg_engine::{strategy, Request, Rule, RuleFile};
use devcg_oracle::Policy;

fn diverges(name: &str, rules: &[Rule], req: &Request) -> bool {
    let s = strategy::by_name(name).unwrap();
    program_answer(s.as_ref(), rules, req)
        .is_some_and(|a| a != Answer::Verdict(Policy::of(rules).decide(req)))
}

#[test]
fn a_models_divergence_is_shrunk_to_a_minimal_reproducer() {
    let cfg = SampleConfig {
        cases: 400,
        ..SampleConfig::default()
    };
    let mut found = 0;
    for s in strategy::all().iter().filter(|s| !s.is_own()) {
        let report = sampled::run(s.as_ref(), &cfg);
        let Some(ce) = report.counterexample else {
            continue;
        };
        found += 1;
        assert!(report.divergences > 0);
        assert_eq!(ce.kind, "oracle-vs-emulator", "{}: {ce}", s.name());
        let rules = RuleFile::parse("counterexample", &ce.rules.join("\n")).unwrap();
        assert!(
            diverges(s.name(), &rules, &ce.request),
            "{}: not reproducible: {ce}",
            s.name()
        );
        for i in 0..rules.len() {
            let mut fewer = rules.clone();
            fewer.remove(i);
            assert!(
                !diverges(s.name(), &fewer, &ce.request),
                "{}: rule {i} is not needed: {ce}",
                s.name()
            );
        }
    }
    // The models' known divergences (docs/findings.md) show up in 400 lists.
    assert!(found >= 3, "only {found} models diverged");
}
