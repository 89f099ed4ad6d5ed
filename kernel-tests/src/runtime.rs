//! A real container runtime's container (runc, crun or LXC, Debian's) in a
//! scratch cgroup, so that the program the runtime itself generates and
//! attaches can be audited; or a generator's program (youki's crate)
//! attached by devcg to a scratch cgroup, audited the same way.
//!
//! runc, crun and LXC choose their cgroup2 device filter only when
//! /sys/fs/cgroup is a cgroup2 mount. On a hybrid host it is not, so every
//! runtime command runs
//! in a private mount namespace (`unshare --mount --propagation private`)
//! where the host's cgroup2 hierarchy is mounted at /sys/fs/cgroup: the
//! container's cgroup is then the same directory the host sees under its
//! own cgroup2 mount, inside devcg's scratch directory.
//!
//! crun raises RLIMIT_MEMLOCK before it loads its program, which needs
//! CAP_SYS_RESOURCE; where the process lacks it (this machine's sandbox),
//! a preloaded shim turns setrlimit into a no-op. Kernels since 5.11 do
//! not charge BPF to memlock, and the shim changes nothing in what crun
//! generates. It is compiled (cc) into the container's temp directory.
//!
//! The bundle (a busybox root filesystem and the config) and the runtime's
//! state directory
//! live in a temp directory named `devcg-runtime-<pid>-<nonce>`; the
//! container is deleted on drop, and a killed run's leftovers (the
//! scratch cgroup with the container's processes, the temp directory) are
//! removed by the next run's stale cleanup.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use devcg_differential::audit::{self, Audit, Block, Enforcement};
use devcg_differential::findings::{self, Reproducer};
use devcg_engine::{Access, Program, Request, Rule, Verdict};
use thiserror::Error;

use crate::device::{Device, Drivers};
use crate::owned;
use crate::probe::{self, KernelAnswer, NodeDir, Step};
use crate::v2::Scratch;

/// Prefix of a runtime's bundle and state directory under the temp dir.
pub const RUNTIME_PREFIX: &str = "devcg-runtime-";

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("{0} is not installed (scripts/test.sh installs it as root: apt-get install {0})")]
    Missing(&'static str),
    #[error("busybox (static) is needed for the container's root filesystem")]
    NoBusybox,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("the default config the runtime wrote is not JSON: {0}")]
    Spec(String),
    #[error("reading the container's cgroup: {0}")]
    Read(#[from] crate::audit::ReadError),
    #[error("the runtime's program: {0}")]
    Program(#[from] devcg_engine::xlated::XlatedError),
    #[error("the runtime attached {0} device programs; one was expected")]
    Programs(usize),
    #[error(transparent)]
    Audit(#[from] devcg_differential::audit::AuditError),
    #[error("probing the live container: {0}")]
    Probe(#[from] crate::sys::SysError),
    #[error("the scratch cgroup for a generated program: {0}")]
    Scratch(Box<crate::KernelError>),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let what = what.into();
    move |source| RuntimeError::Io { what, source }
}

fn find(program: &'static str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// The runtimes devcg drives for real.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    Crun,
    /// LXC (`lxc-start`), from a config of its own rather than an OCI
    /// bundle: the rules become `lxc.cgroup2.devices.*` lines.
    Lxc,
}

impl Runtime {
    /// The command devcg runs (and looks for on PATH).
    pub fn binary(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
            Runtime::Lxc => "lxc-start",
        }
    }

    /// The runtime's name, as reports and the findings call it.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Lxc => "lxc",
            other => other.binary(),
        }
    }
}

/// The shim that makes crun's setrlimit calls harmless (see the module doc).
const MEMLOCK_SHIM: &str = "#define _GNU_SOURCE\n#include <sys/resource.h>\n\
int setrlimit(__rlimit_resource_t r, const struct rlimit *l) { (void)r; (void)l; return 0; }\n\
int setrlimit64(__rlimit_resource_t r, const struct rlimit64 *l) { (void)r; (void)l; return 0; }\n";

/// Why a container of `runtime` cannot run here, if it cannot: one line.
/// Where a device program comes from: a runtime binary, which attaches it
/// to its container's cgroup, or a generator devcg calls in-process (youki's
/// own crate), whose program devcg loads and attaches to a scratch cgroup.
#[derive(Clone, Copy)]
pub enum Source {
    Binary(Runtime),
    Generator {
        /// The runtime it is the generator of (`youki`).
        name: &'static str,
        /// What generates it (`libcgroups 0.7.0`).
        version: &'static str,
        generate: Model,
    },
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Binary(r) => r.name(),
            Source::Generator { name, .. } => name,
        }
    }

    fn version(self) -> String {
        match self {
            Source::Binary(r) => version(r).unwrap_or_default(),
            Source::Generator { version, .. } => version.to_string(),
        }
    }
}

pub fn skip_reason(runtime: Runtime) -> Option<String> {
    if let Some(why) = crate::v2::skip_reason() {
        return Some(why);
    }
    if find(runtime.binary()).is_none() {
        return Some(match runtime {
            Runtime::Runc => RuntimeError::Missing("runc").to_string(),
            Runtime::Crun => RuntimeError::Missing("crun").to_string(),
            Runtime::Lxc => RuntimeError::Missing("lxc").to_string(),
        });
    }
    if runtime == Runtime::Crun && find("cc").is_none() {
        return Some("cc is not installed: crun's memlock shim cannot be built".into());
    }
    if find("unshare").is_none() {
        return Some(RuntimeError::Missing("unshare (util-linux)").to_string());
    }
    if busybox().is_none() {
        return Some(RuntimeError::NoBusybox.to_string());
    }
    None
}

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The runtime's version line (`runc version 1.1.5+ds1`).
pub fn version(runtime: Runtime) -> Result<String, RuntimeError> {
    let out = Command::new(runtime.binary())
        .arg("--version")
        .output()
        .map_err(io(format!("{} --version", runtime.binary())))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// A running container whose cgroup is a child of a scratch cgroup.
pub struct Container {
    runtime: Runtime,
    id: String,
    dir: PathBuf,
    cgroup: PathBuf,
    deleted: bool,
}

impl Container {
    /// Starts `busybox sleep` in a container whose device rules are
    /// `rules` (runc and crun: as `linux.resources.devices` OCI entries;
    /// LXC: as `lxc.cgroup2.devices.*` lines), in cgroup `name` under
    /// `scratch`.
    pub fn start(
        runtime: Runtime,
        scratch: &Scratch,
        name: &str,
        rules: &[Rule],
    ) -> Result<Container, RuntimeError> {
        if runtime == Runtime::Lxc {
            return Container::start_lxc(scratch, name, rules);
        }
        let devices = devcg_engine::strategy::models::oci_devices_json(rules);
        let (container, rel) =
            Container::prepare(runtime, scratch, name, "bundle/rootfs", &["bin"])?;
        let bundle = container.dir.join("bundle");
        fs::create_dir_all(container.dir.join("state"))
            .map_err(io("create the state directory"))?;
        if runtime == Runtime::Crun {
            let source = container.dir.join("memlock.c");
            fs::write(&source, MEMLOCK_SHIM).map_err(io("write the memlock shim"))?;
            run(
                Command::new("cc")
                    .args(["-shared", "-fPIC", "-o"])
                    .arg(container.dir.join("memlock.so"))
                    .arg(&source),
                &container.dir,
            )?;
        }
        // Both write runc's default config.
        run(
            Command::new(runtime.binary())
                .args(["spec", "--bundle"])
                .arg(&bundle),
            &container.dir,
        )?;
        let config_path = bundle.join("config.json");
        let text = fs::read_to_string(&config_path).map_err(io("read config.json"))?;
        let mut config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| RuntimeError::Spec(e.to_string()))?;
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "3600"]);
        config["root"]["readonly"] = true.into();
        config["linux"]["cgroupsPath"] = format!("/{}", rel.display()).into();
        if !config["linux"]["resources"].is_object() {
            config["linux"]["resources"] = serde_json::json!({});
        }
        config["linux"]["resources"]["devices"] = devices;
        fs::write(&config_path, config.to_string()).map_err(io("write config.json"))?;
        container.runtime(&["run", "--detach", "--bundle", bundle.to_str().unwrap_or("")])?;
        Ok(container)
    }

    /// LXC's container: a busybox root filesystem and a config of devcg's
    /// own (no network, no console, `/dev` populated by LXC), the container
    /// cgroup at `name` under `scratch` and LXC's monitor beside it at
    /// `name-monitor`, the rules as `lxc.cgroup2.devices.*` lines. The
    /// container is named by its id, its state kept in the temp directory.
    fn start_lxc(scratch: &Scratch, name: &str, rules: &[Rule]) -> Result<Container, RuntimeError> {
        let (container, rel) = Container::prepare(
            Runtime::Lxc,
            scratch,
            name,
            "rootfs",
            &["bin", "dev", "proc", "sys", "tmp"],
        )?;
        let rootfs = container.dir.join("rootfs");
        let mut config = format!(
            "lxc.uts.name = devcg\n\
             lxc.rootfs.path = dir:{rootfs}\n\
             lxc.net.0.type = empty\n\
             lxc.init.cmd = /bin/busybox sleep 3600\n\
             lxc.cgroup.dir.container = {rel}\n\
             lxc.cgroup.dir.monitor = {rel}-monitor\n\
             lxc.apparmor.profile = unconfined\n\
             lxc.console.path = none\n\
             lxc.tty.max = 0\n\
             lxc.pty.max = 0\n\
             lxc.autodev = 1\n",
            rootfs = rootfs.display(),
            rel = rel.display(),
        )
        .into_bytes();
        config.extend(devcg_engine::strategy::models::lxc::config_lines(rules));
        fs::write(container.dir.join("config"), config).map_err(io("write the LXC config"))?;
        let config = container.dir.join("config");
        let config = config.to_str().unwrap_or("");
        let log = container.dir.join("lxc.log");
        let log = log.to_str().unwrap_or("");
        container.runtime(&["lxc-start", "-d", "-f", config, "-o", log])?;
        Ok(container)
    }

    /// A container not started yet: its temp directory with a busybox root
    /// filesystem at `rootfs` (and `dirs` in it), and its cgroup `name`
    /// under `scratch`, also relative to the hierarchy's root.
    fn prepare(
        runtime: Runtime,
        scratch: &Scratch,
        name: &str,
        rootfs: &str,
        dirs: &[&str],
    ) -> Result<(Container, PathBuf), RuntimeError> {
        let busybox = busybox().ok_or(RuntimeError::NoBusybox)?;
        let dir = owned::temp_dir().join(owned::fresh_name(RUNTIME_PREFIX));
        let rootfs = dir.join(rootfs);
        for sub in dirs {
            fs::create_dir_all(rootfs.join(sub)).map_err(io("create the root filesystem"))?;
        }
        fs::copy(&busybox, rootfs.join("bin/busybox")).map_err(io("copy busybox"))?;
        let rel = scratch
            .dir()
            .strip_prefix(&scratch.mount().mount_point)
            .expect("the scratch directory is under the mount")
            .join(name);
        let container = Container {
            runtime,
            id: owned::fresh_name("devcg-"),
            cgroup: scratch.mount().mount_point.join(&rel),
            dir,
            deleted: false,
        };
        Ok((container, rel))
    }

    /// The container's cgroup, as this process sees it.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// `RUNTIME --root STATE ARGS... ID` in a mount namespace where
    /// /sys/fs/cgroup is the cgroup2 hierarchy.
    fn runtime(&self, args: &[&str]) -> Result<(), RuntimeError> {
        let dir = self.dir.to_str().unwrap_or("");
        match self.runtime {
            // lxc-start ARGS / lxc-stop ARGS, by name and state directory.
            Runtime::Lxc => {
                let (program, rest) = args.split_first().expect("a command");
                let mut all = vec!["-n", self.id.as_str(), "-P", dir];
                all.extend_from_slice(rest);
                self.in_cgroup2_ns(program, &all)
            }
            Runtime::Runc | Runtime::Crun => {
                let state = self.dir.join("state");
                let mut all = vec!["--root", state.to_str().unwrap_or("")];
                all.extend_from_slice(args);
                all.push(&self.id);
                self.in_cgroup2_ns(self.runtime.binary(), &all)
            }
        }
    }

    /// `PROGRAM ARGS...` in a mount namespace where /sys/fs/cgroup is the
    /// cgroup2 hierarchy (crun with its memlock shim preloaded).
    fn in_cgroup2_ns(&self, program: &str, args: &[&str]) -> Result<(), RuntimeError> {
        let preload = match self.runtime {
            Runtime::Crun => format!("LD_PRELOAD={} ", self.dir.join("memlock.so").display()),
            Runtime::Runc | Runtime::Lxc => String::new(),
        };
        let script = format!("mount -t cgroup2 none /sys/fs/cgroup && {preload}exec \"$0\" \"$@\"");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(program)
            .args(args);
        run(&mut cmd, &self.dir)
    }

    /// The command that stops and removes the container.
    fn stop(&self) -> Result<(), RuntimeError> {
        match self.runtime {
            Runtime::Lxc => self.runtime(&["lxc-stop", "-k"]),
            Runtime::Runc | Runtime::Crun => self.runtime(&["delete", "--force"]),
        }
    }

    /// Deletes the container (its processes are killed).
    pub fn delete(mut self) -> Result<(), RuntimeError> {
        self.deleted = true;
        let result = self.stop();
        let _ = fs::remove_dir_all(&self.dir);
        result
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.deleted {
            if let Err(e) = self.stop() {
                eprintln!("devcg: could not delete container {}: {e}", self.id);
            }
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `cmd`, its stderr to a file in `dir`: a pipe would be inherited
/// by the detached container, and reading it would wait for the container.
fn run(cmd: &mut Command, dir: &Path) -> Result<(), RuntimeError> {
    let log_path = dir.join("stderr.log");
    let log = fs::File::create(&log_path).map_err(io("create the runc log"))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .map_err(io(format!("{cmd:?}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(RuntimeError::Failed {
            command: format!("{cmd:?}"),
            status: status.to_string(),
            stderr: fs::read_to_string(&log_path)
                .unwrap_or_default()
                .trim()
                .to_string(),
        })
    }
}

/// One random config run through the real runtime.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Case {
    pub rules: Vec<String>,
    /// Why the runtime did not start the container, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Whether the runtime attached a device program (crun attaches none
    /// for a config that restricts nothing: every device is allowed).
    pub attached: bool,
    /// Requests where the real program and devcg's model of the runtime
    /// (defaults included) answer differently.
    pub versus_model: Vec<String>,
    /// Reachable classes where the container may do what the config denies.
    pub security: usize,
    /// ... and may not do what the config allows.
    pub usability: usize,
    /// Each security class asked of the kernel in the live container.
    pub reality: Vec<Reality>,
    /// Requests of the program's own classes, allowed and denied alike,
    /// asked of the kernel in the live container.
    pub kernel: SpotCheck,
}

impl Case {
    /// A case for a config (its lines as run), before anything is known.
    pub fn new(rules: Vec<String>) -> Case {
        Case {
            rules,
            refused: None,
            attached: false,
            versus_model: Vec::new(),
            security: 0,
            usability: 0,
            reality: Vec::new(),
            kernel: SpotCheck::default(),
        }
    }

    /// Judges the live `program` of `cgroup` against `meaning` (the v1
    /// rules the config means): its differences counted, each security
    /// class asked of the kernel, and a sample of its classes checked on
    /// the kernel. The audit is returned for the model's comparison.
    pub(crate) fn judge(
        &mut self,
        drivers: &Drivers,
        nodes: &mut NodeDir,
        cgroup: &Path,
        program: &Program,
        meaning: &[Rule],
    ) -> Result<Audit, RuntimeError> {
        let real = decide(program, meaning)?;
        self.security = real.differences.iter().filter(|d| d.security).count();
        self.usability = real.differences.len() - self.security;
        self.reality = reality(drivers, nodes, cgroup, &real)?;
        self.kernel = spot_check(drivers, nodes, cgroup, &real)?;
        Ok(real)
    }

    /// Compares the real program (audited as `real`) with the model's
    /// program for the same config, on their common classes.
    pub(crate) fn compare_model(
        &mut self,
        real: (&Audit, &Program),
        model: Result<Program, devcg_engine::CompileError>,
        meaning: &[Rule],
    ) -> Result<(), RuntimeError> {
        match model {
            Ok(m) => {
                let modelled = decide(&m, meaning)?;
                self.versus_model = audit::program_disagreements(real, (&modelled, &m))?;
            }
            Err(e) => self.versus_model = vec![format!("devcg's model refuses the config: {e}")],
        }
        Ok(())
    }

    /// The program decides as the model, every security class asked was
    /// let through, and the kernel answered every sampled request as the
    /// program decides.
    pub fn passes(&self) -> bool {
        self.versus_model.is_empty()
            && self
                .reality
                .iter()
                .all(|r| r.confirmed || r.request.is_none())
            && self.kernel.disagreements.is_empty()
    }
}

/// The kernel against the program, on a sample of the program's classes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpotCheck {
    /// Requests asked (one device of a class, one access).
    pub asked: usize,
    /// ... the kernel answered as the program decides.
    pub agree: usize,
    /// The others: `c 200:3 r: program allow, kernel deny`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disagreements: Vec<String>,
}

/// A security class tried for real: a child joined to the live
/// container's cgroup asks the kernel for one device of it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Reality {
    /// The class, as the audit prints it (`c 1:9 w`).
    pub class: String,
    /// The request made, if one could be made safely.
    pub request: Option<String>,
    /// `allowed`, `denied`, an unexpected errno, or why nothing was asked.
    pub kernel: String,
    /// The kernel let through what the config denies.
    pub confirmed: bool,
}

/// What `devcg runtime` found for one runtime.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RuntimeReport {
    pub runtime: String,
    pub version: String,
    pub cases: Vec<Case>,
    /// docs/findings.md's reproducers for this runtime, through the binary.
    pub reproducers: Vec<ReproducerResult>,
    /// Facts checked on a daemon beyond its configs (systemd's program
    /// lifecycle, libvirt's map after a hot-unplug); none for the
    /// container runtimes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<Fact>,
    pub seconds: f64,
    /// Every started container's program decides as devcg's model, the
    /// kernel answered every probe as the audit said it would, and every
    /// fact holds.
    pub pass: bool,
}

/// One fact checked on the real daemon, as observed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Fact {
    pub name: String,
    /// What was seen (ids, counts), or why it could not be checked.
    pub detail: String,
    pub holds: bool,
}

/// How devcg models a runtime: its program for a config, defaults included.
pub type Model = fn(&[Rule]) -> Result<Program, devcg_engine::CompileError>;

/// devcg's model of what a runtime attaches, possibly for one version of
/// it (a closure over the version).
pub type ModelOf<'a> = &'a (dyn Fn(&[Rule]) -> Result<Program, devcg_engine::CompileError> + Sync);

/// Runs `cases` random configs (seeded) through the real `runtime`
/// ([`run_config`] each), then every reproducer of docs/findings.md for it
/// ([`run_reproducer`]).
pub fn run_cases(
    runtime: Source,
    cases: u64,
    seed: u64,
    model: ModelOf,
) -> Result<RuntimeReport, crate::KernelError> {
    use devcg_differential::gen::{rules_in, Draw};
    let why = match runtime {
        Source::Binary(r) => skip_reason(r),
        Source::Generator { .. } => crate::v2::skip_reason(),
    };
    if let Some(why) = why {
        return Err(crate::KernelError::Unavailable(why));
    }
    let started = std::time::Instant::now();
    let scratch = Scratch::new()?.ok_or(crate::KernelError::NoCgroup2)?;
    let mut nodes = NodeDir::mount()?;
    let space = crate::gen::space(scratch.drivers());
    let lists = rules_in(&space, 6);
    let mut draw = Draw::new(seed);
    let mut out = Vec::new();
    for i in 0..cases {
        let rules = draw.value(&lists);
        out.push(run_config(
            runtime,
            &scratch,
            &mut nodes,
            &format!("case{i}"),
            &rules,
            model,
        )?);
    }
    let mut reproducers = Vec::new();
    for (i, r) in reproducers_of(runtime).iter().enumerate() {
        reproducers.push(run_reproducer(
            runtime,
            &scratch,
            &mut nodes,
            &format!("finding{i}"),
            r,
            model,
        )?);
    }
    let pass = out.iter().all(Case::passes) && reproducers.iter().all(|r| r.kernel_agrees);
    Ok(RuntimeReport {
        runtime: runtime.name().to_string(),
        version: runtime.version(),
        cases: out,
        reproducers,
        facts: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
        pass,
    })
}

fn reproducers_of(runtime: Source) -> &'static [Reproducer] {
    match runtime.name() {
        "runc" => findings::RUNC,
        "crun" => findings::CRUN,
        "youki" => findings::YOUKI,
        "lxc" => findings::LXC,
        _ => &[],
    }
}

/// What holds the program while it is audited and probed.
enum Holder {
    Container(Container),
    /// A scratch cgroup devcg attached a generated program to.
    Cgroup(crate::v2::Cgroup),
}

/// A started container (or an attached generated program) and the
/// program it enforces, read back.
struct Captured {
    holder: Holder,
    cgroup: PathBuf,
    program: Program,
    attached: bool,
}

impl Captured {
    /// Deletes the container, or removes the scratch cgroup.
    fn release(self, scratch: &Scratch) -> Result<(), RuntimeError> {
        match self.holder {
            Holder::Container(c) => c.delete(),
            Holder::Cgroup(cg) => scratch
                .rmdir(cg)
                .map_err(|e| RuntimeError::Scratch(Box::new(e))),
        }
    }
}

/// Starts `rules` in the real `runtime` (or attaches the generated
/// program to a scratch cgroup) and reads its program back; the runtime's
/// (or the generator's, or the kernel's) refusal as `Ok(Err(reason))`.
fn capture(
    runtime: Source,
    scratch: &Scratch,
    name: &str,
    rules: &[Rule],
) -> Result<Result<Captured, String>, RuntimeError> {
    let scratch_err = |e: crate::KernelError| RuntimeError::Scratch(Box::new(e));
    let holder = match runtime {
        Source::Binary(r) => match Container::start(r, scratch, name, rules) {
            Ok(c) => Holder::Container(c),
            Err(e) => return Ok(Err(e.to_string())),
        },
        Source::Generator { generate, .. } => {
            let program = match generate(rules) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let loaded = match crate::bpf::load(&program, "devcg_generated") {
                Ok(l) => l,
                Err(e) => return Ok(Err(format!("the kernel refuses the program: {e}"))),
            };
            let cg = scratch.mkdir(name).map_err(scratch_err)?;
            scratch
                .attach(&cg, &loaded, crate::bpf::AttachFlags::NONE)
                .map_err(scratch_err)?;
            Holder::Cgroup(cg)
        }
    };
    let cgroup = match &holder {
        Holder::Container(c) => c.cgroup().to_path_buf(),
        Holder::Cgroup(cg) => cg.path().to_path_buf(),
    };
    let (program, attached) = read_program(&cgroup)?;
    Ok(Ok(Captured {
        holder,
        cgroup,
        program,
        attached,
    }))
}

/// The one device program attached to `cgroup`, read back, and whether
/// there was one (none: cgroup2 allows every device, read as a program
/// that allows all).
pub(crate) fn read_program(cgroup: &Path) -> Result<(Program, bool), RuntimeError> {
    let live = crate::audit::read(&cgroup.display().to_string())?;
    let mut programs = live.v2.map(|v2| v2.programs).unwrap_or_default();
    if programs.len() > 1 {
        return Err(RuntimeError::Programs(programs.len()));
    }
    let attached = !programs.is_empty();
    let program = match programs.pop() {
        Some(p) => p.program?,
        None => allow_all(),
    };
    Ok((program, attached))
}

/// The audit of `program` against what `rules` mean, with its differences.
pub(crate) fn decide(program: &Program, rules: &[Rule]) -> Result<Audit, audit::AuditError> {
    let e = Enforcement {
        programs: vec![("program".into(), program.clone())],
        v1: None,
    };
    let mut a = audit::audit(&e, rules)?;
    audit::compare(&mut a, rules);
    Ok(a)
}

/// One config through the real `runtime`, in cgroup `name` under
/// `scratch`: the container's program is read back and decided
/// (`devcg_differential::audit`) against the config's rules, each security
/// class is asked of the kernel from inside the live container, the
/// container is deleted, and the program is compared with `model`. A
/// config the runtime refuses is a case too, with the runtime's reason.
pub fn run_config(
    runtime: Source,
    scratch: &Scratch,
    nodes: &mut NodeDir,
    name: &str,
    rules: &[Rule],
    model: ModelOf,
) -> Result<Case, RuntimeError> {
    let mut case = Case::new(rules.iter().map(Rule::to_string).collect());
    let captured = match capture(runtime, scratch, name, rules)? {
        Ok(c) => c,
        Err(why) => {
            case.refused = Some(why);
            return Ok(case);
        }
    };
    case.attached = captured.attached;
    let real = case.judge(
        scratch.drivers(),
        nodes,
        &captured.cgroup,
        &captured.program,
        rules,
    )?;
    let program = captured.program.clone();
    captured.release(scratch)?;
    case.compare_model((&real, &program), model(rules), rules)?;
    Ok(case)
}

/// Each security class of `real` asked of the kernel by a child joined
/// to `cgroup`, where a device of it can be asked safely.
pub(crate) fn reality(
    drivers: &Drivers,
    nodes: &mut NodeDir,
    cgroup: &Path,
    real: &Audit,
) -> Result<Vec<Reality>, RuntimeError> {
    let mut out = Vec::new();
    let security: Vec<&audit::Difference> =
        real.differences.iter().filter(|d| d.security).collect();
    let asked: Vec<(String, Option<Request>)> = security
        .iter()
        .map(|d| {
            let class = format!("{} {}", d.devices, d.access);
            (class, probe_device(drivers, &d.class, d.request_access))
        })
        .collect();
    let requests: Vec<Request> = asked.iter().filter_map(|(_, r)| *r).collect();
    let mut answers = ask(nodes, cgroup, &requests)?.into_iter();
    for (class, request) in asked {
        out.push(match request {
            Some(req) => {
                let answer = answers.next().expect("one answer per request");
                Reality {
                    class,
                    request: Some(req.to_string()),
                    kernel: answer.to_string(),
                    confirmed: answer == KernelAnswer::Allowed,
                }
            }
            None => Reality {
                class,
                request: None,
                kernel:
                    "not asked: every device of the class has a driver that is not safe to open"
                        .into(),
                confirmed: false,
            },
        });
    }
    Ok(out)
}

/// Requests sampled per case for [`spot_check`].
const SPOT_REQUESTS: usize = 32;

/// Asks the kernel, from a child joined to `cgroup`, one request of each
/// of up to [`SPOT_REQUESTS`] (class, access) pairs of the program's own
/// audit, spread over its blocks, allowed and denied alike, where a
/// device of the class can be asked safely; compares each answer with
/// the program's decision.
pub(crate) fn spot_check(
    drivers: &Drivers,
    nodes: &mut NodeDir,
    cgroup: &Path,
    real: &Audit,
) -> Result<SpotCheck, RuntimeError> {
    let pairs = real.blocks.len() * audit::ACCESSES.len();
    // Every pair when few; else an even spread over twice the budget, as
    // some pairs have no device that is safe to ask.
    let stride = (pairs / (2 * SPOT_REQUESTS)).max(1);
    let mut asked: Vec<(Request, Verdict)> = Vec::new();
    for i in (0..pairs).step_by(stride) {
        if asked.len() == SPOT_REQUESTS {
            break;
        }
        let block = &real.blocks[i / audit::ACCESSES.len()];
        let k = i % audit::ACCESSES.len();
        if let Some(req) = probe_device(drivers, block, audit::ACCESSES[k]) {
            let verdict = if block.allowed.contains(k) {
                Verdict::Allow
            } else {
                Verdict::Deny
            };
            asked.push((req, verdict));
        }
    }
    let requests: Vec<Request> = asked.iter().map(|(r, _)| *r).collect();
    let answers = ask(nodes, cgroup, &requests)?;
    let mut out = SpotCheck {
        asked: asked.len(),
        ..SpotCheck::default()
    };
    for ((req, program), answer) in asked.iter().zip(answers) {
        if answer.verdict() == Some(*program) {
            out.agree += 1;
        } else {
            out.disagreements
                .push(format!("{req}: program {program}, kernel {answer}"));
        }
    }
    Ok(out)
}

/// A finding's reproducer run through the real binary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReproducerResult {
    pub class: &'static str,
    pub name: &'static str,
    /// The rules and request as run: a finding that is not about the
    /// defaults is moved off majors 1 and 7 to a driverless major, where
    /// no default device is and the kernel can be asked safely.
    pub rules: String,
    pub request: String,
    pub oracle: Verdict,
    /// What the finding says the runtime answers (`None`: it refuses).
    pub finding: Option<Verdict>,
    /// What the real program answers (emulated after reading it back), or
    /// `None` when the runtime refused the list.
    pub real: Option<Verdict>,
    /// The runtime's refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// What the kernel answered in the live container, or why it was not
    /// asked.
    pub kernel: String,
    /// The kernel's answer, where asked, is the real program's.
    pub kernel_agrees: bool,
    /// `confirmed`, `masked by the runtime's defaults`, or `not seen`.
    pub status: String,
}

impl ReproducerResult {
    /// A reproducer as run (`rules`, `request`), before anything is
    /// known; `kernel` says why the kernel was not asked, until it is.
    pub(crate) fn new(r: &Reproducer, rules: String, request: String, kernel: &str) -> Self {
        ReproducerResult {
            class: r.class,
            name: r.name,
            rules,
            request,
            oracle: r.oracle,
            finding: r.runtime,
            real: None,
            refused: None,
            kernel: kernel.into(),
            kernel_agrees: true,
            status: String::new(),
        }
    }
}

/// One reproducer through the real `runtime`, in cgroup `name`; `model`
/// (what the runtime attaches, defaults included) tells a finding the
/// defaults mask from one not seen.
pub fn run_reproducer(
    runtime: Source,
    scratch: &Scratch,
    nodes: &mut NodeDir,
    name: &str,
    r: &Reproducer,
    model: ModelOf,
) -> Result<ReproducerResult, RuntimeError> {
    let moved_to = (!r.defaults)
        .then(|| free_major(scratch.drivers()))
        .flatten();
    let (rules_text, request_text) = r.texts(moved_to);
    let (rules, req) = findings::parse(r.name, &rules_text, &request_text);
    let mut out = ReproducerResult::new(
        r,
        rules_text,
        request_text,
        "not asked: the container did not start",
    );
    match capture(runtime, scratch, name, &rules)? {
        Err(why) => {
            out.status = if r.runtime.is_none() {
                "confirmed: the runtime refuses the list".into()
            } else {
                "not seen: the runtime refuses the list".into()
            };
            out.refused = Some(why);
        }
        Ok(captured) => {
            let real = devcg_emulator::Emulator::new(&captured.program)
                .and_then(|e| e.run(&req))
                .map_err(|source| audit::AuditError::Run {
                    label: "the runtime's program".into(),
                    request: req,
                    source,
                })?;
            out.real = Some(real);
            let access = req.access;
            let device = Device::new(req.ty, req.major, req.minor);
            if safe_to_ask(scratch.drivers(), device, access) {
                let answer = ask(nodes, &captured.cgroup, &[req])?[0];
                out.kernel = answer.to_string();
                out.kernel_agrees = answer.verdict() == Some(real);
            } else {
                out.kernel = if req.is_reachable() {
                    format!("not asked: {device} has a driver that is not safe to open")
                } else {
                    "not asked: no syscall makes this request".into()
                };
            }
            captured.release(scratch)?;
            let with_defaults = model(&rules)
                .ok()
                .and_then(|p| devcg_emulator::Emulator::new(&p).ok()?.run(&req).ok());
            out.status = if Some(real) == r.runtime && real != r.oracle {
                "confirmed".into()
            } else if real == r.oracle && with_defaults == Some(real) {
                "masked by the runtime's defaults".into()
            } else {
                "not seen".into()
            };
        }
    }
    Ok(out)
}

/// A char major with no driver and no runtime default device (1, 5, 10,
/// 136 are defaults' majors), for findings that do not depend on numbers.
pub(crate) fn free_major(drivers: &Drivers) -> Option<u32> {
    (200..4096).find(|&m| {
        drivers
            .probeable(Device::new(devcg_engine::DeviceType::Char, m, 3))
            .is_ok()
    })
}

/// Devices with a driver that a probe may open: memory devices whose open
/// reads or writes nothing of consequence (null, zero, full, random,
/// urandom).
const HARMLESS: [(u32, u32); 5] = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9)];

/// Whether the kernel may be asked `access` on `device`: an open only of a
/// driverless or harmless device; `access(F_OK)` and mknod of any (neither
/// reaches a driver).
pub(crate) fn safe_to_ask(drivers: &Drivers, device: Device, access: Access) -> bool {
    let any = access.is_empty() || access == Access::MKNOD;
    // A request no syscall makes (`rm`) cannot be asked.
    let realizable =
        device.request(access).is_reachable() && (device.major, device.minor) != (0, 0);
    realizable
        && (any
            || drivers.probeable(device).is_ok()
            || (device.ty == devcg_engine::DeviceType::Char
                && HARMLESS.contains(&(device.major, device.minor))))
}

/// A device of `class` the kernel may safely be asked `access` about.
pub(crate) fn probe_device(drivers: &Drivers, class: &Block, access: Access) -> Option<Request> {
    let majors = class.majors.0..=class.majors.1.min(class.majors.0 + 4096);
    let minors = [
        class.minors.0,
        class.minors.0.saturating_add(1).min(class.minors.1),
    ];
    majors
        .flat_map(|major| minors.map(|minor| Device::new(class.ty, major, minor)))
        .find(|&d| safe_to_ask(drivers, d, access))
        .map(|d| d.request(access))
}

/// Asks the kernel each request from a child joined to `cgroup` (the
/// container's, inside the scratch directory; the nodes made here, in this
/// process's own cgroup).
pub(crate) fn ask(
    nodes: &mut NodeDir,
    cgroup: &Path,
    requests: &[Request],
) -> Result<Vec<KernelAnswer>, RuntimeError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let procs = crate::sys::cstring(&cgroup.join("cgroup.procs"))?;
    let mut steps = vec![Step::Join(procs)];
    for req in requests {
        let dev = Device::new(req.ty, req.major, req.minor);
        steps.push(match req.access {
            Access::NONE => Step::Access(nodes.node(dev)?),
            Access::MKNOD => Step::Mknod(nodes.fresh_name()?, dev.sflag(), dev.dev_t()),
            a => Step::Open(nodes.node(dev)?, probe::open_flags(a)),
        });
    }
    let codes = probe::run_child(&steps)?;
    Ok(steps[1..]
        .iter()
        .zip(&codes[1..])
        .map(|(step, &code)| step.outcome(code))
        .collect())
}

/// What a cgroup without a device program enforces: every request allowed.
fn allow_all() -> Program {
    let mut a = devcg_engine::asm::Asm::new();
    a.ret(1);
    Program::new(a.finish().expect("no labels"))
}
