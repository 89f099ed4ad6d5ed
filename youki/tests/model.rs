//! devcg's model of youki against youki's own generator (the libcgroups
//! crate) on random rule lists: the same instructions, or both refuse.

use devcg_differential::gen;
use devcg_engine::strategy::models::youki;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_model_writes_what_the_crate_writes(rules in gen::rules(12), defaults in any::<bool>()) {
        let from_crate = devcg_youki::compile(&rules, defaults);
        let model = if defaults {
            youki::compile_with_defaults(&rules)
        } else {
            devcg_engine::strategy::by_name("youki").unwrap().compile(&rules)
        };
        match (from_crate, model) {
            (Ok(c), Ok(m)) => prop_assert_eq!(c.insns, m.insns),
            (Err(_), Err(_)) => {}
            (c, m) => prop_assert!(false, "crate {:?}, model {:?}", c.map(|p| p.len()), m.map(|p| p.len())),
        }
    }
}
