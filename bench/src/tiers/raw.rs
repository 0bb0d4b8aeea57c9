//! Raw block I/O on a tier through the engine: the engine benchmark's
//! runner (one dedicated queue: io_uring, or librbd on an RBD image) on
//! files, devices and images; on the RAM device, which has no queue,
//! batches of QD operations per `BlockDevice::submit` call.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};
use vexfs_engine::pattern::Rng;
use vexfs_engine::{AlignedBuf, BlockDevice, IoOp, RamDevice};

use super::target::{Backing, Target};
use super::timeline::Timeline;
use super::{Measured, Workload, INTERVAL};
use crate::engine::{self, Pattern};
use crate::fio::{self, FioResult};
use crate::latency::new_histogram;

const SMALL_BYTES: u64 = 4096;
const LARGE_BYTES: u64 = 128 << 10;
/// Queue depth of the deep random and of the sequential workloads.
pub const DEEP_QUEUE_DEPTH: u32 = 32;
const SEED_RAM: u64 = 0x7153_0001;
const SEED_FLUSH: u64 = 0x7153_0002;

/// (pattern, bytes per I/O, queue depth) of a raw I/O workload.
fn shape(workload: Workload) -> Option<(Pattern, u64, u32)> {
    Some(match workload {
        Workload::Randread4kQd1 => (Pattern::Randread, SMALL_BYTES, 1),
        Workload::Randread4kQd32 => (Pattern::Randread, SMALL_BYTES, DEEP_QUEUE_DEPTH),
        Workload::Randwrite4kQd1 => (Pattern::Randwrite, SMALL_BYTES, 1),
        Workload::Randwrite4kQd32 => (Pattern::Randwrite, SMALL_BYTES, DEEP_QUEUE_DEPTH),
        Workload::Read128kQd32 => (Pattern::Read, LARGE_BYTES, DEEP_QUEUE_DEPTH),
        Workload::Write128kQd32 => (Pattern::Write, LARGE_BYTES, DEEP_QUEUE_DEPTH),
        _ => return None,
    })
}

pub fn run(target: &Target, workload: Workload, duration: Duration) -> Result<Measured> {
    if workload == Workload::Flush4k {
        let device: &dyn BlockDevice = match &target.backing {
            Backing::Ram(device) => device.as_ref(),
            Backing::Queued(device) => device.as_ref(),
        };
        return flush(device, target.region_bytes, duration);
    }
    let Some((pattern, block_bytes, queue_depth)) = shape(workload) else {
        bail!("{} is not a raw I/O workload", workload.label());
    };
    match &target.backing {
        Backing::Queued(device) => {
            let started_at = SystemTime::now();
            let shape = engine_shape(pattern, block_bytes, queue_depth, target, duration);
            let (result, intervals) =
                engine::run_with_intervals(Arc::clone(device), &shape, Some(INTERVAL))?;
            let mut total = new_histogram();
            for interval in &intervals {
                total.add(interval).expect("same histogram bounds");
            }
            Ok(Measured {
                ops: result.ios,
                bytes: Some(result.ios * block_bytes),
                errors: result.errors,
                first_error: result.first_error,
                seconds: result.seconds,
                total,
                intervals,
                started_at,
            })
        }
        Backing::Ram(device) => ram(
            device,
            pattern,
            block_bytes,
            queue_depth,
            target.region_bytes,
            duration,
        ),
    }
}

fn engine_shape(
    pattern: Pattern,
    block_bytes: u64,
    queue_depth: u32,
    target: &Target,
    duration: Duration,
) -> engine::Workload {
    engine::Workload {
        pattern,
        block_bytes,
        queue_depth,
        threads: 1,
        duration,
        sqpoll: false,
        submit_batch: 1,
        region_bytes: target.region_bytes,
    }
}

/// fio on the tier's file or device with the workload's shape, as
/// `vexfs-bench engine --compare-fio` runs it; None where fio has no
/// equivalent (the RAM tier, the flush workload).
pub fn fio(target: &Target, workload: Workload, duration: Duration) -> Option<Result<FioResult>> {
    let (pattern, block_bytes, queue_depth) = shape(workload)?;
    let path = target.path.as_ref()?;
    let Backing::Queued(_) = &target.backing else {
        return None;
    };
    let shape = engine_shape(pattern, block_bytes, queue_depth, target, duration);
    Some(fio::run(path, &shape))
}

/// QD operations per submit call; each operation's latency is its batch's,
/// as a caller that waits for the batch sees it.
fn ram(
    device: &RamDevice,
    pattern: Pattern,
    block_bytes: u64,
    queue_depth: u32,
    region_bytes: u64,
    duration: Duration,
) -> Result<Measured> {
    let blocks = region_bytes / block_bytes;
    if blocks == 0 {
        bail!("the region ({region_bytes} bytes) is smaller than one block");
    }
    let depth = queue_depth as usize;
    let mut buffers = vec![0u8; depth * block_bytes as usize];
    let mut rng = Rng::new(SEED_RAM);
    rng.fill(&mut buffers);
    let mut next = 0u64;
    let mut offsets = vec![0u64; depth];
    let mut timeline = Timeline::start();
    while timeline.elapsed() < duration {
        for offset in offsets.iter_mut() {
            let block = if pattern.random() {
                rng.below(blocks)
            } else {
                let block = next;
                next = (next + 1) % blocks;
                block
            };
            *offset = block * block_bytes;
        }
        let chunks = buffers.chunks_mut(block_bytes as usize);
        let mut ops: Vec<IoOp> = if pattern.writes() {
            chunks
                .zip(&offsets)
                .map(|(buf, &offset)| IoOp::Write {
                    offset,
                    buf,
                    fua: false,
                })
                .collect()
        } else {
            chunks
                .zip(&offsets)
                .map(|(buf, &offset)| IoOp::Read { offset, buf })
                .collect()
        };
        let start = Instant::now();
        match device.submit(&mut ops) {
            Ok(()) => {
                let end = Instant::now();
                for _ in 0..depth {
                    timeline.record(start, end, 1);
                }
                timeline.bytes += block_bytes * queue_depth as u64;
            }
            Err(error) => {
                timeline.errors += 1;
                timeline
                    .first_error
                    .get_or_insert_with(|| error.to_string());
            }
        }
    }
    Ok(timeline.finish(true))
}

/// A 4 KiB write at a random offset (untimed), then a flush (timed): on
/// files and devices the engine's flush, an fdatasync through io_uring.
fn flush(device: &dyn BlockDevice, region_bytes: u64, duration: Duration) -> Result<Measured> {
    let blocks = region_bytes / SMALL_BYTES;
    if blocks == 0 {
        bail!("the region ({region_bytes} bytes) is smaller than one block");
    }
    let mut buf = AlignedBuf::zeroed(SMALL_BYTES as usize);
    let mut rng = Rng::new(SEED_FLUSH);
    rng.fill(&mut buf[..]);
    let mut timeline = Timeline::start();
    while timeline.elapsed() < duration {
        let offset = rng.below(blocks) * SMALL_BYTES;
        if let Err(error) = device.write_at(offset, &buf[..]) {
            timeline.errors += 1;
            timeline
                .first_error
                .get_or_insert_with(|| error.to_string());
            continue;
        }
        timeline.time(1, || device.flush());
    }
    Ok(timeline.finish(false))
}
