//! `vexfs-bench search --http`: the same vectors and queries through
//! vexfs-serve's Qdrant-compatible REST API, in the same run and on the
//! same mount as the ioctl path, so the difference of the two is the HTTP
//! hop (client encode, loopback TCP, the server's parse and its thread
//! hand-off, the answer's JSON). Must not change how the ioctl path or
//! faiss are measured.

mod body;
mod client;
mod serve;

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::measure::{measure, SearchStats, SystemResult, Workload};
use super::{default_search_params, SearchRun};
use crate::datasets::Metric;
use crate::latency::Percentiles;
pub use client::parse_base_url;
use client::{HttpSystem, QdrantClient};
pub use serve::check_serve_binary;
use serve::Served;

/// Which server `--http` talks to.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpTarget {
    /// `vexfs-serve` beside this binary, started over the run's mount.
    Start,
    /// A server already running (`--http-url`), over whatever it serves.
    Url {
        url: String,
        api_key: Option<String>,
    },
}

impl HttpTarget {
    pub fn validate(&self) -> Result<()> {
        match self {
            HttpTarget::Start => Ok(()),
            HttpTarget::Url { url, .. } => parse_base_url(url).map(drop),
        }
    }
}

/// HNSW links per node of an index the server can create (0: Flat), or
/// why `--http` cannot measure it: a collection is `HNSW<m>` or `Flat`.
pub fn hnsw_m(index: &str) -> Result<u32> {
    if index == "Flat" {
        return Ok(0);
    }
    let m = index
        .strip_prefix("HNSW")
        .map(|rest| rest.strip_suffix(",Flat").unwrap_or(rest))
        .and_then(|m| m.parse::<u32>().ok())
        .filter(|&m| m > 0);
    match m {
        Some(m) => Ok(m),
        None => bail!(
            "--http: vexfs-serve creates HNSW<m> or Flat collections (hnsw_config.m), not index {index:?}; \
             run --http with --index HNSW32 (or another m) or --index Flat"
        ),
    }
}

/// `GET /healthz` round trips timed after the queries: as many as queries, at most this.
pub const ROUND_TRIPS_MAX: usize = 10_000;

/// Why the HTTP queries run at the server's search parameters.
const EF_SEARCH_NOTE: &str = "vexfs-serve's API cannot set efSearch: PUT /collections takes no ef, \
     PATCH is refused, and a query's params.hnsw_ef above the file's efSearch is answered by an exact scan \
     (at or below it, it changes nothing); the HTTP queries run at the file's default";

/// Each percentile of HTTP minus the ioctl path's, at the same search parameters.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HopUs {
    pub search_params: String,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
}

impl HopUs {
    /// Against the ioctl setting with the same parameters; None when the run measured none.
    pub fn between(http: &SearchStats, ioctl: &[SearchStats]) -> Option<Self> {
        let ioctl = ioctl
            .iter()
            .find(|s| s.search_params == http.search_params)?;
        let (h, i) = (&http.lat_us, &ioctl.lat_us);
        Some(HopUs {
            search_params: http.search_params.clone(),
            p50: h.p50 - i.p50,
            p90: h.p90 - i.p90,
            p99: h.p99 - i.p99,
            p999: h.p999 - i.p999,
        })
    }
}

/// The HTTP half of a run, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct HttpReport {
    /// Started by the bench (binary, pid, URL), or the URL given.
    pub server: String,
    /// What `GET /` answered: title and Qdrant API version.
    pub server_version: String,
    pub collection: String,
    /// Search parameters of the HTTP queries (the server's default).
    pub search_params: String,
    pub search_params_note: &'static str,
    pub upsert: &'static str,
    pub query: &'static str,
    pub result: SystemResult,
    /// HTTP − ioctl per percentile at the same parameters ("the HTTP hop" is p50).
    pub hop_us: Option<HopUs>,
    /// `GET /healthz` on the same connection: a round trip in which the
    /// server touches no file (the floor of the hop).
    pub round_trips: u64,
    pub round_trip_lat_us: Percentiles,
}

impl HttpReport {
    /// The hop against the ioctl path's result of the same run.
    pub fn compare(&mut self, ioctl: &SystemResult) {
        self.hop_us = self
            .result
            .settings
            .first()
            .and_then(|http| HopUs::between(http, &ioctl.settings));
    }
}

/// Creates a collection like the run's file, upserts the run's vectors,
/// waits for its index and runs the run's queries through `target`;
/// deletes the collection and stops a server it started, also on error.
pub(super) fn measure_http(
    target: &HttpTarget,
    mount_root: &Path,
    workload: &Workload,
    index: &str,
    metric: Metric,
    batch: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<HttpReport> {
    let hnsw_m = hnsw_m(index)?;
    // Declared before the system: dropped after it, so the collection is
    // deleted while the server still runs.
    let (served, client, server) = match target {
        HttpTarget::Start => {
            let binary = check_serve_binary()?;
            progress(&format!(
                "search: HTTP: starting {} over {}",
                binary.display(),
                mount_root.display()
            ));
            let served = Served::start(&binary, mount_root)?;
            let client = QdrantClient::new(&served.url, Some(&served.api_key))?;
            let server = served.describe();
            (Some(served), client, server)
        }
        HttpTarget::Url { url, api_key } => (
            None,
            QdrantClient::new(url, api_key.as_deref())?,
            format!(
                "{} (a running server, given by --http-url)",
                parse_base_url(url)?
            ),
        ),
    };
    let server_version = client
        .check_server()
        .with_context(|| format!("asking {server} who it is"))?;
    let search_params = default_search_params(index).to_string();
    let collection = format!("vexfs-bench-search-http.{}", std::process::id());
    let mut system = HttpSystem::create(
        client,
        &collection,
        workload.base.dims(),
        metric,
        hnsw_m,
        &search_params,
    )?;
    let settings = [search_params.clone()];
    let http_workload = Workload {
        settings: &settings,
        ..*workload
    };
    let result = measure(
        &mut system,
        format!("collection {collection} on {server}"),
        &http_workload,
        batch,
        progress,
    )?;
    let round_trips = workload.queries.count().min(ROUND_TRIPS_MAX);
    progress(&format!(
        "search: HTTP: {round_trips} GET /healthz round trips (no filesystem work)"
    ));
    let round_trip_lat_us = system.round_trips(round_trips)?;
    progress(&format!("search: HTTP: deleting collection {collection}"));
    system.delete()?;
    drop(system);
    drop(served);
    Ok(HttpReport {
        server,
        server_version,
        collection,
        search_params,
        search_params_note: if hnsw_m == 0 {
            "Flat: exact search, no parameters"
        } else {
            EF_SEARCH_NOTE
        },
        upsert: "PUT /collections/{name}/points {\"batch\":{\"ids\",\"vectors\"}} per batch (answered once the filesystem made the change), then one PUT ?wait=true of no points (fsync), timed together",
        query: "POST /collections/{name}/points/query {\"query\":[…],\"limit\":k}, one at a time on one keep-alive connection; time = encode + round trip + decode; batched: POST …/points/query/batch {\"searches\":[…]} of --search-batch queries (at most 100)",
        result,
        hop_us: None,
        round_trips: round_trips as u64,
        round_trip_lat_us,
    })
}

fn cells(stats: &SearchStats) -> String {
    let lat = &stats.lat_us;
    format!(
        "{:>10.1} {:>9.4} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>9.1}",
        stats.qps, stats.recall_at_k, lat.p50, lat.p90, lat.p99, lat.p999, lat.max
    )
}

const LABEL_WIDTH: usize = 24;

/// The three paths at the HTTP queries' parameters, and the hop.
pub fn render_http(run: &SearchRun, http: &HttpReport) -> String {
    let mut lines = Vec::new();
    let params = if http.search_params.is_empty() {
        "(default)"
    } else {
        &http.search_params
    };
    lines.push(format!(
        "through HTTP at {params}: {}, {}",
        http.server, http.server_version
    ));
    lines.push(format!(
        "{:<LABEL_WIDTH$}|{:>10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "search",
        "QPS",
        format!("recall@{}", run.k),
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs"
    ));
    let same = |system: &SystemResult| -> Option<SearchStats> {
        system
            .settings
            .iter()
            .find(|s| s.search_params == http.search_params)
            .cloned()
    };
    for (name, stats) in [
        ("VexFS ioctl (FUSE)", same(&run.vexfs)),
        (http.result.name, http.result.settings.first().cloned()),
        ("faiss in-process", same(&run.faiss)),
    ] {
        match stats {
            Some(stats) => lines.push(format!("{name:<LABEL_WIDTH$}|{}", cells(&stats))),
            None => lines.push(format!(
                "{name:<LABEL_WIDTH$}| not measured at {params} in this run"
            )),
        }
    }
    match &http.hop_us {
        Some(hop) => lines.push(format!(
            "  the HTTP hop (p50 HTTP − p50 ioctl): {:.1} µs per query (p90 {:+.1}, p99 {:+.1}, p99.9 {:+.1} µs)",
            hop.p50, hop.p90, hop.p99, hop.p999
        )),
        None => lines.push(format!(
            "  the HTTP hop: not computed, the ioctl path measured no setting at {params} (add it to --ef-search)"
        )),
    }
    let floor = &http.round_trip_lat_us;
    lines.push(format!(
        "  its floor, an HTTP round trip in which the server touches no file (GET /healthz, same connection, {} times): p50 {:.1}, p90 {:.1}, p99 {:.1}, p99.9 {:.1} µs",
        http.round_trips, floor.p50, floor.p90, floor.p99, floor.p999
    ));
    lines.push(format!("  HTTP parameters: {}", http.search_params_note));
    lines.push(format!("  HTTP insert: {}", http.upsert));
    lines.push(format!("  HTTP query: {}", http.query));
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Percentiles;

    #[test]
    fn http_measures_hnsw_and_flat_only() {
        assert_eq!(hnsw_m("HNSW32").unwrap(), 32);
        assert_eq!(hnsw_m("HNSW16,Flat").unwrap(), 16);
        assert_eq!(hnsw_m("Flat").unwrap(), 0);
        for index in [
            "IVF256,Flat",
            "HNSW",
            "HNSW0",
            "HNSW32,PQ8",
            "PQ8",
            "hnsw32",
        ] {
            let e = hnsw_m(index).unwrap_err().to_string();
            assert!(e.contains("--http") && e.contains(index), "{index}: {e}");
        }
    }

    fn stats(params: &str, p50: f64) -> SearchStats {
        SearchStats {
            search_params: params.into(),
            queries: 10,
            seconds: 1.0,
            qps: 10.0,
            lat_us: Percentiles {
                p50,
                p90: p50 * 2.0,
                p99: p50 * 3.0,
                p999: p50 * 4.0,
                max: p50 * 5.0,
            },
            k: 10,
            recall_at_k: 1.0,
            short_answers: 0,
            daemon_service_us_mean: None,
        }
    }

    #[test]
    fn the_hop_is_taken_at_the_same_parameters_only() {
        let ioctl = [stats("efSearch=16", 50.0), stats("efSearch=64", 100.0)];
        let hop = HopUs::between(&stats("efSearch=64", 140.0), &ioctl).unwrap();
        assert_eq!(
            hop,
            HopUs {
                search_params: "efSearch=64".into(),
                p50: 40.0,
                p90: 80.0,
                p99: 120.0,
                p999: 160.0
            }
        );
        assert_eq!(HopUs::between(&stats("efSearch=128", 1.0), &ioctl), None);
    }

    fn system(name: &'static str, settings: Vec<SearchStats>) -> SystemResult {
        SystemResult::of_passes(name, 1000, settings, Vec::new())
    }

    #[test]
    fn the_http_rows_sit_beside_the_ioctl_and_faiss_rows_with_the_hop() {
        let mut http = HttpReport {
            server: "vexfs-serve started by the bench (pid 7) on http://127.0.0.1:9".into(),
            server_version: "vexfs-serve (qdrant-compatible) 1.19.0".into(),
            collection: "c".into(),
            search_params: "efSearch=64".into(),
            search_params_note: "the file's default",
            upsert: "PUT",
            query: "POST",
            result: system("HTTP (vexfs-serve)", vec![stats("efSearch=64", 4000.0)]),
            hop_us: None,
            round_trips: 100,
            round_trip_lat_us: Percentiles {
                p50: 150.0,
                ..Default::default()
            },
        };
        let both = vec![stats("efSearch=32", 1000.0), stats("efSearch=64", 2000.0)];
        let vexfs = system("VexFS (through FUSE)", both.clone());
        http.compare(&vexfs);
        let run = SearchRun {
            benchmark: "search",
            dataset: "structured".into(),
            count: 1000,
            dims: 64,
            queries: 10,
            k: 10,
            metric: Metric::Cosine,
            batch: 100,
            search_batch: 0,
            index: "HNSW32".into(),
            host_cpu: crate::search::HostCpu::parse("model name\t: AMD EPYC\nflags\t: avx2\n"),
            pinned_cpu: None,
            ground_truth: "computed here by brute force".into(),
            settings: vec!["efSearch=32".into(), "efSearch=64".into()],
            vexfs,
            faiss: system("faiss in-process", both),
            filtered: None,
            http: Some(http),
            faiss_cpu: None,
            original_published: crate::search::ORIGINAL_PUBLISHED,
            peers_measured_separately: crate::search::PEERS,
            plot: Vec::new(),
            kept: None,
        };
        let table = crate::search::render_table(&run);
        for needle in [
            "through HTTP at efSearch=64",
            "the HTTP hop (p50 HTTP − p50 ioctl): 2000.0 µs",
            "GET /healthz, same connection, 100 times): p50 150.0",
        ] {
            assert!(table.contains(needle), "{needle} missing:\n{table}");
        }
        let rows: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with("HTTP (vexfs-serve)"))
            .collect();
        assert_eq!(rows.len(), 2, "an insert row and a search row:\n{table}");
        assert!(rows[1].contains("4000.0"), "{}", rows[1]);
        // Beside it, the other two paths at the same setting, not the first one.
        for name in ["VexFS ioctl (FUSE)", "faiss in-process"] {
            let row = table.lines().rfind(|l| l.starts_with(name)).unwrap();
            assert!(row.contains("2000.0") && !row.contains("1000.0 "), "{row}");
        }
    }

    #[test]
    fn urls_are_checked_before_anything_runs() {
        assert!(HttpTarget::Start.validate().is_ok());
        let url = |u: &str| HttpTarget::Url {
            url: u.into(),
            api_key: None,
        };
        assert!(url("http://127.0.0.1:6333").validate().is_ok());
        assert!(url("ftp://x").validate().is_err());
    }
}
