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

pub mod apt;
pub mod config;
pub mod distro;
pub mod error;
pub mod fetch;
pub mod guest;
pub mod image;
pub mod install;
pub mod proc;
pub mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use config::{Config, KernelSpec, Limits};
pub use error::VmError;
pub use image::Image;
pub use install::{Accel, AccelChoice, ColumnAccel};
pub use report::{CheckStatus, Difference, Expected, KernelRun, Matrix, Observation, RunOutcome};

use guest::Step;
use proc::{Group, Waited};

/// Options of `devcg vm`. Every path defaults to its place in the
/// workspace this crate was built in.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Options {
    /// Only these kernels (names from vm/kernels.toml); all when absent.
    #[arg(long = "kernel", value_name = "NAME")]
    pub kernels: Vec<String>,
    /// A kernel by path instead of vm/kernels.toml: a bzImage or vmlinuz,
    /// or a built kernel tree (as virtme-ng's --run takes it). Its config
    /// is checked before it boots. Twice: two columns, and the checks whose
    /// result differs between them (a bisect helper).
    #[arg(long = "image", value_name = "PATH", conflicts_with_all = ["kernels", "record"])]
    pub images: Vec<PathBuf>,
    /// The modules of the --image at the same position: lib/modules/<release>
    /// or a root holding it [default: <root>/lib/modules/<release> for an
    /// image at <root>/boot/...].
    #[arg(long = "modules", value_name = "DIR", requires = "images")]
    pub modules: Vec<PathBuf>,
    /// The expected results of the --image columns [default: every check
    /// must pass].
    #[arg(long, value_name = "FILE", requires = "images")]
    pub expected: Option<PathBuf>,
    /// Exit 0 when this check's result is as expected in every column, 1
    /// when it is not, 125 when a column could not run it (untestable),
    /// 128 on a runner error: the exit codes of `git bisect run`.
    #[arg(long, value_name = "NAME")]
    pub check: Option<String>,
    /// Print the matrix as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the matrix as JUnit XML to FILE: one testcase per check
    /// per kernel (plus `(run)` per kernel), failed exactly where a result
    /// differs from the expected one.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Rule sets for the three-way differential (overrides kernels.toml).
    #[arg(long)]
    pub cases: Option<u32>,
    /// The guests' accelerator: auto (KVM when a real boot under it works,
    /// else TCG, per column), kvm or tcg [default: $DEVCG_VM_ACCEL or auto].
    #[arg(long, value_enum, value_name = "ACCEL")]
    pub accel: Option<AccelChoice>,
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

/// What `checked` found: paths, accelerator, the kernel list and the
/// kernels given by path, with their column names.
type Checked = (Paths, AccelChoice, Config, Vec<(String, Image)>);

/// The options' paths, accelerator and kernel list, refused when wrong;
/// the selected kernels are checked too, and a kernel given by path is
/// refused here, before anything boots, when its config lacks an option
/// devcg needs.
fn checked(opts: &Options) -> Result<Checked, VmError> {
    let p = paths(opts);
    let accel = AccelChoice::resolve(opts.accel).map_err(VmError::Usage)?;
    let config = Config::load(&p.config)?;
    config.select(&opts.kernels)?;
    if opts.modules.len() > opts.images.len() {
        return Err(VmError::Usage(
            "more --modules than --image: each --modules goes with the --image at its position"
                .into(),
        ));
    }
    let mut images = Vec::new();
    for (i, path) in opts.images.iter().enumerate() {
        let img = Image::inspect(path, opts.modules.get(i).map(PathBuf::as_path))?;
        img.check()?;
        images.push(img);
    }
    Ok((p, accel, config, image_columns(images)))
}

/// Column names for kernels given by path: the release when the images'
/// releases are known and distinct, else `image-1`, `image-2`...
fn image_columns(images: Vec<Image>) -> Vec<(String, Image)> {
    let safe = |r: &str| -> String {
        r.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let names: Vec<Option<String>> = images
        .iter()
        .map(|i| i.release.as_deref().map(safe))
        .collect();
    let distinct = names.iter().all(Option::is_some)
        && names
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == names.len();
    images
        .into_iter()
        .zip(names)
        .enumerate()
        .map(|(i, (img, name))| match (distinct, name) {
            (true, Some(n)) => (n, img),
            _ => (format!("image-{}", i + 1), img),
        })
        .collect()
}

/// Runs every selected column and compares it with its expectations.
/// `Err` only when the runner cannot start (bad configuration or expected
/// file, unknown kernel, no devcg binary, interrupted); a kernel that cannot
/// be fetched or booted is a column of the matrix.
pub fn run(opts: &Options) -> Result<Matrix, VmError> {
    let (p, accel, config, images) = checked(opts)?;
    let mut expected = BTreeMap::new();
    let mut unchecked = Vec::new();
    // The columns: kernels given by path, else those of kernels.toml.
    let selected: Vec<(KernelSpec, Option<Image>)> = if images.is_empty() {
        let specs = config.select(&opts.kernels)?;
        for k in &specs {
            if let Some((_, e)) = Expected::load(&p.expected, &k.name)? {
                expected.insert(k.name.clone(), e);
            }
        }
        specs.into_iter().map(|k| (k.clone(), None)).collect()
    } else {
        let given = opts
            .expected
            .as_deref()
            .map(Expected::load_file)
            .transpose()?;
        images
            .into_iter()
            .map(|(name, img)| {
                if let Some(e) = &given {
                    expected.insert(name.clone(), e.clone());
                }
                if img.config.is_none() {
                    unchecked.push(format!(
                        "{name}: no config found (no .config, config-<release> beside the image, or embedded config): booted unchecked"
                    ));
                }
                let about = format!("the kernel at {}", img.path.display());
                (KernelSpec::named(&name, about), Some(img))
            })
            .collect()
    };
    if !p.devcg.is_file() {
        return Err(VmError::MissingBinary(p.devcg));
    }
    let logs = p.cache.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| VmError::io(logs.display().to_string(), e))?;
    std::fs::create_dir_all(&p.results)
        .map_err(|e| VmError::io(p.results.display().to_string(), e))?;

    let _signals = proc::SignalGuard::install();
    let mut apt = apt::Apt::new(&p.cache, !opts.no_install);
    let mut notes = unchecked;
    let mut tools: Result<Option<install::VmTools>, String> = Ok(None);
    if selected.iter().any(|(k, _)| !k.host) {
        tools = install::ensure_vm_tools(&p.cache, &mut apt).map(Some);
        if let Err(e) = &tools {
            notes.push(format!("VM tools unavailable: {e}"));
        }
    }

    let mut runs = Vec::new();
    for (spec, image) in &selected {
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
            let kernel = |apt: &mut apt::Apt| match image {
                // Outside the results directory, which a KVM failure empties.
                Some(img) => img.bootable(&p.cache.join("images").join(&spec.name)),
                None => fetch::fetch(spec, &p.cache, apt, opts.refresh),
            };
            match &tools {
                Ok(Some(t)) => match kernel(&mut apt) {
                    Ok(k) => {
                        let column = Column {
                            spec,
                            dir: &dir,
                            paths: &p,
                            limits: &limits,
                            config: &config,
                        };
                        run_vm(&column, &k, t, accel)?
                    }
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
    let versions = match tools {
        Ok(Some(t)) => t.versions,
        _ => Vec::new(),
    };
    if opts.record {
        for run in runs.iter().filter(|r| r.outcome.ran()) {
            let path = report::record(&p.expected, run, expected.get(&run.name))?;
            notes.push(format!("recorded {}", path.display()));
        }
    }
    let matrix = Matrix::new(runs, &expected, versions, notes);
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
        outcome: RunOutcome::Unavailable(why),
        boot_secs: None,
        total_secs: 0.0,
        results_dir: dir.to_owned(),
        console_tail: Vec::new(),
        kernel_problems: Vec::new(),
        checks: Vec::new(),
        accel: None,
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
        Waited::TimedOut | Waited::MarkerTimedOut | Waited::ConsoleAbort(_) => {
            RunOutcome::RunTimeout(format!(
                "the checks were still running after {}s",
                limits.run_timeout_secs
            ))
        }
        Waited::Exited(_) if collected.done => RunOutcome::Ran,
        Waited::Exited(st) => RunOutcome::Crashed(format!("the script stopped early ({st})")),
    };
    let tail = proc::tail_lines(&log, 30);
    Ok(KernelRun {
        name: spec.name.clone(),
        host: true,
        package: None,
        package_version: None,
        release: collected.uname.clone(),
        console_tail: tail,
        outcome,
        boot_secs: None,
        total_secs: total,
        results_dir: dir.to_owned(),
        kernel_problems: Vec::new(),
        checks: report::observe(&collected),
        accel: None,
    })
}

/// What one column is run with.
struct Column<'a> {
    spec: &'a KernelSpec,
    dir: &'a Path,
    paths: &'a Paths,
    limits: &'a Limits,
    config: &'a Config,
}

/// One boot of a column's guest.
struct Boot {
    waited: Waited,
    boot_secs: Option<f64>,
    total_secs: f64,
}

/// A VM column: `vng --run` on the unpacked kernel, the script as the
/// guest's command, the results directory shared read-write.
///
/// The accelerator is decided by a real boot, not by the probe alone: under
/// `auto` a column whose probe passed boots under KVM with a short boot
/// budget; a guest that has not started its script by then, or whose
/// console shows a KVM failure, is booted again from scratch under TCG
/// (its KVM console kept as `console-kvm.log`).
fn run_vm(
    column: &Column,
    kernel: &fetch::FetchedKernel,
    tools: &install::VmTools,
    choice: AccelChoice,
) -> Result<KernelRun, VmError> {
    let (first, mut why) = match (choice, &tools.kvm_probe) {
        (AccelChoice::Tcg, _) => (
            Accel::Tcg,
            format!("forced (--accel tcg or {}=tcg)", install::ACCEL_ENV),
        ),
        (AccelChoice::Kvm, _) => (
            Accel::Kvm,
            format!("forced (--accel kvm or {}=kvm)", install::ACCEL_ENV),
        ),
        (AccelChoice::Auto, Err(no)) => (Accel::Tcg, format!("KVM not usable: {no}")),
        (AccelChoice::Auto, Ok(())) => (Accel::Kvm, "the guest booted under KVM".into()),
    };
    let mut accel = first;
    let mut kvm_failure = None;
    let (boot, steps) = loop {
        let (script, steps) =
            write_script(column.spec, column.dir, column.paths, column.limits, true)?;
        let boot = boot_once(column, kernel, tools, accel, &script)?;
        let kvm_failed = match &boot.waited {
            Waited::MarkerTimedOut => Some(format!(
                "the guest script had not started after {}s",
                column.limits.boot_timeout(accel)
            )),
            Waited::ConsoleAbort(line) => Some(format!("the console showed {line:?}")),
            _ => None,
        };
        match kvm_failed {
            Some(failure) if accel == Accel::Kvm && choice == AccelChoice::Auto => {
                eprintln!(
                    "devcg vm: {}: KVM boot failed ({failure}); booting again under TCG",
                    column.spec.name
                );
                // The KVM attempt's console stays beside the TCG one.
                let console = std::fs::read(column.dir.join("console.log")).unwrap_or_default();
                guest::fresh_dir(column.dir)
                    .map_err(|e| VmError::io(column.dir.display().to_string(), e))?;
                let kept = column.dir.join("console-kvm.log");
                std::fs::write(&kept, console)
                    .map_err(|e| VmError::io(kept.display().to_string(), e))?;
                why =
                    "booted again under TCG after a failed KVM boot (its console: console-kvm.log)"
                        .into();
                kvm_failure = Some(format!("after {:.0}s, {failure}", boot.total_secs));
                accel = Accel::Tcg;
            }
            _ => break (boot, steps),
        }
    };
    let collected = guest::collect(column.dir, &steps);
    let all_lines = proc::tail_lines(&column.dir.join("console.log"), 5000);
    let problems = report::kernel_problems(&all_lines);
    let panic = problems
        .iter()
        .find(|l| l.contains("Kernel panic"))
        .cloned();
    let limits = column.limits;
    let boot_limit = limits.boot_timeout(accel);
    let outcome = match boot.waited {
        Waited::Interrupted => return Err(VmError::Interrupted),
        Waited::MarkerTimedOut => RunOutcome::BootTimeout(format!(
            "the guest script had not started after {boot_limit}s under {accel}; qemu killed"
        )),
        Waited::ConsoleAbort(line) => RunOutcome::Crashed(format!(
            "the guest died under {accel}: the console showed {line:?}; qemu killed"
        )),
        Waited::TimedOut => RunOutcome::RunTimeout(format!(
            "the VM was still running after {}s; qemu killed",
            limits.run_timeout_secs
        )),
        Waited::Exited(_) if panic.is_some() => {
            RunOutcome::Panic(panic.clone().unwrap_or_default())
        }
        Waited::Exited(_) if collected.done => RunOutcome::Ran,
        Waited::Exited(st) if !collected.started => RunOutcome::Crashed(format!(
            "the VM stopped before the guest script started ({st})"
        )),
        Waited::Exited(st) => RunOutcome::Crashed(format!(
            "the VM stopped before the guest script finished ({st})"
        )),
    };
    Ok(KernelRun {
        name: column.spec.name.clone(),
        host: false,
        package: Some(kernel.package.clone()),
        package_version: Some(kernel.version.clone()),
        release: collected.uname.clone(),
        console_tail: report::console_excerpt(&all_lines, 30),
        kernel_problems: problems,
        outcome,
        boot_secs: boot.boot_secs,
        total_secs: boot.total_secs,
        results_dir: column.dir.to_owned(),
        checks: report::observe(&collected),
        accel: Some(ColumnAccel {
            accel,
            why,
            kvm_failure,
        }),
    })
}

/// The directory of the devcg binary the guest runs.
fn devcg_dir(devcg: &Path) -> &Path {
    devcg.parent().unwrap_or(Path::new("/"))
}

/// Boots the guest once under `accel` and waits for it: the boot budget
/// is the short KVM one under KVM, and under KVM a console line that shows
/// a KVM failure ends the wait at once.
fn boot_once(
    column: &Column,
    kernel: &fetch::FetchedKernel,
    tools: &install::VmTools,
    accel: Accel,
    script: &Path,
) -> Result<Boot, VmError> {
    let (spec, dir, config, limits) = (column.spec, column.dir, column.config, column.limits);
    let log = dir.join("console.log");
    let mut cmd = Command::new(&tools.vng);
    cmd.arg("--run").arg(&kernel.vmlinuz);
    if accel == Accel::Tcg {
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
        // The guest sees the host's root, but not every directory below
        // it (/var/tmp, say, is its own there): the devcg binary's
        // directory is shared explicitly, wherever the workspace is.
        .arg(format!(
            "--rodir={}",
            devcg_dir(&column.paths.devcg).display()
        ))
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
    let abort_on = match accel {
        Accel::Kvm => install::KVM_FAILURE_LINES,
        Accel::Tcg => &[],
    };
    let mut g = Group::spawn(&mut cmd, &log).map_err(|e| VmError::io("starting vng", e))?;
    let waited = g
        .wait_watching(
            Duration::from_secs(limits.run_timeout_secs),
            Some((&marker, Duration::from_secs(limits.boot_timeout(accel)))),
            abort_on,
        )
        .map_err(|e| VmError::io("waiting for vng", e))?;
    Ok(Boot {
        waited,
        boot_secs: g.marker_seen.map(|d| d.as_secs_f64()),
        total_secs: g.started_at.elapsed().as_secs_f64(),
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
/// code. With two `--image`s the checks whose result differs between them
/// follow the table (exit 1 when some do); with `--check NAME` the exit
/// code is that check's `git bisect run` verdict.
pub fn main_with(opts: &Options) -> i32 {
    let runner_error = if opts.check.is_some() {
        report::bisect::ABORT
    } else {
        2
    };
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid != 0 {
        // Bad options are still errors; only running needs root.
        if let Err(e) = checked(opts) {
            eprintln!("devcg vm: {e}");
            return runner_error;
        }
        println!("devcg vm: skipped: the kernel matrix needs root (running as uid {uid})");
        return 0;
    }
    let result = run(opts);
    if let (Ok(m), Some(path)) = (&result, &opts.junit) {
        if let Err(e) = std::fs::write(path, report::junit(m)) {
            eprintln!("devcg vm: {}: {e}", path.display());
            return runner_error;
        }
    }
    let m = match &result {
        Ok(m) => m,
        Err(e) => {
            eprintln!("devcg vm: {e}");
            return runner_error;
        }
    };
    if opts.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&m.to_json()).unwrap_or_default()
        );
    } else {
        print!("{m}");
    }
    let pair = (opts.images.len() == 2 && m.kernels.len() == 2)
        .then(|| (m.kernels[0].name.as_str(), m.kernels[1].name.as_str()));
    if let (Some((a, b)), false) = (pair, opts.json) {
        print!("\n{}", report::bisect::between_text(m, a, b));
    }
    if let Some(name) = &opts.check {
        let (code, why) = report::bisect::check_verdict(m, name);
        println!("{why}");
        return code;
    }
    match pair {
        // Two kernels: the exit code says whether they differ.
        Some((a, b)) if !report::bisect::between(m, a, b).is_empty() => 1,
        Some(_) if m.complete => 0,
        Some(_) => 3,
        _ => m.exit_code(),
    }
}

#[cfg(test)]
mod tests {
    //! The accelerator is decided by a real boot. A fake `vng` stands in
    //! for virtme-ng and qemu: under KVM (no `--disable-kvm`) it misbehaves
    //! as the guests on this machine kind did; under TCG it "boots" and
    //! leaves what a finished guest script leaves.
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// `kvm` is the shell the fake runs when asked for KVM.
    fn fake_vng(dir: &Path, kvm: &str) -> PathBuf {
        let path = dir.join("vng");
        let script = format!(
            r#"#!/bin/sh
R=
for a in "$@"; do case "$a" in --rwdir=*) R=${{a#--rwdir=}} ;; esac; done
case " $* " in
*" --disable-kvm "*) ;;
*) {kvm} ;;
esac
echo 6.1.0-fake > "$R/uname"
: > "$R/started"
: > "$R/done"
"#
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Runs one VM column on the fake and returns what the matrix gets.
    fn column(
        kvm: &str,
        choice: AccelChoice,
        probe: Result<(), String>,
    ) -> (KernelRun, tempfile::TempDir) {
        let guard = tempfile::tempdir().unwrap();
        let tmp = guard.path().to_path_buf();
        let config = Config::parse(
            "[defaults]\nkvm_boot_timeout_secs = 3\nboot_timeout_secs = 30\nrun_timeout_secs = 60\n\n[[kernel]]\nname = \"fake\"\npackage = \"linux-image-fake\"\n",
        )
        .unwrap();
        let spec = &config.kernels[0];
        let limits = config.limits(spec);
        let dir = tmp.join("results");
        guest::fresh_dir(&dir).unwrap();
        let paths = Paths {
            config: tmp.join("kernels.toml"),
            expected: tmp.join("expected"),
            cache: tmp.join("cache"),
            results: tmp.clone(),
            devcg: PathBuf::from("/bin/true"),
        };
        let tools = install::VmTools {
            vng: fake_vng(&tmp, kvm),
            qemu: PathBuf::from("/bin/false"),
            kvm_probe: probe,
            versions: vec![],
        };
        let kernel = fetch::FetchedKernel {
            package: "linux-image-fake".into(),
            version: "1".into(),
            root: tmp.clone(),
            vmlinuz: tmp.join("vmlinuz"),
        };
        let c = Column {
            spec,
            dir: &dir,
            paths: &paths,
            limits: &limits,
            config: &config,
        };
        (run_vm(&c, &kernel, &tools, choice).unwrap(), guard)
    }

    /// Both lines in one write: the runner kills the guest as soon as it
    /// sees the first, and the kept console must hold the second too.
    const EMULATION_FAILURE: &str =
        "printf 'KVM internal error. Suberror: 1\\nemulation failure\\n'; exec sleep 600";
    const HANG: &str = "echo 'Probing EDD (edd=off to disable)... ok'; exec sleep 600";

    #[test]
    fn a_kvm_emulation_failure_boots_again_under_tcg() {
        let (run, tmp) = column(EMULATION_FAILURE, AccelChoice::Auto, Ok(()));
        assert!(run.outcome.ran(), "{:?}", run.outcome);
        let a = run.accel.unwrap();
        assert_eq!(a.accel, Accel::Tcg);
        let failure = a.kvm_failure.unwrap();
        assert!(failure.contains("KVM internal error"), "{failure}");
        // Seen on the console, before the boot budget (3 s) ran out.
        let secs: u64 = failure
            .strip_prefix("after ")
            .and_then(|r| r.split('s').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(secs < 3, "{failure}");
        let kept = std::fs::read_to_string(run.results_dir.join("console-kvm.log")).unwrap();
        assert!(kept.contains("emulation failure"));
        drop(tmp);
    }

    #[test]
    fn a_guest_that_never_starts_under_kvm_boots_again_under_tcg() {
        let (run, tmp) = column(HANG, AccelChoice::Auto, Ok(()));
        assert!(run.outcome.ran(), "{:?}", run.outcome);
        let a = run.accel.clone().unwrap();
        assert_eq!(a.accel, Accel::Tcg);
        assert!(a.kvm_failure.unwrap().contains("had not started after 3s"));
        let m = Matrix::new(vec![run], &BTreeMap::new(), vec![], vec![]);
        let text = m.to_string();
        assert!(text.contains("tcg (kvm failed)"), "{text}");
        assert!(text.contains("fake: KVM failed after"), "{text}");
        drop(tmp);
    }

    #[test]
    fn a_guest_that_boots_under_kvm_stays_there() {
        let (run, tmp) = column("", AccelChoice::Auto, Ok(()));
        assert!(run.outcome.ran());
        let a = run.accel.unwrap();
        assert_eq!((a.accel, a.kvm_failure), (Accel::Kvm, None));
        assert!(!run.results_dir.join("console-kvm.log").exists());
        // The devcg binary's directory is shared with the guest, wherever
        // the workspace is (here devcg is /bin/true).
        let cmd = std::fs::read_to_string(run.results_dir.join("vng-command")).unwrap();
        assert!(cmd.contains("\"--rodir=/bin\""), "{cmd}");
        assert!(!cmd.contains("--disable-kvm"), "{cmd}");
        drop(tmp);
    }

    #[test]
    fn forced_kvm_reports_the_failure_instead_of_falling_back() {
        let (run, tmp) = column(
            EMULATION_FAILURE,
            AccelChoice::Kvm,
            Err("ignored when forced".into()),
        );
        assert!(
            matches!(&run.outcome, RunOutcome::Crashed(w) if w.contains("emulation failure") || w.contains("KVM internal error")),
            "{:?}",
            run.outcome
        );
        assert_eq!(run.accel.unwrap().accel, Accel::Kvm);
        drop(tmp);
    }

    #[test]
    fn forced_tcg_and_a_failed_probe_never_try_kvm() {
        for (choice, probe) in [
            (AccelChoice::Tcg, Ok(())),
            (AccelChoice::Auto, Err("no /dev/kvm".to_string())),
        ] {
            // Under KVM the fake would fail the test: it exits without a run.
            let (run, tmp) = column("exit 1", choice, probe);
            assert!(run.outcome.ran(), "{choice:?}: {:?}", run.outcome);
            let a = run.accel.unwrap();
            assert_eq!((a.accel, a.kvm_failure), (Accel::Tcg, None));
            drop(tmp);
        }
    }

    #[test]
    fn the_option_wins_over_the_environment_variable() {
        use AccelChoice::*;
        assert_eq!(AccelChoice::resolve_from(Some(Tcg), Some("kvm")), Ok(Tcg));
        assert_eq!(AccelChoice::resolve_from(None, Some("KVM")), Ok(Kvm));
        assert_eq!(AccelChoice::resolve_from(None, Some(" tcg\n")), Ok(Tcg));
        assert_eq!(AccelChoice::resolve_from(None, None), Ok(Auto));
        let e = AccelChoice::resolve_from(None, Some("qemu")).unwrap_err();
        assert_eq!(e, "DEVCG_VM_ACCEL=\"qemu\": expected one of auto, kvm, tcg");
    }
}
