//! What stops the runner before it has a matrix to show.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum VmError {
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("unknown kernel {name:?} (known: {})", known.join(", "))]
    UnknownKernel { name: String, known: Vec<String> },
    #[error("{path}: {reason}")]
    Expected { path: PathBuf, reason: String },
    /// A tool the runner needs is missing and could not be installed. The
    /// CI treats this as "skip", never as a pass of any check.
    #[error("cannot install what the VM runner needs: {0}")]
    Install(String),
    #[error("the devcg binary {0} does not exist: build it first (cargo build --release)")]
    MissingBinary(PathBuf),
    /// A setting the runner cannot use (an option or environment variable).
    #[error("{0}")]
    Usage(String),
    /// `--image PATH` that is neither a kernel image nor a built tree.
    #[error("{path}: {reason}")]
    Image { path: PathBuf, reason: String },
    /// A kernel given by path whose config lacks what devcg needs:
    /// refused before it boots.
    #[error("{path}: refused before booting: its config ({config}) lacks {}", missing.join(", "))]
    KernelConfig {
        path: PathBuf,
        config: String,
        missing: Vec<String>,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl VmError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        VmError::Io {
            what: what.into(),
            source,
        }
    }
}
