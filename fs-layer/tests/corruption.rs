//! Damaged metadata: mount refuses with a message naming the damage, fsck
//! reports it, nothing panics; a damaged primary superblock is repaired
//! from the backup.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::{fuse_available, Image, Mounted, VEXFS};
use vexfs_engine::{open_backing, BlockDevice, UringOptions};
use vexfs_fs::btree::{self, Node};
use vexfs_fs::format::{dirent_hash, Key, Kind, BLOCK_BYTES, BLOCK_BYTES_U64, ROOT_INO};
use vexfs_fs::store::Store;
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
