//! A vector file's in-memory state outlives every descriptor and request
//! that uses it. FUSE sends RELEASE asynchronously: the close(2) of one
//! descriptor may reach the daemon after the next descriptor's requests.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::client::*;
use common::*;

const DIMENSIONS: u32 = 8;

fn row(id: u64) -> Vec<f32> {
    (0..DIMENSIONS)
        .map(|j| id as f32 + j as f32 / 10.0)
        .collect()
}

/// Every id in `0..count` is stored with its own row.
fn assert_all_stored(path: &std::path::Path, count: u64) {
    let file = open_rw(path);
    let info = get_meta(&file).unwrap();
    assert_eq!(
        info.vector_count as u64, count,
        "acknowledged inserts are missing"
    );
    let ids: Vec<u64> = (0..count).collect();
    let rows = fetch(&file, DIMENSIONS, &ids).unwrap();
    for id in 0..count {
        let at = id as usize * DIMENSIONS as usize;
        assert_eq!(rows[at..at + DIMENSIONS as usize], row(id)[..], "id {id}");
    }
}

#[test]
fn inserts_between_closes_survive_remount() {
    if !fuse_available("inserts_between_closes_survive_remount") {
        return;
    }
    const INSERTS: u64 = 2000;
    let image = Image::new("lifetime-close", "128M");
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("v.vec");
    set_meta(&open_rw(&path), DIMENSIONS, 0).unwrap();
    for id in 0..INSERTS {
        let file = open_rw(&path);
        insert(&file, DIMENSIONS, &row(id), Some(&[id]), 0).unwrap();
    }
    assert_all_stored(&path, INSERTS);
    m.unmount();
    image.assert_clean();
    let m = Mounted::new(&image, &[]).unwrap();
    assert_all_stored(&m.path("v.vec"), INSERTS);
    m.unmount();
}

#[test]
fn fsynced_inserts_survive_a_killed_daemon_while_another_descriptor_closes() {
    if !fuse_available("fsynced_inserts_survive_a_killed_daemon_while_another_descriptor_closes") {
        return;
    }
    const INSERTS: u64 = 2000;
    let image = Image::new("lifetime-fsync", "128M");
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("v.vec");
    set_meta(&open_rw(&path), DIMENSIONS, 0).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let closer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                drop(open_rw(&path));
            }
        })
    };
    for id in 0..INSERTS {
        let file = open_rw(&path);
        insert(&file, DIMENSIONS, &row(id), Some(&[id]), 0).unwrap();
        file.sync_all().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    closer.join().unwrap();
    // No unmount: what fsync acknowledged must already be on the device.
    m.kill_daemon();
    drop(m);
    let m = Mounted::new(&image, &[]).unwrap();
    assert_all_stored(&m.path("v.vec"), INSERTS);
    m.unmount();
    image.assert_clean();
}
