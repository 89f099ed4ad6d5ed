//! Every column, compared, as a table and as JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::{compare, Difference, Expected, KernelRun, RunOutcome};

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
    /// The expected files the columns were compared with (for the JUnit
    /// report, which shows the expected value of every case).
    #[serde(skip)]
    pub expected: BTreeMap<String, Expected>,
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
            .all(|k| !matches!(k.outcome, RunOutcome::Unavailable(_)));
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
            expected: kernels
                .iter()
                .filter_map(|k| expected.get(&k.name).map(|e| (k.name.clone(), e.clone())))
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
                RunOutcome::Ran => {
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
                RunOutcome::Unavailable(_) => {
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
