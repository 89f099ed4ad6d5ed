//! The differential: random rule lists, compiled by a strategy, run in the
//! emulator and judged by the oracle.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use devcg_emulator::Emulator;
use devcg_engine::{Request, Rule, Strategy, Verdict};
use devcg_oracle::Policy;
use proptest::strategy::{Strategy as _, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde::Serialize;

use crate::gen;

/// The most requests `--checks-per-case` takes: more would only cost time
/// (requests are drawn one at a time), but past this a typo is likelier
/// than intent.
pub const MAX_CHECKS_PER_CASE: u64 = 1_000_000;

#[derive(Clone, Debug)]
pub struct VerifyConfig {
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

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            cases: 2_000,
            checks_per_case: 64,
            max_rules: 12,
            seed: 0,
            progress: false,
        }
    }
}

/// What the program answered: a verdict, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    Verdict(Verdict),
    Error(String),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Verdict(v) => write!(f, "{v}"),
            Answer::Error(e) => write!(f, "error: {e}"),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Counterexample {
    pub rules: Vec<String>,
    pub request: String,
    pub oracle: Verdict,
    pub program: Answer,
}

impl std::fmt::Display for Counterexample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "rules ({}):", self.rules.len())?;
        for r in &self.rules {
            writeln!(f, "  {r}")?;
        }
        write!(
            f,
            "request {}: oracle {}, program {}",
            self.request, self.oracle, self.program
        )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
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

impl Report {
    /// Divergent checks per check.
    pub fn divergence_rate(&self) -> f64 {
        self.divergences as f64 / (self.checks as f64).max(1.0)
    }

    pub fn checks_per_second(&self) -> f64 {
        self.checks as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What the strategy's program answers for `req` under `rules`.
pub fn program_answer(strategy: &dyn Strategy, rules: &[Rule], req: &Request) -> Option<Answer> {
    let program = strategy.compile(rules).ok()?;
    Some(match Emulator::new(&program).and_then(|emu| emu.run(req)) {
        Ok(v) => Answer::Verdict(v),
        Err(e) => Answer::Error(e.to_string()),
    })
}

fn diverges(strategy: &dyn Strategy, rules: &[Rule], req: &Request) -> Option<Answer> {
    let answer = program_answer(strategy, rules, req)?;
    (answer != Answer::Verdict(Policy::of(rules).decide(req))).then_some(answer)
}

fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

pub fn verify(strategy: &dyn Strategy, cfg: &VerifyConfig) -> Report {
    let mut runner = TestRunner::new_with_rng(Config::default(), rng(cfg.seed));
    let rules_strategy = gen::rules(cfg.max_rules);
    let progress = cfg.progress && std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut report = Report {
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
        let mut tree = rules_strategy
            .new_tree(&mut runner)
            .expect("rule generator");
        let rules = tree.current();
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
            let req = &requests
                .new_tree(&mut runner)
                .expect("request generator")
                .current();
            report.checks += 1;
            let answer = match &emulator {
                Ok(emu) => match emu.run(req) {
                    Ok(v) => Answer::Verdict(v),
                    Err(e) => Answer::Error(e.to_string()),
                },
                Err(e) => Answer::Error(e.to_string()),
            };
            if answer != Answer::Verdict(oracle.decide(req)) {
                report.divergences += 1;
                if report.counterexample.is_none() {
                    report.counterexample = Some(shrink(strategy, &mut tree, req));
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

/// Shrinks the rule list while the request still diverges.
fn shrink(
    strategy: &dyn Strategy,
    tree: &mut impl ValueTree<Value = Vec<Rule>>,
    req: &Request,
) -> Counterexample {
    let mut best = tree.current();
    let mut steps = 0;
    if tree.simplify() {
        loop {
            steps += 1;
            let candidate = tree.current();
            let still = diverges(strategy, &candidate, req).is_some();
            if still {
                best = candidate;
            }
            let more = if still {
                tree.simplify()
            } else {
                tree.complicate()
            };
            if !more || steps > 10_000 {
                break;
            }
        }
    }
    let program =
        diverges(strategy, &best, req).unwrap_or_else(|| Answer::Error("not reproducible".into()));
    Counterexample {
        rules: best.iter().map(|r| r.to_string()).collect(),
        request: req.to_string(),
        oracle: Policy::of(&best).decide(req),
        program,
    }
}
