//! The ublk target: serves an engine backing (an O_DIRECT file or block
//! device, a Ceph RBD image, or RAM) as a Linux block device `/dev/ublkbN`
//! through libublk.
//! It moves blocks between the kernel and the backing; it must not know about
//! filesystems or vectors, and it never opens a backing nobody named.
//!
//! # Design
//!
//! * One thread per ublk queue (libublk's model). On it, one async task per
//!   tag fetches a request, serves it and commits the result.
//! * File and block-device backings are served on libublk's own per-queue
//!   io_uring: the backing descriptor is registered in that ring and the
//!   task submits the engine's entries ([`vexfs_engine::sqe`]) next to the
//!   ublk commands, so a request costs no thread hop and no extra ring wait.
//! * An RBD image (feature `rbd`) is served with librbd aio: a tag's task
//!   issues the aio and waits; librbd's callback writes an eventfd that the
//!   queue's own ring reads, and the queue thread reaps and wakes the tags
//!   ([`rbd`]). FLUSH is `rbd_aio_flush`, FUA a write then a flush.
//! * The RAM backing is served inline on the queue thread (a copy).
//! * Any backing error is logged in the daemon's log and reaches the kernel
//!   as `-EIO`; nothing the backing returns can crash the target.

pub mod backing;
pub mod control;
pub mod features;
pub mod rbd;
pub mod request;
pub mod serve;
