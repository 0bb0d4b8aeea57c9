//! Damaged metadata: mount refuses with a message naming the damage, fsck
//! reports it, nothing panics; a damaged primary superblock is repaired
//! from the backup. Damaged vector files: fsck names the file and the
//! damage, and mount still serves what it can.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::{fuse_available, Image, Mounted, VEXFS};
use vexfs_engine::{open_backing, BlockDevice, UringOptions};
use vexfs_fs::btree::{self, Node};
use vexfs_fs::format::{
    dirent_hash, Extent, InodeRecord, Key, Kind, BLOCK_BYTES, BLOCK_BYTES_U64, INODE_FLAG_VECTOR,
    ROOT_INO,
};
use vexfs_fs::store::Store;
use vexfs_fs::vectors::layout::{self, VectorMeta};
use vexfs_fs::{Fs, MountOptions};

fn device(image: &Image) -> Arc<dyn BlockDevice> {
    open_backing(image.path.to_str().unwrap(), UringOptions::default()).unwrap()
}

/// A filesystem with enough files that inodes and directory entries span several leaves.
fn populated(name: &str) -> (Image, u64, u64) {
    let image = Image::new(name, "64M");
    let dev = device(&image);
    let fs = Fs::open(dev, &MountOptions::default()).unwrap();
    let (dir, _) = fs
        .mknod(ROOT_INO, b"d", libc::S_IFDIR | 0o755, 0, 0, 0)
        .unwrap();
    let mut victim = 0;
    for i in 0..3000 {
        let (ino, _) = fs
            .mknod(
                dir,
                format!("file-{i}").as_bytes(),
                libc::S_IFREG | 0o644,
                0,
                0,
                0,
            )
            .unwrap();
        fs.write(ino, 0, b"data").unwrap();
        if i == 1500 {
            victim = ino;
        }
    }
    fs.unmount().unwrap();
    (image, dir, victim)
}

fn read_block(dev: &dyn BlockDevice, block: u64) -> Vec<u8> {
    let mut buf = vexfs_engine::AlignedBuf::zeroed(BLOCK_BYTES);
    dev.read_at(block * BLOCK_BYTES_U64, &mut buf[..]).unwrap();
    buf.to_vec()
}

fn write_block(dev: &dyn BlockDevice, block: u64, data: &[u8]) {
    let mut buf = vexfs_engine::AlignedBuf::zeroed(BLOCK_BYTES);
    buf.copy_from_slice(data);
    dev.write_at(block * BLOCK_BYTES_U64, &buf[..]).unwrap();
    dev.flush().unwrap();
}

/// Rewrites the leaf holding `key` with `edit` applied to the item's value,
/// keeping the checksum valid: damage only a decoder can see.
fn edit_item(image: &Image, key: Key, edit: impl FnOnce(&mut Vec<u8>)) -> u64 {
    let dev = device(image);
    let (mut st, _) = Store::open(dev.clone(), true).unwrap();
    let leaf = btree::leaf_of(&mut st, &key).unwrap();
    drop(st);
    let mut node = Node::decode(&read_block(dev.as_ref(), leaf), leaf).unwrap();
    let at = node.keys.binary_search(&key).unwrap();
    edit(&mut node.vals[at]);
    write_block(dev.as_ref(), leaf, &node.encode(leaf));
    leaf
}

fn fsck_output(image: &Image) -> (i32, String) {
    let (code, text) = image.fsck();
    assert!(!text.contains("panicked"), "fsck panicked:\n{text}");
    (code, text)
}

fn assert_refused(image: &Image, words: &[&str]) {
    let err = match Mounted::new(image, &[]) {
        Ok(_) => panic!("a damaged filesystem was mounted"),
        Err(e) => e,
    };
    assert!(!err.contains("panicked"), "mount panicked:\n{err}");
    for w in words {
        assert!(
            err.contains(w),
            "mount's refusal does not say {w:?}:\n{err}"
        );
    }
    let (code, text) = fsck_output(image);
    assert_eq!(code, 4, "fsck should report problems:\n{text}");
    for w in words {
        assert!(
            text.contains(w),
            "fsck's report does not say {w:?}:\n{text}"
        );
    }
}

#[test]
fn a_damaged_superblock_is_refused_and_repaired_from_the_backup() {
    if !fuse_available("a_damaged_superblock") {
        return;
    }
    let (image, _, _) = populated("bad-sb");
    let dev = device(&image);
    let mut sb = read_block(dev.as_ref(), 0);
    sb[120..128].fill(0xff);
    write_block(dev.as_ref(), 0, &sb);
    assert_refused(
        &image,
        &["superblock", "checksum", "backup superblock", "intact"],
    );
    let out = Command::new(VEXFS)
        .args(["fsck", "--repair", image.path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    image.assert_clean();
    let mnt = Mounted::new(&image, &[]).unwrap();
    assert_eq!(std::fs::read(mnt.path("d/file-7")).unwrap(), b"data");
    mnt.unmount();
}

#[test]
fn a_damaged_inode_is_refused_by_name() {
    if !fuse_available("a_damaged_inode") {
        return;
    }
    let (image, _, victim) = populated("bad-inode");
    edit_item(&image, Key::new(victim, Kind::Inode, 0), |v| v[..4].fill(0));
    assert_refused(
        &image,
        &["corrupt inode", &victim.to_string(), "no valid file type"],
    );
}

#[test]
fn a_damaged_directory_block_is_refused_by_name() {
    if !fuse_available("a_damaged_directory_block") {
        return;
    }
    let (image, dir, _) = populated("bad-dir");
    let seed = {
        let (st, _) = Store::open(device(&image), true).unwrap();
        st.sb.hash_seed
    };
    let key = Key::new(dir, Kind::Dirent, dirent_hash(seed, b"file-42"));
    edit_item(&image, key, |v| v[9] = 250);
    assert_refused(&image, &["corrupt directory entry", "runs past the bucket"]);
}

#[test]
fn a_flipped_bit_in_a_tree_node_fails_its_checksum() {
    if !fuse_available("a_flipped_bit") {
        return;
    }
    let (image, _, victim) = populated("bad-node");
    let dev = device(&image);
    let leaf = {
        let (mut st, _) = Store::open(dev.clone(), true).unwrap();
        btree::leaf_of(&mut st, &Key::new(victim, Kind::Inode, 0)).unwrap()
    };
    let mut raw = read_block(dev.as_ref(), leaf);
    raw[2000] ^= 0x10;
    write_block(dev.as_ref(), leaf, &raw);
    assert_refused(
        &image,
        &[
            "corrupt tree node",
            &format!("block or inode {leaf}"),
            "checksum",
        ],
    );
}

// ---- vector files (FORMAT.md §13), through the library: no FUSE needed ----

const VECTOR_DIMENSIONS: u32 = 8;
const VECTOR_COUNT: usize = 300;

/// Row `i` of the test vectors: distinct, and no two alike.
fn vector_row(i: usize) -> Vec<f32> {
    (0..VECTOR_DIMENSIONS as usize)
        .map(|j| (i * 31 + j * 7) as f32 * 0.01 + (j as f32))
        .collect()
}

fn vector_id(i: usize) -> u64 {
    1000 + 3 * i as u64
}

/// An image holding vector file "v" (with a stored HNSW16 index) and a
/// plain file; returns the vector file's inode.
fn vector_image(name: &str) -> (Image, u64) {
    let image = Image::new(name, "64M");
    let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
    let (ino, _) = fs
        .mknod(ROOT_INO, b"v", libc::S_IFREG | 0o644, 0, 0, 0)
        .unwrap();
    let info = vexfs_uapi::VexfsVectorFileInfo {
        dimensions: VECTOR_DIMENSIONS,
        element_type: vexfs_uapi::VEXFS_VECTOR_FLOAT32,
        ..Default::default()
    };
    fs.set_vector_meta(ino, &info).unwrap();
    fs.setxattr(ino, b"user.vexfs.index", b"HNSW16", 0).unwrap();
    let rows: Vec<f32> = (0..VECTOR_COUNT).flat_map(vector_row).collect();
    let ids: Vec<u64> = (0..VECTOR_COUNT).map(vector_id).collect();
    fs.insert_vectors(ino, VECTOR_DIMENSIONS, &rows, Some(&ids), 0)
        .unwrap();
    let hits = fs
        .search_vectors(ino, &vector_row(7), 5, vexfs_uapi::VEXFS_SEARCH_EUCLIDEAN)
        .unwrap();
    assert_eq!(hits[0].0, vector_id(7));
    let (plain, _) = fs
        .mknod(ROOT_INO, b"plain", libc::S_IFREG | 0o644, 0, 0, 0)
        .unwrap();
    fs.write(plain, 0, b"not vectors").unwrap();
    fs.sync().unwrap();
    fs.unmount().unwrap();
    (image, ino)
}

fn stored_meta(image: &Image, ino: u64) -> VectorMeta {
    let (mut st, _) = Store::open(device(image), true).unwrap();
    let raw = btree::get(&mut st, &Key::new(ino, Kind::VectorMeta, 0))
        .unwrap()
        .expect("a VectorMeta item");
    VectorMeta::decode(&raw, ino).unwrap()
}

/// Applies `edit` to the bytes at file offset `offset` of `ino`, on the raw
/// image: the file's block, found through its extents, is rewritten.
fn edit_file_bytes(image: &Image, ino: u64, offset: u64, edit: impl FnOnce(&mut [u8])) {
    let extents = vector_extents(image, ino);
    let dev = device(image);
    let logical = offset / BLOCK_BYTES_U64;
    let extent = extents
        .iter()
        .find(|e| e.logical <= logical && logical <= e.last_logical())
        .expect("the block is mapped");
    let physical = extent.physical + (logical - extent.logical);
    let mut block = read_block(dev.as_ref(), physical);
    edit(&mut block[(offset % BLOCK_BYTES_U64) as usize..]);
    write_block(dev.as_ref(), physical, &block);
}

fn vector_extents(image: &Image, ino: u64) -> Vec<Extent> {
    let options = MountOptions {
        read_only: true,
        ..MountOptions::default()
    };
    let fs = Fs::open(device(image), &options).unwrap();
    fs.extents(ino).unwrap()
}

/// fsck exits 4 and its report names the inode and each of `words`.
fn assert_fsck_finds(image: &Image, ino: u64, words: &[&str]) {
    let (code, text) = fsck_output(image);
    assert_eq!(code, 4, "fsck should report problems:\n{text}");
    assert!(
        text.contains(&format!("inode {ino}")),
        "fsck's report does not name inode {ino}:\n{text}"
    );
    for w in words {
        assert!(
            text.contains(w),
            "fsck's report does not say {w:?}:\n{text}"
        );
    }
}

#[test]
fn fsck_checks_vector_files() {
    let (image, ino) = vector_image("vec-clean");
    let (code, text) = fsck_output(&image);
    assert_eq!(code, 0, "a clean vector file: {text}");
    let meta = stored_meta(&image, ino);
    assert_eq!(meta.vector_count, VECTOR_COUNT as u64);
    assert!(meta.index_bytes > 0, "the HNSW16 index is stored");
    // Mounted, the file serves its vectors as stored.
    let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
    assert_eq!(
        fs.get_vectors(ino, VECTOR_DIMENSIONS, &[vector_id(9)])
            .unwrap(),
        vector_row(9)
    );
    fs.unmount().unwrap();
}

#[test]
fn fsck_names_a_damaged_vector_meta_item() {
    let (image, ino) = vector_image("vec-meta");
    edit_item(&image, Key::new(ino, Kind::VectorMeta, 0), |v| {
        v[64] ^= 0x10
    });
    assert_fsck_finds(
        &image,
        ino,
        &["corrupt vector metadata", "do not match capacity"],
    );
    let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
    let err = fs.get_vector_meta(ino).unwrap_err();
    assert_eq!(err.errno(), vexfs_fs::error::EUCLEAN, "{err}");

    // A capacity whose regions overflow a u64 is reported, not computed.
    let (image, ino) = vector_image("vec-capacity");
    edit_item(&image, Key::new(ino, Kind::VectorMeta, 0), |v| {
        v[32..40].copy_from_slice(&(1u64 << 60).to_le_bytes())
    });
    assert_fsck_finds(&image, ino, &["corrupt vector metadata", "overflows"]);
    Fs::open(device(&image), &MountOptions::default()).unwrap();

    // The item on a file that is not flagged as a vector file.
    let (image, ino) = vector_image("vec-flag");
    edit_item(&image, Key::new(ino, Kind::Inode, 0), |v| {
        let mut record = InodeRecord::decode(v, ino).unwrap();
        record.flags &= !INODE_FLAG_VECTOR;
        *v = record.encode();
    });
    assert_fsck_finds(&image, ino, &["has a VectorMeta item but is not flagged"]);
    Fs::open(device(&image), &MountOptions::default()).unwrap();
}

#[test]
fn fsck_names_a_duplicated_vector_id() {
    let (image, ino) = vector_image("vec-dup");
    let meta = stored_meta(&image, ino);
    // Slot 5 takes slot 3's id.
    edit_file_bytes(&image, ino, meta.ids_offset + 5 * 8, |b| {
        b[..8].copy_from_slice(&vector_id(3).to_le_bytes())
    });
    assert_fsck_finds(
        &image,
        ino,
        &[&format!(
            "vector id {} is stored in slots 3 and 5",
            vector_id(3)
        )],
    );
    // Mount keeps the first of the two (slot 3) and serves it.
    let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
    assert_eq!(
        fs.get_vectors(ino, VECTOR_DIMENSIONS, &[vector_id(3)])
            .unwrap(),
        vector_row(3)
    );
    assert_eq!(
        fs.get_vector_meta(ino).unwrap().vector_count as usize,
        VECTOR_COUNT - 1
    );
}

#[test]
fn fsck_names_a_damaged_stored_index_and_header() {
    let (image, ino) = vector_image("vec-index");
    let meta = stored_meta(&image, ino);
    edit_file_bytes(&image, ino, meta.index_offset + meta.index_bytes / 2, |b| {
        b[0] ^= 0x40
    });
    assert_fsck_finds(&image, ino, &["stored index", "crc32c"]);
    // The index is only an accelerator: a search rebuilds it and is right.
    let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
    let hits = fs
        .search_vectors(ino, &vector_row(11), 3, vexfs_uapi::VEXFS_SEARCH_EUCLIDEAN)
        .unwrap();
    assert_eq!(hits[0], (vector_id(11), 0.0));
    drop(fs);

    let (image, ino) = vector_image("vec-header");
    edit_file_bytes(&image, ino, 0, |b| b[0] ^= 0xff);
    assert_fsck_finds(&image, ino, &["header block", "magic"]);
    Fs::open(device(&image), &MountOptions::default()).unwrap();
}

#[test]
fn fsck_names_a_hole_in_the_live_vectors() {
    let (image, ino) = vector_image("vec-hole");
    // The extent holding the first rows loses its blocks up to the first
    // row's block, which becomes a hole.
    let hole = layout::DATA_OFFSET / BLOCK_BYTES_U64;
    let extent = vector_extents(&image, ino)
        .into_iter()
        .find(|e| e.logical <= hole && hole < e.last_logical())
        .expect("the first rows are mapped");
    edit_item(
        &image,
        Key::new(ino, Kind::Extent, extent.last_logical()),
        |v| {
            let shortened = Extent {
                logical: hole + 1,
                physical: extent.physical + (hole + 1 - extent.logical),
                ..extent
            };
            *v = shortened.encode();
        },
    );
    let rows_end =
        layout::DATA_OFFSET + (VECTOR_COUNT as u64) * layout::row_bytes(VECTOR_DIMENSIONS);
    assert_fsck_finds(
        &image,
        ino,
        &[&format!(
            "vector rows (bytes {}..{rows_end}): file block {hole} is a hole",
            layout::DATA_OFFSET
        )],
    );
    Fs::open(device(&image), &MountOptions::default()).unwrap();
}

/// What a crash or a bug can leave behind, each kind once, on an image
/// with valid checksums: fsck names all of it, `fsck --repair` fixes all
/// of it (exit 1), and the image is then clean and mounts with the data.
#[test]
fn fsck_repair_fixes_leaks_counts_names_orphans_and_vector_flags() {
    use vexfs_fs::dir;
    use vexfs_fs::format::Dirent;

    let (image, vector_ino) = vector_image("repair");
    let plain_ino = {
        let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
        let (ino, _) = fs.lookup(ROOT_INO, b"plain").unwrap();
        fs.unmount().unwrap();
        ino
    };
    {
        let (mut st, _) = Store::open(device(&image), false).unwrap();
        // Leaked: allocated, referenced by nothing.
        st.alloc(0, 10).unwrap();
        // Wrong counts.
        st.sb.inode_count += 3;
        st.sb.free_blocks += 7;
        st.mark_sb_dirty();
        // A vector flag without its item.
        btree::remove(&mut st, &Key::new(vector_ino, Kind::VectorMeta, 0)).unwrap();
        // An entry to a missing inode; an inode no entry names.
        dir::add(
            &mut st,
            ROOT_INO,
            Dirent {
                ino: 99_999,
                file_type: 8,
                name: b"ghost".to_vec(),
            },
        )
        .unwrap();
        dir::remove(&mut st, ROOT_INO, b"plain").unwrap();
        // The orphan list names a missing inode.
        btree::insert(&mut st, Key::new(0, Kind::Orphan, 88_888), Vec::new()).unwrap();
        st.commit().unwrap();
        st.retire_journal().unwrap();
    }
    let (code, text) = fsck_output(&image);
    assert_eq!(code, 4, "{text}");
    for words in [
        "marked used but nothing references them",
        "superblock counts",
        "no VectorMeta item",
        "missing inode 99999",
        &format!("inode {plain_ino} is not in any directory"),
        "orphan list names missing inode 88888",
    ] {
        assert!(text.contains(words), "fsck does not say {words:?}:\n{text}");
    }

    let out = Command::new(VEXFS)
        .args(["fsck", "--repair", image.path.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "fsck --repair exits 1 when it repaired:\n{text}"
    );
    assert!(text.contains("repaired:"), "{text}");
    image.assert_clean();

    let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
    let (found, _) = fs.lookup(ROOT_INO, b"lost+found").unwrap();
    let (adopted, _) = fs
        .lookup(found, format!("#{plain_ino}").as_bytes())
        .unwrap();
    assert_eq!(adopted, plain_ino);
    assert_eq!(fs.read(plain_ino, 0, 64).unwrap(), b"not vectors");
    // The vector file's bytes are a plain file's now: its rows still read.
    let record = fs.getattr(vector_ino).unwrap();
    assert_eq!(record.flags & INODE_FLAG_VECTOR, 0);
    let row = fs
        .read(
            vector_ino,
            layout::DATA_OFFSET,
            VECTOR_DIMENSIONS as usize * 4,
        )
        .unwrap();
    let want: Vec<u8> = vector_row(0).iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(row, want);
    assert!(fs.lookup(ROOT_INO, b"ghost").is_err());
    fs.unmount().unwrap();
    image.assert_clean();
}

/// A crafted VectorMeta whose counts are consistent with its regions but
/// far beyond the file: the first access answers EUCLEAN naming the file
/// (it used to allocate 64 GiB and abort the daemon); fsck names it.
#[test]
fn a_crafted_vector_count_is_refused_before_anything_is_allocated() {
    for (label, count) in [
        ("vec-count-2-32", 1u64 << 32),
        ("vec-count-2-28", 1u64 << 28),
    ] {
        let (image, ino) = vector_image(label);
        let mut meta = stored_meta(&image, ino);
        meta.vector_count = count;
        meta.capacity = count;
        let (ids_offset, index_offset) = layout::regions(meta.dimensions, count);
        meta.ids_offset = ids_offset;
        meta.index_offset = index_offset;
        meta.index_bytes = 0;
        meta.index_crc = 0;
        meta.index_generation = 0;
        meta.index_metric = layout::METRIC_NONE;
        meta.index_spec.clear();
        edit_item(&image, Key::new(ino, Kind::VectorMeta, 0), |v| {
            *v = meta.encode()
        });
        // The size too, as a crafted image would: the regions are all "there".
        edit_item(&image, Key::new(ino, Kind::Inode, 0), |v| {
            let mut record = InodeRecord::decode(v, ino).unwrap();
            record.size = meta.file_bytes();
            *v = record.encode();
        });
        let (code, text) = fsck_output(&image);
        assert_eq!(code, 4, "{label}: {text}");
        assert!(text.contains(&format!("inode {ino}")), "{label}: {text}");
        let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
        let err = fs.get_vector_meta(ino).unwrap_err();
        assert_eq!(err.errno(), vexfs_fs::error::EUCLEAN, "{label}: {err}");
        let err = fs
            .search_vectors(ino, &vector_row(1), 3, vexfs_uapi::VEXFS_SEARCH_EUCLIDEAN)
            .unwrap_err();
        assert_eq!(err.errno(), vexfs_fs::error::EUCLEAN, "{label}: {err}");
        // The plain file beside it is served.
        let (plain, _) = fs.lookup(ROOT_INO, b"plain").unwrap();
        assert_eq!(fs.read(plain, 0, 64).unwrap(), b"not vectors");
    }
}

/// A stored HNSW index with a link outside the graph and a crc32c that
/// matches (a crafted image): fsck names the field; mount does not hand it
/// to faiss but rebuilds the index from the rows, and the search is right.
#[test]
fn a_crafted_stored_index_with_a_matching_crc_is_rebuilt_not_loaded() {
    let (image, ino) = vector_image("vec-crafted-index");
    let meta = stored_meta(&image, ino);
    let bytes = {
        let options = MountOptions {
            read_only: true,
            ..MountOptions::default()
        };
        let fs = Fs::open(device(&image), &options).unwrap();
        fs.read(ino, meta.index_offset, meta.index_bytes as usize)
            .unwrap()
    };
    assert_eq!(&bytes[..4], b"IHNf", "an HNSW index is stored");
    let count = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let n = VECTOR_COUNT;
    let mut at = 37; // fourcc and the index header
    at += 8 + count(at) * 8; // assign_probas
    at += 8 + count(at) * 4; // cum_nneighbor_per_level
    at += 8 + n * 4; // levels
    at += 8 + (n + 1) * 8; // offsets
    at += 8; // the neighbors' count: the first link is here
    let mut crafted = bytes.clone();
    crafted[at..at + 4].copy_from_slice(&1_000_000i32.to_le_bytes());
    edit_file_bytes(&image, ino, meta.index_offset + at as u64, |b| {
        b[..4].copy_from_slice(&1_000_000i32.to_le_bytes())
    });
    let mut with_crc = meta.clone();
    with_crc.index_crc = crc32c::crc32c(&crafted);
    edit_item(&image, Key::new(ino, Kind::VectorMeta, 0), |v| {
        *v = with_crc.encode()
    });
    assert_fsck_finds(&image, ino, &["stored HNSW16 index", "neighbors"]);
    let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
    let hits = fs
        .search_vectors(ino, &vector_row(11), 3, vexfs_uapi::VEXFS_SEARCH_EUCLIDEAN)
        .unwrap();
    assert_eq!(hits[0], (vector_id(11), 0.0));
}

/// `vector_image` with a payload on every vector (the region after the index).
fn payload_image(name: &str) -> (Image, u64) {
    let (image, ino) = vector_image(name);
    let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
    let changes = (0..VECTOR_COUNT)
        .map(|i| {
            (
                vector_id(i),
                Some(serde_json::json!({"i": i, "name": format!("row {i}")})),
            )
        })
        .collect();
    fs.set_payloads(ino, changes, None, false).unwrap();
    fs.sync().unwrap();
    fs.unmount().unwrap();
    (image, ino)
}

#[test]
fn fsck_and_mount_name_a_damaged_payload_region() {
    let (image, ino) = payload_image("vec-payload-clean");
    let (code, text) = fsck_output(&image);
    assert_eq!(code, 0, "a clean payload region: {text}");
    let meta = stored_meta(&image, ino);
    assert_eq!(meta.payload_count, VECTOR_COUNT as u64);
    assert!(meta.payload_offset() >= meta.index_offset + meta.index_bytes);

    // A flipped bit: the crc32c no longer matches; mount refuses the file
    // by name instead of serving a damaged payload.
    let (image, ino) = payload_image("vec-payload-bit");
    let meta = stored_meta(&image, ino);
    edit_file_bytes(
        &image,
        ino,
        meta.payload_offset() + meta.payload_bytes / 2,
        |b| b[0] ^= 0x20,
    );
    assert_fsck_finds(&image, ino, &["payloads", "crc32c"]);
    let fs = Fs::open(device(&image), &MountOptions::default()).unwrap();
    let err = fs.get_payloads(ino, &[vector_id(1)]).unwrap_err();
    assert_eq!(err.errno(), vexfs_fs::error::EUCLEAN, "{err}");
    drop(fs);

    // A crafted region whose crc is made to match: the first entry names an
    // id with no vector. Checked entry by entry, not believed.
    let (image, ino) = payload_image("vec-payload-id");
    let meta = stored_meta(&image, ino);
    edit_file_bytes(&image, ino, meta.payload_offset(), |b| {
        b[..8].copy_from_slice(&7u64.to_le_bytes())
    });
    let extents = vector_extents(&image, ino);
    let dev = device(&image);
    let mut region = Vec::new();
    let first = meta.payload_offset() / BLOCK_BYTES_U64;
    let last = (meta.payload_offset() + meta.payload_bytes - 1) / BLOCK_BYTES_U64;
    for logical in first..=last {
        let e = extents
            .iter()
            .find(|e| e.logical <= logical && logical <= e.last_logical())
            .unwrap();
        region.extend(read_block(dev.as_ref(), e.physical + (logical - e.logical)));
    }
    region.truncate(meta.payload_bytes as usize);
    drop(dev);
    let crc = crc32c::crc32c(&region);
    edit_item(&image, Key::new(ino, Kind::VectorMeta, 0), |v| {
        v[128..132].copy_from_slice(&crc.to_le_bytes())
    });
    assert_fsck_finds(&image, ino, &["payloads", "id 7 has no stored vector"]);
}
