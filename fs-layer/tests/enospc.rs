//! A full filesystem refuses vectors when they are inserted, never at
//! fsync or at write-back: what was acknowledged stays durable, freeing
//! space makes the filesystem usable again, and fsck finds nothing.

mod common;

use std::io::Write;

use common::client::*;
use common::*;

const DIMENSIONS: u32 = 256;
const BATCH: u64 = 1000;
/// Bytes one stored vector takes at least: its row and its id.
const VECTOR_BYTES: u64 = DIMENSIONS as u64 * 4 + 8;

fn batch_rows(first_id: u64) -> Vec<f32> {
    (first_id..first_id + BATCH)
        .flat_map(|id| (0..DIMENSIONS).map(move |j| (id * 7 + j as u64) as f32 / 1000.0))
        .collect()
}

fn batch_ids(first_id: u64) -> Vec<u64> {
    (first_id..first_id + BATCH).collect()
}

/// Inserts batches until one is refused; returns how many ids were stored.
/// Every acknowledged batch is fsync'ed when `fsync_each` is set, and that
/// fsync must succeed.
fn fill(path: &std::path::Path, first_id: u64, fsync_each: bool) -> u64 {
    let file = open_rw(path);
    let mut next = first_id;
    loop {
        match insert(
            &file,
            DIMENSIONS,
            &batch_rows(next),
            Some(&batch_ids(next)),
            0,
        ) {
            Ok(()) => next += BATCH,
            Err(errno) => {
                assert_eq!(errno, libc::ENOSPC, "a full filesystem refuses with ENOSPC");
                break;
            }
        }
        if fsync_each {
            file.sync_all().unwrap_or_else(|e| {
                panic!("fsync after the acknowledged insert of ids up to {next} failed: {e}")
            });
        }
        assert!(next < 10_000_000, "inserts were never refused");
    }
    file.sync_all()
        .expect("fsync after a refused insert still succeeds");
    next
}

fn assert_stored(path: &std::path::Path, count: u64) {
    let file = open_rw(path);
    assert_eq!(get_meta(&file).unwrap().vector_count as u64, count);
    for first in [0, count / 2 / BATCH * BATCH, count - BATCH] {
        let rows = fetch(&file, DIMENSIONS, &batch_ids(first)).unwrap();
        assert_eq!(rows, batch_rows(first), "batch at id {first}");
    }
}

#[test]
fn vectors_are_refused_at_insert_when_the_device_is_full() {
    if !fuse_available("vectors_are_refused_at_insert_when_the_device_is_full") {
        return;
    }
    const IMAGE_BYTES: u64 = 96 << 20;
    let image = Image::new("enospc-vectors", "96M");
    let m = Mounted::new(&image, &[]).unwrap();
    let filler = m.path("filler");
    std::fs::File::create(&filler)
        .unwrap()
        .write_all(&vec![7u8; 8 << 20])
        .unwrap();
    let path = m.path("v.vec");
    set_meta(&open_rw(&path), DIMENSIONS, 0).unwrap();

    let stored = fill(&path, 0, true);
    assert!(stored >= 40_000, "only {stored} vectors fit in 96 MiB");
    assert_stored(&path, stored);

    // Space freed elsewhere is usable again, by vectors too.
    std::fs::remove_file(&filler).unwrap();
    let file = open_rw(&path);
    file.sync_all().unwrap();
    insert(
        &file,
        DIMENSIONS,
        &batch_rows(stored),
        Some(&batch_ids(stored)),
        0,
    )
    .expect("insert after unlinking 8 MiB");
    file.sync_all().unwrap();
    drop(file);

    // Without fsync the daemon still holds no more than the device can take.
    let stored = fill(&path, stored + BATCH, false);
    assert!(
        stored * VECTOR_BYTES < IMAGE_BYTES,
        "{stored} vectors accepted on a {IMAGE_BYTES}-byte device"
    );
    assert_stored(&path, stored);
    m.unmount();
    image.assert_clean();

    let m = Mounted::new(&image, &[]).unwrap();
    assert_stored(&m.path("v.vec"), stored);
    m.unmount();
    image.assert_clean();
}
