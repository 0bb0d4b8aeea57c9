//! Where a search puts its answers, and the buffers a FUSE worker keeps
//! from one search request to the next so that a search allocates nothing
//! on its way through the daemon: the queries read from the caller, faiss's
//! labels and distances or an exact scan's k best so far, and the ids and
//! values written back.

use std::cell::RefCell;

use vexfs_uapi::VEXFS_NO_ID;

use super::exact::TopK;
use super::index::IndexScratch;

/// What one thread keeps between requests at most; a request that needed
/// more gives the rest back when it is done (one request may take up to
/// VEXFS_SEARCH_QUERIES_MAX queries of VEXFS_VALID_DIMENSIONS' maximum,
/// which is what the request memory budget is for, not this cache).
pub const SCRATCH_KEPT_BYTES_MAX: usize = 4 << 20;

/// A search request's buffers.
#[derive(Default)]
pub struct Scratch {
    /// The queries, as read from the caller.
    pub queries: Vec<f32>,
    /// Per query, `k` places: ids, best first (unused: VEXFS_NO_ID).
    pub ids: Vec<u64>,
    /// ... and their values (unused: NaN).
    pub values: Vec<f32>,
    pub ranking: Ranking,
}

/// Where a search ranks before it answers: faiss's output when an index
/// answers, the k best so far when a scan does.
#[derive(Default)]
pub struct Ranking {
    pub index: IndexScratch,
    pub scan: TopK,
}

impl Scratch {
    fn capacity_bytes(&self) -> usize {
        self.queries.capacity() * 4
            + self.ids.capacity() * 8
            + self.values.capacity() * 4
            + self.ranking.index.capacity_bytes()
            + self.ranking.scan.capacity_bytes()
    }

    /// The answers of `queries` queries of `k` places each, every place unused.
    pub fn answers(&mut self, queries: usize, k: usize) -> (Answers<'_>, &mut Ranking) {
        let places = queries * k;
        self.ids.clear();
        self.ids.resize(places, VEXFS_NO_ID);
        self.values.clear();
        self.values.resize(places, f32::NAN);
        (
            Answers {
                k,
                ids: &mut self.ids,
                values: &mut self.values,
                most: 0,
            },
            &mut self.ranking,
        )
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's search buffers (fresh ones if `f` is
/// already running on this thread, which the request path never does).
pub fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let result = f(&mut scratch);
            if scratch.capacity_bytes() > SCRATCH_KEPT_BYTES_MAX {
                *scratch = Scratch::default();
            }
            result
        }
        Err(_) => f(&mut Scratch::default()),
    })
}

/// The answers of a batch of queries: `k` places per query, each query's
/// hits best first from its first place.
pub struct Answers<'a> {
    k: usize,
    ids: &'a mut [u64],
    values: &'a mut [f32],
    most: usize,
}

impl Answers<'_> {
    /// Query `query`'s answer is `hits` (best first; at most `k` are
    /// kept), replacing what it held; returns how many it kept.
    pub fn put(&mut self, query: usize, hits: impl IntoIterator<Item = (u64, f32)>) -> usize {
        let places = query * self.k..(query + 1) * self.k;
        let (ids, values) = (&mut self.ids[places.clone()], &mut self.values[places]);
        let mut kept = 0;
        for (id, value) in hits.into_iter().take(self.k) {
            ids[kept] = id;
            values[kept] = value;
            kept += 1;
        }
        ids[kept..].fill(VEXFS_NO_ID);
        values[kept..].fill(f32::NAN);
        self.most = self.most.max(kept);
        kept
    }

    /// The most hits any query got.
    pub fn most(&self) -> usize {
        self.most
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_fill_from_the_first_place_and_mark_the_rest_unused() {
        let mut scratch = Scratch::default();
        let (mut answers, _) = scratch.answers(2, 3);
        assert_eq!(answers.put(1, [(7, 0.5), (9, 0.25)]), 2);
        // A second answer for a query replaces the first, shorter or not.
        assert_eq!(answers.put(0, [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)]), 3);
        assert_eq!(answers.put(0, [(5, 0.5)]), 1);
        assert_eq!(answers.most(), 3);
        assert_eq!(
            scratch.ids,
            [5, VEXFS_NO_ID, VEXFS_NO_ID, 7, 9, VEXFS_NO_ID]
        );
        assert_eq!(scratch.values[0], 0.5);
        assert!(scratch.values[1].is_nan() && scratch.values[5].is_nan());
    }

    #[test]
    fn a_thread_keeps_its_buffers_up_to_the_limit() {
        with_scratch(|s| s.queries.resize(1024, 0.0));
        assert!(with_scratch(|s| s.queries.capacity()) >= 1024);
        with_scratch(|s| s.queries.resize(SCRATCH_KEPT_BYTES_MAX / 4 + 1, 0.0));
        assert_eq!(with_scratch(|s| s.queries.capacity()), 0);
        // Nested use gets buffers of its own instead of a panic.
        with_scratch(|outer| {
            outer.queries.push(1.0);
            with_scratch(|inner| assert!(inner.queries.is_empty()));
        });
    }
}
