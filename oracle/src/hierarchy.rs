//! A tree of v1 device cgroups and the writes that change it, modelled on
//! `devcgroup_update_access`, `propagate_exception` and
//! `revalidate_active_exceptions` in security/device_cgroup.c (mainline as
//! of 6.x). Every cgroup is online: there is no rmdir.

use std::collections::HashMap;
use std::fmt::Write as _;

use devcg_engine::rules::RuleKind;
use devcg_engine::v1text::{self, V1Text};
use devcg_engine::{Behavior, Exception, Request, Verdict};

use crate::exceptions::{self, ExceptionList};
use crate::{Errno, OracleError};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    path: String,
    parent: Option<usize>,
    /// In creation order, as the kernel keeps them.
    children: Vec<usize>,
    behavior: Behavior,
    exceptions: ExceptionList,
}

/// A v1 devices hierarchy. Paths are relative to an implicit root: `""` is
/// the root, `"a/b"` a grandchild. The root starts ALLOW with no
/// exceptions, as the kernel's does; it has no parent, so the parent checks
/// never refuse a write to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// Index 0 is the root; a parent always comes before its children.
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
}

impl Default for Hierarchy {
    fn default() -> Self {
        Self::new()
    }
}

/// Splits off the last component; refuses what no cgroup can be called
/// (empty components, `.`, `..`), so a path names at most one cgroup.
fn split_path(path: &str) -> Result<(&str, &str), OracleError> {
    let bad = || OracleError::BadPath(path.to_string());
    if path.is_empty() {
        return Err(bad());
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad());
    }
    Ok(match path.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    })
}

impl Hierarchy {
    /// Just the root: ALLOW, no exceptions.
    pub fn new() -> Hierarchy {
        let root = Node {
            path: String::new(),
            parent: None,
            children: Vec::new(),
            behavior: Behavior::Allow,
            exceptions: ExceptionList::new(),
        };
        Hierarchy {
            nodes: vec![root],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn find(&self, path: &str) -> Result<usize, OracleError> {
        self.index
            .get(path)
            .copied()
            .ok_or_else(|| OracleError::NoSuchCgroup(path.to_string()))
    }

    /// Whether `path` names a cgroup.
    pub fn exists(&self, path: &str) -> bool {
        self.index.contains_key(path)
    }

    /// Every cgroup path, parents before children, the root (`""`) first.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.path.as_str())
    }

    /// The direct children of `path`, in creation order.
    pub fn children(&self, path: &str) -> Result<Vec<&str>, OracleError> {
        let idx = self.find(path)?;
        Ok(self.nodes[idx]
            .children
            .iter()
            .map(|&c| self.nodes[c].path.as_str())
            .collect())
    }

    /// The parent of `path`; `None` for the root.
    pub fn parent(&self, path: &str) -> Result<Option<&str>, OracleError> {
        let idx = self.find(path)?;
        Ok(self.nodes[idx].parent.map(|p| self.nodes[p].path.as_str()))
    }

    /// Creates a cgroup. It starts with a copy of its parent's behavior and
    /// list (`devcgroup_online`), and is not touched again unless a write
    /// reaches it.
    pub fn mkdir(&mut self, path: &str) -> Result<(), OracleError> {
        let (parent_path, _) = split_path(path)?;
        if self.exists(path) {
            return Err(OracleError::Exists(path.to_string()));
        }
        let parent = self
            .index
            .get(parent_path)
            .copied()
            .ok_or_else(|| OracleError::NoParent(path.to_string()))?;
        let idx = self.nodes.len();
        let node = Node {
            path: path.to_string(),
            parent: Some(parent),
            children: Vec::new(),
            behavior: self.nodes[parent].behavior,
            exceptions: self.nodes[parent].exceptions.clone(),
        };
        self.nodes.push(node);
        self.nodes[parent].children.push(idx);
        self.index.insert(path.to_string(), idx);
        Ok(())
    }

    /// Writes `text` to `path`'s devices.allow or devices.deny and returns
    /// what the kernel would: nothing, EINVAL or EPERM.
    ///
    /// # Panics
    /// If `path` names no cgroup: that write has no file to go to, and no
    /// errno of the two fits. [`Hierarchy::try_write`] reports it instead.
    pub fn write(&mut self, path: &str, kind: RuleKind, text: &str) -> Result<(), Errno> {
        match self.try_write(path, kind, text) {
            Ok(result) => result,
            Err(e) => panic!("Hierarchy::write: {e}"),
        }
    }

    /// [`Hierarchy::write`], with an unknown path as an error of its own.
    pub fn try_write(
        &mut self,
        path: &str,
        kind: RuleKind,
        text: &str,
    ) -> Result<Result<(), Errno>, OracleError> {
        let idx = self.find(path)?;
        // A zero-length write(2) never reaches the controller: it returns 0
        // and changes nothing (seen on 6.18). Whitespace alone is EINVAL.
        if text.is_empty() {
            return Ok(Ok(()));
        }
        Ok(match v1text::parse(text) {
            Ok(parsed) => self.update(idx, kind, parsed),
            Err(_) => Err(Errno::EINVAL),
        })
    }

    /// The body of `devcgroup_update_access` after parsing.
    fn update(&mut self, idx: usize, kind: RuleKind, parsed: V1Text) -> Result<(), Errno> {
        let parent = self.nodes[idx].parent;
        let ex = match parsed {
            V1Text::All => {
                // Changing the behavior would leave children inconsistent,
                // so it is refused outright while there are any.
                if !self.nodes[idx].children.is_empty() {
                    return Err(Errno::EINVAL);
                }
                let (behavior, list) = match kind {
                    RuleKind::Allow => match parent {
                        None => (Behavior::Allow, ExceptionList::new()),
                        Some(p) if self.nodes[p].behavior == Behavior::Allow => {
                            (Behavior::Allow, self.nodes[p].exceptions.clone())
                        }
                        Some(_) => return Err(Errno::EPERM),
                    },
                    RuleKind::Deny => (Behavior::Deny, ExceptionList::new()),
                };
                let node = &mut self.nodes[idx];
                node.behavior = behavior;
                node.exceptions = list;
                // Neither form propagates: there are no children to reach.
                return Ok(());
            }
            V1Text::Exception(ex) => ex,
        };
        match kind {
            RuleKind::Allow => {
                // ALLOW mode: devices.allow lifts a restriction, which must
                // not lift one the parent imposes. DENY mode: it grants,
                // which the parent must grant too. No propagation: children
                // keep what they had.
                if self.nodes[idx].behavior == Behavior::Allow {
                    if !self.parent_allows_removal(idx, &ex) {
                        return Err(Errno::EPERM);
                    }
                    self.nodes[idx].exceptions.remove(&ex);
                } else {
                    if !self.parent_has_perm(idx, &ex) {
                        return Err(Errno::EPERM);
                    }
                    self.nodes[idx].exceptions.add(&ex);
                }
            }
            RuleKind::Deny => {
                // Taking access away is always permitted.
                if self.nodes[idx].behavior == Behavior::Deny {
                    self.nodes[idx].exceptions.remove(&ex);
                } else {
                    self.nodes[idx].exceptions.add(&ex);
                }
                self.propagate(idx, &ex);
            }
        }
        Ok(())
    }

    /// `parent_has_perm`: `verify_new_ex` against the direct parent, with
    /// the cgroup's own behavior; the root has no parent to ask.
    fn parent_has_perm(&self, idx: usize, ex: &Exception) -> bool {
        match self.nodes[idx].parent {
            None => true,
            Some(p) => {
                let parent = &self.nodes[p];
                exceptions::verify_new_ex(
                    parent.behavior,
                    parent.exceptions.as_slice(),
                    ex,
                    self.nodes[idx].behavior,
                )
            }
        }
    }

    /// `parent_allows_removal`: at the root, or for a DENY cgroup, yes;
    /// otherwise the removed entry must not overlap the parent's list at all.
    /// The parent's behavior is not consulted (an ALLOW cgroup's parent is
    /// always ALLOW anyway).
    fn parent_allows_removal(&self, idx: usize, ex: &Exception) -> bool {
        let node = &self.nodes[idx];
        match node.parent {
            None => true,
            Some(_) if node.behavior == Behavior::Deny => true,
            Some(p) => !exceptions::match_partial(
                self.nodes[p].exceptions.as_slice(),
                ex.ty,
                ex.major,
                ex.minor,
                ex.access,
            ),
        }
    }

    /// `propagate_exception`: every descendant, parents before children, gets
    /// the new restriction: added when both the writer and it are ALLOW,
    /// otherwise the same key's bits are removed. Then the descendant drops
    /// each whole entry its (already updated) parent no longer permits.
    fn propagate(&mut self, writer: usize, ex: &Exception) {
        let writer_behavior = self.nodes[writer].behavior;
        let mut stack: Vec<usize> = self.nodes[writer].children.iter().rev().copied().collect();
        while let Some(idx) = stack.pop() {
            if writer_behavior == Behavior::Allow && self.nodes[idx].behavior == Behavior::Allow {
                self.nodes[idx].exceptions.add(ex);
            } else {
                self.nodes[idx].exceptions.remove(ex);
            }
            self.revalidate(idx);
            stack.extend(self.nodes[idx].children.iter().rev().copied());
        }
    }

    /// `revalidate_active_exceptions`. Each check consults only the parent's
    /// list, so dropping entries as we go cannot change a later verdict, and
    /// keys are unique, so dropping an entry is all `dev_exception_rm` of
    /// the entry itself does.
    fn revalidate(&mut self, idx: usize) {
        let list = std::mem::take(&mut self.nodes[idx].exceptions);
        let kept: Vec<Exception> = list
            .iter()
            .filter(|e| self.parent_has_perm(idx, e))
            .copied()
            .collect();
        self.nodes[idx].exceptions = kept.into();
    }

    /// Exactly what reading devices.list prints: `a *:* rwm` in ALLOW mode
    /// (the exceptions are hidden), otherwise one line per entry in list
    /// order, nothing for an empty list.
    pub fn list(&self, path: &str) -> Result<String, OracleError> {
        let node = &self.nodes[self.find(path)?];
        Ok(match node.behavior {
            Behavior::Allow => "a *:* rwm\n".to_string(),
            Behavior::Deny => node.exceptions.iter().fold(String::new(), |mut out, e| {
                let _ = writeln!(out, "{e}");
                out
            }),
        })
    }

    /// What the kernel answers a task in `path` asking for `req`. Only the
    /// cgroup's own state counts: the hierarchy was folded into it by the
    /// writes.
    pub fn check(&self, path: &str, req: &Request) -> Result<Verdict, OracleError> {
        let node = &self.nodes[self.find(path)?];
        Ok(Verdict::from_allowed(exceptions::permits(
            node.behavior,
            node.exceptions.as_slice(),
            req.ty,
            req.major,
            req.minor,
            req.access,
        )))
    }

    pub fn behavior(&self, path: &str) -> Result<Behavior, OracleError> {
        Ok(self.nodes[self.find(path)?].behavior)
    }

    /// The exception list in kernel order, including what devices.list hides
    /// in ALLOW mode.
    pub fn exceptions(&self, path: &str) -> Result<&[Exception], OracleError> {
        Ok(self.nodes[self.find(path)?].exceptions.as_slice())
    }
}
