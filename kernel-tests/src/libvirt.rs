//! libvirt's LXC driver, for real (`devcg runtime libvirt --here`): random
//! LXC domains with host devices are started, hot-plugged and
//! hot-unplugged through `virsh -c lxc:///`; after each step the device
//! program libvirt attached to the domain's cgroup (and its hash map) is
//! read back, decided against what the domain XML means at that step,
//! compared with devcg's libvirt model fed the calls the driver made, and
//! its security classes are asked of the kernel from inside the domain's
//! cgroup. The XML, the calls and the meaning are
//! `devcg_differential::libvirt_domains`; docs/libvirt.md has the sources.
//!
//! It needs a whole system (libvirtd, systemd as PID 1, cgroup2 at
//! /sys/fs/cgroup): `devcg runtime libvirt` runs it in a Debian guest. The
//! host devices are nodes devcg makes in a directory of its own under
//! /dev (the LXC driver recreates a hostdev at the same path in the
//! domain's /dev, which is why /dev), of driverless majors so the kernel
//! can be asked safely. Domains are destroyed and undefined on drop; a
//! libvirtd devcg started is stopped at the end.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use devcg_differential::audit;
use devcg_differential::findings::{self, Reproducer};
use devcg_differential::libvirt_domains::{self as domains, Hostdev, Kind, Step};
use devcg_differential::rng::Rng;
use devcg_engine::strategy::models::libvirt::{self as model, Libvirt};
use devcg_engine::{Access, DeviceType, Program, Request, Rule, Strategy, Verdict};
use devcg_oracle::Policy;

use crate::device::{Device, Drivers};
use crate::probe::{self, KernelAnswer, NodeDir};
use crate::runtime::{self, Case, Fact, ReproducerResult, RuntimeError, RuntimeReport};
use crate::v2::Scratch;
use crate::{owned, KernelError};

const URI: &str = "lxc:///";

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let what = what.into();
    move |source| RuntimeError::Io { what, source }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .and_then(|p| p.into_string().ok())
        .is_some_and(|p| p.split(':').any(|d| Path::new(d).join(program).is_file()))
}

/// Why libvirt's LXC driver cannot be driven here, if it cannot: one line.
pub fn skip_reason() -> Option<String> {
    for tool in ["libvirtd", "virsh"] {
        if !on_path(tool) {
            return Some(format!(
                "{tool} is not installed (libvirt-daemon, libvirt-daemon-driver-lxc and \
                 libvirt-clients; devcg runtime libvirt runs this in a Debian guest)"
            ));
        }
    }
    match crate::v2::find_cgroup2_mount() {
        Some(m) if m.mount_point == Path::new("/sys/fs/cgroup") => None,
        _ => Some(
            "libvirt's cgroup v2 device program needs the unified hierarchy at /sys/fs/cgroup"
                .into(),
        ),
    }
}

/// `virsh -c lxc:/// ARGS`, its stdout; a failure carries its stderr.
fn virsh(args: &[&str]) -> Result<String, RuntimeError> {
    let out = Command::new("virsh")
        .args(["-c", URI])
        .args(args)
        .output()
        .map_err(io("virsh"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(RuntimeError::Failed {
            command: format!("virsh {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A libvirtd devcg started (stopped on drop, its driver directory
/// removed), or none when one ran.
struct Daemon {
    pid: Option<i32>,
    drivers: Option<PathBuf>,
}

/// libvirt's driver modules (`.../libvirt/connection-driver`).
fn driver_dir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|e| e.path().join("libvirt/connection-driver"))
        .chain(std::iter::once(PathBuf::from(
            "/usr/lib/libvirt/connection-driver",
        )))
        .find(|d| d.join("libvirt_driver_lxc.so").is_file())
}

impl Daemon {
    /// A libvirtd answering on lxc:///, started if none runs. devcg's own
    /// loads the LXC driver alone (LIBVIRT_DRIVER_DIR names a directory
    /// holding only it): without libvirt-daemon-system the QEMU driver's
    /// start-up fails for want of the libvirt-qemu user, and libvirtd
    /// then serves nothing.
    fn ensure() -> Result<Daemon, RuntimeError> {
        if virsh(&["version"]).is_ok() {
            return Ok(Daemon {
                pid: None,
                drivers: None,
            });
        }
        let lxc = driver_dir()
            .ok_or(RuntimeError::Missing("libvirt-daemon-driver-lxc"))?
            .join("libvirt_driver_lxc.so");
        let dir = owned::temp_dir().join(owned::fresh_name("devcg-libvirt-drivers-"));
        fs::create_dir_all(&dir).map_err(io("mkdir the driver directory"))?;
        let mut daemon = Daemon {
            pid: None,
            drivers: Some(dir.clone()),
        };
        std::os::unix::fs::symlink(&lxc, dir.join("libvirt_driver_lxc.so"))
            .map_err(io("link the LXC driver"))?;
        let pid_file = Path::new("/run/libvirtd.pid");
        let status = Command::new("libvirtd")
            .arg("--daemon")
            .env("LIBVIRT_DRIVER_DIR", &dir)
            .status()
            .map_err(io("libvirtd --daemon"))?;
        if !status.success() {
            return Err(RuntimeError::Failed {
                command: "libvirtd --daemon".into(),
                status: status.to_string(),
                stderr: String::new(),
            });
        }
        let started = Instant::now();
        loop {
            daemon.pid = fs::read_to_string(pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            match virsh(&["version"]) {
                Ok(_) => return Ok(daemon),
                Err(e) if started.elapsed() > Duration::from_secs(60) => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let started = Instant::now();
            while owned::pid_alive(pid.as_raw()) && started.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if let Some(dir) = &self.drivers {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// devcg's nodes (under /dev) and XML files (in the temp directory),
/// removed on drop.
struct Files {
    nodes: PathBuf,
    xml: PathBuf,
}

impl Files {
    fn new() -> Result<Files, RuntimeError> {
        let nodes = Path::new("/dev").join(owned::fresh_name("devcg-libvirt-"));
        let xml = owned::temp_dir().join(owned::fresh_name("devcg-libvirt-"));
        fs::create_dir_all(&nodes).map_err(io(format!("mkdir {}", nodes.display())))?;
        let files = Files { nodes, xml };
        fs::create_dir_all(&files.xml).map_err(io("mkdir the XML directory"))?;
        Ok(files)
    }

    fn dir(&self) -> String {
        self.nodes.display().to_string()
    }

    /// The node of `h`, made once.
    fn node(&self, h: &Hostdev) -> Result<(), RuntimeError> {
        let path = h.path(&self.dir());
        if Path::new(&path).exists() {
            return Ok(());
        }
        let dev = Device::new(h.kind.device_type(), h.major, h.minor);
        nix::sys::stat::mknod(
            Path::new(&path),
            dev.sflag(),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            dev.dev_t(),
        )
        .map_err(|e| RuntimeError::Io {
            what: format!("mknod {path}"),
            source: e.into(),
        })
    }

    fn write(&self, name: &str, text: &str) -> Result<String, RuntimeError> {
        let path = self.xml.join(name);
        fs::write(&path, text).map_err(io(format!("write {}", path.display())))?;
        Ok(path.display().to_string())
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.nodes);
        let _ = fs::remove_dir_all(&self.xml);
    }
}

/// The leftovers of a killed run: its domains (`devcg<pid>…`), node
/// directories under /dev and XML directories, where the pid is dead.
fn remove_stale() {
    if let Ok(names) = virsh(&["list", "--all", "--name"]) {
        for name in names.lines().map(str::trim) {
            let pid = name
                .strip_prefix("devcg")
                .map(|rest| {
                    rest.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
                .and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| !owned::pid_alive(p)) {
                drop(Domain(name.to_string()));
            }
        }
    }
    for dir in [Path::new("/dev").to_path_buf(), owned::temp_dir()] {
        for prefix in ["devcg-libvirt-", "devcg-libvirt-drivers-"] {
            for stale in owned::stale_entries(&dir, prefix) {
                let _ = fs::remove_dir_all(stale);
            }
        }
    }
}

/// A defined domain: destroyed and undefined on drop.
struct Domain(String);

impl Drop for Domain {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.0]);
        if let Err(e) = virsh(&["undefine", &self.0]) {
            eprintln!("devcg: could not undefine libvirt domain {}: {e}", self.0);
        }
    }
}

/// What one step left in the kernel.
struct Observed {
    /// Where libvirt attached the program.
    attach_point: PathBuf,
    /// A cgroup below it (or it) holding the domain's processes: probes
    /// join this one (a cgroup with children may not take processes).
    leaf: PathBuf,
    program: Program,
    prog_id: u32,
    map_ids: Vec<u32>,
    /// The map's contents, key to value.
    map: BTreeMap<u64, u32>,
}

fn map_of(program: &Program) -> BTreeMap<u64, u32> {
    program
        .maps
        .first()
        .map(|m| {
            m.entries
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        u64::from_le_bytes(k.as_slice().try_into().ok()?),
                        u32::from_le_bytes(v.as_slice().try_into().ok()?),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Directories under `dir` (itself first), depth first, up to `depth`.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if depth == 0 {
        return;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        let mut subs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        subs.sort();
        for s in subs {
            walk(&s, depth - 1, out);
        }
    }
}

/// The domain's cgroup where libvirt attached its program: the cgroup
/// directory named after the domain (machined's scope), or one below it,
/// whichever has a device program attached directly.
fn observe(name: &str) -> Result<Observed, KernelError> {
    let mut all = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 4, &mut all);
    let scope = all
        .iter()
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(name))
        })
        .ok_or_else(|| KernelError::Tool {
            command: format!("find the cgroup of domain {name}"),
            why: "no cgroup directory under /sys/fs/cgroup names it".into(),
        })?
        .clone();
    let mut below = Vec::new();
    walk(&scope, 3, &mut below);
    for dir in &below {
        let live = crate::audit::read(&dir.display().to_string()).map_err(RuntimeError::from)?;
        let Some(p) = live
            .v2
            .into_iter()
            .flat_map(|v2| v2.programs)
            .find(|p| p.attached_at.as_deref() == Some(dir.as_path()))
        else {
            continue;
        };
        let mut subtree = Vec::new();
        walk(dir, 3, &mut subtree);
        let leaf = subtree
            .into_iter()
            .find(|d| {
                fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|s| !s.trim().is_empty())
            })
            .unwrap_or_else(|| dir.clone());
        let (program, _) = runtime::read_program(&leaf)?;
        return Ok(Observed {
            attach_point: dir.clone(),
            leaf,
            map: map_of(&program),
            program,
            prog_id: p.info.id,
            map_ids: p.maps.iter().map(|m| m.id).collect(),
        });
    }
    Err(KernelError::Tool {
        command: format!("find the device program of domain {name}"),
        why: format!(
            "no device program is attached at {} or below it",
            scope.display()
        ),
    })
}

/// How long a hot-plug waits for libvirtd to learn the domain's init pid.
/// About one domain in a hundred never gets it (120 s made no
/// difference): its hot-plug is then refused, and reported so.
const INIT_PID_WAIT: Duration = Duration::from_secs(30);

/// Runs one step through virsh; libvirt's refusal as `Err(reason)`.
fn perform(
    files: &Files,
    name: &str,
    step: &Step,
    n: usize,
) -> Result<Result<(), String>, RuntimeError> {
    let dir = files.dir();
    let result = match step {
        Step::Start(hostdevs) => {
            let xml = files.write(
                &format!("{name}.xml"),
                &domains::domain_xml(name, hostdevs, &dir),
            )?;
            virsh(&["define", &xml]).and_then(|_| virsh(&["start", name]))
        }
        Step::Attach(h) | Step::Detach(h) => {
            let verb = if matches!(step, Step::Attach(_)) {
                "attach-device"
            } else {
                "detach-device"
            };
            let xml = files.write(&format!("{name}-{n}.xml"), &h.xml(&dir))?;
            // libvirtd learns the init pid from the controller some time
            // after the start: a hot-plug before that is refused, so retry.
            let started = Instant::now();
            loop {
                match virsh(&[verb, name, &xml, "--live"]) {
                    Err(RuntimeError::Failed { stderr, .. })
                        if stderr.contains("init PID") && started.elapsed() < INIT_PID_WAIT =>
                    {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    other => {
                        let waited = started.elapsed();
                        if waited > Duration::from_secs(1) {
                            eprintln!(
                                "devcg: {verb} {name}: libvirtd knew the init pid after {:.1} s",
                                waited.as_secs_f64()
                            );
                        }
                        break other;
                    }
                }
            }
        }
    };
    Ok(result.map(|_| ()).map_err(|e| e.to_string()))
}

/// Runs a domain's `steps`; after each accepted step `then` gets the step
/// index and what the kernel holds (the domain still running). Stops at
/// libvirt's first refusal, returned with its index.
fn run_domain(
    files: &Files,
    name: &str,
    steps: &[Step],
    mut then: impl FnMut(usize, &Observed) -> Result<(), KernelError>,
) -> Result<Option<(usize, String)>, KernelError> {
    for step in steps {
        let hs: Vec<Hostdev> = match step {
            Step::Start(h) => h.clone(),
            Step::Attach(h) | Step::Detach(h) => vec![*h],
        };
        for h in &hs {
            files.node(h)?;
        }
    }
    let mut domain = None;
    for (i, step) in steps.iter().enumerate() {
        if i == 0 {
            domain = Some(Domain(name.to_string()));
        }
        if let Err(why) = perform(files, name, step, i)? {
            return Ok(Some((i, why)));
        }
        let seen = observe(name)?;
        then(i, &seen)?;
    }
    drop(domain);
    Ok(None)
}

/// A map entry as seen and as the model has it (`None`: no entry).
type Entry = (Option<u32>, Option<u32>);

/// Program id and map ids, before and after a hot-plug step.
type Ids = ((u32, u32), (Vec<u32>, Vec<u32>));

/// Per-step observations kept for the facts.
#[derive(Default)]
struct Seen {
    /// (hostdev, real entry after its detach, the model's entry).
    detaches: Vec<(Hostdev, Entry)>,
    /// (numbers, real entry, the model's entry) where a char and a block
    /// hostdev at the same numbers were both present.
    shared: Vec<((u32, u32), Entry)>,
    /// (step, program id before/after, map ids before/after) per hot-plug.
    ids: Vec<(String, Ids)>,
    /// Where the first program was attached, and the cgroup probed.
    place: Option<(PathBuf, PathBuf)>,
}

impl Seen {
    /// What step `s` of `steps` shows for the facts; `prev` is the
    /// previous step's program and map ids (of the same domain).
    fn record(
        &mut self,
        steps: &[Step],
        s: usize,
        o: &Observed,
        prev: &mut Option<(u32, Vec<u32>)>,
    ) {
        let model_map = model_map(&steps[..=s]);
        let step = &steps[s];
        if let Step::Detach(h) = step {
            let k = model::key(h.major, h.minor);
            self.detaches
                .push((*h, (o.map.get(&k).copied(), model_map.get(&k).copied())));
        }
        let present = domains::present(&steps[..=s]);
        for h in &present {
            if h.kind == Kind::Misc
                && present
                    .iter()
                    .any(|g| g.kind == Kind::Storage && (g.major, g.minor) == (h.major, h.minor))
            {
                let k = model::key(h.major, h.minor);
                self.shared.push((
                    (h.major, h.minor),
                    (o.map.get(&k).copied(), model_map.get(&k).copied()),
                ));
            }
        }
        if let (Some((pid, mids)), false) = (&*prev, matches!(step, Step::Start(_))) {
            self.ids.push((
                step.to_string(),
                ((*pid, o.prog_id), (mids.clone(), o.map_ids.clone())),
            ));
        }
        *prev = Some((o.prog_id, o.map_ids.clone()));
        if self.place.is_none() {
            self.place = Some((o.attach_point.clone(), o.leaf.clone()));
        }
    }
}

/// `cases` random domains (seeded), then the reproducers.
pub fn run(cases: u64, seed: u64) -> Result<RuntimeReport, KernelError> {
    if let Some(why) = skip_reason() {
        return Err(KernelError::Unavailable(why));
    }
    let started = Instant::now();
    let scratch = Scratch::new()?.ok_or(KernelError::NoCgroup2)?;
    let mut nodes = NodeDir::mount()?;
    let drivers = scratch.drivers();
    let majors: Vec<u32> = (200..4096)
        .filter(|&m| {
            DeviceType::ALL
                .iter()
                .all(|&t| drivers.probeable(Device::new(t, m, 1)).is_ok())
        })
        .take(2)
        .collect();
    if majors.len() < 2 {
        return Err(KernelError::Unavailable(
            "no two majors without a driver (char and block) below 4096".into(),
        ));
    }
    let daemon = Daemon::ensure()?;
    remove_stale();
    let version = virsh(&["version"])
        .ok()
        .and_then(|v| {
            v.lines()
                .find(|l| l.starts_with("Using library:"))
                .map(|l| l.trim_start_matches("Using library:").trim().to_string())
        })
        .map(|v| format!("{v} (LXC driver)"))
        .unwrap_or_else(|| "libvirt LXC driver".into());
    let files = Files::new()?;
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut seen = Seen::default();
    for i in 0..cases {
        let steps = domains::draw(&mut rng, &majors);
        let name = format!("devcg{}x{i}", std::process::id());
        let mut prev: Option<(u32, Vec<u32>)> = None;
        let mut step_cases: Vec<Case> = Vec::new();
        let refused = run_domain(&files, &name, &steps, |s, o| {
            let c = judge(i, drivers, &mut nodes, &steps[..=s], o)?;
            seen.record(&steps, s, o, &mut prev);
            step_cases.push(c);
            Ok(())
        })?;
        if let Some((s, why)) = refused {
            let lines = step_lines(i, &steps[..=s]);
            let mut case = Case::new(lines);
            case.refused = Some(why);
            step_cases.push(case);
        }
        out.extend(step_cases);
    }
    let mut reproducers = Vec::new();
    for (i, r) in findings::LIBVIRT.iter().enumerate() {
        let name = format!("devcg{}v{i}", std::process::id());
        reproducers.push(reproducer(
            drivers, &mut nodes, &files, &name, r, majors[0], &mut seen,
        )?);
    }
    // The reproducers' domains count too: they unplug a device and share
    // numbers whatever the random domains do.
    let mut facts = facts(&seen);
    facts.push(node_types(
        &files,
        &format!("devcg{}n", std::process::id()),
        majors[0],
    )?);
    drop(files);
    drop(daemon);
    // A step libvirt refuses is a case with libvirt's reason, as for every
    // runtime: it says nothing against the programs read back.
    let pass = out.iter().all(Case::passes)
        && reproducers.iter().all(|r| r.kernel_agrees)
        && facts.iter().all(|f| f.holds);
    Ok(RuntimeReport {
        runtime: "libvirt".into(),
        version,
        cases: out,
        reproducers,
        facts,
        seconds: started.elapsed().as_secs_f64(),
        pass,
    })
}

/// The case's description: the step, then every call the cgroup has seen.
fn step_lines(domain: u64, steps: &[Step]) -> Vec<String> {
    let last = steps.last().expect("a step");
    std::iter::once(format!(
        "step {} of domain {domain}: {last}",
        steps.len() - 1
    ))
    .chain(short_calls(steps))
    .collect()
}

/// The calls, with the driver's start-up defaults folded into one word.
fn short_calls(steps: &[Step]) -> Vec<String> {
    let defaults = domains::step_calls(&Step::Start(Vec::new()));
    domains::calls(steps)
        .into_iter()
        .filter(|c| c == "deny a" || !defaults.contains(c))
        .map(|c| {
            if c == "deny a" {
                "deny a; (defaults)".to_string()
            } else {
                c
            }
        })
        .collect()
}

fn model_program(steps: &[Step]) -> Program {
    Libvirt
        .compile(&domains::rules(&domains::calls(steps)))
        .expect("libvirt's model refuses nothing")
}

fn model_map(steps: &[Step]) -> BTreeMap<u64, u32> {
    map_of(&model_program(steps))
}

/// One step's case: the real program against the meaning and the model,
/// and its security classes asked of the kernel.
fn judge(
    domain: u64,
    drivers: &Drivers,
    nodes: &mut NodeDir,
    steps: &[Step],
    o: &Observed,
) -> Result<Case, KernelError> {
    let meaning: Vec<Rule> = domains::rules(&domains::meaning(steps));
    let mut case = Case::new(step_lines(domain, steps));
    // libvirt attaches its program with the domain's first step.
    case.attached = true;
    let real = case.judge(drivers, nodes, &o.leaf, &o.program, &meaning)?;
    case.compare_model((&real, &o.program), Ok(model_program(steps)), &meaning)?;
    Ok(case)
}

fn hex(v: Option<u32>) -> String {
    v.map_or("none".into(), |v| format!("{v:#x}"))
}

/// The type of the node at `path` as a process of the domain sees it
/// (through `/proc/PID/root` of a process in `leaf`).
fn node_type_in_domain(leaf: &Path, path: &str) -> Option<DeviceType> {
    use std::os::unix::fs::FileTypeExt;
    let procs = fs::read_to_string(leaf.join("cgroup.procs")).ok()?;
    let pid = procs.lines().next()?.trim().to_string();
    let meta = fs::symlink_metadata(format!("/proc/{pid}/root{path}")).ok()?;
    let ft = meta.file_type();
    if ft.is_char_device() {
        Some(DeviceType::Char)
    } else if ft.is_block_device() {
        Some(DeviceType::Block)
    } else {
        None
    }
}

/// Opens (read-only) `path` inside the domain, through `/proc/PID/root`
/// of a process in `leaf`, from a child joined to `leaf`.
fn open_in_domain(leaf: &Path, path: &str) -> Result<Option<KernelAnswer>, KernelError> {
    let procs = fs::read_to_string(leaf.join("cgroup.procs")).unwrap_or_default();
    let Some(pid) = procs.lines().next().map(str::trim) else {
        return Ok(None);
    };
    let join = crate::sys::cstring(&leaf.join("cgroup.procs")).map_err(RuntimeError::from)?;
    let node = crate::sys::cstring(Path::new(&format!("/proc/{pid}/root{path}")))
        .map_err(RuntimeError::from)?;
    let steps = [
        probe::Step::Join(join),
        probe::Step::Open(node, probe::open_flags(Access::READ)),
    ];
    let codes = probe::run_child(&steps).map_err(RuntimeError::from)?;
    Ok(Some(steps[1].outcome(codes[1])))
}

/// V7 (docs/findings.md): the node the LXC driver makes inside the domain
/// for a hostdev. At start it has the hostdev's type; on hot-plug, a
/// `misc` (char) hostdev's node is made as a *block* node
/// (`lxcDomainAttachDeviceHostdevMiscLive` passes `S_IFBLK`), which the
/// domain's own program then denies, since it allowed the char device.
/// Holds when the real driver does exactly that: a fix upstream shows as
/// this fact failing, and the finding must then be updated.
fn node_types(files: &Files, name: &str, major: u32) -> Result<Fact, KernelError> {
    let at_start = Hostdev::new(Kind::Misc, major, 10);
    let misc = Hostdev::new(Kind::Misc, major, 11);
    let storage = Hostdev::new(Kind::Storage, major, 12);
    let steps = vec![
        Step::Start(vec![at_start]),
        Step::Attach(misc),
        Step::Attach(storage),
    ];
    let dir = files.dir();
    let mut seen: Vec<(Hostdev, &str, Option<DeviceType>, Option<Verdict>)> = Vec::new();
    // The kernel's answer to a read open of the hot-plugged misc node, by
    // a child joined to the domain's cgroup.
    let mut kernel = None;
    let refused = run_domain(files, name, &steps, |s, o| {
        if s + 1 < steps.len() {
            return Ok(());
        }
        kernel = open_in_domain(&o.leaf, &misc.path(&dir))?;
        for (h, how) in [
            (at_start, "start"),
            (misc, "hot-plug"),
            (storage, "hot-plug"),
        ] {
            let ty = node_type_in_domain(&o.leaf, &h.path(&dir));
            // What the domain's program answers for a read of that node.
            let verdict = ty.and_then(|ty| {
                let req = Device::new(ty, h.major, h.minor).request(Access::READ);
                devcg_emulator::Emulator::new(&o.program)
                    .ok()?
                    .run(&req)
                    .ok()
            });
            seen.push((h, how, ty, verdict));
        }
        Ok(())
    })?;
    if let Some((s, why)) = refused {
        return Ok(Fact {
            name: "V7: a hot-plugged misc hostdev's node in the domain".into(),
            detail: format!("not checked: step {s} failed: {why}"),
            holds: false,
        });
    }
    let expected = [DeviceType::Char, DeviceType::Block, DeviceType::Block];
    let holds = seen.len() == 3
        && seen.iter().zip(expected).all(|(o, want)| o.2 == Some(want))
        && seen[1].3 == Some(Verdict::Deny)
        && kernel == Some(KernelAnswer::Denied);
    let shown: Vec<String> = seen
        .iter()
        .map(|(h, how, ty, v)| {
            let node = match ty {
                Some(t) => format!(
                    "a {} node",
                    if *t == DeviceType::Char {
                        "char"
                    } else {
                        "block"
                    }
                ),
                None => "no node".into(),
            };
            let v = v.map(|v| format!(", read {v}")).unwrap_or_default();
            format!("{h} ({how}): {node}{v}")
        })
        .collect();
    let kernel = kernel.map_or("not asked".into(), |k| k.to_string());
    Ok(Fact {
        name: "V7: a hot-plugged misc (char) hostdev gets a block node in the domain, which the domain's program denies".into(),
        detail: format!(
            "{}; the kernel, asked to open the hot-plugged node from inside the domain's cgroup: {kernel}",
            shown.join("; ")
        ),
        holds,
    })
}

/// The facts, as observed, each against the model's prediction.
fn facts(seen: &Seen) -> Vec<Fact> {
    let mut out = Vec::new();
    let deleted = seen.detaches.iter().filter(|d| d.1 .0.is_none()).count();
    let left: Vec<String> = seen
        .detaches
        .iter()
        .filter_map(|(h, (real, _))| real.map(|v| format!("{h}: {v:#x}")))
        .collect();
    let wrong: Vec<String> = seen
        .detaches
        .iter()
        .filter(|d| d.1 .0 != d.1 .1)
        .map(|(h, (r, m))| format!("{h}: real {}, model {}", hex(*r), hex(*m)))
        .collect();
    out.push(Fact {
        name: "a hot-unplug deletes the map entry, or leaves what other types' bits remain".into(),
        detail: format!(
            "{} detaches: {deleted} entries deleted, {} left ({}); {}",
            seen.detaches.len(),
            left.len(),
            left.join(", "),
            if wrong.is_empty() {
                "the model predicted each".to_string()
            } else {
                format!("the model differs: {}", wrong.join(", "))
            }
        ),
        holds: !seen.detaches.is_empty() && wrong.is_empty(),
    });
    let one_type = |v: &Option<u32>| v.is_some_and(|v| (v & 3).count_ones() == 1);
    let wrong: Vec<String> = seen
        .shared
        .iter()
        .filter(|s| s.1 .0 != s.1 .1 || !one_type(&s.1 .0))
        .map(|((ma, mi), (r, m))| format!("{ma}:{mi}: real {}, model {}", hex(*r), hex(*m)))
        .collect();
    out.push(Fact {
        name: "a char and a block device at the same numbers share one map entry (V4)".into(),
        detail: format!(
            "{} steps with both: {}",
            seen.shared.len(),
            if wrong.is_empty() {
                let ex = seen
                    .shared
                    .first()
                    .map(|((ma, mi), (r, _))| format!(" (e.g. {ma}:{mi} = {})", hex(*r)))
                    .unwrap_or_default();
                format!("one entry with one type bit each time, as the model predicts{ex}")
            } else {
                format!("otherwise: {}", wrong.join(", "))
            }
        ),
        holds: !seen.shared.is_empty() && wrong.is_empty(),
    });
    let changed: Vec<String> = seen
        .ids
        .iter()
        .filter(|(_, (p, m))| p.0 != p.1 || m.0 != m.1)
        .map(|(s, (p, m))| format!("{s}: prog {}->{}, maps {:?}->{:?}", p.0, p.1, m.0, m.1))
        .collect();
    out.push(Fact {
        name: "hot-plug updates the map in place (program and map ids kept)".into(),
        detail: format!(
            "{} hot-plug steps: {}",
            seen.ids.len(),
            if changed.is_empty() {
                "the same program and map ids each time, as the model predicts (no map reached its 64 entries)".to_string()
            } else {
                format!("replaced: {}", changed.join("; "))
            }
        ),
        holds: !seen.ids.is_empty() && changed.is_empty(),
    });
    if let Some((at, leaf)) = &seen.place {
        out.push(Fact {
            name: "where libvirt attaches the program".into(),
            detail: format!(
                "{} (the domain's processes in {})",
                at.display(),
                leaf.display()
            ),
            holds: true,
        });
    }
    out
}

fn reproducer(
    drivers: &Drivers,
    nodes: &mut NodeDir,
    files: &Files,
    name: &str,
    r: &Reproducer,
    major: u32,
    seen: &mut Seen,
) -> Result<ReproducerResult, KernelError> {
    let mut out = ReproducerResult::new(r, r.rules.to_string(), r.request.to_string(), "not asked");
    let (steps, request) = match domains::driven(r.name, major) {
        Ok(d) => d,
        Err(why) => {
            out.status = why.into();
            return Ok(out);
        }
    };
    let req = Request::parse(&request).expect("a valid request");
    let calls = domains::calls(&steps);
    out.rules = short_calls(&steps).join("; ");
    out.request = request;
    out.oracle = Policy::of(&domains::rules(&calls)).decide(&req);
    let last = steps.len() - 1;
    let mut answer: Option<(Verdict, String, bool)> = None;
    let mut prev = None;
    let refused = run_domain(files, name, &steps, |s, o| {
        seen.record(&steps, s, o, &mut prev);
        if s != last {
            return Ok(());
        }
        let real = devcg_emulator::Emulator::new(&o.program)
            .and_then(|e| e.run(&req))
            .map_err(|source| {
                RuntimeError::from(audit::AuditError::Run {
                    label: "libvirt's program".into(),
                    request: req,
                    source,
                })
            })?;
        let device = Device::new(req.ty, req.major, req.minor);
        answer = Some(if runtime::safe_to_ask(drivers, device, req.access) {
            let k = runtime::ask(nodes, &o.leaf, &[req])?[0];
            (real, k.to_string(), k.verdict() == Some(real))
        } else {
            (
                real,
                format!("not asked: {device} is not safe to open"),
                true,
            )
        });
        Ok(())
    })?;
    match (refused, answer) {
        (Some((s, why)), _) => {
            out.refused = Some(why);
            out.kernel = "not asked: libvirt refused a step".into();
            out.status = format!("not seen: libvirt refused step {s}");
        }
        (None, Some((real, kernel, agrees))) => {
            out.real = Some(real);
            out.kernel = kernel;
            out.kernel_agrees = agrees;
            out.status = if Some(real) == r.runtime && real != out.oracle {
                "confirmed".into()
            } else {
                "not seen".into()
            };
        }
        (None, None) => out.status = "not seen: the last step was not observed".into(),
    }
    Ok(out)
}
