use std::path::PathBuf;

use thiserror::Error;

use crate::bpf::BpfError;
use crate::sys::SysError;
use crate::v1::V1Error;

/// What the cgroup2 driver, the differential and the semantics suite could
/// not do. Kernel verdicts are never errors; refusals to load are reported,
/// not raised, where they are a finding.
#[derive(Debug, Error)]
pub enum KernelError {
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error(transparent)]
    V1(#[from] V1Error),
    #[error("no cgroup2 hierarchy is mounted")]
    NoCgroup2,
    #[error("refusing to attach to {target}: not inside the scratch directory {scratch}")]
    NotScratch { target: PathBuf, scratch: PathBuf },
    #[error("refusing to use {0}: this process runs in it or below it")]
    OwnCgroup(PathBuf),
    #[error("{0}")]
    Unavailable(String),
    #[error("{command}: {why}")]
    Tool { command: String, why: String },
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
}
