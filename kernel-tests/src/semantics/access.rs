//! Which operations reach a program, and with what: access(F_OK), block, 0:0, FIFO, nodev.

use devcg_engine::{Access, DeviceType};
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};

use crate::bpf::AttachFlags;
use crate::device::Device;
use crate::error::KernelError;
use crate::probe::{open_flags, KernelAnswer, NodeDir, Step};
use crate::v2::Scratch;

use super::observe::{errno_name, steps_in};
use super::programs::{count_of, counter, counts, deny_device, load, show_counts, DEV};
use super::{seen, Finding};

pub(super) fn access_f_ok_reaches_program_with_access_0(
    s: &mut Scratch,
) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let p = load(&deny_device(DEV, Some(Access::NONE)), "deny_access0")?;
    s.attach(&cg, &p, AttachFlags::NONE)?;
    let probes = s.probe(&cg, &[DEV])?;
    let by = |a: Access| {
        probes
            .iter()
            .find(|p| p.request.access == a)
            .map(|p| p.outcome)
            .expect("probed")
    };
    let (f_ok, r, m) = (by(Access::NONE), by(Access::READ), by(Access::MKNOD));
    // And the counter sees access 0 exactly once for one access(F_OK).
    let cg2 = s.mkdir("b")?;
    let count = load(&counter(1), "count")?;
    s.attach(&cg2, &count, AttachFlags::NONE)?;
    let node = s.nodes()?.node(DEV)?;
    let codes = steps_in(s, &cg2, &[Step::Access(node)])?;
    let zero = count_of(&count, DeviceType::Char, Access::NONE)?;
    seen(
        f_ok == KernelAnswer::Denied
            && r == KernelAnswer::Allowed
            && m == KernelAnswer::Allowed
            && codes == [0]
            && zero == 1,
        format!(
            "program denying only access 0 on c 100:1: access(F_OK) {f_ok}, open r {r}, mknod {m}; \
             one access(F_OK) under a counter: {} and runs {}",
            errno_name(codes[0]),
            show_counts(&count)?
        ),
    )
}

pub(super) fn block_open_runs_program_twice(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let count = load(&counter(1), "count")?;
    s.attach(&cg, &count, AttachFlags::NONE)?;
    let b = Device::new(DeviceType::Block, 100, 1);
    let (bnode, cnode) = (s.nodes()?.node(b)?, s.nodes()?.node(DEV)?);
    let codes = steps_in(
        s,
        &cg,
        &[
            Step::Open(bnode.clone(), open_flags(Access::READ)),
            Step::Open(cnode, open_flags(Access::READ)),
        ],
    )?;
    let (br, cr) = (
        count_of(&count, DeviceType::Block, Access::READ)?,
        count_of(&count, DeviceType::Char, Access::READ)?,
    );
    // And for O_RDWR: both runs see rw.
    let rw = Access(6);
    let codes_rw = steps_in(s, &cg, &[Step::Open(bnode, open_flags(rw))])?;
    let brw = count_of(&count, DeviceType::Block, rw)?;
    seen(
        br == 2 && cr == 1 && brw == 2,
        format!(
            "one open O_RDONLY of b 100:1 ({}) and of c 100:1 ({}), one O_RDWR of b 100:1 ({}): runs {}",
            errno_name(codes[0]),
            errno_name(codes[1]),
            errno_name(codes_rw[0]),
            show_counts(&count)?
        ),
    )
}

pub(super) fn zero_zero_char_node_not_checked(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let count = load(&counter(0), "count_deny")?;
    s.attach(&cg, &count, AttachFlags::NONE)?;
    let c0 = s.nodes()?.node(Device::new(DeviceType::Char, 0, 0))?;
    let codes = steps_in(s, &cg, &[Step::Open(c0.clone(), open_flags(Access::READ))])?;
    let char_runs = counts(&count)?.1;
    // For the record: block 0:0 and access(F_OK) on char 0:0.
    let b0 = s.nodes()?.node(Device::new(DeviceType::Block, 0, 0))?;
    let more = steps_in(
        s,
        &cg,
        &[Step::Access(c0), Step::Open(b0, open_flags(Access::READ))],
    )?;
    seen(
        codes[0] == libc::ENXIO && char_runs == 0,
        format!(
            "deny-all counter: open of c 0:0 {} with {char_runs} runs; for the record: access(F_OK) of c 0:0 {}, \
             open of b 0:0 {}; runs in total {}",
            errno_name(codes[0]),
            errno_name(more[0]),
            errno_name(more[1]),
            show_counts(&count)?
        ),
    )
}

pub(super) fn fifos_are_never_checked(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let count = load(&counter(0), "count_deny")?;
    s.attach(&cg, &count, AttachFlags::NONE)?;
    let nodes = s.nodes()?;
    let fifo = nodes.fresh_name()?;
    nix::unistd::mkfifo(fifo.as_c_str(), Mode::from_bits_truncate(0o600))
        .map_err(crate::sys::sys_err("mkfifo", nodes.dir()))?;
    let fresh = nodes.fresh_name()?;
    let codes = steps_in(
        s,
        &cg,
        &[
            Step::Open(fifo.clone(), open_flags(Access::READ)),
            Step::Access(fifo),
            Step::Mknod(fresh, SFlag::S_IFIFO, 0),
        ],
    )?;
    let runs = counts(&count)?.1;
    seen(
        codes == [0, 0, 0] && runs == 0,
        format!(
            "deny-all counter: open FIFO {}, access(F_OK) {}, mknod FIFO {}; program runs {runs}",
            errno_name(codes[0]),
            errno_name(codes[1]),
            errno_name(codes[2])
        ),
    )
}

pub(super) fn nodev_mount_gives_eacces_first(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let count = load(&counter(0), "count_deny")?;
    s.attach(&cg, &count, AttachFlags::NONE)?;
    let mut nodev = NodeDir::mount_with(MsFlags::MS_NODEV)?;
    let node = nodev.node(DEV)?;
    let codes = steps_in(
        s,
        &cg,
        &[Step::Open(node.clone(), open_flags(Access::READ))],
    )?;
    let open_runs = counts(&count)?.1;
    // For the record: access(2) and mknod on the nodev mount do reach it.
    let fresh = nodev.fresh_name()?;
    let more = steps_in(
        s,
        &cg,
        &[
            Step::Access(node),
            Step::Mknod(fresh, SFlag::S_IFCHR, DEV.dev_t()),
        ],
    )?;
    seen(
        codes[0] == libc::EACCES && open_runs == 0,
        format!(
            "deny-all counter, c 100:1 on a nodev tmpfs: open {} with {open_runs} runs; for the record: \
             access(F_OK) {}, mknod {}; runs then {}",
            errno_name(codes[0]),
            errno_name(more[0]),
            errno_name(more[1]),
            show_counts(&count)?
        ),
    )
}
