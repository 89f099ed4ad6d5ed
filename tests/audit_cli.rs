//! `devcg audit` end to end on a scratch cgroup: the policy printed, the
//! printed rules round-trip through `--expect`, injected differences are
//! found and exit 1, an OCI config is accepted as the expectation, and bad
//! targets exit 2 with a one-line reason. Needs root, cgroup2 and CAP_BPF;
//! skips with one line otherwise.

use std::process::{Command, Output};

use devcg_engine::{strategy, RuleFile};
use devcg_kernel::bpf::{self, AttachFlags};
use devcg_kernel::v2::{self, Scratch};

fn devcg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_devcg"))
        .args(args)
        .output()
        .expect("run devcg")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const RULES: &str = "deny a\nallow c 1:3 rwm\nallow c 1:5 rw\nallow b 8:* r\n";

#[test]
fn audit_prints_the_policy_round_trips_and_finds_differences() {
    if let Some(why) = v2::skip_reason() {
        println!("{why}");
        return;
    }
    let scratch = Scratch::new().unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("expected.rules");
    std::fs::write(&rules_file, RULES).unwrap();
    let rules = RuleFile::parse("expected.rules", RULES).unwrap();
    for name in ["tree", "map", "runc"] {
        let program = strategy::by_name(name).unwrap().compile(&rules).unwrap();
        let loaded = bpf::load(&program, "devcg_audit_cli").unwrap();
        let cg = scratch.mkdir(&format!("cli-{name}")).unwrap();
        scratch.attach(&cg, &loaded, AttachFlags::NONE).unwrap();
        let path = cg.path().to_str().unwrap().to_string();

        let plain = devcg(&["audit", &path]);
        let out = text(&plain);
        assert_eq!(plain.status.code(), Some(0), "{name}: {out}");
        assert!(
            out.contains("attached at") && out.contains("directly"),
            "{out}"
        );
        assert!(out.contains("c 1:3"), "{name}: {out}");
        // The printed rules, fed back as the expectation: no difference.
        let printed: String = out
            .split("as v1 rules:\n")
            .nth(1)
            .expect("rules printed")
            .lines()
            .take_while(|l| l.starts_with("  "))
            .map(|l| format!("{}\n", l.trim()))
            .collect();
        let printed_file = dir.path().join(format!("{name}.rules"));
        std::fs::write(&printed_file, &printed).unwrap();
        let again = devcg(&["audit", &path, "--expect", printed_file.to_str().unwrap()]);
        assert_eq!(again.status.code(), Some(0), "{name}: {}", text(&again));
        assert!(text(&again).contains("as expected"), "{}", text(&again));

        let expected = devcg(&["audit", &path, "--expect", rules_file.to_str().unwrap()]);
        if strategy::by_name(name).unwrap().is_own() {
            assert_eq!(
                expected.status.code(),
                Some(0),
                "{name}: {}",
                text(&expected)
            );
        }
        // An injected difference: the expectation drops c 1:5.
        let narrower = dir.path().join("narrower.rules");
        std::fs::write(&narrower, "deny a\nallow c 1:3 rwm\nallow b 8:* r\n").unwrap();
        let diff = devcg(&["audit", &path, "--expect", narrower.to_str().unwrap()]);
        let out = text(&diff);
        assert_eq!(diff.status.code(), Some(1), "{name}: {out}");
        assert!(out.contains("security"), "{out}");
        assert!(
            out.contains("c 1:5 rw: expected deny, enforced allow"),
            "{name}: {out}"
        );

        let json = devcg(&["audit", &path, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
        assert_eq!(v["programs"].as_array().unwrap().len(), 1);
        assert!(v["audit"]["rules"].is_array(), "{v}");
        scratch.rmdir(cg).unwrap();
    }
}

#[test]
fn an_oci_config_is_an_expectation_too() {
    if let Some(why) = v2::skip_reason() {
        println!("{why}");
        return;
    }
    let scratch = Scratch::new().unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"linux":{"resources":{"devices":[
            {"allow":false,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}
        ]}}}"#,
    )
    .unwrap();
    let rules = RuleFile::read(&config).unwrap();
    let program = strategy::by_name("tree").unwrap().compile(&rules).unwrap();
    let loaded = bpf::load(&program, "devcg_audit_oci").unwrap();
    let cg = scratch.mkdir("oci").unwrap();
    scratch.attach(&cg, &loaded, AttachFlags::NONE).unwrap();
    let o = devcg(&[
        "audit",
        cg.path().to_str().unwrap(),
        "--expect",
        config.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    scratch.rmdir(cg).unwrap();
}

#[test]
fn bad_targets_exit_2_with_the_reason() {
    let o = devcg(&["audit", "/no/such/cgroup"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/no/such/cgroup: no such file or directory"),
        "{err}"
    );
    let o = devcg(&["audit", "/proc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a cgroup"));
}

#[test]
fn without_privileges_the_audit_says_what_is_missing() {
    if let Some(why) = v2::skip_reason() {
        println!("{why}");
        return;
    }
    if std::process::Command::new("setpriv")
        .arg("--help")
        .output()
        .is_err()
    {
        println!("setpriv (util-linux) is not installed: cannot drop privileges");
        return;
    }
    let scratch = Scratch::new().unwrap().unwrap();
    let cg = scratch.mkdir("unpriv").unwrap();
    let program = strategy::by_name("tree")
        .unwrap()
        .compile(&RuleFile::parse("r", RULES).unwrap())
        .unwrap();
    let loaded = bpf::load(&program, "devcg_unpriv").unwrap();
    scratch.attach(&cg, &loaded, AttachFlags::NONE).unwrap();
    // As nobody, with no capabilities: BPF_PROG_QUERY is refused.
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_devcg"))
        .args(["audit", cg.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("failed to execute") {
        // The checkout is not reachable for nobody (under /root, say).
        println!("nobody cannot run the devcg binary here: {}", err.trim());
        scratch.rmdir(cg).unwrap();
        return;
    }
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(err.contains("needs CAP_SYS_ADMIN or CAP_BPF"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    scratch.rmdir(cg).unwrap();
}
