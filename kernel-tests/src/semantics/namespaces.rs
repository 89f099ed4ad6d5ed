//! User namespaces: mknod there, nodes and mknod on a tmpfs mounted there, the guard flag.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use devcg_engine::{Access, DeviceType};
use nix::sys::stat::{Mode, SFlag};

use crate::bpf::{self, prog_flags, AttachFlags, BpfError, LoadedProgram};
use crate::device::Device;
use crate::error::KernelError;
use crate::probe::{self, open_flags, Step};
use crate::sys::{cstring, io_err};
use crate::v2::{Cgroup, Scratch};

use super::observe::{errno_name, steps_in};
use super::programs::{count_of, counter, counts, load, ret, DEV};
use super::{seen, Finding};

/// mknod of `DEV` from a child in `cg`, in a new user namespace or not.
fn mknod_codes(s: &mut Scratch, cg: &Cgroup, userns: bool) -> Result<Vec<i32>, KernelError> {
    let fresh = s.nodes()?.fresh_name()?;
    let mut steps = Vec::new();
    if userns {
        steps.push(Step::UnshareUser);
    }
    steps.push(Step::Mknod(fresh, SFlag::S_IFCHR, DEV.dev_t()));
    steps_in(s, cg, &steps)
}

pub(super) fn device_guard_flag_is_not_honoured(s: &mut Scratch) -> Result<Finding, KernelError> {
    let answer = |r: &Result<LoadedProgram, BpfError>| match r {
        Ok(_) => "accepted".to_string(),
        Err(e) => e
            .errno()
            .map_or_else(|| e.to_string(), |n| format!("refused {n}")),
    };
    let guard = bpf::load_with_flags(&counter(1), "guard", prog_flags::RFC_CGROUP_DEVICE_GUARD);
    let unknown = bpf::load_with_flags(&ret(1), "bit8", 1 << 8);
    let mut observed = format!(
        "load with bit 7 (RFC BPF_F_CGROUP_DEVICE_GUARD; mainline 6.7+ BPF_F_TEST_REG_INVARIANTS): {}; \
         with unknown bit 8: {}",
        answer(&guard),
        answer(&unknown)
    );
    let Ok(guard) = guard else {
        // Refused: nothing can honour it.
        return seen(true, observed);
    };
    let cg = s.mkdir("a")?;
    s.attach(&cg, &guard, AttachFlags::NONE)?;
    let codes = mknod_codes(s, &cg, true)?;
    if codes[0] != 0 {
        return Ok(Finding::Skip(format!(
            "skipped: unshare(CLONE_NEWUSER) failed: {}",
            errno_name(codes[0])
        )));
    }
    let runs = counts(&guard)?.1;
    let _ = write!(
        observed,
        "; attached allow-all counter so flagged, mknod c 100:1 in a user namespace: {} with {runs} program runs",
        errno_name(codes[1])
    );
    seen(codes[1] == libc::EPERM && runs == 0, observed)
}

pub(super) fn mknod_in_user_namespace_is_eperm(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let count = load(&counter(1), "count_allow")?;
    s.attach(&cg, &count, AttachFlags::NONE)?;
    let plain = mknod_codes(s, &cg, false)?;
    let plain_runs = counts(&count)?.1;
    let userns = mknod_codes(s, &cg, true)?;
    if userns[0] != 0 {
        return Ok(Finding::Skip(format!(
            "skipped: unshare(CLONE_NEWUSER) failed: {}",
            errno_name(userns[0])
        )));
    }
    let runs = counts(&count)?.1 - plain_runs;
    seen(
        plain == [0] && plain_runs == 1 && userns[1] == libc::EPERM && runs == 0,
        format!(
            "allow-all counter: mknod c 100:1 in the initial user namespace {} ({plain_runs} run); \
             in a new one {} ({runs} runs)",
            errno_name(plain[0]),
            errno_name(userns[1])
        ),
    )
}

/// `c 1:3`: a node with a driver, so that an allowed open succeeds.
const MEM_NULL: Device = Device {
    ty: DeviceType::Char,
    major: 1,
    minor: 3,
};

/// What one child saw on a tmpfs mounted in a mount namespace of its own,
/// in a new user namespace or not (codes: 0 or the errno).
struct NsMount {
    /// Entering the namespaces.
    unshare: i32,
    mount: i32,
    /// The child's own mknod of `c 1:3` there, and the program runs with
    /// access m meanwhile.
    mknod: i32,
    mknod_runs: u64,
    /// This process's mknod of `c 1:3` there, through /proc/PID/root (None:
    /// not tried, the child had no tmpfs).
    made: Option<i32>,
    /// The child's open O_RDWR of that node, and the program runs with
    /// access rw meanwhile.
    open: i32,
    open_runs: u64,
}

impl NsMount {
    fn show(&self) -> String {
        if self.unshare != 0 || self.mount != 0 {
            return format!(
                "entering the namespaces {}, mount tmpfs {}",
                errno_name(self.unshare),
                errno_name(self.mount)
            );
        }
        format!(
            "mknod by the child {} ({} runs); mknod by this process through /proc/PID/root {}; \
             open O_RDWR by the child {} ({} runs)",
            errno_name(self.mknod),
            self.mknod_runs,
            self.made.map_or_else(|| "not tried".into(), errno_name),
            errno_name(self.open),
            self.open_runs
        )
    }
}

/// A child in `cg` enters a mount namespace of its own (with `user`, in a
/// new user namespace mapping root to root), mounts a tmpfs on a fresh
/// directory of the probe tmpfs and tries mknod of `c 1:3` there; then
/// this process, root of the initial user namespace, makes `c 1:3` on that
/// tmpfs through /proc/PID/root, and the child opens it O_RDWR. `count`
/// is the counter attached to `cg`. The tmpfs goes with the child's mount
/// namespace, the directory right after.
fn ns_mount_probe(
    s: &mut Scratch,
    cg: &Cgroup,
    count: &LoadedProgram,
    user: bool,
) -> Result<NsMount, KernelError> {
    let rw = Access(Access::READ.0 | Access::WRITE.0);
    let join = s.procs_file(cg)?;
    let dir = s.nodes()?.fresh_name()?;
    let dir_path = PathBuf::from(OsStr::from_bytes(dir.as_bytes()));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir_path)
        .map_err(io_err("mkdir", &dir_path))?;
    let steps = [
        Step::Join(join),
        Step::UnshareNs { user },
        Step::MountTmpfs(dir.clone()),
        Step::Mknod(
            cstring(&dir_path.join("own"))?,
            SFlag::S_IFCHR,
            MEM_NULL.dev_t(),
        ),
        Step::Pause,
        Step::Open(cstring(&dir_path.join("null"))?, open_flags(rw)),
    ];
    let (m0, o0) = (
        count_of(count, DeviceType::Char, Access::MKNOD)?,
        count_of(count, DeviceType::Char, rw)?,
    );
    let inside = dir_path.join("null");
    let result = probe::run_child_paused(&steps, |pid, codes| {
        // Join, UnshareNs, MountTmpfs: the child has its tmpfs.
        if codes.get(2) != Some(&0) {
            return None;
        }
        let through = Path::new("/proc")
            .join(pid.to_string())
            .join("root")
            .join(inside.strip_prefix("/").unwrap_or(&inside));
        Some(
            match nix::sys::stat::mknod(
                &through,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o600),
                MEM_NULL.dev_t(),
            ) {
                Ok(()) => 0,
                Err(e) => e as i32,
            },
        )
    });
    // The child is gone, and its mount with its namespace.
    let _ = fs::remove_dir(&dir_path);
    let (codes, made) = result?;
    Ok(NsMount {
        unshare: codes[1],
        mount: codes[2],
        mknod: codes[3],
        mknod_runs: count_of(count, DeviceType::Char, Access::MKNOD)? - m0,
        made: made.flatten(),
        open: codes[5],
        open_runs: count_of(count, DeviceType::Char, rw)? - o0,
    })
}

/// Both arms of the namespace-mount checks under one allow-all counter:
/// the initial user namespace (a private mount namespace), then a new one;
/// `Err(skip)` when no user namespace can be made.
fn ns_mount_arms(s: &mut Scratch) -> Result<Result<(NsMount, NsMount), Finding>, KernelError> {
    let cg = s.mkdir("a")?;
    let count = load(&counter(1), "count_allow")?;
    s.attach(&cg, &count, AttachFlags::NONE)?;
    let init = ns_mount_probe(s, &cg, &count, false)?;
    let user = ns_mount_probe(s, &cg, &count, true)?;
    if user.unshare != 0 {
        return Ok(Err(Finding::Skip(format!(
            "skipped: entering a new user and mount namespace failed: {}",
            errno_name(user.unshare)
        ))));
    }
    Ok(Ok((init, user)))
}

fn ns_observed(init: &NsMount, user: &NsMount) -> String {
    format!(
        "allow-all counter; tmpfs of the initial user namespace (private mount namespace): {}; \
         tmpfs mounted inside a new user namespace: {}",
        init.show(),
        user.show()
    )
}

pub(super) fn nodes_on_user_namespace_mount_give_eacces(
    s: &mut Scratch,
) -> Result<Finding, KernelError> {
    let (init, user) = match ns_mount_arms(s)? {
        Ok(arms) => arms,
        Err(skip) => return Ok(skip),
    };
    seen(
        init.unshare == 0
            && init.mount == 0
            && init.made == Some(0)
            && init.open == 0
            && init.open_runs == 1
            && user.mount == 0
            && user.made == Some(0)
            && user.open == libc::EACCES
            && user.open_runs == 0,
        ns_observed(&init, &user),
    )
}

pub(super) fn mknod_on_user_namespace_mount_is_eperm(
    s: &mut Scratch,
) -> Result<Finding, KernelError> {
    let (init, user) = match ns_mount_arms(s)? {
        Ok(arms) => arms,
        Err(skip) => return Ok(skip),
    };
    seen(
        init.unshare == 0
            && init.mount == 0
            && init.mknod == 0
            && init.mknod_runs == 1
            && user.mount == 0
            && user.mknod == libc::EPERM
            && user.mknod_runs == 0,
        ns_observed(&init, &user),
    )
}
