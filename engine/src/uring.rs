//! The io_uring backend: a regular file or a block device opened with O_DIRECT.
//!
//! Threads that call the [`BlockDevice`] methods borrow a [`Queue`] from a
//! pool for the length of one call, so concurrent callers each drive their
//! own ring and never share a submission queue. Threads that do I/O all day
//! (a benchmark worker) take a dedicated queue with
//! [`UringDevice::queue`] and keep it.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::device::{BlockDevice, Geometry, IoOp};
use crate::error::{Error, Result};
use crate::pool::{PooledQueue, QueuePool};
use crate::probe::{self, BackingKind};
use crate::queue::{BufferQueue, Completion, Queue, QueueConfig, QueueDevice};

/// Bytes one pooled I/O carries at most; larger requests are split into
/// pieces of this size and submitted together.
pub const IO_CHUNK_BYTES: usize = 256 << 10;
/// Bounce buffers per pooled queue, for caller memory that O_DIRECT cannot use as is.
pub const BOUNCE_BUFFERS: usize = 8;
/// Pooled queues (rings) at most; a caller beyond this waits for one to come back.
pub const POOLED_QUEUES_MAX: usize = 256;

#[derive(Clone, Debug)]
pub struct UringOptions {
    /// Slots of each pooled queue.
    pub queue_depth: u32,
    /// Pooled queues at most (concurrent callers beyond it wait), 1..=[`POOLED_QUEUES_MAX`].
    pub queues_max: usize,
    /// Kernel-side submission polling for pooled queues, idle timeout in ms.
    pub sqpoll_idle_ms: Option<u32>,
    /// Polled completions; needs a block device with poll queues (NVMe `poll_queues`).
    pub iopoll: bool,
    pub read_only: bool,
}

impl Default for UringOptions {
    fn default() -> Self {
        Self {
            queue_depth: 64,
            queues_max: 64,
            sqpoll_idle_ms: None,
            iopoll: false,
            read_only: false,
        }
    }
}

pub struct UringDevice {
    path: PathBuf,
    kind: BackingKind,
    geometry: Geometry,
    options: UringOptions,
    queues: QueuePool<Queue>,
    // Dropped last: every queue (pooled ones above, dedicated ones by
    // borrowing `self`) refers to this descriptor.
    file: File,
}

impl UringDevice {
    pub fn open(path: impl AsRef<Path>, options: UringOptions) -> Result<Self> {
        let path = path.as_ref();
        if options.queues_max == 0 || options.queues_max > POOLED_QUEUES_MAX {
            return Err(Error::invalid(
                "queues_max",
                format!("{} is not in 1..={POOLED_QUEUES_MAX}", options.queues_max),
            ));
        }
        let file = File::options()
            .read(true)
            .write(!options.read_only)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.to_path_buf(),
                what: "open with O_DIRECT",
                source,
            })?;
        let (kind, geometry) = probe::probe(path, &file)?;
        if options.iopoll && kind != BackingKind::BlockDevice {
            return Err(Error::invalid(
                "iopoll",
                "polled I/O needs a block device with poll queues, not a regular file",
            ));
        }
        // Fail at open, not at the first I/O, if rings cannot be set up here.
        let first = Queue::new(file.as_raw_fd(), geometry, &pooled_config(&options))?;
        Ok(Self {
            path: path.to_path_buf(),
            kind,
            geometry,
            queues: QueuePool::new(first, options.queues_max),
            options,
            file,
        })
    }

    pub fn kind(&self) -> BackingKind {
        self.kind
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The O_DIRECT descriptor, for a caller that submits [`crate::sqe`]
    /// entries on a ring of its own (the ublk target). It stays open as long
    /// as the device lives.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Discards a range synchronously (punch a hole, BLKDISCARD); see [`BlockDevice::discard`].
    pub fn discard_range(&self, offset: u64, len: u64) -> Result<()> {
        self.discard(offset, len)
    }

    /// A queue for one thread to keep (benchmark workers, test tools).
    /// It borrows the device, so the descriptor outlives it.
    pub fn queue(&self, config: &QueueConfig) -> Result<Queue> {
        if config.iopoll && self.kind != BackingKind::BlockDevice {
            return Err(Error::invalid(
                "iopoll",
                "polled I/O needs a block device with poll queues, not a regular file",
            ));
        }
        Queue::new(self.file.as_raw_fd(), self.geometry, config)
    }

    fn checkout(&self) -> Result<PooledQueue<'_, Queue>> {
        self.queues.checkout(|| {
            Queue::new(
                self.file.as_raw_fd(),
                self.geometry,
                &pooled_config(&self.options),
            )
        })
    }
}

fn pooled_config(options: &UringOptions) -> QueueConfig {
    QueueConfig {
        depth: options.queue_depth,
        sqpoll_idle_ms: options.sqpoll_idle_ms,
        iopoll: options.iopoll,
        // Pooled queues move between threads, so no SINGLE_ISSUER.
        single_issuer: false,
        buffer_count: BOUNCE_BUFFERS,
        buffer_bytes: IO_CHUNK_BYTES,
        // A batch is queued whole and goes to the kernel in one io_uring_enter.
        submit_batch: 0,
    }
}

/// Tags of pooled I/O: which bounce buffer (if any) and whether it was a read.
const TAG_DIRECT: u64 = u64::MAX;
const TAG_BOUNCE_READ: u64 = 1 << 32;

/// Bookkeeping of one batch: the first error, and the bounce buffers.
struct Batch {
    first_error: Option<Error>,
    bounce_free: [bool; BOUNCE_BUFFERS],
    /// Where a bounced read's bytes go once it completes: (caller address, length).
    bounce_target: [(*mut u8, usize); BOUNCE_BUFFERS],
    completed: Vec<Completion>,
}

impl Batch {
    fn new() -> Self {
        Self {
            first_error: None,
            bounce_free: [true; BOUNCE_BUFFERS],
            bounce_target: [(std::ptr::null_mut(), 0); BOUNCE_BUFFERS],
            completed: Vec::new(),
        }
    }

    /// Accounts the completions collected in `self.completed`.
    fn settle(&mut self, queue: &Queue) {
        for completion in self.completed.drain(..) {
            if let Err(e) = completion.result {
                self.first_error.get_or_insert(e);
            }
            if completion.tag == TAG_DIRECT {
                continue;
            }
            let index = (completion.tag & 0xffff) as usize;
            if completion.tag & TAG_BOUNCE_READ != 0 {
                let (dest, len) = self.bounce_target[index];
                let source = queue
                    .buffer(index)
                    .expect("completed bounce buffer is idle");
                // SAFETY: dest..dest+len lies in a caller buffer borrowed
                // mutably for the whole batch, and no I/O targets it.
                unsafe { std::ptr::copy_nonoverlapping(source.as_ptr(), dest, len) };
            }
            self.bounce_free[index] = true;
        }
    }
}

/// Runs one batch on one queue: splits ops into chunks, uses caller memory
/// directly where it is aligned and bounce buffers where it is not, keeps
/// the queue full, and waits for everything before returning.
fn run_batch(queue: &mut Queue, ops: &mut [IoOp<'_>]) -> Result<()> {
    let memory_align = queue.geometry().memory_align_bytes as usize;
    let mut batch = Batch::new();

    'ops: for op in ops.iter_mut() {
        let offset = op.offset();
        let (base, len, write, fua): (*mut u8, usize, bool, bool) = match op {
            IoOp::Read { buf, .. } => (buf.as_mut_ptr(), buf.len(), false, false),
            IoOp::Write { buf, fua, .. } => (buf.as_ptr().cast_mut(), buf.len(), true, *fua),
        };
        let mut done = 0;
        while done < len {
            let chunk = (len - done).min(IO_CHUNK_BYTES);
            // SAFETY: done < len, so this stays inside the caller's buffer.
            let ptr = unsafe { base.add(done) };
            let chunk_offset = offset + done as u64;
            let direct = (ptr as usize) % memory_align == 0;
            // Wait for room: a slot, and a bounce buffer if this chunk needs one.
            while !(queue.has_free_slot() && (direct || batch.bounce_free.contains(&true))) {
                if let Err(e) = queue.submit_and_wait(1) {
                    batch.first_error.get_or_insert(e);
                    break 'ops;
                }
                queue.reap(|c| batch.completed.push(c));
                batch.settle(queue);
            }
            if batch.first_error.is_some() {
                break 'ops;
            }
            let pushed = if direct {
                // SAFETY: the caller's buffer is borrowed for this whole call
                // and run_batch waits for every I/O before returning.
                unsafe {
                    if write {
                        queue.write_raw(ptr, chunk, chunk_offset, fua, TAG_DIRECT)
                    } else {
                        queue.read_raw(ptr, chunk, chunk_offset, TAG_DIRECT)
                    }
                }
            } else {
                let index = batch
                    .bounce_free
                    .iter()
                    .position(|&f| f)
                    .expect("checked above");
                batch.bounce_free[index] = false;
                if write {
                    let buffer = queue.buffer_mut(index).expect("free bounce buffer");
                    // SAFETY: ptr..ptr+chunk lies in the caller's buffer.
                    buffer[..chunk]
                        .copy_from_slice(unsafe { std::slice::from_raw_parts(ptr, chunk) });
                    queue.write_from_buffer(index, chunk_offset, chunk, fua, index as u64)
                } else {
                    batch.bounce_target[index] = (ptr, chunk);
                    queue.read_to_buffer(index, chunk_offset, chunk, TAG_BOUNCE_READ | index as u64)
                }
            };
            if let Err(e) = pushed {
                batch.first_error.get_or_insert(e);
                break 'ops;
            }
            done += chunk;
        }
    }

    // Everything in flight must finish before the caller's buffers are released.
    queue.wait_all(|c| batch.completed.push(c));
    batch.settle(queue);
    match batch.first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl QueueDevice for UringDevice {
    fn dedicated_queue(&self, config: &QueueConfig) -> Result<Box<dyn BufferQueue + '_>> {
        Ok(Box::new(UringDevice::queue(self, config)?))
    }
}

impl BlockDevice for UringDevice {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn submit(&self, ops: &mut [IoOp<'_>]) -> Result<()> {
        // Check the whole batch first: a bad op leaves the device untouched.
        self.geometry.check_ops(ops)?;
        for op in ops.iter() {
            if self.options.read_only && matches!(op, IoOp::Write { .. }) {
                return Err(Error::Io {
                    op: "write",
                    offset: op.offset(),
                    len: op.len() as u64,
                    source: std::io::Error::from_raw_os_error(libc::EROFS),
                });
            }
        }
        let mut pooled = self.checkout()?;
        let queue = &mut *pooled;
        run_batch(queue, ops)
    }

    fn flush(&self) -> Result<()> {
        let mut pooled = self.checkout()?;
        let queue = &mut *pooled;
        if self.options.iopoll {
            // An IOPOLL ring accepts only pollable reads and writes.
            return self.file.sync_data().map_err(|source| Error::Io {
                op: "flush",
                offset: 0,
                len: 0,
                source,
            });
        }
        queue.flush(0)?;
        let mut outcome = Ok(());
        queue.wait_all(|c| {
            if let Err(e) = c.result {
                outcome = Err(e);
            }
        });
        outcome
    }

    fn discard(&self, offset: u64, len: u64) -> Result<()> {
        self.geometry.check_range(offset, len)?;
        probe::discard(self.kind, &self.file, offset, len).map_err(|source| Error::Io {
            op: "discard",
            offset,
            len,
            source,
        })
    }

    fn describe(&self) -> String {
        let kind = match self.kind {
            BackingKind::RegularFile => "file",
            BackingKind::BlockDevice => "block device",
        };
        format!(
            "io_uring O_DIRECT {kind} {} ({} bytes, logical block {} B, physical {} B)",
            self.path.display(),
            self.geometry.size_bytes,
            self.geometry.logical_block_bytes,
            self.geometry.physical_block_bytes
        )
    }
}
