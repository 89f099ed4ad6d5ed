//! What one column observed: a row per check, from the guest steps' output.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::guest::{Collected, StepOutput};

/// The outcome of one check on one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skip,
    /// The check could not be run or its output not read (a missing
    /// subcommand, a crash, a timeout): never a pass.
    Error,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Skip => "skip",
            CheckStatus::Error => "error",
        })
    }
}

/// One row of one column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observation {
    pub name: String,
    pub status: CheckStatus,
    /// A short human account (expected/observed of kernel-check, the reason
    /// of an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The check's own JSON object, as kernel-check printed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

impl Observation {
    pub(crate) fn new(name: &str, status: CheckStatus, detail: Option<String>) -> Self {
        Observation {
            name: name.to_string(),
            status,
            detail,
            raw: None,
        }
    }
}

/// Row names the runner itself makes (the rest come from kernel-check).
pub const ROW_KERNEL_CHECK: &str = "kernel-check";
pub const ROW_VERIFY: &str = "verify-kernel";
/// Rows of the v1 checks run again with a v1 `devices` hierarchy mounted.
pub const V1_SUFFIX: &str = "@v1-mounted";

/// Turns the steps' outputs into rows.
///
/// * `kernel-check --json`: one row per element of the printed array
///   (by its `name` and `status`), plus a row `kernel-check` that passes
///   when the suite ran and its output was read (exit 0 or 1 and a JSON
///   array), and is an error otherwise: a missing subcommand is an error.
/// * `verify --kernel`: a row `verify-kernel`: exit 0 pass, 1 fail (a
///   divergence), anything else an error.
pub fn observe(collected: &Collected) -> Vec<Observation> {
    let mut rows = Vec::new();
    for step in &collected.steps {
        match step.name.as_str() {
            "kernel-check" => observe_json_checks(step, ROW_KERNEL_CHECK, "", &mut rows),
            "kernel-check-v1" => observe_json_checks(
                step,
                &format!("{ROW_KERNEL_CHECK}{V1_SUFFIX}"),
                V1_SUFFIX,
                &mut rows,
            ),
            "verify" => observe_verify(step, &mut rows),
            other => rows.push(Observation::new(
                other,
                match step.rc {
                    Some(0) => CheckStatus::Pass,
                    Some(1) => CheckStatus::Fail,
                    _ => CheckStatus::Error,
                },
                step_problem(step),
            )),
        }
    }
    rows
}

fn step_problem(step: &StepOutput) -> Option<String> {
    // clap and anyhow put the reason on a line of its own starting "error".
    let last = step
        .stderr
        .lines()
        .map(crate::proc::clean_line)
        .find(|l| l.starts_with("error") || l.starts_with("Error"))
        .map(|l| l.chars().take(200).collect())
        .or_else(|| last_line(&step.stderr));
    match step.rc {
        None => Some("did not finish (the VM stopped or the run timed out)".into()),
        Some(124) | Some(137) => Some(format!("timed out (exit {})", step.rc.unwrap())),
        Some(0) => None,
        Some(rc) => Some(match last {
            Some(l) => format!("exit {rc}: {l}"),
            None => format!("exit {rc}"),
        }),
    }
}

fn last_line(text: &str) -> Option<String> {
    text.lines()
        .map(crate::proc::clean_line)
        .rfind(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}

fn observe_json_checks(
    step: &StepOutput,
    summary: &str,
    suffix: &str,
    rows: &mut Vec<Observation>,
) {
    let parsed: Option<Vec<serde_json::Value>> = serde_json::from_str(step.stdout.trim()).ok();
    let ran_ok = matches!(step.rc, Some(0) | Some(1));
    match parsed {
        Some(items) if ran_ok => {
            let mut bad = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                match check_from_json(&item) {
                    Some((name, status, detail)) => {
                        let name = format!("{name}{suffix}");
                        // A name reported twice (by one suite or by two)
                        // keeps both rows apart.
                        let mut unique = name.clone();
                        let mut n = 1;
                        while rows.iter().any(|r| r.name == unique) {
                            n += 1;
                            unique = format!("{name}#{n}");
                        }
                        let name = unique;
                        rows.push(Observation {
                            name,
                            status,
                            detail,
                            raw: Some(item),
                        });
                    }
                    None => bad.push(i),
                }
            }
            if bad.is_empty() {
                rows.push(Observation::new(summary, CheckStatus::Pass, None));
            } else {
                rows.push(Observation::new(
                    summary,
                    CheckStatus::Error,
                    Some(format!(
                        "elements {bad:?} of the output lack a string name or a status pass|fail|skip"
                    )),
                ));
            }
        }
        _ => {
            let why = step_problem(step).unwrap_or_else(|| "exit 0".into());
            let what = if step.rc.is_some() && !ran_ok {
                why
            } else {
                format!("output is not a JSON array ({why})")
            };
            rows.push(Observation::new(summary, CheckStatus::Error, Some(what)));
        }
    }
}

fn check_from_json(item: &serde_json::Value) -> Option<(String, CheckStatus, Option<String>)> {
    let name = item.get("name")?.as_str()?.to_string();
    let status = match item.get("status")?.as_str()? {
        "pass" => CheckStatus::Pass,
        "fail" => CheckStatus::Fail,
        "skip" => CheckStatus::Skip,
        _ => return None,
    };
    let show = |k: &str| {
        item.get(k).and_then(|v| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) if s.is_empty() => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        })
    };
    let mut parts = Vec::new();
    if let Some(e) = show("expected") {
        parts.push(format!("expected {e}"));
    }
    if let Some(o) = show("observed") {
        parts.push(format!("observed {o}"));
    }
    for k in ["reason", "why", "detail", "error"] {
        if let Some(r) = show(k) {
            parts.push(r);
        }
    }
    let detail = (!parts.is_empty()).then(|| parts.join(", "));
    Some((name, status, detail))
}

/// `verify --kernel --json`: the exit code gives `verify-kernel`; each
/// strategy's report gives `verify-kernel/<strategy>`. devcg's own
/// strategies must show no divergence from the kernel (oracle or
/// emulator), no unexpected kernel answer and no load refusal; the models
/// of other runtimes are allowed to disagree with the oracle (that is what
/// they are judged on) but the emulator must still agree with the kernel
/// on their programs.
fn observe_verify(step: &StepOutput, rows: &mut Vec<Observation>) {
    let status = match step.rc {
        Some(0) => CheckStatus::Pass,
        Some(1) => CheckStatus::Fail,
        _ => CheckStatus::Error,
    };
    let reports: Option<Vec<serde_json::Value>> = serde_json::from_str(step.stdout.trim()).ok();
    let mut summary = Vec::new();
    if let (Some(reports), CheckStatus::Pass | CheckStatus::Fail) = (&reports, status) {
        for r in reports {
            let Some(name) = r.get("strategy").and_then(|v| v.as_str()) else {
                continue;
            };
            let n = |k: &str| r.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            let own = r.get("own").and_then(|v| v.as_bool()).unwrap_or(true);
            // devcg's verdict, as it reported it: never re-derived here.
            let ok = r.get("pass").and_then(|v| v.as_bool());
            let detail = format!(
                "{} rule sets, {} attached, {} probes; oracle-vs-kernel {}, emulator-vs-kernel {}, unexpected {}, load refusals {}{}",
                n("rule_sets"),
                n("attached"),
                n("probes"),
                n("oracle_vs_kernel"),
                n("emulator_vs_kernel"),
                n("unexpected"),
                n("load_refusals"),
                if own { "" } else { " (a model: oracle-vs-kernel is its finding)" }
            );
            let row_status = match ok {
                Some(true) => CheckStatus::Pass,
                Some(false) => CheckStatus::Fail,
                None => CheckStatus::Error,
            };
            let detail = match ok {
                Some(_) => detail,
                None => format!("{detail}; the report has no \"pass\" verdict"),
            };
            if ok != Some(true) {
                summary.push(format!("{name}: {detail}"));
            }
            let mut o = Observation::new(&format!("{ROW_VERIFY}/{name}"), row_status, Some(detail));
            o.raw = Some(r.clone());
            rows.push(o);
        }
    }
    let detail = match status {
        CheckStatus::Pass if reports.is_some() => None,
        CheckStatus::Pass => last_line(&step.stdout),
        CheckStatus::Fail if !summary.is_empty() => Some(summary.join("; ")),
        CheckStatus::Fail => last_line(&step.stdout).or_else(|| step_problem(step)),
        _ => step_problem(step),
    };
    rows.push(Observation::new(ROW_VERIFY, status, detail));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, rc: Option<i32>, out: &str, err: &str) -> StepOutput {
        StepOutput {
            name: name.into(),
            rc,
            stdout: out.into(),
            stderr: err.into(),
        }
    }

    #[test]
    fn kernel_check_output_becomes_rows() {
        let c = Collected {
            steps: vec![
                step(
                    "kernel-check",
                    Some(1),
                    r#"[{"name":"x","expected":"EPERM","observed":"EPERM","status":"pass"},
                        {"name":"y","expected":"EPERM","observed":"0","status":"fail"},
                        {"name":"z","status":"skip","reason":"needs 5.18"},
                        {"name":"n","expected":"","status":"pass","reason":null}]"#,
                    "",
                ),
                step("verify", Some(0), "linear 100 ...\n", ""),
            ],
            ..Default::default()
        };
        let rows = observe(&c);
        let got: Vec<_> = rows.iter().map(|r| (r.name.as_str(), r.status)).collect();
        assert_eq!(
            got,
            [
                ("x", CheckStatus::Pass),
                ("y", CheckStatus::Fail),
                ("z", CheckStatus::Skip),
                ("n", CheckStatus::Pass),
                (ROW_KERNEL_CHECK, CheckStatus::Pass),
                (ROW_VERIFY, CheckStatus::Pass)
            ]
        );
        assert_eq!(
            rows[1].detail.as_deref(),
            Some("expected EPERM, observed 0")
        );
        assert_eq!(rows[2].detail.as_deref(), Some("needs 5.18"));
        assert_eq!(rows[3].detail, None);
    }

    #[test]
    fn verify_json_gives_a_row_per_strategy() {
        let c = Collected {
            steps: vec![step(
                "verify",
                Some(1),
                r#"[{"strategy":"linear","own":true,"rule_sets":3,"oracle_vs_kernel":0,"emulator_vs_kernel":0,"unexpected":0,"load_refusals":0,"pass":true},
                    {"strategy":"tree","own":true,"rule_sets":3,"oracle_vs_kernel":2,"emulator_vs_kernel":0,"unexpected":0,"load_refusals":0,"pass":false},
                    {"strategy":"runc","own":false,"rule_sets":3,"oracle_vs_kernel":9,"emulator_vs_kernel":0,"unexpected":0,"load_refusals":1,"pass":true},
                    {"strategy":"lxc","own":false,"rule_sets":3,"oracle_vs_kernel":0,"emulator_vs_kernel":1,"unexpected":0,"load_refusals":0,"pass":false},
                    {"strategy":"old","own":true,"rule_sets":3,"oracle_vs_kernel":0,"emulator_vs_kernel":0,"unexpected":0,"load_refusals":0}]"#,
                "",
            )],
            ..Default::default()
        };
        let rows = observe(&c);
        let got: Vec<_> = rows.iter().map(|r| (r.name.as_str(), r.status)).collect();
        assert_eq!(
            got,
            [
                ("verify-kernel/linear", CheckStatus::Pass),
                ("verify-kernel/tree", CheckStatus::Fail),
                ("verify-kernel/runc", CheckStatus::Pass),
                ("verify-kernel/lxc", CheckStatus::Fail),
                // A report without devcg's verdict is never taken for a pass.
                ("verify-kernel/old", CheckStatus::Error),
                (ROW_VERIFY, CheckStatus::Fail)
            ]
        );
        assert!(rows[5].detail.as_ref().unwrap().contains("tree:"));
    }

    #[test]
    fn a_missing_subcommand_is_an_error_never_a_pass() {
        let c = Collected {
            steps: vec![
                step(
                    "kernel-check",
                    Some(2),
                    "",
                    "error: unrecognized subcommand 'kernel-check'\n\nUsage: devcg <COMMAND>\n\nFor more information, try '--help'.\n",
                ),
                step("verify", Some(2), "", "error: unexpected argument '--kernel' found\n"),
            ],
            ..Default::default()
        };
        let rows = observe(&c);
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter().all(|r| r.status == CheckStatus::Error),
            "{rows:?}"
        );
        assert!(rows[0].detail.as_ref().unwrap().contains("exit 2"));
    }

    #[test]
    fn timeouts_and_garbage_are_errors() {
        let c = Collected {
            steps: vec![
                step("kernel-check", Some(124), "[{\"name\":", ""),
                step("verify", None, "", ""),
            ],
            ..Default::default()
        };
        let rows = observe(&c);
        assert_eq!(rows[0].status, CheckStatus::Error);
        assert!(rows[0].detail.as_ref().unwrap().contains("timed out"));
        assert_eq!(rows[1].status, CheckStatus::Error);
        let c = Collected {
            steps: vec![step("kernel-check", Some(0), "not json", "")],
            ..Default::default()
        };
        assert_eq!(observe(&c)[0].status, CheckStatus::Error);
        let c = Collected {
            steps: vec![step(
                "kernel-check",
                Some(0),
                r#"[{"name":"a","status":"maybe"}]"#,
                "",
            )],
            ..Default::default()
        };
        let rows = observe(&c);
        assert_eq!(rows.last().unwrap().status, CheckStatus::Error);
    }

    #[test]
    fn duplicate_names_are_kept_apart() {
        let c = Collected {
            steps: vec![step(
                "kernel-check",
                Some(0),
                r#"[{"name":"a","status":"pass"},{"name":"a","status":"fail"}]"#,
                "",
            )],
            ..Default::default()
        };
        let names: Vec<_> = observe(&c).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["a", "a#2", ROW_KERNEL_CHECK]);
    }
}
