//! Attachment lifetimes (close, detach, rmdir, exec), attach modes, links, BPF_PROG_QUERY.

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::bpf::{self, AttachFlags, BpfError};
use crate::error::KernelError;
use crate::probe::KernelAnswer;
use crate::v2::Scratch;

use super::observe::{read, read_until};
use super::programs::{deny_device, dev, load, ret, DEV};
use super::{seen, Finding};

pub(super) fn close_fd_keeps_attachment(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let deny = load(&ret(0), "deny_all")?;
    let id = deny.id()?;
    s.attach(&cg, &deny, AttachFlags::NONE)?;
    let before = read(s, &cg, DEV)?;
    drop(deny);
    let after = read(s, &cg, DEV)?;
    let listed = s.query(&cg, false)?.ids;
    seen(
        before == KernelAnswer::Denied && after == KernelAnswer::Denied && listed == [id],
        format!("deny-all attached: {before}; after closing its only fd: {after}; still listed: {listed:?} (id {id})"),
    )
}

pub(super) fn detach_removes_attachment(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let deny = load(&ret(0), "deny_all")?;
    s.attach(&cg, &deny, AttachFlags::NONE)?;
    let before = read(s, &cg, DEV)?;
    s.detach(&cg, Some(&deny))?;
    let after = read(s, &cg, DEV)?;
    let listed = s.query(&cg, false)?.ids;
    seen(
        before == KernelAnswer::Denied && after == KernelAnswer::Allowed && listed.is_empty(),
        format!("attached: {before}; detached: {after}; listed after: {listed:?}"),
    )
}

pub(super) fn rmdir_removes_attachment(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let deny = load(&ret(0), "deny_all")?;
    let id = deny.id()?;
    s.attach(&cg, &deny, AttachFlags::NONE)?;
    let before = read(s, &cg, DEV)?;
    drop(deny);
    let alive_attached = bpf::prog_by_id(id).is_ok();
    s.rmdir(cg)?;
    // The cgroup's programs are released from a workqueue after rmdir.
    let start = Instant::now();
    let mut freed = false;
    while start.elapsed() < Duration::from_secs(5) {
        if matches!(
            bpf::prog_by_id(id),
            Err(BpfError::Sys {
                errno: nix::Error::ENOENT,
                ..
            })
        ) {
            freed = true;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    seen(
        before == KernelAnswer::Denied && alive_attached && freed,
        format!(
            "deny-all attached: {before}; fd closed, program {id} alive while attached: {alive_attached}; \
             after rmdir freed within {:.2}s: {freed}",
            start.elapsed().as_secs_f64()
        ),
    )
}

pub(super) fn second_none_attach_replaces(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let deny = load(&ret(0), "deny_all")?;
    let allow = load(&ret(1), "allow_all")?;
    s.attach(&cg, &deny, AttachFlags::NONE)?;
    let first = read(s, &cg, DEV)?;
    s.attach(&cg, &allow, AttachFlags::NONE)?;
    let second = read(s, &cg, DEV)?;
    let listed = s.query(&cg, false)?.ids;
    let want = vec![allow.id()?];
    seen(
        first == KernelAnswer::Denied && second == KernelAnswer::Allowed && listed == want,
        format!("deny-all: {first}; then allow-all with NONE: {second}; listed {listed:?} (allow-all is {want:?})"),
    )
}

pub(super) fn multi_every_program_must_allow(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let p1 = load(&deny_device(dev(1), None), "deny_1")?;
    let p2 = load(&deny_device(dev(2), None), "deny_2")?;
    s.attach(&cg, &p1, AttachFlags::ALLOW_MULTI)?;
    s.attach(&cg, &p2, AttachFlags::ALLOW_MULTI)?;
    let r: Vec<KernelAnswer> = (1..=3)
        .map(|m| read(s, &cg, dev(m)))
        .collect::<Result<_, _>>()?;
    let q = s.query(&cg, false)?;
    seen(
        r == [KernelAnswer::Denied, KernelAnswer::Denied, KernelAnswer::Allowed] && q.ids.len() == 2,
        format!(
            "programs denying 100:1 and 100:2 both MULTI: c 100:1 {}, c 100:2 {}, c 100:3 {}; listed {:?}",
            r[0], r[1], r[2], q.ids
        ),
    )
}

pub(super) fn parent_and_child_programs_both_apply(
    s: &mut Scratch,
) -> Result<Finding, KernelError> {
    let parent = s.mkdir("p")?;
    let child = s.mkdir("p/c")?;
    let p1 = load(&deny_device(dev(1), None), "deny_1")?;
    let p2 = load(&deny_device(dev(2), None), "deny_2")?;
    s.attach(&parent, &p1, AttachFlags::ALLOW_MULTI)?;
    s.attach(&child, &p2, AttachFlags::ALLOW_MULTI)?;
    let in_child: Vec<KernelAnswer> = (1..=3)
        .map(|m| read(s, &child, dev(m)))
        .collect::<Result<_, _>>()?;
    let in_parent = read(s, &parent, dev(2))?;
    let eff = s.query(&child, true)?.ids;
    seen(
        in_child == [KernelAnswer::Denied, KernelAnswer::Denied, KernelAnswer::Allowed]
            && in_parent == KernelAnswer::Allowed
            && eff.len() == 2,
        format!(
            "parent denies 100:1, child 100:2 (both MULTI); in the child: 100:1 {}, 100:2 {}, 100:3 {}; \
             in the parent 100:2 {in_parent}; effective in the child: {eff:?}",
            in_child[0], in_child[1], in_child[2]
        ),
    )
}

pub(super) fn override_lets_child_replace_parent(s: &mut Scratch) -> Result<Finding, KernelError> {
    let parent = s.mkdir("p")?;
    let child = s.mkdir("p/c")?;
    let sibling = s.mkdir("p/s")?;
    let deny = load(&ret(0), "deny_all")?;
    let allow = load(&ret(1), "allow_all")?;
    s.attach(&parent, &deny, AttachFlags::ALLOW_OVERRIDE)?;
    s.attach(&child, &allow, AttachFlags::ALLOW_OVERRIDE)?;
    let in_child = read(s, &child, DEV)?;
    let in_sibling = read(s, &sibling, DEV)?;
    // Below a NONE parent nothing may attach.
    let strict = s.mkdir("n")?;
    let strict_child = s.mkdir("n/c")?;
    s.attach(&strict, &deny, AttachFlags::NONE)?;
    let below_none = match s.attach(&strict_child, &allow, AttachFlags::ALLOW_OVERRIDE) {
        Ok(()) => "accepted".to_string(),
        Err(KernelError::Bpf(e)) => e.errno().map_or(e.to_string(), |n| n.to_string()),
        Err(e) => return Err(e),
    };
    let below_none_outcome = read(s, &strict_child, DEV)?;
    seen(
        in_child == KernelAnswer::Allowed
            && in_sibling == KernelAnswer::Denied
            && below_none.starts_with("EPERM")
            && below_none_outcome == KernelAnswer::Denied,
        format!(
            "parent deny-all OVERRIDE, child allow-all: child {in_child}, sibling without a program {in_sibling}; \
             attach below a NONE parent: {below_none}, that child {below_none_outcome}"
        ),
    )
}

pub(super) fn replace_swaps_one_program_in_place(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let a = load(&deny_device(dev(1), None), "deny_1")?;
    let b = load(&deny_device(dev(2), None), "deny_2")?;
    let c = load(&deny_device(dev(3), None), "deny_3")?;
    s.attach(&cg, &a, AttachFlags::ALLOW_MULTI)?;
    s.attach(&cg, &b, AttachFlags::ALLOW_MULTI)?;
    let before = s.query(&cg, false)?;
    s.attach_replace(&cg, &c, &a)?;
    let after = s.query(&cg, false)?;
    let r: Vec<KernelAnswer> = (1..=3)
        .map(|m| read(s, &cg, dev(m)))
        .collect::<Result<_, _>>()?;
    // `a` is no longer attached: replacing it again is refused.
    let d = load(&ret(1), "allow_all")?;
    let stale = match s.attach_replace(&cg, &d, &a) {
        Ok(()) => "accepted".to_string(),
        Err(KernelError::Bpf(e)) => e.errno().map_or(e.to_string(), |n| n.to_string()),
        Err(e) => return Err(e),
    };
    let (ida, idb, idc) = (a.id()?, b.id()?, c.id()?);
    seen(
        before.ids == [ida, idb]
            && after.ids == [idc, idb]
            && r == [KernelAnswer::Allowed, KernelAnswer::Denied, KernelAnswer::Denied]
            && stale != "accepted",
        format!(
            "MULTI [deny 100:1 = {ida}, deny 100:2 = {idb}], REPLACE the first by deny 100:3 = {idc}: listed {:?} -> {:?}; \
             100:1 {}, 100:2 {}, 100:3 {}; replacing the detached program again: {stale}",
            before.ids, after.ids, r[0], r[1], r[2]
        ),
    )
}

pub(super) fn link_detaches_on_last_close_survives_while_pinned(
    s: &mut Scratch,
) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let deny = load(&ret(0), "deny_all")?;
    // Unpinned: closing the only fd detaches.
    let link = s.link(&cg, &deny)?;
    let with_fd = read(s, &cg, DEV)?;
    drop(link);
    let closed = read_until(s, &cg, DEV, KernelAnswer::Allowed)?;
    // Pinned: survives the fd, goes with the pin.
    let link = s.link(&cg, &deny)?;
    let pin = s.pin(&link, "link")?;
    drop(link);
    drop(deny);
    let pinned = read(s, &cg, DEV)?;
    let q = s.query(&cg, false)?;
    std::fs::remove_file(&pin).map_err(crate::sys::io_err("unlink", &pin))?;
    let unpinned = read_until(s, &cg, DEV, KernelAnswer::Allowed)?;
    seen(
        with_fd == KernelAnswer::Denied
            && closed == KernelAnswer::Allowed
            && pinned == KernelAnswer::Denied
            && unpinned == KernelAnswer::Allowed,
        format!(
            "deny-all link: {with_fd}; last fd closed: {closed}; pinned and every fd closed: {pinned} \
             (listed {:?}, flags {:#x}); pin removed: {unpinned}",
            q.ids, q.attach_flags
        ),
    )
}

pub(super) fn fd_across_exec_keeps_attachment(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let deny = load(&ret(0), "deny_all")?;
    let link = s.link(&cg, &deny)?;
    drop(deny);
    let raw = link.fd.as_raw_fd();
    // The exec'd process keeps the link under the same number: the child
    // clears close-on-exec on its own copy of the descriptor (a dup2 onto a
    // fixed number would be a no-op, CLOEXEC kept, when the link already
    // has that number). It runs in this process's cgroup, not the scratch
    // one.
    let mut cmd = Command::new("sleep");
    cmd.arg("30")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: fcntl is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ok(Finding::Skip(format!("skipped: cannot run sleep(1): {e}"))),
    };
    drop(link);
    let fdinfo =
        std::fs::read_to_string(format!("/proc/{}/fdinfo/{raw}", child.id())).unwrap_or_default();
    let is_link = fdinfo.contains("link_type:") && fdinfo.contains("cgroup");
    let held = read(s, &cg, DEV)?;
    let _ = child.kill();
    let _ = child.wait();
    let gone = read_until(s, &cg, DEV, KernelAnswer::Allowed)?;
    seen(
        held == KernelAnswer::Denied && is_link && gone == KernelAnswer::Allowed,
        format!(
            "deny-all link, our fd closed, sleep(1) holds it as fd {raw} (fdinfo shows a cgroup link: {is_link}): {held}; \
             after sleep exits: {gone}"
        ),
    )
}

pub(super) fn query_returns_ids_and_flags(s: &mut Scratch) -> Result<Finding, KernelError> {
    let parent = s.mkdir("p")?;
    let child = s.mkdir("p/c")?;
    let none = s.mkdir("n")?;
    let over = s.mkdir("o")?;
    let a = load(&ret(1), "allow_a")?;
    let b = load(&ret(1), "allow_b")?;
    let c = load(&ret(1), "allow_c")?;
    s.attach(&parent, &a, AttachFlags::ALLOW_MULTI)?;
    s.attach(&parent, &b, AttachFlags::ALLOW_MULTI)?;
    s.attach(&child, &c, AttachFlags::ALLOW_MULTI)?;
    s.attach(&none, &a, AttachFlags::NONE)?;
    s.attach(&over, &a, AttachFlags::ALLOW_OVERRIDE)?;
    let (ia, ib, ic) = (a.id()?, b.id()?, c.id()?);
    let qp = s.query(&parent, false)?;
    let qc = s.query(&child, false)?;
    let qe = s.query(&child, true)?;
    let qn = s.query(&none, false)?;
    let qo = s.query(&over, false)?;
    let mut eff_sorted = qe.ids.clone();
    eff_sorted.sort_unstable();
    let mut want_eff = vec![ia, ib, ic];
    want_eff.sort_unstable();
    seen(
        qp.ids == [ia, ib]
            && qp.attach_flags == AttachFlags::ALLOW_MULTI.0
            && qp.prog_attach_flags == [2, 2]
            && qc.ids == [ic]
            && eff_sorted == want_eff
            && qn.ids == [ia]
            && qn.attach_flags == 0
            && qo.attach_flags == AttachFlags::ALLOW_OVERRIDE.0,
        format!(
            "parent MULTI [{ia}, {ib}]: {:?} flags {:#x} per-program {:?} revision {}; child [{ic}]: {:?}; \
             child effective: {:?}; NONE: {:?} flags {:#x}; OVERRIDE: flags {:#x}",
            qp.ids, qp.attach_flags, qp.prog_attach_flags, qp.revision, qc.ids, qe.ids, qn.ids,
            qn.attach_flags, qo.attach_flags
        ),
    )
}
