//! The real cgroup v1 `devices` controller: the effectful edge of devcg and
//! the ground truth the oracle is judged against.
//!
//! Everything happens inside one scratch cgroup, `devcg-<pid>-<nonce>`,
//! created directly under the v1 devices mount for each [`Scratch`] and
//! removed (deepest first, tasks moved out first) when it drops, on panic
//! too. Leftovers of a killed run are removed by the next one. Paths given
//! to the driver are relative to the scratch cgroup (`"a"`, `"a/b"`); one
//! that would leave it is refused, so no rule is ever written to the root
//! cgroup or to the cgroup this process runs in (a `deny a` there would lock
//! the shell out).
//!
//! Verdicts come from [`Scratch::probe`]: device nodes are made by this
//! process on a private tmpfs, outside the cgroup under test; a forked child
//! joins that cgroup and tries each access. What the kernel answers, as seen
//! on 6.18 (see kernel-facts.md):
//!
//! * a denial is EPERM, for open, `access(2)` and mknod alike;
//! * an allowed open of a char *or block* major without a driver fails with
//!   ENXIO (no ENODEV seen for either type), after the device check has
//!   passed: char opens reach `chrdev_open` only after `inode_permission`,
//!   block opens reach `blkdev_get_no_open` only after `bdev_permission`
//!   checked the device cgroup a second time;
//! * `0:0` is not a device: a char `0:0` is never checked (open, access and
//!   the whiteout mknod pass a deny-all cgroup), a block `0:0` is checked on
//!   open (by the block layer) and mknod but not by `access(2)`. It is never
//!   probed.

use std::collections::HashMap;
use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devcg_engine::{Access, DeviceType, Request, RuleKind, Verdict};
pub use devcg_oracle::Errno;
use nix::errno::Errno as SysErrno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::wait::WaitStatus;
use nix::unistd::{AccessFlags, ForkResult, Pid};
use thiserror::Error;

/// Prefix of every scratch cgroup; `devcg-<pid>-<nonce>`.
pub const SCRATCH_PREFIX: &str = "devcg-";
/// Prefix of every probe tmpfs directory under the temp dir.
pub const NODES_PREFIX: &str = "devcg-probe-";

/// What the driver could not do. Kernel answers to rule writes are not
/// errors: see [`Scratch::write`].
#[derive(Debug, Error)]
pub enum V1Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{op} {path}: {errno}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: SysErrno,
    },
    #[error("path {0:?} is not a cgroup inside the scratch cgroup")]
    OutsideScratch(String),
    #[error("refusing to write rules to {0}: this process runs in it")]
    OwnCgroup(PathBuf),
    #[error("write of {text:?} to {path}: unexpected errno {errno} (the kernel answers EINVAL or EPERM)")]
    UnexpectedErrno {
        path: PathBuf,
        text: String,
        errno: SysErrno,
    },
    #[error("write of {text:?} to {path}: {written} of {len} bytes written")]
    ShortWrite {
        path: PathBuf,
        text: String,
        written: usize,
        len: usize,
    },
    #[error("{0} cannot be probed: {1}")]
    NotProbeable(Device, NotProbeable),
    #[error("probe child could not join {path}: {errno}")]
    Join { path: PathBuf, errno: SysErrno },
    #[error("probe child: {0}")]
    Child(String),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> V1Error + 'a {
    move |source| V1Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn sys_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(SysErrno) -> V1Error + 'a {
    move |errno| V1Error::Sys {
        op,
        path: path.to_path_buf(),
        errno,
    }
}

// ---------------------------------------------------------------------------
// Finding the hierarchy

/// A mount of the v1 devices hierarchy, from /proc/self/mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicesMount {
    /// Where it is mounted (`/sys/fs/cgroup/devices`).
    pub mount_point: PathBuf,
    /// Which cgroup of the hierarchy the mount shows (`/` on a host, the
    /// container's cgroup inside one); needed to place /proc/self/cgroup.
    pub root: PathBuf,
}

/// The v1 devices mount of this process, or `None` if there is none (a
/// pure cgroup2 system, or no v1 controllers mounted).
pub fn find_devices_mount() -> Option<DevicesMount> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").ok()?)
}

/// The first mount whose fstype is `cgroup` and whose super options name the
/// `devices` controller.
pub fn parse_mountinfo(text: &str) -> Option<DevicesMount> {
    text.lines().find_map(|line| {
        // `id parent maj:min root mount-point opts [optional...] - fstype source superopts`
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        let (fstype, _source, superopts) = (right.next()?, right.next()?, right.next()?);
        if fstype != "cgroup" || !superopts.split(',').any(|o| o == "devices") {
            return None;
        }
        Some(DevicesMount {
            root: unescape(left.get(3)?),
            mount_point: unescape(left.get(4)?),
        })
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// This process's cgroup in the devices hierarchy, as a directory under the
/// mount; `None` if /proc/self/cgroup places it outside what the mount shows.
fn own_cgroup_dir(mount: &DevicesMount) -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (_id, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "devices")
            .then(|| path.to_string())
    })?;
    let rel = Path::new(&path).strip_prefix(&mount.root).ok()?;
    Some(mount.mount_point.join(rel))
}

// ---------------------------------------------------------------------------
// Devices and drivers

/// A device number pair of one type; a [`Request`] without the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Device {
    pub ty: DeviceType,
    pub major: u32,
    pub minor: u32,
}

impl Device {
    pub fn new(ty: DeviceType, major: u32, minor: u32) -> Self {
        Device { ty, major, minor }
    }
    pub fn request(self, access: Access) -> Request {
        Request::new(self.ty, self.major, self.minor, access)
    }
    fn sflag(self) -> SFlag {
        match self.ty {
            DeviceType::Block => SFlag::S_IFBLK,
            DeviceType::Char => SFlag::S_IFCHR,
        }
    }
    fn dev_t(self) -> libc::dev_t {
        nix::sys::stat::makedev(u64::from(self.major), u64::from(self.minor))
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:{}", self.ty, self.major, self.minor)
    }
}

/// Why a device is not probed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NotProbeable {
    #[error("no dev_t holds it (major < 4096 and minor < 2^20 only)")]
    Unrealizable,
    #[error("0:0 is no device: the kernel skips some of its checks")]
    Zero,
    #[error("its major has a driver (/proc/devices); opening it could have side effects")]
    HasDriver,
}

/// The majors that have a driver, per type, from /proc/devices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drivers {
    char: HashSet<u32>,
    block: HashSet<u32>,
}

impl Drivers {
    pub fn read() -> Result<Drivers, V1Error> {
        let path = Path::new("/proc/devices");
        Ok(Drivers::parse(
            &fs::read_to_string(path).map_err(io_err("read", path))?,
        ))
    }

    pub fn parse(text: &str) -> Drivers {
        let mut d = Drivers::default();
        let mut section = None;
        for line in text.lines() {
            match line.trim() {
                "Character devices:" => section = Some(DeviceType::Char),
                "Block devices:" => section = Some(DeviceType::Block),
                l => {
                    let major = l.split_whitespace().next().and_then(|m| m.parse().ok());
                    match (section, major) {
                        (Some(DeviceType::Char), Some(m)) => d.char.insert(m),
                        (Some(DeviceType::Block), Some(m)) => d.block.insert(m),
                        _ => false,
                    };
                }
            }
        }
        d
    }

    pub fn has_driver(&self, ty: DeviceType, major: u32) -> bool {
        match ty {
            DeviceType::Char => self.char.contains(&major),
            DeviceType::Block => self.block.contains(&major),
        }
    }

    /// Whether the kernel can be asked about `dev` safely and meaningfully.
    pub fn probeable(&self, dev: Device) -> Result<(), NotProbeable> {
        if !dev.request(Access::NONE).is_realizable() {
            Err(NotProbeable::Unrealizable)
        } else if dev.major == 0 && dev.minor == 0 {
            Err(NotProbeable::Zero)
        } else if self.has_driver(dev.ty, dev.major) {
            Err(NotProbeable::HasDriver)
        } else {
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// Probe results

/// The accesses a probe tries on each device, and how: open `O_RDONLY`,
/// `O_WRONLY`, `O_RDWR`, mknod of a fresh node, and `access(F_OK)` (which
/// reaches the check with no access bit; it needs no driver).
pub const PROBED_ACCESSES: [Access; 5] = [
    Access::READ,
    Access::WRITE,
    Access(Access::READ.0 | Access::WRITE.0),
    Access::MKNOD,
    Access::NONE,
];

/// What the kernel answered one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success, or ENXIO from an open of a driverless major: the device
    /// check passed.
    Allowed,
    /// EPERM: the device cgroup said no.
    Denied,
    /// Anything else: neither allow nor deny can be concluded.
    Unexpected(SysErrno),
}

impl Outcome {
    pub fn verdict(self) -> Option<Verdict> {
        match self {
            Outcome::Allowed => Some(Verdict::Allow),
            Outcome::Denied => Some(Verdict::Deny),
            Outcome::Unexpected(_) => None,
        }
    }
}

/// One attempt: the request, what happened and the raw errno (if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub request: Request,
    pub outcome: Outcome,
    pub errno: Option<SysErrno>,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.errno {
            None => "ok".to_string(),
            Some(e) => format!("{e}"),
        };
        match self.outcome {
            Outcome::Unexpected(_) => write!(f, "{}: unexpected {how}", self.request),
            o => write!(
                f,
                "{}: {} ({how})",
                self.request,
                o.verdict().expect("allowed or denied")
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// The scratch cgroup

static NONCE: AtomicU64 = AtomicU64::new(0);

fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}x{:x}", NONCE.fetch_add(1, Ordering::Relaxed), nanos)
}

/// A live process holds the pid (kill with no signal: ESRCH means none).
fn pid_alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(Pid::from_raw(pid), None) != Err(SysErrno::ESRCH)
}

/// Why the real-kernel tests cannot run here, if they cannot: they need
/// root and the v1 devices hierarchy. One line, for a skipping test to print.
pub fn skip_reason() -> Option<String> {
    let root = nix::unistd::geteuid().is_root();
    let mounted = find_devices_mount().is_some();
    match (root, mounted) {
        (true, true) => None,
        (false, true) => Some("skipped: needs root (for the cgroup v1 devices hierarchy)".into()),
        (true, false) => {
            Some("skipped: needs the cgroup v1 devices hierarchy (none mounted)".into())
        }
        (false, false) => Some("skipped: needs root and the cgroup v1 devices hierarchy".into()),
    }
}

/// The pid in `<prefix><pid>-<rest>`.
fn owner_pid(name: &str, prefix: &str) -> Option<i32> {
    let (pid, _rest) = name.strip_prefix(prefix)?.split_once('-')?;
    pid.parse().ok()
}

/// A per-run scratch cgroup under the v1 devices mount. Every cgroup the
/// driver creates lives below it; dropping it removes them all.
pub struct Scratch {
    mount: DevicesMount,
    dir: PathBuf,
    /// Where leftover tasks are moved before a cgroup is removed: the cgroup
    /// this process runs in (only its cgroup.procs is written there, never a
    /// rule file; its rules bound ours anyway, so nothing is loosened).
    evacuate_to: PathBuf,
    nodes: Option<NodeDir>,
    drivers: Drivers,
}

impl Scratch {
    /// A fresh scratch cgroup, or `None` when no v1 devices hierarchy is
    /// mounted. Removes leftovers of killed runs first.
    pub fn new() -> Result<Option<Scratch>, V1Error> {
        match find_devices_mount() {
            Some(mount) => Scratch::in_mount(mount).map(Some),
            None => Ok(None),
        }
    }

    pub fn in_mount(mount: DevicesMount) -> Result<Scratch, V1Error> {
        let evacuate_to = own_cgroup_dir(&mount).unwrap_or_else(|| mount.mount_point.clone());
        remove_stale(&mount)?;
        let name = format!("{SCRATCH_PREFIX}{}-{}", std::process::id(), nonce());
        let dir = mount.mount_point.join(name);
        fs::create_dir(&dir).map_err(io_err("mkdir", &dir))?;
        let drivers = Drivers::read();
        let mut scratch = Scratch {
            mount,
            dir,
            evacuate_to,
            nodes: None,
            drivers: Drivers::default(),
        };
        scratch.drivers = drivers?; // after `scratch` exists, so an error removes the dir
        Ok(scratch)
    }

    /// The scratch cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn mount(&self) -> &DevicesMount {
        &self.mount
    }

    pub fn drivers(&self) -> &Drivers {
        &self.drivers
    }

    /// The probe tmpfs, once a probe has mounted it.
    pub fn nodes_dir(&self) -> Option<&Path> {
        self.nodes.as_ref().map(|n| n.dir.as_path())
    }

    /// The directory of `path`: `""` is the scratch cgroup itself, else
    /// plain names joined by `/`. Anything that could leave it is refused.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, V1Error> {
        let refuse = || V1Error::OutsideScratch(path.to_string());
        let mut dir = self.dir.clone();
        if !path.is_empty() {
            for name in path.split('/') {
                if name.is_empty() || name == "." || name == ".." || name.contains('\0') {
                    return Err(refuse());
                }
                dir.push(name);
            }
        }
        // cgroupfs has no symlinks, but a resolved path must stay inside
        // anyway, and must not be where this process runs.
        if let Ok(real) = dir.canonicalize() {
            let base = self
                .dir
                .canonicalize()
                .map_err(io_err("canonicalize", &self.dir))?;
            if !real.starts_with(&base) {
                return Err(refuse());
            }
        }
        Ok(dir)
    }

    /// Creates the cgroup `path` (its parent must exist).
    pub fn mkdir(&self, path: &str) -> Result<(), V1Error> {
        if path.is_empty() {
            return Err(V1Error::OutsideScratch(path.to_string()));
        }
        let dir = self.resolve(path)?;
        fs::create_dir(&dir).map_err(io_err("mkdir", &dir))
    }

    /// Writes `text` to devices.allow or devices.deny of `path` in one
    /// write(2). The outer error is the driver's; the inner one is the
    /// kernel's answer, EINVAL or EPERM (any other errno is an outer error).
    /// A zero-length write never reaches the controller: it returns 0 and
    /// changes nothing (seen here), and is reported as `Ok(Ok(()))`.
    pub fn write(
        &self,
        path: &str,
        kind: RuleKind,
        text: &str,
    ) -> Result<Result<(), Errno>, V1Error> {
        let dir = self.resolve(path)?;
        self.refuse_own(&dir)?;
        let file = dir.join(kind.file_name());
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .map_err(io_err("open", &file))?;
        match f.write(text.as_bytes()) {
            Ok(n) if n == text.len() => Ok(Ok(())),
            Ok(written) => Err(V1Error::ShortWrite {
                path: file,
                text: text.to_string(),
                written,
                len: text.len(),
            }),
            Err(e) => match SysErrno::from_raw(e.raw_os_error().unwrap_or(0)) {
                SysErrno::EINVAL => Ok(Err(Errno::EINVAL)),
                SysErrno::EPERM => Ok(Err(Errno::EPERM)),
                errno => Err(V1Error::UnexpectedErrno {
                    path: file,
                    text: text.to_string(),
                    errno,
                }),
            },
        }
    }

    /// devices.list of `path`, exactly as the kernel prints it.
    pub fn list(&self, path: &str) -> Result<String, V1Error> {
        let file = self.resolve(path)?.join("devices.list");
        fs::read_to_string(&file).map_err(io_err("read", &file))
    }

    /// The pids in `path` (cgroup.procs).
    pub fn procs(&self, path: &str) -> Result<Vec<i32>, V1Error> {
        read_procs(&self.resolve(path)?)
    }

    /// Belt and braces: the path checks already keep writes inside the
    /// scratch cgroup, which this process never joins.
    fn refuse_own(&self, dir: &Path) -> Result<(), V1Error> {
        let me = std::process::id() as i32;
        if dir == self.mount.mount_point || read_procs(dir)?.contains(&me) {
            return Err(V1Error::OwnCgroup(dir.to_path_buf()));
        }
        Ok(())
    }

    /// Whether `dev` may be probed on this machine.
    pub fn probeable(&self, dev: Device) -> Result<(), NotProbeable> {
        self.drivers.probeable(dev)
    }

    /// Asks the kernel about every access of [`PROBED_ACCESSES`] on each
    /// device, from one child process that joins the cgroup `path`. Results
    /// come in the order of `devices`, then of `PROBED_ACCESSES`.
    pub fn probe(&mut self, path: &str, devices: &[Device]) -> Result<Vec<Probe>, V1Error> {
        let dir = self.resolve(path)?;
        for &dev in devices {
            self.drivers
                .probeable(dev)
                .map_err(|why| V1Error::NotProbeable(dev, why))?;
        }
        if self.nodes.is_none() {
            self.nodes = Some(NodeDir::mount()?);
        }
        let nodes = self.nodes.as_mut().expect("mounted above");
        // Everything the child needs is built here: after fork it must not
        // allocate (other threads may have held the allocator's locks).
        let procs = cstring(&dir.join("cgroup.procs"))?;
        let mut checks = Vec::with_capacity(devices.len() * PROBED_ACCESSES.len());
        for &dev in devices {
            let node = nodes.node(dev)?;
            for access in PROBED_ACCESSES {
                let how = match access {
                    Access::MKNOD => How::Mknod(nodes.fresh_name()?, dev.sflag(), dev.dev_t()),
                    Access::NONE => How::Exists,
                    a => How::Open(
                        match (a.contains(Access::READ), a.contains(Access::WRITE)) {
                            (true, true) => OFlag::O_RDWR,
                            (false, true) => OFlag::O_WRONLY,
                            _ => OFlag::O_RDONLY,
                        },
                    ),
                };
                checks.push(Check {
                    request: dev.request(access),
                    node: node.clone(),
                    how,
                });
            }
        }
        let codes = run_probe_child(&procs, &checks, &dir)?;
        Ok(checks
            .iter()
            .zip(codes)
            .map(|(check, code)| {
                let errno = (code != 0).then(|| SysErrno::from_raw(code));
                let outcome = match (errno, &check.how) {
                    (None, _) => Outcome::Allowed,
                    (Some(SysErrno::EPERM), _) => Outcome::Denied,
                    // The open got past the device check to the missing driver.
                    (Some(SysErrno::ENXIO), How::Open(_)) => Outcome::Allowed,
                    (Some(e), _) => Outcome::Unexpected(e),
                };
                Probe {
                    request: check.request,
                    outcome,
                    errno,
                }
            })
            .collect())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.nodes = None; // unmounts the tmpfs
        if let Err(e) = remove_tree(&self.dir, &self.evacuate_to) {
            eprintln!(
                "devcg: could not remove scratch cgroup {}: {e}",
                self.dir.display()
            );
        }
    }
}

fn cstring(path: &Path) -> Result<CString, V1Error> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| V1Error::OutsideScratch(path.display().to_string()))
}

fn read_procs(dir: &Path) -> Result<Vec<i32>, V1Error> {
    let file = dir.join("cgroup.procs");
    let text = fs::read_to_string(&file).map_err(io_err("read", &file))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Removes leftovers of killed runs: `devcg-<pid>-*` cgroups directly under
/// the mount, and `devcg-probe-<pid>-*` tmpfs directories in the temp dir,
/// whose pid is no longer alive. Returns what it removed.
pub fn remove_stale(mount: &DevicesMount) -> Result<Vec<PathBuf>, V1Error> {
    let mut removed = Vec::new();
    let evacuate_to = own_cgroup_dir(mount).unwrap_or_else(|| mount.mount_point.clone());
    let base = &mount.mount_point;
    for entry in fs::read_dir(base).map_err(io_err("read dir", base))? {
        let entry = entry.map_err(io_err("read dir", base))?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| owner_pid(n, SCRATCH_PREFIX)) else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) && !pid_alive(pid) {
            remove_tree(&entry.path(), &evacuate_to)?;
            removed.push(entry.path());
        }
    }
    if let Ok(entries) = fs::read_dir(temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| owner_pid(n, NODES_PREFIX)) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !pid_alive(pid) {
                remove_node_dir(&entry.path())?;
                removed.push(entry.path());
            }
        }
    }
    Ok(removed)
}

/// Removes a cgroup and every cgroup below it, deepest first, moving any
/// task still inside to `evacuate_to` first.
fn remove_tree(top: &Path, evacuate_to: &Path) -> Result<(), V1Error> {
    // Only ever our own scratch cgroups, directly under a mount.
    let is_ours = top
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| owner_pid(n, SCRATCH_PREFIX).is_some());
    if !is_ours {
        return Err(V1Error::OutsideScratch(top.display().to_string()));
    }
    let mut dirs = Vec::new();
    collect_post_order(top, &mut dirs)?;
    for dir in dirs {
        let mut tries = 0;
        loop {
            for pid in read_procs(&dir).unwrap_or_default() {
                move_task(pid, evacuate_to)?;
            }
            match fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                // A task that just exited may still count for a moment.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                    tries += 1;
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(io_err("rmdir", &dir)(e)),
            }
        }
    }
    Ok(())
}

fn collect_post_order(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), V1Error> {
    for entry in fs::read_dir(dir).map_err(io_err("read dir", dir))? {
        let entry = entry.map_err(io_err("read dir", dir))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_post_order(&entry.path(), out)?;
        }
    }
    out.push(dir.to_path_buf());
    Ok(())
}

fn move_task(pid: i32, to: &Path) -> Result<(), V1Error> {
    let file = to.join("cgroup.procs");
    match fs::write(&file, pid.to_string()) {
        Ok(()) => Ok(()),
        // Gone meanwhile.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(io_err("move task", &file)(e)),
    }
}

// ---------------------------------------------------------------------------
// Device nodes on a private tmpfs

/// A tmpfs on a fresh directory in the temp dir, holding one node per probed
/// device. This process makes the nodes, from its own cgroup, so the cgroup
/// under test only ever sees the child's accesses. Mounted without `nodev`
/// (that would answer EACCES before any device check).
struct NodeDir {
    dir: PathBuf,
    nodes: HashMap<Device, CString>,
    seq: u64,
}

impl NodeDir {
    fn mount() -> Result<NodeDir, V1Error> {
        // Canonical, so that it matches its mountinfo line.
        let tmp = temp_dir();
        let dir = tmp.join(format!("{NODES_PREFIX}{}-{}", std::process::id(), nonce()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("mkdir", &dir))?;
        if let Err(errno) = nix::mount::mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=0700,size=64k"),
        ) {
            let _ = fs::remove_dir(&dir);
            return Err(sys_err("mount tmpfs on", &dir)(errno));
        }
        let nodes = NodeDir {
            dir,
            nodes: HashMap::new(),
            seq: 0,
        };
        // Nothing mounted below it may propagate elsewhere.
        nix::mount::mount(
            None::<&str>,
            &nodes.dir,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(sys_err("make private", &nodes.dir))?;
        Ok(nodes)
    }

    /// The node for `dev`, made on first use.
    fn node(&mut self, dev: Device) -> Result<CString, V1Error> {
        if let Some(node) = self.nodes.get(&dev) {
            return Ok(node.clone());
        }
        let path = self
            .dir
            .join(format!("{}-{}-{}", dev.ty, dev.major, dev.minor));
        nix::sys::stat::mknod(
            &path,
            dev.sflag(),
            Mode::from_bits_truncate(0o600),
            dev.dev_t(),
        )
        .map_err(sys_err("mknod (in this process's own cgroup)", &path))?;
        let c = cstring(&path)?;
        self.nodes.insert(dev, c.clone());
        Ok(c)
    }

    /// A name no node has: the child mknods there.
    fn fresh_name(&mut self) -> Result<CString, V1Error> {
        self.seq += 1;
        cstring(&self.dir.join(format!("m{}", self.seq)))
    }
}

impl Drop for NodeDir {
    fn drop(&mut self) {
        if let Err(e) = remove_node_dir(&self.dir) {
            eprintln!("devcg: {e}");
        }
    }
}

/// Unmounts (lazily, nodes and all) and removes a probe directory.
fn remove_node_dir(dir: &Path) -> Result<(), V1Error> {
    if is_mount_point(dir) {
        nix::mount::umount2(dir, MntFlags::MNT_DETACH).map_err(sys_err("umount", dir))?;
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("rmdir", dir)(e)),
        _ => Ok(()),
    }
}

/// Where probe directories live: the temp dir, canonical.
pub fn temp_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    tmp.canonicalize().unwrap_or(tmp)
}

fn is_mount_point(dir: &Path) -> bool {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape(mp) == dir)
}

// ---------------------------------------------------------------------------
// The probe child

/// How one access is attempted.
enum How {
    Open(OFlag),
    /// `access(F_OK)`: the check with no access bit.
    Exists,
    /// mknod of a fresh node of the device's type and number.
    Mknod(CString, SFlag, libc::dev_t),
}

struct Check {
    request: Request,
    node: CString,
    how: How,
}

impl Check {
    /// Runs in the child: only syscalls, no allocation. 0 or the errno.
    fn attempt(&self) -> i32 {
        let result = match &self.how {
            How::Open(flags) => nix::fcntl::open(
                self.node.as_c_str(),
                *flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
                Mode::empty(),
            )
            .map(|fd| {
                let _ = nix::unistd::close(fd);
            }),
            How::Exists => nix::unistd::access(self.node.as_c_str(), AccessFlags::F_OK),
            How::Mknod(path, kind, dev) => nix::sys::stat::mknod(
                path.as_c_str(),
                *kind,
                Mode::from_bits_truncate(0o600),
                *dev,
            )
            .map(|()| {
                let _ = nix::unistd::unlink(path.as_c_str());
            }),
        };
        match result {
            Ok(()) => 0,
            Err(e) => e as i32,
        }
    }
}

/// Kills and reaps the child if the parent bails out early.
struct Reaper(Option<Pid>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// Forks a child that joins the cgroup (`procs` is its cgroup.procs) and
/// runs every check; returns one code per check (0 or the errno). The child
/// reports over a pipe: first the join status, then one `i32` per check.
fn run_probe_child(procs: &CStr, checks: &[Check], dir: &Path) -> Result<Vec<i32>, V1Error> {
    let (read_end, write_end) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys_err("pipe", dir))?;
    // SAFETY: the child only makes syscalls on data built before the fork
    // and leaves through _exit; it never returns into the caller.
    match unsafe { nix::unistd::fork() }.map_err(sys_err("fork", dir))? {
        ForkResult::Child => {
            drop(read_end);
            // Even a bug must not unwind into the parent's test harness,
            // which this process is a copy of.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                child_main(procs, checks, write_end.as_raw_fd())
            }));
            exit_child(4)
        }
        ForkResult::Parent { child } => {
            let mut reaper = Reaper(Some(child));
            drop(write_end);
            let want = 4 * (1 + checks.len());
            let mut bytes = Vec::with_capacity(want);
            // Read what was promised, or up to EOF if the child stopped early
            // (a sibling probe forked by another thread may hold a copy of
            // the write end for a moment, so EOF alone is not relied on).
            let mut file = fs::File::from(read_end);
            let mut chunk = [0u8; 4096];
            while bytes.len() < want {
                match file.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err("read from probe child", dir)(e)),
                }
            }
            let status = loop {
                match nix::sys::wait::waitpid(child, None) {
                    Err(SysErrno::EINTR) => continue,
                    other => break other.map_err(sys_err("wait for probe child", dir))?,
                }
            };
            reaper.0 = None;
            let codes: Vec<i32> = bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            match codes.first() {
                Some(0) => {}
                Some(&e) => {
                    return Err(V1Error::Join {
                        path: dir.to_path_buf(),
                        errno: SysErrno::from_raw(e),
                    })
                }
                None => return Err(V1Error::Child(format!("no report, {status:?}"))),
            }
            if codes.len() != 1 + checks.len() || status != WaitStatus::Exited(child, 0) {
                return Err(V1Error::Child(format!(
                    "{} of {} results, {status:?}",
                    codes.len().saturating_sub(1),
                    checks.len()
                )));
            }
            Ok(codes[1..].to_vec())
        }
    }
}

/// The child: join, attempt, report, `_exit`. Never returns.
fn child_main(procs: &CStr, checks: &[Check], out: RawFd) -> ! {
    // SAFETY: `out` is the pipe's write end, open for the child's lifetime.
    let out = unsafe { BorrowedFd::borrow_raw(out) };
    let joined = join_cgroup(procs);
    send(out, joined);
    if joined != 0 {
        exit_child(2);
    }
    for check in checks {
        send(out, check.attempt());
    }
    exit_child(0)
}

/// Writes this process's pid to cgroup.procs.
fn join_cgroup(procs: &CStr) -> i32 {
    let mut buf = [0u8; 12];
    let text = format_pid(nix::unistd::getpid().as_raw(), &mut buf);
    let fd = match nix::fcntl::open(procs, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => return e as i32,
    };
    // SAFETY: fd was just opened and is closed below.
    let res = nix::unistd::write(unsafe { BorrowedFd::borrow_raw(fd) }, text);
    let _ = nix::unistd::close(fd);
    match res {
        Ok(n) if n == text.len() => 0,
        Ok(_) => libc::EIO,
        Err(e) => e as i32,
    }
}

/// Decimal digits of a pid into `buf`, without allocating.
fn format_pid(pid: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut n = pid.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

fn send(out: BorrowedFd<'_>, code: i32) {
    let bytes = code.to_le_bytes();
    loop {
        match nix::unistd::write(out.as_fd(), &bytes) {
            Ok(4) => return,
            Err(SysErrno::EINTR) => continue,
            _ => exit_child(3),
        }
    }
}

fn exit_child(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and destructors, which belong to
    // the parent's copy of the test harness.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_devices_mount() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
36 31 0:33 /docker/x /sys/fs/cgroup/dev\\040ices rw,relatime shared:5 - cgroup cgroup rw,devices
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            parse_mountinfo(text),
            Some(DevicesMount {
                mount_point: PathBuf::from("/sys/fs/cgroup/dev ices"),
                root: PathBuf::from("/docker/x"),
            })
        );
        assert_eq!(
            parse_mountinfo("41 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
            None
        );
        // A named hierarchy that merely contains the word is not it.
        assert_eq!(
            parse_mountinfo("40 31 0:37 / /x rw - cgroup cgroup rw,name=devicesx\n"),
            None
        );
    }

    #[test]
    fn reads_proc_devices() {
        let d = Drivers::parse(
            "Character devices:\n  1 mem\n 10 misc\n\nBlock devices:\n  7 loop\n259 blkext\n",
        );
        assert!(d.has_driver(DeviceType::Char, 1));
        assert!(!d.has_driver(DeviceType::Block, 1));
        assert!(d.has_driver(DeviceType::Block, 259));
        assert_eq!(d.probeable(Device::new(DeviceType::Block, 1, 3)), Ok(()));
        assert_eq!(
            d.probeable(Device::new(DeviceType::Char, 1, 3)),
            Err(NotProbeable::HasDriver)
        );
        assert_eq!(
            d.probeable(Device::new(DeviceType::Char, 0, 0)),
            Err(NotProbeable::Zero)
        );
        assert_eq!(
            d.probeable(Device::new(DeviceType::Char, 4096, 0)),
            Err(NotProbeable::Unrealizable)
        );
        assert_eq!(
            d.probeable(Device::new(DeviceType::Char, 4095, 1 << 20)),
            Err(NotProbeable::Unrealizable)
        );
    }

    #[test]
    fn owner_pids() {
        assert_eq!(owner_pid("devcg-123-0x1f", SCRATCH_PREFIX), Some(123));
        assert_eq!(owner_pid("devcg-probe-9-x", SCRATCH_PREFIX), None);
        assert_eq!(owner_pid("devcg-probe-9-x", NODES_PREFIX), Some(9));
        assert_eq!(owner_pid("devcg-", SCRATCH_PREFIX), None);
        assert_eq!(owner_pid("other-1-x", SCRATCH_PREFIX), None);
    }

    #[test]
    fn formats_pids() {
        let mut buf = [0u8; 12];
        assert_eq!(format_pid(0, &mut buf), b"0");
        assert_eq!(format_pid(4194304, &mut buf), b"4194304");
        assert_eq!(format_pid(i32::MAX, &mut buf), b"2147483647");
    }
}
