//! The kernel rules of security/device_cgroup.c, one table row per rule.
//! Each case is an oracle script; its results are written compactly: a
//! write as `ok`/`EINVAL`/`EPERM`, a check as `allow`/`deny`, a list as its
//! text; mkdir (always successful here) is left out.

use devcg_engine::rules::{Rule, RuleKind};
use devcg_engine::{Access, Behavior, DeviceType, Exception, Request, Verdict, WILDCARD};
use devcg_oracle::script::{self, Effect};
use devcg_oracle::{decide, state_of, Errno, Hierarchy, OracleError};
use rstest::rstest;

fn run(lines: &[&str]) -> (Hierarchy, Vec<String>) {
    let mut h = Hierarchy::new();
    let outputs = script::run_on(&mut h, &lines.join("\n")).expect("valid script");
    let compact = outputs
        .into_iter()
        .filter_map(|o| match o.effect {
            Effect::Mkdir => None,
            Effect::Write { errno: None } => Some("ok".to_string()),
            Effect::Write { errno: Some(e) } => Some(e.to_string()),
            Effect::List { list } => Some(list),
            Effect::Check { allowed } => Some(if allowed { "allow" } else { "deny" }.to_string()),
        })
        .collect();
    (h, compact)
}

fn ex(text: &str) -> Exception {
    let r = Request::parse(text).expect("test exception");
    Exception {
        ty: r.ty,
        major: r.major,
        minor: r.minor,
        access: r.access,
    }
}

fn wex(ty: DeviceType, major: u32, minor: u32, access: &str) -> Exception {
    Exception {
        ty,
        major,
        minor,
        access: Access::parse_letters(access).unwrap(),
    }
}

#[rstest]
// --- `a` ---
#[case::allow_a_with_children_einval(
    &["mkdir a", "mkdir a/b", "write a allow a", "write a deny a"],
    &["EINVAL", "EINVAL"])]
#[case::children_checked_before_parent(
    &["mkdir a", "write a deny a", "mkdir a/b", "mkdir a/b/c", "write a/b allow a"],
    &["ok", "EINVAL"])]
#[case::allow_a_needs_allow_parent(
    &["mkdir a", "write a deny a", "mkdir a/b", "write a/b allow a", "write a/b deny a", "list a/b"],
    &["ok", "EPERM", "ok", ""])]
#[case::allow_a_copies_parent_list(
    &["mkdir a", "write a deny c 1:3 r", "mkdir a/b", "write a/b deny a", "check a/b c 1:3 r",
      "write a/b allow a", "list a/b", "check a/b c 1:3 r", "check a/b c 1:3 w"],
    &["ok", "ok", "deny", "ok", "a *:* rwm\n", "deny", "allow"])]
#[case::deny_a_clears(
    &["mkdir a", "write a deny a", "write a allow c 1:3 r", "list a", "write a deny a", "list a"],
    &["ok", "ok", "c 1:3 r\n", "ok", ""])]
#[case::a_ignores_the_rest(
    &["mkdir a", "write a deny all of them, whatever", "list a", "write a allow anything", "list a"],
    &["ok", "", "ok", "a *:* rwm\n"])]
// --- b/c to devices.allow ---
#[case::deny_mode_adds_if_parent_has_perm(
    &["mkdir a", "write a deny a", "write a allow c 1:3 rw", "mkdir a/b", "write a/b deny c 1:3 rw",
      "list a/b", "write a/b allow c 1:3 r", "write a/b allow c 1:3 m", "write a/b allow c 1:* r",
      "write a/b allow b 1:3 r", "list a/b"],
    &["ok", "ok", "ok", "", "ok", "EPERM", "EPERM", "EPERM", "c 1:3 r\n"])]
#[case::deny_mode_under_allow_parent_needs_no_overlap(
    &["mkdir a", "write a deny c 1:3 r", "mkdir a/b", "write a/b deny a",
      "write a/b allow c 1:* r", "write a/b allow c 1:* w", "write a/b allow c *:3 rm", "write a/b allow c 1:4 r",
      "list a/b"],
    &["ok", "ok", "EPERM", "ok", "EPERM", "ok", "c 1:* w\nc 1:4 r\n"])]
#[case::allow_mode_removal_needs_parent_permission(
    &["mkdir a", "write a deny c 1:3 r", "mkdir a/b",
      "write a/b allow c 1:3 r", "write a/b allow c 1:* r", "write a/b allow c *:* rwm",
      "write a/b allow c 1:3 w", "write a/b allow c 1:* w", "check a/b c 1:3 r"],
    &["ok", "EPERM", "EPERM", "EPERM", "ok", "ok", "deny"])]
#[case::allow_mode_removes_silently(
    &["mkdir a", "write a deny c 1:5 rw", "check a c 1:5 w", "write a allow c 1:5 w", "check a c 1:5 w",
      "check a c 1:5 r", "write a allow c 9:9 rwm", "write a allow c 1:* r", "check a c 1:5 r"],
    &["ok", "deny", "ok", "allow", "deny", "ok", "ok", "deny"])]
#[case::allow_does_not_propagate(
    &["mkdir a", "write a deny c 1:3 r", "mkdir a/b", "write a allow c 1:3 r", "check a c 1:3 r",
      "check a/b c 1:3 r"],
    &["ok", "ok", "allow", "deny"])]
// --- b/c to devices.deny, own list ---
#[case::deny_mode_partial_removal(
    &["mkdir a", "write a deny a", "write a allow c 1:3 rwm", "write a deny c 1:3 w", "list a",
      "write a deny c 1:3 rm", "list a"],
    &["ok", "ok", "ok", "c 1:3 rm\n", "ok", ""])]
#[case::merge_keeps_position(
    &["mkdir a", "write a deny a", "write a allow c 1:3 r", "write a allow b 8:* m", "write a allow c 1:3 w",
      "list a"],
    &["ok", "ok", "ok", "ok", "c 1:3 rw\nb 8:* m\n"])]
#[case::wildcard_never_split(
    &["mkdir a", "write a deny a", "write a allow c 1:* rw", "write a deny c 1:3 w", "list a",
      "check a c 1:3 w"],
    &["ok", "ok", "ok", "c 1:* rw\n", "allow"])]
#[case::missing_key_is_silent(
    &["mkdir a", "write a deny a", "write a allow c 1:3 r", "write a deny c 9:9 r", "write a deny b 1:3 r",
      "list a"],
    &["ok", "ok", "ok", "ok", "c 1:3 r\n"])]
// --- propagation and revalidation ---
#[case::allow_chain_gets_the_deny(
    &["mkdir a", "mkdir a/b", "mkdir a/b/c", "write a deny c 1:3 r", "check a/b/c c 1:3 r",
      "write a allow c 1:3 r", "check a c 1:3 r", "check a/b c 1:3 r", "check a/b/c c 1:3 r"],
    &["ok", "deny", "ok", "allow", "deny", "deny"])]
#[case::revalidation_uses_the_updated_direct_parent(
    &["mkdir a", "mkdir a/b", "write a/b deny a", "write a/b allow c 1:* rw", "write a/b allow c 2:* r",
      "mkdir a/b/c", "write a/b/c deny a", "write a/b/c allow c 1:3 rw", "write a/b/c allow c 2:5 r",
      "write a deny c 1:3 w", "list a/b", "list a/b/c"],
    &["ok", "ok", "ok", "ok", "ok", "ok", "ok", "c 2:* r\n", "c 2:5 r\n"])]
#[case::deny_writer_drops_whole_entries(
    &["mkdir a", "write a deny a", "write a allow c 1:* rwm", "mkdir a/b", "write a/b deny c 1:* m",
      "mkdir a/b/c", "write a/b/c deny c 1:* rw", "write a/b/c allow c 1:3 rw",
      "write a deny c 1:* w", "list a", "list a/b", "list a/b/c"],
    &["ok", "ok", "ok", "ok", "ok", "ok", "c 1:* rm\n", "c 1:* r\n", ""])]
#[case::allow_writer_deny_grandchild(
    &["mkdir a", "mkdir a/b", "mkdir a/b/c", "write a/b/c deny a", "write a/b/c allow c 1:* r",
      "write a/b/c allow c 1:3 w", "write a/b/c allow c 2:2 rwm",
      "write a deny c 1:3 r", "list a/b/c", "check a/b c 1:3 r"],
    &["ok", "ok", "ok", "ok", "ok", "c 1:3 w\nc 2:2 rwm\n", "deny"])]
#[case::propagated_removal_is_exact_key(
    &["mkdir a", "write a deny a", "write a allow c 1:* rw", "write a allow c 1:3 rw", "mkdir a/b",
      "write a deny c 1:3 w", "list a", "list a/b"],
    &["ok", "ok", "ok", "ok", "c 1:* rw\nc 1:3 r\n", "c 1:* rw\nc 1:3 r\n"])]
#[case::propagation_does_not_reach_siblings_or_up(
    &["mkdir a", "mkdir a/b", "mkdir e", "write a/b deny c 1:3 r", "check a c 1:3 r", "check e c 1:3 r",
      "check a/b c 1:3 r"],
    &["ok", "allow", "allow", "deny"])]
// --- checks ---
#[case::allow_mode_partial_match(
    &["mkdir a", "write a deny c 1:3 w", "check a c 1:3 rw", "check a c 1:3 w", "check a c 1:3 r",
      "check a c 1:3 rm", "check a c 1:3 -", "check a b 1:3 w"],
    &["ok", "deny", "deny", "allow", "allow", "allow", "allow"])]
#[case::deny_mode_complete_match(
    &["mkdir a", "write a deny a", "write a allow c 1:* r", "write a allow c 1:3 w",
      "check a c 1:3 rw", "check a c 1:3 r", "check a c 1:3 w", "check a c 1:3 -", "check a c 2:0 -",
      "check a c 1:99 r", "check a c 1:99 w"],
    &["ok", "ok", "ok", "deny", "allow", "allow", "allow", "deny", "allow", "deny"])]
#[case::requested_wildcard_major_allow_mode(
    &["mkdir a", "write a deny c 1:3 r", "check a c 4294967295:3 r", "check a c 4294967295:4 r",
      "check a b 4294967295:3 r", "check a c 4294967295:4294967295 r", "check a c 4294967295:3 w"],
    &["ok", "deny", "allow", "allow", "deny", "allow"])]
#[case::requested_wildcard_major_deny_mode(
    &["mkdir a", "write a deny a", "write a allow c 1:3 r", "check a c 4294967295:3 r",
      "write a allow c *:3 r", "check a c 4294967295:3 r"],
    &["ok", "ok", "deny", "ok", "allow"])]
#[case::fresh_root_child_allows_everything(
    &["mkdir a", "check a c 0:0 rwm", "check a b 4294967295:4294967295 rwm", "list a"],
    &["allow", "allow", "a *:* rwm\n"])]
// --- parser-level answers through a write ---
#[case::parser(
    &["mkdir a", "write a deny a",
      "write a allow c 1:3 rwmx", "write a allow c 1:3", "write a allow c 1:3 ", "write a allow x 1:3 r",
      "write a allow c 4294967296:1 r", "write a allow c 4294967295:1 r", "write a allow c 000000000001:3 r",
      "write a allow c 00000000002:3 mwr", "write a allow b\t8:*\tm", "write a allow c 1:3 r w",
      "write a allow   c 5:5 r   ", "list a"],
    &["ok", "ok", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "ok", "EINVAL", "ok", "ok", "EINVAL", "ok",
      "c 1:3 rwm\nc *:1 r\nc 2:3 rwm\nb 8:* m\nc 5:5 r\n"])]
#[case::parse_error_before_permission(
    &["mkdir a", "write a deny a", "mkdir a/b", "write a/b allow c 1:3 q", "write a/b allow c 1:3 r"],
    &["ok", "EINVAL", "EPERM"])]
fn kernel_rule(#[case] script: &[&str], #[case] want: &[&str]) {
    let (_, got) = run(script);
    assert_eq!(got, want, "script:\n{}", script.join("\n"));
}

#[test]
fn merge_and_order_in_allow_mode() {
    let (h, got) = run(&[
        "mkdir a",
        "write a deny c 1:3 r",
        "write a deny c 1:5 m",
        "write a deny c 1:3 w",
    ]);
    assert_eq!(got, ["ok", "ok", "ok"]);
    assert_eq!(h.behavior("a"), Ok(Behavior::Allow));
    assert_eq!(h.exceptions("a").unwrap(), [ex("c 1:3 rw"), ex("c 1:5 m")]);
    // ALLOW mode hides the list.
    assert_eq!(h.list("a").unwrap(), "a *:* rwm\n");
}

#[test]
fn mkdir_copies_the_parent_at_creation_only() {
    let (h, _) = run(&[
        "mkdir a",
        "write a deny c 1:3 r",
        "mkdir a/b",
        "write a deny c 2:2 w",
        "write a allow c 1:3 r",
    ]);
    assert_eq!(h.exceptions("a").unwrap(), [ex("c 2:2 w")]);
    assert_eq!(h.exceptions("a/b").unwrap(), [ex("c 1:3 r"), ex("c 2:2 w")]);
}

/// Text with a newline right after the separator parses to an exception
/// with no access bits (no script line can carry it, so this goes through
/// the API).
#[test]
fn access_zero_entries() {
    let zero = wex(DeviceType::Char, 1, 3, "-");
    let req = |access: &str| {
        Request::new(
            DeviceType::Char,
            1,
            3,
            Access::parse_letters(access).unwrap(),
        )
    };

    // DENY mode: the entry completely matches only the empty request.
    let mut h = Hierarchy::new();
    h.mkdir("a").unwrap();
    assert_eq!(h.write("a", RuleKind::Deny, "a"), Ok(()));
    assert_eq!(h.write("a", RuleKind::Allow, "c 1:3 \nr"), Ok(()));
    assert_eq!(h.exceptions("a").unwrap(), [zero]);
    assert_eq!(h.list("a").unwrap(), "c 1:3 \n");
    assert_eq!(h.check("a", &req("-")), Ok(Verdict::Allow));
    assert_eq!(h.check("a", &req("r")), Ok(Verdict::Deny));
    // Removing nothing from an empty entry still deletes it.
    assert_eq!(h.write("a", RuleKind::Deny, "c 1:3 \nw"), Ok(()));
    assert_eq!(h.exceptions("a").unwrap(), []);
    // Adding nothing to an existing entry changes nothing.
    h.write("a", RuleKind::Allow, "c 1:3 r").unwrap();
    h.write("a", RuleKind::Allow, "c 1:3 \n").unwrap_err();
    h.write("a", RuleKind::Allow, "c 1:3 \nm").unwrap();
    assert_eq!(h.exceptions("a").unwrap(), [ex("c 1:3 r")]);
    h.write("a", RuleKind::Deny, "c 1:3 \nm").unwrap();
    assert_eq!(h.exceptions("a").unwrap(), [ex("c 1:3 r")]);

    // ALLOW mode: an empty deny entry overlaps nothing, and lifting it is
    // always permitted since it overlaps nothing in the parent either.
    let mut h = Hierarchy::new();
    h.mkdir("a").unwrap();
    h.write("a", RuleKind::Deny, "c 1:3 \nr").unwrap();
    assert_eq!(h.exceptions("a").unwrap(), [zero]);
    h.mkdir("a/b").unwrap();
    for access in ["-", "r", "rwm"] {
        assert_eq!(h.check("a/b", &req(access)), Ok(Verdict::Allow));
    }
    assert_eq!(h.write("a/b", RuleKind::Allow, "c 1:3 \nr"), Ok(()));
    assert_eq!(h.exceptions("a/b").unwrap(), []);
}

#[test]
fn root_has_no_parent_to_ask() {
    let mut h = Hierarchy::new();
    assert_eq!(h.list(""), Ok("a *:* rwm\n".to_string()));
    // Without children the root may switch both ways.
    assert_eq!(h.write("", RuleKind::Deny, "a"), Ok(()));
    assert_eq!(h.write("", RuleKind::Allow, "c *:* rwm"), Ok(()));
    assert_eq!(h.list(""), Ok("c *:* rwm\n".to_string()));
    assert_eq!(h.write("", RuleKind::Allow, "a"), Ok(()));
    assert_eq!(h.exceptions(""), Ok(&[][..]));
    // With children `a` is refused; b/c writes are not, and propagate.
    h.mkdir("a").unwrap();
    h.mkdir("a/b").unwrap();
    assert_eq!(h.write("", RuleKind::Deny, "a"), Err(Errno::EINVAL));
    assert_eq!(h.write("", RuleKind::Allow, "a"), Err(Errno::EINVAL));
    assert_eq!(h.write("", RuleKind::Deny, "b 8:* w"), Ok(()));
    assert_eq!(
        h.exceptions("a/b").unwrap(),
        [wex(DeviceType::Block, 8, WILDCARD, "w")]
    );
    // Lifting it at the root is permitted and does not propagate.
    assert_eq!(h.write("", RuleKind::Allow, "b 8:* w"), Ok(()));
    assert_eq!(h.exceptions(""), Ok(&[][..]));
    assert_eq!(
        h.exceptions("a/b").unwrap(),
        [wex(DeviceType::Block, 8, WILDCARD, "w")]
    );
    // Below the root, lifting needs the parent to have lifted it first.
    assert_eq!(
        h.write("a/b", RuleKind::Allow, "b 8:* w"),
        Err(Errno::EPERM)
    );
    assert_eq!(h.write("a", RuleKind::Allow, "b 8:* w"), Ok(()));
    assert_eq!(h.write("a/b", RuleKind::Allow, "b 8:* w"), Ok(()));
    assert_eq!(h.exceptions("a/b").unwrap(), []);
}

#[test]
fn failed_writes_change_nothing() {
    let (mut h, _) = run(&[
        "mkdir a",
        "write a deny c 1:3 r",
        "mkdir a/b",
        "mkdir a/b/c",
        "write a/b/c deny a",
    ]);
    let before = h.clone();
    assert_eq!(
        h.write("a/b", RuleKind::Allow, "c 1:3 r"),
        Err(Errno::EPERM)
    );
    assert_eq!(h.write("a/b", RuleKind::Deny, "a"), Err(Errno::EINVAL));
    assert_eq!(h.write("a/b/c", RuleKind::Allow, "a"), Ok(()));
    assert_eq!(h.write("a/b/c", RuleKind::Deny, "a"), Ok(()));
    assert_eq!(
        h.write("a/b/c", RuleKind::Allow, "c 1:3 r"),
        Err(Errno::EPERM)
    );
    assert_eq!(
        h.write("a/b/c", RuleKind::Allow, "c 1:3"),
        Err(Errno::EINVAL)
    );
    assert_eq!(h, before);
}

#[rstest]
#[case("a", Ok(()))]
#[case("a/b", Err(OracleError::NoParent("a/b".into())))]
#[case("", Err(OracleError::BadPath("".into())))]
#[case("/a", Err(OracleError::BadPath("/a".into())))]
#[case("a/", Err(OracleError::BadPath("a/".into())))]
#[case("x//y", Err(OracleError::BadPath("x//y".into())))]
#[case("..", Err(OracleError::BadPath("..".into())))]
#[case("x/./y", Err(OracleError::BadPath("x/./y".into())))]
fn mkdir_paths(#[case] path: &str, #[case] want: Result<(), OracleError>) {
    let mut h = Hierarchy::new();
    assert_eq!(h.mkdir(path), want);
    if want.is_ok() {
        assert_eq!(h.mkdir(path), Err(OracleError::Exists(path.into())));
    }
}

#[test]
fn unknown_paths_are_errors() {
    let mut h = Hierarchy::new();
    let req = Request::new(DeviceType::Char, 1, 3, Access::READ);
    let missing = || OracleError::NoSuchCgroup("nope".into());
    assert_eq!(h.list("nope"), Err(missing()));
    assert_eq!(h.check("nope", &req), Err(missing()));
    assert_eq!(h.behavior("nope"), Err(missing()));
    assert_eq!(h.exceptions("nope"), Err(missing()));
    assert_eq!(h.try_write("nope", RuleKind::Deny, "a"), Err(missing()));
}

#[test]
#[should_panic(expected = "no cgroup")]
fn write_to_unknown_path_panics() {
    let _ = Hierarchy::new().write("nope", RuleKind::Deny, "a");
}

fn rules(lines: &[(&str, &str)]) -> Vec<Rule> {
    lines
        .iter()
        .map(|(kind, text)| {
            Rule::new(
                if *kind == "allow" {
                    RuleKind::Allow
                } else {
                    RuleKind::Deny
                },
                *text,
            )
            .unwrap()
        })
        .collect()
}

#[rstest]
#[case::empty(&[], "c 1:3 rwm", Verdict::Allow)]
#[case::deny_list(&[("deny", "c 1:3 w")], "c 1:3 rw", Verdict::Deny)]
#[case::allow_list(&[("deny", "a"), ("allow", "c 1:3 rw")], "c 1:3 rw", Verdict::Allow)]
#[case::allow_list_m(&[("deny", "a"), ("allow", "c 1:3 rw")], "c 1:3 m", Verdict::Deny)]
#[case::runc_default(&[("deny", "a"), ("allow", "c *:* m"), ("allow", "b *:* m"), ("allow", "c 1:3 rwm")], "b 8:0 m", Verdict::Allow)]
#[case::back_to_allow(&[("deny", "a"), ("allow", "c 1:3 r"), ("allow", "a")], "b 8:0 rwm", Verdict::Allow)]
#[case::allow_mode_allow_removes(&[("deny", "c 1:3 rw"), ("allow", "c 1:3 w")], "c 1:3 w", Verdict::Allow)]
fn decide_rules(#[case] list: &[(&str, &str)], #[case] req: &str, #[case] want: Verdict) {
    let rules = rules(list);
    assert_eq!(decide(&rules, &Request::parse(req).unwrap()), want);
}

#[test]
fn state_of_rules() {
    let r = rules(&[
        ("deny", "a"),
        ("allow", "c 1:3 r"),
        ("allow", "c 1:3 w"),
        ("allow", "b *:* m"),
        ("deny", "c 1:3 r"),
    ]);
    assert_eq!(
        state_of(&r),
        (
            Behavior::Deny,
            vec![
                ex("c 1:3 w"),
                wex(DeviceType::Block, WILDCARD, WILDCARD, "m")
            ]
        )
    );
    assert_eq!(state_of(&[]), (Behavior::Allow, vec![]));
}

#[test]
fn zero_length_write_changes_nothing() {
    let mut h = Hierarchy::new();
    h.mkdir("a").unwrap();
    h.write("a", RuleKind::Deny, "a").unwrap();
    assert_eq!(h.write("a", RuleKind::Allow, ""), Ok(()));
    assert_eq!(h.write("a", RuleKind::Deny, ""), Ok(()));
    assert_eq!(h.list("a").unwrap(), "");
    // Whitespace alone does reach the parser, which finds nothing.
    assert_eq!(h.write("a", RuleKind::Allow, " "), Err(Errno::EINVAL));
}
