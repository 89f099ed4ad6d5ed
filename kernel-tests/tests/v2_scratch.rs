//! The cgroup2 scratch driver's cleanup, on the real kernel: after a panic
//! and after a run killed by SIGKILL, nothing of it is left: no cgroups,
//! attachments, links, pins or temp dirs. Needs root, cgroup2 and CAP_BPF;
//! skips with one line otherwise.
//!
//! The killed run is this test binary itself, re-executed with
//! `DEVCG_VICTIM` set so that only [`victim_builds_scratch_state`] does
//! anything: it builds scratch state, reports it on stdout and waits to be
//! killed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use devcg_engine::asm::Asm;
use devcg_engine::{DeviceType, Program};
use devcg_kernel::bpf::{self, AttachFlags};
use devcg_kernel::device::Device;
use devcg_kernel::v2::{self, Scratch};

const VICTIM: &str = "DEVCG_VICTIM";

fn ret(v: i32) -> Program {
    let mut a = Asm::new();
    a.ret(v);
    Program::new(a.finish().unwrap())
}

/// Cgroups `a`, `a/b`, `c`; a deny-all attached with BPF_PROG_ATTACH to
/// `a/b` and its fd closed; a pinned link and a live one on `c`; a probe
/// (which mounts the node tmpfs and has had a task inside).
fn build_state(s: &mut Scratch) -> (u32, u32, u32) {
    let _a = s.mkdir("a").unwrap();
    let ab = s.mkdir("a/b").unwrap();
    let c = s.mkdir("c").unwrap();
    let deny = bpf::load(&ret(0), "deny_all").unwrap();
    let deny_id = deny.id().unwrap();
    s.attach(&ab, &deny, AttachFlags::NONE).unwrap();
    drop(deny);
    let allow = bpf::load(&ret(1), "allow_all").unwrap();
    let pinned = s.link(&c, &allow).unwrap();
    s.pin(&pinned, "pinned").unwrap();
    let pinned_id = pinned.id;
    drop(pinned);
    let live = s.link(&c, &allow).unwrap();
    let live_id = live.id;
    std::mem::forget(live); // held until the process dies
    let probes = s
        .probe(&ab, &[Device::new(DeviceType::Char, 100, 1)])
        .unwrap();
    assert!(probes.iter().all(|p| p.outcome.verdict().is_some()));
    (deny_id, pinned_id, live_id)
}

/// Not a test of its own: the body of the killed run.
#[test]
fn victim_builds_scratch_state() {
    if std::env::var_os(VICTIM).is_none() {
        return;
    }
    let mut s = Scratch::new().unwrap().unwrap();
    let (deny, pinned, live) = build_state(&mut s);
    println!(
        "READY {} {} {} {deny} {pinned} {live}",
        s.dir().display(),
        s.pins_dir().unwrap().display(),
        s.nodes_dir().unwrap().display()
    );
    loop {
        thread::sleep(Duration::from_secs(60));
    }
}

fn skip() -> bool {
    match v2::skip_reason() {
        Some(why) => {
            println!("{why}");
            true
        }
        None => false,
    }
}

/// Polls up to five seconds for the kernel to free a program or a link.
fn gone(what: &str, id: u32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let alive = match what {
            "prog" => bpf::prog_by_id(id).is_ok(),
            _ => bpf::link_by_id(id).is_ok(),
        };
        if !alive {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Everything named after `pid` under the cgroup mounts, on bpffs and in the
/// temp dir.
fn leftovers_of(pid: u32) -> Vec<PathBuf> {
    let names = [
        format!("devcg-{pid}-"),
        format!("devcg-probe-{pid}-"),
        format!("devcg-bpf-{pid}-"),
    ];
    let mut roots = vec![
        PathBuf::from("/sys/fs/cgroup"),
        devcg_kernel::owned::temp_dir(),
    ];
    roots.extend(devcg_kernel::mounts::bpffs(&devcg_kernel::mounts::read()));
    let mut out = Vec::new();
    for root in roots {
        walk(&root, 4, &mut |p: &Path| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if names.iter().any(|x| n.starts_with(x.as_str())) {
                out.push(p.to_path_buf());
            }
        });
    }
    out
}

fn walk(dir: &Path, depth: u32, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        f(&e.path());
        if depth > 1 && e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), depth - 1, f);
        }
    }
}

#[test]
fn the_next_run_removes_what_a_killed_run_left() {
    if skip() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "victim_builds_scratch_state",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(VICTIM, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints `test NAME ... ` on the same line first.
            if let Some(at) = line.find("READY ") {
                let _ = tx.send(line[at + 6..].to_string());
                return;
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(30));
    // Killed mid-run, whatever happened: no destructor runs.
    let _ = child.kill();
    let _ = child.wait();
    let ready = ready.expect("the victim never reported its state");
    let f: Vec<&str> = ready.split(' ').collect();
    let (dir, pins, nodes) = (
        PathBuf::from(f[0]),
        PathBuf::from(f[1]),
        PathBuf::from(f[2]),
    );
    let ids: Vec<u32> = f[3..].iter().map(|x| x.parse().unwrap()).collect();
    assert!(dir.join("a/b").exists() && pins.join("pinned").exists() && nodes.exists());
    assert!(!leftovers_of(pid).is_empty());

    let next = Scratch::new().unwrap().unwrap();
    let left = leftovers_of(pid);
    assert!(
        left.is_empty(),
        "left behind by the killed run {pid}: {left:?}"
    );
    // The deny-all lived only through its attachment, the pinned link only
    // through its pin, the live link through the dead process's fd.
    assert!(gone("prog", ids[0]), "program {} still alive", ids[0]);
    assert!(gone("link", ids[1]), "pinned link {} still alive", ids[1]);
    assert!(gone("link", ids[2]), "link {} still alive", ids[2]);
    drop(next);
}

#[test]
fn the_guard_removes_everything_after_a_panic() {
    if skip() {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let joined = thread::spawn(move || {
        let mut s = Scratch::new().unwrap().unwrap();
        let ids = build_state(&mut s);
        tx.send((
            s.dir().to_path_buf(),
            s.pins_dir().unwrap().to_path_buf(),
            s.nodes_dir().unwrap().to_path_buf(),
            ids,
        ))
        .unwrap();
        panic!("deliberate panic with scratch state alive");
    })
    .join();
    assert!(joined.is_err());
    let (dir, pins, nodes, (deny, pinned, live)) = rx.recv().unwrap();
    for p in [&dir, &pins, &nodes] {
        assert!(!p.exists(), "{} left behind after a panic", p.display());
    }
    assert!(gone("prog", deny));
    assert!(gone("link", pinned));
    // The forgotten fd keeps the link object alive, but the drop detached
    // it: its fdinfo shows cgroup id 0.
    let fdinfo = bpf::link_by_id(live).map(|fd| {
        use std::os::fd::AsRawFd;
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap()
    });
    if let Ok(info) = fdinfo {
        assert!(
            info.contains("cgroup_id:\t0\n"),
            "link {live} still attached:\n{info}"
        );
    }
}
