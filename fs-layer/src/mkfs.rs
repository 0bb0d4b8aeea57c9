//! mkfs: lays out an empty filesystem (FORMAT.md §10).

use vexfs_engine::{AlignedBuf, BlockDevice};

use crate::btree::Node;
use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::{file_type_of, now};
use crate::store::{now_sec, write_blocks};

#[derive(Clone, Debug, Default)]
pub struct MkfsOptions {
    pub label: String,
    /// Format even if the device already holds a filesystem.
    pub force: bool,
    pub root_uid: u32,
    pub root_gid: u32,
}

/// What a device already holds, if it is something mkfs should not overwrite unasked.
pub fn existing_filesystem(dev: &dyn BlockDevice) -> Result<Option<&'static str>> {
    let probe = (128 * 1024).min(dev.geometry().size_bytes) as usize / 4096 * 4096;
    let mut buf = AlignedBuf::zeroed(probe);
    dev.read_at(0, &mut buf[..])?;
    let b = &buf[..];
    let at = |offset: usize, magic: &[u8]| {
        b.len() >= offset + magic.len() && &b[offset..offset + magic.len()] == magic
    };
    Ok(if le_u32(b, 0) == SUPERBLOCK_MAGIC {
        Some("VexFS")
    } else if at(1080, &[0x53, 0xef]) {
        Some("ext2/3/4")
    } else if at(0, b"XFSB") {
        Some("XFS")
    } else if at(65600, b"_BHRfS_M") {
        Some("btrfs")
    } else if at(4086, b"SWAPSPACE2") {
        Some("swap")
    } else if at(3, b"NTFS    ") {
        Some("NTFS")
    } else if at(82, b"FAT32   ") || at(54, b"FAT16   ") || at(54, b"FAT12   ") {
        Some("FAT")
    } else if at(510, &[0x55, 0xaa]) {
        Some("a partition table or boot sector")
    } else {
        None
    })
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into the 8-byte array.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), 8, 0) };
    if got != 8 {
        return now_sec() ^ (std::process::id() as u64) << 32;
    }
    u64::from_le_bytes(bytes)
}

/// Formats `dev`. Returns the new superblock.
pub fn mkfs(dev: &dyn BlockDevice, options: &MkfsOptions) -> Result<Superblock> {
    if options.label.len() > LABEL_BYTES_MAX {
        return Err(Error::refused(
            libc::EINVAL,
            format!(
                "label: {} bytes exceeds LABEL_BYTES_MAX {LABEL_BYTES_MAX}",
                options.label.len()
            ),
        ));
    }
    let total_blocks = dev.geometry().size_bytes / BLOCK_BYTES_U64;
    if !(DEVICE_BLOCKS_MIN..=DEVICE_BLOCKS_MAX).contains(&total_blocks) {
        return Err(Error::refused(
            libc::EINVAL,
            format!(
                "size: device of {} bytes; VexFS needs {} to {} bytes",
                dev.geometry().size_bytes,
                DEVICE_BLOCKS_MIN * BLOCK_BYTES_U64,
                DEVICE_BLOCKS_MAX * BLOCK_BYTES_U64
            ),
        ));
    }
    if !options.force {
        if let Some(what) = existing_filesystem(dev)? {
            return Err(Error::refused(
                libc::EEXIST,
                format!("the device already holds {what}; pass --force to overwrite it"),
            ));
        }
    }
    let journal_blocks = journal_blocks_for(total_blocks);
    let bitmap_start = 1 + journal_blocks;
    let bitmap_blocks = bitmap_blocks_for(total_blocks);
    let root_node = bitmap_start + bitmap_blocks;
    let backup = total_blocks - 1;

    // Used: superblock, journal, bitmap, the root node, the backup superblock;
    // bits past the device's end are set so they are never handed out.
    let mut bitmaps = vec![vec![0u8; BLOCK_BYTES]; bitmap_blocks as usize];
    let mut mark = |block: u64| {
        let b = &mut bitmaps[(block / BITMAP_BITS_PER_BLOCK) as usize];
        let bit = (block % BITMAP_BITS_PER_BLOCK) as usize;
        b[HEADER_BYTES + bit / 8] |= 1 << (bit % 8);
    };
    for block in 0..=root_node {
        mark(block);
    }
    mark(backup);
    for block in total_blocks..bitmap_blocks * BITMAP_BITS_PER_BLOCK {
        mark(block);
    }
    let used = root_node + 2;

    let t = now();
    let root = InodeRecord::directory(0o755, options.root_uid, options.root_gid, ROOT_INO, t);
    debug_assert_eq!(file_type_of(root.mode), 4);
    let leaf = Node {
        level: 0,
        keys: vec![Key::new(ROOT_INO, Kind::Inode, 0)],
        vals: vec![root.encode()],
        children: Vec::new(),
    };

    let uuid_hi = random_u64();
    let uuid_lo = random_u64();
    let mut uuid = [0u8; 16];
    uuid[..8].copy_from_slice(&uuid_hi.to_le_bytes());
    uuid[8..].copy_from_slice(&uuid_lo.to_le_bytes());
    uuid[6] = (uuid[6] & 0x0f) | 0x40; // version 4
    uuid[8] = (uuid[8] & 0x3f) | 0x80; // RFC 4122 variant
    let sb = Superblock {
        format_version: FORMAT_VERSION,
        compat: 0,
        ro_compat: 0,
        incompat: 0,
        uuid,
        label: options.label.clone(),
        total_blocks,
        journal_start: 1,
        journal_blocks,
        bitmap_start,
        bitmap_blocks,
        tree_root: root_node,
        tree_height: 1,
        free_blocks: total_blocks - used,
        next_ino: ROOT_INO + 1,
        inode_count: 1,
        journal_sequence: 1,
        hash_seed: random_u64(),
        mkfs_time_sec: now_sec(),
        commit_time_sec: now_sec(),
        mount_count: 0,
    };

    let mut images: Vec<(u64, Vec<u8>)> = Vec::new();
    images.push((1, vec![0u8; BLOCK_BYTES])); // no journal transaction
    for (i, mut b) in bitmaps.into_iter().enumerate() {
        seal_block(&mut b, MAGIC_BITMAP, bitmap_start + i as u64);
        images.push((bitmap_start + i as u64, b));
    }
    images.push((root_node, leaf.encode(root_node)));
    images.push((backup, sb.encode()));
    write_blocks(dev, &images)?;
    dev.flush()?;
    // The primary superblock goes last: until it lands, the device is not VexFS.
    write_blocks(dev, &[(0, sb.encode())])?;
    dev.flush()?;
    Ok(sb)
}
