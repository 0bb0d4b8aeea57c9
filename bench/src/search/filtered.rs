//! `--filter-selectivity`: k-NN search among the vectors a payload filter
//! matches. Every stored id gets `{"bucket": B(id)}`; the filter for a
//! fraction s is `bucket < round(s × 100,000)`. VexFS answers with one
//! FILTERED_SEARCH ioctl per query; faiss in this process searches the same
//! index with an ID selector over the same ids, and a flat index likewise
//! (exact). Recall is against brute force over the matching vectors.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::systems::FaissSystem;
use crate::datasets::{self, Metric, Neighbours, Vectors};
use crate::fs::check_interrupted;
use crate::latency::{new_histogram, Percentiles};
use crate::vectors::VectorFile;

/// Values of the payload key: B(id) is in [0, BUCKETS).
pub const BUCKETS: u64 = 100_000;
/// The payload key the filters name.
pub const BUCKET_KEY: &str = "bucket";
/// Selectivities one run may measure.
pub const SELECTIVITIES_MAX: usize = 16;
/// Queries per selectivity (the first of the run's queries).
pub const FILTER_QUERIES_DEFAULT: usize = 200;
pub const FILTER_QUERIES_MAX: usize = 10_000;
/// Ids per SET_PAYLOADS ioctl.
const PAYLOAD_BATCH: usize = 10_000;
/// The daemon's payload index setting (docs/VECTORS.md, "Payload indexes"),
/// set for the second VexFS pass.
const XATTR_PAYLOAD_INDEX: &str = "user.vexfs.payload_index";
pub const PAYLOAD_INDEX_SPEC: &str = "bucket:integer";

/// What `--filter-selectivity` and `--filter-queries` ask for.
#[derive(Clone, Debug)]
pub struct FilterOptions {
    /// Fractions of the buckets a filter matches, each in (0, 1].
    pub selectivities: Vec<f64>,
    /// Queries per selectivity.
    pub queries: usize,
}

impl FilterOptions {
    pub fn validate(&self) -> Result<()> {
        if self.selectivities.is_empty() || self.selectivities.len() > SELECTIVITIES_MAX {
            bail!("--filter-selectivity: 1 to {SELECTIVITIES_MAX} values");
        }
        let mut limits = Vec::with_capacity(self.selectivities.len());
        for &s in &self.selectivities {
            // Written so that NaN fails too.
            if !(s > 0.0 && s <= 1.0) {
                bail!("--filter-selectivity {s} is not in (0, 1]");
            }
            let limit = bucket_limit(s);
            if limit == 0 {
                bail!(
                    "--filter-selectivity {s} matches no bucket of {BUCKETS}: at least {} is needed",
                    0.5 / BUCKETS as f64
                );
            }
            if limits.contains(&limit) {
                bail!(
                    "--filter-selectivity {s}: the same filter (bucket < {limit}) as another value"
                );
            }
            limits.push(limit);
        }
        if !(1..=FILTER_QUERIES_MAX).contains(&self.queries) {
            bail!(
                "--filter-queries {} is not in [1, {FILTER_QUERIES_MAX}]",
                self.queries
            );
        }
        Ok(())
    }
}

/// Whether the in-process faiss peer can search `index` with an ID
/// selector: the flat, HNSW and IVF families take one; PQ, SQ and LSH
/// alone do not (the daemon falls back to an exact scan for those).
pub fn check_index(index: &str) -> Result<()> {
    if index == "Flat" || index.starts_with("HNSW") || index.starts_with("IVF") {
        return Ok(());
    }
    bail!("--filter-selectivity needs an index that takes faiss's ID selector (Flat, HNSW…, IVF…), not {index:?}")
}

/// B(id): splitmix64's finaliser (a bijection of u64) modulo [`BUCKETS`],
/// so a bucket range matches ids spread over the whole file, not a run of them.
pub fn bucket(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % BUCKETS
}

/// The buckets below this match at selectivity `s`.
pub fn bucket_limit(selectivity: f64) -> u64 {
    (selectivity * BUCKETS as f64).round() as u64
}

/// The payload of `id`, as SET_PAYLOADS stores it.
pub fn payload_json(id: u64) -> String {
    format!("{{\"{BUCKET_KEY}\":{}}}", bucket(id))
}

/// The Qdrant-style filter matching the buckets below `limit`.
pub fn filter_json(limit: u64) -> String {
    format!("{{\"must\":[{{\"key\":\"{BUCKET_KEY}\",\"range\":{{\"lt\":{limit}}}}}]}}")
}

/// One selectivity: its filter, the ids it matches and their exact neighbours.
pub struct FilterCase {
    pub selectivity: f64,
    pub bucket_limit: u64,
    pub filter: String,
    /// Matching ids, ascending.
    pub matching: Vec<u64>,
    /// The exact neighbours among `matching` (ids of the file).
    pub truth: Neighbours,
}

/// Every selectivity's case, and the queries they run.
pub struct FilterWorkload {
    pub cases: Vec<FilterCase>,
    /// The first so many of the run's queries.
    pub queries: Vectors,
    pub k: usize,
}

/// The matching ids and brute-force neighbours of every selectivity.
pub fn prepare(
    options: &FilterOptions,
    base: &Vectors,
    queries: &Vectors,
    k: usize,
    metric: Metric,
    progress: &mut dyn FnMut(&str),
) -> Result<FilterWorkload> {
    options.validate()?;
    let dims = base.dims();
    let asked = options.queries.min(queries.count());
    let asked = Vectors::new(dims, queries.rows(0, asked).to_vec())?;
    let buckets: Vec<u64> = (0..base.count() as u64).map(bucket).collect();
    let mut cases = Vec::with_capacity(options.selectivities.len());
    for &selectivity in &options.selectivities {
        let limit = bucket_limit(selectivity);
        let matching: Vec<u64> = (0..base.count() as u64)
            .filter(|&id| buckets[id as usize] < limit)
            .collect();
        if matching.is_empty() {
            bail!(
                "--filter-selectivity {selectivity} matches none of the {} vectors; ask for a larger fraction",
                base.count()
            );
        }
        progress(&format!(
            "search: filtered ground truth at selectivity {selectivity}: {} queries over {} matching vectors",
            asked.count(),
            matching.len()
        ));
        let mut rows = Vec::with_capacity(matching.len() * dims);
        for &id in &matching {
            rows.extend_from_slice(base.row(id as usize));
        }
        let local = datasets::ground_truth(&Vectors::new(dims, rows)?, &asked, k, metric);
        let truth = Neighbours {
            k: local.k,
            ids: local.ids.iter().map(|&i| matching[i as usize]).collect(),
        };
        cases.push(FilterCase {
            selectivity,
            bucket_limit: limit,
            filter: filter_json(limit),
            matching,
            truth,
        });
    }
    Ok(FilterWorkload {
        cases,
        queries: asked,
        k,
    })
}

/// SET_PAYLOADS of every id's bucket, without vectors, then fsync.
#[derive(Clone, Debug, Serialize)]
pub struct PayloadStats {
    pub payloads: u64,
    /// Ids per ioctl.
    pub batch: usize,
    /// From the first batch to the end of the fsync.
    pub seconds: f64,
    pub payloads_per_s: f64,
    pub batch_lat_us: Percentiles,
    pub fsync_ms: f64,
}

/// One system at one selectivity: every filtered query once.
#[derive(Clone, Debug, Serialize)]
pub struct FilteredStats {
    pub queries: u64,
    pub seconds: f64,
    pub qps: f64,
    pub lat_us: Percentiles,
    pub recall_at_k: f64,
    /// Queries answered with fewer than min(k, matching) neighbours.
    pub short_answers: u64,
}

/// One selectivity, all systems.
#[derive(Clone, Debug, Serialize)]
pub struct FilteredRow {
    pub selectivity: f64,
    /// The filter matches buckets below this.
    pub bucket_limit: u64,
    pub filter: String,
    /// Vectors the filter matches (counted here; SCROLL agreed).
    pub matching: usize,
    pub vexfs: FilteredStats,
    /// VexFS again, with `user.vexfs.payload_index` set to `bucket:integer`.
    pub vexfs_payload_index: FilteredStats,
    /// The run's index with faiss's IDSelectorBitmap.
    pub faiss: FilteredStats,
    /// faiss's flat index with the same selector: exact.
    pub faiss_exact: FilteredStats,
}

/// What `--filter-selectivity` adds to the report.
#[derive(Clone, Debug, Serialize)]
pub struct FilteredReport {
    pub queries: usize,
    pub k: usize,
    /// The search parameters in effect: the last setting measured.
    pub search_params: String,
    pub ground_truth: &'static str,
    pub payloads: PayloadStats,
    /// VexFS's index, building and rows covered before the filtered queries.
    pub vexfs_index_status: String,
    /// The payload index of the second VexFS pass.
    pub payload_index: &'static str,
    pub rows: Vec<FilteredRow>,
}

/// VexFS's half of the measurement, taken while the file is mounted.
pub struct VexfsFiltered {
    pub payloads: PayloadStats,
    /// `user.vexfs.status` before the filtered queries: the index they met.
    pub index_status: String,
    /// Per selectivity, without, then with the payload index.
    pub stats: Vec<FilteredStats>,
    pub indexed: Vec<FilteredStats>,
}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Sets every id's payload in batches, then fsync, timed together.
fn set_payloads(file: &VectorFile, count: usize) -> Result<PayloadStats> {
    let ids: Vec<u64> = (0..count as u64).collect();
    // Built before the clock starts: an application has its payloads at hand.
    let texts: Vec<String> = ids.iter().map(|&id| payload_json(id)).collect();
    let payloads: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    let mut batch_ns = new_histogram();
    let started = Instant::now();
    for first in (0..count).step_by(PAYLOAD_BATCH) {
        check_interrupted()?;
        let end = (first + PAYLOAD_BATCH).min(count);
        let batch_started = Instant::now();
        file.set_payloads(&ids[first..end], &payloads[first..end], None, false)
            .with_context(|| format!("VEXFS_IOC_SET_PAYLOADS of ids {first}..{end}"))?;
        batch_ns.saturating_record(elapsed_ns(batch_started).max(1));
    }
    let fsync_started = Instant::now();
    file.sync().context("fsync after the payloads")?;
    let fsync_ms = fsync_started.elapsed().as_secs_f64() * 1e3;
    let seconds = started.elapsed().as_secs_f64();
    Ok(PayloadStats {
        payloads: count as u64,
        batch: PAYLOAD_BATCH,
        seconds,
        payloads_per_s: count as f64 / seconds,
        batch_lat_us: Percentiles::from_histogram(&batch_ns),
        fsync_ms,
    })
}

/// Every query of `workload` once through `search`, timed one by one; each
/// answer must hold only matching ids.
fn search_pass(
    name: &str,
    case: &FilterCase,
    workload: &FilterWorkload,
    mut search: impl FnMut(&[f32], &mut [u64]) -> Result<usize>,
) -> Result<FilteredStats> {
    let (k, queries) = (workload.k, &workload.queries);
    // Untimed: a system that prepares something per filter does it here.
    let mut scratch = vec![u64::MAX; k];
    search(queries.row(0), &mut scratch)?;
    let mut found = vec![u64::MAX; queries.count() * k];
    let mut latency_ns = new_histogram();
    let mut short_answers = 0;
    let started = Instant::now();
    for (q, row) in found.chunks_exact_mut(k).enumerate() {
        check_interrupted()?;
        let query_started = Instant::now();
        let written = search(queries.row(q), row)?;
        latency_ns.saturating_record(elapsed_ns(query_started).max(1));
        if written < case.truth.k {
            short_answers += 1;
        }
        row[written.min(k)..].fill(u64::MAX);
        let stray = row
            .iter()
            .find(|&&id| id != u64::MAX && case.matching.binary_search(&id).is_err());
        if let Some(id) = stray {
            bail!(
                "{name}: query {q} at selectivity {} returned id {id}, which {} does not match",
                case.selectivity,
                case.filter
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(FilteredStats {
        queries: queries.count() as u64,
        seconds,
        qps: queries.count() as f64 / seconds,
        lat_us: Percentiles::from_histogram(&latency_ns),
        recall_at_k: datasets::recall_at_k(&case.truth, &found, k),
        short_answers,
    })
}

/// Sets the payloads on the file (ids 0..count, all stored), then per
/// selectivity checks SCROLL's count and runs the filtered queries; then
/// once more with a payload index on the bucket key.
pub fn measure_vexfs(
    file: &VectorFile,
    count: usize,
    search_type: u32,
    workload: &FilterWorkload,
    progress: &mut dyn FnMut(&str),
) -> Result<VexfsFiltered> {
    progress(&format!(
        "search: VexFS: SET_PAYLOADS of {count} ids in batches of {PAYLOAD_BATCH}, then fsync"
    ));
    let payloads = set_payloads(file, count)?;
    let status = file.status().context("getxattr user.vexfs.status")?;
    let index_status = ["index", "indexed", "building"]
        .map(|key| format!("{key}={}", status.get(key).map_or("?", String::as_str)))
        .join(" ");
    for case in &workload.cases {
        let counted = file
            .count(Some(case.filter.as_bytes()))
            .context("VEXFS_IOC_SCROLL (count)")?;
        if counted as usize != case.matching.len() {
            bail!(
                "SCROLL counts {counted} ids matching {}, the benchmark {}",
                case.filter,
                case.matching.len()
            );
        }
    }
    let stats = vexfs_passes(file, search_type, workload, "", progress)?;
    file.set_xattr(XATTR_PAYLOAD_INDEX, PAYLOAD_INDEX_SPEC)
        .with_context(|| format!("setxattr {XATTR_PAYLOAD_INDEX}={PAYLOAD_INDEX_SPEC}"))?;
    let indexed = vexfs_passes(
        file,
        search_type,
        workload,
        " with a payload index",
        progress,
    )?;
    Ok(VexfsFiltered {
        payloads,
        index_status,
        stats,
        indexed,
    })
}

/// One pass of FILTERED_SEARCH ioctls per selectivity.
fn vexfs_passes(
    file: &VectorFile,
    search_type: u32,
    workload: &FilterWorkload,
    label: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<FilteredStats>> {
    let dims = u32::try_from(workload.queries.dims()).context("dimensions")?;
    let k = workload.k;
    let mut distances = vec![0f32; k];
    let mut stats = Vec::with_capacity(workload.cases.len());
    for case in &workload.cases {
        progress(&format!(
            "search: VexFS{label}: {} filtered queries at selectivity {} ({} matching)",
            workload.queries.count(),
            case.selectivity,
            case.matching.len()
        ));
        let filter = case.filter.as_bytes();
        stats.push(search_pass("VexFS", case, workload, |query, ids| {
            file.filtered_search(
                query,
                dims,
                k,
                search_type,
                Some(filter),
                false,
                &mut distances,
                ids,
            )
            .context("VEXFS_IOC_FILTERED_SEARCH")
        })?);
    }
    Ok(stats)
}

/// The filtered queries on a faiss index in this process: per selectivity,
/// a bitmap selector over the matching ids, then every query once.
pub fn measure_faiss(
    faiss: &mut FaissSystem,
    name: &str,
    count: usize,
    workload: &FilterWorkload,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<FilteredStats>> {
    let mut stats = Vec::with_capacity(workload.cases.len());
    let mut buffers = faiss.result_buffers(workload.k);
    for case in &workload.cases {
        progress(&format!(
            "search: {name}: {} filtered queries at selectivity {}",
            workload.queries.count(),
            case.selectivity
        ));
        let selection = faiss.select(&case.matching, count)?;
        stats.push(search_pass(name, case, workload, |query, ids| {
            faiss.search_selected(query, &selection, &mut buffers, ids)
        })?);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(selectivities: &[f64], queries: usize) -> FilterOptions {
        FilterOptions {
            selectivities: selectivities.to_vec(),
            queries,
        }
    }

    #[test]
    fn buckets_spread_a_range_over_the_whole_file() {
        let count = 100_000u64;
        let matching: Vec<u64> = (0..count).filter(|&id| bucket(id) < 1_000).collect();
        // 1 % of the buckets: about 1 % of the ids, ±15 %.
        assert!(
            (850..=1_150).contains(&matching.len()),
            "{}",
            matching.len()
        );
        // Each tenth of the ids holds about a tenth of the matches.
        for tenth in 0..10 {
            let ids = tenth * count / 10..(tenth + 1) * count / 10;
            let here = matching.iter().filter(|id| ids.contains(id)).count();
            assert!((60..=140).contains(&here), "tenth {tenth}: {here}");
        }
        // Not a run of neighbours: few consecutive ids both match.
        let adjacent = matching.windows(2).filter(|w| w[1] == w[0] + 1).count();
        assert!(adjacent < 30, "{adjacent}");
        assert!((0..count).all(|id| bucket(id) < BUCKETS));
        // The definition is part of the published tables: pin it.
        assert_eq!(
            [bucket(0), bucket(1), bucket(7), bucket(99_999)],
            [7_535, 22_465, 74_487, 76_454]
        );
    }

    #[test]
    fn filter_and_payload_text_are_the_qdrant_json() {
        assert_eq!(bucket_limit(0.5), 50_000);
        assert_eq!(bucket_limit(0.001), 100);
        assert_eq!(bucket_limit(1.0), BUCKETS);
        assert_eq!(
            filter_json(100),
            r#"{"must":[{"key":"bucket","range":{"lt":100}}]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&filter_json(100)).unwrap();
        assert_eq!(parsed["must"][0]["range"]["lt"], 100);
        let payload: serde_json::Value = serde_json::from_str(&payload_json(42)).unwrap();
        assert_eq!(payload, serde_json::json!({ "bucket": bucket(42) }));
    }

    #[test]
    fn options_are_checked_against_their_limits() {
        assert!(options(&[0.5, 0.1, 0.01, 0.001], 200).validate().is_ok());
        assert!(options(&[1.0], 1).validate().is_ok());
        let refused = [
            (options(&[], 200), "1 to 16"),
            (options(&[0.0], 200), "(0, 1]"),
            (options(&[1.5], 200), "(0, 1]"),
            (options(&[-0.1], 200), "(0, 1]"),
            (options(&[f64::NAN], 200), "(0, 1]"),
            (options(&[0.000001], 200), "no bucket"),
            (options(&[0.1, 0.100001], 200), "same filter"),
            (options(&[0.5; 17], 200), "1 to 16"),
            (options(&[0.5], 0), "--filter-queries"),
            (options(&[0.5], FILTER_QUERIES_MAX + 1), "--filter-queries"),
        ];
        for (asked, named) in refused {
            let error = asked.validate().unwrap_err().to_string();
            assert!(error.contains(named), "{asked:?}: {error}");
        }
        assert!(check_index("HNSW32").is_ok());
        assert!(check_index("IVF256,Flat").is_ok());
        assert!(check_index("Flat").is_ok());
        assert!(check_index("PQ16").is_err());
    }

    #[test]
    fn the_truth_is_the_nearest_among_the_matching_ids() {
        let base = datasets::original(2_000, 16, 3).unwrap();
        let queries = datasets::original_queries(5, 16, 3).unwrap();
        let asked = options(&[0.5, 0.01], 3);
        let workload = prepare(&asked, &base, &queries, 10, Metric::Cosine, &mut |_| {}).unwrap();
        assert_eq!(workload.queries.count(), 3);
        for case in &workload.cases {
            assert!(case.matching.windows(2).all(|w| w[0] < w[1]));
            assert!(case
                .matching
                .iter()
                .all(|&id| bucket(id) < case.bucket_limit));
            let all = datasets::ground_truth(&base, &workload.queries, 2_000, Metric::Cosine);
            for q in 0..3 {
                // The first matching ids in the full ranking are the filtered truth.
                let expected: Vec<u64> = all
                    .of(q)
                    .iter()
                    .copied()
                    .filter(|id| case.matching.binary_search(id).is_ok())
                    .take(case.truth.k)
                    .collect();
                assert_eq!(case.truth.of(q), &expected[..], "{}", case.selectivity);
            }
        }
        let none = options(&[0.00001], 3);
        let error = prepare(&none, &base, &queries, 10, Metric::Cosine, &mut |_| {});
        assert!(error.is_err_and(|e| e.to_string().contains("matches none")));
    }
}
