//! Random rule lists and requests, as proptest strategies so that property
//! tests shrink them, and drawn from a seed ([`Draw`]) by the sampled and
//! the kernel differentials. One generator, two number spaces ([`Numbers`]):
//! all of u32 for the emulator, or the numbers a running kernel can be asked
//! about.
//!
//! Numbers are drawn from the values where filters go wrong: 0, the 12- and
//! 20-bit dev_t limits, the sign bit, `*` (~0) and its neighbour, plus small
//! numbers so that rules collide; requests reuse the numbers the rules name.

use devcg_engine::v1text::V1Text;
use devcg_engine::{Access, DeviceType, Exception, Request, Rule, RuleKind, WILDCARD};
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

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

/// Where a rule list's numbers come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Numbers {
    /// All of u32, weighted toward [`BOUNDARY`] and small numbers.
    Any,
    /// Only these (for a real kernel: realizable numbers, majors without a
    /// driver). Each list picks three majors per type and three minors and
    /// reuses them, so that its rules collide; `*` a quarter of the time.
    Pools {
        block_majors: Vec<u32>,
        char_majors: Vec<u32>,
        minors: Vec<u32>,
    },
}

/// What rule lists look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Space {
    pub numbers: Numbers,
    /// Whether a rule may name no access at all (`c 1:3 ` is legal v1 text,
    /// but the kernel refuses to write it, so a list meant for the kernel
    /// must not hold one).
    pub empty_access: bool,
}

impl Space {
    /// Every number, every access set: the emulator's differential.
    pub fn any() -> Space {
        Space {
            numbers: Numbers::Any,
            empty_access: true,
        }
    }
}

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

fn rule_access(empty: bool) -> BoxedStrategy<Access> {
    if empty {
        // Non-empty mostly; an empty set (text `c 1:3 \nr`) is rare.
        prop_oneof![20 => (1u8..=7).prop_map(Access), 1 => Just(Access::NONE)].boxed()
    } else {
        (1u8..=7).prop_map(Access).boxed()
    }
}

/// A rule whose numbers come from `major(ty)` and `minor`.
fn rule_from(
    major: impl Fn(DeviceType) -> BoxedStrategy<u32> + 'static,
    minor: BoxedStrategy<u32>,
    access: BoxedStrategy<Access>,
) -> BoxedStrategy<Rule> {
    let kind = prop_oneof![Just(RuleKind::Allow), Just(RuleKind::Deny)];
    let exception = device_type()
        .prop_flat_map(move |ty| (Just(ty), major(ty), minor.clone(), access.clone()))
        .prop_map(|(ty, major, minor, access)| {
            V1Text::Exception(Exception {
                ty,
                major,
                minor,
                access,
            })
        });
    let text = prop_oneof![1 => Just(V1Text::All), 12 => exception];
    (kind, text)
        .prop_map(|(kind, text)| Rule::from_parsed(kind, text))
        .boxed()
}

/// One rule over all of u32.
pub fn rule() -> BoxedStrategy<Rule> {
    rule_from(|_| number().boxed(), number().boxed(), rule_access(true))
}

/// `*` a quarter of the time, else one of `pool`.
fn from_pool(pool: Vec<u32>) -> BoxedStrategy<u32> {
    if pool.is_empty() {
        return Just(WILDCARD).boxed();
    }
    prop_oneof![1 => Just(WILDCARD), 3 => proptest::sample::select(pool)].boxed()
}

/// Three of `pool` (with repeats), or none if it is empty.
fn few(pool: &[u32]) -> BoxedStrategy<Vec<u32>> {
    if pool.is_empty() {
        return Just(Vec::new()).boxed();
    }
    proptest::collection::vec(proptest::sample::select(pool.to_vec()), 3).boxed()
}

/// Lists of up to `max_len` rules in `space`. Both modes: half of the lists
/// start with `deny a` (an allow list).
pub fn rules_in(space: &Space, max_len: usize) -> BoxedStrategy<Vec<Rule>> {
    let access = rule_access(space.empty_access);
    let list = match &space.numbers {
        Numbers::Any => proptest::collection::vec(
            rule_from(|_| number().boxed(), number().boxed(), access),
            0..=max_len,
        )
        .boxed(),
        Numbers::Pools {
            block_majors,
            char_majors,
            minors,
        } => (few(block_majors), few(char_majors), few(minors))
            .prop_flat_map(move |(block, char, minors)| {
                let major = move |ty| match ty {
                    DeviceType::Block => from_pool(block.clone()),
                    DeviceType::Char => from_pool(char.clone()),
                };
                proptest::collection::vec(
                    rule_from(major, from_pool(minors), access.clone()),
                    0..=max_len,
                )
            })
            .boxed(),
    };
    (any::<bool>(), list)
        .prop_map(|(allow_list, mut rules)| {
            if allow_list {
                rules.insert(0, Rule::from_parsed(RuleKind::Deny, V1Text::All));
            }
            rules
        })
        .boxed()
}

/// Lists over all of u32 ([`Space::any`]).
pub fn rules(max_len: usize) -> BoxedStrategy<Vec<Rule>> {
    rules_in(&Space::any(), max_len)
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

/// Values drawn from a seed: the same seed, the same values, on every
/// machine (ChaCha, as proptest seeds it).
pub struct Draw {
    runner: TestRunner,
}

impl Draw {
    pub fn new(seed: u64) -> Draw {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
        Draw {
            runner: TestRunner::new_with_rng(Config::default(), rng),
        }
    }

    pub fn value<S: Strategy>(&mut self, strategy: &S) -> S::Value {
        strategy
            .new_tree(&mut self.runner)
            .expect("devcg's generators never reject")
            .current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_lists_and_pools_are_respected() {
        let space = Space {
            numbers: Numbers::Pools {
                block_majors: vec![3, 200],
                char_majors: vec![9],
                minors: vec![0, 1 << 19],
            },
            empty_access: false,
        };
        let strategy = rules_in(&space, 6);
        let (mut a, mut b) = (Draw::new(7), Draw::new(7));
        let mut named = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let ra = a.value(&strategy);
            assert_eq!(ra, b.value(&strategy));
            for r in &ra {
                if let V1Text::Exception(ex) = r.parsed {
                    let majors: &[u32] = match ex.ty {
                        DeviceType::Block => &[3, 200, WILDCARD],
                        DeviceType::Char => &[9, WILDCARD],
                    };
                    assert!(majors.contains(&ex.major), "{r}");
                    assert!([0, 1 << 19, WILDCARD].contains(&ex.minor), "{r}");
                    assert!(!ex.access.is_empty(), "{r}");
                    named.insert((ex.ty, ex.major, ex.minor));
                }
            }
        }
        // Every pool number (and `*`) shows up: the pools are not narrowed.
        assert!(named.len() >= 10, "{named:?}");
    }

    #[test]
    fn an_empty_pool_gives_wildcards_only() {
        let space = Space {
            numbers: Numbers::Pools {
                block_majors: vec![],
                char_majors: vec![],
                minors: vec![5],
            },
            empty_access: false,
        };
        let mut draw = Draw::new(1);
        for _ in 0..100 {
            for r in draw.value(&rules_in(&space, 4)) {
                if let V1Text::Exception(ex) = r.parsed {
                    assert_eq!(ex.major, WILDCARD);
                }
            }
        }
    }
}
