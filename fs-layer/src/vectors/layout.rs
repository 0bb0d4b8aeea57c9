//! FORMAT.md §13: where a vector file keeps its vectors, ids and index
//! inside its own bytes, and the VectorMeta item that says so.
//!
//! ```text
//! 0            4096                     ids_offset           index_offset
//! | header     | rows: capacity slots   | ids: capacity u64  | faiss index | payloads |
//! ```
//!
//! Rows and ids have room for `capacity` vectors; the first `vector_count`
//! slots are live. Growing past the capacity doubles it and moves only the
//! id region (rows never move). The VectorMeta item in the tree is
//! authoritative; the header block is a copy for programs that read the
//! file's bytes.

use crate::error::{Error, Result};
use crate::format::{le_u32, le_u64, put_u32, put_u64, BLOCK_BYTES, BLOCK_BYTES_U64};

/// Version of an item without payloads: byte for byte what files made
/// before payloads existed carry.
pub const VECTOR_META_VERSION: u32 = 1;
/// Version of an item whose file stores payloads (§13.6): the payload
/// fields sit between the fixed fields and the index string.
pub const VECTOR_META_VERSION_PAYLOADS: u32 = 2;
/// Bytes of an encoded version 1 item before the index string.
pub const VECTOR_META_FIXED_BYTES: usize = 112;
/// Bytes of an encoded version 2 item before the index string.
pub const VECTOR_META_FIXED_BYTES_PAYLOADS: usize = 136;
/// Payload bytes one file may store (§13.6 region, entry headers
/// included): the daemon keeps them in memory while the file is in use.
pub const FILE_PAYLOAD_BYTES_MAX: u64 = 1 << 30;
/// Longest index-factory string kept with a persisted index (also the
/// limit on `user.vexfs.index` and `user.vexfs.search`).
pub const INDEX_SPEC_BYTES_MAX: usize = 256;
/// The first row's offset: block 1, so every alignment up to 4096 holds.
pub const DATA_OFFSET: u64 = BLOCK_BYTES_U64;
/// Vectors a new vector file has room for before its first growth.
pub const CAPACITY_MIN: u64 = 1024;
/// At offset 0 of a vector file's header block (bytes "FVXV" on disk).
pub const HEADER_MAGIC: u32 = 0x5658_5646;

/// `index_metric` when no index is stored.
pub const METRIC_NONE: u32 = u32::MAX;

/// The VectorMeta item, key (ino, VectorMeta, 0). Little-endian:
///
/// | off | size | field |
/// |---|---|---|
/// | 0 | 4 | version (1) |
/// | 4 | 4 | dimensions |
/// | 8 | 4 | element_type |
/// | 12 | 4 | storage_format |
/// | 16 | 4 | compression_type |
/// | 20 | 4 | alignment_bytes |
/// | 24 | 8 | vector_count |
/// | 32 | 8 | capacity (slots in the row and id regions) |
/// | 40 | 8 | next_id (the id the next id-less insert gets) |
/// | 48 | 8 | generation (bumped by every change to the vectors) |
/// | 56 | 8 | data_offset |
/// | 64 | 8 | ids_offset |
/// | 72 | 8 | index_offset |
/// | 80 | 8 | index_bytes (0: no index stored) |
/// | 88 | 8 | index_generation (the generation the stored index covers) |
/// | 96 | 4 | index_metric (search type it was built for; u32::MAX none) |
/// | 100 | 4 | index_crc (crc32c of the index bytes) |
/// | 104 | 4 | index_spec_len |
/// | 108 | 4 | index_label_map (1: a label map precedes the index, §13.5; else 0) |
/// | 112 | n | index_spec (the factory string, UTF-8), version 1 |
///
/// Version 2 (the file stores payloads) puts four fields at 112 and the
/// index string after them:
///
/// | off | size | field |
/// |---|---|---|
/// | 112 | 8 | payload_bytes (the payload region's length, > 0) |
/// | 120 | 8 | payload_count (entries in it, 1..=vector_count) |
/// | 128 | 4 | payload_crc (crc32c of the region) |
/// | 132 | 4 | reserved, 0 |
/// | 136 | n | index_spec |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorMeta {
    pub dimensions: u32,
    pub element_type: u32,
    pub storage_format: u32,
    pub compression_type: u32,
    pub alignment_bytes: u32,
    pub vector_count: u64,
    pub capacity: u64,
    pub next_id: u64,
    pub generation: u64,
    pub data_offset: u64,
    pub ids_offset: u64,
    pub index_offset: u64,
    pub index_bytes: u64,
    pub index_generation: u64,
    pub index_metric: u32,
    pub index_crc: u32,
    /// The stored index begins with a map from its labels to slots.
    pub index_label_map: bool,
    pub index_spec: String,
    /// Length of the payload region (§13.6); 0 = no payloads.
    pub payload_bytes: u64,
    pub payload_count: u64,
    pub payload_crc: u32,
}

/// Bytes of one row.
pub fn row_bytes(dimensions: u32) -> u64 {
    u64::from(dimensions) * 4
}

fn round_up_block(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK_BYTES_U64) * BLOCK_BYTES_U64
}

/// (ids_offset, index_offset) for `capacity` slots of `dimensions`.
pub fn regions(dimensions: u32, capacity: u64) -> (u64, u64) {
    let ids_offset = DATA_OFFSET + round_up_block(capacity * row_bytes(dimensions));
    let index_offset = ids_offset + round_up_block(capacity * 8);
    (ids_offset, index_offset)
}

impl VectorMeta {
    /// An empty vector file of this layout.
    pub fn empty(
        dimensions: u32,
        element_type: u32,
        storage_format: u32,
        compression_type: u32,
        alignment_bytes: u32,
    ) -> VectorMeta {
        let (ids_offset, index_offset) = regions(dimensions, CAPACITY_MIN);
        VectorMeta {
            dimensions,
            element_type,
            storage_format,
            compression_type,
            alignment_bytes,
            vector_count: 0,
            capacity: CAPACITY_MIN,
            next_id: 0,
            generation: 0,
            data_offset: DATA_OFFSET,
            ids_offset,
            index_offset,
            index_bytes: 0,
            index_generation: 0,
            index_metric: METRIC_NONE,
            index_crc: 0,
            index_label_map: false,
            index_spec: String::new(),
            payload_bytes: 0,
            payload_count: 0,
            payload_crc: 0,
        }
    }

    /// Where the payload region starts: the block after the stored index.
    pub fn payload_offset(&self) -> u64 {
        payload_offset(self.index_offset, self.index_bytes)
    }

    /// The file's size: everything up to the end of the payload region, or
    /// of the stored index when there are no payloads.
    pub fn file_bytes(&self) -> u64 {
        if self.payload_bytes > 0 {
            self.payload_offset() + self.payload_bytes
        } else {
            self.index_offset + self.index_bytes
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let spec = self.index_spec.as_bytes();
        let payloads = self.payload_bytes > 0;
        let fixed = if payloads {
            VECTOR_META_FIXED_BYTES_PAYLOADS
        } else {
            VECTOR_META_FIXED_BYTES
        };
        let mut b = vec![0u8; fixed + spec.len()];
        put_u32(
            &mut b,
            0,
            if payloads {
                VECTOR_META_VERSION_PAYLOADS
            } else {
                VECTOR_META_VERSION
            },
        );
        put_u32(&mut b, 4, self.dimensions);
        put_u32(&mut b, 8, self.element_type);
        put_u32(&mut b, 12, self.storage_format);
        put_u32(&mut b, 16, self.compression_type);
        put_u32(&mut b, 20, self.alignment_bytes);
        put_u64(&mut b, 24, self.vector_count);
        put_u64(&mut b, 32, self.capacity);
        put_u64(&mut b, 40, self.next_id);
        put_u64(&mut b, 48, self.generation);
        put_u64(&mut b, 56, self.data_offset);
        put_u64(&mut b, 64, self.ids_offset);
        put_u64(&mut b, 72, self.index_offset);
        put_u64(&mut b, 80, self.index_bytes);
        put_u64(&mut b, 88, self.index_generation);
        put_u32(&mut b, 96, self.index_metric);
        put_u32(&mut b, 100, self.index_crc);
        put_u32(&mut b, 104, spec.len() as u32);
        put_u32(&mut b, 108, u32::from(self.index_label_map));
        if payloads {
            put_u64(&mut b, 112, self.payload_bytes);
            put_u64(&mut b, 120, self.payload_count);
            put_u32(&mut b, 128, self.payload_crc);
        }
        b[fixed..].copy_from_slice(spec);
        b
    }

    /// Decodes and checks every field against the others; `ino` names the file in errors.
    pub fn decode(b: &[u8], ino: u64) -> Result<VectorMeta> {
        let bad = |reason: String| Error::corrupt("vector metadata", ino, reason);
        if b.len() < VECTOR_META_FIXED_BYTES {
            return Err(bad(format!("item is {} bytes, too short", b.len())));
        }
        let version = le_u32(b, 0);
        let fixed = match version {
            VECTOR_META_VERSION => VECTOR_META_FIXED_BYTES,
            VECTOR_META_VERSION_PAYLOADS if b.len() >= VECTOR_META_FIXED_BYTES_PAYLOADS => {
                VECTOR_META_FIXED_BYTES_PAYLOADS
            }
            VECTOR_META_VERSION_PAYLOADS => {
                return Err(bad(format!(
                    "version 2 item is {} bytes, too short",
                    b.len()
                )))
            }
            _ => return Err(bad(format!("unknown version {version}"))),
        };
        let spec_len = le_u32(b, 104) as usize;
        if spec_len > INDEX_SPEC_BYTES_MAX || b.len() != fixed + spec_len {
            return Err(bad(format!(
                "index string length {spec_len} does not match the item's {} bytes",
                b.len()
            )));
        }
        let index_spec = String::from_utf8(b[fixed..].to_vec())
            .map_err(|_| bad("index string is not UTF-8".into()))?;
        let (payload_bytes, payload_count, payload_crc) = if version == VECTOR_META_VERSION {
            (0, 0, 0)
        } else {
            if le_u32(b, 132) != 0 {
                return Err(bad("reserved field at 132 is not 0".into()));
            }
            if le_u64(b, 112) == 0 {
                return Err(bad("a version 2 item with an empty payload region".into()));
            }
            (le_u64(b, 112), le_u64(b, 120), le_u32(b, 128))
        };
        let index_label_map = match le_u32(b, 108) {
            0 => false,
            1 => true,
            other => return Err(bad(format!("index_label_map is {other}, not 0 or 1"))),
        };
        let meta = VectorMeta {
            dimensions: le_u32(b, 4),
            element_type: le_u32(b, 8),
            storage_format: le_u32(b, 12),
            compression_type: le_u32(b, 16),
            alignment_bytes: le_u32(b, 20),
            vector_count: le_u64(b, 24),
            capacity: le_u64(b, 32),
            next_id: le_u64(b, 40),
            generation: le_u64(b, 48),
            data_offset: le_u64(b, 56),
            ids_offset: le_u64(b, 64),
            index_offset: le_u64(b, 72),
            index_bytes: le_u64(b, 80),
            index_generation: le_u64(b, 88),
            index_metric: le_u32(b, 96),
            index_crc: le_u32(b, 100),
            index_label_map,
            index_spec,
            payload_bytes,
            payload_count,
            payload_crc,
        };
        meta.check().map_err(bad)?;
        Ok(meta)
    }

    /// The relations between fields that every stored item satisfies.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.dimensions == 0 || self.dimensions > vexfs_uapi::limits::DIMENSIONS_MAX {
            return Err(format!("dimensions {} out of range", self.dimensions));
        }
        if self.vector_count > self.capacity {
            return Err(format!(
                "vector_count {} exceeds capacity {}",
                self.vector_count, self.capacity
            ));
        }
        // What the daemon will hold in memory for this file: the limits an
        // insert is held to (a crafted count must not become an allocation).
        let vectors_max = (super::FILE_VECTOR_BYTES_MAX / row_bytes(self.dimensions))
            .min(super::FILE_VECTORS_MAX as u64);
        if self.vector_count > vectors_max {
            return Err(format!(
                "vector_count {} is over the {vectors_max} vectors of {} dimensions a file may hold",
                self.vector_count, self.dimensions
            ));
        }
        // Regions are computed in u64: refuse a capacity whose file would
        // not fit a VexFS file before computing them.
        let file_bytes = DATA_OFFSET as u128
            + self.capacity as u128 * (row_bytes(self.dimensions) as u128 + 8)
            + 3 * BLOCK_BYTES as u128
            + self.index_bytes as u128
            + self.payload_bytes as u128;
        if file_bytes > crate::format::FILE_BYTES_MAX as u128 {
            return Err(format!(
                "capacity {} and index of {} bytes need {file_bytes} bytes, over the largest file",
                self.capacity, self.index_bytes
            ));
        }
        if self.data_offset != DATA_OFFSET {
            return Err(format!(
                "data_offset {} is not {DATA_OFFSET}",
                self.data_offset
            ));
        }
        let (ids_offset, index_offset) = regions(self.dimensions, self.capacity);
        if self.ids_offset != ids_offset || self.index_offset != index_offset {
            return Err(format!(
                "regions ids {} index {} do not match capacity {} (expected {ids_offset}, {index_offset})",
                self.ids_offset, self.index_offset, self.capacity
            ));
        }
        if self.payload_bytes > FILE_PAYLOAD_BYTES_MAX {
            return Err(format!(
                "payload_bytes {} is over the {FILE_PAYLOAD_BYTES_MAX} a file may store",
                self.payload_bytes
            ));
        }
        if (self.payload_bytes == 0) != (self.payload_count == 0)
            || self.payload_count > self.vector_count
        {
            return Err(format!(
                "{} payloads in {} bytes for {} vectors",
                self.payload_count, self.payload_bytes, self.vector_count
            ));
        }
        if self.index_bytes > 0 && self.index_spec.is_empty() {
            return Err("an index is stored without its index string".into());
        }
        if self.index_bytes > 0 && self.index_generation > self.generation {
            return Err(format!(
                "index generation {} is newer than the vectors' {}",
                self.index_generation, self.generation
            ));
        }
        Ok(())
    }
}

/// Where the payload region starts after an index region at
/// `index_offset` holding `index_bytes`: the next block boundary.
pub fn payload_offset(index_offset: u64, index_bytes: u64) -> u64 {
    index_offset + round_up_block(index_bytes)
}

/// The advisory header block at offset 0 of a vector file (FORMAT.md §13.2):
/// magic, then the VectorMeta item's bytes. Rewritten at every write-back.
pub fn header_block(meta: &VectorMeta) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK_BYTES];
    put_u32(&mut block, 0, HEADER_MAGIC);
    let item = meta.encode();
    put_u32(&mut block, 4, item.len() as u32);
    block[8..8 + item.len()].copy_from_slice(&item);
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_checks_regions() {
        let mut meta = VectorMeta::empty(1536, 1, 0, 0, 32);
        meta.vector_count = 1000;
        meta.index_spec = "HNSW32".into();
        meta.index_bytes = 10;
        meta.generation = 4;
        meta.index_generation = 4;
        let back = VectorMeta::decode(&meta.encode(), 7).unwrap();
        assert_eq!(back, meta);
        assert_eq!(back.ids_offset, 4096 + 1024 * 6144);
        assert_eq!(back.index_offset, back.ids_offset + 8192);

        let mut damaged = meta.encode();
        damaged[64] ^= 1; // ids_offset
        assert!(VectorMeta::decode(&damaged, 7).is_err());
        let mut over = meta.clone();
        over.vector_count = over.capacity + 1;
        assert!(VectorMeta::decode(&over.encode(), 7).is_err());
    }

    #[test]
    fn payload_fields_make_a_version_2_item() {
        let mut meta = VectorMeta::empty(8, 1, 0, 0, 0);
        meta.vector_count = 3;
        let plain = meta.encode();
        assert_eq!(le_u32(&plain, 0), VECTOR_META_VERSION);
        assert_eq!(plain.len(), VECTOR_META_FIXED_BYTES);
        meta.payload_bytes = 40;
        meta.payload_count = 2;
        meta.payload_crc = 0xdead_beef;
        meta.index_spec = "HNSW32".into();
        meta.index_bytes = 5000;
        let with = meta.encode();
        assert_eq!(le_u32(&with, 0), VECTOR_META_VERSION_PAYLOADS);
        assert_eq!(VectorMeta::decode(&with, 1).unwrap(), meta);
        assert_eq!(meta.payload_offset(), meta.index_offset + 8192);
        assert_eq!(meta.file_bytes(), meta.index_offset + 8192 + 40);

        let mut more = meta.clone();
        more.payload_count = 4; // more payloads than vectors
        assert!(VectorMeta::decode(&more.encode(), 1).is_err());
        let mut reserved = with.clone();
        reserved[132] = 1;
        assert!(VectorMeta::decode(&reserved, 1).is_err());
        let mut empty = with;
        empty[112..120].fill(0);
        assert!(VectorMeta::decode(&empty, 1).is_err());
    }

    #[test]
    fn header_carries_the_item() {
        let meta = VectorMeta::empty(4, 1, 0, 0, 0);
        let block = header_block(&meta);
        assert_eq!(le_u32(&block, 0), HEADER_MAGIC);
        let len = le_u32(&block, 4) as usize;
        assert_eq!(VectorMeta::decode(&block[8..8 + len], 1).unwrap(), meta);
    }
}
