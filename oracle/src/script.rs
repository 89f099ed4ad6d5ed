//! Oracle scripts: a line-oriented way to drive a [`Hierarchy`] (behind
//! `devcg oracle SCRIPT`), readable by people and replayable on a real
//! kernel. One command per line; blank lines and `#` comments are skipped;
//! paths are relative to the implicit allow-all root, which itself cannot
//! be named (a kernel run maps it to a scratch cgroup it must not write):
//!
//! ```text
//! mkdir PATH
//! write PATH allow|deny TEXT      # TEXT: the rest of the line
//! list PATH
//! check PATH c|b MAJOR:MINOR ACCESS   # ACCESS: letters of rwm, or -
//! ```
//!
//! Each command yields one [`Output`], printed as one JSON object. A line
//! that is not a valid command is a [`ScriptError`], not an output: the
//! script itself is wrong, not the rule it writes.

use serde::ser::{Serialize, SerializeMap, Serializer};
use thiserror::Error;

use devcg_engine::rules::RuleKind;
use devcg_engine::{Access, DeviceType, Request};

use crate::{Errno, Hierarchy, OracleError};

/// What one command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A cgroup was created (a failed mkdir is a script error).
    Mkdir,
    /// A write, with the kernel's errno when refused.
    Write { errno: Option<Errno> },
    /// The devices.list text.
    List { list: String },
    /// Whether the access is allowed.
    Check { allowed: bool },
}

/// One command's result, tagged with its 1-based line number. Serializes as
/// `{"line":N,"cmd":"...",...}` with the keys in that order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub line: usize,
    pub effect: Effect,
}

impl Output {
    pub fn cmd(&self) -> &'static str {
        match self.effect {
            Effect::Mkdir => "mkdir",
            Effect::Write { .. } => "write",
            Effect::List { .. } => "list",
            Effect::Check { .. } => "check",
        }
    }
}

// Written by hand so the key order is fixed by code, not by derive details.
impl Serialize for Output {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("line", &self.line)?;
        map.serialize_entry("cmd", self.cmd())?;
        match &self.effect {
            Effect::Mkdir => map.serialize_entry("errno", &None::<Errno>)?,
            Effect::Write { errno } => map.serialize_entry("errno", errno)?,
            Effect::List { list } => map.serialize_entry("list", list)?,
            Effect::Check { allowed } => map.serialize_entry("allowed", allowed)?,
        }
        map.end()
    }
}

/// Why a script line is not a valid command.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ScriptErrorKind {
    #[error("unknown command {0:?} (expected mkdir, write, list or check)")]
    UnknownCommand(String),
    #[error("{cmd}: missing {what}")]
    Missing {
        cmd: &'static str,
        what: &'static str,
    },
    #[error("{cmd}: unexpected {extra:?} after the last argument")]
    Extra { cmd: &'static str, extra: String },
    #[error("write: expected `allow` or `deny`, found {0:?}")]
    BadKind(String),
    #[error("check: device type must be `c` or `b`, found {0:?}")]
    BadType(String),
    #[error("check: expected MAJOR:MINOR in decimal, found {0:?}")]
    BadDevice(String),
    #[error("check: access must be letters of `rwm` or `-`, found {0:?}")]
    BadAccess(String),
    #[error("{0}")]
    Path(#[from] OracleError),
    /// The line holds a byte sequence that is not UTF-8 (the first such
    /// line of the script; nothing has run).
    #[error("not UTF-8")]
    NotUtf8,
}

/// A malformed script line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {kind}")]
pub struct ScriptError {
    pub line: usize,
    pub kind: ScriptErrorKind,
}

/// The next token (split on spaces and tabs only, so the TEXT of a write
/// reaches the kernel parser with any other byte untouched) and the rest.
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return None;
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

fn no_more(rest: &str, cmd: &'static str) -> Result<(), ScriptErrorKind> {
    match token(rest) {
        None => Ok(()),
        Some((extra, _)) => Err(ScriptErrorKind::Extra {
            cmd,
            extra: extra.to_string(),
        }),
    }
}

fn arg<'a>(
    rest: &'a str,
    cmd: &'static str,
    what: &'static str,
) -> Result<(&'a str, &'a str), ScriptErrorKind> {
    token(rest).ok_or(ScriptErrorKind::Missing { cmd, what })
}

/// Plain decimal only: `u32::from_str` would also take a leading `+`.
fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_request(ty: &str, dev: &str, access: &str) -> Result<Request, ScriptErrorKind> {
    let ty = match ty {
        "c" => DeviceType::Char,
        "b" => DeviceType::Block,
        other => return Err(ScriptErrorKind::BadType(other.to_string())),
    };
    let bad_dev = || ScriptErrorKind::BadDevice(dev.to_string());
    let (major, minor) = dev.split_once(':').ok_or_else(bad_dev)?;
    let (major, minor) = (
        number(major).ok_or_else(bad_dev)?,
        number(minor).ok_or_else(bad_dev)?,
    );
    let access = Access::parse_letters(access)
        .ok_or_else(|| ScriptErrorKind::BadAccess(access.to_string()))?;
    Ok(Request::new(ty, major, minor, access))
}

fn known(h: &Hierarchy, path: &str) -> Result<(), ScriptErrorKind> {
    if h.exists(path) {
        Ok(())
    } else {
        Err(OracleError::NoSuchCgroup(path.to_string()).into())
    }
}

fn run_line(h: &mut Hierarchy, cmd: &str, rest: &str) -> Result<Effect, ScriptErrorKind> {
    match cmd {
        "mkdir" => {
            let (path, rest) = arg(rest, "mkdir", "PATH")?;
            no_more(rest, "mkdir")?;
            h.mkdir(path)?;
            Ok(Effect::Mkdir)
        }
        "write" => {
            let (path, rest) = arg(rest, "write", "PATH")?;
            let (kind, rest) = arg(rest, "write", "allow|deny")?;
            let kind = match kind {
                "allow" => RuleKind::Allow,
                "deny" => RuleKind::Deny,
                other => return Err(ScriptErrorKind::BadKind(other.to_string())),
            };
            // TEXT keeps everything after the separating blanks; the kernel
            // strips the rest itself.
            let text = rest.trim_start_matches([' ', '\t']);
            if text.is_empty() {
                return Err(ScriptErrorKind::Missing {
                    cmd: "write",
                    what: "TEXT",
                });
            }
            known(h, path)?;
            let result = h.try_write(path, kind, text)?;
            Ok(Effect::Write {
                errno: result.err(),
            })
        }
        "list" => {
            let (path, rest) = arg(rest, "list", "PATH")?;
            no_more(rest, "list")?;
            Ok(Effect::List {
                list: h.list(path)?,
            })
        }
        "check" => {
            let (path, rest) = arg(rest, "check", "PATH")?;
            let (ty, rest) = arg(rest, "check", "TYPE")?;
            let (dev, rest) = arg(rest, "check", "MAJOR:MINOR")?;
            let (access, rest) = arg(rest, "check", "ACCESS")?;
            no_more(rest, "check")?;
            let req = parse_request(ty, dev, access)?;
            known(h, path)?;
            Ok(Effect::Check {
                allowed: h.check(path, &req)?.is_allow(),
            })
        }
        other => Err(ScriptErrorKind::UnknownCommand(other.to_string())),
    }
}

/// A script file's bytes as text, or the line of the first byte that is not
/// UTF-8.
pub fn text(bytes: &[u8]) -> Result<&str, ScriptError> {
    std::str::from_utf8(bytes).map_err(|e| ScriptError {
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        kind: ScriptErrorKind::NotUtf8,
    })
}

/// Runs a script file's bytes on a fresh hierarchy: [`run`], after [`text`].
pub fn run_bytes(bytes: &[u8]) -> Result<Vec<Output>, ScriptError> {
    run(text(bytes)?)
}

/// Runs a script on a fresh hierarchy, returning one output per command, or
/// the first malformed line.
pub fn run(text: &str) -> Result<Vec<Output>, ScriptError> {
    run_on(&mut Hierarchy::new(), text)
}

/// Runs a script on an existing hierarchy, so a caller can look at the
/// state it leaves. Commands before a malformed line have taken effect.
pub fn run_on(h: &mut Hierarchy, text: &str) -> Result<Vec<Output>, ScriptError> {
    let mut outputs = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        let Some((cmd, rest)) = token(line) else {
            continue;
        };
        if cmd.starts_with('#') {
            continue;
        }
        let effect = run_line(h, cmd, rest).map_err(|kind| ScriptError { line: lineno, kind })?;
        outputs.push(Output {
            line: lineno,
            effect,
        });
    }
    Ok(outputs)
}
