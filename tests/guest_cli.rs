//! The full-distribution guest end to end (`devcg guest`, and `devcg
//! runtime systemd|libvirt`, which run inside it): the image is built from
//! Debian packages on first use and cached, the guest boots under qemu and
//! runs the job. Needs root (qemu, mmdebstrap); skips with one line
//! otherwise.

use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// One guest at a time: two TCG guests on a small machine only slow each
/// other down, and the leftover checks below see every job's directory.
static GUEST: Mutex<()> = Mutex::new(());

fn one_guest() -> MutexGuard<'static, ()> {
    GUEST.lock().unwrap_or_else(|e| e.into_inner())
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the guest needs root (qemu, mmdebstrap)");
        return false;
    }
    true
}

/// devcg with `args`; `None` (after one line) when the guest's host tools
/// could not be installed here, as the kernel matrix skips then too.
fn devcg(args: &[&str]) -> Option<Output> {
    let o = Command::new(env!("CARGO_BIN_EXE_devcg"))
        .args(args)
        .output()
        .expect("run devcg");
    let err = String::from_utf8_lossy(&o.stderr);
    if let Some(line) = err
        .lines()
        .find(|l| l.contains("cannot install what the VM runner needs"))
    {
        eprintln!("SKIPPED: {line}");
        return None;
    }
    Some(o)
}

/// Pids of guest qemus running now (another run's may be among them).
fn guest_qemus() -> Vec<String> {
    let o = Command::new("pgrep")
        .args(["-f", "qemu-system-x86_64.*mount_tag=devcg"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Job directories in the temp dir (another run's may be among them).
fn job_dirs() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(devcg_vm::distro::JOB_PREFIX))
        .collect()
}

#[test]
fn a_command_runs_as_root_under_systemd_and_its_status_comes_back() {
    if !root() {
        return;
    }
    let _one = one_guest();
    let dirs = job_dirs();
    let Some(o) = devcg(&[
        "guest",
        "--",
        "echo pid1=$(cat /proc/1/comm) uid=$(id -u); /mnt/devcg/devcg --version; stat -fc %T /sys/fs/cgroup; echo oops >&2; exit 3",
    ]) else {
        return;
    };
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{out}{err}");
    assert!(out.contains("pid1=systemd uid=0"), "{out}{err}");
    assert!(
        out.contains("devcg "),
        "the host's devcg runs in the guest: {out}"
    );
    assert!(out.contains("cgroup2fs"), "a pure cgroup2 system: {out}");
    assert!(err.contains("oops"), "{err}");
    assert!(
        err.contains("systemd 252") && err.contains("libvirt-daemon 9.0.0"),
        "the image's versions are named: {err}"
    );
    let new_dirs: Vec<String> = job_dirs()
        .into_iter()
        .filter(|d| !dirs.contains(d))
        .collect();
    assert!(new_dirs.is_empty(), "{new_dirs:?}");
}

#[test]
fn a_guest_past_its_deadline_is_killed_and_nothing_is_left() {
    if !root() {
        return;
    }
    let _one = one_guest();
    let before = guest_qemus();
    let dirs = job_dirs();
    let Some(o) = devcg(&["guest", "--guest-timeout", "5", "--", "sleep", "600"]) else {
        return;
    };
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("still running after 5 s"), "{err}");
    let left: Vec<String> = guest_qemus()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(left.is_empty(), "qemu left running: {left:?}");
    let new_dirs: Vec<String> = job_dirs()
        .into_iter()
        .filter(|d| !dirs.contains(d))
        .collect();
    assert!(new_dirs.is_empty(), "{new_dirs:?}");
}

/// `devcg runtime NAME --cases 20 --seed 7 --json`, booted in the guest
/// (systemd: 20 units; libvirt: 20 domains, a case per step).
fn daemon_report(name: &str) -> Option<(Option<i32>, serde_json::Value)> {
    let o = devcg(&["runtime", name, "--cases", "20", "--seed", "7", "--json"])?;
    let report = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    Some((o.status.code(), report))
}

/// `field` of each element of the array `list` of `report`.
fn strings<'a>(report: &'a serde_json::Value, list: &str, field: &str) -> Vec<&'a str> {
    report[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[field].as_str().unwrap())
        .collect()
}

/// Every case judged on the real daemon: the program decides as devcg's
/// model, the kernel answers sampled requests as the program decides and
/// lets every security class through; every fact holds.
fn assert_daemon_report(report: &serde_json::Value) {
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "{report}");
    assert!(
        cases.iter().filter(|c| c.get("refused").is_none()).count() >= 15,
        "most configs run: {report}"
    );
    let mut asked = 0;
    for c in cases {
        assert_eq!(c["versus_model"], serde_json::json!([]), "{c}");
        assert_eq!(c["kernel"]["asked"], c["kernel"]["agree"], "{c}");
        asked += c["kernel"]["asked"].as_u64().unwrap();
        for r in c["reality"].as_array().unwrap() {
            assert!(r["request"].is_null() || r["confirmed"] == true, "{r}");
        }
    }
    assert!(asked >= 100, "the kernel was asked from inside: {asked}");
    for f in report["facts"].as_array().unwrap() {
        assert_eq!(f["holds"], true, "{f}");
    }
    for r in report["reproducers"].as_array().unwrap() {
        assert_eq!(r["kernel_agrees"], true, "{r}");
    }
    assert_eq!(report["pass"], true);
}

/// systemd 252 as PID 1: random DevicePolicy=/DeviceAllow= units, the
/// findings S1 and S2 confirmed, and the program lifecycle (re-exec,
/// stop, 100 start/stop cycles).
#[test]
fn systemd_units_decide_as_devcgs_model_on_the_real_daemon() {
    if !root() {
        return;
    }
    let _one = one_guest();
    let Some((code, report)) = daemon_report("systemd") else {
        return;
    };
    assert!(report["version"]
        .as_str()
        .unwrap()
        .starts_with("systemd 252"));
    assert_daemon_report(&report);
    assert_eq!(code, Some(0), "{report}");
    let facts = strings(&report, "facts", "name");
    assert_eq!(facts.len(), 3, "{facts:?}");
    assert!(
        facts.iter().any(|f| f.contains("daemon-reexec")),
        "{facts:?}"
    );
    assert!(
        facts.iter().any(|f| f.contains("100 start/stop")),
        "{facts:?}"
    );
    let statuses = strings(&report, "reproducers", "status");
    assert!(
        statuses.len() >= 2 && statuses.iter().all(|s| s.starts_with("confirmed")),
        "{statuses:?}"
    );
}

/// libvirt 9.0.0's LXC driver: random domains, hot-plug and unplug, every
/// step decided as devcg's model; V4 confirmed; the facts (V7 among them)
/// as observed.
#[test]
fn libvirt_domains_decide_as_devcgs_model_on_the_real_daemon() {
    if !root() {
        return;
    }
    let _one = one_guest();
    let Some((code, report)) = daemon_report("libvirt") else {
        return;
    };
    assert!(
        report["version"].as_str().unwrap().contains("9.0.0"),
        "{}",
        report["version"]
    );
    // 20 domains, each a start and up to four hot-plug steps.
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "{}", cases.len());
    let steps: Vec<&str> = cases
        .iter()
        .map(|c| c["rules"][0].as_str().unwrap())
        .collect();
    assert!(steps.iter().any(|s| s.contains(": attach ")), "{steps:?}");
    assert!(steps.iter().any(|s| s.contains(": detach ")), "{steps:?}");
    assert_daemon_report(&report);
    assert_eq!(code, Some(0), "{report}");
    let facts = strings(&report, "facts", "name");
    assert!(facts.iter().any(|f| f.starts_with("V7")), "{facts:?}");
    let confirmed: Vec<&str> = report["reproducers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "confirmed")
        .map(|r| r["class"].as_str().unwrap())
        .collect();
    assert_eq!(confirmed, ["V4", "V4"], "{report}");
}
