//! cgroup2 and BPF device programs, for real: scratch cgroups, attach in
//! every mode, links, pins, and probes from a child inside.
//!
//! Everything lives below one directory per [`Scratch`],
//! `<cgroup2 mount>/devcg-<pid>-<nonce>` (the mount is found in
//! /proc/self/mountinfo: /sys/fs/cgroup/unified on a hybrid host,
//! /sys/fs/cgroup on pure v2). Every attach first checks, on the target
//! fd itself (/proc/self/fd), that the cgroup lies inside that directory and
//! holds no task of this process: a deny-all on the root or on the shell's
//! own cgroup would lock it out. This process never joins a scratch cgroup;
//! only forked probe children do.
//!
//! Dropping a [`Scratch`] (on panic too) unlinks its pins, detaches its
//! links, removes its cgroups (which drops every BPF_PROG_ATTACH attachment
//! on them) and unmounts its probe tmpfs. The next [`Scratch::new`] removes
//! whatever a killed run left: cgroups, pin directories and temp dirs whose
//! pid is gone.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use crate::bpf::{self, AttachFlags, LoadedProgram, Query};
use crate::device::{Device, Drivers};
use crate::error::KernelError;
use crate::mounts;
use crate::owned::{self, BPFFS_PREFIX, SCRATCH_PREFIX};
use crate::probe::{self, NodeDir, Probe, Step};
use crate::sys::{cstring, io_err, sys_err, SysError};

/// `CGROUP2_SUPER_MAGIC`: what fstatfs says of a cgroup2 directory.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The cgroup2 mount of this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup2Mount {
    pub mount_point: PathBuf,
    /// Which cgroup the mount shows (`/` on a host).
    pub root: PathBuf,
}

pub fn find_cgroup2_mount() -> Option<Cgroup2Mount> {
    mounts::cgroup2(&mounts::read()).map(|m| Cgroup2Mount {
        mount_point: m.mount_point,
        root: m.root,
    })
}

/// This process's cgroup2 directory (the `0::` line of /proc/self/cgroup).
fn own_cgroup_dir(mount: &Cgroup2Mount) -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = mounts::proc_cgroups(&text).0?;
    mounts::cgroup_dir(&mount.mount_point, &mount.root, path)
}

/// Why the cgroup2/BPF checks cannot run here, if they cannot, as one
/// line: they need root, a cgroup2 mount and a kernel that lets this
/// process load device programs (CAP_BPF and CAP_SYS_ADMIN).
pub fn skip_reason() -> Option<String> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    if find_cgroup2_mount().is_none() {
        missing.push("a cgroup2 hierarchy (none mounted)".to_string());
    }
    let trivial = devcg_engine::Program::new(vec![
        devcg_engine::Insn::new(0xb7, 0, 0, 0, 1), // r0 = 1
        devcg_engine::Insn::new(0x95, 0, 0, 0, 0), // exit
    ]);
    if let Err(e) = bpf::load(&trivial, "devcg_probe") {
        missing.push(format!(
            "BPF_PROG_LOAD of a device program ({}; needs CAP_BPF and CAP_SYS_ADMIN)",
            e.errno().map_or_else(|| e.to_string(), |n| n.to_string())
        ));
    }
    (!missing.is_empty()).then(|| format!("skipped: needs {}", missing.join(", ")))
}

/// An open cgroup2 directory inside a scratch directory.
#[derive(Debug)]
pub struct Cgroup {
    fd: OwnedFd,
    path: PathBuf,
    rel: String,
}

impl Cgroup {
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The path relative to the scratch directory (`""` is the scratch
    /// directory itself).
    pub fn rel(&self) -> &str {
        &self.rel
    }
}

impl AsFd for Cgroup {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A bpf_link to a scratch cgroup: detached when the last fd (this one,
/// dups, copies inherited by other processes) and every pin are gone.
#[derive(Debug)]
pub struct Link {
    pub fd: OwnedFd,
    pub id: u32,
}

impl AsFd for Link {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Where pins go: a `devcg-<pid>-<nonce>` directory on the host's bpffs,
/// or, where none is mounted, a private bpffs on a temp dir.
struct PinDir {
    dir: PathBuf,
    /// Set when the bpffs was mounted for this run.
    mounted: Option<PathBuf>,
}

impl PinDir {
    fn create() -> Result<PinDir, SysError> {
        let mut found = mounts::bpffs(&mounts::read());
        found.sort_by_key(|p| p != Path::new("/sys/fs/bpf"));
        if let Some(bpffs) = found.into_iter().next() {
            let dir = bpffs.join(owned::fresh_name(SCRATCH_PREFIX));
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(io_err("mkdir", &dir))?;
            return Ok(PinDir { dir, mounted: None });
        }
        let dir = owned::temp_dir().join(owned::fresh_name(BPFFS_PREFIX));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("mkdir", &dir))?;
        if let Err(errno) = nix::mount::mount(
            Some("bpf"),
            &dir,
            Some("bpf"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=0700"),
        ) {
            let _ = fs::remove_dir(&dir);
            return Err(sys_err("mount bpffs on", &dir)(errno));
        }
        nix::mount::mount(
            None::<&str>,
            &dir,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(sys_err("make private", &dir))?;
        Ok(PinDir {
            dir: dir.clone(),
            mounted: Some(dir),
        })
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let result = match &self.mounted {
            // Unlink the pins first: a lazy unmount alone would keep the
            // instance (and the pinned links) alive while anyone holds it.
            Some(mount) => {
                owned::remove_pin_dir_contents(mount).and_then(|()| owned::remove_mount_dir(mount))
            }
            None => owned::remove_pin_dir(&self.dir),
        };
        if let Err(e) = result {
            eprintln!(
                "devcg: could not remove pins in {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// A per-run scratch directory on cgroup2.
pub struct Scratch {
    mount: Cgroup2Mount,
    dir: PathBuf,
    /// `dir`, canonical: what /proc/self/fd shows of fds below it.
    canon: PathBuf,
    own: Option<PathBuf>,
    evacuate_to: PathBuf,
    drivers: Drivers,
    nodes: Option<NodeDir>,
    pins: Option<PinDir>,
    /// Ids of the links made here, detached on drop if still alive (by id:
    /// holding an fd would keep them alive).
    links: Vec<u32>,
}

impl Scratch {
    /// A fresh scratch directory, or `None` when no cgroup2 is mounted.
    /// Removes leftovers of killed runs first.
    pub fn new() -> Result<Option<Scratch>, KernelError> {
        let Some(mount) = find_cgroup2_mount() else {
            return Ok(None);
        };
        let own = own_cgroup_dir(&mount);
        let evacuate_to = own.clone().unwrap_or_else(|| mount.mount_point.clone());
        remove_stale(&mount)?;
        let dir = mount.mount_point.join(owned::fresh_name(SCRATCH_PREFIX));
        fs::create_dir(&dir).map_err(io_err("mkdir", &dir))?;
        let mut scratch = Scratch {
            canon: dir.clone(),
            mount,
            dir,
            own,
            evacuate_to,
            drivers: Drivers::default(),
            nodes: None,
            pins: None,
            links: Vec::new(),
        };
        // After `scratch` exists, so that an error removes the directory.
        scratch.canon = scratch
            .dir
            .canonicalize()
            .map_err(io_err("canonicalize", &scratch.dir))?;
        scratch.drivers = Drivers::read()?;
        Ok(Some(scratch))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn mount(&self) -> &Cgroup2Mount {
        &self.mount
    }

    pub fn drivers(&self) -> &Drivers {
        &self.drivers
    }

    /// The probe tmpfs, once a probe has mounted it.
    pub fn nodes_dir(&self) -> Option<&Path> {
        self.nodes.as_ref().map(|n| n.dir())
    }

    /// The pin directory, once something was pinned.
    pub fn pins_dir(&self) -> Option<&Path> {
        self.pins.as_ref().map(|p| p.dir.as_path())
    }

    /// The directory of `rel`: `""` is the scratch directory itself, else
    /// plain names joined by `/`. Anything that could leave it is refused.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, KernelError> {
        let refuse = || SysError::OutsideScratch(rel.to_string());
        let mut dir = self.dir.clone();
        if !rel.is_empty() {
            for name in rel.split('/') {
                if name.is_empty() || name == "." || name == ".." || name.contains('\0') {
                    return Err(refuse().into());
                }
                dir.push(name);
            }
        }
        Ok(dir)
    }

    /// Creates the cgroup `rel` (its parent must exist) and opens it.
    pub fn mkdir(&self, rel: &str) -> Result<Cgroup, KernelError> {
        if rel.is_empty() {
            return Err(SysError::OutsideScratch(rel.to_string()).into());
        }
        let dir = self.resolve(rel)?;
        fs::create_dir(&dir).map_err(io_err("mkdir", &dir))?;
        self.open(rel)
    }

    /// Opens the existing cgroup `rel`.
    pub fn open(&self, rel: &str) -> Result<Cgroup, KernelError> {
        let path = self.resolve(rel)?;
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys_err("open cgroup", &path))?;
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let cg = Cgroup {
            fd,
            path,
            rel: rel.to_string(),
        };
        self.guard(&cg)?;
        Ok(cg)
    }

    /// Removes the cgroup and everything below it (its attachments go with
    /// it).
    pub fn rmdir(&self, cg: Cgroup) -> Result<(), KernelError> {
        let target = self.guard(&cg)?;
        if target == self.canon {
            return Err(SysError::OutsideScratch(cg.rel).into());
        }
        drop(cg);
        owned::remove_subtree(&target, &self.evacuate_to)?;
        Ok(())
    }

    /// The check every attach goes through, on the fd itself: a cgroup2
    /// directory inside the scratch directory that holds no task of ours.
    /// Returns its canonical path.
    pub fn guard(&self, cg: &impl AsFd) -> Result<PathBuf, KernelError> {
        let fd = cg.as_fd().as_raw_fd();
        let link = PathBuf::from(format!("/proc/self/fd/{fd}"));
        let target = fs::read_link(&link).map_err(io_err("readlink", &link))?;
        if !target.starts_with(&self.canon) {
            return Err(KernelError::NotScratch {
                target,
                scratch: self.canon.clone(),
            });
        }
        let stat = nix::sys::statfs::fstatfs(cg.as_fd()).map_err(sys_err("fstatfs", &target))?;
        if stat.filesystem_type().0 as i64 != CGROUP2_SUPER_MAGIC {
            return Err(KernelError::NotScratch {
                target,
                scratch: self.canon.clone(),
            });
        }
        if self
            .own
            .as_ref()
            .is_some_and(|own| own.starts_with(&target))
        {
            return Err(KernelError::OwnCgroup(target));
        }
        Ok(target)
    }

    /// BPF_PROG_ATTACH with `flags` (NONE, ALLOW_OVERRIDE, ALLOW_MULTI).
    pub fn attach(
        &self,
        cg: &Cgroup,
        prog: &LoadedProgram,
        flags: AttachFlags,
    ) -> Result<(), KernelError> {
        self.guard(cg)?;
        bpf::attach(cg.as_fd(), prog.as_fd(), flags, None)?;
        Ok(())
    }

    /// BPF_PROG_ATTACH with `BPF_F_REPLACE`: `new` takes `old`'s place in a
    /// MULTI list in one step.
    pub fn attach_replace(
        &self,
        cg: &Cgroup,
        new: &LoadedProgram,
        old: &LoadedProgram,
    ) -> Result<(), KernelError> {
        self.guard(cg)?;
        bpf::attach(
            cg.as_fd(),
            new.as_fd(),
            AttachFlags::ALLOW_MULTI | AttachFlags::REPLACE,
            Some(old.as_fd()),
        )?;
        Ok(())
    }

    /// BPF_PROG_DETACH of `prog` (or of the one program, for NONE and
    /// OVERRIDE attachments).
    pub fn detach(&self, cg: &Cgroup, prog: Option<&LoadedProgram>) -> Result<(), KernelError> {
        self.guard(cg)?;
        bpf::detach(cg.as_fd(), prog.map(|p| p.as_fd()))?;
        Ok(())
    }

    /// A bpf_link from `prog` to the cgroup.
    pub fn link(&mut self, cg: &Cgroup, prog: &LoadedProgram) -> Result<Link, KernelError> {
        self.guard(cg)?;
        let fd = bpf::link_create(cg.as_fd(), prog.as_fd())?;
        let (id, _) = bpf::link_ids(&fd)?;
        self.links.push(id);
        Ok(Link { fd, id })
    }

    /// Pins a link or program under this run's pin directory as `name`.
    pub fn pin(&mut self, obj: impl AsFd, name: &str) -> Result<PathBuf, KernelError> {
        if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
            return Err(SysError::OutsideScratch(name.to_string()).into());
        }
        if self.pins.is_none() {
            self.pins = Some(PinDir::create()?);
        }
        let path = self.pins.as_ref().expect("created above").dir.join(name);
        bpf::pin(obj, &path)?;
        Ok(path)
    }

    /// This run's pin directory (created on first use), for a tool such as
    /// bpftool to pin into; whatever is left there goes with the scratch.
    pub fn pin_dir(&mut self) -> Result<PathBuf, KernelError> {
        if self.pins.is_none() {
            self.pins = Some(PinDir::create()?);
        }
        Ok(self.pins.as_ref().expect("created above").dir.clone())
    }

    /// BPF_PROG_QUERY of a scratch cgroup.
    pub fn query(&self, cg: &Cgroup, effective: bool) -> Result<Query, KernelError> {
        self.guard(cg)?;
        Ok(bpf::query(cg.as_fd(), effective)?)
    }

    /// The `cgroup.procs` a probe child writes itself to, after the guard.
    pub fn procs_file(&self, cg: &Cgroup) -> Result<CString, KernelError> {
        let target = self.guard(cg)?;
        Ok(cstring(&target.join("cgroup.procs"))?)
    }

    /// The probe tmpfs, mounted on first use.
    pub fn nodes(&mut self) -> Result<&mut NodeDir, KernelError> {
        if self.nodes.is_none() {
            self.nodes = Some(NodeDir::mount()?);
        }
        Ok(self.nodes.as_mut().expect("mounted above"))
    }

    /// Every access of [`probe::PROBED_ACCESSES`] on each device, from one
    /// child inside `cg`.
    pub fn probe(&mut self, cg: &Cgroup, devices: &[Device]) -> Result<Vec<Probe>, KernelError> {
        let mut all = self.probe_many(&[(cg, devices)])?;
        Ok(all.pop().unwrap_or_default())
    }

    /// One child for many cgroups: it joins each in turn and probes its
    /// devices there. Results per group.
    pub fn probe_many(
        &mut self,
        groups: &[(&Cgroup, &[Device])],
    ) -> Result<Vec<Vec<Probe>>, KernelError> {
        let mut plan = Vec::with_capacity(groups.len());
        for (cg, devices) in groups {
            plan.push((vec![self.procs_file(cg)?], devices.to_vec()));
        }
        self.probe_joined(&plan)
    }

    /// Like [`Scratch::probe_many`], with the `cgroup.procs` files already
    /// checked (by this driver or the v1 one): for a child that must sit in
    /// a v1 and a v2 scratch cgroup at once.
    pub(crate) fn probe_joined(
        &mut self,
        plan: &[(Vec<CString>, Vec<Device>)],
    ) -> Result<Vec<Vec<Probe>>, KernelError> {
        let drivers = self.drivers.clone();
        let nodes = self.nodes()?;
        Ok(probe::probe_groups(nodes, &drivers, plan)?)
    }

    /// Runs arbitrary steps in a child that first joins `cg`.
    pub fn run_in(&mut self, cg: &Cgroup, steps: &[Step]) -> Result<Vec<i32>, KernelError> {
        let mut all = vec![Step::Join(self.procs_file(cg)?)];
        all.extend_from_slice(steps);
        let codes = probe::run_child(&all)?;
        Ok(codes[1..].to_vec())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.pins = None; // unlinks the pins
        for &id in &self.links {
            if let Ok(fd) = bpf::link_by_id(id) {
                let _ = bpf::link_detach(&fd);
            }
        }
        if let Err(e) = owned::remove_cgroup_tree(&self.dir, &self.evacuate_to) {
            eprintln!(
                "devcg: could not remove scratch cgroup {}: {e}",
                self.dir.display()
            );
        }
        self.nodes = None; // unmounts the tmpfs
    }
}

/// Removes leftovers of killed runs: pins and temp dirs first (a pinned
/// link holds its cgroup), then `devcg-<pid>-*` cgroups directly under the
/// cgroup2 mount whose pid is gone. Returns what it removed.
pub fn remove_stale(mount: &Cgroup2Mount) -> Result<Vec<PathBuf>, KernelError> {
    let mut removed = owned::remove_stale_shared()?;
    let evacuate_to = own_cgroup_dir(mount).unwrap_or_else(|| mount.mount_point.clone());
    for dir in owned::stale_entries(&mount.mount_point, SCRATCH_PREFIX) {
        if dir.is_dir() {
            owned::remove_cgroup_tree(&dir, &evacuate_to)?;
            removed.push(dir);
        }
    }
    Ok(removed)
}
