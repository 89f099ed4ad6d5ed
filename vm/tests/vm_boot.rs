//! The VM path for real, with a stand-in devcg: a guest that answers, a
//! boot that takes too long, a guest that panics, a guest that hangs. Each
//! boots Debian's 6.1 kernel under virtme-ng (about 25 s under TCG), so
//! they are ignored by default:
//!
//! ```sh
//! cargo test --release -p devcg-vm --test vm_boot -- --ignored --nocapture
//! ```
//!
//! They install what they need (apt-get, pip) like the runner, and share
//! the runner's cache (target/vm-cache, or $DEVCG_VM_CACHE).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use devcg_vm::{CheckStatus, Options, RunOutcome};

fn scenario(
    name: &str,
    devcg: &str,
    extra: &str,
    expected: Option<&str>,
) -> (devcg_vm::Matrix, tempfile::TempDir) {
    // Under target/, as the runner's own results.
    let base = devcg_vm::workspace_root().join("target/vm-test-tmp");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("devcg-vm-test")
        .tempdir_in(&base)
        .unwrap();
    // In a directory of its own: the runner shares the binary's directory
    // read-only (--rodir), which over the results would make them
    // read-only in the guest.
    let bin = dir.path().join("bin/devcg");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::write(&bin, format!("#!/bin/sh\n{devcg}\n")).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("kernels.toml"),
        format!("[[kernel]]\nname = \"{name}\"\npackage = \"linux-image-6.1.0-*-amd64\"\n{extra}"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("expected")).unwrap();
    if let Some(e) = expected {
        std::fs::write(dir.path().join("expected").join(format!("{name}.json")), e).unwrap();
    }
    let opts = Options {
        config: Some(dir.path().join("kernels.toml")),
        expected_dir: Some(dir.path().join("expected")),
        results_dir: Some(dir.path().join("results")),
        devcg: Some(bin),
        ..Default::default()
    };
    let t = Instant::now();
    let m = devcg_vm::run(&opts).expect("runner error");
    eprintln!("--- {name} ({:.1}s)\n{m}", t.elapsed().as_secs_f64());
    assert_no_qemu_named(&format!("devcg-{name}"));
    (m, dir)
}

/// No process is left whose command line names this guest.
fn assert_no_qemu_named(name: &str) {
    std::thread::sleep(Duration::from_millis(300));
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline: PathBuf = e.path().join("cmdline");
        if let Ok(c) = std::fs::read(&cmdline) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains("qemu-system") && c.contains(&format!("-name {name} ")) {
                let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                let zombie = stat
                    .rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
                assert!(zombie, "qemu for {name} survived: {c}");
            }
        }
    }
}

#[test]
#[ignore = "boots VMs: about 2-3 minutes under TCG"]
fn vm_failure_paths_are_reported_never_passed() {
    // 1. A guest that answers: the stand-in's JSON comes back from the guest.
    let (m, _d) = scenario(
        "answers",
        r#"case "$1" in
kernel-check) printf '[{"name":"uname","observed":"%s","status":"pass"}]' "$(uname -r)";;
verify) exit 0;;
esac"#,
        "",
        Some(
            r#"{"kernel": "answers", "checks": {"uname": "pass", "kernel-check": "pass", "verify-kernel": "pass"}}"#,
        ),
    );
    assert_eq!(m.exit_code(), 0, "{m}");
    let k = &m.kernels[0];
    assert_eq!(k.outcome, RunOutcome::Ran);
    assert!(k.release.as_deref().unwrap().starts_with("6.1.0-"));
    let uname = k.check("uname").unwrap();
    assert_eq!(uname.status, CheckStatus::Pass);
    assert!(
        uname.detail.as_deref().unwrap().contains("6.1.0-"),
        "{uname:?}"
    );
    assert!(k.boot_secs.is_some());

    // 2. A boot that takes longer than allowed.
    let (m, _d) = scenario("slowboot", "exit 0", "boot_timeout_secs = 4\n", None);
    let k = &m.kernels[0];
    assert!(
        matches!(k.outcome, RunOutcome::BootTimeout(_)),
        "{:?}",
        k.outcome
    );
    assert!(!k.console_tail.is_empty());
    assert_eq!(m.exit_code(), 1);

    // 3. A guest that panics.
    let (m, _d) = scenario("panics", "echo c > /proc/sysrq-trigger; sleep 60", "", None);
    let k = &m.kernels[0];
    assert!(matches!(k.outcome, RunOutcome::Panic(_)), "{:?}", k.outcome);
    assert!(k.console_tail.iter().any(|l| l.contains("Kernel panic")));
    assert_eq!(m.exit_code(), 1);

    // 4. A guest that hangs past the run timeout (the step timeout is longer).
    let (m, _d) = scenario(
        "hangs",
        "sleep 600",
        "run_timeout_secs = 75\nstep_timeout_secs = 900\n",
        None,
    );
    let k = &m.kernels[0];
    assert!(
        matches!(k.outcome, RunOutcome::RunTimeout(_)),
        "{:?}",
        k.outcome
    );
    assert!(k.total_secs < 100.0);
    assert_eq!(m.exit_code(), 1);
}
