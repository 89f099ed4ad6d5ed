//! Reads what a live cgroup enforces on device access, for `devcg audit`.
//! Read-only: it queries, opens by id and reads; it never attaches,
//! detaches or writes.
//!
//! cgroup2: BPF_PROG_QUERY with BPF_F_QUERY_EFFECTIVE lists the programs
//! that run for the cgroup (its own and its ancestors'); each is opened by
//! id and its translated instructions and maps are read back, then
//! rebuilt into a runnable program (`devcg_engine::xlated`), call targets
//! named from /proc/kallsyms. Where each program is attached is found by
//! querying the cgroup and its ancestors directly, and whether a link
//! holds it by walking the machine's links. v1: `devices.list`, which is
//! the cgroup's whole state except that an allow-by-default cgroup prints
//! `a *:* rwm` and hides its deny exceptions.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use devcg_engine::v1text::V1Text;
use devcg_engine::xlated::{self, XlatedError};
use devcg_engine::{Behavior, DeviceType, Exception, MapSpec, Program, Rule, RuleKind};
use thiserror::Error;

use crate::bpf::{self, BpfError, MapInfo, ProgInfo, BPF_CGROUP_DEVICE};
use crate::mounts;

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    #[error("{path}: not a cgroup (neither under the cgroup2 mount {v2} nor under the v1 devices mount {v1})")]
    NotACgroup {
        path: PathBuf,
        v2: String,
        v1: String,
    },
    #[error("process {0}: not found (/proc/{0}/cgroup cannot be read)")]
    NoProcess(u32),
    #[error(
        "reading device programs needs CAP_SYS_ADMIN or CAP_BPF (as root: sudo devcg audit ...)"
    )]
    Unprivileged,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error("{path}: devices.list line {line}: {text:?} is not an exception")]
    BadList {
        path: PathBuf,
        line: usize,
        text: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| match source.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing(path.to_path_buf()),
        _ => ReadError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

fn bpf_err(e: BpfError) -> ReadError {
    match e.errno() {
        Some(nix::Error::EPERM) | Some(nix::Error::EACCES) => ReadError::Unprivileged,
        _ => ReadError::Bpf(e),
    }
}

/// One program that runs for the cgroup.
#[derive(Debug)]
pub struct LiveProgram {
    pub info: ProgInfo,
    /// The cgroup it is attached to (the audited one or an ancestor).
    pub attached_at: Option<PathBuf>,
    /// That cgroup's attach flags (`BPF_F_ALLOW_OVERRIDE` = 1, `MULTI` = 2).
    pub flags: u32,
    /// The link that holds it, if a link does.
    pub link: Option<u32>,
    pub maps: Vec<MapInfo>,
    /// The program rebuilt from the dump, or why it could not be.
    pub program: Result<Program, XlatedError>,
}

impl LiveProgram {
    /// `prog 42 "devcg_tree"` for messages.
    pub fn label(&self) -> String {
        format!("prog {} \"{}\"", self.info.id, self.info.name)
    }
}

#[derive(Debug)]
pub struct V2State {
    pub path: PathBuf,
    /// In the order the kernel runs them.
    pub programs: Vec<LiveProgram>,
}

#[derive(Debug)]
pub struct V1State {
    pub path: PathBuf,
    /// The hierarchy's root: it allows everything and cannot be changed.
    pub is_root: bool,
    pub list: String,
    pub behavior: Behavior,
    pub exceptions: Vec<Exception>,
}

impl V1State {
    /// An allow-by-default cgroup's deny exceptions are not in
    /// devices.list: the audit cannot see them.
    pub fn hides_denies(&self) -> bool {
        self.behavior == Behavior::Allow && !self.is_root
    }
}

/// What a cgroup (or a process's cgroups) enforces.
#[derive(Debug, Default)]
pub struct Live {
    pub v2: Option<V2State>,
    pub v1: Option<V1State>,
}

/// Where the audited cgroups are: a cgroup directory, or a process.
fn locate(target: &str) -> Result<(Option<PathBuf>, Option<PathBuf>), ReadError> {
    let all = mounts::read();
    let v2 = mounts::cgroup2(&all);
    let v1 = mounts::v1_devices(&all);
    if let Ok(pid) = target.parse::<u32>() {
        let file = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let text = fs::read_to_string(&file).map_err(|_| ReadError::NoProcess(pid))?;
        let place = |mount: &Option<mounts::MountEntry>, path: Option<&str>| {
            let m = mount.as_ref()?;
            mounts::cgroup_dir(&m.mount_point, &m.root, path?)
        };
        let (v2_path, v1_path) = mounts::proc_cgroups(&text);
        return Ok((place(&v2, v2_path), place(&v1, v1_path)));
    }
    let path = fs::canonicalize(target).map_err(io(Path::new(target)))?;
    let under = |m: &Option<mounts::MountEntry>| {
        m.as_ref().is_some_and(|m| path.starts_with(&m.mount_point))
    };
    if under(&v2) {
        return Ok((Some(path), None));
    }
    if under(&v1) {
        return Ok((None, Some(path)));
    }
    let show = |m: &Option<mounts::MountEntry>| {
        m.as_ref().map_or("(none)".to_string(), |m| {
            m.mount_point.display().to_string()
        })
    };
    Err(ReadError::NotACgroup {
        path,
        v2: show(&v2),
        v1: show(&v1),
    })
}

/// Reads what `target` (a cgroup directory or a PID) enforces.
pub fn read(target: &str) -> Result<Live, ReadError> {
    let (v2, v1) = locate(target)?;
    Ok(Live {
        v2: v2.map(|p| read_v2(&p)).transpose()?,
        v1: v1.map(|p| read_v1(&p)).transpose()?,
    })
}

fn open_dir(path: &Path) -> Result<File, ReadError> {
    // std opens with O_CLOEXEC.
    File::open(path).map_err(io(path))
}

fn read_v2(path: &Path) -> Result<V2State, ReadError> {
    let dir = open_dir(path)?;
    let effective = bpf::query(&dir, true).map_err(bpf_err)?;
    if effective.ids.is_empty() {
        return Ok(V2State {
            path: path.to_path_buf(),
            programs: Vec::new(),
        });
    }
    // Where each program is attached: the cgroup itself or an ancestor,
    // up to the mount point.
    let mount = mounts::cgroup2(&mounts::read()).map(|m| m.mount_point);
    let mut holders: HashMap<u32, (PathBuf, u32)> = HashMap::new();
    let mut level = Some(path.to_path_buf());
    while let Some(dir_path) = level {
        let q = bpf::query(&open_dir(&dir_path)?, false).map_err(bpf_err)?;
        for id in q.ids {
            holders
                .entry(id)
                .or_insert_with(|| (dir_path.clone(), q.attach_flags));
        }
        let at_top = mount.as_deref().is_none_or(|m| dir_path == m);
        level = (!at_top)
            .then(|| dir_path.parent().map(Path::to_path_buf))
            .flatten();
    }
    let links = cgroup_links()?;
    // Read only when a program calls something: runc's and crun's do not.
    let symbols = std::cell::OnceCell::new();
    let mut programs = Vec::new();
    for id in effective.ids {
        let fd = bpf::prog_by_id(id).map_err(bpf_err)?;
        let info = bpf::prog_info(&fd).map_err(bpf_err)?;
        let (attached_at, flags) = holders
            .get(&id)
            .map_or((None, 0), |(p, f)| (Some(p.clone()), *f));
        let link = attached_at.as_ref().and_then(|p| {
            let ino = fs::metadata(p).ok()?.ino();
            links
                .iter()
                .find(|l| {
                    l.prog_id == id && l.cgroup_id == ino && l.attach_type == BPF_CGROUP_DEVICE
                })
                .map(|l| l.id)
        });
        let mut maps = Vec::new();
        let mut specs = Vec::new();
        for &map_id in &info.map_ids {
            let map = bpf::map_by_id(map_id).map_err(bpf_err)?;
            let mi = bpf::map_info(&map).map_err(bpf_err)?;
            let entries = bpf::map_entries(&map, &mi).map_err(bpf_err)?;
            if let Some(kind) = mi.kind() {
                specs.push(MapSpec {
                    name: mi.name.clone(),
                    kind,
                    key_size: mi.key_size,
                    value_size: mi.value_size,
                    max_entries: mi.max_entries,
                    entries,
                });
            }
            maps.push(mi);
        }
        let program = if info.xlated.is_empty() {
            Err(XlatedError::Length(0))
        } else if specs.len() != maps.len() {
            // A map type the emulator does not model: say which.
            let other = maps.iter().find(|m| m.kind().is_none()).expect("one");
            Err(XlatedError::MapType {
                id: other.id,
                map_type: other.map_type,
            })
        } else {
            xlated::untranslate(&info.xlated, &info.map_ids, specs, &|imm| {
                symbols.get_or_init(Symbols::read).name(imm)
            })
        };
        programs.push(LiveProgram {
            info,
            attached_at,
            flags,
            link,
            maps,
            program,
        });
    }
    Ok(V2State {
        path: path.to_path_buf(),
        programs,
    })
}

/// Every cgroup link on the machine.
fn cgroup_links() -> Result<Vec<bpf::CgroupLink>, ReadError> {
    let mut out = Vec::new();
    let mut id = 0;
    while let Some(next) = bpf::link_next_id(id).map_err(bpf_err)? {
        id = next;
        // A link may go away between the two calls.
        let Ok(fd) = bpf::link_by_id(id) else {
            continue;
        };
        if let Some(link) = bpf::cgroup_link(fd.as_fd()).map_err(bpf_err)? {
            out.push(link);
        }
    }
    Ok(out)
}

/// /proc/kallsyms by address, to name the kernel function a call reaches
/// (`__bpf_call_base` + imm). Empty when addresses are hidden.
struct Symbols {
    base: Option<u64>,
    by_addr: HashMap<u64, String>,
}

impl Symbols {
    fn read() -> Symbols {
        let text = fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let mut by_addr = HashMap::new();
        let mut base = None;
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(addr), Some(_kind), Some(name)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            if addr == 0 {
                continue;
            }
            if name == "__bpf_call_base" {
                base = Some(addr);
            }
            by_addr.entry(addr).or_insert_with(|| name.to_string());
        }
        Symbols { base, by_addr }
    }

    fn name(&self, imm: i32) -> Option<String> {
        let addr = self.base?.wrapping_add(i64::from(imm) as u64);
        self.by_addr.get(&addr).cloned()
    }
}

fn read_v1(path: &Path) -> Result<V1State, ReadError> {
    let file = path.join("devices.list");
    let list = fs::read_to_string(&file).map_err(io(&file))?;
    let (behavior, exceptions) = parse_list(&file, &list)?;
    let is_root = mounts::v1_devices(&mounts::read())
        .is_some_and(|m| fs::canonicalize(&m.mount_point).ok().as_deref() == Some(path));
    Ok(V1State {
        path: path.to_path_buf(),
        is_root,
        list,
        behavior,
        exceptions,
    })
}

/// devices.list as behavior and exceptions: `a *:* rwm` alone is allow by
/// default (exceptions hidden); anything else lists a deny-by-default
/// cgroup's grants, one per line.
pub fn parse_list(file: &Path, text: &str) -> Result<(Behavior, Vec<Exception>), ReadError> {
    if text.trim() == "a *:* rwm" {
        return Ok((Behavior::Allow, Vec::new()));
    }
    let mut exceptions = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || ReadError::BadList {
            path: file.to_path_buf(),
            line: i + 1,
            text: line.to_string(),
        };
        match Rule::new(RuleKind::Allow, line).map_err(|_| bad())?.parsed {
            V1Text::Exception(e) => exceptions.push(e),
            V1Text::All => return Err(bad()),
        }
    }
    Ok((Behavior::Deny, exceptions))
}

/// A name for a device of this machine: its node (`/dev/null`, from
/// /sys/dev) or else its driver (from /proc/devices).
pub fn device_names() -> impl Fn(DeviceType, u32, u32) -> Option<String> {
    let drivers = crate::device::Drivers::read().unwrap_or_default();
    move |ty, major, minor| {
        let kind = match ty {
            DeviceType::Char => "char",
            DeviceType::Block => "block",
        };
        let uevent = fs::read_to_string(format!("/sys/dev/{kind}/{major}:{minor}/uevent")).ok();
        uevent
            .and_then(|u| {
                u.lines()
                    .find_map(|l| l.strip_prefix("DEVNAME="))
                    .map(|n| format!("/dev/{n}"))
            })
            .or_else(|| drivers.name(ty, major).map(|d| format!("({d})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_list_is_read_as_the_kernel_prints_it() {
        let f = Path::new("devices.list");
        assert_eq!(
            parse_list(f, "a *:* rwm\n").unwrap(),
            (Behavior::Allow, vec![])
        );
        let (b, e) = parse_list(f, "c 1:3 rwm\nb *:* m\n").unwrap();
        assert_eq!(b, Behavior::Deny);
        assert_eq!(e.len(), 2);
        assert_eq!(parse_list(f, "").unwrap(), (Behavior::Deny, vec![]));
        let err = parse_list(f, "c 1:3 rwm\nnonsense\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "devices.list: devices.list line 2: \"nonsense\" is not an exception"
        );
    }
}
