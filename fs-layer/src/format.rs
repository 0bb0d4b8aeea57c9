//! The on-disk format, mirroring docs/FORMAT.md section by section.
//! All integers are little-endian. Every metadata block carries a crc32c.

use crate::error::{Error, Result};

// ---- FORMAT.md §1: constants --------------------------------------------

/// `VEXFS_V2_MAGIC` from the UAPI: "VEX2" read as a little-endian u32 is 0x32584556;
/// the superblock stores the UAPI value 0x56455832 itself.
pub const SUPERBLOCK_MAGIC: u32 = vexfs_uapi::abi::VEXFS_V2_MAGIC;
pub const FORMAT_VERSION: u32 = 1;
pub const BLOCK_BYTES: usize = 4096;
pub const BLOCK_BYTES_U64: u64 = BLOCK_BYTES as u64;
/// Smallest device mkfs accepts: room for the fixed regions and some data.
pub const DEVICE_BLOCKS_MIN: u64 = 4096; // 16 MiB
/// 64-bit block numbers; the bitmap and extents are what bound the size: 256 TiB.
pub const DEVICE_BLOCKS_MAX: u64 = 1 << 36;
pub const LABEL_BYTES_MAX: usize = 64;
pub const NAME_BYTES_MAX: usize = 255;
pub const SYMLINK_BYTES_MAX: usize = 4095;
pub const XATTR_NAME_BYTES_MAX: usize = 255;
pub const XATTR_VALUE_BYTES_MAX: usize = 1536;
/// Largest file: logical block numbers stay below 2^32 (16 TiB files).
pub const FILE_BYTES_MAX: u64 = (1u64 << 32) * BLOCK_BYTES_U64 - 1;
/// One extent maps at most this many blocks (4 GiB): a 10 GiB file is 3 extents.
pub const EXTENT_BLOCKS_MAX: u64 = 1 << 20;
pub const ROOT_INO: u64 = 1;

// Metadata block kinds (the first u32 of a block).
pub const MAGIC_BITMAP: u32 = u32::from_le_bytes(*b"VXBM");
pub const MAGIC_NODE: u32 = u32::from_le_bytes(*b"VXND");
pub const MAGIC_JOURNAL_DESCRIPTOR: u32 = u32::from_le_bytes(*b"VXJD");
pub const MAGIC_JOURNAL_COMMIT: u32 = u32::from_le_bytes(*b"VXJC");

/// Incompatible features: a mount that does not know one must refuse.
pub const INCOMPAT_KNOWN: u32 = 0;
/// Read-only-compatible features: unknown ones allow a read-only mount.
pub const RO_COMPAT_KNOWN: u32 = 0;

// ---- FORMAT.md §2: block header -------------------------------------------

/// Every metadata block except the superblock starts with
/// `magic u32 | crc32c u32 | block_number u64`; the crc covers the whole block
/// with the crc field zeroed, so a block written to the wrong place fails too.
pub const HEADER_BYTES: usize = 16;

pub fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
pub fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// crc32c of `block` as if bytes 4..8 were zero.
pub fn block_crc(block: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&block[..4]);
    let crc = crc32c::crc32c_append(crc, &[0; 4]);
    crc32c::crc32c_append(crc, &block[8..])
}

pub fn seal_block(block: &mut [u8], magic: u32, block_number: u64) {
    put_u32(block, 0, magic);
    put_u64(block, 8, block_number);
    let crc = block_crc(block);
    put_u32(block, 4, crc);
}

/// Checks magic, crc and self block number; the error names what failed.
pub fn check_block(block: &[u8], magic: u32, block_number: u64, what: &'static str) -> Result<()> {
    if block.len() != BLOCK_BYTES {
        return Err(Error::corrupt(
            what,
            block_number,
            format!("{} bytes, a block is {BLOCK_BYTES}", block.len()),
        ));
    }
    let found = le_u32(block, 0);
    if found != magic {
        return Err(Error::corrupt(
            what,
            block_number,
            format!("magic {found:#010x}, expected {magic:#010x}"),
        ));
    }
    let stored = le_u32(block, 4);
    let computed = block_crc(block);
    if stored != computed {
        return Err(Error::corrupt(
            what,
            block_number,
            format!("checksum {stored:#010x} does not match contents ({computed:#010x})"),
        ));
    }
    let self_number = le_u64(block, 8);
    if self_number != block_number {
        return Err(Error::corrupt(
            what,
            block_number,
            format!("block says it belongs at block {self_number}"),
        ));
    }
    Ok(())
}

// ---- FORMAT.md §3: superblock --------------------------------------------

/// The superblock: block 0, with a backup copy in the device's last block.
/// Both copies are written by every journal commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    pub format_version: u32,
    pub compat: u32,
    pub ro_compat: u32,
    pub incompat: u32,
    pub uuid: [u8; 16],
    pub label: String,
    pub total_blocks: u64,
    pub journal_start: u64,
    pub journal_blocks: u64,
    pub bitmap_start: u64,
    pub bitmap_blocks: u64,
    pub tree_root: u64,
    pub tree_height: u32,
    pub free_blocks: u64,
    pub next_ino: u64,
    pub inode_count: u64,
    /// Sequence number the next journal commit will carry.
    pub journal_sequence: u64,
    pub hash_seed: u64,
    pub mkfs_time_sec: u64,
    pub commit_time_sec: u64,
    pub mount_count: u64,
}

mod sb_at {
    pub const MAGIC: usize = 0;
    pub const CRC: usize = 4;
    pub const VERSION: usize = 8;
    pub const COMPAT: usize = 12;
    pub const RO_COMPAT: usize = 16;
    pub const INCOMPAT: usize = 20;
    pub const BLOCK_BYTES: usize = 24;
    pub const UUID: usize = 32;
    pub const LABEL: usize = 48;
    pub const TOTAL_BLOCKS: usize = 112;
    pub const JOURNAL_START: usize = 120;
    pub const JOURNAL_BLOCKS: usize = 128;
    pub const BITMAP_START: usize = 136;
    pub const BITMAP_BLOCKS: usize = 144;
    pub const TREE_ROOT: usize = 152;
    pub const TREE_HEIGHT: usize = 160;
    pub const FREE_BLOCKS: usize = 168;
    pub const NEXT_INO: usize = 176;
    pub const INODE_COUNT: usize = 184;
    pub const JOURNAL_SEQUENCE: usize = 192;
    pub const HASH_SEED: usize = 200;
    pub const MKFS_TIME: usize = 208;
    pub const COMMIT_TIME: usize = 216;
    pub const MOUNT_COUNT: usize = 224;
}

impl Superblock {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK_BYTES];
        put_u32(&mut b, sb_at::MAGIC, SUPERBLOCK_MAGIC);
        put_u32(&mut b, sb_at::VERSION, self.format_version);
        put_u32(&mut b, sb_at::COMPAT, self.compat);
        put_u32(&mut b, sb_at::RO_COMPAT, self.ro_compat);
        put_u32(&mut b, sb_at::INCOMPAT, self.incompat);
        put_u32(&mut b, sb_at::BLOCK_BYTES, BLOCK_BYTES as u32);
        b[sb_at::UUID..sb_at::UUID + 16].copy_from_slice(&self.uuid);
        let label = self.label.as_bytes();
        let n = label.len().min(LABEL_BYTES_MAX);
        b[sb_at::LABEL..sb_at::LABEL + n].copy_from_slice(&label[..n]);
        put_u64(&mut b, sb_at::TOTAL_BLOCKS, self.total_blocks);
        put_u64(&mut b, sb_at::JOURNAL_START, self.journal_start);
        put_u64(&mut b, sb_at::JOURNAL_BLOCKS, self.journal_blocks);
        put_u64(&mut b, sb_at::BITMAP_START, self.bitmap_start);
        put_u64(&mut b, sb_at::BITMAP_BLOCKS, self.bitmap_blocks);
        put_u64(&mut b, sb_at::TREE_ROOT, self.tree_root);
        put_u32(&mut b, sb_at::TREE_HEIGHT, self.tree_height);
        put_u64(&mut b, sb_at::FREE_BLOCKS, self.free_blocks);
        put_u64(&mut b, sb_at::NEXT_INO, self.next_ino);
        put_u64(&mut b, sb_at::INODE_COUNT, self.inode_count);
        put_u64(&mut b, sb_at::JOURNAL_SEQUENCE, self.journal_sequence);
        put_u64(&mut b, sb_at::HASH_SEED, self.hash_seed);
        put_u64(&mut b, sb_at::MKFS_TIME, self.mkfs_time_sec);
        put_u64(&mut b, sb_at::COMMIT_TIME, self.commit_time_sec);
        put_u64(&mut b, sb_at::MOUNT_COUNT, self.mount_count);
        let crc = block_crc(&b);
        put_u32(&mut b, sb_at::CRC, crc);
        b
    }

    /// Decodes and validates one copy; `block` says which copy for messages.
    pub fn decode(b: &[u8], block: u64) -> Result<Self> {
        let what = "superblock";
        if b.len() < BLOCK_BYTES {
            return Err(Error::corrupt(
                what,
                block,
                format!("{} bytes, a superblock is {BLOCK_BYTES}", b.len()),
            ));
        }
        let magic = le_u32(b, sb_at::MAGIC);
        if magic != SUPERBLOCK_MAGIC {
            return Err(Error::corrupt(
                what,
                block,
                format!(
                    "magic {magic:#010x}, expected {SUPERBLOCK_MAGIC:#010x} (not a VexFS device?)"
                ),
            ));
        }
        let stored = le_u32(b, sb_at::CRC);
        if stored != block_crc(b) {
            return Err(Error::corrupt(
                what,
                block,
                "checksum does not match contents".into(),
            ));
        }
        let block_bytes = le_u32(b, sb_at::BLOCK_BYTES);
        if block_bytes as usize != BLOCK_BYTES {
            return Err(Error::corrupt(
                what,
                block,
                format!("block size {block_bytes}, only 4096 is supported"),
            ));
        }
        let label_raw = &b[sb_at::LABEL..sb_at::LABEL + LABEL_BYTES_MAX];
        let label_len = label_raw
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(LABEL_BYTES_MAX);
        let sb = Superblock {
            format_version: le_u32(b, sb_at::VERSION),
            compat: le_u32(b, sb_at::COMPAT),
            ro_compat: le_u32(b, sb_at::RO_COMPAT),
            incompat: le_u32(b, sb_at::INCOMPAT),
            uuid: b[sb_at::UUID..sb_at::UUID + 16]
                .try_into()
                .expect("16 bytes"),
            label: String::from_utf8_lossy(&label_raw[..label_len]).into_owned(),
            total_blocks: le_u64(b, sb_at::TOTAL_BLOCKS),
            journal_start: le_u64(b, sb_at::JOURNAL_START),
            journal_blocks: le_u64(b, sb_at::JOURNAL_BLOCKS),
            bitmap_start: le_u64(b, sb_at::BITMAP_START),
            bitmap_blocks: le_u64(b, sb_at::BITMAP_BLOCKS),
            tree_root: le_u64(b, sb_at::TREE_ROOT),
            tree_height: le_u32(b, sb_at::TREE_HEIGHT),
            free_blocks: le_u64(b, sb_at::FREE_BLOCKS),
            next_ino: le_u64(b, sb_at::NEXT_INO),
            inode_count: le_u64(b, sb_at::INODE_COUNT),
            journal_sequence: le_u64(b, sb_at::JOURNAL_SEQUENCE),
            hash_seed: le_u64(b, sb_at::HASH_SEED),
            mkfs_time_sec: le_u64(b, sb_at::MKFS_TIME),
            commit_time_sec: le_u64(b, sb_at::COMMIT_TIME),
            mount_count: le_u64(b, sb_at::MOUNT_COUNT),
        };
        sb.check_layout(block)?;
        Ok(sb)
    }

    /// The regions must lie inside the device, in order, without overlap.
    fn check_layout(&self, block: u64) -> Result<()> {
        let bad = |reason: String| Err(Error::corrupt("superblock", block, reason));
        if self.format_version != FORMAT_VERSION {
            return bad(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if !(DEVICE_BLOCKS_MIN..=DEVICE_BLOCKS_MAX).contains(&self.total_blocks) {
            return bad(format!("total_blocks {} out of range", self.total_blocks));
        }
        if self.journal_start != 1
            || self.journal_blocks < JOURNAL_BLOCKS_MIN
            || self.journal_blocks >= self.total_blocks
        {
            return bad(format!(
                "journal at {}+{} is not where mkfs puts it",
                self.journal_start, self.journal_blocks
            ));
        }
        if self.bitmap_start != self.journal_start + self.journal_blocks
            || self.bitmap_blocks != bitmap_blocks_for(self.total_blocks)
        {
            return bad(format!(
                "bitmap at {}+{} does not match the device size",
                self.bitmap_start, self.bitmap_blocks
            ));
        }
        let data_start = self.bitmap_start + self.bitmap_blocks;
        if self.tree_root < data_start || self.tree_root >= self.total_blocks - 1 {
            return bad(format!(
                "tree root {} outside the data area",
                self.tree_root
            ));
        }
        if self.tree_height == 0 || self.tree_height > TREE_HEIGHT_MAX {
            return bad(format!(
                "tree height {} out of range 1..={TREE_HEIGHT_MAX}",
                self.tree_height
            ));
        }
        if self.free_blocks > self.total_blocks {
            return bad(format!(
                "free_blocks {} exceeds total_blocks",
                self.free_blocks
            ));
        }
        Ok(())
    }

    pub fn data_start(&self) -> u64 {
        self.bitmap_start + self.bitmap_blocks
    }

    pub fn backup_block(&self) -> u64 {
        self.total_blocks - 1
    }
}

// ---- FORMAT.md §4: journal region -----------------------------------------

pub const JOURNAL_BLOCKS_MIN: u64 = 1024;
pub const JOURNAL_BLOCKS_MAX: u64 = 16384;

/// Journal size mkfs picks: 1/64 of the device within [4 MiB, 64 MiB].
pub fn journal_blocks_for(total_blocks: u64) -> u64 {
    (total_blocks / 64).clamp(JOURNAL_BLOCKS_MIN, JOURNAL_BLOCKS_MAX)
}

// ---- FORMAT.md §5: free-space bitmap ----------------------------------------

/// Bits per bitmap block: the block after its 16-byte header.
pub const BITMAP_BITS_PER_BLOCK: u64 = ((BLOCK_BYTES - HEADER_BYTES) * 8) as u64;

pub fn bitmap_blocks_for(total_blocks: u64) -> u64 {
    total_blocks.div_ceil(BITMAP_BITS_PER_BLOCK)
}

// ---- FORMAT.md §6: the metadata tree ----------------------------------------

pub const TREE_HEIGHT_MAX: u32 = 8;

/// Item kinds, the middle field of a key; keys sort by (ino, kind, offset).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Inode = 1,
    /// offset: 48-bit name hash; value: a bucket of entries with that hash.
    Dirent = 2,
    /// offset: the extent's last logical block (so a forward scan finds the covering extent).
    Extent = 3,
    /// offset: 64-bit name hash; value: a bucket of (name, value).
    Xattr = 4,
    /// ino 0, offset = the orphan's ino; an unlinked inode still open; freed at its last close or at the next mount.
    Orphan = 5,
    /// Reserved for vector-file metadata (issue 4).
    VectorMeta = 6,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Inode,
            2 => Kind::Dirent,
            3 => Kind::Extent,
            4 => Kind::Xattr,
            5 => Kind::Orphan,
            6 => Kind::VectorMeta,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub ino: u64,
    pub kind: u8,
    pub offset: u64,
}

pub const KEY_BYTES: usize = 17;

impl Key {
    pub const MIN: Key = Key {
        ino: 0,
        kind: 0,
        offset: 0,
    };
    pub const MAX: Key = Key {
        ino: u64::MAX,
        kind: u8::MAX,
        offset: u64::MAX,
    };

    pub fn new(ino: u64, kind: Kind, offset: u64) -> Key {
        Key {
            ino,
            kind: kind as u8,
            offset,
        }
    }

    pub fn encode(&self, b: &mut [u8]) {
        put_u64(b, 0, self.ino);
        b[8] = self.kind;
        put_u64(b, 9, self.offset);
    }

    pub fn decode(b: &[u8]) -> Key {
        Key {
            ino: le_u64(b, 0),
            kind: b[8],
            offset: le_u64(b, 9),
        }
    }
}

/// Node header after the block header: level u8, pad u8, count u16, pad u32.
pub const NODE_HEADER_BYTES: usize = HEADER_BYTES + 8;
/// Leaf slot: key, value offset u16, value length u16.
pub const LEAF_SLOT_BYTES: usize = KEY_BYTES + 4;
/// Internal entry: key, child block u64.
pub const INTERNAL_ENTRY_BYTES: usize = KEY_BYTES + 8;
pub const INTERNAL_FANOUT_MAX: usize = (BLOCK_BYTES - NODE_HEADER_BYTES) / INTERNAL_ENTRY_BYTES;
/// Largest item value: two always fit in one leaf, so a split always succeeds.
pub const ITEM_BYTES_MAX: usize = (BLOCK_BYTES - NODE_HEADER_BYTES) / 2 - LEAF_SLOT_BYTES;

// ---- FORMAT.md §7: inode record -----------------------------------------------

pub const INODE_RECORD_BYTES: usize = 128;
/// Inode flag: the file holds vectors (issue 4 defines the rest).
pub const INODE_FLAG_VECTOR: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct InodeRecord {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    /// Data blocks allocated to the file (4 KiB each).
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub crtime: Timespec,
    pub flags: u32,
    pub rdev: u32,
    /// For a directory: its parent's ino (the target of "..").
    pub parent: u64,
}

impl InodeRecord {
    /// A new, empty directory in `parent`, every time `t`.
    pub fn directory(mode: u32, uid: u32, gid: u32, parent: u64, t: Timespec) -> InodeRecord {
        InodeRecord {
            mode: libc::S_IFDIR | (mode & 0o7777),
            uid,
            gid,
            nlink: 2,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            parent,
            ..InodeRecord::default()
        }
    }
}

impl InodeRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; INODE_RECORD_BYTES];
        put_u32(&mut b, 0, self.mode);
        put_u32(&mut b, 4, self.uid);
        put_u32(&mut b, 8, self.gid);
        put_u32(&mut b, 12, self.nlink);
        put_u64(&mut b, 16, self.size);
        put_u64(&mut b, 24, self.blocks);
        for (i, t) in [self.atime, self.mtime, self.ctime, self.crtime]
            .iter()
            .enumerate()
        {
            put_u64(&mut b, 32 + i * 12, t.sec as u64);
            put_u32(&mut b, 40 + i * 12, t.nsec);
        }
        put_u32(&mut b, 80, self.flags);
        put_u32(&mut b, 84, self.rdev);
        put_u64(&mut b, 88, self.parent);
        b
    }

    pub fn decode(b: &[u8], ino: u64) -> Result<Self> {
        if b.len() != INODE_RECORD_BYTES {
            return Err(Error::corrupt(
                "inode",
                ino,
                format!("record is {} bytes, expected {INODE_RECORD_BYTES}", b.len()),
            ));
        }
        let t = |i: usize| Timespec {
            sec: le_u64(b, 32 + i * 12) as i64,
            nsec: le_u32(b, 40 + i * 12),
        };
        let record = InodeRecord {
            mode: le_u32(b, 0),
            uid: le_u32(b, 4),
            gid: le_u32(b, 8),
            nlink: le_u32(b, 12),
            size: le_u64(b, 16),
            blocks: le_u64(b, 24),
            atime: t(0),
            mtime: t(1),
            ctime: t(2),
            crtime: t(3),
            flags: le_u32(b, 80),
            rdev: le_u32(b, 84),
            parent: le_u64(b, 88),
        };
        if record.size > FILE_BYTES_MAX {
            return Err(Error::corrupt(
                "inode",
                ino,
                format!("size {} exceeds the format's maximum", record.size),
            ));
        }
        if !matches!(
            record.mode & libc::S_IFMT,
            libc::S_IFREG
                | libc::S_IFDIR
                | libc::S_IFLNK
                | libc::S_IFIFO
                | libc::S_IFSOCK
                | libc::S_IFCHR
                | libc::S_IFBLK
        ) {
            return Err(Error::corrupt(
                "inode",
                ino,
                format!("mode {:#o} has no valid file type", record.mode),
            ));
        }
        Ok(record)
    }

    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
    pub fn is_reg(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
}

// ---- FORMAT.md §8: extents ------------------------------------------------------

pub const EXTENT_VALUE_BYTES: usize = 20;
/// Extent flag: allocated by fallocate and never written; reads return zeros.
pub const EXTENT_FLAG_UNWRITTEN: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub len: u64,
    pub flags: u32,
}

impl Extent {
    pub fn last_logical(&self) -> u64 {
        self.logical + self.len - 1
    }
    pub fn end_logical(&self) -> u64 {
        self.logical + self.len
    }
    pub fn unwritten(&self) -> bool {
        self.flags & EXTENT_FLAG_UNWRITTEN != 0
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; EXTENT_VALUE_BYTES];
        put_u64(&mut b, 0, self.logical);
        put_u64(&mut b, 8, self.physical);
        put_u32(&mut b, 16, self.flags);
        b
    }

    /// The key holds the last logical block; the value the first.
    pub fn decode(key: &Key, b: &[u8]) -> Result<Self> {
        if b.len() != EXTENT_VALUE_BYTES {
            return Err(Error::corrupt(
                "extent",
                key.ino,
                format!("value is {} bytes", b.len()),
            ));
        }
        let logical = le_u64(b, 0);
        if logical > key.offset || key.offset - logical >= EXTENT_BLOCKS_MAX {
            return Err(Error::corrupt(
                "extent",
                key.ino,
                format!(
                    "first block {logical} and last block {} disagree",
                    key.offset
                ),
            ));
        }
        Ok(Extent {
            logical,
            physical: le_u64(b, 8),
            len: key.offset - logical + 1,
            flags: le_u32(b, 16),
        })
    }
}

// ---- FORMAT.md §9: name hashing and buckets -----------------------------------

/// FNV-1a over the name, seeded per filesystem.
pub fn name_hash(seed: u64, name: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &c in name {
        h ^= c as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Directory entries use 48 bits of the hash, so that a readdir cookie
/// `(hash + 1) << 8 | index_in_bucket` fits in a signed 64-bit offset.
pub fn dirent_hash(seed: u64, name: &[u8]) -> u64 {
    name_hash(seed, name) & ((1 << 48) - 1)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirent {
    pub ino: u64,
    pub file_type: u8,
    pub name: Vec<u8>,
}

/// Bucket entry: ino u64, file_type u8, name_len u8, name.
pub fn encode_dirents(entries: &[Dirent]) -> Vec<u8> {
    let mut b = Vec::new();
    for e in entries {
        b.extend_from_slice(&e.ino.to_le_bytes());
        b.push(e.file_type);
        b.push(e.name.len() as u8);
        b.extend_from_slice(&e.name);
    }
    b
}

pub fn decode_dirents(b: &[u8], dir: u64) -> Result<Vec<Dirent>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        if at + 10 > b.len() {
            return Err(Error::corrupt(
                "directory entry",
                dir,
                "bucket ends inside an entry header".into(),
            ));
        }
        let ino = le_u64(b, at);
        let file_type = b[at + 8];
        let len = b[at + 9] as usize;
        if len == 0 || at + 10 + len > b.len() {
            return Err(Error::corrupt(
                "directory entry",
                dir,
                format!("name length {len} runs past the bucket"),
            ));
        }
        out.push(Dirent {
            ino,
            file_type,
            name: b[at + 10..at + 10 + len].to_vec(),
        });
        at += 10 + len;
    }
    Ok(out)
}

/// Bucket entry: name_len u8, value_len u16, name, value.
pub fn encode_xattrs(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in entries {
        b.push(name.len() as u8);
        b.extend_from_slice(&(value.len() as u16).to_le_bytes());
        b.extend_from_slice(name);
        b.extend_from_slice(value);
    }
    b
}

/// (name, value) pairs sharing one hash.
pub type XattrBucket = Vec<(Vec<u8>, Vec<u8>)>;

pub fn decode_xattrs(b: &[u8], ino: u64) -> Result<XattrBucket> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        if at + 3 > b.len() {
            return Err(Error::corrupt(
                "xattr",
                ino,
                "bucket ends inside an entry header".into(),
            ));
        }
        let name_len = b[at] as usize;
        let value_len = le_u16(b, at + 1) as usize;
        let end = at + 3 + name_len + value_len;
        if name_len == 0 || end > b.len() {
            return Err(Error::corrupt(
                "xattr",
                ino,
                "entry runs past the bucket".into(),
            ));
        }
        out.push((
            b[at + 3..at + 3 + name_len].to_vec(),
            b[at + 3 + name_len..end].to_vec(),
        ));
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_round_trips_and_detects_damage() {
        let sb = Superblock {
            format_version: FORMAT_VERSION,
            compat: 0,
            ro_compat: 0,
            incompat: 0,
            uuid: [7; 16],
            label: "data".into(),
            total_blocks: 4096,
            journal_start: 1,
            journal_blocks: 1024,
            bitmap_start: 1025,
            bitmap_blocks: 1,
            tree_root: 1026,
            tree_height: 1,
            free_blocks: 100,
            next_ino: 2,
            inode_count: 1,
            journal_sequence: 1,
            hash_seed: 3,
            mkfs_time_sec: 0,
            commit_time_sec: 0,
            mount_count: 0,
        };
        let mut b = sb.encode();
        assert_eq!(Superblock::decode(&b, 0).unwrap(), sb);
        b[sb_at::FREE_BLOCKS] ^= 1;
        let err = Superblock::decode(&b, 0).unwrap_err().to_string();
        assert!(
            err.contains("superblock") && err.contains("checksum"),
            "{err}"
        );
    }

    #[test]
    fn sealed_blocks_name_misplacement() {
        let mut b = vec![0u8; BLOCK_BYTES];
        seal_block(&mut b, MAGIC_NODE, 42);
        check_block(&b, MAGIC_NODE, 42, "tree node").unwrap();
        let err = check_block(&b, MAGIC_NODE, 43, "tree node")
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs at block 42"), "{err}");
    }

    #[test]
    fn buckets_round_trip() {
        let d = vec![
            Dirent {
                ino: 5,
                file_type: 1,
                name: b"a".to_vec(),
            },
            Dirent {
                ino: 9,
                file_type: 2,
                name: vec![b'x'; 255],
            },
        ];
        assert_eq!(decode_dirents(&encode_dirents(&d), 1).unwrap(), d);
        let x = vec![
            (b"user.a".to_vec(), vec![1, 2, 3]),
            (b"user.b".to_vec(), vec![]),
        ];
        assert_eq!(decode_xattrs(&encode_xattrs(&x), 1).unwrap(), x);
        assert!(decode_dirents(&[1, 2, 3], 1).is_err());
    }
}
