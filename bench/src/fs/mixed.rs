//! The mixed workload of `vexfs-bench fs --threads N`: N threads at once,
//! each in its own directory, each cycling through create (a new file with
//! 4 KiB in it, closed), a 4 KiB overwrite of its own data file, fsync of
//! that file, stat of a file it created, and (on VexFS) a k-NN search of a
//! vector file they share. What one filesystem operation costs while
//! others, fsyncs among them, run beside it: a commit that stops the world
//! shows here, not in the one-thread rows.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::workload::check_interrupted;
use super::{OpStats, IO_BYTES};
use crate::latency::{new_histogram, Percentiles};
use vexfs_client::VectorFile;

/// Threads `--threads` may ask for.
pub const THREADS_MAX: usize = 64;
/// The shared vector file: rows, dimensions and neighbours per search.
const SEARCH_ROWS: usize = 2000;
const SEARCH_DIMENSIONS: usize = 64;
const SEARCH_K: usize = 10;
/// Files each thread's stat picks from, and creates before it starts over.
const CREATED_MAX: usize = 1000;

/// Latency of each operation of the mix, over all threads.
#[derive(Clone, Debug, Serialize)]
pub struct MixedStats {
    pub threads: usize,
    pub create: OpStats,
    pub write: OpStats,
    pub fsync: OpStats,
    pub stat: OpStats,
    /// None where the filesystem has no vector search (ext4).
    pub search: Option<OpStats>,
}

/// The operations of the mix, in the order each thread cycles through them.
#[derive(Clone, Copy)]
enum Op {
    Create,
    Write,
    Fsync,
    Stat,
    Search,
}

const OPS: [Op; 5] = [Op::Create, Op::Write, Op::Fsync, Op::Stat, Op::Search];

/// One thread's histograms, one per op.
struct Tally {
    histograms: Vec<Histogram<u64>>,
    ops: Vec<u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            histograms: OPS.iter().map(|_| new_histogram()).collect(),
            ops: vec![0; OPS.len()],
        }
    }

    fn time(&mut self, op: Op, call: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
        let start = Instant::now();
        call()?;
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.histograms[op as usize].saturating_record(nanos.max(1));
        self.ops[op as usize] += 1;
        Ok(())
    }

    fn merge(&mut self, other: &Tally) {
        for (mine, theirs) in self.histograms.iter_mut().zip(&other.histograms) {
            // Same bounds on both sides: adding cannot fail.
            let _ = mine.add(theirs);
        }
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            *mine += theirs;
        }
    }

    fn stats(&self, op: Op, seconds: f64) -> OpStats {
        let ops = self.ops[op as usize];
        OpStats {
            ops,
            seconds,
            ops_per_s: ops as f64 / seconds,
            lat_us: Percentiles::from_histogram(&self.histograms[op as usize]),
        }
    }
}

/// Runs the mix with `threads` threads for `duration` under `root`;
/// `search`: the filesystem serves the vector ioctls.
pub(super) fn mixed(
    root: &Path,
    threads: usize,
    duration: Duration,
    search: bool,
) -> Result<MixedStats> {
    if !(1..=THREADS_MAX).contains(&threads) {
        bail!("--threads {threads} is not in [1, {THREADS_MAX}]");
    }
    std::fs::create_dir(root).with_context(|| format!("creating {}", root.display()))?;
    let vectors = root.join("shared.vec");
    if search {
        let file = VectorFile::create(&vectors)?;
        file.set_meta(SEARCH_DIMENSIONS as u32)?;
        let rows: Vec<f32> = (0..SEARCH_ROWS * SEARCH_DIMENSIONS)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        file.batch_insert(&rows, SEARCH_DIMENSIONS as u32, None, 0)?;
        file.sync()?;
    }
    let started = Instant::now();
    let tallies: Vec<Result<Tally>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let dir = root.join(format!("t{thread}"));
                let vectors = search.then(|| vectors.clone());
                scope.spawn(move || one_thread(&dir, vectors, duration))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| bail!("a mixed-workload thread panicked"))
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut total = Tally::new();
    for tally in tallies {
        total.merge(&tally?);
    }
    std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    Ok(MixedStats {
        threads,
        create: total.stats(Op::Create, seconds),
        write: total.stats(Op::Write, seconds),
        fsync: total.stats(Op::Fsync, seconds),
        stat: total.stats(Op::Stat, seconds),
        search: search.then(|| total.stats(Op::Search, seconds)),
    })
}

fn one_thread(dir: &Path, vectors: Option<PathBuf>, duration: Duration) -> Result<Tally> {
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let data_path = dir.join("data");
    let data = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&data_path)
        .with_context(|| format!("creating {}", data_path.display()))?;
    let vectors = vectors
        .map(|path| VectorFile::open(&path))
        .transpose()
        .context("opening the shared vector file")?;
    let block = vec![0x5a_u8; IO_BYTES as usize];
    let query: Vec<f32> = (0..SEARCH_DIMENSIONS).map(|i| i as f32 / 64.0).collect();
    let (mut distances, mut ids) = (vec![0f32; SEARCH_K], vec![0u64; SEARCH_K]);
    let mut tally = Tally::new();
    let mut created = 0usize;
    let deadline = Instant::now() + duration;
    let mut step = 0usize;
    while Instant::now() < deadline {
        check_interrupted()?;
        let op = OPS[step % OPS.len()];
        step += 1;
        match op {
            Op::Create => {
                let path = dir.join(format!("f{}", created % CREATED_MAX));
                if created >= CREATED_MAX {
                    std::fs::remove_file(&path)
                        .with_context(|| format!("removing {}", path.display()))?;
                }
                tally
                    .time(op, || {
                        OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(&path)?
                            .write_all(&block)
                    })
                    .with_context(|| format!("create {}", path.display()))?;
                created += 1;
            }
            Op::Write => {
                let offset = (step as u64 % 256) * IO_BYTES;
                tally
                    .time(op, || data.write_all_at(&block, offset))
                    .context("4 KiB overwrite")?;
            }
            Op::Fsync => tally.time(op, || data.sync_all()).context("fsync")?,
            Op::Stat => {
                if created == 0 {
                    continue;
                }
                let path = dir.join(format!("f{}", (step * 31) % created.min(CREATED_MAX)));
                tally
                    .time(op, || std::fs::symlink_metadata(&path).map(drop))
                    .with_context(|| format!("stat {}", path.display()))?;
            }
            Op::Search => {
                if let Some(file) = &vectors {
                    tally
                        .time(op, || {
                            file.search(
                                &query,
                                vexfs_uapi::VEXFS_SEARCH_COSINE,
                                &mut distances,
                                &mut ids,
                            )
                            .map(drop)
                        })
                        .context("vector search")?;
                }
            }
        }
    }
    Ok(tally)
}
