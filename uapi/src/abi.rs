//! Rust mirror of `include/vexfs_v2_uapi.h`.
//!
//! The pointer fields are user-space addresses of the *calling* process (a
//! FUSE server reaches them with `process_vm_readv`), so they are `u64` here,
//! not Rust pointers. Padding that C leaves implicit is spelled out as
//! `_pad*` fields, so every byte of a struct is a named field and the
//! byte conversions below need no `unsafe`.
//!
//! The payload and filter extensions (SET_PAYLOADS, GET_PAYLOADS,
//! FILTERED_SEARCH, SCROLL) are in `points`, re-exported here.

use core::mem::{offset_of, size_of};

mod points;

pub use points::*;

pub const VEXFS_V2_MAJOR_VERSION: u32 = 2;
pub const VEXFS_V2_MINOR_VERSION: u32 = 0;
pub const VEXFS_V2_PATCH_VERSION: u32 = 0;

/// "VEX2": the superblock magic and the interface's identity.
pub const VEXFS_V2_MAGIC: u32 = 0x5645_5832;

pub const VEXFS_VECTOR_FLOAT32: u32 = 0x01;
pub const VEXFS_VECTOR_FLOAT16: u32 = 0x02;
pub const VEXFS_VECTOR_INT8: u32 = 0x03;
pub const VEXFS_VECTOR_BINARY: u32 = 0x04;

pub const VEXFS_SEARCH_EUCLIDEAN: u32 = 0x00;
pub const VEXFS_SEARCH_COSINE: u32 = 0x01;
pub const VEXFS_SEARCH_DOT_PRODUCT: u32 = 0x02;

pub const VEXFS_STORAGE_DENSE: u32 = 0x00;
pub const VEXFS_STORAGE_SPARSE: u32 = 0x01;
pub const VEXFS_STORAGE_COMPRESSED: u32 = 0x02;

pub const VEXFS_COMPRESS_NONE: u32 = 0x00;
pub const VEXFS_COMPRESS_LZ4: u32 = 0x01;
pub const VEXFS_COMPRESS_ZSTD: u32 = 0x02;

pub const VEXFS_INSERT_OVERWRITE: u32 = 0x01;
pub const VEXFS_INSERT_APPEND: u32 = 0x02;
pub const VEXFS_INSERT_VALIDATE: u32 = 0x04;
/// Strict insert: an id the file already holds is refused with `EEXIST`.
pub const VEXFS_INSERT_NO_REPLACE: u32 = 0x08;

/// `SET_PAYLOADS` flag: merge the given keys into the stored object instead
/// of replacing the whole object.
pub const VEXFS_PAYLOAD_MERGE: u32 = 0x01;
/// `FILTERED_SEARCH` flag (in `flags`, not `search_type`): scan every stored
/// vector exactly instead of using the index.
pub const VEXFS_SEARCH_EXACT: u32 = 0x01;
/// The id of a result place no vector filled (its distance is a NaN).
pub const VEXFS_NO_ID: u64 = u64::MAX;

pub const VEXFS_IOC_MAGIC: u8 = b'V';

pub const VEXFS_VECTOR_FILE_INFO_SIZE: usize = 40;
pub const VEXFS_VECTOR_SEARCH_REQUEST_SIZE: usize = 48;
pub const VEXFS_BATCH_INSERT_REQUEST_SIZE: usize = 32;
pub const VEXFS_DELETE_REQUEST_SIZE: usize = 24;
pub const VEXFS_GET_VECTORS_REQUEST_SIZE: usize = 32;

// The `_IOC` encoding of <asm-generic/ioctl.h>: dir:2 | size:14 | type:8 | nr:8.
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_DIRSHIFT: u32 = 30;
const IOC_SIZE_MAX: usize = (1 << 14) - 1;
pub const IOC_WRITE: u32 = 1;
pub const IOC_READ: u32 = 2;

/// `_IOC(dir, type, nr, size)`.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    assert!(size <= IOC_SIZE_MAX, "ioctl argument too large for _IOC");
    (dir << IOC_DIRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | ((nr as u32) << IOC_NRSHIFT)
}

pub const VEXFS_IOC_SET_VECTOR_META: u32 = ioc(
    IOC_WRITE,
    VEXFS_IOC_MAGIC,
    1,
    size_of::<VexfsVectorFileInfo>(),
);
pub const VEXFS_IOC_GET_VECTOR_META: u32 = ioc(
    IOC_READ,
    VEXFS_IOC_MAGIC,
    2,
    size_of::<VexfsVectorFileInfo>(),
);
pub const VEXFS_IOC_VECTOR_SEARCH: u32 = ioc(
    IOC_READ | IOC_WRITE,
    VEXFS_IOC_MAGIC,
    3,
    size_of::<VexfsVectorSearchRequest>(),
);
pub const VEXFS_IOC_BATCH_INSERT: u32 = ioc(
    IOC_WRITE,
    VEXFS_IOC_MAGIC,
    4,
    size_of::<VexfsBatchInsertRequest>(),
);

/// Extension: delete by id. Numbers 10..=26 are avoided (old experimental builds).
pub const VEXFS_IOC_DELETE_VECTORS: u32 = ioc(
    IOC_READ | IOC_WRITE,
    VEXFS_IOC_MAGIC,
    5,
    size_of::<VexfsDeleteRequest>(),
);
/// Extension: fetch vectors by id.
pub const VEXFS_IOC_GET_VECTORS: u32 = ioc(
    IOC_READ | IOC_WRITE,
    VEXFS_IOC_MAGIC,
    6,
    size_of::<VexfsGetVectorsRequest>(),
);

/// `struct vexfs_vector_file_info`, 40 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VexfsVectorFileInfo {
    pub dimensions: u32,
    pub element_type: u32,
    pub vector_count: u32,
    pub storage_format: u32,
    pub data_offset: u64,
    pub index_offset: u64,
    pub compression_type: u32,
    pub alignment_bytes: u32,
}

/// `struct vexfs_vector_search_request`, 48 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VexfsVectorSearchRequest {
    /// Address of `dimensions` elements (`query_vector` / `query_vector_bits`).
    pub query_vector_addr: u64,
    pub dimensions: u32,
    pub k: u32,
    pub search_type: u32,
    pub _pad0: u32,
    /// Address of `k` f32 distances written back (`results` / `results_bits`).
    pub results_addr: u64,
    /// Address of `k` u64 ids written back.
    pub result_ids_addr: u64,
    pub result_count: u32,
    pub _pad1: u32,
}

/// `struct vexfs_batch_insert_request`, 32 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VexfsBatchInsertRequest {
    /// Address of `vector_count * dimensions` elements (`vectors` / `vectors_bits`).
    pub vectors_addr: u64,
    pub vector_count: u32,
    pub dimensions: u32,
    /// Address of `vector_count` u64 ids, or 0 for ids the file assigns.
    pub vector_ids_addr: u64,
    pub flags: u32,
    pub _pad0: u32,
}

/// `struct vexfs_delete_request`, 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VexfsDeleteRequest {
    /// Address of `id_count` u64 ids.
    pub ids_addr: u64,
    pub id_count: u32,
    pub flags: u32,
    pub deleted_count: u32,
    pub reserved: u32,
}

/// `struct vexfs_get_vectors_request`, 32 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VexfsGetVectorsRequest {
    /// Address of `id_count` u64 ids.
    pub ids_addr: u64,
    /// Address of `id_count * dimensions` f32 written back (`vectors` / `vectors_bits`).
    pub vectors_addr: u64,
    pub id_count: u32,
    pub dimensions: u32,
    pub found_count: u32,
    pub flags: u32,
}

// The ABI, checked where the compiler sees it. Offsets are those of the
// C header's `_Static_assert`s; `uapi/tests/c_abi.rs` compares the two at run time.
const _: () = {
    assert!(size_of::<VexfsVectorFileInfo>() == VEXFS_VECTOR_FILE_INFO_SIZE);
    assert!(offset_of!(VexfsVectorFileInfo, dimensions) == 0);
    assert!(offset_of!(VexfsVectorFileInfo, element_type) == 4);
    assert!(offset_of!(VexfsVectorFileInfo, vector_count) == 8);
    assert!(offset_of!(VexfsVectorFileInfo, storage_format) == 12);
    assert!(offset_of!(VexfsVectorFileInfo, data_offset) == 16);
    assert!(offset_of!(VexfsVectorFileInfo, index_offset) == 24);
    assert!(offset_of!(VexfsVectorFileInfo, compression_type) == 32);
    assert!(offset_of!(VexfsVectorFileInfo, alignment_bytes) == 36);

    assert!(size_of::<VexfsVectorSearchRequest>() == VEXFS_VECTOR_SEARCH_REQUEST_SIZE);
    assert!(offset_of!(VexfsVectorSearchRequest, query_vector_addr) == 0);
    assert!(offset_of!(VexfsVectorSearchRequest, dimensions) == 8);
    assert!(offset_of!(VexfsVectorSearchRequest, k) == 12);
    assert!(offset_of!(VexfsVectorSearchRequest, search_type) == 16);
    assert!(offset_of!(VexfsVectorSearchRequest, results_addr) == 24);
    assert!(offset_of!(VexfsVectorSearchRequest, result_ids_addr) == 32);
    assert!(offset_of!(VexfsVectorSearchRequest, result_count) == 40);

    assert!(size_of::<VexfsBatchInsertRequest>() == VEXFS_BATCH_INSERT_REQUEST_SIZE);
    assert!(offset_of!(VexfsBatchInsertRequest, vectors_addr) == 0);
    assert!(offset_of!(VexfsBatchInsertRequest, vector_count) == 8);
    assert!(offset_of!(VexfsBatchInsertRequest, dimensions) == 12);
    assert!(offset_of!(VexfsBatchInsertRequest, vector_ids_addr) == 16);
    assert!(offset_of!(VexfsBatchInsertRequest, flags) == 24);

    assert!(VEXFS_IOC_SET_VECTOR_META == 0x4028_5601);
    assert!(VEXFS_IOC_GET_VECTOR_META == 0x8028_5602);
    assert!(VEXFS_IOC_VECTOR_SEARCH == 0xc030_5603);
    assert!(VEXFS_IOC_BATCH_INSERT == 0x4020_5604);

    assert!(size_of::<VexfsDeleteRequest>() == VEXFS_DELETE_REQUEST_SIZE);
    assert!(offset_of!(VexfsDeleteRequest, ids_addr) == 0);
    assert!(offset_of!(VexfsDeleteRequest, id_count) == 8);
    assert!(offset_of!(VexfsDeleteRequest, flags) == 12);
    assert!(offset_of!(VexfsDeleteRequest, deleted_count) == 16);
    assert!(size_of::<VexfsGetVectorsRequest>() == VEXFS_GET_VECTORS_REQUEST_SIZE);
    assert!(offset_of!(VexfsGetVectorsRequest, ids_addr) == 0);
    assert!(offset_of!(VexfsGetVectorsRequest, vectors_addr) == 8);
    assert!(offset_of!(VexfsGetVectorsRequest, id_count) == 16);
    assert!(offset_of!(VexfsGetVectorsRequest, dimensions) == 20);
    assert!(offset_of!(VexfsGetVectorsRequest, found_count) == 24);
    assert!(offset_of!(VexfsGetVectorsRequest, flags) == 28);
    assert!(VEXFS_IOC_DELETE_VECTORS == 0xc018_5605);
    assert!(VEXFS_IOC_GET_VECTORS == 0xc020_5606);
};

/// Reads fields out of / into the fixed struct bytes a FUSE ioctl carries.
/// x86-64 is little-endian; so are these layouts.
pub(crate) fn get_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(raw)
}

pub(crate) fn get_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(raw)
}

pub(crate) fn put_u32(bytes: &mut [u8], offset: usize, value: u32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

impl VexfsVectorFileInfo {
    pub fn from_bytes(bytes: &[u8; VEXFS_VECTOR_FILE_INFO_SIZE]) -> Self {
        Self {
            dimensions: get_u32(bytes, offset_of!(Self, dimensions)),
            element_type: get_u32(bytes, offset_of!(Self, element_type)),
            vector_count: get_u32(bytes, offset_of!(Self, vector_count)),
            storage_format: get_u32(bytes, offset_of!(Self, storage_format)),
            data_offset: get_u64(bytes, offset_of!(Self, data_offset)),
            index_offset: get_u64(bytes, offset_of!(Self, index_offset)),
            compression_type: get_u32(bytes, offset_of!(Self, compression_type)),
            alignment_bytes: get_u32(bytes, offset_of!(Self, alignment_bytes)),
        }
    }

    pub fn to_bytes(&self) -> [u8; VEXFS_VECTOR_FILE_INFO_SIZE] {
        let mut bytes = [0u8; VEXFS_VECTOR_FILE_INFO_SIZE];
        put_u32(&mut bytes, offset_of!(Self, dimensions), self.dimensions);
        put_u32(
            &mut bytes,
            offset_of!(Self, element_type),
            self.element_type,
        );
        put_u32(
            &mut bytes,
            offset_of!(Self, vector_count),
            self.vector_count,
        );
        put_u32(
            &mut bytes,
            offset_of!(Self, storage_format),
            self.storage_format,
        );
        put_u64(&mut bytes, offset_of!(Self, data_offset), self.data_offset);
        put_u64(
            &mut bytes,
            offset_of!(Self, index_offset),
            self.index_offset,
        );
        put_u32(
            &mut bytes,
            offset_of!(Self, compression_type),
            self.compression_type,
        );
        put_u32(
            &mut bytes,
            offset_of!(Self, alignment_bytes),
            self.alignment_bytes,
        );
        bytes
    }
}

impl VexfsVectorSearchRequest {
    pub fn from_bytes(bytes: &[u8; VEXFS_VECTOR_SEARCH_REQUEST_SIZE]) -> Self {
        Self {
            query_vector_addr: get_u64(bytes, offset_of!(Self, query_vector_addr)),
            dimensions: get_u32(bytes, offset_of!(Self, dimensions)),
            k: get_u32(bytes, offset_of!(Self, k)),
            search_type: get_u32(bytes, offset_of!(Self, search_type)),
            _pad0: get_u32(bytes, offset_of!(Self, _pad0)),
            results_addr: get_u64(bytes, offset_of!(Self, results_addr)),
            result_ids_addr: get_u64(bytes, offset_of!(Self, result_ids_addr)),
            result_count: get_u32(bytes, offset_of!(Self, result_count)),
            _pad1: get_u32(bytes, offset_of!(Self, _pad1)),
        }
    }

    pub fn to_bytes(&self) -> [u8; VEXFS_VECTOR_SEARCH_REQUEST_SIZE] {
        let mut bytes = [0u8; VEXFS_VECTOR_SEARCH_REQUEST_SIZE];
        put_u64(
            &mut bytes,
            offset_of!(Self, query_vector_addr),
            self.query_vector_addr,
        );
        put_u32(&mut bytes, offset_of!(Self, dimensions), self.dimensions);
        put_u32(&mut bytes, offset_of!(Self, k), self.k);
        put_u32(&mut bytes, offset_of!(Self, search_type), self.search_type);
        put_u32(&mut bytes, offset_of!(Self, _pad0), self._pad0);
        put_u64(
            &mut bytes,
            offset_of!(Self, results_addr),
            self.results_addr,
        );
        put_u64(
            &mut bytes,
            offset_of!(Self, result_ids_addr),
            self.result_ids_addr,
        );
        put_u32(
            &mut bytes,
            offset_of!(Self, result_count),
            self.result_count,
        );
        put_u32(&mut bytes, offset_of!(Self, _pad1), self._pad1);
        bytes
    }
}

impl VexfsBatchInsertRequest {
    pub fn from_bytes(bytes: &[u8; VEXFS_BATCH_INSERT_REQUEST_SIZE]) -> Self {
        Self {
            vectors_addr: get_u64(bytes, offset_of!(Self, vectors_addr)),
            vector_count: get_u32(bytes, offset_of!(Self, vector_count)),
            dimensions: get_u32(bytes, offset_of!(Self, dimensions)),
            vector_ids_addr: get_u64(bytes, offset_of!(Self, vector_ids_addr)),
            flags: get_u32(bytes, offset_of!(Self, flags)),
            _pad0: get_u32(bytes, offset_of!(Self, _pad0)),
        }
    }

    pub fn to_bytes(&self) -> [u8; VEXFS_BATCH_INSERT_REQUEST_SIZE] {
        let mut bytes = [0u8; VEXFS_BATCH_INSERT_REQUEST_SIZE];
        put_u64(
            &mut bytes,
            offset_of!(Self, vectors_addr),
            self.vectors_addr,
        );
        put_u32(
            &mut bytes,
            offset_of!(Self, vector_count),
            self.vector_count,
        );
        put_u32(&mut bytes, offset_of!(Self, dimensions), self.dimensions);
        put_u64(
            &mut bytes,
            offset_of!(Self, vector_ids_addr),
            self.vector_ids_addr,
        );
        put_u32(&mut bytes, offset_of!(Self, flags), self.flags);
        put_u32(&mut bytes, offset_of!(Self, _pad0), self._pad0);
        bytes
    }
}

impl VexfsDeleteRequest {
    pub fn from_bytes(bytes: &[u8; VEXFS_DELETE_REQUEST_SIZE]) -> Self {
        Self {
            ids_addr: get_u64(bytes, offset_of!(Self, ids_addr)),
            id_count: get_u32(bytes, offset_of!(Self, id_count)),
            flags: get_u32(bytes, offset_of!(Self, flags)),
            deleted_count: get_u32(bytes, offset_of!(Self, deleted_count)),
            reserved: get_u32(bytes, offset_of!(Self, reserved)),
        }
    }

    pub fn to_bytes(&self) -> [u8; VEXFS_DELETE_REQUEST_SIZE] {
        let mut bytes = [0u8; VEXFS_DELETE_REQUEST_SIZE];
        put_u64(&mut bytes, offset_of!(Self, ids_addr), self.ids_addr);
        put_u32(&mut bytes, offset_of!(Self, id_count), self.id_count);
        put_u32(&mut bytes, offset_of!(Self, flags), self.flags);
        put_u32(
            &mut bytes,
            offset_of!(Self, deleted_count),
            self.deleted_count,
        );
        put_u32(&mut bytes, offset_of!(Self, reserved), self.reserved);
        bytes
    }
}

impl VexfsGetVectorsRequest {
    pub fn from_bytes(bytes: &[u8; VEXFS_GET_VECTORS_REQUEST_SIZE]) -> Self {
        Self {
            ids_addr: get_u64(bytes, offset_of!(Self, ids_addr)),
            vectors_addr: get_u64(bytes, offset_of!(Self, vectors_addr)),
            id_count: get_u32(bytes, offset_of!(Self, id_count)),
            dimensions: get_u32(bytes, offset_of!(Self, dimensions)),
            found_count: get_u32(bytes, offset_of!(Self, found_count)),
            flags: get_u32(bytes, offset_of!(Self, flags)),
        }
    }

    pub fn to_bytes(&self) -> [u8; VEXFS_GET_VECTORS_REQUEST_SIZE] {
        let mut bytes = [0u8; VEXFS_GET_VECTORS_REQUEST_SIZE];
        put_u64(&mut bytes, offset_of!(Self, ids_addr), self.ids_addr);
        put_u64(
            &mut bytes,
            offset_of!(Self, vectors_addr),
            self.vectors_addr,
        );
        put_u32(&mut bytes, offset_of!(Self, id_count), self.id_count);
        put_u32(&mut bytes, offset_of!(Self, dimensions), self.dimensions);
        put_u32(&mut bytes, offset_of!(Self, found_count), self.found_count);
        put_u32(&mut bytes, offset_of!(Self, flags), self.flags);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_codes_decode_to_their_parts() {
        // dir, size, type and nr read back out of each code.
        for (code, dir, nr, size) in [
            (VEXFS_IOC_SET_VECTOR_META, IOC_WRITE, 1, 40),
            (VEXFS_IOC_GET_VECTOR_META, IOC_READ, 2, 40),
            (VEXFS_IOC_VECTOR_SEARCH, IOC_READ | IOC_WRITE, 3, 48),
            (VEXFS_IOC_BATCH_INSERT, IOC_WRITE, 4, 32),
            (VEXFS_IOC_DELETE_VECTORS, IOC_READ | IOC_WRITE, 5, 24),
            (VEXFS_IOC_GET_VECTORS, IOC_READ | IOC_WRITE, 6, 32),
            (VEXFS_IOC_SET_PAYLOADS, IOC_WRITE, 7, 48),
            (VEXFS_IOC_GET_PAYLOADS, IOC_READ | IOC_WRITE, 8, 40),
            (VEXFS_IOC_FILTERED_SEARCH, IOC_READ | IOC_WRITE, 9, 64),
            (VEXFS_IOC_SCROLL, IOC_READ | IOC_WRITE, 27, 56),
        ] {
            assert_eq!(code >> 30, dir);
            assert_eq!((code >> 16) & 0x3fff, size);
            assert_eq!((code >> 8) & 0xff, u32::from(b'V'));
            assert_eq!(code & 0xff, nr);
        }
    }

    #[test]
    fn structs_round_trip_through_bytes() {
        let info = VexfsVectorFileInfo {
            dimensions: 1536,
            element_type: VEXFS_VECTOR_FLOAT32,
            vector_count: 10_000,
            storage_format: VEXFS_STORAGE_DENSE,
            data_offset: 4096,
            index_offset: 0x1_0000_0000,
            compression_type: VEXFS_COMPRESS_NONE,
            alignment_bytes: 64,
        };
        assert_eq!(VexfsVectorFileInfo::from_bytes(&info.to_bytes()), info);
        // Little-endian, at the C offsets.
        assert_eq!(info.to_bytes()[0..4], 1536u32.to_le_bytes());
        assert_eq!(info.to_bytes()[24..32], 0x1_0000_0000u64.to_le_bytes());

        let search = VexfsVectorSearchRequest {
            query_vector_addr: 0x7fff_0000_1000,
            dimensions: 384,
            k: 10,
            search_type: VEXFS_SEARCH_COSINE,
            results_addr: 0x7fff_0000_2000,
            result_ids_addr: 0x7fff_0000_3000,
            result_count: 7,
            ..Default::default()
        };
        assert_eq!(
            VexfsVectorSearchRequest::from_bytes(&search.to_bytes()),
            search
        );
        assert_eq!(search.to_bytes()[40..44], 7u32.to_le_bytes());

        let insert = VexfsBatchInsertRequest {
            vectors_addr: 0x5555_0000_0000,
            vector_count: 100,
            dimensions: 128,
            vector_ids_addr: 0,
            flags: VEXFS_INSERT_APPEND | VEXFS_INSERT_VALIDATE,
            _pad0: 0,
        };
        assert_eq!(
            VexfsBatchInsertRequest::from_bytes(&insert.to_bytes()),
            insert
        );
        assert_eq!(insert.to_bytes()[24..28], 6u32.to_le_bytes());
    }
}
