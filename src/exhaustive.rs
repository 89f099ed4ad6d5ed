//! Exhaustive mode: decide every equivalence class of the request space for
//! one rule list instead of sampling it.
//!
//! A request is (type, major, minor, access). Types are b and c and access
//! is one of the 8 masks, so both are enumerated. Majors and minors range
//! over u32, but a filter built from exception keys can only tell numbers
//! apart through the numbers it compares with: the rules' numbers and `~0`.
//! Every such number `n` is a class of its own, and so is each run of
//! numbers strictly between two of them, represented by `n + 1`; 0 opens the
//! first run. docs/exhaustive.md argues why this covers u32 for the
//! programs devcg generates and what it proves for others.
//!
//! Minors are paired with a major only when they can matter for it: the
//! minors of exceptions that apply to that major (plus the classes every
//! major has). When the full cross product is small enough it is used
//! instead, which also catches a program that confuses one major's minors
//! with another's.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use devcg_emulator::Emulator;
use devcg_engine::v1text::V1Text;
use devcg_engine::{
    Access, Behavior, DeviceType, Program, Request, Rule, RuleSet, Verdict, WILDCARD,
};
use serde::Serialize;

use crate::verify::{Answer, OracleCase};

/// Cross products up to this many requests are checked in full.
pub const FULL_PRODUCT_LIMIT: usize = 2_000_000;

#[derive(Debug, Serialize)]
pub struct Difference {
    pub request: String,
    pub oracle: Verdict,
    pub program: Answer,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    /// Requests decided, one per class.
    pub classes: usize,
    /// Whether the full major x minor cross product was used.
    pub full_product: bool,
    pub differences: Vec<Difference>,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Outcome {
    pub fn equivalent(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Each number, the run after it, and 0 for the run before the first.
fn representatives(named: impl IntoIterator<Item = u32>) -> BTreeSet<u32> {
    let mut reps = BTreeSet::from([0, WILDCARD]);
    for n in named {
        reps.insert(n);
        reps.insert(n.wrapping_add(1));
    }
    reps
}

/// Numbers a program compares with: jump immediates, 64-bit constants and
/// the 32-bit words of its map keys. Used for the full product only.
pub fn program_constants(program: &Program) -> BTreeSet<u32> {
    use devcg_engine::insn::op;
    let mut out = BTreeSet::new();
    for insn in &program.insns {
        let class = op::class(insn.code);
        let is_cond_jump = (class == op::JMP || class == op::JMP32)
            && !matches!(op::operation(insn.code), op::JA | op::CALL | op::EXIT);
        if (is_cond_jump && op::source(insn.code) == op::K) || insn.is_lddw() {
            out.insert(insn.imm as u32);
        }
    }
    for map in &program.maps {
        for (key, _) in &map.entries {
            out.extend(
                key.chunks_exact(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            );
        }
    }
    out
}

/// The (type, major, minor) classes to decide.
fn devices(rules: &[Rule], program: &Program) -> (Vec<(DeviceType, u32, u32)>, bool) {
    let set = RuleSet::from_rules(rules);
    // Numbers named anywhere in the list count, even if a later rule removed
    // the exception again: a generator may still have compiled them.
    let named: Vec<(DeviceType, u32, u32)> = rules
        .iter()
        .filter_map(|r| match r.parsed {
            V1Text::Exception(e) => Some((e.ty, e.major, e.minor)),
            V1Text::All => None,
        })
        .collect();
    let constants = program_constants(program);
    let majors = representatives(named.iter().map(|d| d.1).chain(constants.iter().copied()));
    let minors = representatives(named.iter().map(|d| d.2).chain(constants.iter().copied()));
    let mut out = Vec::new();
    if majors.len() * minors.len() * 2 * 8 <= FULL_PRODUCT_LIMIT {
        for ty in DeviceType::ALL {
            for &ma in &majors {
                out.extend(minors.iter().map(|&mi| (ty, ma, mi)));
            }
        }
        return (out, true);
    }
    // Structured: per type and major class, the minors that can matter.
    let partial = set.behavior == Behavior::Allow;
    for ty in DeviceType::ALL {
        let of_type: Vec<_> = named.iter().filter(|d| d.0 == ty).collect();
        let majors = representatives(of_type.iter().map(|d| d.1));
        let base = representatives(of_type.iter().filter(|d| d.1 == WILDCARD).map(|d| d.2));
        for &ma in &majors {
            let mut mins = base.clone();
            for d in &of_type {
                if d.1 == ma || (partial && ma == WILDCARD) {
                    mins.insert(d.2);
                    mins.insert(d.2.wrapping_add(1));
                }
            }
            out.extend(mins.into_iter().map(|mi| (ty, ma, mi)));
        }
    }
    (out, false)
}

pub fn run(rules: &[Rule], program: &Program) -> Result<Outcome, devcg_emulator::EmuError> {
    let start = Instant::now();
    let emulator = Emulator::new(program)?;
    let oracle = OracleCase::new(rules);
    let (devices, full_product) = devices(rules, program);
    let mut differences = Vec::new();
    let mut classes = 0;
    for (ty, major, minor) in devices {
        for access in Access::every() {
            classes += 1;
            let req = Request::new(ty, major, minor, access);
            let want = oracle.decide(&req);
            let got = match emulator.run(&req) {
                Ok(v) => Answer::Verdict(v),
                Err(e) => Answer::Error(e.to_string()),
            };
            if got != Answer::Verdict(want) {
                differences.push(Difference {
                    request: req.to_string(),
                    oracle: want,
                    program: got,
                });
            }
        }
    }
    Ok(Outcome {
        classes,
        full_product,
        differences,
        elapsed: start.elapsed(),
    })
}
