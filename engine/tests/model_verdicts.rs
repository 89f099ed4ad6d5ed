//! Verdicts of the runtime models where they part ways with v1 (and some
//! controls), as each table's comment says: the model's program runs in
//! devcg's emulator, v1's answer comes from the oracle. 1 is allow, 0 deny.
//! The findings behind them: docs/findings.md.

use devcg_emulator::Emulator;
use devcg_engine::strategy::models::{crun, libvirt, lxc, runc, systemd, youki};
use devcg_engine::{Program, Request, Rule, RuleFile, Strategy};
use devcg_oracle::Policy;
use rstest::rstest;

fn rules(text: &str) -> Vec<Rule> {
    RuleFile::parse("test", text).expect("valid rules")
}

/// (program's verdict, v1's) for `c 1:3 rw`-style request text (`-` for
/// no access bits).
fn verdicts(program: &Program, rules: &[Rule], request: &str) -> (u64, u64) {
    let req = Request::parse(request).expect("request");
    let model = Emulator::new(program)
        .and_then(|e| e.run(&req))
        .expect("the emulator runs the model's program");
    let v1 = Policy::of(rules).decide(&req);
    (u64::from(model.is_allow()), u64::from(v1.is_allow()))
}

/// runc with its default devices appended (`defaults`) or without.
#[rstest]
#[case::partial_deny_rw(false, "allow a\ndeny c 1:3 w", "c 1:3 rw", 1, 0)]
#[case::partial_deny_w(false, "allow a\ndeny c 1:3 w", "c 1:3 w", 0, 0)]
#[case::deny_matches_f_ok(false, "allow a\ndeny c 1:3 w", "c 1:3 -", 0, 1)]
#[case::sign_extension(false, "allow a\ndeny c 2147483648:* rwm", "c 2147483648:0 r", 1, 0)]
#[case::deny_all_start(false, "allow c 1:3 r", "c 1:4 r", 0, 1)]
#[case::default_null(true, "deny a", "c 1:3 rw", 1, 0)]
#[case::default_mknod(true, "deny a", "b 8:0 m", 1, 0)]
#[case::defaults_remove_user_deny(true, "allow a\ndeny c 1:3 w", "c 1:3 w", 1, 0)]
fn runc_verdicts(
    #[case] defaults: bool,
    #[case] text: &str,
    #[case] req: &str,
    #[case] model: u64,
    #[case] v1: u64,
) {
    let rules = rules(text);
    let p = if defaults {
        runc::compile_with_defaults(&rules)
    } else {
        runc::Runc.compile(&rules)
    }
    .unwrap();
    assert_eq!(verdicts(&p, &rules, req), (model, v1));
}

/// crun with its default devices, but for access-0 requests: access 0 is a
/// subset of the defaults' `m`, so with them every such request is allowed.
#[rstest]
#[case::default_beats_deny("allow a\ndeny c 1:3 rwm", "c 1:3 r", 1, 0)]
#[case::int_truncation("deny a\nallow c 2147483648:1 r", "c 7:1 r", 1, 0)]
#[case::later_allow_punches_hole("allow a\ndeny c 1:* rwm\nallow c 1:4 rwm", "c 1:4 r", 1, 0)]
#[case::partial_deny("allow a\ndeny c 4:1 w", "c 4:1 rw", 1, 0)]
#[case::deny_matches_f_ok("allow a\ndeny c 4:1 w", "c 4:1 -", 0, 1)]
#[case::typed_all_access(r#"[{"allow":true,"type":"a","access":"r"}]"#, "c 4:1 w", 0, 1)]
#[case::all_without_access(r#"[{"allow":true}]"#, "c 4:1 r", 0, 1)]
#[case::deny_all_start("allow c 4:1 r", "c 4:2 r", 0, 1)]
fn crun_verdicts(#[case] text: &str, #[case] req: &str, #[case] model: u64, #[case] v1: u64) {
    let rules = rules(text);
    let p = if req.ends_with('-') {
        crun::Crun.compile(&rules)
    } else {
        crun::compile_with_defaults(&rules)
    }
    .unwrap();
    assert_eq!(verdicts(&p, &rules, req), (model, v1));
}

/// youki, with its defaults as crun above.
#[rstest]
#[case::default_beats_deny("allow a\ndeny c 1:3 rwm", "c 1:3 r", 1, 0)]
#[case::sign_extension("allow a\ndeny c 2147483648:* rwm", "c 2147483648:0 r", 1, 0)]
#[case::later_allow_punches_hole("allow a\ndeny c 1:* rwm\nallow c 1:4 rwm", "c 1:4 r", 1, 0)]
#[case::partial_deny("allow a\ndeny c 4:1 w", "c 4:1 rw", 1, 0)]
#[case::deny_matches_f_ok("allow a\ndeny c 4:1 w", "c 4:1 -", 0, 1)]
#[case::deny_all_start("allow c 4:1 r", "c 4:2 r", 0, 1)]
fn youki_verdicts(#[case] text: &str, #[case] req: &str, #[case] model: u64, #[case] v1: u64) {
    let rules = rules(text);
    let p = if req.ends_with('-') {
        youki::Youki.compile(&rules)
    } else {
        youki::compile_with_defaults(&rules)
    }
    .unwrap();
    assert_eq!(verdicts(&p, &rules, req), (model, v1));
}

/// lxc: every case but the agreeing ones is an expected finding.
#[rstest]
#[case::manual_agrees(
    "deny a\nallow c *:* m\nallow b *:* m\nallow c 1:3 rwm\n",
    "c 1:3 rw",
    1,
    1
)]
#[case::manual_agrees_deny(
    "deny a\nallow c *:* m\nallow b *:* m\nallow c 1:3 rwm\n",
    "c 1:5 r",
    0,
    0
)]
#[case::allowlist_by_default("allow c 1:3 r\n", "c 1:5 r", 0, 1)]
#[case::lone_deny_denies_all("deny c 1:3 r\n", "c 1:5 r", 0, 1)]
#[case::deny_all_alone_attaches_nothing("deny a\n", "c 1:3 r", 1, 0)]
#[case::deny_ignored_in_allowlist("deny a\nallow c 1:3 rwm\ndeny c 1:3 w\n", "c 1:3 w", 1, 0)]
#[case::subset_deny_misses_rdwr("allow a\ndeny c 1:3 w\n", "c 1:3 rw", 1, 0)]
#[case::subset_deny_hits_f_ok("allow a\ndeny c 1:3 w\n", "c 1:3 -", 0, 1)]
#[case::octal_major("deny a\nallow c 010:1 r\n", "c 8:1 r", 1, 0)]
#[case::no_or_of_access("deny a\nallow c 1:3 r\nallow c 1:3 m\n", "c 1:3 rm", 0, 1)]
fn lxc_verdicts(#[case] text: &str, #[case] request: &str, #[case] model: u64, #[case] v1: u64) {
    let list = rules(text);
    let prog = lxc::Lxc.compile(&list).unwrap();
    assert_eq!(verdicts(&prog, &list, request), (model, v1));
}

#[rstest]
#[case::node_agrees("deny a\nallow c 1:3 rw\n", "c 1:3 rw", 1, 1)]
#[case::node_agrees_deny("deny a\nallow c 1:3 rw\n", "c 1:5 r", 0, 0)]
#[case::major_agrees("deny a\nallow c 136:* rw\n", "c 136:5 w", 1, 1)]
#[case::class_agrees("deny a\nallow b *:* m\n", "b 8:0 m", 1, 1)]
#[case::class_type("deny a\nallow b *:* m\n", "c 8:0 m", 0, 0)]
#[case::no_merge("deny a\nallow c 1:3 r\nallow c 1:3 m\n", "c 1:3 rm", 0, 1)]
#[case::major_out_of_range("deny a\nallow c 4096:1 r\n", "c 4096:1 r", 0, 1)]
fn systemd_verdicts(
    #[case] text: &str,
    #[case] request: &str,
    #[case] model: u64,
    #[case] v1: u64,
) {
    let list = rules(text);
    let prog = systemd::Systemd.compile(&list).unwrap();
    assert_eq!(verdicts(&prog, &list, request), (model, v1));
}

#[rstest]
#[case::node_agrees("deny a\nallow c 1:3 rw\n", "c 1:3 rw", 1, 1)]
#[case::node_agrees_deny("deny a\nallow c 1:3 rw\n", "c 1:5 r", 0, 0)]
#[case::class_agrees("deny a\nallow c *:* r\n", "c 8:0 r", 1, 1)]
#[case::class_type("deny a\nallow c *:* r\n", "b 8:0 r", 0, 0)]
#[case::major_agrees("deny a\nallow c 136:* rw\n", "c 136:4 w", 1, 1)]
#[case::allow_all_agrees("allow a\n", "b 8:0 rwm", 1, 1)]
#[case::lone_allow_denies_rest("allow c 1:3 r\n", "c 1:5 r", 0, 1)]
#[case::lone_deny_denies_all("deny c 1:3 r\n", "c 1:5 r", 0, 1)]
#[case::deny_all_after_allow_all("allow a\ndeny a\n", "c 1:3 r", 1, 0)]
#[case::no_deny_list("allow a\ndeny c 1:3 r\n", "c 1:3 r", 1, 0)]
#[case::type_collision("deny a\nallow c 1:3 r\nallow b 1:3 w\n", "c 1:3 r", 0, 1)]
#[case::overwrite("deny a\nallow c 1:3 r\nallow c 1:3 w\n", "c 1:3 r", 0, 1)]
#[case::deny_clears_type("deny a\nallow c 1:3 rw\ndeny c 1:3 w\n", "c 1:3 r", 0, 1)]
fn libvirt_verdicts(
    #[case] text: &str,
    #[case] request: &str,
    #[case] model: u64,
    #[case] v1: u64,
) {
    let list = rules(text);
    let prog = libvirt::Libvirt.compile(&list).unwrap();
    assert_eq!(verdicts(&prog, &list, request), (model, v1));
}
