//! The payload and filter extensions of the ioctl interface: SET_PAYLOADS,
//! GET_PAYLOADS, FILTERED_SEARCH and SCROLL (numbers 7, 8, 9 and 27), their
//! structs, sizes and request codes, mirrored from `include/vexfs_v2_uapi.h`
//! as the rest of the ABI is in its parent module.

use core::mem::{offset_of, size_of};

use super::{get_u32, get_u64, ioc, put_u32, put_u64, IOC_READ, IOC_WRITE, VEXFS_IOC_MAGIC};

pub const VEXFS_SET_PAYLOADS_REQUEST_SIZE: usize = 48;
pub const VEXFS_GET_PAYLOADS_REQUEST_SIZE: usize = 40;
pub const VEXFS_FILTERED_SEARCH_REQUEST_SIZE: usize = 64;
pub const VEXFS_SCROLL_REQUEST_SIZE: usize = 56;

/// Extension: set or remove payloads, optionally upserting vectors with them.
pub const VEXFS_IOC_SET_PAYLOADS: u32 = ioc(
    IOC_WRITE,
    VEXFS_IOC_MAGIC,
    7,
    size_of::<VexfsSetPayloadsRequest>(),
);
/// Extension: fetch payloads by id.
pub const VEXFS_IOC_GET_PAYLOADS: u32 = ioc(
    IOC_READ | IOC_WRITE,
    VEXFS_IOC_MAGIC,
    8,
    size_of::<VexfsGetPayloadsRequest>(),
);
/// Extension: k-nearest-neighbour queries over the ids a payload filter matches.
pub const VEXFS_IOC_FILTERED_SEARCH: u32 = ioc(
    IOC_READ | IOC_WRITE,
    VEXFS_IOC_MAGIC,
    9,
    size_of::<VexfsFilteredSearchRequest>(),
);
/// Extension: page through (or count) the ids a payload filter matches.
/// Number 27: the first after the avoided 10..=26.
pub const VEXFS_IOC_SCROLL: u32 = ioc(
    IOC_READ | IOC_WRITE,
    VEXFS_IOC_MAGIC,
    27,
    size_of::<VexfsScrollRequest>(),
);

/// `struct vexfs_set_payloads_request`, 48 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VexfsSetPayloadsRequest {
    /// Address of `id_count` u64 ids.
    pub ids_addr: u64,
    /// Address of the payloads concatenated (JSON objects, UTF-8), or 0 when
    /// every length is 0.
    pub payloads_addr: u64,
    /// Address of `id_count` u32 payload lengths; 0 removes that id's payload.
    pub payload_bytes_addr: u64,
    /// Address of `id_count * dimensions` elements upserted with the
    /// payloads (`vectors` / `vectors_bits`), or 0 for payloads only.
    pub vectors_addr: u64,
    pub id_count: u32,
    /// The file's when `vectors_addr` is set, else 0.
    pub dimensions: u32,
    pub flags: u32,
    pub reserved: u32,
}

/// `struct vexfs_get_payloads_request`, 40 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VexfsGetPayloadsRequest {
    /// Address of `id_count` u64 ids.
    pub ids_addr: u64,
    /// Address of `buffer_bytes` bytes the payloads are written to,
    /// concatenated in the order of the ids; 0 asks for the lengths only.
    pub buffer_addr: u64,
    /// Address of `id_count` u32 lengths written back (0 = no payload).
    pub payload_bytes_addr: u64,
    /// In: the buffer's size. Out: the bytes the payloads take.
    pub buffer_bytes: u64,
    pub id_count: u32,
    pub flags: u32,
}

/// `struct vexfs_filtered_search_request`, 64 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VexfsFilteredSearchRequest {
    /// Address of `query_count * dimensions` elements (`query_vector` / `query_vector_bits`).
    pub query_vector_addr: u64,
    /// Address of `query_count * k` f32 distances written back (`results` / `results_bits`).
    pub results_addr: u64,
    /// Address of `query_count * k` u64 ids written back; unused places get [`VEXFS_NO_ID`](crate::abi::VEXFS_NO_ID).
    pub result_ids_addr: u64,
    /// Address of `filter_bytes` bytes of JSON filter, or 0 for none.
    pub filter_addr: u64,
    pub filter_bytes: u32,
    pub dimensions: u32,
    pub k: u32,
    pub search_type: u32,
    pub query_count: u32,
    pub flags: u32,
    /// Out: the most results any query got.
    pub result_count: u32,
    pub reserved: u32,
}

/// `struct vexfs_scroll_request`, 56 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VexfsScrollRequest {
    /// Address of `filter_bytes` bytes of JSON filter, or 0 for every id.
    pub filter_addr: u64,
    /// Address of `limit` u64 ids written back, ascending; 0 counts only.
    pub ids_addr: u64,
    pub start_id: u64,
    /// Out: where the next page starts when `more` is 1.
    pub next_id: u64,
    pub filter_bytes: u32,
    pub limit: u32,
    /// Out: ids written.
    pub id_count: u32,
    /// Out: ids at or after `start_id` that match, in all.
    pub matching_count: u32,
    /// Out: 1 when matching ids remain from `next_id` on.
    pub more: u32,
    pub flags: u32,
}

// The ABI, checked where the compiler sees it, as in the parent module.
const _: () = {
    assert!(size_of::<VexfsSetPayloadsRequest>() == VEXFS_SET_PAYLOADS_REQUEST_SIZE);
    assert!(offset_of!(VexfsSetPayloadsRequest, ids_addr) == 0);
    assert!(offset_of!(VexfsSetPayloadsRequest, payloads_addr) == 8);
    assert!(offset_of!(VexfsSetPayloadsRequest, payload_bytes_addr) == 16);
    assert!(offset_of!(VexfsSetPayloadsRequest, vectors_addr) == 24);
    assert!(offset_of!(VexfsSetPayloadsRequest, id_count) == 32);
    assert!(offset_of!(VexfsSetPayloadsRequest, dimensions) == 36);
    assert!(offset_of!(VexfsSetPayloadsRequest, flags) == 40);
    assert!(offset_of!(VexfsSetPayloadsRequest, reserved) == 44);

    assert!(size_of::<VexfsGetPayloadsRequest>() == VEXFS_GET_PAYLOADS_REQUEST_SIZE);
    assert!(offset_of!(VexfsGetPayloadsRequest, ids_addr) == 0);
    assert!(offset_of!(VexfsGetPayloadsRequest, buffer_addr) == 8);
    assert!(offset_of!(VexfsGetPayloadsRequest, payload_bytes_addr) == 16);
    assert!(offset_of!(VexfsGetPayloadsRequest, buffer_bytes) == 24);
    assert!(offset_of!(VexfsGetPayloadsRequest, id_count) == 32);
    assert!(offset_of!(VexfsGetPayloadsRequest, flags) == 36);

    assert!(size_of::<VexfsFilteredSearchRequest>() == VEXFS_FILTERED_SEARCH_REQUEST_SIZE);
    assert!(offset_of!(VexfsFilteredSearchRequest, query_vector_addr) == 0);
    assert!(offset_of!(VexfsFilteredSearchRequest, results_addr) == 8);
    assert!(offset_of!(VexfsFilteredSearchRequest, result_ids_addr) == 16);
    assert!(offset_of!(VexfsFilteredSearchRequest, filter_addr) == 24);
    assert!(offset_of!(VexfsFilteredSearchRequest, filter_bytes) == 32);
    assert!(offset_of!(VexfsFilteredSearchRequest, dimensions) == 36);
    assert!(offset_of!(VexfsFilteredSearchRequest, k) == 40);
    assert!(offset_of!(VexfsFilteredSearchRequest, search_type) == 44);
    assert!(offset_of!(VexfsFilteredSearchRequest, query_count) == 48);
    assert!(offset_of!(VexfsFilteredSearchRequest, flags) == 52);
    assert!(offset_of!(VexfsFilteredSearchRequest, result_count) == 56);
    assert!(offset_of!(VexfsFilteredSearchRequest, reserved) == 60);

    assert!(size_of::<VexfsScrollRequest>() == VEXFS_SCROLL_REQUEST_SIZE);
    assert!(offset_of!(VexfsScrollRequest, filter_addr) == 0);
    assert!(offset_of!(VexfsScrollRequest, ids_addr) == 8);
    assert!(offset_of!(VexfsScrollRequest, start_id) == 16);
    assert!(offset_of!(VexfsScrollRequest, next_id) == 24);
    assert!(offset_of!(VexfsScrollRequest, filter_bytes) == 32);
    assert!(offset_of!(VexfsScrollRequest, limit) == 36);
    assert!(offset_of!(VexfsScrollRequest, id_count) == 40);
    assert!(offset_of!(VexfsScrollRequest, matching_count) == 44);
    assert!(offset_of!(VexfsScrollRequest, more) == 48);
    assert!(offset_of!(VexfsScrollRequest, flags) == 52);

    assert!(VEXFS_IOC_SET_PAYLOADS == 0x4030_5607);
    assert!(VEXFS_IOC_GET_PAYLOADS == 0xc028_5608);
    assert!(VEXFS_IOC_FILTERED_SEARCH == 0xc040_5609);
    assert!(VEXFS_IOC_SCROLL == 0xc038_561b);
};

impl VexfsSetPayloadsRequest {
    pub fn from_bytes(bytes: &[u8; VEXFS_SET_PAYLOADS_REQUEST_SIZE]) -> Self {
        Self {
            ids_addr: get_u64(bytes, offset_of!(Self, ids_addr)),
            payloads_addr: get_u64(bytes, offset_of!(Self, payloads_addr)),
            payload_bytes_addr: get_u64(bytes, offset_of!(Self, payload_bytes_addr)),
            vectors_addr: get_u64(bytes, offset_of!(Self, vectors_addr)),
            id_count: get_u32(bytes, offset_of!(Self, id_count)),
            dimensions: get_u32(bytes, offset_of!(Self, dimensions)),
            flags: get_u32(bytes, offset_of!(Self, flags)),
            reserved: get_u32(bytes, offset_of!(Self, reserved)),
        }
    }

    pub fn to_bytes(&self) -> [u8; VEXFS_SET_PAYLOADS_REQUEST_SIZE] {
        let mut bytes = [0u8; VEXFS_SET_PAYLOADS_REQUEST_SIZE];
        put_u64(&mut bytes, offset_of!(Self, ids_addr), self.ids_addr);
        put_u64(
            &mut bytes,
            offset_of!(Self, payloads_addr),
            self.payloads_addr,
        );
        put_u64(
            &mut bytes,
            offset_of!(Self, payload_bytes_addr),
            self.payload_bytes_addr,
        );
        put_u64(
            &mut bytes,
            offset_of!(Self, vectors_addr),
            self.vectors_addr,
        );
        put_u32(&mut bytes, offset_of!(Self, id_count), self.id_count);
        put_u32(&mut bytes, offset_of!(Self, dimensions), self.dimensions);
        put_u32(&mut bytes, offset_of!(Self, flags), self.flags);
        put_u32(&mut bytes, offset_of!(Self, reserved), self.reserved);
        bytes
    }
}

impl VexfsGetPayloadsRequest {
    pub fn from_bytes(bytes: &[u8; VEXFS_GET_PAYLOADS_REQUEST_SIZE]) -> Self {
        Self {
            ids_addr: get_u64(bytes, offset_of!(Self, ids_addr)),
            buffer_addr: get_u64(bytes, offset_of!(Self, buffer_addr)),
            payload_bytes_addr: get_u64(bytes, offset_of!(Self, payload_bytes_addr)),
            buffer_bytes: get_u64(bytes, offset_of!(Self, buffer_bytes)),
            id_count: get_u32(bytes, offset_of!(Self, id_count)),
            flags: get_u32(bytes, offset_of!(Self, flags)),
        }
    }

    pub fn to_bytes(&self) -> [u8; VEXFS_GET_PAYLOADS_REQUEST_SIZE] {
        let mut bytes = [0u8; VEXFS_GET_PAYLOADS_REQUEST_SIZE];
        put_u64(&mut bytes, offset_of!(Self, ids_addr), self.ids_addr);
        put_u64(&mut bytes, offset_of!(Self, buffer_addr), self.buffer_addr);
        put_u64(
            &mut bytes,
            offset_of!(Self, payload_bytes_addr),
            self.payload_bytes_addr,
        );
        put_u64(
            &mut bytes,
            offset_of!(Self, buffer_bytes),
            self.buffer_bytes,
        );
        put_u32(&mut bytes, offset_of!(Self, id_count), self.id_count);
        put_u32(&mut bytes, offset_of!(Self, flags), self.flags);
        bytes
    }
}

impl VexfsFilteredSearchRequest {
    pub fn from_bytes(bytes: &[u8; VEXFS_FILTERED_SEARCH_REQUEST_SIZE]) -> Self {
        Self {
            query_vector_addr: get_u64(bytes, offset_of!(Self, query_vector_addr)),
            results_addr: get_u64(bytes, offset_of!(Self, results_addr)),
            result_ids_addr: get_u64(bytes, offset_of!(Self, result_ids_addr)),
            filter_addr: get_u64(bytes, offset_of!(Self, filter_addr)),
            filter_bytes: get_u32(bytes, offset_of!(Self, filter_bytes)),
            dimensions: get_u32(bytes, offset_of!(Self, dimensions)),
            k: get_u32(bytes, offset_of!(Self, k)),
            search_type: get_u32(bytes, offset_of!(Self, search_type)),
            query_count: get_u32(bytes, offset_of!(Self, query_count)),
            flags: get_u32(bytes, offset_of!(Self, flags)),
            result_count: get_u32(bytes, offset_of!(Self, result_count)),
            reserved: get_u32(bytes, offset_of!(Self, reserved)),
        }
    }

    pub fn to_bytes(&self) -> [u8; VEXFS_FILTERED_SEARCH_REQUEST_SIZE] {
        let mut bytes = [0u8; VEXFS_FILTERED_SEARCH_REQUEST_SIZE];
        put_u64(
            &mut bytes,
            offset_of!(Self, query_vector_addr),
            self.query_vector_addr,
        );
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
        put_u64(&mut bytes, offset_of!(Self, filter_addr), self.filter_addr);
        put_u32(
            &mut bytes,
            offset_of!(Self, filter_bytes),
            self.filter_bytes,
        );
        put_u32(&mut bytes, offset_of!(Self, dimensions), self.dimensions);
        put_u32(&mut bytes, offset_of!(Self, k), self.k);
        put_u32(&mut bytes, offset_of!(Self, search_type), self.search_type);
        put_u32(&mut bytes, offset_of!(Self, query_count), self.query_count);
        put_u32(&mut bytes, offset_of!(Self, flags), self.flags);
        put_u32(
            &mut bytes,
            offset_of!(Self, result_count),
            self.result_count,
        );
        put_u32(&mut bytes, offset_of!(Self, reserved), self.reserved);
        bytes
    }
}

impl VexfsScrollRequest {
    pub fn from_bytes(bytes: &[u8; VEXFS_SCROLL_REQUEST_SIZE]) -> Self {
        Self {
            filter_addr: get_u64(bytes, offset_of!(Self, filter_addr)),
            ids_addr: get_u64(bytes, offset_of!(Self, ids_addr)),
            start_id: get_u64(bytes, offset_of!(Self, start_id)),
            next_id: get_u64(bytes, offset_of!(Self, next_id)),
            filter_bytes: get_u32(bytes, offset_of!(Self, filter_bytes)),
            limit: get_u32(bytes, offset_of!(Self, limit)),
            id_count: get_u32(bytes, offset_of!(Self, id_count)),
            matching_count: get_u32(bytes, offset_of!(Self, matching_count)),
            more: get_u32(bytes, offset_of!(Self, more)),
            flags: get_u32(bytes, offset_of!(Self, flags)),
        }
    }

    pub fn to_bytes(&self) -> [u8; VEXFS_SCROLL_REQUEST_SIZE] {
        let mut bytes = [0u8; VEXFS_SCROLL_REQUEST_SIZE];
        put_u64(&mut bytes, offset_of!(Self, filter_addr), self.filter_addr);
        put_u64(&mut bytes, offset_of!(Self, ids_addr), self.ids_addr);
        put_u64(&mut bytes, offset_of!(Self, start_id), self.start_id);
        put_u64(&mut bytes, offset_of!(Self, next_id), self.next_id);
        put_u32(
            &mut bytes,
            offset_of!(Self, filter_bytes),
            self.filter_bytes,
        );
        put_u32(&mut bytes, offset_of!(Self, limit), self.limit);
        put_u32(&mut bytes, offset_of!(Self, id_count), self.id_count);
        put_u32(
            &mut bytes,
            offset_of!(Self, matching_count),
            self.matching_count,
        );
        put_u32(&mut bytes, offset_of!(Self, more), self.more);
        put_u32(&mut bytes, offset_of!(Self, flags), self.flags);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{
        VEXFS_NO_ID, VEXFS_PAYLOAD_MERGE, VEXFS_SEARCH_DOT_PRODUCT, VEXFS_SEARCH_EXACT,
    };

    #[test]
    fn payload_and_filter_requests_round_trip_through_bytes() {
        let set = VexfsSetPayloadsRequest {
            ids_addr: 0x7fff_0000_1000,
            payloads_addr: 0x7fff_0000_2000,
            payload_bytes_addr: 0x7fff_0000_3000,
            vectors_addr: 0x7fff_0000_4000,
            id_count: 3,
            dimensions: 128,
            flags: VEXFS_PAYLOAD_MERGE,
            reserved: 0,
        };
        assert_eq!(VexfsSetPayloadsRequest::from_bytes(&set.to_bytes()), set);
        assert_eq!(set.to_bytes()[24..32], 0x7fff_0000_4000u64.to_le_bytes());
        assert_eq!(set.to_bytes()[40..44], 1u32.to_le_bytes());

        let get = VexfsGetPayloadsRequest {
            ids_addr: 0x1000,
            buffer_addr: 0x2000,
            payload_bytes_addr: 0x3000,
            buffer_bytes: 0x1_0000_0001,
            id_count: 5,
            flags: 0,
        };
        assert_eq!(VexfsGetPayloadsRequest::from_bytes(&get.to_bytes()), get);
        assert_eq!(get.to_bytes()[24..32], 0x1_0000_0001u64.to_le_bytes());

        let search = VexfsFilteredSearchRequest {
            query_vector_addr: 0x1000,
            results_addr: 0x2000,
            result_ids_addr: 0x3000,
            filter_addr: 0x4000,
            filter_bytes: 17,
            dimensions: 384,
            k: 10,
            search_type: VEXFS_SEARCH_DOT_PRODUCT,
            query_count: 4,
            flags: VEXFS_SEARCH_EXACT,
            result_count: 9,
            reserved: 0,
        };
        assert_eq!(
            VexfsFilteredSearchRequest::from_bytes(&search.to_bytes()),
            search
        );
        assert_eq!(search.to_bytes()[48..52], 4u32.to_le_bytes());
        assert_eq!(search.to_bytes()[56..60], 9u32.to_le_bytes());

        let scroll = VexfsScrollRequest {
            filter_addr: 0x4000,
            ids_addr: 0x5000,
            start_id: 100,
            next_id: VEXFS_NO_ID,
            filter_bytes: 17,
            limit: 64,
            id_count: 64,
            matching_count: 1000,
            more: 1,
            flags: 0,
        };
        assert_eq!(VexfsScrollRequest::from_bytes(&scroll.to_bytes()), scroll);
        assert_eq!(scroll.to_bytes()[24..32], [0xff; 8]);
        assert_eq!(scroll.to_bytes()[48..52], 1u32.to_le_bytes());
    }
}
