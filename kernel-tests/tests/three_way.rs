//! The three-way differential on the real kernel (oracle, emulator, kernel)
//! and the emulator's fidelity on random programs, seeded and bounded for
//! CI. `DEVCG_KERNEL_CASES` (rule lists, default 500),
//! `DEVCG_FIDELITY_PROGRAMS` (default 2000) and `DEVCG_KERNEL_SEED` change
//! the run. Needs root, cgroup2 and CAP_BPF; skips with one line otherwise.

use devcg_kernel::{differential, fidelity, v2};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn own_strategies_agree_with_oracle_emulator_and_kernel() {
    if let Some(why) = v2::skip_reason() {
        println!("{why}");
        return;
    }
    let cases = env_u64("DEVCG_KERNEL_CASES", 500);
    let seed = env_u64("DEVCG_KERNEL_SEED", 0x6b65_726e_656c);
    let strategies = devcg_engine::strategy::all();
    let reports = differential::three_way(&strategies, cases, seed).expect("differential");
    println!("seed {seed:#x}\n{}", differential::table(&reports));
    for r in &reports {
        assert_eq!(r.rule_sets, cases, "{}", r.strategy);
        if r.own {
            assert!(
                r.attached > 0 && r.probes > 0,
                "{}: nothing probed",
                r.strategy
            );
        }
    }
    let failed: Vec<_> = reports
        .iter()
        .filter(|r| !r.pass)
        .map(|r| r.strategy.clone())
        .collect();
    assert!(
        failed.is_empty(),
        "own strategies diverge: {failed:?} (table above)"
    );
}

#[test]
fn emulator_matches_the_kernel_on_random_programs() {
    if let Some(why) = v2::skip_reason() {
        println!("{why}");
        return;
    }
    let programs = env_u64("DEVCG_FIDELITY_PROGRAMS", 2000);
    let seed = env_u64("DEVCG_KERNEL_SEED", 0x6b65_726e_656c);
    let r = fidelity::fidelity(programs, seed).expect("fidelity");
    println!("{}", fidelity::summary(&r));
    assert!(r.loaded * 2 > r.programs, "most programs should load");
    assert!(r.probes > 0);
    assert_eq!(r.unexpected, 0);
    // The generator's breaches are placed where every verifier meets them.
    assert!(r.breaching > 0);
    assert_eq!(
        r.breaching_loaded,
        0,
        "the kernel loaded programs built to break a rule:\n{}",
        r.breaching_loaded_examples.join("\n")
    );
    assert_eq!(
        r.emulator_accepts_kernel_refuses,
        0,
        "the emulator accepts programs the kernel refuses:\n{}",
        r.emulator_accepts_examples.join("\n")
    );
    assert!(
        r.emulator_refusals * 100 < r.loaded,
        "the emulator refuses 1% or more of what the kernel loads: {:?}",
        r.emulator_refusal_reasons
    );
    assert!(
        r.divergences.is_empty(),
        "the emulator and the kernel disagree:\n{}",
        r.divergences
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
