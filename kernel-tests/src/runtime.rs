//! A real container runtime's container (runc or crun, Debian's) in a
//! scratch cgroup, so that the program the runtime itself generates and
//! attaches can be audited.
//!
//! runc and crun choose their cgroup2 device filter only when
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

use devcg_engine::{Program, Rule};
use thiserror::Error;

use crate::owned;
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
}

impl Runtime {
    pub fn binary(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }
}

/// The shim that makes crun's setrlimit calls harmless (see the module doc).
const MEMLOCK_SHIM: &str = "#define _GNU_SOURCE\n#include <sys/resource.h>\n\
int setrlimit(__rlimit_resource_t r, const struct rlimit *l) { (void)r; (void)l; return 0; }\n\
int setrlimit64(__rlimit_resource_t r, const struct rlimit64 *l) { (void)r; (void)l; return 0; }\n";

/// Why a container of `runtime` cannot run here, if it cannot: one line.
pub fn skip_reason(runtime: Runtime) -> Option<String> {
    if let Some(why) = crate::v2::skip_reason() {
        return Some(why);
    }
    if find(runtime.binary()).is_none() {
        return Some(match runtime {
            Runtime::Runc => RuntimeError::Missing("runc").to_string(),
            Runtime::Crun => RuntimeError::Missing("crun").to_string(),
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
    /// Starts `busybox sleep` in a container whose `linux.resources.devices`
    /// is `devices` (OCI JSON entries), in cgroup `name` under `scratch`.
    pub fn start(
        runtime: Runtime,
        scratch: &Scratch,
        name: &str,
        devices: &serde_json::Value,
    ) -> Result<Container, RuntimeError> {
        let busybox = busybox().ok_or(RuntimeError::NoBusybox)?;
        let dir = owned::temp_dir().join(owned::fresh_name(RUNTIME_PREFIX));
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        fs::create_dir_all(rootfs.join("bin")).map_err(io("create the bundle"))?;
        fs::create_dir_all(dir.join("state")).map_err(io("create the state directory"))?;
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
        config["linux"]["resources"]["devices"] = devices.clone();
        fs::write(&config_path, config.to_string()).map_err(io("write config.json"))?;
        container.runtime(&["run", "--detach", "--bundle", bundle.to_str().unwrap_or("")])?;
        Ok(container)
    }

    /// The container's cgroup, as this process sees it.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// `RUNTIME --root STATE ARGS... ID` in a mount namespace where
    /// /sys/fs/cgroup is the cgroup2 hierarchy.
    fn runtime(&self, args: &[&str]) -> Result<(), RuntimeError> {
        let state = self.dir.join("state");
        let preload = match self.runtime {
            Runtime::Crun => format!("LD_PRELOAD={} ", self.dir.join("memlock.so").display()),
            Runtime::Runc => String::new(),
        };
        let mut script = format!(
            "mount -t cgroup2 none /sys/fs/cgroup && {preload}exec {} --root \"$0\"",
            self.runtime.binary()
        );
        for (i, _) in args.iter().enumerate() {
            script.push_str(&format!(" \"${}\"", i + 1));
        }
        script.push_str(&format!(" \"${}\"", args.len() + 1));
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(&state)
            .args(args)
            .arg(&self.id);
        run(&mut cmd, &self.dir)
    }

    /// Deletes the container (its processes are killed).
    pub fn delete(mut self) -> Result<(), RuntimeError> {
        self.deleted = true;
        let result = self.runtime(&["delete", "--force"]);
        let _ = fs::remove_dir_all(&self.dir);
        result
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.deleted {
            if let Err(e) = self.runtime(&["delete", "--force"]) {
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
}

/// What `devcg runtime` found for one runtime.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RuntimeReport {
    pub runtime: String,
    pub version: String,
    pub cases: Vec<Case>,
    pub seconds: f64,
    /// Every started container's program decides as devcg's model.
    pub pass: bool,
}

/// How devcg models a runtime: its program for a config, defaults included.
pub type Model = fn(&[Rule]) -> Result<Program, devcg_engine::CompileError>;

/// Runs `cases` random configs (seeded) through the real `runtime`
/// ([`run_config`] each).
pub fn run_cases(
    runtime: Runtime,
    cases: u64,
    seed: u64,
    model: Model,
) -> Result<RuntimeReport, crate::KernelError> {
    use devcg_differential::gen::{rules_in, Draw};
    if let Some(why) = skip_reason(runtime) {
        return Err(crate::KernelError::Unavailable(why));
    }
    let started = std::time::Instant::now();
    let scratch = Scratch::new()?.ok_or(crate::KernelError::NoCgroup2)?;
    let space = crate::gen::space(scratch.drivers());
    let lists = rules_in(&space, 6);
    let mut draw = Draw::new(seed);
    let mut out = Vec::new();
    for i in 0..cases {
        let rules = draw.value(&lists);
        out.push(run_config(
            runtime,
            &scratch,
            &format!("case{i}"),
            &rules,
            model,
        )?);
    }
    let pass = out.iter().all(|c| c.versus_model.is_empty());
    Ok(RuntimeReport {
        runtime: runtime.binary().to_string(),
        version: version(runtime).unwrap_or_default(),
        cases: out,
        seconds: started.elapsed().as_secs_f64(),
        pass,
    })
}

/// One config through the real `runtime`, in cgroup `name` under
/// `scratch`: the container's program is read back, the container deleted,
/// and the program decided (`devcg_differential::audit`) against the
/// config's rules and against `model`. A config the runtime refuses is a
/// case too, with the runtime's reason.
pub fn run_config(
    runtime: Runtime,
    scratch: &Scratch,
    name: &str,
    rules: &[Rule],
    model: Model,
) -> Result<Case, RuntimeError> {
    use devcg_differential::audit::{self, Enforcement};
    let mut case = Case {
        rules: rules.iter().map(Rule::to_string).collect(),
        refused: None,
        attached: false,
        versus_model: Vec::new(),
        security: 0,
        usability: 0,
    };
    let devices = devcg_engine::strategy::models::oci_devices_json(rules);
    let container = match Container::start(runtime, scratch, name, &devices) {
        Ok(c) => c,
        Err(e) => {
            case.refused = Some(e.to_string());
            return Ok(case);
        }
    };
    let live = crate::audit::read(&container.cgroup().display().to_string())?;
    container.delete()?;
    let mut programs = live.v2.map(|v2| v2.programs).unwrap_or_default();
    if programs.len() > 1 {
        return Err(RuntimeError::Programs(programs.len()));
    }
    case.attached = !programs.is_empty();
    let program = match programs.pop() {
        Some(p) => p.program?,
        // No program: cgroup2 allows every device.
        None => allow_all(),
    };
    let decide = |p: &Program| {
        let e = Enforcement {
            programs: vec![("program".into(), p.clone())],
            v1: None,
        };
        let mut a = audit::audit(&e, rules)?;
        audit::compare(&mut a, rules);
        Ok::<_, audit::AuditError>(a)
    };
    let real = decide(&program)?;
    match model(rules) {
        Ok(m) => {
            let modelled = decide(&m)?;
            case.versus_model = audit::program_disagreements((&real, &program), (&modelled, &m))?;
        }
        Err(e) => case.versus_model = vec![format!("devcg's model refuses the config: {e}")],
    }
    case.security = real.differences.iter().filter(|d| d.security).count();
    case.usability = real.differences.len() - case.security;
    Ok(case)
}

/// What a cgroup without a device program enforces: every request allowed.
fn allow_all() -> Program {
    let mut a = devcg_engine::asm::Asm::new();
    a.ret(1);
    Program::new(a.finish().expect("no labels"))
}
