//! The report's phases, in the order `run` calls them: choose and compile
//! (`prepare`), time the userspace executors (`userspace`) and the kernel
//! (`kernel`), the differential's throughput (`differential`) and the
//! exhaustive mode (`exhaustive`). Each phase adds to the results; none
//! renders anything.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use devcg_differential::sampled::{self, SampleConfig};
use devcg_emulator::Emulator;
use devcg_engine::{strategy, Program, Strategy};
use devcg_kernel::device::{Device, Drivers};

use super::{
    wrong, Cell, CellKey, Config, DifferentialRow, ExhaustiveRow, ExhaustiveRun, ReportError,
    StrategyInfo, Timing,
};
use crate::exec::{Executor, Jit};
use crate::kernel::{
    CaseRounds, KernelBench, KernelBenchError, KernelCase, KernelEstimate, KernelPlan,
};
use crate::measure::{sample_values, Estimate};
use crate::workload::{Hit, ListKind, Workload};

pub(super) fn progress(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

fn device(req: &devcg_engine::Request) -> Device {
    Device::new(req.ty, req.major, req.minor)
}

/// The strategies and rule lists of the run, every program compiled once.
pub(super) struct Prepared {
    pub chosen: Vec<Box<dyn Strategy>>,
    pub strategies: Vec<StrategyInfo>,
    pub workloads: Vec<Workload>,
    pub programs: BTreeMap<(usize, ListKind, usize), Result<Program, String>>,
    pub slots: BTreeMap<(usize, ListKind, usize), Result<usize, String>>,
    /// (strategy, rule list) in report order.
    pub pairs: Vec<(usize, usize)>,
}

impl Prepared {
    fn key(&self, executor: Executor, (si, wi): (usize, usize), hit: Hit) -> CellKey {
        CellKey {
            executor,
            strategy: si,
            list: self.workloads[wi].list,
            n: self.workloads[wi].n,
            hit,
        }
    }

    fn program(&self, (si, wi): (usize, usize)) -> &Result<Program, String> {
        let w = &self.workloads[wi];
        &self.programs[&(si, w.list, w.n)]
    }

    /// Requests avoid majors with a driver here (readable without root).
    fn has_driver() -> impl Fn(devcg_engine::DeviceType, u32) -> bool {
        let drivers = Drivers::read().unwrap_or_default();
        move |t, m| drivers.has_driver(t, m)
    }
}

/// Chooses the strategies, draws the rule lists and compiles everything.
pub(super) fn prepare(config: &Config) -> Result<Prepared, ReportError> {
    let all = strategy::all();
    let chosen: Vec<Box<dyn Strategy>> = match &config.strategies {
        None => all,
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                out.push(
                    strategy::by_name(n).ok_or_else(|| ReportError::UnknownStrategy(n.clone()))?,
                );
            }
            out
        }
    };
    let strategies: Vec<StrategyInfo> = chosen
        .iter()
        .map(|s| StrategyInfo {
            name: s.name(),
            own: s.is_own(),
        })
        .collect();

    let has_driver = Prepared::has_driver();
    let mut workloads = Vec::new();
    for list in ListKind::ALL {
        for &n in &config.sizes {
            workloads.push(Workload::new(list, n, config.seed, &has_driver)?);
        }
    }
    progress(format!(
        "{} rule lists, {} strategies",
        workloads.len(),
        chosen.len()
    ));

    // Compile everything once.
    let mut programs: BTreeMap<(usize, ListKind, usize), Result<Program, String>> = BTreeMap::new();
    let mut slots = BTreeMap::new();
    for (si, s) in chosen.iter().enumerate() {
        for w in &workloads {
            let p = s.compile(&w.rules).map_err(|e| e.to_string());
            slots.insert(
                (si, w.list, w.n),
                p.as_ref().map(Program::len).map_err(Clone::clone),
            );
            programs.insert((si, w.list, w.n), p);
        }
    }

    let pairs: Vec<(usize, usize)> = (0..chosen.len())
        .flat_map(|si| (0..workloads.len()).map(move |wi| (si, wi)))
        .collect();
    Ok(Prepared {
        chosen,
        strategies,
        workloads,
        programs,
        slots,
        pairs,
    })
}

/// rbpf's interpreter and JIT on every program: prepared once, sampled in
/// passes.
pub(super) fn userspace(p: &Prepared, config: &Config, cells: &mut BTreeMap<CellKey, Cell>) {
    let sampling = config.sampling();
    let (pairs, workloads) = (&p.pairs, &p.workloads);
    let key = |executor, pair, hit| p.key(executor, pair, hit);

    // Userspace: interpreter and JIT, prepared once, sampled in passes.
    progress("userspace: preparing emulators and JIT code");
    let emulators: Vec<Result<Emulator, String>> = pairs
        .iter()
        .map(|&(si, wi)| {
            let program = p.program((si, wi)).as_ref().map_err(Clone::clone)?;
            Emulator::new(program).map_err(|e| format!("the emulator refuses the program: {e}"))
        })
        .collect();
    let jits: Vec<Result<Jit<'_>, String>> = pairs
        .iter()
        .zip(&emulators)
        .map(|(&(si, wi), emu)| {
            let emu = emu.as_ref().map_err(Clone::clone)?;
            let w = &workloads[wi];
            let program = p.program((si, wi)).as_ref().expect("the emulator took it");
            let jit = Jit::new(emu, program).map_err(|e| e.to_string())?;
            jit.cross_check(emu, &[w.matching, w.no_match])
                .map_err(|e| e.to_string())?;
            Ok(jit)
        })
        .collect();
    // The cells that can be timed, with their verdict checks; the others
    // get their reason now.
    struct Job {
        key: CellKey,
        pair: usize,
        req: devcg_engine::Request,
        wrong: Option<String>,
        values: Vec<f64>,
        batch: u64,
    }
    let mut jobs = Vec::new();
    for (k, &pair) in pairs.iter().enumerate() {
        let w = &workloads[pair.1];
        for hit in Hit::ALL {
            let req = w.request(hit);
            let interp = match &emulators[k] {
                Err(e) => Err(e.clone()),
                Ok(emu) => emu
                    .run(&req)
                    .map_err(|e| format!("the emulator cannot run {req}: {e}")),
            };
            let jit = match &jits[k] {
                Err(e) => Err(e.clone()),
                Ok(j) => j.run(&req).map_err(|e| e.to_string()),
            };
            for (executor, verdict) in [(Executor::Interp, interp), (Executor::Jit, jit)] {
                let key = key(executor, pair, hit);
                match verdict {
                    Err(e) => {
                        cells.insert(key, Err(e));
                    }
                    Ok(v) => jobs.push(Job {
                        key,
                        pair: k,
                        req,
                        wrong: wrong(v, w.expected(hit)),
                        values: Vec::new(),
                        batch: 0,
                    }),
                }
            }
        }
    }
    for pass in 0..sampling.passes.max(1) {
        progress(format!(
            "userspace: pass {} of {}, {} cells",
            pass + 1,
            sampling.passes.max(1),
            jobs.len()
        ));
        for job in &mut jobs {
            let req = job.req;
            let (values, batch) = match job.key.executor {
                Executor::Jit => {
                    let jit = jits[job.pair].as_ref().expect("timed only if compiled");
                    sample_values(&sampling, |iters| {
                        let t = Instant::now();
                        for _ in 0..iters {
                            let _ = black_box(jit.run(black_box(&req)));
                        }
                        t.elapsed()
                    })
                }
                _ => {
                    let emu = emulators[job.pair]
                        .as_ref()
                        .expect("timed only if verified");
                    sample_values(&sampling, |iters| {
                        let t = Instant::now();
                        for _ in 0..iters {
                            let _ = black_box(emu.run(black_box(&req)));
                        }
                        t.elapsed()
                    })
                }
            };
            job.values.extend(values);
            job.batch = batch;
        }
    }
    for job in jobs {
        cells.insert(
            job.key,
            Ok(Timing {
                est: Estimate::from_values(job.values, job.batch),
                wrong: job.wrong,
                open_ns: None,
                check: None,
                run: None,
            }),
        );
    }
    drop(jits);
    drop(emulators);
}

/// What the kernel phase found besides its cells.
#[derive(Default)]
pub(super) struct KernelOutcome {
    pub skipped: Option<String>,
    pub floor: Option<[Result<KernelEstimate, String>; 2]>,
    pub run_unavailable: Option<String>,
}

/// The kernel: programs loaded once, measured in passes.
pub(super) fn kernel(
    p: &Prepared,
    config: &Config,
    cells: &mut BTreeMap<CellKey, Cell>,
) -> Result<KernelOutcome, ReportError> {
    // The kernel: programs loaded once, measured in passes.
    let mut outcome = KernelOutcome::default();
    let (pairs, workloads, chosen) = (&p.pairs, &p.workloads, &p.chosen);
    let key = |executor, pair, hit| p.key(executor, pair, hit);
    if config.no_kernel {
        outcome.skipped = Some("skipped: --no-kernel".to_string());
    } else {
        let devices: Vec<Device> = workloads
            .iter()
            .flat_map(|w| [device(&w.matching), device(&w.no_match)])
            .collect();
        match KernelBench::new(&devices) {
            Err(KernelBenchError::Skip(why)) => outcome.skipped = Some(why),
            Err(e) => return Err(e.into()),
            Ok(mut kb) => {
                let plan = config.kernel_plan();
                progress("kernel: constant programs");
                if let Some(&dev) = devices.first() {
                    let pooled = KernelPlan {
                        rounds: plan.rounds * plan.passes.max(1),
                        ..plan
                    };
                    let [a, d] = kb.floor(dev, &pooled)?;
                    outcome.floor = Some([a.map_err(|e| e.0), d.map_err(|e| e.0)]);
                }
                let mut loaded = Vec::new();
                for &pair in pairs {
                    let (si, wi) = pair;
                    let w = &workloads[wi];
                    let fail = |cells: &mut BTreeMap<CellKey, Cell>, why: String| {
                        for hit in Hit::ALL {
                            cells.insert(key(Executor::Kernel, pair, hit), Err(why.clone()));
                        }
                    };
                    let program = match p.program(pair) {
                        Ok(p) => p,
                        Err(e) => {
                            fail(cells, e.clone());
                            continue;
                        }
                    };
                    if config.quick && w.n > Config::QUICK_KERNEL_MAX_RULES {
                        fail(
                            cells,
                            format!(
                                "not run in quick mode (kernel loads stop at {} rules)",
                                Config::QUICK_KERNEL_MAX_RULES
                            ),
                        );
                        continue;
                    }
                    progress(format!(
                        "kernel: loading {} for the {} of {} rules",
                        chosen[si].name(),
                        w.list.name(),
                        w.n
                    ));
                    let prog = match devcg_kernel::bpf::load(program, chosen[si].name()) {
                        Ok(l) => l,
                        Err(e) => {
                            fail(cells, format!("the kernel refuses the program: {e}"));
                            continue;
                        }
                    };
                    // Expect what the program decides (the emulator's
                    // verdict where it runs it); cells mark where that is
                    // not the oracle's.
                    let emulator = Emulator::new(program).ok();
                    let cases: Vec<KernelCase> = Hit::ALL
                        .iter()
                        .map(|&hit| {
                            let req = w.request(hit);
                            let expect = emulator
                                .as_ref()
                                .and_then(|e| e.run(&req).ok())
                                .unwrap_or(w.expected(hit));
                            KernelCase {
                                device: device(&req),
                                expect,
                            }
                        })
                        .collect();
                    loaded.push((pair, prog, cases));
                }
                let mut pooled: BTreeMap<CellKey, Result<CaseRounds, String>> = BTreeMap::new();
                for pass in 0..plan.passes.max(1) {
                    progress(format!(
                        "kernel: pass {} of {}, {} programs",
                        pass + 1,
                        plan.passes.max(1),
                        loaded.len()
                    ));
                    for (pair, prog, cases) in &loaded {
                        let measured = kb.measure_rounds(prog, cases, &plan)?;
                        for (hit, m) in Hit::ALL.iter().zip(measured) {
                            let k = key(Executor::Kernel, *pair, *hit);
                            match (pooled.get_mut(&k), m) {
                                (None, m) => {
                                    pooled.insert(k, m.map_err(|e| e.0));
                                }
                                (Some(Ok(acc)), Ok(more)) => acc.merge(more),
                                (Some(slot), Err(e)) => *slot = Err(e.0),
                                (Some(Err(_)), Ok(_)) => {}
                            }
                        }
                    }
                }
                for (k, rounds) in pooled {
                    let w = workloads
                        .iter()
                        .find(|w| w.list == k.list && w.n == k.n)
                        .expect("a measured list");
                    let cell = rounds.map(|r| {
                        let est = r.estimate();
                        Timing {
                            est: est.cost,
                            wrong: wrong(r.expect, w.expected(k.hit)),
                            open_ns: Some((est.open_ns, est.with_ns)),
                            check: Some(est.check),
                            run: est.run,
                        }
                    });
                    cells.insert(k, cell);
                }
                outcome.run_unavailable = kb.run_time_unavailable().map(str::to_string);
            }
        }
    }

    Ok(outcome)
}

/// The differential's throughput, per strategy.
pub(super) fn differential(p: &Prepared, config: &Config) -> Vec<DifferentialRow> {
    // The differential's throughput.
    let mut differential = Vec::new();
    for (si, s) in p.chosen.iter().enumerate() {
        progress(format!("differential: {}", s.name()));
        let cfg = SampleConfig {
            cases: config.differential_cases(),
            ..SampleConfig::default()
        };
        let r = sampled::run(s.as_ref(), &cfg);
        differential.push(DifferentialRow {
            strategy: si,
            rule_sets: r.rule_sets,
            checks: r.checks,
            divergences: r.divergences,
            refused: r.refused,
            elapsed: r.elapsed,
        });
    }

    differential
}

/// Exhaustive mode on 1,000 rules for every strategy, and on 10,000 for
/// devcg's own on the allow list (full mode): in process, and as the
/// `devcg` command with its wall time and peak memory.
pub(super) fn exhaustive(p: &Prepared, config: &Config) -> Result<Vec<ExhaustiveRow>, ReportError> {
    let mut exhaustive = Vec::new();
    let has_driver = Prepared::has_driver();
    let tmp = std::env::temp_dir().join(format!("devcg-bench-{}", std::process::id()));
    for n in [1_000, 10_000] {
        for (si, s) in p.chosen.iter().enumerate() {
            // Quick mode: ours on the allow list only (linear alone takes
            // seconds); 10,000 rules: ours on the allow list, full mode.
            let ours_only = config.quick || n > 1_000;
            if (ours_only && !s.is_own()) || (config.quick && n > 1_000) {
                continue;
            }
            for list in ListKind::ALL {
                if ours_only && list == ListKind::Deny {
                    continue;
                }
                progress(format!("exhaustive: {} {} of {n}", s.name(), list.name()));
                let w = match p.workloads.iter().find(|w| w.list == list && w.n == n) {
                    Some(w) => w.clone(),
                    None => Workload::new(list, n, config.seed, &has_driver)?,
                };
                let t = Instant::now();
                let result = s
                    .compile(&w.rules)
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        devcg_differential::exhaustive::run(&w.rules, &p).map_err(|e| e.to_string())
                    })
                    .map(|o| ExhaustiveRun {
                        classes: o.classes,
                        differences: o.differences.len(),
                        elapsed: t.elapsed(),
                    });
                // The command line only for ours (the targets' subject): the
                // models' chains take seconds each and add nothing the
                // in-process time does not show.
                let cli = config
                    .devcg_bin
                    .as_ref()
                    .filter(|_| s.is_own() && result.is_ok())
                    .map(|bin| {
                        std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
                        let file = tmp.join(format!("{}-{n}.rules", list.slug()));
                        std::fs::write(&file, w.rule_file()).map_err(|e| e.to_string())?;
                        let mut cmd = Command::new(bin);
                        cmd.args(["verify", "--exhaustive", "--strategy", s.name()])
                            .arg(&file);
                        crate::measure::run_measured(&mut cmd)
                    });
                exhaustive.push(ExhaustiveRow {
                    strategy: si,
                    list,
                    n,
                    result,
                    cli,
                });
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(exhaustive)
}
