//! What an ordinary user can send the root daemon through their own file:
//! index strings and search parameters that crash or hang faiss are
//! refused at setxattr with EINVAL, and the daemon keeps serving everyone.
//! Run as an unprivileged user (uid 65534) on an `allow_other` mount.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::client::*;
use common::*;
use vexfs_uapi::VEXFS_SEARCH_COSINE;

const NOBODY: u32 = 65534;
const DIMENSIONS: u32 = 16;

/// Index strings that crashed, hung or exhausted the daemon when faiss saw them.
const BAD_INDEXES: [&str; 16] = [
    "PQ0",
    "HNSW0",
    "IVF0,Flat",
    "IVF16,PQ0",
    "IVF16,PQ4x0",
    "OPQ0,PQ4",
    "RQ0x8",
    "IVF1_HNSW1,Flat",
    "HNSW1",
    "HNSW100000",
    "NSG0,Flat",
    "NSG1",
    "PQ3",
    "IVF16,PQ4x17",
    "IDMap,Flat",
    "HNSW32,PQ8",
];
const BAD_PARAMS: [&str; 7] = [
    "efSearch=NaN",
    "efSearch=2000000000",
    "nprobe=-1",
    "nprobe=1e18",
    "efSearch=inf",
    "efSearch=64.5",
    "k_factor=4",
];

/// setxattr as uid 65534 through python3 (the test runs as root); the errno.
fn setxattr_as_nobody(path: &std::path::Path, name: &str, value: &str) -> i32 {
    let script = "import os, sys\ntry:\n    os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())\n    print(0)\nexcept OSError as e:\n    print(e.errno)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .args([name, value])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("python3 (installed by scripts/setup)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("python3: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn hostile_index_strings_and_search_parameters_are_refused_and_the_daemon_lives() {
    if !fuse_available(
        "hostile_index_strings_and_search_parameters_are_refused_and_the_daemon_lives",
    ) {
        return;
    }
    let image = Image::new("hostile", "128M");
    let m = Mounted::new(&image, &["allow_other"]).unwrap();
    std::fs::set_permissions(&m.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = m.path("mine.vec");
    let file = open_rw(&path);
    set_meta(&file, DIMENSIONS, 0).unwrap();
    let data = rows(7, 2000, DIMENSIONS as usize);
    insert(&file, DIMENSIONS, &data, None, 0).unwrap();
    let query = &data[..DIMENSIONS as usize];
    std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();

    // A lossy index (PQ) may rank another vector first: the daemon answering is the point.
    let alive = || {
        let hits = search(&file, query, 5, VEXFS_SEARCH_COSINE).expect("the daemon answers");
        assert_eq!(hits.len(), 5, "{hits:?}");
    };

    for bad in BAD_INDEXES {
        assert_eq!(
            setxattr_as_nobody(&path, "user.vexfs.index", bad),
            libc::EINVAL,
            "user.vexfs.index={bad}"
        );
        alive();
    }
    for bad in BAD_PARAMS {
        assert_eq!(
            setxattr_as_nobody(&path, "user.vexfs.search", bad),
            libc::EINVAL,
            "user.vexfs.search={bad}"
        );
        alive();
    }
    // The right parameters for another index are refused too.
    assert_eq!(setxattr_as_nobody(&path, "user.vexfs.index", "HNSW16"), 0);
    assert_eq!(
        setxattr_as_nobody(&path, "user.vexfs.search", "nprobe=4"),
        libc::EINVAL
    );
    // What the grammar accepts works, trained or (too few vectors) exact.
    for (index, params) in [
        ("HNSW16", "efSearch=128"),
        ("IVF16,Flat", "nprobe=4"),
        ("IVF8,PQ4x4", "nprobe=8"),
        ("IVF4096,Flat", "nprobe=4096"),
        ("SQ8", ""),
        ("Flat", ""),
    ] {
        // Parameters first when they must fit the index about to be set.
        let _ = setxattr_as_nobody(&path, "user.vexfs.search", "");
        assert_eq!(
            setxattr_as_nobody(&path, "user.vexfs.index", index),
            0,
            "index {index}"
        );
        if !params.is_empty() {
            assert_eq!(
                setxattr_as_nobody(&path, "user.vexfs.search", params),
                0,
                "{index} {params}"
            );
        }
        alive();
    }
    drop(file);
    m.unmount();
    image.assert_clean();
}

/// The documented answers: min(k, count) neighbours whatever the index,
/// EFAULT for a NULL pointer (vectors.rs), EFBIG for fallocate past the
/// largest file (as write(2), truncate and ext4).
#[test]
fn search_returns_min_k_count_and_fallocate_past_the_maximum_is_efbig() {
    if !fuse_available("search_returns_min_k_count_and_fallocate_past_the_maximum_is_efbig") {
        return;
    }
    let image = Image::new("answers", "128M");
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("graph.vec");
    let file = open_rw(&path);
    set_meta(&file, DIMENSIONS, 0).unwrap();
    let count = 3000usize;
    let data = rows(11, count, DIMENSIONS as usize);
    insert(&file, DIMENSIONS, &data, None, 0).unwrap();
    xattr_set(&path, "user.vexfs.index", "HNSW8");
    xattr_set(&path, "user.vexfs.search", "efSearch=16");
    let query = &data[..DIMENSIONS as usize];
    for k in [10u32, 2999, 3000, 5000] {
        for metric in [0, VEXFS_SEARCH_COSINE] {
            let hits = search(&file, query, k, metric).unwrap();
            assert_eq!(
                hits.len(),
                (k as usize).min(count),
                "k {k}, metric {metric}"
            );
        }
    }
    drop(file);

    let plain = std::fs::File::create(m.path("plain")).unwrap();
    use std::os::unix::io::AsRawFd;
    // SAFETY: fallocate on an open descriptor with plain integer arguments.
    let r = unsafe { libc::fallocate(plain.as_raw_fd(), 0, 1 << 50, 4096) };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EFBIG)
    );
    drop(plain);
    m.unmount();
    image.assert_clean();
}

/// The daemon's peak resident memory, from /proc.
fn peak_rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Four maximum-size GET_VECTORS at once on a mount whose request budget
/// is 300 MiB: they all succeed, one after another, and the daemon's peak
/// memory stays near one request's, not four (2.6 GB before the budget).
#[test]
fn concurrent_maximum_requests_share_the_request_memory_budget() {
    if !fuse_available("concurrent_maximum_requests_share_the_request_memory_budget") {
        return;
    }
    const D: u32 = 1024;
    const STORED: usize = 2000;
    const BUDGET: u64 = 300 << 20;
    let image = Image::new("budget", "128M");
    let m = Mounted::new(&image, &[&format!("request_memory={BUDGET}")]).unwrap();
    let path = m.path("big.vec");
    let file = open_rw(&path);
    set_meta(&file, D, 0).unwrap();
    let data = rows(3, STORED, D as usize);
    insert(&file, D, &data, None, 0).unwrap();
    drop(file);
    let before = peak_rss_bytes(m.pid());
    // The most ids one request may name at D dimensions (REQUEST_BYTES_MAX).
    let ids_per_request = (vexfs_uapi::limits::REQUEST_BYTES_MAX / (8 + u64::from(D) * 4)) as usize;
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (path, data) = (path.clone(), &data);
            scope.spawn(move || {
                let file = open_rw(&path);
                let ids: Vec<u64> = (0..ids_per_request)
                    .map(|i| ((i + t) % STORED) as u64)
                    .collect();
                let got = fetch(&file, D, &ids).expect("GET_VECTORS within the budget");
                assert_eq!(got.len(), ids_per_request * D as usize);
                let first = ids[0] as usize * D as usize;
                assert_eq!(got[..D as usize], data[first..first + D as usize]);
            });
        }
    });
    let peak = peak_rss_bytes(m.pid());
    let request = ids_per_request as u64 * (8 + u64::from(D) * 4);
    eprintln!(
        "daemon peak RSS: {} MiB before, {} MiB after four {} MiB requests (budget {} MiB)",
        before >> 20,
        peak >> 20,
        request >> 20,
        BUDGET >> 20
    );
    assert!(
        peak < before + BUDGET + (64 << 20),
        "peak {} MiB: more than the budget of {} MiB above {} MiB",
        peak >> 20,
        BUDGET >> 20,
        before >> 20
    );
    m.unmount();
}
