//! What the kernel can be asked about: the rule space of the shared
//! generator ([`devcg_differential::gen`]) narrowed to numbers a real node
//! can carry (major < 4096, minor < 2^20) and, for majors, driverless on
//! this machine or `*`; and the devices to probe for a list.

use devcg_differential::gen::{Numbers, Space};
use devcg_engine::v1text::V1Text;
use devcg_engine::{DeviceType, Rule, WILDCARD};

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

/// Rule lists for this machine's kernel: candidate numbers without a
/// driver, and never an empty access (the kernel refuses to write one, so
/// its meaning would differ between the oracle and the cgroup).
pub fn space(drivers: &Drivers) -> Space {
    let majors = |ty| {
        MAJOR_CANDIDATES
            .iter()
            .copied()
            .filter(|&m| !drivers.has_driver(ty, m))
            .collect::<Vec<_>>()
    };
    Space {
        numbers: Numbers::Pools {
            block_majors: majors(DeviceType::Block),
            char_majors: majors(DeviceType::Char),
            minors: MINOR_CANDIDATES.to_vec(),
        },
        empty_access: false,
    }
}

/// Devices to probe for a rule list: every probeable combination of the
/// numbers it names (per type, majors of both types), plus one number it
/// does not name on each axis; at most `max` of them, chosen at random.
pub fn devices(
    rng: &mut Rng,
    space: &Space,
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
    if let Numbers::Pools {
        block_majors,
        char_majors,
        minors: pool,
    } = &space.numbers
    {
        for p in [char_majors, block_majors] {
            if !p.is_empty() {
                majors.push(rng.pick(p));
            }
        }
        if !pool.is_empty() {
            minors.push(rng.pick(pool));
        }
    }
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
    use devcg_differential::gen::{rules_in, Draw};

    #[test]
    fn lists_name_only_realizable_driverless_numbers_and_devices_are_probeable() {
        let drivers = Drivers::parse("Character devices:\n  1 mem\n\nBlock devices:\n  8 sd\n");
        let space = space(&drivers);
        let strategy = rules_in(&space, 6);
        let (mut draw, mut rng) = (Draw::new(7), Rng::new(7));
        let mut twin = Rng::new(7);
        for _ in 0..200 {
            let rules = draw.value(&strategy);
            for r in &rules {
                if let V1Text::Exception(ex) = r.parsed {
                    assert!(ex.major == WILDCARD || ex.major < 4096);
                    assert!(ex.minor == WILDCARD || ex.minor < 1 << 20);
                    assert!(ex.major == WILDCARD || !drivers.has_driver(ex.ty, ex.major));
                    assert!(!ex.access.is_empty());
                }
            }
            let devices = devices(&mut rng, &space, &drivers, &rules, 40);
            assert_eq!(
                devices,
                super::devices(&mut twin, &space, &drivers, &rules, 40)
            );
            for d in devices {
                assert_eq!(drivers.probeable(d), Ok(()));
            }
        }
    }
}
