//! `vexfs-bench search`: recall@k and QPS/latency of k-NN search across
//! index settings, through a VexFS mount (ioctls through FUSE) and with the
//! same faiss index in this process, on the same vectors, one client thread
//! each, in requests of several queries and one query at a time: the
//! difference is what the filesystem adds. faiss-cpu from PyPI runs beside
//! on request; peers measured elsewhere are printed beside, labelled so.

mod data;
mod faiss_cpu;
mod filtered;
mod host;
mod http;
mod measure;
mod options;
mod published;
mod report;
mod service;
mod systems;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::datasets::{Metric, Vectors};
use crate::fs::catch_interrupts;
use crate::vectors::{on_vexfs, remove_file, Place, VectorFile, XATTR_VALUE_BYTES_MAX};
pub use data::{Data, DataSource, DatasetName};
use faiss_cpu::{qps_ratios, Peer};
pub use faiss_cpu::{FaissCpuOptions, FaissCpuReport, QpsRatio, SIMD_LEVELS};
pub use filtered::{
    FilterOptions, FilteredReport, FilteredRow, FilteredStats, PayloadStats,
    FILTER_QUERIES_DEFAULT, FILTER_QUERIES_MAX, SELECTIVITIES_MAX,
};
use filtered::{FilterWorkload, VexfsFiltered};
pub use host::HostCpu;
pub use http::{HopUs, HttpReport, HttpTarget};
use measure::{measure, Workload};
pub use measure::{BatchedStats, InsertStats, SearchStats, SystemResult};
pub use options::{command, Args};
pub use published::{PeerFigure, PublishedFigure, ORIGINAL_PUBLISHED, PEERS};
pub use report::render_table;
pub use systems::{
    parse_search_params, search_type, single_threaded_faiss, FaissSystem, VectorSystem,
    VexfsSystem, SEARCH_BATCH_MAX,
};

/// Queries one run may ask.
pub const QUERIES_MAX: usize = 1_000_000;
/// Vectors one run may store (the ioctl interface's per-file count is u32).
pub const COUNT_MAX: usize = u32::MAX as usize;
/// Index settings one sweep may measure.
pub const SWEEP_POINTS_MAX: usize = 32;
/// Below this many vectors the daemon's default index is exact (docs/VECTORS.md).
pub const DEFAULT_INDEX_FLAT_BELOW: usize = 16_384;
/// Image room per stored vector beyond its floats: id, index graph, slack.
const IMAGE_BYTES_PER_VECTOR: u64 = 1024;
const IMAGE_BYTES_SLACK: u64 = 128 << 20;

#[derive(Clone, Debug)]
pub struct Config {
    pub data: DataSource,
    pub k: usize,
    pub metric: Metric,
    pub batch: usize,
    /// Feed faiss in batches of `batch` too, instead of one add of everything.
    pub faiss_batched: bool,
    /// faiss index-factory string; `None`: the daemon's default for the count.
    pub index: Option<String>,
    /// Search parameters of the one setting measured without a sweep;
    /// `None`: the daemon's default for the index.
    pub search_params: Option<String>,
    /// HNSW efSearch values to measure, one setting each.
    pub ef_search: Vec<u32>,
    /// IVF nprobe values to measure, one setting each.
    pub nprobe: Vec<u32>,
    pub place: Place,
    /// Leave the vector file (and a scratch image) behind.
    pub keep: bool,
    /// Filtered search after the unfiltered settings (`--filter-selectivity`).
    pub filter: Option<FilterOptions>,
    /// The same workload through vexfs-serve's REST API too (`--http`, `--http-url`).
    pub http: Option<HttpTarget>,
    /// Queries per request of the batched pass at each setting; 0: none.
    pub search_batch: usize,
    /// faiss-cpu from PyPI beside VexFS (`--compare-faiss-cpu`).
    pub faiss_cpu: Option<FaissCpuOptions>,
    /// This process and what it starts on this CPU (`--pin-cpu`; the
    /// daemon's pinning is in `place`).
    pub pin_cpu: Option<usize>,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        let k_max = vexfs_uapi::limits::SEARCH_K_MAX as usize;
        if !(1..=k_max).contains(&self.k) {
            bail!("--k {} is not in [1, {k_max}]", self.k);
        }
        let batch_max = vexfs_uapi::limits::BATCH_VECTORS_MAX as usize;
        if !(1..=batch_max).contains(&self.batch) {
            bail!("--batch {} is not in [1, {batch_max}]", self.batch);
        }
        if self.search_batch > SEARCH_BATCH_MAX {
            bail!(
                "--search-batch {} is more than {SEARCH_BATCH_MAX} (queries in one FILTERED_SEARCH)",
                self.search_batch
            );
        }
        if let Some(faiss_cpu) = &self.faiss_cpu {
            faiss_cpu.validate()?;
        }
        self.data.validate()?;
        for (flag, values) in [("--ef-search", &self.ef_search), ("--nprobe", &self.nprobe)] {
            if values.contains(&0) {
                bail!("{flag} values must be at least 1");
            }
            if values.len() > SWEEP_POINTS_MAX {
                bail!("{flag}: at most {SWEEP_POINTS_MAX} values");
            }
        }
        if !self.ef_search.is_empty() && !self.nprobe.is_empty() {
            bail!("--ef-search and --nprobe: sweep one parameter at a time");
        }
        if let Some(index) = &self.index {
            self.check_sweep_fits(index)?;
        }
        if let Some(filter) = &self.filter {
            filter.validate()?;
        }
        if let Some(http) = &self.http {
            http.validate()?;
        }
        if let Some(params) = &self.search_params {
            parse_search_params(params)?;
        }
        for (what, value) in [
            ("--index", &self.index),
            ("--search-params", &self.search_params),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.len() > XATTR_VALUE_BYTES_MAX)
            {
                bail!("{what} is longer than {XATTR_VALUE_BYTES_MAX} bytes");
            }
        }
        Ok(())
    }

    fn check_sweep_fits(&self, index: &str) -> Result<()> {
        if !self.ef_search.is_empty() && !index.contains("HNSW") {
            bail!("--ef-search needs an HNSW index (--index HNSW32), not {index:?}");
        }
        if !self.nprobe.is_empty() && !index.contains("IVF") {
            bail!("--nprobe needs an IVF index (--index IVF256,Flat), not {index:?}");
        }
        if self.filter.is_some() {
            filtered::check_index(index)?;
        }
        if self.http.is_some() {
            http::hnsw_m(index)?;
        }
        Ok(())
    }

    /// The search parameters of every setting measured, in order.
    fn settings(&self, index: &str) -> Vec<String> {
        if !self.ef_search.is_empty() {
            return self
                .ef_search
                .iter()
                .map(|ef| format!("efSearch={ef}"))
                .collect();
        }
        if !self.nprobe.is_empty() {
            return self.nprobe.iter().map(|n| format!("nprobe={n}")).collect();
        }
        vec![self
            .search_params
            .clone()
            .unwrap_or_else(|| default_search_params(index).to_string())]
    }
}

/// The daemon's default index for a file of `count` vectors (docs/VECTORS.md).
pub fn default_index(count: usize) -> &'static str {
    if count < DEFAULT_INDEX_FLAT_BELOW {
        "Flat"
    } else {
        "HNSW32"
    }
}

/// The daemon's default search parameters for `index` (faiss's own default
/// efSearch is 16; the daemon's is 64, so faiss in-process is told so).
pub fn default_search_params(index: &str) -> &'static str {
    if index.contains("HNSW") {
        "efSearch=64"
    } else {
        ""
    }
}

/// The whole run, as `--json` prints it and `--out` writes it.
#[derive(Clone, Debug, Serialize)]
pub struct SearchRun {
    pub benchmark: &'static str,
    pub dataset: String,
    pub count: usize,
    pub dims: usize,
    pub queries: usize,
    pub k: usize,
    pub metric: Metric,
    pub batch: usize,
    /// Queries per request of the batched passes (0: none ran).
    pub search_batch: usize,
    pub index: String,
    /// The CPU the numbers come from.
    pub host_cpu: HostCpu,
    /// Every process of the run pinned to this CPU (`--pin-cpu`).
    pub pinned_cpu: Option<usize>,
    /// Where the exact neighbours came from: computed here, or a file.
    pub ground_truth: String,
    /// Search parameters of each setting, in the order measured.
    pub settings: Vec<String>,
    pub vexfs: SystemResult,
    pub faiss: SystemResult,
    /// Filtered search per selectivity, with --filter-selectivity.
    pub filtered: Option<FilteredReport>,
    /// The same queries through vexfs-serve's REST API, with --http or --http-url.
    pub http: Option<HttpReport>,
    /// faiss-cpu from PyPI on the same workload, with --compare-faiss-cpu.
    pub faiss_cpu: Option<FaissCpuReport>,
    /// The original VexFS's published figures and its own competitor runs.
    pub original_published: &'static [PublishedFigure],
    /// Figures from BRIEF.md, measured separately on this machine: not this run.
    pub peers_measured_separately: &'static [PeerFigure],
    /// The recall-vs-QPS plot, with --out.
    pub plot: Vec<PathBuf>,
    pub kept: Option<PathBuf>,
}

/// Measures VexFS through the mount, then faiss in this process, then
/// faiss-cpu in Python when asked.
pub fn run(config: &Config, progress: &mut dyn FnMut(&str)) -> Result<SearchRun> {
    config.validate()?;
    config.place.check_prerequisites()?;
    if let Some(cpu) = config.pin_cpu {
        crate::pin::check_cpu(cpu)?;
        // Before anything starts: the peer and the server inherit it.
        crate::pin::pin_thread(0, cpu)?;
    }
    if config.http == Some(HttpTarget::Start) {
        http::check_serve_binary()?;
    }
    let host_cpu = HostCpu::read();
    // Before anything is generated or mounted: a missing venv is refused here.
    let faiss_cpu_peer = match &config.faiss_cpu {
        Some(options) => {
            progress("search: faiss-cpu: checking the Python peer");
            Some(Peer::find(options, &host_cpu)?)
        }
        None => None,
    };
    catch_interrupts();

    progress("search: generating or loading the data set");
    let data = config.data.load(config.k, config.metric, progress)?;
    let (base, queries) = (&data.base, &data.queries);
    if base.count() > COUNT_MAX || queries.count() > QUERIES_MAX {
        bail!(
            "{} vectors and {} queries: over the limits",
            base.count(),
            queries.count()
        );
    }
    let index = config
        .index
        .clone()
        .unwrap_or_else(|| default_index(base.count()).to_string());
    config.check_sweep_fits(&index)?;
    let settings = config.settings(&index);
    let workload = Workload {
        base,
        queries,
        truth: &data.truth,
        k: config.k,
        settings: &settings,
        search_batch: config.search_batch,
    };
    if faiss_cpu_peer.is_some() {
        faiss_cpu::check_result_ids(&workload)?;
    }
    // Before anything is mounted: a fraction that matches nothing is refused here.
    let filter_workload = match &config.filter {
        Some(options) => Some(filtered::prepare(
            options,
            base,
            queries,
            config.k,
            config.metric,
            progress,
        )?),
        None => None,
    };

    let (vexfs, vexfs_filtered, http, kept) = run_vexfs(
        config,
        &workload,
        filter_workload.as_ref(),
        &index,
        progress,
    )?;

    progress("search: faiss in this process, one OpenMP thread");
    single_threaded_faiss();
    let mut faiss = FaissSystem::new(base.dims(), config.metric, &index, &settings[0])?;
    // faiss's HNSW builds a worse graph when fed small batches than from one
    // add; VexFS builds its index from all stored vectors at the first search.
    let faiss_batch = if config.faiss_batched {
        config.batch
    } else {
        base.count()
    };
    let faiss_result = measure(
        &mut faiss,
        "this process".to_string(),
        &workload,
        faiss_batch,
        progress,
    )?;
    let filtered = match (filter_workload, vexfs_filtered) {
        (Some(filter_workload), Some(vexfs_filtered)) => Some(run_faiss_filtered(
            config,
            &mut faiss,
            base,
            &filter_workload,
            vexfs_filtered,
            settings.last().cloned().unwrap_or_default(),
            progress,
        )?),
        _ => None,
    };
    let faiss_cpu = match &faiss_cpu_peer {
        Some(peer) => {
            progress(&format!("search: {}", peer.name()));
            let mut report = peer.measure(&workload, config.metric, &index, progress)?;
            report.vexfs_over_faiss_cpu = qps_ratios(&vexfs, &report);
            Some(report)
        }
        None => None,
    };

    Ok(SearchRun {
        benchmark: "search",
        dataset: data.name.clone(),
        count: base.count(),
        dims: base.dims(),
        queries: queries.count(),
        k: config.k,
        metric: config.metric,
        batch: config.batch,
        search_batch: config.search_batch,
        index,
        host_cpu,
        pinned_cpu: config.pin_cpu,
        ground_truth: data.truth_source.clone(),
        settings,
        vexfs,
        faiss: faiss_result,
        filtered,
        http,
        faiss_cpu,
        original_published: ORIGINAL_PUBLISHED,
        peers_measured_separately: PEERS,
        plot: Vec::new(),
        kept,
    })
}

/// The filtered queries on faiss in this process: the run's index (at the
/// last setting measured) and a flat one, each with an ID selector; joined
/// with VexFS's half into the report.
fn run_faiss_filtered(
    config: &Config,
    faiss: &mut FaissSystem,
    base: &Vectors,
    workload: &FilterWorkload,
    vexfs: VexfsFiltered,
    search_params: String,
    progress: &mut dyn FnMut(&str),
) -> Result<FilteredReport> {
    let count = base.count();
    let selected = filtered::measure_faiss(faiss, "faiss in-process", count, workload, progress)?;
    progress("search: faiss exact (Flat) in this process, for the filtered queries");
    let mut flat = FaissSystem::new(base.dims(), config.metric, "Flat", "")?;
    let ids: Vec<u64> = (0..count as u64).collect();
    flat.insert(base.as_slice(), &ids)?;
    let exact = filtered::measure_faiss(&mut flat, "faiss exact", count, workload, progress)?;
    let rows = workload
        .cases
        .iter()
        .zip(vexfs.stats.into_iter().zip(vexfs.indexed))
        .zip(selected.into_iter().zip(exact))
        .map(
            |((case, (vexfs, vexfs_payload_index)), (faiss, faiss_exact))| FilteredRow {
                selectivity: case.selectivity,
                bucket_limit: case.bucket_limit,
                filter: case.filter.clone(),
                matching: case.matching.len(),
                vexfs,
                vexfs_payload_index,
                faiss,
                faiss_exact,
            },
        )
        .collect();
    Ok(FilteredReport {
        queries: workload.queries.count(),
        k: workload.k,
        search_params,
        ground_truth: "computed here by brute force over the matching vectors",
        payloads: vexfs.payloads,
        vexfs_index_status: vexfs.index_status,
        payload_index: filtered::PAYLOAD_INDEX_SPEC,
        rows,
    })
}

/// What the mounted part of a run measured: the ioctl path, filtered
/// search, the HTTP path, and where --keep left the file or image.
type MountedResults = (
    SystemResult,
    Option<VexfsFiltered>,
    Option<HttpReport>,
    Option<PathBuf>,
);

/// Mounts a fresh image (or uses the user's mount) and measures VexFS,
/// filtered too when asked, then the same workload through HTTP on the
/// same mount when asked. Returns where the vector file (or the scratch
/// image) was kept, with --keep.
fn run_vexfs(
    config: &Config,
    workload: &Workload,
    filter: Option<&FilterWorkload>,
    index: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<MountedResults> {
    let file_name = format!("vexfs-bench-search.{}", std::process::id());
    let vector_bytes = workload.base.as_slice().len() as u64 * 4;
    let size_bytes = 4 * vector_bytes
        + workload.base.count() as u64 * IMAGE_BYTES_PER_VECTOR
        + IMAGE_BYTES_SLACK;
    let mut kept_file = None;
    let ((result, filtered, http), kept_image) = on_vexfs(
        &config.place,
        "search",
        size_bytes,
        config.keep,
        progress,
        |root, description, progress| {
            let path = root.join(&file_name);
            let measured = measure_vexfs_file(&path, config, workload, filter, index, progress)
                .and_then(|(mut result, filtered)| {
                    result.target = format!("{}: {description}", path.display());
                    let http = match &config.http {
                        Some(target) => {
                            let mut report = http::measure_http(
                                target,
                                root,
                                workload,
                                index,
                                config.metric,
                                config.batch,
                                progress,
                            )?;
                            report.compare(&result);
                            Some(report)
                        }
                        None => None,
                    };
                    Ok((result, filtered, http))
                });
            if config.keep {
                kept_file = Some(path);
            } else {
                remove_file(&path);
            }
            measured
        },
    )?;
    let kept = match &config.place {
        Place::Mounted(_) => kept_file,
        Place::Scratch { .. } => kept_image,
    };
    Ok((result, filtered, http, kept))
}

fn measure_vexfs_file(
    path: &Path,
    config: &Config,
    workload: &Workload,
    filter: Option<&FilterWorkload>,
    index: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<(SystemResult, Option<VexfsFiltered>)> {
    let dims = u32::try_from(workload.base.dims()).context("dimensions")?;
    let mut vexfs = VexfsSystem::create(path, dims, config.metric, index, &workload.settings[0])?;
    let result = measure(
        &mut vexfs,
        path.display().to_string(),
        workload,
        config.batch,
        progress,
    )?;
    let meta = vexfs
        .file()
        .get_meta()
        .context("VEXFS_IOC_GET_VECTOR_META")?;
    if meta.vector_count as usize != workload.base.count() || meta.dimensions != dims {
        bail!(
            "GET_VECTOR_META says {} vectors of {} dimensions; {} of {dims} were inserted",
            meta.vector_count,
            meta.dimensions,
            workload.base.count()
        );
    }
    // Before the round trip, which deletes a few ids.
    let filtered = match filter {
        Some(filter) => Some(filtered::measure_vexfs(
            vexfs.file(),
            workload.base.count(),
            search_type(config.metric),
            filter,
            progress,
        )?),
        None => None,
    };
    check_round_trip(vexfs.file(), workload.base)?;
    Ok((result, filtered))
}

/// After the measurements: a few vectors come back bit for bit, and
/// deleting them removes exactly them.
fn check_round_trip(file: &VectorFile, base: &Vectors) -> Result<()> {
    let count = base.count();
    let mut ids = vec![0, count as u64 / 2, count as u64 - 1];
    ids.dedup();
    let dims = base.dims();
    let mut fetched = vec![0f32; ids.len() * dims];
    file.get_vectors(&ids, dims as u32, &mut fetched)
        .context("VEXFS_IOC_GET_VECTORS")?;
    for (id, got) in ids.iter().zip(fetched.chunks_exact(dims)) {
        let stored = base.row(*id as usize);
        if got
            .iter()
            .zip(stored)
            .any(|(a, b)| a.to_bits() != b.to_bits())
        {
            bail!("GET_VECTORS returned another vector than was inserted under id {id}");
        }
    }
    let deleted = file.delete(&ids).context("VEXFS_IOC_DELETE_VECTORS")?;
    let left = file.get_meta().context("VEXFS_IOC_GET_VECTOR_META")?;
    if deleted as usize != ids.len() || left.vector_count as usize != count - ids.len() {
        bail!(
            "DELETE_VECTORS of {} ids deleted {deleted}, leaving {} of {count}",
            ids.len(),
            left.vector_count
        );
    }
    Ok(())
}
