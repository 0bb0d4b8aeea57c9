//! The two systems the vector benchmark runs the same workload on: a vector
//! file on a VexFS mount, driven by ioctls through FUSE, and the same faiss
//! index built in this process. Both sit behind [`VectorSystem`], so the
//! timing loop in `measure.rs` is written once.

use std::path::Path;

use anyhow::{bail, Context, Result};
use faiss::index::autotune::ParameterSpace;
use faiss::index::IndexImpl;
use faiss::{index_factory, Index, MetricType};

use crate::datasets::Metric;
use crate::vectors::{VectorFile, XATTR_INDEX, XATTR_SEARCH};

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
    /// Search parameters as faiss's ParameterSpace names them (`efSearch=64`).
    fn set_search_params(&mut self, params: &str) -> Result<()>;
}

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

    fn set_search_params(&mut self, params: &str) -> Result<()> {
        if params.is_empty() {
            return Ok(());
        }
        self.file
            .set_xattr(XATTR_SEARCH, params)
            .with_context(|| format!("setxattr {XATTR_SEARCH}={params:?}"))
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
}
