//! `devcg runtime` end to end with the real runc and crun (Debian's,
//! installed by scripts/test.sh): random configs, each container's program
//! read back and decided against devcg's model of the runtime, its
//! security classes asked of the kernel inside the live container; then
//! every reproducer of docs/findings.md through the binary. Needs root,
//! cgroup2 and the runtime; skips with one line otherwise.

use std::process::Command;

use devcg_kernel::runtime::{self, Runtime};

fn run(runtime: &str) -> (Option<i32>, serde_json::Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_devcg"))
        .args(["runtime", runtime, "--cases", "50", "--seed", "7", "--json"])
        .output()
        .expect("run devcg");
    let stderr = String::from_utf8_lossy(&o.stderr);
    if stderr.contains("built without youki") {
        return (o.status.code(), serde_json::Value::Null);
    }
    let report = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), report)
}

/// The kernel let every security class through that it was asked about,
/// and every reproducer shows its finding (or the runtime's defaults mask
/// it), the kernel answering as the real program.
fn assert_confirmed_live(report: &serde_json::Value) {
    let asked: Vec<&serde_json::Value> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["reality"].as_array().unwrap())
        .filter(|r| !r["request"].is_null())
        .collect();
    assert!(!asked.is_empty(), "{report}");
    for r in asked {
        assert_eq!(r["confirmed"], true, "{r}");
    }
    let reproducers = report["reproducers"].as_array().unwrap();
    assert!(reproducers.len() >= 10, "{report}");
    for r in reproducers {
        assert_eq!(r["kernel_agrees"], true, "{r}");
        let status = r["status"].as_str().unwrap();
        assert!(
            status.starts_with("confirmed") || status.starts_with("masked"),
            "{r}"
        );
    }
    assert!(reproducers
        .iter()
        .any(|r| r["kernel"] == "allow" && r["status"] == "confirmed"));
}

#[test]
fn runc_programs_decide_as_devcgs_model() {
    if let Some(why) = runtime::skip_reason(Runtime::Runc) {
        println!("{why}");
        return;
    }
    let (code, report) = run("runc");
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 50);
    assert!(cases.iter().any(|c| c.get("refused").is_none()), "{report}");
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["pass"], true);
    assert_confirmed_live(&report);
}

/// devcg picks its model of the installed crun's version (Debian's 1.8.1
/// lacks the upstream default c 10:200): the real programs decide as it.
#[test]
fn crun_programs_decide_as_devcgs_model_of_that_version() {
    if let Some(why) = runtime::skip_reason(Runtime::Crun) {
        println!("{why}");
        return;
    }
    let (code, report) = run("crun");
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.iter().any(|c| c.get("refused").is_none()), "{report}");
    for c in cases {
        assert_eq!(c["versus_model"], serde_json::json!([]), "{c}");
    }
    assert_eq!(code, Some(0), "{report}");
    assert_confirmed_live(&report);
}

#[test]
fn youkis_own_generator_decides_as_devcgs_model() {
    if let Some(why) = devcg_kernel::v2::skip_reason() {
        println!("{why}");
        return;
    }
    let (code, report) = run("youki");
    if report.is_null() {
        println!("devcg was built without `--features youki`: youki's generator is not in it");
        return;
    }
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 50);
    for c in cases {
        assert_eq!(c["versus_model"], serde_json::json!([]), "{c}");
    }
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["pass"], true);
    assert_confirmed_live(&report);
}

/// Debian's lxc 5.0.2 from an LXC config of devcg's own: its programs
/// decide as devcg's model (which follows LXC in dropping what its parser
/// refuses, found by this run), every LXC finding shows on the kernel.
#[test]
fn lxc_programs_decide_as_devcgs_model() {
    if let Some(why) = runtime::skip_reason(Runtime::Lxc) {
        println!("{why}");
        return;
    }
    let (code, report) = run("lxc");
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 50);
    for c in cases {
        assert_eq!(c["versus_model"], serde_json::json!([]), "{c}");
    }
    assert_eq!(code, Some(0), "{report}");
    assert_confirmed_live(&report);
    for r in report["reproducers"].as_array().unwrap() {
        assert!(
            r["status"].as_str().unwrap().starts_with("confirmed"),
            "{r}"
        );
    }
}
