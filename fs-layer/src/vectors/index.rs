//! A vector file's faiss index: chosen by a factory string, built over the
//! metric of the search that first needs it, serialised into the file's
//! index region and read back from it.
//!
//! Labels are slot numbers: rows are added in slot order, so label i is
//! slot i. Cosine is inner product over normalised copies (faiss keeps its
//! own copy of what it indexes). Searches run concurrently through faiss's
//! const search.

use std::ffi::CStr;
use std::os::raw::c_int;

use faiss::index::{FromInnerPtr, IndexImpl};
use faiss::{Index, MetricType};
use vexfs_uapi::{VEXFS_SEARCH_COSINE, VEXFS_SEARCH_EUCLIDEAN};

use super::exact::{self, Hit};
use super::labels::Labels;
use super::spec::{IndexSpec, SearchParams};

mod query;
pub use query::IndexScratch;

/// Rows a graph or clustering index is given in one step, under the file's
/// write lock (HNSW32 adds here run at thousands of rows per second): a
/// larger change drops the index, and a new one is built off the request path.
pub const FOLLOW_ROWS_MAX: usize = 10_000;

/// Below this many vectors the default index is exact (`Flat`).
pub const DEFAULT_EXACT_VECTORS_MAX: usize = 16_384;
pub const DEFAULT_GRAPH_FACTORY: &str = "HNSW32";
pub const DEFAULT_GRAPH_PARAMS: &str = "efSearch=64";

/// Which index a file wants: `user.vexfs.index` / `user.vexfs.search`, or the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexChoice {
    pub spec: IndexSpec,
    /// The canonical factory string of `spec`: what faiss is given and
    /// what a stored index is recorded under.
    pub factory: String,
    pub params: SearchParams,
}

impl IndexChoice {
    /// From the two xattr values (None when unset) for a file of `count`
    /// vectors of `dimensions`; the error names what is refused.
    pub fn resolve(
        factory: Option<&str>,
        params: Option<&str>,
        count: usize,
        dimensions: u32,
    ) -> Result<IndexChoice, String> {
        let spec = match factory.map(str::trim) {
            Some(f) if !f.is_empty() => IndexSpec::parse(f)?,
            _ if count < DEFAULT_EXACT_VECTORS_MAX => IndexSpec::Flat,
            _ => IndexSpec::parse(DEFAULT_GRAPH_FACTORY)?,
        };
        spec.check_dimensions(dimensions)?;
        let params = match params {
            Some(p) => SearchParams::parse(p)?,
            None if matches!(spec, IndexSpec::Hnsw { .. }) => {
                SearchParams::parse(DEFAULT_GRAPH_PARAMS)?
            }
            None => SearchParams::default(),
        };
        params.check_for(&spec)?;
        Ok(IndexChoice {
            factory: spec.to_string(),
            spec,
            params,
        })
    }

    pub fn is_flat(&self) -> bool {
        self.spec.is_flat()
    }
}

thread_local! {
    static THREADS_SET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

extern "C" {
    // libgomp, linked by faiss.
    fn omp_set_num_threads(threads: c_int);
}

/// OpenMP threads per search or build: `OMP_NUM_THREADS` or 1. Two threads
/// made exact search 2–3× slower on a 2-core machine; one query at a time
/// gains nothing from a team.
fn omp_threads() -> c_int {
    std::env::var("OMP_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &c_int| n >= 1)
        .unwrap_or(1)
}

/// OpenBLAS (faiss's matrix products: an exact search of 20 queries or
/// more) keeps a pool of its own, as many threads as cores unless told:
/// the same count as OpenMP, once per process. Looked up at run time, so
/// that a BLAS other than OpenBLAS behind libblas also works.
fn set_blas_threads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only
        // looks the symbol up.
        let symbol =
            unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"openblas_set_num_threads".as_ptr()) };
        if !symbol.is_null() {
            // SAFETY: OpenBLAS's `void openblas_set_num_threads(int)`.
            let set: extern "C" fn(c_int) = unsafe { std::mem::transmute(symbol) };
            set(omp_threads());
        }
    });
}

/// libgomp keeps the thread count per calling thread: set it once on each
/// thread that enters faiss.
fn set_threads() {
    set_blas_threads();
    THREADS_SET.with(|done| {
        if !done.get() {
            // SAFETY: omp_set_num_threads only stores a value for this thread.
            unsafe { omp_set_num_threads(omp_threads()) };
            done.set(true);
        }
    });
}

fn last_faiss_error() -> String {
    // SAFETY: faiss returns a pointer to a NUL-terminated thread-local message or NULL.
    let message = unsafe { faiss_sys::faiss_get_last_error() };
    if message.is_null() {
        "faiss failed without a message".into()
    } else {
        // SAFETY: non-NULL, NUL-terminated, valid until the next faiss call on this thread.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}

fn faiss_metric(search_type: u32) -> MetricType {
    if search_type == VEXFS_SEARCH_EUCLIDEAN {
        MetricType::L2
    } else {
        MetricType::InnerProduct
    }
}

/// What the index holds for `rows`: normalised copies for cosine, the rows otherwise.
fn indexed_rows(rows: &[f32], dimensions: usize, search_type: u32) -> std::borrow::Cow<'_, [f32]> {
    if search_type == VEXFS_SEARCH_COSINE {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.chunks_exact(dimensions) {
            out.extend(exact::normalized(row));
        }
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(rows)
    }
}

/// How a search leaves tombstoned labels out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exclusion {
    /// faiss's ID selector in plain search parameters (Flat, HNSW, SQ).
    Selector,
    /// The selector in IVF search parameters, which also carry nprobe.
    IvfSelector,
    /// The family takes no selector (PQ, LSH): k plus the tombstones are
    /// asked for and the tombstones dropped.
    OverFetch,
}

impl Exclusion {
    /// From the index faiss made (an IVF index is one whatever its string
    /// says) and its family.
    fn of(index: &IndexImpl, factory: &str) -> Exclusion {
        // SAFETY: the cast only inspects the live index's dynamic type.
        if !unsafe { faiss_sys::faiss_IndexIVF_cast(index.inner_ptr()) }.is_null() {
            return Exclusion::IvfSelector;
        }
        match IndexSpec::parse(factory) {
            Ok(IndexSpec::Pq { .. } | IndexSpec::Lsh) | Err(_) => Exclusion::OverFetch,
            Ok(_) => Exclusion::Selector,
        }
    }
}

pub struct VectorIndex {
    index: IndexImpl,
    dimensions: usize,
    /// The search type it was built for.
    pub search_type: u32,
    pub factory: String,
    /// Search parameters last applied.
    pub params: SearchParams,
    /// Slots `0..covered` it holds a row for.
    pub covered: usize,
    /// Rows it held when it was built (or read back).
    pub built_over: usize,
    /// None while label i is slot i; the map once a replacement or delete
    /// reached the index.
    labels: Option<Labels>,
    exclusion: Exclusion,
    /// Changes whenever the labels may mean other slots (a new index, an
    /// add, a replace, a delete): what was derived from them (a filter's
    /// label bitmap) is current while this is the same.
    serial: u64,
}

/// Source of [`VectorIndex`] serials, unique in the process.
static INDEX_SERIALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_serial() -> u64 {
    INDEX_SERIALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl VectorIndex {
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Builds `choice.factory` over all `rows`, training it first when it needs training.
    pub fn build(
        choice: &IndexChoice,
        rows: &[f32],
        dimensions: usize,
        search_type: u32,
    ) -> Result<VectorIndex, String> {
        set_threads();
        let count = rows.len() / dimensions;
        if count < choice.spec.vectors_needed() {
            return Err(format!(
                "{} needs {} vectors to train, the file holds {count}",
                choice.factory,
                choice.spec.vectors_needed()
            ));
        }
        // Rows stored before NaN was refused at insert: faiss must not see them.
        if let Some(at) = rows.iter().position(|x| !x.is_finite()) {
            return Err(format!(
                "vector {} holds {}: no index is built over it",
                at / dimensions,
                rows[at]
            ));
        }
        let mut index = faiss::index_factory(
            dimensions as u32,
            &choice.factory,
            faiss_metric(search_type),
        )
        .map_err(|e| format!("index {:?}: {e}", choice.factory))?;
        let data = indexed_rows(rows, dimensions, search_type);
        if !index.is_trained() {
            index
                .train(&data)
                .map_err(|e| format!("training {:?}: {e}", choice.factory))?;
        }
        index
            .add(&data)
            .map_err(|e| format!("adding to {:?}: {e}", choice.factory))?;
        let exclusion = Exclusion::of(&index, &choice.factory);
        let mut built = VectorIndex {
            index,
            dimensions,
            search_type,
            factory: choice.factory.clone(),
            params: SearchParams::default(),
            covered: rows.len() / dimensions,
            built_over: rows.len() / dimensions,
            labels: None,
            exclusion,
            serial: next_serial(),
        };
        built.set_params(&choice.params)?;
        Ok(built)
    }

    pub fn set_params(&mut self, params: &SearchParams) -> Result<(), String> {
        self.params = *params;
        let pairs = params.faiss_pairs();
        if pairs.is_empty() {
            return Ok(());
        }
        let space = faiss::index::autotune::ParameterSpace::new().map_err(|e| e.to_string())?;
        for (name, value) in pairs {
            space
                .set_index_parameter(&self.index, name, value)
                .map_err(|e| {
                    format!(
                        "search parameter {name}={value} for {:?}: {e}",
                        self.factory
                    )
                })?;
        }
        Ok(())
    }

    /// Whether `more` new rows (appended or replacing others) may be added
    /// to it in one step. An exact index takes any number. A graph or
    /// clustering index takes at most [`FOLLOW_ROWS_MAX`] at a time (adds
    /// run under the file's write lock), and not past twice what it was
    /// built over: grown in small steps beyond that it loses recall (HNSW
    /// fed batches of 100 measured 0.97 against 0.998 built at once), so it
    /// is rebuilt instead; doubling keeps the total build work within
    /// twice the final one.
    pub fn follows(&self, more: usize) -> bool {
        self.factory == "Flat"
            || (more <= FOLLOW_ROWS_MAX && self.covered + more <= 2 * self.built_over.max(512))
    }

    /// Whether it grew past what it may before a rebuild.
    pub fn outgrown(&self) -> bool {
        !self.follows(0)
    }

    /// Hands `rows` to faiss under its next labels (normalised for cosine).
    fn add_to_faiss(&mut self, rows: &[f32]) -> Result<(), String> {
        set_threads();
        if rows.iter().any(|x| !x.is_finite()) {
            return Err("a vector holds NaN or Inf: not added to an index".into());
        }
        let data = indexed_rows(rows, self.dimensions, self.search_type);
        self.index
            .add(&data)
            .map_err(|e| format!("adding to {:?}: {e}", self.factory))
    }

    /// Adds rows appended after the ones it covers (slots `covered..`).
    pub fn add(&mut self, rows: &[f32]) -> Result<(), String> {
        self.add_to_faiss(rows)?;
        let added = rows.len() / self.dimensions;
        if let Some(labels) = self.labels.as_mut() {
            for _ in 0..added {
                labels.push_slot();
            }
        }
        self.covered += added;
        self.serial = next_serial();
        Ok(())
    }

    /// `slot` now holds `row`: the row is added under a new label and the
    /// old one becomes a tombstone.
    pub fn replace(&mut self, slot: usize, row: &[f32]) -> Result<(), String> {
        debug_assert!(slot < self.covered);
        self.add_to_faiss(row)?;
        let covered = self.covered;
        self.labels
            .get_or_insert_with(|| Labels::identity(covered))
            .replace(slot);
        self.serial = next_serial();
        Ok(())
    }

    /// The row at `hole` was deleted and the last covered slot's row moved into it.
    pub fn remove(&mut self, hole: usize) {
        debug_assert!(hole < self.covered);
        let covered = self.covered;
        self.labels
            .get_or_insert_with(|| Labels::identity(covered))
            .remove(hole);
        self.covered -= 1;
        self.serial = next_serial();
    }

    /// Labels that stand for no row.
    pub fn tombstones(&self) -> usize {
        self.labels.as_ref().map_or(0, Labels::tombstones)
    }

    pub fn tombstone_fraction(&self) -> f64 {
        self.labels.as_ref().map_or(0.0, Labels::tombstone_fraction)
    }

    /// The map from labels to slots; None while label i is slot i.
    pub fn labels(&self) -> Option<&Labels> {
        self.labels.as_ref()
    }

    /// An index read back with its stored label map: it covers the map's slots.
    pub fn with_labels(mut self, labels: Labels) -> Result<VectorIndex, String> {
        let ntotal = self.index.ntotal() as usize;
        if ntotal != labels.labels() {
            return Err(format!(
                "the index holds {ntotal} vectors, its label map {}",
                labels.labels()
            ));
        }
        self.covered = labels.slots();
        self.built_over = labels.slots();
        self.labels = Some(labels);
        self.serial = next_serial();
        Ok(self)
    }

    /// The labels whose slots `wanted` marks (bit s of byte s / 8, LSB
    /// first: a filter's matches), as a bitmap faiss's selector takes; None
    /// when this family takes no ID selector (PQ, LSH), which leaves the
    /// caller an exact scan. Made once per filter and index state.
    pub fn label_bitmap(&self, wanted: &[u8]) -> Option<Vec<u8>> {
        if self.exclusion == Exclusion::OverFetch {
            return None;
        }
        let label_count = self.labels.as_ref().map_or(self.covered, Labels::labels);
        let mut bitmap = vec![0u8; label_count.div_ceil(8)];
        for label in 0..label_count {
            let slot = match &self.labels {
                Some(map) => map.slot(label),
                None => Some(label),
            };
            if slot.is_some_and(|s| s < self.covered && wanted[s / 8] & (1 << (s % 8)) != 0) {
                bitmap[label / 8] |= 1 << (label % 8);
            }
        }
        Some(bitmap)
    }

    /// faiss's own serialisation of the index.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut buffer: *mut libc::c_char = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        // SAFETY: open_memstream gets valid out-pointers; it owns `buffer` until fclose.
        let stream = unsafe { libc::open_memstream(&mut buffer, &mut size) };
        if stream.is_null() {
            return Err(format!(
                "open_memstream: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: the index is live; stream is an open FILE (faiss-sys's opaque FILE is libc's).
        let status = unsafe {
            faiss_sys::faiss_write_index(self.index.inner_ptr(), stream as *mut faiss_sys::FILE)
        };
        let error = (status != 0).then(last_faiss_error);
        // SAFETY: stream came from open_memstream; after fclose, buffer/size are final
        // and the buffer is ours to free.
        let bytes = unsafe {
            libc::fclose(stream);
            let bytes = if buffer.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(buffer as *const u8, size).to_vec()
            };
            libc::free(buffer as *mut libc::c_void);
            bytes
        };
        match error {
            Some(e) => Err(e),
            None => Ok(bytes),
        }
    }

    /// Reads an index written by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(
        bytes: &[u8],
        dimensions: usize,
        search_type: u32,
        factory: &str,
        params: &SearchParams,
    ) -> Result<VectorIndex, String> {
        if bytes.is_empty() {
            return Err("empty index".into());
        }
        // SAFETY: fmemopen reads `bytes`, which outlives the stream (closed below).
        let stream = unsafe {
            libc::fmemopen(
                bytes.as_ptr() as *mut libc::c_void,
                bytes.len(),
                c"rb".as_ptr(),
            )
        };
        if stream.is_null() {
            return Err(format!("fmemopen: {}", std::io::Error::last_os_error()));
        }
        let mut raw: *mut faiss_sys::FaissIndex = std::ptr::null_mut();
        // SAFETY: stream is an open FILE; raw receives a new index on success.
        let status =
            unsafe { faiss_sys::faiss_read_index(stream as *mut faiss_sys::FILE, 0, &mut raw) };
        let error = (status != 0).then(last_faiss_error);
        // SAFETY: stream came from fmemopen and is closed once.
        unsafe { libc::fclose(stream) };
        if let Some(e) = error {
            return Err(e);
        }
        // SAFETY: faiss_read_index returned a valid index we now own.
        let index = unsafe { IndexImpl::from_inner_ptr(raw) };
        if index.d() as usize != dimensions {
            return Err(format!(
                "stored index has {} dimensions, the file {dimensions}",
                index.d()
            ));
        }
        let covered = index.ntotal() as usize;
        let exclusion = Exclusion::of(&index, factory);
        let mut loaded = VectorIndex {
            index,
            dimensions,
            search_type,
            factory: factory.to_string(),
            params: SearchParams::default(),
            covered,
            built_over: covered,
            labels: None,
            exclusion,
            serial: next_serial(),
        };
        loaded.set_params(params)?;
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vexfs_uapi::VEXFS_SEARCH_DOT_PRODUCT;

    fn rows(n: usize, d: usize) -> Vec<f32> {
        // splitmix64: no two rows alike, so there are no ties to break.
        (0..(n * d) as u64)
            .map(|i| {
                let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn choice_defaults_by_size_and_parses_params() {
        let small = IndexChoice::resolve(None, None, 100, 8).unwrap();
        assert!(small.is_flat());
        let large = IndexChoice::resolve(None, None, 100_000, 8).unwrap();
        assert_eq!(large.factory, "HNSW32");
        assert_eq!(large.params.ef_search, Some(64));
        let chosen = IndexChoice::resolve(Some("IVF16,Flat"), Some("nprobe=4"), 10, 8).unwrap();
        assert_eq!(chosen.params.nprobe, Some(4));
        assert!(IndexChoice::resolve(Some("IVF16,Flat"), Some("efSearch=4"), 10, 8).is_err());
        assert!(IndexChoice::resolve(Some("PQ3"), None, 10, 8).is_err());
    }

    #[test]
    fn flat_index_matches_exact_scan_in_every_metric() {
        let (n, d) = (300, 16);
        let data = rows(n, d);
        let query = &data[5 * d..6 * d];
        for search_type in [
            VEXFS_SEARCH_EUCLIDEAN,
            VEXFS_SEARCH_COSINE,
            VEXFS_SEARCH_DOT_PRODUCT,
        ] {
            let choice = IndexChoice::resolve(Some("Flat"), None, n, d as u32).unwrap();
            let index = VectorIndex::build(&choice, &data, d, search_type).unwrap();
            let got = index.search(query, 5).unwrap();
            let want = exact::search(&data, d, query, 5, search_type);
            assert_eq!(
                got.iter().map(|h| h.slot).collect::<Vec<_>>(),
                want.iter().map(|h| h.slot).collect::<Vec<_>>(),
                "search type {search_type}"
            );
            for (g, w) in got.iter().zip(&want) {
                assert!((g.value - w.value).abs() < 1e-4, "{g:?} vs {w:?}");
            }
        }
    }

    #[test]
    fn serialised_index_reads_back_and_grows() {
        let (n, d) = (500, 8);
        let data = rows(n, d);
        let choice =
            IndexChoice::resolve(Some("HNSW16"), Some("efSearch=32"), n, d as u32).unwrap();
        let mut index =
            VectorIndex::build(&choice, &data[..400 * d], d, VEXFS_SEARCH_COSINE).unwrap();
        index.add(&data[400 * d..]).unwrap();
        assert_eq!(index.covered, 500);
        let bytes = index.to_bytes().unwrap();
        let back =
            VectorIndex::from_bytes(&bytes, d, VEXFS_SEARCH_COSINE, "HNSW16", &choice.params)
                .unwrap();
        assert_eq!(back.covered, 500);
        let query = &data[450 * d..451 * d];
        assert_eq!(back.search(query, 1).unwrap()[0].slot, 450);
        let none = SearchParams::default();
        assert!(VectorIndex::from_bytes(&bytes[..bytes.len() / 2], d, 1, "HNSW16", &none).is_err());
        assert!(VectorIndex::from_bytes(&bytes, d + 1, 1, "HNSW16", &none).is_err());
    }

    #[test]
    fn tombstones_are_never_answered_by_any_exclusion() {
        let (n, d) = (600, 8);
        let data = rows(n, d);
        // Selector (HNSW, Flat), IVF parameters, over-fetch (PQ).
        for (factory, params) in [
            ("HNSW16", Some("efSearch=64")),
            ("Flat", None),
            ("IVF8,Flat", Some("nprobe=8")),
            ("PQ4", None),
        ] {
            let choice = IndexChoice::resolve(Some(factory), params, n, d as u32).unwrap();
            let mut index = VectorIndex::build(&choice, &data, d, VEXFS_SEARCH_EUCLIDEAN).unwrap();
            // Slot 5 gets slot 9's row; slot 7 is deleted (the last row moves in).
            index.replace(5, &data[9 * d..10 * d]).unwrap();
            index.remove(7);
            assert_eq!(index.tombstones(), 2, "{factory}");
            for q in [5, 7, 9, n - 1] {
                let hits = index.search(&data[q * d..(q + 1) * d], 10).unwrap();
                assert!(!hits.is_empty(), "{factory}: no answer for {q}");
                assert!(
                    hits.iter().all(|h| h.slot < n - 1),
                    "{factory}: a slot past the last: {hits:?}"
                );
            }
            // The old row of slot 5 is gone: searching for it finds slot 5
            // only at the new row's distance, never at 0.
            let old = &data[5 * d..6 * d];
            let hits = index.search(old, 10).unwrap();
            assert!(
                hits.iter().all(|h| h.slot != 5 || h.value > 0.0),
                "{factory}: the replaced row answered: {hits:?}"
            );
        }
    }
}
