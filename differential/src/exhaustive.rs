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
//! with another's. The work is near-linear in the rule count: exceptions
//! are grouped by major once, and the oracle decides from an index
//! ([`Policy`]), not by scanning the list.
//!
//! Many classes are ones no syscall can produce (a major of 2^12 or more, a
//! minor of 2^20 or more, `m` together with `r` or `w`); differences there
//! are reported apart from, and after, the reachable ones.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use devcg_emulator::Emulator;
use devcg_engine::v1text::V1Text;
use devcg_engine::{
    Access, Behavior, DeviceType, Program, Request, Rule, RuleSet, Verdict, WILDCARD,
};
use serde::Serialize;

use crate::counterexample::Answer;
use devcg_oracle::Policy;

/// Cross products up to this many requests are checked in full.
pub const FULL_PRODUCT_LIMIT: usize = 2_000_000;

#[derive(Debug, Serialize)]
pub struct Difference {
    pub request: String,
    pub oracle: Verdict,
    pub program: Answer,
    /// Whether a syscall can produce this request ([`Request::is_reachable`]).
    pub reachable: bool,
}

#[derive(Debug, Serialize)]
pub struct ExhaustiveReport {
    /// Requests decided, one per class.
    pub classes: usize,
    /// Of those, classes a syscall can produce.
    pub reachable_classes: usize,
    /// Differences in reachable classes (they come first in `differences`).
    pub reachable_differences: usize,
    /// Whether the full major x minor cross product was used.
    pub full_product: bool,
    /// Every differing class, the reachable ones first.
    pub differences: Vec<Difference>,
    /// Why the run stopped before deciding every class: the program failed
    /// on each of the first classes with one and the same error, a failure
    /// that does not depend on the request. `differences` holds those.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl ExhaustiveReport {
    pub fn equivalent(&self) -> bool {
        self.differences.is_empty() && self.stopped.is_none()
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
    pairings(
        &named(rules),
        &program_constants(program),
        set.behavior == Behavior::Allow,
    )
}

/// Every device a rule list names, even those a later rule removed again:
/// a generator may still have compiled them.
pub(crate) fn named(rules: &[Rule]) -> Vec<(DeviceType, u32, u32)> {
    rules
        .iter()
        .filter_map(|r| match r.parsed {
            V1Text::Exception(e) => Some((e.ty, e.major, e.minor)),
            V1Text::All => None,
        })
        .collect()
}

/// The devices to decide for the numbers `named` (type, major, minor) and a
/// program's `constants`: the full product of their classes when it is
/// small enough, else per major the minors that can matter for it (see the
/// module doc). `partial`: the rules' behavior is ALLOW, where a requested
/// `~0` major is a wildcard to the kernel's match. Also says which it was.
pub(crate) fn pairings(
    named: &[(DeviceType, u32, u32)],
    constants: &BTreeSet<u32>,
    partial: bool,
) -> (Vec<(DeviceType, u32, u32)>, bool) {
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
    for ty in DeviceType::ALL {
        let mut minors_of: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for d in named.iter().filter(|d| d.0 == ty) {
            minors_of.entry(d.1).or_default().push(d.2);
        }
        let majors = representatives(minors_of.keys().copied());
        let base = representatives(minors_of.get(&WILDCARD).into_iter().flatten().copied());
        for &ma in &majors {
            let mut mins = base.clone();
            // A requested `~0` major is a wildcard to the partial match: in
            // ALLOW mode every exception of the type applies to it.
            let applying: Vec<&Vec<u32>> = if partial && ma == WILDCARD {
                minors_of.values().collect()
            } else {
                minors_of.get(&ma).into_iter().collect()
            };
            for &mi in applying.into_iter().flatten() {
                mins.insert(mi);
                mins.insert(mi.wrapping_add(1));
            }
            out.extend(mins.into_iter().map(|mi| (ty, ma, mi)));
        }
    }
    (out, false)
}

pub fn run(
    rules: &[Rule],
    program: &Program,
) -> Result<ExhaustiveReport, devcg_emulator::EmuError> {
    let start = Instant::now();
    // Refused here, before any thread starts, with the emulator's reason.
    let emulator = Emulator::new(program)?;
    let oracle = Policy::of(rules);
    let (devices, full_product) = devices(rules, program);
    // A program that fails the same way on every one of the first classes
    // (a loop that always exhausts its budget, say) fails for a reason that
    // does not depend on the request: say so once instead of once per
    // class, for millions of classes.
    let first = &devices[..devices.len().min(FIRST_DEVICES)];
    let probe = decide_all(first, &oracle, &emulator);
    let same_error = match probe.differences.first().map(|d| &d.program) {
        Some(Answer::Error(e)) if probe.differences.len() == probe.classes => probe
            .differences
            .iter()
            .all(|d| matches!(&d.program, Answer::Error(x) if x == e))
            .then(|| e.clone()),
        _ => None,
    };
    let rest = &devices[first.len()..];
    let stopped = same_error.filter(|_| !rest.is_empty()).map(|error| {
        format!(
            "the program failed on each of the first {} classes with the same error ({error}); \
             the other {} were not decided",
            probe.classes,
            rest.len() * 8
        )
    });
    let mut parts = vec![probe];
    if stopped.is_none() {
        parts.extend(decide_in_parallel(rest, &oracle, &emulator, program)?);
    }
    let mut differences = Vec::new();
    let (mut classes, mut reachable_classes) = (0, 0);
    for part in parts {
        classes += part.classes;
        reachable_classes += part.reachable_classes;
        differences.extend(part.differences);
    }
    // Stable: each part keeps the order the classes were decided in.
    differences.sort_by_key(|d| !d.reachable);
    Ok(ExhaustiveReport {
        classes,
        reachable_classes,
        reachable_differences: differences.iter().filter(|d| d.reachable).count(),
        full_product,
        differences,
        stopped,
        elapsed: start.elapsed(),
    })
}

/// Devices (times 8 accesses) decided first, to tell a program that fails
/// whatever the request from one that differs on some classes.
const FIRST_DEVICES: usize = 32;

/// Decides `devices` on every core ([`crate::parallel`]). A program with
/// maps gets an emulator per worker; without maps the workers share
/// `emulator` (verifying a large program is not free).
fn decide_in_parallel(
    devices: &[(DeviceType, u32, u32)],
    oracle: &Policy,
    emulator: &Emulator,
    program: &Program,
) -> Result<Vec<Part>, devcg_emulator::EmuError> {
    let shared = program.maps.is_empty();
    crate::parallel::batches(
        devices,
        || {
            if shared {
                Ok(None)
            } else {
                Emulator::new(program).map(Some)
            }
        },
        |own: &Option<Emulator>, batch| decide_all(batch, oracle, own.as_ref().unwrap_or(emulator)),
    )
}

/// What one worker found.
struct Part {
    classes: usize,
    reachable_classes: usize,
    differences: Vec<Difference>,
}

/// Every access of every device in `devices`, oracle against program.
fn decide_all(devices: &[(DeviceType, u32, u32)], oracle: &Policy, emulator: &Emulator) -> Part {
    let mut part = Part {
        classes: 0,
        reachable_classes: 0,
        differences: Vec::new(),
    };
    for &(ty, major, minor) in devices {
        let wants = oracle.decide_each_access(ty, major, minor);
        for access in Access::every() {
            let req = Request::new(ty, major, minor, access);
            let reachable = req.is_reachable();
            part.classes += 1;
            part.reachable_classes += usize::from(reachable);
            let want = wants[usize::from(access.0)];
            let got = Answer::of(emulator.run(&req));
            if got != Answer::Verdict(want) {
                part.differences.push(Difference {
                    request: req.to_string(),
                    oracle: want,
                    program: got,
                    reachable,
                });
            }
        }
    }
    part
}
