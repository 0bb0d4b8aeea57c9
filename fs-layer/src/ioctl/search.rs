//! VECTOR_SEARCH and FILTERED_SEARCH: the request path a search takes
//! through the daemon. It holds the file's read lock once, reads the
//! queries into this worker's kept buffers ([`with_scratch`]), lets faiss
//! answer every query of the request in one call, and writes the values and
//! ids back with one `process_vm_writev`: nothing is allocated per query.

use std::time::Instant;

use vexfs_uapi::*;

use super::{fixed, read_filter, refusal, Caller, Outcome, ReplyBytes};
use crate::error::Result;
use crate::fs::Fs;
use crate::interrupt::Interrupt;
use crate::vectors::{with_scratch, Among};

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
    let k = request.k as usize;
    let found = with_scratch(|scratch| -> Result<usize> {
        caller.read_f32s_into(
            "query_vector",
            request.query_vector_addr,
            request.dimensions as usize,
            &mut scratch.queries,
        )?;
        let queries = std::mem::take(&mut scratch.queries);
        let (mut answers, index_scratch) = scratch.answers(1, k);
        let searched = fs.search_into(
            &file,
            ino,
            &queries,
            request.k,
            request.search_type,
            &Among::default(),
            interrupt,
            &mut answers,
            index_scratch,
        );
        let found = answers.most();
        scratch.queries = queries;
        searched?;
        // The original ABI: only the places that hold a result are written.
        caller.write_answers(
            ("results", request.results_addr, &scratch.values[..found]),
            ("result_ids", request.result_ids_addr, &scratch.ids[..found]),
        )?;
        Ok(found)
    })?;
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
    let queries = request.query_count as usize;
    let k = request.k as usize;
    let _memory = fs.request_memory.take(
        queries as u64 * (u64::from(request.dimensions) * 4 + k as u64 * (4 + 8) * 2)
            + u64::from(request.filter_bytes),
        interrupt,
    )?;
    let filter = read_filter(caller, request.filter_addr, request.filter_bytes)?;
    let among = Among {
        filter: filter.as_ref().filter(|f| !f.is_empty()),
        exact: request.flags & VEXFS_SEARCH_EXACT != 0,
    };
    let most = with_scratch(|scratch| -> Result<usize> {
        caller.read_f32s_into(
            "query_vector",
            request.query_vector_addr,
            queries * request.dimensions as usize,
            &mut scratch.queries,
        )?;
        let rows = std::mem::take(&mut scratch.queries);
        let (mut answers, index_scratch) = scratch.answers(queries, k);
        let searched = fs.search_into(
            &file,
            ino,
            &rows,
            request.k,
            request.search_type,
            &among,
            interrupt,
            &mut answers,
            index_scratch,
        );
        let most = answers.most();
        scratch.queries = rows;
        searched?;
        caller.write_answers(
            ("results", request.results_addr, &scratch.values),
            ("result_ids", request.result_ids_addr, &scratch.ids),
        )?;
        Ok(most)
    })?;
    request.result_count = most as u32;
    fs.metrics.search(queries as u64, started.elapsed());
    Ok(Outcome::unchanged(ReplyBytes::of(request.to_bytes())))
}
