//! The shell entry points leave nothing behind: `scripts/vm.sh` keeps its
//! negative control's files under target/, and a run leaves no temporary
//! file or directory. Needs root (the host column runs the real suite);
//! skips with one line otherwise.

use std::path::Path;
use std::process::Command;

fn root_or_skip(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: {what} needs root");
        return false;
    }
    true
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn the_negative_control_passes_and_leaves_no_temporary_file() {
    if !root_or_skip("the negative control (it runs the host column)") {
        return;
    }
    // A TMPDIR of its own, inside target/, so that anything created there
    // is this run's.
    let tmp = workspace().join("target/scripts-test-tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let out = Command::new("bash")
        .arg(workspace().join("scripts/vm.sh"))
        .arg("--negative-control")
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("vm: negative control ok"), "{stdout}");
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    assert!(workspace()
        .join("target/vm-results-negative/expected/host.json")
        .is_file());
}

#[test]
fn the_scripts_make_no_temporary_directory() {
    // Every script the test command runs: none may call mktemp (a trap
    // before an `exec` never runs) or write into /tmp.
    for script in ["test.sh", "vm.sh", "bench.sh", "stress.sh"] {
        let path = workspace().join("scripts").join(script);
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or("");
            assert!(
                !code.contains("mktemp") && !code.contains("/tmp"),
                "{}:{}: {line}",
                path.display(),
                n + 1
            );
        }
    }
}
