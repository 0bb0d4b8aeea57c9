//! Every limit of the ioctl interface, named once, with the check that
//! enforces it and the errno the caller gets back.
//!
//! Values that are out of their domain (zero dimensions, an unknown metric)
//! are `EINVAL`; requests that are well-formed but larger than a named
//! maximum are `E2BIG`; a NULL pointer the request needs is `EFAULT`. A [`Refusal`] names the offending field, so the
//! daemon can log exactly what was wrong.
//!
//! The checks of the payload and filter requests (SET_PAYLOADS,
//! GET_PAYLOADS, FILTERED_SEARCH, SCROLL) are in `points`, re-exported here.

use crate::abi::*;

mod points;

pub use points::*;

/// Elements per vector: `VEXFS_VALID_DIMENSIONS` in the header.
pub const DIMENSIONS_MAX: u32 = 65_536;
/// Vectors in one `BATCH_INSERT`: `VEXFS_VALID_COUNT` in the header.
pub const BATCH_VECTORS_MAX: u32 = 1_000_000;
/// Neighbours one `VECTOR_SEARCH` may ask for (`VEXFS_SEARCH_K_MAX`).
pub const SEARCH_K_MAX: u32 = 10_000;
/// Bytes one request may make the daemon read from or write to the caller
/// (vectors plus ids, or distances plus ids). Checked before anything is allocated.
pub const REQUEST_BYTES_MAX: u64 = 256 << 20;
/// Largest `alignment_bytes` a vector file may ask for; it must be a power of two.
pub const ALIGNMENT_BYTES_MAX: u32 = 4096;
/// Insert flags this version understands.
pub const INSERT_FLAGS_KNOWN: u32 =
    VEXFS_INSERT_OVERWRITE | VEXFS_INSERT_APPEND | VEXFS_INSERT_VALIDATE | VEXFS_INSERT_NO_REPLACE;
/// Ids in one `DELETE_VECTORS` or `GET_VECTORS` request (the batch limit).
pub const ID_BATCH_MAX: u32 = BATCH_VECTORS_MAX;
/// Bytes of one payload, a JSON object (`VEXFS_PAYLOAD_BYTES_MAX`).
pub const PAYLOAD_BYTES_MAX: u32 = 65_536;
/// Bytes of one JSON filter (`VEXFS_FILTER_BYTES_MAX`).
pub const FILTER_BYTES_MAX: u32 = 65_536;
/// Queries in one `FILTERED_SEARCH` (`VEXFS_SEARCH_QUERIES_MAX`).
pub const SEARCH_QUERIES_MAX: u32 = 1_024;
/// `SET_PAYLOADS` flags this version understands.
pub const PAYLOAD_FLAGS_KNOWN: u32 = VEXFS_PAYLOAD_MERGE;
/// `FILTERED_SEARCH` flags this version understands.
pub const FILTERED_SEARCH_FLAGS_KNOWN: u32 = VEXFS_SEARCH_EXACT;

/// Bytes of one element of `element_type`, or `None` if the type is unknown.
pub fn element_bytes(element_type: u32) -> Option<u32> {
    match element_type {
        VEXFS_VECTOR_FLOAT32 => Some(4),
        VEXFS_VECTOR_FLOAT16 => Some(2),
        VEXFS_VECTOR_INT8 => Some(1),
        // One bit per dimension; callers round the vector up to whole bytes.
        VEXFS_VECTOR_BINARY => Some(0),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// A value outside its domain: `EINVAL`.
    Invalid,
    /// A request over a named maximum: `E2BIG`.
    TooBig,
    /// A NULL pointer where the request needs memory: `EFAULT`, as a
    /// kernel driver's `copy_from_user` on it would give.
    Fault,
}

/// Why a request was refused: which field, what was wrong, which errno.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub field: &'static str,
    pub reason: String,
}

impl Refusal {
    fn invalid(field: &'static str, reason: String) -> Self {
        Self {
            kind: RefusalKind::Invalid,
            field,
            reason,
        }
    }

    fn too_big(field: &'static str, reason: String) -> Self {
        Self {
            kind: RefusalKind::TooBig,
            field,
            reason,
        }
    }

    fn null(field: &'static str) -> Self {
        Self {
            kind: RefusalKind::Fault,
            field,
            reason: "is NULL".into(),
        }
    }

    /// The errno the caller's `ioctl` returns.
    pub fn errno(&self) -> i32 {
        match self.kind {
            RefusalKind::Invalid => libc::EINVAL,
            RefusalKind::TooBig => libc::E2BIG,
            RefusalKind::Fault => libc::EFAULT,
        }
    }
}

pub fn check_dimensions(field: &'static str, dimensions: u32) -> Result<(), Refusal> {
    if dimensions == 0 {
        return Err(Refusal::invalid(field, "must be at least 1".into()));
    }
    if dimensions > DIMENSIONS_MAX {
        return Err(Refusal::invalid(
            field,
            format!("{dimensions} is over the maximum of {DIMENSIONS_MAX}"),
        ));
    }
    Ok(())
}

pub fn check_batch_count(vector_count: u32) -> Result<(), Refusal> {
    if vector_count == 0 {
        return Err(Refusal::invalid(
            "vector_count",
            "must be at least 1".into(),
        ));
    }
    if vector_count > BATCH_VECTORS_MAX {
        return Err(Refusal::too_big(
            "vector_count",
            format!("{vector_count} is over the maximum of {BATCH_VECTORS_MAX} per batch"),
        ));
    }
    Ok(())
}

pub fn check_k(k: u32) -> Result<(), Refusal> {
    if k == 0 {
        return Err(Refusal::invalid("k", "must be at least 1".into()));
    }
    if k > SEARCH_K_MAX {
        return Err(Refusal::too_big(
            "k",
            format!("{k} is over the maximum of {SEARCH_K_MAX}"),
        ));
    }
    Ok(())
}

pub fn check_element_type(element_type: u32) -> Result<(), Refusal> {
    match element_bytes(element_type) {
        Some(_) => Ok(()),
        None => Err(Refusal::invalid(
            "element_type",
            format!("unknown element type {element_type}"),
        )),
    }
}

pub fn check_search_type(search_type: u32) -> Result<(), Refusal> {
    match search_type {
        VEXFS_SEARCH_EUCLIDEAN | VEXFS_SEARCH_COSINE | VEXFS_SEARCH_DOT_PRODUCT => Ok(()),
        _ => Err(Refusal::invalid(
            "search_type",
            format!("unknown search type {search_type}"),
        )),
    }
}

pub fn check_storage_format(storage_format: u32) -> Result<(), Refusal> {
    match storage_format {
        VEXFS_STORAGE_DENSE | VEXFS_STORAGE_SPARSE | VEXFS_STORAGE_COMPRESSED => Ok(()),
        _ => Err(Refusal::invalid(
            "storage_format",
            format!("unknown storage format {storage_format}"),
        )),
    }
}

pub fn check_compression(compression_type: u32) -> Result<(), Refusal> {
    match compression_type {
        VEXFS_COMPRESS_NONE | VEXFS_COMPRESS_LZ4 | VEXFS_COMPRESS_ZSTD => Ok(()),
        _ => Err(Refusal::invalid(
            "compression_type",
            format!("unknown compression type {compression_type}"),
        )),
    }
}

pub fn check_insert_flags(flags: u32) -> Result<(), Refusal> {
    let unknown = flags & !INSERT_FLAGS_KNOWN;
    if unknown != 0 {
        return Err(Refusal::invalid(
            "flags",
            format!("unknown insert flags {unknown:#x}"),
        ));
    }
    if flags & VEXFS_INSERT_OVERWRITE != 0 && flags & VEXFS_INSERT_NO_REPLACE != 0 {
        return Err(Refusal::invalid(
            "flags",
            "OVERWRITE and NO_REPLACE contradict each other".into(),
        ));
    }
    Ok(())
}

/// 0 means "no requirement"; otherwise a power of two up to [`ALIGNMENT_BYTES_MAX`].
pub fn check_alignment(alignment_bytes: u32) -> Result<(), Refusal> {
    if alignment_bytes != 0
        && (!alignment_bytes.is_power_of_two() || alignment_bytes > ALIGNMENT_BYTES_MAX)
    {
        return Err(Refusal::invalid(
            "alignment_bytes",
            format!("{alignment_bytes} is not 0 or a power of two up to {ALIGNMENT_BYTES_MAX}"),
        ));
    }
    Ok(())
}

/// Bytes a request moves between the caller and the daemon, against [`REQUEST_BYTES_MAX`].
pub fn check_request_bytes(field: &'static str, bytes: u64) -> Result<(), Refusal> {
    if bytes > REQUEST_BYTES_MAX {
        return Err(Refusal::too_big(
            field,
            format!(
                "request moves {bytes} bytes, over the per-request maximum of {REQUEST_BYTES_MAX}"
            ),
        ));
    }
    Ok(())
}

/// The fields of `SET_VECTOR_META` that a caller sets (the outputs are ignored).
pub fn check_file_info(info: &VexfsVectorFileInfo) -> Result<(), Refusal> {
    check_dimensions("dimensions", info.dimensions)?;
    check_element_type(info.element_type)?;
    check_storage_format(info.storage_format)?;
    check_compression(info.compression_type)?;
    check_alignment(info.alignment_bytes)
}

/// A whole `BATCH_INSERT` request of f32 vectors, before the daemon reads any vector.
pub fn check_insert(request: &VexfsBatchInsertRequest) -> Result<(), Refusal> {
    check_dimensions("dimensions", request.dimensions)?;
    check_batch_count(request.vector_count)?;
    check_insert_flags(request.flags)?;
    if request.vectors_addr == 0 {
        return Err(Refusal::null("vectors"));
    }
    let vector_bytes = u64::from(request.vector_count) * u64::from(request.dimensions) * 4;
    let id_bytes = if request.vector_ids_addr == 0 {
        0
    } else {
        u64::from(request.vector_count) * 8
    };
    check_request_bytes("vector_count", vector_bytes + id_bytes)
}

/// A whole `VECTOR_SEARCH` request, before the daemon reads the query.
pub fn check_search(request: &VexfsVectorSearchRequest) -> Result<(), Refusal> {
    check_dimensions("dimensions", request.dimensions)?;
    check_k(request.k)?;
    check_search_type(request.search_type)?;
    if request.query_vector_addr == 0 {
        return Err(Refusal::null("query_vector"));
    }
    if request.results_addr == 0 {
        return Err(Refusal::null("results"));
    }
    if request.result_ids_addr == 0 {
        return Err(Refusal::null("result_ids"));
    }
    check_request_bytes(
        "k",
        u64::from(request.dimensions) * 4 + u64::from(request.k) * (4 + 8),
    )
}

fn check_id_batch(id_count: u32, ids_addr: u64, flags: u32) -> Result<(), Refusal> {
    check_id_count(id_count, ids_addr)?;
    check_flags(flags, 0)
}

fn check_id_count(id_count: u32, ids_addr: u64) -> Result<(), Refusal> {
    if id_count == 0 {
        return Err(Refusal::invalid("id_count", "must be at least 1".into()));
    }
    if id_count > ID_BATCH_MAX {
        return Err(Refusal::too_big(
            "id_count",
            format!("{id_count} is over the maximum of {ID_BATCH_MAX} per request"),
        ));
    }
    if ids_addr == 0 {
        return Err(Refusal::null("ids"));
    }
    Ok(())
}

/// `flags` holds only bits of `known` (which is 0 where none are defined).
fn check_flags(flags: u32, known: u32) -> Result<(), Refusal> {
    let unknown = flags & !known;
    if unknown != 0 {
        let defined = if known == 0 {
            " (none are defined)"
        } else {
            ""
        };
        return Err(Refusal::invalid(
            "flags",
            format!("unknown flags {unknown:#x}{defined}"),
        ));
    }
    Ok(())
}

fn check_reserved(reserved: u32) -> Result<(), Refusal> {
    if reserved != 0 {
        return Err(Refusal::invalid("reserved", "must be 0".into()));
    }
    Ok(())
}

/// A whole `DELETE_VECTORS` request, before the daemon reads any id.
pub fn check_delete(request: &VexfsDeleteRequest) -> Result<(), Refusal> {
    check_id_batch(request.id_count, request.ids_addr, request.flags)?;
    check_reserved(request.reserved)?;
    check_request_bytes("id_count", u64::from(request.id_count) * 8)
}

/// A whole `GET_VECTORS` request, before the daemon reads any id.
pub fn check_get_vectors(request: &VexfsGetVectorsRequest) -> Result<(), Refusal> {
    check_id_batch(request.id_count, request.ids_addr, request.flags)?;
    check_dimensions("dimensions", request.dimensions)?;
    if request.vectors_addr == 0 {
        return Err(Refusal::null("vectors"));
    }
    let count = u64::from(request.id_count);
    check_request_bytes(
        "id_count",
        count * 8 + count * u64::from(request.dimensions) * 4,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(dimensions: u32, vector_count: u32, flags: u32) -> VexfsBatchInsertRequest {
        VexfsBatchInsertRequest {
            vectors_addr: 0x1000,
            vector_count,
            dimensions,
            flags,
            ..Default::default()
        }
    }

    #[test]
    fn dimensions_bounds_match_the_header_macro() {
        assert_eq!(
            check_dimensions("dimensions", 0).unwrap_err().errno(),
            libc::EINVAL
        );
        assert!(check_dimensions("dimensions", 1).is_ok());
        assert!(check_dimensions("dimensions", 65_536).is_ok());
        let refusal = check_dimensions("dimensions", 65_537).unwrap_err();
        assert_eq!(refusal.errno(), libc::EINVAL);
        assert_eq!(refusal.field, "dimensions");
    }

    #[test]
    fn batch_count_zero_is_invalid_and_over_max_is_too_big() {
        assert_eq!(check_batch_count(0).unwrap_err().errno(), libc::EINVAL);
        assert!(check_batch_count(1_000_000).is_ok());
        assert_eq!(
            check_batch_count(1_000_001).unwrap_err().errno(),
            libc::E2BIG
        );
    }

    #[test]
    fn k_bounds() {
        assert_eq!(check_k(0).unwrap_err().errno(), libc::EINVAL);
        assert!(check_k(SEARCH_K_MAX).is_ok());
        assert_eq!(check_k(SEARCH_K_MAX + 1).unwrap_err().errno(), libc::E2BIG);
    }

    #[test]
    fn unknown_enumerations_name_their_field() {
        assert_eq!(check_element_type(5).unwrap_err().field, "element_type");
        assert_eq!(check_search_type(3).unwrap_err().field, "search_type");
        assert_eq!(check_storage_format(3).unwrap_err().field, "storage_format");
        assert_eq!(check_compression(3).unwrap_err().field, "compression_type");
        assert_eq!(check_insert_flags(0x10).unwrap_err().field, "flags");
        assert!(check_insert_flags(VEXFS_INSERT_NO_REPLACE | VEXFS_INSERT_APPEND).is_ok());
        assert_eq!(
            check_insert_flags(VEXFS_INSERT_OVERWRITE | VEXFS_INSERT_NO_REPLACE)
                .unwrap_err()
                .errno(),
            libc::EINVAL
        );
        assert!(check_insert_flags(VEXFS_INSERT_APPEND | VEXFS_INSERT_VALIDATE).is_ok());
        assert_eq!(check_alignment(48).unwrap_err().field, "alignment_bytes");
        assert!(check_alignment(0).is_ok() && check_alignment(64).is_ok());
    }

    #[test]
    fn request_byte_limit_applies_before_allocation() {
        // 65,536 dimensions x 1,024 vectors x 4 bytes = 256 MiB: exactly the limit.
        assert!(check_insert(&insert(65_536, 1_024, 0)).is_ok());
        let refusal = check_insert(&insert(65_536, 1_025, 0)).unwrap_err();
        assert_eq!(refusal.errno(), libc::E2BIG);
        assert_eq!(refusal.field, "vector_count");
        let mut null_vectors = insert(4, 1, 0);
        null_vectors.vectors_addr = 0;
        let refusal = check_insert(&null_vectors).unwrap_err();
        assert_eq!((refusal.field, refusal.errno()), ("vectors", libc::EFAULT));
    }

    #[test]
    fn id_batches_are_bounded_and_flags_reserved() {
        let mut delete = VexfsDeleteRequest {
            ids_addr: 0x1000,
            id_count: 3,
            ..Default::default()
        };
        assert!(check_delete(&delete).is_ok());
        delete.flags = 1;
        assert_eq!(check_delete(&delete).unwrap_err().field, "flags");
        delete.flags = 0;
        delete.id_count = ID_BATCH_MAX + 1;
        assert_eq!(check_delete(&delete).unwrap_err().errno(), libc::E2BIG);
        let get = VexfsGetVectorsRequest {
            ids_addr: 0x1000,
            vectors_addr: 0x2000,
            id_count: 100_000,
            dimensions: 65_536,
            ..Default::default()
        };
        // 100,000 x 65,536 x 4 bytes is far over the per-request limit.
        assert_eq!(check_get_vectors(&get).unwrap_err().errno(), libc::E2BIG);
    }

    #[test]
    fn search_request_checks() {
        let mut request = VexfsVectorSearchRequest {
            query_vector_addr: 0x1000,
            dimensions: 128,
            k: 10,
            search_type: VEXFS_SEARCH_COSINE,
            results_addr: 0x2000,
            result_ids_addr: 0x3000,
            ..Default::default()
        };
        assert!(check_search(&request).is_ok());
        request.search_type = 9;
        assert_eq!(check_search(&request).unwrap_err().field, "search_type");
        request.search_type = VEXFS_SEARCH_EUCLIDEAN;
        request.result_ids_addr = 0;
        assert_eq!(check_search(&request).unwrap_err().field, "result_ids");
    }
}
