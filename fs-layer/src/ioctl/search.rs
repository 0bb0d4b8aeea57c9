//! VECTOR_SEARCH and FILTERED_SEARCH: the request path a search takes
//! through the daemon. It holds the file's read lock once, reads the
//! queries into this worker's kept buffers ([`with_scratch`]), lets faiss
//! answer every query of the request in one call, and writes the values and
//! ids back with one `process_vm_writev`: nothing is allocated per query.

use std::sync::Arc;
use std::time::Instant;

use vexfs_uapi::*;

use super::{fixed, read_filter, refusal, Caller, Outcome, ReplyBytes};
use crate::error::Result;
use crate::fs::Fs;
use crate::interrupt::Interrupt;
use crate::locks::RwLock;
use crate::vectors::{with_scratch, Among, VectorFile};

/// VECTOR_SEARCH: one query, its `result_count` best (value, id) pairs.
pub(super) fn vector_search(
    fs: &Fs,
    caller: &Caller,
    ino: u64,
    interrupt: &Interrupt,
    in_data: &[u8],
) -> Result<Outcome> {
    let started = Instant::now();
    let mut request = VexfsVectorSearchRequest::from_bytes(&fixed(in_data)?);
    limits::check_search(&request).map_err(refusal)?;
    // Not a vector file: EINVAL before any caller memory is read.
    let file = fs.searched_file(ino)?;
    let _memory = fs.request_memory.take(
        u64::from(request.dimensions) * 4 + u64::from(request.k) * (4 + 8) * 2,
        interrupt,
    )?;
    let found = answer(
        fs,
        caller,
        (&file, ino),
        &Asked {
            query_addr: request.query_vector_addr,
            query_count: 1,
            dimensions: request.dimensions,
            k: request.k,
            search_type: request.search_type,
            results_addr: request.results_addr,
            result_ids_addr: request.result_ids_addr,
            // The original ABI: only the places that hold a result are written.
            every_place: false,
        },
        &Among::default(),
        interrupt,
    )?;
    request.result_count = found as u32;
    fs.metrics.search(1, started.elapsed());
    Ok(Outcome::unchanged(ReplyBytes::of(request.to_bytes())))
}

/// FILTERED_SEARCH: `query_count` queries, `k` places each (an unused
/// place gets VEXFS_NO_ID and NaN), among the ids a filter matches.
pub(super) fn filtered_search(
    fs: &Fs,
    caller: &Caller,
    ino: u64,
    interrupt: &Interrupt,
    in_data: &[u8],
) -> Result<Outcome> {
    let started = Instant::now();
    let mut request = VexfsFilteredSearchRequest::from_bytes(&fixed(in_data)?);
    limits::check_filtered_search(&request).map_err(refusal)?;
    let file = fs.searched_file(ino)?;
    let queries = u64::from(request.query_count);
    let _memory = fs.request_memory.take(
        queries * (u64::from(request.dimensions) * 4 + u64::from(request.k) * (4 + 8) * 2)
            + u64::from(request.filter_bytes),
        interrupt,
    )?;
    let filter = read_filter(caller, request.filter_addr, request.filter_bytes)?;
    let among = Among {
        filter: filter.as_ref().filter(|f| !f.is_empty()),
        exact: request.flags & VEXFS_SEARCH_EXACT != 0,
    };
    let most = answer(
        fs,
        caller,
        (&file, ino),
        &Asked {
            query_addr: request.query_vector_addr,
            query_count: request.query_count as usize,
            dimensions: request.dimensions,
            k: request.k,
            search_type: request.search_type,
            results_addr: request.results_addr,
            result_ids_addr: request.result_ids_addr,
            every_place: true,
        },
        &among,
        interrupt,
    )?;
    request.result_count = most as u32;
    fs.metrics.search(queries, started.elapsed());
    Ok(Outcome::unchanged(ReplyBytes::of(request.to_bytes())))
}

/// A search request's fields, whichever struct carried them (checked).
struct Asked {
    query_addr: u64,
    query_count: usize,
    dimensions: u32,
    k: u32,
    search_type: u32,
    results_addr: u64,
    result_ids_addr: u64,
    /// Write all `k` places of every query, or only the first query's
    /// places that hold a result.
    every_place: bool,
}

/// Reads the queries into this worker's buffers, searches, writes the
/// answers back; returns the most results any query got.
fn answer(
    fs: &Fs,
    caller: &Caller,
    (file, ino): (&Arc<RwLock<VectorFile>>, u64),
    asked: &Asked,
    among: &Among<'_>,
    interrupt: &Interrupt,
) -> Result<usize> {
    with_scratch(|scratch| {
        caller.read_f32s_into(
            "query_vector",
            asked.query_addr,
            asked.query_count * asked.dimensions as usize,
            &mut scratch.queries,
        )?;
        let most = fs.search_scratch(
            (file, ino),
            scratch,
            asked.query_count,
            (asked.k, asked.search_type),
            among,
            interrupt,
        )?;
        let places = if asked.every_place {
            scratch.ids.len()
        } else {
            most
        };
        caller.write_answers(
            ("results", asked.results_addr, &scratch.values[..places]),
            ("result_ids", asked.result_ids_addr, &scratch.ids[..places]),
        )?;
        Ok(most)
    })
}
