//! The workloads of `vexfs-bench fs`: plain POSIX calls against a directory,
//! the same code on every filesystem, each call's latency in a histogram.
//! SIGINT and SIGTERM end a workload with an error, so the guards clean up.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use vexfs_engine::pattern::{check_block, fill_block, Rng};

use super::{OpStats, IO_BYTES};
use crate::latency::{new_histogram, Percentiles};

/// Bytes per write() while filling the random-I/O file.
const FILL_CHUNK_BYTES: usize = 1 << 20;
/// Reads whose whole payload is checked: one in this many (every read's
/// header is, to prove it returned the block asked for).
const READ_FULL_CHECK_EVERY: usize = 256;
/// Seeds, so both filesystems see the same offsets in the same order.
const SEED_READ: u64 = 0x5eed_0001;
const SEED_WRITE: u64 = 0x5eed_0002;
/// Generations of the pattern blocks each workload writes.
const GENERATION_FILL: u64 = 1;
const GENERATION_OVERWRITE: u64 = 2;
const GENERATION_APPEND: u64 = 3;
const IO_BYTES_USIZE: usize = IO_BYTES as usize;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // A second ^C: the user would rather leave the mounts than wait.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// SIGINT and SIGTERM end the running workload with an error, so that the
/// guards unmount and clean up as on any other error.
pub(crate) fn catch_interrupts() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler touches only an atomic and _exit, both
        // async-signal-safe.
        unsafe { libc::signal(signal, on_interrupt as *const () as libc::sighandler_t) };
    }
}

pub(crate) fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// Times calls into one histogram.
struct Recorder {
    histogram: Histogram<u64>,
    ops: u64,
    started: Instant,
    last: Instant,
}

impl Recorder {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            histogram: new_histogram(),
            ops: 0,
            started: now,
            last: now,
        }
    }

    fn time<T>(&mut self, op: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
        let start = Instant::now();
        let value = op()?;
        let end = Instant::now();
        let nanos = u64::try_from((end - start).as_nanos()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(nanos.max(1));
        self.ops += 1;
        self.last = end;
        Ok(value)
    }

    /// Since the recorder was made, up to the end of the last timed call.
    fn elapsed(&self) -> Duration {
        self.last - self.started
    }

    fn finish(self) -> OpStats {
        let seconds = self.started.elapsed().as_secs_f64();
        OpStats {
            ops: self.ops,
            seconds,
            ops_per_s: self.ops as f64 / seconds,
            lat_us: Percentiles::from_histogram(&self.histogram),
        }
    }
}

/// create, stat and unlink `files` empty files in one new directory.
pub(super) fn metadata(dir: &Path, files: usize) -> Result<[OpStats; 3]> {
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let paths: Vec<PathBuf> = (0..files).map(|i| dir.join(format!("f{i:07}"))).collect();
    let each = |op: &dyn Fn(&Path) -> std::io::Result<()>, what: &str| -> Result<OpStats> {
        let mut recorder = Recorder::new();
        for path in &paths {
            check_interrupted()?;
            recorder
                .time(|| op(path))
                .with_context(|| format!("{what} {}", path.display()))?;
        }
        Ok(recorder.finish())
    };
    let create = each(
        &|path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map(drop)
        },
        "create",
    )?;
    let stat = each(&|path| std::fs::symlink_metadata(path).map(drop), "stat")?;
    let unlink = each(&|path| std::fs::remove_file(path), "unlink")?;
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok([create, stat, unlink])
}

/// Writes `bytes` of pattern blocks (each names its block number) and fsyncs.
pub(super) fn fill(path: &Path, bytes: u64) -> Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    let mut chunk = vec![0u8; FILL_CHUNK_BYTES];
    let blocks = bytes / IO_BYTES;
    let mut block = 0;
    while block < blocks {
        check_interrupted()?;
        let count = (blocks - block).min((FILL_CHUNK_BYTES / IO_BYTES_USIZE) as u64);
        let used = &mut chunk[..count as usize * IO_BYTES_USIZE];
        for (i, payload) in used.chunks_mut(IO_BYTES_USIZE).enumerate() {
            fill_block(payload, block + i as u64, GENERATION_FILL);
        }
        file.write_all(used)?;
        block += count;
    }
    file.sync_all()?;
    Ok(())
}

/// Writes "3" to drop_caches (after a sync, so that dirty pages go too).
pub(super) fn drop_caches() -> Result<()> {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .context("dropping the page cache (/proc/sys/vm/drop_caches): reads may hit it")
}

/// 4 KiB preads at QD1 in a random order that visits each block at most
/// once, with readahead off: what a cold read costs, not a cached one.
pub(super) fn random_reads(path: &Path, bytes: u64, duration: Duration) -> Result<OpStats> {
    let file = File::open(path)?;
    // SAFETY: the descriptor is open for the call; advice changes no memory.
    let advised = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
    if advised != 0 {
        return Err(std::io::Error::from_raw_os_error(advised))
            .context("posix_fadvise(POSIX_FADV_RANDOM)");
    }
    let mut order: Vec<u64> = (0..bytes / IO_BYTES).collect();
    let mut rng = Rng::new(SEED_READ);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut buf = vec![0u8; IO_BYTES_USIZE];
    let mut recorder = Recorder::new();
    for (i, &block) in order.iter().enumerate() {
        if recorder.elapsed() >= duration {
            break;
        }
        check_interrupted()?;
        recorder
            .time(|| file.read_exact_at(&mut buf, block * IO_BYTES))
            .with_context(|| format!("reading block {block}"))?;
        let stored = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
        if stored != block {
            bail!("block {block} read back as block {stored}'s data");
        }
        if i % READ_FULL_CHECK_EVERY == 0 {
            check_block(&buf, block).map_err(anyhow::Error::msg)?;
        }
    }
    Ok(recorder.finish())
}

/// 4 KiB buffered pwrites at random block offsets, QD1; fsynced afterwards
/// (untimed) so that the next workload does not pay for this one's writeback.
pub(super) fn random_writes(path: &Path, bytes: u64, duration: Duration) -> Result<OpStats> {
    let file = OpenOptions::new().write(true).open(path)?;
    let blocks = bytes / IO_BYTES;
    let mut rng = Rng::new(SEED_WRITE);
    let mut buf = vec![0u8; IO_BYTES_USIZE];
    fill_block(&mut buf, 0, GENERATION_OVERWRITE);
    let mut recorder = Recorder::new();
    while recorder.elapsed() < duration {
        check_interrupted()?;
        let block = rng.below(blocks);
        // Only the header changes: the payload is not worth a refill per write.
        buf[..8].copy_from_slice(&block.to_le_bytes());
        recorder
            .time(|| file.write_all_at(&buf, block * IO_BYTES))
            .with_context(|| format!("writing block {block}"))?;
    }
    let stats = recorder.finish();
    file.sync_all()?;
    Ok(stats)
}

/// Appends 4 KiB and fsyncs, timing the fsync; starts over from an empty
/// file (untimed truncate) once `bytes_max` were appended.
pub(super) fn append_fsync(path: &Path, bytes_max: u64, duration: Duration) -> Result<OpStats> {
    let file = OpenOptions::new().write(true).create_new(true).open(path)?;
    let mut buf = vec![0u8; IO_BYTES_USIZE];
    fill_block(&mut buf, 0, GENERATION_APPEND);
    let mut offset = 0;
    let mut recorder = Recorder::new();
    while recorder.elapsed() < duration {
        check_interrupted()?;
        if offset >= bytes_max {
            file.set_len(0)?;
            offset = 0;
        }
        buf[..8].copy_from_slice(&(offset / IO_BYTES).to_le_bytes());
        file.write_all_at(&buf, offset)?;
        recorder.time(|| file.sync_all()).context("fsync")?;
        offset += IO_BYTES;
    }
    Ok(recorder.finish())
}
