//! A column against its expected file: every row that differs.

use std::fmt;

use serde::Serialize;

use super::{CheckStatus, Expected, KernelRun, RunOutcome, V1_SUFFIX};

/// A result that differs from the expected one: each one fails the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    pub kernel: String,
    /// None for the run as a whole (did not boot, kernel problem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<CheckStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<CheckStatus>,
    pub what: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.check {
            Some(c) => write!(f, "{} {}: {}", self.kernel, c, self.what),
            None => write!(f, "{}: {}", self.kernel, self.what),
        }
    }
}

/// Compares one column with its expectations. Without an expected file
/// every check must pass (a check skipped but run again as
/// `NAME@v1-mounted` counts by that row). A check that is expected but absent is a
/// difference; a check that is observed but not recorded is one only when
/// it did not pass or skip (it is listed in `notes` otherwise).
pub fn compare(
    run: &KernelRun,
    expected: Option<&Expected>,
    notes: &mut Vec<String>,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let diff = |check: Option<&str>,
                e: Option<CheckStatus>,
                o: Option<CheckStatus>,
                what: String| Difference {
        kernel: run.name.clone(),
        check: check.map(str::to_string),
        expected: e,
        observed: o,
        what,
    };
    match &run.outcome {
        RunOutcome::Ran => {}
        RunOutcome::Unavailable(why) => {
            notes.push(format!("{}: not tested: {why}", run.name));
            return out;
        }
        other => {
            out.push(diff(
                None,
                None,
                None,
                format!(
                    "{}{}",
                    other.short(),
                    other.why().map(|w| format!(": {w}")).unwrap_or_default()
                ),
            ));
            return out;
        }
    }
    if !run.kernel_problems.is_empty() {
        out.push(diff(
            None,
            None,
            None,
            format!("kernel problem on the console: {}", run.kernel_problems[0]),
        ));
    }
    match expected {
        Some(exp) => {
            for (name, want) in &exp.checks {
                match run.check(name) {
                    None => out.push(diff(
                        Some(name),
                        Some(want.status()),
                        None,
                        format!("expected {}, but the check did not report", want.status()),
                    )),
                    Some(got) if got.status != want.status() => out.push(diff(
                        Some(name),
                        Some(want.status()),
                        Some(got.status),
                        format!(
                            "expected {}{}, observed {}{}",
                            want.status(),
                            want.why().map(|w| format!(" ({w})")).unwrap_or_default(),
                            got.status,
                            got.detail
                                .as_ref()
                                .map(|d| format!(": {d}"))
                                .unwrap_or_default()
                        ),
                    )),
                    Some(_) => {}
                }
            }
            for got in &run.checks {
                if exp.checks.contains_key(&got.name) {
                    continue;
                }
                match got.status {
                    CheckStatus::Pass | CheckStatus::Skip => notes.push(format!(
                        "{}: {} {} is not in the expected file yet",
                        run.name, got.name, got.status
                    )),
                    _ => out.push(diff(
                        Some(&got.name),
                        None,
                        Some(got.status),
                        format!(
                            "observed {} (not in the expected file){}",
                            got.status,
                            got.detail
                                .as_ref()
                                .map(|d| format!(": {d}"))
                                .unwrap_or_default()
                        ),
                    )),
                }
            }
        }
        None => {
            notes.push(format!(
                "{}: no expected file, every check must pass",
                run.name
            ));
            for got in &run.checks {
                // A pure-cgroup2 guest skips the v1 checks and runs them
                // again with a v1 hierarchy mounted, as NAME@v1-mounted:
                // that row is the one that must pass.
                let rerun = format!("{}{V1_SUFFIX}", got.name);
                if got.status == CheckStatus::Skip && run.check(&rerun).is_some() {
                    notes.push(format!(
                        "{}: {} skipped, checked as {rerun}",
                        run.name, got.name
                    ));
                    continue;
                }
                if got.status != CheckStatus::Pass {
                    out.push(diff(
                        Some(&got.name),
                        Some(CheckStatus::Pass),
                        Some(got.status),
                        format!(
                            "observed {} (no expected file: pass required){}",
                            got.status,
                            got.detail
                                .as_ref()
                                .map(|d| format!(": {d}"))
                                .unwrap_or_default()
                        ),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::test_support::*;
    use crate::report::{kernel_problems, Matrix};

    #[test]
    fn matching_expectations_pass() {
        let r = run_with(&[("a", CheckStatus::Pass), ("b", CheckStatus::Skip)]);
        let e =
            expected(r#"{"checks": {"a": "pass", "b": {"status": "skip", "why": "needs 5.18"}}}"#);
        let mut notes = vec![];
        assert!(compare(&r, Some(&e), &mut notes).is_empty());
    }

    #[test]
    fn a_deliberately_wrong_expectation_fails() {
        let r = run_with(&[("a", CheckStatus::Pass), ("b", CheckStatus::Skip)]);
        let e = expected(r#"{"checks": {"a": "fail", "b": "skip"}}"#);
        let d = compare(&r, Some(&e), &mut vec![]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].check.as_deref(), Some("a"));
        assert_eq!(d[0].expected, Some(CheckStatus::Fail));
        assert_eq!(d[0].observed, Some(CheckStatus::Pass));
        let m = Matrix::new(
            vec![r],
            &BTreeMap::from([("k".to_string(), e)]),
            vec![],
            vec![],
        );
        assert!(!m.ok);
        assert_eq!(m.exit_code(), 1);
        let text = m.to_string();
        assert!(text.contains("pass !"), "{text}");
        assert!(text.contains("k a: expected fail, observed pass"), "{text}");
    }

    #[test]
    fn a_missing_check_fails_and_an_unrecorded_failure_fails() {
        let r = run_with(&[
            ("new-pass", CheckStatus::Pass),
            ("new-fail", CheckStatus::Fail),
        ]);
        let e = expected(r#"{"checks": {"gone": "pass"}}"#);
        let mut notes = vec![];
        let d = compare(&r, Some(&e), &mut notes);
        let names: Vec<_> = d.iter().map(|d| d.check.clone().unwrap()).collect();
        assert_eq!(names, ["gone", "new-fail"]);
        assert!(notes.iter().any(|n| n.contains("new-pass")));
    }

    #[test]
    fn without_an_expected_file_everything_must_pass() {
        let r = run_with(&[("a", CheckStatus::Pass), ("b", CheckStatus::Skip)]);
        let d = compare(&r, None, &mut vec![]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].check.as_deref(), Some("b"));
    }

    #[test]
    fn without_an_expected_file_a_v1_check_counts_by_its_mounted_rerun() {
        let r = run_with(&[
            ("v1_x", CheckStatus::Skip),
            ("v1_x@v1-mounted", CheckStatus::Pass),
            ("v1_y", CheckStatus::Skip),
        ]);
        let mut notes = vec![];
        let d = compare(&r, None, &mut notes);
        let names: Vec<_> = d.iter().map(|d| d.check.clone().unwrap()).collect();
        assert_eq!(names, ["v1_y"]);
        assert!(notes
            .iter()
            .any(|n| n.contains("v1_x skipped, checked as v1_x@v1-mounted")));
        let r = run_with(&[
            ("v1_x", CheckStatus::Skip),
            ("v1_x@v1-mounted", CheckStatus::Fail),
        ]);
        assert_eq!(compare(&r, None, &mut vec![]).len(), 1);
    }

    #[test]
    fn a_kernel_that_did_not_boot_is_never_a_pass() {
        let mut r = run_with(&[]);
        r.outcome = RunOutcome::BootTimeout("no guest script after 240s".into());
        r.console_tail = vec!["[ 3.0] something".into()];
        let e = expected(r#"{"checks": {"a": "pass"}}"#);
        let m = Matrix::new(
            vec![r],
            &BTreeMap::from([("k".to_string(), e)]),
            vec![],
            vec![],
        );
        assert_eq!(m.exit_code(), 1);
        let text = m.to_string();
        assert!(text.contains("not run"), "{text}");
        assert!(text.contains("| [ 3.0] something"), "{text}");
    }

    #[test]
    fn an_unavailable_kernel_is_incomplete_not_a_pass() {
        let mut r = run_with(&[]);
        r.outcome = RunOutcome::Unavailable("apt-get download failed".into());
        let m = Matrix::new(vec![r], &BTreeMap::new(), vec![], vec![]);
        assert!(m.ok && !m.complete);
        assert_eq!(m.exit_code(), 3);
    }

    #[test]
    fn console_problems_fail_the_column() {
        let mut r = run_with(&[("a", CheckStatus::Pass)]);
        r.kernel_problems = kernel_problems(&[
            "ok".into(),
            "[ 9.1] BUG: kernel NULL pointer dereference".into(),
        ]);
        assert_eq!(r.kernel_problems.len(), 1);
        let d = compare(
            &r,
            Some(&expected(r#"{"checks": {"a": "pass"}}"#)),
            &mut vec![],
        );
        assert_eq!(d.len(), 1);
        assert!(d[0].check.is_none());
    }
}
