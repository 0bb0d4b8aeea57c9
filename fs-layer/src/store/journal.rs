//! The journal (FORMAT.md §4): a sealed transaction written out (journal,
//! flush, checkpoint), its descriptor and commit blocks, and reading a
//! committed transaction back at mount.

use std::sync::Arc;

use vexfs_engine::{AlignedBuf, BlockDevice, IoOp};

use super::{BlockImages, SealedImages, DESCRIPTOR_ENTRIES_MAX, WRITE_BATCH_BLOCKS};
use crate::error::Result;
use crate::format::*;

/// A transaction ended by [`Store::seal`], to be written.
pub struct Sealed {
    pub(super) transaction: u64,
    /// Journal descriptors and commit record, and the images; None when
    /// nothing was dirty.
    pub(super) journal: Option<(JournalFrame, Arc<SealedImages>)>,
}

impl Sealed {
    /// The commit's device I/O up to durability: flush (file data written
    /// before the seal and the previous checkpoint become durable),
    /// journal, flush (the transaction is durable). With nothing to
    /// journal, a flush when file data is unflushed. The checkpoint
    /// ([`write_home`](Self::write_home)) must follow before the next
    /// commit writes the journal again.
    pub fn write_journal(&self, dev: &dyn BlockDevice, data_unflushed: bool) -> Result<()> {
        match &self.journal {
            None if data_unflushed => dev.flush()?,
            None => {}
            Some((frame, images)) => {
                dev.flush()?;
                let mut journal: Vec<(u64, &[u8])> = Vec::with_capacity(images.len() + 8);
                journal.extend(frame.descriptors.iter().map(|(at, b)| (*at, &b[..])));
                let first_image = frame.descriptors.len() as u64;
                journal.extend(
                    images
                        .iter()
                        .enumerate()
                        .map(|(k, (_, b))| (frame.start + first_image + k as u64, &b[..])),
                );
                journal.push((frame.commit.0, &frame.commit.1[..]));
                write_bufs(dev, &journal)?;
                dev.flush()?;
            }
        }
        Ok(())
    }

    /// The checkpoint: the journaled images written home, from the same
    /// buffers (no copy). Made durable by the next commit's first flush.
    pub fn write_home(&self, dev: &dyn BlockDevice) -> Result<()> {
        if let Some((_, images)) = &self.journal {
            let home: Vec<(u64, &[u8])> = images.iter().map(|(at, b)| (*at, &b[..])).collect();
            write_bufs(dev, &home)?;
        }
        Ok(())
    }

    /// [`write_journal`](Self::write_journal), then
    /// [`write_home`](Self::write_home).
    pub fn write(&self, dev: &dyn BlockDevice, data_unflushed: bool) -> Result<()> {
        self.write_journal(dev, data_unflushed)?;
        self.write_home(dev)
    }

    /// Blocks its journal write takes: descriptors, images, commit record.
    pub fn journal_blocks(&self) -> u64 {
        self.journal.as_ref().map_or(0, |(frame, images)| {
            (frame.descriptors.len() + images.len() + 1) as u64
        })
    }

    /// Something was journaled (not only a flush).
    pub fn journaled(&self) -> bool {
        self.journal.is_some()
    }
}

/// The journal blocks a transaction adds around its images (§4): the
/// descriptors before them and the commit record after.
pub struct JournalFrame {
    start: u64,
    descriptors: Vec<(u64, AlignedBuf)>,
    commit: (u64, AlignedBuf),
}

/// Writes whole blocks from buffers the device can take, in batches.
fn write_bufs(dev: &dyn BlockDevice, blocks: &[(u64, &[u8])]) -> Result<()> {
    for chunk in blocks.chunks(WRITE_BATCH_BLOCKS) {
        let mut ops: Vec<IoOp<'_>> = chunk
            .iter()
            .map(|(block, buf)| IoOp::Write {
                offset: *block * BLOCK_BYTES_U64,
                buf,
                fua: false,
            })
            .collect();
        dev.submit(&mut ops)?;
    }
    Ok(())
}

/// Descriptor: header | sequence u64 @16 | first_entry u32 @24 | image_count u32 @28 | home block u64 × 508 @32.
/// Commit: header | sequence u64 @16 | image_count u32 @24 | descriptor_count u32 @28 | crc32c of descriptors and images u32 @32.
pub(super) fn encode_transaction(
    sequence: u64,
    journal_start: u64,
    images: &[(u64, AlignedBuf)],
) -> JournalFrame {
    let descriptor_count = images.len().div_ceil(DESCRIPTOR_ENTRIES_MAX);
    let mut descriptors = Vec::with_capacity(descriptor_count);
    let mut position = journal_start;
    for (d, chunk) in images.chunks(DESCRIPTOR_ENTRIES_MAX).enumerate() {
        let mut b = AlignedBuf::zeroed(BLOCK_BYTES);
        put_u64(&mut b, 16, sequence);
        put_u32(&mut b, 24, (d * DESCRIPTOR_ENTRIES_MAX) as u32);
        put_u32(&mut b, 28, images.len() as u32);
        for (i, (home, _)) in chunk.iter().enumerate() {
            put_u64(&mut b, 32 + i * 8, *home);
        }
        seal_block(&mut b, MAGIC_JOURNAL_DESCRIPTOR, position);
        descriptors.push((position, b));
        position += 1;
    }
    let mut crc = 0u32;
    for (_, d) in &descriptors {
        crc = crc32c::crc32c_append(crc, d);
    }
    for (_, image) in images {
        crc = crc32c::crc32c_append(crc, image);
        position += 1;
    }
    let mut c = AlignedBuf::zeroed(BLOCK_BYTES);
    put_u64(&mut c, 16, sequence);
    put_u32(&mut c, 24, images.len() as u32);
    put_u32(&mut c, 28, descriptor_count as u32);
    put_u32(&mut c, 32, crc);
    seal_block(&mut c, MAGIC_JOURNAL_COMMIT, position);
    JournalFrame {
        start: journal_start,
        descriptors,
        commit: (position, c),
    }
}

/// The committed transaction at the start of the journal, if there is one
/// that belongs to this superblock's generation and whose checksum holds.
pub fn read_journal(dev: &dyn BlockDevice, sb: &Superblock) -> Result<Option<(u64, BlockImages)>> {
    let read = |block: u64| -> Result<Vec<u8>> {
        let mut buf = AlignedBuf::zeroed(BLOCK_BYTES);
        dev.read_at(block * BLOCK_BYTES_U64, &mut buf[..])?;
        Ok(buf[..].to_vec())
    };
    let start = sb.journal_start;
    let first = read(start)?;
    if check_block(
        &first,
        MAGIC_JOURNAL_DESCRIPTOR,
        start,
        "journal descriptor",
    )
    .is_err()
    {
        return Ok(None);
    }
    let sequence = le_u64(&first, 16);
    // The transaction not yet checkpointed carries the superblock's sequence;
    // the one before it may still sit there, fully checkpointed (replay is idempotent).
    if sequence != sb.journal_sequence && sequence + 1 != sb.journal_sequence {
        return Ok(None);
    }
    let count = le_u32(&first, 28) as usize;
    let descriptors = count.div_ceil(DESCRIPTOR_ENTRIES_MAX);
    if count == 0 || (descriptors + count + 1) as u64 > sb.journal_blocks {
        return Ok(None);
    }
    let mut crc = 0u32;
    let mut homes = Vec::with_capacity(count);
    for d in 0..descriptors {
        let position = start + d as u64;
        let b = if d == 0 {
            first.clone()
        } else {
            read(position)?
        };
        if check_block(&b, MAGIC_JOURNAL_DESCRIPTOR, position, "journal descriptor").is_err()
            || le_u64(&b, 16) != sequence
        {
            return Ok(None);
        }
        crc = crc32c::crc32c_append(crc, &b);
        let in_this = (count - d * DESCRIPTOR_ENTRIES_MAX).min(DESCRIPTOR_ENTRIES_MAX);
        for i in 0..in_this {
            homes.push(le_u64(&b, 32 + i * 8));
        }
    }
    let mut images = Vec::with_capacity(count);
    for (i, home) in homes.into_iter().enumerate() {
        if home >= sb.total_blocks {
            return Ok(None);
        }
        let image = read(start + (descriptors + i) as u64)?;
        crc = crc32c::crc32c_append(crc, &image);
        images.push((home, image));
    }
    let position = start + (descriptors + count) as u64;
    let c = read(position)?;
    let complete = check_block(&c, MAGIC_JOURNAL_COMMIT, position, "journal commit").is_ok()
        && le_u64(&c, 16) == sequence
        && le_u32(&c, 24) as usize == count
        && le_u32(&c, 32) == crc;
    Ok(complete.then_some((sequence, images)))
}
