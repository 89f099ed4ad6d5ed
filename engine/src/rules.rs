//! Rule files and what they mean.
//!
//! A rule list is written, in order, into a fresh v1 device cgroup directly
//! below an allow-all root, as runc does on cgroup v1. The resulting state,
//! a [`RuleSet`], is what a device program must enforce. Two input formats:
//! v1 lines (`allow c 1:3 rwm`, `deny a`, `#` comments) and OCI JSON (an array
//! of `linux.resources.devices` entries, or a whole `config.json`).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;
use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use crate::device::{Behavior, DeviceType, Exception};
use crate::v1text::{self, ParseError, V1Text};

/// Which file a rule is written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleKind {
    Allow,
    Deny,
}

impl RuleKind {
    pub fn file_name(self) -> &'static str {
        match self {
            RuleKind::Allow => "devices.allow",
            RuleKind::Deny => "devices.deny",
        }
    }
    pub fn keyword(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
        }
    }
}

/// Where a rule came from, for error messages and reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One write to devices.allow or devices.deny.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    pub kind: RuleKind,
    /// The text as written to the file.
    pub text: String,
    /// How the kernel parses `text`.
    pub parsed: V1Text,
    pub origin: Origin,
}

impl Rule {
    /// A rule from its text; refused exactly where the kernel says EINVAL.
    pub fn new(kind: RuleKind, text: impl Into<String>) -> Result<Rule, ParseError> {
        let text = text.into();
        let parsed = v1text::parse(&text)?;
        Ok(Rule {
            kind,
            text,
            parsed,
            origin: Origin::default(),
        })
    }

    /// A rule from an already valid parse; its text is the canonical form.
    pub fn from_parsed(kind: RuleKind, parsed: V1Text) -> Rule {
        let text = match parsed {
            V1Text::All => "a".to_string(),
            V1Text::Exception(ex) => canonical_text(&ex),
        };
        Rule {
            kind,
            text,
            parsed,
            origin: Origin::default(),
        }
    }
}

/// `c 1:3 rwm` with `*` for wildcards. An empty access set has no plain
/// text (the kernel strips trailing blanks and then finds no access field),
/// so it is written as the kernel reads it: a newline ends the field early.
fn canonical_text(ex: &Exception) -> String {
    if ex.access.is_empty() {
        format!("{}\n-", ex)
    } else {
        ex.to_string()
    }
}

/// The v1 line form, `allow c 1:3 rwm`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text.trim();
        if text.chars().any(char::is_control) {
            write!(f, "{} {:?}", self.kind.keyword(), text)
        } else {
            write!(f, "{} {text}", self.kind.keyword())
        }
    }
}

#[derive(Debug, Error)]
pub enum RuleError {
    #[error("{origin}: {reason}")]
    Invalid { origin: Origin, reason: String },
    /// The I/O error is part of the message, not a source: a report that
    /// prints the chain would say it twice.
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
}

impl RuleError {
    fn invalid(file: &str, line: usize, reason: impl Into<String>) -> Self {
        RuleError::Invalid {
            origin: Origin {
                file: file.to_string(),
                line,
            },
            reason: reason.into(),
        }
    }
}

/// Rule file reading and format detection.
pub struct RuleFile;

impl RuleFile {
    pub fn read(path: &Path) -> Result<Vec<Rule>, RuleError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| RuleError::Io {
            file: name.clone(),
            error,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            RuleError::invalid(
                &name,
                line_of_offset_bytes(e.as_bytes(), e.utf8_error().valid_up_to()),
                "not UTF-8",
            )
        })?;
        Self::parse(&name, &text)
    }

    /// Parses `content`: OCI JSON when the name ends in `.json` or the text
    /// starts with `[` or `{`, v1 lines otherwise.
    pub fn parse(name: &str, content: &str) -> Result<Vec<Rule>, RuleError> {
        let first = content.trim_start().chars().next();
        if name.ends_with(".json") || matches!(first, Some('[') | Some('{')) {
            parse_oci(name, content)
        } else {
            parse_v1_lines(name, content)
        }
    }
}

fn line_of_offset_bytes(text: &[u8], offset: usize) -> usize {
    text[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn parse_v1_lines(name: &str, content: &str) -> Result<Vec<Rule>, RuleError> {
    let mut rules = Vec::new();
    for (idx, line) in content.lines().enumerate() {
        let lineno = idx + 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (word, rest) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        let kind = match word {
            "allow" => RuleKind::Allow,
            "deny" => RuleKind::Deny,
            other => {
                return Err(RuleError::invalid(
                    name,
                    lineno,
                    format!("expected `allow TEXT` or `deny TEXT`, found {other:?}"),
                ))
            }
        };
        let text = rest.trim_start();
        let mut rule = Rule::new(kind, text).map_err(|e| {
            RuleError::invalid(
                name,
                lineno,
                format!(
                    "{} {text:?}: {e} (the kernel answers EINVAL)",
                    kind.file_name()
                ),
            )
        })?;
        rule.origin = Origin {
            file: name.to_string(),
            line: lineno,
        };
        rules.push(rule);
    }
    Ok(rules)
}

#[derive(Deserialize)]
struct OciConfig<'a> {
    #[serde(borrow)]
    linux: Option<OciLinux<'a>>,
}
#[derive(Deserialize)]
struct OciLinux<'a> {
    #[serde(borrow)]
    resources: Option<OciResources<'a>>,
}
#[derive(Deserialize)]
struct OciResources<'a> {
    #[serde(borrow)]
    devices: Option<Vec<&'a RawValue>>,
}

fn parse_oci(name: &str, content: &str) -> Result<Vec<Rule>, RuleError> {
    let json_err =
        |e: serde_json::Error| RuleError::invalid(name, e.line(), format!("invalid JSON: {e}"));
    let entries: Vec<&RawValue> = if content.trim_start().starts_with('[') {
        serde_json::from_str(content).map_err(json_err)?
    } else {
        let config: OciConfig = serde_json::from_str(content).map_err(json_err)?;
        config
            .linux
            .and_then(|l| l.resources)
            .and_then(|r| r.devices)
            .ok_or_else(|| {
                RuleError::invalid(name, 1, "OCI config has no linux.resources.devices")
            })?
    };
    let base = content.as_ptr() as usize;
    entries
        .into_iter()
        .enumerate()
        .map(|(idx, raw)| {
            let offset = raw.get().as_ptr() as usize - base;
            let line = line_of_offset_bytes(content.as_bytes(), offset);
            oci_entry(raw.get(), idx)
                .map(|mut rule| {
                    rule.origin = Origin {
                        file: name.to_string(),
                        line,
                    };
                    rule
                })
                .map_err(|reason| {
                    RuleError::invalid(name, line, format!("devices[{idx}]: {reason}"))
                })
        })
        .collect()
}

/// One OCI entry becomes the text runc would write to devices.allow/deny:
/// type (default `a`), major and minor (absent or -1 is `*`), access.
fn oci_entry(raw: &str, _idx: usize) -> Result<Rule, String> {
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    let obj = value.as_object().ok_or("entry is not an object")?;
    if !obj.get("allow").is_some_and(|a| a.is_boolean()) {
        return Err("`allow` (true or false) is required".into());
    }
    let entry: LinuxDeviceCgroup =
        serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let num = |n: Option<i64>| match n {
        None | Some(-1) => "*".to_string(),
        Some(n) => n.to_string(),
    };
    let ty = entry
        .typ()
        .map_or_else(|| "a".to_string(), |t| t.as_str().to_string());
    let access = entry.access().clone().unwrap_or_default();
    let text = format!(
        "{ty} {}:{} {access}",
        num(entry.major()),
        num(entry.minor())
    );
    let kind = if entry.allow() {
        RuleKind::Allow
    } else {
        RuleKind::Deny
    };
    Rule::new(kind, text.clone()).map_err(|e| {
        format!(
            "{} {text:?}: {e} (the kernel answers EINVAL)",
            kind.file_name()
        )
    })
}

/// The v1 state a rule list leaves in a fresh cgroup below an allow-all
/// root. There no write can fail for permission reasons: the root allows
/// everything and has no exceptions, and the new cgroup has no children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub behavior: Behavior,
    pub exceptions: Vec<Exception>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            behavior: Behavior::Allow,
            exceptions: Vec::new(),
        }
    }
}

impl RuleSet {
    /// Folds the rules in order. Linear: a key index finds the entry an
    /// add merges into or a removal clears, and a removed entry leaves a
    /// hole that the final list skips, so the order is the kernel's.
    pub fn from_rules(rules: &[Rule]) -> RuleSet {
        let mut fold = Fold {
            behavior: Behavior::Allow,
            slots: Vec::new(),
            index: HashMap::new(),
        };
        for rule in rules {
            fold.apply(rule.kind, &rule.parsed);
        }
        fold.finish()
    }
}

/// [`RuleSet::from_rules`] at work: the list with holes where entries were
/// dropped, and where each live key sits.
struct Fold {
    behavior: Behavior,
    slots: Vec<Option<Exception>>,
    index: HashMap<(DeviceType, u32, u32), usize>,
}

impl Fold {
    fn apply(&mut self, kind: RuleKind, text: &V1Text) {
        match (*text, kind) {
            // `a`: the behavior changes and the list becomes the parent's
            // (the root's, which is empty) or is cleared.
            (V1Text::All, RuleKind::Allow) => self.reset(Behavior::Allow),
            (V1Text::All, RuleKind::Deny) => self.reset(Behavior::Deny),
            // Writing to the file that matches the behavior removes.
            (V1Text::Exception(ex), RuleKind::Allow) if self.behavior == Behavior::Allow => {
                self.remove(&ex)
            }
            (V1Text::Exception(ex), RuleKind::Deny) if self.behavior == Behavior::Deny => {
                self.remove(&ex)
            }
            (V1Text::Exception(ex), _) => self.add(ex),
        }
    }

    fn reset(&mut self, behavior: Behavior) {
        self.behavior = behavior;
        self.slots.clear();
        self.index.clear();
    }

    /// Same key: access OR-ed in place; otherwise appended.
    fn add(&mut self, ex: Exception) {
        match self.index.entry(ex.key()) {
            Entry::Occupied(at) => {
                let e = self.slots[*at.get()]
                    .as_mut()
                    .expect("indexed slot is live");
                e.access = e.access.union(ex.access);
            }
            Entry::Vacant(at) => {
                at.insert(self.slots.len());
                self.slots.push(Some(ex));
            }
        }
    }

    /// Exact key only: clear the bits, drop an entry left with none. A
    /// wildcard entry is never split by a narrower removal.
    fn remove(&mut self, ex: &Exception) {
        if let Entry::Occupied(at) = self.index.entry(ex.key()) {
            let slot = &mut self.slots[*at.get()];
            let e = slot.as_mut().expect("indexed slot is live");
            e.access = e.access.without(ex.access);
            if e.access.is_empty() {
                *slot = None;
                at.remove();
            }
        }
    }

    fn finish(self) -> RuleSet {
        RuleSet {
            behavior: self.behavior,
            exceptions: self.slots.into_iter().flatten().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{Access, DeviceType};

    fn v1(text: &str) -> Vec<Rule> {
        RuleFile::parse("t.rules", text).unwrap()
    }

    #[rstest::rstest]
    #[case::merge_keeps_place("deny a\nallow c 1:3 r\nallow c 1:5 w\nallow c 1:3 m", &["c 1:3 rm", "c 1:5 w"])]
    #[case::readd_goes_last("deny a\nallow c 1:3 r\nallow c 1:5 w\ndeny c 1:3 r\nallow c 1:3 w", &["c 1:5 w", "c 1:3 w"])]
    #[case::partial_removal_stays("deny a\nallow c 1:3 rw\nallow c 1:5 w\ndeny c 1:3 w", &["c 1:3 r", "c 1:5 w"])]
    #[case::wildcard_never_split("deny a\nallow c 1:* rw\ndeny c 1:3 rw", &["c 1:* rw"])]
    #[case::all_clears("deny a\nallow c 1:3 r\ndeny a\nallow c 1:5 w\nallow c 1:3 w", &["c 1:5 w", "c 1:3 w"])]
    #[case::allow_mode_list("deny c 1:3 r\ndeny b 8:0 w\nallow c 1:3 r\ndeny c 1:3 m", &["b 8:0 w", "c 1:3 m"])]
    fn from_rules_keeps_kernel_order(#[case] text: &str, #[case] want: &[&str]) {
        let set = RuleSet::from_rules(&v1(text));
        let got: Vec<String> = set.exceptions.iter().map(|e| e.to_string()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn canonical_text_reparses_to_the_same_rule() {
        for access in Access::every() {
            let ex = Exception {
                ty: DeviceType::Char,
                major: 1,
                minor: crate::WILDCARD,
                access,
            };
            let rule = Rule::from_parsed(RuleKind::Allow, V1Text::Exception(ex));
            assert_eq!(
                v1text::parse(&rule.text),
                Ok(V1Text::Exception(ex)),
                "{rule}"
            );
        }
    }

    #[test]
    fn empty_access_prints_escaped() {
        let ex = Exception {
            ty: DeviceType::Char,
            major: 1,
            minor: 3,
            access: Access::NONE,
        };
        assert_eq!(
            Rule::from_parsed(RuleKind::Deny, V1Text::Exception(ex)).to_string(),
            r#"deny "c 1:3 \n-""#
        );
    }
}
