//! Random rule lists and requests for the differential, as proptest
//! strategies so that failures shrink.
//!
//! Numbers are drawn from the values where filters go wrong: 0, the 12- and
//! 20-bit dev_t limits, the sign bit, `*` (~0) and its neighbour, plus small
//! numbers so that rules collide; requests reuse the numbers the rules name.

use devcg_engine::v1text::V1Text;
use devcg_engine::{Access, DeviceType, Exception, Request, Rule, RuleKind, WILDCARD};
use proptest::prelude::*;

pub const BOUNDARY: [u32; 12] = [
    0,
    1,
    4095,
    4096,
    (1 << 20) - 1,
    1 << 20,
    (1 << 31) - 1,
    1 << 31,
    u32::MAX - 1,
    WILDCARD,
    7,
    254,
];

pub fn number() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..4,
        3 => proptest::sample::select(BOUNDARY.to_vec()),
        1 => any::<u32>(),
    ]
}

fn device_type() -> impl Strategy<Value = DeviceType> {
    prop_oneof![Just(DeviceType::Char), Just(DeviceType::Block)]
}

fn rule_access() -> impl Strategy<Value = Access> {
    // Non-empty mostly; an empty set (text `c 1:3 \nr`) is legal but rare.
    prop_oneof![20 => (1u8..=7).prop_map(Access), 1 => Just(Access::NONE)]
}

pub fn rule() -> impl Strategy<Value = Rule> {
    let kind = prop_oneof![Just(RuleKind::Allow), Just(RuleKind::Deny)];
    let text = prop_oneof![
        1 => Just(V1Text::All),
        12 => (device_type(), number(), number(), rule_access())
            .prop_map(|(ty, major, minor, access)| V1Text::Exception(Exception { ty, major, minor, access })),
    ];
    (kind, text).prop_map(|(kind, text)| Rule::from_parsed(kind, text))
}

/// Both modes: half of the lists start with `deny a` (an allow list).
pub fn rules(max_len: usize) -> impl Strategy<Value = Vec<Rule>> {
    (any::<bool>(), prop::collection::vec(rule(), 0..=max_len)).prop_map(
        |(allow_list, mut rules)| {
            if allow_list {
                rules.insert(0, Rule::from_parsed(RuleKind::Deny, V1Text::All));
            }
            rules
        },
    )
}

/// Numbers a rule list names, for requests that hit its rules.
pub fn named_numbers(rules: &[Rule]) -> Vec<u32> {
    let mut nums: Vec<u32> = BOUNDARY.to_vec();
    for rule in rules {
        if let V1Text::Exception(ex) = rule.parsed {
            nums.extend([ex.major, ex.minor]);
        }
    }
    nums.sort_unstable();
    nums.dedup();
    nums
}

pub fn request(numbers: Vec<u32>) -> impl Strategy<Value = Request> {
    let num = prop_oneof![
        4 => proptest::sample::select(numbers),
        1 => number(),
    ];
    (device_type(), num.clone(), num, 0u8..=7)
        .prop_map(|(ty, major, minor, access)| Request::new(ty, major, minor, Access(access)))
}

/// A rule list and requests against it.
pub fn case(max_rules: usize, checks: usize) -> impl Strategy<Value = (Vec<Rule>, Vec<Request>)> {
    rules(max_rules).prop_flat_map(move |rules| {
        let reqs = prop::collection::vec(request(named_numbers(&rules)), 1..=checks.max(1));
        (Just(rules), reqs)
    })
}
