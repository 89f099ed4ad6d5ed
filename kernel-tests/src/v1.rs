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
//! Verdicts come from [`Scratch::probe`] (see [`crate::probe`]): device
//! nodes are made by this process on a private tmpfs, outside the cgroup
//! under test; a forked child joins that cgroup and tries each access.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use devcg_engine::RuleKind;
pub use devcg_oracle::Errno;
use nix::errno::Errno as SysErrno;
use thiserror::Error;

pub use crate::device::{Device, Drivers, NotProbeable};
use crate::mounts;
use crate::owned;
pub use crate::owned::{temp_dir, NODES_PREFIX, SCRATCH_PREFIX};
use crate::probe::{self, NodeDir};
pub use crate::probe::{KernelAnswer, Probe, PROBED_ACCESSES};
use crate::sys::SysError;

/// What the driver could not do. Kernel answers to rule writes are not
/// errors: see [`Scratch::write`].
#[derive(Debug, Error)]
pub enum V1Error {
    /// What every driver can meet: files, syscalls, the scratch guard,
    /// the probe child.
    #[error(transparent)]
    Sys(#[from] SysError),
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
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> V1Error + 'a {
    let wrap = crate::sys::io_err(op, path);
    move |source| V1Error::Sys(wrap(source))
}

fn cstring(path: &Path) -> Result<std::ffi::CString, V1Error> {
    Ok(crate::sys::cstring(path)?)
}

fn read_procs(dir: &Path) -> Result<Vec<i32>, V1Error> {
    Ok(owned::read_procs(dir)?)
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
    mounts::v1_devices(&mounts::parse(text)).map(|m| DevicesMount {
        mount_point: m.mount_point,
        root: m.root,
    })
}

/// This process's cgroup in the devices hierarchy, as a directory under the
/// mount; `None` if /proc/self/cgroup places it outside what the mount shows.
fn own_cgroup_dir(mount: &DevicesMount) -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = mounts::proc_cgroups(&text).1?;
    mounts::cgroup_dir(&mount.mount_point, &mount.root, path)
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

// ---------------------------------------------------------------------------
// The scratch cgroup

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
        let name = owned::fresh_name(SCRATCH_PREFIX);
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
        self.nodes.as_ref().map(|n| n.dir())
    }

    /// The directory of `path`: `""` is the scratch cgroup itself, else
    /// plain names joined by `/`. Anything that could leave it is refused.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, V1Error> {
        let refuse = || V1Error::Sys(SysError::OutsideScratch(path.to_string()));
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
            return Err(V1Error::Sys(SysError::OutsideScratch(path.to_string())));
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
                .map_err(|why| SysError::NotProbeable(dev, why))?;
        }
        if self.nodes.is_none() {
            self.nodes = Some(NodeDir::mount()?);
        }
        let nodes = self.nodes.as_mut().expect("mounted above");
        let procs = cstring(&dir.join("cgroup.procs"))?;
        let mut groups =
            probe::probe_groups(nodes, &self.drivers, &[(vec![procs], devices.to_vec())])?;
        Ok(groups.pop().unwrap_or_default())
    }

    /// The `cgroup.procs` of `path`, for a probe child that joins this v1
    /// cgroup together with a cgroup2 one (checked like any other path).
    pub fn procs_file(&self, path: &str) -> Result<PathBuf, V1Error> {
        let dir = self.resolve(path)?;
        self.refuse_own(&dir)?;
        Ok(dir.join("cgroup.procs"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.nodes = None; // unmounts the tmpfs
        if let Err(e) = owned::remove_cgroup_tree(&self.dir, &self.evacuate_to) {
            eprintln!(
                "devcg: could not remove scratch cgroup {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// Removes leftovers of killed runs: `devcg-<pid>-*` cgroups directly under
/// the mount whose pid is no longer alive, and the shared leftovers (probe
/// tmpfs directories, pins; see [`owned::remove_stale_shared`]). Returns
/// what it removed.
pub fn remove_stale(mount: &DevicesMount) -> Result<Vec<PathBuf>, V1Error> {
    let evacuate_to = own_cgroup_dir(mount).unwrap_or_else(|| mount.mount_point.clone());
    let mut removed = Vec::new();
    for dir in owned::stale_entries(&mount.mount_point, SCRATCH_PREFIX) {
        if dir.is_dir() {
            owned::remove_cgroup_tree(&dir, &evacuate_to)?;
            removed.push(dir);
        }
    }
    removed.extend(owned::remove_stale_shared()?);
    Ok(removed)
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
}
