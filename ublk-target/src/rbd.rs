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

/// The request path of an RBD-backed ublk queue, without a ublk driver:
/// descriptors as the kernel would write them are decoded
/// ([`crate::request::decode`]) and served by [`RbdCompletions`] on a
/// thread set up as libublk sets up a queue thread (its thread-local ring,
/// a smol executor, a loop that waits on the ring and wakes the task whose
/// entry completed). Only libublk's fetch and commit of the descriptor are
/// missing. Needs a cluster: CEPH_CONF and VEXFS_TEST_RBD_IMAGE, an image of
/// at least 84 MiB (scripts/test-ceph); without them each test says so.
#[cfg(all(test, feature = "rbd"))]
mod tests {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::time::{Duration, Instant};

    use io_uring::{cqueue, types::SubmitArgs, types::Timespec, IoUring};
    use libublk::sys;
    use vexfs_engine::pattern::{check_block, fill_block};
    use vexfs_engine::{BlockDevice, RbdDevice};

    use super::RbdCompletions;
    use crate::request::{decode, Request};

    const BLOCK: usize = 4096;
    /// Past the 64 MiB that engine/tests/rbd.rs writes, in the same image:
    /// the tags' blocks,
    const REGION_AT: u64 = 64 << 20;
    const REGION_BYTES: u64 = 16 << 20;
    /// and, apart from them (the tests run at once), zeroing and discards.
    const ZEROING_AT: u64 = REGION_AT + REGION_BYTES;
    const ZEROING_BYTES: u64 = 4 << 20;
    /// The largest request a tag's buffer takes here (ublk's default max_io).
    const BUFFER_BYTES: u32 = 512 << 10;
    const DEPTH: u16 = 32;
    /// A test that has not finished by then has lost a completion.
    const TEST_DEADLINE: Duration = Duration::from_secs(120);

    fn test_image() -> Option<RbdDevice> {
        let (Ok(image), Ok(_)) = (
            std::env::var("VEXFS_TEST_RBD_IMAGE"),
            std::env::var("CEPH_CONF"),
        ) else {
            eprintln!("skipped: no Ceph cluster (set CEPH_CONF and VEXFS_TEST_RBD_IMAGE)");
            return None;
        };
        let spec = format!("rbd:{}", image.trim_start_matches("rbd:"));
        let device = RbdDevice::open(&spec, false).expect("the test image opens");
        assert!(
            device.geometry().size_bytes >= ZEROING_AT + ZEROING_BYTES,
            "the test image must hold at least {} bytes",
            ZEROING_AT + ZEROING_BYTES
        );
        Some(device)
    }

    /// A descriptor as the kernel writes it into the queue's shared area.
    fn iod(op: u32, flags: u32, offset: u64, len: u64) -> sys::ublksrv_io_desc {
        sys::ublksrv_io_desc {
            op_flags: op | flags,
            nr_sectors: u32::try_from(len >> 9).expect("a test request fits a descriptor"),
            start_sector: offset >> 9,
            addr: 0,
        }
    }

    type TagTask<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

    /// Runs `tags` as one queue thread runs its tag tasks, with the pump
    /// beside them, until every tag task is done.
    fn run_as_a_queue_thread(completions: &RbdCompletions, tags: Vec<TagTask<'_>>) {
        libublk::io::ublk_init_task_ring(|cell| {
            if cell.get().is_none() {
                let ring = IoUring::builder()
                    .build(u32::from(DEPTH) * 2)
                    .map_err(libublk::UblkError::IOError)?;
                let _ = cell.set(RefCell::new(ring));
            }
            Ok(())
        })
        .expect("the thread's ring");
        let executor = smol::LocalExecutor::new();
        let _pump = executor.spawn(async {
            completions
                .pump()
                .await
                .expect("the pump reads the eventfd");
        });
        let tasks: Vec<_> = tags.into_iter().map(|tag| executor.spawn(tag)).collect();
        let deadline = Instant::now() + TEST_DEADLINE;
        let wait = Timespec::from(Duration::from_millis(500));
        loop {
            while executor.try_tick() {}
            if tasks.iter().all(|task| task.is_finished()) {
                // A task's panic (a failed assertion) surfaces when its
                // handle is awaited.
                for task in tasks {
                    smol::block_on(task);
                }
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tags still waiting after {TEST_DEADLINE:?}: a completion was lost"
            );
            let done: Vec<cqueue::Entry> = libublk::io::with_task_io_ring_mut(|ring| {
                match ring
                    .submitter()
                    .submit_with_args(1, &SubmitArgs::new().timespec(&wait))
                {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                    Err(e) => panic!("waiting on the queue ring: {e}"),
                }
                ring.completion().collect()
            });
            for cqe in &done {
                libublk::uring_async::ublk_wake_task(cqe.user_data(), cqe);
            }
        }
    }

    /// Decodes `iod` for the test image and serves it on `tag`.
    async fn serve(
        completions: &RbdCompletions,
        device_bytes: u64,
        tag: u16,
        iod: sys::ublksrv_io_desc,
        buffer: &mut [u8],
    ) -> Result<i32, i32> {
        let request: Request = decode(&iod, device_bytes, BUFFER_BYTES).map_err(|e| e.errno())?;
        completions.serve(tag, request, buffer).await
    }

    #[test]
    fn every_tag_in_flight_reads_back_what_it_wrote() {
        let Some(device) = test_image() else { return };
        let size = device.geometry().size_bytes;
        let completions = RbdCompletions::new(&device, DEPTH).expect("an RBD queue");
        const ROUNDS: u64 = 6;
        let region = REGION_BYTES / u64::from(DEPTH);
        assert!(32 * 4 * BLOCK as u64 <= region);
        let completions = &completions;
        let tags: Vec<TagTask> = (0..DEPTH)
            .map(|tag| {
                Box::pin(async move {
                    let base = REGION_AT + u64::from(tag) * region;
                    let mut buffer = vec![0u8; BUFFER_BYTES as usize];
                    for round in 0..ROUNDS {
                        // 4 KiB to 128 KiB, at one of 4 places in the tag's 512 KiB.
                        let blocks = 1u64 << round;
                        let offset = base + (round * 7 % 4) * 32 * BLOCK as u64;
                        let len = blocks * BLOCK as u64;
                        let generation = (u64::from(tag) << 32) | round;
                        for (i, block) in buffer[..len as usize].chunks_mut(BLOCK).enumerate() {
                            fill_block(block, offset / BLOCK as u64 + i as u64, generation);
                        }
                        let fua = if round % 3 == 0 {
                            sys::UBLK_IO_F_FUA
                        } else {
                            0
                        };
                        let write = iod(sys::UBLK_IO_OP_WRITE, fua, offset, len);
                        let written = serve(completions, size, tag, write, &mut buffer).await;
                        assert_eq!(written, Ok(len as i32), "tag {tag} round {round} write");
                        buffer.fill(0);
                        let read = iod(sys::UBLK_IO_OP_READ, 0, offset, len);
                        let got = serve(completions, size, tag, read, &mut buffer).await;
                        assert_eq!(got, Ok(len as i32), "tag {tag} round {round} read");
                        for (i, block) in buffer[..len as usize].chunks(BLOCK).enumerate() {
                            assert_eq!(
                                check_block(block, offset / BLOCK as u64 + i as u64),
                                Ok(generation),
                                "tag {tag} round {round} block {i}"
                            );
                        }
                    }
                    let flush = iod(sys::UBLK_IO_OP_FLUSH, 0, 0, 0);
                    assert_eq!(serve(completions, size, tag, flush, &mut []).await, Ok(0));
                }) as TagTask
            })
            .collect();
        run_as_a_queue_thread(completions, tags);
    }

    #[test]
    fn zeroes_discards_and_refusals_complete_on_their_tag() {
        let Some(device) = test_image() else { return };
        let size = device.geometry().size_bytes;
        let completions = RbdCompletions::new(&device, DEPTH).expect("an RBD queue");
        let completions = &completions;
        let zeroed_at = ZEROING_AT;
        let zeroes_task: TagTask = Box::pin(async move {
            let len = 128 << 10;
            let mut buffer = vec![0u8; BUFFER_BYTES as usize];
            for (i, block) in buffer[..len].chunks_mut(BLOCK).enumerate() {
                fill_block(block, zeroed_at / BLOCK as u64 + i as u64, 7);
            }
            let write = iod(sys::UBLK_IO_OP_WRITE, 0, zeroed_at, len as u64);
            assert_eq!(
                serve(completions, size, 0, write, &mut buffer).await,
                Ok(len as i32)
            );
            let zeroes = iod(sys::UBLK_IO_OP_WRITE_ZEROES, 0, zeroed_at, len as u64);
            assert_eq!(serve(completions, size, 0, zeroes, &mut []).await, Ok(0));
            let read = iod(sys::UBLK_IO_OP_READ, 0, zeroed_at, len as u64);
            assert_eq!(
                serve(completions, size, 0, read, &mut buffer).await,
                Ok(len as i32)
            );
            assert!(
                buffer[..len].iter().all(|&b| b == 0),
                "write-zeroes read back as zeros"
            );
        });
        let discard_task: TagTask = Box::pin(async move {
            // Ceph 16 skips partial-object discards: only completion is checked.
            let discard = iod(sys::UBLK_IO_OP_DISCARD, 0, ZEROING_AT + (2 << 20), 1 << 20);
            assert_eq!(serve(completions, size, 1, discard, &mut []).await, Ok(0));
        });
        let refused_task: TagTask = Box::pin(async move {
            let mut buffer = vec![0u8; BUFFER_BYTES as usize];
            // Past the end: refused by decode, before librbd sees it.
            let past_end = iod(sys::UBLK_IO_OP_READ, 0, size, BLOCK as u64);
            assert_eq!(
                serve(completions, size, 2, past_end, &mut buffer).await,
                Err(libc::EIO)
            );
            // Larger than the tag's buffer: refused the same way.
            let too_big = iod(
                sys::UBLK_IO_OP_WRITE,
                0,
                REGION_AT,
                u64::from(BUFFER_BYTES) * 2,
            );
            assert_eq!(
                serve(completions, size, 2, too_big, &mut buffer).await,
                Err(libc::EIO)
            );
            // An error of the RBD queue reaches the tag with its errno: the
            // descriptor claims a device larger than the image, and the
            // queue checks the range against the image itself.
            let beyond_image = iod(sys::UBLK_IO_OP_READ, 0, size, BLOCK as u64);
            let request =
                decode(&beyond_image, size * 2, BUFFER_BYTES).expect("in the claimed range");
            let result = completions.serve(2, request, &mut buffer).await;
            assert_eq!(result, Err(libc::EINVAL), "a read past the image");
            let op = iod(sys::UBLK_IO_OP_ZONE_APPEND, 0, REGION_AT, BLOCK as u64);
            assert_eq!(
                serve(completions, size, 2, op, &mut buffer).await,
                Err(libc::EOPNOTSUPP)
            );
        });
        run_as_a_queue_thread(completions, vec![zeroes_task, discard_task, refused_task]);
    }
}
