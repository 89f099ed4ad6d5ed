//! The one protocol every forked child of devcg follows (probe children,
//! the v1 sleepers, the benchmarks' timer child): fork; in the child, close
//! every inherited descriptor but its own pipes first (another test
//! thread's links, maps and stats descriptors must not live on in it), run
//! a body that only makes syscalls on data built before the fork (no
//! allocation, no locks), never unwind into the parent's code, and leave
//! through `_exit`; in the parent, kill and reap the child if it is not
//! waited for. Plus the allocation-free pieces the bodies share.

use std::ffi::CStr;
use std::os::fd::{BorrowedFd, RawFd};

use nix::errno::Errno as SysErrno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::WaitStatus;
use nix::unistd::{ForkResult, Pid};

/// A forked child: killed and reaped on drop unless [`Child::wait`] reaped
/// it first.
#[derive(Debug)]
pub struct Child {
    pid: Option<Pid>,
}

impl Child {
    /// Forks. The child closes every inherited descriptor except `keep`,
    /// runs `body` and leaves through `_exit` with its result (4 if it
    /// panics). `body` must only make syscalls on data built before the
    /// fork.
    pub fn fork(keep: &[RawFd], body: impl FnOnce() -> i32) -> Result<Child, SysErrno> {
        // SAFETY: the child runs `body` under the rules above and never
        // returns into the caller.
        match unsafe { nix::unistd::fork() }? {
            ForkResult::Child => {
                close_inherited_fds(keep);
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
                exit_child(code.unwrap_or(4))
            }
            ForkResult::Parent { child } => Ok(Child { pid: Some(child) }),
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid.expect("not yet reaped")
    }

    /// Waits for the child to end (EINTR retried); it is reaped either way.
    pub fn wait(&mut self) -> Result<WaitStatus, SysErrno> {
        let pid = self.pid();
        let status = loop {
            match nix::sys::wait::waitpid(pid, None) {
                Err(SysErrno::EINTR) => continue,
                other => break other,
            }
        };
        self.pid = None;
        status
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// `read(2)` until `buf` is full (EINTR retried); EPIPE at end of file.
pub fn read_exact(fd: RawFd, buf: &mut [u8]) -> Result<(), SysErrno> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: writes at most buf.len() - got bytes into buf[got..].
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        match n {
            0 => return Err(SysErrno::EPIPE),
            n if n < 0 => match SysErrno::last() {
                SysErrno::EINTR => continue,
                e => return Err(e),
            },
            n => got += n as usize,
        }
    }
    Ok(())
}

/// `write(2)` until all of `buf` is written (EINTR retried).
pub fn write_all(fd: RawFd, buf: &[u8]) -> Result<(), SysErrno> {
    let mut put = 0;
    while put < buf.len() {
        // SAFETY: reads at most buf.len() - put bytes from buf[put..].
        let n = unsafe { libc::write(fd, buf[put..].as_ptr().cast(), buf.len() - put) };
        match n {
            n if n < 0 => match SysErrno::last() {
                SysErrno::EINTR => continue,
                e => return Err(e),
            },
            n => put += n as usize,
        }
    }
    Ok(())
}

/// Closes every descriptor above stderr but those in `keep`, in a child
/// just forked from a multi-threaded process. Without it the child holds,
/// for as long as it lives, whatever another thread had open at the fork:
/// a link that should be gone, a pipe end that should see EOF, or a
/// BPF_ENABLE_STATS fd that keeps the kernel's global statistics on.
/// Async-signal-safe: no allocation, only close_range(2) (5.9+; older
/// kernels get a bounded loop of close(2)).
pub fn close_inherited_fds(keep: &[RawFd]) {
    let close = |first: RawFd, last: RawFd| {
        // SAFETY: only descriptors are closed; no memory is touched.
        let rc = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) };
        if rc != 0 {
            for fd in first..=last.min(first.saturating_add(65_536)) {
                // SAFETY: as above.
                unsafe { libc::close(fd) };
            }
        }
    };
    let mut from: RawFd = 3;
    loop {
        // The lowest kept descriptor at or above `from`, without sorting
        // (no allocation after fork).
        let next = keep.iter().copied().filter(|&k| k >= from).min();
        match next {
            Some(k) => {
                if k > from {
                    close(from, k - 1);
                }
                from = k + 1;
            }
            None => {
                close(from, RawFd::MAX);
                return;
            }
        }
    }
}

pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and destructors, which belong to
    // the parent's copy of the program.
    unsafe { libc::_exit(code) }
}

/// Decimal digits of a pid into `buf`, without allocating.
pub fn format_pid(pid: i32, buf: &mut [u8; 12]) -> &[u8] {
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

/// One write(2) of `text` to an existing file: 0 or the errno. No
/// allocation.
pub fn write_file(path: &CStr, text: &[u8]) -> i32 {
    let fd = match nix::fcntl::open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()) {
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

/// Writes this process's pid to cgroup.procs.
pub fn join_cgroup(procs: &CStr) -> i32 {
    let mut buf = [0u8; 12];
    let text = format_pid(nix::unistd::getpid().as_raw(), &mut buf);
    write_file(procs, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_pids() {
        let mut buf = [0u8; 12];
        assert_eq!(format_pid(0, &mut buf), b"0");
        assert_eq!(format_pid(4194304, &mut buf), b"4194304");
        assert_eq!(format_pid(i32::MAX, &mut buf), b"2147483647");
    }

    #[test]
    fn a_child_keeps_only_the_descriptors_it_is_given() {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (other, _keep_open) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        use std::os::fd::AsRawFd;
        let (out, probe_fd) = (w.as_raw_fd(), other.as_raw_fd());
        let mut child = Child::fork(&[out], || {
            // EBADF: the pipe it was not given is closed in the child.
            // SAFETY: fcntl on a descriptor number, no memory touched.
            let closed = unsafe { libc::fcntl(probe_fd, libc::F_GETFD) } < 0;
            let _ = write_all(out, &[u8::from(closed)]);
            0
        })
        .unwrap();
        drop(w);
        let mut buf = [0u8; 1];
        read_exact(r.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(buf, [1]);
        let pid = child.pid();
        assert_eq!(child.wait().unwrap(), WaitStatus::Exited(pid, 0));
    }
}
