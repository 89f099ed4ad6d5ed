//! What the kernel does with device programs, one named check each, run on
//! the real kernel in a fresh scratch directory: attachment lifetimes,
//! attach flags, links, queries, which operations reach a program and with
//! what, the v1/v2 interplay, and the oracle against the v1 controller.
//!
//! [`checks`] lists them; [`run`] runs one and never panics: an error of
//! the driver is a `Fail` with the error as the observation. Without root,
//! cgroup2 or the right to load programs every check is a `Skip` saying
//! what is missing.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use devcg_engine::asm::{Asm, Cond, Size, Width};
use devcg_engine::insn::{helper, op, MapKind, MapSpec, Program, R0, R1, R10, R2, R3, R4, R5, R6};
use devcg_engine::{Access, DeviceType, RuleKind};
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use serde::Serialize;

use crate::bpf::{self, prog_flags, AttachFlags, BpfError, LoadedProgram};
use crate::device::Device;
use crate::error::KernelError;
use crate::gen::{self, Pools};
use crate::probe::{self, open_flags, KernelAnswer, NodeDir, Step};
use crate::sys::{cstring, io_err};
use crate::v1;
use crate::v2::{self, Cgroup, Scratch};
use devcg_differential::rng::Rng;

/// How a semantic check ended: the kernel did what it names, did not, or
/// the check could not run here (and why).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SemanticStatus {
    Pass,
    Fail,
    Skip(String),
}

/// One check's report: what it expects, what it saw, how it ended.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub expected: String,
    pub observed: String,
    pub status: SemanticStatus,
}

/// What a check function concludes.
enum Finding {
    Seen { pass: bool, observed: String },
    Skip(String),
}

fn seen(pass: bool, observed: impl Into<String>) -> Result<Finding, KernelError> {
    Ok(Finding::Seen {
        pass,
        observed: observed.into(),
    })
}

/// One named kernel fact and how to observe it.
pub struct Check {
    pub name: &'static str,
    pub expected: &'static str,
    body: fn(&mut Scratch) -> Result<Finding, KernelError>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

/// Every check, in report order.
pub fn checks() -> Vec<Check> {
    macro_rules! c {
        ($name:ident, $expected:expr) => {
            Check {
                name: stringify!($name),
                expected: $expected,
                body: $name,
            }
        };
    }
    vec![
        c!(close_fd_keeps_attachment, "closing the program fd leaves a BPF_PROG_ATTACH attachment in force"),
        c!(detach_removes_attachment, "BPF_PROG_DETACH removes the attachment: allowed again, nothing listed"),
        c!(rmdir_removes_attachment, "removing the cgroup releases its attachment (the program is freed once no fd holds it)"),
        c!(second_none_attach_replaces, "a second attach with flags NONE replaces the first program"),
        c!(multi_every_program_must_allow, "ALLOW_MULTI: every attached program runs and each must allow"),
        c!(parent_and_child_programs_both_apply, "MULTI on parent and child: a task in the child needs both to allow"),
        c!(override_lets_child_replace_parent, "ALLOW_OVERRIDE on the parent: a child's own program replaces the parent's for the child; below a NONE parent nothing may attach (EPERM)"),
        c!(replace_swaps_one_program_in_place, "MULTI|REPLACE swaps one program for another in its place, the others untouched; a wrong old program is refused"),
        c!(link_detaches_on_last_close_survives_while_pinned, "a bpf_link applies while an fd or a pin holds it and detaches when the last one goes"),
        c!(fd_across_exec_keeps_attachment, "a link fd inherited across exec keeps the program attached until that process exits"),
        c!(query_returns_ids_and_flags, "BPF_PROG_QUERY lists the attached ids in order with the cgroup's and each program's flags; EFFECTIVE includes the parent's"),
        c!(access_f_ok_reaches_program_with_access_0, "access(F_OK) runs the program with access 0: a program denying only access 0 fails access(F_OK) and lets open through"),
        c!(block_open_runs_program_twice, "an open of a block node runs the program twice (inode permission, then the block layer); a char open once"),
        c!(zero_zero_char_node_not_checked, "a char 0:0 node is not checked on open: no program run, ENXIO even under deny-all"),
        c!(fifos_are_never_checked, "mknod and open of a FIFO never reach the program"),
        c!(nodev_mount_gives_eacces_first, "on a nodev mount an open fails with EACCES before the program runs"),
        c!(v1_and_v2_both_must_allow, "a task in a v1 devices cgroup and a v2 cgroup with a program needs both to allow"),
        c!(device_guard_flag_is_not_honoured, "bit 7 of prog_flags, the 2023 RFC's BPF_F_CGROUP_DEVICE_GUARD (never merged), grants nothing; mknod in a user namespace stays EPERM"),
        c!(mknod_in_user_namespace_is_eperm, "mknod of a device in a non-initial user namespace is EPERM even when the program allows it, and the program never runs"),
        c!(nodes_on_user_namespace_mount_give_eacces, "a c 1:3 node on a tmpfs mounted inside a new user namespace cannot be opened (EACCES) and the program never runs, while the same node on a tmpfs of the initial user namespace opens under the same allow-all program"),
        c!(mknod_on_user_namespace_mount_is_eperm, "mknod of c 1:3 on a tmpfs mounted inside a new user namespace, from inside, is EPERM and the program never runs (on a tmpfs of the initial user namespace it succeeds, one run)"),
        c!(v1_controller_matches_oracle, "the real v1 controller and the oracle agree on devices.list and every probed verdict for random rule lists"),
    ]
}

/// The check named `name`.
pub fn by_name(name: &str) -> Option<Check> {
    checks().into_iter().find(|c| c.name == name)
}

/// Runs one check in a fresh scratch directory.
pub fn run(check: &Check) -> CheckResult {
    let result = |status, observed: String| CheckResult {
        name: check.name.to_string(),
        expected: check.expected.to_string(),
        observed,
        status,
    };
    if let Some(why) = v2::skip_reason() {
        return result(SemanticStatus::Skip(why.clone()), why);
    }
    let outcome = Scratch::new()
        .and_then(|s| s.ok_or(KernelError::NoCgroup2))
        .and_then(|mut scratch| (check.body)(&mut scratch));
    match outcome {
        Ok(Finding::Seen { pass, observed }) => result(
            if pass {
                SemanticStatus::Pass
            } else {
                SemanticStatus::Fail
            },
            observed,
        ),
        Ok(Finding::Skip(why)) => result(SemanticStatus::Skip(why.clone()), why),
        Err(e) => result(SemanticStatus::Fail, format!("error: {e}")),
    }
}

// ---------------------------------------------------------------------------
// Programs

const DEV: Device = Device {
    ty: DeviceType::Char,
    major: 100,
    minor: 1,
};

fn dev(minor: u32) -> Device {
    Device::new(DeviceType::Char, 100, minor)
}

fn ret(verdict: i32) -> Program {
    let mut a = Asm::new();
    a.ret(verdict);
    Program::new(a.finish().expect("no labels"))
}

/// Denies `dev` (any access, or only `access`), allows everything else.
fn deny_device(dev: Device, access: Option<Access>) -> Program {
    let mut a = Asm::new();
    let allow = a.new_label();
    a.ldx(Size::W, R2, R1, 0);
    a.alu_imm(Width::W32, op::AND, R2, 0xffff);
    a.ldx(Size::W, R3, R1, 0);
    a.alu_imm(Width::W32, op::RSH, R3, 16);
    a.ldx(Size::W, R4, R1, 4);
    a.ldx(Size::W, R5, R1, 8);
    a.jmp_imm(Width::W32, Cond::Ne, R2, dev.ty.code() as i32, allow);
    a.jmp_imm(Width::W32, Cond::Ne, R4, dev.major as i32, allow);
    a.jmp_imm(Width::W32, Cond::Ne, R5, dev.minor as i32, allow);
    if let Some(acc) = access {
        a.jmp_imm(Width::W32, Cond::Ne, R3, i32::from(acc.bits()), allow);
    }
    a.ret(0);
    a.bind(allow);
    a.ret(1);
    Program::new(a.finish().expect("labels bound"))
}

/// Counts its runs per (type, access) in an array map of 16 u64 slots,
/// slot `(type - 1) * 8 + access`, then returns `verdict`.
fn counter(verdict: i32) -> Program {
    let mut a = Asm::new();
    let out = a.new_label();
    a.mov_reg(Width::W64, R6, R1);
    a.ldx(Size::W, R2, R6, 0);
    a.mov_reg(Width::W32, R3, R2);
    a.alu_imm(Width::W32, op::AND, R3, 0xffff);
    a.alu_imm(Width::W32, op::RSH, R2, 16);
    a.alu_imm(Width::W32, op::SUB, R3, 1);
    a.alu_imm(Width::W32, op::LSH, R3, 3);
    a.alu_reg(Width::W32, op::ADD, R3, R2);
    a.stx(Size::W, R10, -4, R3);
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jmp_imm(Width::W64, Cond::Eq, R0, 0, out);
    a.ldx(Size::DW, R1, R0, 0);
    a.alu_imm(Width::W64, op::ADD, R1, 1);
    a.stx(Size::DW, R0, 0, R1);
    a.bind(out);
    a.ret(verdict);
    Program {
        insns: a.finish().expect("labels bound"),
        maps: vec![MapSpec {
            name: "devcg_count".into(),
            kind: MapKind::Array,
            key_size: 4,
            value_size: 8,
            max_entries: 16,
            entries: Vec::new(),
        }],
    }
}

/// The counter slot of a (type, access) pair.
fn slot(ty: DeviceType, access: Access) -> u32 {
    (ty.code() - 1) * 8 + u32::from(access.bits())
}

/// Non-zero counters: (type, access, runs).
type Counts = Vec<(DeviceType, Access, u64)>;

/// Every non-zero counter and their total.
fn counts(prog: &LoadedProgram) -> Result<(Counts, u64), KernelError> {
    let mut out = Vec::new();
    let mut total = 0;
    for ty in DeviceType::ALL {
        for access in Access::every() {
            let key = slot(ty, access).to_ne_bytes();
            let v = bpf::map_lookup(&prog.maps[0], &key, 8)?
                .map_or(0, |v| u64::from_ne_bytes(v.try_into().expect("8 bytes")));
            if v != 0 {
                out.push((ty, access, v));
                total += v;
            }
        }
    }
    Ok((out, total))
}

fn count_of(prog: &LoadedProgram, ty: DeviceType, access: Access) -> Result<u64, KernelError> {
    Ok(counts(prog)?
        .0
        .iter()
        .find(|(t, a, _)| *t == ty && *a == access)
        .map_or(0, |c| c.2))
}

fn show_counts(prog: &LoadedProgram) -> Result<String, KernelError> {
    let (c, _) = counts(prog)?;
    if c.is_empty() {
        return Ok("no runs".into());
    }
    Ok(c.iter()
        .map(|(t, a, n)| {
            let acc = if a.is_empty() {
                "-".to_string()
            } else {
                a.to_string()
            };
            format!("{t} {acc}: {n}")
        })
        .collect::<Vec<_>>()
        .join(", "))
}

fn load(p: &Program, name: &str) -> Result<LoadedProgram, KernelError> {
    Ok(bpf::load(p, name)?)
}

// ---------------------------------------------------------------------------
// Probing helpers

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

fn read(s: &mut Scratch, cg: &Cgroup, dev: Device) -> Result<KernelAnswer, KernelError> {
    try_access(s, cg, dev, Access::READ)
}

/// Polls until `read` of `dev` gives `want` (releases may be deferred to a
/// workqueue), for up to two seconds; the last outcome.
fn read_until(
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
fn steps_in(s: &mut Scratch, cg: &Cgroup, steps: &[Step]) -> Result<Vec<i32>, KernelError> {
    s.run_in(cg, steps)
}

fn errno_name(code: i32) -> String {
    if code == 0 {
        "ok".into()
    } else {
        format!("{}", nix::errno::Errno::from_raw(code))
    }
}

// ---------------------------------------------------------------------------
// The checks

fn close_fd_keeps_attachment(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn detach_removes_attachment(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn rmdir_removes_attachment(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn second_none_attach_replaces(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn multi_every_program_must_allow(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn parent_and_child_programs_both_apply(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn override_lets_child_replace_parent(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn replace_swaps_one_program_in_place(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn link_detaches_on_last_close_survives_while_pinned(
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

fn fd_across_exec_keeps_attachment(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn query_returns_ids_and_flags(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn access_f_ok_reaches_program_with_access_0(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn block_open_runs_program_twice(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn zero_zero_char_node_not_checked(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn fifos_are_never_checked(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn nodev_mount_gives_eacces_first(s: &mut Scratch) -> Result<Finding, KernelError> {
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

fn v1_and_v2_both_must_allow(s: &mut Scratch) -> Result<Finding, KernelError> {
    if v1::find_devices_mount().is_none() {
        return Ok(Finding::Skip(
            "skipped: needs the cgroup v1 devices hierarchy (none mounted)".into(),
        ));
    }
    let v1s = v1::Scratch::new()?.expect("mounted");
    v1s.mkdir("x")?;
    // v1 denies writes to 100:1; the v2 program denies 100:2.
    if let Err(e) = v1s.write("x", RuleKind::Deny, "c 100:1 w")? {
        return seen(false, format!("v1 write refused: {e}"));
    }
    let cg = s.mkdir("a")?;
    let p = load(&deny_device(dev(2), None), "deny_2")?;
    s.attach(&cg, &p, AttachFlags::NONE)?;
    let v1_procs = cstring(&v1s.procs_file("x")?)?;
    let v2_procs = s.procs_file(&cg)?;
    let devices = vec![dev(1), dev(2), dev(3)];
    let res = s.probe_joined(&[(vec![v1_procs, v2_procs], devices)])?;
    let get = |d: Device, a: Access| {
        res[0]
            .iter()
            .find(|p| p.request == d.request(a))
            .map(|p| p.outcome)
            .expect("probed")
    };
    let w = Access::WRITE;
    let r = Access::READ;
    let obs = [
        get(dev(1), w),
        get(dev(1), r),
        get(dev(2), r),
        get(dev(3), Access(6)),
    ];
    drop(v1s);
    seen(
        obs == [KernelAnswer::Denied, KernelAnswer::Allowed, KernelAnswer::Denied, KernelAnswer::Allowed],
        format!(
            "child in v1 `deny c 100:1 w` and v2 `deny c 100:2`: 100:1 w {}, 100:1 r {}, 100:2 r {}, 100:3 rw {}",
            obs[0], obs[1], obs[2], obs[3]
        ),
    )
}

/// mknod of `DEV` from a child in `cg`, in a new user namespace or not.
fn mknod_codes(s: &mut Scratch, cg: &Cgroup, userns: bool) -> Result<Vec<i32>, KernelError> {
    let fresh = s.nodes()?.fresh_name()?;
    let mut steps = Vec::new();
    if userns {
        steps.push(Step::UnshareUser);
    }
    steps.push(Step::Mknod(fresh, SFlag::S_IFCHR, DEV.dev_t()));
    steps_in(s, cg, &steps)
}

fn device_guard_flag_is_not_honoured(s: &mut Scratch) -> Result<Finding, KernelError> {
    let answer = |r: &Result<LoadedProgram, BpfError>| match r {
        Ok(_) => "accepted".to_string(),
        Err(e) => e
            .errno()
            .map_or_else(|| e.to_string(), |n| format!("refused {n}")),
    };
    let guard = bpf::load_with_flags(&counter(1), "guard", prog_flags::RFC_CGROUP_DEVICE_GUARD);
    let unknown = bpf::load_with_flags(&ret(1), "bit8", 1 << 8);
    let mut observed = format!(
        "load with bit 7 (RFC BPF_F_CGROUP_DEVICE_GUARD; mainline 6.7+ BPF_F_TEST_REG_INVARIANTS): {}; \
         with unknown bit 8: {}",
        answer(&guard),
        answer(&unknown)
    );
    let Ok(guard) = guard else {
        // Refused: nothing can honour it.
        return seen(true, observed);
    };
    let cg = s.mkdir("a")?;
    s.attach(&cg, &guard, AttachFlags::NONE)?;
    let codes = mknod_codes(s, &cg, true)?;
    if codes[0] != 0 {
        return Ok(Finding::Skip(format!(
            "skipped: unshare(CLONE_NEWUSER) failed: {}",
            errno_name(codes[0])
        )));
    }
    let runs = counts(&guard)?.1;
    let _ = write!(
        observed,
        "; attached allow-all counter so flagged, mknod c 100:1 in a user namespace: {} with {runs} program runs",
        errno_name(codes[1])
    );
    seen(codes[1] == libc::EPERM && runs == 0, observed)
}

fn mknod_in_user_namespace_is_eperm(s: &mut Scratch) -> Result<Finding, KernelError> {
    let cg = s.mkdir("a")?;
    let count = load(&counter(1), "count_allow")?;
    s.attach(&cg, &count, AttachFlags::NONE)?;
    let plain = mknod_codes(s, &cg, false)?;
    let plain_runs = counts(&count)?.1;
    let userns = mknod_codes(s, &cg, true)?;
    if userns[0] != 0 {
        return Ok(Finding::Skip(format!(
            "skipped: unshare(CLONE_NEWUSER) failed: {}",
            errno_name(userns[0])
        )));
    }
    let runs = counts(&count)?.1 - plain_runs;
    seen(
        plain == [0] && plain_runs == 1 && userns[1] == libc::EPERM && runs == 0,
        format!(
            "allow-all counter: mknod c 100:1 in the initial user namespace {} ({plain_runs} run); \
             in a new one {} ({runs} runs)",
            errno_name(plain[0]),
            errno_name(userns[1])
        ),
    )
}

/// `c 1:3`: a node with a driver, so that an allowed open succeeds.
const MEM_NULL: Device = Device {
    ty: DeviceType::Char,
    major: 1,
    minor: 3,
};

/// What one child saw on a tmpfs mounted in a mount namespace of its own,
/// in a new user namespace or not (codes: 0 or the errno).
struct NsMount {
    /// Entering the namespaces.
    unshare: i32,
    mount: i32,
    /// The child's own mknod of `c 1:3` there, and the program runs with
    /// access m meanwhile.
    mknod: i32,
    mknod_runs: u64,
    /// This process's mknod of `c 1:3` there, through /proc/PID/root (None:
    /// not tried, the child had no tmpfs).
    made: Option<i32>,
    /// The child's open O_RDWR of that node, and the program runs with
    /// access rw meanwhile.
    open: i32,
    open_runs: u64,
}

impl NsMount {
    fn show(&self) -> String {
        if self.unshare != 0 || self.mount != 0 {
            return format!(
                "entering the namespaces {}, mount tmpfs {}",
                errno_name(self.unshare),
                errno_name(self.mount)
            );
        }
        format!(
            "mknod by the child {} ({} runs); mknod by this process through /proc/PID/root {}; \
             open O_RDWR by the child {} ({} runs)",
            errno_name(self.mknod),
            self.mknod_runs,
            self.made.map_or_else(|| "not tried".into(), errno_name),
            errno_name(self.open),
            self.open_runs
        )
    }
}

/// A child in `cg` enters a mount namespace of its own (with `user`, in a
/// new user namespace mapping root to root), mounts a tmpfs on a fresh
/// directory of the probe tmpfs and tries mknod of `c 1:3` there; then
/// this process, root of the initial user namespace, makes `c 1:3` on that
/// tmpfs through /proc/PID/root, and the child opens it O_RDWR. `count`
/// is the counter attached to `cg`. The tmpfs goes with the child's mount
/// namespace, the directory right after.
fn ns_mount_probe(
    s: &mut Scratch,
    cg: &Cgroup,
    count: &LoadedProgram,
    user: bool,
) -> Result<NsMount, KernelError> {
    let rw = Access(Access::READ.0 | Access::WRITE.0);
    let join = s.procs_file(cg)?;
    let dir = s.nodes()?.fresh_name()?;
    let dir_path = PathBuf::from(OsStr::from_bytes(dir.as_bytes()));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir_path)
        .map_err(io_err("mkdir", &dir_path))?;
    let steps = [
        Step::Join(join),
        Step::UnshareNs { user },
        Step::MountTmpfs(dir.clone()),
        Step::Mknod(
            cstring(&dir_path.join("own"))?,
            SFlag::S_IFCHR,
            MEM_NULL.dev_t(),
        ),
        Step::Pause,
        Step::Open(cstring(&dir_path.join("null"))?, open_flags(rw)),
    ];
    let (m0, o0) = (
        count_of(count, DeviceType::Char, Access::MKNOD)?,
        count_of(count, DeviceType::Char, rw)?,
    );
    let inside = dir_path.join("null");
    let result = probe::run_child_paused(&steps, |pid, codes| {
        // Join, UnshareNs, MountTmpfs: the child has its tmpfs.
        if codes.get(2) != Some(&0) {
            return None;
        }
        let through = Path::new("/proc")
            .join(pid.to_string())
            .join("root")
            .join(inside.strip_prefix("/").unwrap_or(&inside));
        Some(
            match nix::sys::stat::mknod(
                &through,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o600),
                MEM_NULL.dev_t(),
            ) {
                Ok(()) => 0,
                Err(e) => e as i32,
            },
        )
    });
    // The child is gone, and its mount with its namespace.
    let _ = fs::remove_dir(&dir_path);
    let (codes, made) = result?;
    Ok(NsMount {
        unshare: codes[1],
        mount: codes[2],
        mknod: codes[3],
        mknod_runs: count_of(count, DeviceType::Char, Access::MKNOD)? - m0,
        made: made.flatten(),
        open: codes[5],
        open_runs: count_of(count, DeviceType::Char, rw)? - o0,
    })
}

/// Both arms of the namespace-mount checks under one allow-all counter:
/// the initial user namespace (a private mount namespace), then a new one;
/// `Err(skip)` when no user namespace can be made.
fn ns_mount_arms(s: &mut Scratch) -> Result<Result<(NsMount, NsMount), Finding>, KernelError> {
    let cg = s.mkdir("a")?;
    let count = load(&counter(1), "count_allow")?;
    s.attach(&cg, &count, AttachFlags::NONE)?;
    let init = ns_mount_probe(s, &cg, &count, false)?;
    let user = ns_mount_probe(s, &cg, &count, true)?;
    if user.unshare != 0 {
        return Ok(Err(Finding::Skip(format!(
            "skipped: entering a new user and mount namespace failed: {}",
            errno_name(user.unshare)
        ))));
    }
    Ok(Ok((init, user)))
}

fn ns_observed(init: &NsMount, user: &NsMount) -> String {
    format!(
        "allow-all counter; tmpfs of the initial user namespace (private mount namespace): {}; \
         tmpfs mounted inside a new user namespace: {}",
        init.show(),
        user.show()
    )
}

fn nodes_on_user_namespace_mount_give_eacces(s: &mut Scratch) -> Result<Finding, KernelError> {
    let (init, user) = match ns_mount_arms(s)? {
        Ok(arms) => arms,
        Err(skip) => return Ok(skip),
    };
    seen(
        init.unshare == 0
            && init.mount == 0
            && init.made == Some(0)
            && init.open == 0
            && init.open_runs == 1
            && user.mount == 0
            && user.made == Some(0)
            && user.open == libc::EACCES
            && user.open_runs == 0,
        ns_observed(&init, &user),
    )
}

fn mknod_on_user_namespace_mount_is_eperm(s: &mut Scratch) -> Result<Finding, KernelError> {
    let (init, user) = match ns_mount_arms(s)? {
        Ok(arms) => arms,
        Err(skip) => return Ok(skip),
    };
    seen(
        init.unshare == 0
            && init.mount == 0
            && init.mknod == 0
            && init.mknod_runs == 1
            && user.mount == 0
            && user.mknod == libc::EPERM
            && user.mknod_runs == 0,
        ns_observed(&init, &user),
    )
}

/// Rule lists checked against the real v1 controller by the ground-truth
/// check (the v1_oracle test does many more, with invalid texts too).
const V1_LISTS: u64 = 16;

fn v1_controller_matches_oracle(_s: &mut Scratch) -> Result<Finding, KernelError> {
    if let Some(why) = v1::skip_reason() {
        return Ok(Finding::Skip(why));
    }
    let mut v1s = v1::Scratch::new()?.expect("mounted");
    let drivers = v1s.drivers().clone();
    let pools = Pools::new(&drivers);
    let mut rng = Rng::new(0x7631_6f72_6163_6c65);
    let (mut lists, mut probes, mut mismatches) = (0, 0, Vec::new());
    for i in 0..V1_LISTS {
        let rules = gen::rules(&mut rng, &pools, 8);
        let devices = gen::devices(&mut rng, &pools, &drivers, &rules, 16);
        let path = format!("l{i}");
        v1s.mkdir(&path)?;
        for rule in &rules {
            if let Err(e) = v1s.write(&path, rule.kind, &rule.text)? {
                mismatches.push(format!("{rule}: kernel {e}, oracle accepts"));
            }
        }
        let (behavior, list) = devcg_oracle::state_of(&rules);
        let want = match behavior {
            devcg_engine::Behavior::Allow => "a *:* rwm\n".to_string(),
            devcg_engine::Behavior::Deny => list.iter().map(|e| format!("{e}\n")).collect(),
        };
        let got = v1s.list(&path)?;
        if got != want {
            mismatches.push(format!(
                "list after {:?}: kernel {got:?}, oracle {want:?}",
                rules_text(&rules)
            ));
        }
        for p in v1s.probe(&path, &devices)? {
            probes += 1;
            let oracle = devcg_oracle::decide(&rules, &p.request);
            if p.outcome.verdict() != Some(oracle) {
                mismatches.push(format!("{}: {p}, oracle {oracle}", rules_text(&rules)));
            }
        }
        lists += 1;
    }
    let first = mismatches.first().cloned().unwrap_or_default();
    seen(
        mismatches.is_empty(),
        format!(
            "{lists} rule lists, {probes} probes, {} mismatches{}",
            mismatches.len(),
            if first.is_empty() {
                String::new()
            } else {
                format!("; first: {first}")
            }
        ),
    )
}

fn rules_text(rules: &[devcg_engine::Rule]) -> String {
    rules
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_counter_slots_distinct() {
        let mut names: Vec<_> = checks().iter().map(|c| c.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        let mut slots: Vec<u32> = DeviceType::ALL
            .iter()
            .flat_map(|&t| Access::every().map(move |a| slot(t, a)))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots, (0..16).collect::<Vec<_>>());
    }

    #[test]
    fn helper_programs_pass_the_emulator() {
        for p in [
            ret(0),
            ret(1),
            deny_device(DEV, None),
            deny_device(DEV, Some(Access::NONE)),
            counter(1),
        ] {
            devcg_emulator::Emulator::new(&p).expect("valid program");
        }
        let e = devcg_emulator::Emulator::new(&deny_device(DEV, None)).unwrap();
        assert_eq!(
            e.run(&DEV.request(Access::READ)).unwrap(),
            devcg_engine::Verdict::Deny
        );
        assert_eq!(
            e.run(&dev(2).request(Access::READ)).unwrap(),
            devcg_engine::Verdict::Allow
        );
    }
}
