//! bpf(2), directly: program and map loading, cgroup attach in every mode,
//! links and queries. Always passes a full-size, zeroed `bpf_attr` (the
//! kernel refuses non-zero bytes past the fields it knows, and a short one
//! on some commands).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use devcg_engine::insn::op;
use devcg_engine::{MapKind, Program};
use thiserror::Error;

const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_PROG_LOAD: u32 = 5;
const BPF_OBJ_PIN: u32 = 6;
const BPF_PROG_ATTACH: u32 = 8;
const BPF_PROG_DETACH: u32 = 9;
const BPF_PROG_QUERY: u32 = 16;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_LINK_CREATE: u32 = 28;

pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// Room for any kernel's `union bpf_attr`; unused bytes stay zero.
const ATTR_SIZE: usize = 256;

/// Attach flags (`BPF_F_ALLOW_OVERRIDE` and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachFlags(pub u32);

impl AttachFlags {
    pub const NONE: AttachFlags = AttachFlags(0);
    pub const ALLOW_OVERRIDE: AttachFlags = AttachFlags(1);
    pub const ALLOW_MULTI: AttachFlags = AttachFlags(2);
    pub const REPLACE: AttachFlags = AttachFlags(4);
}

#[derive(Debug, Error)]
pub enum BpfError {
    #[error("BPF_PROG_LOAD: {errno}\nverifier log:\n{log}")]
    Load { errno: nix::Error, log: String },
    #[error("{cmd}: {errno}")]
    Sys {
        cmd: &'static str,
        errno: nix::Error,
    },
    #[error("map {index} of the program: {reason}")]
    Map { index: usize, reason: String },
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
    fn name(&mut self, off: usize, name: &str) -> &mut Self {
        let n = name.len().min(15);
        self.0[off..off + n].copy_from_slice(&name.as_bytes()[..n]);
        self
    }
    fn read_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap())
    }
}

fn sys_bpf(cmd: u32, attr: &mut Attr) -> Result<i64, nix::Error> {
    // SAFETY: attr is a live, writable buffer of ATTR_SIZE bytes, which is
    // the size we pass; the kernel reads and writes only within it.
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

fn fd_result(cmd: &'static str, r: Result<i64, nix::Error>) -> Result<OwnedFd, BpfError> {
    let fd = r.map_err(|errno| BpfError::Sys { cmd, errno })?;
    // SAFETY: the kernel just returned this new descriptor and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A loaded device program and the maps it holds open.
pub struct LoadedProgram {
    pub fd: OwnedFd,
    pub maps: Vec<OwnedFd>,
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
    fd_result("BPF_MAP_CREATE", sys_bpf(BPF_MAP_CREATE, &mut a))
}

pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> Result<(), BpfError> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_ptr() as u64)
        .u64(24, 0);
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut a).map_err(|errno| BpfError::Sys {
        cmd: "BPF_MAP_UPDATE_ELEM",
        errno,
    })?;
    Ok(())
}

/// Creates the program's maps with their contents, relocates every
/// `lddw` map reference to the new fds, and loads the program. A refusal
/// carries the verifier log.
pub fn load(program: &Program, name: &str) -> Result<LoadedProgram, BpfError> {
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
    let license = CString::new("GPL").unwrap();
    // Load without a log first: a verbose log of a large program can
    // overflow any buffer and fail the load by itself. Ask for the log
    // only to explain a refusal.
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut a = Attr::new();
        a.u32(0, BPF_PROG_TYPE_CGROUP_DEVICE)
            .u32(4, insns.len() as u32)
            .u64(8, bytes.as_ptr() as u64)
            .u64(16, license.as_ptr() as u64)
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
            let mut log = vec![0u8; 16 << 20];
            let _ = attempt(Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            return Err(BpfError::Load {
                errno,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            });
        }
    };
    // SAFETY: a fresh descriptor returned by the kernel.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    Ok(LoadedProgram { fd, maps })
}

/// BPF_PROG_ATTACH of a device program to a cgroup directory fd.
pub fn attach(
    cgroup: &impl AsRawFd,
    prog: &impl AsRawFd,
    flags: AttachFlags,
    replace: Option<&dyn AsRawFd>,
) -> Result<(), BpfError> {
    let mut a = Attr::new();
    a.u32(0, cgroup.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE)
        .u32(12, flags.0);
    if let Some(old) = replace {
        a.u32(16, old.as_raw_fd() as u32);
    }
    sys_bpf(BPF_PROG_ATTACH, &mut a).map_err(|errno| BpfError::Sys {
        cmd: "BPF_PROG_ATTACH",
        errno,
    })?;
    Ok(())
}

pub fn detach(cgroup: &impl AsRawFd, prog: Option<&dyn AsRawFd>) -> Result<(), BpfError> {
    let mut a = Attr::new();
    a.u32(0, cgroup.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE);
    if let Some(p) = prog {
        a.u32(4, p.as_raw_fd() as u32);
    }
    sys_bpf(BPF_PROG_DETACH, &mut a).map_err(|errno| BpfError::Sys {
        cmd: "BPF_PROG_DETACH",
        errno,
    })?;
    Ok(())
}

/// A bpf_link from the program to the cgroup: detached when its last fd
/// (or pin) goes away.
pub fn link_create(cgroup: &impl AsRawFd, prog: &impl AsRawFd) -> Result<OwnedFd, BpfError> {
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, cgroup.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE);
    fd_result("BPF_LINK_CREATE", sys_bpf(BPF_LINK_CREATE, &mut a))
}

pub fn pin(obj: &impl AsRawFd, path: &str) -> Result<(), BpfError> {
    let path = CString::new(path).map_err(|_| BpfError::Sys {
        cmd: "BPF_OBJ_PIN",
        errno: nix::Error::EINVAL,
    })?;
    let mut a = Attr::new();
    a.u64(0, path.as_ptr() as u64)
        .u32(8, obj.as_raw_fd() as u32);
    sys_bpf(BPF_OBJ_PIN, &mut a).map_err(|errno| BpfError::Sys {
        cmd: "BPF_OBJ_PIN",
        errno,
    })?;
    Ok(())
}

/// Program ids attached directly to the cgroup, and the attach flags.
pub fn query(cgroup: &impl AsRawFd) -> Result<(Vec<u32>, u32), BpfError> {
    let mut ids = vec![0u32; 64];
    let mut a = Attr::new();
    a.u32(0, cgroup.as_raw_fd() as u32)
        .u32(4, BPF_CGROUP_DEVICE)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    sys_bpf(BPF_PROG_QUERY, &mut a).map_err(|errno| BpfError::Sys {
        cmd: "BPF_PROG_QUERY",
        errno,
    })?;
    let count = a.read_u32(24) as usize;
    ids.truncate(count.min(64));
    Ok((ids, a.read_u32(12)))
}

/// The kernel's id of a loaded program (`bpf_prog_info.id`).
pub fn prog_id(prog: &impl AsRawFd) -> Result<u32, BpfError> {
    let mut info = [0u8; 256];
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a).map_err(|errno| BpfError::Sys {
        cmd: "BPF_OBJ_GET_INFO_BY_FD",
        errno,
    })?;
    // struct bpf_prog_info { __u32 type; __u32 id; ... }
    Ok(u32::from_ne_bytes(info[4..8].try_into().unwrap()))
}
