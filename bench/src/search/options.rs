//! `vexfs-bench search` on the command line: its options, how they become a
//! [`Config`], and what the command prints and writes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use super::{
    render_table, run, Config, DataSource, DatasetName, FaissCpuOptions, FilterOptions, HttpTarget,
    SearchRun, SearchStats, FILTER_QUERIES_DEFAULT,
};
use crate::datasets::Metric;
use crate::plot::{line_chart, Axis, LineChart, Series};
use crate::vectors::Place;

/// Vectors stored and queries run when neither a preset nor a file says otherwise.
const COUNT_DEFAULT: usize = 10_000;
const DIMS_DEFAULT: usize = 1536;
const QUERIES_DEFAULT: usize = 1_000;
/// Files --out writes in its directory.
pub const REPORT_FILE: &str = "search.json";
pub const PLOT_STEM: &str = "search-recall-qps";

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// A directory on a mounted VexFS; without it, an image is formatted and mounted under --dir.
    #[arg(long)]
    mount: Option<PathBuf>,
    /// Where the scratch image and mountpoint go when --mount is not given.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Size of the scratch image (K, M, G, T suffixes); default: room for the vectors and index.
    #[arg(long, value_parser = crate::vectors::parse_bytes)]
    size: Option<u64>,
    /// Generated data: the original VexFS benchmark's at one of its three
    /// sizes, or a generator at --count × --dims.
    #[arg(long, value_enum, default_value = "original-large")]
    dataset: DatasetName,
    /// Vectors to store (--dataset original or structured; with --vectors: keep the first N).
    #[arg(long)]
    count: Option<usize>,
    /// Dimensions (--dataset original or structured) [default: 1536].
    #[arg(long)]
    dims: Option<usize>,
    /// Clusters of the structured data set.
    #[arg(long, default_value_t = 300)]
    clusters: usize,
    /// Queries to run [default: 1000] (with --queries: keep the first N).
    #[arg(long)]
    query_count: Option<usize>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, value_enum, default_value = "cosine")]
    metric: Metric,
    /// Vectors per BATCH_INSERT ioctl (and per faiss add with --faiss-batched).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Add to the in-process faiss index in batches of --batch too (default:
    /// one add of everything, as VexFS builds its index at the first search).
    #[arg(long)]
    faiss_batched: bool,
    /// faiss index-factory string (user.vexfs.index): Flat, HNSW32, IVF256,Flat, …;
    /// default: the daemon's (Flat below 16,384 vectors, else HNSW32).
    #[arg(long)]
    index: Option<String>,
    /// Search parameters of the one setting measured without a sweep
    /// (user.vexfs.search), e.g. efSearch=128 or nprobe=16.
    #[arg(long, conflicts_with_all = ["ef_search", "nprobe"])]
    search_params: Option<String>,
    /// HNSW efSearch values to measure, one setting each, e.g. 16,32,64,128.
    #[arg(long, alias = "ef-sweep", value_delimiter = ',')]
    ef_search: Vec<u32>,
    /// IVF nprobe values to measure, one setting each, e.g. 1,4,16,64.
    #[arg(long, value_delimiter = ',')]
    nprobe: Vec<u32>,
    /// Stored vectors from a file: float32 .npy (2-D, C order) or .fvecs.
    #[arg(long, requires = "queries")]
    vectors: Option<PathBuf>,
    /// Queries from a file, same formats (needs --vectors).
    #[arg(long, requires = "vectors")]
    queries: Option<PathBuf>,
    /// Exact neighbours of the queries under --metric: .ivecs or an int32/int64
    /// .npy, best first (default: computed here by brute force).
    #[arg(long, requires = "vectors")]
    ground_truth: Option<PathBuf>,
    /// Seed of the generated data sets.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Write search.json and the recall-vs-QPS plot (.png, .svg) into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Leave the vector file (and the scratch image, unmounted) behind.
    #[arg(long)]
    keep: bool,
    /// After the unfiltered settings, filtered search at these fractions of
    /// the vectors, e.g. 0.5,0.1,0.01,0.001 (each in (0, 1]; at most 16):
    /// every id gets a payload {"bucket": B(id)}, B a hash into 0..100000,
    /// and the filter is bucket < fraction × 100000.
    #[arg(long, value_delimiter = ',')]
    filter_selectivity: Vec<f64>,
    /// Queries per filtered fraction: the first N of the run's (at most 10000).
    #[arg(long, default_value_t = FILTER_QUERIES_DEFAULT, requires = "filter_selectivity")]
    filter_queries: usize,
    /// Also through HTTP: start vexfs-serve (beside this binary) over the
    /// run's mount on 127.0.0.1 with a random API key, upsert the same
    /// vectors into a collection of the same index, run the same queries
    /// through POST …/points/query, and stop it at the end.
    #[arg(long, conflicts_with = "http_url")]
    http: bool,
    /// Like --http, with a vexfs-serve already running at this URL (http://HOST:PORT).
    #[arg(long)]
    http_url: Option<String>,
    /// The API key of the server at --http-url.
    #[arg(long, requires = "http_url")]
    http_api_key: Option<String>,
    /// Queries per request of a batched pass run at each setting before the
    /// one-at-a-time pass (0: none; at most 1024, VEXFS_SEARCH_QUERIES_MAX):
    /// VexFS one FILTERED_SEARCH ioctl without a filter per request, faiss
    /// one search call, HTTP one POST …/points/query/batch (vexfs-serve takes
    /// at most 100). Reported as q/s, recall and latency per request.
    #[arg(long, default_value_t = 100)]
    search_batch: usize,
    /// Also faiss-cpu from PyPI in Python (in-process, one OpenMP thread) on
    /// the same vectors, queries, index and passes, run by
    /// bench/faiss-cpu/peer.py with target/faiss-cpu-venv's Python (made by
    /// scripts/faiss-cpu-setup; VEXFS_FAISS_CPU_PYTHON names another); prints
    /// its rows and VexFS ÷ faiss-cpu q/s per setting.
    #[arg(long)]
    compare_faiss_cpu: bool,
    /// With --compare-faiss-cpu: the SIMD level faiss-cpu runs at, passed as
    /// FAISS_SIMD_LEVEL (NONE, AVX2, AVX512, AVX512_VPOPCNT, AVX512_SPR), e.g.
    /// AVX2 on an AVX-512 host to measure it as a host without AVX-512 runs
    /// it; default: the best this CPU has.
    #[arg(long, requires = "compare_faiss_cpu")]
    faiss_cpu_simd_level: Option<String>,
    /// Pin this process (the client and faiss in-process), its faiss-cpu
    /// peer and vexfs-serve, and the daemon of the image it mounts, to
    /// this CPU. Client and daemon on one CPU hand each request over
    /// without a cross-CPU wakeup, the cheapest placement a mount gets; the
    /// scheduler otherwise picks one run by run. Not with --mount (pin that
    /// daemon with taskset -a -p -c N PID).
    #[arg(long, conflicts_with = "mount")]
    pin_cpu: Option<usize>,
}

impl Args {
    fn data(&self) -> Result<DataSource> {
        if let (Some(vectors), Some(queries)) = (&self.vectors, &self.queries) {
            return Ok(DataSource::Files {
                vectors: vectors.clone(),
                queries: queries.clone(),
                count: self.count,
                queries_count: self.query_count,
                ground_truth: self.ground_truth.clone(),
            });
        }
        let queries = self.query_count.unwrap_or(QUERIES_DEFAULT);
        let (count, dims) = match self.dataset.preset() {
            Some(size) => {
                if self.count.is_some() || self.dims.is_some() {
                    let name = self
                        .dataset
                        .to_possible_value()
                        .map(|v| v.get_name().to_string())
                        .unwrap_or_default();
                    bail!(
                        "--dataset {name} is {} × {}: for another size use --dataset original --count N --dims D",
                        size.0,
                        size.1
                    );
                }
                size
            }
            None => (
                self.count.unwrap_or(COUNT_DEFAULT),
                self.dims.unwrap_or(DIMS_DEFAULT),
            ),
        };
        Ok(match self.dataset {
            DatasetName::Structured => DataSource::Structured {
                count,
                dims,
                clusters: self.clusters,
                queries,
                seed: self.seed,
            },
            _ => DataSource::Original {
                count,
                dims,
                queries,
                seed: self.seed,
            },
        })
    }

    fn config(&self) -> Result<Config> {
        Ok(Config {
            data: self.data()?,
            k: self.k,
            metric: self.metric,
            batch: self.batch,
            faiss_batched: self.faiss_batched,
            index: self.index.clone(),
            search_params: self.search_params.clone(),
            ef_search: self.ef_search.clone(),
            nprobe: self.nprobe.clone(),
            place: {
                let place = Place::from_args(self.mount.clone(), self.dir.clone(), self.size)?;
                match self.pin_cpu {
                    Some(cpu) => place.with_daemon_on_cpu(cpu)?,
                    None => place,
                }
            },
            pin_cpu: self.pin_cpu,
            keep: self.keep,
            filter: (!self.filter_selectivity.is_empty()).then(|| FilterOptions {
                selectivities: self.filter_selectivity.clone(),
                queries: self.filter_queries,
            }),
            http: match (&self.http_url, self.http) {
                (Some(url), _) => Some(HttpTarget::Url {
                    url: url.clone(),
                    api_key: self.http_api_key.clone(),
                }),
                (None, true) => Some(HttpTarget::Start),
                (None, false) => None,
            },
            search_batch: self.search_batch,
            faiss_cpu: self.compare_faiss_cpu.then(|| FaissCpuOptions {
                simd_level: self.faiss_cpu_simd_level.clone(),
            }),
        })
    }
}

/// Runs the benchmark, prints the table (or JSON), writes --out.
pub fn command(args: Args) -> Result<()> {
    let config = args.config()?;
    config.validate()?;
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }
    let quiet = args.json;
    let mut progress = |message: &str| {
        if !quiet || std::io::stderr().is_terminal() {
            eprintln!("{message}");
        }
    };
    let mut report = run(&config, &mut progress)?;
    if let Some(out) = &args.out {
        report.plot = plot(&report, &out.join(PLOT_STEM))?;
        let path = out.join(REPORT_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render_table(&report));
    }
    Ok(())
}

/// Recall@k against QPS one query at a time, one point per setting, for each system.
fn plot(report: &SearchRun, stem: &Path) -> Result<Vec<PathBuf>> {
    let http = report.http.as_ref().map(|h| &h.result);
    let points = |settings: &[SearchStats]| -> Vec<(f64, f64)> {
        settings.iter().map(|s| (s.recall_at_k, s.qps)).collect()
    };
    let mut series: Vec<Series> = [Some(&report.vexfs), http, Some(&report.faiss)]
        .into_iter()
        .flatten()
        .map(|system| Series {
            name: system.name.to_string(),
            points: points(&system.settings),
        })
        .collect();
    if let Some(faiss_cpu) = &report.faiss_cpu {
        series.push(Series {
            name: faiss_cpu.name.clone(),
            points: points(&faiss_cpu.settings),
        });
    }
    let title = format!(
        "{} × {}, index {}, k = {}: recall against queries per second",
        report.count, report.dims, report.index, report.k
    );
    let x_label = format!("recall@{}", report.k);
    line_chart(
        stem,
        &LineChart {
            title: &title,
            x_label: &x_label,
            y_label: "queries per second (one client thread)",
            x_axis: Axis::Linear,
            y_axis: Axis::Log,
            series: &series,
        },
    )
    .context("drawing the recall-vs-QPS plot")
}
