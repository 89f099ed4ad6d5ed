//! The one shrinker: drop rules while the failure stays.
//!
//! Greedy and bounded, because a step may cost a kernel round trip (load,
//! attach, fork a probe): each rule is tried once per pass, passes repeat
//! while one removed something, and at most `budget` candidates are tried.
//! The result is 1-minimal when the budget lasts: removing any single rule
//! makes the failure go away.

use devcg_engine::Rule;

/// The smallest list found from `rules` on which `still_fails` holds (it
/// held on `rules`). An error from `still_fails` stops the search.
pub fn rules<E>(
    mut rules: Vec<Rule>,
    budget: usize,
    mut still_fails: impl FnMut(&[Rule]) -> Result<bool, E>,
) -> Result<Vec<Rule>, E> {
    let mut left = budget;
    loop {
        let mut removed = false;
        let mut i = 0;
        while i < rules.len() && left > 0 {
            left -= 1;
            let mut fewer = rules.clone();
            fewer.remove(i);
            if still_fails(&fewer)? {
                rules = fewer;
                removed = true;
            } else {
                i += 1;
            }
        }
        if !removed || left == 0 {
            return Ok(rules);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devcg_engine::RuleKind;

    fn list(texts: &[&str]) -> Vec<Rule> {
        texts
            .iter()
            .map(|t| Rule::new(RuleKind::Allow, *t).unwrap())
            .collect()
    }

    #[test]
    fn keeps_exactly_the_rules_the_failure_needs() {
        let all = list(&["c 1:1 r", "c 1:2 r", "c 1:3 r", "c 1:4 r", "c 1:5 r"]);
        let needs = |l: &[Rule]| -> Result<bool, ()> {
            let texts: Vec<String> = l.iter().map(|r| r.to_string()).collect();
            Ok(texts.iter().any(|t| t.contains("1:2")) && texts.iter().any(|t| t.contains("1:5")))
        };
        let got = rules(all, 100, needs).unwrap();
        assert_eq!(got, list(&["c 1:2 r", "c 1:5 r"]));
    }

    #[test]
    fn stops_at_the_budget_and_on_errors() {
        let all = list(&["c 1:1 r", "c 1:2 r", "c 1:3 r"]);
        let mut calls = 0;
        let got = rules(all.clone(), 2, |_| -> Result<bool, ()> {
            calls += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!((calls, got.len()), (2, 1));
        assert_eq!(
            rules(all, 10, |_| Err::<bool, _>("kernel gone")),
            Err("kernel gone")
        );
    }
}
