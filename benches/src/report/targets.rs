//! The goals the report judges, each measured against its target.

use super::data::{case_name, cases, value, value_of, Metric};
use super::markdown::{ns, secs, thousands};
use super::Results;
use crate::exec::Executor;
use crate::workload::{Hit, ListKind};

/// One evaluated target.
pub struct Target {
    pub name: String,
    pub goal: String,
    pub measured: String,
    /// `None`: could not be evaluated in this run.
    pub met: Option<bool>,
}

pub(crate) fn all_met(results: &[Option<bool>]) -> Option<bool> {
    let judged: Vec<bool> = results.iter().flatten().copied().collect();
    if judged.is_empty() {
        None
    } else {
        Some(judged.iter().all(|&m| m))
    }
}

/// Our strategy with the lowest kernel figure `metric` at 10,000 rules
/// (allow list, no match: the worst case of a chain), or why there is none.
pub(crate) fn fastest_in_kernel(r: &Results, metric: Metric) -> Result<usize, String> {
    let at_10k = |si| {
        value_of(
            r,
            Executor::Kernel,
            metric,
            si,
            ListKind::Allow,
            10_000,
            Hit::NoMatch,
        )
    };
    let own: Vec<usize> = (0..r.strategies.len())
        .filter(|&si| r.strategies[si].own)
        .collect();
    let best = own
        .iter()
        .filter_map(|&si| at_10k(si).ok().map(|v| (si, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((si, _)) => Ok(si),
        None => Err(own
            .iter()
            .find_map(|&si| at_10k(si).err())
            .unwrap_or_else(|| "no own strategy was measured at 10,000 rules".into())),
    }
}

pub(crate) const KERNEL_TARGETS: [(&str, &str); 2] = [
    ("fastest at 10,000 rules vs 10 rules", "≤ 1.5x"),
    ("fastest at 1,000 rules vs `linear`", "≥ 20x less"),
];

/// The two kernel targets judged on `metric`, for the strategy of ours
/// with the lowest `metric` at 10,000 rules.
pub(crate) fn kernel_targets(r: &Results, metric: Metric, out: &mut Vec<Target>) {
    let linear = r.strategy_index("linear");
    let fastest = match (&r.kernel_skipped, fastest_in_kernel(r, metric)) {
        (Some(why), _) => Err(format!("not measured: {why}")),
        (None, Err(why)) => Err(format!("not measured at 10,000 rules: {why}")),
        (None, Ok(f)) => Ok(f),
    };
    match fastest {
        Err(measured) => {
            for (name, goal) in KERNEL_TARGETS {
                out.push(Target {
                    name: format!("{}: {name}", metric.target_label()),
                    goal: goal.into(),
                    measured: measured.clone(),
                    met: None,
                });
            }
        }
        Ok(f) => {
            let fname = r.strategies[f].name;
            let mut parts = Vec::new();
            let mut met = Vec::new();
            for (list, hit) in cases() {
                let m = metric;
                let a = value_of(r, Executor::Kernel, m, f, list, 10, hit);
                let b = value_of(r, Executor::Kernel, m, f, list, 10_000, hit);
                match (a, b) {
                    (Ok(a), Ok(b)) if a > 0.0 => {
                        let ratio = b / a;
                        met.push(Some(ratio <= 1.5));
                        parts.push(format!(
                            "{}: {ratio:.2}x ({} → {} ns)",
                            case_name(list, hit),
                            ns(a),
                            ns(b)
                        ));
                    }
                    (Ok(a), Ok(b)) => {
                        met.push(None);
                        parts.push(format!(
                            "{}: not a ratio ({} → {} ns: the cost at 10 rules is not above zero)",
                            case_name(list, hit),
                            ns(a),
                            ns(b)
                        ));
                    }
                    (a, b) => {
                        met.push(None);
                        let why = a.err().or(b.err()).unwrap_or_default();
                        parts.push(format!("{}: n/a ({why})", case_name(list, hit)));
                    }
                }
            }
            out.push(Target {
                name: format!(
                    "{}: `{fname}` at 10,000 rules vs 10 rules",
                    metric.target_label()
                ),
                goal: "≤ 1.5x".into(),
                measured: parts.join("; "),
                met: all_met(&met),
            });
            let mut parts = Vec::new();
            let mut met = Vec::new();
            for (list, hit) in cases() {
                let m = metric;
                let l = linear
                    .ok_or_else(|| "linear not run".to_string())
                    .and_then(|li| value_of(r, Executor::Kernel, m, li, list, 1_000, hit));
                let b = value_of(r, Executor::Kernel, m, f, list, 1_000, hit);
                match (l, b) {
                    (Ok(l), Ok(b)) if b > 0.0 => {
                        let ratio = l / b;
                        met.push(Some(ratio >= 20.0));
                        parts.push(format!(
                            "{}: {ratio:.1}x less ({} vs linear {} ns)",
                            case_name(list, hit),
                            ns(b),
                            ns(l)
                        ));
                    }
                    (Ok(l), Ok(b)) => {
                        met.push(None);
                        parts.push(format!(
                            "{}: not a ratio ({} ns vs linear {} ns)",
                            case_name(list, hit),
                            ns(b),
                            ns(l)
                        ));
                    }
                    (Err(e), _) => {
                        met.push(None);
                        parts.push(format!("{}: linear n/a ({e})", case_name(list, hit)));
                    }
                    (_, Err(e)) => {
                        met.push(None);
                        parts.push(format!("{}: n/a ({e})", case_name(list, hit)));
                    }
                }
            }
            out.push(Target {
                name: format!(
                    "{}: `{fname}` at 1,000 rules vs `linear`",
                    metric.target_label()
                ),
                goal: "≥ 20x less".into(),
                measured: parts.join("; "),
                met: all_met(&met),
            });
        }
    }
}

pub fn targets(r: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let linear = r.strategy_index("linear");

    // 1 to 4: the kernel, on open() like for like (the figure),
    // then on the program's own run time (bpf_stats).
    kernel_targets(r, Metric::Check, &mut out);
    kernel_targets(r, Metric::Run, &mut out);

    // 3: the emulator.
    let mut parts = Vec::new();
    let mut met = Vec::new();
    for (list, hit) in cases() {
        match linear
            .ok_or_else(|| "linear not run".to_string())
            .and_then(|li| value(r, Executor::Interp, li, list, 10, hit))
        {
            Ok(v) if v > 0.0 => {
                let per_s = 1e9 / v;
                met.push(Some(per_s >= 1e6));
                parts.push(format!(
                    "{}: {} checks/s",
                    case_name(list, hit),
                    thousands(per_s as u64)
                ));
            }
            Ok(_) => met.push(None),
            Err(e) => {
                met.push(None);
                parts.push(format!("{}: n/a ({e})", case_name(list, hit)));
            }
        }
    }
    out.push(Target {
        name: "emulator: 10-rule `linear`, one core".into(),
        goal: "≥ 1,000,000 checks/s".into(),
        measured: parts.join("; "),
        met: all_met(&met),
    });

    // 4 and 5: exhaustive mode, our fastest strategy, at 1,000 and 10,000
    // rules (the latter with its memory).
    exhaustive_target(r, 1_000, 1.0, None, &mut out);
    exhaustive_target(r, 10_000, 2.0, Some(200 * 1024), &mut out);
    out
}

/// The `verify --exhaustive` target at `n` rules for our fastest strategy
/// on the allow list: under `limit_s` seconds (and `max_kib` of peak
/// memory, where given) on every list measured.
pub(crate) fn exhaustive_target(
    r: &Results,
    n: usize,
    limit_s: f64,
    max_kib: Option<u64>,
    out: &mut Vec<Target>,
) {
    let time_of = |row: &super::ExhaustiveRow| -> Option<std::time::Duration> {
        match &row.cli {
            Some(Ok(c)) => Some(c.wall),
            Some(Err(_)) => None,
            None => row.result.as_ref().ok().map(|x| x.elapsed),
        }
    };
    let rows = || r.exhaustive.iter().filter(|row| row.n == n);
    let best = rows()
        .filter(|row| r.strategies[row.strategy].own && row.list == ListKind::Allow)
        .filter_map(|row| time_of(row).map(|d| (row.strategy, d)))
        .min_by_key(|x| x.1);
    let goal = match max_kib {
        None => format!("< {limit_s} s"),
        Some(k) => format!("< {limit_s} s, < {} MB", k / 1024),
    };
    let Some((si, _)) = best else {
        out.push(Target {
            name: format!("`verify --exhaustive` on {} rules", thousands(n as u64)),
            goal,
            measured: "not measured".into(),
            met: None,
        });
        return;
    };
    let mut parts = Vec::new();
    let mut met = Vec::new();
    for row in rows().filter(|row| row.strategy == si) {
        match time_of(row) {
            Some(d) => {
                let rss = match (&row.cli, max_kib) {
                    (Some(Ok(c)), Some(limit)) => {
                        met.push(Some(c.max_rss_kib < limit));
                        format!(", {} MB peak", c.max_rss_kib / 1024)
                    }
                    (_, Some(_)) => {
                        met.push(None);
                        ", memory not measured".to_string()
                    }
                    _ => String::new(),
                };
                met.push(Some(d.as_secs_f64() < limit_s));
                parts.push(format!("{}: {}{rss}", row.list.name(), secs(d)));
            }
            None => {
                met.push(None);
                parts.push(format!("{}: n/a", row.list.name()));
            }
        }
    }
    let how = if rows().any(|row| row.cli.is_some()) {
        "the `devcg` command: wall time, peak resident memory"
    } else {
        "in process, compile included"
    };
    out.push(Target {
        name: format!(
            "`verify --exhaustive` on {} rules, `{}`",
            thousands(n as u64),
            r.strategies[si].name
        ),
        goal,
        measured: format!("{} ({how})", parts.join("; ")),
        met: all_met(&met),
    });
}
