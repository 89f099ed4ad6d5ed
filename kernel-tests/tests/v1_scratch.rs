//! The v1 driver itself, on the real kernel: the scratch guard cleans up
//! after a panic and after a killed run, paths cannot leave the scratch
//! cgroup, and probes report what the kernel answers. Needs root and the v1
//! devices hierarchy; skips with one line otherwise.

use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use devcg_engine::{Access, DeviceType, RuleKind};
use devcg_kernel::sys::SysError;
use devcg_kernel::v1::{
    self, find_devices_mount, Device, Errno, KernelAnswer, NotProbeable, Scratch, V1Error,
    NODES_PREFIX, PROBED_ACCESSES,
};
use nix::errno::Errno as SysErrno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

/// The tests of this file run one at a time: one of them plants leftovers
/// that any `Scratch::new` would remove.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn scratch_or_skip() -> Option<Scratch> {
    if let Some(why) = v1::skip_reason() {
        println!("{why}");
        return None;
    }
    Some(
        Scratch::new()
            .expect("scratch cgroup")
            .expect("devices mount"),
    )
}

fn ok(s: &Scratch, path: &str, kind: RuleKind, text: &str) {
    assert_eq!(
        s.write(path, kind, text).expect("driver"),
        Ok(()),
        "{kind:?} {text:?} on {path}"
    );
}

/// A pid that belonged to a process which has exited and been reaped.
fn dead_pid() -> i32 {
    // SAFETY: the child only calls _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => unsafe { libc::_exit(0) },
        ForkResult::Parent { child } => {
            waitpid(child, None).expect("reap");
            child.as_raw()
        }
    }
}

/// A child that joins the v1 cgroup `dir` and sleeps until killed; returns
/// once it is in.
fn sleeper_in(dir: &Path) -> Pid {
    let procs = CString::new(
        dir.join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    // SAFETY: the child only makes syscalls on data built before the fork.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => unsafe {
            // It lives for the rest of the test: hold nothing of another
            // thread's.
            devcg_kernel::child::close_inherited_fds(&[]);
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            // "0" moves the writing process itself.
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(1);
            }
            libc::close(fd);
            loop {
                libc::pause();
            }
        },
        ForkResult::Parent { child } => {
            let start = Instant::now();
            while !fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap()
                .lines()
                .any(|l| l == child.as_raw().to_string())
            {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "sleeper never joined {}",
                    dir.display()
                );
                thread::sleep(Duration::from_millis(5));
            }
            child
        }
    }
}

fn devices_cgroup_of(pid: i32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            c.split(',').any(|c| c == "devices").then(|| p.to_string())
        })
        .unwrap()
}

#[test]
fn guard_removes_everything_after_a_panic() {
    let _serial = serial();
    let Some(probe_first) = scratch_or_skip() else {
        return;
    };
    drop(probe_first);
    let (tx, rx) = std::sync::mpsc::channel::<(PathBuf, PathBuf)>();
    let joined = thread::spawn(move || {
        let mut s = Scratch::new().unwrap().unwrap();
        for p in ["a", "a/b", "a/b/c", "d"] {
            s.mkdir(p).unwrap();
        }
        ok(&s, "a", RuleKind::Deny, "c 100:1 w");
        ok(&s, "a/b/c", RuleKind::Deny, "a");
        // A probe has had a task inside and mounted the node tmpfs.
        s.probe("a/b/c", &[Device::new(DeviceType::Char, 100, 1)])
            .unwrap();
        tx.send((s.dir().to_path_buf(), s.nodes_dir().unwrap().to_path_buf()))
            .unwrap();
        panic!("deliberate panic with a scratch tree alive");
    })
    .join();
    assert!(joined.is_err(), "the thread should have panicked");
    let (dir, nodes) = rx.recv().unwrap();
    assert!(!dir.exists(), "{} left behind after a panic", dir.display());
    assert!(
        !nodes.exists(),
        "{} left behind after a panic",
        nodes.display()
    );
}

#[test]
fn next_run_removes_leftovers_of_a_killed_run() {
    let _serial = serial();
    let Some(first) = scratch_or_skip() else {
        return;
    };
    drop(first);
    let mount = find_devices_mount().unwrap().mount_point;

    // The tree a killed run leaves: cgroups with rules, a task still inside
    // the deepest one, and a mounted probe tmpfs.
    let dead = dead_pid();
    assert_eq!(kill(Pid::from_raw(dead), None), Err(SysErrno::ESRCH));
    let stale = mount.join(format!("devcg-{dead}-x"));
    fs::create_dir(&stale).unwrap();
    for p in ["a", "a/b", "a/b/c", "d"] {
        fs::create_dir(stale.join(p)).unwrap();
    }
    fs::write(stale.join("a/b/c/devices.deny"), "a").unwrap();
    let sleeper = sleeper_in(&stale.join("a/b/c"));
    assert_ne!(dead, sleeper.as_raw());
    // A scratch cgroup whose owner is alive (the sleeper) must survive.
    let live = mount.join(format!("devcg-{}-live", sleeper.as_raw()));
    fs::create_dir(&live).unwrap();
    let stale_nodes = v1::temp_dir().join(format!("{NODES_PREFIX}{dead}-x"));
    fs::create_dir(&stale_nodes).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &stale_nodes,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=4k"),
    )
    .unwrap();

    let next = Scratch::new().unwrap().unwrap();
    let stale_gone = !stale.exists();
    let nodes_gone = !stale_nodes.exists();
    let live_kept = live.exists();
    let sleeper_moved_to = devices_cgroup_of(sleeper.as_raw());
    let own = devices_cgroup_of(std::process::id() as i32);
    drop(next);
    kill(sleeper, Signal::SIGKILL).unwrap();
    waitpid(sleeper, None).unwrap();
    fs::remove_dir(&live).unwrap();

    assert!(stale_gone, "{} was not removed", stale.display());
    assert!(nodes_gone, "{} was not removed", stale_nodes.display());
    assert!(
        live_kept,
        "{} belongs to a live pid and was removed",
        live.display()
    );
    assert_eq!(
        sleeper_moved_to, own,
        "the leftover task was not moved to this process's cgroup"
    );
}

#[test]
fn paths_cannot_leave_the_scratch_cgroup() {
    let _serial = serial();
    let Some(mut s) = scratch_or_skip() else {
        return;
    };
    s.mkdir("a").unwrap();
    for bad in [
        "..", "/", "/a", "a/..", "a/../..", "./a", "a//b", "a/", ".", "a\0b",
    ] {
        assert!(
            matches!(
                s.write(bad, RuleKind::Deny, "a"),
                Err(V1Error::Sys(SysError::OutsideScratch(_)))
            ),
            "write to {bad:?} was not refused"
        );
        assert!(
            matches!(s.list(bad), Err(V1Error::Sys(SysError::OutsideScratch(_)))),
            "list {bad:?}"
        );
        assert!(
            matches!(s.mkdir(bad), Err(V1Error::Sys(SysError::OutsideScratch(_)))),
            "mkdir {bad:?}"
        );
        assert!(
            matches!(
                s.probe(bad, &[]),
                Err(V1Error::Sys(SysError::OutsideScratch(_)))
            ),
            "probe {bad:?}"
        );
    }
    assert!(matches!(
        s.mkdir(""),
        Err(V1Error::Sys(SysError::OutsideScratch(_)))
    ));
    // A missing cgroup is a driver error, not a kernel answer.
    assert!(s.write("nope", RuleKind::Deny, "a").is_err());
    // Real drivers and impossible numbers are never probed.
    let mem = Device::new(DeviceType::Char, 1, 3);
    assert!(matches!(
        s.probe("a", &[mem]),
        Err(V1Error::Sys(SysError::NotProbeable(
            _,
            NotProbeable::HasDriver
        )))
    ));
    for dev in [
        Device::new(DeviceType::Block, 4096, 0),
        Device::new(DeviceType::Char, 0, 1 << 20),
        Device::new(DeviceType::Block, 0, 0),
    ] {
        assert!(
            matches!(
                s.probe("a", &[dev]),
                Err(V1Error::Sys(SysError::NotProbeable(..)))
            ),
            "{dev}"
        );
    }
}

/// What the kernel answers, open by open: the facts `KernelAnswer` rests on.
#[test]
fn probes_report_enxio_eperm_and_mknod() {
    let _serial = serial();
    let Some(mut s) = scratch_or_skip() else {
        return;
    };
    let c = Device::new(DeviceType::Char, 100, 1);
    let b = Device::new(DeviceType::Block, 100, 1);
    let b0 = Device::new(DeviceType::Block, 0, 1);
    let other = Device::new(DeviceType::Char, 4095, 1048575);
    let devices = [c, b, b0, other];
    s.mkdir("open").unwrap();
    s.mkdir("list").unwrap();
    ok(&s, "list", RuleKind::Deny, "a");
    ok(&s, "list", RuleKind::Allow, "c 100:1 r");
    ok(&s, "list", RuleKind::Allow, "b 100:1 rwm");
    ok(&s, "list", RuleKind::Allow, "b 0:* w");
    let errno = |s: &mut Scratch, path| -> Vec<(String, Option<SysErrno>)> {
        s.probe(path, &devices)
            .unwrap()
            .iter()
            .map(|p| (p.request.to_string(), p.errno))
            .collect()
    };
    let en = Some(SysErrno::ENXIO);
    let ep = Some(SysErrno::EPERM);
    // Allowed opens of driverless majors end in ENXIO, char and block
    // alike; mknod and access(F_OK) succeed.
    let open: Vec<_> = errno(&mut s, "open").into_iter().map(|(_, e)| e).collect();
    assert_eq!(open, [en, en, en, None, None].repeat(devices.len()));
    // Denials are EPERM; r, w, rw, m, F_OK per device.
    let list: Vec<_> = errno(&mut s, "list").into_iter().map(|(_, e)| e).collect();
    let want = [
        [en, ep, ep, ep, None],   // c 100:1 r
        [en, en, en, None, None], // b 100:1 rwm
        [ep, en, ep, ep, None],   // b 0:* w
        [ep, ep, ep, ep, ep],     // not listed: even F_OK is denied
    ]
    .concat();
    assert_eq!(list, want);
    let outcomes: Vec<_> = s
        .probe("list", &[c])
        .unwrap()
        .iter()
        .map(|p| p.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            KernelAnswer::Allowed,
            KernelAnswer::Denied,
            KernelAnswer::Denied,
            KernelAnswer::Denied,
            KernelAnswer::Allowed
        ]
    );
    assert_eq!(PROBED_ACCESSES[4], Access::NONE);
}

/// The kernel's answers to a few writes, including the one the controller
/// never sees: a zero-length write returns 0 and changes nothing.
#[test]
fn write_errnos() {
    let _serial = serial();
    let Some(s) = scratch_or_skip() else { return };
    s.mkdir("a").unwrap();
    s.mkdir("a/b").unwrap();
    assert_eq!(s.write("a", RuleKind::Deny, "").unwrap(), Ok(()));
    assert_eq!(
        s.write("a", RuleKind::Deny, " ").unwrap(),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        s.write("a", RuleKind::Deny, "c 1:3").unwrap(),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        s.write("a", RuleKind::Deny, "a").unwrap(),
        Err(Errno::EINVAL)
    ); // has a child
    assert_eq!(s.write("a/b", RuleKind::Deny, "a").unwrap(), Ok(()));
    assert_eq!(
        s.write("a/b", RuleKind::Allow, "c 1:3 rwmx").unwrap(),
        Ok(())
    );
    assert_eq!(s.list("a/b").unwrap(), "c 1:3 rwm\n");
    assert_eq!(s.write("a", RuleKind::Deny, "c 1:3 w").unwrap(), Ok(()));
    // Propagated into a DENY child: the w bit is removed, rm stays.
    assert_eq!(s.list("a/b").unwrap(), "c 1:3 rm\n");
    assert_eq!(
        s.write("a/b", RuleKind::Allow, "c 1:3 w").unwrap(),
        Err(Errno::EPERM)
    );
    assert_eq!(s.list("a").unwrap(), "a *:* rwm\n");
    assert_eq!(
        s.write("a", RuleKind::Allow, "c 4294967295:1 r").unwrap(),
        Ok(())
    );
    s.mkdir("c").unwrap();
    assert_eq!(s.write("c", RuleKind::Deny, "a").unwrap(), Ok(()));
    assert_eq!(
        s.write("c", RuleKind::Allow, "c 4294967295:1 r").unwrap(),
        Ok(())
    );
    assert_eq!(s.list("c").unwrap(), "c *:1 r\n");
}
