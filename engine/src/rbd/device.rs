//! [`RbdDevice`]: an RBD image as a [`BlockDevice`], with a pool of
//! [`RbdQueue`]s that calling threads borrow for one call each.

use std::sync::Arc;

use super::image::Image;
use super::queue::RbdQueue;
use super::{RBD_POOLED_QUEUES_MAX, RBD_POOLED_QUEUE_DEPTH};
use crate::device::{BlockDevice, Geometry, IoOp};
use crate::error::{Error, Result};
use crate::pool::{PooledQueue, QueuePool};
use crate::queue::{BufferQueue, Completion, QueueConfig, QueueDevice};

/// Logical block of every RBD device: librbd addresses bytes, and 512
/// keeps the engine's rule (whole blocks) as loose as a disk's.
pub const RBD_LOGICAL_BLOCK_BYTES: u32 = 512;
/// Physical block: BlueStore's allocation unit; smaller writes cost a
/// read-modify-write on the OSD.
pub const RBD_PHYSICAL_BLOCK_BYTES: u32 = 4096;

pub struct RbdDevice {
    geometry: Geometry,
    queues: QueuePool<RbdQueue>,
    // Dropped last: every queue holds the image too.
    image: Arc<Image>,
}

fn pooled_config() -> QueueConfig {
    QueueConfig {
        depth: RBD_POOLED_QUEUE_DEPTH,
        ..QueueConfig::default()
    }
}

impl RbdDevice {
    /// Connects to the cluster and opens the image `spec` names
    /// (`rbd:POOL/IMAGE[@SNAP][:KEY=VALUE]...`, see [`super::RbdSpec`]);
    /// what the spec leaves out comes from CEPH_CONF, CEPH_ID and
    /// CEPH_KEYRING. A snapshot always opens read-only.
    pub fn open(spec: &str, read_only: bool) -> Result<Self> {
        let image = Arc::new(Image::open(spec, read_only)?);
        let block = u64::from(RBD_LOGICAL_BLOCK_BYTES);
        let geometry = Geometry {
            size_bytes: image.size_bytes / block * block,
            logical_block_bytes: RBD_LOGICAL_BLOCK_BYTES,
            physical_block_bytes: RBD_PHYSICAL_BLOCK_BYTES,
            // librbd copies to and from any address.
            memory_align_bytes: 1,
        };
        if geometry.size_bytes == 0 {
            return Err(Error::invalid(
                "rbd",
                format!("{spec}: the image is smaller than one {block}-byte block"),
            ));
        }
        let first = RbdQueue::new(Arc::clone(&image), geometry, &pooled_config())?;
        Ok(Self {
            geometry,
            queues: QueuePool::new(first, RBD_POOLED_QUEUES_MAX),
            image,
        })
    }

    /// RADOS object size of the image (4 MiB unless it was created otherwise).
    pub fn object_bytes(&self) -> u64 {
        self.image.object_bytes
    }

    pub fn read_only(&self) -> bool {
        self.image.read_only
    }

    /// The spec as given.
    pub fn spec(&self) -> &str {
        &self.image.spec
    }

    /// Bytes of `[offset, offset + len)` in RADOS objects that exist, in
    /// whole objects (`rbd_diff_iterate2` from nothing; the object map
    /// answers when the image has one). A read of an object that was never
    /// written costs a client holding the image's exclusive lock and object
    /// map nothing (it reads zeros without asking an OSD) and others an OSD
    /// round trip: a benchmark of reads must know how much of its region
    /// holds data.
    pub fn written_bytes(&self, offset: u64, len: u64) -> Result<u64> {
        self.geometry.check_range(offset, len)?;
        unsafe extern "C" fn count(
            extent_offset: u64,
            extent_len: usize,
            exists: std::os::raw::c_int,
            arg: *mut std::ffi::c_void,
        ) -> std::os::raw::c_int {
            // SAFETY: arg is the &mut (u64, u64, u64) below, live for the call.
            let (start, end, total) = unsafe { &mut *(arg as *mut (u64, u64, u64)) };
            if exists != 0 {
                let from = extent_offset.max(*start);
                let to = (extent_offset + extent_len as u64).min(*end);
                *total += to.saturating_sub(from);
            }
            0
        }
        let mut state = (offset, offset + len, 0u64);
        // SAFETY: the image is open while self lives; the callback only
        // touches `state`, which outlives the synchronous call.
        let rc = unsafe {
            super::ffi::rbd_diff_iterate2(
                self.image.handle(),
                std::ptr::null(),
                offset,
                len,
                1,
                1,
                Some(count),
                (&mut state as *mut (u64, u64, u64)).cast(),
            )
        };
        if rc < 0 {
            return Err(Error::Rbd {
                op: "diff-iterate",
                offset,
                len,
                errno: std::io::Error::from_raw_os_error(-rc),
            });
        }
        Ok(state.2)
    }

    /// Zeroes a range (`rbd_aio_write_zeroes`); reads return zeros after it.
    pub fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.geometry.check_range(offset, len)?;
        self.check_writable("write-zeroes", offset, len)?;
        self.one_op(|queue| queue.write_zeroes(offset, len, 0))
    }

    fn check_writable(&self, op: &'static str, offset: u64, len: u64) -> Result<()> {
        if self.image.read_only {
            return Err(Error::Rbd {
                op,
                offset,
                len,
                errno: std::io::Error::from_raw_os_error(libc::EROFS),
            });
        }
        Ok(())
    }

    /// Runs one op on a pooled queue and waits for it.
    fn one_op(&self, push: impl FnOnce(&mut RbdQueue) -> Result<()>) -> Result<()> {
        let mut pooled = self.checkout()?;
        let queue = &mut *pooled;
        push(queue)?;
        let mut outcome = Ok(());
        queue.wait_all(|c: Completion| {
            if let Err(e) = c.result {
                outcome = Err(e);
            }
        });
        outcome
    }

    fn checkout(&self) -> Result<PooledQueue<'_, RbdQueue>> {
        self.queues
            .checkout(|| RbdQueue::new(Arc::clone(&self.image), self.geometry, &pooled_config()))
    }
}

impl RbdDevice {
    /// A queue for one thread to keep, with `config.buffer_count` buffers of
    /// `config.buffer_bytes`; SQPOLL and IOPOLL are refused, the other
    /// io_uring settings do not apply (every push goes to librbd at once).
    pub fn queue(&self, config: &QueueConfig) -> Result<RbdQueue> {
        RbdQueue::new(Arc::clone(&self.image), self.geometry, config)
    }
}

impl QueueDevice for RbdDevice {
    fn dedicated_queue(&self, config: &QueueConfig) -> Result<Box<dyn BufferQueue + '_>> {
        Ok(Box::new(self.queue(config)?))
    }
}

impl BlockDevice for RbdDevice {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn submit(&self, ops: &mut [IoOp<'_>]) -> Result<()> {
        // Check the whole batch first: a bad op leaves the image untouched.
        self.geometry.check_ops(ops)?;
        for op in ops.iter() {
            if matches!(op, IoOp::Write { .. }) {
                self.check_writable("write", op.offset(), op.len() as u64)?;
            }
        }
        let mut pooled = self.checkout()?;
        let queue = &mut *pooled;
        let mut first_error = None;
        let mut note = |c: Completion| {
            if let Err(e) = c.result {
                first_error.get_or_insert(e);
            }
        };
        for op in ops.iter_mut() {
            while !queue.has_free_slot() {
                if let Err(e) = queue.submit_and_wait(1) {
                    note(Completion {
                        tag: 0,
                        result: Err(e),
                    });
                    break;
                }
                queue.reap(&mut note);
            }
            // SAFETY: the caller's buffers are borrowed for this whole call
            // and wait_all below returns only when every aio has finished.
            let pushed = unsafe {
                match op {
                    IoOp::Read { offset, buf } => {
                        queue.read_raw(buf.as_mut_ptr(), buf.len(), *offset, 0)
                    }
                    IoOp::Write { offset, buf, fua } => {
                        queue.write_raw(buf.as_ptr(), buf.len(), *offset, *fua, 0)
                    }
                }
            };
            if let Err(e) = pushed {
                note(Completion {
                    tag: 0,
                    result: Err(e),
                });
                break;
            }
        }
        queue.wait_all(&mut note);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn flush(&self) -> Result<()> {
        if self.image.read_only {
            return Ok(());
        }
        self.one_op(|queue| queue.flush(0))
    }

    fn discard(&self, offset: u64, len: u64) -> Result<()> {
        self.geometry.check_range(offset, len)?;
        self.check_writable("discard", offset, len)?;
        self.one_op(|queue| queue.discard(offset, len, 0))
    }

    fn describe(&self) -> String {
        format!(
            "librbd aio image {} ({} bytes, {} KiB objects, logical block {} B, physical {} B{})",
            self.image.path,
            self.geometry.size_bytes,
            self.image.object_bytes >> 10,
            self.geometry.logical_block_bytes,
            self.geometry.physical_block_bytes,
            if self.image.read_only {
                ", read-only"
            } else {
                ""
            }
        )
    }
}
