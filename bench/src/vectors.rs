//! `vexfs-bench vectors`: bulk insert, then k-NN search with recall against
//! exact ground truth, through a VexFS mount (ioctls through FUSE) and with
//! the same faiss index in this process, on the same vectors, one client
//! thread each. Peers measured elsewhere are printed beside, labelled so.

mod client;
mod measure;
mod report;
mod systems;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::datasets::{self, Metric, Vectors};
use crate::fs::{catch_interrupts, Mounted, Scratch, VexfsMount};
pub use client::{VectorFile, XATTR_INDEX, XATTR_SEARCH};
use measure::{measure, Workload};
pub use measure::{InsertStats, SearchStats, SweepPoint, SystemResult};
pub use report::{render_table, PeerFigure, PEERS};
pub use systems::{
    parse_search_params, single_threaded_faiss, FaissSystem, VectorSystem, VexfsSystem,
};

/// Queries one run may ask.
pub const QUERIES_MAX: usize = 1_000_000;
/// Vectors one run may store (the ioctl interface's per-file count is u32).
pub const COUNT_MAX: usize = u32::MAX as usize;
/// Below this many vectors the daemon's default index is exact (docs/VECTORS.md).
pub const DEFAULT_INDEX_FLAT_BELOW: usize = 16_384;
/// Smallest image this benchmark formats for itself.
pub const IMAGE_BYTES_MIN: u64 = 256 << 20;
/// Image room per stored vector beyond its floats: id, index graph, slack.
const IMAGE_BYTES_PER_VECTOR: u64 = 1024;
const IMAGE_BYTES_SLACK: u64 = 128 << 20;

/// Where the vectors come from.
#[derive(Clone, Debug)]
pub enum DataSource {
    /// The original VexFS benchmark's distribution ([`datasets::original`]).
    Original {
        count: usize,
        dims: usize,
        queries: usize,
        seed: u64,
    },
    /// A Gaussian mixture ([`datasets::Mixture`]).
    Structured {
        count: usize,
        dims: usize,
        clusters: usize,
        queries: usize,
        seed: u64,
    },
    /// `.npy` or `.fvecs` files; the counts, when given, keep the first so many.
    Files {
        vectors: PathBuf,
        queries: PathBuf,
        count: Option<usize>,
        queries_count: Option<usize>,
    },
}

/// Where the vector file lives.
#[derive(Clone, Debug)]
pub enum Place {
    /// A directory on a VexFS the user mounted.
    Mounted(PathBuf),
    /// A fresh image, formatted and mounted in a scratch directory under `dir`.
    Scratch {
        dir: PathBuf,
        size_bytes: Option<u64>,
        vexfs_binary: PathBuf,
    },
}

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
    /// `None`: the daemon's default for the index.
    pub search_params: Option<String>,
    /// efSearch values to measure after the main run (HNSW indexes only).
    pub ef_sweep: Vec<u32>,
    pub place: Place,
    /// Leave the vector file (and a scratch image) behind.
    pub keep: bool,
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
        if let DataSource::Original { count, queries, .. }
        | DataSource::Structured { count, queries, .. } = &self.data
        {
            if !(1..=COUNT_MAX).contains(count) {
                bail!("--count {count} is not in [1, {COUNT_MAX}]");
            }
            if !(1..=QUERIES_MAX).contains(queries) {
                bail!("--queries {queries} is not in [1, {QUERIES_MAX}]");
            }
        }
        if self.ef_sweep.contains(&0) {
            bail!("--ef-sweep values must be at least 1");
        }
        if let Some(index) = self.index.as_ref().filter(|i| !i.contains("HNSW")) {
            if !self.ef_sweep.is_empty() {
                bail!("--ef-sweep needs an HNSW index (--index HNSW32), not {index:?}");
            }
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
}

/// `user.vexfs.index` and `user.vexfs.search` hold at most this (docs/VECTORS.md).
const XATTR_VALUE_BYTES_MAX: usize = 256;

/// The daemon's default index for a file of `count` vectors (docs/VECTORS.md).
pub fn default_index(count: usize) -> &'static str {
    if count < DEFAULT_INDEX_FLAT_BELOW {
        "Flat"
    } else {
        "HNSW32"
    }
}

/// The daemon's default search parameters for `index`.
pub fn default_search_params(index: &str) -> &'static str {
    if index.contains("HNSW") {
        "efSearch=64"
    } else {
        ""
    }
}

/// The whole run, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct VectorsRun {
    pub benchmark: &'static str,
    pub dataset: String,
    pub count: usize,
    pub dims: usize,
    pub queries: usize,
    pub k: usize,
    pub metric: Metric,
    pub batch: usize,
    pub index: String,
    pub search_params: String,
    pub vexfs: SystemResult,
    pub faiss: SystemResult,
    /// Figures from BRIEF.md, measured separately on this machine: not this run.
    pub peers_measured_separately: &'static [PeerFigure],
    pub kept: Option<PathBuf>,
}

/// Loads or generates the vectors and queries; a description for the report.
fn load_data(source: &DataSource) -> Result<(Vectors, Vectors, String)> {
    Ok(match source {
        DataSource::Original {
            count,
            dims,
            queries,
            seed,
        } => (
            datasets::original(*count, *dims, *seed)?,
            datasets::original_queries(*queries, *dims, *seed)?,
            format!("original (10 clusters, seed {seed})"),
        ),
        DataSource::Structured {
            count,
            dims,
            clusters,
            queries,
            seed,
        } => (
            datasets::structured(*count, *dims, *clusters, *seed)?,
            datasets::structured_queries(*queries, *dims, *clusters, *seed)?,
            format!("structured ({clusters} clusters, seed {seed})"),
        ),
        DataSource::Files {
            vectors,
            queries,
            count,
            queries_count,
        } => {
            let mut base = datasets::load(vectors)?;
            let mut asked = datasets::load(queries)?;
            if base.dims() != asked.dims() {
                bail!(
                    "{} has {} dimensions, {} has {}",
                    vectors.display(),
                    base.dims(),
                    queries.display(),
                    asked.dims()
                );
            }
            if let Some(count) = count {
                base.truncate(*count);
            }
            if let Some(count) = queries_count {
                asked.truncate(*count);
            }
            if base.count() == 0 || asked.count() == 0 {
                bail!("no vectors or no queries left to run");
            }
            let name = format!("{} (queries {})", vectors.display(), queries.display());
            (base, asked, name)
        }
    })
}

/// Measures VexFS through the mount, then faiss in this process.
pub fn run(config: &Config, progress: &mut dyn FnMut(&str)) -> Result<VectorsRun> {
    config.validate()?;
    if let Place::Scratch {
        dir, vexfs_binary, ..
    } = &config.place
    {
        check_prerequisites(dir, vexfs_binary)?;
    }
    catch_interrupts();

    progress("vectors: generating or loading the data set");
    let (base, queries, dataset) = load_data(&config.data)?;
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
    if !config.ef_sweep.is_empty() && !index.contains("HNSW") {
        bail!("--ef-sweep needs an HNSW index (--index HNSW32), not {index:?}");
    }
    let search_params = config
        .search_params
        .clone()
        .unwrap_or_else(|| default_search_params(&index).to_string());
    progress(&format!(
        "vectors: exact ground truth for {} queries over {} vectors ({} dimensions, {})",
        queries.count(),
        base.count(),
        base.dims(),
        config.metric
    ));
    let truth = datasets::ground_truth(&base, &queries, config.k, config.metric);
    let workload = Workload {
        base: &base,
        queries: &queries,
        truth: &truth,
        k: config.k,
        ef_sweep: &config.ef_sweep,
        search_params: &search_params,
    };

    let (vexfs, kept) = run_vexfs(config, &workload, &index, progress)?;

    progress("vectors: faiss in this process, one OpenMP thread");
    single_threaded_faiss();
    let mut faiss = FaissSystem::new(base.dims(), config.metric, &index, &search_params)?;
    // faiss's HNSW builds a worse graph when fed small batches than from one
    // add; VexFS builds its index from all stored vectors at the first search.
    let faiss_batch = if config.faiss_batched {
        config.batch
    } else {
        base.count()
    };
    let faiss = measure(
        &mut faiss,
        "this process".to_string(),
        &workload,
        faiss_batch,
        progress,
    )?;

    Ok(VectorsRun {
        benchmark: "vectors",
        dataset,
        count: base.count(),
        dims: base.dims(),
        queries: queries.count(),
        k: config.k,
        metric: config.metric,
        batch: config.batch,
        index,
        search_params,
        vexfs,
        faiss,
        peers_measured_separately: PEERS,
        kept,
    })
}

fn check_prerequisites(dir: &Path, vexfs_binary: &Path) -> Result<()> {
    let mut missing = Vec::new();
    if !dir.is_dir() {
        missing.push(format!("--dir {}: no such directory", dir.display()));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (mounting needs it; or pass --mount DIR of a mounted VexFS)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        missing.push("/dev/fuse (the kernel's FUSE driver: modprobe fuse)".into());
    }
    if !vexfs_binary.is_file() {
        missing.push(format!(
            "{} (build it beside vexfs-bench: cargo build --release -p vexfs-fs)",
            vexfs_binary.display()
        ));
    }
    if !missing.is_empty() {
        bail!("cannot run here; missing: {}", missing.join("; "));
    }
    Ok(())
}

/// Mounts a fresh image (or uses the user's mount) and measures VexFS.
/// Returns where the vector file was kept, with --keep.
fn run_vexfs(
    config: &Config,
    workload: &Workload,
    index: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<(SystemResult, Option<PathBuf>)> {
    let file_name = format!("vexfs-bench-vectors.{}", std::process::id());
    let vector_bytes = workload.base.as_slice().len() as u64 * 4;
    match &config.place {
        Place::Mounted(dir) => {
            let path = dir.join(file_name);
            let result = measure_vexfs_file(&path, config, workload, index, progress);
            if !config.keep {
                remove_file(&path);
            }
            Ok((result?, config.keep.then_some(path)))
        }
        Place::Scratch {
            dir,
            size_bytes,
            vexfs_binary,
        } => {
            let size_bytes = size_bytes.unwrap_or_else(|| {
                let bytes = 4 * vector_bytes
                    + workload.base.count() as u64 * IMAGE_BYTES_PER_VECTOR
                    + IMAGE_BYTES_SLACK;
                bytes.max(IMAGE_BYTES_MIN).next_multiple_of(1 << 20)
            });
            let scratch = Scratch::create(dir, "vectors", config.keep)?;
            progress(&format!(
                "vectors: mkfs and mount a {} MiB VexFS image in {}",
                size_bytes >> 20,
                scratch.path.display()
            ));
            let mount = VexfsMount::create(vexfs_binary, &scratch.path, size_bytes, config.keep)?;
            let path = mount.root().join(file_name);
            let result =
                measure_vexfs_file(&path, config, workload, index, progress).map(|mut r| {
                    r.target = format!("{}: {}", path.display(), mount.describe());
                    r
                });
            if !config.keep {
                remove_file(&path);
            }
            progress("vectors: unmount, waiting for the daemon to write back and exit");
            let finished = mount.finish();
            let result = result?;
            finished?;
            Ok((result, config.keep.then(|| scratch.path.clone())))
        }
    }
}

fn remove_file(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            eprintln!("vexfs-bench: cleanup: removing {}: {error}", path.display());
        }
    }
}

fn measure_vexfs_file(
    path: &Path,
    config: &Config,
    workload: &Workload,
    index: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<SystemResult> {
    let dims = u32::try_from(workload.base.dims()).context("dimensions")?;
    let mut vexfs = VexfsSystem::create(path, dims, config.metric, index, workload.search_params)?;
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
    check_round_trip(vexfs.file(), workload.base)?;
    Ok(result)
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
