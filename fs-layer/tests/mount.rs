//! End to end through the kernel: format, mount, use it as a user would,
//! unmount, fsck, remount, compare. Every mount is unmounted by its fixture,
//! also when an assertion fails.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use common::{fill, fuse_available, Image, Mounted, Rng};

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and a value buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            cpath(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf is writable for its length.
    let rc = unsafe {
        libc::getxattr(
            cpath(p).as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if rc < 0 {
        return None;
    }
    buf.truncate(rc as usize);
    Some(buf)
}

fn set_mtime(p: &Path, sec: i64, nsec: i64) {
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    ];
    // SAFETY: valid path and a two-element timespec array.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, cpath(p).as_ptr(), times.as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat: {}", std::io::Error::last_os_error());
}

fn write_pattern(path: &Path, seed: u64, size: u64) {
    let mut f = File::create(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(buf.len() as u64) as usize;
        fill(seed, at, &mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        at += n as u64;
    }
}

fn check_pattern(path: &Path, seed: u64, size: u64) {
    let mut f = File::open(path).unwrap();
    let mut got = vec![0u8; 1 << 20];
    let mut want = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(got.len() as u64) as usize;
        f.read_exact(&mut got[..n]).unwrap();
        fill(seed, at, &mut want[..n]);
        assert!(
            got[..n] == want[..n],
            "{}: content differs in the MiB at {at}",
            path.display()
        );
        at += n as u64;
    }
    assert_eq!(
        f.read(&mut got).unwrap(),
        0,
        "{}: longer than {size}",
        path.display()
    );
}

#[derive(Clone, Debug, PartialEq)]
struct Expected {
    seed: u64,
    size: u64,
    mode: u32,
    mtime: (i64, i64),
    xattr: Option<Vec<u8>>,
}

#[test]
fn a_user_tree_survives_unmount_fsck_and_remount() {
    if !fuse_available("a_user_tree_survives_unmount_fsck_and_remount") {
        return;
    }
    let image = Image::new("tree", "2G");
    let mnt = Mounted::new(&image, &[]).unwrap();
    let mut rng = Rng(0x5eed);
    let dirs: Vec<String> = (0..40)
        .map(|i| match i % 3 {
            0 => format!("d{i}"),
            1 => format!("d{}/s{i}", i - 1),
            _ => format!("d{}/s{}/t{i}", i - 2, i - 1),
        })
        .collect();
    for d in &dirs {
        fs::create_dir_all(mnt.path(d)).unwrap();
    }
    let mut files: BTreeMap<String, Expected> = BTreeMap::new();
    let started = Instant::now();
    for i in 0..1000u64 {
        let dir = &dirs[rng.below(dirs.len() as u64) as usize];
        let name = format!("{dir}/file-{i}.dat");
        let size = match i {
            0 => 64 << 20,
            _ if i % 100 == 1 => 1 + rng.below(32 << 20),
            _ => rng.below(256 << 10),
        };
        write_pattern(&mnt.path(&name), i, size);
        let mode = [0o600, 0o644, 0o755, 0o640][rng.below(4) as usize];
        fs::set_permissions(mnt.path(&name), fs::Permissions::from_mode(mode)).unwrap();
        let xattr = (i % 10 == 0).then(|| format!("value-{i}").into_bytes());
        if let Some(v) = &xattr {
            set_xattr(&mnt.path(&name), "user.vexfs.test", v);
        }
        if i % 7 == 0 {
            set_mtime(
                &mnt.path(&name),
                1_600_000_000 + i as i64,
                (i * 1_000_003 % 1_000_000_000) as i64,
            );
        }
        if i % 50 == 0 {
            File::open(mnt.path(&name)).unwrap().sync_all().unwrap();
        }
        files.insert(
            name,
            Expected {
                seed: i,
                size,
                mode,
                mtime: (0, 0),
                xattr,
            },
        );
    }
    // Renames (within and across directories), deletes, a directory rename.
    let names: Vec<String> = files.keys().cloned().collect();
    for (n, name) in names.iter().enumerate() {
        if n % 13 == 0 {
            let to = format!("{}/renamed-{n}", dirs[n % dirs.len()]);
            fs::rename(mnt.path(name), mnt.path(&to)).unwrap();
            let e = files.remove(name).unwrap();
            files.insert(to, e);
        } else if n % 11 == 0 {
            fs::remove_file(mnt.path(name)).unwrap();
            files.remove(name);
        }
    }
    fs::rename(mnt.path("d3"), mnt.path("moved-d3")).unwrap();
    files = files
        .into_iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("d3/")
                    .map(|rest| format!("moved-d3/{rest}"))
                    .unwrap_or(k),
                v,
            )
        })
        .collect();
    for (name, e) in files.iter_mut() {
        let m = fs::metadata(mnt.path(name)).unwrap();
        e.mtime = (m.mtime(), m.mtime_nsec());
        assert_eq!(m.len(), e.size, "{name}");
    }
    eprintln!("wrote {} files in {:?}", files.len(), started.elapsed());
    mnt.unmount();
    image.assert_clean();

    let mnt = Mounted::new(&image, &[]).unwrap();
    let mut seen = BTreeMap::new();
    let mut stack = vec![String::new()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(mnt.path(&dir)).unwrap() {
            let entry = entry.unwrap();
            let rel = if dir.is_empty() {
                entry.file_name().to_string_lossy().into_owned()
            } else {
                format!("{dir}/{}", entry.file_name().to_string_lossy())
            };
            if entry.file_type().unwrap().is_dir() {
                stack.push(rel);
            } else {
                seen.insert(rel, ());
            }
        }
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>(),
        "the set of files differs after remount"
    );
    for (name, e) in &files {
        let p = mnt.path(name);
        let m = fs::metadata(&p).unwrap();
        assert_eq!(m.len(), e.size, "{name} size");
        assert_eq!(m.mode() & 0o7777, e.mode, "{name} mode");
        assert_eq!((m.mtime(), m.mtime_nsec()), e.mtime, "{name} mtime");
        assert_eq!(get_xattr(&p, "user.vexfs.test"), e.xattr, "{name} xattr");
        check_pattern(&p, e.seed, e.size);
    }
    mnt.unmount();
    image.assert_clean();
}

#[test]
fn relative_image_mountpoint_and_log_paths_mean_the_callers_directory() {
    if !fuse_available("relative_image_mountpoint_and_log_paths_mean_the_callers_directory") {
        return;
    }
    let image = Image::new("relative", "64M");
    let log_name = format!("relative-{}.log", std::process::id());
    let log = common::scratch_dir().join(&log_name);
    let _ = fs::remove_file(&log);
    let mnt = Mounted::new_relative(&image, &[&format!("log={log_name}")]).unwrap();
    fs::write(mnt.path("a"), b"relative").unwrap();
    assert_eq!(fs::read(mnt.path("a")).unwrap(), b"relative");
    mnt.unmount();
    // The daemon left the working directory, yet opened its log where the
    // caller meant (a quiet session leaves it empty).
    fs::remove_file(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    image.assert_clean();
}

#[test]
fn a_directory_of_100000_entries() {
    if !fuse_available("a_directory_of_100000_entries") {
        return;
    }
    const N: usize = 100_000;
    let image = Image::new("bigdir", "1G");
    let mnt = Mounted::new(&image, &[]).unwrap();
    let dir = mnt.path("many");
    fs::create_dir(&dir).unwrap();
    let t = Instant::now();
    for i in 0..N {
        File::create(dir.join(format!("entry-{i:06}"))).unwrap();
    }
    let created = t.elapsed();
    let t = Instant::now();
    for i in (0..N).step_by(7) {
        assert!(fs::symlink_metadata(dir.join(format!("entry-{i:06}"))).is_ok());
    }
    assert!(fs::symlink_metadata(dir.join("entry-absent")).is_err());
    let looked_up = t.elapsed();
    let t = Instant::now();
    let mut listed: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let listing = t.elapsed();
    listed.sort();
    assert_eq!(listed.len(), N);
    assert!(listed
        .iter()
        .enumerate()
        .all(|(i, n)| *n == format!("entry-{i:06}")));
    let t = Instant::now();
    for i in 0..N {
        fs::remove_file(dir.join(format!("entry-{i:06}"))).unwrap();
    }
    let deleted = t.elapsed();
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    fs::remove_dir(&dir).unwrap();
    eprintln!("100000 entries: create {created:?}, lookup 1/7 {looked_up:?}, list {listing:?}, delete {deleted:?}");
    mnt.unmount();
    image.assert_clean();
}

#[test]
fn a_sparse_4_gib_file_and_a_dense_1_gib_file() {
    if !fuse_available("a_sparse_4_gib_file_and_a_dense_1_gib_file") {
        return;
    }
    let image = Image::new("sparse", "2G");
    let mnt = Mounted::new(&image, &[]).unwrap();
    let sparse = mnt.path("sparse");
    {
        let mut f = File::create(&sparse).unwrap();
        for (i, at) in [0u64, 1 << 30, 3 << 30, (4 << 30) - 4096]
            .into_iter()
            .enumerate()
        {
            let mut buf = vec![0u8; 4096];
            fill(100 + i as u64, 0, &mut buf);
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&buf).unwrap();
        }
        f.sync_all().unwrap();
    }
    write_pattern(&mnt.path("dense"), 7, 1 << 30);
    mnt.unmount();
    image.assert_clean();

    let mnt = Mounted::new(&image, &[]).unwrap();
    let m = fs::metadata(mnt.path("sparse")).unwrap();
    assert_eq!(m.len(), 4 << 30);
    assert_eq!(
        m.blocks(),
        4 * 8,
        "only the four written blocks are allocated"
    );
    let mut f = File::open(mnt.path("sparse")).unwrap();
    let mut got = vec![0u8; 1 << 20];
    let mut written_seen = 0;
    for mib in 0..4096u64 {
        f.read_exact(&mut got).unwrap();
        let at = mib << 20;
        for (i, w) in [0u64, 1 << 30, 3 << 30, (4 << 30) - 4096]
            .into_iter()
            .enumerate()
        {
            if (at..at + (1 << 20)).contains(&w) {
                let mut want = vec![0u8; 4096];
                fill(100 + i as u64, 0, &mut want);
                let off = (w - at) as usize;
                assert_eq!(&got[off..off + 4096], &want[..], "written block at {w}");
                got[off..off + 4096].fill(0);
                written_seen += 1;
            }
        }
        assert!(
            got.iter().all(|&b| b == 0),
            "hole at MiB {mib} reads non-zero"
        );
    }
    assert_eq!(written_seen, 4);
    drop(f);
    check_pattern(&mnt.path("dense"), 7, 1 << 30);
    mnt.unmount();
    image.assert_clean();
}

#[test]
fn eight_concurrent_writers_on_different_files_and_on_one_file() {
    if !fuse_available("eight_concurrent_writers") {
        return;
    }
    const THREADS: u64 = 8;
    const CHUNK: usize = 64 << 10;
    const CHUNKS: u64 = 64;
    let image = Image::new("writers", "1G");
    let mnt = Mounted::new(&image, &[]).unwrap();
    let shared = mnt.path("shared");
    File::create(&shared).unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let own = mnt.path(&format!("own-{t}"));
            let shared = shared.clone();
            s.spawn(move || {
                let mut mine = File::create(&own).unwrap();
                let mut common = OpenOptions::new().write(true).open(&shared).unwrap();
                let mut buf = vec![0u8; CHUNK];
                for c in 0..CHUNKS {
                    fill(t, c * CHUNK as u64, &mut buf);
                    mine.write_all(&buf).unwrap();
                    // Interleaved stripes of the shared file: chunk c of thread t lands at (c * THREADS + t).
                    let at = (c * THREADS + t) * CHUNK as u64;
                    fill(1000, at, &mut buf);
                    common.seek(SeekFrom::Start(at)).unwrap();
                    common.write_all(&buf).unwrap();
                    if c % 16 == 0 {
                        mine.sync_all().unwrap();
                    }
                }
            });
        }
    });
    mnt.unmount();
    image.assert_clean();
    let mnt = Mounted::new(&image, &[]).unwrap();
    for t in 0..THREADS {
        check_pattern(&mnt.path(&format!("own-{t}")), t, CHUNKS * CHUNK as u64);
    }
    check_pattern(&mnt.path("shared"), 1000, THREADS * CHUNKS * CHUNK as u64);
    mnt.unmount();
}

#[test]
fn enospc_is_clean_and_the_filesystem_survives_it() {
    if !fuse_available("enospc_is_clean") {
        return;
    }
    let image = Image::new("full", "64M");
    let mnt = Mounted::new(&image, &[]).unwrap();
    write_pattern(&mnt.path("keep"), 3, 1 << 20);
    File::open(mnt.path("keep")).unwrap().sync_all().unwrap();
    let mut f = File::create(mnt.path("filler")).unwrap();
    let buf = vec![0xa5u8; 1 << 20];
    let mut written = 0u64;
    let err = loop {
        match f.write(&buf) {
            Ok(n) => written += n as u64,
            Err(e) => break e,
        }
        assert!(written < 128 << 20, "a 64 MiB device took {written} bytes");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(f);
    // Small metadata work is refused or succeeds, but never breaks anything.
    let _ = fs::create_dir(mnt.path("after"));
    fs::remove_file(mnt.path("filler")).unwrap();
    write_pattern(&mnt.path("again"), 4, 4 << 20);
    mnt.unmount();
    image.assert_clean();
    let mnt = Mounted::new(&image, &[]).unwrap();
    check_pattern(&mnt.path("keep"), 3, 1 << 20);
    check_pattern(&mnt.path("again"), 4, 4 << 20);
    assert!(!mnt.path("filler").exists());
    mnt.unmount();
    image.assert_clean();
}

#[test]
fn posix_corners_rename_flags_links_unlinked_open_files() {
    if !fuse_available("posix_corners") {
        return;
    }
    let image = Image::new("posix", "64M");
    let mnt = Mounted::new(&image, &[]).unwrap();
    fs::write(mnt.path("a"), b"aaa").unwrap();
    fs::write(mnt.path("b"), b"bbbb").unwrap();
    let renameat2 = |from: &str, to: &str, flags: u32| -> i32 {
        // SAFETY: valid C strings; renameat2 is a plain syscall.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                cpath(&mnt.path(from)).as_ptr(),
                libc::AT_FDCWD,
                cpath(&mnt.path(to)).as_ptr(),
                flags,
            )
        };
        if rc == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap()
        }
    };
    assert_eq!(renameat2("a", "b", libc::RENAME_NOREPLACE), libc::EEXIST);
    assert_eq!(renameat2("a", "b", libc::RENAME_EXCHANGE), 0);
    assert_eq!(fs::read(mnt.path("a")).unwrap(), b"bbbb");
    assert_eq!(fs::read(mnt.path("b")).unwrap(), b"aaa");
    fs::create_dir_all(mnt.path("x/y")).unwrap();
    assert_eq!(renameat2("x", "x/y/z", 0), libc::EINVAL);
    fs::hard_link(mnt.path("a"), mnt.path("x/a2")).unwrap();
    assert_eq!(fs::metadata(mnt.path("a")).unwrap().nlink(), 2);
    std::os::unix::fs::symlink("../a", mnt.path("x/ln")).unwrap();
    assert_eq!(fs::read(mnt.path("x/ln")).unwrap(), b"bbbb");
    // An unlinked file stays readable while open, and is freed at close.
    let mut open = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(0)
        .open(mnt.path("b"))
        .unwrap();
    fs::remove_file(mnt.path("b")).unwrap();
    open.write_all(b"more").unwrap();
    open.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    open.read_to_string(&mut s).unwrap();
    assert_eq!(s, "more");
    drop(open);
    assert_eq!(
        fs::remove_dir(mnt.path("x")).unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    let f = File::create(mnt.path("t")).unwrap();
    f.set_len(10_000).unwrap();
    f.set_len(3).unwrap();
    f.set_len(8192).unwrap();
    drop(f);
    assert_eq!(fs::read(mnt.path("t")).unwrap(), vec![0u8; 8192]);
    mnt.unmount();
    image.assert_clean();
}

/// Runs a Python snippet as uid/gid 65534 with `path` as argv[1]; panics on failure.
fn python_as_nobody(path: &std::path::Path, script: &str) {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("python3 (installed by scripts/setup)");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file capability (`security.capability`, VFS_CAP_REVISION_2, CAP_NET_RAW permitted).
fn set_capability(path: &std::path::Path) {
    let mut value = Vec::new();
    for word in [0x0200_0000u32, 1 << 13, 0, 0, 0] {
        value.extend_from_slice(&word.to_le_bytes());
    }
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path string and a value buffer of its length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            c"security.capability".as_ptr(),
            value.as_ptr() as *const _,
            value.len(),
            0,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
}

fn has_capability(path: &std::path::Path) -> bool {
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path string; a zero-length query.
    let r = unsafe {
        libc::getxattr(
            p.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    r > 0
}

/// An unprivileged write or truncate, and any chown, clear set-user-ID,
/// group-executable set-group-ID and file capabilities: the daemon does it
/// (it tells the kernel so, and the kernel then never asks for
/// security.capability before a write).
#[test]
fn writes_truncates_and_chown_drop_set_id_bits_and_capabilities() {
    if !fuse_available("writes_truncates_and_chown_drop_set_id_bits") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let image = Image::new("killpriv", "64M");
    let mnt = Mounted::new(&image, &["allow_other"]).unwrap();
    let path = mnt.path("tool");
    fs::write(&path, b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let arm = || {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o6775)).unwrap();
        set_capability(&path);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o6775
        );
        assert!(has_capability(&path));
    };
    let disarmed = |what: &str| {
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o0775, "{what} left mode {mode:o}");
        assert!(!has_capability(&path), "{what} left security.capability");
    };
    arm();
    python_as_nobody(
        &path,
        "import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY)\nos.pwrite(fd, b'x', 3)\nos.close(fd)",
    );
    disarmed("a write");
    arm();
    python_as_nobody(&path, "import os, sys\nos.truncate(sys.argv[1], 4)");
    disarmed("a truncate");
    arm();
    std::os::unix::fs::chown(&path, Some(65534), Some(0)).unwrap();
    disarmed("a chown");
    // An explicit chmod sets what it says.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o4755
    );
    mnt.unmount();
    image.assert_clean();
}

/// The daemon's counters, as `getfattr -n user.vexfs.metrics` on a
/// directory shows them: Prometheus text that moves with the requests.
#[test]
fn the_daemons_counters_are_read_through_a_directory_attribute() {
    if !fuse_available("the_daemons_counters_are_read_through_a_directory_attribute") {
        return;
    }
    let image = Image::new("metrics", "64M");
    let m = Mounted::new(&image, &[]).unwrap();
    let value = |line: &str, text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line:?} in:\n{text}"))
    };
    let before = common::client::xattr_get(&m.dir, "user.vexfs.metrics").unwrap();
    let mut f = File::create(m.path("counted")).unwrap();
    f.write_all(&[7u8; 8192]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let after = common::client::xattr_get(&m.dir, "user.vexfs.metrics").unwrap();
    for line in [
        "vexfs_fuse_requests_total{op=\"write\"}",
        "vexfs_fuse_requests_total{op=\"fsync\"}",
        "vexfs_commit_seconds_count",
    ] {
        assert!(
            value(line, &after) > value(line, &before),
            "{line} did not move"
        );
    }
    assert!(value("vexfs_metadata_cache_hits_total", &after) > 0.0);
    // Computed and read-only; a regular file has none.
    assert_eq!(
        common::client::try_xattr_set(&m.dir, "user.vexfs.metrics", "x"),
        Err(libc::EPERM)
    );
    assert_eq!(
        common::client::xattr_get(&m.path("counted"), "user.vexfs.metrics"),
        Err(libc::ENODATA)
    );
    m.unmount();
}

/// Search requests count themselves, their queries and the daemon's time
/// serving them in the daemon's metrics.
#[test]
fn searches_are_counted_in_the_daemons_metrics() {
    if !fuse_available("searches_are_counted_in_the_daemons_metrics") {
        return;
    }
    let image = Image::new("search-metrics", "64M");
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("v");
    let f = common::client::open_rw(&path);
    common::client::set_meta(&f, 16, 0).unwrap();
    let rows = common::client::rows(5, 1_000, 16);
    common::client::insert(&f, 16, &rows, None, 0).unwrap();
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    let before = common::client::xattr_get(&m.dir, "user.vexfs.metrics").unwrap();
    for i in 0..20 {
        common::client::search(
            &f,
            &rows[i * 16..(i + 1) * 16],
            10,
            vexfs_uapi::VEXFS_SEARCH_COSINE,
        )
        .unwrap();
    }
    let after = common::client::xattr_get(&m.dir, "user.vexfs.metrics").unwrap();
    for (name, moved) in [
        ("vexfs_search_requests_total ", 20.0),
        ("vexfs_search_queries_total ", 20.0),
    ] {
        assert_eq!(
            metric(&after, name) - metric(&before, name),
            moved,
            "{name}"
        );
    }
    let served = metric(&after, "vexfs_search_service_seconds_total ")
        - metric(&before, "vexfs_search_service_seconds_total ");
    assert!(served > 0.0 && served < 20.0, "{served} s");
    drop(f);
    m.unmount();
}
