//! What devcg owns on the machine and how it is cleaned up: everything it
//! creates is named `devcg-<pid>-<nonce>` (cgroups, pin directories) or
//! `devcg-<kind>-<pid>-<nonce>` (temp dirs), so that a later run can tell a
//! leftover of a killed run (its pid is gone) from a live one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno as SysErrno;
use nix::mount::MntFlags;
use nix::unistd::Pid;

use crate::mounts;
use crate::sys::{io_err, sys_err, SysError};

/// Prefix of every scratch cgroup and pin directory: `devcg-<pid>-<nonce>`.
pub const SCRATCH_PREFIX: &str = "devcg-";
/// Prefix of every probe tmpfs directory under the temp dir.
pub const NODES_PREFIX: &str = "devcg-probe-";
/// Prefix of a private bpffs mount under the temp dir (when no bpffs is
/// mounted on the host).
pub const BPFFS_PREFIX: &str = "devcg-bpf-";

static NONCE: AtomicU64 = AtomicU64::new(0);

pub fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}x{:x}", NONCE.fetch_add(1, Ordering::Relaxed), nanos)
}

/// `<prefix><pid>-<nonce>` for this process.
pub fn fresh_name(prefix: &str) -> String {
    format!("{prefix}{}-{}", std::process::id(), nonce())
}

/// A live process holds the pid (kill with no signal: ESRCH means none).
pub fn pid_alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(Pid::from_raw(pid), None) != Err(SysErrno::ESRCH)
}

/// The pid in `<prefix><pid>-<rest>`.
pub fn owner_pid(name: &str, prefix: &str) -> Option<i32> {
    let (pid, _rest) = name.strip_prefix(prefix)?.split_once('-')?;
    pid.parse().ok()
}

/// Entries of `dir` named `<prefix><pid>-…` whose pid is dead.
pub fn stale_entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| owner_pid(n, prefix))
                .is_some_and(|pid| !pid_alive(pid))
        })
        .map(|e| e.path())
        .collect()
}

/// Where probe and bpffs directories live: the temp dir, canonical (so that
/// it matches its mountinfo line).
pub fn temp_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    tmp.canonicalize().unwrap_or(tmp)
}

pub(crate) fn read_procs(dir: &Path) -> Result<Vec<i32>, SysError> {
    let file = dir.join("cgroup.procs");
    let text = fs::read_to_string(&file).map_err(io_err("read", &file))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

fn move_task(pid: i32, to: &Path) -> Result<(), SysError> {
    let file = to.join("cgroup.procs");
    match fs::write(&file, pid.to_string()) {
        Ok(()) => Ok(()),
        // Gone meanwhile.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(io_err("move task", &file)(e)),
    }
}

/// Removes a scratch cgroup and every cgroup below it, deepest first, moving
/// any task still inside to `evacuate_to` first. Refuses anything not named
/// like a scratch cgroup.
pub(crate) fn remove_cgroup_tree(top: &Path, evacuate_to: &Path) -> Result<(), SysError> {
    let is_ours = top
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| owner_pid(n, SCRATCH_PREFIX).is_some());
    if !is_ours {
        return Err(SysError::OutsideScratch(top.display().to_string()));
    }
    // Whatever still runs in a scratch tree is devcg's (probe children, a
    // test container): kill it rather than let it run on elsewhere.
    // cgroup.kill exists since 5.14; before, the tasks are moved out below.
    let _ = fs::write(top.join("cgroup.kill"), "1");
    remove_subtree(top, evacuate_to)
}

/// Removes a cgroup and every cgroup below it, deepest first. The caller
/// has checked that `top` is devcg's.
pub(crate) fn remove_subtree(top: &Path, evacuate_to: &Path) -> Result<(), SysError> {
    let mut dirs = Vec::new();
    collect_post_order(top, &mut dirs)?;
    for dir in dirs {
        remove_cgroup(&dir, evacuate_to)?;
    }
    Ok(())
}

/// rmdir of one (leaf) cgroup, tasks moved out first.
pub(crate) fn remove_cgroup(dir: &Path, evacuate_to: &Path) -> Result<(), SysError> {
    let mut tries = 0;
    loop {
        for pid in read_procs(dir).unwrap_or_default() {
            move_task(pid, evacuate_to)?;
        }
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // A task that just exited may still count for a moment.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                tries += 1;
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(io_err("rmdir", dir)(e)),
        }
    }
}

fn collect_post_order(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SysError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read dir", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("read dir", dir))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_post_order(&entry.path(), out)?;
        }
    }
    out.push(dir.to_path_buf());
    Ok(())
}

/// Unmounts (lazily, contents and all) and removes a directory devcg
/// mounted something on.
pub(crate) fn remove_mount_dir(dir: &Path) -> Result<(), SysError> {
    if mounts::is_mount_point(dir) {
        nix::mount::umount2(dir, MntFlags::MNT_DETACH).map_err(sys_err("umount", dir))?;
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("rmdir", dir)(e)),
        _ => Ok(()),
    }
}

/// Removes a directory of pins on a bpffs: unlinking a pin drops its
/// reference (a pinned link detaches when nothing else holds it).
pub(crate) fn remove_pin_dir(dir: &Path) -> Result<(), SysError> {
    remove_pin_dir_contents(dir)?;
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("rmdir", dir)(e)),
        _ => Ok(()),
    }
}

/// What bpf_preload puts on every new bpffs instance.
const PRELOADED: [&str; 2] = ["maps.debug", "progs.debug"];

/// Unlinks every pin below `dir`, keeping `dir`.
pub(crate) fn remove_pin_dir_contents(dir: &Path) -> Result<(), SysError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read dir", dir)(e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_pin_dir(&path)?;
        } else if PRELOADED.iter().any(|n| entry.file_name() == *n) {
            // The kernel's own iterators on a fresh bpffs: not unlinkable,
            // gone with the mount.
        } else {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("unlink pin", &path)(e))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Removes the leftovers of killed runs that are not tied to one cgroup
/// hierarchy: probe tmpfs directories and private bpffs mounts in the temp
/// dir, and pin directories on every bpffs. Returns what it removed.
pub fn remove_stale_shared() -> Result<Vec<PathBuf>, SysError> {
    let mut removed = Vec::new();
    let tmp = temp_dir();
    for dir in stale_entries(&tmp, NODES_PREFIX) {
        if dir.is_dir() {
            remove_mount_dir(&dir)?;
            removed.push(dir);
        }
    }
    for dir in stale_entries(&tmp, BPFFS_PREFIX) {
        if dir.is_dir() {
            if mounts::is_mount_point(&dir) {
                remove_pin_dir_contents(&dir)?;
            }
            remove_mount_dir(&dir)?;
            removed.push(dir);
        }
    }
    // A killed run's container bundles and runc state (its container's
    // processes die with the scratch cgroup: see remove_cgroup_tree).
    for dir in stale_entries(&tmp, crate::runtime::RUNTIME_PREFIX) {
        fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
        removed.push(dir);
    }
    for bpffs in mounts::bpffs(&mounts::read()) {
        for dir in stale_entries(&bpffs, SCRATCH_PREFIX) {
            if dir.is_dir() {
                remove_pin_dir(&dir)?;
            } else {
                fs::remove_file(&dir).map_err(io_err("unlink pin", &dir))?;
            }
            removed.push(dir);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pids() {
        assert_eq!(owner_pid("devcg-123-0x1f", SCRATCH_PREFIX), Some(123));
        assert_eq!(owner_pid("devcg-probe-9-x", SCRATCH_PREFIX), None);
        assert_eq!(owner_pid("devcg-bpf-9-x", SCRATCH_PREFIX), None);
        assert_eq!(owner_pid("devcg-probe-9-x", NODES_PREFIX), Some(9));
        assert_eq!(owner_pid("devcg-bpf-9-x", BPFFS_PREFIX), Some(9));
        assert_eq!(owner_pid("devcg-", SCRATCH_PREFIX), None);
        assert_eq!(owner_pid("other-1-x", SCRATCH_PREFIX), None);
    }
}
