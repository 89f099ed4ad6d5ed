//! The full-distribution guest: a Debian root filesystem with systemd as
//! init, libvirt with its LXC driver and busybox, for what only runs on a
//! whole system (systemd as PID 1, libvirtd with a driver).
//!
//! The image is built from Debian packages by `mmdebstrap` (no root-only
//! tricks in the build itself; here it runs in its root mode), turned into
//! an ext4 file by `mkfs.ext4 -d`, and cached with the kernel and initrd
//! the image's own `linux-image-amd64` installed, under
//! `<cache>/distro/<key>/`. The key hashes the suite, the package list and
//! the guest's own files, so changing any of them builds a new image.
//!
//! A job is a shell script from the host. The guest boots with the image as
//! a read-only base (`snapshot=on`: its writes go to a qemu temp file that
//! disappears with qemu), mounts a 9p share at `/mnt/devcg`, runs the
//! script as root once the system is up (a unit ordered after
//! `multi-user.target`), leaves `stdout`, `stderr` and `rc` in the share
//! and powers off. No network. qemu runs in its own process group under a
//! deadline and is killed with everything it started when the deadline
//! passes; the share lives in a temp directory removed afterwards (and by
//! the next run, when a run was killed).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::apt::{dpkg_version, Apt};
use crate::install::{Accel, AccelChoice, KVM_FAILURE_LINES};
use crate::proc::{run_logged, tail_lines, Group, Waited};
use crate::VmError;

/// Debian release of the guest.
pub const SUITE: &str = "bookworm";
pub const MIRROR: &str = "http://deb.debian.org/debian";

/// The guest's packages (no recommends). `systemd-container` gives
/// libvirt systemd-machined to register its containers with; `libelf1` and
/// `zlib1g` are what a devcg built with youki's generator links.
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "systemd-container",
    "libvirt-daemon",
    "libvirt-daemon-driver-lxc",
    "libvirt-clients",
    "busybox-static",
    "linux-image-amd64",
    "initramfs-tools",
    "kmod",
    "libelf1",
    "zlib1g",
    "procps",
];

/// What building and booting need on the host.
pub const HOST_PACKAGES: &[&str] = &["mmdebstrap", "qemu-system-x86", "e2fsprogs"];

/// The packages whose versions a report names.
const NAMED: &[&str] = &["systemd", "libvirt-daemon", "linux-image-amd64"];

/// Runs the host's job: mounts the share, runs `job.sh` as root, records
/// its exit status, powers off. `started` tells the host the boot is over.
const JOB_RUNNER: &str = r#"#!/bin/sh
# devcg: runs the host's job from the 9p share, then powers off.
modprobe -q 9pnet_virtio
modprobe -q 9p
mkdir -p /mnt/devcg
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 devcg /mnt/devcg; then
    : > /mnt/devcg/started
    sh /mnt/devcg/job.sh > /mnt/devcg/stdout 2> /mnt/devcg/stderr
    echo $? > /mnt/devcg/rc
    sync
    umount /mnt/devcg
else
    echo "devcg-guest: cannot mount the 9p share devcg" > /dev/console
fi
systemctl poweroff --force --force
"#;

const JOB_UNIT: &str = "[Unit]
Description=devcg: the host's job
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/devcg-guest-job
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
";

/// Files written into the root filesystem after the packages: path, mode,
/// contents.
const GUEST_FILES: &[(&str, u32, &str)] = &[
    (
        "etc/fstab",
        0o644,
        "/dev/vda / ext4 rw,errors=remount-ro 0 1\n",
    ),
    ("etc/hostname", 0o644, "devcg-guest\n"),
    ("usr/local/sbin/devcg-guest-job", 0o755, JOB_RUNNER),
    ("etc/systemd/system/devcg-guest.service", 0o644, JOB_UNIT),
];

/// Where `systemctl enable` would put the unit's symlink.
const UNIT_LINK: (&str, &str) = (
    "etc/systemd/system/multi-user.target.wants/devcg-guest.service",
    "/etc/systemd/system/devcg-guest.service",
);

/// The image's size; the file is sparse (about 750 MB used).
const IMAGE_SIZE: &str = "3G";

/// Kernel command line: the image as root, the console on the serial line.
pub const CMDLINE: &str = "root=/dev/vda rw console=ttyS0 panic=-1";

const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);
/// Boot budget under KVM, as the kernel matrix has: a KVM guest that has
/// not started the job by then is booted again under TCG.
const KVM_BOOT: Duration = Duration::from_secs(90);
/// Boot budget under TCG (about 10 s on an idle machine of this kind).
const TCG_BOOT: Duration = Duration::from_secs(600);
/// Prefix of a job's temp directory.
pub const JOB_PREFIX: &str = "devcg-guest-";

/// A built, cached image.
#[derive(Clone, Debug)]
pub struct DistroImage {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The named packages' versions in the image.
    pub versions: Vec<(String, String)>,
}

/// The key of the image a build with this package list and these guest
/// files gives (FNV-1a, 64 bits).
pub fn key() -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    eat(SUITE);
    eat(MIRROR);
    for p in PACKAGES {
        eat(p);
    }
    for (path, mode, text) in GUEST_FILES {
        eat(path);
        eat(&mode.to_string());
        eat(text);
    }
    eat(IMAGE_SIZE);
    format!("{SUITE}-{h:016x}")
}

/// The cached image, built first when it is missing.
pub fn ensure(cache: &Path, apt: &mut Apt) -> Result<DistroImage, VmError> {
    let dir = cache.join("distro").join(key());
    if let Some(image) = cached(&dir) {
        return Ok(image);
    }
    apt.install(HOST_PACKAGES)
        .map_err(|e| VmError::Install(e.to_string()))?;
    build(&dir, &apt.log("distro-build.log"))?;
    cached(&dir).ok_or_else(|| VmError::Image {
        path: dir.clone(),
        reason: "the build finished but left no complete image".into(),
    })
}

fn cached(dir: &Path) -> Option<DistroImage> {
    let text = fs::read_to_string(dir.join("versions")).ok()?;
    let image = DistroImage {
        dir: dir.to_owned(),
        root: dir.join("root.ext4"),
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        versions: text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    };
    [&image.root, &image.kernel, &image.initrd]
        .iter()
        .all(|p| p.is_file())
        .then_some(image)
}

/// Builds the image into `dir`: packages into a directory beside it, the
/// guest files, the ext4 file, kernel and initrd; `versions` last, so a
/// build cut short is never taken for a finished one.
fn build(dir: &Path, log: &Path) -> Result<(), VmError> {
    let parent = dir.parent().expect("under the cache");
    fs::create_dir_all(parent).map_err(|e| VmError::io(parent.display().to_string(), e))?;
    // Leftovers of builds that were killed.
    for entry in fs::read_dir(parent)
        .map_err(|e| VmError::io(parent.display().to_string(), e))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("build-") {
            remove_tree(&entry.path())?;
        }
    }
    remove_tree(dir)?;
    let stage = parent.join(format!("build-{}", std::process::id()));
    let tree = stage.join("root");
    fs::create_dir_all(&stage).map_err(|e| VmError::io(stage.display().to_string(), e))?;
    let result = build_in(&stage, &tree, dir, log);
    let cleaned = remove_tree(&stage);
    result.and(cleaned)
}

fn build_in(stage: &Path, tree: &Path, dir: &Path, log: &Path) -> Result<(), VmError> {
    eprintln!(
        "devcg: building the {SUITE} guest image (mmdebstrap, about a minute; log {})",
        log.display()
    );
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg("--variant=apt")
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg(format!("--include={}", PACKAGES.join(",")))
        // Documentation is not needed to run anything.
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        .arg(SUITE)
        .arg(tree)
        .arg(MIRROR);
    let failed = |why: String| VmError::Image {
        path: dir.to_owned(),
        reason: why,
    };
    let st = run_logged(&mut cmd, log, BUILD_TIMEOUT).map_err(failed)?;
    if !st.success() {
        let tail = tail_lines(log, 5).join(" | ");
        return Err(failed(format!("mmdebstrap failed ({st}): {tail}")));
    }
    for (path, mode, text) in GUEST_FILES {
        write_file(&tree.join(path), *mode, text)?;
    }
    let (link, target) = UNIT_LINK;
    let link = tree.join(link);
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link)
        .map_err(|e| VmError::io(link.display().to_string(), e))?;
    let versions: Vec<String> = NAMED
        .iter()
        .filter_map(|p| image_version(tree, p).map(|v| format!("{p} {v}")))
        .collect();
    let boot = tree.join("boot");
    let kernel = newest(&boot, "vmlinuz-").ok_or_else(|| failed("no /boot/vmlinuz-*".into()))?;
    let initrd =
        newest(&boot, "initrd.img-").ok_or_else(|| failed("no /boot/initrd.img-*".into()))?;
    let out = stage.join("image");
    fs::create_dir_all(&out).map_err(|e| VmError::io(out.display().to_string(), e))?;
    for (from, to) in [(&kernel, "vmlinuz"), (&initrd, "initrd.img")] {
        fs::copy(from, out.join(to)).map_err(|e| VmError::io(from.display().to_string(), e))?;
    }
    let st = run_logged(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "devcg-root", "-d"])
            .arg(tree)
            .arg(out.join("root.ext4"))
            .arg(IMAGE_SIZE),
        log,
        BUILD_TIMEOUT,
    )
    .map_err(failed)?;
    if !st.success() {
        return Err(failed(format!(
            "mkfs.ext4 -d failed ({st}); see {}",
            log.display()
        )));
    }
    write_file(&out.join("versions"), 0o644, &(versions.join("\n") + "\n"))?;
    fs::rename(&out, dir).map_err(|e| VmError::io(dir.display().to_string(), e))?;
    eprintln!("devcg: guest image ready: {}", dir.display());
    Ok(())
}

fn write_file(path: &Path, mode: u32, text: &str) -> Result<(), VmError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e| VmError::io(path.display().to_string(), e);
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(io)?;
    }
    fs::write(path, text).map_err(io)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io)
}

/// A package's version from the image's dpkg status file.
fn image_version(tree: &Path, package: &str) -> Option<String> {
    let status = fs::read_to_string(tree.join("var/lib/dpkg/status")).ok()?;
    status_version(&status, package)
}

/// `Version:` of `Package: name` in a dpkg status file.
pub fn status_version(status: &str, package: &str) -> Option<String> {
    status.split("\n\n").find_map(|stanza| {
        let mut lines = stanza.lines();
        let name = lines.clone().find_map(|l| l.strip_prefix("Package: "))?;
        (name == package)
            .then(|| lines.find_map(|l| l.strip_prefix("Version: ")))
            .flatten()
            .map(str::to_string)
    })
}

fn newest(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Removes a directory tree that may hold mount points (mmdebstrap mounts
/// /proc, /sys and /dev into its tree while it runs; a killed build can
/// leave them): every mount below it is detached first, deepest first, and
/// the removal never crosses into another filesystem.
pub fn remove_tree(dir: &Path) -> Result<(), VmError> {
    if !dir.exists() {
        return Ok(());
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| VmError::io("/proc/self/mountinfo", e))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| VmError::io(dir.display().to_string(), e))?;
    let mut below = mounts_below(&mountinfo, &dir);
    below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in &below {
        if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid C string; MNT_DETACH only unhooks the mount.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let still = fs::read_to_string("/proc/self/mountinfo")
        .map(|t| mounts_below(&t, &dir))
        .unwrap_or_default();
    if let Some(m) = still.first() {
        return Err(VmError::Image {
            path: dir.clone(),
            reason: format!("{} is still mounted: not removing the tree", m.display()),
        });
    }
    remove_same_fs(&dir).map_err(|e| VmError::io(dir.display().to_string(), e))
}

/// Mount points at or below `dir`, from mountinfo text (field 5; `\040`
/// and the like are octal escapes).
pub fn mounts_below(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_octal(p)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `remove_dir_all` that refuses to descend into another filesystem.
fn remove_same_fs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::symlink_metadata(dir)?.dev();
    fn walk(p: &Path, dev: u64) -> std::io::Result<()> {
        for entry in fs::read_dir(p)? {
            let path = entry?.path();
            let meta = fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                if meta.dev() != dev {
                    return Err(std::io::Error::other(format!(
                        "{} is on another filesystem",
                        path.display()
                    )));
                }
                walk(&path, dev)?;
                fs::remove_dir(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
    walk(dir, dev)?;
    fs::remove_dir(dir)
}

/// A job for the guest.
pub struct Job<'a> {
    /// The script the guest runs as root (`sh job.sh` in the share).
    pub script: &'a str,
    /// Files copied into the share first: name in the share, source.
    pub files: Vec<(&'a str, &'a Path)>,
    /// The whole run, boot included; qemu is killed after it.
    pub timeout: Duration,
    pub accel: AccelChoice,
    /// qemu's `-m` and `-smp`.
    pub memory: &'a str,
    pub cpus: u32,
    /// How long a KVM guest may take to start the job before it boots
    /// again under TCG.
    pub kvm_boot: Duration,
}

impl<'a> Job<'a> {
    /// A job with 2 GiB, 2 CPUs and the default KVM boot budget.
    pub fn new(
        script: &'a str,
        files: Vec<(&'a str, &'a Path)>,
        timeout: Duration,
        accel: AccelChoice,
    ) -> Job<'a> {
        Job {
            script,
            files,
            timeout,
            accel,
            memory: "2048",
            cpus: 2,
            kvm_boot: KVM_BOOT,
        }
    }
}

/// How a job ended.
#[derive(Debug)]
pub struct JobOutcome {
    /// The script's exit status; `None` when it did not finish.
    pub rc: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub accel: Accel,
    /// Seconds until the job started, and in all.
    pub boot_secs: Option<f64>,
    pub total_secs: f64,
    /// Why the job did not finish (timeout, crash), with the console's end.
    pub failure: Option<String>,
}

/// Boots `image` and runs `job` in it. Under `auto`, KVM is tried first when
/// `kvm_probe` passed, and a guest that does not reach the job under it
/// boots again under TCG (the machine matrix's rule: only a real boot
/// tells).
pub fn run_job(
    image: &DistroImage,
    qemu: &Path,
    kvm_probe: &Result<(), String>,
    job: &Job,
) -> Result<JobOutcome, VmError> {
    clean_stale_jobs(&std::env::temp_dir());
    let work = JobDir::new()?;
    let first = match (job.accel, kvm_probe) {
        (AccelChoice::Tcg, _) | (AccelChoice::Auto, Err(_)) => Accel::Tcg,
        _ => Accel::Kvm,
    };
    let mut accel = first;
    loop {
        work.reset(job)?;
        let out = boot(image, qemu, &work, job, accel)?;
        let retry = accel == Accel::Kvm
            && job.accel == AccelChoice::Auto
            && out.rc.is_none()
            && out.boot_secs.is_none();
        if retry {
            eprintln!(
                "devcg: the guest did not boot under KVM ({}); booting again under TCG",
                out.failure.as_deref().unwrap_or("no reason")
            );
            accel = Accel::Tcg;
            continue;
        }
        return Ok(out);
    }
}

fn boot(
    image: &DistroImage,
    qemu: &Path,
    work: &JobDir,
    job: &Job,
    accel: Accel,
) -> Result<JobOutcome, VmError> {
    let share = work.share();
    let console = work.path.join("console.log");
    let mut cmd = Command::new(qemu);
    match accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => cmd.args(["-accel", "tcg"]),
    };
    cmd.args(["-m", job.memory])
        .arg("-smp")
        .arg(job.cpus.to_string())
        .args([
            "-nographic",
            "-no-reboot",
            "-display",
            "none",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initrd)
        .args(["-append", CMDLINE])
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,snapshot=on",
            image.root.display()
        ))
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=devcg,security_model=none,id=devcg",
            share.display()
        ))
        .arg("-serial")
        .arg(format!("file:{}", console.display()));
    let log = work.path.join("qemu.log");
    let mut g = Group::spawn(&mut cmd, &log).map_err(|e| VmError::io("starting qemu", e))?;
    let boot_budget = match accel {
        Accel::Kvm => job.kvm_boot,
        Accel::Tcg => TCG_BOOT,
    };
    let abort_on: &[&str] = match accel {
        Accel::Kvm => KVM_FAILURE_LINES,
        Accel::Tcg => &[],
    };
    let marker = share.join("started");
    let waited = g
        .wait_watching(job.timeout, Some((&marker, boot_budget)), abort_on)
        .map_err(|e| VmError::io("waiting for qemu", e))?;
    let boot_secs = g.marker_seen.map(|d| d.as_secs_f64());
    let total_secs = g.started_at.elapsed().as_secs_f64();
    drop(g);
    let read = |name: &str| fs::read(share.join(name)).unwrap_or_default();
    let rc = String::from_utf8_lossy(&read("rc")).trim().parse().ok();
    let end = || {
        let mut lines = tail_lines(&console, 15);
        lines.extend(tail_lines(&log, 5));
        lines.join("\n  ")
    };
    let failure = match waited {
        Waited::Interrupted => return Err(VmError::Interrupted),
        Waited::TimedOut => Some(format!(
            "the guest was still running after {} s under {accel}; qemu killed. Console:\n  {}",
            job.timeout.as_secs(),
            end()
        )),
        Waited::MarkerTimedOut => Some(format!(
            "the guest had not started the job after {} s under {accel}; qemu killed. Console:\n  {}",
            boot_budget.as_secs(),
            end()
        )),
        Waited::ConsoleAbort(line) => Some(format!("the guest died under {accel}: {line}")),
        Waited::Exited(_) if rc.is_none() => Some(format!(
            "the guest stopped without finishing the job under {accel}. Console:\n  {}",
            end()
        )),
        Waited::Exited(_) => None,
    };
    Ok(JobOutcome {
        rc,
        stdout: read("stdout"),
        stderr: read("stderr"),
        accel,
        boot_secs,
        total_secs,
        failure,
    })
}

/// The job's temp directory (`<tmp>/devcg-guest-<pid>-<nonce>`: the share
/// and the console log), removed on drop.
struct JobDir {
    path: PathBuf,
}

impl JobDir {
    fn new() -> Result<JobDir, VmError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("{JOB_PREFIX}{}-{nanos:08x}", std::process::id()));
        fs::create_dir(&path).map_err(|e| VmError::io(path.display().to_string(), e))?;
        Ok(JobDir { path })
    }

    fn share(&self) -> PathBuf {
        self.path.join("share")
    }

    /// A fresh share with the job's script and files, and no console.
    fn reset(&self, job: &Job) -> Result<(), VmError> {
        let share = self.share();
        let _ = fs::remove_dir_all(&share);
        let _ = fs::remove_file(self.path.join("console.log"));
        let _ = fs::remove_file(self.path.join("qemu.log"));
        fs::create_dir(&share).map_err(|e| VmError::io(share.display().to_string(), e))?;
        for (name, from) in &job.files {
            fs::copy(from, share.join(name)).map_err(|e| {
                VmError::io(format!("copying {} into the share", from.display()), e)
            })?;
        }
        write_file(&share.join("job.sh"), 0o644, job.script)
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes job directories whose process is gone (a killed run's).
fn clean_stale_jobs(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(JOB_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// The host tools and the image, ready for jobs.
pub struct Guest {
    pub image: DistroImage,
    pub qemu: PathBuf,
    pub kvm_probe: Result<(), String>,
    /// Host tool versions (qemu, mmdebstrap).
    pub tools: Vec<(String, String)>,
}

impl Guest {
    /// Installs what is missing (never removing a package) and builds the
    /// image when it is not cached. Needs root.
    pub fn prepare(cache: &Path, allow_install: bool) -> Result<Guest, VmError> {
        let mut apt = Apt::new(cache, allow_install);
        apt.install(HOST_PACKAGES)
            .map_err(|e| VmError::Install(e.to_string()))?;
        let qemu = crate::install::which("qemu-system-x86_64").ok_or_else(|| {
            VmError::Install(
                "qemu-system-x86_64 is not on PATH after installing qemu-system-x86".into(),
            )
        })?;
        let image = ensure(cache, &mut apt)?;
        let kvm_probe = crate::install::probe_kvm(&qemu, &apt.log("kvm-probe-distro.log"));
        let tools = HOST_PACKAGES
            .iter()
            .map(|p| (p.to_string(), dpkg_version(p).unwrap_or_else(|| "?".into())))
            .collect();
        Ok(Guest {
            image,
            qemu,
            kvm_probe,
            tools,
        })
    }

    pub fn run(&self, job: &Job) -> Result<JobOutcome, VmError> {
        run_job(&self.image, &self.qemu, &self.kvm_probe, job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_package_list() {
        let k = key();
        assert!(k.starts_with("bookworm-"), "{k}");
        assert_eq!(k.len(), "bookworm-".len() + 16);
        assert_eq!(k, key());
    }

    #[test]
    fn a_version_is_read_from_the_status_file() {
        let status = "Package: systemd-sysv\nStatus: install ok installed\nVersion: 1\n\n\
                      Package: systemd\nStatus: install ok installed\nVersion: 252.39-1~deb12u2\n";
        assert_eq!(
            status_version(status, "systemd").as_deref(),
            Some("252.39-1~deb12u2")
        );
        assert_eq!(status_version(status, "systemd-sysv").as_deref(), Some("1"));
        assert_eq!(status_version(status, "libvirt-daemon"), None);
    }

    #[test]
    fn mounts_below_a_tree_are_found_with_escapes() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n\
                    90 30 0:5 / /var/cache/d/build-1/root/proc rw - proc proc rw\n\
                    91 30 0:6 / /var/cache/d/build-1/root/dev\\040x rw - devtmpfs udev rw\n\
                    92 30 0:7 / /var/cache/d/build-10/root/sys rw - sysfs sysfs rw\n";
        let got = mounts_below(info, Path::new("/var/cache/d/build-1"));
        assert_eq!(
            got,
            vec![
                PathBuf::from("/var/cache/d/build-1/root/proc"),
                PathBuf::from("/var/cache/d/build-1/root/dev x"),
            ]
        );
    }

    #[test]
    fn removal_never_crosses_into_another_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("t");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/f"), "x").unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        // /proc is another filesystem: a tree holding a symlink to it is
        // removed without following it.
        fs::create_dir_all(&tree).unwrap();
        std::os::unix::fs::symlink("/proc", tree.join("p")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(Path::new("/proc/self").exists());
    }

    #[test]
    fn stale_job_dirs_of_dead_processes_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = tmp.path().join(format!("{JOB_PREFIX}999999999-0"));
        let live = tmp
            .path()
            .join(format!("{JOB_PREFIX}{}-0", std::process::id()));
        let other = tmp.path().join("devcg-guestbook");
        for d in [&dead, &live, &other] {
            fs::create_dir(d).unwrap();
        }
        clean_stale_jobs(tmp.path());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
    }

    #[test]
    fn the_unit_runs_the_job_runner_the_image_holds() {
        let path_of = |suffix: &str| {
            GUEST_FILES
                .iter()
                .find(|(p, _, _)| p.ends_with(suffix))
                .map(|(p, mode, text)| (*p, *mode, *text))
                .unwrap()
        };
        let (runner, mode, text) = path_of("devcg-guest-job");
        assert_eq!(mode & 0o111, 0o111, "the runner is executable");
        for needed in [
            "/mnt/devcg/started",
            "sh /mnt/devcg/job.sh",
            "/mnt/devcg/rc",
            "poweroff",
        ] {
            assert!(text.contains(needed), "{needed}");
        }
        let (unit, _, unit_text) = path_of("devcg-guest.service");
        assert!(
            unit_text.contains(&format!("ExecStart=/{runner}")),
            "{unit_text}"
        );
        assert_eq!(UNIT_LINK.1, format!("/{unit}"));
    }

    /// A stand-in for qemu: under KVM it never starts the job; under TCG
    /// it runs job.sh from the -virtfs share as the guest would.
    fn fake_qemu(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("qemu");
        fs::write(
            &path,
            r#"#!/bin/sh
case " $* " in *" kvm "*) sleep 600; exit 1;; esac
share=$(echo "$*" | sed -n 's/.*local,path=\([^,]*\),.*/\1/p')
: > "$share/started"
sh "$share/job.sh" > "$share/stdout" 2> "$share/stderr"
echo $? > "$share/rc"
"#,
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn fake_image(dir: &Path) -> DistroImage {
        DistroImage {
            dir: dir.to_owned(),
            root: dir.join("root.ext4"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            versions: vec![],
        }
    }

    #[test]
    fn a_guest_that_does_not_boot_under_kvm_boots_again_under_tcg() {
        let dir = tempfile::tempdir().unwrap();
        let qemu = fake_qemu(dir.path());
        let mut job = Job::new(
            "cat \"$(dirname \"$0\")/input\"; echo oops >&2; exit 7",
            vec![("input", qemu.as_path())],
            Duration::from_secs(60),
            AccelChoice::Auto,
        );
        job.kvm_boot = Duration::from_millis(300);
        let out = run_job(&fake_image(dir.path()), &qemu, &Ok(()), &job).unwrap();
        assert_eq!(out.accel, Accel::Tcg);
        assert_eq!(out.rc, Some(7));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("#!/bin/sh"));
        assert_eq!(out.stderr, b"oops\n");
        assert!(out.failure.is_none(), "{:?}", out.failure);
        // Forced KVM is reported, not retried.
        job.accel = AccelChoice::Kvm;
        let out = run_job(&fake_image(dir.path()), &qemu, &Ok(()), &job).unwrap();
        assert_eq!((out.accel, out.rc), (Accel::Kvm, None));
        assert!(out.failure.unwrap().contains("had not started the job"));
    }

    #[test]
    fn a_job_past_its_deadline_is_killed_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let qemu = fake_qemu(dir.path());
        let job = Job::new(
            "sleep 600",
            vec![],
            Duration::from_secs(1),
            AccelChoice::Tcg,
        );
        let started = std::time::Instant::now();
        let out = run_job(&fake_image(dir.path()), &qemu, &Err("no".into()), &job).unwrap();
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(out.rc, None);
        assert!(out.failure.unwrap().contains("still running after 1 s"));
    }
}
