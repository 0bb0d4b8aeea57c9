//! The two systems the vector benchmark runs the same workload on: a vector
//! file on a VexFS mount, driven by ioctls through FUSE, and the same faiss
//! index built in this process. Both sit behind [`VectorSystem`], so the
//! timing loop in `measure.rs` is written once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use faiss::index::autotune::ParameterSpace;
use faiss::index::IndexImpl;
use faiss::{index_factory, Index, MetricType};

use crate::datasets::Metric;
use crate::fs::check_interrupted;
use crate::vectors::{VectorFile, XATTR_INDEX, XATTR_SEARCH};

use super::service::ServiceTotals;

/// What the timing loop asks of a system.
pub trait VectorSystem {
    /// Row name in the report.
    fn name(&self) -> &'static str;
    /// Called once, timed, before the first batch (faiss trains here).
    fn prepare(&mut self, all_vectors: &[f32]) -> Result<()>;
    /// One batch of vectors under `ids`.
    fn insert(&mut self, vectors: &[f32], ids: &[u64]) -> Result<()>;
    /// Timed after the last batch (VexFS: fsync, so the vectors are durable).
    fn finish_insert(&mut self) -> Result<()>;
    /// Nearest neighbours of `query` into `ids` (k = its length), best first;
    /// returns how many were found.
    fn search(&mut self, query: &[f32], ids: &mut [u64]) -> Result<usize>;
    /// Most queries one [`search_batch`](Self::search_batch) request takes.
    fn search_batch_max(&self) -> usize {
        SEARCH_BATCH_MAX
    }
    /// Nearest neighbours of every query in `queries` (rows of the index's
    /// dimensions) in one request: `k` places per query in `ids`, best
    /// first, `u64::MAX` where no neighbour was found.
    fn search_batch(&mut self, queries: &[f32], k: usize, ids: &mut [u64]) -> Result<()>;
    /// Search parameters as faiss's ParameterSpace names them (`efSearch=64`).
    fn set_search_params(&mut self, params: &str) -> Result<()>;
    /// After the first search: returns once the index that search asked
    /// for answers queries (VexFS builds a large one in the background and
    /// scans exactly meanwhile). faiss's is in place after its add.
    fn wait_for_index(&mut self) -> Result<()> {
        Ok(())
    }
    /// The serving daemon's search counters, for a system served by one.
    fn daemon_service(&self) -> Result<Option<ServiceTotals>> {
        Ok(None)
    }
}

/// Queries one batched request may carry (`--search-batch`): what one
/// FILTERED_SEARCH ioctl takes.
pub const SEARCH_BATCH_MAX: usize = vexfs_uapi::limits::SEARCH_QUERIES_MAX as usize;

/// Longest a background index build is waited for.
pub const INDEX_BUILD_WAIT_MAX: Duration = Duration::from_secs(30 * 60);
/// How often `user.vexfs.status` is read meanwhile.
const INDEX_BUILD_POLL: Duration = Duration::from_millis(50);

/// `name=value,name=value` as faiss's ParameterSpace reads it.
pub fn parse_search_params(params: &str) -> Result<Vec<(String, f64)>> {
    params
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .with_context(|| format!("search parameter {pair:?} is not name=value"))?;
            let value: f64 = value
                .trim()
                .parse()
                .with_context(|| format!("search parameter {pair:?}: not a number"))?;
            Ok((name.trim().to_string(), value))
        })
        .collect()
}

/// A vector file on a mounted VexFS, one ioctl per call.
pub struct VexfsSystem {
    file: VectorFile,
    /// The file's directory, whose `user.vexfs.metrics` the daemon serves.
    dir: PathBuf,
    dims: u32,
    search_type: u32,
    /// Distances the daemon writes back; reused, so a search allocates nothing.
    distances: Vec<f32>,
}

impl VexfsSystem {
    /// Creates `path`, names its index and search parameters in its
    /// extended attributes, and makes it a vector file of `dims`.
    pub fn create(
        path: &Path,
        dims: u32,
        metric: Metric,
        index: &str,
        search_params: &str,
    ) -> Result<Self> {
        let file =
            VectorFile::create(path).with_context(|| format!("creating {}", path.display()))?;
        file.set_xattr(XATTR_INDEX, index)
            .with_context(|| format!("setxattr {XATTR_INDEX}={index:?}"))?;
        let mut system = Self {
            file,
            dir: match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            },
            dims,
            search_type: search_type(metric),
            distances: Vec::new(),
        };
        system.set_search_params(search_params)?;
        system
            .file
            .set_meta(dims)
            .context("VEXFS_IOC_SET_VECTOR_META")?;
        Ok(system)
    }

    pub fn file(&self) -> &VectorFile {
        &self.file
    }
}

/// The ioctl interface's `search_type` for a metric.
pub fn search_type(metric: Metric) -> u32 {
    match metric {
        Metric::Cosine => vexfs_uapi::VEXFS_SEARCH_COSINE,
        Metric::L2 => vexfs_uapi::VEXFS_SEARCH_EUCLIDEAN,
        Metric::Dot => vexfs_uapi::VEXFS_SEARCH_DOT_PRODUCT,
    }
}

impl VectorSystem for VexfsSystem {
    fn name(&self) -> &'static str {
        "VexFS (through FUSE)"
    }

    fn prepare(&mut self, _all_vectors: &[f32]) -> Result<()> {
        Ok(())
    }

    fn insert(&mut self, vectors: &[f32], ids: &[u64]) -> Result<()> {
        self.file
            .batch_insert(vectors, self.dims, Some(ids), 0)
            .with_context(|| {
                format!(
                    "VEXFS_IOC_BATCH_INSERT of {} vectors from id {}",
                    ids.len(),
                    ids.first().copied().unwrap_or_default()
                )
            })
    }

    fn finish_insert(&mut self) -> Result<()> {
        self.file.sync().context("fsync of the vector file")
    }

    fn search(&mut self, query: &[f32], ids: &mut [u64]) -> Result<usize> {
        self.distances.resize(ids.len(), 0.0);
        self.file
            .search(query, self.search_type, &mut self.distances, ids)
            .context("VEXFS_IOC_VECTOR_SEARCH")
    }

    /// One FILTERED_SEARCH without a filter, approximate like VECTOR_SEARCH.
    fn search_batch(&mut self, queries: &[f32], k: usize, ids: &mut [u64]) -> Result<()> {
        self.distances.resize(ids.len(), 0.0);
        self.file
            .filtered_search(
                queries,
                self.dims,
                k,
                self.search_type,
                None,
                false,
                &mut self.distances,
                ids,
            )
            .with_context(|| {
                format!(
                    "VEXFS_IOC_FILTERED_SEARCH of {} queries",
                    ids.len() / k.max(1)
                )
            })?;
        // VEXFS_NO_ID is u64::MAX already: unused places need no rewrite.
        Ok(())
    }

    fn set_search_params(&mut self, params: &str) -> Result<()> {
        if params.is_empty() {
            return Ok(());
        }
        self.file
            .set_xattr(XATTR_SEARCH, params)
            .with_context(|| format!("setxattr {XATTR_SEARCH}={params:?}"))
    }

    fn daemon_service(&self) -> Result<Option<ServiceTotals>> {
        ServiceTotals::read(&self.dir).map(Some)
    }

    /// Polls `user.vexfs.status` until no build is in progress.
    fn wait_for_index(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            check_interrupted()?;
            let status = self.file.status().context("getxattr user.vexfs.status")?;
            match status.get("building").map(String::as_str) {
                None | Some("none") => return Ok(()),
                Some(building) if started.elapsed() > INDEX_BUILD_WAIT_MAX => bail!(
                    "the {building} index was still building after {} s",
                    INDEX_BUILD_WAIT_MAX.as_secs()
                ),
                Some(_) => std::thread::sleep(INDEX_BUILD_POLL),
            }
        }
    }
}

extern "C" {
    // libgomp, linked by faiss-sys.
    fn omp_set_num_threads(threads: libc::c_int);
}

/// One OpenMP thread and, where the BLAS is OpenBLAS, one BLAS thread: with
/// more, faiss's threads fight over the few cores here (BRIEF.md measured
/// 2–3× slower exact search with two).
pub fn single_threaded_faiss() {
    // SAFETY: omp_set_num_threads only sets the OpenMP runtime's default
    // team size; it has no preconditions.
    unsafe { omp_set_num_threads(1) };
    // The BLAS behind -lblas may be OpenBLAS or another: look the setter up.
    // SAFETY: the name is NUL-terminated; RTLD_DEFAULT searches the loaded objects.
    let setter = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"openblas_set_num_threads".as_ptr()) };
    if !setter.is_null() {
        // SAFETY: OpenBLAS declares `void openblas_set_num_threads(int)`.
        let set: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(setter) };
        set(1);
    }
}

/// The same index in this process, with the same metric handling as the
/// daemon: cosine is inner product over L2-normalised copies.
pub struct FaissSystem {
    index: IndexImpl,
    dims: usize,
    normalize: bool,
    /// Normalised copies of a batch or a query, reused.
    scratch: Vec<f32>,
}

impl FaissSystem {
    pub fn new(dims: usize, metric: Metric, index: &str, search_params: &str) -> Result<Self> {
        let faiss_metric = match metric {
            Metric::L2 => MetricType::L2,
            Metric::Cosine | Metric::Dot => MetricType::InnerProduct,
        };
        let built = index_factory(dims as u32, index, faiss_metric)
            .with_context(|| format!("faiss index_factory({dims}, {index:?})"))?;
        let mut system = Self {
            index: built,
            dims,
            normalize: metric == Metric::Cosine,
            scratch: Vec::new(),
        };
        system.set_search_params(search_params)?;
        Ok(system)
    }

    /// Search parameters admitting only `ids` (each below `count`, the
    /// vectors added): faiss's IDSelectorBitmap over the labels.
    pub fn select(&self, ids: &[u64], count: usize) -> Result<Selection> {
        if count as u64 != self.index.ntotal() || ids.iter().any(|&id| id >= count as u64) {
            bail!(
                "a selection of ids below {count} on an index of {}",
                self.index.ntotal()
            );
        }
        Selection::new(self.index.inner_ptr(), ids, count)
    }

    /// Distances and labels for one query of `k`, reused across queries.
    pub fn result_buffers(&self, k: usize) -> (Vec<f32>, Vec<faiss_sys::idx_t>) {
        (vec![0.0; k], vec![-1; k])
    }

    /// [`search`](VectorSystem::search) among the ids of `selection`, into
    /// `ids` (k = `buffers`' length, k ≤ `ids.len()`).
    pub fn search_selected(
        &mut self,
        query: &[f32],
        selection: &Selection,
        buffers: &mut (Vec<f32>, Vec<faiss_sys::idx_t>),
        ids: &mut [u64],
    ) -> Result<usize> {
        let (distances, labels) = buffers;
        let k = labels.len();
        if distances.len() != k || ids.len() < k || query.len() != self.dims {
            bail!(
                "search_selected: buffers of {} and {k}, {} ids, a query of {}",
                distances.len(),
                ids.len(),
                query.len()
            );
        }
        let index = self.index.inner_ptr();
        let query = Self::as_indexed(&mut self.scratch, self.normalize, self.dims, query);
        // SAFETY: the index is live for &mut self; query is one vector of
        // its dimensions (checked above); distances and labels have room for
        // k results; the parameters live in `selection`, borrowed for the call.
        let status = unsafe {
            faiss_sys::faiss_Index_search_with_params(
                index,
                1,
                query.as_ptr(),
                k as faiss_sys::idx_t,
                selection.params,
                distances.as_mut_ptr(),
                labels.as_mut_ptr(),
            )
        };
        if status != 0 {
            bail!("faiss search with an ID selector: {}", faiss_error());
        }
        let mut written = 0;
        for (slot, &label) in ids.iter_mut().zip(labels.iter()) {
            *slot = u64::try_from(label).unwrap_or(u64::MAX);
            written += usize::from(label >= 0);
        }
        Ok(written)
    }

    /// The vectors as the index sees them: normalised copies for cosine.
    fn as_indexed<'a>(
        scratch: &'a mut Vec<f32>,
        normalize: bool,
        dims: usize,
        vectors: &'a [f32],
    ) -> &'a [f32] {
        if !normalize {
            return vectors;
        }
        scratch.clear();
        scratch.extend_from_slice(vectors);
        for row in scratch.chunks_exact_mut(dims) {
            let norm = crate::datasets::dot(row, row).sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        scratch
    }
}

impl VectorSystem for FaissSystem {
    fn name(&self) -> &'static str {
        "faiss in-process"
    }

    fn prepare(&mut self, all_vectors: &[f32]) -> Result<()> {
        if self.index.is_trained() {
            return Ok(());
        }
        let data = Self::as_indexed(&mut self.scratch, self.normalize, self.dims, all_vectors);
        self.index.train(data).context("faiss train")
    }

    fn insert(&mut self, vectors: &[f32], ids: &[u64]) -> Result<()> {
        // faiss numbers vectors in the order they are added; the benchmark's
        // ids are exactly that order.
        if ids.first().copied() != Some(self.index.ntotal()) {
            bail!(
                "ids from {:?}, but the index holds {}",
                ids.first(),
                self.index.ntotal()
            );
        }
        let data = Self::as_indexed(&mut self.scratch, self.normalize, self.dims, vectors);
        self.index.add(data).context("faiss add")
    }

    fn finish_insert(&mut self) -> Result<()> {
        Ok(())
    }

    fn search(&mut self, query: &[f32], ids: &mut [u64]) -> Result<usize> {
        let query = Self::as_indexed(&mut self.scratch, self.normalize, self.dims, query);
        let result = self
            .index
            .search(query, ids.len())
            .context("faiss search")?;
        let mut found = 0;
        for (slot, label) in ids.iter_mut().zip(&result.labels) {
            match label.get() {
                Some(id) => {
                    *slot = id;
                    found += 1;
                }
                None => *slot = u64::MAX,
            }
        }
        Ok(found)
    }

    /// One faiss search of all the queries (normalised copies for cosine),
    /// through the same wrapper as [`search`](VectorSystem::search).
    fn search_batch(&mut self, queries: &[f32], k: usize, ids: &mut [u64]) -> Result<()> {
        let count = queries.len() / self.dims;
        if k == 0 || queries.len() != count * self.dims || ids.len() != count * k {
            bail!(
                "search_batch: {} values of {} dimensions, {} id places for k = {k}",
                queries.len(),
                self.dims,
                ids.len()
            );
        }
        let queries = Self::as_indexed(&mut self.scratch, self.normalize, self.dims, queries);
        let result = self
            .index
            .search(queries, k)
            .with_context(|| format!("faiss search of {count} queries"))?;
        for (slot, label) in ids.iter_mut().zip(&result.labels) {
            *slot = label.get().unwrap_or(u64::MAX);
        }
        Ok(())
    }

    fn set_search_params(&mut self, params: &str) -> Result<()> {
        let space = ParameterSpace::new().context("faiss ParameterSpace")?;
        for (name, value) in parse_search_params(params)? {
            space
                .set_index_parameter(&self.index, &name, value)
                .with_context(|| format!("faiss ParameterSpace: {name}={value}"))?;
        }
        Ok(())
    }
}

fn faiss_error() -> String {
    // SAFETY: faiss returns a NUL-terminated thread-local message or NULL.
    let message = unsafe { faiss_sys::faiss_get_last_error() };
    if message.is_null() {
        return "faiss failed without a message".into();
    }
    // SAFETY: non-NULL and NUL-terminated, valid until the next faiss call on this thread.
    unsafe { std::ffi::CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}

/// faiss search parameters that admit only the labels set in a bitmap
/// (LSB first); the bench's faiss labels are its ids (insertion order).
/// Made once per filter, outside a timed loop.
pub struct Selection {
    /// Read by the selector through a raw pointer: not touched while it lives.
    _bitmap: Vec<u8>,
    selector: *mut faiss_sys::FaissIDSelector,
    params: *mut faiss_sys::FaissSearchParameters,
}

impl Selection {
    fn new(index: *mut faiss_sys::FaissIndex, matching: &[u64], count: usize) -> Result<Self> {
        let mut bitmap = vec![0u8; count.div_ceil(8)];
        for &id in matching {
            bitmap[id as usize / 8] |= 1 << (id % 8);
        }
        let mut selector: *mut faiss_sys::FaissIDSelectorBitmap = std::ptr::null_mut();
        // SAFETY: the selector keeps a pointer into `bitmap`'s heap buffer,
        // which this struct owns and never changes, and frees after it.
        let status = unsafe {
            faiss_sys::faiss_IDSelectorBitmap_new(&mut selector, bitmap.len(), bitmap.as_ptr())
        };
        if status != 0 {
            bail!("faiss IDSelectorBitmap: {}", faiss_error());
        }
        let mut selection = Self {
            _bitmap: bitmap,
            selector: selector as *mut faiss_sys::FaissIDSelector,
            params: std::ptr::null_mut(),
        };
        // SAFETY: index is live for the call; the cast returns NULL for a
        // non-IVF index; the parameters only point at the live selector. An
        // IVF index reads only IVF parameters, with its own nprobe (set by
        // the last setting, not changed while this lives).
        let status = unsafe {
            let ivf = faiss_sys::faiss_IndexIVF_cast(index);
            if ivf.is_null() {
                faiss_sys::faiss_SearchParameters_new(&mut selection.params, selection.selector)
            } else {
                let nprobe = faiss_sys::faiss_IndexIVF_nprobe(ivf);
                faiss_sys::faiss_SearchParametersIVF_new_with(
                    &mut selection.params,
                    selection.selector,
                    nprobe,
                    0,
                )
            }
        };
        if status != 0 {
            bail!("faiss SearchParameters: {}", faiss_error());
        }
        Ok(selection)
    }
}

impl Drop for Selection {
    fn drop(&mut self) {
        // SAFETY: both were made in new and are freed once, the parameters
        // first (they do not own the selector); the bitmap outlives both.
        unsafe {
            if !self.params.is_null() {
                faiss_sys::faiss_SearchParameters_free(self.params);
            }
            faiss_sys::faiss_IDSelector_free(self.selector);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_params_are_name_value_pairs() {
        assert_eq!(
            parse_search_params("efSearch=128, nprobe=16").unwrap(),
            vec![
                ("efSearch".to_string(), 128.0),
                ("nprobe".to_string(), 16.0)
            ]
        );
        assert!(parse_search_params("").unwrap().is_empty());
        assert!(parse_search_params("efSearch").is_err());
        assert!(parse_search_params("efSearch=many").is_err());
    }

    #[test]
    fn in_process_cosine_normalises_like_the_daemon() {
        single_threaded_faiss();
        let mut faiss = FaissSystem::new(2, Metric::Cosine, "Flat", "").unwrap();
        // Long but pointing away from the query, short and pointing at it.
        faiss.insert(&[10.0, 1.0, 0.1, 0.1], &[0, 1]).unwrap();
        let mut ids = [u64::MAX; 2];
        assert_eq!(faiss.search(&[1.0, 1.0], &mut ids).unwrap(), 2);
        assert_eq!(ids, [1, 0]);
    }

    #[test]
    fn a_selection_admits_only_its_ids_on_flat_and_hnsw() {
        single_threaded_faiss();
        let rows: Vec<f32> = (0..64).flat_map(|i| [1.0, i as f32 / 64.0]).collect();
        let all: Vec<u64> = (0..64).collect();
        for index in ["Flat", "HNSW8"] {
            let mut faiss = FaissSystem::new(2, Metric::L2, index, "").unwrap();
            faiss.insert(&rows, &all).unwrap();
            let selection = faiss.select(&[5, 40, 63], 64).unwrap();
            let mut buffers = faiss.result_buffers(4);
            let mut ids = [0u64; 4];
            let found = faiss
                .search_selected(&[1.0, 0.0], &selection, &mut buffers, &mut ids)
                .unwrap();
            if index == "Flat" {
                assert_eq!((found, ids), (3, [5, 40, 63, u64::MAX]));
            } else {
                // A graph walked past the others may miss some; never a stranger.
                assert!(found >= 1, "{ids:?}");
                assert!(
                    ids[..found].iter().all(|id| [5, 40, 63].contains(id)),
                    "{ids:?}"
                );
                assert!(ids[found..].iter().all(|&id| id == u64::MAX), "{ids:?}");
            }
            assert!(faiss.select(&[64], 64).is_err());
        }
    }
}
