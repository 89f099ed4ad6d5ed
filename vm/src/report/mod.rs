//! The matrix kernel x check: what each column observed (`observe`), how
//! its run went (`run`), the expected outcomes per kernel
//! (`vm/expected/<kernel>.json`, `expected`), the comparison of the two
//! (`compare`), the table and JSON that show it (`matrix`) and the JUnit
//! XML for CI (`junit`); two kernels compared and one check as a bisect
//! verdict (`bisect`).

pub mod bisect;
mod compare;
mod expected;
mod junit;
mod matrix;
mod observe;
mod run;

pub use compare::{compare, Difference};
pub use expected::{record, Expected, ExpectedCheck};
pub use junit::{junit, RUN_CASE};
pub use matrix::Matrix;
pub use observe::{observe, CheckStatus, Observation, ROW_KERNEL_CHECK, ROW_VERIFY, V1_SUFFIX};
pub use run::{console_excerpt, kernel_problems, KernelRun, RunOutcome};

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;

    use super::*;

    pub(crate) fn run_with(checks: &[(&str, CheckStatus)]) -> KernelRun {
        KernelRun {
            name: "k".into(),
            host: false,
            package: None,
            package_version: None,
            release: Some("6.1.0".into()),
            outcome: RunOutcome::Ran,
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

    pub(crate) fn expected(json: &str) -> Expected {
        Expected::parse(json).unwrap()
    }
}
