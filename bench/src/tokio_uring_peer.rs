//! The same workload through tokio-uring, the async io_uring runtime users
//! reach for: one runtime per thread, `qd` tasks each keeping one
//! `read_fixed_at`/`write_fixed_at` in flight on an O_DIRECT file, with
//! registered (fixed) buffers as the engine uses. tokio-uring registers no
//! file and submits from its reactor when tasks yield; that is the
//! difference being measured.

use std::cell::RefCell;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_uring::buf::fixed::FixedBufRegistry;
use tokio_uring::buf::{IoBuf, IoBufMut};
use vexfs_engine::AlignedBuf;

use crate::engine::Workload;
use crate::latency::{new_histogram, Measurement};
use vexfs_engine::pattern::Rng;

#[derive(Clone, Debug, Serialize)]
pub struct TokioUringResult {
    #[serde(flatten)]
    pub measured: Measurement,
    pub ios: u64,
    pub errors: u64,
}

/// An engine buffer lent to tokio-uring (its Vec<u8> is not page aligned).
struct PageBuf(AlignedBuf);

// SAFETY: the allocation never moves or shrinks while PageBuf lives, and
// all of it is initialised (AlignedBuf is zeroed at birth).
unsafe impl IoBuf for PageBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.len()
    }
    fn bytes_total(&self) -> usize {
        self.0.len()
    }
}

// SAFETY: as above; every byte is always initialised, so set_init has nothing to record.
unsafe impl IoBufMut for PageBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

pub fn run(path: &Path, workload: &Workload) -> Result<TokioUringResult> {
    let started = Instant::now();
    let deadline = started + workload.duration;
    let threads: Vec<_> = (0..workload.threads)
        .map(|t| {
            let path = path.to_path_buf();
            let workload = workload.clone();
            std::thread::spawn(move || run_thread(&path, &workload, t as u64, deadline))
        })
        .collect();
    let mut read = new_histogram();
    let mut write = new_histogram();
    let (mut ios, mut errors) = (0, 0);
    for thread in threads {
        let outcome = thread.join().expect("tokio-uring thread panicked")?;
        read.add(&outcome.read).expect("same histogram bounds");
        write.add(&outcome.write).expect("same histogram bounds");
        ios += outcome.ios;
        errors += outcome.errors;
    }
    let seconds = started.elapsed().as_secs_f64();
    let directions = (workload.pattern.reads(), workload.pattern.writes());
    let bytes = ios * workload.block_bytes;
    Ok(TokioUringResult {
        measured: Measurement::from_histograms(&read, &write, directions, ios, bytes, seconds),
        ios,
        errors,
    })
}

#[derive(Clone)]
struct ThreadOutcome {
    read: hdrhistogram::Histogram<u64>,
    write: hdrhistogram::Histogram<u64>,
    ios: u64,
    errors: u64,
}

fn run_thread(
    path: &Path,
    workload: &Workload,
    thread: u64,
    deadline: Instant,
) -> Result<ThreadOutcome> {
    tokio_uring::start(async move {
        let file = tokio_uring::fs::OpenOptions::new()
            .read(true)
            .write(workload.pattern.writes())
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .await
            .with_context(|| format!("tokio-uring: opening {}", path.display()))?;
        let file = Rc::new(file);
        let depth = workload.queue_depth as usize;
        let registry = Rc::new(FixedBufRegistry::new((0..depth).map(|_| {
            let mut buf = AlignedBuf::zeroed(workload.block_bytes as usize);
            Rng::new(thread).fill(&mut buf);
            PageBuf(buf)
        })));
        registry
            .register()
            .context("tokio-uring: registering buffers")?;
        let outcome = Rc::new(RefCell::new(ThreadOutcome {
            read: new_histogram(),
            write: new_histogram(),
            ios: 0,
            errors: 0,
        }));
        let blocks = workload.region_bytes / workload.block_bytes;
        let tasks: Vec<_> = (0..depth)
            .map(|slot| {
                let file = Rc::clone(&file);
                let registry = Rc::clone(&registry);
                let outcome = Rc::clone(&outcome);
                let workload = workload.clone();
                tokio_uring::spawn(async move {
                    let mut rng = Rng::new((thread << 32) | slot as u64);
                    let mut sequential = slot as u64;
                    while Instant::now() < deadline {
                        let block = if workload.pattern.random() {
                            rng.below(blocks)
                        } else {
                            let block = sequential % blocks;
                            sequential += depth as u64;
                            block
                        };
                        let write = workload.pattern.next_is_write(&mut rng);
                        let buf = registry.check_out(slot).expect("each task owns its buffer");
                        let offset = block * workload.block_bytes;
                        let issued = Instant::now();
                        let (result, _buf) = if write {
                            file.write_fixed_at(buf, offset).await
                        } else {
                            file.read_fixed_at(buf, offset).await
                        };
                        let latency_ns = issued.elapsed().as_nanos() as u64;
                        let mut outcome = outcome.borrow_mut();
                        match result {
                            Ok(n) if n as u64 == workload.block_bytes => {
                                let histogram = if write {
                                    &mut outcome.write
                                } else {
                                    &mut outcome.read
                                };
                                histogram.saturating_record(latency_ns.max(1));
                                outcome.ios += 1;
                            }
                            _ => outcome.errors += 1,
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.context("tokio-uring task")?;
        }
        let outcome = outcome.borrow().clone();
        Ok(outcome)
    })
}
