//! fsck of vector files (FORMAT.md §13): the VectorMeta item against its
//! inode, the file's size, the mapping of the live regions, the ids (unique),
//! the stored index (crc32c), the payloads (§13.6) and the header block's
//! magic.
//!
//! The item is authoritative; the header block is an advisory copy that a
//! write-back cut by a crash may leave newer than the item, so only its magic
//! is checked.

use std::collections::BTreeMap;

use vexfs_engine::{AlignedBuf, BlockDevice};

use super::Check;
use crate::error::Error;
use crate::format::{Extent, InodeRecord, BLOCK_BYTES_U64, INODE_FLAG_VECTOR};
use crate::vectors::layout::{self, VectorMeta, HEADER_MAGIC};
use crate::vectors::payloads::Payloads;
use crate::vectors::spec::IndexSpec;
use crate::vectors::stored;

/// Bytes read from the device per request while scanning a region: bounds
/// fsck's buffer whatever the file's size.
const CHUNK_BYTES: usize = 1 << 20;
const CHUNK_BLOCKS: u64 = CHUNK_BYTES as u64 / BLOCK_BYTES_U64;

/// A VectorMeta item as the tree holds it: (ino, key offset, value).
pub(super) type VectorItem<'a> = (u64, u64, &'a [u8]);

/// Checks every vector file and every VectorMeta item. `extents` is in key
/// order (by inode, then logical block), as the tree walk collected it.
pub(super) fn check(
    c: &mut Check,
    dev: &dyn BlockDevice,
    inodes: &BTreeMap<u64, InodeRecord>,
    items: &[VectorItem<'_>],
    extents: &[(u64, Extent)],
) {
    let mut items_of: BTreeMap<u64, Vec<(u64, &[u8])>> = BTreeMap::new();
    for &(ino, offset, value) in items {
        match inodes.get(&ino) {
            None => c.problem(format!("VectorMeta item belongs to missing inode {ino}")),
            Some(record) if record.flags & INODE_FLAG_VECTOR == 0 => c.problem(format!(
                "inode {ino}: has a VectorMeta item but is not flagged as a vector file"
            )),
            Some(_) => items_of.entry(ino).or_default().push((offset, value)),
        }
    }
    let mut buf = AlignedBuf::zeroed(CHUNK_BYTES);
    for (&ino, record) in inodes {
        if record.flags & INODE_FLAG_VECTOR == 0 {
            continue;
        }
        if !record.is_reg() {
            c.problem(format!(
                "inode {ino}: flagged as a vector file but is not a regular file (mode {:o})",
                record.mode
            ));
            continue;
        }
        let Some(meta) = meta_of(c, ino, items_of.get(&ino).map_or(&[][..], Vec::as_slice)) else {
            continue;
        };
        let first = extents.partition_point(|(owner, _)| *owner < ino);
        let end = extents.partition_point(|(owner, _)| *owner <= ino);
        let file_extents: Vec<Extent> = extents[first..end].iter().map(|(_, e)| *e).collect();
        let mut file = VectorFileCheck {
            c: &mut *c,
            ino,
            meta: &meta,
            blocks: FileBlocks {
                dev,
                extents: &file_extents,
                buf: &mut buf,
            },
        };
        file.check(record.size);
    }
}

/// The one VectorMeta item of a flagged inode, decoded; None (and a problem
/// reported) when it is missing, doubled or damaged.
fn meta_of(c: &mut Check, ino: u64, items: &[(u64, &[u8])]) -> Option<VectorMeta> {
    for &(offset, _) in items.iter().filter(|(offset, _)| *offset != 0) {
        c.problem(format!(
            "inode {ino}: extra VectorMeta item at offset {offset} (a vector file has exactly one, at offset 0)"
        ));
    }
    let Some(&(_, value)) = items.iter().find(|(offset, _)| *offset == 0) else {
        c.problem(format!(
            "inode {ino}: flagged as a vector file but has no VectorMeta item"
        ));
        c.fix(super::Fix::VectorFlagWithoutItem { ino });
        return None;
    };
    if let Err(reason) = regions_fit(value) {
        c.problem(Error::corrupt("vector metadata", ino, reason).to_string());
        return None;
    }
    match VectorMeta::decode(value, ino) {
        Ok(meta) => Some(meta),
        Err(e) => {
            c.problem(e.to_string());
            None
        }
    }
}

/// The regions a stored `capacity` implies fit in a u64, so that computing
/// them (in `VectorMeta::decode`) cannot overflow.
fn regions_fit(value: &[u8]) -> Result<(), String> {
    if value.len() < layout::VECTOR_META_FIXED_BYTES {
        return Ok(()); // decode reports the short item
    }
    let dimensions = crate::format::le_u32(value, 4);
    let capacity = crate::format::le_u64(value, 32);
    let rows = capacity.checked_mul(layout::row_bytes(dimensions));
    let ids = capacity.checked_mul(8);
    let fits = rows
        .zip(ids)
        .and_then(|(rows, ids)| rows.checked_add(ids))
        .and_then(|bytes| bytes.checked_add(layout::DATA_OFFSET + 2 * BLOCK_BYTES_U64));
    match fits {
        Some(_) => Ok(()),
        None => Err(format!(
            "capacity {capacity} of {dimensions} dimensions overflows the file's offsets"
        )),
    }
}

/// One vector file's bytes: its extents and a reusable read buffer.
struct FileBlocks<'a> {
    dev: &'a dyn BlockDevice,
    /// The file's extents, by logical block.
    extents: &'a [Extent],
    buf: &'a mut AlignedBuf,
}

impl FileBlocks<'_> {
    /// The first block of logical blocks [first, end) that no written extent
    /// backs: a read there would return zeros, not what was stored.
    fn first_hole(&self, first: u64, end: u64) -> Option<u64> {
        let mut at = first;
        let from = self.extents.partition_point(|e| e.last_logical() < first);
        for e in &self.extents[from..] {
            if at >= end {
                break;
            }
            if e.logical > at || e.unwritten() {
                return Some(at);
            }
            at = e.end_logical();
        }
        (at < end).then_some(at)
    }

    /// Reads bytes [offset, offset + len) in pieces of at most CHUNK_BYTES,
    /// in order; holes read as zeros.
    fn scan(
        &mut self,
        offset: u64,
        len: u64,
        mut visit: impl FnMut(&[u8]),
    ) -> vexfs_engine::Result<()> {
        let end = offset + len;
        let mut block = offset / BLOCK_BYTES_U64;
        while block * BLOCK_BYTES_U64 < end {
            let blocks = CHUNK_BLOCKS.min(end.div_ceil(BLOCK_BYTES_U64) - block);
            let chunk = &mut self.buf[..(blocks * BLOCK_BYTES_U64) as usize];
            chunk.fill(0);
            let from = self.extents.partition_point(|e| e.last_logical() < block);
            for e in self.extents[from..]
                .iter()
                .take_while(|e| e.logical < block + blocks)
            {
                if e.unwritten() {
                    continue;
                }
                let lo = e.logical.max(block);
                let hi = e.end_logical().min(block + blocks);
                let into = ((lo - block) * BLOCK_BYTES_U64) as usize;
                let bytes = ((hi - lo) * BLOCK_BYTES_U64) as usize;
                self.dev.read_at(
                    (e.physical + (lo - e.logical)) * BLOCK_BYTES_U64,
                    &mut chunk[into..into + bytes],
                )?;
            }
            let chunk_start = block * BLOCK_BYTES_U64;
            let lo = (offset.max(chunk_start) - chunk_start) as usize;
            let hi = (end.min(chunk_start + blocks * BLOCK_BYTES_U64) - chunk_start) as usize;
            visit(&chunk[lo..hi]);
            block += blocks;
        }
        Ok(())
    }
}

struct VectorFileCheck<'a> {
    c: &'a mut Check,
    ino: u64,
    meta: &'a VectorMeta,
    blocks: FileBlocks<'a>,
}

impl VectorFileCheck<'_> {
    fn check(&mut self, size: u64) {
        let (ino, meta) = (self.ino, self.meta);
        // index_bytes is not bounded by decode: add with care.
        let index_end = meta.index_offset.checked_add(meta.index_bytes);
        // decode bounded payload_bytes; the region starts after the index.
        let payload_offset = index_end
            .and_then(|end| end.checked_add(BLOCK_BYTES_U64 - 1))
            .map(|end| end / BLOCK_BYTES_U64 * BLOCK_BYTES_U64);
        let file_end = if meta.payload_bytes > 0 {
            payload_offset.and_then(|at| at.checked_add(meta.payload_bytes))
        } else {
            index_end
        };
        if size < meta.index_offset {
            self.c.problem(format!(
                "inode {ino}: vector file is {size} bytes, shorter than its index offset {}",
                meta.index_offset
            ));
        } else if file_end != Some(size) {
            self.c.problem(format!(
                "inode {ino}: vector file is {size} bytes, but its stored index is {} bytes at {} and its payloads {} bytes after it",
                meta.index_bytes, meta.index_offset, meta.payload_bytes
            ));
        }
        // decode checked vector_count <= capacity, so these fit like the regions.
        let rows_bytes = meta.vector_count * layout::row_bytes(meta.dimensions);
        let ids_bytes = meta.vector_count * 8;
        let rows_mapped = self.mapped("vector rows", meta.data_offset, rows_bytes);
        let ids_mapped = self.mapped("vector ids", meta.ids_offset, ids_bytes);
        let index_mapped =
            index_end.is_some() && self.mapped("stored index", meta.index_offset, meta.index_bytes);
        let payloads_mapped = file_end.is_some()
            && self.mapped("payloads", payload_offset.unwrap_or(0), meta.payload_bytes);
        let ids = if rows_mapped && ids_mapped {
            // Mapped, so the ids are on the device: their count is bounded by its size.
            self.ids_unique()
        } else {
            None
        };
        if index_mapped && meta.index_bytes > 0 {
            self.index_crc();
        }
        if let (true, Some(ids), Some(at)) = (payloads_mapped, ids, payload_offset) {
            if meta.payload_bytes > 0 {
                self.payloads(at, &ids);
            }
        }
        self.header_magic();
    }

    /// Bytes [offset, offset + len) lie in written extents; reports the first hole.
    fn mapped(&mut self, what: &str, offset: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let first = offset / BLOCK_BYTES_U64;
        let end = (offset + len).div_ceil(BLOCK_BYTES_U64);
        match self.blocks.first_hole(first, end) {
            None => true,
            Some(hole) => {
                self.c.problem(format!(
                    "inode {}: {what} (bytes {offset}..{}): file block {hole} is a hole",
                    self.ino,
                    offset + len
                ));
                false
            }
        }
    }

    /// The payload region (§13.6), checked as mount checks it: crc, entry
    /// bounds and order, JSON objects, each id a live one (`ids` sorted).
    fn payloads(&mut self, offset: u64, ids: &[u64]) {
        let mut region = Vec::with_capacity(self.meta.payload_bytes as usize);
        let read = self.blocks.scan(offset, self.meta.payload_bytes, |chunk| {
            region.extend_from_slice(chunk)
        });
        if let Err(e) = read {
            self.c
                .problem(format!("inode {}: reading the payloads: {e}", self.ino));
            return;
        }
        if let Err(e) = Payloads::decode(
            &region,
            self.meta.payload_count,
            self.meta.payload_crc,
            |id| ids.binary_search(&id).is_ok(),
        ) {
            self.c.problem(format!(
                "inode {}: payloads ({} bytes at {offset}): {e}",
                self.ino, self.meta.payload_bytes
            ));
        }
    }

    /// Every live slot holds a different id; returns the ids, sorted, when
    /// they could be read. Memory: 16 bytes per live slot.
    fn ids_unique(&mut self) -> Option<Vec<u64>> {
        let count = self.meta.vector_count;
        let mut ids: Vec<(u64, u64)> = Vec::with_capacity(count as usize);
        // The region starts on a block boundary, so every chunk holds whole ids.
        let read = self.blocks.scan(self.meta.ids_offset, count * 8, |bytes| {
            for raw in bytes.chunks_exact(8) {
                let slot = ids.len() as u64;
                ids.push((u64::from_le_bytes(raw.try_into().expect("8 bytes")), slot));
            }
        });
        if let Err(e) = read {
            self.c
                .problem(format!("inode {}: reading the vector ids: {e}", self.ino));
            return None;
        }
        ids.sort_unstable();
        // Of the ids held more than once, the one repeated earliest in slot
        // order, with its first two slots; and how many slots repeat an id.
        let mut first: Option<(u64, u64, u64)> = None;
        let mut repeats = 0;
        for group in ids.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
            repeats += group.len() - 1;
            let (id, earlier, later) = (group[0].0, group[0].1, group[1].1);
            if first.is_none_or(|(_, _, at)| later < at) {
                first = Some((id, earlier, later));
            }
        }
        if let Some((id, earlier, later)) = first {
            self.c.problem(format!(
                "inode {}: vector id {id} is stored in slots {earlier} and {later} (slots repeating an id: {repeats})",
                self.ino
            ));
        }
        Some(ids.into_iter().map(|(id, _)| id).collect())
    }

    fn index_crc(&mut self) {
        let mut crc = 0u32;
        let read = self
            .blocks
            .scan(self.meta.index_offset, self.meta.index_bytes, |bytes| {
                crc = crc32c::crc32c_append(crc, bytes);
            });
        match read {
            Err(e) => self
                .c
                .problem(format!("inode {}: reading the stored index: {e}", self.ino)),
            Ok(()) if crc != self.meta.index_crc => self.c.problem(format!(
                "inode {}: stored index ({} bytes at {}) has crc32c {crc:#010x}, its VectorMeta item says {:#010x}",
                self.ino, self.meta.index_bytes, self.meta.index_offset, self.meta.index_crc
            )),
            Ok(()) => self.index_fields(),
        }
    }

    /// The fields of a stored index mount would load, checked as mount
    /// checks them (vectors/stored.rs): a crc that matches proves nothing
    /// about a crafted image.
    fn index_fields(&mut self) {
        let Ok(spec) = IndexSpec::parse(&self.meta.index_spec) else {
            self.c.problem(format!(
                "inode {}: stored index string {:?} is not one this filesystem builds",
                self.ino, self.meta.index_spec
            ));
            return;
        };
        if !stored::loadable(&spec) {
            return; // never loaded: rebuilt from the rows
        }
        let bytes_max = stored::stored_bytes_max(
            self.meta.dimensions as usize,
            self.meta.vector_count,
            self.meta.index_label_map,
        );
        if self.meta.index_bytes > bytes_max {
            self.c.problem(format!(
                "inode {}: stored index of {} bytes, over the {bytes_max} its vectors can need",
                self.ino, self.meta.index_bytes
            ));
            return;
        }
        let mut bytes = Vec::with_capacity(self.meta.index_bytes as usize);
        let read = self
            .blocks
            .scan(self.meta.index_offset, self.meta.index_bytes, |chunk| {
                bytes.extend_from_slice(chunk)
            });
        if read.is_err() {
            return; // reported by index_crc
        }
        let l2 = self.meta.index_metric == vexfs_uapi::VEXFS_SEARCH_EUCLIDEAN;
        if let Err(e) = stored::check_stored(
            &bytes,
            self.meta.index_label_map,
            self.meta.dimensions as usize,
            self.meta.vector_count as usize,
            l2,
        ) {
            self.c.problem(format!(
                "inode {}: stored {spec} index: {e} (mount rebuilds it from the rows)",
                self.ino
            ));
        }
    }

    fn header_magic(&mut self) {
        let mut magic = None;
        let read = self.blocks.scan(0, 4, |bytes| {
            magic = Some(u32::from_le_bytes(bytes.try_into().expect("4 bytes")));
        });
        match (read, magic) {
            (Err(e), _) => self
                .c
                .problem(format!("inode {}: reading the header block: {e}", self.ino)),
            (Ok(()), Some(HEADER_MAGIC)) => {}
            (Ok(()), found) => self.c.problem(format!(
                "inode {}: header block starts with {:#010x}, not the vector file magic {HEADER_MAGIC:#010x}",
                self.ino,
                found.unwrap_or(0)
            )),
        }
    }
}
