//! The oracle against the real cgroup v1 devices controller: random scripts
//! (mkdir up to three levels, writes to devices.allow / devices.deny with
//! valid and invalid texts, verdict checks) replayed both on scratch cgroups
//! and on `devcg_oracle::Hierarchy`; every write's errno, every cgroup's
//! devices.list after every write, and every probed verdict must agree.
//!
//! Needs root and the v1 devices hierarchy; otherwise prints one line and
//! passes. `DEVCG_V1_CASES` (scripts, default 128) and `DEVCG_V1_SEED`
//! change the run; a failure prints the seed, the whole script so far and
//! the first mismatch.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::Instant;

use devcg_engine::{DeviceType, RuleKind};
use devcg_kernel::v1::{self, Device, KernelAnswer, Scratch};
use devcg_oracle::Hierarchy;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

/// Rule numbers. Realizable values of each pool form the probe universe, so
/// every device a rule names exactly is probed (unless its major has a
/// driver: char 1 is `mem`). Leading zeros name the same devices.
const MAJORS: &[&str] = &["0", "1", "100", "4095", "0100", "00000004095", "01"];
const MINORS: &[&str] = &["0", "1", "3", "1048575", "03", "00000000001"];
/// Boundaries no real device has; 4294967295 is `*` itself.
const BIG: &[&str] = &["4096", "1048576", "2147483648", "4294967294", "4294967295"];
/// 12 digits, overflow and junk: EINVAL.
const BAD_NUMBERS: &[&str] = &[
    "000000000001",
    "123456789012",
    "4294967296",
    "99999999999",
    "-1",
    "0x10",
    "1a",
    "",
    "+1",
];
const ACCESS: &[&str] = &[
    "r", "w", "m", "rw", "wr", "rm", "mr", "wm", "mw", "rwm", "mwr", "wmr", "rwmx", "rrr", "mmw",
    "r\nw", "\nr", "rw\0x",
];
const BAD_ACCESS: &[&str] = &["", "x", "rx", "r w", "R", "-", "rwq", "a", "\u{a0}"];
/// Whole texts: `a` forms (valid while the cgroup has no children) and
/// refused shapes. The zero-length write is left out on purpose: it never
/// reaches the controller (write(2) returns 0, nothing changes) while the
/// oracle's `write` answers EINVAL; see the report / `v1_scratch::write_errnos`.
const WHOLE: &[&str] = &[
    "a",
    "a *:* rwm",
    " a\n",
    "all",
    "ab",
    "a\0",
    " ",
    "\n",
    "\0",
    "c",
    "b ",
    "c 100:1",
    "c 100:1 ",
    "c100:1 r",
    "c 100 1 r",
    "c 100:1 r w",
    "c *1:3 r",
    "c 1:*3 r",
    "c 0x1:3 r",
    "x 100:1 r",
    "C 100:1 r",
    "c 100:1 \0r",
    "c 100:1 rw\0garbage",
    "c\u{a0}100:1 r",
    "c 100:1 r\u{a0}",
    "c\t*:*\tm",
    "b\n*:3\nrw",
];

fn number(pool: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("*"),
        14 => select(pool),
        4 => select(BIG),
        1 => select(BAD_NUMBERS),
    ]
}

fn blank(odd: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop_oneof![24 => Just(" "), 1 => select(odd)]
}

fn rule_text() -> impl Strategy<Value = String> {
    let ty = prop_oneof![10 => Just("c"), 10 => Just("b"), 1 => Just("a"), 1 => select(&["x", "C", "B", ""][..])];
    let access = prop_oneof![24 => select(ACCESS), 1 => select(BAD_ACCESS)];
    let edge =
        prop_oneof![24 => Just(""), 1 => select(&[" ", "\n", "\t ", "\r\n", " \n", "\u{a0}"][..])];
    let composed = (
        edge.clone(),
        ty,
        blank(&["\t", "\n", "\x0b", "  ", ""]),
        number(MAJORS),
        number(MINORS),
        blank(&["\t", "  ", "", "\n", "\x0c"]),
        access,
        edge,
    )
        .prop_map(|(pre, ty, s1, maj, min, s2, acc, post)| {
            format!("{pre}{ty}{s1}{maj}:{min}{s2}{acc}{post}")
        });
    prop_oneof![16 => composed, 2 => select(WHOLE).prop_map(str::to_string)]
}

#[derive(Clone, Debug)]
enum Op {
    /// Creates the next cgroup under the (n mod count)th cgroup of at most
    /// two levels (the root counts).
    Mkdir(usize),
    /// Writes to the (n mod count)th cgroup.
    Write(usize, RuleKind, String),
    /// Probes the (n mod count)th cgroup on every device of the universe.
    Check(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![Just(RuleKind::Allow), Just(RuleKind::Deny)];
    prop_oneof![
        2 => (0..16usize).prop_map(Op::Mkdir),
        16 => (0..16usize, kind.clone(), rule_text()).prop_map(|(t, k, s)| Op::Write(t, k, s)),
        // Switching modes (while a cgroup has no children yet) is what
        // makes EPERM possible further down.
        2 => (0..16usize, kind).prop_map(|(t, k)| Op::Write(t, k, "a".to_string())),
        2 => (0..16usize).prop_map(Op::Check),
    ]
}

fn script() -> impl Strategy<Value = Vec<Op>> {
    // A few cgroups first, so writes have somewhere to go.
    (
        prop::collection::vec((0..16usize).prop_map(Op::Mkdir), 1..4),
        prop::collection::vec(op(), 1..120),
    )
        .prop_map(|(mut a, b)| {
            a.extend(b);
            a
        })
}

const NAMES: &[&str] = &["a", "b", "c", "d", "e", "f", "g", "h"];

#[derive(Default, Clone, Copy)]
struct Stats {
    scripts: u64,
    writes: u64,
    einval: u64,
    eperm: u64,
    lists: u64,
    probes: u64,
    checks: u64,
    denied: u64,
}

/// One script, replayed on both sides in lock step.
struct Replay<'a> {
    kernel: Scratch,
    oracle: Hierarchy,
    /// Cgroups created so far, in order; the root ("") is not among them.
    paths: Vec<String>,
    universe: &'a [Device],
    /// The script so far, in the oracle's script format.
    log: String,
    stats: &'a mut Stats,
}

/// Whether the oracle's line-based script format carries `text` unchanged.
fn replayable(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with([' ', '\t'])
        && !text.contains(['\n', '\r', '\0'])
        && text
            .chars()
            .all(|c| !c.is_control() || c == '\t' || c == '\x0b' || c == '\x0c')
}

impl Replay<'_> {
    fn fail(&self, what: String) -> TestCaseError {
        TestCaseError::fail(format!(
            "\nscript so far (paths under an allow-all root; `devcg oracle FILE` replays it):\n{}\nfirst mismatch: {what}\n",
            self.log
        ))
    }

    fn line(&mut self, line: &str) {
        self.log.push_str(line);
        self.log.push('\n');
    }

    fn compare_list(&mut self, path: &str) -> Result<(), TestCaseError> {
        let kernel = self
            .kernel
            .list(path)
            .map_err(|e| self.fail(format!("list {path}: {e}")))?;
        let oracle = self
            .oracle
            .list(path)
            .map_err(|e| self.fail(format!("oracle list {path}: {e}")))?;
        self.stats.lists += 1;
        if kernel != oracle {
            self.line(&format!("list {path}"));
            return Err(self.fail(format!(
                "devices.list of {path:?}: kernel {kernel:?}, oracle {oracle:?}"
            )));
        }
        Ok(())
    }

    fn probe(&mut self, path: &str) -> Result<(), TestCaseError> {
        let probes = self
            .kernel
            .probe(path, self.universe)
            .map_err(|e| self.fail(format!("probe {path:?}: {e}")))?;
        self.stats.probes += 1;
        for p in probes {
            let oracle = self
                .oracle
                .check(path, &p.request)
                .map_err(|e| self.fail(format!("oracle check {path}: {e}")))?;
            self.stats.checks += 1;
            self.stats.denied += u64::from(p.outcome == KernelAnswer::Denied);
            if p.outcome.verdict() != Some(oracle) {
                let r = p.request;
                let acc = if r.access.is_empty() {
                    "-".to_string()
                } else {
                    r.access.to_string()
                };
                self.line(&format!(
                    "check {path} {} {}:{} {acc}",
                    r.ty, r.major, r.minor
                ));
                return Err(self.fail(format!("{path:?} {p}; oracle {oracle}")));
            }
        }
        Ok(())
    }

    fn pick(&self, n: usize) -> Option<String> {
        (!self.paths.is_empty()).then(|| self.paths[n % self.paths.len()].clone())
    }

    fn run(&mut self, ops: &[Op]) -> Result<(), TestCaseError> {
        // The scratch cgroup stands for the oracle's allow-all root.
        let top = self
            .kernel
            .list("")
            .map_err(|e| self.fail(format!("list scratch: {e}")))?;
        if top != "a *:* rwm\n" {
            return Err(self.fail(format!("the scratch cgroup is not allow-all: {top:?}")));
        }
        for op in ops {
            match op {
                Op::Mkdir(n) => {
                    let parents: Vec<&str> = std::iter::once("")
                        .chain(self.paths.iter().map(String::as_str))
                        .filter(|p| p.is_empty() || p.split('/').count() < 3)
                        .collect();
                    let Some(name) = NAMES.get(self.paths.len()) else {
                        continue;
                    };
                    let parent = parents[n % parents.len()];
                    let path = if parent.is_empty() {
                        name.to_string()
                    } else {
                        format!("{parent}/{name}")
                    };
                    self.line(&format!("mkdir {path}"));
                    self.kernel
                        .mkdir(&path)
                        .map_err(|e| self.fail(format!("mkdir {path}: {e}")))?;
                    self.oracle
                        .mkdir(&path)
                        .map_err(|e| self.fail(format!("oracle mkdir {path}: {e}")))?;
                    self.paths.push(path.clone());
                    self.compare_list(&path)?;
                }
                Op::Write(n, kind, text) => {
                    let Some(path) = self.pick(*n) else { continue };
                    let (k, t) = (kind.keyword(), text.as_str());
                    if replayable(text) {
                        self.line(&format!("write {path} {k} {t}"));
                    } else {
                        self.line(&format!("# not replayable as is, the exact text is {t:?}:"));
                        self.line(&format!("write {path} {k} {}", t.escape_debug()));
                    }
                    let kernel = self
                        .kernel
                        .write(&path, *kind, text)
                        .map_err(|e| self.fail(format!("write: {e}")))?;
                    let oracle = self
                        .oracle
                        .try_write(&path, *kind, text)
                        .map_err(|e| self.fail(format!("oracle write: {e}")))?;
                    self.stats.writes += 1;
                    match kernel {
                        Err(devcg_oracle::Errno::EINVAL) => self.stats.einval += 1,
                        Err(devcg_oracle::Errno::EPERM) => self.stats.eperm += 1,
                        Ok(()) => {}
                    }
                    if kernel != oracle {
                        return Err(self.fail(format!(
                            "write {k} {t:?} to {path:?}: kernel {kernel:?}, oracle {oracle:?}"
                        )));
                    }
                    // A deny propagates: every cgroup may have changed.
                    for p in self.paths.clone() {
                        self.compare_list(&p)?;
                    }
                }
                Op::Check(n) => {
                    let Some(path) = self.pick(*n) else { continue };
                    self.line(&format!(
                        "# probe {path}: {} requests",
                        self.universe.len() * 5
                    ));
                    self.probe(&path)?;
                }
            }
        }
        self.line("# final probe of every cgroup");
        for p in std::iter::once(String::new()).chain(self.paths.clone()) {
            self.probe(&p)?;
        }
        Ok(())
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every probeable device the rule numbers can name exactly.
fn universe(kernel: &Scratch) -> Vec<Device> {
    let nums = |pool: &[&str]| -> Vec<u32> {
        let mut v: Vec<u32> = pool.iter().filter_map(|s| s.parse().ok()).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut out = Vec::new();
    for ty in DeviceType::ALL {
        for &major in &nums(MAJORS) {
            for &minor in &nums(MINORS) {
                let dev = Device::new(ty, major, minor);
                if kernel.probeable(dev).is_ok() {
                    out.push(dev);
                }
            }
        }
    }
    out
}

#[test]
fn oracle_matches_the_real_v1_controller() {
    if let Some(why) = v1::skip_reason() {
        println!("{why}");
        return;
    }
    let cases = env_u64("DEVCG_V1_CASES", 128) as u32;
    let seed = env_u64("DEVCG_V1_SEED", 0x6465_7663_675f_7631);
    let mut seed_bytes = [0u8; 32];
    for chunk in seed_bytes.chunks_mut(8) {
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
    let config = Config {
        cases,
        failure_persistence: None,
        // Each shrink step replays on the kernel: keep a failure bounded.
        max_shrink_iters: 400,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let universe = {
        let s = Scratch::new()
            .expect("scratch cgroup")
            .expect("devices mount");
        universe(&s)
    };
    assert!(
        universe.len() >= 20,
        "too few probeable devices: {universe:?}"
    );
    let stats = RefCell::new(Stats::default());
    let start = Instant::now();
    let result = runner.run(&script(), |ops| {
        let kernel = Scratch::new()
            .map_err(|e| TestCaseError::fail(format!("scratch cgroup: {e}")))?
            .expect("devices mount");
        let mut stats = stats.borrow_mut();
        stats.scripts += 1;
        let mut replay = Replay {
            kernel,
            oracle: Hierarchy::new(),
            paths: Vec::new(),
            universe: &universe,
            log: String::new(),
            stats: &mut stats,
        };
        replay.run(&ops)
    });
    let s = *stats.borrow();
    let mut summary = String::new();
    let _ = write!(
        summary,
        "v1 oracle vs kernel: seed {seed:#x}, {} scripts, {} writes ({} EINVAL, {} EPERM), \
         {} list comparisons, {} probes, {} verdict checks ({} denied) on {} devices, {:.1}s",
        s.scripts,
        s.writes,
        s.einval,
        s.eperm,
        s.lists,
        s.probes,
        s.checks,
        s.denied,
        universe.len(),
        start.elapsed().as_secs_f64()
    );
    match result {
        Ok(()) => println!("{summary}, 0 differences"),
        Err(TestError::Fail(why, ops)) => {
            panic!(
                "{summary}\nthe oracle and the kernel differ (smallest script found: {} ops){why}",
                ops.len()
            )
        }
        Err(TestError::Abort(why)) => panic!("{summary}\naborted: {why}"),
    }
    // Every script's scratch tree is gone again.
    let mount = v1::find_devices_mount().expect("devices mount").mount_point;
    let mine = format!("{}{}-", v1::SCRATCH_PREFIX, std::process::id());
    let left: Vec<_> = std::fs::read_dir(&mount)
        .expect("read the devices mount")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&mine))
        .collect();
    assert!(left.is_empty(), "scratch cgroups left behind: {left:?}");
}
