//! The error every shared piece of machinery (probes, scratch cleanup,
//! node directories) returns; the v1 and v2 drivers wrap it in their own.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno as SysErrno;
use thiserror::Error;

use crate::device::{Device, NotProbeable};

#[derive(Debug, Error)]
pub enum SysError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{op} {path}: {errno}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: SysErrno,
    },
    #[error("path {0:?} is not inside the scratch directory")]
    OutsideScratch(String),
    #[error("{0} cannot be probed: {1}")]
    NotProbeable(Device, NotProbeable),
    #[error("probe child could not join {path}: {errno}")]
    Join { path: PathBuf, errno: SysErrno },
    #[error("probe child: {0}")]
    Child(String),
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SysError + 'a {
    move |source| SysError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn sys_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(SysErrno) -> SysError + 'a {
    move |errno| SysError::Sys {
        op,
        path: path.to_path_buf(),
        errno,
    }
}

pub(crate) fn cstring(path: &Path) -> Result<CString, SysError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SysError::OutsideScratch(path.display().to_string()))
}
