//! What the criterion benches share: the strategies, rule lists and
//! compiled programs to run, narrowed by environment variables (criterion
//! owns the command line):
//!
//! * `DEVCG_BENCH_SIZES=10,1000` — rule counts (default: all of [`SIZES`]);
//! * `DEVCG_BENCH_STRATEGIES=linear,tree` — strategies (default: all).

use devcg_engine::{strategy, Program, Strategy};
use devcg_kernel::device::Drivers;

use crate::workload::{ListKind, Workload, WorkloadError, SEED, SIZES};

/// A rule list compiled by one strategy (or the strategy's refusal).
pub struct Case {
    pub strategy: &'static str,
    pub workload: Workload,
    pub program: Result<Program, String>,
}

impl Case {
    /// `linear/allow/1000`.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.strategy,
            self.workload.list.slug(),
            self.workload.n
        )
    }
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name).ok().map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

pub fn sizes() -> Vec<usize> {
    env_list("DEVCG_BENCH_SIZES")
        .map(|v| {
            v.iter()
                .filter_map(|s| s.replace('_', "").parse().ok())
                .collect()
        })
        .unwrap_or_else(|| SIZES.to_vec())
}

pub fn strategies() -> Vec<Box<dyn Strategy>> {
    match env_list("DEVCG_BENCH_STRATEGIES") {
        None => strategy::all(),
        Some(names) => strategy::all()
            .into_iter()
            .filter(|s| names.iter().any(|n| n == s.name()))
            .collect(),
    }
}

/// The rule lists, requests avoiding majors with a driver here.
pub fn workloads() -> Result<Vec<Workload>, WorkloadError> {
    let drivers = Drivers::read().unwrap_or_default();
    let has_driver = |t, m| drivers.has_driver(t, m);
    let mut out = Vec::new();
    for list in ListKind::ALL {
        for n in sizes() {
            out.push(Workload::new(list, n, SEED, &has_driver)?);
        }
    }
    Ok(out)
}

/// Every strategy on every rule list.
pub fn cases() -> Result<Vec<Case>, WorkloadError> {
    let workloads = workloads()?;
    let mut out = Vec::new();
    for s in strategies() {
        for w in &workloads {
            out.push(Case {
                strategy: s.name(),
                workload: w.clone(),
                program: s.compile(&w.rules).map_err(|e| e.to_string()),
            });
        }
    }
    Ok(out)
}
