//! The timing loop both systems run: bulk insert in batches, one first
//! search (timed on its own: VexFS builds its index there), then for each
//! index setting every query in requests of `--search-batch` (latency per
//! request) and every query once more one at a time (latency per query),
//! each pass scored by recall against the exact neighbours.

use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;

use super::service::ServiceTotals;
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
    /// The daemon's own service time per request, mean, from its metrics
    /// (VexFS only): the rest of a request's time is FUSE's transport and the client.
    pub daemon_service_us_mean: Option<f64>,
}

/// One pass over every query in requests of several queries each.
#[derive(Clone, Debug, Serialize)]
pub struct BatchedStats {
    pub search_params: String,
    /// Queries per request; the last request holds the rest.
    pub queries_per_request: usize,
    pub requests: u64,
    pub queries: u64,
    pub seconds: f64,
    /// Queries (not requests) per second.
    pub qps: f64,
    /// Per request, not per query: from sending a request to having all its answers.
    pub request_lat_us: Percentiles,
    pub k: usize,
    pub recall_at_k: f64,
    /// As in [`SearchStats`]: queries answered with fewer than k neighbours.
    pub short_answers: u64,
    /// As in [`SearchStats`], per request of several queries.
    pub daemon_service_us_mean: Option<f64>,
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
    /// The batched pass per index setting, in order (empty with --search-batch 0).
    pub batched: Vec<BatchedStats>,
    /// Why the batched pass was left out, when the system could not take it.
    pub batched_left_out: Option<String>,
}

/// The same workload for every system.
pub(super) struct Workload<'a> {
    pub base: &'a Vectors,
    pub queries: &'a Vectors,
    pub truth: &'a Neighbours,
    pub k: usize,
    /// Search parameters of each setting (`efSearch=64`; empty: the index's default).
    pub settings: &'a [String],
    /// Queries per request of the batched pass; 0: no batched pass.
    pub search_batch: usize,
}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
impl SystemResult {
    /// A result that holds `settings` and `batched` and an insert of
    /// `vectors` in one second, for the report's tests.
    pub(crate) fn of_passes(
        name: &'static str,
        vectors: u64,
        settings: Vec<SearchStats>,
        batched: Vec<BatchedStats>,
    ) -> SystemResult {
        SystemResult {
            name,
            target: String::new(),
            insert: InsertStats {
                vectors,
                batch: 100,
                seconds: 1.0,
                vectors_per_s: vectors as f64,
                batch_lat_us: Percentiles::default(),
                prepare_ms: 0.0,
                finish_ms: 1.0,
            },
            first_search_ms: 5.0,
            index_wait_ms: 0.0,
            ready_seconds: 1.005,
            settings,
            batched,
            batched_left_out: None,
        }
    }
}

/// Insert everything, one first search, then per setting every query in
/// batches and every query one at a time.
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

    let search_batch = workload.search_batch;
    let batched_left_out = (search_batch > system.search_batch_max()).then(|| {
        format!(
            "{name} takes at most {} queries per request; --search-batch {search_batch} is more",
            system.search_batch_max()
        )
    });
    let batched_on = search_batch > 0 && batched_left_out.is_none();
    let mut settings = Vec::with_capacity(workload.settings.len());
    let mut batched = Vec::with_capacity(workload.settings.len());
    for params in workload.settings {
        let params_label = if params.is_empty() {
            "default search parameters"
        } else {
            params
        };
        let queries = workload.queries.count();
        progress(&format!(
            "search: {name}: {queries} queries, k = {}, {params_label}{}",
            workload.k,
            if batched_on {
                format!(", in requests of {search_batch}, then one at a time")
            } else {
                String::new()
            }
        ));
        system.set_search_params(params)?;
        // Untimed: a system that rereads its parameters does so here.
        system.search(workload.queries.row(0), &mut scratch)?;
        if batched_on {
            batched.push(search_batched(system, workload, params)?);
        }
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
        batched,
        batched_left_out,
    })
}

/// How a pass's answers score against the exact neighbours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Scored {
    pub recall_at_k: f64,
    pub short_answers: u64,
}

/// Checks every answer's shape, no more neighbours than the exact ones and
/// only ids that were stored, and scores them. `found` holds k places per
/// query, best first, `u64::MAX` where no neighbour was found; one-at-a-time,
/// batched and the faiss-cpu peer's passes are all scored here.
pub(super) fn score(system: &str, workload: &Workload, found: &[u64]) -> Result<Scored> {
    let k = workload.k;
    let expected = workload.truth.k;
    let stored = workload.base.count() as u64;
    let queries = workload.queries.count();
    if found.len() != queries * k {
        bail!(
            "{system}: {} answer places for {queries} queries of k = {k}",
            found.len()
        );
    }
    let mut short_answers = 0;
    for (q, row) in found.chunks_exact(k).enumerate() {
        let written = row.iter().filter(|&&id| id != u64::MAX).count();
        if written > expected {
            bail!("{system}: query {q} returned {written} neighbours, at most {expected} expected");
        }
        if written < expected {
            short_answers += 1;
        }
        if let Some(bad) = row.iter().find(|&&id| id != u64::MAX && id >= stored) {
            bail!("{system}: query {q} returned id {bad}, which was never stored");
        }
    }
    Ok(Scored {
        recall_at_k: datasets::recall_at_k(workload.truth, found, k),
        short_answers,
    })
}

/// Every query once, in requests of `workload.search_batch` queries.
fn search_batched(
    system: &mut dyn VectorSystem,
    workload: &Workload,
    search_params: &str,
) -> Result<BatchedStats> {
    let (k, queries, per_request) = (workload.k, workload.queries, workload.search_batch);
    let mut found = vec![u64::MAX; queries.count() * k];
    let mut latency_ns = new_histogram();
    let mut requests = 0;
    let service_before = system.daemon_service()?;
    let started = Instant::now();
    for (request, ids) in found.chunks_mut(per_request * k).enumerate() {
        check_interrupted()?;
        let rows = queries.rows(request * per_request, ids.len() / k);
        let request_started = Instant::now();
        system.search_batch(rows, k, ids)?;
        latency_ns.saturating_record(elapsed_ns(request_started).max(1));
        requests += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let daemon_service_us_mean = service_mean_us(system, service_before)?;
    let scored = score(system.name(), workload, &found)?;
    Ok(BatchedStats {
        search_params: search_params.to_string(),
        queries_per_request: per_request,
        requests,
        queries: queries.count() as u64,
        seconds,
        qps: queries.count() as f64 / seconds,
        request_lat_us: Percentiles::from_histogram(&latency_ns),
        k,
        recall_at_k: scored.recall_at_k,
        short_answers: scored.short_answers,
        daemon_service_us_mean,
    })
}

/// Mean service time per request since `before`, read again now.
fn service_mean_us(
    system: &dyn VectorSystem,
    before: Option<ServiceTotals>,
) -> Result<Option<f64>> {
    Ok(match (before, system.daemon_service()?) {
        (Some(before), Some(after)) => before.mean_us_until(&after),
        _ => None,
    })
}

/// Every query once, one at a time.
fn search_all(
    system: &mut dyn VectorSystem,
    workload: &Workload,
    search_params: &str,
) -> Result<SearchStats> {
    let (k, queries) = (workload.k, workload.queries);
    let mut found = vec![u64::MAX; queries.count() * k];
    let mut latency_ns = new_histogram();
    let service_before = system.daemon_service()?;
    let started = Instant::now();
    for (q, row) in found.chunks_exact_mut(k).enumerate() {
        check_interrupted()?;
        let query_started = Instant::now();
        let written = system.search(queries.row(q), row)?;
        latency_ns.saturating_record(elapsed_ns(query_started).max(1));
        row[written.min(k)..].fill(u64::MAX);
    }
    let seconds = started.elapsed().as_secs_f64();
    let daemon_service_us_mean = service_mean_us(system, service_before)?;
    let scored = score(system.name(), workload, &found)?;
    Ok(SearchStats {
        search_params: search_params.to_string(),
        queries: queries.count() as u64,
        seconds,
        qps: queries.count() as f64 / seconds,
        lat_us: Percentiles::from_histogram(&latency_ns),
        k,
        recall_at_k: scored.recall_at_k,
        short_answers: scored.short_answers,
        daemon_service_us_mean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::{ground_truth, structured, structured_queries, Metric};
    use crate::search::{single_threaded_faiss, FaissSystem};

    /// Answers from a table: query q (its first value is q) gets `answers[q]`,
    /// fewer than k for a short answer; the same one at a time and batched.
    struct Table {
        answers: Vec<Vec<u64>>,
        dims: usize,
        batch_requests: usize,
    }

    impl Table {
        fn answer(&self, query: &[f32], ids: &mut [u64]) -> usize {
            let found = &self.answers[query[0] as usize];
            ids.fill(u64::MAX);
            ids[..found.len()].copy_from_slice(found);
            found.len()
        }
    }

    impl VectorSystem for Table {
        fn name(&self) -> &'static str {
            "table"
        }
        fn prepare(&mut self, _all_vectors: &[f32]) -> Result<()> {
            Ok(())
        }
        fn insert(&mut self, _vectors: &[f32], _ids: &[u64]) -> Result<()> {
            Ok(())
        }
        fn finish_insert(&mut self) -> Result<()> {
            Ok(())
        }
        fn search(&mut self, query: &[f32], ids: &mut [u64]) -> Result<usize> {
            Ok(self.answer(query, ids))
        }
        fn search_batch(&mut self, queries: &[f32], k: usize, ids: &mut [u64]) -> Result<()> {
            self.batch_requests += 1;
            for (query, row) in queries.chunks_exact(self.dims).zip(ids.chunks_exact_mut(k)) {
                self.answer(query, row);
            }
            Ok(())
        }
        fn set_search_params(&mut self, _params: &str) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn batched_answers_score_exactly_like_the_same_answers_one_at_a_time() {
        let dims = 2;
        let base = Vectors::new(dims, vec![0.0; 10 * dims]).unwrap();
        let queries = Vectors::new(dims, (0..7).flat_map(|q| [q as f32, 0.0]).collect()).unwrap();
        let truth = Neighbours {
            k: 3,
            ids: (0..7).flat_map(|q| [q, q + 1, q + 2]).collect(),
        };
        // Right, one wrong, short by one, the right ones in another order, …
        let answers = vec![
            vec![0, 1, 2],
            vec![1, 2, 9],
            vec![2, 3],
            vec![5, 4, 3],
            vec![],
            vec![5, 6, 7],
            vec![8, 9, 0],
        ];
        let mut table = Table {
            answers,
            dims,
            batch_requests: 0,
        };
        let settings = [String::new()];
        let workload = Workload {
            base: &base,
            queries: &queries,
            truth: &truth,
            k: 3,
            settings: &settings,
            search_batch: 3,
        };
        let result = measure(&mut table, "t".into(), &workload, 5, &mut |_| {}).unwrap();
        let (one, batched) = (&result.settings[0], &result.batched[0]);
        assert_eq!(table.batch_requests, 3, "7 queries in requests of 3");
        assert_eq!((batched.requests, batched.queries), (3, 7));
        assert_eq!(one.short_answers, 2);
        assert_eq!(batched.short_answers, one.short_answers);
        assert!((one.recall_at_k - 14.0 / 21.0).abs() < 1e-12, "{one:?}");
        assert_eq!(batched.recall_at_k, one.recall_at_k);

        // An id that was never stored is refused in either pass.
        table.answers[6] = vec![10];
        let error = measure(&mut table, "t".into(), &workload, 5, &mut |_| {}).unwrap_err();
        assert!(error.to_string().contains("id 10"), "{error}");
    }

    #[test]
    fn faiss_answers_the_same_batched_as_one_at_a_time() {
        single_threaded_faiss();
        let (metric, k) = (Metric::Cosine, 10);
        let base = structured(2_000, 16, 20, 9).unwrap();
        let queries = structured_queries(50, 16, 20, 9).unwrap();
        let truth = ground_truth(&base, &queries, k, metric);
        let settings = ["efSearch=4".to_string(), "efSearch=32".to_string()];
        let workload = Workload {
            base: &base,
            queries: &queries,
            truth: &truth,
            k,
            settings: &settings,
            search_batch: 16,
        };
        let mut faiss = FaissSystem::new(16, metric, "HNSW8", &settings[0]).unwrap();
        let result = measure(&mut faiss, "t".into(), &workload, 2_000, &mut |_| {}).unwrap();
        for (one, batched) in result.settings.iter().zip(&result.batched) {
            assert_eq!(one.search_params, batched.search_params);
            assert_eq!(batched.requests, 4);
            assert_eq!(batched.recall_at_k, one.recall_at_k, "{one:?} {batched:?}");
        }
        assert!(
            result.settings[0].recall_at_k < 1.0,
            "a graph search that misses some"
        );
    }
}
