//! Figures out of the results: one cell's value for a metric, the plotted
//! series, the cases a table walks.

use std::collections::BTreeMap;

use super::Results;
use crate::exec::Executor;
use crate::workload::{Hit, ListKind};

/// Which kernel figure: what the program adds to open(), or the
/// like-for-like cost of the check (the same for allowed requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// With − without.
    Cost,
    /// See `KernelEstimate::check`.
    Check,
    /// ns per program run from the kernel's run-time statistics (see
    /// `KernelEstimate::run`).
    Run,
}

impl Metric {
    /// How the kernel targets name the figure they judge.
    pub(crate) fn target_label(self) -> &'static str {
        match self {
            Metric::Cost | Metric::Check => "kernel",
            Metric::Run => "kernel, program run time",
        }
    }
}

pub(crate) fn estimate(t: &super::Timing, metric: Metric) -> Option<&crate::measure::Estimate> {
    match metric {
        Metric::Cost => Some(&t.est),
        Metric::Check => t.check.as_ref().or(Some(&t.est)),
        Metric::Run => t.run.as_ref(),
    }
}

pub(crate) fn value_of(
    r: &Results,
    ex: Executor,
    metric: Metric,
    si: usize,
    list: ListKind,
    n: usize,
    hit: Hit,
) -> Result<f64, String> {
    match r.cell(ex, si, list, n, hit) {
        Some(Ok(t)) => estimate(t, metric)
            .map(|e| e.median_ns)
            .ok_or_else(|| "not measured".into()),
        Some(Err(e)) => Err(e.clone()),
        None => Err("not measured".into()),
    }
}

pub(crate) fn value(
    r: &Results,
    ex: Executor,
    si: usize,
    list: ListKind,
    n: usize,
    hit: Hit,
) -> Result<f64, String> {
    value_of(r, ex, Metric::Cost, si, list, n, hit)
}

pub(crate) fn cases() -> impl Iterator<Item = (ListKind, Hit)> {
    ListKind::ALL
        .into_iter()
        .flat_map(|l| Hit::ALL.into_iter().map(move |h| (l, h)))
}

pub(crate) fn case_name(list: ListKind, hit: Hit) -> String {
    format!("{}, {}", list.name(), hit.name())
}

/// The plotted series of one figure: (rule count, ns) per strategy, points
/// at or below zero left out.
pub fn series_of(
    r: &Results,
    executor: Executor,
    metric: Metric,
    list: ListKind,
    hit: Hit,
) -> BTreeMap<usize, Vec<(usize, f64)>> {
    let mut out = BTreeMap::new();
    for si in 0..r.strategies.len() {
        let pts: Vec<(usize, f64)> = r
            .config
            .sizes
            .iter()
            .filter_map(|&n| {
                value_of(r, executor, metric, si, list, n, hit)
                    .ok()
                    .map(|v| (n, v))
            })
            .filter(|&(_, v)| v > 0.0)
            .collect();
        out.insert(si, pts);
    }
    out
}
