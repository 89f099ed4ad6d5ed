//! Regression tests for docs/findings.md: every divergence class found in the
//! models of other runtimes' device-filter generators, one minimal
//! reproducer each (some classes have two, one per direction).
//!
//! Each case pins three things: the oracle's v1 verdict, the model's
//! (different) verdict, and that every one of devcg's own strategies agrees
//! with the oracle on the same rules and request. If a model is changed so
//! that a divergence disappears (or changes direction), the case fails and
//! docs/findings.md must be revisited.
//!
//! Models are named as registered (`runc`, `crun`, ...), or `runc+defaults`,
//! `crun+defaults`, `youki+defaults` for the variants that add the runtime's
//! built-in default devices (`compile_with_defaults`). Rules are written
//! `;`-separated, one v1 rule each.

use devcg_differential::counterexample::Answer;
use devcg_differential::exhaustive;
use devcg_differential::sampled::program_answer;
use devcg_engine::{strategy, CompileError, Program, Request, Rule, RuleFile, Verdict};
use devcg_oracle::Policy;
use rstest::rstest;

use Verdict::{Allow, Deny};

fn rules(text: &str) -> Vec<Rule> {
    let lines: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    RuleFile::parse("findings", &lines.join("\n")).expect("valid v1 rules")
}

fn request(text: &str) -> Request {
    Request::parse(text).expect("valid request")
}

/// A model by name: registered, or `NAME+defaults`.
fn model(name: &str) -> Box<dyn strategy::Strategy> {
    strategy::by_name(name).unwrap_or_else(|| panic!("no strategy {name}"))
}

/// What the model compiles, or the error it returns.
fn compile(name: &str, rules: &[Rule]) -> Result<Program, CompileError> {
    model(name).compile(rules)
}

/// The model's answer, through `program_answer`.
fn model_answer(name: &str, rules: &[Rule], req: &Request) -> Option<Answer> {
    program_answer(model(name).as_ref(), rules, req)
}

/// Every own strategy answers exactly what the oracle answers.
fn assert_own_strategies_agree(rules: &[Rule], req: &Request, oracle: Verdict) {
    let own: Vec<_> = strategy::all().into_iter().filter(|s| s.is_own()).collect();
    assert!(own.len() >= 3, "linear, tree and map at least");
    for s in &own {
        assert_eq!(
            program_answer(s.as_ref(), rules, req),
            Some(Answer::Verdict(oracle)),
            "own strategy {} disagrees with the oracle on {req}",
            s.name()
        );
    }
}

/// A divergence: the oracle says `oracle`, the model's program says
/// `program`. `realizable` records whether the kernel could ever ask this
/// (major < 4096, minor < 2^20): where it cannot, the divergence is real in
/// the program but unreachable through a device node.
#[rstest]
// --- runc (opencontainers/cgroups devicefilter + emulator) ---
#[case::runc_starts_deny_all("runc", "allow c 1:3 r", "c 1:4 r", Allow, Deny, true)]
#[case::runc_partial_access_deny_is_not_enforced(
    "runc",
    "allow a; deny c 1:3 w",
    "c 1:3 rw",
    Deny,
    Allow,
    true
)]
#[case::runc_deny_entry_denies_access_f_ok(
    "runc",
    "allow a; deny c 1:3 w",
    "c 1:3 -",
    Allow,
    Deny,
    true
)]
#[case::runc_literal_u32_max_deny_is_not_a_wildcard(
    "runc",
    "allow a; deny c 4294967295:1 r",
    "c 7:1 r",
    Deny,
    Allow,
    true
)]
#[case::runc_literal_u32_max_allow_is_not_a_wildcard(
    "runc",
    "deny a; allow c 4294967295:1 r",
    "c 7:1 r",
    Allow,
    Deny,
    true
)]
#[case::runc_sign_extended_major_never_matches(
    "runc",
    "allow a; deny c 2147483648:* rwm",
    "c 2147483648:0 r",
    Deny,
    Allow,
    false
)]
#[case::runc_defaults_reallow_null_after_deny_all(
    "runc+defaults",
    "deny a",
    "c 1:3 rw",
    Deny,
    Allow,
    true
)]
#[case::runc_defaults_allow_mknod_of_any_device(
    "runc+defaults",
    "deny a",
    "b 8:0 m",
    Deny,
    Allow,
    true
)]
#[case::runc_defaults_remove_user_deny(
    "runc+defaults",
    "allow a; deny c 1:3 w",
    "c 1:3 w",
    Deny,
    Allow,
    true
)]
// --- crun (ebpf.c / cgroup-resources.c) ---
#[case::crun_starts_deny_all("crun", "allow c 1:3 r", "c 1:4 r", Allow, Deny, true)]
#[case::crun_later_allow_punches_hole_in_wildcard_deny(
    "crun",
    "allow a; deny c 1:* rwm; allow c 1:4 rwm",
    "c 1:4 r",
    Deny,
    Allow,
    true
)]
#[case::crun_later_wildcard_deny_revokes_earlier_allow(
    "crun",
    "deny a; allow c 1:3 w; deny c 1:* w",
    "c 1:3 w",
    Allow,
    Deny,
    true
)]
#[case::crun_partial_access_deny_is_not_enforced(
    "crun",
    "allow a; deny c 1:3 w",
    "c 1:3 rw",
    Deny,
    Allow,
    true
)]
#[case::crun_narrowing_deny_misses_multi_bit_requests(
    "crun",
    "deny a; allow c 1:3 rw; deny c 1:3 w",
    "c 1:3 rw",
    Deny,
    Allow,
    true
)]
#[case::crun_deny_entry_denies_access_f_ok(
    "crun",
    "allow a; deny c 1:3 w",
    "c 1:3 -",
    Allow,
    Deny,
    true
)]
#[case::crun_typed_all_deny_is_a_filter(
    "crun",
    "allow a; deny a *:* r",
    "c 1:3 w",
    Deny,
    Allow,
    true
)]
#[case::crun_typed_all_allow_is_a_filter("crun", "allow a *:* r", "c 1:3 w", Allow, Deny, true)]
#[case::crun_high_major_allow_becomes_wildcard(
    "crun",
    "deny a; allow c 2147483648:1 r",
    "c 7:1 r",
    Deny,
    Allow,
    true
)]
#[case::crun_high_minor_deny_becomes_wildcard(
    "crun",
    "allow a; deny c 1:2147483648 m",
    "c 1:7 m",
    Allow,
    Deny,
    true
)]
#[case::crun_defaults_beat_user_deny(
    "crun+defaults",
    "allow a; deny c 1:3 rwm",
    "c 1:3 r",
    Deny,
    Allow,
    true
)]
#[case::crun_defaults_allow_console_after_deny_all(
    "crun+defaults",
    "deny a",
    "c 5:1 rw",
    Deny,
    Allow,
    true
)]
#[case::crun_defaults_allow_mknod_of_any_device(
    "crun+defaults",
    "deny a",
    "b 8:0 m",
    Deny,
    Allow,
    true
)]
// --- youki (libcgroups v2 devices, cgroupsv2_devices feature) ---
#[case::youki_starts_deny_all("youki", "allow c 1:3 r", "c 1:4 r", Allow, Deny, true)]
#[case::youki_later_allow_punches_hole_in_wildcard_deny(
    "youki",
    "allow a; deny c 1:* rwm; allow c 1:4 rwm",
    "c 1:4 r",
    Deny,
    Allow,
    true
)]
#[case::youki_later_wildcard_deny_revokes_earlier_allow(
    "youki",
    "deny a; allow c 1:3 w; deny c 1:* w",
    "c 1:3 w",
    Allow,
    Deny,
    true
)]
#[case::youki_partial_access_deny_is_not_enforced(
    "youki",
    "allow a; deny c 1:3 w",
    "c 1:3 rw",
    Deny,
    Allow,
    true
)]
#[case::youki_narrowing_deny_misses_multi_bit_requests(
    "youki",
    "deny a; allow c 1:3 rw; deny c 1:3 w",
    "c 1:3 rw",
    Deny,
    Allow,
    true
)]
#[case::youki_deny_entry_denies_access_f_ok(
    "youki",
    "allow a; deny c 1:3 w",
    "c 1:3 -",
    Allow,
    Deny,
    true
)]
#[case::youki_literal_u32_max_deny_is_not_a_wildcard(
    "youki",
    "allow a; deny c 4294967295:1 r",
    "c 7:1 r",
    Deny,
    Allow,
    true
)]
#[case::youki_literal_u32_max_allow_is_not_a_wildcard(
    "youki",
    "deny a; allow c 4294967295:1 r",
    "c 7:1 r",
    Allow,
    Deny,
    true
)]
#[case::youki_sign_extended_major_never_matches(
    "youki",
    "deny a; allow c 2147483648:1 r",
    "c 2147483648:1 r",
    Allow,
    Deny,
    false
)]
#[case::youki_defaults_survive_deny_all("youki+defaults", "deny a", "c 1:3 rw", Deny, Allow, true)]
#[case::youki_defaults_beat_user_deny(
    "youki+defaults",
    "allow a; deny c 1:3 w",
    "c 1:3 w",
    Deny,
    Allow,
    true
)]
// --- lxc (lxc.cgroup2.devices.*) ---
#[case::lxc_lone_deny_blocks_every_device("lxc", "deny c 1:3 r", "c 1:4 r", Allow, Deny, true)]
#[case::lxc_deny_all_alone_attaches_nothing("lxc", "deny a", "c 1:3 r", Deny, Allow, true)]
#[case::lxc_only_bare_a_switches_mode(
    "lxc",
    "deny a; allow c 1:3 r; deny a *:* rwm",
    "c 1:3 r",
    Deny,
    Allow,
    true
)]
#[case::lxc_only_bare_a_resets_denylist(
    "lxc",
    "allow a; deny c 1:3 r; allow a *:* rwm",
    "c 1:3 r",
    Allow,
    Deny,
    true
)]
#[case::lxc_allowlist_ignores_device_deny(
    "lxc",
    "deny a; allow c 1:3 rwm; deny c 1:3 w",
    "c 1:3 w",
    Deny,
    Allow,
    true
)]
#[case::lxc_denylist_ignores_device_allow(
    "lxc",
    "allow a; deny c 1:3 rw; allow c 1:3 r",
    "c 1:3 r",
    Allow,
    Deny,
    true
)]
#[case::lxc_partial_access_deny_is_not_enforced(
    "lxc",
    "allow a; deny c 1:3 w",
    "c 1:3 rw",
    Deny,
    Allow,
    true
)]
#[case::lxc_deny_entry_denies_access_f_ok(
    "lxc",
    "allow a; deny c 1:3 w",
    "c 1:3 -",
    Allow,
    Deny,
    true
)]
#[case::lxc_same_device_access_never_merged(
    "lxc",
    "deny a; allow c 1:3 r; allow c 1:3 m",
    "c 1:3 rm",
    Allow,
    Deny,
    true
)]
#[case::lxc_leading_zero_is_octal("lxc", "deny a; allow c 010:1 r", "c 8:1 r", Deny, Allow, true)]
#[case::lxc_leading_zero_misses_the_decimal_device(
    "lxc",
    "deny a; allow c 010:1 r",
    "c 10:1 r",
    Allow,
    Deny,
    true
)]
#[case::lxc_drops_u32_max_number(
    "lxc",
    "deny a; allow c 4294967295:1 r",
    "c 7:2 r",
    Deny,
    Allow,
    true
)]
#[case::lxc_drops_invalid_octal_digit(
    "lxc",
    "deny a; allow c 08:1 r",
    "c 9:9 r",
    Deny,
    Allow,
    true
)]
#[case::lxc_drops_all_spelled_out("lxc", "deny all", "c 1:3 r", Deny, Allow, true)]
// --- systemd (DevicePolicy= / DeviceAllow=) ---
#[case::systemd_never_merges_access(
    "systemd",
    "deny a; allow c 1:3 r; allow c 1:3 m",
    "c 1:3 rm",
    Allow,
    Deny,
    true
)]
#[case::systemd_never_merges_read_and_write(
    "systemd",
    "deny a; allow c 1:3 r; allow c 1:3 w",
    "c 1:3 rw",
    Allow,
    Deny,
    true
)]
#[case::systemd_skips_major_beyond_dev_t(
    "systemd",
    "deny a; allow c 4096:1 r",
    "c 4096:1 r",
    Allow,
    Deny,
    false
)]
// --- libvirt (vircgroupv2devices.c) ---
#[case::libvirt_first_allow_creates_deny_all(
    "libvirt",
    "allow c 1:3 r",
    "c 1:4 r",
    Allow,
    Deny,
    true
)]
#[case::libvirt_first_deny_creates_deny_all(
    "libvirt",
    "deny c 1:3 r",
    "c 1:4 r",
    Allow,
    Deny,
    true
)]
#[case::libvirt_deny_all_after_program_is_ignored(
    "libvirt",
    "allow a; deny a",
    "c 1:3 r",
    Deny,
    Allow,
    true
)]
#[case::libvirt_device_deny_after_allow_all_is_ignored(
    "libvirt",
    "allow a; deny c 1:3 r",
    "c 1:3 r",
    Deny,
    Allow,
    true
)]
#[case::libvirt_key_has_no_device_type(
    "libvirt",
    "deny a; allow c 1:3 r; allow b 1:3 w",
    "c 1:3 r",
    Allow,
    Deny,
    true
)]
#[case::libvirt_char_deny_strips_block_access(
    "libvirt",
    "allow a; deny c *:* w",
    "b 8:0 w",
    Allow,
    Deny,
    true
)]
#[case::libvirt_allow_overwrites_access(
    "libvirt",
    "deny a; allow c 1:3 r; allow c 1:3 w",
    "c 1:3 r",
    Allow,
    Deny,
    true
)]
#[case::libvirt_wildcard_allow_narrows_allow_all(
    "libvirt",
    "allow a; allow c *:* r",
    "b 8:0 r",
    Allow,
    Deny,
    true
)]
#[case::libvirt_deny_clears_type_bit(
    "libvirt",
    "deny a; allow c 1:3 rw; deny c 1:3 w",
    "c 1:3 r",
    Allow,
    Deny,
    true
)]
fn divergence(
    #[case] model: &str,
    #[case] text: &str,
    #[case] req: &str,
    #[case] oracle: Verdict,
    #[case] program: Verdict,
    #[case] realizable: bool,
) {
    assert_ne!(oracle, program, "a divergence needs two verdicts");
    let rules = rules(text);
    let req = request(req);
    assert_eq!(req.is_realizable(), realizable, "realizability of {req}");
    assert_eq!(
        Policy::of(&rules).decide(&req),
        oracle,
        "oracle on {req} under [{text}]"
    );
    assert_eq!(
        model_answer(model, &rules, &req),
        Some(Answer::Verdict(program)),
        "{model} on {req} under [{text}]"
    );
    assert_own_strategies_agree(&rules, &req, oracle);
}

/// Rule lists v1 accepts and a model refuses (the container would not
/// start), with a request whose oracle verdict the own strategies reproduce.
#[rstest]
#[case::runc_refuses_hole_in_wildcard_allow(
    "runc",
    "deny a; allow c 1:* rw; deny c 1:3 w",
    "cannot punch hole in existing wildcard rule",
    "c 1:3 w",
    Allow
)]
#[case::runc_refuses_allow_inside_wildcard_deny(
    "runc",
    "allow a; deny c 1:* w; allow c 1:3 w",
    "cannot punch hole in existing wildcard rule",
    "c 1:3 w",
    Deny
)]
#[case::runc_defaults_refuse_wildcard_deny(
    "runc+defaults",
    "allow a; deny c *:* rwm",
    "cannot punch hole in existing wildcard rule",
    "c 1:3 r",
    Deny
)]
// The systemd mapping (docs/findings.md): what a unit file cannot say.
#[case::systemd_cannot_deny_a_device(
    "systemd",
    "allow a; deny c 1:3 r",
    "no setting that denies",
    "c 1:3 r",
    Deny
)]
#[case::systemd_cannot_allow_without_deny_all(
    "systemd",
    "allow c 1:3 r",
    "without a preceding `deny a`",
    "c 1:4 r",
    Allow
)]
#[case::systemd_cannot_name_a_minor_under_any_major(
    "systemd",
    "deny a; allow c *:3 r",
    "cannot name a minor under any major",
    "c 1:3 r",
    Allow
)]
fn refusal(
    #[case] model: &str,
    #[case] text: &str,
    #[case] reason: &str,
    #[case] req: &str,
    #[case] oracle: Verdict,
) {
    let rules = rules(text);
    let req = request(req);
    match compile(model, &rules) {
        Err(CompileError::Refused { reason: got, .. }) => {
            assert!(got.contains(reason), "{model}: {got}")
        }
        other => panic!("{model} should refuse [{text}], got {other:?}"),
    }
    assert_eq!(model_answer(model, &rules, &req), None);
    assert_eq!(Policy::of(&rules).decide(&req), oracle);
    assert_own_strategies_agree(&rules, &req, oracle);
}

/// Exhaustive mode finds runc's sign extension: a deny of major 2^31 never
/// matches, because the 64-bit `JNE` compares the zero-extended context
/// field with the sign-extended immediate 0x80000000. Every differing class
/// has a major of 2^31 or more (no device node can carry one), and devcg's
/// own strategies have no differing class at all.
#[test]
fn exhaustive_finds_runc_sign_extension() {
    let rules = rules("allow a; deny c 2147483648:* rwm");
    let program = compile("runc", &rules).unwrap();
    let outcome = exhaustive::run(&rules, &program).unwrap();
    let diffs: Vec<(&str, Verdict, &Answer)> = outcome
        .differences
        .iter()
        .map(|d| (d.request.as_str(), d.oracle, &d.program))
        .collect();
    assert!(
        diffs.contains(&("c 2147483648:0 r", Deny, &Answer::Verdict(Allow))),
        "{diffs:?}"
    );
    for d in &outcome.differences {
        let req = request(&d.request);
        assert!(req.major >= 1 << 31, "unexpected class {}", d.request);
        assert!(!req.is_realizable());
        assert_eq!((d.oracle, &d.program), (Deny, &Answer::Verdict(Allow)));
    }
    for s in strategy::all().iter().filter(|s| s.is_own()) {
        let own = exhaustive::run(&rules, &s.compile(&rules).unwrap()).unwrap();
        assert!(own.equivalent(), "{}: {:?}", s.name(), own.differences);
    }
}

/// Exhaustive mode also finds crun's truncation to C `int` on a realizable
/// device: `allow c 2147483648:1 r` becomes `c *:1 r`.
#[test]
fn exhaustive_finds_crun_int_truncation() {
    let rules = rules("deny a; allow c 2147483648:1 r");
    let program = compile("crun", &rules).unwrap();
    let outcome = exhaustive::run(&rules, &program).unwrap();
    let realizable: Vec<&str> = outcome
        .differences
        .iter()
        .filter(|d| request(&d.request).is_realizable())
        .map(|d| d.request.as_str())
        .collect();
    assert!(realizable.contains(&"c 0:1 r"), "{realizable:?}");
    assert!(outcome
        .differences
        .iter()
        .all(|d| d.oracle == Deny && d.program == Answer::Verdict(Allow)));
}
