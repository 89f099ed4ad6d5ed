//! The symbolic split (`emulator::symbolic`) against the emulator's runs:
//! every leaf answers, at its corners and at a point inside, for every
//! access of its lanes, what a run of the program answers; and the leaves
//! of one type cover every request exactly once.

use devcg_differential::audit::{ACCESSES, MAJOR_LIMIT, MINOR_LIMIT};
use devcg_differential::{gen, programs};
use devcg_emulator::symbolic::{partition, Leaf, Region};
use devcg_emulator::Emulator;
use devcg_engine::{strategy, DeviceType, Program, Request, Verdict};
use proptest::prelude::*;

const PLANE: Region = Region {
    majors: (0, MAJOR_LIMIT - 1),
    minors: (0, MINOR_LIMIT - 1),
};

const BUDGET: usize = 5_000_000;

/// Leaves checked per program and type: the first ones, then a spread.
const CHECKED: usize = 400;

fn area(r: &Region) -> u128 {
    u128::from(r.majors.1 - r.majors.0 + 1) * u128::from(r.minors.1 - r.minors.0 + 1)
}

/// A point of `span` picked by `pick`.
fn inside((lo, hi): (u32, u32), pick: u32) -> u32 {
    lo + pick % (hi - lo + 1).max(1)
}

fn check_leaves(
    emulator: &Emulator,
    ty: DeviceType,
    leaves: &[Leaf],
    pick: (u32, u32),
) -> Result<(), TestCaseError> {
    // Every (request, access) once: the areas per lane add up to the plane.
    for lane in 0..ACCESSES.len() {
        let covered: u128 = leaves
            .iter()
            .filter(|l| l.lanes & (1 << lane) != 0)
            .map(|l| area(&l.region))
            .sum();
        prop_assert_eq!(covered, area(&PLANE), "lane {} of {}", lane, ty);
    }
    let step = leaves.len().div_ceil(CHECKED).max(1);
    for leaf in leaves.iter().step_by(step) {
        let r = leaf.region;
        let points = [
            (r.majors.0, r.minors.0),
            (r.majors.1, r.minors.1),
            (inside(r.majors, pick.0), inside(r.minors, pick.1)),
        ];
        for (major, minor) in points {
            for (lane, &access) in ACCESSES.iter().enumerate() {
                if leaf.lanes & (1 << lane) == 0 {
                    continue;
                }
                let req = Request::new(ty, major, minor, access);
                let want = if leaf.allowed & (1 << lane) != 0 {
                    Verdict::Allow
                } else {
                    Verdict::Deny
                };
                prop_assert_eq!(emulator.run(&req).ok(), Some(want), "{} in {:?}", req, leaf);
            }
        }
    }
    Ok(())
}

fn check_program(
    program: &Program,
    pick: (u32, u32),
    must_follow: bool,
) -> Result<(), TestCaseError> {
    let Ok(emulator) = Emulator::new(program) else {
        return Ok(());
    };
    for ty in DeviceType::ALL {
        match partition(program, ty, &ACCESSES, PLANE, BUDGET) {
            Ok(leaves) => check_leaves(&emulator, ty, &leaves, pick)?,
            Err(e) => prop_assert!(!must_follow, "not followed: {}", e),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Every generator's programs, devcg's and the runtime models, are
    /// followed (the audit's fast path), and correctly.
    #[test]
    fn every_strategy_is_followed_exactly(
        rules in gen::rules(10),
        pick in (any::<u32>(), any::<u32>()),
    ) {
        for s in strategy::all() {
            let Ok(program) = s.compile(&rules) else { continue };
            check_program(&program, pick, true)?;
        }
    }

    /// Programs no generator writes (every ALU and jump form, stack and
    /// context access): where the split follows one, it is right.
    #[test]
    fn random_programs_are_followed_exactly_or_not_at_all(
        shape in programs::shapes(&programs::ProgramSpace {
            v4: true,
            invalid: false,
            max_items: 12,
            loops: false,
            extended: true,
        }),
        pick in (any::<u32>(), any::<u32>()),
    ) {
        check_program(&shape.assemble(), pick, false)?;
    }
}
