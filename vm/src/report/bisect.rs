//! Two kernels side by side (`--image A --image B`), and one check as a
//! `git bisect run` verdict (`--check NAME`).

use std::fmt::Write as _;

use super::{CheckStatus, Matrix};

/// `git bisect run`'s codes: good, bad, cannot test this commit, stop.
pub const GOOD: i32 = 0;
pub const BAD: i32 = 1;
pub const UNTESTABLE: i32 = 125;
pub const ABORT: i32 = 128;

/// A check whose result differs between two columns (None: not reported).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub check: String,
    pub a: Option<CheckStatus>,
    pub b: Option<CheckStatus>,
}

/// The checks whose result differs between columns `a` and `b`, in the
/// matrix's row order. A column that did not run reports nothing, so every
/// check of the other one differs.
pub fn between(m: &Matrix, a: &str, b: &str) -> Vec<Change> {
    let (Some(ka), Some(kb)) = (
        m.kernels.iter().find(|k| k.name == a),
        m.kernels.iter().find(|k| k.name == b),
    ) else {
        return Vec::new();
    };
    m.rows
        .iter()
        .filter_map(|row| {
            let sa = ka.check(row).map(|o| o.status);
            let sb = kb.check(row).map(|o| o.status);
            (sa != sb).then(|| Change {
                check: row.clone(),
                a: sa,
                b: sb,
            })
        })
        .collect()
}

/// The comparison as text: one line per differing check.
pub fn between_text(m: &Matrix, a: &str, b: &str) -> String {
    let changes = between(m, a, b);
    let mut out = String::new();
    if changes.is_empty() {
        let _ = writeln!(out, "no check differs between {a} and {b}");
        return out;
    }
    let _ = writeln!(
        out,
        "{} check(s) differ between {a} and {b}:",
        changes.len()
    );
    let show = |s: Option<CheckStatus>| s.map_or("-".to_string(), |s| s.to_string());
    let w = changes.iter().map(|c| c.check.len()).max().unwrap_or(0);
    for c in &changes {
        let _ = writeln!(
            out,
            "  {:w$}  {a} {}, {b} {}",
            c.check,
            show(c.a),
            show(c.b)
        );
    }
    out
}

/// `--check NAME`: good when the check is as expected in every column
/// (as recorded, or a pass without an expected file), bad when it differs
/// in one; untestable when a column did not run; abort when a column ran
/// but never reported such a check (a misspelt name would otherwise make
/// every commit bad). The code and one line saying why.
pub fn check_verdict(m: &Matrix, name: &str) -> (i32, String) {
    let mut lines = Vec::new();
    let mut code = GOOD;
    for k in &m.kernels {
        if !k.outcome.ran() {
            return (
                UNTESTABLE,
                format!("{name}: {} did not run ({})", k.name, k.outcome.short()),
            );
        }
        let Some(o) = k.check(name) else {
            return (ABORT, format!("{name}: {} reported no such check", k.name));
        };
        let differs = m
            .differences
            .iter()
            .any(|d| d.kernel == k.name && d.check.as_deref() == Some(name));
        if differs {
            code = BAD;
        }
        lines.push(format!(
            "{} {}{}",
            k.name,
            o.status,
            if differs { " (not as expected)" } else { "" }
        ));
    }
    let word = if code == GOOD { "good" } else { "bad" };
    (code, format!("{name}: {word}: {}", lines.join(", ")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::test_support::*;
    use crate::report::RunOutcome;

    fn two(a: &[(&str, CheckStatus)], b: &[(&str, CheckStatus)]) -> Matrix {
        let mut ka = run_with(a);
        ka.name = "A".into();
        let mut kb = run_with(b);
        kb.name = "B".into();
        Matrix::new(vec![ka, kb], &BTreeMap::new(), vec![], vec![])
    }

    #[test]
    fn only_differing_checks_are_listed() {
        use CheckStatus::*;
        let m = two(
            &[("x", Pass), ("y", Pass), ("z", Skip)],
            &[("x", Pass), ("y", Fail), ("w", Pass)],
        );
        let got = between(&m, "A", "B");
        let names: Vec<_> = got.iter().map(|c| c.check.as_str()).collect();
        assert_eq!(names, ["y", "z", "w"]);
        assert_eq!((got[0].a, got[0].b), (Some(Pass), Some(Fail)));
        let text = between_text(&m, "A", "B");
        assert!(
            text.starts_with("3 check(s) differ between A and B:\n"),
            "{text}"
        );
        assert!(text.contains("  y  A pass, B fail\n"), "{text}");
        assert!(text.contains("  w  A -, B pass\n"), "{text}");
        assert_eq!(
            between_text(&two(&[("x", Pass)], &[("x", Pass)]), "A", "B"),
            "no check differs between A and B\n"
        );
    }

    #[rstest::rstest]
    #[case::good(CheckStatus::Pass, None, GOOD)]
    #[case::bad(CheckStatus::Fail, None, BAD)]
    #[case::expected_skip(CheckStatus::Skip, Some(r#"{"checks": {"x": "skip"}}"#), GOOD)]
    #[case::unexpected_pass(CheckStatus::Pass, Some(r#"{"checks": {"x": "fail"}}"#), BAD)]
    fn a_check_becomes_a_bisect_verdict(
        #[case] status: CheckStatus,
        #[case] exp: Option<&str>,
        #[case] want: i32,
    ) {
        let r = run_with(&[("x", status)]);
        let e: BTreeMap<String, _> = exp
            .map(|j| ("k".to_string(), expected(j)))
            .into_iter()
            .collect();
        let m = Matrix::new(vec![r], &e, vec![], vec![]);
        let (code, why) = check_verdict(&m, "x");
        assert_eq!(code, want, "{why}");
        assert!(why.starts_with("x: "), "{why}");
    }

    #[test]
    fn a_kernel_that_did_not_run_is_untestable_and_a_wrong_name_aborts() {
        let mut r = run_with(&[]);
        r.outcome = RunOutcome::Panic("Kernel panic".into());
        let m = Matrix::new(vec![r], &BTreeMap::new(), vec![], vec![]);
        assert_eq!(check_verdict(&m, "x").0, UNTESTABLE);
        let m = Matrix::new(
            vec![run_with(&[("x", CheckStatus::Pass)])],
            &BTreeMap::new(),
            vec![],
            vec![],
        );
        let (code, why) = check_verdict(&m, "typo");
        assert_eq!(code, ABORT);
        assert_eq!(why, "typo: k reported no such check");
    }
}
