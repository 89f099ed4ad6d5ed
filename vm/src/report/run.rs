//! How one column's run went, and what its console showed.

use std::path::PathBuf;

use serde::Serialize;

use super::Observation;

/// How one column's run went, before looking at any check.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "why")]
pub enum RunOutcome {
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

impl RunOutcome {
    pub fn ran(&self) -> bool {
        matches!(self, RunOutcome::Ran)
    }
    pub fn short(&self) -> &'static str {
        match self {
            RunOutcome::Ran => "ran",
            RunOutcome::Unavailable(_) => "unavailable",
            RunOutcome::BootTimeout(_) => "boot-timeout",
            RunOutcome::RunTimeout(_) => "run-timeout",
            RunOutcome::Panic(_) => "panic",
            RunOutcome::Crashed(_) => "crashed",
            RunOutcome::Interrupted => "interrupted",
        }
    }
    pub fn why(&self) -> Option<&str> {
        match self {
            RunOutcome::Ran | RunOutcome::Interrupted => None,
            RunOutcome::Unavailable(w)
            | RunOutcome::BootTimeout(w)
            | RunOutcome::RunTimeout(w)
            | RunOutcome::Panic(w)
            | RunOutcome::Crashed(w) => Some(w),
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
    pub outcome: RunOutcome,
    /// Seconds from `vng` start until the guest script started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_secs: Option<f64>,
    pub total_secs: f64,
    pub results_dir: PathBuf,
    /// The last console lines (with the first kernel problem, if older):
    /// the table shows them when the outcome is not `ran` or the console
    /// showed a problem, the JUnit report beside every failed case.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
