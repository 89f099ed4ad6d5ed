//! Operations on one exception list, as security/device_cgroup.c performs
//! them: the merge on add, the exact-key partial removal, and the two kinds
//! of match. Kept free of the tree so each can be tested on its own.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::OnceLock;

use devcg_engine::{Access, Behavior, DeviceType, Exception, WILDCARD};

/// `dev_exception_add`: an entry with the same (type, major, minor) gets the
/// new bits OR-ed in place, so the list keeps its order and never holds two
/// entries with one key; otherwise the exception is appended.
pub fn add(list: &mut Vec<Exception>, ex: &Exception) {
    let mut merged = false;
    // The kernel walks the whole list without stopping at the first hit.
    for walk in list.iter_mut().filter(|w| w.key() == ex.key()) {
        walk.access = walk.access.union(ex.access);
        merged = true;
    }
    if !merged {
        list.push(*ex);
    }
}

/// `dev_exception_rm`: exact key only, so a wildcard entry is never split by
/// a narrower removal (and a narrower entry is not touched by a wildcard
/// one). The bits are cleared and the entry is dropped once none is left,
/// which also drops an entry that already had none. A missing key is a
/// silent no-op.
pub fn remove(list: &mut Vec<Exception>, ex: &Exception) {
    list.retain_mut(|walk| {
        if walk.key() != ex.key() {
            return true;
        }
        walk.access = walk.access.without(ex.access);
        !walk.access.is_empty()
    });
}

/// One cgroup's exception list, the same list [`add`] and [`remove`] keep,
/// at a cost independent of its length: a key index finds the one entry an
/// add merges into or a removal clears (keys are unique, see [`add`]), and
/// a dropped entry leaves a hole, so nothing after it moves and the list
/// order stays the kernel's. Holes are squeezed out once they outnumber the
/// entries; a reader asking for the list while some are left gets a copy
/// without them, made once until the next change.
#[derive(Clone, Debug, Default)]
pub struct ExceptionList {
    slots: Vec<Exception>,
    /// `live[i]`: `slots[i]` is in the list, not a hole.
    live: Vec<bool>,
    holes: usize,
    index: HashMap<(DeviceType, u32, u32), usize>,
    /// The entries without the holes, while there are holes.
    view: OnceLock<Vec<Exception>>,
}

impl ExceptionList {
    pub fn new() -> ExceptionList {
        ExceptionList::default()
    }

    /// The list as given; its keys must be unique, as in every kernel list.
    pub fn from_vec(slots: Vec<Exception>) -> ExceptionList {
        let index: HashMap<_, _> = slots
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key(), i))
            .collect();
        debug_assert_eq!(index.len(), slots.len(), "duplicate keys");
        ExceptionList {
            live: vec![true; slots.len()],
            slots,
            holes: 0,
            index,
            view: OnceLock::new(),
        }
    }

    /// The entries in list order.
    pub fn as_slice(&self) -> &[Exception] {
        if self.holes == 0 {
            &self.slots
        } else {
            self.view.get_or_init(|| self.iter().copied().collect())
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Exception> {
        self.slots
            .iter()
            .zip(&self.live)
            .filter_map(|(e, &live)| live.then_some(e))
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.holes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`add`].
    pub fn add(&mut self, ex: &Exception) {
        self.view.take();
        match self.index.entry(ex.key()) {
            Entry::Occupied(at) => {
                let e = &mut self.slots[*at.get()];
                e.access = e.access.union(ex.access);
            }
            Entry::Vacant(at) => {
                at.insert(self.slots.len());
                self.slots.push(*ex);
                self.live.push(true);
            }
        }
    }

    /// [`remove`].
    pub fn remove(&mut self, ex: &Exception) {
        let Entry::Occupied(at) = self.index.entry(ex.key()) else {
            return;
        };
        self.view.take();
        let i = *at.get();
        let e = &mut self.slots[i];
        e.access = e.access.without(ex.access);
        if e.access.is_empty() {
            at.remove();
            self.live[i] = false;
            self.holes += 1;
            if self.holes > self.len() {
                self.squeeze();
            }
        }
    }

    /// Drops the holes and renumbers the index.
    fn squeeze(&mut self) {
        let slots = std::mem::take(&mut self.slots);
        let live = std::mem::take(&mut self.live);
        let kept = slots
            .into_iter()
            .zip(live)
            .filter_map(|(e, live)| live.then_some(e))
            .collect();
        *self = ExceptionList::from_vec(kept);
    }
}

impl From<Vec<Exception>> for ExceptionList {
    fn from(list: Vec<Exception>) -> Self {
        ExceptionList::from_vec(list)
    }
}

/// Equal when the entries are, holes aside.
impl PartialEq for ExceptionList {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for ExceptionList {}

/// The kernel compares types as bit masks (`type & DEV_BLOCK` and so on);
/// with only block and char there, that is plain equality.
fn same_type(entry: DeviceType, asked: DeviceType) -> bool {
    entry == asked
}

/// `match_exception`: one single entry must contain the whole request. Only
/// the entry's `~0` is a wildcard: a requested `~0` is matched only by an
/// entry that is `~0` too. An empty request is contained in any entry whose
/// device part matches.
pub fn match_complete(
    list: &[Exception],
    ty: DeviceType,
    major: u32,
    minor: u32,
    access: Access,
) -> bool {
    list.iter().any(|e| {
        same_type(e.ty, ty)
            && (e.major == WILDCARD || e.major == major)
            && (e.minor == WILDCARD || e.minor == minor)
            && e.access.contains(access)
    })
}

/// `match_exception_partial`: some entry overlaps the request. `~0` on
/// either side overlaps everything, and one shared access bit is enough, so
/// an empty request never matches.
pub fn match_partial(
    list: &[Exception],
    ty: DeviceType,
    major: u32,
    minor: u32,
    access: Access,
) -> bool {
    list.iter().any(|e| {
        same_type(e.ty, ty)
            && (e.major == WILDCARD || major == WILDCARD || e.major == major)
            && (e.minor == WILDCARD || minor == WILDCARD || e.minor == minor)
            && e.access.intersects(access)
    })
}

/// `verify_new_ex`: may a cgroup whose behavior is `child` hold `ex`, given
/// its parent's state? A child in ALLOW mode only restricts, so under an
/// ALLOW parent anything goes; a DENY child's entry grants access, so it must
/// not overlap the parent's deny list at all, or, under a DENY parent, lie
/// entirely inside one of the parent's grants.
pub fn verify_new_ex(
    parent: Behavior,
    parent_list: &[Exception],
    ex: &Exception,
    child: Behavior,
) -> bool {
    match (parent, child) {
        (Behavior::Allow, Behavior::Allow) => true,
        (Behavior::Allow, Behavior::Deny) => {
            !match_partial(parent_list, ex.ty, ex.major, ex.minor, ex.access)
        }
        (Behavior::Deny, _) => match_complete(parent_list, ex.ty, ex.major, ex.minor, ex.access),
    }
}

/// The decision for one cgroup (`devcgroup_legacy_check_permission`): an
/// ALLOW cgroup refuses anything an entry overlaps even partially, a DENY
/// cgroup permits only what one entry contains completely.
pub fn permits(
    behavior: Behavior,
    list: &[Exception],
    ty: DeviceType,
    major: u32,
    minor: u32,
    access: Access,
) -> bool {
    match behavior {
        Behavior::Allow => !match_partial(list, ty, major, minor, access),
        Behavior::Deny => match_complete(list, ty, major, minor, access),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const W: u32 = WILDCARD;

    fn ex(ty: char, major: u32, minor: u32, access: &str) -> Exception {
        Exception {
            ty: DeviceType::from_char(ty).unwrap(),
            major,
            minor,
            access: Access::parse_letters(access).unwrap(),
        }
    }

    #[rstest]
    #[case::append(vec![ex('c', 1, 3, "r")], ex('c', 1, 5, "w"), vec![ex('c', 1, 3, "r"), ex('c', 1, 5, "w")])]
    #[case::merge_in_place(
        vec![ex('c', 1, 3, "r"), ex('b', 8, 0, "m")],
        ex('c', 1, 3, "w"),
        vec![ex('c', 1, 3, "rw"), ex('b', 8, 0, "m")]
    )]
    #[case::type_is_part_of_key(vec![ex('c', 1, 3, "r")], ex('b', 1, 3, "r"), vec![ex('c', 1, 3, "r"), ex('b', 1, 3, "r")])]
    #[case::wildcard_is_its_own_key(vec![ex('c', 1, W, "r")], ex('c', 1, 3, "r"), vec![ex('c', 1, W, "r"), ex('c', 1, 3, "r")])]
    #[case::access_zero_appends(vec![], ex('c', 1, 3, "-"), vec![ex('c', 1, 3, "-")])]
    #[case::access_zero_merges_nothing(vec![ex('c', 1, 3, "r")], ex('c', 1, 3, "-"), vec![ex('c', 1, 3, "r")])]
    fn add_merges(
        #[case] mut list: Vec<Exception>,
        #[case] new: Exception,
        #[case] want: Vec<Exception>,
    ) {
        add(&mut list, &new);
        assert_eq!(list, want);
    }

    #[rstest]
    // Each step: `+` adds, `-` removes; the list must match the plain Vec.
    #[case::merge_keeps_place(&["+c 1:3 r", "+c 1:5 w", "+c 1:3 m"])]
    #[case::readd_goes_last(&["+c 1:3 r", "+c 1:5 w", "-c 1:3 r", "+c 1:3 w"])]
    #[case::partial_removal_stays(&["+c 1:3 rw", "+c 1:5 w", "-c 1:3 w", "+c 1:3 m"])]
    #[case::zero_entry(&["+c 1:3 -", "+c 1:5 r", "-c 1:3 -", "+c 1:3 -"])]
    #[case::holes_squeezed(&["+c 1:1 r", "+c 1:2 r", "+c 1:3 r", "-c 1:1 r", "-c 1:2 r", "+c 1:1 w", "-c 1:3 r", "+c 1:9 r"])]
    #[case::missing_key(&["+c 1:1 r", "-c 1:2 r"])]
    fn indexed_list_agrees_with_the_walk(#[case] steps: &[&str]) {
        let mut want = Vec::new();
        let mut list = ExceptionList::new();
        for step in steps {
            let (op, rest) = step.split_at(1);
            let parts: Vec<&str> = rest.split([' ', ':']).collect();
            let e = ex(
                parts[0].chars().next().unwrap(),
                parts[1].parse().unwrap(),
                parts[2].parse().unwrap(),
                parts[3],
            );
            if op == "+" {
                add(&mut want, &e);
                list.add(&e);
            } else {
                remove(&mut want, &e);
                list.remove(&e);
            }
            assert_eq!(list.as_slice(), &want[..], "after {step}");
            assert_eq!(list.len(), want.len());
            assert_eq!(list, ExceptionList::from_vec(want.clone()));
        }
    }

    proptest::proptest! {
        #[test]
        fn indexed_list_agrees_with_the_walk_on_random_steps(
            steps in proptest::collection::vec((proptest::bool::ANY, 0u32..3, 0u32..4, 0u8..8), 0..64)
        ) {
            let mut want = Vec::new();
            let mut list = ExceptionList::new();
            for (is_add, major, minor, bits) in steps {
                let e = Exception { ty: DeviceType::Char, major, minor, access: Access(bits) };
                if is_add {
                    add(&mut want, &e);
                    list.add(&e);
                } else {
                    remove(&mut want, &e);
                    list.remove(&e);
                }
                proptest::prop_assert_eq!(list.as_slice(), &want[..]);
            }
        }
    }

    #[rstest]
    #[case::partial_bits(vec![ex('c', 1, 3, "rwm")], ex('c', 1, 3, "w"), vec![ex('c', 1, 3, "rm")])]
    #[case::last_bits(vec![ex('c', 1, 3, "rw"), ex('c', 1, 5, "r")], ex('c', 1, 3, "rwm"), vec![ex('c', 1, 5, "r")])]
    #[case::missing_key(vec![ex('c', 1, 3, "r")], ex('c', 1, 4, "r"), vec![ex('c', 1, 3, "r")])]
    #[case::wildcard_never_split(vec![ex('c', 1, W, "rw")], ex('c', 1, 3, "w"), vec![ex('c', 1, W, "rw")])]
    #[case::wildcard_removes_only_wildcard(
        vec![ex('c', 1, W, "rw"), ex('c', 1, 3, "rw")],
        ex('c', 1, W, "w"),
        vec![ex('c', 1, W, "r"), ex('c', 1, 3, "rw")]
    )]
    #[case::zero_keeps_bits(vec![ex('c', 1, 3, "r")], ex('c', 1, 3, "-"), vec![ex('c', 1, 3, "r")])]
    #[case::zero_drops_empty_entry(vec![ex('c', 1, 3, "-")], ex('c', 1, 3, "-"), vec![])]
    #[case::any_drops_empty_entry(vec![ex('c', 1, 3, "-")], ex('c', 1, 3, "m"), vec![])]
    fn remove_is_exact_key(
        #[case] mut list: Vec<Exception>,
        #[case] gone: Exception,
        #[case] want: Vec<Exception>,
    ) {
        remove(&mut list, &gone);
        assert_eq!(list, want);
    }

    #[rstest]
    // (entry, request type, major, minor, access, complete, partial)
    #[case(ex('c', 1, 3, "rw"), 'c', 1, 3, "r", true, true)]
    #[case(ex('c', 1, 3, "rw"), 'c', 1, 3, "rw", true, true)]
    #[case(ex('c', 1, 3, "r"), 'c', 1, 3, "rw", false, true)]
    #[case(ex('c', 1, 3, "w"), 'c', 1, 3, "r", false, false)]
    #[case(ex('c', 1, 3, "rwm"), 'b', 1, 3, "r", false, false)]
    #[case(ex('c', 1, 3, "rwm"), 'c', 1, 4, "r", false, false)]
    #[case(ex('c', 1, W, "r"), 'c', 1, 77, "r", true, true)]
    #[case(ex('c', W, W, "m"), 'c', 9, 9, "m", true, true)]
    #[case::requested_wildcard_complete_needs_entry_wildcard(
        ex('c', 1, 3, "r"),
        'c',
        W,
        3,
        "r",
        false,
        true
    )]
    #[case::requested_wildcard_both(ex('c', 1, 3, "r"), 'c', W, W, "r", false, true)]
    #[case::entry_and_request_wildcard(ex('c', W, 3, "r"), 'c', W, 3, "r", true, true)]
    #[case::access_zero(ex('c', 1, 3, "r"), 'c', 1, 3, "-", true, false)]
    #[case::access_zero_entry(ex('c', 1, 3, "-"), 'c', 1, 3, "-", true, false)]
    #[case::access_zero_entry_r(ex('c', 1, 3, "-"), 'c', 1, 3, "r", false, false)]
    #[allow(clippy::too_many_arguments)]
    fn matching(
        #[case] entry: Exception,
        #[case] ty: char,
        #[case] major: u32,
        #[case] minor: u32,
        #[case] access: &str,
        #[case] complete: bool,
        #[case] partial: bool,
    ) {
        let ty = DeviceType::from_char(ty).unwrap();
        let access = Access::parse_letters(access).unwrap();
        assert_eq!(
            match_complete(&[entry], ty, major, minor, access),
            complete,
            "complete"
        );
        assert_eq!(
            match_partial(&[entry], ty, major, minor, access),
            partial,
            "partial"
        );
    }

    #[test]
    fn complete_needs_one_entry_for_all_bits() {
        // r and w granted by two entries do not add up to rw.
        let list = [ex('c', 1, 3, "r"), ex('c', 1, 3, "w")];
        let rw = Access::READ.union(Access::WRITE);
        assert!(!match_complete(&list, DeviceType::Char, 1, 3, rw));
        assert!(!permits(Behavior::Deny, &list, DeviceType::Char, 1, 3, rw));
        assert!(permits(
            Behavior::Deny,
            &list,
            DeviceType::Char,
            1,
            3,
            Access::WRITE
        ));
    }

    #[rstest]
    #[case::allow_allow(Behavior::Allow, vec![ex('c', 1, 3, "r")], ex('c', 1, 3, "r"), Behavior::Allow, true)]
    #[case::allow_deny_overlap(Behavior::Allow, vec![ex('c', 1, 3, "r")], ex('c', 1, W, "rw"), Behavior::Deny, false)]
    #[case::allow_deny_disjoint_bits(Behavior::Allow, vec![ex('c', 1, 3, "r")], ex('c', 1, W, "w"), Behavior::Deny, true)]
    #[case::deny_inside(Behavior::Deny, vec![ex('c', 1, W, "rw")], ex('c', 1, 3, "r"), Behavior::Deny, true)]
    #[case::deny_wider(Behavior::Deny, vec![ex('c', 1, 3, "rw")], ex('c', 1, W, "r"), Behavior::Deny, false)]
    #[case::deny_more_bits(Behavior::Deny, vec![ex('c', 1, 3, "r")], ex('c', 1, 3, "rw"), Behavior::Deny, false)]
    #[case::deny_parent_allow_child(Behavior::Deny, vec![], ex('c', 1, 3, "r"), Behavior::Allow, false)]
    fn verify(
        #[case] parent: Behavior,
        #[case] list: Vec<Exception>,
        #[case] new: Exception,
        #[case] child: Behavior,
        #[case] want: bool,
    ) {
        assert_eq!(verify_new_ex(parent, &list, &new, child), want);
    }
}
