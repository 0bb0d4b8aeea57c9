//! Filesystem errors, each with the errno a POSIX caller expects.

pub type Result<T> = std::result::Result<T, Error>;

/// `EUCLEAN` ("structure needs cleaning"): what ext4 and btrfs return for
/// corrupt metadata.
pub const EUCLEAN: i32 = 117;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device failed; carries the engine's errno (EIO, ENOSPC, ...).
    #[error(transparent)]
    Device(#[from] vexfs_engine::Error),

    /// On-disk metadata failed a check: `EUCLEAN`. Names the structure and block.
    #[error("corrupt {what} (block or inode {location}): {reason}")]
    Corrupt {
        what: &'static str,
        location: u64,
        reason: String,
    },

    /// The request cannot be done as asked: ENOENT, EEXIST, ENOSPC, ENOTEMPTY, ...
    #[error("{reason}")]
    Refused { errno: i32, reason: String },
}

impl Error {
    pub fn corrupt(what: &'static str, location: u64, reason: String) -> Self {
        Error::Corrupt {
            what,
            location,
            reason,
        }
    }

    pub fn refused(errno: i32, reason: impl Into<String>) -> Self {
        Error::Refused {
            errno,
            reason: reason.into(),
        }
    }

    pub fn errno(&self) -> i32 {
        match self {
            Error::Device(e) => e.errno(),
            Error::Corrupt { .. } => EUCLEAN,
            Error::Refused { errno, .. } => *errno,
        }
    }
}

/// Shorthand for the common refusals.
pub fn enoent(what: impl Into<String>) -> Error {
    Error::refused(libc::ENOENT, what)
}
pub fn enospc() -> Error {
    Error::refused(libc::ENOSPC, "no free blocks left on the device")
}
