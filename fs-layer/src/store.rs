//! Metadata blocks in memory: a bounded cache, the running transaction (the
//! set of dirty blocks), the write-ahead journal that commits it, and the
//! free-space bitmap. Everything here runs under the filesystem's metadata
//! lock; file data never passes through it.
//!
//! Commit (FORMAT.md §4): flush (file data and the previous checkpoint become
//! durable) → write descriptors, block images and a commit record carrying a
//! crc32c of all of them → flush (the transaction is durable) → write the
//! images to their home blocks (the checkpoint; made durable by the next
//! commit's first flush). The journal holds one transaction at a time, at its
//! start; mount replays it when it is complete and its checksum matches.
//!
//! A commit is split so that its device I/O runs without the metadata lock
//! (see `Fs::commit`): [`Store::seal`] ends the running transaction under the
//! lock and encodes its images once; [`Sealed::write`] does the I/O with no
//! store lock; [`Store::sealed_done`] then makes what it freed reusable.
//! Between seal and done, the next transaction runs in memory; its blocks
//! freed by the sealed one stay unallocatable, and a sealed block evicted
//! from the cache is read back from the sealed images, not from its home
//! block, which the checkpoint may not have reached yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use vexfs_engine::{AlignedBuf, BlockDevice, IoOp};

use crate::btree::Node;

mod journal;

use crate::error::{enospc, Error, Result};
use crate::format::*;
use journal::encode_transaction;
pub use journal::{read_journal, JournalFrame, Sealed};

/// Default bound on cached metadata blocks (64 MiB).
pub const CACHE_BLOCKS_DEFAULT: usize = 16384;
/// Block numbers one journal descriptor lists.
pub const DESCRIPTOR_ENTRIES_MAX: usize = (BLOCK_BYTES - 32) / 8;
/// Blocks written per submission during journal writes and checkpoints.
const WRITE_BATCH_BLOCKS: usize = 256;

enum Content {
    /// A bitmap block, header included; sealed when written.
    Raw(Box<[u8]>),
    Node(Node),
}

struct Cached {
    content: Content,
    tick: u64,
}

/// Whole-block images and the block each belongs at.
pub type BlockImages = Vec<(u64, Vec<u8>)>;
/// A sealed transaction's images, each encoded once into a buffer the
/// device can take as it is: the journal and the checkpoint write the same
/// buffers.
pub type SealedImages = Vec<(u64, AlignedBuf)>;

pub struct Store {
    dev: Arc<dyn BlockDevice>,
    pub sb: Superblock,
    read_only: bool,
    blocks: HashMap<u64, Cached>,
    dirty: BTreeSet<u64>,
    sb_dirty: bool,
    tick: u64,
    cache_blocks_max: usize,
    /// Blocks freed in the running transaction: free in the bitmap, but not
    /// reusable until the transaction commits, because the committed
    /// metadata may still point at them.
    pending_free: BTreeMap<u64, u64>,
    /// Blocks in `pending_free`: counted free, not allocatable yet.
    pending_free_blocks: u64,
    /// Blocks promised to files for a write-back they still owe (vector
    /// files acknowledge inserts before writing them): by inode. Other
    /// allocations cannot take them, so the write-back cannot meet ENOSPC.
    reserved: HashMap<u64, u64>,
    reserved_blocks: u64,
    alloc_cursor: u64,
    /// Committed-but-not-checkpointed images seen at a read-only open (fsck).
    overlay: HashMap<u64, Vec<u8>>,
    /// The images of the sealed transaction whose commit is under way, by
    /// home block (index into the images).
    in_flight: Option<(Arc<SealedImages>, HashMap<u64, usize>)>,
    /// Blocks freed by the sealed transaction: reusable at its `sealed_done`.
    sealing_free: BTreeMap<u64, u64>,
    sealing_free_blocks: u64,
    /// Number of the running transaction; the last one whose commit is done.
    transaction: u64,
    durable_transaction: u64,
    pub commits: u64,
    /// Block reads the cache answered, and those that went to the device.
    cache_hits: u64,
    cache_misses: u64,
}

/// What mount found in the journal.
#[derive(Debug, Default, Clone, Copy)]
pub struct Replay {
    pub sequence: u64,
    pub blocks: usize,
}

impl Store {
    /// Opens the filesystem on `dev`: checks the superblock, replays a
    /// committed journal transaction (into memory only when `read_only`).
    pub fn open(dev: Arc<dyn BlockDevice>, read_only: bool) -> Result<(Store, Option<Replay>)> {
        let logical = dev.geometry().logical_block_bytes as usize;
        if logical > BLOCK_BYTES || BLOCK_BYTES % logical != 0 {
            return Err(Error::refused(libc::EINVAL, format!("device logical block size {logical} does not divide the 4096-byte filesystem block")));
        }
        let sb = read_superblock(dev.as_ref())?;
        if sb.incompat & !INCOMPAT_KNOWN != 0 {
            return Err(Error::refused(
                libc::EINVAL,
                format!(
                    "unknown incompatible features {:#x}: this build cannot use the filesystem",
                    sb.incompat & !INCOMPAT_KNOWN
                ),
            ));
        }
        if sb.ro_compat & !RO_COMPAT_KNOWN != 0 && !read_only {
            return Err(Error::refused(
                libc::EROFS,
                format!(
                    "unknown read-only-compatible features {:#x}: mount read-only",
                    sb.ro_compat & !RO_COMPAT_KNOWN
                ),
            ));
        }
        let replay = read_journal(dev.as_ref(), &sb)?;
        let mut overlay = HashMap::new();
        let mut summary = None;
        if let Some((sequence, images)) = replay {
            summary = Some(Replay {
                sequence,
                blocks: images.len(),
            });
            if read_only {
                overlay = images.into_iter().collect();
            } else {
                write_blocks(dev.as_ref(), &images)?;
                dev.flush()?;
            }
        }
        let sb = match overlay.get(&0) {
            Some(image) => Superblock::decode(image, 0)?,
            None => read_superblock(dev.as_ref())?,
        };
        let alloc_cursor = sb.data_start();
        Ok((
            Store {
                dev,
                sb,
                read_only,
                blocks: HashMap::new(),
                dirty: BTreeSet::new(),
                sb_dirty: false,
                tick: 0,
                cache_blocks_max: CACHE_BLOCKS_DEFAULT,
                pending_free: BTreeMap::new(),
                pending_free_blocks: 0,
                reserved: HashMap::new(),
                reserved_blocks: 0,
                alloc_cursor,
                overlay,
                in_flight: None,
                sealing_free: BTreeMap::new(),
                sealing_free_blocks: 0,
                transaction: 1,
                durable_transaction: 0,
                commits: 0,
                cache_hits: 0,
                cache_misses: 0,
            },
            summary,
        ))
    }

    pub fn device(&self) -> &Arc<dyn BlockDevice> {
        &self.dev
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub fn set_cache_blocks_max(&mut self, blocks: usize) {
        self.cache_blocks_max = blocks.max(64);
    }

    pub fn cached_blocks(&self) -> usize {
        self.blocks.len()
    }

    pub fn dirty_blocks(&self) -> usize {
        self.dirty.len()
    }

    /// The cache's hits, misses and contents, for the daemon's metrics.
    pub fn cache_figures(&self) -> crate::metrics::CacheFigures {
        crate::metrics::CacheFigures {
            hits: self.cache_hits,
            misses: self.cache_misses,
            cached_blocks: self.blocks.len() as u64,
            dirty_blocks: self.dirty.len() as u64,
        }
    }

    /// The running transaction should commit before it outgrows the journal.
    pub fn wants_commit(&self) -> bool {
        self.dirty.len() as u64 + 8 > self.transaction_blocks_max() / 2
    }

    fn transaction_blocks_max(&self) -> u64 {
        // descriptors + images + commit must fit in the journal.
        let j = self.sb.journal_blocks;
        j - j.div_ceil(DESCRIPTOR_ENTRIES_MAX as u64) - 1
    }

    pub fn mark_sb_dirty(&mut self) {
        self.sb_dirty = true;
    }

    fn read_home(&self, block: u64) -> Result<Vec<u8>> {
        if let Some(image) = self.overlay.get(&block) {
            return Ok(image.clone());
        }
        if let Some((images, at)) = &self.in_flight {
            if let Some(&i) = at.get(&block) {
                return Ok(images[i].1.to_vec());
            }
        }
        let mut buf = AlignedBuf::zeroed(BLOCK_BYTES);
        self.dev.read_at(block * BLOCK_BYTES_U64, &mut buf[..])?;
        Ok(buf[..].to_vec())
    }

    fn load(&mut self, block: u64, what: &'static str) -> Result<&mut Cached> {
        self.tick += 1;
        let tick = self.tick;
        if self.blocks.contains_key(&block) {
            self.cache_hits += 1;
        } else {
            self.cache_misses += 1;
            if block >= self.sb.total_blocks {
                return Err(Error::corrupt(
                    what,
                    block,
                    format!(
                        "block number past the end of the device ({} blocks)",
                        self.sb.total_blocks
                    ),
                ));
            }
            let raw = self.read_home(block)?;
            let content = if what == "bitmap block" {
                check_block(&raw, MAGIC_BITMAP, block, what)?;
                Content::Raw(raw.into_boxed_slice())
            } else {
                Content::Node(Node::decode(&raw, block)?)
            };
            self.evict_if_full();
            self.blocks.insert(block, Cached { content, tick });
        }
        let cached = self.blocks.get_mut(&block).expect("just inserted");
        cached.tick = tick;
        Ok(cached)
    }

    /// Drops the least recently used clean blocks once the cache is full.
    fn evict_if_full(&mut self) {
        if self.blocks.len() < self.cache_blocks_max {
            return;
        }
        let mut clean: Vec<(u64, u64)> = self
            .blocks
            .iter()
            .filter(|(b, _)| !self.dirty.contains(b))
            .map(|(b, c)| (c.tick, *b))
            .collect();
        clean.sort_unstable();
        for (_, block) in clean.iter().take(self.cache_blocks_max / 8 + 1) {
            self.blocks.remove(block);
        }
    }

    pub fn node(&mut self, block: u64) -> Result<&Node> {
        match &self.load(block, "tree node")?.content {
            Content::Node(node) => Ok(node),
            Content::Raw(_) => Err(Error::corrupt(
                "tree node",
                block,
                "block is a bitmap block".into(),
            )),
        }
    }

    pub fn node_mut(&mut self, block: u64) -> Result<&mut Node> {
        self.check_writable()?;
        // Load (and check) before marking dirty: a corrupt block must not
        // reach the commit.
        self.load(block, "tree node")?;
        self.dirty.insert(block);
        match &mut self.load(block, "tree node")?.content {
            Content::Node(node) => Ok(node),
            Content::Raw(_) => Err(Error::corrupt(
                "tree node",
                block,
                "block is a bitmap block".into(),
            )),
        }
    }

    /// Places a freshly allocated node in the cache, dirty.
    pub fn put_node(&mut self, block: u64, node: Node) {
        self.evict_if_full();
        self.tick += 1;
        self.blocks.insert(
            block,
            Cached {
                content: Content::Node(node),
                tick: self.tick,
            },
        );
        self.dirty.insert(block);
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::refused(
                libc::EROFS,
                "the filesystem is mounted read-only",
            ));
        }
        Ok(())
    }

    // ---- free-space bitmap (FORMAT.md §5) ----

    fn bitmap_location(&self, block: u64) -> (u64, usize) {
        (
            self.sb.bitmap_start + block / BITMAP_BITS_PER_BLOCK,
            (block % BITMAP_BITS_PER_BLOCK) as usize,
        )
    }

    fn bitmap(&mut self, bitmap_block: u64) -> Result<&mut [u8]> {
        match &mut self.load(bitmap_block, "bitmap block")?.content {
            Content::Raw(raw) => Ok(&mut raw[HEADER_BYTES..]),
            Content::Node(_) => Err(Error::corrupt(
                "bitmap block",
                bitmap_block,
                "block is a tree node".into(),
            )),
        }
    }

    pub fn is_used(&mut self, block: u64) -> Result<bool> {
        let (bb, bit) = self.bitmap_location(block);
        Ok(self.bitmap(bb)?[bit / 8] & (1 << (bit % 8)) != 0)
    }

    /// The end of the run of not-yet-reusable freed blocks holding `block`.
    fn pending(&self, block: u64) -> Option<u64> {
        [&self.pending_free, &self.sealing_free]
            .into_iter()
            .find_map(|runs| match runs.range(..=block).next_back() {
                Some((&start, &len)) if start + len > block => Some(start + len),
                _ => None,
            })
    }

    /// First block at or after `from` that is clear in the bitmap, before `end`.
    fn next_clear(&mut self, mut from: u64, end: u64) -> Result<Option<u64>> {
        while from < end {
            let (bb, bit) = self.bitmap_location(from);
            let bits = self.bitmap(bb)?;
            let mut i = bit;
            let bits_here = (BITMAP_BITS_PER_BLOCK as usize).min(bit + (end - from) as usize);
            while i < bits_here {
                if i % 64 == 0 && i + 64 <= bits_here {
                    let word =
                        u64::from_le_bytes(bits[i / 8..i / 8 + 8].try_into().expect("8 bytes"));
                    if word == u64::MAX {
                        i += 64;
                        continue;
                    }
                }
                if bits[i / 8] & (1 << (i % 8)) == 0 {
                    return Ok(Some(from + (i - bit) as u64));
                }
                i += 1;
            }
            from += (bits_here - bit) as u64;
        }
        Ok(None)
    }

    /// Allocates a run of up to `want` blocks, preferring to start at `goal`.
    /// Returns (first block, length); ENOSPC when the device is full.
    pub fn alloc(&mut self, goal: u64, want: u64) -> Result<(u64, u64)> {
        self.check_writable()?;
        let want = want.clamp(1, EXTENT_BLOCKS_MAX);
        let data_start = self.sb.data_start();
        let end = self.sb.total_blocks - 1; // the backup superblock
        let goal = if (data_start..end).contains(&goal) {
            goal
        } else {
            self.alloc_cursor
        };
        for (from, to) in [(goal, end), (data_start, goal)] {
            let mut at = from;
            while let Some(start) = self.next_clear(at, to)? {
                if let Some(past) = self.pending(start) {
                    at = past;
                    continue;
                }
                let mut len = 1;
                while len < want
                    && start + len < end
                    && self.pending(start + len).is_none()
                    && !self.is_used(start + len)?
                {
                    len += 1;
                }
                self.set_bits(start, len, true)?;
                self.sb.free_blocks -= len;
                self.sb_dirty = true;
                self.alloc_cursor = start + len;
                return Ok((start, len));
            }
        }
        Err(enospc())
    }

    /// Blocks held back from file data so that metadata (tree splits while
    /// freeing, directory entries) can still be written on a full device.
    pub fn metadata_reserve_blocks(&self) -> u64 {
        (self.sb.total_blocks / 256).clamp(64, 8192)
    }

    /// Free blocks the data of file `ino` may take now: not those freed by
    /// the running transaction (reusable once it commits), not the metadata
    /// reserve, not what other files have reserved; its own reservation is
    /// included.
    ///
    /// A reservation is a promise: it stays available to its file even when
    /// metadata has eaten into the metadata reserve (tree nodes are
    /// allocated from it on a full device), as long as the blocks exist.
    pub fn data_blocks_available(&self, ino: u64) -> u64 {
        let own = self.reserved.get(&ino).copied().unwrap_or(0);
        let allocatable = self
            .sb
            .free_blocks
            .saturating_sub(self.pending_free_blocks + self.sealing_free_blocks);
        let unreserved = allocatable
            .saturating_sub(self.metadata_reserve_blocks())
            .saturating_sub(self.reserved_blocks);
        (unreserved + own).min(allocatable)
    }

    /// Allocation for the data of file `ino`: draws on its reservation
    /// first; ENOSPC once nothing is available to it.
    pub fn alloc_data(&mut self, ino: u64, goal: u64, want: u64) -> Result<(u64, u64)> {
        let available = self.data_blocks_available(ino);
        if available == 0 {
            return Err(enospc());
        }
        let (start, len) = self.alloc(goal, want.min(available))?;
        if let Some(own) = self.reserved.get_mut(&ino) {
            let used = len.min(*own);
            *own -= used;
            self.reserved_blocks -= used;
        }
        Ok((start, len))
    }

    /// Sets the reservation of file `ino` to `blocks` (0 releases it).
    /// Growing it fails with ENOSPC, changing nothing, when the blocks are
    /// not available; shrinking always succeeds.
    pub fn reserve(&mut self, ino: u64, blocks: u64) -> Result<()> {
        let own = self.reserved.get(&ino).copied().unwrap_or(0);
        if blocks > own && blocks > self.data_blocks_available(ino) {
            return Err(Error::refused(
                libc::ENOSPC,
                format!(
                    "no room: writing file {ino} back needs {blocks} blocks, {} are available",
                    self.data_blocks_available(ino)
                ),
            ));
        }
        self.reserved_blocks = self.reserved_blocks - own + blocks;
        if blocks == 0 {
            self.reserved.remove(&ino);
        } else {
            self.reserved.insert(ino, blocks);
        }
        Ok(())
    }

    /// Blocks reserved by all files, for statfs.
    pub fn reserved_blocks(&self) -> u64 {
        self.reserved_blocks
    }

    /// Blocks freed by the running transaction wait for its commit; a
    /// caller that hit ENOSPC can commit and retry.
    pub fn has_pending_frees(&self) -> bool {
        !self.pending_free.is_empty() || !self.sealing_free.is_empty()
    }

    /// Frees a run; the blocks become reusable once this transaction commits.
    pub fn free(&mut self, start: u64, len: u64) -> Result<()> {
        self.check_writable()?;
        if start < self.sb.data_start() || start + len > self.sb.total_blocks - 1 {
            return Err(Error::corrupt(
                "extent",
                start,
                format!("freeing {start}+{len} outside the data area"),
            ));
        }
        self.set_bits(start, len, false)?;
        self.sb.free_blocks += len;
        self.sb_dirty = true;
        for block in start..start + len {
            // A freed tree node must not be checkpointed over its next owner.
            if self.dirty.remove(&block) || self.blocks.contains_key(&block) {
                self.blocks.remove(&block);
            }
        }
        self.pending_free.insert(start, len);
        self.pending_free_blocks += len;
        Ok(())
    }

    fn set_bits(&mut self, start: u64, len: u64, used: bool) -> Result<()> {
        let mut block = start;
        while block < start + len {
            let (bb, first_bit) = self.bitmap_location(block);
            let n = ((BITMAP_BITS_PER_BLOCK as usize - first_bit) as u64).min(start + len - block)
                as usize;
            self.bitmap(bb)?;
            self.dirty.insert(bb);
            let bits = self.bitmap(bb)?;
            for bit in first_bit..first_bit + n {
                let was = bits[bit / 8] & (1 << (bit % 8)) != 0;
                if was == used {
                    let state = if used { "allocated" } else { "freed" };
                    return Err(Error::corrupt(
                        "bitmap block",
                        bb,
                        format!(
                            "block {} is already {state}",
                            block + (bit - first_bit) as u64
                        ),
                    ));
                }
                bits[bit / 8] ^= 1 << (bit % 8);
            }
            block += n as u64;
        }
        Ok(())
    }

    // ---- commit (FORMAT.md §4) ----

    /// The running transaction: a change made now is durable once
    /// [`durable_transaction`](Self::durable_transaction) reaches it.
    pub fn transaction(&self) -> u64 {
        self.transaction
    }

    pub fn durable_transaction(&self) -> u64 {
        self.durable_transaction
    }

    /// Ends the running transaction: encodes its blocks and the next
    /// superblock, and starts the next transaction. The caller writes the
    /// result ([`Sealed::write`]) and hands it back ([`Store::sealed_done`])
    /// before sealing again. On error nothing changed.
    pub fn seal(&mut self) -> Result<Sealed> {
        let transaction = self.transaction;
        debug_assert!(self.in_flight.is_none(), "one commit at a time");
        if self.read_only || (self.dirty.is_empty() && !self.sb_dirty) {
            self.transaction += 1;
            return Ok(Sealed {
                transaction,
                journal: None,
            });
        }
        let sequence = self.sb.journal_sequence;
        let mut next_sb = self.sb.clone();
        next_sb.journal_sequence = sequence + 1;
        next_sb.commit_time_sec = now_sec();
        let sb_image = next_sb.encode();

        let aligned = |image: &[u8]| {
            let mut buf = AlignedBuf::zeroed(BLOCK_BYTES);
            buf.copy_from_slice(image);
            buf
        };
        let mut images: SealedImages = Vec::with_capacity(self.dirty.len() + 2);
        images.push((0, aligned(&sb_image)));
        for &block in &self.dirty {
            let cached = self.blocks.get(&block).expect("dirty blocks stay cached");
            let mut buf = match &cached.content {
                Content::Raw(raw) => aligned(raw),
                Content::Node(node) => aligned(&node.encode(block)),
            };
            if let Content::Raw(_) = &cached.content {
                seal_block(&mut buf, MAGIC_BITMAP, block);
            }
            images.push((block, buf));
        }
        images.push((next_sb.backup_block(), aligned(&sb_image)));
        if images.len() as u64 > self.transaction_blocks_max() {
            return Err(Error::refused(
                libc::ENOSPC,
                format!(
                    "transaction of {} blocks does not fit the journal ({} blocks)",
                    images.len(),
                    self.sb.journal_blocks
                ),
            ));
        }
        let journal = encode_transaction(sequence, self.sb.journal_start, &images);
        let at = images
            .iter()
            .enumerate()
            .map(|(i, (block, _))| (*block, i))
            .collect();
        let images = Arc::new(images);
        self.in_flight = Some((images.clone(), at));
        self.sb.journal_sequence = next_sb.journal_sequence;
        self.sb.commit_time_sec = next_sb.commit_time_sec;
        self.dirty.clear();
        self.sb_dirty = false;
        self.sealing_free = std::mem::take(&mut self.pending_free);
        self.sealing_free_blocks = std::mem::take(&mut self.pending_free_blocks);
        self.transaction += 1;
        Ok(Sealed {
            transaction,
            journal: Some((journal, images)),
        })
    }

    /// The sealed transaction is durable (its journal write and the flush
    /// after it returned); its checkpoint may still be under way.
    pub fn sealed_durable(&mut self, sealed: &Sealed) {
        self.durable_transaction = sealed.transaction;
    }

    /// The sealed transaction is durable and checkpointed: the blocks it
    /// freed are reusable, and its blocks are read from home again.
    pub fn sealed_done(&mut self, sealed: Sealed) {
        if sealed.journal.is_some() {
            self.commits += 1;
        }
        self.in_flight = None;
        self.sealing_free.clear();
        self.sealing_free_blocks = 0;
        self.durable_transaction = sealed.transaction;
    }

    /// Commits the running transaction in one go, for a caller that has
    /// the store to itself (mount, fsck). Returns false when there was
    /// nothing to commit.
    pub fn commit(&mut self) -> Result<bool> {
        let sealed = self.seal()?;
        let committed = sealed.journal.is_some();
        sealed.write(self.dev.as_ref(), false)?;
        self.sealed_done(sealed);
        Ok(committed)
    }
}

impl Store {
    /// After a final commit: makes the checkpoint durable and empties the
    /// journal, so the next mount has nothing to replay.
    pub fn retire_journal(&mut self) -> Result<()> {
        if self.read_only || !self.dirty.is_empty() || self.sb_dirty {
            return Ok(());
        }
        self.dev.flush()?;
        write_blocks(
            self.dev.as_ref(),
            &[(self.sb.journal_start, vec![0u8; BLOCK_BYTES])],
        )?;
        self.dev.flush()?;
        Ok(())
    }
}

pub fn now_sec() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the primary superblock; when it is damaged, says whether the backup is intact.
pub fn read_superblock(dev: &dyn BlockDevice) -> Result<Superblock> {
    let mut buf = AlignedBuf::zeroed(BLOCK_BYTES);
    dev.read_at(0, &mut buf[..])?;
    match Superblock::decode(&buf[..], 0) {
        Ok(sb) => Ok(sb),
        Err(primary) => {
            let backup_block = dev.geometry().size_bytes / BLOCK_BYTES_U64 - 1;
            dev.read_at(backup_block * BLOCK_BYTES_U64, &mut buf[..])?;
            let hint = match Superblock::decode(&buf[..], backup_block) {
                Ok(_) => format!("; the backup superblock at block {backup_block} is intact: `vexfs fsck --repair` restores it"),
                Err(_) => format!("; the backup superblock at block {backup_block} is damaged too"),
            };
            match primary {
                Error::Corrupt {
                    what,
                    location,
                    reason,
                } => Err(Error::corrupt(what, location, reason + &hint)),
                other => Err(other),
            }
        }
    }
}

pub fn write_blocks(dev: &dyn BlockDevice, images: &[(u64, Vec<u8>)]) -> Result<()> {
    for chunk in images.chunks(WRITE_BATCH_BLOCKS) {
        let mut bufs: Vec<(u64, AlignedBuf)> = chunk
            .iter()
            .map(|(block, image)| {
                let mut buf = AlignedBuf::zeroed(BLOCK_BYTES);
                buf[..].copy_from_slice(image);
                (*block, buf)
            })
            .collect();
        let mut ops: Vec<IoOp<'_>> = bufs
            .iter_mut()
            .map(|(block, buf)| IoOp::Write {
                offset: *block * BLOCK_BYTES_U64,
                buf: &buf[..],
                fua: false,
            })
            .collect();
        dev.submit(&mut ops)?;
    }
    Ok(())
}
