//! A rule list's meaning as one value: the behavior and exception list the
//! rules leave in a fresh child of the allow-all root, indexed so that a
//! decision looks at the few exceptions that can match instead of the whole
//! list. The exhaustive mode asks millions of questions of one list of
//! thousands of rules; [`crate::exceptions::permits`] on the whole list
//! stays the definition, and a property test holds the two equal.

use std::collections::HashMap;

use devcg_engine::{Access, Behavior, DeviceType, Exception, Request, Rule, Verdict, WILDCARD};

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
    /// Exceptions by (type, major, minor), for requests with both numbers
    /// exact: the common case, four lookups whatever the list's length.
    by_key: HashMap<(DeviceType, u32, u32), Vec<Exception>>,
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
        let mut by_key: HashMap<_, Vec<_>> = HashMap::new();
        for e in &exceptions {
            by_key.entry((e.ty, e.major, e.minor)).or_default().push(*e);
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
            by_key,
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
        self.verdict(&self.applying(req.ty, req.major, req.minor), req.access)
    }

    /// The verdicts for every access mask (index = mask) of one device:
    /// the exceptions that can match are looked up once, not eight times.
    pub fn decide_each_access(&self, ty: DeviceType, major: u32, minor: u32) -> [Verdict; 8] {
        let groups = self.applying(ty, major, minor);
        std::array::from_fn(|mask| self.verdict(&groups, Access(mask as u8)))
    }

    /// Groups that hold every exception that can match a request for this
    /// device (and maybe others, which the match tests reject).
    fn applying(&self, ty: DeviceType, major: u32, minor: u32) -> Groups<'_> {
        let empty: &[Exception] = &[];
        let groups = if major != WILDCARD && minor != WILDCARD {
            // Both numbers exact: only the four keys that cover them.
            [
                key(&self.by_key, ty, major, minor),
                key(&self.by_key, ty, major, WILDCARD),
                key(&self.by_key, ty, WILDCARD, minor),
                key(&self.by_key, ty, WILDCARD, WILDCARD),
            ]
        } else if major != WILDCARD {
            // A requested `~0` minor is a wildcard to the partial match:
            // every minor of the major (and of `~0` majors) may match.
            [
                group(&self.by_major, ty, major),
                group(&self.by_major, ty, WILDCARD),
                empty,
                empty,
            ]
        } else if minor != WILDCARD {
            [
                group(&self.by_minor, ty, minor),
                group(&self.by_minor, ty, WILDCARD),
                empty,
                empty,
            ]
        } else {
            [
                self.by_type.get(&ty).map_or(empty, Vec::as_slice),
                empty,
                empty,
                empty,
            ]
        };
        Groups {
            ty,
            major,
            minor,
            groups,
        }
    }

    fn verdict(&self, g: &Groups<'_>, access: Access) -> Verdict {
        let allowed = match self.behavior {
            Behavior::Allow => !g
                .groups
                .iter()
                .any(|l| match_partial(l, g.ty, g.major, g.minor, access)),
            Behavior::Deny => g
                .groups
                .iter()
                .any(|l| match_complete(l, g.ty, g.major, g.minor, access)),
        };
        Verdict::from_allowed(allowed)
    }
}

/// One device's candidate exceptions, for [`Policy::verdict`].
struct Groups<'a> {
    ty: DeviceType,
    major: u32,
    minor: u32,
    groups: [&'a [Exception]; 4],
}

fn key(
    map: &HashMap<(DeviceType, u32, u32), Vec<Exception>>,
    ty: DeviceType,
    major: u32,
    minor: u32,
) -> &[Exception] {
    map.get(&(ty, major, minor)).map_or(&[], Vec::as_slice)
}

fn group(map: &HashMap<(DeviceType, u32), Vec<Exception>>, ty: DeviceType, n: u32) -> &[Exception] {
    map.get(&(ty, n)).map_or(&[], Vec::as_slice)
}
