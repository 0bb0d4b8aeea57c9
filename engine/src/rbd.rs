//! Ceph RBD images as engine backings: `rbd:POOL/IMAGE` (see [`RbdSpec`]).
//! Ceph does the replication; this module moves blocks to and from one
//! image through librbd's asynchronous C API and reports its errors.
//!
//! # Design
//!
//! * [`RbdDevice`] connects to the cluster (librados), opens the image and
//!   implements [`crate::BlockDevice`]: the geometry comes from `rbd_stat`
//!   (size; 512-byte logical blocks, 4 KiB physical, the object size for
//!   messages). Callers borrow an [`RbdQueue`] from a pool for one call, as
//!   [`crate::UringDevice`] lends rings, and a batch goes to librbd whole:
//!   every op is an `rbd_aio_*` call before the first wait.
//! * An [`RbdQueue`] owns one eventfd and a slot per I/O in flight. librbd
//!   completes an aio on its own callback thread; the callback only notes
//!   the slot in a short list and writes the eventfd, so that thread never
//!   waits on us. The queue's owner waits on the eventfd (a blocking read
//!   here, an io_uring read in the ublk target's per-queue ring) and reaps
//!   the list on its own thread. An eventfd per queue rather than librbd's
//!   one per image (`rbd_set_image_notification`): several threads use one
//!   image at once, and each must see only its own completions.
//! * Durability: librbd's cache is left as ceph.conf sets it (on by
//!   default, write-through until the first flush). `flush` is
//!   `rbd_aio_flush`; a FUA write is the write, then a flush, before it
//!   completes. Discard is `rbd_aio_discard`, write-zeroes
//!   `rbd_aio_write_zeroes`.
//! * Timeouts: connecting gives up after [`RBD_CONNECT_TIMEOUT_SECONDS`]
//!   (`client_mount_timeout`) unless the spec sets it. I/O has no timeout
//!   by default: while an OSD restarts or the cluster re-peers, I/O stalls
//!   and then goes on, as a disk's would after a path failover. A spec
//!   option `:rados_osd_op_timeout=N` turns such stalls into ETIMEDOUT.
//! * Built only with the `rbd` feature (librbd-dev, librados-dev). Without
//!   it the same types exist but cannot be made: opening an `rbd:` spec says
//!   how to get the feature.

mod spec;

pub use spec::{
    absolute_spec, is_rbd_spec, RbdSpec, RBD_CLIENT_ID_DEFAULT, RBD_NAME_BYTES_MAX,
    RBD_OPTIONS_MAX, RBD_PREFIX, RBD_SPEC_BYTES_MAX,
};

#[cfg(feature = "rbd")]
mod device;
#[cfg(feature = "rbd")]
mod ffi;
#[cfg(feature = "rbd")]
mod image;
#[cfg(feature = "rbd")]
mod queue;
#[cfg(feature = "rbd")]
mod signal;
#[cfg(feature = "rbd")]
pub use device::RbdDevice;
#[cfg(feature = "rbd")]
pub use queue::RbdQueue;

#[cfg(not(feature = "rbd"))]
mod absent;
#[cfg(not(feature = "rbd"))]
pub use absent::{RbdDevice, RbdQueue};

#[cfg(not(feature = "rbd"))]
use crate::error::Error;

/// Seconds `RbdDevice::open` waits for the monitors (`client_mount_timeout`).
pub const RBD_CONNECT_TIMEOUT_SECONDS: u32 = 30;
/// Slots of each pooled queue: ops of one `submit` in flight at once.
pub const RBD_POOLED_QUEUE_DEPTH: u32 = 64;
/// Pooled queues at most; a caller beyond this waits for one to come back.
pub const RBD_POOLED_QUEUES_MAX: usize = 64;
/// Largest single read or write one slot carries.
pub const RBD_IO_BYTES_MAX: usize = 1 << 30;
/// Deepest dedicated queue.
pub const RBD_QUEUE_DEPTH_MAX: u32 = 4096;
/// Whether this build can open RBD images.
pub const RBD_BUILT: bool = cfg!(feature = "rbd");

/// What opening an `rbd:` spec says in a build without the feature.
pub const RBD_NOT_BUILT: &str = "backings need VexFS built with --features rbd \
    (needs librbd-dev: apt-get install librbd-dev librados-dev)";

#[cfg(not(feature = "rbd"))]
pub(crate) fn not_built() -> Error {
    Error::Unsupported {
        what: "rbd",
        reason: RBD_NOT_BUILT,
    }
}

/// The symbolic name of an errno a Ceph client meets, with what it means
/// there where that differs from the C library's text.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EIO => "EIO",
        libc::ETIMEDOUT => "ETIMEDOUT (an rados_*_op_timeout or client_mount_timeout ran out)",
        // Ceph spells it EBLOCKLISTED: the cluster fenced this client off.
        libc::ESHUTDOWN => "ESHUTDOWN (EBLOCKLISTED: the cluster blocklisted this client)",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EROFS => "EROFS",
        libc::ENOSPC => "ENOSPC",
        libc::EDQUOT => "EDQUOT (the pool's quota is full)",
        libc::EBUSY => "EBUSY",
        libc::EINVAL => "EINVAL",
        libc::ENOMEM => "ENOMEM",
        libc::EAGAIN => "EAGAIN",
        libc::ENOTCONN => "ENOTCONN",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENXIO => "ENXIO",
        libc::ENODEV => "ENODEV",
        libc::EEXIST => "EEXIST",
        libc::ECANCELED => "ECANCELED",
        libc::EBADF => "EBADF",
        libc::EINTR => "EINTR",
        libc::ERANGE => "ERANGE",
        _ => "errno",
    }
}

/// `NAME: text (os error N)` for an error that carries an errno.
pub(crate) fn describe_errno(source: &std::io::Error) -> String {
    match source.raw_os_error() {
        Some(errno) => format!("{}: {source}", errno_name(errno)),
        None => source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::Error;

    #[test]
    fn errnos_are_named_as_ceph_users_know_them() {
        assert_eq!(errno_name(libc::EIO), "EIO");
        assert!(errno_name(libc::ESHUTDOWN).contains("EBLOCKLISTED"));
        assert!(errno_name(libc::ETIMEDOUT).starts_with("ETIMEDOUT"));
        assert_eq!(errno_name(9999), "errno");
        let error = Error::Rbd {
            op: "write",
            offset: 4096,
            len: 512,
            errno: std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("rbd write of 512 bytes at byte 4096 failed: ETIMEDOUT"),
            "{text}"
        );
        assert_eq!(error.errno(), libc::ETIMEDOUT);
    }

    #[cfg(not(feature = "rbd"))]
    #[test]
    fn without_the_feature_rbd_specs_say_how_to_get_it() {
        let error = crate::open_backing("rbd:rbd/img", crate::UringOptions::default())
            .err()
            .expect("no rbd in this build");
        assert_eq!(
            error.to_string(),
            "rbd: backings need VexFS built with --features rbd \
             (needs librbd-dev: apt-get install librbd-dev librados-dev)"
        );
        assert_eq!(error.errno(), libc::EOPNOTSUPP);
    }
}
