//! `vexfs-bench engine`: raw block I/O through the engine, one dedicated
//! queue per thread (an io_uring ring, or librbd aio on an `rbd:` image),
//! every I/O's latency in a histogram.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use vexfs_engine::rbd::is_rbd_spec;
use vexfs_engine::{
    BackingKind, BlockDevice, IoOp, QueueConfig, QueueDevice, RbdDevice, UringDevice, UringOptions,
};

use crate::latency::{new_histogram, Measurement};
use vexfs_engine::pattern::Rng;

/// Threads one run may use.
pub const THREADS_MAX: usize = 256;
/// Bytes of one I/O at most.
pub const BLOCK_BYTES_MAX: u64 = 16 << 20;
/// Share of reads in `randrw`, as fio's default `rwmixread`.
pub const RANDRW_READ_PERCENT: u64 = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    Randread,
    Randwrite,
    Read,
    Write,
    Randrw,
}

impl Pattern {
    pub fn writes(self) -> bool {
        !matches!(self, Pattern::Randread | Pattern::Read)
    }

    pub fn reads(self) -> bool {
        !matches!(self, Pattern::Randwrite | Pattern::Write)
    }

    /// Whether the next I/O writes (`randrw`: [`RANDRW_READ_PERCENT`] % reads).
    pub fn next_is_write(self, rng: &mut Rng) -> bool {
        match self {
            Pattern::Randread | Pattern::Read => false,
            Pattern::Randwrite | Pattern::Write => true,
            Pattern::Randrw => rng.below(100) >= RANDRW_READ_PERCENT,
        }
    }

    pub fn random(self) -> bool {
        matches!(
            self,
            Pattern::Randread | Pattern::Randwrite | Pattern::Randrw
        )
    }

    /// fio's `rw=` spelling.
    pub fn fio_name(self) -> &'static str {
        match self {
            Pattern::Randread => "randread",
            Pattern::Randwrite => "randwrite",
            Pattern::Read => "read",
            Pattern::Write => "write",
            Pattern::Randrw => "randrw",
        }
    }
}

impl FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "randread" => Pattern::Randread,
            "randwrite" => Pattern::Randwrite,
            "read" => Pattern::Read,
            "write" => Pattern::Write,
            "randrw" => Pattern::Randrw,
            _ => {
                return Err(format!(
                    "unknown pattern {s:?} (randread|randwrite|read|write|randrw)"
                ))
            }
        })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.fio_name())
    }
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub pattern: Pattern,
    pub block_bytes: u64,
    pub queue_depth: u32,
    pub threads: usize,
    pub duration: Duration,
    pub sqpoll: bool,
    /// SQEs queued before they are submitted without waiting (fio's
    /// `iodepth_batch_submit`); 0 submits only when waiting for completions.
    pub submit_batch: u32,
    /// Bytes of the file or device the workload covers, from offset 0.
    pub region_bytes: u64,
}

/// What one engine run measured.
#[derive(Clone, Debug, Serialize)]
pub struct EngineResult {
    #[serde(flatten)]
    pub measured: Measurement,
    pub ios: u64,
    pub errors: u64,
    pub seconds: f64,
    pub registered_buffers: bool,
    pub registered_file: bool,
    pub first_error: Option<String>,
}

/// Makes sure `path` holds at least `size` bytes of real (written, not
/// sparse) data, creating the file if needed; returns the bytes usable.
/// A sparse or fallocated region reads without touching the disk, which
/// would flatter every read benchmark.
pub fn prepare_file(path: &Path, size: Option<u64>, progress: &mut dyn FnMut(&str)) -> Result<u64> {
    let existing = std::fs::metadata(path).ok();
    let is_block = existing
        .as_ref()
        .map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
        .unwrap_or(false);
    if is_block {
        let device = UringDevice::open(
            path,
            UringOptions {
                read_only: true,
                ..Default::default()
            },
        )?;
        let device_bytes = device.geometry().size_bytes;
        return match size {
            Some(size) if size > device_bytes => {
                bail!(
                    "--size {size} is larger than {} ({device_bytes} bytes)",
                    path.display()
                )
            }
            Some(size) => Ok(size),
            None => Ok(device_bytes),
        };
    }
    let current = existing.as_ref().map(|m| m.len()).unwrap_or(0);
    let Some(size) = size.or(existing.as_ref().map(|m| m.len())) else {
        bail!(
            "{} does not exist: give --size to create it",
            path.display()
        );
    };
    if size == 0 {
        bail!("--size must be more than 0");
    }
    if current >= size {
        return Ok(size);
    }
    progress(&format!(
        "preparing {}: writing {} MiB of data",
        path.display(),
        (size - current) >> 20
    ));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.set_len(size)
        .with_context(|| format!("sizing {}", path.display()))?;
    drop(file);
    let device = UringDevice::open(path, UringOptions::default())?;
    let block = u64::from(device.geometry().logical_block_bytes);
    let end = size - size % block;
    write_random_data(&device, current - current % block, end)?;
    Ok(end)
}

/// Writes pseudo-random data over `[start, end)` of `device`, in batches
/// of 1 MiB writes, then flushes: what makes a region hold data.
fn write_random_data(device: &dyn BlockDevice, start: u64, end: u64) -> Result<()> {
    const CHUNK: usize = 1 << 20;
    const CHUNKS_PER_BATCH: usize = 8;
    let mut data = vec![0u8; CHUNK * CHUNKS_PER_BATCH];
    let mut rng = Rng::new(0x5eed);
    rng.fill(&mut data);
    let mut offset = start;
    while offset < end {
        let batch_bytes = ((end - offset) as usize).min(data.len());
        let mut ops: Vec<IoOp> = data[..batch_bytes]
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, chunk)| IoOp::Write {
                offset: offset + (i * CHUNK) as u64,
                buf: chunk,
                fua: false,
            })
            .collect();
        device.submit(&mut ops)?;
        offset += batch_bytes as u64;
    }
    device.flush()?;
    Ok(())
}

/// Makes sure the first `region_bytes` of the RBD image `device` hold
/// data before reads are measured there. A read of an object never
/// written measures no OSD: a client holding the image's lock and object
/// map (fio's rbd engine, any writer) answers it with zeros in memory, a
/// read-only open asks the OSD, which has nothing to read; on a sparse
/// region the two are not comparable and neither is the cluster. With
/// `destructive` the region is written (pseudo-random data) when any of
/// its objects is missing; without, that is an error saying so.
pub fn rbd_region_with_data(
    device: &RbdDevice,
    region_bytes: u64,
    destructive: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let spec = device.spec();
    let written = device
        .written_bytes(0, region_bytes)
        .with_context(|| format!("asking {spec} which of its objects exist"))?;
    if written >= region_bytes {
        return Ok(());
    }
    if !destructive {
        bail!(
            "{spec}: only {written} of the {region_bytes} bytes to be read hold data; reads of \
             never-written objects measure no OSD (a client holding the image's object map \
             answers them in memory). Write the region first (add --destructive and it is \
             written with pseudo-random data, or `rbd import` a file), or give a --size within \
             the written part"
        );
    }
    progress(&format!(
        "preparing {spec}: {written} of {region_bytes} bytes hold data; writing the region"
    ));
    let writer =
        RbdDevice::open(spec, false).with_context(|| format!("opening {spec} to write it"))?;
    write_random_data(&writer, 0, region_bytes)
}

/// One flush before a run that writes to an RBD image. librbd's cache
/// (unless ceph.conf turns it off) writes through until the client's first
/// flush and acknowledges writes from memory after it; any filesystem
/// flushes within seconds, and fio's rbd engine and `rbd bench` start in
/// that steady state too (measured: 4 KiB QD1 writes at ~2 ms before the
/// first flush, ~20 us after, on a 1-OSD cluster). Without this the engine
/// would be measured in a state no long-running client stays in.
pub fn prime_rbd_cache(device: &RbdDevice) -> Result<()> {
    device
        .flush()
        .with_context(|| format!("flushing {} before the run", device.spec()))
}

/// Opens what `--path` names for a run of `pattern`: a file (prepared with
/// [`prepare_file`]), a block device, or an `rbd:` image; returns it with
/// the bytes the run covers. Writes to a device or an image need
/// `destructive`; so does a read run on an image region that does not hold
/// data yet, which is written first ([`rbd_region_with_data`]).
pub fn open_target(
    path: &Path,
    size: Option<u64>,
    pattern: Pattern,
    destructive: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<(Arc<dyn QueueDevice>, u64)> {
    let refuse = |what: &str| -> Result<()> {
        if pattern.writes() && !destructive {
            bail!(
                "--pattern {pattern} writes to {}, {what}, destroying what it holds: add --destructive if that is intended",
                path.display()
            );
        }
        Ok(())
    };
    let text = path.to_string_lossy();
    if is_rbd_spec(&text) {
        refuse("an RBD image")?;
        let device =
            RbdDevice::open(&text, !pattern.writes()).with_context(|| format!("opening {text}"))?;
        if pattern.writes() {
            prime_rbd_cache(&device)?;
        }
        let image_bytes = device.geometry().size_bytes;
        let region_bytes = match size {
            Some(size) if size > image_bytes => {
                bail!("--size {size} is larger than {text} ({image_bytes} bytes)")
            }
            Some(size) => size,
            None => image_bytes,
        };
        if pattern.reads() {
            rbd_region_with_data(&device, region_bytes, destructive, progress)?;
        }
        return Ok((Arc::new(device), region_bytes));
    }
    let region_bytes = prepare_file(path, size, progress)?;
    let device = UringDevice::open(path, UringOptions::default())
        .with_context(|| format!("opening {}", path.display()))?;
    if device.kind() == BackingKind::BlockDevice {
        refuse("a block device")?;
    }
    Ok((Arc::new(device), region_bytes))
}

/// Per-thread outcome.
struct ThreadResult {
    read: Histogram<u64>,
    write: Histogram<u64>,
    /// Latencies of both directions per interval of the run, by completion time.
    intervals: Vec<Histogram<u64>>,
    ios: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    registered_buffers: bool,
    registered_file: bool,
}

pub fn run(device: Arc<dyn QueueDevice>, workload: &Workload) -> Result<EngineResult> {
    Ok(run_with_intervals(device, workload, None)?.0)
}

/// [`run`], also returning the latencies (both directions) of every
/// `interval` of the run, by completion time: the first starts when the
/// workers start, the last holds the drain after the deadline.
pub fn run_with_intervals(
    device: Arc<dyn QueueDevice>,
    workload: &Workload,
    interval: Option<Duration>,
) -> Result<(EngineResult, Vec<Histogram<u64>>)> {
    if interval.is_some_and(|i| i.is_zero()) {
        bail!("a zero interval");
    }
    if workload.threads == 0 || workload.threads > THREADS_MAX {
        bail!("--threads {} is not in 1..={THREADS_MAX}", workload.threads);
    }
    let logical = u64::from(device.geometry().logical_block_bytes);
    if workload.block_bytes == 0
        || workload.block_bytes % logical != 0
        || workload.block_bytes > BLOCK_BYTES_MAX
    {
        bail!(
            "--bs {} must be a multiple of the logical block size {logical} up to {BLOCK_BYTES_MAX}",
            workload.block_bytes
        );
    }
    if workload.region_bytes < workload.block_bytes {
        bail!(
            "the region ({} bytes) is smaller than one block",
            workload.region_bytes
        );
    }
    let started = Instant::now();
    let deadline = started + workload.duration;
    let workers: Vec<_> = (0..workload.threads)
        .map(|t| {
            let device = Arc::clone(&device);
            let workload = workload.clone();
            std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || {
                    run_thread(
                        device.as_ref(),
                        &workload,
                        t as u64,
                        (started, interval),
                        deadline,
                    )
                })
                .expect("spawn benchmark thread")
        })
        .collect();
    let mut read = new_histogram();
    let mut write = new_histogram();
    let (mut ios, mut errors, mut bytes) = (0, 0, 0);
    let (mut registered_buffers, mut registered_file) = (true, true);
    let mut first_error = None;
    let mut intervals: Vec<Histogram<u64>> = Vec::new();
    for worker in workers {
        let thread = worker.join().expect("benchmark thread panicked")?;
        read.add(&thread.read).expect("same histogram bounds");
        write.add(&thread.write).expect("same histogram bounds");
        ios += thread.ios;
        errors += thread.errors;
        bytes += thread.bytes;
        registered_buffers &= thread.registered_buffers;
        registered_file &= thread.registered_file;
        first_error = first_error.or(thread.first_error);
        for (index, histogram) in thread.intervals.iter().enumerate() {
            if index == intervals.len() {
                intervals.push(new_histogram());
            }
            intervals[index]
                .add(histogram)
                .expect("same histogram bounds");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let directions = (workload.pattern.reads(), workload.pattern.writes());
    let result = EngineResult {
        measured: Measurement::from_histograms(&read, &write, directions, ios, bytes, seconds),
        ios,
        errors,
        seconds,
        registered_buffers,
        registered_file,
        first_error,
    };
    Ok((result, intervals))
}

fn run_thread(
    device: &dyn QueueDevice,
    workload: &Workload,
    thread: u64,
    (started, interval): (Instant, Option<Duration>),
    deadline: Instant,
) -> Result<ThreadResult> {
    let depth = workload.queue_depth;
    let block_bytes = workload.block_bytes as usize;
    let mut queue = device.dedicated_queue(&QueueConfig {
        depth,
        sqpoll_idle_ms: workload.sqpoll.then_some(1000),
        iopoll: false,
        single_issuer: !workload.sqpoll,
        buffer_count: depth as usize,
        buffer_bytes: block_bytes,
        submit_batch: workload.submit_batch,
    })?;
    let mut rng = Rng::new(0xbe9c_0000 + thread);
    for index in 0..depth as usize {
        rng.fill(queue.buffer_mut(index).expect("idle buffer"));
    }
    let blocks = workload.region_bytes / workload.block_bytes;
    let mut sequential_next = 0u64;
    let mut free: Vec<usize> = (0..depth as usize).collect();
    // Per buffer: when its I/O was issued, and whether it was a write.
    let mut issued_at = vec![Instant::now(); depth as usize];
    let mut is_write = vec![false; depth as usize];
    let mut out = ThreadResult {
        read: new_histogram(),
        write: new_histogram(),
        intervals: Vec::new(),
        ios: 0,
        bytes: 0,
        errors: 0,
        first_error: None,
        registered_buffers: queue.buffers_registered(),
        registered_file: queue.file_registered(),
    };
    let mut now = Instant::now();
    loop {
        // Past the deadline nothing new is issued; what is in flight drains.
        while let Some(index) = if now < deadline { free.pop() } else { None } {
            let block = if workload.pattern.random() {
                rng.below(blocks)
            } else {
                let block = sequential_next;
                sequential_next = (sequential_next + 1) % blocks;
                block
            };
            let write = workload.pattern.next_is_write(&mut rng);
            let offset = block * workload.block_bytes;
            // Stamped per I/O: with submit_batch 1 each push is a syscall,
            // so a shared stamp would charge later I/Os for earlier submits.
            issued_at[index] = Instant::now();
            is_write[index] = write;
            if write {
                queue.write_from_buffer(index, offset, block_bytes, false, index as u64)?;
            } else {
                queue.read_to_buffer(index, offset, block_bytes, index as u64)?;
            }
        }
        if queue.in_flight() == 0 {
            break;
        }
        queue.submit_and_wait(1)?;
        now = Instant::now();
        queue.reap(&mut |completion| {
            let index = completion.tag as usize;
            let latency_ns = now.saturating_duration_since(issued_at[index]).as_nanos() as u64;
            match completion.result {
                Ok(()) => {
                    let histogram = if is_write[index] {
                        &mut out.write
                    } else {
                        &mut out.read
                    };
                    histogram.saturating_record(latency_ns.max(1));
                    if let Some(interval) = interval {
                        // One histogram per interval, made when the first I/O
                        // completes in it: an allocation a second at most.
                        let index = (now.saturating_duration_since(started).as_nanos()
                            / interval.as_nanos()) as usize;
                        while out.intervals.len() <= index {
                            out.intervals.push(new_histogram());
                        }
                        out.intervals[index].saturating_record(latency_ns.max(1));
                    }
                    out.ios += 1;
                    out.bytes += workload.block_bytes;
                }
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert_with(|| e.to_string());
                }
            }
            free.push(index);
        });
    }
    Ok(out)
}
