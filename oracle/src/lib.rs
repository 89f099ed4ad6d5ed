//! A kernel-exact model of the cgroup v1 `devices` controller
//! (security/device_cgroup.c): a hierarchy of cgroups, the writes to
//! devices.allow and devices.deny with the errno the kernel gives, what
//! devices.list prints and what an access check answers. It is the ground
//! truth device programs are judged against, so it follows the kernel's
//! quirks rather than what the documentation suggests. Pure: no syscalls.

pub mod exceptions;
mod hierarchy;
mod policy;
pub mod script;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use devcg_engine::rules::Rule;
use devcg_engine::{Behavior, Exception, Request, Verdict};

pub use hierarchy::Hierarchy;
pub use policy::Policy;

/// What a refused write returns. Only these two: the kernel's other
/// failures (ENOMEM, a missing CAP_SYS_ADMIN) cannot happen in a model.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Error)]
pub enum Errno {
    /// The text does not parse, or `a` was written to a cgroup with children.
    #[error("EINVAL")]
    EINVAL,
    /// The parent does not permit the change.
    #[error("EPERM")]
    EPERM,
}

impl Errno {
    /// The Linux errno number, for comparing with what a real write returns.
    pub fn code(self) -> i32 {
        match self {
            Errno::EINVAL => 22,
            Errno::EPERM => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Errno::EINVAL => "EINVAL",
            Errno::EPERM => "EPERM",
        }
    }
}

/// A question the hierarchy cannot answer because the caller named a cgroup
/// wrongly; no kernel errno is involved.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OracleError {
    #[error("no cgroup {0:?}")]
    NoSuchCgroup(String),
    #[error("cgroup {0:?} already exists")]
    Exists(String),
    #[error("the parent of {0:?} does not exist")]
    NoParent(String),
    #[error("{0:?} is not a cgroup path (components separated by single `/`, no `.` or `..`, not the root)")]
    BadPath(String),
}

/// The cgroup [`state_of`] and [`decide`] write their rules to: a direct
/// child of the allow-all root, as a container runtime's cgroup would be.
pub const RULES_CGROUP: &str = "c";

fn hierarchy_of(rules: &[Rule]) -> Hierarchy {
    let mut h = Hierarchy::new();
    h.mkdir(RULES_CGROUP)
        .expect("a fresh hierarchy has no \"c\"");
    for rule in rules {
        // A refused rule changes nothing; callers validate rules earlier.
        let _ = h.write(RULES_CGROUP, rule.kind, &rule.text);
    }
    h
}

/// The state a rule list leaves in a fresh child of the allow-all root.
pub fn state_of(rules: &[Rule]) -> (Behavior, Vec<Exception>) {
    let h = hierarchy_of(rules);
    let behavior = h.behavior(RULES_CGROUP).expect("exists");
    let list = h.exceptions(RULES_CGROUP).expect("exists").to_vec();
    (behavior, list)
}

/// The meaning of a rule list: the rules written in order to a fresh child
/// of the allow-all root, then `req` checked there.
pub fn decide(rules: &[Rule], req: &Request) -> Verdict {
    hierarchy_of(rules)
        .check(RULES_CGROUP, req)
        .expect("exists")
}
