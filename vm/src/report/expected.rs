//! The expected outcome of each check per kernel (`vm/expected/<kernel>.json`), and recording it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::VmError;

use super::{CheckStatus, KernelRun};

/// `vm/expected/<kernel>.json`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    #[serde(default)]
    pub kernel: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    pub checks: BTreeMap<String, ExpectedCheck>,
}

/// `"pass"`, or `{"status": "skip", "why": "..."}` for a check that
/// legitimately differs on this kernel.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ExpectedCheck {
    CheckStatus(CheckStatus),
    Explained {
        status: CheckStatus,
        #[serde(default)]
        why: String,
    },
}

impl ExpectedCheck {
    pub fn status(&self) -> CheckStatus {
        match self {
            ExpectedCheck::CheckStatus(s) | ExpectedCheck::Explained { status: s, .. } => *s,
        }
    }
    pub fn why(&self) -> Option<&str> {
        match self {
            ExpectedCheck::Explained { why, .. } if !why.is_empty() => Some(why),
            _ => None,
        }
    }
}

impl Expected {
    pub fn parse(text: &str) -> Result<Expected, String> {
        let e: Expected = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (name, c) in &e.checks {
            if c.status() == CheckStatus::Error {
                return Err(format!("check {name}: \"error\" cannot be expected"));
            }
        }
        Ok(e)
    }

    /// One expected file given by path (`--expected FILE`).
    pub fn load_file(path: &Path) -> Result<Expected, VmError> {
        let text = std::fs::read_to_string(path).map_err(|e| VmError::Expected {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Expected::parse(&text).map_err(|reason| VmError::Expected {
            path: path.to_owned(),
            reason,
        })
    }

    /// `dir/<kernel>.json`, or None when there is none.
    pub fn load(dir: &Path, kernel: &str) -> Result<Option<(PathBuf, Expected)>, VmError> {
        let path = dir.join(format!("{kernel}.json"));
        match std::fs::read_to_string(&path) {
            Ok(text) => Expected::parse(&text)
                .map(|e| Some((path.clone(), e)))
                .map_err(|reason| VmError::Expected { path, reason }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VmError::Expected {
                path,
                reason: e.to_string(),
            }),
        }
    }
}

/// Writes `dir/<kernel>.json` from what the column observed: every check
/// that passed, failed or skipped (an error is never recorded), keeping the
/// `why` of entries whose status did not change; a new non-pass entry gets
/// the observation as its `why`, to be edited.
pub fn record(dir: &Path, run: &KernelRun, old: Option<&Expected>) -> Result<PathBuf, VmError> {
    let mut e = Expected {
        kernel: run.name.clone(),
        note: old.map(|o| o.note.clone()).unwrap_or_default(),
        checks: BTreeMap::new(),
    };
    for c in run.checks.iter().filter(|c| c.status != CheckStatus::Error) {
        let kept = old
            .and_then(|o| o.checks.get(&c.name))
            .filter(|x| x.status() == c.status)
            .and_then(|x| x.why().map(str::to_string));
        let why = kept.or_else(|| {
            (c.status != CheckStatus::Pass)
                .then(|| c.detail.clone())
                .flatten()
        });
        let entry = match why {
            Some(why) => ExpectedCheck::Explained {
                status: c.status,
                why,
            },
            None => ExpectedCheck::CheckStatus(c.status),
        };
        e.checks.insert(c.name.clone(), entry);
    }
    let path = dir.join(format!("{}.json", run.name));
    let text = serde_json::to_string_pretty(&e).expect("serializes") + "\n";
    std::fs::create_dir_all(dir).map_err(|err| VmError::io(dir.display().to_string(), err))?;
    std::fs::write(&path, text).map_err(|err| VmError::io(path.display().to_string(), err))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare;
    use crate::report::test_support::*;

    #[test]
    fn recording_keeps_reasons_and_never_records_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = run_with(&[
            ("a", CheckStatus::Pass),
            ("b", CheckStatus::Skip),
            ("c", CheckStatus::Skip),
            ("d", CheckStatus::Error),
        ]);
        r.checks[2].detail = Some("needs v1".into());
        let old = expected(r#"{"note": "n", "checks": {"b": {"status": "skip", "why": "kept"}}}"#);
        let path = record(dir.path(), &r, Some(&old)).unwrap();
        let e = Expected::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(e.kernel, "k");
        assert_eq!(e.note, "n");
        assert_eq!(e.checks["a"], ExpectedCheck::CheckStatus(CheckStatus::Pass));
        assert_eq!(e.checks["b"].why(), Some("kept"));
        assert_eq!(e.checks["c"].why(), Some("needs v1"));
        assert!(!e.checks.contains_key("d"));
        assert!(compare(&r, Some(&e), &mut vec![]).len() == 1); // d: unrecorded error
    }

    #[test]
    fn error_cannot_be_expected() {
        assert!(Expected::parse(r#"{"checks": {"a": "error"}}"#).is_err());
        assert!(Expected::parse(r#"{"checks": {"a": "maybe"}}"#).is_err());
        assert!(Expected::parse(r#"{"checks": {}, "bogus": 1}"#).is_err());
    }
}
