//! open() of a device node from a process inside a scratch cgroup, with
//! each strategy's program attached, and without any (`kernel/no-program`):
//! the difference is what the program costs. Root only: elsewhere it says
//! why and measures nothing.
//!
//! `cargo bench -p devcg-benches --bench kernel [-- FILTER]`; narrow with
//! DEVCG_BENCH_SIZES / DEVCG_BENCH_STRATEGIES. Every program is loaded up
//! front: programs the verifier refuses take it seconds each.

use std::cell::RefCell;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use devcg_benches::kernel::{KernelBench, KernelBenchError};
use devcg_benches::suite;
use devcg_benches::workload::Hit;
use devcg_kernel::device::Device;

fn device(req: &devcg_engine::Request) -> Device {
    Device::new(req.ty, req.major, req.minor)
}

/// `iters` opens, in batches the timer child takes.
fn time(
    kb: &RefCell<KernelBench>,
    prog: Option<&devcg_kernel::bpf::LoadedProgram>,
    dev: Device,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(1 << 20);
        let (t, _) = kb
            .borrow_mut()
            .time_opens(prog, dev, n as u32)
            .expect("timer child");
        total += t;
        left -= n;
    }
    total
}

fn kernel(c: &mut Criterion) {
    let cases = suite::cases().expect("rule lists");
    let devices: Vec<Device> = cases
        .iter()
        .flat_map(|c| [device(&c.workload.matching), device(&c.workload.no_match)])
        .collect();
    let kb = match KernelBench::new(&devices) {
        Ok(kb) => RefCell::new(kb),
        Err(KernelBenchError::Skip(why)) => {
            eprintln!("kernel benches {why} (they need root, cgroup2 and CAP_BPF)");
            return;
        }
        Err(e) => panic!("kernel benches: {e}"),
    };
    let mut base = c.benchmark_group("kernel/no-program");
    let mut seen = devices.clone();
    seen.sort();
    seen.dedup();
    for dev in seen {
        base.bench_function(format!("{}-{}-{}", dev.ty, dev.major, dev.minor), |b| {
            b.iter_custom(|iters| time(&kb, None, dev, iters))
        });
    }
    base.finish();
    for case in &cases {
        let id = case.id();
        let program = match &case.program {
            Ok(p) => p,
            Err(why) => {
                eprintln!("kernel/{id}: n/a: {why}");
                continue;
            }
        };
        let loaded = match devcg_kernel::bpf::load(program, case.strategy) {
            Ok(l) => l,
            Err(why) => {
                eprintln!("kernel/{id}: n/a: the kernel refuses the program: {why}");
                continue;
            }
        };
        let mut group = c.benchmark_group(format!("kernel/{}", case.strategy));
        for hit in Hit::ALL {
            let w = &case.workload;
            let dev = device(&w.request(hit));
            let bench = format!("{}/{}", w.list.slug(), hit.slug());
            group.bench_function(BenchmarkId::new(bench, w.n), |b| {
                b.iter_custom(|iters| time(&kb, Some(&loaded), dev, iters))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = kernel
}
criterion_main!(benches);
