//! The reproducers of docs/findings.md that a real runtime binary can be
//! given, as data: `devcg runtime` runs each through the installed binary,
//! and the tests below pin each against the oracle and devcg's model (the
//! same cases are the named tests of `tests/findings.rs`).

use devcg_engine::strategy::by_name;
use devcg_engine::{CompileError, Program, Request, Rule, RuleFile, Verdict};

use Verdict::{Allow, Deny};

/// One reproducer: a rule list and a request on which the runtime's
/// program and v1 differ.
#[derive(Clone, Copy, Debug)]
pub struct Reproducer {
    /// The class in docs/findings.md (`R2`).
    pub class: &'static str,
    /// The test in `differential/tests/findings.rs`.
    pub name: &'static str,
    /// v1 rules, `;`-separated.
    pub rules: &'static str,
    pub request: &'static str,
    /// What v1 answers.
    pub oracle: Verdict,
    /// What the finding says the runtime answers; `None`: it refuses the
    /// rule list (the container does not start).
    pub runtime: Option<Verdict>,
    /// Whether the finding comes from the runtime's own default devices.
    pub defaults: bool,
}

impl Reproducer {
    pub fn rules(&self) -> Vec<Rule> {
        parse(self.name, self.rules, self.request).0
    }

    pub fn request(&self) -> Request {
        parse(self.name, self.rules, self.request).1
    }

    /// The rules and the request as text, moved to char major `major`
    /// from 1 and 7 (the reproducers' majors, which hold real devices and
    /// default ones) when given: for findings that do not depend on the
    /// numbers.
    pub fn texts(&self, major: Option<u32>) -> (String, String) {
        let text = |s: &str| match major {
            Some(m) => s
                .replace("c 1:", &format!("c {m}:"))
                .replace("c 7:", &format!("c {m}:")),
            None => s.to_string(),
        };
        (text(self.rules), text(self.request))
    }
}

/// `;`-separated v1 rules and a request, as a reproducer holds them.
pub fn parse(name: &str, rules: &str, request: &str) -> (Vec<Rule>, Request) {
    (
        RuleFile::parse(name, &rules.replace(';', "\n")).expect("reproducers are valid v1 rules"),
        Request::parse(request).expect("reproducers are valid requests"),
    )
}

const fn rep(
    class: &'static str,
    name: &'static str,
    rules: &'static str,
    request: &'static str,
    oracle: Verdict,
    runtime: Option<Verdict>,
    defaults: bool,
) -> Reproducer {
    Reproducer {
        class,
        name,
        rules,
        request,
        oracle,
        runtime,
        defaults,
    }
}

/// runc's classes R1-R7 (R5 only shows above 2^31, where no device is).
#[rustfmt::skip]
pub const RUNC: &[Reproducer] = &[
    rep(
        "R1",
        "runc_starts_deny_all",
        "allow c 1:3 r",
        "c 1:4 r",
        Allow,
        Some(Deny),
        false,
    ),
    rep(
        "R2",
        "runc_partial_access_deny_is_not_enforced",
        "allow a; deny c 1:3 w",
        "c 1:3 rw",
        Deny,
        Some(Allow),
        false,
    ),
    rep(
        "R3",
        "runc_deny_entry_denies_access_f_ok",
        "allow a; deny c 1:3 w",
        "c 1:3 -",
        Allow,
        Some(Deny),
        false,
    ),
    rep(
        "R4",
        "runc_literal_u32_max_deny_is_not_a_wildcard",
        "allow a; deny c 4294967295:1 r",
        "c 7:1 r",
        Deny,
        Some(Allow),
        false,
    ),
    rep(
        "R4",
        "runc_literal_u32_max_allow_is_not_a_wildcard",
        "deny a; allow c 4294967295:1 r",
        "c 7:1 r",
        Allow,
        Some(Deny),
        false,
    ),
    rep(
        "R6",
        "runc_refuses_hole_in_wildcard_allow",
        "deny a; allow c 1:* rw; deny c 1:3 w",
        "c 1:3 w",
        Allow,
        None,
        false,
    ),
    rep(
        "R6",
        "runc_refuses_allow_inside_wildcard_deny",
        "allow a; deny c 1:* w; allow c 1:3 w",
        "c 1:3 w",
        Deny,
        None,
        false,
    ),
    rep(
        "R7",
        "runc_defaults_reallow_null_after_deny_all",
        "deny a",
        "c 1:3 rw",
        Deny,
        Some(Allow),
        true,
    ),
    rep(
        "R7",
        "runc_defaults_allow_mknod_of_any_device",
        "deny a",
        "b 8:0 m",
        Deny,
        Some(Allow),
        true,
    ),
    rep(
        "R7",
        "runc_defaults_remove_user_deny",
        "allow a; deny c 1:3 w",
        "c 1:3 w",
        Deny,
        Some(Allow),
        true,
    ),
];

/// crun's classes C1-C7.
#[rustfmt::skip]
pub const CRUN: &[Reproducer] = &[
    rep(
        "C1",
        "crun_starts_deny_all",
        "allow c 1:3 r",
        "c 1:4 r",
        Allow,
        Some(Deny),
        false,
    ),
    rep(
        "C2",
        "crun_later_allow_punches_hole_in_wildcard_deny",
        "allow a; deny c 1:* rwm; allow c 1:4 rwm",
        "c 1:4 r",
        Deny,
        Some(Allow),
        false,
    ),
    rep(
        "C2",
        "crun_later_wildcard_deny_revokes_earlier_allow",
        "deny a; allow c 1:3 w; deny c 1:* w",
        "c 1:3 w",
        Allow,
        Some(Deny),
        false,
    ),
    rep(
        "C3",
        "crun_partial_access_deny_is_not_enforced",
        "allow a; deny c 1:3 w",
        "c 1:3 rw",
        Deny,
        Some(Allow),
        false,
    ),
    rep(
        "C3",
        "crun_narrowing_deny_misses_multi_bit_requests",
        "deny a; allow c 1:3 rw; deny c 1:3 w",
        "c 1:3 rw",
        Deny,
        Some(Allow),
        false,
    ),
    rep(
        "C4",
        "crun_deny_entry_denies_access_f_ok",
        "allow a; deny c 1:3 w",
        "c 1:3 -",
        Allow,
        Some(Deny),
        false,
    ),
    rep(
        "C5",
        "crun_typed_all_deny_is_a_filter",
        "allow a; deny a *:* r",
        "c 1:3 w",
        Deny,
        Some(Allow),
        false,
    ),
    rep(
        "C5",
        "crun_typed_all_allow_is_a_filter",
        "allow a *:* r",
        "c 1:3 w",
        Allow,
        Some(Deny),
        false,
    ),
    rep(
        "C6",
        "crun_high_major_allow_becomes_wildcard",
        "deny a; allow c 2147483648:1 r",
        "c 7:1 r",
        Deny,
        Some(Allow),
        false,
    ),
    rep(
        "C6",
        "crun_high_minor_deny_becomes_wildcard",
        "allow a; deny c 1:2147483648 m",
        "c 1:7 m",
        Allow,
        Some(Deny),
        false,
    ),
    rep(
        "C7",
        "crun_defaults_beat_user_deny",
        "allow a; deny c 1:3 rwm",
        "c 1:3 r",
        Deny,
        Some(Allow),
        true,
    ),
    rep(
        "C7",
        "crun_defaults_allow_console_after_deny_all",
        "deny a",
        "c 5:1 rw",
        Deny,
        Some(Allow),
        true,
    ),
    rep(
        "C7",
        "crun_defaults_allow_mknod_of_any_device",
        "deny a",
        "b 8:0 m",
        Deny,
        Some(Allow),
        true,
    ),
];

/// youki's classes Y1-Y7 (Y6 only shows above 2^31, where no device is).
#[rustfmt::skip]
pub const YOUKI: &[Reproducer] = &[
    rep("Y1", "youki_starts_deny_all", "allow c 1:3 r", "c 1:4 r", Allow, Some(Deny), false),
    rep("Y2", "youki_later_allow_punches_hole_in_wildcard_deny", "allow a; deny c 1:* rwm; allow c 1:4 rwm", "c 1:4 r", Deny, Some(Allow), false),
    rep("Y2", "youki_later_wildcard_deny_revokes_earlier_allow", "deny a; allow c 1:3 w; deny c 1:* w", "c 1:3 w", Allow, Some(Deny), false),
    rep("Y3", "youki_partial_access_deny_is_not_enforced", "allow a; deny c 1:3 w", "c 1:3 rw", Deny, Some(Allow), false),
    rep("Y3", "youki_narrowing_deny_misses_multi_bit_requests", "deny a; allow c 1:3 rw; deny c 1:3 w", "c 1:3 rw", Deny, Some(Allow), false),
    rep("Y4", "youki_deny_entry_denies_access_f_ok", "allow a; deny c 1:3 w", "c 1:3 -", Allow, Some(Deny), false),
    rep("Y5", "youki_literal_u32_max_deny_is_not_a_wildcard", "allow a; deny c 4294967295:1 r", "c 7:1 r", Deny, Some(Allow), false),
    rep("Y5", "youki_literal_u32_max_allow_is_not_a_wildcard", "deny a; allow c 4294967295:1 r", "c 7:1 r", Allow, Some(Deny), false),
    rep("Y7", "youki_defaults_survive_deny_all", "deny a", "c 1:3 rw", Deny, Some(Allow), true),
    rep("Y7", "youki_defaults_beat_user_deny", "allow a; deny c 1:3 w", "c 1:3 w", Deny, Some(Allow), true),
];

/// LXC's classes L1-L9 (LXC adds no default devices).
#[rustfmt::skip]
pub const LXC: &[Reproducer] = &[
    rep("L1", "lxc_lone_deny_blocks_every_device", "deny c 1:3 r", "c 1:4 r", Allow, Some(Deny), false),
    rep("L2", "lxc_deny_all_alone_attaches_nothing", "deny a", "c 1:3 r", Deny, Some(Allow), false),
    rep("L3", "lxc_only_bare_a_switches_mode", "deny a; allow c 1:3 r; deny a *:* rwm", "c 1:3 r", Deny, Some(Allow), false),
    rep("L3", "lxc_only_bare_a_resets_denylist", "allow a; deny c 1:3 r; allow a *:* rwm", "c 1:3 r", Allow, Some(Deny), false),
    rep("L4", "lxc_allowlist_ignores_device_deny", "deny a; allow c 1:3 rwm; deny c 1:3 w", "c 1:3 w", Deny, Some(Allow), false),
    rep("L4", "lxc_denylist_ignores_device_allow", "allow a; deny c 1:3 rw; allow c 1:3 r", "c 1:3 r", Allow, Some(Deny), false),
    rep("L5", "lxc_partial_access_deny_is_not_enforced", "allow a; deny c 1:3 w", "c 1:3 rw", Deny, Some(Allow), false),
    rep("L6", "lxc_deny_entry_denies_access_f_ok", "allow a; deny c 1:3 w", "c 1:3 -", Allow, Some(Deny), false),
    rep("L7", "lxc_same_device_access_never_merged", "deny a; allow c 1:3 r; allow c 1:3 m", "c 1:3 rm", Allow, Some(Deny), false),
    rep("L8", "lxc_leading_zero_is_octal", "deny a; allow c 010:1 r", "c 8:1 r", Deny, Some(Allow), false),
    rep("L8", "lxc_leading_zero_misses_the_decimal_device", "deny a; allow c 010:1 r", "c 10:1 r", Allow, Some(Deny), false),
    rep("L9", "lxc_drops_u32_max_number", "deny a; allow c 4294967295:1 r", "c 7:2 r", Deny, Some(Allow), false),
    rep("L9", "lxc_drops_invalid_octal_digit", "deny a; allow c 08:1 r", "c 9:9 r", Deny, Some(Allow), false),
    rep("L9", "lxc_drops_all_spelled_out", "deny all", "c 1:3 r", Deny, Some(Allow), false),
];

/// systemd's classes S1 and S2, as unit settings (`unit_from_rules`): S1
/// also as an `O_RDWR` open, which a syscall makes (`rm` is no single
/// syscall's request); S2 only shows on a major no node can have.
#[rustfmt::skip]
pub const SYSTEMD: &[Reproducer] = &[
    rep("S1", "systemd_never_merges_access", "deny a; allow c 1:3 r; allow c 1:3 m", "c 1:3 rm", Allow, Some(Deny), false),
    rep("S1", "systemd_never_merges_read_and_write", "deny a; allow c 1:3 r; allow c 1:3 w", "c 1:3 rw", Allow, Some(Deny), false),
    rep("S2", "systemd_skips_major_beyond_dev_t", "deny a; allow c 4096:1 r", "c 4096:1 r", Allow, Some(Deny), false),
];

/// libvirt's classes V1-V6 (libvirt has no rule text: each rule is the
/// matching `virCgroup*Device*` call, docs/findings.md; its drivers add
/// their own default devices, which these lists leave out).
#[rustfmt::skip]
pub const LIBVIRT: &[Reproducer] = &[
    rep("V1", "libvirt_first_allow_creates_deny_all", "allow c 1:3 r", "c 1:4 r", Allow, Some(Deny), false),
    rep("V1", "libvirt_first_deny_creates_deny_all", "deny c 1:3 r", "c 1:4 r", Allow, Some(Deny), false),
    rep("V2", "libvirt_deny_all_after_program_is_ignored", "allow a; deny a", "c 1:3 r", Deny, Some(Allow), false),
    rep("V3", "libvirt_device_deny_after_allow_all_is_ignored", "allow a; deny c 1:3 r", "c 1:3 r", Deny, Some(Allow), false),
    rep("V4", "libvirt_key_has_no_device_type", "deny a; allow c 1:3 r; allow b 1:3 w", "c 1:3 r", Allow, Some(Deny), false),
    rep("V4", "libvirt_char_deny_strips_block_access", "allow a; deny c *:* w", "b 8:0 w", Allow, Some(Deny), false),
    rep("V5", "libvirt_allow_overwrites_access", "deny a; allow c 1:3 r; allow c 1:3 w", "c 1:3 r", Allow, Some(Deny), false),
    rep("V5", "libvirt_wildcard_allow_narrows_allow_all", "allow a; allow c *:* r", "b 8:0 r", Allow, Some(Deny), false),
    rep("V6", "libvirt_deny_clears_type_bit", "deny a; allow c 1:3 rw; deny c 1:3 w", "c 1:3 r", Allow, Some(Deny), false),
];

/// devcg's model of `runtime` ("runc", "crun", "youki", "lxc", "systemd" or "libvirt") for `rules`: the
/// library alone (as the findings other than the defaults' are stated), or
/// with the runtime's default devices, as the binary runs it.
pub fn model(runtime: &str, defaults: bool, rules: &[Rule]) -> Result<Program, CompileError> {
    // `NAME+defaults` where the runtime has defaults (LXC has none).
    let with_defaults = format!("{runtime}+defaults");
    defaults
        .then(|| by_name(&with_defaults))
        .flatten()
        .or_else(|| by_name(runtime))
        .expect("a registered runtime model")
        .compile(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use devcg_emulator::Emulator;
    use devcg_oracle::Policy;

    /// Every table entry is a named test of `tests/findings.rs` (its name
    /// appears there as a case).
    #[test]
    fn every_reproducer_is_a_named_test() {
        let tests = include_str!("../tests/findings.rs");
        for r in RUNC
            .iter()
            .chain(CRUN)
            .chain(YOUKI)
            .chain(LXC)
            .chain(SYSTEMD)
            .chain(LIBVIRT)
        {
            assert!(tests.contains(&format!("case::{}(", r.name)), "{}", r.name);
        }
    }

    /// Each entry says what the oracle and devcg's model say.
    #[test]
    fn every_reproducer_holds_for_the_oracle_and_the_model() {
        for (runtime, reps) in [
            ("runc", RUNC),
            ("crun", CRUN),
            ("youki", YOUKI),
            ("lxc", LXC),
            ("systemd", SYSTEMD),
            ("libvirt", LIBVIRT),
        ] {
            for r in reps {
                let (rules, req) = (r.rules(), r.request());
                assert_eq!(Policy::of(&rules).decide(&req), r.oracle, "{}", r.name);
                let answer = model(runtime, r.defaults, &rules)
                    .ok()
                    .map(|p| Emulator::new(&p).unwrap().run(&req).unwrap());
                assert_eq!(answer, r.runtime, "{}", r.name);
            }
        }
    }
}
