//! Exact neighbours by brute force, and recall@k against them.

use anyhow::{bail, Result};

use super::{Metric, Vectors};

/// Inner product; eight independent sums so the compiler can vectorise it
/// without reassociating floating-point additions on its own.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            let d = x[i] - y[i];
            sums[i] += d * d;
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// The exact `k` nearest stored vectors of every query.
#[derive(Clone, Debug)]
pub struct Neighbours {
    /// Neighbours per query: the `k` asked for, or fewer if fewer are stored.
    pub k: usize,
    /// `k` ids (row numbers of the stored vectors) per query, best first.
    pub ids: Vec<u64>,
}

impl Neighbours {
    pub fn of(&self, query: usize) -> &[u64] {
        &self.ids[query * self.k..(query + 1) * self.k]
    }

    pub fn queries(&self) -> usize {
        self.ids.len() / self.k.max(1)
    }

    /// The first `k` neighbours of the first `queries` queries (a ground-truth
    /// file often holds 100 per query, for more queries than are run).
    pub fn first(&self, queries: usize, k: usize) -> Result<Self> {
        if queries > self.queries() || k > self.k {
            bail!(
                "the ground truth has {} neighbours for {} queries; {k} for {queries} are needed",
                self.k,
                self.queries()
            );
        }
        let ids = (0..queries)
            .flat_map(|q| self.of(q)[..k].iter().copied())
            .collect();
        Ok(Self { k, ids })
    }
}

/// Brute force over every stored vector, on all cores (ties go to the lower id).
/// Cosine compares L2-normalised copies, as the ioctl interface does.
pub fn ground_truth(base: &Vectors, queries: &Vectors, k: usize, metric: Metric) -> Neighbours {
    assert_eq!(
        base.dims(),
        queries.dims(),
        "queries and vectors differ in dimensions"
    );
    let k = k.min(base.count());
    let (base, queries) = match metric {
        Metric::Cosine => (base.normalized(), queries.normalized()),
        Metric::L2 | Metric::Dot => (base.clone(), queries.clone()),
    };
    // Larger is closer, for every metric.
    let score = |q: &[f32], x: &[f32]| match metric {
        Metric::Cosine | Metric::Dot => dot(q, x),
        Metric::L2 => -squared_l2(q, x),
    };
    let mut ids = vec![0u64; queries.count() * k];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let queries_per_thread = queries.count().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (chunk_index, out) in ids.chunks_mut(queries_per_thread * k.max(1)).enumerate() {
            let (base, queries, score) = (&base, &queries, &score);
            scope.spawn(move || {
                let first = chunk_index * queries_per_thread;
                let mut best: Vec<(f32, u64)> = Vec::with_capacity(k + 1);
                for (offset, row) in out.chunks_mut(k.max(1)).enumerate() {
                    let q = queries.row(first + offset);
                    best.clear();
                    for i in 0..base.count() {
                        let s = score(q, base.row(i));
                        // NaN scores never enter.
                        if s.is_nan() || (best.len() == k && s <= best[k - 1].0) {
                            continue;
                        }
                        // Sorted by score, descending; equal scores keep the earlier (lower) id first.
                        let at = best.partition_point(|&(b, _)| b >= s);
                        best.insert(at, (s, i as u64));
                        best.truncate(k);
                    }
                    for (slot, &(_, id)) in row.iter_mut().zip(&best) {
                        *slot = id;
                    }
                }
            });
        }
    });
    Neighbours { k, ids }
}

/// Found ids, `k` slots per query (unused slots hold `u64::MAX`), against the
/// exact neighbours: the mean over queries of |found ∩ exact| / k.
pub fn recall_at_k(truth: &Neighbours, found: &[u64], k: usize) -> f64 {
    let queries = found.len() / k.max(1);
    if queries == 0 || truth.k == 0 {
        return 0.0;
    }
    let mut exact: Vec<u64> = Vec::with_capacity(truth.k);
    let mut total = 0usize;
    for q in 0..queries {
        exact.clear();
        exact.extend_from_slice(truth.of(q));
        exact.sort_unstable();
        let row = &found[q * k..(q + 1) * k];
        total += row[..truth.k.min(k)]
            .iter()
            .filter(|id| exact.binary_search(id).is_ok())
            .count();
    }
    total as f64 / (queries * truth.k) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::{original, original_queries};

    #[test]
    fn ground_truth_agrees_with_a_sort_for_every_metric() {
        let base = original(300, 16, 5).unwrap();
        let mut scaled = base.as_slice().to_vec();
        for (i, x) in scaled.iter_mut().enumerate() {
            *x *= 1.0 + (i / 16 % 7) as f32;
        }
        let base = Vectors::new(16, scaled).unwrap();
        let queries = original_queries(5, 16, 5).unwrap();
        for metric in [Metric::Cosine, Metric::L2, Metric::Dot] {
            let truth = ground_truth(&base, &queries, 10, metric);
            for q in 0..5 {
                let query = queries.row(q);
                let mut all: Vec<(f32, u64)> = (0..300)
                    .map(|i| {
                        let x = base.row(i);
                        let s = match metric {
                            Metric::Cosine => dot(query, x) / dot(x, x).sqrt(),
                            Metric::Dot => dot(query, x),
                            Metric::L2 => -squared_l2(query, x),
                        };
                        (s, i as u64)
                    })
                    .collect();
                all.sort_by(|a, b| b.0.total_cmp(&a.0));
                let expected: Vec<u64> = all[..10].iter().map(|p| p.1).collect();
                assert_eq!(truth.of(q), &expected[..], "{metric} query {q}");
            }
        }
        let all = ground_truth(&base, &queries, 1000, Metric::L2);
        assert_eq!(all.k, 300);
    }

    #[test]
    fn recall_counts_the_overlap() {
        let truth = Neighbours {
            k: 2,
            ids: vec![1, 2, 3, 4],
        };
        assert_eq!(recall_at_k(&truth, &[2, 1, 3, 4], 2), 1.0);
        assert_eq!(recall_at_k(&truth, &[2, 9, u64::MAX, 3], 2), 0.5);
        let first = truth.first(1, 1).unwrap();
        assert_eq!((first.k, first.ids), (1, vec![1]));
        assert!(truth.first(3, 1).is_err());
        assert!(truth.first(1, 3).is_err());
    }
}
