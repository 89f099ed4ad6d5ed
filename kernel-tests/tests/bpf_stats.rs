//! BPF run-time statistics (BPF_ENABLE_STATS) on the real kernel. The
//! statistics are a global kernel toggle, on while any process holds a
//! stats fd: this test lives in a binary of its own so that no other test
//! of this suite runs (or forks a child holding that fd) beside it. Needs
//! root, cgroup2 and CAP_BPF; skips with one line otherwise.

use devcg_engine::DeviceType;
use devcg_kernel::bpf::{self, AttachFlags};
use devcg_kernel::device::Device;
use devcg_kernel::probe::Step;
use nix::fcntl::OFlag;

mod common;
use common::{ret, scratch_or_skip};

const DEV: Device = Device {
    ty: DeviceType::Char,
    major: 100,
    minor: 1,
};

#[test]
fn run_time_stats_count_every_run_while_enabled() {
    let Some(mut s) = scratch_or_skip() else {
        return;
    };
    let allow = bpf::load(&ret(1), "allow_stats").unwrap();
    let cg = s.mkdir("stats").unwrap();
    s.attach(&cg, &allow, AttachFlags::NONE).unwrap();
    let node = s.nodes().unwrap().node(DEV).unwrap();
    // A char open runs the device program once (may_open's check); the
    // driverless major then fails it with ENXIO.
    const N: usize = 37;
    let opens = vec![Step::Open(node, OFlag::O_RDONLY); N];

    let stats = bpf::enable_run_time_stats().unwrap();
    let before = bpf::prog_run_stats(&allow).unwrap();
    let codes = s.run_in(&cg, &opens).unwrap();
    let after = bpf::prog_run_stats(&allow).unwrap();
    drop(stats);
    assert_eq!(codes, vec![libc::ENXIO; N]);
    // Only this test's child runs this program: every run is one of its
    // opens, and each was counted and timed.
    assert_eq!(
        after.run_cnt - before.run_cnt,
        N as u64,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.run_time_ns > before.run_time_ns,
        "{before:?} -> {after:?}"
    );

    // Off again (unless someone else holds them on: the sysctl, or another
    // process's BPF_ENABLE_STATS fd, which this test cannot see), the runs
    // go uncounted.
    let codes = s.run_in(&cg, &opens).unwrap();
    assert_eq!(codes, vec![libc::ENXIO; N]);
    let off = bpf::prog_run_stats(&allow).unwrap();
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").unwrap_or_default();
    if sysctl.trim() == "0" {
        assert_eq!(off, after, "counted with the stats fd closed");
    } else {
        println!("kernel.bpf_stats_enabled is on: not checking that closing the fd stops counting");
    }
}
