//! Many threads on one vector file and its directory: relayouts, inserts,
//! deletes, searches, fetches, truncation, replacement by rename, index
//! changes, writes, reads, fsyncs and stats, all at once. Refusals are
//! expected (the file changes under every thread); a hang, EIO or a
//! damaged image is a failure. An operation stuck for longer than
//! `STUCK_AFTER` fails the test and aborts the FUSE connection so that
//! the test can clean up.

mod common;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::client::*;
use common::*;

const THREADS: usize = 24;
const SEEDS: [u64; 3] = [1, 2, 3];
const RUN_FOR: Duration = Duration::from_secs(8);
const STUCK_AFTER: Duration = Duration::from_secs(10);
/// Errnos that say the daemon failed rather than refused.
const FAILURES: [i32; 4] = [libc::EIO, libc::ENOTCONN, libc::EUCLEAN, libc::ECONNABORTED];

const OPS: [&str; 14] = [
    "set_vector_meta",
    "insert",
    "delete",
    "search",
    "get_vectors",
    "truncate",
    "o_trunc",
    "replace_by_rename",
    "set_index",
    "write",
    "read",
    "fsync",
    "stat",
    "unlink",
];

/// What each thread is doing: the op's index + 1 and when it started (0 = idle).
struct Watch {
    op: Vec<AtomicU64>,
    since_ms: Vec<AtomicU64>,
    epoch: Instant,
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// One operation; returns the errno of a refusal (0 when it succeeded).
fn run_op(op: usize, dir: &std::path::Path, thread: usize, rng: &mut Rng) -> i32 {
    let path = dir.join("r.vec");
    let open = || OpenOptions::new().read(true).write(true).open(&path);
    let dims = if rng.below(2) == 0 { 8 } else { 16 };
    let result: Result<(), i32> = match OPS[op] {
        "set_vector_meta" => open()
            .map_err(|e| errno_of(&e))
            .and_then(|f| set_meta(&f, dims, 0)),
        "insert" => open().map_err(|e| errno_of(&e)).and_then(|f| {
            let n = 1 + rng.below(64) as usize;
            let ids: Vec<u64> = (0..n).map(|_| rng.below(500)).collect();
            let data: Vec<f32> = (0..n * dims as usize)
                .map(|_| rng.below(1000) as f32 / 1000.0)
                .collect();
            insert(&f, dims, &data, Some(&ids), 0)
        }),
        "delete" => open().map_err(|e| errno_of(&e)).and_then(|f| {
            let ids: Vec<u64> = (0..8).map(|_| rng.below(500)).collect();
            delete(&f, &ids).map(|_| ())
        }),
        "search" => open().map_err(|e| errno_of(&e)).and_then(|f| {
            let query: Vec<f32> = (0..dims).map(|j| j as f32 / 16.0).collect();
            search(&f, &query, 1 + rng.below(20) as u32, rng.below(3) as u32).map(|_| ())
        }),
        "get_vectors" => open()
            .map_err(|e| errno_of(&e))
            .and_then(|f| fetch(&f, dims, &[rng.below(500)]).map(|_| ())),
        "truncate" => open().and_then(|f| f.set_len(0)).map_err(|e| errno_of(&e)),
        "o_trunc" => OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map(drop)
            .map_err(|e| errno_of(&e)),
        "replace_by_rename" => {
            let tmp = dir.join(format!("tmp-{thread}"));
            let made = std::fs::File::create(&tmp).map_err(|e| errno_of(&e));
            made.and_then(|f| set_meta(&f, dims, 0))
                .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| errno_of(&e)))
        }
        "set_index" => {
            let index = ["Flat", "HNSW16", "IVF4,Flat"][rng.below(3) as usize];
            try_xattr_set(&path, "user.vexfs.index", index)
        }
        "write" => open()
            .and_then(|mut f| f.write_all(b"not a vector"))
            .map_err(|e| errno_of(&e)),
        "read" => open()
            .and_then(|mut f| {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).map(drop)
            })
            .map_err(|e| errno_of(&e)),
        "fsync" => open().and_then(|f| f.sync_all()).map_err(|e| errno_of(&e)),
        "stat" => std::fs::metadata(&path)
            .and_then(|_| std::fs::read_dir(dir).map(|d| d.count()))
            .map(drop)
            .map_err(|e| errno_of(&e)),
        "unlink" => {
            // Unlink and recreate: descriptors others hold now name an orphan.
            let _ = std::fs::remove_file(&path);
            std::fs::File::create(&path)
                .map_err(|e| errno_of(&e))
                .and_then(|f| set_meta(&f, dims, 0))
        }
        other => unreachable!("{other}"),
    };
    result.err().unwrap_or(0)
}

fn run_seed(seed: u64) {
    let image = Image::new(&format!("races-{seed}"), "256M");
    let m = Mounted::new(&image, &[]).unwrap();
    let dir = m.dir.clone();
    let dev = std::fs::metadata(&dir).unwrap().dev();
    set_meta(&open_rw(&dir.join("r.vec")), 8, 0).unwrap();

    let watch = Arc::new(Watch {
        op: (0..THREADS).map(|_| AtomicU64::new(0)).collect(),
        since_ms: (0..THREADS).map(|_| AtomicU64::new(0)).collect(),
        epoch: Instant::now(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let counts = Arc::new(
        (0..OPS.len())
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>(),
    );
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (dir, watch, stop, failures, counts) = (
                dir.clone(),
                watch.clone(),
                stop.clone(),
                failures.clone(),
                counts.clone(),
            );
            std::thread::spawn(move || {
                let mut rng =
                    Rng((seed << 32 | thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                while !stop.load(Ordering::Relaxed) {
                    let op = rng.below(OPS.len() as u64) as usize;
                    watch.op[thread].store(op as u64 + 1, Ordering::SeqCst);
                    let started = watch.epoch.elapsed().as_millis() as u64 + 1;
                    watch.since_ms[thread].store(started, Ordering::SeqCst);
                    let errno = run_op(op, &dir, thread, &mut rng);
                    watch.since_ms[thread].store(0, Ordering::SeqCst);
                    counts[op].fetch_add(1, Ordering::Relaxed);
                    if FAILURES.contains(&errno) && !stop.load(Ordering::Relaxed) {
                        failures.lock().unwrap().push(format!(
                            "seed {seed} thread {thread}: {} failed with errno {errno}",
                            OPS[op]
                        ));
                    }
                }
            })
        })
        .collect();

    let deadline = Instant::now() + RUN_FOR;
    while Instant::now() < deadline || workers.iter().any(|w| !w.is_finished()) {
        if Instant::now() >= deadline {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(200));
        let now_ms = watch.epoch.elapsed().as_millis() as u64;
        for thread in 0..THREADS {
            let since = watch.since_ms[thread].load(Ordering::SeqCst);
            if since != 0 && now_ms.saturating_sub(since) > STUCK_AFTER.as_millis() as u64 {
                // Reported once: the worker resets it when the op returns.
                watch.since_ms[thread].store(0, Ordering::SeqCst);
                let op = OPS[watch.op[thread].load(Ordering::SeqCst) as usize - 1];
                failures.lock().unwrap().push(format!(
                    "seed {seed} thread {thread}: {op} stuck for more than {STUCK_AFTER:?}"
                ));
                stop.store(true, Ordering::Relaxed);
                abort_fuse_connection(dev);
            }
        }
    }
    for w in workers {
        w.join().unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let done: Vec<String> = OPS
        .iter()
        .zip(counts.iter())
        .map(|(op, n)| format!("{op} {}", n.load(Ordering::Relaxed)))
        .collect();
    eprintln!("seed {seed}: {}", done.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    m.unmount();
    image.assert_clean();
}

#[test]
fn twenty_four_threads_on_one_vector_file() {
    if !fuse_available("twenty_four_threads_on_one_vector_file") {
        return;
    }
    for seed in SEEDS {
        run_seed(seed);
    }
}
