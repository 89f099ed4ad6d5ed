//! The matrix kernel x check, the expected outcomes per kernel
//! (`vm/expected/<kernel>.json`) and the comparison between the two.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::VmError;
use crate::guest::{Collected, StepOutput};

/// The outcome of one check on one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    /// The check could not be run or its output not read (a missing
    /// subcommand, a crash, a timeout): never a pass.
    Error,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Error => "error",
        })
    }
}

/// One row of one column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observation {
    pub name: String,
    pub status: Status,
    /// A short human account (expected/observed of kernel-check, the reason
    /// of an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The check's own JSON object, as kernel-check printed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

impl Observation {
    fn new(name: &str, status: Status, detail: Option<String>) -> Self {
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
                    Some(0) => Status::Pass,
                    Some(1) => Status::Fail,
                    _ => Status::Error,
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
                rows.push(Observation::new(summary, Status::Pass, None));
            } else {
                rows.push(Observation::new(
                    summary,
                    Status::Error,
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
            rows.push(Observation::new(summary, Status::Error, Some(what)));
        }
    }
}

fn check_from_json(item: &serde_json::Value) -> Option<(String, Status, Option<String>)> {
    let name = item.get("name")?.as_str()?.to_string();
    let status = match item.get("status")?.as_str()? {
        "pass" => Status::Pass,
        "fail" => Status::Fail,
        "skip" => Status::Skip,
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
        Some(0) => Status::Pass,
        Some(1) => Status::Fail,
        _ => Status::Error,
    };
    let reports: Option<Vec<serde_json::Value>> = serde_json::from_str(step.stdout.trim()).ok();
    let mut summary = Vec::new();
    if let (Some(reports), Status::Pass | Status::Fail) = (&reports, status) {
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
                Some(true) => Status::Pass,
                Some(false) => Status::Fail,
                None => Status::Error,
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
        Status::Pass if reports.is_some() => None,
        Status::Pass => last_line(&step.stdout),
        Status::Fail if !summary.is_empty() => Some(summary.join("; ")),
        Status::Fail => last_line(&step.stdout).or_else(|| step_problem(step)),
        _ => step_problem(step),
    };
    rows.push(Observation::new(ROW_VERIFY, status, detail));
}

/// How one column's run went, before looking at any check.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "why")]
pub enum Outcome {
    /// The script ran to its end.
    Ran,
    /// The kernel or the tools to boot it could not be had: not tested.
    Unavailable(String),
    /// The guest script never started within the boot timeout.
    BootTimeout(String),
    /// The run went past its overall timeout.
    RunTimeout(String),
    Panic(String),
    /// Exited without starting or finishing the script.
    Crashed(String),
    Interrupted,
}

impl Outcome {
    pub fn ran(&self) -> bool {
        matches!(self, Outcome::Ran)
    }
    pub fn short(&self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Unavailable(_) => "unavailable",
            Outcome::BootTimeout(_) => "boot-timeout",
            Outcome::RunTimeout(_) => "run-timeout",
            Outcome::Panic(_) => "panic",
            Outcome::Crashed(_) => "crashed",
            Outcome::Interrupted => "interrupted",
        }
    }
    pub fn why(&self) -> Option<&str> {
        match self {
            Outcome::Ran | Outcome::Interrupted => None,
            Outcome::Unavailable(w)
            | Outcome::BootTimeout(w)
            | Outcome::RunTimeout(w)
            | Outcome::Panic(w)
            | Outcome::Crashed(w) => Some(w),
        }
    }
}

/// One column.
#[derive(Clone, Debug, Serialize)]
pub struct KernelRun {
    pub name: String,
    pub host: bool,
    /// Debian package and version booted (VM columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_version: Option<String>,
    /// `uname -r` as the script saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Seconds from `vng` start until the guest script started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_secs: Option<f64>,
    pub total_secs: f64,
    pub results_dir: PathBuf,
    /// The last console lines, kept whenever the outcome is not `ran` or
    /// the console showed a kernel problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub console_tail: Vec<String>,
    /// Console lines that show a kernel problem (Oops, BUG, panic).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernel_problems: Vec<String>,
    pub checks: Vec<Observation>,
    /// The accelerator the guest ran on and why (VM columns that booted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accel: Option<crate::install::ColumnAccel>,
}

impl KernelRun {
    pub fn check(&self, name: &str) -> Option<&Observation> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Lines of a console log that show the kernel in trouble.
pub fn kernel_problems(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            l.contains("Kernel panic")
                || l.contains("Oops:")
                || l.contains("BUG: ")
                || l.contains("general protection fault")
                || l.contains("Call Trace:")
        })
        .take(20)
        .cloned()
        .collect()
}

/// The last `n` console lines; when the first line showing a kernel
/// problem is older than those, a few lines around it come first.
pub fn console_excerpt(lines: &[String], n: usize) -> Vec<String> {
    let start = lines.len().saturating_sub(n);
    let first_problem = lines
        .iter()
        .position(|l| !kernel_problems(std::slice::from_ref(l)).is_empty());
    match first_problem {
        Some(p) if p < start => {
            let from = p.saturating_sub(3);
            let to = (p + 12).min(start);
            let mut out = lines[from..to].to_vec();
            if to < start {
                out.push("...".into());
            }
            out.extend_from_slice(&lines[start..]);
            out
        }
        _ => lines[start..].to_vec(),
    }
}

/// `vm/expected/<kernel>.json`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    #[serde(default)]
    pub kernel: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    pub checks: BTreeMap<String, ExpectedCheck>,
}

/// `"pass"`, or `{"status": "skip", "why": "..."}` for a check that
/// legitimately differs on this kernel.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ExpectedCheck {
    Status(Status),
    Explained {
        status: Status,
        #[serde(default)]
        why: String,
    },
}

impl ExpectedCheck {
    pub fn status(&self) -> Status {
        match self {
            ExpectedCheck::Status(s) | ExpectedCheck::Explained { status: s, .. } => *s,
        }
    }
    pub fn why(&self) -> Option<&str> {
        match self {
            ExpectedCheck::Explained { why, .. } if !why.is_empty() => Some(why),
            _ => None,
        }
    }
}

impl Expected {
    pub fn parse(text: &str) -> Result<Expected, String> {
        let e: Expected = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (name, c) in &e.checks {
            if c.status() == Status::Error {
                return Err(format!("check {name}: \"error\" cannot be expected"));
            }
        }
        Ok(e)
    }

    /// `dir/<kernel>.json`, or None when there is none.
    pub fn load(dir: &Path, kernel: &str) -> Result<Option<(PathBuf, Expected)>, VmError> {
        let path = dir.join(format!("{kernel}.json"));
        match std::fs::read_to_string(&path) {
            Ok(text) => Expected::parse(&text)
                .map(|e| Some((path.clone(), e)))
                .map_err(|reason| VmError::Expected { path, reason }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VmError::Expected {
                path,
                reason: e.to_string(),
            }),
        }
    }
}

/// Writes `dir/<kernel>.json` from what the column observed: every check
/// that passed, failed or skipped (an error is never recorded), keeping the
/// `why` of entries whose status did not change; a new non-pass entry gets
/// the observation as its `why`, to be edited.
pub fn record(dir: &Path, run: &KernelRun, old: Option<&Expected>) -> Result<PathBuf, VmError> {
    let mut e = Expected {
        kernel: run.name.clone(),
        note: old.map(|o| o.note.clone()).unwrap_or_default(),
        checks: BTreeMap::new(),
    };
    for c in run.checks.iter().filter(|c| c.status != Status::Error) {
        let kept = old
            .and_then(|o| o.checks.get(&c.name))
            .filter(|x| x.status() == c.status)
            .and_then(|x| x.why().map(str::to_string));
        let why = kept.or_else(|| {
            (c.status != Status::Pass)
                .then(|| c.detail.clone())
                .flatten()
        });
        let entry = match why {
            Some(why) => ExpectedCheck::Explained {
                status: c.status,
                why,
            },
            None => ExpectedCheck::Status(c.status),
        };
        e.checks.insert(c.name.clone(), entry);
    }
    let path = dir.join(format!("{}.json", run.name));
    let text = serde_json::to_string_pretty(&e).expect("serializes") + "\n";
    std::fs::create_dir_all(dir).map_err(|err| VmError::io(dir.display().to_string(), err))?;
    std::fs::write(&path, text).map_err(|err| VmError::io(path.display().to_string(), err))?;
    Ok(path)
}

/// A result that differs from the expected one: each one fails the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    pub kernel: String,
    /// None for the run as a whole (did not boot, kernel problem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<Status>,
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
/// every check must pass. A check that is expected but absent is a
/// difference; a check that is observed but not recorded is one only when
/// it did not pass or skip (it is listed in `notes` otherwise).
pub fn compare(
    run: &KernelRun,
    expected: Option<&Expected>,
    notes: &mut Vec<String>,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let diff =
        |check: Option<&str>, e: Option<Status>, o: Option<Status>, what: String| Difference {
            kernel: run.name.clone(),
            check: check.map(str::to_string),
            expected: e,
            observed: o,
            what,
        };
    match &run.outcome {
        Outcome::Ran => {}
        Outcome::Unavailable(why) => {
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
                    Status::Pass | Status::Skip => notes.push(format!(
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
                if got.status != Status::Pass {
                    out.push(diff(
                        Some(&got.name),
                        Some(Status::Pass),
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

/// Everything one run found: printed as a table, serialized as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Matrix {
    pub kernels: Vec<KernelRun>,
    pub differences: Vec<Difference>,
    pub notes: Vec<String>,
    /// Tools used, package and version.
    pub tools: Vec<(String, String)>,
    /// True when no result differs from its expectation.
    pub ok: bool,
    /// True when every column could be tested.
    pub complete: bool,
    /// Row names: observed checks in first-seen order, then expected ones
    /// that no column reported.
    pub rows: Vec<String>,
    /// Checks in each kernel's expected file.
    #[serde(skip)]
    pub expected_counts: BTreeMap<String, usize>,
}

impl Matrix {
    pub fn new(
        kernels: Vec<KernelRun>,
        expected: &BTreeMap<String, Expected>,
        tools: Vec<(String, String)>,
        mut notes: Vec<String>,
    ) -> Matrix {
        let mut differences = Vec::new();
        for k in &kernels {
            differences.extend(compare(k, expected.get(&k.name), &mut notes));
        }
        let complete = kernels
            .iter()
            .all(|k| !matches!(k.outcome, Outcome::Unavailable(_)));
        let mut rows: Vec<String> = Vec::new();
        let names = kernels
            .iter()
            .flat_map(|k| k.checks.iter().map(|c| c.name.clone()))
            .chain(kernels.iter().flat_map(|k| {
                expected
                    .get(&k.name)
                    .map(|e| e.checks.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            }));
        for n in names {
            if !rows.contains(&n) {
                rows.push(n);
            }
        }
        Matrix {
            expected_counts: expected
                .iter()
                .map(|(k, e)| (k.clone(), e.checks.len()))
                .collect(),
            rows,
            ok: differences.is_empty(),
            complete,
            kernels,
            differences,
            notes,
            tools,
        }
    }

    /// 0: everything ran and matched; 1: a result differs from the expected
    /// one (a regression, also a kernel that did not boot); 3: nothing
    /// differs, but some column could not be tested (tools or kernel could
    /// not be installed).
    pub fn exit_code(&self) -> i32 {
        if !self.ok {
            1
        } else if !self.complete {
            3
        } else {
            0
        }
    }

    /// Cells as expected, differences, and cells not tested (an
    /// unavailable kernel counts its expected checks, at least one).
    pub fn tally(&self) -> (usize, usize, usize) {
        let mut passed = 0;
        let mut skipped = 0;
        for k in &self.kernels {
            match &k.outcome {
                Outcome::Ran => {
                    passed +=
                        self.rows
                            .iter()
                            .filter(|r| {
                                k.check(r).is_some()
                                    && !self.differences.iter().any(|d| {
                                        d.kernel == k.name && d.check.as_deref() == Some(r)
                                    })
                            })
                            .count()
                }
                Outcome::Unavailable(_) => {
                    skipped += self
                        .expected_counts
                        .get(&k.name)
                        .copied()
                        .unwrap_or(1)
                        .max(1)
                }
                _ => {}
            }
        }
        (passed, self.differences.len(), skipped)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("the matrix serializes")
    }
}

impl fmt::Display for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = &self.rows;
        let w0 = rows
            .iter()
            .map(|r| r.len())
            .chain([10])
            .max()
            .unwrap_or(10)
            .min(48);
        let widths: Vec<usize> = self
            .kernels
            .iter()
            .map(|k| {
                let release = k.release.as_ref().map_or(0, |r| r.len().min(28));
                k.name.len().max(14).max(release)
            })
            .collect();
        write!(f, "{:w0$}", "check")?;
        for (k, w) in self.kernels.iter().zip(&widths) {
            write!(f, "  {:w$}", k.name)?;
        }
        writeln!(f)?;
        write!(f, "{:w0$}", "(release)")?;
        for (k, w) in self.kernels.iter().zip(&widths) {
            let r = k.release.clone().unwrap_or_else(|| "-".into());
            write!(f, "  {:w$}", truncate(&r, *w))?;
        }
        writeln!(f)?;
        write!(f, "{:w0$}", "(run)")?;
        for (k, w) in self.kernels.iter().zip(&widths) {
            let cell = match (k.outcome.ran(), k.boot_secs) {
                (true, Some(b)) => format!("ran {b:.0}s/{:.0}s", k.total_secs),
                (true, None) => format!("ran {:.0}s", k.total_secs),
                (false, _) => k.outcome.short().to_string(),
            };
            write!(f, "  {:w$}", cell)?;
        }
        writeln!(f)?;
        write!(f, "{:w0$}", "(accel)")?;
        for (k, w) in self.kernels.iter().zip(&widths) {
            let cell = match (&k.accel, k.host) {
                (_, true) => "host".to_string(),
                (Some(a), false) if a.kvm_failure.is_some() => format!("{} (kvm failed)", a.accel),
                (Some(a), false) => a.accel.to_string(),
                (None, false) => "-".to_string(),
            };
            write!(f, "  {:w$}", cell)?;
        }
        writeln!(f)?;
        for r in rows {
            write!(f, "{:w0$}", truncate(r, w0))?;
            for (k, w) in self.kernels.iter().zip(&widths) {
                let differs = self
                    .differences
                    .iter()
                    .any(|d| d.kernel == k.name && d.check.as_deref() == Some(r));
                let cell = match k.check(r) {
                    Some(o) => o.status.to_string(),
                    None if k.outcome.ran() => "-".into(),
                    None => "not run".into(),
                };
                let cell = if differs { format!("{cell} !") } else { cell };
                write!(f, "  {:w$}", cell)?;
            }
            writeln!(f)?;
        }
        for k in &self.kernels {
            if !k.outcome.ran() || !k.kernel_problems.is_empty() {
                writeln!(f)?;
                writeln!(
                    f,
                    "{}: {}{}",
                    k.name,
                    k.outcome.short(),
                    k.outcome
                        .why()
                        .map(|w| format!(": {w}"))
                        .unwrap_or_default()
                )?;
                if !k.console_tail.is_empty() {
                    writeln!(
                        f,
                        "  last console lines ({}):",
                        k.results_dir.join("console.log").display()
                    )?;
                    for l in &k.console_tail {
                        writeln!(f, "  | {l}")?;
                    }
                }
            }
        }
        let guests: Vec<&KernelRun> = self.kernels.iter().filter(|k| k.accel.is_some()).collect();
        if !guests.is_empty() {
            writeln!(f)?;
        }
        for k in guests {
            if let Some(a) = &k.accel {
                writeln!(f, "{}: ran under {}: {}", k.name, a.accel, a.why)?;
                if let Some(failure) = &a.kvm_failure {
                    writeln!(f, "{}: KVM failed {failure}", k.name)?;
                }
            }
        }
        if !self.tools.is_empty() {
            let t: Vec<String> = self.tools.iter().map(|(p, v)| format!("{p} {v}")).collect();
            writeln!(f, "tools: {}", t.join(", "))?;
        }
        for k in self.kernels.iter().filter(|k| k.package.is_some()) {
            writeln!(
                f,
                "{}: {} {}",
                k.name,
                k.package.as_deref().unwrap_or("-"),
                k.package_version.as_deref().unwrap_or("")
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        writeln!(f)?;
        let (passed, failed, skipped) = self.tally();
        if self.differences.is_empty() {
            if self.complete {
                writeln!(f, "every result is as expected")?;
            } else {
                writeln!(
                    f,
                    "every tested result is as expected; some kernels were not tested"
                )?;
            }
        } else {
            writeln!(
                f,
                "{} result(s) differ from the expected ones:",
                self.differences.len()
            )?;
            for d in &self.differences {
                writeln!(f, "  {d}")?;
            }
        }
        writeln!(f, "vm: {passed} passed, {failed} failed, {skipped} skipped")?;
        Ok(())
    }
}

fn truncate(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(checks: &[(&str, Status)]) -> KernelRun {
        KernelRun {
            name: "k".into(),
            host: false,
            package: None,
            package_version: None,
            release: Some("6.1.0".into()),
            outcome: Outcome::Ran,
            boot_secs: Some(20.0),
            total_secs: 40.0,
            results_dir: PathBuf::from("/tmp/x"),
            console_tail: vec![],
            kernel_problems: vec![],
            checks: checks
                .iter()
                .map(|(n, s)| Observation::new(n, *s, None))
                .collect(),
            accel: None,
        }
    }

    fn expected(json: &str) -> Expected {
        Expected::parse(json).unwrap()
    }

    #[test]
    fn matching_expectations_pass() {
        let r = run_with(&[("a", Status::Pass), ("b", Status::Skip)]);
        let e =
            expected(r#"{"checks": {"a": "pass", "b": {"status": "skip", "why": "needs 5.18"}}}"#);
        let mut notes = vec![];
        assert!(compare(&r, Some(&e), &mut notes).is_empty());
    }

    #[test]
    fn a_deliberately_wrong_expectation_fails() {
        let r = run_with(&[("a", Status::Pass), ("b", Status::Skip)]);
        let e = expected(r#"{"checks": {"a": "fail", "b": "skip"}}"#);
        let d = compare(&r, Some(&e), &mut vec![]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].check.as_deref(), Some("a"));
        assert_eq!(d[0].expected, Some(Status::Fail));
        assert_eq!(d[0].observed, Some(Status::Pass));
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
        let r = run_with(&[("new-pass", Status::Pass), ("new-fail", Status::Fail)]);
        let e = expected(r#"{"checks": {"gone": "pass"}}"#);
        let mut notes = vec![];
        let d = compare(&r, Some(&e), &mut notes);
        let names: Vec<_> = d.iter().map(|d| d.check.clone().unwrap()).collect();
        assert_eq!(names, ["gone", "new-fail"]);
        assert!(notes.iter().any(|n| n.contains("new-pass")));
    }

    #[test]
    fn without_an_expected_file_everything_must_pass() {
        let r = run_with(&[("a", Status::Pass), ("b", Status::Skip)]);
        let d = compare(&r, None, &mut vec![]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].check.as_deref(), Some("b"));
    }

    #[test]
    fn a_kernel_that_did_not_boot_is_never_a_pass() {
        let mut r = run_with(&[]);
        r.outcome = Outcome::BootTimeout("no guest script after 240s".into());
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
        r.outcome = Outcome::Unavailable("apt-get download failed".into());
        let m = Matrix::new(vec![r], &BTreeMap::new(), vec![], vec![]);
        assert!(m.ok && !m.complete);
        assert_eq!(m.exit_code(), 3);
    }

    #[test]
    fn console_problems_fail_the_column() {
        let mut r = run_with(&[("a", Status::Pass)]);
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

    #[test]
    fn the_console_excerpt_keeps_the_first_problem() {
        let mut lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        assert_eq!(
            console_excerpt(&lines, 3),
            ["line 97", "line 98", "line 99"]
        );
        lines[10] = "Kernel panic - not syncing: x".into();
        let e = console_excerpt(&lines, 3);
        assert_eq!(e[3], "Kernel panic - not syncing: x");
        assert!(e.contains(&"...".to_string()));
        assert_eq!(e.last().unwrap(), "line 99");
    }

    #[test]
    fn recording_keeps_reasons_and_never_records_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = run_with(&[
            ("a", Status::Pass),
            ("b", Status::Skip),
            ("c", Status::Skip),
            ("d", Status::Error),
        ]);
        r.checks[2].detail = Some("needs v1".into());
        let old = expected(r#"{"note": "n", "checks": {"b": {"status": "skip", "why": "kept"}}}"#);
        let path = record(dir.path(), &r, Some(&old)).unwrap();
        let e = Expected::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(e.kernel, "k");
        assert_eq!(e.note, "n");
        assert_eq!(e.checks["a"], ExpectedCheck::Status(Status::Pass));
        assert_eq!(e.checks["b"].why(), Some("kept"));
        assert_eq!(e.checks["c"].why(), Some("needs v1"));
        assert!(!e.checks.contains_key("d"));
        assert!(compare(&r, Some(&e), &mut vec![]).len() == 1); // d: unrecorded error
    }

    #[test]
    fn error_cannot_be_expected() {
        assert!(Expected::parse(r#"{"checks": {"a": "error"}}"#).is_err());
        assert!(Expected::parse(r#"{"checks": {"a": "maybe"}}"#).is_err());
        assert!(Expected::parse(r#"{"checks": {}, "bogus": 1}"#).is_err());
    }

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
                ("x", Status::Pass),
                ("y", Status::Fail),
                ("z", Status::Skip),
                ("n", Status::Pass),
                (ROW_KERNEL_CHECK, Status::Pass),
                (ROW_VERIFY, Status::Pass)
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
                ("verify-kernel/linear", Status::Pass),
                ("verify-kernel/tree", Status::Fail),
                ("verify-kernel/runc", Status::Pass),
                ("verify-kernel/lxc", Status::Fail),
                // A report without devcg's verdict is never taken for a pass.
                ("verify-kernel/old", Status::Error),
                (ROW_VERIFY, Status::Fail)
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
        assert!(rows.iter().all(|r| r.status == Status::Error), "{rows:?}");
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
        assert_eq!(rows[0].status, Status::Error);
        assert!(rows[0].detail.as_ref().unwrap().contains("timed out"));
        assert_eq!(rows[1].status, Status::Error);
        let c = Collected {
            steps: vec![step("kernel-check", Some(0), "not json", "")],
            ..Default::default()
        };
        assert_eq!(observe(&c)[0].status, Status::Error);
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
        assert_eq!(rows.last().unwrap().status, Status::Error);
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
