//! The `devcg` command line.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use devcg_differential::counterexample::Answer;
use devcg_differential::sampled::{self, SampleConfig, MAX_CHECKS_PER_CASE};
use devcg_emulator::Emulator;
use devcg_engine::{disasm, strategy, Program, Request, RuleFile, Strategy};
use devcg_oracle::Policy;
use input::{ProgramOptions, ProgramSource};

mod guest;
mod input;

/// The emulator's runs allocate (rbpf gives each run a fresh stack); in
/// exhaustive mode that is millions of allocations, which mimalloc serves
/// from a per-thread cache several times faster than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "devcg",
    version,
    about = "Proves Linux cgroup device filters right"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Differential test: random rule lists, oracle vs the strategy's program
    /// in the emulator. Exit 1 when one of devcg's own strategies diverges.
    #[command(after_help = VERIFY_COLUMNS)]
    Verify {
        /// The strategy to test, or `all`.
        #[arg(long, value_name = "NAME", default_value = "all")]
        strategy: String,
        /// Rule sets to draw per strategy.
        #[arg(long, default_value_t = 2_000)]
        cases: u64,
        /// Requests checked against each rule set (sampled runs only: the
        /// kernel run probes every device of its rule set, the exhaustive
        /// run every class).
        #[arg(long, default_value_t = 64, conflicts_with_all = ["kernel", "exhaustive"])]
        checks_per_case: usize,
        /// Seed of the random rule lists and requests (same seed, same run).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print the table (or the --exhaustive outcome) as JSON.
        #[arg(long)]
        json: bool,
        /// Decide every equivalence class for the rule file RULES instead of
        /// sampling (with --strategy NAME or --program FILE).
        #[arg(long, requires = "rules")]
        exhaustive: bool,
        /// With --exhaustive: a program file instead of a strategy (as for
        /// `check --program`).
        #[arg(long, value_name = "FILE", requires = "exhaustive")]
        program: Option<PathBuf>,
        #[command(flatten)]
        input: ProgramOptions,
        /// The rule file for --exhaustive.
        rules: Option<PathBuf>,
        /// Add the real kernel as a third party: every rule set is attached
        /// to a scratch cgroup and probed (root; cgroup2).
        #[arg(long, conflicts_with = "exhaustive")]
        kernel: bool,
    },
    /// Run the named kernel semantics checks on the running kernel.
    KernelCheck {
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
        /// Run only checks whose name contains this.
        #[arg(long, value_name = "TEXT")]
        only: Option<String>,
    },
    /// Compile a rule file into a device program.
    Compile {
        /// The strategy that compiles RULES.
        #[arg(long, value_name = "NAME")]
        strategy: String,
        /// What to write: bpftool-style assembly (with `; map` lines for
        /// the maps), raw `bpf_insn` bytes, JSON (insns and maps), or a BPF
        /// ELF object for bpftool, libbpf and aya (needs -o or a pipe).
        /// --program reads each back.
        #[arg(long, value_enum, default_value_t = Format::Asm)]
        format: Format,
        /// Write here instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The rule file: v1 lines (`allow c 1:3 rwm`), a JSON rule list, or
        /// an OCI config.json.
        rules: PathBuf,
    },
    /// Print the `bpftool map update` commands that fill an ELF object's
    /// maps after `bpftool prog load OBJECT PIN type cgroup/dev pinmaps
    /// DIR` (which creates them empty): the contents devcg put in the
    /// object, or those of --map.
    BpftoolInit {
        /// The ELF object (`compile --format elf`).
        object: PathBuf,
        /// The `pinmaps` directory given to `bpftool prog load`.
        #[arg(long, value_name = "DIR")]
        pinmaps: PathBuf,
        /// Stands for `object`, so that --section and --map apply.
        #[arg(skip)]
        program: Option<PathBuf>,
        #[command(flatten)]
        input: ProgramOptions,
    },
    /// Decide accesses such as `c 1:3 rw` with the oracle and a program.
    #[command(group(ArgGroup::new("source").required(true).args(["strategy", "program"])))]
    Check {
        /// Compile RULES with this strategy.
        #[arg(long, value_name = "NAME")]
        strategy: Option<String>,
        /// A program file: a BPF ELF object, `compile --format asm` or
        /// bpftool `prog dump xlated` text, raw `bpf_insn` bytes, or
        /// `compile --format json`.
        #[arg(long, value_name = "FILE")]
        program: Option<PathBuf>,
        #[command(flatten)]
        input: ProgramOptions,
        /// The rule file the oracle decides by (and --strategy compiles).
        rules: PathBuf,
        /// `TYPE MAJOR:MINOR ACCESS`, ACCESS from `rwm` or `-`; quoted as one
        /// argument or as three.
        #[arg(required = true, num_args = 1..)]
        access: Vec<String>,
        /// The caller's uid, as bpf_get_current_uid_gid sees it [not given:
        /// a verdict that depends on it is reported as nondeterministic].
        #[arg(long, value_name = "UID")]
        uid: Option<u32>,
        /// The caller's gid [default: the uid, when --uid is given].
        #[arg(long, value_name = "GID")]
        gid: Option<u32>,
        /// The caller's cgroup id, as bpf_get_current_cgroup_id sees it.
        #[arg(long, value_name = "ID")]
        cgroup_id: Option<u64>,
    },
    /// Run a v1 oracle script, printing one JSON object per command.
    Oracle {
        /// The script: `mkdir PATH`, `write PATH allow|deny TEXT`, `list
        /// PATH`, `check PATH TYPE MAJOR:MINOR ACCESS`, one per line.
        script: PathBuf,
    },
    /// Run the kernel checks on the kernels of vm/kernels.toml (the host
    /// directly, Debian kernels under virtme-ng) and compare them with
    /// vm/expected. Exit 0 as expected, 1 a result differs, 2 the runner
    /// could not start, 3 some kernel could not be installed.
    Vm(devcg_vm::Options),
    /// Run a shell command as root in the full-distribution guest: Debian
    /// with systemd as init, libvirt with its LXC driver and busybox, built
    /// from packages with mmdebstrap on first use and cached, booted under
    /// qemu (KVM when a real boot works, else TCG), no network. This devcg
    /// is /mnt/devcg/devcg there. Prints the command's output and exits
    /// with its status. Needs root.
    Guest {
        #[command(flatten)]
        guest: guest::GuestArgs,
        /// The command, joined with spaces and run by the guest's sh, as
        /// ssh does (`-- systemctl --version`, `-- 'a | b'`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// What a live cgroup lets through: reads the device programs that run
    /// for it (with their maps) and its v1 devices.list, decides every
    /// reachable request class, and prints the policy as a table and as v1
    /// rules. Read-only: never attaches, detaches or writes.
    #[command(after_help = AUDIT_HELP)]
    Audit {
        /// A cgroup directory (under the cgroup2 mount or the v1 devices
        /// mount), or a PID (both of its cgroups).
        target: String,
        /// Rules the cgroup is meant to enforce (v1 lines or an OCI
        /// config.json): print every class where it does otherwise.
        #[arg(long, value_name = "RULES")]
        expect: Option<PathBuf>,
        /// Print the audit as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Real runtimes under test: random OCI device lists run through the
    /// installed runc or crun in scratch cgroups (youki: through youki's own
    /// generator crate, its program attached to a scratch cgroup); each
    /// program is read back and decided against the config and against
    /// devcg's model of the runtime (defaults included), its security
    /// classes asked of the kernel from inside; then the findings'
    /// reproducers. Exit 1 when a real program and the model differ, or the
    /// kernel answers otherwise than the audit. Needs root.
    Runtime {
        /// The runtime to drive (youki needs a build with `--features youki`).
        #[arg(value_enum)]
        runtime: RuntimeName,
        /// Random configs to run.
        #[arg(long, default_value_t = 10)]
        cases: u64,
        /// Seed of the random configs (the same seed, the same configs).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// systemd and libvirt: run here, on a system whose PID 1 is
        /// systemd (and, for libvirt, with libvirtd and its LXC driver),
        /// instead of in the full-distribution guest (`devcg guest`).
        #[arg(long)]
        here: bool,
        #[command(flatten)]
        guest: guest::GuestArgs,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RuntimeName {
    Runc,
    Crun,
    Lxc,
    Youki,
    /// systemd's DevicePolicy=/DeviceAllow= on transient units (in the
    /// guest unless --here).
    Systemd,
    /// libvirt's LXC driver, domains with host devices hot-plugged and
    /// unplugged (in the guest unless --here).
    Libvirt,
}

impl RuntimeName {
    /// Daemons that need a whole system: run in the guest unless --here.
    fn is_daemon(self) -> bool {
        matches!(self, RuntimeName::Systemd | RuntimeName::Libvirt)
    }

    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

const AUDIT_HELP: &str = "\
Requests decided: types b and c; accesses - (F_OK), r, w, rw (open) and m
(mknod); majors below 4096, minors below 2^20. A request passes when every
device program allows it and, on a v1 hierarchy, devices.list does.
Exit 0: audited (and, with --expect, no difference); 1: differences found;
2: the cgroup could not be read or a program cannot be modelled (the reason
is printed, the policy never guessed).";

/// What the columns of `verify` and `verify --kernel` mean.
const VERIFY_COLUMNS: &str = "\
Columns of `verify` (emulator vs oracle), one row per strategy:
  strategy           the strategy that compiled the rule lists
  rule sets          random rule lists drawn
  checks             requests decided by both the oracle and the program
  divergences        checks where the program's answer (or error) is not the oracle's
  rate               divergences per check
  refused            rule lists the strategy refused to compile (a model's runtime error)
  insns min/med/max  instruction slots of the compiled programs
  checks/s           checks per second
Exit 1 when one of devcg's own strategies diverges; models show their findings.

Columns of `verify --kernel` (oracle, emulator and the running kernel):
  strategy    the strategy that compiled the rule lists
  own         yes: one of devcg's strategies; no: a model of another runtime
  rules       random rule lists drawn
  attached    programs loaded and attached to a scratch cgroup
  cmp-ref     rule lists the strategy refused to compile
  load-ref    programs the kernel refused to load (the verifier's reasons follow)
  emu-ref     programs the emulator refused (their probes have no emulator verdict)
  probes      device accesses the kernel answered with allow or deny
  unexp       probes that ended in neither (not compared; examples follow)
  orc-vs-krn  probes where the oracle and the kernel disagree
  emu-vs-krn  probes where the emulator and the kernel disagree
Exit 1 unless, for every strategy, emu-vs-krn and unexp are 0, and for
devcg's own also orc-vs-krn and load-ref.";

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Raw,
    Asm,
    Json,
    /// A relocatable BPF ELF object (bpftool, libbpf and aya load it).
    Elf,
}

/// The command line, with the strategy names in every `--strategy` help.
fn command() -> clap::Command {
    let names = strategy::names().join(", ");
    let mut cmd = Cli::command();
    let with_strategy: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| c.get_arguments().any(|a| a.get_id() == "strategy"))
        .map(|c| c.get_name().to_string())
        .collect();
    for sub in with_strategy {
        cmd = cmd.mut_subcommand(sub, |c| {
            c.mut_arg("strategy", |a| {
                let help = a.get_help().map(ToString::to_string).unwrap_or_default();
                a.help(format!("{help} [strategies: {names}]"))
            })
        });
    }
    cmd
}

/// Exit codes: 0 agreement, 1 a divergence found, 2 bad input; `vm` adds 3
/// (some kernel could not be installed).
fn main() -> ExitCode {
    // `devcg ... | head` ends quietly when the reader goes away, as a Unix
    // filter does, instead of panicking on EPIPE.
    // SAFETY: restores the default action before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Verify {
            exhaustive: true,
            strategy,
            program,
            input,
            rules,
            json,
            ..
        } => cmd_exhaustive(
            &strategy,
            program.map(|p| input.source(p)),
            rules.as_deref().expect("clap requires it"),
            json,
        ),
        Command::Verify {
            kernel: true,
            strategy,
            cases,
            seed,
            json,
            ..
        } => cmd_verify_kernel(&strategy, cases, seed, json),
        Command::KernelCheck { json, only } => cmd_kernel_check(json, only.as_deref()),
        Command::Verify {
            strategy,
            cases,
            checks_per_case,
            seed,
            json,
            rules,
            ..
        } => {
            if let Some(rules) = rules {
                bail!(
                    "a rule file ({}) is only taken with --exhaustive",
                    rules.display()
                );
            }
            if !(1..=MAX_CHECKS_PER_CASE).contains(&(checks_per_case as u64)) {
                bail!(
                    "--checks-per-case {checks_per_case}: between 1 and {MAX_CHECKS_PER_CASE} (more rule sets, --cases, cover more ground)"
                );
            }
            let cfg = SampleConfig {
                cases,
                checks_per_case: checks_per_case as u64,
                seed,
                progress: true,
                ..SampleConfig::default()
            };
            cmd_verify(&strategy, &cfg, json)
        }
        Command::Compile {
            strategy,
            format,
            output,
            rules,
        } => cmd_compile(&strategy, format, output, &rules),
        Command::Check {
            strategy,
            program,
            input,
            rules,
            access,
            uid,
            gid,
            cgroup_id,
        } => {
            if let (Some(_), Some(flag)) = (&strategy, input.given()) {
                bail!("{flag} is about --program FILE; it cannot be used with --strategy");
            }
            cmd_check(
                strategy,
                program.map(|p| input.source(p)),
                &rules,
                &access,
                &devcg_emulator::Caller {
                    uid,
                    gid: gid.or(uid),
                    cgroup_id,
                },
            )
        }
        Command::Oracle { script } => cmd_oracle(&script),
        Command::BpftoolInit {
            object,
            pinmaps,
            input,
            ..
        } => {
            let program = input.source(object).read()?;
            for cmd in devcg_engine::elf::bpftool_init(&program.maps, &pinmaps) {
                println!("{}", cmd.join(" "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Vm(opts) => Ok(vm_exit(devcg_vm::main_with(&opts))),
        Command::Guest { guest, command } => guest::run(&guest, &command.join(" ")),
        Command::Audit {
            target,
            expect,
            json,
        } => cmd_audit(&target, expect.as_deref(), json),
        Command::Runtime {
            runtime,
            cases,
            seed,
            json,
            here,
            guest,
        } => match (runtime, here) {
            (r, false) if r.is_daemon() => guest::runtime(&guest, &r.name(), cases, seed, json),
            (RuntimeName::Systemd, true) => cmd_runtime_systemd(cases, seed, json),
            (RuntimeName::Libvirt, true) => cmd_runtime_libvirt(cases, seed, json),
            (r, true) => bail!(
                "--here is for systemd and libvirt, which devcg otherwise runs in its guest; {} runs here anyway",
                r.name()
            ),
            (r, false) => cmd_runtime(r, cases, seed, json),
        },
    }
}

/// The runner's own exit code (0, 1, 2 or 3), as it is.
fn vm_exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

fn strategies(name: &str) -> Result<Vec<Box<dyn Strategy>>> {
    if name == "all" {
        return Ok(strategy::all());
    }
    strategy::by_name(name).map(|s| vec![s]).ok_or_else(|| {
        anyhow!(
            "unknown strategy {name:?}; known: all, {}",
            strategy::names().join(", ")
        )
    })
}

fn cmd_verify(name: &str, cfg: &SampleConfig, json: bool) -> Result<ExitCode> {
    let reports: Vec<_> = strategies(name)?
        .iter()
        .map(|s| sampled::run(s.as_ref(), cfg))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        println!(
            "{:<9} {:>9} {:>9} {:>11} {:>7} {:>7} {:>17} {:>10}",
            "strategy",
            "rule sets",
            "checks",
            "divergences",
            "rate",
            "refused",
            "insns min/med/max",
            "checks/s"
        );
        for r in &reports {
            let insns = r
                .insns
                .map_or("-".to_string(), |[lo, mid, hi]| format!("{lo}/{mid}/{hi}"));
            println!(
                "{:<9} {:>9} {:>9} {:>11} {:>6.2}% {:>7} {:>17} {:>10.0}",
                r.strategy,
                r.rule_sets,
                r.checks,
                r.divergences,
                100.0 * r.divergence_rate(),
                r.refused,
                insns,
                r.checks_per_second()
            );
        }
        for r in reports.iter().filter(|r| r.counterexample.is_some()) {
            println!(
                "\n{}: smallest counterexample found\n{}",
                r.strategy,
                r.counterexample.as_ref().unwrap()
            );
        }
    }
    // Models of other runtimes show what they show; ours must not diverge.
    let diverged = reports
        .iter()
        .any(|r| r.divergences > 0 && strategy::by_name(&r.strategy).is_some_and(|s| s.is_own()));
    Ok(if diverged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_verify_kernel(name: &str, cases: u64, seed: u64, json: bool) -> Result<ExitCode> {
    use devcg_kernel::differential;
    if let Some(why) = devcg_kernel::v2::skip_reason() {
        println!("{why}");
        return Ok(ExitCode::SUCCESS);
    }
    let reports = differential::three_way(&strategies(name)?, cases, seed)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", differential::table(&reports));
    }
    Ok(if reports.iter().all(|r| r.pass) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_kernel_check(json: bool, only: Option<&str>) -> Result<ExitCode> {
    use devcg_kernel::semantics::{self, SemanticStatus};
    // Every check needs what this names: one line, not a row per check.
    if let Some(why) = devcg_kernel::v2::skip_reason() {
        if json {
            println!("{}", serde_json::json!({ "skipped": why }));
        } else {
            println!("kernel-check: {why}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let checks: Vec<_> = semantics::checks()
        .into_iter()
        .filter(|c| only.is_none_or(|o| c.name.contains(o)))
        .collect();
    if checks.is_empty() {
        bail!("no check matches {:?}", only.unwrap_or_default());
    }
    let results: Vec<_> = checks.iter().map(semantics::run).collect();
    let failed = results.iter().any(|r| r.status == SemanticStatus::Fail);
    if json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                let (status, reason) = match &r.status {
                    SemanticStatus::Pass => ("pass", None),
                    SemanticStatus::Fail => ("fail", None),
                    SemanticStatus::Skip(why) => ("skip", Some(why.clone())),
                };
                serde_json::json!({
                    "name": r.name, "expected": r.expected, "observed": r.observed,
                    "status": status, "reason": reason,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let width = results.iter().map(|r| r.name.len()).max().unwrap_or(5);
        println!("{:<width$}  {:<6}  expected / observed", "check", "result");
        for r in &results {
            let status = match &r.status {
                SemanticStatus::Pass => "pass".to_string(),
                SemanticStatus::Fail => "FAIL".to_string(),
                SemanticStatus::Skip(_) => "skip".to_string(),
            };
            println!(
                "{:<width$}  {:<6}  expected: {}",
                r.name, status, r.expected
            );
            let observed = match &r.status {
                SemanticStatus::Skip(why) => why,
                _ => &r.observed,
            };
            println!("{:<width$}  {:<6}  observed: {}", "", "", observed);
        }
        let count =
            |f: fn(&SemanticStatus) -> bool| results.iter().filter(|r| f(&r.status)).count();
        println!(
            "{} passed, {} failed, {} skipped",
            count(|s| *s == SemanticStatus::Pass),
            count(|s| *s == SemanticStatus::Fail),
            count(|s| matches!(s, SemanticStatus::Skip(_)))
        );
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_exhaustive(
    name: &str,
    program: Option<ProgramSource>,
    rules: &Path,
    json: bool,
) -> Result<ExitCode> {
    if program.is_none() && name == "all" {
        bail!(
            "--exhaustive decides one program: give --strategy NAME ({}) or --program FILE",
            strategy::names().join(", ")
        );
    }
    let rule_list = read_rules(rules)?;
    let (label, program) = match program {
        Some(source) => (source.path.display().to_string(), source.read()?),
        None => (name.to_string(), compile(name, &rule_list)?),
    };
    let outcome = devcg_differential::exhaustive::run(&rule_list, &program)
        .map_err(|e| anyhow!("{label}: program refused by the emulator: {e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        let mode = if outcome.full_product {
            "full major x minor product"
        } else {
            "per-major minor classes"
        };
        if let Some(why) = &outcome.stopped {
            println!("{label}: stopped: {why}");
        } else if outcome.equivalent() {
            println!(
                "{label}: equivalent ({} classes, {} of them reachable; {mode})",
                outcome.classes, outcome.reachable_classes
            );
        } else {
            let unreachable = outcome.differences.len() - outcome.reachable_differences;
            println!(
                "{label}: {} of {} reachable classes differ, and {} of {} unreachable ones ({mode})",
                outcome.reachable_differences,
                outcome.reachable_classes,
                unreachable,
                outcome.classes - outcome.reachable_classes
            );
            let (reachable, rest) = outcome.differences.split_at(outcome.reachable_differences);
            for (title, part) in [
                ("reachable (a syscall can ask these)", reachable),
                (
                    "unreachable (major >= 2^12, minor >= 2^20, or m with r/w)",
                    rest,
                ),
            ] {
                if part.is_empty() {
                    continue;
                }
                println!("{title}:");
                for d in part {
                    println!(
                        "  {:<28} oracle {:<5}  program {}",
                        d.request,
                        d.oracle.to_string(),
                        d.program
                    );
                }
            }
        }
        println!("time: {:.3} s", outcome.elapsed.as_secs_f64());
    }
    Ok(if outcome.equivalent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn read_rules(path: &Path) -> Result<Vec<devcg_engine::Rule>> {
    Ok(RuleFile::read(path)?)
}

fn compile(name: &str, rules: &[devcg_engine::Rule]) -> Result<Program> {
    let s = strategies(name)?;
    let [s] = s.as_slice() else {
        bail!("compile needs one strategy, not `all`")
    };
    Ok(s.compile(rules)?)
}

fn cmd_compile(
    name: &str,
    format: Format,
    output: Option<PathBuf>,
    rules: &Path,
) -> Result<ExitCode> {
    let program = compile(name, &read_rules(rules)?)?;
    let bytes = match format {
        Format::Raw | Format::Elf if output.is_none() && std::io::stdout().is_terminal() => {
            bail!("refusing to write binary output to a terminal; use -o FILE or redirect");
        }
        Format::Raw => program.to_bytes(),
        Format::Elf => devcg_engine::elf::write(&program, &format!("devcg_{name}"))?,
        Format::Asm => (disasm::disassemble(&program.insns)
            + &devcg_engine::asmtext::map_lines(&program.maps))
            .into_bytes(),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&program)?;
            text.push('\n');
            text.into_bytes()
        }
    };
    match output {
        Some(path) => {
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_requests(args: &[String]) -> Result<Vec<Request>> {
    if let Some(i) = args.iter().position(|a| a.trim().is_empty()) {
        bail!(
            "access argument {} is empty: give `TYPE MAJOR:MINOR ACCESS`, e.g. `c 1:3 rw`",
            i + 1
        );
    }
    let words: Vec<&str> = args.iter().flat_map(|a| a.split_whitespace()).collect();
    if !words.len().is_multiple_of(3) {
        bail!(
            "accesses are `TYPE MAJOR:MINOR ACCESS` triples, got {} words: {}",
            words.len(),
            words.join(" ")
        );
    }
    words
        .chunks(3)
        .map(|w| {
            let text = w.join(" ");
            Request::parse_explained(&text).map_err(|why| anyhow!("bad access {text:?}: {why}"))
        })
        .collect()
}

fn cmd_check(
    strategy: Option<String>,
    program: Option<ProgramSource>,
    rules: &Path,
    access: &[String],
    caller: &devcg_emulator::Caller,
) -> Result<ExitCode> {
    let rule_list = read_rules(rules)?;
    let requests = parse_requests(access)?;
    let program = match (&strategy, &program) {
        (Some(name), _) => compile(name, &rule_list)?,
        (None, Some(source)) => source.read()?,
        (None, None) => bail!("give --strategy NAME or --program FILE"),
    };
    let emulator =
        Emulator::new(&program).map_err(|e| anyhow!("program refused by the emulator: {e}"))?;
    let oracle = Policy::of(&rule_list);
    let mut disagreements = 0;
    for req in &requests {
        let want = oracle.decide(req);
        let run = emulator.run_as(req, caller);
        for line in &run.trace {
            println!("  trace_printk: {line}");
        }
        let got = Answer::of(run.verdict);
        let agree = got == Answer::Verdict(want);
        disagreements += usize::from(!agree);
        println!(
            "{:<24} oracle {:<5}  program {:<5}  {}",
            req.to_string(),
            want.to_string(),
            got.to_string(),
            if agree { "agree" } else { "DIFFER" }
        );
    }
    Ok(if disagreements > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_audit(target: &str, expect: Option<&Path>, json: bool) -> Result<ExitCode> {
    use devcg_differential::audit::{self, Enforcement};
    let started = std::time::Instant::now();
    let expected = expect.map(read_rules).transpose()?.unwrap_or_default();
    let live = devcg_kernel::audit::read(target).with_context(|| format!("audit {target}"))?;
    if live.v2.is_none() && live.v1.is_none() {
        bail!("audit {target}: the process is in no cgroup this host has mounted");
    }
    let mut enforcement = Enforcement::default();
    let mut notes = Vec::new();
    if let Some(v2) = &live.v2 {
        for p in &v2.programs {
            let program = p
                .program
                .as_ref()
                .map_err(|e| anyhow!("{}: cannot be audited: {e}", p.label()))?;
            enforcement.programs.push((p.label(), program.clone()));
        }
    }
    if let Some(v1) = &live.v1 {
        if v1.hides_denies() {
            notes.push(format!(
                "{}: v1 allows by default; devices.list does not show its deny exceptions, so none are assumed",
                v1.path.display()
            ));
        }
        enforcement.v1 = Some((v1.behavior, v1.exceptions.clone()));
    }
    let mut result = audit::audit(&enforcement, &expected)?;
    if expect.is_some() {
        audit::compare(&mut result, &expected);
    }
    if json {
        let programs: Vec<serde_json::Value> = live
            .v2
            .iter()
            .flat_map(|v2| &v2.programs)
            .map(|p| {
                serde_json::json!({
                    "id": p.info.id,
                    "name": p.info.name,
                    "tag": p.info.tag,
                    "attached_at": p.attached_at,
                    "attach_flags": p.flags,
                    "link": p.link,
                    "maps": p.maps.iter().map(|m| serde_json::json!({
                        "id": m.id, "name": m.name, "type": m.map_type,
                        "key_size": m.key_size, "value_size": m.value_size,
                        "max_entries": m.max_entries,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = serde_json::json!({
            "cgroup2": live.v2.as_ref().map(|v| &v.path),
            "programs": programs,
            "v1": live.v1.as_ref().map(|v| serde_json::json!({"path": v.path, "list": v.list})),
            "notes": notes,
            "audit": result,
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", audit_text(&live, &result, &notes, expect.is_some()));
        println!(
            "({} classes in {:.3} s)",
            result.classes,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if result.differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The audit for people: what is attached where, the policy, the rules and
/// the differences.
fn audit_text(
    live: &devcg_kernel::audit::Live,
    result: &devcg_differential::audit::Audit,
    notes: &[String],
    compared: bool,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if let Some(v2) = &live.v2 {
        let _ = writeln!(out, "cgroup2 {}", v2.path.display());
        if v2.programs.is_empty() {
            let _ = writeln!(
                out,
                "  no device program runs for it: every device is allowed by cgroup2"
            );
        }
        for p in &v2.programs {
            let at = p
                .attached_at
                .as_ref()
                .map_or("(attachment not found)".to_string(), |a| {
                    a.display().to_string()
                });
            let how = match p.link {
                Some(l) => format!("by link {l}"),
                None => "directly".to_string(),
            };
            let flags = match p.flags {
                0 => "none",
                1 => "override",
                2 => "multi",
                _ => "other",
            };
            let _ = writeln!(
                out,
                "  {} tag {}: attached at {at} {how} (flags: {flags}); {} map(s), {} instructions",
                p.label(),
                p.info.tag,
                p.maps.len(),
                p.info.xlated.len() / 8
            );
        }
    }
    if let Some(v1) = &live.v1 {
        let _ = writeln!(
            out,
            "v1 {}: {} by default, {} exception(s) listed",
            v1.path.display(),
            if v1.behavior == devcg_engine::Behavior::Allow {
                "allow"
            } else {
                "deny"
            },
            v1.exceptions.len()
        );
    }
    for n in notes {
        let _ = writeln!(out, "note: {n}");
    }
    let _ = writeln!(out, "\nallowed:");
    let names = devcg_kernel::audit::device_names();
    for line in devcg_differential::audit::table(result, &names).lines() {
        let _ = writeln!(out, "  {line}");
    }
    match &result.rules {
        Some(rules) => {
            let _ = writeln!(out, "\nas v1 rules:");
            for r in rules {
                let _ = writeln!(out, "  {r}");
            }
        }
        None => {
            let _ = writeln!(out, "\nas v1 rules: none (v1 cannot state this policy: it names numbers and *, not ranges)");
        }
    }
    if compared {
        let (security, usability): (Vec<_>, Vec<_>) =
            result.differences.iter().partition(|d| d.security);
        if result.differences.is_empty() {
            let _ = writeln!(out, "\nas expected: no difference in any reachable class");
        }
        for (title, list) in [
            (
                "security (enforced allows what is expected denied)",
                security,
            ),
            (
                "usability (enforced denies what is expected allowed)",
                usability,
            ),
        ] {
            if !list.is_empty() {
                let _ = writeln!(out, "\n{title}: {}", list.len());
                for d in list {
                    let _ = writeln!(out, "  {d}");
                }
            }
        }
    }
    out
}

fn cmd_runtime(name: RuntimeName, cases: u64, seed: u64, json: bool) -> Result<ExitCode> {
    use devcg_engine::strategy::models::{crun, runc, youki};
    use devcg_kernel::runtime::{self, Runtime};
    // Each runtime with devcg's model of what it attaches, for the version
    // installed where the model knows versions (crun's defaults changed).
    let crun_version = runtime::version(Runtime::Crun)
        .ok()
        .and_then(|v| crun::Version::parse(&v))
        .unwrap_or(crun::Version::UPSTREAM);
    let crun_model =
        move |rules: &[devcg_engine::Rule]| crun::compile_for_version(crun_version, rules);
    // LXC adds no default devices: the model is the registered strategy.
    let lxc_model =
        |rules: &[devcg_engine::Rule]| devcg_differential::findings::model("lxc", true, rules);
    let (runtime, model): (runtime::Source, runtime::ModelOf) = match name {
        RuntimeName::Runc => (
            runtime::Source::Binary(Runtime::Runc),
            &runc::compile_with_defaults,
        ),
        RuntimeName::Crun => (runtime::Source::Binary(Runtime::Crun), &crun_model),
        RuntimeName::Lxc => (runtime::Source::Binary(Runtime::Lxc), &lxc_model),
        RuntimeName::Youki => (youki_source()?, &youki::compile_with_defaults),
        RuntimeName::Systemd | RuntimeName::Libvirt => {
            unreachable!("the daemons have their own commands")
        }
    };
    let report = runtime::run_cases(runtime, cases, seed, model)
        .with_context(|| format!("runtime {}", runtime.name()))?;
    print_runtime_report(&report, seed, json)
}

/// `devcg runtime libvirt --here`: libvirt's LXC driver on this machine
/// (devcg's own libvirtd when none answers), each domain step read back
/// and audited (`devcg_kernel::libvirt`).
fn cmd_runtime_libvirt(cases: u64, seed: u64, json: bool) -> Result<ExitCode> {
    let report = devcg_kernel::libvirt::run(cases, seed).context("runtime libvirt")?;
    print_runtime_report(&report, seed, json)
}

/// `devcg runtime systemd --here`: the systemd that is PID 1 on this
/// machine, every unit read back and audited (`devcg_kernel::systemd`).
fn cmd_runtime_systemd(cases: u64, seed: u64, json: bool) -> Result<ExitCode> {
    let report = devcg_kernel::systemd::run(cases, seed).context("runtime systemd")?;
    print_runtime_report(&report, seed, json)
}

/// A runtime's report (`devcg runtime`), as text or JSON; exit 1 unless it
/// passes.
fn print_runtime_report(
    report: &devcg_kernel::runtime::RuntimeReport,
    seed: u64,
    json: bool,
) -> Result<ExitCode> {
    use devcg_kernel::runtime;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} ({} cases, seed {seed})",
            report.version,
            report.cases.len()
        );
        for (i, c) in report.cases.iter().enumerate() {
            match &c.refused {
                Some(why) => println!(
                    "case {i}: {}refused by the runtime: {why}",
                    match c.rules.first() {
                        Some(step) if step.starts_with("step ") => format!("{step}: "),
                        _ => String::new(),
                    }
                ),
                None => println!(
                    "case {i}: {}{}vs model {}, vs config: {} security, {} usability",
                    // A daemon's case is one step of a longer life: say which.
                    match c.rules.first() {
                        Some(step) if step.starts_with("step ") => format!("{step}: "),
                        _ => String::new(),
                    },
                    if c.attached {
                        ""
                    } else {
                        "no program attached; "
                    },
                    if c.versus_model.is_empty() {
                        "identical".to_string()
                    } else {
                        format!("{} differences", c.versus_model.len())
                    },
                    c.security,
                    c.usability
                ),
            }
        }
        for (i, c) in report
            .cases
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.versus_model.is_empty())
        {
            println!("\ncase {i}: rules {}", c.rules.join("; "));
            for d in c.versus_model.iter().take(10) {
                println!(
                    "  real vs model: {}",
                    d.replace("first", "real").replace("second", "model")
                );
            }
        }
        let asked: Vec<&runtime::Reality> = report
            .cases
            .iter()
            .flat_map(|c| &c.reality)
            .filter(|r| r.request.is_some())
            .collect();
        let confirmed = asked.iter().filter(|r| r.confirmed).count();
        let (asked_spot, agree) = report
            .cases
            .iter()
            .fold((0, 0), |(a, g), c| (a + c.kernel.asked, g + c.kernel.agree));
        println!(
            "\nkernel: {agree} of {asked_spot} sampled requests (allowed and denied classes of each program) answered from inside the live cgroups as the program decides"
        );
        for d in report.cases.iter().flat_map(|c| &c.kernel.disagreements) {
            println!("  DIFFERS: {d}");
        }
        println!(
            "reality: {confirmed} of {} security classes asked from inside the live cgroups were let through by the kernel ({} not safe to ask)",
            asked.len(),
            report.cases.iter().flat_map(|c| &c.reality).count() - asked.len()
        );
        for r in asked.iter().filter(|r| !r.confirmed) {
            println!(
                "  NOT confirmed: {} (asked {}): kernel {}",
                r.class,
                r.request.as_deref().unwrap_or(""),
                r.kernel
            );
        }
        println!(
            "\nreproducers (docs/findings.md) through {}:",
            report.version
        );
        for r in &report.reproducers {
            let real = match (&r.real, &r.refused) {
                (Some(v), _) => format!("real {v}"),
                (None, Some(_)) => "refused".to_string(),
                (None, None) => "not run".to_string(),
            };
            println!(
                "  {} {:<48} [{}] {}: v1 {}, {real}; kernel {}: {}",
                r.class, r.name, r.rules, r.request, r.oracle, r.kernel, r.status
            );
        }
        if !report.facts.is_empty() {
            println!("\nfacts:");
            for f in &report.facts {
                let mark = if f.holds { "holds" } else { "FAILS" };
                println!("  {mark}: {}: {}", f.name, f.detail);
            }
        }
        println!("({:.1} s)", report.seconds);
    }
    Ok(if report.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// youki's own generator, when this build has it.
#[cfg(feature = "youki")]
fn youki_source() -> Result<devcg_kernel::runtime::Source> {
    Ok(devcg_kernel::runtime::Source::Generator {
        name: "youki",
        version: devcg_youki::VERSION,
        generate: devcg_youki::compile_with_defaults,
    })
}

#[cfg(not(feature = "youki"))]
fn youki_source() -> Result<devcg_kernel::runtime::Source> {
    bail!(
        "this devcg was built without youki's generator: build with `--features youki` \
         (it needs libelf-dev, zlib1g-dev and pkg-config; scripts/test.sh installs them)"
    )
}

fn cmd_oracle(script: &Path) -> Result<ExitCode> {
    let bytes = std::fs::read(script).with_context(|| format!("reading {}", script.display()))?;
    let outputs = devcg_oracle::script::run_bytes(&bytes)
        .map_err(|e| anyhow!("{}:{}: {}", script.display(), e.line, e.kind))?;
    let mut out = std::io::stdout().lock();
    for o in outputs {
        writeln!(out, "{}", serde_json::to_string(&o)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every subcommand (and theirs) says what it is for.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&command(), "devcg", &mut missing);
        assert!(missing.is_empty(), "no help: {missing:?}");
    }

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }
}
