//! systemd's device programs, from the real daemon (`devcg runtime systemd
//! --here`, on a machine where systemd is PID 1).
//!
//! Each random configuration becomes a service unit file in
//! `/run/systemd/system` (`devcg-<pid>-<n>.service`, `sleep infinity`),
//! started with `systemctl`. A unit file rather than `systemd-run -p`:
//! the two paths differ. A unit file's `DeviceAllow=` lines are parsed by
//! `config_parse_device_allow`, which adds every line as a new entry (what
//! devcg's model follows); properties sent over D-Bus (`systemd-run -p`,
//! `set-property`) go through `bus_cgroup_set_property`, where a second
//! entry for the same path replaces the first one's access.
//!
//! The program systemd attached to the unit's cgroup is read back
//! ([`runtime::read_program`]) and decided against what the settings are
//! documented to mean (`systemd_units::documented`, docs/systemd.md) and
//! against devcg's model of the generator on this machine's nodes and
//! `/proc/devices`; security classes are asked of the kernel by a child
//! joined to the unit's cgroup. Every unit is stopped, its file removed
//! and its failure state reset as soon as it has been read, and on drop.
//! Then the findings' reproducers and the lifecycle facts.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use devcg_differential::audit;
use devcg_differential::findings::{self, Reproducer};
use devcg_differential::gen::Draw;
use devcg_differential::systemd_units::{self, Entry, Pool, UnitConfig};
use devcg_engine::strategy::models::systemd::{compile_unit_on, DevicePolicy, Host, STATIC_NODES};
use devcg_engine::{Access, DeviceType, Program};

use crate::device::{Device, Drivers};
use crate::probe::NodeDir;
use crate::runtime::{self, Case, Fact, ReproducerResult, RuntimeError, RuntimeReport};
use crate::v2::Scratch;
use crate::KernelError;

/// Where devcg writes its units: runtime units, gone at reboot.
const UNIT_DIR: &str = "/run/systemd/system";
/// Prefix of devcg's unit names.
const UNIT_PREFIX: &str = "devcg-";

/// Why systemd cannot be checked here, if it cannot: one line.
pub fn skip_reason() -> Option<String> {
    let comm = fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if comm.trim() != "systemd" {
        return Some(format!(
            "PID 1 is {:?}, not systemd: `devcg runtime systemd --here` needs a machine where systemd is PID 1",
            comm.trim()
        ));
    }
    if let Some(why) = crate::v2::skip_reason() {
        return Some(why);
    }
    None
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let what = what.into();
    move |source| RuntimeError::Io { what, source }
}

/// `systemctl ARGS`, its stdout (trimmed), or its failure with stderr.
fn systemctl(args: &[&str]) -> Result<String, RuntimeError> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(io(format!("systemctl {}", args.join(" "))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(RuntimeError::Failed {
            command: format!("systemctl {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// systemd's version line (`systemd 252 (252.39-1~deb12u1)`).
pub fn version() -> String {
    Command::new("systemctl")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "systemd (version unknown)".into())
}

/// A service unit of devcg's: its file, started or not; stopped, removed
/// and reset on drop.
struct Unit {
    name: String,
    file: PathBuf,
    gone: bool,
}

impl Unit {
    fn create(name: String, config: &UnitConfig) -> Result<Unit, RuntimeError> {
        let file = Path::new(UNIT_DIR).join(&name);
        // Stdin from a pipe of systemd's (StandardInputText=), not
        // /dev/null: a strict unit must start whatever it allows.
        let text = config
            .service_file("devcg device-policy check", "/bin/sleep infinity")
            .replace(
                "[Service]\n",
                "[Service]\nStandardInputText=devcg\nStandardOutput=journal\n",
            );
        fs::create_dir_all(UNIT_DIR).map_err(io(format!("create {UNIT_DIR}")))?;
        fs::write(&file, text).map_err(io(format!("write {}", file.display())))?;
        Ok(Unit {
            name,
            file,
            gone: false,
        })
    }

    /// Starts the unit; systemd loads a new unit file on demand, and after
    /// a daemon-reload where its cache did not see the file yet.
    fn start(&self) -> Result<(), RuntimeError> {
        if systemctl(&["start", &self.name]).is_err() {
            systemctl(&["daemon-reload"])?;
            systemctl(&["start", &self.name])?;
        }
        Ok(())
    }

    /// The unit's cgroup under the cgroup2 mount at `mount`.
    fn cgroup(&self, mount: &Path) -> Result<PathBuf, RuntimeError> {
        let rel = systemctl(&["show", "-P", "ControlGroup", &self.name])?;
        if rel.is_empty() {
            let state = systemctl(&["show", "-P", "Result", &self.name]).unwrap_or_default();
            return Err(RuntimeError::Failed {
                command: format!("systemctl show -P ControlGroup {}", self.name),
                status: "no cgroup".into(),
                stderr: format!("the unit is not running (Result={state})"),
            });
        }
        Ok(mount.join(rel.trim_start_matches('/')))
    }

    fn stop(&self) -> Result<(), RuntimeError> {
        systemctl(&["stop", &self.name]).map(drop)
    }

    /// Stops it, removes its file and resets its failure state.
    fn teardown(&self) -> Result<(), RuntimeError> {
        let stopped = self.stop();
        let _ = fs::remove_file(&self.file);
        let _ = systemctl(&["reset-failed", &self.name]);
        stopped
    }

    /// [`Unit::teardown`], reporting a failure to stop.
    fn remove(mut self) -> Result<(), RuntimeError> {
        self.gone = true;
        self.teardown()
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        if !self.gone {
            if let Err(e) = self.teardown() {
                eprintln!("devcg: could not stop {}: {e}", self.name);
            }
        }
    }
}

/// Units a killed run left behind: stopped and removed.
fn remove_stale() {
    let Ok(dir) = fs::read_dir(UNIT_DIR) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(UNIT_PREFIX) && name.ends_with(".service") {
            let _ = systemctl(&["stop", &name]);
            let _ = fs::remove_file(e.path());
            let _ = systemctl(&["reset-failed", &name]);
        }
    }
}

/// This machine as systemd resolves entries: every device node directly
/// under /dev and in its subdirectories (not /dev/char and /dev/block,
/// which systemd parses), and /proc/devices.
fn host() -> Result<Host, RuntimeError> {
    let mut nodes = Vec::new();
    let mut dirs = vec![PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() && dir == Path::new("/dev") {
                if !matches!(
                    e.file_name().to_str(),
                    Some("char" | "block" | "shm" | "mqueue")
                ) {
                    dirs.push(path);
                }
                continue;
            }
            let ty = if ft.is_char_device() {
                DeviceType::Char
            } else if ft.is_block_device() {
                DeviceType::Block
            } else {
                continue;
            };
            let rdev = meta.rdev();
            nodes.push((
                path.display().to_string(),
                ty,
                nix::sys::stat::major(rdev) as u32,
                nix::sys::stat::minor(rdev) as u32,
            ));
        }
    }
    nodes.sort();
    let text = fs::read_to_string("/proc/devices").map_err(io("read /proc/devices"))?;
    Ok(Host {
        nodes,
        groups: parse_proc_devices(&text),
        complete: true,
    })
}

/// `/proc/devices`: (type, major, name) in file order.
fn parse_proc_devices(text: &str) -> Vec<(DeviceType, u32, String)> {
    let mut ty = None;
    let mut out = Vec::new();
    for line in text.lines() {
        match line.trim() {
            "Character devices:" => ty = Some(DeviceType::Char),
            "Block devices:" => ty = Some(DeviceType::Block),
            "" => ty = None,
            l => {
                if let (Some(t), Some((m, name))) = (ty, l.split_once(char::is_whitespace)) {
                    if let Ok(m) = m.parse() {
                        out.push((t, m, name.trim().to_string()));
                    }
                }
            }
        }
    }
    out
}

/// Char majors with no driver, where the kernel may be asked anything.
fn free_majors(drivers: &Drivers) -> Vec<u32> {
    (200..255)
        .filter(|&m| {
            drivers
                .probeable(Device::new(DeviceType::Char, m, 3))
                .is_ok()
        })
        .take(6)
        .collect()
}

/// What the generator draws from on this machine.
fn pool(host: &Host, free: &[u32]) -> Pool {
    // The static list's own nodes (a unit may name them too), then others
    // a machine of this kind has.
    const MORE: &[&str] = &[
        "/dev/console",
        "/dev/tty0",
        "/dev/ttyS0",
        "/dev/kmsg",
        "/dev/vda",
        "/dev/loop0",
        "/dev/net/tun",
        "/dev/fuse",
    ];
    let mut nodes: Vec<String> = STATIC_NODES
        .iter()
        .chain(MORE)
        .filter(|p| p.starts_with("/dev/") && host.node(p).is_some())
        .map(|p| p.to_string())
        .collect();
    nodes.push("/dev/devcg-no-such-node".into());
    let mut groups: Vec<(DeviceType, String)> = host
        .groups
        .iter()
        .filter(|(_, _, n)| {
            [
                "pts", "tty", "ttyS", "mem", "misc", "loop", "virtblk", "ptm", "input",
            ]
            .contains(&n.as_str())
        })
        .map(|(t, _, n)| (*t, n.clone()))
        .collect();
    groups.extend([
        (DeviceType::Char, "tty*".to_string()),
        (DeviceType::Char, "pt?".to_string()),
        (DeviceType::Block, "*blk*".to_string()),
        (DeviceType::Char, "devcg-no-such-group".to_string()),
    ]);
    Pool {
        nodes,
        groups,
        free_majors: free.to_vec(),
    }
}

/// A started unit and the program it enforces, read back.
struct Started {
    unit: Unit,
    cgroup: PathBuf,
    program: Program,
    attached: bool,
}

/// The state shared by every case.
struct Run {
    scratch: Scratch,
    nodes: NodeDir,
    host: Host,
    mount: PathBuf,
    seq: u64,
}

impl Run {
    fn unit_name(&mut self) -> String {
        self.seq += 1;
        format!("{UNIT_PREFIX}{}-{}.service", std::process::id(), self.seq)
    }

    /// Starts `config` as a unit and reads its program back; systemd's
    /// refusal (the unit does not start) as `Ok(Err(reason))`.
    fn start(&mut self, config: &UnitConfig) -> Result<Result<Started, String>, RuntimeError> {
        let unit = Unit::create(self.unit_name(), config)?;
        if let Err(e) = unit.start() {
            return Ok(Err(e.to_string()));
        }
        let cgroup = match unit.cgroup(&self.mount) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let (program, attached) = runtime::read_program(&cgroup)?;
        Ok(Ok(Started {
            unit,
            cgroup,
            program,
            attached,
        }))
    }

    fn model(&self, config: &UnitConfig) -> Result<Program, devcg_engine::CompileError> {
        compile_unit_on(&self.host, config.policy, &config.device_allow())
    }

    /// One configuration: audited against its documented meaning, its
    /// security classes asked of the kernel, compared with the model.
    fn case(&mut self, config: &UnitConfig) -> Result<Case, RuntimeError> {
        let rules = systemd_units::documented(&self.host, config);
        let mut case = Case::new(config.lines());
        let started = match self.start(config)? {
            Ok(s) => s,
            Err(why) => {
                case.refused = Some(why);
                return Ok(case);
            }
        };
        case.attached = started.attached;
        let real = case.judge(
            self.scratch.drivers(),
            &mut self.nodes,
            &started.cgroup,
            &started.program,
            &rules,
        )?;
        started.unit.remove()?;
        case.compare_model((&real, &started.program), self.model(config), &rules)?;
        Ok(case)
    }

    /// A finding's reproducer through the real daemon (`unit_from_rules`),
    /// moved to a driverless major where it does not depend on numbers.
    fn reproducer(&mut self, r: &Reproducer) -> Result<ReproducerResult, RuntimeError> {
        let moved_to = runtime::free_major(self.scratch.drivers());
        let (rules_text, request_text) = r.texts(moved_to);
        let (rules, req) = findings::parse(r.name, &rules_text, &request_text);
        let mut out = ReproducerResult::new(
            r,
            rules_text,
            request_text,
            "not asked: the unit did not start",
        );
        let config = match UnitConfig::from_rules(&rules) {
            Ok(c) => c,
            Err(e) => {
                out.refused = Some(e.to_string());
                out.status = "not seen: no unit expresses the rules".into();
                return Ok(out);
            }
        };
        let started = match self.start(&config)? {
            Ok(s) => s,
            Err(why) => {
                out.refused = Some(why);
                out.status = "not seen: systemd did not start the unit".into();
                return Ok(out);
            }
        };
        let emulate = |p: &Program| {
            devcg_emulator::Emulator::new(p)
                .and_then(|e| e.run(&req))
                .map_err(|source| audit::AuditError::Run {
                    label: "systemd's program".into(),
                    request: req,
                    source,
                })
        };
        let real = emulate(&started.program)?;
        out.real = Some(real);
        let device = Device::new(req.ty, req.major, req.minor);
        if runtime::safe_to_ask(self.scratch.drivers(), device, req.access) {
            let answer = runtime::ask(&mut self.nodes, &started.cgroup, &[req])?[0];
            out.kernel = answer.to_string();
            out.kernel_agrees = answer.verdict() == Some(real);
        } else {
            out.kernel = if req.is_reachable() {
                format!("not asked: {device} has a driver that is not safe to open")
            } else {
                "not asked: no syscall makes this request".into()
            };
        }
        started.unit.remove()?;
        let modelled = self.model(&config).ok().and_then(|p| emulate(&p).ok());
        out.status = if Some(real) == r.runtime && real != r.oracle {
            "confirmed".into()
        } else if real == r.oracle && modelled == Some(real) {
            "masked by systemd's static devices".into()
        } else {
            "not seen".into()
        };
        Ok(out)
    }
}

/// Programs attached directly to `cgroup`.
fn attached_ids(cgroup: &Path) -> Result<Vec<u32>, KernelError> {
    let dir = fs::File::open(cgroup).map_err(|e| {
        KernelError::Runtime(RuntimeError::Io {
            what: format!("open {}", cgroup.display()),
            source: e,
        })
    })?;
    Ok(crate::bpf::query(&dir, false)?.ids)
}

/// Device programs loaded on the machine (walking every program id).
fn device_programs() -> Result<usize, KernelError> {
    let mut count = 0;
    let mut id = 0;
    while let Some(next) = crate::bpf::prog_next_id(id)? {
        id = next;
        // Freed between the walk and the look-up: not loaded any more.
        let Ok(fd) = crate::bpf::prog_by_id(id) else {
            continue;
        };
        if crate::bpf::prog_info(&fd)?.prog_type == crate::bpf::BPF_PROG_TYPE_CGROUP_DEVICE {
            count += 1;
        }
    }
    Ok(count)
}

/// Polls `done` for up to `limit`: the kernel frees programs after an RCU
/// grace period, not at detach.
fn wait_for(
    limit: Duration,
    mut done: impl FnMut() -> Result<bool, KernelError>,
) -> Result<bool, KernelError> {
    let start = Instant::now();
    loop {
        if done()? {
            return Ok(true);
        }
        if start.elapsed() > limit {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The unit the lifecycle facts use: strict, two entries.
fn lifecycle_config() -> UnitConfig {
    UnitConfig {
        policy: DevicePolicy::Strict,
        entries: vec![
            Entry {
                spec: "/dev/null".into(),
                access: Access::READ.union(Access::WRITE),
            },
            Entry {
                spec: "char-pts".into(),
                access: Access::READ,
            },
        ],
    }
}

/// (a) daemon-reexec keeps the unit's programs, (b) stopping frees them,
/// (c) 100 start/stop cycles leak no program.
fn facts(run: &mut Run) -> Result<Vec<Fact>, KernelError> {
    let mut out = Vec::new();
    let config = lifecycle_config();
    let unit = Unit::create(run.unit_name(), &config)?;
    unit.start()?;
    let cgroup = unit.cgroup(&run.mount)?;
    let before = attached_ids(&cgroup)?;
    let (before_prog, _) = runtime::read_program(&cgroup)?;
    // What is attached while the manager re-executes, watched from a
    // thread: each distinct id list in the order seen (an empty one would
    // be a moment without enforcement).
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (back, seen) = std::thread::scope(|s| -> Result<_, KernelError> {
        let watcher = s.spawn(|| {
            let mut seen: Vec<Vec<u32>> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(ids) = attached_ids(&cgroup) {
                    if seen.last() != Some(&ids) {
                        seen.push(ids);
                    }
                }
            }
            seen
        });
        let reexec = systemctl(&["daemon-reexec"]);
        // The new manager answers once it is back.
        let back = reexec.is_ok()
            && wait_for(Duration::from_secs(60), || {
                Ok(systemctl(&["show", "-P", "ActiveState", &unit.name])
                    .is_ok_and(|s| s == "active"))
            })?;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = watcher.join().expect("the watcher does not panic");
        reexec?;
        Ok((back, seen))
    })?;
    let after = attached_ids(&cgroup)?;
    let (after_prog, _) = runtime::read_program(&cgroup)?;
    let rules = systemd_units::documented(&run.host, &config);
    let differ = (|| {
        audit::program_disagreements(
            (&runtime::decide(&before_prog, &rules)?, &before_prog),
            (&runtime::decide(&after_prog, &rules)?, &after_prog),
        )
    })()
    .map_err(RuntimeError::from)?;
    let gap = seen.iter().any(Vec::is_empty);
    let states: Vec<String> = seen.iter().map(|ids| format!("{ids:?}")).collect();
    out.push(Fact {
        name: "daemon-reexec keeps the unit's policy enforced".into(),
        detail: format!(
            "program ids on {} before {before:?}, after {after:?} ({}); attached while re-executing: {}; the program after decides {}{}",
            cgroup.display(),
            if before == after { "the same program" } else { "a new program replaced it" },
            states.join(" -> "),
            if differ.is_empty() { "every class as before".to_string() } else { format!("{} classes otherwise", differ.len()) },
            if back { "" } else { " (systemd did not answer within 60 s)" }
        ),
        holds: back && !before.is_empty() && after.len() == before.len() && !gap && differ.is_empty(),
    });
    unit.remove()?;
    let mut ids: Vec<u32> = before.iter().chain(&after).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let freed = wait_for(Duration::from_secs(5), || {
        Ok(ids.iter().all(|&id| {
            matches!(
                crate::bpf::prog_by_id(id).map_err(|e| e.errno()),
                Err(Some(nix::Error::ENOENT))
            )
        }))
    })?;
    let alive: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|&id| crate::bpf::prog_by_id(id).is_ok())
        .collect();
    out.push(Fact {
        name: "stopping the unit frees its programs".into(),
        detail: if freed {
            format!("ids {ids:?}: BPF_PROG_GET_FD_BY_ID answers ENOENT for each")
        } else {
            format!("ids {ids:?}: still loaded {alive:?} 5 s after the stop")
        },
        holds: freed && !ids.is_empty(),
    });
    let cycles = 100;
    let counted = device_programs()?;
    let unit = Unit::create(run.unit_name(), &config)?;
    let started = Instant::now();
    for _ in 0..cycles {
        unit.start()?;
        unit.stop()?;
    }
    let took = started.elapsed().as_secs_f64();
    unit.remove()?;
    let mut now = counted;
    let settled = wait_for(Duration::from_secs(5), || {
        now = device_programs()?;
        Ok(now <= counted)
    })?;
    out.push(Fact {
        name: format!("{cycles} start/stop cycles leak no program"),
        detail: format!(
            "cgroup device programs loaded: {counted} before, {now} after ({took:.1} s for the cycles)"
        ),
        holds: settled,
    });
    Ok(out)
}

/// `cases` random unit configurations (seeded) through the real systemd,
/// then the findings' reproducers and the lifecycle facts.
pub fn run(cases: u64, seed: u64) -> Result<RuntimeReport, KernelError> {
    if let Some(why) = skip_reason() {
        return Err(KernelError::Unavailable(why));
    }
    let started = Instant::now();
    remove_stale();
    let scratch = Scratch::new()?.ok_or(KernelError::NoCgroup2)?;
    let nodes = NodeDir::mount()?;
    let mount = scratch.mount().mount_point.clone();
    let host = host()?;
    let free = free_majors(scratch.drivers());
    let pool = pool(&host, &free);
    let mut run = Run {
        scratch,
        nodes,
        host,
        mount,
        seq: 0,
    };
    let configs = systemd_units::configs(&pool);
    let mut draw = Draw::new(seed);
    let mut out = Vec::new();
    for _ in 0..cases {
        let config = draw.value(&configs);
        out.push(run.case(&config)?);
    }
    let mut reproducers = Vec::new();
    for r in findings::SYSTEMD {
        reproducers.push(run.reproducer(r)?);
    }
    let facts = facts(&mut run)?;
    let pass = out.iter().all(Case::passes)
        && reproducers.iter().all(|r| r.kernel_agrees)
        && facts.iter().all(|f| f.holds);
    Ok(RuntimeReport {
        runtime: "systemd".into(),
        version: version(),
        cases: out,
        reproducers,
        facts,
        seconds: started.elapsed().as_secs_f64(),
        pass,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Off a systemd machine the run refuses at once, in one line naming
    /// PID 1, and touches nothing.
    #[test]
    fn without_systemd_as_pid_1_the_run_is_unavailable() {
        let comm = fs::read_to_string("/proc/1/comm").unwrap_or_default();
        if comm.trim() == "systemd" {
            eprintln!("skipped: systemd is PID 1 here");
            return;
        }
        match run(1, 0) {
            Err(KernelError::Unavailable(why)) => {
                assert!(why.contains("PID 1") && !why.contains('\n'), "{why}")
            }
            other => panic!("expected Unavailable, got {:?}", other.map(|r| r.pass)),
        }
    }

    #[test]
    fn proc_devices_is_read_by_section() {
        let text = "Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n136 pts\n\nBlock devices:\n  7 loop\n254 virtblk\n";
        let g = parse_proc_devices(text);
        assert_eq!(
            g,
            [
                (DeviceType::Char, 1, "mem".to_string()),
                (DeviceType::Char, 4, "/dev/vc/0".to_string()),
                (DeviceType::Char, 4, "tty".to_string()),
                (DeviceType::Char, 136, "pts".to_string()),
                (DeviceType::Block, 7, "loop".to_string()),
                (DeviceType::Block, 254, "virtblk".to_string()),
            ]
        );
    }
}
