//! The three-way differential: for random rule lists, the oracle's meaning,
//! the emulator's verdict on each strategy's program and the real kernel's
//! verdict on the same program, loaded and attached for real.
//!
//! Per rule list: every strategy compiles it; each program is loaded
//! (maps created and filled), attached with flags NONE to a fresh child of
//! the scratch directory, and one forked child visits every such cgroup in
//! turn and probes the same devices there (all five accesses each). The
//! cgroups are removed before the next list. Own strategies
//! ([`Strategy::is_own`]) must agree with both the oracle and the emulator
//! on every probe; models are reported.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use devcg_emulator::Emulator;
use devcg_engine::disasm::disassemble;
use devcg_engine::{Request, Rule, Strategy, Verdict};
use serde::Serialize;

use crate::bpf::{self, AttachFlags, BpfError};
use crate::device::Device;
use crate::error::KernelError;
use crate::gen;
use crate::probe::{KernelAnswer, Probe};
use crate::v2::{Cgroup, Scratch};
use devcg_differential::counterexample::{disagreement, Answer, Counterexample};
use devcg_differential::gen::{rules_in, Draw};
use devcg_differential::rng::Rng;
use devcg_differential::shrink;

/// Devices probed per rule list (each five times, per strategy).
pub const MAX_DEVICES: usize = 24;
/// Rules per list, at most (plus a leading `deny a` in half of them).
pub const MAX_RULES: usize = 8;
/// Examples of refusals and unexpected answers kept per strategy.
const EXAMPLES: usize = 3;
/// Kernel round trips the shrinker may spend per counterexample.
const SHRINK_BUDGET: usize = 64;

/// What one strategy did against the kernel.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KernelReport {
    pub strategy: String,
    pub own: bool,
    /// Rule lists drawn.
    pub rule_sets: u64,
    /// Rule lists the strategy itself refused to compile.
    pub compile_refusals: u64,
    /// Programs the kernel refused to load.
    pub load_refusals: u64,
    /// The verifier's reason for the first few refusals.
    pub load_refusal_examples: Vec<LoadRefusal>,
    /// Programs loaded and attached.
    pub attached: u64,
    /// Programs the emulator refused (their probes have no emulator verdict).
    pub emulator_refusals: u64,
    /// Kernel verdicts obtained.
    pub probes: u64,
    /// Probes that ended in neither allow nor deny (not compared).
    pub unexpected: u64,
    pub unexpected_examples: Vec<String>,
    pub oracle_vs_kernel: u64,
    pub emulator_vs_kernel: u64,
    /// The smallest disagreement found (shrunk), if any.
    pub counterexample: Option<Counterexample>,
    pub seconds: f64,
    /// The verdict of [`KernelReport::passes`], set when the run ends: the
    /// one definition, which `devcg verify --kernel` exits on and the VM
    /// matrix reads from the JSON report.
    pub pass: bool,
}

impl KernelReport {
    /// The pass rule. On every program it accepts, ours or a model's, the
    /// emulator must agree with the kernel, and every probe must end in
    /// allow or deny. devcg's own strategies must also agree with the
    /// oracle and load every time; a model's disagreement with the oracle
    /// is its finding, not a failure.
    pub fn passes(&self) -> bool {
        let faithful = self.emulator_vs_kernel == 0 && self.unexpected == 0;
        faithful && (!self.own || (self.oracle_vs_kernel == 0 && self.load_refusals == 0))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LoadRefusal {
    pub rules: Vec<String>,
    pub errno: String,
    pub verifier: String,
}

/// A strategy's compiled program, ready for the kernel.
struct Prepared {
    index: usize,
    emulator: Option<Emulator>,
    cgroup: Cgroup,
    /// Keeps the program (and its maps) alive while attached; the
    /// attachment itself would survive closing it.
    _loaded: bpf::LoadedProgram,
}

/// Runs `cases` random rule lists through every strategy, the emulator and
/// the kernel. Needs root, cgroup2 and bpf (see [`crate::v2::skip_reason`]).
pub fn three_way(
    strategies: &[Box<dyn Strategy>],
    cases: u64,
    seed: u64,
) -> Result<Vec<KernelReport>, KernelError> {
    if let Some(why) = crate::v2::skip_reason() {
        return Err(KernelError::Unavailable(why));
    }
    let mut scratch = Scratch::new()?.ok_or(KernelError::NoCgroup2)?;
    let drivers = scratch.drivers().clone();
    let space = gen::space(&drivers);
    let lists = rules_in(&space, MAX_RULES);
    let (mut draw, mut rng) = (Draw::new(seed), Rng::new(seed));
    let mut reports: Vec<KernelReport> = strategies
        .iter()
        .map(|s| KernelReport {
            strategy: s.name().to_string(),
            own: s.is_own(),
            ..KernelReport::default()
        })
        .collect();
    // Per strategy: the smallest disagreement so far (rules, request).
    let mut smallest: Vec<Option<(Vec<Rule>, Request)>> = vec![None; strategies.len()];
    for case in 0..cases {
        let rules = draw.value(&lists);
        let devices = gen::devices(&mut rng, &space, &drivers, &rules, MAX_DEVICES);
        let mut prepared = Vec::new();
        for (i, strategy) in strategies.iter().enumerate() {
            let started = Instant::now();
            let report = &mut reports[i];
            report.rule_sets += 1;
            let name = format!("r{case}-{i}");
            if let Some(mut p) = prepare(&mut scratch, strategy.as_ref(), &rules, &name, report)? {
                p.index = i;
                prepared.push(p);
            }
            report.seconds += started.elapsed().as_secs_f64();
        }
        let started = Instant::now();
        let groups: Vec<(&Cgroup, &[Device])> = prepared
            .iter()
            .map(|p| (&p.cgroup, devices.as_slice()))
            .collect();
        let results = scratch.probe_many(&groups)?;
        let mut oracle: HashMap<Request, Verdict> = HashMap::new();
        let per_group = started.elapsed().as_secs_f64() / prepared.len().max(1) as f64;
        for (p, probes) in prepared.iter().zip(&results) {
            let report = &mut reports[p.index];
            report.seconds += per_group;
            for probe in probes {
                let want = *oracle
                    .entry(probe.request)
                    .or_insert_with(|| devcg_oracle::decide(&rules, &probe.request));
                let emu = match &p.emulator {
                    Some(e) => Answer::of(e.run(&probe.request)),
                    None => Answer::Error("refused by the emulator".into()),
                };
                if judge(report, probe, want, emu).is_some() {
                    let slot = &mut smallest[p.index];
                    if slot.as_ref().is_none_or(|(r, _)| rules.len() < r.len()) {
                        *slot = Some((rules.clone(), probe.request));
                    }
                }
            }
        }
        for p in prepared {
            scratch.rmdir(p.cgroup)?;
        }
    }
    for (i, found) in smallest.into_iter().enumerate() {
        if let Some((rules, request)) = found {
            let started = Instant::now();
            let ce = shrink(&mut scratch, strategies[i].as_ref(), rules, request)?;
            reports[i].counterexample = ce;
            reports[i].seconds += started.elapsed().as_secs_f64();
        }
    }
    for r in &mut reports {
        r.pass = r.passes();
    }
    Ok(reports)
}

/// Compiles, builds the emulator, loads and attaches one strategy's
/// program; `None` (counted in the report) when any side refuses.
fn prepare(
    scratch: &mut Scratch,
    strategy: &dyn Strategy,
    rules: &[Rule],
    name: &str,
    report: &mut KernelReport,
) -> Result<Option<Prepared>, KernelError> {
    let Ok(program) = strategy.compile(rules) else {
        report.compile_refusals += 1;
        return Ok(None);
    };
    let emulator = Emulator::new(&program).ok();
    if emulator.is_none() {
        report.emulator_refusals += 1;
    }
    let loaded = match bpf::load(&program, &format!("devcg_{}", strategy.name())) {
        Ok(l) => l,
        Err(BpfError::Load {
            errno, first_error, ..
        }) => {
            report.load_refusals += 1;
            if report.load_refusal_examples.len() < EXAMPLES {
                report.load_refusal_examples.push(LoadRefusal {
                    rules: rules.iter().map(Rule::to_string).collect(),
                    errno: errno.to_string(),
                    verifier: first_error,
                });
            }
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let cgroup = scratch.mkdir(name)?;
    scratch.attach(&cgroup, &loaded, AttachFlags::NONE)?;
    report.attached += 1;
    Ok(Some(Prepared {
        index: 0,
        emulator,
        cgroup,
        _loaded: loaded,
    }))
}

/// Counts one probe; the kind of disagreement, if any.
fn judge(
    report: &mut KernelReport,
    probe: &Probe,
    oracle: Verdict,
    emulator: Answer,
) -> Option<&'static str> {
    let kernel = match probe.outcome {
        KernelAnswer::Unexpected(_) => {
            report.unexpected += 1;
            if report.unexpected_examples.len() < EXAMPLES {
                report.unexpected_examples.push(probe.to_string());
            }
            return None;
        }
        o => o.verdict().expect("allow or deny"),
    };
    report.probes += 1;
    report.oracle_vs_kernel += u64::from(oracle != kernel);
    report.emulator_vs_kernel += u64::from(emulator.verdict().is_some_and(|e| e != kernel));
    disagreement(oracle, &emulator, Some(kernel))
}

/// One kernel round trip for one request: the counterexample it makes
/// (agreeing or not), or `None` if the program does not compile or load,
/// or the answer is no verdict.
fn replay(
    scratch: &mut Scratch,
    strategy: &dyn Strategy,
    rules: &[Rule],
    request: Request,
) -> Result<Option<Counterexample>, KernelError> {
    let Ok(program) = strategy.compile(rules) else {
        return Ok(None);
    };
    let emulator = Answer::of(Emulator::new(&program).and_then(|e| e.run(&request)));
    let Ok(loaded) = bpf::load(&program, "devcg_shrink") else {
        return Ok(None);
    };
    let cg = scratch.mkdir("shrink")?;
    let result = (|| {
        scratch.attach(&cg, &loaded, AttachFlags::NONE)?;
        let dev = Device::new(request.ty, request.major, request.minor);
        scratch.probe(&cg, &[dev])
    })();
    scratch.rmdir(cg)?;
    let probes = result?;
    let Some(kernel) = probes
        .iter()
        .find(|p| p.request == request)
        .and_then(|p| p.outcome.verdict())
    else {
        return Ok(None);
    };
    let oracle = devcg_oracle::decide(rules, &request);
    Ok(Some(Counterexample {
        rules: rules.iter().map(Rule::to_string).collect(),
        request,
        oracle,
        kind: disagreement(oracle, &emulator, Some(kernel))
            .unwrap_or_default()
            .to_string(),
        emulator,
        kernel: Some(kernel),
        program: Some(disassemble(&program.insns)),
    }))
}

/// Shrinking on the real kernel (the shared shrinker, each candidate one
/// round trip): the same kind of disagreement on the same request remains.
fn shrink(
    scratch: &mut Scratch,
    strategy: &dyn Strategy,
    rules: Vec<Rule>,
    request: Request,
) -> Result<Option<Counterexample>, KernelError> {
    let Some(mut found) = replay(scratch, strategy, &rules, request)? else {
        return Ok(None);
    };
    if found.kind.is_empty() {
        return Ok(None);
    }
    let kind = found.kind.clone();
    shrink::rules(rules, SHRINK_BUDGET, |fewer| {
        Ok::<_, KernelError>(match replay(scratch, strategy, fewer, request)? {
            Some(c) if c.kind == kind => {
                found = c;
                true
            }
            _ => false,
        })
    })?;
    Ok(Some(found))
}

/// The reports as a table, one line per strategy (plus counterexamples and
/// refusal reasons below it).
pub fn table(reports: &[KernelReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>4} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>10} {:>10}",
        "strategy",
        "own",
        "rules",
        "attached",
        "cmp-ref",
        "load-ref",
        "emu-ref",
        "probes",
        "unexp",
        "orc-vs-krn",
        "emu-vs-krn"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "{:<10} {:>4} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>10} {:>10}",
            r.strategy,
            if r.own { "yes" } else { "no" },
            r.rule_sets,
            r.attached,
            r.compile_refusals,
            r.load_refusals,
            r.emulator_refusals,
            r.probes,
            r.unexpected,
            r.oracle_vs_kernel,
            r.emulator_vs_kernel
        );
    }
    for r in reports {
        for refusal in &r.load_refusal_examples {
            let _ = writeln!(
                out,
                "{}: kernel refused the program ({}): {}\n  rules: {}",
                r.strategy,
                refusal.errno,
                refusal.verifier,
                refusal.rules.join("; ")
            );
        }
        for u in &r.unexpected_examples {
            let _ = writeln!(out, "{}: unexpected answer: {u}", r.strategy);
        }
        if let Some(ce) = &r.counterexample {
            let _ = writeln!(out, "{}: smallest counterexample\n{ce}", r.strategy);
        }
    }
    out
}
