//! `devcg audit` end to end on the running kernel: devcg's tree and map
//! programs of 10,000 rules and runc's of 20 attached to scratch cgroups,
//! then read back (program dump, maps, kallsyms) and decided, as the CLI
//! does without `--expect`. Root only: elsewhere it says why and measures
//! nothing.
//!
//! `cargo bench -p devcg-benches --bench audit_live`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use devcg_benches::workload::{ListKind, Workload, SEED};
use devcg_differential::audit::{self, Enforcement};
use devcg_kernel::bpf::{self, AttachFlags};
use devcg_kernel::v2::{self, Scratch};

fn audit_live(c: &mut Criterion) {
    if let Some(why) = v2::skip_reason() {
        eprintln!("audit_live: {why}");
        return;
    }
    let scratch = Scratch::new().expect("scratch").expect("cgroup2 mount");
    let mut group = c.benchmark_group("audit-live");
    group.sample_size(10);
    for (name, n) in [("runc", 20), ("tree", 10_000), ("map", 10_000)] {
        let w = Workload::new(ListKind::Allow, n, SEED, &|_, _| false).expect("rule list");
        let s = devcg_engine::strategy::by_name(name).expect("strategy");
        let program = s.compile(&w.rules).expect("compiles");
        let loaded = bpf::load(&program, "devcg_bench").expect("the kernel loads it");
        let cg = scratch.mkdir(&format!("audit-{name}")).expect("mkdir");
        scratch
            .attach(&cg, &loaded, AttachFlags::NONE)
            .expect("attach");
        let path = cg.path().display().to_string();
        group.bench_function(format!("{name}-{n}"), |b| {
            b.iter(|| {
                let live = devcg_kernel::audit::read(&path).expect("read");
                let programs = live
                    .v2
                    .iter()
                    .flat_map(|v2| &v2.programs)
                    .map(|p| (p.label(), p.program.as_ref().expect("rebuilt").clone()))
                    .collect();
                let enforcement = Enforcement { programs, v1: None };
                audit::audit(&enforcement, &[]).expect("audit")
            })
        });
        scratch.rmdir(cg).expect("rmdir");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = audit_live
}
criterion_main!(benches);
