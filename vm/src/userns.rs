//! A guest-side check the kernel-check suite does not carry (yet): device
//! nodes on a filesystem mounted inside a non-initial user namespace cannot
//! be opened (EACCES: the superblock is owned by that namespace, so it is
//! `SB_I_NODEV`), whatever any device program says; and mknod there from
//! inside is EPERM (no CAP_MKNOD in the initial namespace).
//!
//! How: a child enters a new user and mount namespace (mapping root to
//! root) and mounts a tmpfs; the parent, root of the initial namespace,
//! creates `c 1:3` in that tmpfs through `/proc/<child>/root`; the child
//! opens it. A control child does the same on a tmpfs of the initial user
//! namespace (in a private mount namespace), where the open succeeds.
//!
//! Run by `devcg-vm --guest-check`, which prints a JSON array in the form of
//! `devcg kernel-check --json`. It forks: call it from a single-threaded
//! process only.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

/// One check, in the form kernel-check prints.
#[derive(Clone, Debug, Serialize)]
pub struct GuestCheck {
    pub name: String,
    pub expected: String,
    pub observed: String,
    pub status: &'static str,
}

pub const NAME_EACCES: &str = "nodes_on_user_namespace_mount_give_eacces";
pub const NAME_MKNOD: &str = "mknod_on_user_namespace_mount_is_eperm";

/// Every guest-side check of this crate.
pub fn run_all() -> Vec<GuestCheck> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return [NAME_EACCES, NAME_MKNOD]
            .iter()
            .map(|n| GuestCheck {
                name: n.to_string(),
                expected: String::new(),
                observed: "not root".into(),
                status: "skip",
            })
            .collect();
    }
    let base = match make_base() {
        Ok(b) => b,
        Err(e) => return failed(&format!("scratch directory: {e}")),
    };
    let result = observe(&base);
    let _ = std::fs::remove_dir_all(&base);
    match result {
        Ok(o) => judge(&o),
        Err(e) => failed(&e),
    }
}

fn failed(why: &str) -> Vec<GuestCheck> {
    [NAME_EACCES, NAME_MKNOD]
        .iter()
        .map(|n| GuestCheck {
            name: n.to_string(),
            expected: String::new(),
            observed: format!("error: {why}"),
            status: "fail",
        })
        .collect()
}

/// What was seen: errno names, "ok" for success.
#[derive(Debug)]
struct Observed {
    control_open: String,
    userns_mknod: String,
    parent_mknod: String,
    userns_open: String,
}

fn judge(o: &Observed) -> Vec<GuestCheck> {
    let eacces_ok = o.control_open == "ok" && o.parent_mknod == "ok" && o.userns_open == "EACCES";
    vec![
        GuestCheck {
            name: NAME_EACCES.into(),
            expected: "open O_RDWR of c 1:3 on a tmpfs mounted inside a new user namespace: EACCES (the same node on an initial-namespace tmpfs opens)".into(),
            observed: format!(
                "initial-namespace tmpfs: {}; node made by init root through /proc/PID/root: {}; open inside the user namespace: {}",
                o.control_open, o.parent_mknod, o.userns_open
            ),
            status: if eacces_ok { "pass" } else { "fail" },
        },
        GuestCheck {
            name: NAME_MKNOD.into(),
            expected: "mknod c 1:3 on a tmpfs mounted inside a new user namespace, from inside: EPERM".into(),
            observed: o.userns_mknod.clone(),
            status: if o.userns_mknod == "EPERM" { "pass" } else { "fail" },
        },
    ]
}

fn make_base() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir();
    let mut template = dir
        .join("devcg-vm-userns-XXXXXX")
        .into_os_string()
        .into_encoded_bytes();
    template.push(0);
    // SAFETY: a NUL-terminated, writable template.
    let p = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    template.pop();
    let base = PathBuf::from(String::from_utf8_lossy(&template).to_string());
    std::fs::create_dir(base.join("ctl"))?;
    std::fs::create_dir(base.join("t"))?;
    Ok(base)
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL in paths")
}

fn errno_name(e: i32) -> String {
    match e {
        0 => "ok".into(),
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::ENXIO => "ENXIO".into(),
        libc::ENODEV => "ENODEV".into(),
        libc::EROFS => "EROFS".into(),
        other => format!("errno {other}"),
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// A pipe pair; `read_byte` waits at most `timeout`.
struct Pipe {
    r: i32,
    w: i32,
}

impl Pipe {
    fn new() -> Result<Pipe, String> {
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        Ok(Pipe {
            r: fds[0],
            w: fds[1],
        })
    }
    fn write(&self, bytes: &[u8]) {
        // SAFETY: writes from a valid buffer to our own pipe.
        unsafe {
            libc::write(self.w, bytes.as_ptr().cast(), bytes.len());
        }
    }
    /// Reads up to 256 bytes, waiting until data, EOF or the deadline.
    fn read(&self, deadline: Instant) -> Option<Vec<u8>> {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: self.r,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        if n <= 0 {
            return None;
        }
        let mut buf = [0u8; 256];
        // SAFETY: reads into a local buffer.
        let got = unsafe { libc::read(self.r, buf.as_mut_ptr().cast(), buf.len()) };
        (got > 0).then(|| buf[..got as usize].to_vec())
    }
    fn close_read(&self) {
        // SAFETY: closes our own descriptor.
        unsafe {
            libc::close(self.r);
        }
    }
    fn close_write(&self) {
        // SAFETY: closes our own descriptor.
        unsafe {
            libc::close(self.w);
        }
    }
}

fn write_file(path: &str, text: &str) -> i32 {
    match std::fs::write(path, text) {
        Ok(()) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

fn mount_tmpfs(target: &CString) -> i32 {
    let none = c"none";
    let tmpfs = c"tmpfs";
    let root = c"/";
    // SAFETY: valid C strings; a private mount namespace is ours to change.
    unsafe {
        libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        if libc::mount(
            tmpfs.as_ptr(),
            target.as_ptr(),
            tmpfs.as_ptr(),
            0,
            c"mode=0755".as_ptr().cast(),
        ) != 0
        {
            return last_errno();
        }
    }
    0
}

fn mknod_null(path: &CString) -> i32 {
    // SAFETY: valid C string.
    let r = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    if r == 0 {
        0
    } else {
        last_errno()
    }
}

fn open_rdwr(path: &CString) -> i32 {
    // SAFETY: valid C string; the fd is closed at once.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd >= 0 {
        unsafe { libc::close(fd) };
        0
    } else {
        last_errno()
    }
}

/// Waits for `pid` until the deadline, then kills it.
fn reap(pid: libc::pid_t, deadline: Instant) {
    loop {
        let mut status = 0;
        // SAFETY: our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r != 0 {
            return;
        }
        if Instant::now() >= deadline {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn observe(base: &Path) -> Result<Observed, String> {
    let deadline = Instant::now() + Duration::from_secs(20);

    // Control: a tmpfs of the initial user namespace, in a private mount
    // namespace so nothing shows on the machine.
    let ctl = cpath(&base.join("ctl"));
    let ctl_node = cpath(&base.join("ctl/null"));
    let out = Pipe::new()?;
    // SAFETY: the process is single-threaded (see the module doc); the
    // child only makes syscalls and _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        out.close_read();
        let code = unsafe { libc::unshare(libc::CLONE_NEWNS) };
        let msg = if code != 0 {
            format!("unshare(NEWNS): {}", errno_name(last_errno()))
        } else {
            match mount_tmpfs(&ctl) {
                0 => match mknod_null(&ctl_node) {
                    0 => errno_name(open_rdwr(&ctl_node)),
                    e => format!("mknod: {}", errno_name(e)),
                },
                e => format!("mount tmpfs: {}", errno_name(e)),
            }
        };
        out.write(msg.as_bytes());
        unsafe { libc::_exit(0) };
    }
    out.close_write();
    let control_open = out
        .read(deadline)
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .unwrap_or_else(|| "no answer".into());
    out.close_read();
    reap(pid, deadline);

    // The user namespace.
    let t = cpath(&base.join("t"));
    let own = cpath(&base.join("t/own"));
    let node = cpath(&base.join("t/null"));
    let up = Pipe::new()?; // child -> parent
    let down = Pipe::new()?; // parent -> child
                             // SAFETY: as above.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        up.close_read();
        down.close_write();
        let fail = |what: &str, e: i32| {
            up.write(format!("E{what}: {}", errno_name(e)).as_bytes());
            unsafe { libc::_exit(1) };
        };
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
            fail("unshare(NEWUSER|NEWNS)", last_errno());
        }
        for (file, text) in [
            ("/proc/self/setgroups", "deny"),
            ("/proc/self/uid_map", "0 0 1"),
            ("/proc/self/gid_map", "0 0 1"),
        ] {
            let e = write_file(file, text);
            if e != 0 {
                fail(file, e);
            }
        }
        let e = mount_tmpfs(&t);
        if e != 0 {
            fail("mount tmpfs in the user namespace", e);
        }
        let mk = errno_name(mknod_null(&own));
        up.write(format!("M{mk}").as_bytes());
        // Wait for the parent's node.
        if down
            .read(Instant::now() + Duration::from_secs(15))
            .is_none()
        {
            unsafe { libc::_exit(2) };
        }
        let o = errno_name(open_rdwr(&node));
        up.write(format!("O{o}").as_bytes());
        unsafe { libc::_exit(0) };
    }
    up.close_write();
    down.close_read();
    let first = up
        .read(deadline)
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .unwrap_or_else(|| "Eno answer from the child".into());
    let result = if let Some(e) = first.strip_prefix('E') {
        Err(format!("in the user namespace: {e}"))
    } else {
        let userns_mknod = first.trim_start_matches('M').to_string();
        let through = PathBuf::from(format!("/proc/{pid}/root"))
            .join(base.join("t/null").strip_prefix("/").unwrap_or(base));
        let parent_mknod = errno_name(mknod_null(&cpath(&through)));
        down.write(b"go");
        let userns_open = up
            .read(deadline)
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .trim_start_matches('O')
                    .to_string()
            })
            .unwrap_or_else(|| "no answer".into());
        Ok(Observed {
            control_open,
            userns_mknod,
            parent_mknod,
            userns_open,
        })
    };
    up.close_read();
    down.close_write();
    reap(pid, deadline);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging() {
        let o = Observed {
            control_open: "ok".into(),
            userns_mknod: "EPERM".into(),
            parent_mknod: "ok".into(),
            userns_open: "EACCES".into(),
        };
        assert!(judge(&o).iter().all(|c| c.status == "pass"));
        let o = Observed {
            userns_open: "ok".into(),
            ..o
        };
        assert_eq!(judge(&o)[0].status, "fail");
    }
}
