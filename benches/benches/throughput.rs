//! The differential's throughput (checks per second: the emulator and the
//! oracle on random rule lists, what `devcg verify` runs) per strategy, and
//! `verify --exhaustive` on 1,000 and 10,000 rules for devcg's own
//! strategies (those the emulator takes at that size).
//!
//! `cargo bench -p devcg-benches --bench throughput [-- FILTER]`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use devcg_benches::suite;
use devcg_benches::workload::{ListKind, Workload, SEED};
use devcg_differential::sampled::{self, SampleConfig};

/// The allocator the `devcg` binary uses, so that the figures are those of
/// `devcg verify` (rbpf allocates a stack per run).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn differential(c: &mut Criterion) {
    let cfg = SampleConfig {
        cases: 50,
        ..SampleConfig::default()
    };
    let mut group = c.benchmark_group("differential");
    for s in suite::strategies() {
        // Refused lists run no checks: count what one pass really checks.
        let checks = sampled::run(s.as_ref(), &cfg).checks;
        group.throughput(Throughput::Elements(checks));
        group.bench_function(s.name(), |b| b.iter(|| sampled::run(s.as_ref(), &cfg)));
    }
    group.finish();
}

fn exhaustive(c: &mut Criterion) {
    for n in [1_000, 10_000] {
        let mut group = c.benchmark_group(format!("exhaustive-{n}"));
        group.sample_size(10);
        for list in ListKind::ALL {
            let w = Workload::new(list, n, SEED, &|_, _| false).expect("rule list");
            for s in suite::strategies().into_iter().filter(|s| s.is_own()) {
                let program = match s.compile(&w.rules) {
                    Ok(p) => p,
                    Err(why) => {
                        eprintln!("exhaustive-{n}/{}/{}: n/a: {why}", s.name(), list.slug());
                        continue;
                    }
                };
                match devcg_emulator::Emulator::new(&program) {
                    Err(why) => {
                        eprintln!("exhaustive-{n}/{}/{}: n/a: {why}", s.name(), list.slug());
                        continue;
                    }
                    // Over rbpf's 32,767 slots (linear at 10,000 rules) a run
                    // is minutes on the emulator's own interpreter: ten
                    // samples would be half an hour. scripts/bench.sh times
                    // it once.
                    Ok(e) if n > 1_000 && !e.runs_on_rbpf() => {
                        eprintln!(
                            "exhaustive-{n}/{}/{}: n/a here: runs on the emulator's own interpreter \
                             (minutes per run; scripts/bench.sh times it once)",
                            s.name(),
                            list.slug()
                        );
                        continue;
                    }
                    Ok(_) => {}
                }
                group.bench_function(format!("{}/{}", s.name(), list.slug()), |b| {
                    b.iter(|| {
                        devcg_differential::exhaustive::run(&w.rules, &program).expect("emulator")
                    })
                });
            }
        }
        group.finish();
    }
}

/// The audit's deciding part (`devcg audit` after reading the cgroup):
/// a runtime's program for a container-sized list, and devcg's tree and
/// map programs for 10,000 rules, with the expected rules and without
/// (classes from the programs' paths either way).
fn audit(c: &mut Criterion) {
    use devcg_differential::audit::{self, Enforcement};
    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    let cases: [(&str, usize, bool); 6] = [
        ("runc", 20, false),
        ("crun", 20, false),
        ("tree", 10_000, true),
        ("tree", 10_000, false),
        ("map", 10_000, true),
        ("map", 10_000, false),
    ];
    for (name, n, with_rules) in cases {
        let w = Workload::new(ListKind::Allow, n, SEED, &|_, _| false).expect("rule list");
        let s = devcg_engine::strategy::by_name(name).expect("strategy");
        let program = match s.compile(&w.rules) {
            Ok(p) => p,
            Err(why) => {
                eprintln!("audit/{name}-{n}: n/a: {why}");
                continue;
            }
        };
        let enforcement = Enforcement {
            programs: vec![(name.to_string(), program)],
            v1: None,
        };
        let expected = if with_rules {
            w.rules.clone()
        } else {
            Vec::new()
        };
        let id = if with_rules {
            format!("{name}-{n}-expect")
        } else {
            format!("{name}-{n}")
        };
        group.bench_function(id, |b| {
            b.iter(|| audit::audit(&enforcement, &expected).expect("audit"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = differential, exhaustive, audit
}
criterion_main!(benches);
