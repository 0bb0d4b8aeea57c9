//! One thread's I/O in flight on an RBD image: a slot per aio, issued to
//! librbd when pushed; a wait on the queue's [`Signal`] (the eventfd
//! librbd's callback thread pokes); and the reaping of finished slots on
//! the owner's thread.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use super::ffi;
use super::image::Image;
use super::signal::{on_complete, Signal, Wake};
use super::{RBD_IO_BYTES_MAX, RBD_QUEUE_DEPTH_MAX};
use crate::buffer::{BufferPool, NO_BUFFER};
use crate::device::Geometry;
use crate::error::{Error, Result};
use crate::queue::{forward_buffer_queue, Completion, QueueConfig};
use crate::slots::Slots;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotOp {
    Read,
    Write,
    /// A FUA write: the write, then a flush, then the completion.
    WriteFua,
    /// The flush that ends a FUA write.
    WriteFuaFlush,
    Flush,
    Discard,
    WriteZeroes,
}

impl SlotOp {
    fn name(self) -> &'static str {
        match self {
            SlotOp::Read => "read",
            SlotOp::Write => "write",
            SlotOp::WriteFua => "FUA write",
            SlotOp::WriteFuaFlush => "flush after FUA write",
            SlotOp::Flush => "flush",
            SlotOp::Discard => "discard",
            SlotOp::WriteZeroes => "write-zeroes",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    op: SlotOp,
    tag: u64,
    offset: u64,
    len: u64,
    addr: usize,
    buffer: u16,
    completion: ffi::RbdCompletion,
}

/// A queue of aio on one image for one thread at a time (`Send`, not `Sync`).
pub struct RbdQueue {
    // Field order is drop order after Drop::drop has drained every slot.
    image: Arc<Image>,
    geometry: Geometry,
    signal: Arc<Signal>,
    wakes: Box<[Wake]>,
    slots: Slots<Slot>,
    /// Reaped slot numbers; swapped with `signal.done` so neither allocates.
    ready: Vec<u32>,
    buffers: BufferPool,
}

// SAFETY: the raw pointers (Wake::signal, Slot::completion) point into
// memory this queue owns or aio it alone reaps; moving the queue to another
// thread moves that ownership with it (the Arc'd Signal does not move).
unsafe impl Send for RbdQueue {}

fn rbd_error(op: SlotOp, offset: u64, len: u64, errno: i32) -> Error {
    Error::Rbd {
        op: op.name(),
        offset,
        len,
        errno: io::Error::from_raw_os_error(errno),
    }
}

impl RbdQueue {
    pub(crate) fn new(image: Arc<Image>, geometry: Geometry, config: &QueueConfig) -> Result<Self> {
        if config.depth == 0 || config.depth > RBD_QUEUE_DEPTH_MAX {
            return Err(Error::invalid(
                "queue_depth",
                format!("{} is not in 1..={RBD_QUEUE_DEPTH_MAX}", config.depth),
            ));
        }
        if config.sqpoll_idle_ms.is_some() || config.iopoll {
            return Err(Error::invalid(
                "queue",
                "SQPOLL and IOPOLL are io_uring modes; an RBD queue has no ring",
            ));
        }
        let buffers = BufferPool::new(
            config.buffer_count,
            config.buffer_bytes,
            geometry.logical_block_bytes,
            RBD_IO_BYTES_MAX,
        )?;
        let (signal, wakes) = Signal::new(config.depth).map_err(|errno| Error::Rbd {
            op: "eventfd",
            offset: 0,
            len: 0,
            errno,
        })?;
        let depth = config.depth as usize;
        Ok(Self {
            image,
            geometry,
            signal,
            wakes,
            slots: Slots::new(config.depth),
            ready: Vec::with_capacity(depth),
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

    /// The eventfd librbd's callbacks write once per finished aio: a caller
    /// with an event loop of its own (the ublk target's ring) reads it there
    /// and then calls [`RbdQueue::reap`] instead of [`RbdQueue::submit_and_wait`].
    pub fn event_fd(&self) -> RawFd {
        self.signal.event_fd()
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

    /// Reads `len` bytes at `offset` into buffer `index`.
    pub fn read_to_buffer(
        &mut self,
        index: usize,
        offset: u64,
        len: usize,
        tag: u64,
    ) -> Result<()> {
        let addr = self.buffers.check_free(index, len)?;
        self.push(SlotOp::Read, tag, offset, len as u64, addr, index as u16)
    }

    /// Writes the first `len` bytes of buffer `index` at `offset`.
    pub fn write_from_buffer(
        &mut self,
        index: usize,
        offset: u64,
        len: usize,
        fua: bool,
        tag: u64,
    ) -> Result<()> {
        let addr = self.buffers.check_free(index, len)?;
        let op = if fua { SlotOp::WriteFua } else { SlotOp::Write };
        self.push(op, tag, offset, len as u64, addr, index as u16)
    }

    /// Makes every write that completed before this point durable (`rbd_aio_flush`).
    pub fn flush(&mut self, tag: u64) -> Result<()> {
        self.push(SlotOp::Flush, tag, 0, 0, 0, NO_BUFFER)
    }

    /// Discards a range (`rbd_aio_discard`): whole objects read back as
    /// zeros afterwards; partial ones may keep their data.
    pub fn discard(&mut self, offset: u64, len: u64, tag: u64) -> Result<()> {
        self.push(SlotOp::Discard, tag, offset, len, 0, NO_BUFFER)
    }

    /// Zeroes a range (`rbd_aio_write_zeroes`): reads back as zeros.
    pub fn write_zeroes(&mut self, offset: u64, len: u64, tag: u64) -> Result<()> {
        self.push(SlotOp::WriteZeroes, tag, offset, len, 0, NO_BUFFER)
    }

    /// Reads into caller memory.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay valid and untouched until this I/O's
    /// completion has been reaped.
    pub unsafe fn read_raw(
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
            len as u64,
            ptr as usize,
            NO_BUFFER,
        )
    }

    /// Writes from caller memory.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay valid and unmodified until this I/O's
    /// completion has been reaped.
    pub unsafe fn write_raw(
        &mut self,
        ptr: *const u8,
        len: usize,
        offset: u64,
        fua: bool,
        tag: u64,
    ) -> Result<()> {
        let op = if fua { SlotOp::WriteFua } else { SlotOp::Write };
        self.push(op, tag, offset, len as u64, ptr as usize, NO_BUFFER)
    }

    fn push(
        &mut self,
        op: SlotOp,
        tag: u64,
        offset: u64,
        len: u64,
        addr: usize,
        buffer: u16,
    ) -> Result<()> {
        if matches!(op, SlotOp::Read | SlotOp::Write | SlotOp::WriteFua)
            && len > RBD_IO_BYTES_MAX as u64
        {
            return Err(Error::invalid(
                "length",
                format!("{len} is over the per-I/O maximum of {RBD_IO_BYTES_MAX}"),
            ));
        }
        if op != SlotOp::Flush {
            self.geometry.check_range(offset, len)?;
        }
        let slot_index = self.slots.claim()?;
        let slot = Slot {
            op,
            tag,
            offset,
            len,
            addr,
            buffer,
            completion: std::ptr::null_mut(),
        };
        match self.start(slot_index, slot) {
            Ok(()) => {
                self.buffers.lend(buffer);
                Ok(())
            }
            Err(e) => {
                self.slots.unclaim(slot_index);
                Err(e)
            }
        }
    }

    /// Hands `slot`'s aio to librbd; on success the slot is in flight.
    fn start(&mut self, slot_index: u32, mut slot: Slot) -> Result<()> {
        let wake: *const Wake = &self.wakes[slot_index as usize];
        let image = self.image.handle();
        // SAFETY: the Wake lives as long as the queue, which outlives the
        // aio (Drop drains); the callback only touches the Wake and Signal.
        let rc = unsafe {
            ffi::rbd_aio_create_completion(
                wake.cast_mut().cast(),
                Some(on_complete),
                &mut slot.completion,
            )
        };
        if rc < 0 {
            return Err(rbd_error(slot.op, slot.offset, slot.len, -rc));
        }
        let (offset, len, c) = (slot.offset, slot.len, slot.completion);
        // Store first: the callback may run before the call returns.
        self.slots.set(slot_index, slot);
        // SAFETY: the image is open while self.image lives; data addresses
        // are the queue's own buffers or caller memory the caller promised
        // (read_raw/write_raw) to keep until the completion is reaped; lengths
        // were checked against the device and RBD_IO_BYTES_MAX.
        let rc = unsafe {
            match slot.op {
                SlotOp::Read => {
                    ffi::rbd_aio_read(image, offset, len as usize, slot.addr as *mut _, c)
                }
                SlotOp::Write | SlotOp::WriteFua => {
                    ffi::rbd_aio_write(image, offset, len as usize, slot.addr as *const _, c)
                }
                SlotOp::WriteFuaFlush | SlotOp::Flush => ffi::rbd_aio_flush(image, c),
                SlotOp::Discard => ffi::rbd_aio_discard(image, offset, len, c),
                SlotOp::WriteZeroes => {
                    ffi::rbd_aio_write_zeroes(image, offset, len as usize, c, 0, 0)
                }
            }
        };
        if rc < 0 {
            self.slots.clear(slot_index);
            // SAFETY: librbd refused the aio, so the completion was never
            // queued and its callback will not run; ours is the only reference.
            unsafe { ffi::rbd_aio_release(c) };
            return Err(rbd_error(slot.op, offset, len, -rc));
        }
        Ok(())
    }

    /// Waits until at least `want` aio have finished (clamped to those in
    /// flight). Each aio is with librbd from the moment it was pushed, so
    /// there is nothing to submit.
    pub fn submit_and_wait(&mut self, want: usize) -> Result<()> {
        let want = want.min(self.in_flight());
        while self.signal.done().len() < want {
            self.signal.wait().map_err(|errno| Error::Rbd {
                op: "wait for completions",
                offset: 0,
                len: 0,
                errno,
            })?;
        }
        Ok(())
    }

    /// Hands every finished I/O to `on_done` (a FUA write once its flush has
    /// finished too). Returns how many finished.
    pub fn reap(&mut self, mut on_done: impl FnMut(Completion)) -> usize {
        let mut ready = std::mem::take(&mut self.ready);
        std::mem::swap(&mut ready, &mut *self.signal.done());
        // `ready` now holds the finished slots; the list holds our empty
        // vector, capacity and all.
        let mut finished = 0;
        for &slot_index in &ready {
            if let Some(done) = self.advance(slot_index) {
                finished += 1;
                on_done(done);
            }
        }
        ready.clear();
        self.ready = ready;
        finished
    }

    /// Accounts one finished aio; returns the completion once its slot is done.
    fn advance(&mut self, slot_index: u32) -> Option<Completion> {
        // Emptied, the index still held: a FUA write's flush reuses it.
        let slot = self
            .slots
            .clear(slot_index)
            .expect("a completion for a slot that is not in flight");
        // SAFETY: the aio finished (its callback ran) and this is the only
        // reap of it; the completion is released exactly once, here.
        let rc = unsafe {
            let rc = ffi::rbd_aio_get_return_value(slot.completion);
            ffi::rbd_aio_release(slot.completion);
            rc
        };
        let outcome = if rc < 0 {
            Err(rbd_error(slot.op, slot.offset, slot.len, (-rc) as i32))
        } else if slot.op == SlotOp::Read && rc as u64 != slot.len {
            // Within the image a read is whole (holes read as zeros): a short
            // one means the image shrank under us.
            Err(rbd_error(
                slot.op,
                slot.offset + rc as u64,
                slot.len - rc as u64,
                libc::EIO,
            ))
        } else if slot.op == SlotOp::WriteFua {
            let flush = Slot {
                op: SlotOp::WriteFuaFlush,
                completion: std::ptr::null_mut(),
                ..slot
            };
            match self.start(slot_index, flush) {
                Ok(()) => return None,
                Err(e) => Err(e),
            }
        } else {
            Ok(())
        };
        self.buffers.release(slot.buffer);
        self.slots.unclaim(slot_index);
        Some(Completion {
            tag: slot.tag,
            result: outcome,
        })
    }

    /// Waits for every aio in flight, handing each completion to `on_done`.
    ///
    /// Caller memory may be in librbd's hands until then, so if waiting
    /// itself fails this aborts rather than let that memory be reused.
    pub(crate) fn wait_all(&mut self, mut on_done: impl FnMut(Completion)) {
        while self.in_flight() > 0 {
            if let Err(e) = self.submit_and_wait(1) {
                eprintln!(
                    "vexfs-engine: waiting for librbd failed with I/O in flight: {e}; aborting"
                );
                std::process::abort();
            }
            self.reap(&mut on_done);
        }
    }
}

impl Drop for RbdQueue {
    fn drop(&mut self) {
        // Never free buffers, Wakes or the eventfd under an aio in flight.
        self.wait_all(|_| {});
    }
}

forward_buffer_queue!(RbdQueue);
