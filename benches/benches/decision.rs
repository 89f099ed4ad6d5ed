//! Cost per decision in rbpf's interpreter (`Emulator::run`) and rbpf's JIT,
//! for every strategy, rule list and request. Cells that cannot run print
//! why (`n/a: …`) instead of vanishing.
//!
//! `cargo bench -p devcg-benches --bench decision [-- FILTER]`; narrow with
//! DEVCG_BENCH_SIZES / DEVCG_BENCH_STRATEGIES (see `devcg_benches::suite`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use devcg_benches::exec::Jit;
use devcg_benches::suite;
use devcg_benches::workload::Hit;
use devcg_emulator::Emulator;

fn decisions(c: &mut Criterion) {
    let cases = suite::cases().expect("rule lists");
    for case in &cases {
        let id = case.id();
        let program = match &case.program {
            Ok(p) => p,
            Err(why) => {
                eprintln!("interp+jit/{id}: n/a: {why}");
                continue;
            }
        };
        let emulator = match Emulator::new(program) {
            Ok(e) => e,
            Err(why) => {
                eprintln!("interp+jit/{id}: n/a: the emulator refuses the program: {why}");
                continue;
            }
        };
        let mut group = c.benchmark_group(format!("interp/{}", case.strategy));
        for hit in Hit::ALL {
            let req = case.workload.request(hit);
            let bench = format!("{}/{}", case.workload.list.slug(), hit.slug());
            group.bench_with_input(BenchmarkId::new(bench, case.workload.n), &req, |b, req| {
                b.iter(|| emulator.run(black_box(req)))
            });
        }
        group.finish();
        let w = &case.workload;
        let jit = Jit::new(&emulator, program).and_then(|j| {
            j.cross_check(&emulator, &[w.matching, w.no_match])?;
            Ok(j)
        });
        match jit {
            Err(why) => eprintln!("jit/{id}: n/a: {why}"),
            Ok(jit) => {
                let mut group = c.benchmark_group(format!("jit/{}", case.strategy));
                for hit in Hit::ALL {
                    let req = w.request(hit);
                    let bench = format!("{}/{}", w.list.slug(), hit.slug());
                    group.bench_with_input(BenchmarkId::new(bench, w.n), &req, |b, req| {
                        b.iter(|| jit.run(black_box(req)))
                    });
                }
                group.finish();
            }
        }
    }
}

criterion_group! {
    name = benches;
    // Hundreds of cells: short by default; criterion's flags override.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = decisions
}
criterion_main!(benches);
