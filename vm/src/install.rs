//! What the VM columns need on the host: Debian's qemu-system-x86,
//! busybox-static and kmod (apt-get), virtme-ng (pip, in a venv in the
//! cache), and whether KVM can be used at all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::{run_logged, Group, Waited};

/// The virtme-ng release the runner is tested with (Python 3.11).
pub const VIRTME_NG_VERSION: &str = "1.42";

/// Debian packages the VM columns need. `file` lets virtme-ng read a
/// kernel image's version; `kmod` gives it depmod and modprobe.
pub const APT_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "kmod", "file"];

const APT_TIMEOUT: Duration = Duration::from_secs(900);

/// apt-get with one `update` per run, output in the cache's log directory.
pub struct Apt {
    updated: bool,
    logs: PathBuf,
    /// Whether the runner may change the system (apt-get install, sources).
    pub allowed: bool,
}

impl Apt {
    pub fn new(logs: &Path, allowed: bool) -> Apt {
        Apt {
            updated: false,
            logs: logs.to_owned(),
            allowed,
        }
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    fn available() -> bool {
        which("apt-get").is_some() && which("dpkg").is_some()
    }

    pub fn update(&mut self, force: bool) -> Result<(), String> {
        if self.updated && !force {
            return Ok(());
        }
        if !Self::available() {
            return Err("apt-get is not available (not a Debian machine?)".into());
        }
        let log = self.log("apt-get-update.log");
        let st = run_logged(
            Command::new("apt-get").args(["-q", "update"]),
            &log,
            APT_TIMEOUT,
        )?;
        if !st.success() {
            return Err(format!(
                "apt-get update failed ({st}); see {}",
                log.display()
            ));
        }
        self.updated = true;
        Ok(())
    }

    pub fn install(&mut self, packages: &[&str]) -> Result<(), String> {
        if !self.allowed {
            return Err(format!(
                "missing {} and installing is turned off",
                packages.join(" ")
            ));
        }
        self.update(false)?;
        let log = self.log("apt-get-install.log");
        let st = run_logged(
            Command::new("apt-get")
                .args(["-q", "-y", "install", "--no-install-recommends"])
                .args(packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            &log,
            APT_TIMEOUT,
        )?;
        if !st.success() {
            return Err(format!(
                "apt-get install {} failed ({st}); see {}",
                packages.join(" "),
                log.display()
            ));
        }
        Ok(())
    }
}

/// Whether a Debian package is installed.
pub fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).ends_with("installed"))
        .unwrap_or(false)
}

/// The installed version of a Debian package.
pub fn dpkg_version(package: &str) -> Option<String> {
    let o = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !v.is_empty()).then_some(v)
}

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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "accel", content = "why")]
pub enum Accel {
    Kvm,
    /// Software emulation, and why KVM was not used.
    Tcg(String),
}

/// Everything the VM columns need, found or installed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VmTools {
    pub vng: PathBuf,
    pub qemu: PathBuf,
    pub accel: Accel,
    /// Package name and version of each tool, for the report.
    pub versions: Vec<(String, String)>,
}

/// Finds or installs the VM tools. Err(reason) when they cannot be had.
pub fn ensure_vm_tools(cache: &Path, apt: &mut Apt) -> Result<VmTools, String> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        apt.install(&missing)?;
    }
    let qemu = which("qemu-system-x86_64")
        .ok_or("qemu-system-x86_64 is not on PATH after installing qemu-system-x86")?;
    let vng = ensure_vng(cache, apt)?;
    let mut versions: Vec<(String, String)> = APT_PACKAGES
        .iter()
        .map(|p| (p.to_string(), dpkg_version(p).unwrap_or_else(|| "?".into())))
        .collect();
    versions.push(("virtme-ng".into(), VIRTME_NG_VERSION.into()));
    let accel = detect_accel(&qemu, &apt.log("kvm-probe.log"));
    Ok(VmTools {
        vng,
        qemu,
        accel,
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

/// KVM is used only when it works: /dev/kvm opens, and qemu with
/// `-accel kvm -cpu host` (what vng asks for) is still running after a few
/// seconds. On this machine kind qemu aborts at once on an MSR write, so
/// the guests run under TCG.
pub fn detect_accel(qemu: &Path, log: &Path) -> Accel {
    let dev = Path::new("/dev/kvm");
    if !dev.exists() {
        return Accel::Tcg("no /dev/kvm".into());
    }
    if let Err(e) = std::fs::File::options().read(true).write(true).open(dev) {
        return Accel::Tcg(format!("/dev/kvm: {e}"));
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
        Err(e) => return Accel::Tcg(format!("cannot start {}: {e}", qemu.display())),
    };
    match g.wait(Duration::from_secs(4), None) {
        Ok(Waited::TimedOut) => Accel::Kvm,
        Ok(Waited::Exited(st)) => {
            let last = crate::proc::tail_lines(log, 3).join(" | ");
            Accel::Tcg(format!("qemu with KVM exited at once ({st}): {last}"))
        }
        Ok(other) => Accel::Tcg(format!("KVM probe: {other:?}")),
        Err(e) => Accel::Tcg(format!("KVM probe: {e}")),
    }
}
