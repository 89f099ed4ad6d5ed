//! What the VM columns need on the host: Debian's qemu-system-x86,
//! busybox-static and kmod (apt-get), virtme-ng (pip, in a venv in the
//! cache), and whether KVM can be used at all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::apt::{dpkg_version, Apt};
use crate::proc::{run_logged, Group, Waited};

/// The virtme-ng release the runner is tested with (Python 3.11).
pub const VIRTME_NG_VERSION: &str = "1.42";

/// Debian packages the VM columns need. `file` lets virtme-ng read a
/// kernel image's version; `kmod` gives it depmod and modprobe.
pub const APT_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "kmod", "file"];

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// How the guests are run.
/// The accelerator a guest runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    /// qemu's software emulation (`vng --disable-kvm`).
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// Which accelerator the guests may use: `devcg vm --accel`, or the
/// environment variable [`ACCEL_ENV`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM when a real boot under it works, else TCG; decided per column.
    #[default]
    Auto,
    /// KVM only: a guest that fails under it is reported, not retried.
    Kvm,
    /// TCG only.
    Tcg,
}

/// The environment variable that forces an accelerator (`auto`, `kvm`,
/// `tcg`) when `--accel` is not given.
pub const ACCEL_ENV: &str = "DEVCG_VM_ACCEL";

impl AccelChoice {
    /// `--accel` when given, else [`ACCEL_ENV`], else `auto`.
    pub fn resolve(flag: Option<AccelChoice>) -> Result<AccelChoice, String> {
        AccelChoice::resolve_from(flag, std::env::var(ACCEL_ENV).ok().as_deref())
    }

    /// [`AccelChoice::resolve`] with the variable's value given.
    pub fn resolve_from(
        flag: Option<AccelChoice>,
        env: Option<&str>,
    ) -> Result<AccelChoice, String> {
        match (flag, env) {
            (Some(c), _) => Ok(c),
            (None, None) => Ok(AccelChoice::Auto),
            (None, Some(v)) => <AccelChoice as clap::ValueEnum>::from_str(v.trim(), true)
                .map_err(|_| format!("{ACCEL_ENV}={v:?}: expected one of auto, kvm, tcg")),
        }
    }
}

/// The accelerator a column's guest ran on, and why that one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ColumnAccel {
    pub accel: Accel,
    pub why: String,
    /// Why a first boot under KVM was given up, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kvm_failure: Option<String>,
}

/// Lines of qemu's output that mean a guest died under KVM while qemu
/// stays up (it pauses the VM): seen as "KVM internal error. Suberror: 1"
/// followed by "emulation failure" on Debian's 6.12 on this machine kind.
pub const KVM_FAILURE_LINES: &[&str] = &[
    "KVM internal error",
    "emulation failure",
    "KVM: entry failed",
    "kvm run failed",
];

/// Everything the VM columns need, found or installed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VmTools {
    pub vng: PathBuf,
    pub qemu: PathBuf,
    /// Whether KVM is worth a boot: Ok when /dev/kvm opens and a short
    /// qemu run under it survives, Err(why not) otherwise. Only a real boot
    /// decides (see `run_vm`).
    pub kvm_probe: Result<(), String>,
    /// Package name and version of each tool, for the report.
    pub versions: Vec<(String, String)>,
}

/// Finds or installs the VM tools. Err(reason) when they cannot be had.
pub fn ensure_vm_tools(cache: &Path, apt: &mut Apt) -> Result<VmTools, String> {
    apt.install(APT_PACKAGES)?;
    let qemu = which("qemu-system-x86_64")
        .ok_or("qemu-system-x86_64 is not on PATH after installing qemu-system-x86")?;
    let vng = ensure_vng(cache, apt)?;
    let mut versions: Vec<(String, String)> = APT_PACKAGES
        .iter()
        .map(|p| (p.to_string(), dpkg_version(p).unwrap_or_else(|| "?".into())))
        .collect();
    versions.push(("virtme-ng".into(), VIRTME_NG_VERSION.into()));
    let kvm_probe = probe_kvm(&qemu, &apt.log("kvm-probe.log"));
    Ok(VmTools {
        vng,
        qemu,
        kvm_probe,
        versions,
    })
}

/// virtme-ng, pinned, in a venv of its own under the cache.
fn ensure_vng(cache: &Path, apt: &mut Apt) -> Result<PathBuf, String> {
    let venv = cache.join(format!("virtme-ng-{VIRTME_NG_VERSION}"));
    let vng = venv.join("bin/vng");
    if vng_version(&vng).as_deref() == Some(VIRTME_NG_VERSION) {
        return Ok(vng);
    }
    if !apt.allowed {
        return Err(format!(
            "virtme-ng {VIRTME_NG_VERSION} is not in {} and installing is turned off",
            venv.display()
        ));
    }
    let python = which("python3").ok_or("python3 is not on PATH (virtme-ng needs it)")?;
    let _ = std::fs::remove_dir_all(&venv);
    let log = apt.log("virtme-ng-install.log");
    let mut made = run_logged(
        Command::new(&python).arg("-m").arg("venv").arg(&venv),
        &log,
        Duration::from_secs(300),
    )?;
    if !made.success() {
        // Debian's own python3 keeps venv in a separate package.
        let _ = std::fs::remove_dir_all(&venv);
        apt.install(&["python3-venv"])?;
        made = run_logged(
            Command::new(&python).arg("-m").arg("venv").arg(&venv),
            &log,
            Duration::from_secs(300),
        )?;
        if !made.success() {
            return Err(format!("python3 -m venv failed; see {}", log.display()));
        }
    }
    let st = run_logged(
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .arg(format!("virtme-ng=={VIRTME_NG_VERSION}")),
        &log,
        Duration::from_secs(600),
    )?;
    if !st.success() {
        return Err(format!(
            "pip install virtme-ng=={VIRTME_NG_VERSION} failed; see {}",
            log.display()
        ));
    }
    match vng_version(&vng) {
        Some(v) if v == VIRTME_NG_VERSION => Ok(vng),
        other => Err(format!(
            "{} reports version {other:?}, wanted {VIRTME_NG_VERSION}",
            vng.display()
        )),
    }
}

fn vng_version(vng: &Path) -> Option<String> {
    if !vng.exists() {
        return None;
    }
    let o = Command::new(vng).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    // "virtme-ng 1.42"
    text.split_whitespace().nth(1).map(str::to_string)
}

/// Whether KVM is worth trying: /dev/kvm opens, and qemu with `-accel kvm
/// -cpu host` (what vng asks for) is still running after a few seconds.
/// Necessary, not sufficient: on one machine of this kind qemu aborted at
/// once on an MSR write, on a later one this probe passed and real guests
/// still hung or died under KVM. A real boot decides (see `run_vm`).
pub fn probe_kvm(qemu: &Path, log: &Path) -> Result<(), String> {
    let dev = Path::new("/dev/kvm");
    if !dev.exists() {
        return Err("no /dev/kvm".into());
    }
    if let Err(e) = std::fs::File::options().read(true).write(true).open(dev) {
        return Err(format!("/dev/kvm: {e}"));
    }
    let _ = std::fs::remove_file(log);
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-machine",
        "q35",
        "-m",
        "64",
        "-display",
        "none",
        "-nodefaults",
        "-no-user-config",
        "-monitor",
        "none",
        "-serial",
        "none",
    ]);
    let mut g = match Group::spawn(&mut cmd, log) {
        Ok(g) => g,
        Err(e) => return Err(format!("cannot start {}: {e}", qemu.display())),
    };
    match g.wait(Duration::from_secs(4), None) {
        Ok(Waited::TimedOut) => Ok(()),
        Ok(Waited::Exited(st)) => {
            let last = crate::proc::tail_lines(log, 3).join(" | ");
            Err(format!("qemu with KVM exited at once ({st}): {last}"))
        }
        Ok(other) => Err(format!("KVM probe: {other:?}")),
        Err(e) => Err(format!("KVM probe: {e}")),
    }
}
