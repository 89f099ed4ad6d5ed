//! The real kernel as an executor: the cost of a program is what it adds to
//! `open()` of a device node.
//!
//! A timer child, forked once, joins a scratch cgroup (this process never
//! does: a program attached where the bench itself runs could lock it out)
//! and, on command, times N opens of one node several times over and
//! reports the fastest repetition and the errno (the fastest, so that a
//! repetition the scheduler interrupted on this shared machine drops out). The parent attaches the program to that cgroup and detaches it
//! between batches, so "with" and "without" run in the same process, on
//! the same node, interleaved (the order reversed every other round, to
//! cancel drift); the cost is the median over rounds of (with − without)
//! per open.
//!
//! Nodes are driverless majors on a private tmpfs: an allowed open fails
//! with ENXIO after the device check, a denied one with EPERM at it. So for
//! a *denied* request the difference also drops the part of open() after
//! the check (the driver lookup): it can be below the program's own cost,
//! even negative. So for a denied request each round also times the open
//! under constant programs (`r0 = 0`, `r0 = 1`), which gives a like-for-like
//! figure ([`KernelEstimate::check`]); [`KernelBench::floor`] shows what the
//! constant programs themselves add.
//!
//! A second, precise figure comes from the kernel itself: after the timed
//! states, each round runs one more batch per case with the program
//! attached and BPF run-time statistics on (`BPF_ENABLE_STATS`), and takes
//! Δ`run_time_ns` / Δ`run_cnt` of the program ([`KernelEstimate::run`]):
//! its own run time, without open() around it (but with the
//! `sched_clock()` pair the kernel puts around each run). The statistics
//! are switched off again before the next round, so their overhead never
//! enters the open() figures.
//!
//! An allow-all program stays attached to a sibling scratch cgroup for the
//! whole run: the kernel skips the device hook entirely (a static key)
//! while no device program is attached anywhere, and flipping that key on
//! every detach would both cost time and measure a machine that runs no
//! containers.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use devcg_engine::{Insn, Program, Verdict};
use devcg_kernel::bpf::{self, AttachFlags, LoadedProgram};
use devcg_kernel::child::{exit_child, join_cgroup, read_exact, write_all, Child};
use devcg_kernel::device::Device;
use devcg_kernel::v2::{self, Cgroup, Scratch};
use devcg_kernel::KernelError;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use thiserror::Error;

use crate::measure::{median, Estimate};

#[derive(Debug, Error)]
pub enum KernelBenchError {
    /// Not root, no cgroup2, or device programs cannot be loaded.
    #[error("{0}")]
    Skip(String),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Bpf(#[from] bpf::BpfError),
    #[error("{op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    #[error("timer child: {0}")]
    Child(String),
}

fn sys(op: &'static str) -> impl FnOnce(Errno) -> KernelBenchError {
    move |errno| KernelBenchError::Sys { op, errno }
}

/// How much to sample in the kernel.
#[derive(Clone, Copy, Debug)]
pub struct KernelPlan {
    /// Rounds per request and pass.
    pub rounds: usize,
    /// Passes over every program, spread over the run; the rounds of all
    /// passes are pooled.
    pub passes: usize,
    /// Target duration of one batch of opens.
    pub batch_time: Duration,
}

impl KernelPlan {
    pub fn quick() -> KernelPlan {
        KernelPlan {
            rounds: 3,
            passes: 1,
            batch_time: Duration::from_micros(300),
        }
    }

    pub fn full() -> KernelPlan {
        KernelPlan {
            rounds: 16,
            passes: 2,
            batch_time: Duration::from_millis(2),
        }
    }
}

/// One request to time: a node and the verdict the program must give.
#[derive(Clone, Copy, Debug)]
pub struct KernelCase {
    pub device: Device,
    pub expect: Verdict,
}

/// The cost of one request under one program.
#[derive(Clone, Copy, Debug)]
pub struct KernelEstimate {
    /// Per open: with the program minus without it.
    pub cost: Estimate,
    /// Per open: what the program costs the device check, like for like
    /// for both verdicts. For an allowed request this is `cost`; for a
    /// denied one, (with − with `r0 = 0`) + (with `r0 = 1` − without): the
    /// program's work beyond a constant one, plus what running any program
    /// costs, so the part of open() a denial skips cancels out.
    pub check: Estimate,
    /// Median open() without a program, ns.
    pub open_ns: f64,
    /// Median open() with the program, ns.
    pub with_ns: f64,
    /// Per program run: the kernel's Δ`run_time_ns` / Δ`run_cnt` with
    /// run-time statistics on; `None` where they could not be enabled.
    pub run: Option<Estimate>,
}

/// The raw rounds of one request: per-open ns in each state, one value
/// per round.
#[derive(Clone, Debug)]
pub struct CaseRounds {
    pub expect: Verdict,
    /// Opens per repetition.
    pub count: u32,
    pub nothing: Vec<f64>,
    pub program: Vec<f64>,
    /// Denied requests only.
    pub const_allow: Vec<f64>,
    pub const_deny: Vec<f64>,
    /// ns per program run from the kernel's run-time statistics, one value
    /// per round (empty where they could not be enabled).
    pub run: Vec<f64>,
}

impl CaseRounds {
    /// Adds another pass's rounds.
    pub fn merge(&mut self, other: CaseRounds) {
        self.nothing.extend(other.nothing);
        self.program.extend(other.program);
        self.const_allow.extend(other.const_allow);
        self.const_deny.extend(other.const_deny);
        self.run.extend(other.run);
    }

    pub fn estimate(&self) -> KernelEstimate {
        let rounds = self.nothing.len().min(self.program.len());
        let cost: Vec<f64> = (0..rounds)
            .map(|r| self.program[r] - self.nothing[r])
            .collect();
        let check: Vec<f64> = match self.expect {
            Verdict::Allow => cost.clone(),
            Verdict::Deny => (0..rounds)
                .map(|r| {
                    (self.program[r] - self.const_deny[r]) + (self.const_allow[r] - self.nothing[r])
                })
                .collect(),
        };
        let sorted = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v
        };
        KernelEstimate {
            cost: Estimate::from_values(cost, u64::from(self.count)),
            check: Estimate::from_values(check, u64::from(self.count)),
            open_ns: median(&sorted(&self.nothing)),
            with_ns: median(&sorted(&self.program)),
            run: (!self.run.is_empty())
                .then(|| Estimate::from_values(self.run.clone(), u64::from(self.count))),
        }
    }
}

/// Opens that did not answer as expected.
#[derive(Clone, Debug, Error)]
#[error("{0}")]
pub struct CaseError(pub String);

/// A batch's report from the child.
#[derive(Clone, Copy, Debug)]
struct Batch {
    /// The fastest repetition.
    ns: u64,
    /// 0 or the errno of the first open.
    code: i32,
    /// Opens whose answer differed from the first one's.
    odd: u32,
}

/// The forked child that times opens from inside the scratch cgroup.
struct TimerChild {
    /// Killed and reaped on drop if it does not quit when asked.
    child: Child,
    cmd: OwnedFd,
    reply: OwnedFd,
}

const QUIT: u32 = u32::MAX;

impl TimerChild {
    /// Forks; the child joins `procs` and serves commands on `nodes`.
    fn spawn(procs: &CString, nodes: &[CString]) -> Result<TimerChild, KernelBenchError> {
        let (cmd_r, cmd_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
        let (reply_r, reply_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
        let (cmd, reply) = (cmd_r.as_raw_fd(), reply_w.as_raw_fd());
        let child = Child::fork(&[cmd, reply], || child_main(procs, nodes, cmd, reply))
            .map_err(sys("fork"))?;
        drop(cmd_r);
        drop(reply_w);
        let mut me = TimerChild {
            child,
            cmd: cmd_w,
            reply: reply_r,
        };
        let ready = me.read_batch()?;
        if ready.code != 0 {
            return Err(KernelBenchError::Child(format!(
                "could not join {}: {}",
                procs.to_string_lossy(),
                Errno::from_raw(ready.code)
            )));
        }
        Ok(me)
    }

    fn read_batch(&mut self) -> Result<Batch, KernelBenchError> {
        let mut buf = [0u8; 16];
        read_exact(self.reply.as_raw_fd(), &mut buf)
            .map_err(|e| KernelBenchError::Child(format!("no reply ({e})")))?;
        Ok(Batch {
            ns: u64::from_le_bytes(buf[0..8].try_into().expect("8 bytes")),
            code: i32::from_le_bytes(buf[8..12].try_into().expect("4 bytes")),
            odd: u32::from_le_bytes(buf[12..16].try_into().expect("4 bytes")),
        })
    }

    /// Times `count` opens of node `node`, `reps` times; the fastest
    /// repetition counts.
    fn time(&mut self, node: u32, count: u32, reps: u32) -> Result<Batch, KernelBenchError> {
        let mut cmd = [0u8; 12];
        cmd[0..4].copy_from_slice(&node.to_le_bytes());
        cmd[4..8].copy_from_slice(&count.to_le_bytes());
        cmd[8..12].copy_from_slice(&reps.to_le_bytes());
        write_all(self.cmd.as_raw_fd(), &cmd)
            .map_err(|e| KernelBenchError::Child(format!("command lost ({e})")))?;
        self.read_batch()
    }
}

impl Drop for TimerChild {
    fn drop(&mut self) {
        let mut quit = [0u8; 12];
        quit[0..4].copy_from_slice(&QUIT.to_le_bytes());
        if write_all(self.cmd.as_raw_fd(), &quit).is_ok() {
            let _ = self.child.wait();
        }
    }
}

fn errno() -> i32 {
    // SAFETY: the thread's errno location is always valid.
    unsafe { *libc::__errno_location() }
}

/// The child: join, say ready, serve batches. Only syscalls; never returns.
fn child_main(procs: &CString, nodes: &[CString], cmd: RawFd, reply: RawFd) -> ! {
    let send = |ns: u64, code: i32, odd: u32| {
        let mut buf = [0u8; 16];
        buf[0..8].copy_from_slice(&ns.to_le_bytes());
        buf[8..12].copy_from_slice(&code.to_le_bytes());
        buf[12..16].copy_from_slice(&odd.to_le_bytes());
        if write_all(reply, &buf).is_err() {
            exit_child(3)
        }
    };
    let joined = join_cgroup(procs);
    send(0, joined, 0);
    if joined != 0 {
        exit_child(2)
    }
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
    loop {
        let mut buf = [0u8; 12];
        if read_exact(cmd, &mut buf).is_err() {
            exit_child(0)
        }
        let node = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
        let count = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
        let reps = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
        let Some(path) = nodes.get(node as usize) else {
            // QUIT, or nothing to open.
            exit_child(0)
        };
        let open = || {
            // SAFETY: a NUL-terminated path; the fd is closed at once.
            let fd = unsafe { libc::open(path.as_ptr(), flags) };
            if fd >= 0 {
                // SAFETY: our own fresh fd.
                unsafe { libc::close(fd) };
                0
            } else {
                errno()
            }
        };
        let first = open();
        let mut odd = 0u32;
        let mut best = u64::MAX;
        for _ in 0..reps.max(1) {
            let start = Instant::now();
            for _ in 0..count {
                if open() != first {
                    odd += 1;
                }
            }
            best = best.min(start.elapsed().as_nanos() as u64);
        }
        send(best, first, odd);
    }
}

/// What an open answers for a verdict on a driverless node.
fn expected_code(v: Verdict) -> i32 {
    match v {
        Verdict::Allow => libc::ENXIO,
        Verdict::Deny => libc::EPERM,
    }
}

fn describe(code: i32) -> String {
    if code == 0 {
        "success".into()
    } else {
        Errno::from_raw(code).to_string()
    }
}

/// `r0 = verdict; exit`.
pub fn constant_program(v: Verdict) -> Program {
    Program::new(vec![
        Insn::new(0xb7, 0, 0, 0, i32::from(v == Verdict::Allow)), // r0 = imm
        Insn::new(0x95, 0, 0, 0, 0),                              // exit
    ])
}

/// What is attached to the bench cgroup during a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Nothing,
    Program,
    Constant(Verdict),
}

impl State {
    /// The open's answer in this state for a case.
    fn code(self, case: &KernelCase) -> i32 {
        match self {
            State::Nothing => libc::ENXIO,
            State::Program => expected_code(case.expect),
            State::Constant(v) => expected_code(v),
        }
    }

    /// Whether a case is timed in this state: the constants only serve
    /// denied requests.
    fn applies(self, case: &KernelCase) -> bool {
        match self {
            State::Nothing | State::Program => true,
            State::Constant(_) => case.expect == Verdict::Deny,
        }
    }

    fn index(self) -> usize {
        match self {
            State::Nothing => 0,
            State::Program => 1,
            State::Constant(Verdict::Allow) => 2,
            State::Constant(Verdict::Deny) => 3,
        }
    }
}

/// The kernel side of the benchmark: scratch cgroups, nodes, the timer
/// child. Fields drop in order: the child first, the scratch directory
/// (which removes the cgroups and unmounts the nodes) last.
pub struct KernelBench {
    child: TimerChild,
    cg: Cgroup,
    attached: bool,
    devices: Vec<Device>,
    /// `r0 = 1` and `r0 = 0`.
    constants: [LoadedProgram; 2],
    _keeper: (Cgroup, LoadedProgram),
    /// Why run-time statistics cannot be enabled here, once known.
    stats_unavailable: Option<String>,
    scratch: Scratch,
}

impl KernelBench {
    /// Sets up nodes for `devices` (all must be probeable), the cgroups and
    /// the timer child. `Skip` when this machine cannot run it.
    pub fn new(devices: &[Device]) -> Result<KernelBench, KernelBenchError> {
        if let Some(reason) = v2::skip_reason() {
            return Err(KernelBenchError::Skip(reason));
        }
        let mut scratch = Scratch::new()?.ok_or_else(|| {
            KernelBenchError::Skip("skipped: needs a cgroup2 hierarchy (none mounted)".into())
        })?;
        let mut devs: Vec<Device> = devices.to_vec();
        devs.sort();
        devs.dedup();
        let mut nodes = Vec::with_capacity(devs.len());
        for &dev in &devs {
            if let Err(why) = scratch.drivers().probeable(dev) {
                return Err(
                    KernelError::Unavailable(format!("{dev} cannot be probed: {why}")).into(),
                );
            }
            nodes.push(scratch.nodes()?.node(dev).map_err(KernelError::from)?);
        }
        let constants = [
            bpf::load(&constant_program(Verdict::Allow), "devcg_allow")?,
            bpf::load(&constant_program(Verdict::Deny), "devcg_deny")?,
        ];
        let keep = scratch.mkdir("keep")?;
        let allow_all = bpf::load(&constant_program(Verdict::Allow), "devcg_keep")?;
        scratch.attach(&keep, &allow_all, AttachFlags::NONE)?;
        let cg = scratch.mkdir("bench")?;
        let procs = scratch.procs_file(&cg)?;
        let child = TimerChild::spawn(&procs, &nodes)?;
        Ok(KernelBench {
            child,
            cg,
            attached: false,
            devices: devs,
            constants,
            _keeper: (keep, allow_all),
            stats_unavailable: None,
            scratch,
        })
    }

    /// Why there is no program run time (BPF_ENABLE_STATS failed, e.g.
    /// before Linux 5.8), if that happened.
    pub fn run_time_unavailable(&self) -> Option<&str> {
        self.stats_unavailable.as_deref()
    }

    fn node(&self, dev: Device) -> Result<u32, KernelBenchError> {
        self.devices
            .binary_search(&dev)
            .map(|i| i as u32)
            .map_err(|_| KernelBenchError::Child(format!("no node for {dev}")))
    }

    fn set(&mut self, state: State, prog: &LoadedProgram) -> Result<(), KernelBenchError> {
        let p = match state {
            State::Nothing => {
                if self.attached {
                    self.scratch.detach(&self.cg, None)?;
                    self.attached = false;
                }
                return Ok(());
            }
            State::Program => prog,
            State::Constant(Verdict::Allow) => &self.constants[0],
            State::Constant(Verdict::Deny) => &self.constants[1],
        };
        // NONE replaces whatever is attached with NONE.
        self.scratch.attach(&self.cg, p, AttachFlags::NONE)?;
        self.attached = true;
        Ok(())
    }

    /// Times `cases` under `prog` (one pass). The outer error is the
    /// machinery's; an inner one says the kernel did not answer a case as
    /// expected.
    pub fn measure(
        &mut self,
        prog: &LoadedProgram,
        cases: &[KernelCase],
        plan: &KernelPlan,
    ) -> Result<Vec<Result<KernelEstimate, CaseError>>, KernelBenchError> {
        Ok(self
            .measure_rounds(prog, cases, plan)?
            .into_iter()
            .map(|r| r.map(|r| r.estimate()))
            .collect())
    }

    /// One pass of [`KernelBench::measure`], the rounds themselves.
    pub fn measure_rounds(
        &mut self,
        prog: &LoadedProgram,
        cases: &[KernelCase],
        plan: &KernelPlan,
    ) -> Result<Vec<Result<CaseRounds, CaseError>>, KernelBenchError> {
        let result = self.measure_attached(prog, cases, plan);
        // Never leave a program behind for the next one's baseline.
        let detached = self.set(State::Nothing, prog);
        let out = result?;
        detached?;
        Ok(out)
    }

    /// Runs one batch; an unexpected answer marks the case failed.
    fn batch(
        &mut self,
        state: State,
        case: &KernelCase,
        (count, reps): (u32, u32),
    ) -> Result<Result<f64, CaseError>, KernelBenchError> {
        let node = self.node(case.device)?;
        let b = self.child.time(node, count, reps)?;
        let want = state.code(case);
        if b.code != want || b.odd != 0 {
            let with = match state {
                State::Nothing => "without a program".to_string(),
                State::Program => format!("with the program (expected to {})", case.expect),
                State::Constant(v) => format!("with a constant {v} program"),
            };
            return Ok(Err(CaseError(format!(
                "the kernel answered {} ({} of {} opens differed) {with}, expected {}",
                describe(b.code),
                b.odd,
                u64::from(count) * u64::from(reps.max(1)),
                describe(want)
            ))));
        }
        Ok(Ok(b.ns as f64 / f64::from(count)))
    }

    /// One batch of `case` with the program attached and run-time
    /// statistics on: ns per program run. The statistics go off again
    /// before this returns. `Ok(None)`: they cannot be enabled here.
    fn run_time_batch(
        &mut self,
        prog: &LoadedProgram,
        case: &KernelCase,
        count: (u32, u32),
    ) -> Result<Option<Result<f64, CaseError>>, KernelBenchError> {
        if self.stats_unavailable.is_some() {
            return Ok(None);
        }
        let stats = match bpf::enable_run_time_stats() {
            Ok(fd) => fd,
            Err(e) => {
                self.stats_unavailable = Some(format!(
                    "BPF_ENABLE_STATS (run-time statistics, Linux 5.8+) failed: {e}"
                ));
                return Ok(None);
            }
        };
        let before = bpf::prog_run_stats(prog)?;
        let answered = self.batch(State::Program, case, count)?;
        let after = bpf::prog_run_stats(prog)?;
        drop(stats);
        if let Err(e) = answered {
            return Ok(Some(Err(e)));
        }
        let runs = after.run_cnt.wrapping_sub(before.run_cnt);
        let ns = after.run_time_ns.wrapping_sub(before.run_time_ns);
        if runs == 0 {
            return Ok(Some(Err(CaseError(format!(
                "run-time statistics on, but the kernel counted no run of the program over {} opens (run_cnt {} → {})",
                u64::from(count.0) * u64::from(count.1.max(1)),
                before.run_cnt,
                after.run_cnt
            )))));
        }
        Ok(Some(Ok(ns as f64 / runs as f64)))
    }

    fn measure_attached(
        &mut self,
        prog: &LoadedProgram,
        cases: &[KernelCase],
        plan: &KernelPlan,
    ) -> Result<Vec<Result<CaseRounds, CaseError>>, KernelBenchError> {
        // Verdicts first, and a batch shape per case from a short run:
        // repetitions of about REP opens-worth of time, the fastest kept, so
        // that a batch the scheduler interrupts still reports a clean run.
        const REP: f64 = 50_000.0;
        self.set(State::Program, prog)?;
        let mut counts: Vec<Result<(u32, u32), CaseError>> = Vec::with_capacity(cases.len());
        for case in cases {
            counts.push(self.batch(State::Program, case, (64, 1))?.map(|per_open| {
                let count = (REP / per_open.max(1.0)).round().clamp(4.0, 100_000.0);
                let reps = (plan.batch_time.as_nanos() as f64 / (count * per_open.max(1.0)))
                    .round()
                    .clamp(1.0, 10_000.0);
                (count as u32, reps as u32)
            }));
        }
        let mut states = vec![State::Nothing, State::Program];
        if cases.iter().any(|c| c.expect == Verdict::Deny) {
            states.extend([
                State::Constant(Verdict::Allow),
                State::Constant(Verdict::Deny),
            ]);
        }
        // Per case and state (see State::index): one value per round.
        let mut values = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; cases.len()];
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        for round in 0..plan.rounds.max(1) {
            let mut this = vec![[f64::NAN; 4]; cases.len()];
            let order: Vec<State> = if round % 2 == 0 {
                states.clone()
            } else {
                states.iter().rev().copied().collect()
            };
            for state in order {
                self.set(state, prog)?;
                for (i, case) in cases.iter().enumerate() {
                    let Ok(count) = counts[i] else { continue };
                    if !state.applies(case) {
                        continue;
                    }
                    match self.batch(state, case, count)? {
                        Ok(v) => this[i][state.index()] = v,
                        Err(e) => counts[i] = Err(e),
                    }
                }
            }
            // The program's own run time, apart: the statistics' overhead
            // stays out of the batches above.
            self.set(State::Program, prog)?;
            let mut run = vec![None; cases.len()];
            for (i, case) in cases.iter().enumerate() {
                let Ok(count) = counts[i] else { continue };
                match self.run_time_batch(prog, case, count)? {
                    None => {}
                    Some(Ok(v)) => run[i] = Some(v),
                    Some(Err(e)) => counts[i] = Err(e),
                }
            }
            for (i, v) in this.iter().enumerate() {
                if counts[i].is_ok() {
                    for (s, x) in v.iter().enumerate() {
                        values[i][s].push(*x);
                    }
                    runs[i].extend(run[i]);
                }
            }
        }
        Ok(counts
            .into_iter()
            .zip(values)
            .zip(runs)
            .zip(cases)
            .map(
                |(((count, [nothing, program, const_allow, const_deny]), run), case)| {
                    Ok(CaseRounds {
                        expect: case.expect,
                        count: count?.0,
                        nothing,
                        program,
                        const_allow,
                        const_deny,
                        run,
                    })
                },
            )
            .collect())
    }

    /// What any program costs: the constant allow and deny programs on
    /// `device`, measured like a strategy's program.
    pub fn floor(
        &mut self,
        device: Device,
        plan: &KernelPlan,
    ) -> Result<[Result<KernelEstimate, CaseError>; 2], KernelBenchError> {
        let mut out = Vec::with_capacity(2);
        for v in [Verdict::Allow, Verdict::Deny] {
            let prog = bpf::load(&constant_program(v), "devcg_const")?;
            let case = KernelCase { device, expect: v };
            out.extend(self.measure(&prog, &[case], plan)?);
        }
        Ok([out.remove(0), out.remove(0)])
    }

    /// Times `count` opens of `device` with `prog` attached (or nothing):
    /// for criterion's `iter_custom`. Returns the time and the answer (0 or
    /// the errno of the first open).
    pub fn time_opens(
        &mut self,
        prog: Option<&LoadedProgram>,
        device: Device,
        count: u32,
    ) -> Result<(Duration, i32), KernelBenchError> {
        match prog {
            Some(p) => self.set(State::Program, p)?,
            None => {
                if self.attached {
                    self.scratch.detach(&self.cg, None)?;
                    self.attached = false;
                }
            }
        }
        let node = self.node(device)?;
        let b = self.child.time(node, count.max(1), 1)?;
        Ok((Duration::from_nanos(b.ns), b.code))
    }
}
