//! The data path: one thread per ublk queue, one async task per tag.
//!
//! A tag's task fetches a request, serves it and commits the result, in a
//! loop, until the queue goes down. For O_DIRECT backings the backing
//! descriptor is registered in libublk's per-queue ring (fixed file 1; file 0
//! is `/dev/ublkcN`), and the task submits the engine's entries there: the
//! request and its backing I/O complete on the same ring and the same thread.
//! An RBD image's aio complete through an eventfd read on that same ring
//! (see [`crate::rbd`]).

use std::cell::Cell;
use std::rc::Rc;

use libublk::helpers::IoBuf;
use libublk::io::{UblkDev, UblkQueue};
use libublk::uring_async::ublk_submit_sqe_async;
use libublk::{BufDesc, UblkError, UblkUringData};
use vexfs_engine::sqe::{self, BackingFd};
use vexfs_engine::{BackingKind, BlockDevice};

use crate::backing::{Backing, Served};
use crate::rbd::RbdCompletions;
use crate::request::{decode, Request};

/// Index of the backing in the queue ring's registered files.
pub const BACKING_FIXED_FILE: u32 = 1;
/// Times one backing I/O is resubmitted after EAGAIN before it fails.
pub const EAGAIN_RETRIES_MAX: u32 = 1000;
/// Backing errors one queue thread logs; past this it counts them silently.
pub const ERRORS_LOGGED_MAX: u64 = 64;
/// Seconds a queue thread sleeps in the kernel with nothing to do.
const IDLE_WAIT_SECONDS: u64 = 20;

/// Registers the backing's descriptor with every queue ring libublk creates.
pub fn register_backing(dev: &mut UblkDev, served: &Served) {
    if let Backing::Direct(device) = &served.backing {
        let tgt = &mut dev.tgt;
        debug_assert_eq!(tgt.nr_fds as u32, BACKING_FIXED_FILE);
        tgt.fds[tgt.nr_fds as usize] = device.raw_fd();
        tgt.nr_fds += 1;
    }
}

/// Body of queue thread `qid`: returns when the device is stopped or deleted.
pub fn serve_queue(qid: u16, dev: &UblkDev, served: &Served) {
    let queue = match UblkQueue::new(qid, dev) {
        Ok(queue) => Rc::new(queue),
        Err(e) => {
            eprintln!("vexfs-ublk: queue {qid}: setup failed: {e}");
            return;
        }
    };
    let rbd = match &served.backing {
        Backing::Rbd(device) => match RbdCompletions::new(device, dev.dev_info.queue_depth) {
            Ok(completions) => Some(Rc::new(completions)),
            Err(e) => {
                eprintln!("vexfs-ublk: queue {qid}: RBD queue setup failed: {e}");
                return;
            }
        },
        _ => None,
    };
    let errors = Rc::new(Cell::new(0u64));
    let executor = Rc::new(smol::LocalExecutor::new());
    let tasks: Vec<_> = queue
        .tags()
        .map(|tag| {
            let (queue, errors, rbd) = (queue.clone(), errors.clone(), rbd.clone());
            executor.spawn(async move {
                match serve_tag(&queue, tag, served, rbd.as_deref(), &errors).await {
                    Ok(()) | Err(UblkError::QueueIsDown) => {}
                    Err(e) => eprintln!("vexfs-ublk: queue {qid} tag {tag}: {e}"),
                }
            })
        })
        .collect();
    // Not among `tasks`: it runs until the queue goes down, and the queue
    // is done when the tags are.
    let _pump = rbd.clone().map(|rbd| {
        executor.spawn(async move {
            if let Err(e) = rbd.pump().await {
                eprintln!("vexfs-ublk: queue {qid}: RBD completions: {e}");
            }
        })
    });
    let run = executor.clone();
    smol::block_on(executor.run(async move {
        let run_ready = || while run.try_tick() {};
        let all_done = || tasks.iter().all(|task| task.is_finished());
        if let Err(e) =
            libublk::wait_and_handle_io_events(&queue, Some(IDLE_WAIT_SECONDS), run_ready, all_done)
                .await
        {
            eprintln!("vexfs-ublk: queue {qid}: {e}");
        }
    }));
    if errors.get() > ERRORS_LOGGED_MAX {
        eprintln!(
            "vexfs-ublk: queue {qid}: {} backing errors in all",
            errors.get()
        );
    }
}

async fn serve_tag(
    queue: &UblkQueue<'_>,
    tag: u16,
    served: &Served,
    rbd: Option<&RbdCompletions>,
    errors: &Cell<u64>,
) -> Result<(), UblkError> {
    let buffer_bytes = queue.dev.dev_info.max_io_buf_bytes;
    let mut buffer = IoBuf::<u8>::new(buffer_bytes as usize);
    queue
        .submit_io_prep_cmd(tag, BufDesc::Slice(buffer.as_slice()), 0, Some(&buffer))
        .await?;
    loop {
        let result = match decode(queue.get_iod(tag), served.size_bytes, buffer_bytes) {
            Ok(request) => match serve(served, rbd, tag, request, buffer.as_mut_slice()).await {
                Ok(done) => done,
                Err(errno) => {
                    note_error(errors, queue.get_qid(), &request, errno);
                    -libc::EIO
                }
            },
            Err(refused) => -refused.errno(),
        };
        queue
            .submit_io_commit_cmd(tag, BufDesc::Slice(buffer.as_slice()), result)
            .await?;
    }
}

fn note_error(errors: &Cell<u64>, qid: u16, request: &Request, errno: i32) {
    errors.set(errors.get() + 1);
    if errors.get() <= ERRORS_LOGGED_MAX {
        let message = std::io::Error::from_raw_os_error(errno);
        eprintln!("vexfs-ublk: queue {qid}: {request:?} failed on the backing: {message}; reported as EIO");
    }
}

/// Serves one request: the kernel's result (bytes moved, or 0) or the
/// backing's errno.
async fn serve(
    served: &Served,
    rbd: Option<&RbdCompletions>,
    tag: u16,
    request: Request,
    buffer: &mut [u8],
) -> Result<i32, i32> {
    match &served.backing {
        Backing::Ram(ram) => serve_ram(ram, request, buffer),
        Backing::Direct(device) => serve_direct(device.kind(), device, request, buffer).await,
        Backing::Rbd(_) => match rbd {
            Some(rbd) => rbd.serve(tag, request, buffer).await,
            // serve_queue makes the completions before any tag runs.
            None => Err(libc::EIO),
        },
    }
}

fn serve_ram(
    ram: &vexfs_engine::RamDevice,
    request: Request,
    buffer: &mut [u8],
) -> Result<i32, i32> {
    let outcome = match request {
        Request::Read { offset, len } => ram.read_at(offset, &mut buffer[..len as usize]),
        Request::Write { offset, len, .. } => ram.write_at(offset, &buffer[..len as usize]),
        Request::Flush => Ok(()),
        Request::Discard { offset, len } | Request::WriteZeroes { offset, len } => {
            ram.discard(offset, len)
        }
    };
    outcome.map_err(|e| e.errno())?;
    Ok(transferred(request))
}

async fn serve_direct(
    kind: BackingKind,
    device: &vexfs_engine::UringDevice,
    request: Request,
    buffer: &mut [u8],
) -> Result<i32, i32> {
    let fd = BackingFd::Fixed(BACKING_FIXED_FILE);
    match request {
        Request::Read { offset, len } => {
            transfer(offset, len, |done| {
                let addr = buffer[done as usize..].as_mut_ptr();
                sqe::read(fd, addr, len - done, offset + u64::from(done), None)
            })
            .await?
        }
        Request::Write { offset, len, fua } => {
            transfer(offset, len, |done| {
                let addr = buffer[done as usize..].as_ptr();
                sqe::write(fd, addr, len - done, offset + u64::from(done), fua, None)
            })
            .await?
        }
        Request::Flush => complete(sqe::flush(fd)).await.map(drop)?,
        Request::WriteZeroes { offset, len } => {
            let zeroed = complete(sqe::fallocate(fd, sqe::FALLOC_ZERO_RANGE, offset, len)).await;
            match zeroed {
                Err(errno) if not_offered(errno) && kind == BackingKind::RegularFile => {
                    // Filesystems without ZERO_RANGE (tmpfs) still punch holes,
                    // which read back as zeros.
                    match complete(sqe::fallocate(fd, sqe::FALLOC_PUNCH_HOLE, offset, len)).await {
                        Err(errno) if not_offered(errno) => {
                            write_zeros(fd, offset, len, buffer).await?
                        }
                        other => other.map(drop)?,
                    }
                }
                Err(errno) if not_offered(errno) => write_zeros(fd, offset, len, buffer).await?,
                other => other.map(drop)?,
            }
        }
        Request::Discard { offset, len } => {
            let mode = match kind {
                BackingKind::RegularFile => sqe::FALLOC_PUNCH_HOLE,
                BackingKind::BlockDevice => sqe::FALLOC_DISCARD_BLOCK_DEVICE,
            };
            match complete(sqe::fallocate(fd, mode, offset, len)).await {
                // Kernels without the async discard mode: BLKDISCARD, which
                // blocks this queue for the length of the discard.
                Err(errno) if not_offered(errno) && kind == BackingKind::BlockDevice => {
                    device.discard_range(offset, len).map_err(|e| e.errno())?
                }
                other => other.map(drop)?,
            }
        }
    }
    Ok(transferred(request))
}

fn transferred(request: Request) -> i32 {
    match request {
        // Lengths were checked against the tag buffer (at most 1 MiB-ish).
        Request::Read { len, .. } | Request::Write { len, .. } => len as i32,
        _ => 0,
    }
}

fn not_offered(errno: i32) -> bool {
    errno == libc::EOPNOTSUPP || errno == libc::EINVAL
}

/// Submits one entry on this queue's ring and waits for it, retrying EAGAIN.
async fn complete(entry: io_uring::squeue::Entry) -> Result<i32, i32> {
    for _ in 0..EAGAIN_RETRIES_MAX {
        let result = ublk_submit_sqe_async(entry.clone(), UblkUringData::Target as u64)
            .await
            .unwrap_or(-libc::EIO);
        match result {
            r if r == -libc::EAGAIN => continue,
            r if r < 0 => return Err(-r),
            r => return Ok(r),
        }
    }
    Err(libc::EAGAIN)
}

/// Moves `len` bytes, resubmitting the rest after a short transfer;
/// `entry_at(done)` builds the entry for the part not yet moved.
async fn transfer(
    offset: u64,
    len: u32,
    mut entry_at: impl FnMut(u32) -> io_uring::squeue::Entry,
) -> Result<(), i32> {
    let mut done = 0u32;
    while done < len {
        match complete(entry_at(done)).await? {
            // Zero bytes inside the device's range: the backing shrank.
            0 => {
                eprintln!(
                    "vexfs-ublk: backing ended at {} (I/O at {offset}+{len})",
                    offset + u64::from(done)
                );
                return Err(libc::EIO);
            }
            moved => done += moved as u32,
        }
    }
    Ok(())
}

/// Writes zeros over a range with plain writes, a buffer at a time.
async fn write_zeros(fd: BackingFd, offset: u64, len: u64, buffer: &mut [u8]) -> Result<(), i32> {
    buffer.fill(0);
    let mut done = 0u64;
    while done < len {
        let piece = (len - done).min(buffer.len() as u64) as u32;
        let at = offset + done;
        transfer(at, piece, |moved| {
            sqe::write(
                fd,
                buffer[moved as usize..].as_ptr(),
                piece - moved,
                at + u64::from(moved),
                false,
                None,
            )
        })
        .await?;
        done += u64::from(piece);
    }
    Ok(())
}
