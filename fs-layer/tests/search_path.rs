//! The search request path, in process: a batch of queries answers exactly
//! as the same queries one at a time (one faiss call for the batch), and a
//! search through a worker's kept buffers allocates nothing in the daemon's
//! own code (faiss's C++ allocations are faiss's; they do not go through
//! Rust's allocator and are not counted here).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use common::Image;
use vexfs_engine::{open_backing, UringOptions};
use vexfs_fs::format::ROOT_INO;
use vexfs_fs::interrupt::Interrupt;
use vexfs_fs::locks::RwLock;
use vexfs_fs::vectors::{with_scratch, Among, VectorFile};
use vexfs_fs::{Fs, MountOptions};
use vexfs_uapi::*;

/// Counts the allocations of the threads that ask it to.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged; the
// thread-local counters are const-initialised (no allocation to reach them).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations `f` made on this thread.
fn allocations_of(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|n| n.get())
}

const DIMENSIONS: u32 = 32;

/// Rows in a few clusters, so that an HNSW search has real work.
fn rows(seed: u64, n: usize) -> Vec<f32> {
    let d = DIMENSIONS as usize;
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let centres: Vec<f32> = (0..16 * d).map(|_| next() * 8.0).collect();
    (0..n)
        .flat_map(|i| {
            let centre = (i * 7) % 16;
            (0..d)
                .map(|j| centres[centre * d + j] + next())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A mounted-in-process filesystem holding vector file "v" of `count`
/// rows under `index` (ids 10, 20, ...); returns it and the file's inode.
fn vector_file(image: &Image, count: usize, index: &str) -> (Fs, u64) {
    let device = open_backing(image.path.to_str().unwrap(), UringOptions::default()).unwrap();
    let fs = Fs::open(device, &MountOptions::default()).unwrap();
    let (ino, _) = fs
        .mknod(ROOT_INO, b"v", libc::S_IFREG | 0o644, 0, 0, 0)
        .unwrap();
    let info = VexfsVectorFileInfo {
        dimensions: DIMENSIONS,
        element_type: VEXFS_VECTOR_FLOAT32,
        ..Default::default()
    };
    fs.set_vector_meta(ino, &info).unwrap();
    fs.setxattr(ino, b"user.vexfs.index", index.as_bytes(), 0)
        .unwrap();
    let ids: Vec<u64> = (1..=count as u64).map(|i| i * 10).collect();
    fs.insert_vectors(ino, DIMENSIONS, &rows(1, count), Some(&ids), 0)
        .unwrap();
    (fs, ino)
}

/// Searches `queries` (rows of DIMENSIONS) of `file` as the request path
/// does, through this thread's kept buffers; returns the most answers a
/// query got.
fn search_kept(
    (fs, file, ino): (&Fs, &Arc<RwLock<VectorFile>>, u64),
    queries: &[f32],
    (k, search_type): (u32, u32),
    among: &Among<'_>,
) -> usize {
    with_scratch(|scratch| {
        scratch.queries.clear();
        scratch.queries.extend_from_slice(queries);
        let count = queries.len() / DIMENSIONS as usize;
        fs.search_scratch(
            (file, ino),
            scratch,
            count,
            (k, search_type),
            among,
            &Interrupt::never(),
        )
        .unwrap()
    })
}

#[test]
fn a_batch_answers_as_its_queries_one_at_a_time() {
    let image = Image::new("search-batch", "64M");
    let (fs, ino) = vector_file(&image, 3000, "HNSW16");
    let queries = rows(2, 60);
    let d = DIMENSIONS as usize;
    let compare = |what: &str| {
        for search_type in [
            VEXFS_SEARCH_EUCLIDEAN,
            VEXFS_SEARCH_COSINE,
            VEXFS_SEARCH_DOT_PRODUCT,
        ] {
            let batch = fs
                .search_points(
                    ino,
                    &queries,
                    10,
                    search_type,
                    &Among::default(),
                    &Interrupt::never(),
                )
                .unwrap();
            assert_eq!(batch.len(), 60);
            for (q, answer) in batch.iter().enumerate() {
                let alone = fs
                    .search_vectors(ino, &queries[q * d..(q + 1) * d], 10, search_type)
                    .unwrap();
                assert_eq!(answer.len(), 10, "{what}, type {search_type}, query {q}");
                assert_eq!(
                    answer.iter().map(|h| h.0).collect::<Vec<_>>(),
                    alone.iter().map(|h| h.0).collect::<Vec<_>>(),
                    "{what}, type {search_type}, query {q}"
                );
            }
        }
    };
    compare("HNSW16");
    // Tombstones: deleted rows' labels stay in the index, selected out.
    let deleted: Vec<u64> = (1..=3000u64)
        .filter(|i| i % 3 == 0)
        .map(|i| i * 10)
        .collect();
    assert_eq!(fs.delete_vectors(ino, &deleted).unwrap(), 1000);
    compare("HNSW16 after deleting a third");
    let status = String::from_utf8(fs.getxattr(ino, b"user.vexfs.status").unwrap()).unwrap();
    assert!(status.contains("tombstones=1000"), "{status}");
    let batch = fs
        .search_points(
            ino,
            &queries,
            10,
            VEXFS_SEARCH_EUCLIDEAN,
            &Among::default(),
            &Interrupt::never(),
        )
        .unwrap();
    assert!(batch.iter().flatten().all(|(id, _)| !deleted.contains(id)));
    fs.setxattr(ino, b"user.vexfs.index", b"Flat", 0).unwrap();
    compare("Flat");
    fs.unmount().unwrap();
}

/// The index path, where a search spends its time on a file of any size.
#[test]
fn a_search_through_kept_buffers_allocates_nothing() {
    let image = Image::new("search-allocations", "64M");
    let d = DIMENSIONS as usize;
    let queries = rows(3, 50);
    for index in ["HNSW16", "Flat"] {
        for search_type in [VEXFS_SEARCH_COSINE, VEXFS_SEARCH_EUCLIDEAN] {
            let (fs, ino) = vector_file(&image, 3000, index);
            let file = fs.searched_file(ino).unwrap();
            for batch in [1, 50] {
                let search = || {
                    let searched = (&fs, &file, ino);
                    let most = search_kept(
                        searched,
                        &queries[..batch * d],
                        (10, search_type),
                        &Among::default(),
                    );
                    assert_eq!(most, 10);
                };
                // The first searches build the index and size the buffers.
                for _ in 0..3 {
                    search();
                }
                let status =
                    String::from_utf8(fs.getxattr(ino, b"user.vexfs.status").unwrap()).unwrap();
                assert!(status.contains(&format!("index={index}\n")), "{status}");
                let made = allocations_of(|| {
                    for _ in 0..20 {
                        search();
                    }
                });
                assert_eq!(
                    made, 0,
                    "{index}, type {search_type}, {batch} queries per search"
                );
            }
            drop(file);
            fs.unlink(ROOT_INO, b"v").unwrap();
            fs.unmount().unwrap();
        }
    }
}

/// An exact scan (Qdrant's `exact`, a selective filter, an index being
/// built or built for another metric) ranks into the worker's kept buffers
/// too: its k best so far live in a heap kept from one request to the
/// next, and are sorted in place. k = 300 is past what a sort may keep on
/// the stack.
#[test]
fn an_exact_scan_through_kept_buffers_allocates_nothing() {
    let image = Image::new("search-scan-allocations", "64M");
    let d = DIMENSIONS as usize;
    let queries = rows(4, 50);
    let (fs, ino) = vector_file(&image, 2000, "Flat");
    let file = fs.searched_file(ino).unwrap();
    let exact = Among {
        exact: true,
        ..Among::default()
    };
    for search_type in [
        VEXFS_SEARCH_COSINE,
        VEXFS_SEARCH_EUCLIDEAN,
        VEXFS_SEARCH_DOT_PRODUCT,
    ] {
        for (batch, k) in [(1, 10), (50, 10), (3, 300)] {
            let search = || {
                let most = search_kept(
                    (&fs, &file, ino),
                    &queries[..batch * d],
                    (k, search_type),
                    &exact,
                );
                assert_eq!(most, k as usize);
            };
            for _ in 0..3 {
                search();
            }
            let made = allocations_of(|| {
                for _ in 0..10 {
                    search();
                }
            });
            assert_eq!(made, 0, "type {search_type}, {batch} queries, k = {k}");
        }
    }
    drop(file);
    fs.unmount().unwrap();
}

/// A request's queries are rows of the dimensions the request declares;
/// when the file's dimensions differ (another thread changed them since
/// the request was checked), the search is refused with EINVAL, even when
/// the request's rows happen to cut into whole rows of the file's.
#[test]
fn queries_of_other_dimensions_are_refused_not_cut_into_rows() {
    let image = Image::new("search-dimensions", "64M");
    let (fs, ino) = vector_file(&image, 500, "Flat");
    let file = fs.searched_file(ino).unwrap();
    // One query of twice the file's dimensions: two of the file's rows long.
    let error = with_scratch(|scratch| {
        scratch.queries.clear();
        scratch
            .queries
            .extend(std::iter::repeat_n(0.5, 2 * DIMENSIONS as usize));
        fs.search_scratch(
            (&file, ino),
            scratch,
            1,
            (10, VEXFS_SEARCH_EUCLIDEAN),
            &Among::default(),
            &Interrupt::never(),
        )
        .unwrap_err()
    });
    assert_eq!(error.errno(), libc::EINVAL, "{error}");
    assert!(error.to_string().contains("dimensions"), "{error}");
    drop(file);
    fs.unmount().unwrap();
}
