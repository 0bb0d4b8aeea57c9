//! The VexFS block engine: byte-addressed block I/O over io_uring with O_DIRECT
//! (regular files and block devices) and over RAM, usable from many threads at once.
//! It moves blocks and reports errors; it must not know about filesystems or vectors.
//!
//! # Design
//!
//! * [`BlockDevice`] is what the filesystem and the ublk target program
//!   against: read/write whole logical blocks at byte offsets, flush, discard,
//!   geometry. Every check (alignment, range) happens before any I/O, so a
//!   bad request changes nothing.
//! * [`UringDevice`] keeps a pool of rings ([`Queue`]). A thread that calls
//!   it borrows one ring for the call, fills it with the whole batch (one
//!   `io_uring_enter` for many SQEs), waits, and returns the ring. Concurrent
//!   callers thus each have a ring of their own and scale with cores, with no
//!   worker thread between them and the kernel. A thread that does I/O
//!   continuously takes a dedicated ring with [`UringDevice::queue`] and
//!   drives it itself (SINGLE_ISSUER + DEFER_TASKRUN, registered buffers).
//! * A [`Queue`] owns a slot per I/O in flight and page-aligned buffers
//!   registered with the kernel; the device file is registered too. It
//!   completes short transfers and retries `EAGAIN`, so callers see one
//!   outcome per I/O. Device errors come back as [`Error`] with the kernel's
//!   errno (EIO, ENOSPC, ...), never as panics.
//! * SQPOLL ([`QueueConfig::sqpoll_idle_ms`]) moves submission to a kernel
//!   thread: it saves the `io_uring_enter` syscall per batch, but that thread
//!   spins a CPU while busy, so it pays only when a core is spare (not on a
//!   2-core machine running the application too). IOPOLL polls the device
//!   for completions instead of taking interrupts: it lowers latency on NVMe
//!   with `poll_queues` configured, burns a CPU while waiting, and is refused
//!   on regular files, where the kernel cannot poll.
//! * [`RamDevice`] is the memory tier: same trait, striped locks.
//! * [`RbdDevice`] is a Ceph RBD image through librbd's aio (feature `rbd`;
//!   see [`rbd`]). Its [`RbdQueue`] and io_uring's [`Queue`] are both
//!   [`BufferQueue`]s, so loops that keep a queue full run on either.

pub mod buffer;
pub mod crash;
pub mod device;
pub mod error;
pub mod pattern;
mod pool;
pub mod probe;
pub mod queue;
pub mod ram;
pub mod rbd;
mod slots;
pub mod sqe;
pub mod uring;

pub use buffer::AlignedBuf;
pub use crash::CrashDevice;
pub use device::{parse_size, BlockDevice, Geometry, IoOp};
pub use error::{Error, Result};
pub use probe::BackingKind;
pub use queue::{BufferQueue, Completion, Queue, QueueConfig, QueueDevice};
pub use ram::RamDevice;
pub use rbd::{RbdDevice, RbdQueue};
pub use uring::{UringDevice, UringOptions};

use std::sync::Arc;

/// Opens a backing store named the way users name it: `ram:SIZE` for the
/// memory tier, `rbd:POOL/IMAGE[...]` for a Ceph RBD image (see
/// [`rbd::RbdSpec`]; the cluster from CEPH_CONF, CEPH_ID, CEPH_KEYRING or
/// the spec's options), anything else a path to a file or block device.
/// `options.read_only` applies to every kind; the rest only to io_uring.
pub fn open_backing(spec: &str, options: UringOptions) -> Result<Arc<dyn BlockDevice>> {
    if let Some(size) = spec.strip_prefix("ram:") {
        return Ok(Arc::new(RamDevice::new(parse_size(size)?, 512)?));
    }
    if rbd::is_rbd_spec(spec) {
        return Ok(Arc::new(RbdDevice::open(spec, options.read_only)?));
    }
    Ok(Arc::new(UringDevice::open(spec, options)?))
}
