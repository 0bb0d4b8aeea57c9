//! Power cuts under four threads at once: plain files written and
//! fsync'ed, vector files inserted into and fsync'ed, descriptors closed
//! and reopened, files unlinked, the device filled until ENOSPC and freed
//! again. The workload runs once on a device that logs every write and
//! flush; the image at each cut point is rebuilt from that log. At every
//! cut the image must pass fsck, mount, and hold everything an fsync had
//! acknowledged before the cut (and nobody had started to unlink); some
//! cuts are cut again during the recovering mount.

mod power_cut;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use power_cut::{Logged, Recording, Replayer};
use vexfs_engine::crash::CutMode;
use vexfs_engine::{BlockDevice, CrashDevice};
use vexfs_fs::fsck::fsck;
use vexfs_fs::{Fs, MountOptions};
use vexfs_uapi::{VexfsVectorFileInfo, VEXFS_VECTOR_FLOAT32};

const ROOT: u64 = 1;
const DEVICE_BYTES: u64 = 24 << 20;
const SEED: u64 = 0x7407_c0de;
const THREADS: u64 = 4;
const ROUNDS: u64 = 700;
/// Files a thread keeps before it unlinks its oldest: together more than the device holds.
const LIVE_FILES_MAX: usize = 40;
const FILE_BYTES_MAX: u64 = 256 << 10;
const DIMENSIONS: u32 = 16;
const BATCH: u64 = 40;
/// Cut points tried per run (all of them when the log is shorter).
const CUT_POINTS: usize = 10_000;
/// One cut in this many is cut again during its recovering mount.
const SECOND_CUT_EVERY: usize = 10;
/// Acknowledged files read back per cut: the newest ones and a sample.
const FILES_CHECKED_MAX: usize = 6;
const FAILURES_SHOWN_MAX: usize = 10;

fn explain(e: &vexfs_fs::Error) -> String {
    format!("{e} (errno {})", e.errno())
}

fn content(name: &str, len: u64) -> Vec<u8> {
    let seed = name.bytes().fold(SEED, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut out = vec![0u8; len as usize];
    common_fill(seed, &mut out);
    out
}

fn common_fill(seed: u64, buf: &mut [u8]) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

fn row(id: u64) -> Vec<f32> {
    (0..DIMENSIONS)
        .map(|j| ((id.wrapping_mul(31) + u64::from(j)) % 977) as f32 / 977.0)
        .collect()
}

/// What the workload was told, with the device operation count then.
#[derive(Default)]
struct Facts {
    /// File name -> (length, op count when an fsync covering it returned).
    files: BTreeMap<String, (u64, u64)>,
    /// File name -> op count when its unlink started.
    unlinks: BTreeMap<String, u64>,
    /// Per thread: (op count at an fsync's return, vectors it covered), rising.
    vectors: Vec<Vec<(u64, u64)>>,
    enospc: u64,
}

fn run_thread(fs: &Fs, dev: &Recording, thread: u64, facts: &Mutex<Facts>) -> Result<(), String> {
    let fail = |what: &str, e: vexfs_fs::Error| format!("thread {thread}: {what}: {}", explain(&e));
    let mut random = (SEED ^ thread).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |n: u64| {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random % n
    };
    let vec_name = format!("t{thread}.vec");
    let (vec_ino, _) = fs
        .mknod(ROOT, vec_name.as_bytes(), libc::S_IFREG | 0o644, 0, 0, 0)
        .map_err(|e| fail("create vector file", e))?;
    fs.opened(vec_ino).unwrap();
    let info = VexfsVectorFileInfo {
        dimensions: DIMENSIONS,
        element_type: VEXFS_VECTOR_FLOAT32,
        ..Default::default()
    };
    fs.set_vector_meta(vec_ino, &info)
        .map_err(|e| fail("SET_VECTOR_META", e))?;
    let mut live: Vec<String> = Vec::new();
    let mut unacked: Vec<(String, u64)> = Vec::new();
    let mut inserted = 0u64;
    for round in 0..ROUNDS {
        match next(6) {
            0..=2 => {
                let name = format!("t{thread}-f{round}");
                let len = 1 + next(FILE_BYTES_MAX);
                let (ino, _) = fs
                    .mknod(ROOT, name.as_bytes(), libc::S_IFREG | 0o644, 0, 0, 0)
                    .map_err(|e| fail("create", e))?;
                match fs.write(ino, 0, &content(&name, len)) {
                    Ok(_) => unacked.push((name.clone(), len)),
                    Err(e) if e.errno() == libc::ENOSPC => {
                        facts.lock().unwrap().enospc += 1;
                        // Make room: the oldest files go (and this one).
                        let mut doomed: Vec<String> = live.drain(..live.len().min(8)).collect();
                        doomed.push(name.clone());
                        for old in doomed {
                            facts.lock().unwrap().unlinks.insert(old.clone(), dev.ops());
                            fs.unlink(ROOT, old.as_bytes())
                                .map_err(|e| fail("unlink after ENOSPC", e))?;
                        }
                        unacked.retain(|(n, _)| n != &name);
                        continue;
                    }
                    Err(e) => return Err(fail("write", e)),
                }
                live.push(name);
                if live.len() > LIVE_FILES_MAX {
                    let old = live.remove(0);
                    facts.lock().unwrap().unlinks.insert(old.clone(), dev.ops());
                    fs.unlink(ROOT, old.as_bytes())
                        .map_err(|e| fail("unlink", e))?;
                    unacked.retain(|(n, _)| n != &old);
                }
            }
            3 => {
                let ids: Vec<u64> = (inserted..inserted + BATCH)
                    .map(|n| thread << 32 | n)
                    .collect();
                let rows: Vec<f32> = ids.iter().flat_map(|id| row(*id)).collect();
                match fs.insert_vectors(vec_ino, DIMENSIONS, &rows, Some(&ids), 0) {
                    Ok(()) => inserted += BATCH,
                    Err(e) if e.errno() == libc::ENOSPC => facts.lock().unwrap().enospc += 1,
                    Err(e) => return Err(fail("BATCH_INSERT", e)),
                }
            }
            4 => {
                // Last close and a new open: write-back at release, eviction, reload.
                fs.released(vec_ino).map_err(|e| fail("release", e))?;
                fs.opened(vec_ino).unwrap();
            }
            _ => {
                // fsync: this thread's vector file, then the transaction,
                // acknowledged where the daemon answers an fsync: once the
                // commit is durable, before its checkpoint.
                let mut answered = None;
                fs.write_back_vector_file(vec_ino)
                    .and_then(|()| {
                        fs.commit_through_then(fs.transaction_now(), |result| {
                            if result.is_ok() {
                                answered = Some(dev.ops());
                            }
                        })
                    })
                    .map_err(|e| fail("fsync", e))?;
                let acked = answered.expect("a commit that succeeded answered");
                let mut facts = facts.lock().unwrap();
                for (name, len) in unacked.drain(..) {
                    facts.files.insert(name, (len, acked));
                }
                facts.vectors[thread as usize].push((acked, inserted));
            }
        }
    }
    fs.released(vec_ino).map_err(|e| fail("last release", e))
}

/// Mounts a crashed image and checks it. Returns the recovering mount's
/// device operations.
fn check_image(image: Vec<u8>, cut: u64, facts: &Facts, sample: u64) -> Result<u64, String> {
    let crash = Arc::new(CrashDevice::from_image(image, 4096).map_err(|e| format!("{e}"))?);
    let dev: Arc<dyn BlockDevice> = crash.clone();
    match fsck(dev.clone()) {
        Ok(report) if report.clean() => {}
        Ok(report) => return Err(format!("fsck of the crashed image: {:?}", report.problems)),
        Err(e) => return Err(format!("fsck of the crashed image failed: {}", explain(&e))),
    }
    let fs = Fs::open(dev.clone(), &MountOptions::default())
        .map_err(|e| format!("mount after the cut: {}", explain(&e)))?;
    let recovery_ops = crash.ops();
    // Files an fsync acknowledged before the cut, nobody unlinking them yet.
    let mut due: Vec<(&String, u64, u64)> = facts
        .files
        .iter()
        .filter(|(name, (_, acked))| {
            *acked <= cut && facts.unlinks.get(*name).is_none_or(|u| *u >= cut)
        })
        .map(|(name, (len, acked))| (name, *len, *acked))
        .collect();
    due.sort_by_key(|d| std::cmp::Reverse(d.2));
    let newest = due.iter().take(FILES_CHECKED_MAX / 2);
    let sample_count = if due.is_empty() {
        0
    } else {
        FILES_CHECKED_MAX / 2
    };
    let sampled =
        (0..sample_count).map(|i| &due[((sample + i as u64 * 7919) % due.len() as u64) as usize]);
    for (name, len, acked) in newest.chain(sampled) {
        let (ino, record) = fs.lookup(ROOT, name.as_bytes()).map_err(|e| {
            format!(
                "{name} (fsync returned at op {acked}) is gone: {}",
                explain(&e)
            )
        })?;
        if record.size != *len {
            return Err(format!(
                "{name}: {} bytes, fsync'ed with {len}",
                record.size
            ));
        }
        let got = fs
            .read(ino, 0, *len as usize)
            .map_err(|e| format!("{name}: read: {}", explain(&e)))?;
        if got != content(name, *len) {
            return Err(format!(
                "{name}: content differs from what fsync acknowledged"
            ));
        }
    }
    for (thread, acks) in facts.vectors.iter().enumerate() {
        let Some(&(acked, count)) = acks.iter().rev().find(|(at, _)| *at <= cut) else {
            continue;
        };
        let name = format!("t{thread}.vec");
        let (ino, _) = fs
            .lookup(ROOT, name.as_bytes())
            .map_err(|e| format!("{name} is gone: {}", explain(&e)))?;
        let info = fs
            .get_vector_meta(ino)
            .map_err(|e| format!("{name}: GET_VECTOR_META: {}", explain(&e)))?;
        if u64::from(info.vector_count) < count {
            return Err(format!(
                "{name}: {} vectors, fsync at op {acked} acknowledged {count}",
                info.vector_count
            ));
        }
        let ids: Vec<u64> = [0, count / 2, count.saturating_sub(1)]
            .into_iter()
            .filter(|n| *n < count)
            .map(|n| (thread as u64) << 32 | n)
            .collect();
        let rows = fs
            .get_vectors(ino, DIMENSIONS, &ids)
            .map_err(|e| format!("{name}: GET_VECTORS of acknowledged ids: {}", explain(&e)))?;
        let want: Vec<f32> = ids.iter().flat_map(|id| row(*id)).collect();
        if rows != want {
            return Err(format!("{name}: acknowledged vectors differ"));
        }
    }
    fs.unmount()
        .map_err(|e| format!("unmount after recovery: {}", explain(&e)))?;
    drop(fs);
    match fsck(dev) {
        Ok(report) if report.clean() => Ok(recovery_ops),
        Ok(report) => Err(format!("fsck after recovery: {:?}", report.problems)),
        Err(e) => Err(format!("fsck after recovery failed: {}", explain(&e))),
    }
}

/// The recovering mount loses power at its operation `second`; what is
/// left must still hold everything acknowledged.
fn check_second_cut(image: Vec<u8>, second: u64, cut: u64, facts: &Facts) -> Result<(), String> {
    let crash = Arc::new(CrashDevice::from_image(image, 4096).map_err(|e| format!("{e}"))?);
    crash.set_cut_after(Some(second));
    let _ = Fs::open(crash.clone(), &MountOptions::default());
    let again = crash.image_after_cut(CutMode::RandomSubset, second);
    check_image(again, cut, facts, second).map(drop)
}

#[test]
fn power_cuts_under_four_threads_lose_no_acknowledged_fsync() {
    let started = Instant::now();
    let start = power_cut::formatted_image(DEVICE_BYTES, SEED);
    let recording = Arc::new(Recording::new(start.clone()));
    let facts = Mutex::new(Facts {
        vectors: vec![Vec::new(); THREADS as usize],
        ..Facts::default()
    });
    {
        let fs = Fs::open(recording.clone(), &MountOptions::default()).expect("mount");
        let errors: Vec<String> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (fs, dev, facts) = (&fs, &recording, &facts);
                    scope.spawn(move || run_thread(fs, dev, t, facts))
                })
                .collect();
            workers
                .into_iter()
                .filter_map(|w| w.join().expect("workload thread panicked").err())
                .collect()
        });
        assert!(
            errors.is_empty(),
            "the workload failed without a cut: {errors:?}"
        );
        fs.unmount().expect("unmount");
    }
    let log = recording.take_log();
    let facts = facts.into_inner().unwrap();
    let total = log.len();
    assert!(facts.enospc > 0, "the workload never filled the device");
    assert!(!facts.files.is_empty(), "no file was acknowledged");
    let writes = log
        .iter()
        .filter(|op| matches!(op, Logged::Write { .. }))
        .count();
    eprintln!(
        "threaded crash simulation: {THREADS} threads, {total} device operations ({writes} writes), {} fsync'ed files, {} ENOSPC refusals",
        facts.files.len(),
        facts.enospc
    );

    let points = CUT_POINTS.min(total + 1);
    let cuts: Vec<usize> = (0..points)
        .map(|i| i * total / (points - 1).max(1))
        .collect();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    // Each worker takes every workers-th cut, so its cut points rise.
    let tried = AtomicU64::new(0);
    let failures = Mutex::new(Vec::<(usize, String)>::new());
    let done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let (log, start, cuts, facts) = (&log, &start, &cuts, &facts);
            let (tried, failures, done) = (&tried, &failures, &done);
            scope.spawn(move || {
                let mut replay = Replayer::new(start.clone(), log);
                for (i, &cut) in cuts.iter().enumerate().skip(worker).step_by(workers) {
                    let mode = if i % 2 == 0 {
                        CutMode::DropUnflushed
                    } else {
                        CutMode::RandomSubset
                    };
                    let image = replay.image_at(cut, mode, cut as u64);
                    tried.fetch_add(1, Ordering::Relaxed);
                    let result = if i % SECOND_CUT_EVERY == 0 {
                        tried.fetch_add(1, Ordering::Relaxed);
                        let second = (cut as u64).wrapping_mul(0x9e37_79b9) % 64;
                        check_image(image.clone(), cut as u64, facts, i as u64).and_then(|_| {
                            check_second_cut(image, second, cut as u64, facts)
                                .map_err(|e| format!("second cut at recovery op {second}: {e}"))
                        })
                    } else {
                        check_image(image, cut as u64, facts, i as u64).map(drop)
                    };
                    if let Err(what) = result {
                        failures
                            .lock()
                            .unwrap()
                            .push((cut, format!("cut {cut}/{total} {mode:?}: {what}")));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    let tried = tried.load(Ordering::Relaxed);
    eprintln!(
        "threaded crash simulation: {tried} cut points ({} in the workload, every {SECOND_CUT_EVERY}th cut again during recovery), {} failures, {:.1} s",
        cuts.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    for (_, failure) in failures.iter().take(FAILURES_SHOWN_MAX) {
        eprintln!("  {failure}");
    }
    assert!(
        failures.is_empty(),
        "{} of {tried} power cuts broke an acknowledged fsync; first: {}",
        failures.len(),
        failures[0].1
    );
}
