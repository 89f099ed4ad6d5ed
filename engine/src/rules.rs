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
    /// `column` when the reason is about one spot in the line (JSON).
    #[error("{origin}{}: {reason}", column.map_or(String::new(), |c| format!(":{c}")))]
    Invalid {
        origin: Origin,
        column: Option<usize>,
        reason: String,
    },
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
            column: None,
            reason: reason.into(),
        }
    }

    fn invalid_at(file: &str, (line, column): (usize, usize), reason: impl Into<String>) -> Self {
        RuleError::Invalid {
            origin: Origin {
                file: file.to_string(),
                line,
            },
            column: Some(column),
            reason: reason.into(),
        }
    }
}

/// How many characters of offending text an error quotes.
pub const QUOTE_CHARS: usize = 80;

/// `text` quoted as `{:?}` does, cut after [`QUOTE_CHARS`] characters with
/// `…` and the full length after the closing quote, so one huge line does
/// not become a huge message.
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
    }
}

/// A message from elsewhere (serde_json's quote whole values) cut in the
/// middle when long: the head says what is wrong, the tail what was expected.
fn clip_message(msg: &str) -> String {
    const HEAD: usize = 120;
    const TAIL: usize = 60;
    let chars = msg.chars().count();
    if chars <= HEAD + TAIL + 1 {
        return msg.to_string();
    }
    let head: String = msg.chars().take(HEAD).collect();
    let tail: String = msg.chars().skip(chars - TAIL).collect();
    format!("{head}…{tail}")
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
            let at = e.utf8_error().valid_up_to();
            RuleError::invalid(&name, Lines::new(e.as_bytes()).line_of(at), "not UTF-8")
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

/// Line and column of byte offsets, found by walking forward from the last
/// offset asked, so asking in increasing order costs one pass in all.
struct Lines<'a> {
    text: &'a [u8],
    /// The last offset asked, its line and where that line starts.
    at: usize,
    line: usize,
    line_start: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a [u8]) -> Self {
        Lines {
            text,
            at: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// 1-based line and column (in characters) of `offset`. An offset
    /// before the last one asked starts again from the top. The column
    /// counts from the line's start: for errors only, never per entry (a
    /// whole file on one line would make that quadratic).
    fn position(&mut self, offset: usize) -> (usize, usize) {
        let line = self.line_of(offset);
        let column = String::from_utf8_lossy(&self.text[self.line_start..self.at])
            .chars()
            .count()
            + 1;
        (line, column)
    }

    /// 1-based line of `offset`, scanning only what lies past the last
    /// offset asked.
    fn line_of(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        if offset < self.at {
            *self = Lines::new(self.text);
        }
        for (i, &b) in self.text[self.at..offset].iter().enumerate() {
            if b == b'\n' {
                self.line += 1;
                self.line_start = self.at + i + 1;
            }
        }
        self.at = offset;
        self.line
    }
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
                    format!(
                        "expected `allow TEXT` or `deny TEXT`, found {}",
                        quote(other)
                    ),
                ))
            }
        };
        let text = rest.trim_start();
        let mut rule = Rule::new(kind, text).map_err(|e| {
            RuleError::invalid(
                name,
                lineno,
                format!(
                    "{} {}: {e} (the kernel answers EINVAL)",
                    kind.file_name(),
                    quote(text)
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

/// The parts of a config.json on the way to the devices; anything else in
/// it is none of our business.
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

/// The fields of one device entry, in file order, each value unparsed so
/// that an error can say where it is and which field it belongs to.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(field);
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The fields a `linux.resources.devices` entry may have.
const DEVICE_FIELDS: [&str; 5] = ["allow", "type", "major", "minor", "access"];

/// What a JSON value is, for "found …": its kind and its text, quoted short.
fn describe(raw: &str) -> String {
    let kind = match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => return "null".to_string(),
        _ => "a number",
    };
    let shown = match raw.char_indices().nth(QUOTE_CHARS) {
        None => raw.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &raw[..cut], raw.len()),
    };
    format!("{kind} {shown}")
}

/// The known field `word` most likely stands for: one or two edits away.
fn suggest(word: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, &cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    if word.chars().count() > 16 {
        return None;
    }
    DEVICE_FIELDS
        .iter()
        .map(|f| (distance(&word.to_ascii_lowercase(), f), *f))
        .filter(|&(d, _)| d <= 2)
        .min()
        .map(|(_, f)| f)
}

/// A JSON error from parsing `raw`, which sits at `offset` in the file, at
/// its place in the file; serde_json's own " at line L column C" goes.
fn json_error(
    name: &str,
    lines: &mut Lines,
    offset: usize,
    e: &serde_json::Error,
    what: &str,
) -> RuleError {
    let msg = e.to_string();
    let msg = msg
        .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
        .unwrap_or(&msg);
    let (line, column) = lines.position(offset);
    let at = if e.line() <= 1 {
        (
            line + e.line().saturating_sub(1),
            column + e.column().saturating_sub(1),
        )
    } else {
        // serde_json says column 0 at the very start of a line.
        (line + e.line() - 1, e.column().max(1))
    };
    RuleError::invalid_at(name, at, format!("{what}{}", clip_message(msg)))
}

fn parse_oci(name: &str, content: &str) -> Result<Vec<Rule>, RuleError> {
    let mut lines = Lines::new(content.as_bytes());
    let json_err =
        |lines: &mut Lines, e: serde_json::Error| json_error(name, lines, 0, &e, "invalid JSON: ");
    let entries: Vec<&RawValue> = if content.trim_start().starts_with('[') {
        serde_json::from_str(content).map_err(|e| json_err(&mut lines, e))?
    } else {
        let config: OciConfig =
            serde_json::from_str(content).map_err(|e| json_err(&mut lines, e))?;
        config
            .linux
            .and_then(|l| l.resources)
            .and_then(|r| r.devices)
            .ok_or_else(|| {
                RuleError::invalid(name, 1, "OCI config has no linux.resources.devices")
            })?
    };
    let base = content.as_ptr() as usize;
    let offset_of = |raw: &RawValue| raw.get().as_ptr() as usize - base;
    let mut rules = Vec::with_capacity(entries.len());
    for (idx, raw) in entries.into_iter().enumerate() {
        let offset = offset_of(raw);
        let line = lines.line_of(offset);
        let fields: Fields = serde_json::from_str(raw.get()).map_err(|e| {
            if raw.get().starts_with('{') {
                json_error(name, &mut lines, offset, &e, &format!("devices[{idx}]: "))
            } else {
                RuleError::invalid_at(
                    name,
                    lines.position(offset),
                    format!(
                        "devices[{idx}]: expected an object, found {}",
                        describe(raw.get())
                    ),
                )
            }
        })?;
        let mut rule = oci_entry(&fields).map_err(|(field, reason)| match field {
            Some(field) => RuleError::invalid_at(
                name,
                lines.position(offset_of(field)),
                format!("devices[{idx}]{reason}"),
            ),
            None => RuleError::invalid_at(
                name,
                lines.position(offset),
                format!("devices[{idx}]: {reason}"),
            ),
        })?;
        rule.origin = Origin {
            file: name.to_string(),
            line,
        };
        rules.push(rule);
    }
    Ok(rules)
}

/// One OCI entry becomes the text runc would write to devices.allow/deny:
/// type (default `a`), major and minor (absent, null or -1 is `*`), access.
/// An error names the value it is about, if any, and says why.
fn oci_entry<'a>(fields: &Fields<'a>) -> Result<Rule, (Option<&'a RawValue>, String)> {
    let mut allow = None;
    let mut ty = "a";
    let mut major = None;
    let mut minor = None;
    let mut access = String::new();
    let mut seen = Vec::new();
    for (key, raw) in &fields.0 {
        let raw = *raw;
        let text = raw.get();
        let bad = |expected: &str| {
            Err((
                Some(raw),
                format!(".{key}: expected {expected}, found {}", describe(text)),
            ))
        };
        if seen.contains(&key.as_str()) {
            return Err((Some(raw), format!(": field {} appears twice", quote(key))));
        }
        match key.as_str() {
            "allow" => match text {
                "true" => allow = Some(RuleKind::Allow),
                "false" => allow = Some(RuleKind::Deny),
                _ => return bad("true or false"),
            },
            "type" => match serde_json::from_str::<Option<String>>(text) {
                Ok(None) => ty = "a",
                Ok(Some(t)) => match ["a", "b", "c", "u", "p"].iter().find(|&&k| k == t) {
                    Some(k) => ty = k,
                    None => return bad("\"a\", \"b\" or \"c\""),
                },
                Err(_) => return bad("\"a\", \"b\" or \"c\""),
            },
            "major" | "minor" => {
                let n = match serde_json::from_str::<Option<i64>>(text) {
                    Ok(n) => n,
                    Err(_) => return bad("an integer (-1 or null for any)"),
                };
                if key == "major" {
                    major = n;
                } else {
                    minor = n;
                }
            }
            "access" => match serde_json::from_str::<Option<String>>(text) {
                Ok(a) => access = a.unwrap_or_default(),
                Err(_) => return bad("a string of r, w and m"),
            },
            other => {
                let hint =
                    suggest(other).map_or(String::new(), |f| format!("; did you mean {f:?}?"));
                return Err((
                    Some(raw),
                    format!(
                        ": unknown field {} (a device entry has allow, type, major, minor and access){hint}",
                        quote(other)
                    ),
                ));
            }
        }
        seen.push(key.as_str());
    }
    let kind = allow.ok_or((None, "`allow` (true or false) is required".to_string()))?;
    let num = |n: Option<i64>| match n {
        None | Some(-1) => "*".to_string(),
        Some(n) => n.to_string(),
    };
    let text = format!("{ty} {}:{} {access}", num(major), num(minor));
    Rule::new(kind, text.clone()).map_err(|e| {
        (
            None,
            format!(
                "{} {}: {e} (the kernel answers EINVAL)",
                kind.file_name(),
                quote(&text)
            ),
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

    #[rstest::rstest]
    #[case::allow_out_of_range(
        "[\n {\"allow\": false},\n {\"allow\": 1e400, \"type\": \"c\"}\n]",
        "r.json:3:12: devices[1].allow: expected true or false, found a number 1e400"
    )]
    #[case::allow_null(
        "[{\"allow\": null}]",
        "r.json:1:12: devices[0].allow: expected true or false, found null"
    )]
    #[case::allow_missing(
        "[{\"type\": \"c\"}]",
        "r.json:1:2: devices[0]: `allow` (true or false) is required"
    )]
    #[case::type_object(
        "[\n  {\"allow\": true,\n   \"type\": {}, \"access\": \"r\"}]",
        "r.json:3:12: devices[0].type: expected \"a\", \"b\" or \"c\", found an object {}"
    )]
    #[case::type_unknown(
        "[{\"allow\": true, \"type\": \"char\"}]",
        "r.json:1:26: devices[0].type: expected \"a\", \"b\" or \"c\", found a string \"char\""
    )]
    #[case::major_string(
        "[{\"allow\": true, \"type\": \"c\", \"major\": \"1\"}]",
        "r.json:1:40: devices[0].major: expected an integer (-1 or null for any), found a string \"1\""
    )]
    #[case::minor_float(
        "[{\"allow\": true, \"type\": \"c\", \"minor\": 1.5}]",
        "r.json:1:40: devices[0].minor: expected an integer (-1 or null for any), found a number 1.5"
    )]
    #[case::access_array(
        "[{\"allow\": true, \"access\": [\"r\"]}]",
        "r.json:1:28: devices[0].access: expected a string of r, w and m, found an array [\"r\"]"
    )]
    #[case::misspelled_access(
        "[{\"allow\": true, \"type\": \"c\", \"acess\": \"rwm\"}]",
        "r.json:1:40: devices[0]: unknown field \"acess\" (a device entry has allow, type, major, minor and access); did you mean \"access\"?"
    )]
    #[case::misspelled_major(
        "[{\"allow\": true, \"majr\": 1}]",
        "r.json:1:26: devices[0]: unknown field \"majr\" (a device entry has allow, type, major, minor and access); did you mean \"major\"?"
    )]
    #[case::unknown_field(
        "[{\"allow\": true, \"path\": \"/dev/null\"}]",
        "r.json:1:26: devices[0]: unknown field \"path\" (a device entry has allow, type, major, minor and access)"
    )]
    #[case::twice(
        "[{\"allow\": true, \"allow\": false}]",
        "r.json:1:27: devices[0]: field \"allow\" appears twice"
    )]
    #[case::not_an_object(
        "[{\"allow\": true},\n  5]",
        "r.json:2:3: devices[1]: expected an object, found a number 5"
    )]
    #[case::syntax(
        "[\n {\"allow\": true,\n",
        "r.json:3:1: invalid JSON: EOF while parsing an object"
    )]
    #[case::kernel_refuses(
        "[\n  {\"allow\": true, \"type\": \"c\", \"major\": -5, \"access\": \"r\"}]",
        "r.json:2:3: devices[0]: devices.allow \"c -5:* r\": major must be `*` or decimal digits (the kernel answers EINVAL)"
    )]
    #[case::config_entry(
        "{\"ociVersion\": \"1.0\",\n \"linux\": {\"resources\": {\"devices\": [\n  {\"allow\": true, \"minr\": 3}]}}}",
        "r.json:3:27: devices[0]: unknown field \"minr\" (a device entry has allow, type, major, minor and access); did you mean \"minor\"?"
    )]
    fn json_errors_say_where_and_which_field(#[case] text: &str, #[case] want: &str) {
        let err = RuleFile::parse("r.json", text).unwrap_err();
        assert_eq!(err.to_string(), want);
    }

    #[test]
    fn a_config_may_carry_other_keys_outside_the_entries() {
        let text = r#"{"ociVersion": "1.0.2", "process": {"args": ["sh"]},
            "linux": {"namespaces": [{"type": "pid"}], "resources": {
                "memory": {"limit": 1}, "devices": [
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]}}}"#;
        let rules = RuleFile::parse("config.json", text).unwrap();
        let lines: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        assert_eq!(lines, ["deny a *:* rwm", "allow c 1:3 rw"]);
        assert_eq!(rules[1].origin.line, 5);
    }

    #[rstest::rstest]
    #[case::short("c 1:3 r", "\"c 1:3 r\"")]
    #[case::exactly_80(&"x".repeat(80), &format!("{:?}", "x".repeat(80)))]
    #[case::cut(&"x".repeat(81), &format!("{:?}… (81 bytes)", "x".repeat(80)))]
    #[case::cut_counts_characters(&"é".repeat(100), &format!("{:?}… (200 bytes)", "é".repeat(80)))]
    fn quotes_are_cut(#[case] text: &str, #[case] want: &str) {
        assert_eq!(quote(text), want);
    }

    #[test]
    fn a_huge_line_gives_a_short_message() {
        let huge = "x".repeat(10 << 20);
        for text in [
            format!("allow c 1:3 r\n{huge}\n"),
            format!("allow c 1:3 r{huge}q\n"),
            format!("allow c 1:{huge} r\n"),
        ] {
            let err = RuleFile::parse("r.rules", &text).unwrap_err().to_string();
            assert!(err.len() < 300, "{} bytes: {}", err.len(), &err[..300]);
            assert!(err.contains("(10485"), "{err}");
        }
        let json = format!("[{{\"allow\": true, \"access\": \"{huge}\"}}, {{\"{huge}\": 1}}]");
        let err = RuleFile::parse("r.json", &json).unwrap_err().to_string();
        assert!(err.len() < 300, "{} bytes: {}", err.len(), &err[..300]);
        let json = format!("{{\"linux\": {{\"resources\": {{\"devices\": \"{huge}\"}}}}}}");
        let err = RuleFile::parse("r.json", &json).unwrap_err().to_string();
        assert!(err.len() < 300, "{} bytes: {}", err.len(), &err[..300]);
        assert!(err.ends_with("expected a sequence"), "{err}");
    }

    #[test]
    fn positions_walk_forward_and_restart() {
        let mut lines = Lines::new("ab\ncé\n\nd".as_bytes());
        assert_eq!(lines.position(0), (1, 1));
        assert_eq!(lines.position(4), (2, 2));
        assert_eq!(lines.position(6), (2, 3));
        assert_eq!(lines.position(8), (4, 1));
        assert_eq!(lines.position(1), (1, 2));
        assert_eq!(lines.position(100), (4, 2));
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
