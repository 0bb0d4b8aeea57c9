//! Vector files through a mounted VexFS, as a program sees them: open a
//! file, call the ioctls, read the bytes, unmount, remount, check.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

use common::client::*;
use common::*;
use vexfs_uapi::*;

fn brute_force(
    data: &[f32],
    ids: &[u64],
    d: usize,
    query: &[f32],
    k: usize,
    metric: u32,
) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = data
        .chunks_exact(d)
        .zip(ids)
        .map(|(row, id)| {
            let dot: f32 = row.iter().zip(query).map(|(a, b)| a * b).sum();
            let l2: f32 = row.iter().zip(query).map(|(a, b)| (a - b) * (a - b)).sum();
            let norms = row.iter().map(|a| a * a).sum::<f32>().sqrt()
                * query.iter().map(|a| a * a).sum::<f32>().sqrt();
            let value = match metric {
                VEXFS_SEARCH_EUCLIDEAN => l2,
                VEXFS_SEARCH_COSINE => 1.0 - dot / norms,
                _ => -dot,
            };
            (value, *id)
        })
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.iter().take(k).map(|s| s.1).collect()
}

fn file_bytes(path: &std::path::Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

fn as_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn vectors_persist_with_ids_and_index_across_remount() {
    if !fuse_available("vectors_persist_with_ids_and_index_across_remount") {
        return;
    }
    let image = Image::new("vec-persist", "512M");
    let (d, n) = (24usize, 3000usize);
    let data = rows(1, n, d);
    let ids: Vec<u64> = (0..n as u64).map(|i| 10_000 + i * 3).collect();
    {
        let m = Mounted::new(&image, &[]).unwrap();
        let path = m.path("embeddings.vec");
        let file = open_rw(&path);
        set_meta(&file, d as u32, 0).unwrap();
        for (chunk, id_chunk) in data.chunks(100 * d).zip(ids.chunks(100)) {
            insert(&file, d as u32, chunk, Some(id_chunk), VEXFS_INSERT_APPEND).unwrap();
        }
        let info = get_meta(&file).unwrap();
        assert_eq!((info.dimensions, info.vector_count), (d as u32, n as u32));
        assert_eq!(info.data_offset, 4096);
        assert!(info.index_offset >= info.data_offset + (n * d * 4) as u64);
        // read(2) at data_offset yields the rows, in insertion order.
        assert_eq!(
            file_bytes(&path, info.data_offset, n * d * 4),
            as_le_bytes(&data)
        );
        for metric in [
            VEXFS_SEARCH_EUCLIDEAN,
            VEXFS_SEARCH_COSINE,
            VEXFS_SEARCH_DOT_PRODUCT,
        ] {
            for q in [0usize, 17, 2999] {
                let query = &data[q * d..(q + 1) * d];
                let got = search(&file, query, 10, metric).unwrap();
                assert_eq!(got.len(), 10);
                let want = brute_force(&data, &ids, d, query, 10, metric);
                assert_eq!(
                    got.iter().map(|g| g.0).collect::<Vec<_>>(),
                    want,
                    "metric {metric} query {q}"
                );
                if metric != VEXFS_SEARCH_DOT_PRODUCT {
                    assert_eq!(got[0].0, ids[q]);
                    assert!(got[0].1.abs() < 1e-4, "self distance {}", got[0].1);
                }
                assert!(got
                    .windows(2)
                    .all(|w| if metric == VEXFS_SEARCH_DOT_PRODUCT {
                        w[0].1 >= w[1].1
                    } else {
                        w[0].1 <= w[1].1
                    }));
            }
        }
        // A graph index, persisted in the file.
        xattr_set(&path, "user.vexfs.index", "HNSW16");
        xattr_set(&path, "user.vexfs.search", "efSearch=128");
        let got = search(&file, &data[5 * d..6 * d], 5, VEXFS_SEARCH_COSINE).unwrap();
        assert_eq!(got[0].0, ids[5]);
        file.sync_all().unwrap();
        drop(file);
        m.unmount();
    }
    image.assert_clean();
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("embeddings.vec");
    let size = std::fs::metadata(&path).unwrap().len();
    let file = open_rw(&path);
    let info = get_meta(&file).unwrap();
    assert_eq!(info.vector_count, n as u32);
    assert!(
        size > info.index_offset,
        "the HNSW index is stored: size {size}, index at {}",
        info.index_offset
    );
    let got = search(&file, &data[2500 * d..2501 * d], 3, VEXFS_SEARCH_COSINE).unwrap();
    assert_eq!(got[0].0, ids[2500]);
    // Ids survived: fetch by id returns the row.
    assert_eq!(
        fetch(&file, d as u32, &[ids[42], ids[7]]).unwrap(),
        [&data[42 * d..43 * d], &data[7 * d..8 * d]].concat()
    );
    drop(file);
    m.unmount();
    image.assert_clean();
}

#[test]
fn upsert_delete_fetch_and_layout_changes() {
    if !fuse_available("upsert_delete_fetch_and_layout_changes") {
        return;
    }
    let image = Image::new("vec-upsert", "128M");
    let m = Mounted::new(&image, &[]).unwrap();
    let file = open_rw(&m.path("v"));
    set_meta(&file, 4, 0).unwrap();
    // No ids: the file assigns 0, 1, 2.
    insert(&file, 4, &rows(2, 3, 4), None, 0).unwrap();
    let first = search(&file, &rows(2, 3, 4)[8..12], 1, VEXFS_SEARCH_EUCLIDEAN).unwrap();
    assert_eq!(first[0].0, 2);
    // Reusing an id replaces its vector (upsert), APPEND or not.
    let replacement = [9.0f32, 9.0, 9.0, 9.0];
    insert(&file, 4, &replacement, Some(&[1]), VEXFS_INSERT_APPEND).unwrap();
    assert_eq!(get_meta(&file).unwrap().vector_count, 3);
    assert_eq!(fetch(&file, 4, &[1]).unwrap(), replacement);
    // Strict insert refuses an existing id and stores nothing of the batch.
    assert_eq!(
        insert(&file, 4, &[1.0; 8], Some(&[7, 2]), VEXFS_INSERT_NO_REPLACE),
        Err(libc::EEXIST)
    );
    assert_eq!(fetch(&file, 4, &[7]), Err(libc::ENOENT));
    // Assigned ids continue above every id seen.
    insert(&file, 4, &[0.5; 4], Some(&[100]), 0).unwrap();
    insert(&file, 4, &[0.25; 4], None, 0).unwrap();
    assert_eq!(fetch(&file, 4, &[101]).unwrap(), [0.25; 4]);
    // Delete: absent ids are skipped and counted out.
    assert_eq!(delete(&file, &[1, 555, 100]).unwrap(), 2);
    assert_eq!(get_meta(&file).unwrap().vector_count, 3);
    assert_eq!(fetch(&file, 4, &[1]), Err(libc::ENOENT));
    let all = search(&file, &[0.0; 4], 10, VEXFS_SEARCH_EUCLIDEAN).unwrap();
    let mut seen: Vec<u64> = all.iter().map(|h| h.0).collect();
    seen.sort();
    assert_eq!(seen, [0, 2, 101]);

    // Same layout again: nothing is lost (programs set it at every open).
    set_meta(&file, 4, 3).unwrap();
    set_meta(&file, 4, 0).unwrap();
    assert_eq!(get_meta(&file).unwrap().vector_count, 3);
    // Other dimensions with vectors stored and vector_count != 0: EBUSY, nothing changes.
    assert_eq!(set_meta(&file, 8, 3), Err(libc::EBUSY));
    assert_eq!(get_meta(&file).unwrap().dimensions, 4);
    // vector_count = 0 says "drop them", as O_TRUNC drops bytes.
    set_meta(&file, 8, 0).unwrap();
    let info = get_meta(&file).unwrap();
    assert_eq!((info.dimensions, info.vector_count), (8, 0));
    assert!(search(&file, &[0.0; 8], 5, VEXFS_SEARCH_COSINE)
        .unwrap()
        .is_empty());
    insert(&file, 8, &rows(3, 10, 8), None, VEXFS_INSERT_APPEND).unwrap();
    assert_eq!(get_meta(&file).unwrap().vector_count, 10);
    // truncate(0) drops the vectors and keeps the layout.
    file.set_len(0).unwrap();
    let info = get_meta(&file).unwrap();
    assert_eq!((info.dimensions, info.vector_count), (8, 0));
    drop(file);
    m.unmount();
    image.assert_clean();
}

#[test]
fn refusals_name_the_errno_and_change_nothing() {
    if !fuse_available("refusals_name_the_errno_and_change_nothing") {
        return;
    }
    let image = Image::new("vec-errors", "128M");
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("v");
    let file = open_rw(&path);
    set_meta(&file, 4, 0).unwrap();
    let data = rows(4, 20, 4);
    insert(&file, 4, &data, None, 0).unwrap();
    let stored = |file: &File| {
        (
            get_meta(file).unwrap().vector_count,
            fetch(file, 4, &[0, 19]).unwrap(),
        )
    };
    let before = stored(&file);

    // Unknown request number (in our magic and not), and a directory.
    let mut junk = [0u8; 16];
    let unknown = vexfs_uapi::abi::ioc(IOC_WRITE, b'V', 9, 16);
    assert_eq!(ioctl(&file, unknown, &mut junk), Err(libc::ENOTTY));
    let dir = File::open(&m.dir).unwrap();
    let mut info = [0u8; 40];
    assert_eq!(
        ioctl(&dir, VEXFS_IOC_GET_VECTOR_META, &mut info),
        Err(libc::ENOTTY)
    );
    // A plain file.
    let plain = open_rw(&m.path("plain"));
    assert_eq!(get_meta(&plain), Err(libc::EINVAL));
    assert_eq!(search(&plain, &[0.0; 4], 1, 0), Err(libc::EINVAL));
    assert_eq!(insert(&plain, 4, &[0.0; 4], None, 0), Err(libc::EINVAL));
    // A plain file with bytes does not become a vector file.
    (&plain).write_all(b"not vectors").unwrap();
    assert_eq!(set_meta(&plain, 4, 0), Err(libc::EBUSY));
    // Access: changes need a descriptor open for writing, reads one open for reading.
    let read_only = File::open(&path).unwrap();
    assert_eq!(insert(&read_only, 4, &[0.0; 4], None, 0), Err(libc::EBADF));
    assert_eq!(set_meta(&read_only, 4, 0), Err(libc::EBADF));
    assert_eq!(delete(&read_only, &[0]), Err(libc::EBADF));
    assert!(search(&read_only, &[0.0; 4], 1, 0).is_ok());
    let write_only = OpenOptions::new().write(true).open(&path).unwrap();
    assert_eq!(search(&write_only, &[0.0; 4], 1, 0), Err(libc::EBADF));
    assert_eq!(get_meta(&write_only), Err(libc::EBADF));
    // Bad pointers.
    let bad = VexfsBatchInsertRequest {
        vectors_addr: 0x10,
        vector_count: 1,
        dimensions: 4,
        ..Default::default()
    };
    assert_eq!(
        ioctl(&file, VEXFS_IOC_BATCH_INSERT, &mut bad.to_bytes()),
        Err(libc::EFAULT)
    );
    let query = [0.0f32; 4];
    let bad_results = VexfsVectorSearchRequest {
        query_vector_addr: query.as_ptr() as u64,
        dimensions: 4,
        k: 3,
        results_addr: 0x20,
        result_ids_addr: 0x40,
        ..Default::default()
    };
    assert_eq!(
        ioctl(&file, VEXFS_IOC_VECTOR_SEARCH, &mut bad_results.to_bytes()),
        Err(libc::EFAULT)
    );
    // NULL is a bad pointer too, as VECTORS.md says.
    let null = VexfsBatchInsertRequest {
        vectors_addr: 0,
        ..bad
    };
    assert_eq!(
        ioctl(&file, VEXFS_IOC_BATCH_INSERT, &mut null.to_bytes()),
        Err(libc::EFAULT)
    );
    let null_results = VexfsVectorSearchRequest {
        results_addr: 0,
        ..bad_results
    };
    assert_eq!(
        ioctl(&file, VEXFS_IOC_VECTOR_SEARCH, &mut null_results.to_bytes()),
        Err(libc::EFAULT)
    );
    // Fields out of range.
    assert_eq!(insert(&file, 5, &[0.0; 5], None, 0), Err(libc::EINVAL));
    assert_eq!(search(&file, &[0.0; 5], 1, 0), Err(libc::EINVAL));
    assert_eq!(search(&file, &[0.0; 4], 0, 0), Err(libc::EINVAL));
    assert_eq!(
        search(&file, &[0.0; 4], limits::SEARCH_K_MAX + 1, 0),
        Err(libc::E2BIG)
    );
    assert_eq!(search(&file, &[0.0; 4], 1, 7), Err(libc::EINVAL));
    assert_eq!(insert(&file, 4, &[0.0; 4], None, 0x40), Err(libc::EINVAL));
    assert_eq!(
        insert(
            &file,
            4,
            &[0.0; 4],
            Some(&[3]),
            VEXFS_INSERT_OVERWRITE | VEXFS_INSERT_NO_REPLACE
        ),
        Err(libc::EINVAL)
    );
    assert_eq!(
        insert(
            &file,
            4,
            &[1.0, f32::NAN, 0.0, 0.0],
            None,
            VEXFS_INSERT_VALIDATE
        ),
        Err(libc::EINVAL)
    );
    assert_eq!(
        insert(
            &file,
            4,
            &[f32::INFINITY, 0.0, 0.0, 0.0],
            None,
            VEXFS_INSERT_VALIDATE
        ),
        Err(libc::EINVAL)
    );
    // Without VALIDATE too: faiss's graph search never ends over a NaN.
    assert_eq!(
        insert(&file, 4, &[0.5, f32::NAN, 0.0, 0.0], None, 0),
        Err(libc::EINVAL)
    );
    assert_eq!(
        search(&file, &[0.0, f32::NAN, 0.0, 0.0], 1, 0),
        Err(libc::EINVAL)
    );
    // Over the per-request byte limit: E2BIG before anything is read (the pointer is never touched).
    let huge = VexfsBatchInsertRequest {
        vectors_addr: 0x1000,
        vector_count: 1_000_000,
        dimensions: 4096,
        ..Default::default()
    };
    assert_eq!(
        ioctl(&file, VEXFS_IOC_BATCH_INSERT, &mut huge.to_bytes()),
        Err(libc::E2BIG)
    );
    let mut unsupported = VexfsVectorFileInfo {
        dimensions: 4,
        element_type: VEXFS_VECTOR_FLOAT16,
        ..Default::default()
    };
    assert_eq!(set_info(&file, unsupported), Err(libc::EINVAL));
    unsupported.element_type = VEXFS_VECTOR_FLOAT32;
    unsupported.compression_type = VEXFS_COMPRESS_LZ4;
    assert_eq!(set_info(&file, unsupported), Err(libc::EINVAL));
    unsupported.compression_type = 0;
    unsupported.alignment_bytes = 48;
    assert_eq!(set_info(&file, unsupported), Err(libc::EINVAL));
    assert_eq!(set_meta(&file, 0, 0), Err(libc::EINVAL));
    // The bytes of a vector file change only through the ioctls.
    assert_eq!(
        (&file).write_all(b"x").unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    assert_eq!(
        file.set_len(100).unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );

    assert_eq!(
        stored(&file),
        before,
        "a refused request changed stored data"
    );
    drop((file, plain, read_only, write_only, dir));
    m.unmount();
    image.assert_clean();
}

#[test]
fn concurrent_inserters_and_searchers() {
    if !fuse_available("concurrent_inserters_and_searchers") {
        return;
    }
    let image = Image::new("vec-threads", "256M");
    let m = Mounted::new(&image, &[]).unwrap();
    let d = 16usize;
    let shared = m.path("shared");
    set_meta(&open_rw(&shared), d as u32, 0).unwrap();
    let mut workers = Vec::new();
    for t in 0..4u64 {
        let shared = shared.clone();
        let own = m.path(&format!("own-{t}"));
        workers.push(std::thread::spawn(move || {
            let file = open_rw(&shared);
            let mine = open_rw(&own);
            set_meta(&mine, d as u32, 0).unwrap();
            for batch in 0..20u64 {
                let data = rows(t * 100 + batch, 50, d);
                let ids: Vec<u64> = (0..50).map(|i| t * 1_000_000 + batch * 50 + i).collect();
                insert(&file, d as u32, &data, Some(&ids), 0).unwrap();
                insert(&mine, d as u32, &data, Some(&ids), 0).unwrap();
                // A searcher sees a consistent file: the row just inserted is its own best match.
                let hit = search(&file, &data[..d], 1, VEXFS_SEARCH_EUCLIDEAN).unwrap();
                assert_eq!(hit[0].0, ids[0]);
                let hit = search(&mine, &data[49 * d..], 1, VEXFS_SEARCH_COSINE).unwrap();
                assert_eq!(hit[0].0, ids[49]);
            }
            mine.sync_all().unwrap();
        }));
    }
    for w in workers {
        w.join().unwrap();
    }
    let file = open_rw(&shared);
    assert_eq!(get_meta(&file).unwrap().vector_count, 4 * 20 * 50);
    file.sync_all().unwrap();
    drop(file);
    m.unmount();
    image.assert_clean();
    let m = Mounted::new(&image, &[]).unwrap();
    assert_eq!(
        get_meta(&open_rw(&m.path("shared"))).unwrap().vector_count,
        4000
    );
    for t in 0..4 {
        assert_eq!(
            get_meta(&open_rw(&m.path(&format!("own-{t}"))))
                .unwrap()
                .vector_count,
            1000
        );
    }
    m.unmount();
    image.assert_clean();
}

#[test]
fn o_sync_descriptor_makes_inserts_durable_at_once() {
    if !fuse_available("o_sync_descriptor_makes_inserts_durable_at_once") {
        return;
    }
    let image = Image::new("vec-osync", "128M");
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("sync.vec");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .custom_flags(libc::O_DSYNC)
        .open(&path)
        .unwrap();
    set_meta(&file, 8, 0).unwrap();
    insert(&file, 8, &rows(9, 64, 8), None, 0).unwrap();
    // Kill the daemon without an unmount: what O_DSYNC promised is on the device.
    m.kill_daemon();
    drop(file);
    drop(m);
    let m = Mounted::new(&image, &[]).unwrap();
    let file = open_rw(&m.path("sync.vec"));
    assert_eq!(get_meta(&file).unwrap().vector_count, 64);
    assert_eq!(
        fetch(&file, 8, &[63]).unwrap(),
        rows(9, 64, 8)[63 * 8..].to_vec()
    );
    drop(file);
    m.unmount();
    image.assert_clean();
}

/// A file past the size where indexes are built in the background: the
/// first search is answered (exactly) at once while HNSW is built, the
/// index arrives and is stored, and after an upsert the answer is the new
/// vector at once, exact until the rebuilt index replaces the stale one.
#[test]
fn large_files_build_their_index_in_the_background() {
    if !fuse_available("large_files_build_their_index_in_the_background") {
        return;
    }
    let image = Image::new("vec-background", "512M");
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("large.vec");
    let file = open_rw(&path);
    let (d, n) = (16usize, 25_000usize);
    set_meta(&file, d as u32, 0).unwrap();
    let data = rows(21, n, d);
    let ids: Vec<u64> = (0..n as u64).collect();
    for (chunk, id_chunk) in data.chunks(5000 * d).zip(ids.chunks(5000)) {
        insert(&file, d as u32, chunk, Some(id_chunk), 0).unwrap();
    }
    let query = &data[123 * d..124 * d];
    let want = brute_force(&data, &ids, d, query, 10, VEXFS_SEARCH_EUCLIDEAN);
    let got = search(&file, query, 10, VEXFS_SEARCH_EUCLIDEAN).unwrap();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        want,
        "exact while building"
    );
    // The built index is installed and, at the next write-back, stored.
    let stored = |file: &File| {
        file.sync_all().unwrap();
        let info = get_meta(file).unwrap();
        std::fs::metadata(&path).unwrap().len() > info.index_offset
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !stored(&file) {
        assert!(
            std::time::Instant::now() < deadline,
            "the background build never landed"
        );
        search(&file, query, 10, VEXFS_SEARCH_EUCLIDEAN).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // An upsert reaches the index at once (a tombstone and a new label).
    let moved: Vec<f32> = vec![5.0; d];
    insert(&file, d as u32, &moved, Some(&[7]), 0).unwrap();
    let got = search(&file, &moved, 1, VEXFS_SEARCH_EUCLIDEAN).unwrap();
    assert_eq!(got[0].0, 7);
    drop(file);
    m.unmount();
    image.assert_clean();
}

/// Replacing or deleting vectors of a file with a graph index never makes
/// a search wait for a rebuild: the index follows each change at once
/// (tombstones, never returned), and is rebuilt in the background once
/// tombstones pass a tenth of it, the old one answering meanwhile and the
/// changes made during the build replayed onto the new one.
#[test]
fn replacements_and_deletes_keep_the_index_answering() {
    if !fuse_available("replacements_and_deletes_keep_the_index_answering") {
        return;
    }
    let image = Image::new("vec-tombstones", "512M");
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("t.vec");
    let file = open_rw(&path);
    let (d, n) = (16usize, 25_000usize);
    set_meta(&file, d as u32, 0).unwrap();
    let mut data = rows(33, n, d);
    let mut ids: Vec<u64> = (0..n as u64).collect();
    for (chunk, id_chunk) in data.chunks(5000 * d).zip(ids.chunks(5000)) {
        insert(&file, d as u32, chunk, Some(id_chunk), 0).unwrap();
    }
    let query = data[..d].to_vec();
    wait_for_status(
        &file,
        &path,
        &query,
        VEXFS_SEARCH_EUCLIDEAN,
        "the first build",
        |s| s["index"] == "HNSW32" && s["indexed"] == n.to_string(),
    );

    // One upsert and one delete: the index follows them, no build is asked for.
    let moved = vec![5.0f32; d];
    insert(&file, d as u32, &moved, Some(&[7]), 0).unwrap();
    assert_eq!(delete(&file, &[100]).unwrap(), 1);
    let status = vector_status(&path);
    assert_eq!(status["index"], "HNSW32", "{status:?}");
    assert_eq!(status["tombstones"], "2", "{status:?}");
    assert_eq!(status["building"], "none", "{status:?}");
    assert_eq!(status["indexed"], (n - 1).to_string(), "{status:?}");
    assert_eq!(
        search(&file, &moved, 1, VEXFS_SEARCH_EUCLIDEAN).unwrap()[0].0,
        7
    );
    for gone in [7usize, 100] {
        let old = &data[gone * d..(gone + 1) * d];
        let got = search(&file, old, 10, VEXFS_SEARCH_EUCLIDEAN).unwrap();
        assert!(
            got.iter()
                .all(|(id, distance)| *id != gone as u64 || *distance > 1.0),
            "the old vector of id {gone} was returned: {got:?}"
        );
    }
    // The last row moved into the deleted one's slot: still found.
    let last = data[(n - 1) * d..].to_vec();
    assert_eq!(
        search(&file, &last, 1, VEXFS_SEARCH_EUCLIDEAN).unwrap()[0].0,
        n as u64 - 1
    );
    data[7 * d..8 * d].copy_from_slice(&moved);
    data.drain(100 * d..101 * d);
    ids.remove(100);
    // Stored with its label map, and read back so after a remount.
    file.sync_all().unwrap();
    assert_eq!(vector_status(&path)["stored_index"], "HNSW32");
    drop(file);
    m.unmount();
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("t.vec");
    let file = open_rw(&path);
    assert_eq!(
        search(&file, &moved, 1, VEXFS_SEARCH_EUCLIDEAN).unwrap()[0].0,
        7
    );
    let status = vector_status(&path);
    assert_eq!(status["index"], "HNSW32", "not read back: {status:?}");
    assert_eq!(status["tombstones"], "2", "{status:?}");
    assert_eq!(status["building"], "none", "{status:?}");
    assert_eq!(
        search(&file, &last, 1, VEXFS_SEARCH_EUCLIDEAN).unwrap()[0].0,
        n as u64 - 1
    );

    // Past a tenth of the index in tombstones: a rebuild in the background,
    // the old index answering while it runs; more changes meanwhile.
    let replaced: Vec<u64> = (1000..4000).collect();
    let fresh = rows(34, replaced.len(), d);
    insert(&file, d as u32, &fresh, Some(&replaced), 0).unwrap();
    let status = vector_status(&path);
    assert_eq!(status["index"], "HNSW32", "{status:?}");
    assert_ne!(
        status["building"], "none",
        "no rebuild asked for: {status:?}"
    );
    let late: Vec<u64> = (5000..5100).collect();
    let late_rows = rows(35, late.len(), d);
    insert(&file, d as u32, &late_rows, Some(&late), 0).unwrap();
    assert_eq!(delete(&file, &[200, 201]).unwrap(), 2);
    for (i, id) in replaced.iter().enumerate() {
        let at = ids.iter().position(|x| x == id).unwrap();
        data[at * d..(at + 1) * d].copy_from_slice(&fresh[i * d..(i + 1) * d]);
    }
    for (i, id) in late.iter().enumerate() {
        let at = ids.iter().position(|x| x == id).unwrap();
        data[at * d..(at + 1) * d].copy_from_slice(&late_rows[i * d..(i + 1) * d]);
    }
    for id in [200u64, 201] {
        let at = ids.iter().position(|x| *x == id).unwrap();
        data.drain(at * d..(at + 1) * d);
        ids.remove(at);
    }
    wait_for_status(
        &file,
        &path,
        &query,
        VEXFS_SEARCH_EUCLIDEAN,
        "the rebuild",
        |s| s["building"] == "none" && s["index"] == "HNSW32",
    );
    let status = vector_status(&path);
    assert_eq!(status["indexed"], ids.len().to_string(), "{status:?}");
    assert!(
        status["tombstones"].parse::<usize>().unwrap() <= late.len() + 2,
        "the rebuilt index carries only changes made during its build: {status:?}"
    );
    // Every change is in the answers: recall against brute force over the
    // file's current vectors, and each late upsert found at its new place.
    let mut hits = 0;
    for q in 0..50 {
        let query = &data[(q * 97) * d..(q * 97 + 1) * d];
        let want = brute_force(&data, &ids, d, query, 10, VEXFS_SEARCH_EUCLIDEAN);
        let got = search(&file, query, 10, VEXFS_SEARCH_EUCLIDEAN).unwrap();
        hits += got.iter().filter(|(id, _)| want.contains(id)).count();
    }
    assert!(hits >= 450, "recall@10 {hits}/500");
    for (i, id) in late.iter().enumerate() {
        let row = &late_rows[i * d..(i + 1) * d];
        assert_eq!(
            search(&file, row, 1, VEXFS_SEARCH_EUCLIDEAN).unwrap()[0].0,
            *id
        );
    }
    for id in [200u64, 201] {
        let old = &rows(33, n, d)[id as usize * d..(id as usize + 1) * d];
        let got = search(&file, old, 10, VEXFS_SEARCH_EUCLIDEAN).unwrap();
        assert!(
            got.iter().all(|(got_id, _)| *got_id != id),
            "deleted {id} returned"
        );
    }
    // The status attribute is the filesystem's: not settable, not listed.
    assert_eq!(
        try_xattr_set(&path, "user.vexfs.status", "x"),
        Err(libc::EPERM)
    );
    drop(file);
    m.unmount();
    image.assert_clean();
}

/// The daemon keeps a file's index choice between searches; every change
/// to `user.vexfs.index` or `user.vexfs.search` (set or removed) reaches
/// the next search.
#[test]
fn a_changed_index_attribute_reaches_the_next_search() {
    if !fuse_available("a_changed_index_attribute_reaches_the_next_search") {
        return;
    }
    let image = Image::new("vec-choice", "128M");
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("c.vec");
    let file = open_rw(&path);
    let (d, n) = (8usize, 2_000usize);
    set_meta(&file, d as u32, 0).unwrap();
    let data = rows(41, n, d);
    insert(&file, d as u32, &data, None, 0).unwrap();
    let query = data[..d].to_vec();
    let index_after_search = || {
        assert_eq!(
            search(&file, &query, 5, VEXFS_SEARCH_EUCLIDEAN).unwrap()[0].0,
            0
        );
        vector_status(&path)["index"].clone()
    };
    assert_eq!(index_after_search(), "Flat");
    xattr_set(&path, "user.vexfs.index", "HNSW16");
    assert_eq!(index_after_search(), "HNSW16");
    xattr_set(&path, "user.vexfs.search", "efSearch=32");
    assert_eq!(index_after_search(), "HNSW16");
    let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let remove = |name: &std::ffi::CStr| {
        // SAFETY: valid NUL-terminated strings.
        assert_eq!(unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) }, 0);
    };
    // efSearch does not fit IVF: the parameters go first.
    remove(c"user.vexfs.search");
    xattr_set(&path, "user.vexfs.index", "IVF8,Flat");
    xattr_set(&path, "user.vexfs.search", "nprobe=4");
    assert_eq!(index_after_search(), "IVF8,Flat");
    remove(c"user.vexfs.search");
    remove(c"user.vexfs.index");
    assert_eq!(index_after_search(), "Flat");
    drop(file);
    m.unmount();
    image.assert_clean();
}
