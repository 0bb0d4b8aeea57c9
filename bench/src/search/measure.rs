//! The timing loop both systems run: bulk insert in batches, one first
//! search (timed on its own: VexFS builds its index there), then for each
//! index setting every query once (latency per query, recall against the
//! exact neighbours).

use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;

use super::VectorSystem;
use crate::datasets::{self, Neighbours, Vectors};
use crate::fs::check_interrupted;
use crate::latency::{new_histogram, Percentiles};

/// Bulk insert: VexFS in batches of `--batch`, then fsync; faiss in one
/// add (or batches of `--batch` with `--faiss-batched`).
#[derive(Clone, Debug, Serialize)]
pub struct InsertStats {
    pub vectors: u64,
    /// Vectors per call.
    pub batch: usize,
    /// From the first batch to the end of the fsync (or of faiss's add).
    pub seconds: f64,
    pub vectors_per_s: f64,
    /// Per batch (train, for faiss indexes that need it, not included).
    pub batch_lat_us: Percentiles,
    /// faiss: training; VexFS: none (it trains when it builds, on first search).
    pub prepare_ms: f64,
    /// VexFS: the fsync after the last batch; faiss: nothing to do.
    pub finish_ms: f64,
}

/// One pass over every query.
#[derive(Clone, Debug, Serialize)]
pub struct SearchStats {
    pub search_params: String,
    pub queries: u64,
    pub seconds: f64,
    pub qps: f64,
    pub lat_us: Percentiles,
    pub k: usize,
    pub recall_at_k: f64,
    /// Queries answered with fewer than k neighbours (an approximate index
    /// that visited fewer vectors, e.g. IVF at a low nprobe); the missing
    /// neighbours count as misses in recall.
    pub short_answers: u64,
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct SystemResult {
    pub name: &'static str,
    pub target: String,
    pub insert: InsertStats,
    /// The first search, untimed in `search`: VexFS builds (or loads) its index here.
    pub first_search_ms: f64,
    /// After the first search, until the index answers (VexFS builds one of
    /// more than 20,000 vectors in the background and scans exactly meanwhile).
    pub index_wait_ms: f64,
    /// Insert, first search and index wait: from nothing to an index answering.
    pub ready_seconds: f64,
    /// One pass over the queries per index setting, in order.
    pub settings: Vec<SearchStats>,
}

/// The same workload for every system.
pub(super) struct Workload<'a> {
    pub base: &'a Vectors,
    pub queries: &'a Vectors,
    pub truth: &'a Neighbours,
    pub k: usize,
    /// Search parameters of each setting (`efSearch=64`; empty: the index's default).
    pub settings: &'a [String],
}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Insert everything, one first search, then every query once per setting.
pub(super) fn measure(
    system: &mut dyn VectorSystem,
    target: String,
    workload: &Workload,
    batch: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<SystemResult> {
    let name = system.name();
    let base = workload.base;
    let count = base.count();
    progress(&format!(
        "search: {name}: insert {count} vectors in batches of {batch}"
    ));
    let ids: Vec<u64> = (0..count as u64).collect();
    let mut batch_ns = new_histogram();
    let started = Instant::now();
    system.prepare(base.as_slice())?;
    let prepare_ms = started.elapsed().as_secs_f64() * 1e3;
    for first in (0..count).step_by(batch) {
        check_interrupted()?;
        let len = batch.min(count - first);
        let batch_started = Instant::now();
        system.insert(base.rows(first, len), &ids[first..first + len])?;
        batch_ns.saturating_record(elapsed_ns(batch_started).max(1));
    }
    let finish_started = Instant::now();
    system.finish_insert()?;
    let finish_ms = finish_started.elapsed().as_secs_f64() * 1e3;
    let insert_seconds = started.elapsed().as_secs_f64();
    let insert = InsertStats {
        vectors: count as u64,
        batch,
        seconds: insert_seconds,
        vectors_per_s: count as f64 / insert_seconds,
        batch_lat_us: Percentiles::from_histogram(&batch_ns),
        prepare_ms,
        finish_ms,
    };

    progress(&format!(
        "search: {name}: first search (builds or loads the index)"
    ));
    let mut scratch = vec![u64::MAX; workload.k];
    let first_started = Instant::now();
    system.search(workload.queries.row(0), &mut scratch)?;
    let first_search_ms = first_started.elapsed().as_secs_f64() * 1e3;
    progress(&format!(
        "search: {name}: waiting for the index to be in place"
    ));
    let wait_started = Instant::now();
    system.wait_for_index()?;
    let index_wait_ms = wait_started.elapsed().as_secs_f64() * 1e3;

    let mut settings = Vec::with_capacity(workload.settings.len());
    for params in workload.settings {
        progress(&format!(
            "search: {name}: {} queries, k = {}, {}",
            workload.queries.count(),
            workload.k,
            if params.is_empty() {
                "default search parameters"
            } else {
                params
            }
        ));
        system.set_search_params(params)?;
        // Untimed: a system that rereads its parameters does so here.
        system.search(workload.queries.row(0), &mut scratch)?;
        settings.push(search_all(system, workload, params)?);
    }
    Ok(SystemResult {
        name,
        target,
        insert,
        first_search_ms,
        index_wait_ms,
        ready_seconds: insert_seconds + (first_search_ms + index_wait_ms) / 1e3,
        settings,
    })
}

/// Every query once, one at a time; checks each answer's shape: no more
/// neighbours than asked for, and only ids that were stored.
fn search_all(
    system: &mut dyn VectorSystem,
    workload: &Workload,
    search_params: &str,
) -> Result<SearchStats> {
    let (k, queries) = (workload.k, workload.queries);
    let expected = workload.truth.k;
    let stored = workload.base.count() as u64;
    let mut found = vec![u64::MAX; queries.count() * k];
    let mut latency_ns = new_histogram();
    let mut short_answers = 0;
    let started = Instant::now();
    for (q, row) in found.chunks_exact_mut(k).enumerate() {
        check_interrupted()?;
        let query_started = Instant::now();
        let written = system.search(queries.row(q), row)?;
        latency_ns.saturating_record(elapsed_ns(query_started).max(1));
        if written > expected {
            bail!(
                "{}: query {q} returned {written} neighbours, at most {expected} expected",
                system.name()
            );
        }
        if written < expected {
            short_answers += 1;
        }
        if let Some(bad) = row[..written].iter().find(|&&id| id >= stored) {
            bail!(
                "{}: query {q} returned id {bad}, which was never stored",
                system.name()
            );
        }
        row[written..].fill(u64::MAX);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(SearchStats {
        search_params: search_params.to_string(),
        queries: queries.count() as u64,
        seconds,
        qps: queries.count() as f64 / seconds,
        lat_us: Percentiles::from_histogram(&latency_ns),
        k,
        recall_at_k: datasets::recall_at_k(workload.truth, &found, k),
        short_answers,
    })
}
