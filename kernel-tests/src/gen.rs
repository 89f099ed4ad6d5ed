//! Seeded random rule lists the real kernel can be asked about: every number
//! a rule names is realizable (major < 4096, minor < 2^20) and, for majors,
//! driverless on this machine, or `*`. (The root crate's generators range
//! over all of u32 and are proptest strategies, for shrinking.)

use devcg_engine::v1text::V1Text;
use devcg_engine::{Access, DeviceType, Exception, Rule, RuleKind, WILDCARD};

use crate::device::{Device, Drivers};
use devcg_differential::rng::Rng;

/// Majors worth naming: small ones, byte and 12-bit boundaries.
const MAJOR_CANDIDATES: [u32; 16] = [
    0, 2, 3, 6, 8, 9, 100, 200, 255, 256, 511, 512, 1000, 2048, 4094, 4095,
];
/// Minors worth naming: small ones, byte, 16- and 20-bit boundaries.
const MINOR_CANDIDATES: [u32; 12] = [
    0, 1, 2, 3, 255, 256, 65535, 65536, 524288, 1048574, 1048575, 7,
];

/// The numbers rules may name on this machine.
#[derive(Clone, Debug)]
pub struct Pools {
    char_majors: Vec<u32>,
    block_majors: Vec<u32>,
    minors: Vec<u32>,
}

impl Pools {
    pub fn new(drivers: &Drivers) -> Pools {
        let majors = |ty| {
            MAJOR_CANDIDATES
                .iter()
                .copied()
                .filter(|&m| !drivers.has_driver(ty, m))
                .collect::<Vec<_>>()
        };
        Pools {
            char_majors: majors(DeviceType::Char),
            block_majors: majors(DeviceType::Block),
            minors: MINOR_CANDIDATES.to_vec(),
        }
    }

    fn majors(&self, ty: DeviceType) -> &[u32] {
        match ty {
            DeviceType::Char => &self.char_majors,
            DeviceType::Block => &self.block_majors,
        }
    }
}

/// A random rule list of up to `max_len` rules: half of them allow lists
/// (`deny a` first). Each list draws a few majors and minors and reuses
/// them, so rules collide (same key, overlapping wildcards).
pub fn rules(rng: &mut Rng, pools: &Pools, max_len: usize) -> Vec<Rule> {
    let few =
        |rng: &mut Rng, pool: &[u32]| -> Vec<u32> { (0..3).map(|_| rng.pick(pool)).collect() };
    let majors = [
        few(rng, pools.majors(DeviceType::Block)),
        few(rng, pools.majors(DeviceType::Char)),
    ];
    let minors = few(rng, &pools.minors);
    let mut out = Vec::new();
    if rng.chance(1, 2) {
        out.push(Rule::from_parsed(RuleKind::Deny, V1Text::All));
    }
    let len = rng.below(max_len as u64 + 1) as usize;
    for _ in 0..len {
        let kind = if rng.chance(1, 2) {
            RuleKind::Allow
        } else {
            RuleKind::Deny
        };
        let text = if rng.chance(1, 14) {
            V1Text::All
        } else {
            let ty = rng.pick(&DeviceType::ALL);
            let major = if rng.chance(1, 4) {
                WILDCARD
            } else {
                rng.pick(&majors[ty as usize - 1])
            };
            let minor = if rng.chance(1, 4) {
                WILDCARD
            } else {
                rng.pick(&minors)
            };
            // Never empty: its canonical text (`c 1:3 `) is refused by the
            // kernel, so its meaning would differ between oracle and rules.
            let access = Access(1 + rng.below(7) as u8);
            V1Text::Exception(Exception {
                ty,
                major,
                minor,
                access,
            })
        };
        out.push(Rule::from_parsed(kind, text));
    }
    out
}

/// Devices to probe for a rule list: every probeable combination of the
/// numbers it names (per type, majors of both types), plus one number it
/// does not name on each axis; at most `max` of them, chosen at random.
pub fn devices(
    rng: &mut Rng,
    pools: &Pools,
    drivers: &Drivers,
    rules: &[Rule],
    max: usize,
) -> Vec<Device> {
    let mut majors: Vec<u32> = Vec::new();
    let mut minors: Vec<u32> = Vec::new();
    for rule in rules {
        if let V1Text::Exception(ex) = rule.parsed {
            majors.push(ex.major);
            minors.push(ex.minor);
        }
    }
    majors.push(rng.pick(&pools.char_majors));
    majors.push(rng.pick(&pools.block_majors));
    minors.push(rng.pick(&pools.minors));
    majors.retain(|&m| m != WILDCARD);
    minors.retain(|&m| m != WILDCARD);
    majors.sort_unstable();
    majors.dedup();
    minors.sort_unstable();
    minors.dedup();
    let mut all = Vec::new();
    for ty in DeviceType::ALL {
        for &major in &majors {
            for &minor in &minors {
                let dev = Device::new(ty, major, minor);
                if drivers.probeable(dev).is_ok() {
                    all.push(dev);
                }
            }
        }
    }
    // A partial Fisher-Yates: a random subset, in a stable order after.
    let keep = all.len().min(max);
    for i in 0..keep {
        let j = i + rng.below((all.len() - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(keep);
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_lists_and_only_realizable_driverless_numbers() {
        let drivers = Drivers::parse("Character devices:\n  1 mem\n\nBlock devices:\n  8 sd\n");
        let pools = Pools::new(&drivers);
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..200 {
            let ra = rules(&mut a, &pools, 6);
            let rb = rules(&mut b, &pools, 6);
            assert_eq!(ra, rb);
            for r in &ra {
                if let V1Text::Exception(ex) = r.parsed {
                    assert!(ex.major == WILDCARD || ex.major < 4096);
                    assert!(ex.minor == WILDCARD || ex.minor < 1 << 20);
                    assert!(ex.major == WILDCARD || !drivers.has_driver(ex.ty, ex.major));
                    assert!(!ex.access.is_empty());
                }
            }
            let da = devices(&mut a, &pools, &drivers, &ra, 40);
            assert_eq!(da, devices(&mut b, &pools, &drivers, &rb, 40));
            for d in da {
                assert_eq!(drivers.probeable(d), Ok(()));
            }
        }
    }
}
