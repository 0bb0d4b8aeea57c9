//! Exact k-nearest-neighbour search by a scan of every row, and the metric
//! conventions every search answers in (docs/VECTORS.md): squared L2 and
//! cosine distance ascending, inner product descending.
//!
//! The kernels are compiled twice, for AVX2+FMA and for the baseline, and
//! chosen at run time: this scan answers searches whose metric differs from
//! the index's, so it must not be the slow path it would be as scalar code.

use std::cmp::Ordering;

use vexfs_uapi::{VEXFS_SEARCH_COSINE, VEXFS_SEARCH_DOT_PRODUCT, VEXFS_SEARCH_EUCLIDEAN};

/// One answer: the slot it came from and the value reported to the caller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub slot: usize,
    pub value: f32,
}

/// Whether larger values are better for `search_type`.
pub fn larger_is_better(search_type: u32) -> bool {
    search_type == VEXFS_SEARCH_DOT_PRODUCT
}

/// Orders hits best first; NaN sorts last whatever the direction.
pub fn best_first(search_type: u32) -> impl Fn(&Hit, &Hit) -> Ordering {
    let descending = larger_is_better(search_type);
    move |a: &Hit, b: &Hit| {
        let by_value = match (a.value.is_nan(), b.value.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ if descending => b.value.total_cmp(&a.value),
            _ => a.value.total_cmp(&b.value),
        };
        by_value.then(a.slot.cmp(&b.slot))
    }
}

pub fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// `v / |v|`, or zeros for a zero vector (which then has similarity 0 with everything).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let n = norm(v);
    if n > 0.0 && n.is_finite() {
        v.iter().map(|x| x / n).collect()
    } else {
        vec![0.0; v.len()]
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { l2_avx2(a, b) };
    }
    l2_portable(a, b)
}

/// Sixteen independent lanes: the compiler keeps them in vector registers
/// (no reassociation needed), and the two halves hide the FMA latency.
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = a.len() / 16;
    for c in 0..chunks {
        let x = &a[c * 16..c * 16 + 16];
        let y = &b[c * 16..c * 16 + 16];
        for j in 0..16 {
            acc[j] = x[j].mul_add(y[j], acc[j]);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 16..a.len() {
        sum = a[i].mul_add(b[i], sum);
    }
    sum
}

#[inline(always)]
fn l2_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = a.len() / 16;
    for c in 0..chunks {
        let x = &a[c * 16..c * 16 + 16];
        let y = &b[c * 16..c * 16 + 16];
        for j in 0..16 {
            let t = x[j] - y[j];
            acc[j] = t.mul_add(t, acc[j]);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 16..a.len() {
        let t = a[i] - b[i];
        sum = t.mul_add(t, sum);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
    l2_lanes(a, b)
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

fn l2_portable(a: &[f32], b: &[f32]) -> f32 {
    l2_lanes(a, b)
}

/// The `k` best hits of a scan so far, in a buffer kept from one scan to
/// the next: a binary max-heap under [`best_first`] (its root is the worst
/// hit kept), sorted best first in place when the scan ends. Neither step
/// allocates once the buffer has held `k` hits.
#[derive(Default)]
pub struct TopK {
    heap: Vec<Hit>,
}

impl TopK {
    /// Bytes it holds on to.
    pub fn capacity_bytes(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<Hit>()
    }

    /// Offers `hit`: kept while fewer than `k` are, or when better than
    /// the worst kept, which it then replaces.
    fn offer(&mut self, hit: Hit, k: usize, order: &impl Fn(&Hit, &Hit) -> Ordering) {
        let heap = &mut self.heap;
        if heap.len() < k {
            heap.push(hit);
            let mut at = heap.len() - 1;
            while at > 0 {
                let parent = (at - 1) / 2;
                if order(&heap[at], &heap[parent]) != Ordering::Greater {
                    break;
                }
                heap.swap(at, parent);
                at = parent;
            }
        } else if k > 0 && order(&hit, &heap[0]) == Ordering::Less {
            heap[0] = hit;
            let mut at = 0;
            loop {
                let (left, right) = (2 * at + 1, 2 * at + 2);
                let mut worst = at;
                if left < heap.len() && order(&heap[left], &heap[worst]) == Ordering::Greater {
                    worst = left;
                }
                if right < heap.len() && order(&heap[right], &heap[worst]) == Ordering::Greater {
                    worst = right;
                }
                if worst == at {
                    break;
                }
                heap.swap(at, worst);
                at = worst;
            }
        }
    }
}

/// Rows scanned between two calls of [`search_slots_until`]'s `stop`.
const STOP_CHECK_ROWS: usize = 16_384;

/// The `k` best rows for `query` under `search_type`, best first
/// (allocates: for callers off the request path).
pub fn search(
    rows: &[f32],
    dimensions: usize,
    query: &[f32],
    k: usize,
    search_type: u32,
) -> Vec<Hit> {
    let mut top = TopK::default();
    let slots = 0..rows.len() / dimensions.max(1);
    search_slots_until(
        rows,
        dimensions,
        slots,
        query,
        (k, search_type),
        || false,
        &mut top,
    )
    .expect("never stopped")
    .to_vec()
}

/// The `k` best rows of `slots` (all rows, or a filter's matches) for
/// `query` under `search_type`, best first, ranked in `top`; asks `stop`
/// every [`STOP_CHECK_ROWS`] rows whether to give up (None).
pub fn search_slots_until<'t>(
    rows: &[f32],
    dimensions: usize,
    slots: impl IntoIterator<Item = usize>,
    query: &[f32],
    (k, search_type): (usize, u32),
    mut stop: impl FnMut() -> bool,
    top: &'t mut TopK,
) -> Option<&'t [Hit]> {
    let order = best_first(search_type);
    top.heap.clear();
    top.heap.reserve(k);
    let query_norm = norm(query);
    for (scanned, slot) in slots.into_iter().enumerate() {
        if scanned % STOP_CHECK_ROWS == STOP_CHECK_ROWS - 1 && stop() {
            return None;
        }
        let row = &rows[slot * dimensions..(slot + 1) * dimensions];
        let value = match search_type {
            VEXFS_SEARCH_EUCLIDEAN => l2_squared(query, row),
            VEXFS_SEARCH_COSINE => {
                let denominator = query_norm * norm(row);
                if denominator > 0.0 {
                    (1.0 - dot(query, row) / denominator).clamp(0.0, 2.0)
                } else {
                    1.0
                }
            }
            _ => dot(query, row),
        };
        top.offer(Hit { slot, value }, k, &order);
    }
    // The order is total (slots break ties), so an unstable sort, which
    // needs no buffer, gives the one answer.
    top.heap.sort_unstable_by(&order);
    Some(&top.heap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_a_plain_loop() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let plain_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((dot(&a, &b) - plain_dot).abs() < 1e-4);
        assert!((l2_squared(&a, &b) - plain_l2).abs() < 1e-4);
        assert!((dot_portable(&a, &b) - plain_dot).abs() < 1e-4);
    }

    #[test]
    fn each_metric_orders_best_first() {
        // Rows: (1,0), (0,1), (2,0), (-1,0)
        let rows = [1.0, 0.0, 0.0, 1.0, 2.0, 0.0, -1.0, 0.0];
        let query = [1.0, 0.0];
        let l2 = search(&rows, 2, &query, 4, VEXFS_SEARCH_EUCLIDEAN);
        assert_eq!(l2.iter().map(|h| h.slot).collect::<Vec<_>>(), [0, 2, 1, 3]);
        assert_eq!(l2[0].value, 0.0);
        assert_eq!(l2[3].value, 4.0);
        let cosine = search(&rows, 2, &query, 2, VEXFS_SEARCH_COSINE);
        // (1,0) and (2,0) point the same way: distance 0 both; slot breaks the tie.
        assert_eq!(cosine.iter().map(|h| h.slot).collect::<Vec<_>>(), [0, 2]);
        assert!(cosine[0].value.abs() < 1e-6);
        let dot = search(&rows, 2, &query, 1, VEXFS_SEARCH_DOT_PRODUCT);
        assert_eq!(
            dot[0],
            Hit {
                slot: 2,
                value: 2.0
            }
        );
    }

    #[test]
    fn nan_sorts_last() {
        let rows = [f32::NAN, 1.0, 3.0];
        let hits = search(&rows, 1, &[1.0], 3, VEXFS_SEARCH_EUCLIDEAN);
        assert_eq!(hits.iter().map(|h| h.slot).collect::<Vec<_>>(), [1, 2, 0]);
    }

    /// The kept heap gives what sorting every hit gives, for every k
    /// (none, one, fewer than the rows, all, more), with ties and NaN, and
    /// a buffer used for a larger k first keeps nothing of it.
    #[test]
    fn top_k_is_the_head_of_a_full_sort() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let rows: Vec<f32> = (0..500)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                match i % 97 {
                    0 => f32::NAN,
                    1..=9 => 0.5, // ties, broken by slot
                    _ => (state >> 40) as f32 / (1u64 << 24) as f32,
                }
            })
            .collect();
        let mut top = TopK::default();
        for search_type in [VEXFS_SEARCH_EUCLIDEAN, VEXFS_SEARCH_DOT_PRODUCT] {
            let order = best_first(search_type);
            let mut all: Vec<Hit> = (0..rows.len())
                .map(|slot| Hit {
                    slot,
                    value: search(&rows[slot..slot + 1], 1, &[0.25], 1, search_type)[0].value,
                })
                .collect();
            all.sort_by(&order);
            for k in [600, 0, 1, 7, 100, 499, 500] {
                let kept = search_slots_until(
                    &rows,
                    1,
                    0..rows.len(),
                    &[0.25],
                    (k, search_type),
                    || false,
                    &mut top,
                )
                .unwrap();
                let bits = |hits: &[Hit]| -> Vec<(usize, u32)> {
                    hits.iter().map(|h| (h.slot, h.value.to_bits())).collect()
                };
                assert_eq!(
                    bits(kept),
                    bits(&all[..k.min(all.len())]),
                    "type {search_type}, k = {k}"
                );
            }
        }
    }
}
