//! The VM regression runner: devcg's kernel checks on a matrix of kernels.
//!
//! Each column of `vm/kernels.toml` is either the host kernel (the checks
//! run directly) or a Debian kernel package, fetched with `apt-get
//! download`, unpacked into a cache and booted with virtme-ng (under TCG
//! when KVM is not usable). In every column a generated script runs, as
//! root, `devcg kernel-check --json` (and its v1 checks again with a v1
//! `devices` hierarchy mounted) and `devcg verify --kernel --cases N`, and
//! leaves the outputs in a results directory shared with the guest. This
//! crate never touches the kernel itself: every check is devcg's.
//! The results form a [`Matrix`] kernel x check, compared with
//! `vm/expected/<kernel>.json`: any difference fails the run.
//!
//! ```no_run
//! let opts = devcg_vm::Options { kernels: vec!["host".into()], ..Default::default() };
//! let matrix = devcg_vm::run(&opts).expect("runner error");
//! print!("{matrix}");
//! std::process::exit(matrix.exit_code());
//! ```

pub mod config;
pub mod error;
pub mod fetch;
pub mod guest;
pub mod install;
pub mod proc;
pub mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use config::{Config, KernelSpec, Limits};
pub use error::VmError;
pub use install::Accel;
pub use report::{Difference, Expected, KernelRun, Matrix, Observation, Outcome, Status};

use guest::Step;
use proc::{Group, Waited};

/// Options of `devcg vm`. Every path defaults to its place in the
/// workspace this crate was built in.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Options {
    /// Only these kernels (names from vm/kernels.toml); all when absent.
    #[arg(long = "kernel", value_name = "NAME")]
    pub kernels: Vec<String>,
    /// Print the matrix as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Rule sets for the three-way differential (overrides kernels.toml).
    #[arg(long)]
    pub cases: Option<u32>,
    /// Never run apt-get or pip: use what is installed and cached.
    #[arg(long)]
    pub no_install: bool,
    /// Look up the newest kernel packages even when a matching one is cached.
    #[arg(long)]
    pub refresh: bool,
    /// The kernel list [default: vm/kernels.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the expected results are [default: vm/expected].
    #[arg(long, value_name = "DIR")]
    pub expected_dir: Option<PathBuf>,
    /// Downloads, unpacked kernels, the virtme-ng venv, logs
    /// [default: $DEVCG_VM_CACHE or target/vm-cache].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// One directory per kernel, shared with the guest, and matrix.json
    /// [default: target/vm-results].
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
    /// The devcg binary the columns run [default: this program when it is
    /// devcg, else target/release/devcg].
    #[arg(long, value_name = "FILE")]
    pub devcg: Option<PathBuf>,
    /// Write what each column that ran observed into its expected file
    /// (keeping the reasons already given for unchanged entries): for a new
    /// kernel, or after a reviewed change. Review the diff before committing.
    #[arg(long)]
    pub record: bool,
}

/// The workspace this crate was built in.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

struct Paths {
    config: PathBuf,
    expected: PathBuf,
    cache: PathBuf,
    results: PathBuf,
    devcg: PathBuf,
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}

fn paths(opts: &Options) -> Paths {
    let root = workspace_root();
    let devcg = opts.devcg.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .filter(|p| p.file_name().is_some_and(|n| n == "devcg"))
            .unwrap_or_else(|| root.join("target/release/devcg"))
    });
    let devcg = absolute(devcg);
    let cache = opts
        .cache_dir
        .clone()
        .or_else(|| std::env::var_os("DEVCG_VM_CACHE").map(PathBuf::from))
        .unwrap_or_else(|| root.join("target/vm-cache"));
    Paths {
        config: absolute(
            opts.config
                .clone()
                .unwrap_or_else(|| root.join("vm/kernels.toml")),
        ),
        expected: absolute(
            opts.expected_dir
                .clone()
                .unwrap_or_else(|| root.join("vm/expected")),
        ),
        cache: absolute(cache),
        results: absolute(
            opts.results_dir
                .clone()
                .unwrap_or_else(|| root.join("target/vm-results")),
        ),
        devcg,
    }
}

/// Runs every selected column and compares it with its expectations.
/// `Err` only when the runner cannot start (bad configuration or expected
/// file, unknown kernel, no devcg binary, interrupted); a kernel that cannot
/// be fetched or booted is a column of the matrix.
pub fn run(opts: &Options) -> Result<Matrix, VmError> {
    let p = paths(opts);
    let config = Config::load(&p.config)?;
    let selected = config.select(&opts.kernels)?;
    let mut expected = BTreeMap::new();
    for k in &selected {
        if let Some((_, e)) = Expected::load(&p.expected, &k.name)? {
            expected.insert(k.name.clone(), e);
        }
    }
    if !p.devcg.is_file() {
        return Err(VmError::MissingBinary(p.devcg));
    }
    let logs = p.cache.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| VmError::io(logs.display().to_string(), e))?;
    std::fs::create_dir_all(&p.results)
        .map_err(|e| VmError::io(p.results.display().to_string(), e))?;

    let _signals = proc::SignalGuard::install();
    let mut apt = install::Apt::new(&logs, !opts.no_install);
    let mut notes = Vec::new();
    let mut tools: Result<Option<install::VmTools>, String> = Ok(None);
    if selected.iter().any(|k| !k.host) {
        tools = install::ensure_vm_tools(&p.cache, &mut apt).map(Some);
        if let Err(e) = &tools {
            notes.push(format!("VM tools unavailable: {e}"));
        }
    }

    let mut runs = Vec::new();
    for spec in &selected {
        if proc::interrupted() {
            return Err(VmError::Interrupted);
        }
        let mut limits = config.limits(spec);
        if let Some(c) = opts.cases {
            limits.cases = c;
        }
        let dir = p.results.join(&spec.name);
        guest::fresh_dir(&dir).map_err(|e| VmError::io(dir.display().to_string(), e))?;
        eprintln!("devcg vm: {} ...", spec.name);
        let run = if spec.host {
            run_host(spec, &dir, &p, &limits)?
        } else {
            match &tools {
                Ok(Some(t)) => match fetch::fetch(spec, &p.cache, &mut apt, opts.refresh) {
                    Ok(k) => run_vm(spec, &k, t, &config, &dir, &p, &limits)?,
                    Err(e) => unavailable(spec, &dir, format!("cannot fetch the kernel: {e}")),
                },
                Ok(None) => unreachable!("tools are looked for when a VM column is selected"),
                Err(e) => unavailable(spec, &dir, e.clone()),
            }
        };
        eprintln!(
            "devcg vm: {}: {}{}",
            spec.name,
            run.outcome.short(),
            run.boot_secs
                .map(|b| format!(" (boot {b:.1}s, total {:.1}s)", run.total_secs))
                .unwrap_or_default()
        );
        runs.push(run);
    }
    let (accel, versions) = match tools {
        Ok(Some(t)) => (Some(t.accel), t.versions),
        _ => (None, Vec::new()),
    };
    if opts.record {
        for run in runs.iter().filter(|r| r.outcome.ran()) {
            let path = report::record(&p.expected, run, expected.get(&run.name))?;
            notes.push(format!("recorded {}", path.display()));
        }
    }
    let matrix = Matrix::new(runs, &expected, accel, versions, notes);
    let out = p.results.join("matrix.json");
    let _ = std::fs::write(
        &out,
        serde_json::to_string_pretty(&matrix.to_json()).unwrap_or_default(),
    );
    Ok(matrix)
}

fn unavailable(spec: &KernelSpec, dir: &Path, why: String) -> KernelRun {
    KernelRun {
        name: spec.name.clone(),
        host: spec.host,
        package: spec.package.clone(),
        package_version: None,
        release: None,
        outcome: Outcome::Unavailable(why),
        boot_secs: None,
        total_secs: 0.0,
        results_dir: dir.to_owned(),
        console_tail: Vec::new(),
        kernel_problems: Vec::new(),
        checks: Vec::new(),
    }
}

fn write_script(
    spec: &KernelSpec,
    dir: &Path,
    p: &Paths,
    limits: &Limits,
    guest: bool,
) -> Result<(PathBuf, Vec<Step>), VmError> {
    let steps = guest::steps(limits, limits.v1_checks, &p.devcg);
    let path = dir.join("run.sh");
    std::fs::write(&path, guest::script(&spec.name, dir, limits, &steps, guest))
        .map_err(|e| VmError::io(path.display().to_string(), e))?;
    Ok((path, steps))
}

/// The host column: the same script, run directly.
fn run_host(
    spec: &KernelSpec,
    dir: &Path,
    p: &Paths,
    limits: &Limits,
) -> Result<KernelRun, VmError> {
    let (script, steps) = write_script(spec, dir, p, limits, false)?;
    let log = dir.join("console.log");
    let t0 = Instant::now();
    let mut g = Group::spawn(Command::new("sh").arg(&script), &log)
        .map_err(|e| VmError::io("starting sh", e))?;
    let waited = g
        .wait(Duration::from_secs(limits.run_timeout_secs), None)
        .map_err(|e| VmError::io("waiting for the host script", e))?;
    let total = t0.elapsed().as_secs_f64();
    drop(g);
    let collected = guest::collect(dir, &steps);
    let outcome = match waited {
        Waited::Interrupted => return Err(VmError::Interrupted),
        Waited::TimedOut | Waited::MarkerTimedOut => Outcome::RunTimeout(format!(
            "the checks were still running after {}s",
            limits.run_timeout_secs
        )),
        Waited::Exited(_) if collected.done => Outcome::Ran,
        Waited::Exited(st) => Outcome::Crashed(format!("the script stopped early ({st})")),
    };
    let tail = proc::tail_lines(&log, 30);
    Ok(KernelRun {
        name: spec.name.clone(),
        host: true,
        package: None,
        package_version: None,
        release: collected.uname.clone(),
        console_tail: if outcome.ran() { Vec::new() } else { tail },
        outcome,
        boot_secs: None,
        total_secs: total,
        results_dir: dir.to_owned(),
        kernel_problems: Vec::new(),
        checks: report::observe(&collected),
    })
}

/// A VM column: `vng --run` on the unpacked kernel, the script as the
/// guest's command, the results directory shared read-write.
fn run_vm(
    spec: &KernelSpec,
    kernel: &fetch::FetchedKernel,
    tools: &install::VmTools,
    config: &Config,
    dir: &Path,
    p: &Paths,
    limits: &Limits,
) -> Result<KernelRun, VmError> {
    let (script, steps) = write_script(spec, dir, p, limits, true)?;
    let log = dir.join("console.log");
    let mut cmd = Command::new(&tools.vng);
    cmd.arg("--run").arg(&kernel.vmlinuz);
    if tools.accel != Accel::Kvm {
        cmd.arg("--disable-kvm");
    }
    cmd.arg("--verbose")
        .arg("--name")
        .arg(format!("devcg-{}", spec.name))
        .arg("--memory")
        .arg(&config.defaults.memory)
        .arg("--cpus")
        .arg(config.defaults.cpus.to_string())
        .arg(format!("--rwdir={}", dir.display()))
        .arg("--cwd")
        .arg("/");
    for a in &spec.append {
        cmd.arg("--append").arg(a);
    }
    cmd.arg("--exec")
        .arg(format!("sh {}", guest::sh_quote(&script.to_string_lossy())));
    // vng starts virtme-run and qemu from its own venv.
    if let Some(bin) = tools.vng.parent() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut parts = vec![bin.to_path_buf()];
        parts.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(parts) {
            cmd.env("PATH", joined);
        }
    }
    std::fs::write(dir.join("vng-command"), format!("{cmd:?}\n"))
        .map_err(|e| VmError::io("vng-command", e))?;
    let marker = dir.join("started");
    let mut g = Group::spawn(&mut cmd, &log).map_err(|e| VmError::io("starting vng", e))?;
    let waited = g
        .wait(
            Duration::from_secs(limits.run_timeout_secs),
            Some((&marker, Duration::from_secs(limits.boot_timeout_secs))),
        )
        .map_err(|e| VmError::io("waiting for vng", e))?;
    let total = g.started_at.elapsed().as_secs_f64();
    let boot = g.marker_seen.map(|d| d.as_secs_f64());
    drop(g);
    let collected = guest::collect(dir, &steps);
    let all_lines = proc::tail_lines(&log, 5000);
    let problems = report::kernel_problems(&all_lines);
    let panic = problems
        .iter()
        .find(|l| l.contains("Kernel panic"))
        .cloned();
    let outcome = match waited {
        Waited::Interrupted => return Err(VmError::Interrupted),
        Waited::MarkerTimedOut => Outcome::BootTimeout(format!(
            "the guest script had not started after {}s; qemu killed",
            limits.boot_timeout_secs
        )),
        Waited::TimedOut => Outcome::RunTimeout(format!(
            "the VM was still running after {}s; qemu killed",
            limits.run_timeout_secs
        )),
        Waited::Exited(_) if panic.is_some() => Outcome::Panic(panic.clone().unwrap_or_default()),
        Waited::Exited(_) if collected.done => Outcome::Ran,
        Waited::Exited(st) if !collected.started => Outcome::Crashed(format!(
            "the VM stopped before the guest script started ({st})"
        )),
        Waited::Exited(st) => Outcome::Crashed(format!(
            "the VM stopped before the guest script finished ({st})"
        )),
    };
    let keep_tail = !outcome.ran() || !problems.is_empty();
    Ok(KernelRun {
        name: spec.name.clone(),
        host: false,
        package: Some(kernel.package.clone()),
        package_version: Some(kernel.version.clone()),
        release: collected.uname.clone(),
        console_tail: if keep_tail {
            report::console_excerpt(&all_lines, 30)
        } else {
            Vec::new()
        },
        kernel_problems: problems,
        outcome,
        boot_secs: boot,
        total_secs: total,
        results_dir: dir.to_owned(),
        checks: report::observe(&collected),
    })
}

/// The process exit code for a run's result: see [`Matrix::exit_code`];
/// 2 for a runner error.
pub fn exit_code(result: &Result<Matrix, VmError>) -> i32 {
    match result {
        Ok(m) => m.exit_code(),
        Err(_) => 2,
    }
}

/// What `devcg vm` does: run, print (table or JSON), and return the exit
/// code.
pub fn main_with(opts: &Options) -> i32 {
    let result = run(opts);
    match &result {
        Ok(m) if opts.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&m.to_json()).unwrap_or_default()
            );
        }
        Ok(m) => print!("{m}"),
        Err(e) => eprintln!("devcg vm: {e}"),
    }
    exit_code(&result)
}
