//! One pass of I/O over the start of a device through a dedicated engine
//! queue (io_uring's [`vexfs_engine::Queue`] or librbd's
//! [`vexfs_engine::RbdQueue`], both a [`BufferQueue`]): keep `depth` I/Os
//! of `io_bytes` in flight over `[0, bytes)` in offset order, each with a
//! buffer of its own (registered, on io_uring), writing or
//! checking the engine's self-describing pattern blocks (block number,
//! generation, checksum). `verify`, `fill` and `check` are all made of these.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use vexfs_engine::pattern::{check_block, fill_block};
use vexfs_engine::{BufferQueue, Completion, Error as EngineError, QueueConfig, QueueDevice};

/// Tag of the flush that ends a write pass; data I/O are tagged with their buffer index.
const FLUSH_TAG: u64 = u64::MAX;

/// `[0, bytes)` cut into I/Os of `io_bytes` (the last may be shorter), each
/// made of pattern blocks of `pattern_block_bytes`.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub bytes: u64,
    pub io_bytes: usize,
    pub pattern_block_bytes: usize,
}

impl Layout {
    pub fn new(bytes: u64, io_bytes: usize, pattern_block_bytes: usize) -> Self {
        assert!(
            bytes % pattern_block_bytes as u64 == 0 && io_bytes % pattern_block_bytes == 0,
            "pattern blocks must tile every I/O: {bytes} / {io_bytes} / {pattern_block_bytes}"
        );
        Self {
            bytes,
            io_bytes,
            pattern_block_bytes,
        }
    }

    pub fn pattern_blocks(&self) -> u64 {
        self.bytes / self.pattern_block_bytes as u64
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Write { generation: u64 },
    Read,
}

/// Runs one pass of `layout` on `queue` with every slot busy. Reads are
/// handed to `on_read(offset, bytes)` as they complete (not in offset
/// order); `Break` from it, or the first failed I/O, stops new I/O. Returns
/// with nothing in flight unless the ring itself failed (the queue's drop
/// then waits).
fn drive(
    queue: &mut dyn BufferQueue,
    layout: &Layout,
    direction: Direction,
    mut on_read: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<(), EngineError> {
    let buffer_count = queue.buffer_count();
    let mut free_buffers: Vec<usize> = (0..buffer_count).rev().collect();
    // (offset, length) of the I/O each buffer carries.
    let mut targets = vec![(0u64, 0usize); buffer_count];
    let mut completed: Vec<Completion> = Vec::with_capacity(queue.depth());
    let mut next_offset = 0u64;
    let mut stopped = false;
    let mut first_error = None;
    loop {
        while !stopped && next_offset < layout.bytes {
            let Some(index) = free_buffers.pop() else {
                break;
            };
            let len = (layout.bytes - next_offset).min(layout.io_bytes as u64) as usize;
            let pushed = match direction {
                Direction::Write { generation } => {
                    let buffer = queue
                        .buffer_mut(index)
                        .expect("a free buffer has no I/O in flight");
                    fill_pattern(&mut buffer[..len], layout, next_offset, generation);
                    queue.write_from_buffer(index, next_offset, len, false, index as u64)
                }
                Direction::Read => queue.read_to_buffer(index, next_offset, len, index as u64),
            };
            if let Err(e) = pushed {
                free_buffers.push(index);
                first_error.get_or_insert(e);
                stopped = true;
                break;
            }
            targets[index] = (next_offset, len);
            next_offset += len as u64;
        }
        if queue.in_flight() == 0 {
            break;
        }
        queue.submit_and_wait(1)?;
        queue.reap(&mut |c| completed.push(c));
        for completion in completed.drain(..) {
            let index = completion.tag as usize;
            match completion.result {
                Ok(()) if matches!(direction, Direction::Read) && !stopped => {
                    let (offset, len) = targets[index];
                    let buffer = queue
                        .buffer(index)
                        .expect("a completed buffer has no I/O in flight");
                    stopped = on_read(offset, &buffer[..len]).is_break();
                }
                Ok(()) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                    stopped = true;
                }
            }
            free_buffers.push(index);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn fill_pattern(buffer: &mut [u8], layout: &Layout, offset: u64, generation: u64) {
    let first_block = offset / layout.pattern_block_bytes as u64;
    for (i, block) in buffer
        .chunks_exact_mut(layout.pattern_block_bytes)
        .enumerate()
    {
        fill_block(block, first_block + i as u64, generation);
    }
}

/// Writes pattern blocks of `generation` over `layout`, then fdatasyncs;
/// returns the time both took.
pub fn write_pass(
    queue: &mut dyn BufferQueue,
    layout: &Layout,
    generation: u64,
) -> Result<Duration, EngineError> {
    let start = Instant::now();
    drive(queue, layout, Direction::Write { generation }, |_, _| {
        ControlFlow::Continue(())
    })?;
    queue.flush(FLUSH_TAG)?;
    // The flush is the only I/O in flight, so its completion is the next one.
    let flushed = loop {
        queue.submit_and_wait(1)?;
        let mut outcome = None;
        queue.reap(&mut |c| outcome = Some(c.result));
        if let Some(result) = outcome {
            break result;
        }
    };
    flushed?;
    Ok(start.elapsed())
}

/// Reads `layout` back and hands each pattern block's number and
/// [`check_block`] verdict (its generation, or what is wrong) to `on_block`.
pub fn read_pass(
    queue: &mut dyn BufferQueue,
    layout: &Layout,
    mut on_block: impl FnMut(u64, Result<u64, String>) -> ControlFlow<()>,
) -> Result<Duration, EngineError> {
    let start = Instant::now();
    let block_bytes = layout.pattern_block_bytes;
    drive(queue, layout, Direction::Read, |offset, bytes| {
        let first_block = offset / block_bytes as u64;
        for (i, block) in bytes.chunks_exact(block_bytes).enumerate() {
            let number = first_block + i as u64;
            on_block(number, check_block(block, number))?;
        }
        ControlFlow::Continue(())
    })?;
    Ok(start.elapsed())
}

/// A dedicated queue with one `io_bytes` buffer per slot.
pub fn open_queue(
    device: &dyn QueueDevice,
    depth: u32,
    io_bytes: usize,
) -> Result<Box<dyn BufferQueue + '_>, EngineError> {
    let config = QueueConfig {
        depth,
        single_issuer: true,
        buffer_count: depth as usize,
        buffer_bytes: io_bytes,
        submit_batch: 0,
        ..QueueConfig::default()
    };
    match device.dedicated_queue(&config) {
        // SINGLE_ISSUER and DEFER_TASKRUN need Linux 6.1; older guest kernels
        // refuse the ring, which works without them.
        Err(EngineError::Ring { .. }) => device.dedicated_queue(&QueueConfig {
            single_issuer: false,
            ..config
        }),
        other => other,
    }
}

/// `EIO`-style name of the errnos a storage test meets, for people who
/// grep logs by name.
fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EIO => "EIO",
        libc::ENOSPC => "ENOSPC",
        libc::EINVAL => "EINVAL",
        libc::EROFS => "EROFS",
        libc::EBUSY => "EBUSY",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ENXIO => "ENXIO",
        libc::ENODEV => "ENODEV",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EFAULT => "EFAULT",
        libc::ENOTBLK => "ENOTBLK",
        libc::EMEDIUMTYPE => "EMEDIUMTYPE",
        libc::ENOLINK => "ENOLINK",
        libc::ENOTCONN => "ENOTCONN",
        // Ceph's names for what an RBD image returns.
        errno => vexfs_engine::rbd::errno_name(errno),
    }
}

/// An engine error with its errno spelled out.
pub fn describe(error: &EngineError) -> String {
    let errno = error.errno();
    format!("{error} (errno {errno} {})", errno_name(errno))
}

/// A file under the temp directory for one test, removed when dropped.
#[cfg(test)]
pub(crate) struct ScratchFile {
    pub path: std::path::PathBuf,
}

#[cfg(test)]
impl ScratchFile {
    /// A path nobody else uses (test name and process id); nothing is created yet.
    pub fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("vexfs-hwtest-{name}-{}.img", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Self { path }
    }
}

#[cfg(test)]
impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;
    use vexfs_engine::{UringDevice, UringOptions};

    const BLOCK: usize = 4096;

    fn scratch_device(name: &str, bytes: u64) -> (ScratchFile, UringDevice) {
        let scratch = ScratchFile::new(name);
        std::fs::File::create(&scratch.path)
            .and_then(|f| f.set_len(bytes))
            .expect("create scratch file");
        let device = UringDevice::open(&scratch.path, UringOptions::default()).expect("open");
        (scratch, device)
    }

    /// Every block's generation as read back, in block order.
    fn generations(queue: &mut dyn BufferQueue, layout: &Layout) -> Vec<Result<u64, String>> {
        let mut found = vec![Err("never read".to_string()); layout.pattern_blocks() as usize];
        read_pass(queue, layout, |number, verdict| {
            found[number as usize] = verdict;
            ControlFlow::Continue(())
        })
        .expect("read pass");
        found
    }

    #[test]
    fn written_blocks_read_back_at_every_depth_with_a_short_last_io() {
        // 37 blocks in I/Os of 4 blocks: the last I/O carries 1 block.
        let bytes = 37 * BLOCK as u64;
        let (_scratch, device) = scratch_device("pass-depths", bytes);
        let layout = Layout::new(bytes, 4 * BLOCK, BLOCK);
        for (depth, generation) in [(1, 11), (3, 12), (64, 13)] {
            let mut queue = open_queue(&device, depth, layout.io_bytes).expect("queue");
            write_pass(queue.as_mut(), &layout, generation).expect("write pass");
            let found = generations(queue.as_mut(), &layout);
            assert!(
                found.iter().all(|g| *g == Ok(generation)),
                "qd={depth}: {found:?}"
            );
        }
    }

    #[test]
    fn a_damaged_block_is_reported_by_number() {
        let bytes = 16 * BLOCK as u64;
        let (scratch, device) = scratch_device("pass-damage", bytes);
        let layout = Layout::new(bytes, 2 * BLOCK, BLOCK);
        let mut queue = open_queue(&device, 4, layout.io_bytes).expect("queue");
        write_pass(queue.as_mut(), &layout, 5).expect("write pass");

        // A buffered write behind the engine's back: direct reads see it
        // because the kernel writes the page cache back before them.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&scratch.path)
            .expect("open for damage");
        file.write_all_at(b"rot", 9 * BLOCK as u64 + 100)
            .expect("damage block 9");
        drop(file);

        let found = generations(queue.as_mut(), &layout);
        for (number, verdict) in found.iter().enumerate() {
            assert_eq!(verdict.is_err(), number == 9, "block {number}: {verdict:?}");
        }
    }
}
