//! The audit, pure side: a program compiled from v1 rules audits back to
//! what the rules mean, and to rules of its own that mean the same.

use devcg_differential::audit::{audit, compare, Enforcement};
use devcg_differential::gen;
use devcg_engine::{strategy, Rule, RuleFile};
use proptest::prelude::*;

fn parse(lines: &[String]) -> Vec<Rule> {
    RuleFile::parse("printed", &lines.join("\n")).expect("the audit prints valid rules")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Lists without empty accesses: `allow c 1:3 ` (only F_OK) is a policy
    /// no writable rule states.
    #[test]
    fn own_programs_audit_to_their_rules_and_back(
        rules in gen::rules_in(&gen::Space { empty_access: false, ..gen::Space::any() }, 8)
    ) {
        for s in strategy::all().iter().filter(|s| s.is_own()) {
            let Ok(program) = s.compile(&rules) else { continue };
            let enforcement = Enforcement { programs: vec![(s.name().into(), program)], v1: None };
            let mut a = audit(&enforcement, &rules).unwrap();
            compare(&mut a, &rules);
            prop_assert!(a.differences.is_empty(), "{}: {:?}", s.name(), a.differences);
            let printed = a.rules.clone();
            prop_assert!(printed.is_some(), "{}: a v1 policy the audit could not write as v1", s.name());
            let printed = parse(&printed.unwrap());
            let mut again = audit(&enforcement, &printed).unwrap();
            compare(&mut again, &printed);
            prop_assert!(again.differences.is_empty(), "{}: printed {:?}: {:?}", s.name(), printed, again.differences);
        }
    }
}
