//! Every input target survives a fixed, seeded run: no panic, and no input
//! slower than two seconds (a hang in the making). `scripts/test.sh` runs
//! the same targets longer, bounded in time, through `devcg-fuzz`.

use std::time::Duration;

#[test]
fn every_target_survives_a_seeded_run() {
    let targets = devcg_fuzz::targets();
    let names: Vec<_> = targets.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "v1-rules",
            "oci-json",
            "oracle-script",
            "program-raw",
            "program-json",
            "program-elf",
            "program-asm"
        ]
    );
    for t in &targets {
        assert!(!t.seeds.is_empty(), "{}: no seeds", t.name);
        let r = devcg_fuzz::fuzz(t, 1, 20_000, Duration::from_secs(120));
        assert!(r.panics.is_empty(), "{}: {:?}", t.name, r.panics.first());
        let (input, slowest) = r.slowest.unwrap();
        assert!(
            slowest < Duration::from_secs(2),
            "{}: {slowest:?} on {:?}",
            t.name,
            String::from_utf8_lossy(&input)
        );
        // The mutants get past the parsers, not only into their errors.
        assert!(r.accepted > 0, "{}: nothing accepted", t.name);
    }
}

#[test]
fn mutation_is_deterministic_and_bounded() {
    let mut a = devcg_fuzz::Rng::new(7);
    let mut b = devcg_fuzz::Rng::new(7);
    let seed = b"allow c 1:3 rwm\n".to_vec();
    for _ in 0..1000 {
        let x = devcg_fuzz::mutate(&mut a, &seed, &[], &[b"*"], 64);
        let y = devcg_fuzz::mutate(&mut b, &seed, &[], &[b"*"], 64);
        assert_eq!(x, y);
        assert!(x.len() <= 64);
    }
}
