//! One io_uring instance and the I/O in flight on it.
//!
//! A [`Queue`] belongs to one thread at a time (it is `Send`, not `Sync`).
//! It owns a fixed table of slots, one per I/O in flight (the queue depth),
//! and a set of aligned buffers registered with the ring. It completes short
//! reads and writes and retries `EAGAIN` itself, so a caller sees exactly one
//! [`Completion`] per I/O it pushed: the whole transfer, or an error.

use std::io;
use std::os::fd::RawFd;

use io_uring::{squeue, IoUring};

pub use crate::buffer::QUEUE_BUFFERS_MAX;
use crate::buffer::{BufferPool, NO_BUFFER};
use crate::device::Geometry;
use crate::error::{Error, Result};
use crate::slots::Slots;
use crate::sqe::{self, BackingFd};

/// Deepest queue one ring may have.
pub const QUEUE_DEPTH_MAX: u32 = 4096;
/// Largest single transfer one slot carries (the SQE length is 32 bits).
pub const SLOT_BYTES_MAX: usize = 1 << 30;
/// Times one I/O is resubmitted after `EAGAIN` before it fails.
pub const EAGAIN_RETRIES_MAX: u32 = 10_000;

/// How a queue's ring is set up.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// I/Os in flight at most (slots), 1..=[`QUEUE_DEPTH_MAX`].
    pub depth: u32,
    /// Kernel thread polls the submission queue (IORING_SETUP_SQPOLL), idling after this many ms.
    pub sqpoll_idle_ms: Option<u32>,
    /// Completions are polled, not interrupt driven (IORING_SETUP_IOPOLL).
    pub iopoll: bool,
    /// Only the creating thread ever submits: lets the kernel skip locking and
    /// defer completion work to our wait (SINGLE_ISSUER + DEFER_TASKRUN).
    pub single_issuer: bool,
    /// Registered buffers owned by the queue.
    pub buffer_count: usize,
    /// Bytes in each registered buffer.
    pub buffer_bytes: usize,
    /// Submit as soon as this many SQEs are queued (1: every I/O goes to the
    /// kernel when it is pushed, as fio's default `iodepth_batch_submit=1`);
    /// 0: only [`Queue::submit`] and [`Queue::submit_and_wait`] submit, so a
    /// whole batch goes in one `io_uring_enter`.
    pub submit_batch: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            depth: 64,
            sqpoll_idle_ms: None,
            iopoll: false,
            single_issuer: false,
            buffer_count: 0,
            buffer_bytes: 0,
            submit_batch: 0,
        }
    }
}

/// The outcome of one pushed I/O.
#[derive(Debug)]
pub struct Completion {
    pub tag: u64,
    pub result: Result<()>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotOp {
    Read,
    Write,
    Flush,
}

impl SlotOp {
    fn name(self) -> &'static str {
        match self {
            SlotOp::Read => "read",
            SlotOp::Write => "write",
            SlotOp::Flush => "flush",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    op: SlotOp,
    tag: u64,
    offset: u64,
    addr: usize,
    len: u32,
    done: u32,
    buffer: u16,
    fua: bool,
    retries: u32,
}

/// Completions taken off the ring per pass of [`Queue::reap`].
const REAP_BATCH: usize = 64;

pub struct Queue {
    // Field order is drop order: the ring (and its registrations) goes before the buffers.
    ring: IoUring,
    fd: RawFd,
    file_registered: bool,
    buffers_registered: bool,
    geometry: Geometry,
    submit_batch: u32,
    unsubmitted: u32,
    slots: Slots<Slot>,
    buffers: BufferPool,
}

impl Queue {
    /// Sets up a ring over `fd` (which must stay open while the queue lives).
    pub(crate) fn new(fd: RawFd, geometry: Geometry, config: &QueueConfig) -> Result<Self> {
        if config.depth == 0 || config.depth > QUEUE_DEPTH_MAX {
            return Err(Error::invalid(
                "queue_depth",
                format!("{} is not in 1..={QUEUE_DEPTH_MAX}", config.depth),
            ));
        }
        let buffers = BufferPool::new(
            config.buffer_count,
            config.buffer_bytes,
            geometry.logical_block_bytes,
            SLOT_BYTES_MAX,
        )?;

        let mut builder = IoUring::builder();
        match config.sqpoll_idle_ms {
            // SQPOLL runs submission on a kernel thread; task-run tuning does not apply.
            Some(idle_ms) => {
                builder.setup_sqpoll(idle_ms);
            }
            None if config.single_issuer => {
                builder.setup_single_issuer().setup_defer_taskrun();
            }
            None => {
                builder.setup_coop_taskrun();
            }
        }
        if config.iopoll {
            builder.setup_iopoll();
        }
        let ring = builder
            .setup_cqsize(config.depth * 2)
            .build(config.depth)
            .map_err(|source| Error::Ring {
                what: "setup",
                source,
            })?;

        // A registered file saves a file-table lookup and refcount per I/O. It
        // is an optimisation only: without it the plain descriptor is used.
        let file_registered = ring.submitter().register_files(&[fd]).is_ok();

        let iovecs: Vec<libc::iovec> = buffers
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        // Registered buffers are pinned once instead of on every I/O. They
        // count against RLIMIT_MEMLOCK for unprivileged users; when the kernel
        // refuses, the same buffers are used unregistered.
        let buffers_registered = !iovecs.is_empty()
            // SAFETY: the iovecs describe live allocations owned by `buffers`,
            // which outlive the ring (field order above) and are never moved.
            && unsafe { ring.submitter().register_buffers(&iovecs) }.is_ok();

        Ok(Self {
            ring,
            fd,
            file_registered,
            buffers_registered,
            geometry,
            submit_batch: config.submit_batch,
            unsubmitted: 0,
            slots: Slots::new(config.depth),
            buffers,
        })
    }

    pub fn depth(&self) -> usize {
        self.slots.depth()
    }

    pub fn in_flight(&self) -> usize {
        self.slots.in_flight()
    }

    pub fn has_free_slot(&self) -> bool {
        self.slots.has_free()
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Whether the kernel accepted the buffer registration (else plain reads/writes are used).
    pub fn buffers_registered(&self) -> bool {
        self.buffers_registered
    }

    pub fn file_registered(&self) -> bool {
        self.file_registered
    }

    pub fn buffer_count(&self) -> usize {
        self.buffers.len()
    }

    /// The buffer, unless an I/O on it is in flight.
    pub fn buffer(&self, index: usize) -> Option<&[u8]> {
        self.buffers.get(index)
    }

    /// The buffer, unless an I/O on it is in flight.
    pub fn buffer_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        self.buffers.get_mut(index)
    }

    /// Reads `len` bytes at `offset` into registered buffer `index`.
    pub fn read_to_buffer(
        &mut self,
        index: usize,
        offset: u64,
        len: usize,
        tag: u64,
    ) -> Result<()> {
        let addr = self.buffers.check_free(index, len)?;
        self.push(SlotOp::Read, tag, offset, addr, len, index as u16, false)
    }

    /// Writes the first `len` bytes of registered buffer `index` at `offset`.
    pub fn write_from_buffer(
        &mut self,
        index: usize,
        offset: u64,
        len: usize,
        fua: bool,
        tag: u64,
    ) -> Result<()> {
        let addr = self.buffers.check_free(index, len)?;
        self.push(SlotOp::Write, tag, offset, addr, len, index as u16, fua)
    }

    /// Makes everything that completed before this point durable (fdatasync).
    pub fn flush(&mut self, tag: u64) -> Result<()> {
        self.push(SlotOp::Flush, tag, 0, 0, 0, NO_BUFFER, false)
    }

    /// Reads into caller memory.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay valid and untouched until this I/O's
    /// completion has been reaped.
    pub(crate) unsafe fn read_raw(
        &mut self,
        ptr: *mut u8,
        len: usize,
        offset: u64,
        tag: u64,
    ) -> Result<()> {
        self.push(
            SlotOp::Read,
            tag,
            offset,
            ptr as usize,
            len,
            NO_BUFFER,
            false,
        )
    }

    /// Writes from caller memory.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay valid and unmodified until this I/O's
    /// completion has been reaped.
    pub(crate) unsafe fn write_raw(
        &mut self,
        ptr: *const u8,
        len: usize,
        offset: u64,
        fua: bool,
        tag: u64,
    ) -> Result<()> {
        self.push(
            SlotOp::Write,
            tag,
            offset,
            ptr as usize,
            len,
            NO_BUFFER,
            fua,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        op: SlotOp,
        tag: u64,
        offset: u64,
        addr: usize,
        len: usize,
        buffer: u16,
        fua: bool,
    ) -> Result<()> {
        if op != SlotOp::Flush {
            if len > SLOT_BYTES_MAX {
                return Err(Error::invalid(
                    "length",
                    format!("{len} is over the per-I/O maximum of {SLOT_BYTES_MAX}"),
                ));
            }
            self.geometry.check_range(offset, len as u64)?;
            if addr % self.geometry.memory_align_bytes as usize != 0 {
                return Err(Error::invalid(
                    "buffer",
                    format!(
                        "address {addr:#x} is not aligned to {} bytes",
                        self.geometry.memory_align_bytes
                    ),
                ));
            }
        }
        let slot_index = self.slots.claim()?;
        self.buffers.lend(buffer);
        self.slots.set(
            slot_index,
            Slot {
                op,
                tag,
                offset,
                addr,
                len: len as u32,
                done: 0,
                buffer,
                fua,
                retries: 0,
            },
        );
        self.queue_sqe(slot_index);
        Ok(())
    }

    /// Puts the remaining part of a slot's I/O on the submission queue.
    fn queue_sqe(&mut self, slot_index: u32) {
        let slot = *self.slots.get(slot_index);
        let offset = slot.offset + u64::from(slot.done);
        let addr = slot.addr + slot.done as usize;
        let len = slot.len - slot.done;
        let buffer_index =
            (self.buffers_registered && slot.buffer != NO_BUFFER).then_some(slot.buffer);
        let fd = if self.file_registered {
            BackingFd::Fixed(0)
        } else {
            BackingFd::Raw(self.fd)
        };
        let entry: squeue::Entry = match slot.op {
            SlotOp::Read => sqe::read(fd, addr as *mut u8, len, offset, buffer_index),
            SlotOp::Write => sqe::write(fd, addr as *const u8, len, offset, slot.fua, buffer_index),
            SlotOp::Flush => sqe::flush(fd),
        }
        .user_data(u64::from(slot_index));
        // The submission queue has as many entries as there are slots and a
        // slot has at most one entry queued, so there is always room; the
        // loop only guards against a kernel that has not consumed entries yet.
        loop {
            // SAFETY: the entry's buffer is valid until its completion is
            // reaped: queue-owned buffers live as long as the ring, and raw
            // callers promise the same for theirs (see read_raw/write_raw).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                break;
            }
            let _ = self.ring.submit();
        }
        self.unsubmitted += 1;
        if self.submit_batch > 0 && self.unsubmitted >= self.submit_batch {
            // A failure here resurfaces at the next submit_and_wait, which
            // submits the same entries again.
            let _ = self.submit();
        }
    }

    /// Submits what is queued and waits until at least `want` completions
    /// are ready (clamped to the I/Os in flight, so it never waits forever).
    pub fn submit_and_wait(&mut self, want: usize) -> Result<()> {
        let want = want.min(self.in_flight());
        loop {
            match self.ring.submit_and_wait(want) {
                Ok(_) => {
                    self.unsubmitted = 0;
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // Completion queue full or kernel short of memory: reaping makes room.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) => {
                    return Ok(())
                }
                Err(source) => {
                    return Err(Error::Ring {
                        what: "submit",
                        source,
                    })
                }
            }
        }
    }

    /// Submits what is queued without waiting.
    pub fn submit(&mut self) -> Result<()> {
        self.submit_and_wait(0)
    }

    /// Hands every finished I/O to `on_done`; partial transfers and `EAGAIN`
    /// are resubmitted instead (and reported later). Returns how many finished.
    pub fn reap(&mut self, mut on_done: impl FnMut(Completion)) -> usize {
        let mut finished = 0;
        let mut batch = [(0u64, 0i32); REAP_BATCH];
        loop {
            let taken = {
                let mut completion = self.ring.completion();
                let mut taken = 0;
                while taken < REAP_BATCH {
                    let Some(cqe) = completion.next() else { break };
                    batch[taken] = (cqe.user_data(), cqe.result());
                    taken += 1;
                }
                taken
            };
            if taken == 0 {
                return finished;
            }
            for &(user_data, result) in &batch[..taken] {
                if let Some(done) = self.advance(user_data as u32, result) {
                    finished += 1;
                    on_done(done);
                }
            }
        }
    }

    /// Accounts one CQE to its slot; returns the completion once the slot is done.
    fn advance(&mut self, slot_index: u32, result: i32) -> Option<Completion> {
        let slot = self.slots.get_mut(slot_index);
        let outcome = if result == -libc::EAGAIN {
            slot.retries += 1;
            if slot.retries <= EAGAIN_RETRIES_MAX {
                self.queue_sqe(slot_index);
                return None;
            }
            Err(io_error(slot, result))
        } else if result < 0 {
            Err(io_error(slot, result))
        } else if slot.op == SlotOp::Flush {
            Ok(())
        } else {
            let remaining = slot.len - slot.done;
            let moved = (result as u32).min(remaining);
            if moved == 0 && remaining > 0 {
                Err(Error::NoProgress {
                    op: slot.op.name(),
                    offset: slot.offset + u64::from(slot.done),
                    remaining,
                })
            } else {
                slot.done += moved;
                if slot.done < slot.len {
                    self.queue_sqe(slot_index);
                    return None;
                }
                Ok(())
            }
        };
        let slot = self.slots.finish(slot_index);
        self.buffers.release(slot.buffer);
        Some(Completion {
            tag: slot.tag,
            result: outcome,
        })
    }

    /// Waits for every I/O in flight, discarding the outcomes.
    ///
    /// Caller memory may be in the kernel's hands until then, so if the ring
    /// itself stops working this aborts rather than return and let that
    /// memory be reused under a running DMA.
    pub(crate) fn wait_all(&mut self, mut on_done: impl FnMut(Completion)) {
        while self.in_flight() > 0 {
            if let Err(e) = self.submit_and_wait(1) {
                eprintln!("vexfs-engine: io_uring failed with I/O in flight: {e}; aborting");
                std::process::abort();
            }
            self.reap(&mut on_done);
        }
    }
}

/// A queue a thread keeps and drives itself, whatever the backend: slots
/// of I/O in flight on buffers the queue owns, a wait for completions, and
/// their reaping. [`Queue`] (io_uring) and [`crate::RbdQueue`] (librbd)
/// are one; benchmark and test loops are written once against
/// `dyn BufferQueue` (a virtual call per I/O is noise beside the I/O).
pub trait BufferQueue {
    /// Slots: I/Os in flight at most.
    fn depth(&self) -> usize;
    fn in_flight(&self) -> usize;
    fn buffer_count(&self) -> usize;
    /// The buffer, unless an I/O on it is in flight.
    fn buffer(&self, index: usize) -> Option<&[u8]>;
    /// The buffer, unless an I/O on it is in flight.
    fn buffer_mut(&mut self, index: usize) -> Option<&mut [u8]>;
    /// Reads `len` bytes at `offset` into buffer `index`.
    fn read_to_buffer(&mut self, index: usize, offset: u64, len: usize, tag: u64) -> Result<()>;
    /// Writes the first `len` bytes of buffer `index` at `offset`.
    fn write_from_buffer(
        &mut self,
        index: usize,
        offset: u64,
        len: usize,
        fua: bool,
        tag: u64,
    ) -> Result<()>;
    /// Makes everything that completed before this point durable.
    fn flush(&mut self, tag: u64) -> Result<()>;
    /// Hands queued I/O to the backend and waits until at least `want`
    /// completions are ready (clamped to the I/Os in flight).
    fn submit_and_wait(&mut self, want: usize) -> Result<()>;
    /// Hands every finished I/O to `on_done`; returns how many finished.
    fn reap(&mut self, on_done: &mut dyn FnMut(Completion)) -> usize;
    /// Whether the buffers are registered with the kernel (io_uring only).
    fn buffers_registered(&self) -> bool {
        false
    }
    /// Whether the backing descriptor is registered with the kernel (io_uring only).
    fn file_registered(&self) -> bool {
        false
    }
}

/// A device that hands out [`BufferQueue`]s for one thread each to keep
/// (benchmark workers, test passes); the queue borrows the device.
pub trait QueueDevice: crate::BlockDevice {
    fn dedicated_queue(&self, config: &QueueConfig) -> Result<Box<dyn BufferQueue + '_>>;
}

/// Implements [`BufferQueue`] for a queue type by forwarding to its
/// inherent methods of the same names, which stay callable without the
/// trait in scope; the optional trailing names are the io_uring-only
/// `fn(&self) -> bool` queries to forward instead of taking the defaults.
macro_rules! forward_buffer_queue {
    ($queue:ty $(, $query:ident)*) => {
        impl $crate::queue::BufferQueue for $queue {
            fn depth(&self) -> usize {
                <$queue>::depth(self)
            }
            fn in_flight(&self) -> usize {
                <$queue>::in_flight(self)
            }
            fn buffer_count(&self) -> usize {
                <$queue>::buffer_count(self)
            }
            fn buffer(&self, index: usize) -> Option<&[u8]> {
                <$queue>::buffer(self, index)
            }
            fn buffer_mut(&mut self, index: usize) -> Option<&mut [u8]> {
                <$queue>::buffer_mut(self, index)
            }
            fn read_to_buffer(
                &mut self,
                index: usize,
                offset: u64,
                len: usize,
                tag: u64,
            ) -> $crate::error::Result<()> {
                <$queue>::read_to_buffer(self, index, offset, len, tag)
            }
            fn write_from_buffer(
                &mut self,
                index: usize,
                offset: u64,
                len: usize,
                fua: bool,
                tag: u64,
            ) -> $crate::error::Result<()> {
                <$queue>::write_from_buffer(self, index, offset, len, fua, tag)
            }
            fn flush(&mut self, tag: u64) -> $crate::error::Result<()> {
                <$queue>::flush(self, tag)
            }
            fn submit_and_wait(&mut self, want: usize) -> $crate::error::Result<()> {
                <$queue>::submit_and_wait(self, want)
            }
            fn reap(&mut self, on_done: &mut dyn FnMut($crate::queue::Completion)) -> usize {
                <$queue>::reap(self, on_done)
            }
            $(
                fn $query(&self) -> bool {
                    <$queue>::$query(self)
                }
            )*
        }
    };
}
// Without the `rbd` feature only `Queue` below uses it.
#[cfg_attr(not(feature = "rbd"), allow(unused_imports))]
pub(crate) use forward_buffer_queue;

forward_buffer_queue!(Queue, buffers_registered, file_registered);

fn io_error(slot: &Slot, result: i32) -> Error {
    Error::Io {
        op: slot.op.name(),
        offset: slot.offset + u64::from(slot.done),
        len: u64::from(slot.len - slot.done),
        source: io::Error::from_raw_os_error(-result),
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Never free buffers (ours or a caller's) under an I/O in flight.
        self.wait_all(|_| {});
    }
}
