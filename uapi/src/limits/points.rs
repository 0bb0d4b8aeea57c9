//! The checks of the payload and filter requests: SET_PAYLOADS (and its
//! payload lengths, once read), GET_PAYLOADS, FILTERED_SEARCH and SCROLL,
//! against the limits named in the parent module.

use crate::abi::{
    VexfsFilteredSearchRequest, VexfsGetPayloadsRequest, VexfsScrollRequest,
    VexfsSetPayloadsRequest,
};

use super::{
    check_dimensions, check_flags, check_id_batch, check_id_count, check_k, check_request_bytes,
    check_reserved, check_search_type, Refusal, FILTERED_SEARCH_FLAGS_KNOWN, FILTER_BYTES_MAX,
    ID_BATCH_MAX, PAYLOAD_BYTES_MAX, PAYLOAD_FLAGS_KNOWN, SEARCH_QUERIES_MAX,
};

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
/// (from [`set_payloads_fixed_bytes`]) within [`REQUEST_BYTES_MAX`](super::REQUEST_BYTES_MAX).
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
    use crate::abi::{VEXFS_PAYLOAD_MERGE, VEXFS_SEARCH_COSINE, VEXFS_SEARCH_EXACT};
    use crate::limits::{DIMENSIONS_MAX, REQUEST_BYTES_MAX, SEARCH_K_MAX};

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
