//! How the checks probe: one access or a list of steps from a child in a cgroup, errno names.

use std::thread;
use std::time::{Duration, Instant};

use devcg_engine::Access;

use crate::device::Device;
use crate::error::KernelError;
use crate::probe::{KernelAnswer, Step};
use crate::v2::{Cgroup, Scratch};

/// The outcome of one access to `dev` from a child in `cg`.
fn try_access(
    s: &mut Scratch,
    cg: &Cgroup,
    dev: Device,
    access: Access,
) -> Result<KernelAnswer, KernelError> {
    let probes = s.probe(cg, &[dev])?;
    Ok(probes
        .iter()
        .find(|p| p.request.access == access)
        .map(|p| p.outcome)
        .expect("every probed access is reported"))
}

pub(super) fn read(s: &mut Scratch, cg: &Cgroup, dev: Device) -> Result<KernelAnswer, KernelError> {
    try_access(s, cg, dev, Access::READ)
}

/// Polls until `read` of `dev` gives `want` (releases may be deferred to a
/// workqueue), for up to two seconds; the last outcome.
pub(super) fn read_until(
    s: &mut Scratch,
    cg: &Cgroup,
    dev: Device,
    want: KernelAnswer,
) -> Result<KernelAnswer, KernelError> {
    let start = Instant::now();
    loop {
        let got = read(s, cg, dev)?;
        if got == want || start.elapsed() > Duration::from_secs(2) {
            return Ok(got);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The code (0 or errno) of each step, from a child in `cg`.
pub(super) fn steps_in(
    s: &mut Scratch,
    cg: &Cgroup,
    steps: &[Step],
) -> Result<Vec<i32>, KernelError> {
    s.run_in(cg, steps)
}

pub(super) fn errno_name(code: i32) -> String {
    if code == 0 {
        "ok".into()
    } else {
        format!("{}", nix::errno::Errno::from_raw(code))
    }
}
