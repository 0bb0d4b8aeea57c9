//! Every limit of the ioctl interface, named once, with the check that
//! enforces it and the errno the caller gets back.
//!
//! Values that are out of their domain (zero dimensions, an unknown metric)
//! are `EINVAL`; requests that are well-formed but larger than a named
//! maximum are `E2BIG`; a NULL pointer the request needs is `EFAULT`. A [`Refusal`] names the offending field, so the
//! daemon can log exactly what was wrong.

use crate::abi::*;

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

/// A JSON filter's pointer and length agree, and the length is within
/// [`FILTER_BYTES_MAX`]. A NULL filter with no bytes means "no filter".
fn check_filter(filter_addr: u64, filter_bytes: u32) -> Result<(), Refusal> {
    if filter_addr == 0 {
        if filter_bytes != 0 {
            return Err(Refusal::null("filter"));
        }
        return Ok(());
    }
    if filter_bytes == 0 {
        return Err(Refusal::invalid(
            "filter_bytes",
            "must be at least 1 when filter is set (NULL means no filter)".into(),
        ));
    }
    if filter_bytes > FILTER_BYTES_MAX {
        return Err(Refusal::too_big(
            "filter_bytes",
            format!("{filter_bytes} is over the maximum of {FILTER_BYTES_MAX}"),
        ));
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

/// Bytes of a `SET_PAYLOADS` request other than the payloads themselves:
/// ids, lengths and the vectors given with them. [`check_set_payloads`]
/// checks these alone; [`check_payload_lengths`] adds the payloads to them.
pub fn set_payloads_fixed_bytes(request: &VexfsSetPayloadsRequest) -> u64 {
    let count = u64::from(request.id_count);
    let vector_bytes = if request.vectors_addr == 0 {
        0
    } else {
        count * u64::from(request.dimensions) * 4
    };
    count * 8 + count * 4 + vector_bytes
}

/// A whole `SET_PAYLOADS` request, before the daemon reads any id, length
/// or vector. The payloads pointer is checked once the lengths are known:
/// it may be NULL only when they are all 0 (see [`check_payload_lengths`]).
pub fn check_set_payloads(request: &VexfsSetPayloadsRequest) -> Result<(), Refusal> {
    check_id_count(request.id_count, request.ids_addr)?;
    if request.payload_bytes_addr == 0 {
        return Err(Refusal::null("payload_bytes"));
    }
    if request.vectors_addr == 0 {
        if request.dimensions != 0 {
            return Err(Refusal::invalid(
                "dimensions",
                format!("{} given without vectors (must be 0)", request.dimensions),
            ));
        }
    } else {
        check_dimensions("dimensions", request.dimensions)?;
    }
    check_flags(request.flags, PAYLOAD_FLAGS_KNOWN)?;
    check_reserved(request.reserved)?;
    check_request_bytes("id_count", set_payloads_fixed_bytes(request))
}

/// The `payload_bytes` array of a `SET_PAYLOADS` request, once read: each
/// payload within [`PAYLOAD_BYTES_MAX`], and all of them plus `fixed_bytes`
/// (from [`set_payloads_fixed_bytes`]) within [`REQUEST_BYTES_MAX`].
/// Returns the payloads' total bytes; when it is over 0 the daemon refuses
/// a NULL `payloads` with `EFAULT` before reading them.
pub fn check_payload_lengths(lengths: &[u32], fixed_bytes: u64) -> Result<u64, Refusal> {
    let mut total_bytes: u64 = 0;
    for (i, &length) in lengths.iter().enumerate() {
        if length > PAYLOAD_BYTES_MAX {
            // `field` is static, so the index goes in the reason.
            return Err(Refusal::too_big(
                "payload_bytes",
                format!(
                    "[{i}] is {length} bytes, over the maximum of {PAYLOAD_BYTES_MAX} per payload"
                ),
            ));
        }
        total_bytes += u64::from(length);
    }
    check_request_bytes("payload_bytes", total_bytes.saturating_add(fixed_bytes))?;
    Ok(total_bytes)
}

/// A whole `GET_PAYLOADS` request, before the daemon reads any id.
pub fn check_get_payloads(request: &VexfsGetPayloadsRequest) -> Result<(), Refusal> {
    check_id_batch(request.id_count, request.ids_addr, request.flags)?;
    if request.payload_bytes_addr == 0 {
        return Err(Refusal::null("payload_bytes"));
    }
    check_request_bytes("id_count", u64::from(request.id_count) * (8 + 4))?;
    if request.buffer_addr != 0 {
        check_request_bytes("buffer_bytes", request.buffer_bytes)?;
    }
    Ok(())
}

/// A whole `FILTERED_SEARCH` request, before the daemon reads the queries or the filter.
pub fn check_filtered_search(request: &VexfsFilteredSearchRequest) -> Result<(), Refusal> {
    check_dimensions("dimensions", request.dimensions)?;
    check_k(request.k)?;
    check_search_type(request.search_type)?;
    if request.query_count == 0 {
        return Err(Refusal::invalid("query_count", "must be at least 1".into()));
    }
    if request.query_count > SEARCH_QUERIES_MAX {
        return Err(Refusal::too_big(
            "query_count",
            format!(
                "{} is over the maximum of {SEARCH_QUERIES_MAX}",
                request.query_count
            ),
        ));
    }
    if request.query_vector_addr == 0 {
        return Err(Refusal::null("query_vector"));
    }
    if request.results_addr == 0 {
        return Err(Refusal::null("results"));
    }
    if request.result_ids_addr == 0 {
        return Err(Refusal::null("result_ids"));
    }
    check_filter(request.filter_addr, request.filter_bytes)?;
    check_flags(request.flags, FILTERED_SEARCH_FLAGS_KNOWN)?;
    check_reserved(request.reserved)?;
    // Per query: its vector in, k distances and k ids out.
    let query_bytes = u64::from(request.dimensions) * 4 + u64::from(request.k) * (4 + 8);
    check_request_bytes(
        "query_count",
        u64::from(request.query_count) * query_bytes + u64::from(request.filter_bytes),
    )
}

/// A whole `SCROLL` request, before the daemon reads the filter.
pub fn check_scroll(request: &VexfsScrollRequest) -> Result<(), Refusal> {
    check_filter(request.filter_addr, request.filter_bytes)?;
    if request.limit > ID_BATCH_MAX {
        return Err(Refusal::too_big(
            "limit",
            format!(
                "{} is over the maximum of {ID_BATCH_MAX} per request",
                request.limit
            ),
        ));
    }
    // NULL ids asks for the count alone, so it goes with limit 0 and only with it.
    match (request.ids_addr, request.limit) {
        (0, 0) => {}
        (0, _) => return Err(Refusal::null("ids")),
        (_, 0) => {
            return Err(Refusal::invalid(
                "limit",
                "must be at least 1 when ids is set (NULL ids counts only)".into(),
            ))
        }
        _ => {}
    }
    check_flags(request.flags, 0)?;
    check_request_bytes(
        "limit",
        u64::from(request.limit) * 8 + u64::from(request.filter_bytes),
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

    /// A bad request: the field its refusal names, the errno, and the
    /// change that turns a good request into it.
    type Bad<R> = (&'static str, i32, fn(&mut R));

    /// Applies each change in `bad` to a copy of `good` and checks that
    /// `check` refuses the result naming that field with that errno.
    fn refuses_each<R: Copy + std::fmt::Debug>(
        check: fn(&R) -> Result<(), Refusal>,
        good: R,
        bad: &[Bad<R>],
    ) {
        assert!(check(&good).is_ok(), "{good:?}");
        for (field, errno, change) in bad {
            let mut request = good;
            change(&mut request);
            let refusal = check(&request).unwrap_err();
            assert_eq!(
                (refusal.field, refusal.errno()),
                (*field, *errno),
                "{request:?}"
            );
        }
    }

    #[test]
    fn set_payloads_checks_name_the_field() {
        let payloads_only = VexfsSetPayloadsRequest {
            ids_addr: 0x1000,
            payloads_addr: 0x2000,
            payload_bytes_addr: 0x3000,
            id_count: 3,
            flags: VEXFS_PAYLOAD_MERGE,
            ..Default::default()
        };
        // A NULL payloads pointer waits for the lengths (they may all be 0).
        assert!(check_set_payloads(&VexfsSetPayloadsRequest {
            payloads_addr: 0,
            ..payloads_only
        })
        .is_ok());
        refuses_each(
            check_set_payloads,
            payloads_only,
            &[
                ("id_count", libc::EINVAL, |r| r.id_count = 0),
                ("id_count", libc::E2BIG, |r| r.id_count = ID_BATCH_MAX + 1),
                ("ids", libc::EFAULT, |r| r.ids_addr = 0),
                ("payload_bytes", libc::EFAULT, |r| r.payload_bytes_addr = 0),
                ("dimensions", libc::EINVAL, |r| r.dimensions = 4),
                ("flags", libc::EINVAL, |r| r.flags = 0x2),
                ("reserved", libc::EINVAL, |r| r.reserved = 1),
            ],
        );
        let with_vectors = VexfsSetPayloadsRequest {
            vectors_addr: 0x4000,
            dimensions: 128,
            ..payloads_only
        };
        refuses_each(
            check_set_payloads,
            with_vectors,
            &[
                ("dimensions", libc::EINVAL, |r| r.dimensions = 0),
                ("dimensions", libc::EINVAL, |r| {
                    r.dimensions = DIMENSIONS_MAX + 1
                }),
                // 1,024 x 65,536 x 4 bytes of vectors are the whole limit;
                // the ids and lengths beside them go over it.
                ("id_count", libc::E2BIG, |r| {
                    (r.id_count, r.dimensions) = (1_024, DIMENSIONS_MAX)
                }),
            ],
        );
    }

    #[test]
    fn payload_lengths_are_bounded_one_by_one_and_in_total() {
        assert_eq!(
            check_payload_lengths(&[0, 10, PAYLOAD_BYTES_MAX], 36),
            Ok(65_546)
        );
        assert_eq!(check_payload_lengths(&[0, 0], 24), Ok(0));
        let refusal = check_payload_lengths(&[1, PAYLOAD_BYTES_MAX + 1], 24).unwrap_err();
        assert_eq!(
            (refusal.field, refusal.errno()),
            ("payload_bytes", libc::E2BIG)
        );
        assert!(
            refusal.to_string().starts_with("payload_bytes: [1] "),
            "{refusal}"
        );
        // Each within its limit, but not all of them beside the fixed bytes.
        let fixed_bytes = REQUEST_BYTES_MAX - 100;
        assert_eq!(check_payload_lengths(&[60, 40], fixed_bytes), Ok(100));
        for (lengths, fixed_bytes) in [(&[60, 41][..], fixed_bytes), (&[1], u64::MAX)] {
            let refusal = check_payload_lengths(lengths, fixed_bytes).unwrap_err();
            assert_eq!(
                (refusal.field, refusal.errno()),
                ("payload_bytes", libc::E2BIG)
            );
        }
    }

    #[test]
    fn get_payloads_checks_name_the_field() {
        let request = VexfsGetPayloadsRequest {
            ids_addr: 0x1000,
            buffer_addr: 0x2000,
            payload_bytes_addr: 0x3000,
            buffer_bytes: 4096,
            id_count: 3,
            flags: 0,
        };
        // Lengths only: the buffer size is not looked at.
        assert!(check_get_payloads(&VexfsGetPayloadsRequest {
            buffer_addr: 0,
            buffer_bytes: u64::MAX,
            ..request
        })
        .is_ok());
        refuses_each(
            check_get_payloads,
            request,
            &[
                ("id_count", libc::EINVAL, |r| r.id_count = 0),
                ("id_count", libc::E2BIG, |r| r.id_count = ID_BATCH_MAX + 1),
                ("ids", libc::EFAULT, |r| r.ids_addr = 0),
                ("payload_bytes", libc::EFAULT, |r| r.payload_bytes_addr = 0),
                ("flags", libc::EINVAL, |r| r.flags = 1),
                ("buffer_bytes", libc::E2BIG, |r| {
                    r.buffer_bytes = REQUEST_BYTES_MAX + 1
                }),
            ],
        );
    }

    #[test]
    fn filtered_search_checks_name_the_field() {
        let request = VexfsFilteredSearchRequest {
            query_vector_addr: 0x1000,
            results_addr: 0x2000,
            result_ids_addr: 0x3000,
            filter_addr: 0x4000,
            filter_bytes: 20,
            dimensions: 128,
            k: 10,
            search_type: VEXFS_SEARCH_COSINE,
            query_count: 4,
            flags: VEXFS_SEARCH_EXACT,
            ..Default::default()
        };
        for good in [
            VexfsFilteredSearchRequest {
                filter_addr: 0,
                filter_bytes: 0,
                flags: 0,
                ..request
            },
            VexfsFilteredSearchRequest {
                k: SEARCH_K_MAX,
                query_count: SEARCH_QUERIES_MAX,
                filter_bytes: FILTER_BYTES_MAX,
                ..request
            },
        ] {
            assert!(check_filtered_search(&good).is_ok(), "{good:?}");
        }
        refuses_each(
            check_filtered_search,
            request,
            &[
                ("dimensions", libc::EINVAL, |r| r.dimensions = 0),
                ("k", libc::EINVAL, |r| r.k = 0),
                ("k", libc::E2BIG, |r| r.k = SEARCH_K_MAX + 1),
                ("search_type", libc::EINVAL, |r| r.search_type = 9),
                ("query_count", libc::EINVAL, |r| r.query_count = 0),
                ("query_count", libc::E2BIG, |r| {
                    r.query_count = SEARCH_QUERIES_MAX + 1
                }),
                ("query_vector", libc::EFAULT, |r| r.query_vector_addr = 0),
                ("results", libc::EFAULT, |r| r.results_addr = 0),
                ("result_ids", libc::EFAULT, |r| r.result_ids_addr = 0),
                ("filter", libc::EFAULT, |r| r.filter_addr = 0),
                ("filter_bytes", libc::EINVAL, |r| r.filter_bytes = 0),
                ("filter_bytes", libc::E2BIG, |r| {
                    r.filter_bytes = FILTER_BYTES_MAX + 1
                }),
                ("flags", libc::EINVAL, |r| r.flags = 0x2),
                ("reserved", libc::EINVAL, |r| r.reserved = 1),
                // 1,024 queries of 65,536 dimensions are 256 MiB of queries alone.
                ("query_count", libc::E2BIG, |r| {
                    (r.query_count, r.dimensions) = (SEARCH_QUERIES_MAX, DIMENSIONS_MAX)
                }),
            ],
        );
    }

    #[test]
    fn scroll_checks_name_the_field() {
        let request = VexfsScrollRequest {
            filter_addr: 0x1000,
            ids_addr: 0x2000,
            start_id: 7,
            filter_bytes: 20,
            limit: 100,
            ..Default::default()
        };
        // Counting every id (no filter, no ids), and the largest page.
        for good in [
            VexfsScrollRequest {
                filter_addr: 0,
                filter_bytes: 0,
                ids_addr: 0,
                limit: 0,
                ..request
            },
            VexfsScrollRequest {
                limit: ID_BATCH_MAX,
                ..request
            },
        ] {
            assert!(check_scroll(&good).is_ok(), "{good:?}");
        }
        refuses_each(
            check_scroll,
            request,
            &[
                ("filter", libc::EFAULT, |r| r.filter_addr = 0),
                ("filter_bytes", libc::EINVAL, |r| r.filter_bytes = 0),
                ("filter_bytes", libc::E2BIG, |r| {
                    r.filter_bytes = FILTER_BYTES_MAX + 1
                }),
                ("ids", libc::EFAULT, |r| r.ids_addr = 0),
                ("limit", libc::EINVAL, |r| r.limit = 0),
                ("limit", libc::E2BIG, |r| r.limit = ID_BATCH_MAX + 1),
                ("flags", libc::EINVAL, |r| r.flags = 1),
            ],
        );
    }
}
