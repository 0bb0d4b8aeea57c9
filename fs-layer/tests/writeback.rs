//! `-o writeback_cache`: the kernel caches writes to plain files. What a
//! user sees must not change: sizes and times while the file is open and
//! after a remount, bytes written through write-only and O_APPEND
//! descriptors, vector files' sizes and bytes as ioctls change them, and
//! ENOSPC from write(2) when the device fills.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use common::client::{delete, get_meta, insert, open_rw, rows, set_meta};
use common::{fill, fuse_available, Image, Mounted, Rng};
use vexfs_uapi::VEXFS_INSERT_APPEND;

const WRITEBACK: &[&str] = &["writeback_cache"];

fn mtime_ns(m: &fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

#[test]
fn sizes_times_and_bytes_are_kept() {
    if !fuse_available("writeback sizes_times_and_bytes_are_kept") {
        return;
    }
    let image = Image::new("wb-posix", "128M");
    let mnt = Mounted::new(&image, WRITEBACK).unwrap();
    let path = mnt.path("f");

    // A write-only descriptor: the kernel reads the page it writes part of.
    fs::write(&path, vec![7u8; 8192]).unwrap();
    let before = fs::metadata(&path).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let wo = OpenOptions::new().write(true).open(&path).unwrap();
    wo.write_all_at(b"hello", 100).unwrap();
    wo.write_all_at(b"tail", 10_000).unwrap();
    let open_meta = wo.metadata().unwrap();
    assert_eq!(open_meta.len(), 10_004, "size while the data is cached");
    assert!(
        mtime_ns(&open_meta) > mtime_ns(&before),
        "mtime moves at write(2)"
    );
    drop(wo);
    let mut want = vec![7u8; 8192];
    want[100..105].copy_from_slice(b"hello");
    want.resize(10_000, 0);
    want.extend_from_slice(b"tail");
    assert_eq!(fs::read(&path).unwrap(), want);

    // O_APPEND: the kernel places it at its own end of file.
    let mut app = OpenOptions::new().append(true).open(&path).unwrap();
    app.write_all(b"ab").unwrap();
    app.write_all(b"cd").unwrap();
    drop(app);
    want.extend_from_slice(b"abcd");

    // Truncate down and up through a cached descriptor.
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    rw.set_len(9000).unwrap();
    rw.set_len(12_000).unwrap();
    want.truncate(9000);
    want.resize(12_000, 0);
    rw.write_all_at(b"x", 11_999).unwrap();
    want[11_999] = b'x';

    // Random overwrites of a larger file, some fsynced, some not.
    let big = mnt.path("big");
    let mut model = vec![0u8; 4 << 20];
    fill(5, 0, &mut model);
    fs::write(&big, &model).unwrap();
    let b = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&big)
        .unwrap();
    let mut rng = Rng(0x5eed);
    let mut block = vec![0u8; 4096];
    for i in 0..2000u64 {
        let at = rng.below((model.len() - 4096) as u64) as usize;
        fill(i, at as u64, &mut block);
        b.write_all_at(&block, at as u64).unwrap();
        model[at..at + 4096].copy_from_slice(&block);
        if i == 1000 {
            b.sync_all().unwrap();
        }
    }
    let mut read_back = vec![0u8; model.len()];
    b.read_exact_at(&mut read_back, 0).unwrap();
    assert!(read_back == model, "bytes read while cached");
    drop(b);

    let times = mtime_ns(&rw.metadata().unwrap());
    rw.sync_all().unwrap();
    drop(rw);
    let closed = fs::metadata(&path).unwrap();
    assert_eq!(closed.len(), 12_000);
    assert_eq!(mtime_ns(&closed), times, "close keeps the kernel's mtime");
    mnt.unmount();
    image.assert_clean();

    let mnt = Mounted::new(&image, WRITEBACK).unwrap();
    let after = fs::metadata(mnt.path("f")).unwrap();
    assert_eq!(after.len(), 12_000, "size after remount");
    assert_eq!(mtime_ns(&after), times, "mtime after remount");
    assert_eq!(fs::read(mnt.path("f")).unwrap(), want);
    assert!(
        fs::read(mnt.path("big")).unwrap() == model,
        "overwrites after remount"
    );
    mnt.unmount();
    image.assert_clean();
}

fn rows_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The rows read through `early` (opened before the file became a vector
/// file) and through a new descriptor; returns the size stat(2) gives.
fn check_rows(early: &mut File, file: &File, path: &Path, all: &[f32]) -> u64 {
    let info = get_meta(file).unwrap();
    let end = info.data_offset + (all.len() * 4) as u64;
    let size = fs::metadata(path).unwrap().len();
    assert!(
        size >= end,
        "stat size {size} covers the rows ending at {end}"
    );
    let mut got = vec![0u8; all.len() * 4];
    early.seek(SeekFrom::Start(info.data_offset)).unwrap();
    early.read_exact(&mut got).unwrap();
    assert!(got == rows_bytes(all), "rows through the early descriptor");
    let mut fresh = File::open(path).unwrap();
    fresh.seek(SeekFrom::Start(info.data_offset)).unwrap();
    fresh.read_exact(&mut got).unwrap();
    assert!(got == rows_bytes(all), "rows through a new descriptor");
    size
}

#[test]
fn vector_files_stay_coherent() {
    if !fuse_available("writeback vector_files_stay_coherent") {
        return;
    }
    let image = Image::new("wb-vectors", "128M");
    let mnt = Mounted::new(&image, WRITEBACK).unwrap();
    let path = mnt.path("v");
    let d = 8usize;
    // A plain file open for writing (with the cache) elsewhere does not
    // become a vector file: what that handle cached would be refused.
    let other_writer = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let file = open_rw(&path);
    assert_eq!(set_meta(&file, d as u32, 0), Err(libc::EBUSY));
    drop(other_writer);
    // Opened (cached) while still a plain file, kept open throughout.
    let mut early = File::open(&path).unwrap();
    assert_eq!(early.metadata().unwrap().len(), 0);
    set_meta(&file, d as u32, 0).unwrap();
    // Through a handle opened before, bytes are refused at write(2), never
    // cached for a writeback the vector file would refuse.
    assert_eq!(
        (&file).write_all(b"x").unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    let first = rows(1, 100, d);
    let ids: Vec<u64> = (0..100).collect();
    insert(&file, d as u32, &first, Some(&ids), VEXFS_INSERT_APPEND).unwrap();
    let size_100 = check_rows(&mut early, &file, &path, &first);

    let second = rows(2, 4900, d);
    let more: Vec<u64> = (100..5000).collect();
    insert(&file, d as u32, &second, Some(&more), VEXFS_INSERT_APPEND).unwrap();
    let mut all = first.clone();
    all.extend_from_slice(&second);
    let size_5000 = check_rows(&mut early, &file, &path, &all);
    assert!(
        size_5000 > size_100,
        "the kernel's size grew with the vectors: {size_100} then {size_5000}"
    );
    // The size the kernel was told is the file's: a fresh mount agrees.
    file.sync_all().unwrap();
    drop((early, file));
    mnt.unmount();
    let mnt = Mounted::new(&image, &[]).unwrap();
    assert_eq!(fs::metadata(mnt.path("v")).unwrap().len(), size_5000);
    mnt.unmount();

    let mnt = Mounted::new(&image, WRITEBACK).unwrap();
    let path = mnt.path("v");
    let mut early = File::open(&path).unwrap();
    let file = open_rw(&path);
    // A delete moves the last row into the hole; reads end at the real end.
    delete(&file, &[0]).unwrap();
    let moved: Vec<f32> = all[4999 * d..5000 * d].to_vec();
    all.truncate(4999 * d);
    all[..d].copy_from_slice(&moved);
    check_rows(&mut early, &file, &path, &all);
    let info = get_meta(&file).unwrap();
    let mut whole = Vec::new();
    File::open(&path).unwrap().read_to_end(&mut whole).unwrap();
    let rows_at = info.data_offset as usize;
    assert!(
        whole.len() >= rows_at + all.len() * 4,
        "read(2) reaches every row"
    );
    assert!(
        whole[rows_at..rows_at + all.len() * 4] == rows_bytes(&all)[..],
        "read(2) of the whole file"
    );
    // Grown again past what the kernel was told before.
    let third = rows(3, 10_000, d);
    let most: Vec<u64> = (5000..15_000).collect();
    insert(&file, d as u32, &third, Some(&most), VEXFS_INSERT_APPEND).unwrap();
    all.extend_from_slice(&third);
    let size_14999 = check_rows(&mut early, &file, &path, &all);
    file.sync_all().unwrap();
    drop((early, file));
    mnt.unmount();
    image.assert_clean();

    let mnt = Mounted::new(&image, &[]).unwrap();
    let file = open_rw(&mnt.path("v"));
    assert_eq!(get_meta(&file).unwrap().vector_count, 14_999);
    assert_eq!(fs::metadata(mnt.path("v")).unwrap().len(), size_14999);
    drop(file);
    mnt.unmount();
}

#[test]
fn enospc_reaches_write_through_the_cache() {
    if !fuse_available("writeback enospc_reaches_write_through_the_cache") {
        return;
    }
    let image = Image::new("wb-full", "64M");
    let mnt = Mounted::new(&image, WRITEBACK).unwrap();
    let mut keep = vec![0u8; 1 << 20];
    fill(3, 0, &mut keep);
    fs::write(mnt.path("keep"), &keep).unwrap();
    File::open(mnt.path("keep")).unwrap().sync_all().unwrap();
    // Opened with the device nearly empty: its writes start out cached.
    let mut f = File::create(mnt.path("filler")).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut written = 0u64;
    let err = loop {
        fill(9, written, &mut buf);
        match f.write(&buf) {
            Ok(n) => written += n as u64,
            Err(e) => break e,
        }
        assert!(written < 128 << 20, "a 64 MiB device took {written} bytes");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    // What write(2) accepted is on the device: fsync and close say so.
    f.sync_all().expect("fsync after ENOSPC at write(2)");
    drop(f);
    let got = fs::read(mnt.path("filler")).unwrap();
    assert_eq!(got.len() as u64, written);
    let mut want = vec![0u8; got.len()];
    fill(9, 0, &mut want);
    assert!(got == want, "the filler's {written} bytes read back");
    // Opened while the device is nearly full: written through, so its
    // writes meet ENOSPC at write(2) as without the cache.
    let mut late = File::create(mnt.path("late")).unwrap();
    let mut late_written = 0u64;
    let err = loop {
        match late.write(&buf) {
            Ok(n) => late_written += n as u64,
            Err(e) => break e,
        }
        assert!(
            late_written < 32 << 20,
            "{late_written} bytes after the device filled"
        );
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(late);
    fs::remove_file(mnt.path("filler")).unwrap();
    fs::remove_file(mnt.path("late")).unwrap();
    let mut again = File::create(mnt.path("again")).unwrap();
    again.write_all(&vec![1u8; 8 << 20]).unwrap();
    again.sync_all().unwrap();
    drop(again);
    mnt.unmount();
    image.assert_clean();
    let mnt = Mounted::new(&image, &[]).unwrap();
    assert!(fs::read(mnt.path("keep")).unwrap() == keep);
    assert_eq!(fs::metadata(mnt.path("again")).unwrap().len(), 8 << 20);
    mnt.unmount();
    image.assert_clean();
}
