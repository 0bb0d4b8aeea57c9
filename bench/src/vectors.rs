//! `vexfs-bench vectors`: the original VexFS validator's matrix, measured
//! through a VexFS mount: for each dimension, on a fresh file,
//! SET_VECTOR_META, GET_VECTOR_META, BATCH_INSERT at each batch size and
//! VECTOR_SEARCH (k = 10), each cell a latency histogram, ops/s, vectors/s
//! and the errors by errno. The original's published figures are printed
//! beside, with what each measured. Recall lives in `vexfs-bench search`.

mod cells;
mod options;
mod place;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::datasets;
use crate::fs::{catch_interrupts, check_interrupted};
pub use cells::{errno_name, CellLatency};
use cells::{measure_cell, Limits, Stop};
pub use options::{command, Args};
pub(crate) use place::remove_file;
pub use place::{on_vexfs, Place, IMAGE_BYTES_MIN};
pub use report::{render_table, Published, ORIGINAL_PUBLISHED};
pub use vexfs_client::{VectorFile, XATTR_INDEX, XATTR_SEARCH};

/// The original validator's dimensions and batch sizes.
pub const DIMS_DEFAULT: [usize; 4] = [4, 128, 512, 1024];
pub const BATCHES_DEFAULT: [usize; 4] = [1, 10, 100, 1000];
/// Entries of --dims and of --batches.
pub const LIST_LEN_MAX: usize = 16;
/// Neighbours per search, as the original validator asked.
pub const SEARCH_K: usize = 10;
/// A cell's budget when the command line gives none.
pub const CELL_SECONDS_DEFAULT: f64 = 0.5;
pub const CELL_SECONDS_MAX: f64 = 600.0;
pub const CELL_OPS_MAX: u64 = 10_000_000;
/// Vector bytes one insert cell may add: bounds the image and the daemon's
/// memory whatever the budget (an insert cell also ends here).
pub const CELL_INSERT_BYTES_MAX: u64 = 32 << 20;
/// Different queries the search cell cycles through.
const QUERY_POOL: usize = 64;
/// `user.vexfs.index` and `user.vexfs.search` hold at most this (docs/VECTORS.md).
pub const XATTR_VALUE_BYTES_MAX: usize = 256;
/// The index the search cell uses: an exact scan, as the original's search was.
const SEARCH_INDEX: &str = "Flat";
const IMAGE_BYTES_SLACK: u64 = 128 << 20;

/// Sizes with K, M, G, T suffixes, for clap.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    vexfs_engine::parse_size(text).map_err(|e| e.to_string())
}

/// When a cell ends: after `ops` operations or `seconds`, whichever comes first.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Budget {
    pub ops: Option<u64>,
    pub seconds: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub dims: Vec<usize>,
    pub batches: Vec<usize>,
    pub budget: Budget,
    pub place: Place,
    pub seed: u64,
    /// Leave the scratch image behind (unmounted).
    pub keep: bool,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        let dims_max = datasets::DIMENSIONS_MAX;
        for (flag, list) in [("--dims", &self.dims), ("--batches", &self.batches)] {
            if list.is_empty() || list.len() > LIST_LEN_MAX {
                bail!("{flag}: 1 to {LIST_LEN_MAX} values");
            }
        }
        if let Some(d) = self.dims.iter().find(|d| !(1..=dims_max).contains(*d)) {
            bail!("--dims {d} is not in [1, {dims_max}]");
        }
        let batch_max = vexfs_uapi::limits::BATCH_VECTORS_MAX as usize;
        if let Some(b) = self.batches.iter().find(|b| !(1..=batch_max).contains(*b)) {
            bail!("--batches {b} is not in [1, {batch_max}]");
        }
        let widest = self.dims.iter().max().copied().unwrap_or(1) as u64;
        let largest = self.batches.iter().max().copied().unwrap_or(1) as u64;
        if largest * widest * 4 > CELL_INSERT_BYTES_MAX {
            bail!(
                "--batches {largest} of --dims {widest}: one batch is over the {} MiB an insert cell may add",
                CELL_INSERT_BYTES_MAX >> 20
            );
        }
        if let Some(ops) = self.budget.ops {
            if !(1..=CELL_OPS_MAX).contains(&ops) {
                bail!("--ops {ops} is not in [1, {CELL_OPS_MAX}]");
            }
        }
        if let Some(seconds) = self.budget.seconds {
            if !(seconds > 0.0 && seconds <= CELL_SECONDS_MAX) {
                bail!("--seconds {seconds} is not in (0, {CELL_SECONDS_MAX}]");
            }
        }
        Ok(())
    }

    fn limits(&self, vectors_per_op: u64, dims: usize) -> Limits {
        let (ops, seconds) = match (self.budget.ops, self.budget.seconds) {
            (None, None) => (CELL_OPS_MAX, Some(CELL_SECONDS_DEFAULT)),
            (ops, seconds) => (ops.unwrap_or(CELL_OPS_MAX), seconds),
        };
        let ops_for_bytes = if vectors_per_op == 0 {
            u64::MAX
        } else {
            (CELL_INSERT_BYTES_MAX / (vectors_per_op * dims as u64 * 4)).max(1)
        };
        Limits {
            ops: ops.min(ops_for_bytes),
            ops_stop: if ops_for_bytes < ops {
                Stop::Bytes
            } else {
                Stop::Ops
            },
            duration: Some(Duration::from_secs_f64(seconds.unwrap_or(CELL_SECONDS_MAX))),
        }
    }
}

/// The request a cell times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Op {
    /// The same layout again and again: after the first call a no-op.
    #[serde(rename = "SET_VECTOR_META")]
    SetVectorMeta,
    /// Dimensions alternating between d and d ± 1 on the empty file: every
    /// call a layout change, which rewrites the file's header.
    #[serde(rename = "SET_VECTOR_META relayout")]
    SetVectorMetaRelayout,
    #[serde(rename = "GET_VECTOR_META")]
    GetVectorMeta,
    #[serde(rename = "BATCH_INSERT")]
    BatchInsert,
    #[serde(rename = "VECTOR_SEARCH")]
    VectorSearch,
}

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::SetVectorMeta => "SET_VECTOR_META",
            Op::SetVectorMetaRelayout => "SET_VECTOR_META relayout",
            Op::GetVectorMeta => "GET_VECTOR_META",
            Op::BatchInsert => "BATCH_INSERT",
            Op::VectorSearch => "VECTOR_SEARCH",
        }
    }
}

/// One cell of the matrix.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub op: Op,
    pub dims: usize,
    /// Vectors per BATCH_INSERT; 1 query per search; none for metadata.
    pub batch: Option<usize>,
    /// Vectors the file held when the cell began.
    pub stored: u64,
    /// Requests made, failed ones included.
    pub ops: u64,
    pub errors: u64,
    /// errors / ops.
    pub error_rate: f64,
    /// Failures by errno name (`EINVAL`), or by what went wrong.
    pub errnos: std::collections::BTreeMap<String, u64>,
    pub seconds: f64,
    pub ops_per_s: f64,
    /// Vectors inserted (or queries answered) per second; none for metadata.
    pub vectors_per_s: Option<f64>,
    /// Latency of the requests that succeeded.
    pub lat_us: CellLatency,
    /// What ended the cell: "ops", "seconds", "bytes" (the insert cap) or "errors".
    pub stopped_by: Stop,
    /// BATCH_INSERT: the fsync after the cell, not in the figures above.
    pub fsync_ms: Option<f64>,
    /// VECTOR_SEARCH: the first search, untimed above (it builds the index).
    pub first_search_ms: Option<f64>,
}

/// The whole matrix, as `--json` prints it and `--out` writes it.
#[derive(Clone, Debug, Serialize)]
pub struct MatrixRun {
    pub benchmark: &'static str,
    pub target: String,
    pub budget: Budget,
    pub search_k: usize,
    pub search_index: &'static str,
    pub cells: Vec<Cell>,
    /// The original VexFS's published figures: never measured here.
    pub original_published: &'static [Published],
    pub kept: Option<PathBuf>,
}

impl MatrixRun {
    pub fn errors(&self) -> u64 {
        self.cells.iter().map(|c| c.errors).sum()
    }
}

/// Formats and mounts a scratch image (or uses the user's mount) and runs
/// every cell, one fresh file per dimension.
pub fn run(config: &Config, progress: &mut dyn FnMut(&str)) -> Result<MatrixRun> {
    config.validate()?;
    config.place.check_prerequisites()?;
    catch_interrupts();
    let size_bytes = config.batches.len() as u64 * CELL_INSERT_BYTES_MAX * 2 + IMAGE_BYTES_SLACK;
    let ((cells, target), kept) = on_vexfs(
        &config.place,
        "vectors",
        size_bytes,
        config.keep,
        progress,
        |root, description, progress| {
            let mut cells = Vec::new();
            for &dims in &config.dims {
                let path = root.join(format!("vexfs-bench-matrix.d{dims}.{}", std::process::id()));
                let measured = measure_dimension(&path, dims, config, &mut cells, progress);
                remove_file(&path);
                measured?;
            }
            Ok((cells, description.to_string()))
        },
    )?;
    Ok(MatrixRun {
        benchmark: "vectors",
        target,
        budget: config.budget,
        search_k: SEARCH_K,
        search_index: SEARCH_INDEX,
        cells,
        original_published: ORIGINAL_PUBLISHED,
        kept,
    })
}

fn io_context<T>(result: std::io::Result<T>, what: &str) -> Result<T> {
    result.with_context(|| what.to_string())
}

/// The cells of one dimension, on a fresh file at `path`.
fn measure_dimension(
    path: &std::path::Path,
    dims: usize,
    config: &Config,
    cells: &mut Vec<Cell>,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    check_interrupted()?;
    let dims_u32 = u32::try_from(dims).context("dimensions")?;
    let file = io_context(VectorFile::create(path), "creating the vector file")?;
    io_context(
        file.set_xattr(XATTR_INDEX, SEARCH_INDEX),
        "setxattr user.vexfs.index",
    )?;
    let cell = |op, batch, stored, tally: cells::Tally| tally.into_cell(op, dims, batch, stored);

    progress(&format!("vectors: d = {dims}: SET_VECTOR_META"));
    let tally = measure_cell(config.limits(0, dims), 0, |_| file.set_meta(dims_u32))?;
    cells.push(cell(Op::SetVectorMeta, None, 0, tally));

    // d ± 1: another layout, valid at both ends of the dimension range.
    let other = if dims < datasets::DIMENSIONS_MAX {
        dims_u32 + 1
    } else {
        dims_u32 - 1
    };
    progress(&format!(
        "vectors: d = {dims}: SET_VECTOR_META relayout {dims} ↔ {other}"
    ));
    let tally = measure_cell(config.limits(0, dims), 0, |i| {
        file.set_meta(if i % 2 == 0 { other } else { dims_u32 })
    })?;
    cells.push(cell(Op::SetVectorMetaRelayout, None, 0, tally));
    io_context(
        file.set_meta(dims_u32),
        "SET_VECTOR_META back to the dimension",
    )?;

    progress(&format!("vectors: d = {dims}: GET_VECTOR_META"));
    let tally = measure_cell(config.limits(0, dims), 0, |_| file.get_meta().map(drop))?;
    cells.push(cell(Op::GetVectorMeta, None, 0, tally));

    let largest = config.batches.iter().max().copied().unwrap_or(1);
    let pool = datasets::original(largest, dims, config.seed)?;
    let mut ids = vec![0u64; largest];
    let mut stored = 0u64;
    for &batch in &config.batches {
        progress(&format!("vectors: d = {dims}: BATCH_INSERT of {batch}"));
        let vectors = pool.rows(0, batch);
        let mut next_id = stored;
        let tally = measure_cell(config.limits(batch as u64, dims), batch as u64, |_| {
            for (slot, id) in ids[..batch].iter_mut().zip(next_id..) {
                *slot = id;
            }
            let outcome = file.batch_insert(vectors, dims_u32, Some(&ids[..batch]), 0);
            if outcome.is_ok() {
                next_id += batch as u64;
            }
            outcome
        })?;
        let fsync_started = Instant::now();
        io_context(file.sync(), "fsync of the vector file")?;
        let fsync_ms = fsync_started.elapsed().as_secs_f64() * 1e3;
        cells.push(Cell {
            fsync_ms: Some(fsync_ms),
            ..cell(Op::BatchInsert, Some(batch), stored, tally)
        });
        stored = next_id;
    }

    let meta = io_context(file.get_meta(), "GET_VECTOR_META after the inserts")?;
    if u64::from(meta.vector_count) != stored || meta.dimensions != dims_u32 {
        bail!(
            "GET_VECTOR_META says {} vectors of {} dimensions; {stored} of {dims} were inserted",
            meta.vector_count,
            meta.dimensions
        );
    }
    if stored == 0 {
        return Ok(());
    }
    progress(&format!(
        "vectors: d = {dims}: VECTOR_SEARCH k = {SEARCH_K} over {stored} vectors"
    ));
    let queries = datasets::original_queries(QUERY_POOL, dims, config.seed)?;
    let expected = SEARCH_K.min(stored as usize);
    let mut distances = [0f32; SEARCH_K];
    let mut found = [0u64; SEARCH_K];
    let search_type = vexfs_uapi::VEXFS_SEARCH_COSINE;
    let first_started = Instant::now();
    io_context(
        file.search(queries.row(0), search_type, &mut distances, &mut found),
        "the first VECTOR_SEARCH",
    )?;
    let first_search_ms = first_started.elapsed().as_secs_f64() * 1e3;
    let tally = measure_cell(config.limits(0, dims), 1, |i| {
        let query = queries.row(i as usize % QUERY_POOL);
        let written = file.search(query, search_type, &mut distances, &mut found)?;
        if written != expected {
            return Err(std::io::Error::other(format!(
                "{written} results, expected {expected}"
            )));
        }
        Ok(())
    })?;
    cells.push(Cell {
        first_search_ms: Some(first_search_ms),
        ..cell(Op::VectorSearch, Some(1), stored, tally)
    });
    Ok(())
}
