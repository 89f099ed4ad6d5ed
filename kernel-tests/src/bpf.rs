//! bpf(2), directly: program and map loading, cgroup attach in every mode,
//! links, pins and queries. Always passes a full-size, zeroed `bpf_attr`
//! (the kernel refuses non-zero bytes past the fields it knows, and copies
//! at most its own size).
//!
//! Attaching is `pub(crate)`: the only way in from outside is through
//! [`crate::v2::Scratch`], which checks that the target cgroup lies inside
//! its scratch directory first. A deny-all program on the wrong cgroup locks
//! the shell out.

use std::ffi::CString;
use std::ops::BitOr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use devcg_engine::insn::op;
use devcg_engine::{MapKind, Program};
use thiserror::Error;

const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_PROG_LOAD: u32 = 5;
const BPF_BTF_LOAD: u32 = 18;
const BPF_OBJ_PIN: u32 = 6;
const BPF_OBJ_GET: u32 = 7;
const BPF_PROG_ATTACH: u32 = 8;
const BPF_PROG_DETACH: u32 = 9;
const BPF_PROG_GET_NEXT_ID: u32 = 11;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_MAP_GET_FD_BY_ID: u32 = 14;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_PROG_QUERY: u32 = 16;
const BPF_LINK_CREATE: u32 = 28;
const BPF_LINK_UPDATE: u32 = 29;
const BPF_LINK_GET_FD_BY_ID: u32 = 30;
const BPF_LINK_GET_NEXT_ID: u32 = 31;
const BPF_LINK_DETACH: u32 = 34;
const BPF_ENABLE_STATS: u32 = 32;
/// `enum bpf_stats_type`: the run time and count of every program.
const BPF_STATS_RUN_TIME: u32 = 0;

pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
/// `query_flags` of BPF_PROG_QUERY: the programs that run, not only the
/// ones attached right here.
const BPF_F_QUERY_EFFECTIVE: u32 = 1;

/// Room for any kernel's `union bpf_attr` (6.18's is 160 bytes); unused
/// bytes stay zero.
const ATTR_SIZE: usize = 256;
/// `BPF_OBJ_NAME_LEN`, the terminating NUL included.
const OBJ_NAME_LEN: usize = 16;

/// Attach flags (`BPF_F_ALLOW_OVERRIDE` and friends); combine with `|`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttachFlags(pub u32);

impl AttachFlags {
    pub const NONE: AttachFlags = AttachFlags(0);
    pub const ALLOW_OVERRIDE: AttachFlags = AttachFlags(1);
    pub const ALLOW_MULTI: AttachFlags = AttachFlags(2);
    pub const REPLACE: AttachFlags = AttachFlags(4);
}

impl BitOr for AttachFlags {
    type Output = AttachFlags;
    fn bitor(self, rhs: AttachFlags) -> AttachFlags {
        AttachFlags(self.0 | rhs.0)
    }
}

/// `prog_flags` of BPF_PROG_LOAD that matter here.
pub mod prog_flags {
    /// Mainline (6.7+): check register bounds invariants while verifying.
    /// Bit 7 is also what the unmerged 2023 device-guard RFC proposed for
    /// `BPF_F_CGROUP_DEVICE_GUARD`.
    pub const TEST_REG_INVARIANTS: u32 = 1 << 7;
    /// The RFC's value for `BPF_F_CGROUP_DEVICE_GUARD` (never merged).
    pub const RFC_CGROUP_DEVICE_GUARD: u32 = 1 << 7;
}

#[derive(Debug, Error)]
pub enum BpfError {
    /// The verifier (or the loader's checks) refused the program.
    #[error("BPF_PROG_LOAD: {errno}: {first_error}")]
    Load {
        errno: nix::Error,
        /// The line of the log that says why, for reports.
        first_error: String,
        /// The whole verifier log (its tail, if it was longer than the
        /// buffer).
        log: String,
    },
    #[error("{cmd}: {errno}")]
    Sys {
        cmd: &'static str,
        errno: nix::Error,
    },
    #[error("map {index} of the program: {reason}")]
    Map { index: usize, reason: String },
    /// The kernel refused a BTF blob; its log says why.
    #[error("BPF_BTF_LOAD: {errno}: {log}")]
    Btf { errno: nix::Error, log: String },
}

impl BpfError {
    /// The kernel's errno, whatever the command.
    pub fn errno(&self) -> Option<nix::Error> {
        match self {
            BpfError::Load { errno, .. }
            | BpfError::Sys { errno, .. }
            | BpfError::Btf { errno, .. } => Some(*errno),
            BpfError::Map { .. } => None,
        }
    }
}

struct Attr([u8; ATTR_SIZE]);

impl Attr {
    fn new() -> Self {
        Attr([0; ATTR_SIZE])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    /// An object name: the kernel accepts only `[A-Za-z0-9_.]`, at most 15
    /// bytes; anything else becomes `_`.
    fn name(&mut self, off: usize, name: &str) -> &mut Self {
        for (i, b) in name.bytes().take(OBJ_NAME_LEN - 1).enumerate() {
            self.0[off + i] = if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' {
                b
            } else {
                b'_'
            };
        }
        self
    }
    fn read_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().expect("4 bytes"))
    }
    fn read_u64(&self, off: usize) -> u64 {
        u64::from_ne_bytes(self.0[off..off + 8].try_into().expect("8 bytes"))
    }
}

fn sys_bpf(cmd: u32, attr: &mut Attr) -> Result<i64, nix::Error> {
    // SAFETY: attr is a live, writable buffer of ATTR_SIZE bytes, which is
    // the size we pass; every pointer stored in it points to memory that
    // outlives the call and is as large as the length stored beside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.0.as_mut_ptr(),
            ATTR_SIZE as libc::c_long,
        )
    };
    if ret < 0 {
        Err(nix::Error::last())
    } else {
        Ok(ret)
    }
}

fn call(cmd_name: &'static str, cmd: u32, attr: &mut Attr) -> Result<i64, BpfError> {
    sys_bpf(cmd, attr).map_err(|errno| BpfError::Sys {
        cmd: cmd_name,
        errno,
    })
}

/// For lookups and walks: true when the command found something, false on
/// ENOENT (nothing there, or the end of the walk).
fn found(cmd_name: &'static str, cmd: u32, attr: &mut Attr) -> Result<bool, BpfError> {
    match sys_bpf(cmd, attr) {
        Ok(_) => Ok(true),
        Err(nix::Error::ENOENT) => Ok(false),
        Err(errno) => Err(BpfError::Sys {
            cmd: cmd_name,
            errno,
        }),
    }
}

fn fd_result(cmd_name: &'static str, cmd: u32, attr: &mut Attr) -> Result<OwnedFd, BpfError> {
    let fd = call(cmd_name, cmd, attr)?;
    // SAFETY: the kernel just returned this new descriptor and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A loaded device program and the maps it holds open.
#[derive(Debug)]
pub struct LoadedProgram {
    pub fd: OwnedFd,
    pub maps: Vec<OwnedFd>,
}

impl LoadedProgram {
    /// The kernel's id of the program (what BPF_PROG_QUERY lists).
    pub fn id(&self) -> Result<u32, BpfError> {
        prog_id(&self.fd)
    }
}

impl AsFd for LoadedProgram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

pub fn create_map(
    kind: MapKind,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    name: &str,
) -> Result<OwnedFd, BpfError> {
    let mut a = Attr::new();
    let ty = match kind {
        MapKind::Hash => BPF_MAP_TYPE_HASH,
        MapKind::Array => BPF_MAP_TYPE_ARRAY,
    };
    a.u32(0, ty)
        .u32(4, key_size)
        .u32(8, value_size)
        .u32(12, max_entries)
        .name(28, name);
    fd_result("BPF_MAP_CREATE", BPF_MAP_CREATE, &mut a)
}

/// BPF_BTF_LOAD: the kernel's check of a BTF blob (such as the `.BTF` of
/// an object devcg writes), with its log on refusal.
pub fn btf_load(blob: &[u8]) -> Result<OwnedFd, BpfError> {
    let mut log = vec![0u8; 64 * 1024];
    let mut a = Attr::new();
    a.u64(0, blob.as_ptr() as u64)
        .u64(8, log.as_mut_ptr() as u64)
        .u32(16, blob.len() as u32)
        .u32(20, log.len() as u32)
        .u32(24, 1);
    match sys_bpf(BPF_BTF_LOAD, &mut a) {
        // SAFETY: the kernel just returned this new descriptor.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        Err(errno) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(BpfError::Btf {
                errno,
                log: String::from_utf8_lossy(&log[..end])
                    .trim()
                    .replace('\n', " | "),
            })
        }
    }
}

/// The caller must pass a key and value of the map's sizes: the kernel
/// reads that many bytes from each pointer.
pub fn map_update(map: impl AsFd, key: &[u8], value: &[u8]) -> Result<(), BpfError> {
    let mut a = Attr::new();
    a.u32(0, map.as_fd().as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_ptr() as u64)
        .u64(24, 0);
    call("BPF_MAP_UPDATE_ELEM", BPF_MAP_UPDATE_ELEM, &mut a)?;
    Ok(())
}

/// The value under `key`, `None` if there is none. `value_size` must be the
/// map's: the kernel writes that many bytes.
pub fn map_lookup(
    map: impl AsFd,
    key: &[u8],
    value_size: usize,
) -> Result<Option<Vec<u8>>, BpfError> {
    let mut value = vec![0u8; value_size];
    let mut a = Attr::new();
    a.u32(0, map.as_fd().as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_mut_ptr() as u64);
    Ok(found("BPF_MAP_LOOKUP_ELEM", BPF_MAP_LOOKUP_ELEM, &mut a)?.then_some(value))
}

/// Creates the program's maps with their contents, relocates every `lddw`
/// map reference (its immediate is the map's index) to the new fds, and
/// loads the program. A refusal carries the verifier log.
pub fn load(program: &Program, name: &str) -> Result<LoadedProgram, BpfError> {
    load_with_flags(program, name, 0)
}

/// [`load`] with `prog_flags` (see [`prog_flags`]).
pub fn load_with_flags(
    program: &Program,
    name: &str,
    flags: u32,
) -> Result<LoadedProgram, BpfError> {
    let mut maps = Vec::new();
    for (index, spec) in program.maps.iter().enumerate() {
        let fd = create_map(
            spec.kind,
            spec.key_size,
            spec.value_size,
            spec.max_entries,
            &spec.name,
        )?;
        for (k, v) in &spec.entries {
            if k.len() != spec.key_size as usize || v.len() != spec.value_size as usize {
                return Err(BpfError::Map {
                    index,
                    reason: "entry size does not match the map".into(),
                });
            }
            map_update(&fd, k, v)?;
        }
        maps.push(fd);
    }
    let mut insns = program.insns.clone();
    for insn in insns
        .iter_mut()
        .filter(|i| i.is_lddw() && i.src == op::PSEUDO_MAP_FD)
    {
        let index = insn.imm as usize;
        let fd = maps.get(index).ok_or(BpfError::Map {
            index,
            reason: "referenced but not defined".into(),
        })?;
        insn.imm = fd.as_raw_fd();
    }
    let bytes = devcg_engine::insn::encode_all(&insns);
    let license = CString::new("GPL").expect("no NUL");
    // Load without a log first: logging every verified instruction costs
    // time. Ask for the log only to explain a refusal.
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut a = Attr::new();
        a.u32(0, BPF_PROG_TYPE_CGROUP_DEVICE)
            .u32(4, insns.len() as u32)
            .u64(8, bytes.as_ptr() as u64)
            .u64(16, license.as_ptr() as u64)
            .u32(44, flags)
            .name(48, name)
            .u32(68, BPF_CGROUP_DEVICE);
        if let Some(log) = log {
            a.u32(24, 1)
                .u32(28, log.len() as u32)
                .u64(32, log.as_mut_ptr() as u64);
        }
        sys_bpf(BPF_PROG_LOAD, &mut a)
    };
    let fd = match attempt(None) {
        Ok(fd) => fd,
        Err(errno) => {
            // Since 6.4 the log rotates: a long one keeps its tail, where
            // the reason is.
            let mut log = vec![0u8; 1 << 20];
            let _ = attempt(Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let log = String::from_utf8_lossy(&log[..end]).into_owned();
            return Err(BpfError::Load {
                errno,
                first_error: error_line(&log),
                log,
            });
        }
    };
    // SAFETY: a fresh descriptor returned by the kernel.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    Ok(LoadedProgram { fd, maps })
}

/// The line of a verifier log that says why: the last one before the
/// statistics (`processed N insns…`), which is not an instruction trace.
pub fn error_line(log: &str) -> String {
    let is_trace = |l: &str| {
        let digits = l.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && l[digits..].starts_with(':')
    };
    log.lines()
        .map(str::trim)
        .rfind(|l| {
            !l.is_empty()
                && !l.starts_with("processed ")
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
                // After "infinite loop detected", the two states compared.
                && !l.starts_with("cur state:")
                && !l.starts_with("old state:")
                && !is_trace(l)
        })
        .or_else(|| log.lines().map(str::trim).rfind(|l| !l.is_empty()))
        .unwrap_or("(empty verifier log)")
        .to_string()
}

/// BPF_PROG_ATTACH of a device program to a cgroup directory fd; with
/// `replace`, `BPF_F_REPLACE` semantics (the old program's fd).
pub(crate) fn attach(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    flags: AttachFlags,
    replace: Option<BorrowedFd<'_>>,
) -> Result<(), BpfError> {
    let mut a = Attr::new();
    a.u32(0, cgroup.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE)
        .u32(12, flags.0);
    if let Some(old) = replace {
        a.u32(16, old.as_raw_fd() as u32);
    }
    call("BPF_PROG_ATTACH", BPF_PROG_ATTACH, &mut a)?;
    Ok(())
}

/// BPF_PROG_DETACH. With `prog`, that program (required for MULTI);
/// without, the one program of a NONE or OVERRIDE attachment.
pub(crate) fn detach(cgroup: BorrowedFd<'_>, prog: Option<BorrowedFd<'_>>) -> Result<(), BpfError> {
    let mut a = Attr::new();
    a.u32(0, cgroup.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE);
    if let Some(p) = prog {
        a.u32(4, p.as_raw_fd() as u32);
    }
    call("BPF_PROG_DETACH", BPF_PROG_DETACH, &mut a)?;
    Ok(())
}

/// A bpf_link from the program to the cgroup (always MULTI semantics):
/// detached when its last fd or pin goes away.
pub(crate) fn link_create(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
) -> Result<OwnedFd, BpfError> {
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, cgroup.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE);
    fd_result("BPF_LINK_CREATE", BPF_LINK_CREATE, &mut a)
}

/// BPF_LINK_UPDATE: the link runs `new` from now on.
pub fn link_update(link: impl AsFd, new: impl AsFd) -> Result<(), BpfError> {
    let mut a = Attr::new();
    a.u32(0, link.as_fd().as_raw_fd() as u32)
        .u32(4, new.as_fd().as_raw_fd() as u32);
    call("BPF_LINK_UPDATE", BPF_LINK_UPDATE, &mut a)?;
    Ok(())
}

/// BPF_LINK_DETACH: detaches now, even while fds or pins remain.
pub fn link_detach(link: impl AsFd) -> Result<(), BpfError> {
    let mut a = Attr::new();
    a.u32(0, link.as_fd().as_raw_fd() as u32);
    call("BPF_LINK_DETACH", BPF_LINK_DETACH, &mut a)?;
    Ok(())
}

/// A new fd for the program with this id (ENOENT once it is freed).
pub fn prog_by_id(id: u32) -> Result<OwnedFd, BpfError> {
    let mut a = Attr::new();
    a.u32(0, id);
    fd_result("BPF_PROG_GET_FD_BY_ID", BPF_PROG_GET_FD_BY_ID, &mut a)
}

/// The id after `start` of any program loaded on the machine, `None` at
/// the end.
pub fn prog_next_id(start: u32) -> Result<Option<u32>, BpfError> {
    let mut a = Attr::new();
    a.u32(0, start);
    Ok(found("BPF_PROG_GET_NEXT_ID", BPF_PROG_GET_NEXT_ID, &mut a)?.then(|| a.read_u32(4)))
}

/// A new fd for the link with this id (ENOENT once it is gone).
pub fn link_by_id(id: u32) -> Result<OwnedFd, BpfError> {
    let mut a = Attr::new();
    a.u32(0, id);
    fd_result("BPF_LINK_GET_FD_BY_ID", BPF_LINK_GET_FD_BY_ID, &mut a)
}

/// Pins a program, map or link at `path` on a bpffs.
pub fn pin(obj: impl AsFd, path: &std::path::Path) -> Result<(), BpfError> {
    let path = crate::sys::cstring(path).map_err(|_| BpfError::Sys {
        cmd: "BPF_OBJ_PIN",
        errno: nix::Error::EINVAL,
    })?;
    let mut a = Attr::new();
    a.u64(0, path.as_ptr() as u64)
        .u32(8, obj.as_fd().as_raw_fd() as u32);
    call("BPF_OBJ_PIN", BPF_OBJ_PIN, &mut a)?;
    Ok(())
}

/// A new fd for the object pinned at `path`.
pub fn obj_get(path: &std::path::Path) -> Result<OwnedFd, BpfError> {
    let path = crate::sys::cstring(path).map_err(|_| BpfError::Sys {
        cmd: "BPF_OBJ_GET",
        errno: nix::Error::EINVAL,
    })?;
    let mut a = Attr::new();
    a.u64(0, path.as_ptr() as u64);
    fd_result("BPF_OBJ_GET", BPF_OBJ_GET, &mut a)
}

/// What BPF_PROG_QUERY answers for a cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Program ids, in the order the kernel runs them.
    pub ids: Vec<u32>,
    /// The cgroup's attach flags (0 for an effective query).
    pub attach_flags: u32,
    /// Per program attach flags (direct queries; the link's are 0... as the
    /// kernel reports them).
    pub prog_attach_flags: Vec<u32>,
    /// Bumped by every attach and detach (6.6+; 0 before).
    pub revision: u64,
}

/// Programs attached directly to the cgroup, or (with `effective`) every
/// program that runs for tasks in it, ancestors' included.
pub fn query(cgroup: impl AsFd, effective: bool) -> Result<Query, BpfError> {
    const MAX: usize = 64;
    let mut ids = vec![0u32; MAX];
    let mut flags = vec![0u32; MAX];
    let mut a = Attr::new();
    a.u32(0, cgroup.as_fd().as_raw_fd() as u32)
        .u32(4, BPF_CGROUP_DEVICE)
        .u32(8, if effective { BPF_F_QUERY_EFFECTIVE } else { 0 })
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, MAX as u32);
    if !effective {
        a.u64(32, flags.as_mut_ptr() as u64);
    }
    call("BPF_PROG_QUERY", BPF_PROG_QUERY, &mut a)?;
    let count = (a.read_u32(24) as usize).min(MAX);
    ids.truncate(count);
    flags.truncate(if effective { 0 } else { count });
    Ok(Query {
        ids,
        attach_flags: a.read_u32(12),
        prog_attach_flags: flags,
        revision: a.read_u64(56),
    })
}

/// `struct bpf_prog_info { __u32 type; __u32 id; … }` and
/// `struct bpf_link_info { __u32 type; __u32 id; __u32 prog_id; … }`.
fn info(obj: BorrowedFd<'_>) -> Result<[u8; 256], BpfError> {
    let mut info = [0u8; 256];
    let mut a = Attr::new();
    a.u32(0, obj.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    call("BPF_OBJ_GET_INFO_BY_FD", BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    Ok(info)
}

fn word(info: &[u8; 256], i: usize) -> u32 {
    u32::from_ne_bytes(info[4 * i..4 * i + 4].try_into().expect("4 bytes"))
}

/// The kernel's id of a loaded program (`bpf_prog_info.id`).
pub fn prog_id(prog: impl AsFd) -> Result<u32, BpfError> {
    Ok(word(&info(prog.as_fd())?, 1))
}

/// What the kernel counted for a program while run-time statistics were
/// on (`bpf_prog_info.run_time_ns` and `run_cnt`; see
/// [`enable_run_time_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Total ns inside the program, a `sched_clock()` pair around each run.
    pub run_time_ns: u64,
    /// Runs counted.
    pub run_cnt: u64,
}

/// Offsets in `struct bpf_prog_info` (include/uapi/linux/bpf.h, stable
/// since 5.1): `__aligned_u64 prog_tags` at 184, then `__u64 run_time_ns`
/// at 192 and `__u64 run_cnt` at 200.
const INFO_RUN_TIME_NS: usize = 192;
const INFO_RUN_CNT: usize = 200;

/// BPF_ENABLE_STATS with `BPF_STATS_RUN_TIME` (5.8+): the kernel times and
/// counts every program run while the returned fd is open (it is a
/// machine-wide switch, counted: each holder keeps it on). Costs every
/// program on the machine a `sched_clock()` pair per run meanwhile.
pub fn enable_run_time_stats() -> Result<OwnedFd, BpfError> {
    let mut a = Attr::new();
    a.u32(0, BPF_STATS_RUN_TIME);
    fd_result("BPF_ENABLE_STATS", BPF_ENABLE_STATS, &mut a)
}

/// The program's run-time statistics so far (cumulative over its life;
/// they only grow while [`enable_run_time_stats`] holds them on).
pub fn prog_run_stats(prog: impl AsFd) -> Result<RunStats, BpfError> {
    let info = info(prog.as_fd())?;
    let u64_at = |off: usize| u64::from_ne_bytes(info[off..off + 8].try_into().expect("8 bytes"));
    Ok(RunStats {
        run_time_ns: u64_at(INFO_RUN_TIME_NS),
        run_cnt: u64_at(INFO_RUN_CNT),
    })
}

/// A program as the kernel holds it (`struct bpf_prog_info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgInfo {
    pub id: u32,
    pub prog_type: u32,
    pub name: String,
    /// The kernel's tag (a hash of the instructions), hex.
    pub tag: String,
    /// The translated instructions (`xlated_prog_insns`): after the
    /// verifier's rewrites, map references as map ids. Empty when the
    /// caller may not read them.
    pub xlated: Vec<u8>,
    /// Ids of the maps the program uses.
    pub map_ids: Vec<u32>,
}

/// Offsets in `struct bpf_prog_info` (stable since 4.15).
const INFO_TAG: usize = 8;
const INFO_XLATED_LEN: usize = 20;
const INFO_XLATED_INSNS: usize = 32;
const INFO_NR_MAP_IDS: usize = 52;
const INFO_MAP_IDS: usize = 56;
const INFO_NAME: usize = 64;

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Everything [`ProgInfo`] holds: one call for the sizes, one for the
/// contents (the kernel fills only buffers it is given).
pub fn prog_info(prog: impl AsFd) -> Result<ProgInfo, BpfError> {
    let fd = prog.as_fd();
    let first = info(fd)?;
    let xlated_len = word(&first, INFO_XLATED_LEN / 4) as usize;
    let nr_maps = word(&first, INFO_NR_MAP_IDS / 4) as usize;
    let mut xlated = vec![0u8; xlated_len];
    let mut map_ids = vec![0u32; nr_maps];
    let mut buf = [0u8; 256];
    let put = |buf: &mut [u8; 256], off: usize, v: u64| {
        buf[off..off + 8].copy_from_slice(&v.to_ne_bytes())
    };
    buf[INFO_XLATED_LEN..INFO_XLATED_LEN + 4].copy_from_slice(&(xlated_len as u32).to_ne_bytes());
    put(&mut buf, INFO_XLATED_INSNS, xlated.as_mut_ptr() as u64);
    buf[INFO_NR_MAP_IDS..INFO_NR_MAP_IDS + 4].copy_from_slice(&(nr_maps as u32).to_ne_bytes());
    put(&mut buf, INFO_MAP_IDS, map_ids.as_mut_ptr() as u64);
    let mut a = Attr::new();
    a.u32(0, fd.as_raw_fd() as u32)
        .u32(4, buf.len() as u32)
        .u64(8, buf.as_mut_ptr() as u64);
    call("BPF_OBJ_GET_INFO_BY_FD", BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    // The kernel may report less than the first call did (never more).
    xlated.truncate(word(&buf, INFO_XLATED_LEN / 4) as usize);
    map_ids.truncate(word(&buf, INFO_NR_MAP_IDS / 4) as usize);
    Ok(ProgInfo {
        id: word(&buf, 1),
        prog_type: word(&buf, 0),
        name: cstr(&buf[INFO_NAME..INFO_NAME + OBJ_NAME_LEN]),
        tag: buf[INFO_TAG..INFO_TAG + 8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        xlated,
        map_ids,
    })
}

/// A new fd for the map with this id.
pub fn map_by_id(id: u32) -> Result<OwnedFd, BpfError> {
    let mut a = Attr::new();
    a.u32(0, id);
    fd_result("BPF_MAP_GET_FD_BY_ID", BPF_MAP_GET_FD_BY_ID, &mut a)
}

/// A map as the kernel holds it (`struct bpf_map_info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapInfo {
    pub id: u32,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub name: String,
}

impl MapInfo {
    /// The kinds devcg models.
    pub fn kind(&self) -> Option<MapKind> {
        match self.map_type {
            BPF_MAP_TYPE_HASH => Some(MapKind::Hash),
            BPF_MAP_TYPE_ARRAY => Some(MapKind::Array),
            _ => None,
        }
    }
}

pub fn map_info(map: impl AsFd) -> Result<MapInfo, BpfError> {
    let i = info(map.as_fd())?;
    Ok(MapInfo {
        map_type: word(&i, 0),
        id: word(&i, 1),
        key_size: word(&i, 2),
        value_size: word(&i, 3),
        max_entries: word(&i, 4),
        name: cstr(&i[24..24 + OBJ_NAME_LEN]),
    })
}

/// The key after `key` (the first with `None`), `None` at the end.
pub fn map_next_key(
    map: impl AsFd,
    key: Option<&[u8]>,
    key_size: usize,
) -> Result<Option<Vec<u8>>, BpfError> {
    let mut next = vec![0u8; key_size];
    let mut a = Attr::new();
    a.u32(0, map.as_fd().as_raw_fd() as u32)
        .u64(8, key.map_or(0, |k| k.as_ptr() as u64))
        .u64(16, next.as_mut_ptr() as u64);
    Ok(found("BPF_MAP_GET_NEXT_KEY", BPF_MAP_GET_NEXT_KEY, &mut a)?.then_some(next))
}

/// A map entry: key bytes, value bytes.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Every (key, value) of a map, in the kernel's iteration order. A key
/// deleted meanwhile is skipped; the walk restarts nowhere (the kernel's
/// GET_NEXT_KEY continues from the first key when the given one is gone,
/// so a bound on the count keeps a map changing underneath from looping).
pub fn map_entries(map: impl AsFd, info: &MapInfo) -> Result<Vec<Entry>, BpfError> {
    let fd = map.as_fd();
    let mut out = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    for _ in 0..=info.max_entries {
        let Some(next) = map_next_key(fd, key.as_deref(), info.key_size as usize)? else {
            break;
        };
        if let Some(value) = map_lookup(fd, &next, info.value_size as usize)? {
            out.push((next.clone(), value));
        }
        key = Some(next);
    }
    Ok(out)
}

/// The id after `start` of any link on the machine, `None` at the end.
pub fn link_next_id(start: u32) -> Result<Option<u32>, BpfError> {
    let mut a = Attr::new();
    a.u32(0, start);
    Ok(found("BPF_LINK_GET_NEXT_ID", BPF_LINK_GET_NEXT_ID, &mut a)?.then(|| a.read_u32(4)))
}

/// A cgroup link's program, cgroup and attach type, `None` for another
/// kind of link (`struct bpf_link_info`: type, id, prog_id, then
/// `cgroup_id` and `attach_type` for BPF_LINK_TYPE_CGROUP).
pub fn cgroup_link(link: impl AsFd) -> Result<Option<CgroupLink>, BpfError> {
    const BPF_LINK_TYPE_CGROUP: u32 = 3;
    let i = info(link.as_fd())?;
    if word(&i, 0) != BPF_LINK_TYPE_CGROUP {
        return Ok(None);
    }
    Ok(Some(CgroupLink {
        id: word(&i, 1),
        prog_id: word(&i, 2),
        cgroup_id: u64::from_ne_bytes(i[16..24].try_into().expect("8 bytes")),
        attach_type: word(&i, 6),
    }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupLink {
    pub id: u32,
    pub prog_id: u32,
    /// The cgroup's id: its directory's inode number.
    pub cgroup_id: u64,
    pub attach_type: u32,
}

/// A link's own id and the id of the program it runs.
pub fn link_ids(link: impl AsFd) -> Result<(u32, u32), BpfError> {
    let info = info(link.as_fd())?;
    Ok((word(&info, 1), word(&info, 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_reason_in_a_log() {
        let log = "0: R1=ctx() R10=fp0\n0: (b7) r0 = 2\n1: (95) exit\n\
                   At program exit the register R0 has smin=2 smax=2 should have been in [0, 1]\n\
                   processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0\n";
        assert_eq!(
            error_line(log),
            "At program exit the register R0 has smin=2 smax=2 should have been in [0, 1]"
        );
        assert_eq!(
            error_line("unknown opcode 8d\nprocessed 0 insns\n"),
            "unknown opcode 8d"
        );
        assert_eq!(error_line(""), "(empty verifier log)");
        assert_eq!(
            error_line("2: (05) goto pc-1\ninfinite loop detected at insn 2\ncur state: R1=ctx()\nold state: R1=ctx()\n"),
            "infinite loop detected at insn 2"
        );
    }

    #[test]
    fn names_are_sanitized_and_cut() {
        let mut a = Attr::new();
        a.name(0, "devcg-linear program");
        assert_eq!(&a.0[..16], b"devcg_linear_pr\0");
    }
}
