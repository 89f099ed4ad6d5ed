//! The sampled differential: random rule lists, compiled by a strategy,
//! run in the emulator and judged by the oracle.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use devcg_emulator::Emulator;
use devcg_engine::{Request, Rule, Strategy};
use devcg_oracle::Policy;
use serde::Serialize;

use crate::counterexample::{Answer, Counterexample};
use crate::gen::{self, Draw};
use crate::shrink;

/// The most requests `--checks-per-case` takes: more would only cost time
/// (requests are drawn one at a time), but past this a typo is likelier
/// than intent.
pub const MAX_CHECKS_PER_CASE: u64 = 1_000_000;

/// Candidate lists the shrinker may try: each costs a compile and one run.
const SHRINK_BUDGET: usize = 1_000;

#[derive(Clone, Debug)]
pub struct SampleConfig {
    /// Rule sets to draw.
    pub cases: u64,
    /// Requests checked against each rule set (drawn one at a time).
    pub checks_per_case: u64,
    /// Longest rule list drawn.
    pub max_rules: usize,
    pub seed: u64,
    /// Show progress on stderr (only when it is a terminal).
    pub progress: bool,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            cases: 2_000,
            checks_per_case: 64,
            max_rules: 12,
            seed: 0,
            progress: false,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SampleReport {
    pub strategy: String,
    pub rule_sets: u64,
    pub checks: u64,
    pub divergences: u64,
    /// Rule sets the strategy refused to compile.
    pub refused: u64,
    /// Instruction slots of the compiled programs: min, median, max.
    pub insns: Option<[usize; 3]>,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    pub counterexample: Option<Counterexample>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl SampleReport {
    /// Divergent checks per check.
    pub fn divergence_rate(&self) -> f64 {
        self.divergences as f64 / (self.checks as f64).max(1.0)
    }

    pub fn checks_per_second(&self) -> f64 {
        self.checks as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What the strategy's program answers for `req` under `rules`; `None`
/// when the strategy refuses the list.
pub fn program_answer(strategy: &dyn Strategy, rules: &[Rule], req: &Request) -> Option<Answer> {
    let program = strategy.compile(rules).ok()?;
    Some(Answer::of(
        Emulator::new(&program).and_then(|emu| emu.run(req)),
    ))
}

fn diverges(strategy: &dyn Strategy, rules: &[Rule], req: &Request) -> bool {
    program_answer(strategy, rules, req)
        .is_some_and(|answer| answer != Answer::Verdict(Policy::of(rules).decide(req)))
}

/// `cfg.cases` random rule lists against `strategy`; the first divergence
/// found is shrunk into the report's counterexample.
pub fn run(strategy: &dyn Strategy, cfg: &SampleConfig) -> SampleReport {
    let mut draw = Draw::new(cfg.seed);
    let rules_strategy = gen::rules(cfg.max_rules);
    let progress = cfg.progress && std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut report = SampleReport {
        strategy: strategy.name().to_string(),
        rule_sets: 0,
        checks: 0,
        divergences: 0,
        refused: 0,
        elapsed: Duration::ZERO,
        counterexample: None,
        insns: None,
    };
    let mut sizes = Vec::new();
    for case in 0..cfg.cases {
        let rules = draw.value(&rules_strategy);
        // Requests are drawn one at a time, as they are checked: memory does
        // not grow with --checks-per-case.
        let requests = gen::request(gen::named_numbers(&rules));
        report.rule_sets += 1;
        let program = match strategy.compile(&rules) {
            Ok(p) => {
                sizes.push(p.len());
                p
            }
            Err(_) => {
                report.refused += 1;
                continue;
            }
        };
        let oracle = Policy::of(&rules);
        let emulator = Emulator::new(&program);
        for _ in 0..cfg.checks_per_case {
            let req = &draw.value(&requests);
            report.checks += 1;
            let answer = match &emulator {
                Ok(emu) => Answer::of(emu.run(req)),
                Err(e) => Answer::Error(e.to_string()),
            };
            if answer != Answer::Verdict(oracle.decide(req)) {
                report.divergences += 1;
                if report.counterexample.is_none() {
                    report.counterexample = Some(shrunk(strategy, rules.clone(), req));
                }
            }
        }
        if progress && case % 64 == 0 {
            eprint!(
                "\r{}: {}/{} rule sets, {} divergences",
                strategy.name(),
                case,
                cfg.cases,
                report.divergences
            );
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    report.elapsed = start.elapsed();
    sizes.sort_unstable();
    if let (Some(&min), Some(&max)) = (sizes.first(), sizes.last()) {
        report.insns = Some([min, sizes[sizes.len() / 2], max]);
    }
    report
}

/// The divergence on `req`, with the rule list shrunk while it remains.
fn shrunk(strategy: &dyn Strategy, rules: Vec<Rule>, req: &Request) -> Counterexample {
    let Ok(rules) = shrink::rules(rules, SHRINK_BUDGET, |l| {
        Ok::<_, std::convert::Infallible>(diverges(strategy, l, req))
    });
    let oracle = Policy::of(&rules).decide(req);
    let emulator = program_answer(strategy, &rules, req)
        .unwrap_or_else(|| Answer::Error("the strategy refuses the shrunk list".into()));
    Counterexample {
        rules: rules.iter().map(Rule::to_string).collect(),
        request: *req,
        oracle,
        kind: crate::counterexample::disagreement(oracle, &emulator, None)
            .unwrap_or("not reproducible")
            .to_string(),
        emulator,
        kernel: None,
        program: None,
    }
}
