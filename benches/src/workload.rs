//! Deterministic rule lists and the two requests each one is timed with.
//!
//! A list of `n` rules is `n` distinct exceptions drawn from a seeded
//! generator with realistic numbers (majors below 4096, minors below 2^20,
//! mostly small minors, some `*`), written either as an allow list
//! (`deny a`, then `n` allows) or as a deny list (`n` denies). The
//! requests are reads, so the kernel can be asked with a plain `open()`:
//!
//! * matching: a device covered by the exception in the middle of the list
//!   (allowed on an allow list, denied on a deny list);
//! * no match: a char device no exception names (denied on an allow list,
//!   allowed on a deny list) — every entry of a first-match chain is tried.
//!
//! Both requests use majors without a driver (on this machine, per
//! `/proc/devices`), so an allowed open fails with ENXIO after the check
//! instead of reaching a driver.

use std::collections::HashSet;

use devcg_engine::v1text::V1Text;
use devcg_engine::{Access, DeviceType, Exception, Request, Rule, RuleKind, Verdict, WILDCARD};
use devcg_oracle::Policy;
use thiserror::Error;

/// The rule counts every strategy is timed at.
pub const SIZES: [usize; 5] = [1, 10, 100, 1_000, 10_000];

/// The default seed ("devcgben"); the same seed gives the same lists.
pub const SEED: u64 = 0x6465_7663_6762_656e;

/// Majors a real `dev_t` can hold.
const MAJORS: u64 = 4096;
/// Minors a real `dev_t` can hold.
const MINORS: u64 = 1 << 20;

/// SplitMix64 (the kernel tests' generator): seedable and stable across
/// crate versions, so a seed names the same rule lists forever.
pub use devcg_differential::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListKind {
    /// `deny a`, then allows: the container shape.
    Allow,
    /// Denies only, on top of allow-all.
    Deny,
}

impl ListKind {
    pub const ALL: [ListKind; 2] = [ListKind::Allow, ListKind::Deny];

    pub fn name(self) -> &'static str {
        match self {
            ListKind::Allow => "allow list",
            ListKind::Deny => "deny list",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            ListKind::Allow => "allow",
            ListKind::Deny => "deny",
        }
    }
}

/// Which of a workload's two requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hit {
    Match,
    NoMatch,
}

impl Hit {
    pub const ALL: [Hit; 2] = [Hit::Match, Hit::NoMatch];

    pub fn name(self) -> &'static str {
        match self {
            Hit::Match => "matching",
            Hit::NoMatch => "no match",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Hit::Match => "match",
            Hit::NoMatch => "nomatch",
        }
    }
}

#[derive(Debug, Error)]
pub enum WorkloadError {
    #[error("{list} of {n} rules: found no {what} request (tried {tries} candidates)")]
    NoRequest {
        list: &'static str,
        n: usize,
        what: &'static str,
        tries: usize,
    },
}

/// One rule list and its two requests, with the verdicts the oracle gives.
#[derive(Clone, Debug)]
pub struct Workload {
    pub list: ListKind,
    /// Exceptions in the list (the allow list's leading `deny a` not counted).
    pub n: usize,
    pub rules: Vec<Rule>,
    pub matching: Request,
    pub no_match: Request,
}

impl Workload {
    /// The list `kind` of `n` rules for `seed`. `has_driver(type, major)`
    /// says which majors to avoid in requests.
    pub fn new(
        kind: ListKind,
        n: usize,
        seed: u64,
        has_driver: &dyn Fn(DeviceType, u32) -> bool,
    ) -> Result<Workload, WorkloadError> {
        // One stream per (kind, n): lists of different sizes are independent.
        let mut rng = Rng::new(seed ^ (n as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let exceptions = exceptions(&mut rng, n);
        let rule_kind = match kind {
            ListKind::Allow => RuleKind::Allow,
            ListKind::Deny => RuleKind::Deny,
        };
        let mut rules = Vec::with_capacity(n + 1);
        if kind == ListKind::Allow {
            rules.push(Rule::from_parsed(RuleKind::Deny, V1Text::All));
        }
        rules.extend(
            exceptions
                .iter()
                .map(|&ex| Rule::from_parsed(rule_kind, V1Text::Exception(ex))),
        );
        let oracle = Policy::of(&rules);
        let (on_match, on_miss) = match kind {
            ListKind::Allow => (Verdict::Allow, Verdict::Deny),
            ListKind::Deny => (Verdict::Deny, Verdict::Allow),
        };
        let usable = |req: &Request| {
            req.is_realizable()
                && (req.major, req.minor) != (0, 0)
                && !has_driver(req.ty, req.major)
        };
        let matching = matching_request(&mut rng, &exceptions, |req| {
            usable(req) && oracle.decide(req) == on_match
        })
        .ok_or(WorkloadError::NoRequest {
            list: kind.name(),
            n,
            what: "matching",
            tries: exceptions.len(),
        })?;
        const TRIES: usize = 100_000;
        let no_match = no_match_request(&mut rng, &exceptions, TRIES, |req| {
            usable(req) && oracle.decide(req) == on_miss
        })
        .ok_or(WorkloadError::NoRequest {
            list: kind.name(),
            n,
            what: "no-match",
            tries: TRIES,
        })?;
        Ok(Workload {
            list: kind,
            n,
            rules,
            matching,
            no_match,
        })
    }

    pub fn request(&self, hit: Hit) -> Request {
        match hit {
            Hit::Match => self.matching,
            Hit::NoMatch => self.no_match,
        }
    }

    /// What the oracle says of `hit`'s request (checked when built).
    pub fn expected(&self, hit: Hit) -> Verdict {
        match (self.list, hit) {
            (ListKind::Allow, Hit::Match) | (ListKind::Deny, Hit::NoMatch) => Verdict::Allow,
            _ => Verdict::Deny,
        }
    }

    /// The rules as a v1 rule file.
    pub fn rule_file(&self) -> String {
        let mut out = format!(
            "# devcg-benches: {} of {} rules (seeded)\n",
            self.list.name(),
            self.n
        );
        for r in &self.rules {
            out.push_str(&r.to_string());
            out.push('\n');
        }
        out
    }
}

/// `n` exceptions with distinct keys. Mix: 80% char; 90% exact, 7%
/// `major:*`, 3% `*:minor`; minors mostly below 256; access mostly `rwm` or
/// `rw`, sometimes one letter.
fn exceptions(rng: &mut Rng, n: usize) -> Vec<Exception> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let ty = if rng.below(5) == 0 {
            DeviceType::Block
        } else {
            DeviceType::Char
        };
        let form = rng.below(100);
        let major = if form < 3 {
            WILDCARD
        } else {
            rng.below(MAJORS) as u32
        };
        let minor = if (3..10).contains(&form) {
            WILDCARD
        } else if rng.below(10) < 7 {
            rng.below(256) as u32
        } else {
            rng.below(MINORS) as u32
        };
        let access = match rng.below(20) {
            0..=10 => Access::ALL,
            11..=15 => Access(Access::READ.0 | Access::WRITE.0),
            16..=17 => Access::READ,
            18 => Access::WRITE,
            _ => Access::MKNOD,
        };
        if seen.insert((ty, major, minor)) {
            out.push(Exception {
                ty,
                major,
                minor,
                access,
            });
        }
    }
    out
}

/// A read of a device the exception nearest the middle of the list covers
/// (searching outwards from the middle), accepted by `ok`.
fn matching_request(
    rng: &mut Rng,
    exceptions: &[Exception],
    ok: impl Fn(&Request) -> bool,
) -> Option<Request> {
    let mid = exceptions.len() / 2;
    let order = (0..exceptions.len()).map(|i| {
        // mid, mid+1, mid-1, mid+2, ...
        let step = i.div_ceil(2);
        if i % 2 == 1 {
            mid + step
        } else {
            mid.wrapping_sub(step)
        }
    });
    for idx in order.filter(|&i| i < exceptions.len()) {
        let ex = exceptions[idx];
        if !ex.access.contains(Access::READ) {
            continue;
        }
        // A wildcard gets a few draws to land on a usable number.
        for _ in 0..64 {
            let major = if ex.major == WILDCARD {
                rng.below(MAJORS) as u32
            } else {
                ex.major
            };
            let minor = if ex.minor == WILDCARD {
                rng.below(MINORS) as u32
            } else {
                ex.minor
            };
            let req = Request::new(ex.ty, major, minor, Access::READ);
            if ok(&req) {
                return Some(req);
            }
            if ex.major != WILDCARD && ex.minor != WILDCARD {
                break;
            }
        }
    }
    None
}

/// A read of a char device that no exception's key covers, accepted by `ok`.
fn no_match_request(
    rng: &mut Rng,
    exceptions: &[Exception],
    tries: usize,
    ok: impl Fn(&Request) -> bool,
) -> Option<Request> {
    let ty = DeviceType::Char;
    for _ in 0..tries {
        let major = 1 + rng.below(MAJORS - 1) as u32;
        let minor = rng.below(MINORS) as u32;
        let named = exceptions.iter().any(|e| {
            e.ty == ty
                && (e.major == WILDCARD || e.major == major)
                && (e.minor == WILDCARD || e.minor == minor)
        });
        let req = Request::new(ty, major, minor, Access::READ);
        if !named && ok(&req) {
            return Some(req);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: DeviceType, _: u32) -> bool {
        false
    }

    #[test]
    fn same_seed_same_lists() {
        for kind in ListKind::ALL {
            let a = Workload::new(kind, 100, 7, &none).unwrap();
            let b = Workload::new(kind, 100, 7, &none).unwrap();
            assert_eq!(a.rules, b.rules);
            assert_eq!((a.matching, a.no_match), (b.matching, b.no_match));
        }
    }

    #[test]
    fn requests_get_the_verdicts_they_claim() {
        for kind in ListKind::ALL {
            for n in [1, 10, 1000] {
                let w = Workload::new(kind, n, SEED, &none).unwrap();
                let oracle = Policy::of(&w.rules);
                for hit in Hit::ALL {
                    assert_eq!(
                        oracle.decide(&w.request(hit)),
                        w.expected(hit),
                        "{kind:?} {n}"
                    );
                    assert!(w.request(hit).is_realizable());
                }
                let exceptions = w.rules.len() - usize::from(kind == ListKind::Allow);
                assert_eq!(exceptions, n);
            }
        }
    }

    #[test]
    fn requests_avoid_majors_with_drivers() {
        let busy = |_: DeviceType, major: u32| major.is_multiple_of(2);
        let w = Workload::new(ListKind::Allow, 100, SEED, &busy).unwrap();
        assert_eq!(w.matching.major % 2, 1);
        assert_eq!(w.no_match.major % 2, 1);
    }
}
