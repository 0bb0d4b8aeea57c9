//! Engine errors, each mapping to the errno a caller of a block device expects.

use std::io;
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's request is malformed (alignment, range, configuration): `EINVAL`.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    /// The device or the kernel failed an I/O; `source` holds its errno (EIO, ENOSPC, ...).
    #[error("{op} of {len} bytes at byte {offset} failed: {source}")]
    Io {
        op: &'static str,
        offset: u64,
        len: u64,
        #[source]
        source: io::Error,
    },

    /// A read or write made no progress before the end of the request: `EIO`.
    #[error("{op} at byte {offset}: the device transferred 0 of {remaining} remaining bytes")]
    NoProgress {
        op: &'static str,
        offset: u64,
        remaining: u32,
    },

    /// Opening or probing the backing file or device failed.
    #[error("{path}: {what}: {source}")]
    Open {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },

    /// Setting up an io_uring instance or registering resources failed.
    #[error("io_uring {what}: {source}")]
    Ring {
        what: &'static str,
        #[source]
        source: io::Error,
    },

    /// librbd failed an I/O on an RBD image; `errno` holds its errno
    /// (EIO, ETIMEDOUT, ESHUTDOWN when the cluster blocklisted us, ...),
    /// named in the message.
    #[error(
        "rbd {op} of {len} bytes at byte {offset} failed: {}",
        crate::rbd::describe_errno(errno)
    )]
    Rbd {
        op: &'static str,
        offset: u64,
        len: u64,
        errno: io::Error,
    },

    /// Reaching an RBD image failed: `step` names the librados/librbd call
    /// (read the config, connect, open the pool, open the image, ...).
    #[error("{spec}: {step}: {}{hint}", crate::rbd::describe_errno(errno))]
    RbdSetup {
        spec: String,
        step: &'static str,
        /// What to check, where the errno alone does not say (may be empty).
        hint: String,
        errno: io::Error,
    },

    /// This build cannot do what was asked (a feature left out): `EOPNOTSUPP`.
    #[error("{what}: {reason}")]
    Unsupported {
        what: &'static str,
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The errno this error stands for.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Invalid { .. } => libc::EINVAL,
            Error::Io { source, .. }
            | Error::Open { source, .. }
            | Error::Ring { source, .. }
            | Error::Rbd { errno: source, .. }
            | Error::RbdSetup { errno: source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::NoProgress { .. } => libc::EIO,
            Error::Unsupported { .. } => libc::EOPNOTSUPP,
        }
    }
}

impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        io::Error::new(io::Error::from_raw_os_error(error.errno()).kind(), error)
    }
}
