//! BENCHMARKS.md from fixed results: the rendering must not change by
//! accident. Two synthetic runs (a full one with the kernel, every kind of
//! n/a cell, verdicts that differ from the oracle's; a quick one without
//! the kernel or `linear`) are rendered and compared byte for byte with
//! `tests/golden/`. After a deliberate change of the text, regenerate with
//! `DEVCG_UPDATE_GOLDEN=1 cargo test -p devcg-benches --test report_golden`
//! and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use devcg_benches::exec::Executor;
use devcg_benches::kernel::KernelEstimate;
use devcg_benches::measure::{CommandRun, Estimate};
use devcg_benches::report::machine::Machine;
use devcg_benches::report::{
    markdown, CellKey, Config, DifferentialRow, ExhaustiveRow, ExhaustiveRun, Results,
    StrategyInfo, Timing,
};
use devcg_benches::workload::{Hit, ListKind, Workload, SEED, SIZES};

fn est(median_ns: f64, half: f64) -> Estimate {
    Estimate {
        median_ns,
        low_ns: median_ns - half,
        high_ns: median_ns + half,
        samples: 11,
        iters_per_sample: 100,
    }
}

/// What a strategy's decision costs at `n` rules, ns: `linear` grows with
/// n, the others hardly.
fn figure(base: f64, si: usize, n: usize, hit: Hit) -> f64 {
    let n = n as f64;
    let grow = match si {
        0 => n * 0.9,
        1 => n.log2().max(0.0) * 1.7,
        _ => n * 1.3,
    };
    let hit = if hit == Hit::Match { grow / 2.0 } else { grow };
    base + hit
}

fn machine() -> Machine {
    Machine {
        cpu: "Test CPU @ 3.00GHz".into(),
        cores: 2,
        kernel: "6.18.0-test".into(),
        bpf_jit: "1".into(),
        rustc: "rustc 1.90.0 (test)".into(),
        load_start: "0.42".into(),
    }
}

fn workloads(sizes: &[usize]) -> Vec<Workload> {
    let mut out = Vec::new();
    for list in ListKind::ALL {
        for &n in sizes {
            out.push(Workload::new(list, n, SEED, &|_, _| false).expect("a workload"));
        }
    }
    out
}

/// A full run with the kernel, three strategies (two of devcg's, one
/// model), a refused program, a JIT limit, a wrong verdict, missing run
/// times and a failed floor.
fn full() -> Results {
    let strategies = vec![
        StrategyInfo {
            name: "linear",
            own: true,
        },
        StrategyInfo {
            name: "tree",
            own: true,
        },
        StrategyInfo {
            name: "runc",
            own: false,
        },
    ];
    let sizes = SIZES.to_vec();
    let workloads = workloads(&sizes);
    let mut slots = BTreeMap::new();
    let mut cells = BTreeMap::new();
    for si in 0..strategies.len() {
        for list in ListKind::ALL {
            for &n in &sizes {
                // The model refuses the largest deny list.
                let refused = si == 2 && n == 10_000 && list == ListKind::Deny;
                slots.insert(
                    (si, list, n),
                    if refused {
                        Err("runc: too many rules".to_string())
                    } else {
                        Ok(4 + n * (si + 2))
                    },
                );
                for hit in Hit::ALL {
                    for executor in Executor::ALL {
                        let key = CellKey {
                            executor,
                            strategy: si,
                            list,
                            n,
                            hit,
                        };
                        if refused {
                            cells.insert(key, Err("runc: too many rules".to_string()));
                            continue;
                        }
                        let cell = match executor {
                            Executor::Jit if n == 10_000 && si == 0 => {
                                Err("rbpf's JIT: program too long\nfor its buffer".to_string())
                            }
                            Executor::Kernel if si == 2 && n >= 1_000 => {
                                Err("the kernel refuses the program: E2BIG".to_string())
                            }
                            Executor::Interp | Executor::Jit => {
                                let base = if executor == Executor::Interp {
                                    80.0
                                } else {
                                    6.0
                                };
                                let v = figure(base, si, n, hit);
                                Ok(Timing {
                                    est: est(v, v / 20.0),
                                    wrong: (si == 2 && n == 100 && hit == Hit::Match)
                                        .then(|| "program deny, oracle allow".to_string()),
                                    open_ns: None,
                                    check: None,
                                    run: None,
                                })
                            }
                            Executor::Kernel => {
                                let v = figure(20.0, si, n, hit) / 10.0;
                                let denied = workloads
                                    .iter()
                                    .find(|w| w.list == list)
                                    .map(|w| w.expected(hit))
                                    == Some(devcg_engine::Verdict::Deny);
                                // A denial skips the rest of open(): below
                                // the check's cost, even negative.
                                let cost = if denied { v - 40.0 } else { v };
                                // Below zero once: no ratio to judge.
                                let check = if si == 1 && n == 10 && list == ListKind::Deny {
                                    -2.0
                                } else {
                                    v + 3.0
                                };
                                // `tree`'s own run time hardly grows.
                                let run = if si == 1 {
                                    0.9 + (n as f64).log10() * 0.01
                                } else {
                                    v / 3.0
                                };
                                Ok(Timing {
                                    est: est(cost, 12.5),
                                    wrong: None,
                                    open_ns: Some((1_500.0 + n as f64, 1_500.0 + n as f64 + v)),
                                    check: denied.then(|| est(check, 9.0)),
                                    run: (si != 1 || n != 1).then(|| est(run, 0.4)),
                                })
                            }
                        };
                        cells.insert(key, cell);
                    }
                }
            }
        }
    }
    let floor = KernelEstimate {
        cost: est(4.2, 1.1),
        check: est(4.2, 1.1),
        open_ns: 1_480.0,
        with_ns: 1_484.2,
        run: Some(est(9.5, 0.2)),
    };
    let differential = (0..strategies.len())
        .map(|si| DifferentialRow {
            strategy: si,
            rule_sets: 3_000,
            checks: 192_000,
            divergences: if si == 2 { 17 } else { 0 },
            refused: if si == 2 { 3 } else { 0 },
            elapsed: Duration::from_millis(1_234 + 400 * si as u64),
        })
        .collect();
    // A command run: its wall time, and a peak memory that grows with it.
    let cmd = |ms: u64| CommandRun {
        wall: Duration::from_millis(ms),
        max_rss_kib: 60 * 1024 + ms,
    };
    let exhaustive = vec![
        ExhaustiveRow {
            strategy: 0,
            list: ListKind::Allow,
            n: 1_000,
            result: Ok(ExhaustiveRun {
                classes: 2_345,
                differences: 0,
                elapsed: Duration::from_millis(612),
            }),
            cli: Some(Ok(cmd(734))),
        },
        ExhaustiveRow {
            strategy: 0,
            list: ListKind::Deny,
            n: 1_000,
            result: Ok(ExhaustiveRun {
                classes: 2_301,
                differences: 0,
                elapsed: Duration::from_millis(1_590),
            }),
            cli: Some(Err("devcg exited with 2: boom".to_string())),
        },
        ExhaustiveRow {
            strategy: 1,
            list: ListKind::Allow,
            n: 1_000,
            result: Ok(ExhaustiveRun {
                classes: 2_345,
                differences: 0,
                elapsed: Duration::from_millis(88),
            }),
            cli: Some(Ok(cmd(97))),
        },
        ExhaustiveRow {
            strategy: 1,
            list: ListKind::Deny,
            n: 1_000,
            result: Ok(ExhaustiveRun {
                classes: 2_301,
                differences: 0,
                elapsed: Duration::from_millis(91),
            }),
            cli: Some(Ok(cmd(12_345))),
        },
        ExhaustiveRow {
            strategy: 2,
            list: ListKind::Allow,
            n: 1_000,
            result: Ok(ExhaustiveRun {
                classes: 2_345,
                differences: 12,
                elapsed: Duration::from_millis(4_321),
            }),
            cli: None,
        },
        ExhaustiveRow {
            strategy: 2,
            list: ListKind::Deny,
            n: 1_000,
            result: Err("runc: too many rules".to_string()),
            cli: None,
        },
        ExhaustiveRow {
            strategy: 1,
            list: ListKind::Allow,
            n: 10_000,
            result: Ok(ExhaustiveRun {
                classes: 13_637_240,
                differences: 0,
                elapsed: Duration::from_millis(1_512),
            }),
            cli: Some(Ok(cmd(1_650))),
        },
    ];
    Results {
        config: Config {
            quick: false,
            out_dir: PathBuf::from("."),
            seed: SEED,
            sizes,
            strategies: None,
            no_kernel: false,
            devcg_bin: Some(PathBuf::from("target/release/devcg")),
            command: "scripts/bench.sh".into(),
        },
        machine: machine(),
        started: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        wall: Duration::from_millis(245_678),
        load_end: "1.05".into(),
        strategies,
        workloads,
        slots,
        cells,
        kernel_skipped: None,
        kernel_floor: Some([Ok(floor), Err("the kernel answered EACCES".to_string())]),
        kernel_run_unavailable: None,
        differential,
        exhaustive,
    }
}

/// A quick run without the kernel, without `linear`, on three sizes, run
/// times unavailable, exhaustive mode in process only.
fn quick() -> Results {
    let strategies = vec![
        StrategyInfo {
            name: "map",
            own: true,
        },
        StrategyInfo {
            name: "crun",
            own: false,
        },
    ];
    let sizes = vec![1, 10, 100];
    let workloads = workloads(&sizes);
    let mut slots = BTreeMap::new();
    let mut cells = BTreeMap::new();
    for si in 0..strategies.len() {
        for list in ListKind::ALL {
            for &n in &sizes {
                slots.insert((si, list, n), Ok(10 + n));
                for hit in Hit::ALL {
                    for executor in [Executor::Interp, Executor::Jit] {
                        let v = figure(3.0, si + 1, n, hit);
                        cells.insert(
                            CellKey {
                                executor,
                                strategy: si,
                                list,
                                n,
                                hit,
                            },
                            Ok(Timing {
                                est: est(v, 0.25),
                                wrong: None,
                                open_ns: None,
                                check: None,
                                run: None,
                            }),
                        );
                    }
                }
            }
        }
    }
    Results {
        config: Config {
            quick: true,
            out_dir: PathBuf::from("target/bench-quick"),
            seed: 7,
            sizes,
            strategies: Some(vec!["map".into(), "crun".into()]),
            no_kernel: true,
            devcg_bin: None,
            command: "scripts/bench.sh --quick --no-kernel".into(),
        },
        machine: machine(),
        started: UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_661),
        wall: Duration::from_millis(9_876),
        load_end: "0.99".into(),
        strategies,
        workloads,
        slots,
        cells,
        kernel_skipped: Some("skipped: --no-kernel".into()),
        kernel_floor: None,
        kernel_run_unavailable: Some("BPF_ENABLE_STATS failed: EINVAL".into()),
        differential: vec![DifferentialRow {
            strategy: 0,
            rule_sets: 300,
            checks: 19_200,
            divergences: 0,
            refused: 0,
            elapsed: Duration::from_micros(87_654),
        }],
        exhaustive: vec![ExhaustiveRow {
            strategy: 0,
            list: ListKind::Allow,
            n: 1_000,
            result: Ok(ExhaustiveRun {
                classes: 2_345,
                differences: 0,
                elapsed: Duration::from_millis(321),
            }),
            cli: None,
        }],
    }
}

fn check(name: &str, results: &Results) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let got = markdown::render(results);
    if std::env::var_os("DEVCG_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (DEVCG_UPDATE_GOLDEN=1 writes it)", path.display()));
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or(got.lines().count().min(want.lines().count()), |i| i);
        panic!(
            "{} differs from the rendering, first at line {}:\n  rendered: {:?}\n  golden:   {:?}",
            path.display(),
            line + 1,
            got.lines().nth(line),
            want.lines().nth(line)
        );
    }
}

#[test]
fn full_run_renders_as_golden() {
    check("full.md", &full());
}

#[test]
fn quick_run_without_kernel_renders_as_golden() {
    check("quick.md", &quick());
}
