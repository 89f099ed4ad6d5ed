//! End to end through the host column (no VM): the generated script runs a
//! stand-in devcg, the results come back through the results directory and
//! are compared with expected files. A deliberately wrong expectation must
//! fail the run; a missing subcommand or a hang must never pass.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devcg_vm::{CheckStatus, Options, RunOutcome};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// `devcg` is the body of a shell script standing in for the binary.
    fn new(devcg: &str, kernels_toml: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("devcg");
        std::fs::write(&bin, format!("#!/bin/sh\n{devcg}\n")).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("kernels.toml"), kernels_toml).unwrap();
        std::fs::create_dir_all(dir.path().join("expected")).unwrap();
        Fixture { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn expect(&self, kernel: &str, json: &str) {
        std::fs::write(self.path("expected").join(format!("{kernel}.json")), json).unwrap();
    }

    fn options(&self) -> Options {
        Options {
            config: Some(self.path("kernels.toml")),
            expected_dir: Some(self.path("expected")),
            results_dir: Some(self.path("results")),
            cache_dir: Some(self.path("cache")),
            devcg: Some(self.path("devcg")),
            no_install: true,
            ..Default::default()
        }
    }
}

// No v1 step: it would mount a v1 devices hierarchy on a pure-v2 host.
const HOST_ONLY: &str = "[[kernel]]\nname = \"host\"\nhost = true\nv1_checks = false\n";

/// Answers like the real suite: three checks, and a clean differential.
const GOOD_DEVCG: &str = r#"case "$1" in
kernel-check) echo '[{"name":"open-denied","expected":"EPERM","observed":"EPERM","status":"pass"},{"name":"userns-mknod","expected":"EPERM","observed":"EPERM","status":"pass"},{"name":"set-retval","status":"skip","reason":"needs 5.18"}]'; exit 0;;
verify) echo "strategy linear: 0 divergences"; exit 0;;
*) echo "error: unrecognized subcommand '$1'" >&2; exit 2;;
esac"#;

const RIGHT: &str = r#"{"kernel": "host", "checks": {
  "open-denied": "pass", "userns-mknod": "pass",
  "set-retval": {"status": "skip", "why": "stand-in"},
  "kernel-check": "pass", "verify-kernel": "pass"}}"#;

#[test]
fn right_expectations_pass_and_a_wrong_one_fails() {
    let f = Fixture::new(GOOD_DEVCG, HOST_ONLY);
    f.expect("host", RIGHT);
    let m = devcg_vm::run(&f.options()).unwrap();
    assert!(m.ok, "{m}");
    assert_eq!(m.exit_code(), 0);
    let host = &m.kernels[0];
    assert_eq!(host.outcome, RunOutcome::Ran);
    assert_eq!(host.release.as_deref(), Some(uname_r().as_str()));
    assert_eq!(host.check("set-retval").unwrap().status, CheckStatus::Skip);
    assert!(f.path("results/matrix.json").is_file());

    // The same run against a deliberately wrong expectation.
    f.expect(
        "host",
        &RIGHT.replace(r#""userns-mknod": "pass""#, r#""userns-mknod": "fail""#),
    );
    let m = devcg_vm::run(&f.options()).unwrap();
    assert!(!m.ok);
    assert_eq!(m.exit_code(), 1);
    assert_eq!(m.differences.len(), 1, "{m}");
    assert_eq!(m.differences[0].check.as_deref(), Some("userns-mknod"));
    let json = m.to_json();
    assert_eq!(json["differences"][0]["expected"], "fail");
    assert_eq!(json["differences"][0]["observed"], "pass");
    assert_eq!(json["kernels"][0]["outcome"], "ran");

    // And against an expectation naming a check that never reports.
    f.expect(
        "host",
        &RIGHT.replace(r#""open-denied": "pass""#, r#""open-gone": "pass""#),
    );
    let m = devcg_vm::run(&f.options()).unwrap();
    assert_eq!(m.exit_code(), 1);
    assert!(m.to_string().contains("open-gone"), "{m}");
}

#[test]
fn the_binary_exits_non_zero_on_a_regression() {
    let f = Fixture::new(GOOD_DEVCG, HOST_ONLY);
    f.expect(
        "host",
        &RIGHT.replace(r#""verify-kernel": "pass""#, r#""verify-kernel": "fail""#),
    );
    let o = f.options();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devcg-vm"))
        .arg("--config")
        .arg(o.config.unwrap())
        .arg("--expected-dir")
        .arg(o.expected_dir.unwrap())
        .arg("--results-dir")
        .arg(o.results_dir.unwrap())
        .arg("--cache-dir")
        .arg(o.cache_dir.unwrap())
        .arg("--devcg")
        .arg(o.devcg.unwrap())
        .args(["--no-install", "--json", "--junit"])
        .arg(f.path("junit.xml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["differences"][0]["check"], "verify-kernel");
    // The JUnit report beside it fails that one case, with both values.
    let xml = std::fs::read_to_string(f.path("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failed: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|n| {
            let case = n.parent().unwrap();
            (case.attribute("name").unwrap(), n.text().unwrap_or(""))
        })
        .collect();
    assert_eq!(failed.len(), 1, "{xml}");
    assert_eq!(failed[0].0, "verify-kernel");
    assert!(
        failed[0].1.starts_with("expected: fail\nobserved: pass\n"),
        "{xml}"
    );
    assert_eq!(doc.root_element().attribute("failures"), Some("1"));
}

#[test]
fn a_missing_subcommand_is_reported_never_passed() {
    let f = Fixture::new(
        r#"echo "error: unrecognized subcommand '$1'" >&2; exit 2"#,
        HOST_ONLY,
    );
    f.expect("host", RIGHT);
    let m = devcg_vm::run(&f.options()).unwrap();
    assert_eq!(m.exit_code(), 1);
    let host = &m.kernels[0];
    let kc = host.check("kernel-check").unwrap();
    assert_eq!(kc.status, CheckStatus::Error);
    assert!(kc
        .detail
        .as_ref()
        .unwrap()
        .contains("unrecognized subcommand"));
    // Nothing passes: every row comes from devcg.
    assert!(host.checks.iter().all(|c| c.status != CheckStatus::Pass));
    assert_eq!(
        host.check("verify-kernel").unwrap().status,
        CheckStatus::Error
    );
}

#[test]
fn a_hanging_step_times_out_and_the_run_goes_on() {
    let f = Fixture::new(
        "case \"$1\" in kernel-check) sleep 300;; *) exit 0;; esac",
        &format!("{HOST_ONLY}step_timeout_secs = 2\n"),
    );
    let t = Instant::now();
    let m = devcg_vm::run(&f.options()).unwrap();
    assert!(t.elapsed() < Duration::from_secs(60));
    let host = &m.kernels[0];
    assert_eq!(host.outcome, RunOutcome::Ran);
    let kc = host.check("kernel-check").unwrap();
    assert_eq!(kc.status, CheckStatus::Error);
    assert!(kc.detail.as_ref().unwrap().contains("timed out"), "{kc:?}");
    assert_eq!(
        host.check("verify-kernel").unwrap().status,
        CheckStatus::Pass
    );
}

#[test]
fn a_hanging_run_is_killed_and_reported() {
    let f = Fixture::new("sleep 300", &format!("{HOST_ONLY}run_timeout_secs = 2\n"));
    let t = Instant::now();
    let m = devcg_vm::run(&f.options()).unwrap();
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(matches!(m.kernels[0].outcome, RunOutcome::RunTimeout(_)));
    assert_eq!(m.exit_code(), 1);
    assert!(m.to_string().contains("run-timeout"));
}

#[test]
fn unknown_kernels_and_a_missing_binary_are_runner_errors() {
    let f = Fixture::new(GOOD_DEVCG, HOST_ONLY);
    let mut o = f.options();
    o.kernels = vec!["nope".into()];
    assert!(matches!(
        devcg_vm::run(&o),
        Err(devcg_vm::VmError::UnknownKernel { .. })
    ));
    let mut o = f.options();
    o.devcg = Some(Path::new("/nonexistent/devcg").to_owned());
    assert!(matches!(
        devcg_vm::run(&o),
        Err(devcg_vm::VmError::MissingBinary(_))
    ));
}

#[test]
fn the_shipped_expected_files_parse_and_name_known_kernels() {
    let root = devcg_vm::workspace_root();
    let config = devcg_vm::Config::load(&root.join("vm/kernels.toml")).unwrap();
    for entry in std::fs::read_dir(root.join("vm/expected")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        assert!(
            config.kernels.iter().any(|k| k.name == stem),
            "{} names no kernel of vm/kernels.toml",
            path.display()
        );
        let e = devcg_vm::Expected::load(&root.join("vm/expected"), &stem)
            .unwrap()
            .unwrap()
            .1;
        assert_eq!(e.kernel, stem, "{}", path.display());
    }
}

/// The shipped expected files name every check of `devcg kernel-check`
/// and no row that no step makes: the user-namespace mount checks, once
/// this crate's own guest step, are kernel-check's on every kernel now.
#[test]
fn the_shipped_expected_files_name_every_kernel_check() {
    use devcg_vm::report::{ROW_KERNEL_CHECK, ROW_VERIFY, V1_SUFFIX};
    let names: Vec<&str> = devcg_kernel::semantics::checks()
        .iter()
        .map(|c| c.name)
        .collect();
    assert!(names.contains(&"nodes_on_user_namespace_mount_give_eacces"));
    assert!(names.contains(&"mknod_on_user_namespace_mount_is_eperm"));
    let root = devcg_vm::workspace_root();
    let config = devcg_vm::Config::load(&root.join("vm/kernels.toml")).unwrap();
    let mut seen = 0;
    for k in &config.kernels {
        let Some((path, e)) = devcg_vm::Expected::load(&root.join("vm/expected"), &k.name).unwrap()
        else {
            continue;
        };
        seen += 1;
        for n in &names {
            assert!(
                e.checks.contains_key(*n),
                "{}: no entry for kernel-check's {n}",
                path.display()
            );
        }
        for key in e.checks.keys() {
            let v1_row = key.strip_suffix(V1_SUFFIX).is_some_and(|base| {
                base == ROW_KERNEL_CHECK || (base.contains("v1_") && names.contains(&base))
            });
            let known = names.contains(&key.as_str())
                || key == ROW_KERNEL_CHECK
                || key == ROW_VERIFY
                || key.starts_with(&format!("{ROW_VERIFY}/"))
                || v1_row;
            assert!(known, "{}: no step reports {key}", path.display());
        }
    }
    assert!(seen >= 1);
}

fn uname_r() -> String {
    let o = std::process::Command::new("uname")
        .arg("-r")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
