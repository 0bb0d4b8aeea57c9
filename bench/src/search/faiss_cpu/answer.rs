//! What peer.py hands back, and how it becomes rows: its JSON, checked
//! against the passes asked for, scored by the same recall and percentile
//! code as the other systems' passes.

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::latency::{new_histogram, Percentiles};
use crate::search::measure::{score, BatchedStats, SearchStats, Workload};

/// What `peer.py describe` prints.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub(super) struct PeerDescription {
    pub(super) faiss_version: String,
    pub(super) compile_options: String,
    pub(super) simd_level: Option<String>,
    pub(super) simd_level_env: Option<String>,
    pub(super) python: String,
    pub(super) numpy_version: String,
}

/// One pass as the peer hands it back.
#[derive(Debug, Deserialize)]
pub(super) struct PeerTimed {
    #[serde(default)]
    pub(super) queries_per_request: Option<usize>,
    pub(super) seconds: f64,
    pub(super) latency_ns: Vec<u64>,
    /// k per query, -1 where faiss found none.
    pub(super) ids: Vec<i64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct PeerPass {
    pub(super) search_params: String,
    pub(super) batched: Option<PeerTimed>,
    pub(super) one_at_a_time: PeerTimed,
}

/// What `peer.py run` prints.
#[derive(Debug, Deserialize)]
pub(super) struct PeerOutput {
    pub(super) peer: PeerDescription,
    pub(super) omp_threads: u32,
    pub(super) count: usize,
    pub(super) dims: usize,
    pub(super) queries: usize,
    pub(super) k: usize,
    pub(super) train_seconds: f64,
    pub(super) add_seconds: f64,
    pub(super) passes: Vec<PeerPass>,
}

/// The peer's passes as rows: the same checks, recall and percentiles as
/// the other systems' passes; refused where they are not the passes asked.
pub(super) fn rows(
    name: &str,
    output: &PeerOutput,
    workload: &Workload,
) -> Result<(Vec<SearchStats>, Vec<BatchedStats>)> {
    let expected = (
        workload.base.count(),
        workload.base.dims(),
        workload.queries.count(),
        workload.k,
    );
    let got = (output.count, output.dims, output.queries, output.k);
    if got != expected {
        bail!("peer.py measured (vectors, dimensions, queries, k) = {got:?}, not {expected:?}");
    }
    if output.passes.len() != workload.settings.len() {
        bail!(
            "peer.py measured {} settings of {}",
            output.passes.len(),
            workload.settings.len()
        );
    }
    let mut settings = Vec::with_capacity(output.passes.len());
    let mut batched = Vec::with_capacity(output.passes.len());
    for (pass, params) in output.passes.iter().zip(workload.settings) {
        if &pass.search_params != params {
            bail!(
                "peer.py measured {:?} where {params:?} was asked",
                pass.search_params
            );
        }
        settings.push(one_at_a_time_stats(
            name,
            workload,
            params,
            &pass.one_at_a_time,
        )?);
        match (&pass.batched, workload.search_batch) {
            (None, 0) => {}
            (Some(timed), per_request) if per_request > 0 => {
                batched.push(batched_stats(name, workload, params, timed)?)
            }
            (got, _) => bail!(
                "peer.py {} a batched pass with --search-batch {}",
                if got.is_some() { "ran" } else { "skipped" },
                workload.search_batch
            ),
        }
    }
    Ok((settings, batched))
}

/// The peer's ids as the other systems give them: `u64::MAX` for none.
fn found_ids(system: &str, ids: &[i64]) -> Result<Vec<u64>> {
    ids.iter()
        .map(|&id| match id {
            -1 => Ok(u64::MAX),
            id => u64::try_from(id).with_context(|| format!("{system}: result id {id}")),
        })
        .collect()
}

/// Latencies (ns) into the percentiles every row prints.
fn percentiles(latency_ns: &[u64]) -> Percentiles {
    let mut histogram = new_histogram();
    for &ns in latency_ns {
        histogram.saturating_record(ns.max(1));
    }
    Percentiles::from_histogram(&histogram)
}

fn one_at_a_time_stats(
    system: &str,
    workload: &Workload,
    params: &str,
    timed: &PeerTimed,
) -> Result<SearchStats> {
    let queries = workload.queries.count();
    if timed.latency_ns.len() != queries {
        bail!(
            "{system}, {params}: {} latencies for {queries} queries",
            timed.latency_ns.len()
        );
    }
    let scored = score(system, workload, &found_ids(system, &timed.ids)?)?;
    Ok(SearchStats {
        search_params: params.to_string(),
        queries: queries as u64,
        seconds: timed.seconds,
        qps: queries as f64 / timed.seconds,
        lat_us: percentiles(&timed.latency_ns),
        k: workload.k,
        recall_at_k: scored.recall_at_k,
        short_answers: scored.short_answers,
        daemon_service_us_mean: None,
    })
}

fn batched_stats(
    system: &str,
    workload: &Workload,
    params: &str,
    timed: &PeerTimed,
) -> Result<BatchedStats> {
    let queries = workload.queries.count();
    let per_request = workload.search_batch;
    let requests = queries.div_ceil(per_request);
    if timed.queries_per_request != Some(per_request) || timed.latency_ns.len() != requests {
        bail!(
            "{system}, {params}: {} latencies in requests of {:?} for {queries} queries in requests of {per_request}",
            timed.latency_ns.len(),
            timed.queries_per_request
        );
    }
    let scored = score(system, workload, &found_ids(system, &timed.ids)?)?;
    Ok(BatchedStats {
        search_params: params.to_string(),
        queries_per_request: per_request,
        requests: requests as u64,
        queries: queries as u64,
        seconds: timed.seconds,
        qps: queries as f64 / timed.seconds,
        request_lat_us: percentiles(&timed.latency_ns),
        k: workload.k,
        recall_at_k: scored.recall_at_k,
        short_answers: scored.short_answers,
        daemon_service_us_mean: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::datasets::Metric;
    use crate::search::faiss_cpu::tests::tiny;

    #[test]
    fn the_peers_answer_becomes_rows_scored_like_the_others() {
        let (base, queries, truth) = tiny(Metric::L2, 3);
        let settings = ["efSearch=16".to_string()];
        let workload = Workload {
            base: &base,
            queries: &queries,
            truth: &truth,
            k: 3,
            settings: &settings,
            search_batch: 8,
        };
        // Exact answers in both passes, but one query's last neighbour missing
        // in the one-at-a-time pass (-1, as faiss says "none").
        let exact: Vec<i64> = truth.ids.iter().map(|&id| id as i64).collect();
        let mut short = exact.clone();
        short[2] = -1;
        let canned = json!({
            "peer": {"faiss_version": "1.15.1", "compile_options": "OPTIMIZE DD AVX2 AVX512",
                     "simd_level": "AVX512", "simd_level_env": null, "python": "3.11.2",
                     "numpy_version": "2.4.6"},
            "omp_threads": 1, "count": 200, "dims": 8, "queries": 20, "k": 3,
            "train_seconds": 0.0, "add_seconds": 0.01,
            "passes": [{
                "search_params": "efSearch=16",
                "batched": {"queries_per_request": 8, "seconds": 0.002,
                            "latency_ns": [1000, 2000, 3000], "ids": exact},
                "one_at_a_time": {"seconds": 0.004, "latency_ns": vec![200u64; 20], "ids": short},
            }],
        });
        let output: PeerOutput = serde_json::from_value(canned.clone()).unwrap();
        assert_eq!(output.peer.simd_level.as_deref(), Some("AVX512"));
        let (settings, batched) = rows("faiss-cpu", &output, &workload).unwrap();
        let one = &settings[0];
        assert_eq!((one.queries, one.short_answers), (20, 1));
        assert!((one.recall_at_k - 59.0 / 60.0).abs() < 1e-9, "{one:?}");
        assert!((one.qps - 5000.0).abs() < 1e-6);
        assert_eq!(one.lat_us.p50, 0.2);
        let batched = &batched[0];
        assert_eq!((batched.requests, batched.queries_per_request), (3, 8));
        assert_eq!((batched.recall_at_k, batched.short_answers), (1.0, 0));
        assert!(
            (batched.request_lat_us.max - 3.0).abs() < 0.01,
            "{batched:?}"
        );

        // Answers for another setting, too few latencies, or an id never
        // stored are refused, naming what is wrong.
        for (pointer, value, needle) in [
            (
                "/passes/0/search_params",
                json!("efSearch=32"),
                "efSearch=32",
            ),
            ("/passes/0/batched/latency_ns", json!([1, 2]), "2 latencies"),
            ("/passes/0/one_at_a_time/ids/0", json!(200), "never stored"),
            ("/queries", json!(21), "queries, k"),
        ] {
            let mut bad = canned.clone();
            *bad.pointer_mut(pointer).unwrap() = value;
            let output: PeerOutput = serde_json::from_value(bad).unwrap();
            let error = format!("{:#}", rows("faiss-cpu", &output, &workload).unwrap_err());
            assert!(error.contains(needle), "{pointer}: {error}");
        }
    }
}
