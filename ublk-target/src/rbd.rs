//! Serving an RBD image on a ublk queue thread: a tag's task hands its
//! request to librbd as one aio on the queue's own [`RbdQueue`], then waits;
//! librbd's callback thread writes the queue's eventfd; one more task on the
//! same executor keeps an io_uring read of that eventfd in flight on
//! libublk's per-queue ring, and when it completes, reaps the finished aio
//! and wakes their tags. So backing completions arrive through the queue's
//! own ring, next to the ublk commands: no thread of ours sits between
//! librbd and the kernel.
//!
//! Durability: the device advertises a volatile cache with FUA (librbd's
//! cache may hold writes); FLUSH is `rbd_aio_flush`, a FUA write is the
//! write then a flush (see `vexfs_engine::rbd`). DISCARD is
//! `rbd_aio_discard`, WRITE_ZEROES `rbd_aio_write_zeroes`.

use std::cell::RefCell;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use io_uring::{opcode, types};
use libublk::uring_async::ublk_submit_sqe_async;
use libublk::{UblkError, UblkUringData};
use vexfs_engine::{Completion, QueueConfig, RbdDevice, RbdQueue};

use crate::request::Request;

/// The librbd side of one ublk queue: the aio queue, and per tag the
/// outcome of its aio (once reaped) and the task waiting for it.
pub struct RbdCompletions {
    queue: RefCell<RbdQueue>,
    /// Per tag: the finished aio's result, until its task takes it.
    outcome: RefCell<Vec<Option<Result<(), i32>>>>,
    waiting: RefCell<Vec<Option<Waker>>>,
    /// Where the ring's read of the eventfd puts the count. The read may
    /// still be in flight when the queue goes down, and the ring outlives
    /// this struct (it belongs to libublk's thread), so the 8 bytes are
    /// leaked, once per queue thread, and never read.
    count: *mut u64,
}

impl RbdCompletions {
    /// A queue of `depth` slots (one per tag) on `device`.
    pub fn new(device: &RbdDevice, depth: u16) -> Result<Self, vexfs_engine::Error> {
        let queue = device.queue(&QueueConfig {
            depth: u32::from(depth),
            ..QueueConfig::default()
        })?;
        Ok(Self {
            queue: RefCell::new(queue),
            outcome: RefCell::new(vec![None; usize::from(depth)]),
            waiting: RefCell::new(vec![None; usize::from(depth)]),
            count: Box::into_raw(Box::new(0)),
        })
    }

    /// Serves one request of `tag`: the kernel's result (bytes moved or 0),
    /// or the errno librbd gave.
    pub async fn serve(&self, tag: u16, request: Request, buffer: &mut [u8]) -> Result<i32, i32> {
        let tag_u64 = u64::from(tag);
        let pushed = {
            let mut queue = self.queue.borrow_mut();
            match request {
                // SAFETY: the tag's buffer lives as long as its task, which
                // waits below for this aio before touching the buffer again.
                Request::Read { offset, len } => unsafe {
                    queue.read_raw(buffer.as_mut_ptr(), len as usize, offset, tag_u64)
                },
                // SAFETY: as above; the buffer is not written while in flight.
                Request::Write { offset, len, fua } => unsafe {
                    queue.write_raw(buffer.as_ptr(), len as usize, offset, fua, tag_u64)
                },
                Request::Flush => queue.flush(tag_u64),
                Request::Discard { offset, len } => queue.discard(offset, len, tag_u64),
                Request::WriteZeroes { offset, len } => queue.write_zeroes(offset, len, tag_u64),
            }
        };
        pushed.map_err(|e| e.errno())?;
        self.finished(tag).await?;
        Ok(match request {
            Request::Read { len, .. } | Request::Write { len, .. } => len as i32,
            _ => 0,
        })
    }

    /// Resolves once the pump has reaped `tag`'s aio.
    async fn finished(&self, tag: u16) -> Result<(), i32> {
        let index = usize::from(tag);
        poll_fn(|cx| match self.outcome.borrow_mut()[index].take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                self.waiting.borrow_mut()[index] = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// The pump: reads the eventfd on the queue's ring, reaps, wakes; until
    /// the queue goes down (the read then never completes, or fails).
    pub async fn pump(&self) -> Result<(), UblkError> {
        let fd = self.queue.borrow().event_fd();
        loop {
            // The kernel writes 8 bytes to `count`, leaked and so valid for
            // as long as the ring may complete this read.
            let read = opcode::Read::new(types::Fd(fd), self.count.cast(), 8).build();
            let result = ublk_submit_sqe_async(read, UblkUringData::Target as u64).await?;
            if result < 0 && result != -libc::EINTR && result != -libc::EAGAIN {
                return Err(UblkError::OtherError(result));
            }
            self.reap();
        }
    }

    fn reap(&self) {
        let mut outcome = self.outcome.borrow_mut();
        let mut waiting = self.waiting.borrow_mut();
        self.queue.borrow_mut().reap(|done: Completion| {
            let index = done.tag as usize;
            outcome[index] = Some(done.result.map_err(|e| e.errno()));
            if let Some(waker) = waiting[index].take() {
                waker.wake();
            }
        });
    }
}
