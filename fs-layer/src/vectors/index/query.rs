//! Searching a built index: every query of a request in one faiss call
//! (faiss runs a batch as a loop over its queries in one OpenMP team of
//! one thread, or as one matrix product for an exact index of 20 queries
//! or more), into buffers the caller keeps from one request to the next,
//! so that a search on the request path allocates nothing.

use super::{exact, last_faiss_error, set_threads, Exclusion, Hit, VectorIndex};
use vexfs_uapi::VEXFS_SEARCH_COSINE;

/// What a batch search writes: the queries as the index holds its rows
/// (normalised for cosine), and faiss's labels and distances, `asked` per
/// query. Kept by the caller across requests (see `vectors::Scratch`).
#[derive(Default)]
pub struct IndexScratch {
    prepared: Vec<f32>,
    distances: Vec<f32>,
    labels: Vec<faiss_sys::idx_t>,
    /// Results faiss was asked for per query by the last search.
    asked: usize,
    /// Hits wanted per query by the last search.
    k: usize,
}

impl IndexScratch {
    /// Bytes it holds on to.
    pub fn capacity_bytes(&self) -> usize {
        self.prepared.capacity() * 4 + self.distances.capacity() * 4 + self.labels.capacity() * 8
    }

    /// Gives back what it holds (after a large request).
    pub fn release(&mut self) {
        *self = IndexScratch::default();
    }
}

impl VectorIndex {
    /// Searches every query of `queries` (rows of the index's dimensions)
    /// for its `k` best slots, among the labels set in `bitmap` (bit l of
    /// byte l / 8, LSB first; from [`label_bitmap`](Self::label_bitmap))
    /// or among all. Query q's hits are then [`hits`](Self::hits)`(scratch, q)`.
    /// Tombstoned labels are never among them.
    pub fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        bitmap: Option<&[u8]>,
        scratch: &mut IndexScratch,
    ) -> Result<(), String> {
        debug_assert_eq!(queries.len() % self.dimensions, 0);
        debug_assert!(bitmap.is_none() || self.exclusion != Exclusion::OverFetch);
        set_threads();
        let count = queries.len() / self.dimensions;
        let k = k.min(self.covered.max(1));
        let tombstones = self.tombstones();
        let asked = match self.exclusion {
            Exclusion::OverFetch => (k + tombstones).min(self.covered + tombstones),
            Exclusion::Selector | Exclusion::IvfSelector => k,
        };
        scratch.k = k;
        scratch.asked = asked;
        let query: &[f32] = if self.search_type == VEXFS_SEARCH_COSINE {
            scratch.prepared.clear();
            for row in queries.chunks_exact(self.dimensions) {
                let norm = exact::norm(row);
                if norm > 0.0 && norm.is_finite() {
                    scratch.prepared.extend(row.iter().map(|x| x / norm));
                } else {
                    scratch.prepared.extend(std::iter::repeat_n(0.0, row.len()));
                }
            }
            &scratch.prepared
        } else {
            queries
        };
        scratch.distances.clear();
        scratch.distances.resize(count * asked, 0.0);
        scratch.labels.clear();
        scratch.labels.resize(count * asked, -1);
        let bitmap = match (&self.labels, bitmap) {
            (_, Some(bitmap)) => Some(bitmap),
            (Some(map), None) if tombstones > 0 && self.exclusion != Exclusion::OverFetch => {
                Some(map.live_bitmap())
            }
            _ => None,
        };
        let status = match bitmap {
            Some(bitmap) => self.search_selected(
                bitmap,
                query,
                count,
                &mut scratch.distances,
                &mut scratch.labels,
            ),
            None => self.faiss_search(
                query,
                count,
                std::ptr::null(),
                &mut scratch.distances,
                &mut scratch.labels,
            ),
        };
        if status != 0 {
            return Err(last_faiss_error());
        }
        Ok(())
    }

    /// Query `query`'s hits from the last [`search_batch`](Self::search_batch)
    /// into `scratch`: slots, best first, at most its `k`, in the metric
    /// conventions of [`exact`].
    pub fn hits<'s>(
        &'s self,
        scratch: &'s IndexScratch,
        query: usize,
    ) -> impl Iterator<Item = Hit> + 's {
        let places = query * scratch.asked..(query + 1) * scratch.asked;
        let cosine = self.search_type == VEXFS_SEARCH_COSINE;
        scratch.labels[places.clone()]
            .iter()
            .zip(&scratch.distances[places])
            .filter_map(move |(&label, &distance)| {
                let label = usize::try_from(label).ok()?;
                let slot = match &self.labels {
                    Some(map) => map.slot(label)?,
                    None => label,
                };
                (slot < self.covered).then_some(Hit {
                    slot,
                    // Rounding can put 1 - cos a hair outside [0, 2].
                    value: if cosine {
                        (1.0 - distance).clamp(0.0, 2.0)
                    } else {
                        distance
                    },
                })
            })
            .take(scratch.k)
    }

    /// The `k` best slots for one `query`, best first (allocates: for
    /// callers off the request path).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, String> {
        let mut scratch = IndexScratch::default();
        self.search_batch(query, k, None, &mut scratch)?;
        Ok(self.hits(&scratch, 0).collect())
    }

    /// `count` queries through faiss, with `params` (NULL: the index's
    /// own); `labels.len() / count` results each. Returns faiss's status.
    fn faiss_search(
        &self,
        queries: &[f32],
        count: usize,
        params: *const faiss_sys::FaissSearchParameters,
        distances: &mut [f32],
        labels: &mut [faiss_sys::idx_t],
    ) -> std::os::raw::c_int {
        debug_assert_eq!(queries.len(), count * self.dimensions);
        debug_assert_eq!(distances.len(), labels.len());
        debug_assert_eq!(labels.len() % count.max(1), 0);
        // SAFETY: the index pointer is live for &self; queries holds `count`
        // vectors of its dimensions; distances and labels have room for
        // labels.len() / count results per query; params is NULL or live
        // for the call. faiss's CPU search is const and safe from several
        // threads at once.
        unsafe {
            faiss_sys::faiss_Index_search_with_params(
                self.index.inner_ptr(),
                count as faiss_sys::idx_t,
                queries.as_ptr(),
                (labels.len() / count.max(1)) as faiss_sys::idx_t,
                params,
                distances.as_mut_ptr(),
                labels.as_mut_ptr(),
            )
        }
    }

    /// A search that only the labels set in `bitmap` (LSB first) may
    /// answer: faiss's bitmap selector. Returns faiss's status.
    fn search_selected(
        &self,
        bitmap: &[u8],
        queries: &[f32],
        count: usize,
        distances: &mut [f32],
        labels: &mut [faiss_sys::idx_t],
    ) -> std::os::raw::c_int {
        let mut selector: *mut faiss_sys::FaissIDSelectorBitmap = std::ptr::null_mut();
        // SAFETY: the selector keeps a pointer to `bitmap`, which the caller
        // owns and which outlives the selector (freed below, before this returns).
        let status = unsafe {
            faiss_sys::faiss_IDSelectorBitmap_new(&mut selector, bitmap.len(), bitmap.as_ptr())
        };
        if status != 0 {
            return status;
        }
        let selector = selector as *mut faiss_sys::FaissIDSelector;
        let mut params: *mut faiss_sys::FaissSearchParameters = std::ptr::null_mut();
        // SAFETY: selector is live; the parameters only point at it. An
        // IvfSelector index is an IndexIVF (Exclusion::of checked the cast).
        let status = unsafe {
            if self.exclusion == Exclusion::IvfSelector {
                let ivf = faiss_sys::faiss_IndexIVF_cast(self.index.inner_ptr());
                let nprobe = faiss_sys::faiss_IndexIVF_nprobe(ivf);
                faiss_sys::faiss_SearchParametersIVF_new_with(&mut params, selector, nprobe, 0)
            } else {
                faiss_sys::faiss_SearchParameters_new(&mut params, selector)
            }
        };
        let status = if status == 0 {
            self.faiss_search(queries, count, params, distances, labels)
        } else {
            status
        };
        // SAFETY: both were made above and are freed once; the parameters do
        // not own the selector.
        unsafe {
            if !params.is_null() {
                faiss_sys::faiss_SearchParameters_free(params);
            }
            faiss_sys::faiss_IDSelector_free(selector);
        }
        status
    }
}
