//! The report: runs every measurement once, in this process, and renders
//! BENCHMARKS.md and the plot from what it measured.

pub mod machine;
pub mod markdown;
pub mod plot;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use devcg_differential::sampled::{self, SampleConfig};
use devcg_emulator::Emulator;
use devcg_engine::{strategy, Program, Strategy, Verdict};
use devcg_kernel::device::{Device, Drivers};
use thiserror::Error;

use crate::exec::{Executor, Jit};
use crate::kernel::{
    CaseRounds, KernelBench, KernelBenchError, KernelCase, KernelEstimate, KernelPlan,
};
use crate::measure::{sample_values, Estimate, Sampling};
use crate::workload::{Hit, ListKind, Workload, WorkloadError, SIZES};
use machine::Machine;

#[derive(Debug, Error)]
pub enum ReportError {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("kernel benchmark: {0}")]
    Kernel(#[from] KernelBenchError),
    #[error("unknown strategy {0:?}")]
    UnknownStrategy(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plot: {0}")]
    Plot(String),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub quick: bool,
    /// BENCHMARKS.md goes here, the plot to `docs/bench.png` below it.
    pub out_dir: PathBuf,
    pub seed: u64,
    pub sizes: Vec<usize>,
    /// `None`: every strategy.
    pub strategies: Option<Vec<String>>,
    /// Skip the kernel group even as root.
    pub no_kernel: bool,
    /// The `devcg` binary, to time `verify --exhaustive` end to end.
    pub devcg_bin: Option<PathBuf>,
    /// How the run was started, for the report.
    pub command: String,
}

impl Config {
    fn sampling(&self) -> Sampling {
        if self.quick {
            Sampling::quick()
        } else {
            Sampling::full()
        }
    }
    fn kernel_plan(&self) -> KernelPlan {
        if self.quick {
            KernelPlan::quick()
        } else {
            KernelPlan::full()
        }
    }
    /// Loading big programs costs the kernel's verifier seconds (a refusal
    /// after 1M processed instructions takes ~5 s): quick mode stops here.
    pub const QUICK_KERNEL_MAX_RULES: usize = 100;
    /// Rule sets per strategy for the differential's throughput.
    fn differential_cases(&self) -> u64 {
        if self.quick {
            300
        } else {
            3_000
        }
    }
}

/// A timed cell, or why there is none.
pub type Cell = Result<Timing, String>;

#[derive(Clone, Debug)]
pub struct Timing {
    /// Per decision, ns.
    pub est: Estimate,
    /// Set when the program's verdict differs from the oracle's (a model's
    /// finding): timed anyway, marked in the tables.
    pub wrong: Option<String>,
    /// Kernel only: open() without and with the program, ns.
    pub open_ns: Option<(f64, f64)>,
    /// Kernel only: the like-for-like cost of the check (see
    /// `KernelEstimate::check`).
    pub check: Option<Estimate>,
    /// Kernel only: ns per program run from the kernel's run-time
    /// statistics (see `KernelEstimate::run`).
    pub run: Option<Estimate>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CellKey {
    pub executor: Executor,
    pub strategy: usize,
    pub list: ListKind,
    pub n: usize,
    pub hit: Hit,
}

#[derive(Clone, Debug)]
pub struct StrategyInfo {
    pub name: &'static str,
    pub own: bool,
}

#[derive(Clone, Debug)]
pub struct DifferentialRow {
    pub strategy: usize,
    pub rule_sets: u64,
    pub checks: u64,
    pub divergences: u64,
    pub refused: u64,
    pub elapsed: Duration,
}

impl DifferentialRow {
    pub fn checks_per_second(&self) -> f64 {
        self.checks as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Clone, Debug)]
pub struct ExhaustiveRow {
    pub strategy: usize,
    pub list: ListKind,
    pub n: usize,
    /// Compile + `exhaustive::run`, in this process.
    pub result: Result<ExhaustiveRun, String>,
    /// `devcg verify --exhaustive` wall time, process start included.
    pub cli: Option<Result<Duration, String>>,
}

#[derive(Clone, Debug)]
pub struct ExhaustiveRun {
    pub classes: usize,
    pub differences: usize,
    pub elapsed: Duration,
}

pub struct Results {
    pub config: Config,
    pub machine: Machine,
    pub started: SystemTime,
    pub wall: Duration,
    pub load_end: String,
    pub strategies: Vec<StrategyInfo>,
    pub workloads: Vec<Workload>,
    /// Instruction slots per (strategy, list, n), or why no program.
    pub slots: BTreeMap<(usize, ListKind, usize), Result<usize, String>>,
    pub cells: BTreeMap<CellKey, Cell>,
    /// Why the kernel group did not run, if it did not.
    pub kernel_skipped: Option<String>,
    /// Constant allow and deny programs.
    pub kernel_floor: Option<[Result<KernelEstimate, String>; 2]>,
    /// Why the kernel group has no program run times, if it ran without.
    pub kernel_run_unavailable: Option<String>,
    pub differential: Vec<DifferentialRow>,
    pub exhaustive: Vec<ExhaustiveRow>,
}

impl Results {
    pub fn cell(
        &self,
        executor: Executor,
        strategy: usize,
        list: ListKind,
        n: usize,
        hit: Hit,
    ) -> Option<&Cell> {
        self.cells.get(&CellKey {
            executor,
            strategy,
            list,
            n,
            hit,
        })
    }

    pub fn strategy_index(&self, name: &str) -> Option<usize> {
        self.strategies.iter().position(|s| s.name == name)
    }
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

fn device(req: &devcg_engine::Request) -> Device {
    Device::new(req.ty, req.major, req.minor)
}

/// Runs everything `config` asks for.
pub fn run(config: Config) -> Result<Results, ReportError> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let machine = Machine::detect();
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

    // Requests avoid majors with a driver here (readable without root).
    let drivers = Drivers::read().unwrap_or_default();
    let has_driver = |t, m| drivers.has_driver(t, m);
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

    let mut cells = BTreeMap::new();
    let sampling = config.sampling();
    // Pairs (strategy, rule list) in report order.
    let pairs: Vec<(usize, usize)> = (0..chosen.len())
        .flat_map(|si| (0..workloads.len()).map(move |wi| (si, wi)))
        .collect();
    let key = |executor, (si, wi): (usize, usize), hit| CellKey {
        executor,
        strategy: si,
        list: workloads[wi].list,
        n: workloads[wi].n,
        hit,
    };

    // Userspace: interpreter and JIT, prepared once, sampled in passes.
    progress("userspace: preparing emulators and JIT code");
    let emulators: Vec<Result<Emulator, String>> = pairs
        .iter()
        .map(|&(si, wi)| {
            let program = programs[&(si, workloads[wi].list, workloads[wi].n)].as_ref();
            let program = program.map_err(Clone::clone)?;
            Emulator::new(program).map_err(|e| format!("the emulator refuses the program: {e}"))
        })
        .collect();
    let jits: Vec<Result<Jit<'_>, String>> = pairs
        .iter()
        .zip(&emulators)
        .map(|(&(si, wi), emu)| {
            let emu = emu.as_ref().map_err(Clone::clone)?;
            let w = &workloads[wi];
            let program = programs[&(si, w.list, w.n)]
                .as_ref()
                .expect("the emulator took it");
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

    // The kernel: programs loaded once, measured in passes.
    let mut kernel_skipped = None;
    let mut kernel_floor = None;
    let mut kernel_run_unavailable = None;
    if config.no_kernel {
        kernel_skipped = Some("skipped: --no-kernel".to_string());
    } else {
        let devices: Vec<Device> = workloads
            .iter()
            .flat_map(|w| [device(&w.matching), device(&w.no_match)])
            .collect();
        match KernelBench::new(&devices) {
            Err(KernelBenchError::Skip(why)) => kernel_skipped = Some(why),
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
                    kernel_floor = Some([a.map_err(|e| e.0), d.map_err(|e| e.0)]);
                }
                let mut loaded = Vec::new();
                for &pair in &pairs {
                    let (si, wi) = pair;
                    let w = &workloads[wi];
                    let fail = |cells: &mut BTreeMap<CellKey, Cell>, why: String| {
                        for hit in Hit::ALL {
                            cells.insert(key(Executor::Kernel, pair, hit), Err(why.clone()));
                        }
                    };
                    let program = match &programs[&(si, w.list, w.n)] {
                        Ok(p) => p,
                        Err(e) => {
                            fail(&mut cells, e.clone());
                            continue;
                        }
                    };
                    if config.quick && w.n > Config::QUICK_KERNEL_MAX_RULES {
                        fail(
                            &mut cells,
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
                            fail(&mut cells, format!("the kernel refuses the program: {e}"));
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
                kernel_run_unavailable = kb.run_time_unavailable().map(str::to_string);
            }
        }
    }

    // The differential's throughput.
    let mut differential = Vec::new();
    for (si, s) in chosen.iter().enumerate() {
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

    // Exhaustive mode on 1,000 rules.
    let mut exhaustive = Vec::new();
    let n = 1_000;
    let tmp = std::env::temp_dir().join(format!("devcg-bench-{}", std::process::id()));
    for (si, s) in chosen.iter().enumerate() {
        // Quick mode: ours on the allow list only (linear alone takes seconds).
        if config.quick && !s.is_own() {
            continue;
        }
        for list in ListKind::ALL {
            if config.quick && list == ListKind::Deny {
                continue;
            }
            progress(format!("exhaustive: {} {}", s.name(), list.name()));
            let w = match workloads.iter().find(|w| w.list == list && w.n == n) {
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
            let cli = config.devcg_bin.as_ref().filter(|_| s.is_own()).map(|bin| {
                std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
                let file = tmp.join(format!("{}-{n}.rules", list.slug()));
                std::fs::write(&file, w.rule_file()).map_err(|e| e.to_string())?;
                let t = Instant::now();
                let out = Command::new(bin)
                    .args(["verify", "--exhaustive", "--strategy", s.name()])
                    .arg(&file)
                    .output()
                    .map_err(|e| format!("{}: {e}", bin.display()))?;
                let took = t.elapsed();
                // 0: equivalent, 1: differences (still a full run); 2: error.
                match out.status.code() {
                    Some(0 | 1) => Ok(took),
                    _ => Err(format!(
                        "{} exited with {}: {}",
                        bin.display(),
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )),
                }
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
    let _ = std::fs::remove_dir_all(&tmp);

    Ok(Results {
        load_end: machine::load_average(),
        config,
        machine,
        started,
        wall: t0.elapsed(),
        strategies,
        workloads,
        slots,
        cells,
        kernel_skipped,
        kernel_floor,
        kernel_run_unavailable,
        differential,
        exhaustive,
    })
}

fn wrong(got: Verdict, oracle: Verdict) -> Option<String> {
    (got != oracle).then(|| format!("program {got}, oracle {oracle}"))
}

/// The default rule counts.
pub fn default_sizes() -> Vec<usize> {
    SIZES.to_vec()
}
