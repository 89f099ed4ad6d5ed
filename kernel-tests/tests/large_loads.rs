//! devcg's own strategies load in the real kernel at 1,000 rules, and
//! `tree` and `map` at 10,000, allow list and deny list. For a compare
//! chain the verifier, not the program size, is the limit: a chain that
//! carries what its tests learnt down to later rules needs ~N²/2 of its 1M
//! steps, and every rule leaves a branch pending on its stack of 8,192.
//! Needs root and CAP_BPF; skips with one line otherwise.

use devcg_engine::{strategy, Rule, RuleFile};
use devcg_kernel::bpf;
use devcg_kernel::v2;
use rstest::rstest;

/// Distinct exceptions, mostly exact char devices, some `*` (deterministic).
fn rules(len: usize, allow_list: bool) -> Vec<Rule> {
    let mut x: u64 = 0x006c_6172_6765;
    let mut next = |limit: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % limit
    };
    let (head, kw) = if allow_list {
        ("deny a", "allow")
    } else {
        ("allow a", "deny")
    };
    let mut text = format!("{head}\n");
    for i in 0..len {
        let ty = if next(5) == 0 { 'b' } else { 'c' };
        let major = match next(20) {
            0 => "*".to_string(),
            _ => next(4096).to_string(),
        };
        // The index keeps the exceptions distinct.
        let minor = match next(30) {
            0 => "*".to_string(),
            _ => (i as u64 * 97 + next(97)).to_string(),
        };
        let access = ["r", "rw", "rwm", "m", "w"][next(5) as usize];
        text.push_str(&format!("{kw} {ty} {major}:{minor} {access}\n"));
    }
    RuleFile::parse("large", &text).unwrap()
}

/// `linear` stops between 2,000 and 4,000 rules: each rule leaves a branch
/// pending on the verifier's stack and the kernel allows 8,192 (see
/// engine/src/strategy/linear.rs).
#[rstest]
#[case::linear("linear", 1_000)]
#[case::tree("tree", 1_000)]
#[case::map("map", 1_000)]
#[case::tree("tree", 10_000)]
#[case::map("map", 10_000)]
fn own_strategy_loads_at_scale(
    #[case] name: &str,
    #[case] len: usize,
    #[values(true, false)] allow_list: bool,
) {
    if let Some(why) = v2::skip_reason() {
        println!("{why}");
        return;
    }
    let s = strategy::by_name(name).unwrap();
    assert!(s.is_own());
    let program = s.compile(&rules(len, allow_list)).unwrap();
    if let Err(e) = bpf::load(&program, name) {
        panic!(
            "{name} ({len} rules, {}): {} slots refused: {e}",
            if allow_list {
                "allow list"
            } else {
                "deny list"
            },
            program.len()
        );
    }
}

/// A finding (docs/findings.md, "Scale"): the chains runc, crun, youki and
/// LXC generate load at 300 rules and are refused at 1,000, the verifier
/// giving up after 1M steps (E2BIG), for allow and deny lists alike; on
/// 6.18 the first refusal came at 400 (crun, youki, LXC) and 500 (runc).
#[rstest]
fn model_chains_stop_loading_at_a_few_hundred_rules(
    #[values("runc", "crun", "youki", "lxc")] name: &str,
    #[values(true, false)] allow_list: bool,
) {
    if let Some(why) = v2::skip_reason() {
        println!("{why}");
        return;
    }
    let s = strategy::by_name(name).unwrap();
    let small = s.compile(&rules(300, allow_list)).unwrap();
    if let Err(e) = bpf::load(&small, name) {
        panic!("{name} at 300 rules: refused: {e}");
    }
    let large = s.compile(&rules(1_000, allow_list)).unwrap();
    match bpf::load(&large, name) {
        Ok(_) => panic!("{name} at 1,000 rules: loaded; the finding no longer holds"),
        Err(e) => assert!(e.to_string().contains("E2BIG"), "{name}: {e}"),
    }
}
