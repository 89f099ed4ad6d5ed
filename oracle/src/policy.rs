//! A rule list's meaning as one value: the behavior and exception list the
//! rules leave in a fresh child of the allow-all root, indexed so that a
//! decision looks at the few exceptions that can match instead of the whole
//! list. The exhaustive mode asks millions of questions of one list of
//! thousands of rules; [`crate::exceptions::permits`] on the whole list
//! stays the definition, and a property test holds the two equal.

use std::collections::HashMap;

use devcg_engine::{Behavior, DeviceType, Exception, Request, Rule, Verdict, WILDCARD};

use crate::exceptions::{match_complete, match_partial};

#[derive(Clone, Debug)]
pub struct Policy {
    behavior: Behavior,
    exceptions: Vec<Exception>,
    /// Exceptions by (type, major); `~0` majors under `~0`.
    by_major: HashMap<(DeviceType, u32), Vec<Exception>>,
    /// The same by (type, minor), for requests whose major is `~0`: the
    /// partial match takes a requested `~0` for a wildcard.
    by_minor: HashMap<(DeviceType, u32), Vec<Exception>>,
    /// Every exception of a type, for a request with both numbers `~0`.
    by_type: HashMap<DeviceType, Vec<Exception>>,
}

impl Policy {
    /// What `rules`, written in order, leave in the cgroup (see
    /// [`crate::state_of`]).
    pub fn of(rules: &[Rule]) -> Policy {
        let (behavior, exceptions) = crate::state_of(rules);
        Policy::new(behavior, exceptions)
    }

    pub fn new(behavior: Behavior, exceptions: Vec<Exception>) -> Policy {
        let mut by_major: HashMap<_, Vec<_>> = HashMap::new();
        let mut by_minor: HashMap<_, Vec<_>> = HashMap::new();
        let mut by_type: HashMap<_, Vec<_>> = HashMap::new();
        for e in &exceptions {
            by_major.entry((e.ty, e.major)).or_default().push(*e);
            by_minor.entry((e.ty, e.minor)).or_default().push(*e);
            by_type.entry(e.ty).or_default().push(*e);
        }
        Policy {
            behavior,
            exceptions,
            by_major,
            by_minor,
            by_type,
        }
    }

    pub fn behavior(&self) -> Behavior {
        self.behavior
    }

    /// The exception list in kernel order.
    pub fn exceptions(&self) -> &[Exception] {
        &self.exceptions
    }

    /// `devcgroup_legacy_check_permission` for `req`, as
    /// [`crate::exceptions::permits`] decides it on the whole list.
    pub fn decide(&self, req: &Request) -> Verdict {
        let (ty, major, minor, access) = (req.ty, req.major, req.minor, req.access);
        // Every exception that can match is in one of these groups: a
        // numbered major matches only itself or `~0`; a requested `~0`
        // major (a wildcard to the partial match) leaves the minor to
        // narrow it down the same way.
        let empty: &[Exception] = &[];
        let groups: [&[Exception]; 2] = if major != WILDCARD {
            [
                group(&self.by_major, ty, major),
                group(&self.by_major, ty, WILDCARD),
            ]
        } else if minor != WILDCARD {
            [
                group(&self.by_minor, ty, minor),
                group(&self.by_minor, ty, WILDCARD),
            ]
        } else {
            [self.by_type.get(&ty).map_or(empty, Vec::as_slice), empty]
        };
        let allowed = match self.behavior {
            Behavior::Allow => !groups
                .iter()
                .any(|g| match_partial(g, ty, major, minor, access)),
            Behavior::Deny => groups
                .iter()
                .any(|g| match_complete(g, ty, major, minor, access)),
        };
        Verdict::from_allowed(allowed)
    }
}

fn group(map: &HashMap<(DeviceType, u32), Vec<Exception>>, ty: DeviceType, n: u32) -> &[Exception] {
    map.get(&(ty, n)).map_or(&[], Vec::as_slice)
}
