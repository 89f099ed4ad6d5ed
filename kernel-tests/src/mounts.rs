//! /proc/self/mountinfo: where the cgroup hierarchies and bpffs are, never
//! hard-coded (hybrid hosts mount cgroup2 at /sys/fs/cgroup/unified, pure-v2
//! hosts at /sys/fs/cgroup, containers somewhere else again).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields devcg needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// Which directory of the filesystem the mount shows (`/` on a host,
    /// the container's cgroup inside one).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub super_options: String,
}

/// Every mount of this process, in mountinfo order.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            // `id parent maj:min root mount-point opts [optional...] - fstype source superopts`
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let (fstype, _source, superopts) = (right.next()?, right.next()?, right.next()?);
            Some(MountEntry {
                root: unescape(left.get(3)?),
                mount_point: unescape(left.get(4)?),
                fstype: fstype.to_string(),
                super_options: superopts.to_string(),
            })
        })
        .collect()
}

/// A process's cgroups as /proc/PID/cgroup lists them: its cgroup2 path
/// (the `0::` line) and its path in the v1 hierarchy that has the devices
/// controller.
pub fn proc_cgroups(text: &str) -> (Option<&str>, Option<&str>) {
    let v2 = text.lines().find_map(|l| l.strip_prefix("0::"));
    let devices = text.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (_id, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "devices")
            .then_some(path)
    });
    (v2, devices)
}

/// Where the cgroup `path` (as /proc/PID/cgroup names it) is under a mount
/// at `mount_point` that shows the hierarchy from `root`; `None` when the
/// mount does not show it.
pub fn cgroup_dir(mount_point: &Path, root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path).strip_prefix(root).ok()?;
    Some(mount_point.join(rel))
}

pub fn read() -> Vec<MountEntry> {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub fn unescape(field: &str) -> PathBuf {
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

/// The first cgroup2 mount; its `root` places /proc/self/cgroup's `0::` path.
pub fn cgroup2(mounts: &[MountEntry]) -> Option<MountEntry> {
    mounts.iter().find(|m| m.fstype == "cgroup2").cloned()
}

/// The first v1 mount whose super options name the `devices` controller.
pub fn v1_devices(mounts: &[MountEntry]) -> Option<MountEntry> {
    mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "devices"))
        .cloned()
}

/// Every bpffs mount point.
pub fn bpffs(mounts: &[MountEntry]) -> Vec<PathBuf> {
    mounts
        .iter()
        .filter(|m| m.fstype == "bpf")
        .map(|m| m.mount_point.clone())
        .collect()
}

pub fn is_mount_point(dir: &Path) -> bool {
    read().iter().any(|m| m.mount_point == dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
36 31 0:33 /docker/x /sys/fs/cgroup/dev\\040ices rw,relatime shared:5 - cgroup cgroup rw,devices
40 31 0:37 / /x rw - cgroup cgroup rw,name=devicesx
41 31 0:38 /ctr /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 23 0:39 / /sys/fs/bpf rw,nosuid - bpf bpf rw,mode=700
";

    #[test]
    fn finds_each_kind_of_mount() {
        let m = parse(TEXT);
        let dev = v1_devices(&m).unwrap();
        assert_eq!(dev.mount_point, PathBuf::from("/sys/fs/cgroup/dev ices"));
        assert_eq!(dev.root, PathBuf::from("/docker/x"));
        let v2 = cgroup2(&m).unwrap();
        assert_eq!(v2.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(v2.root, PathBuf::from("/ctr"));
        assert_eq!(bpffs(&m), vec![PathBuf::from("/sys/fs/bpf")]);
        let pure = parse("41 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert_eq!(v1_devices(&pure), None);
        assert_eq!(
            cgroup2(&pure).unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup")
        );
    }
}
