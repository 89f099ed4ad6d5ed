//! The report: runs every measurement once, in this process, and renders
//! BENCHMARKS.md and the plot from what it measured.

pub mod data;
pub mod machine;
pub mod markdown;
mod phases;
pub mod plot;
pub mod targets;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use devcg_engine::Verdict;
use thiserror::Error;

use crate::exec::Executor;
use crate::kernel::{KernelBenchError, KernelEstimate, KernelPlan};
use crate::measure::{CommandRun, Estimate, Sampling};
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
    /// `devcg verify --exhaustive`: wall time (process start included) and
    /// peak memory.
    pub cli: Option<Result<CommandRun, String>>,
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

/// Runs everything `config` asks for, phase by phase (see `phases`).
pub fn run(config: Config) -> Result<Results, ReportError> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let machine = Machine::detect();
    let prepared = phases::prepare(&config)?;
    let mut cells = BTreeMap::new();
    phases::userspace(&prepared, &config, &mut cells);
    let kernel = phases::kernel(&prepared, &config, &mut cells)?;
    let differential = phases::differential(&prepared, &config);
    let exhaustive = phases::exhaustive(&prepared, &config)?;
    Ok(Results {
        load_end: machine::load_average(),
        config,
        machine,
        started,
        wall: t0.elapsed(),
        strategies: prepared.strategies,
        workloads: prepared.workloads,
        slots: prepared.slots,
        cells,
        kernel_skipped: kernel.skipped,
        kernel_floor: kernel.floor,
        kernel_run_unavailable: kernel.run_unavailable,
        differential,
        exhaustive,
    })
}

pub(crate) fn wrong(got: Verdict, oracle: Verdict) -> Option<String> {
    (got != oracle).then(|| format!("program {got}, oracle {oracle}"))
}

/// The default rule counts.
pub fn default_sizes() -> Vec<usize> {
    SIZES.to_vec()
}
