//! Asking the kernel for a verdict: device nodes on a private tmpfs, and a
//! forked child that joins the cgroup(s) under test and tries each access.
//! Shared by the v1 and cgroup2 drivers.
//!
//! What the kernel answers, as seen on 6.18 (see docs/kernel-facts.md):
//!
//! * a denial is EPERM, for open, `access(2)` and mknod alike;
//! * an allowed open of a char *or block* major without a driver fails with
//!   ENXIO, after the device check has passed: char opens reach
//!   `chrdev_open` only after `inode_permission`, block opens reach
//!   `blkdev_get_no_open` only after `bdev_permission` checked the device
//!   cgroup a second time;
//! * `0:0` is not a device: a char `0:0` is never checked, a block `0:0` is
//!   checked on open (by the block layer) and mknod but not by `access(2)`.
//!   It is never probed.
//!
//! The child is forked from a possibly multi-threaded process: everything
//! it needs is built before the fork and it only makes syscalls, then
//! `_exit`s. It may enter new mount and user namespaces of its own
//! ([`Step::UnshareNs`]) and mount a tmpfs there ([`Step::MountTmpfs`]):
//! those go with the child. [`run_child_paused`] lets this process act in
//! the middle of the child's steps (through `/proc/<child>/root`, say).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use devcg_engine::{Access, Request, Verdict};

use crate::device::{Device, Drivers};
use nix::errno::Errno as SysErrno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::wait::WaitStatus;
use nix::unistd::{AccessFlags, Pid};

use crate::child::{exit_child, join_cgroup, write_file, Child};
use crate::owned::{self, NODES_PREFIX};
use crate::sys::{cstring, io_err, sys_err, SysError};

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
pub enum KernelAnswer {
    /// Success, or ENXIO from an open of a driverless major: the device
    /// check passed.
    Allowed,
    /// EPERM: the device cgroup said no.
    Denied,
    /// Anything else: neither allow nor deny can be concluded.
    Unexpected(SysErrno),
}

impl KernelAnswer {
    pub fn verdict(self) -> Option<Verdict> {
        match self {
            KernelAnswer::Allowed => Some(Verdict::Allow),
            KernelAnswer::Denied => Some(Verdict::Deny),
            KernelAnswer::Unexpected(_) => None,
        }
    }
}

impl fmt::Display for KernelAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelAnswer::Allowed => f.write_str("allow"),
            KernelAnswer::Denied => f.write_str("deny"),
            KernelAnswer::Unexpected(e) => write!(f, "unexpected {e}"),
        }
    }
}

/// One attempt: the request, what happened and the raw errno (if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub request: Request,
    pub outcome: KernelAnswer,
    pub errno: Option<SysErrno>,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.errno {
            None => "ok".to_string(),
            Some(e) => format!("{e}"),
        };
        match self.outcome {
            KernelAnswer::Unexpected(_) => write!(f, "{}: unexpected {how}", self.request),
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
// Device nodes on a private tmpfs

/// A tmpfs on a fresh directory in the temp dir, holding one node per probed
/// device. The driver process makes the nodes, from its own cgroup, so the
/// cgroup under test only ever sees the child's accesses. Mounted without
/// `nodev` (that would answer EACCES before any device check) unless asked.
pub struct NodeDir {
    dir: PathBuf,
    nodes: HashMap<Device, CString>,
    seq: u64,
}

impl NodeDir {
    pub fn mount() -> Result<NodeDir, SysError> {
        Self::mount_with(MsFlags::empty())
    }

    /// With extra mount flags (`MS_NODEV` for the nodev check).
    pub fn mount_with(extra: MsFlags) -> Result<NodeDir, SysError> {
        let dir = owned::temp_dir().join(owned::fresh_name(NODES_PREFIX));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("mkdir", &dir))?;
        if let Err(errno) = nix::mount::mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | extra,
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

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node for `dev`, made on first use.
    pub fn node(&mut self, dev: Device) -> Result<CString, SysError> {
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

    /// A name no node has: a child mknods there.
    pub fn fresh_name(&mut self) -> Result<CString, SysError> {
        self.seq += 1;
        cstring(&self.dir.join(format!("m{}", self.seq)))
    }

    /// The steps that probe every access of [`PROBED_ACCESSES`] on `dev`.
    pub fn device_steps(&mut self, dev: Device) -> Result<Vec<(Request, Step)>, SysError> {
        let node = self.node(dev)?;
        let mut out = Vec::with_capacity(PROBED_ACCESSES.len());
        for access in PROBED_ACCESSES {
            let step = match access {
                Access::MKNOD => Step::Mknod(self.fresh_name()?, dev.sflag(), dev.dev_t()),
                Access::NONE => Step::Access(node.clone()),
                a => Step::Open(node.clone(), open_flags(a)),
            };
            out.push((dev.request(access), step));
        }
        Ok(out)
    }
}

impl Drop for NodeDir {
    fn drop(&mut self) {
        if let Err(e) = owned::remove_mount_dir(&self.dir) {
            eprintln!("devcg: {e}");
        }
    }
}

/// O_RDONLY, O_WRONLY or O_RDWR for an access set with r and/or w.
pub fn open_flags(a: Access) -> OFlag {
    match (a.contains(Access::READ), a.contains(Access::WRITE)) {
        (true, true) => OFlag::O_RDWR,
        (false, true) => OFlag::O_WRONLY,
        _ => OFlag::O_RDONLY,
    }
}

// ---------------------------------------------------------------------------
// The probe child

/// One thing the child does, in order. Each yields a code: 0 or the errno.
#[derive(Clone, Debug)]
pub enum Step {
    /// Writes the child's pid to this `cgroup.procs`. A failure stops the
    /// child: nothing after it would run where it should.
    Join(CString),
    /// open(2) with these flags (plus CLOEXEC, NOCTTY, NONBLOCK), closed at
    /// once.
    Open(CString, OFlag),
    /// `access(F_OK)`: the check with no access bit.
    Access(CString),
    /// mknod of a fresh node (of a device, a FIFO…), unlinked at once.
    Mknod(CString, SFlag, libc::dev_t),
    /// `unshare(CLONE_NEWUSER)`: the rest runs in a new user namespace.
    UnshareUser,
    /// `unshare(CLONE_NEWNS)`, with `user` together with `CLONE_NEWUSER`
    /// and root mapped to root (setgroups denied, `0 0 1` for uids and
    /// gids); then every mount of the new namespace made private, so that
    /// nothing the child mounts shows anywhere else. The code is the first
    /// errno. A failure ends the child's work: every later step is reported
    /// as ECANCELED without running.
    UnshareNs { user: bool },
    /// A tmpfs on this directory in the child's own mount namespace, gone
    /// with the child. Only after a successful [`Step::UnshareNs`] in the
    /// same child (ECANCELED otherwise): nothing is ever mounted in the
    /// machine's namespace by a child.
    MountTmpfs(CString),
    /// Waits until this process has done its part: see
    /// [`run_child_paused`]. 0, or EPIPE when it gave up.
    Pause,
}

impl Step {
    /// Runs in the child: only syscalls, no allocation. 0 or the errno.
    fn attempt(&self) -> i32 {
        let result = match self {
            Step::Join(procs) => return join_cgroup(procs),
            Step::Open(node, flags) => nix::fcntl::open(
                node.as_c_str(),
                *flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
                Mode::empty(),
            )
            .map(|fd| {
                let _ = nix::unistd::close(fd);
            }),
            Step::Access(node) => nix::unistd::access(node.as_c_str(), AccessFlags::F_OK),
            Step::Mknod(path, kind, dev) => nix::sys::stat::mknod(
                path.as_c_str(),
                *kind,
                Mode::from_bits_truncate(0o600),
                *dev,
            )
            .map(|()| {
                let _ = nix::unistd::unlink(path.as_c_str());
            }),
            Step::UnshareUser => nix::sched::unshare(CloneFlags::CLONE_NEWUSER),
            Step::UnshareNs { user } => return enter_namespaces(*user),
            Step::MountTmpfs(dir) => nix::mount::mount(
                Some(c"tmpfs"),
                dir.as_c_str(),
                Some(c"tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some(c"mode=0700,size=64k"),
            ),
            // Needs the pipe from the parent: see `child_main`.
            Step::Pause => return libc::EINVAL,
        };
        match result {
            Ok(()) => 0,
            Err(e) => e as i32,
        }
    }

    /// What a code means for a device probe: EPERM is the device cgroup's
    /// no, ENXIO after an open means the check passed and the missing
    /// driver answered; anything else is not a verdict.
    pub fn outcome(&self, code: i32) -> KernelAnswer {
        match (code, self) {
            (0, _) => KernelAnswer::Allowed,
            (libc::EPERM, _) => KernelAnswer::Denied,
            (libc::ENXIO, Step::Open(..)) => KernelAnswer::Allowed,
            (e, _) => KernelAnswer::Unexpected(SysErrno::from_raw(e)),
        }
    }
}

/// Turns (request, step) pairs and their codes into probes.
pub fn probes(steps: &[(Request, Step)], codes: &[i32]) -> Vec<Probe> {
    steps
        .iter()
        .zip(codes)
        .map(|((request, step), &code)| Probe {
            request: *request,
            outcome: step.outcome(code),
            errno: (code != 0).then(|| SysErrno::from_raw(code)),
        })
        .collect()
}

/// Forks a child that runs `steps` in order and returns one code per step
/// (0 or the errno). The child reports over a pipe, one `i32` per step; a
/// failed [`Step::Join`] is an error naming the cgroup.
pub fn run_child(steps: &[Step]) -> Result<Vec<i32>, SysError> {
    run_child_paused(steps, |_, _| ()).map(|(codes, _)| codes)
}

/// Like [`run_child`], for steps with a [`Step::Pause`]: once the child
/// has reported every step before the (first) pause, `between` runs here
/// with the child's pid and those codes, then the child goes on. `between`
/// is not called when the child stopped before the pause; its answer comes
/// back beside the codes. A later pause finds the parent gone (EPIPE).
pub fn run_child_paused<R>(
    steps: &[Step],
    between: impl FnOnce(Pid, &[i32]) -> R,
) -> Result<(Vec<i32>, Option<R>), SysError> {
    let here = Path::new("probe child");
    let (read_end, write_end) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys_err("pipe", here))?;
    let pause = steps.iter().position(|s| matches!(s, Step::Pause));
    // Parent -> child: one byte when the child may go on.
    let go = match pause {
        Some(_) => Some(nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys_err("pipe", here))?),
        None => None,
    };
    let (go_read, go_write) = match go {
        Some((r, w)) => (Some(r), Some(w)),
        None => (None, None),
    };
    let go_fd = go_read.as_ref().map(|r| r.as_raw_fd());
    let out = write_end.as_raw_fd();
    let mut child = Child::fork(&[out, go_fd.unwrap_or(-1)], || {
        child_main(steps, out, go_fd)
    })
    .map_err(sys_err("fork", here))?;
    drop(write_end);
    // The read end of `go` stays open here until the end: a late
    // byte for a child that went on without it never meets a closed
    // pipe.
    let (_go_read, mut go_write) = (go_read, go_write);
    let mut between = Some(between);
    let mut answer = None;
    let want = 4 * steps.len();
    let mut bytes = Vec::with_capacity(want);
    // Read what was promised, or up to EOF if the child stopped early
    // (a sibling probe forked by another thread may hold a copy of
    // the write end for a moment, so EOF alone is not relied on).
    let mut file = fs::File::from(read_end);
    let mut chunk = [0u8; 4096];
    while bytes.len() < want {
        if let (Some(p), Some(w)) = (pause, go_write.as_ref()) {
            if bytes.len() >= 4 * p {
                if let Some(f) = between.take() {
                    answer = Some(f(child.pid(), &decode(&bytes[..4 * p])));
                }
                let _ = nix::unistd::write(w, b"g");
                go_write = None;
            }
        }
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read from", here)(e)),
        }
    }
    // A child that stopped before its pause waits for nothing.
    drop(go_write);
    let pid = child.pid();
    let status = child.wait().map_err(sys_err("wait for", here))?;
    let codes = decode(&bytes);
    for (step, &code) in steps.iter().zip(&codes) {
        if let (Step::Join(procs), true) = (step, code != 0) {
            return Err(SysError::Join {
                path: PathBuf::from(procs.to_string_lossy().into_owned()),
                errno: SysErrno::from_raw(code),
            });
        }
    }
    if codes.len() != steps.len() || status != WaitStatus::Exited(pid, 0) {
        return Err(SysError::Child(format!(
            "{} of {} results, {status:?}",
            codes.len(),
            steps.len()
        )));
    }
    Ok((codes, answer))
}

/// The child's little-endian `i32` codes.
fn decode(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The child: attempt, report, `_exit`. Never returns. `go` is the read
/// end of the pipe a [`Step::Pause`] waits on.
fn child_main(steps: &[Step], out: RawFd, go: Option<RawFd>) -> ! {
    // SAFETY: `out` is the pipe's write end, open for the child's lifetime.
    let out = unsafe { BorrowedFd::borrow_raw(out) };
    // Whether this child has a mount namespace of its own; whether a failed
    // UnshareNs ended its work.
    let (mut own_ns, mut cancelled) = (false, false);
    for step in steps {
        let code = match step {
            _ if cancelled => libc::ECANCELED,
            Step::MountTmpfs(_) if !own_ns => libc::ECANCELED,
            Step::Pause => wait_for_parent(go),
            s => s.attempt(),
        };
        if let Step::UnshareNs { .. } = step {
            own_ns |= code == 0;
            cancelled |= code != 0;
        }
        send(out, code);
        if code != 0 && matches!(step, Step::Join(_)) {
            exit_child(2);
        }
    }
    exit_child(0)
}

/// [`Step::UnshareNs`]: new mount namespace (and user namespace, root
/// mapped to root), every mount private. 0 or the first errno.
fn enter_namespaces(user: bool) -> i32 {
    let mut flags = CloneFlags::CLONE_NEWNS;
    if user {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    if let Err(e) = nix::sched::unshare(flags) {
        return e as i32;
    }
    if user {
        let maps: [(&CStr, &[u8]); 3] = [
            (c"/proc/self/setgroups", b"deny"),
            (c"/proc/self/uid_map", b"0 0 1"),
            (c"/proc/self/gid_map", b"0 0 1"),
        ];
        for (file, text) in maps {
            let code = write_file(file, text);
            if code != 0 {
                return code;
            }
        }
    }
    match nix::mount::mount(
        None::<&CStr>,
        c"/",
        None::<&CStr>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&CStr>,
    ) {
        Ok(()) => 0,
        Err(e) => e as i32,
    }
}

/// [`Step::Pause`]: one byte from the parent. 0, EPIPE at EOF (the parent
/// gave up), else the errno.
fn wait_for_parent(go: Option<RawFd>) -> i32 {
    let Some(fd) = go else {
        return libc::EINVAL;
    };
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(fd, &mut byte) {
            Ok(1) => return 0,
            Ok(_) => return libc::EPIPE,
            Err(SysErrno::EINTR) => continue,
            Err(e) => return e as i32,
        }
    }
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

/// Probes every device from one child that first joins each cgroup of
/// `join` (their `cgroup.procs`), then tries each access. Groups run in
/// order in the same child, each with its own joins: one fork for many
/// cgroups. Results come per group, in the order of its devices, then of
/// [`PROBED_ACCESSES`].
pub fn probe_groups(
    nodes: &mut NodeDir,
    drivers: &Drivers,
    groups: &[(Vec<CString>, Vec<Device>)],
) -> Result<Vec<Vec<Probe>>, SysError> {
    let mut steps: Vec<(Option<Request>, Step)> = Vec::new();
    let mut bounds = Vec::with_capacity(groups.len());
    for (join, devices) in groups {
        for procs in join {
            steps.push((None, Step::Join(procs.clone())));
        }
        let start = steps.len();
        for &dev in devices {
            drivers
                .probeable(dev)
                .map_err(|why| SysError::NotProbeable(dev, why))?;
            for (req, step) in nodes.device_steps(dev)? {
                steps.push((Some(req), step));
            }
        }
        bounds.push(start..steps.len());
    }
    let only: Vec<Step> = steps.iter().map(|(_, s)| s.clone()).collect();
    let codes = run_child(&only)?;
    Ok(bounds
        .into_iter()
        .map(|range| {
            let pairs: Vec<(Request, Step)> = steps[range.clone()]
                .iter()
                .map(|(r, s)| (r.expect("device step"), s.clone()))
                .collect();
            probes(&pairs, &codes[range])
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_lets_the_parent_act_between_steps() {
        let file = std::env::temp_dir().join(format!("pause-test-{}", std::process::id()));
        let _ = fs::remove_file(&file);
        let c = cstring(&file).unwrap();
        let steps = [
            Step::Access(c.clone()),
            Step::Pause,
            Step::Access(c),
            // Never mounts: the child has no mount namespace of its own.
            Step::MountTmpfs(CString::new("/nonexistent-mount-point").unwrap()),
        ];
        let (codes, seen) = run_child_paused(&steps, |pid, codes| {
            fs::write(&file, "").unwrap();
            (pid.as_raw() > 0, codes.to_vec())
        })
        .unwrap();
        let _ = fs::remove_file(&file);
        assert_eq!(codes, [libc::ENOENT, 0, 0, libc::ECANCELED]);
        assert_eq!(seen, Some((true, vec![libc::ENOENT])));
    }

    #[test]
    fn codes_become_outcomes() {
        let open = Step::Open(CString::new("x").unwrap(), OFlag::O_RDONLY);
        let access = Step::Access(CString::new("x").unwrap());
        assert_eq!(open.outcome(0), KernelAnswer::Allowed);
        assert_eq!(open.outcome(libc::EPERM), KernelAnswer::Denied);
        assert_eq!(open.outcome(libc::ENXIO), KernelAnswer::Allowed);
        assert_eq!(
            access.outcome(libc::ENXIO),
            KernelAnswer::Unexpected(SysErrno::ENXIO)
        );
        assert_eq!(
            open.outcome(libc::EACCES),
            KernelAnswer::Unexpected(SysErrno::EACCES)
        );
    }
}
