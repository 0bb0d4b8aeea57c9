//! Exact k-nearest-neighbour search by a scan of every row, and the metric
//! conventions every search answers in (docs/VECTORS.md): squared L2 and
//! cosine distance ascending, inner product descending.
//!
//! The kernels are compiled twice, for AVX2+FMA and for the baseline, and
//! chosen at run time: this scan answers searches whose metric differs from
//! the index's, so it must not be the slow path it would be as scalar code.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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

/// Heap entry whose top is the worst hit kept so far.
struct Worst<'a> {
    hit: Hit,
    order: &'a dyn Fn(&Hit, &Hit) -> Ordering,
}

impl PartialEq for Worst<'_> {
    fn eq(&self, other: &Self) -> bool {
        (self.order)(&self.hit, &other.hit) == Ordering::Equal
    }
}
impl Eq for Worst<'_> {}
impl PartialOrd for Worst<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.order)(&self.hit, &other.hit)
    }
}

/// Rows scanned between two calls of [`search_until`]'s `stop`.
const STOP_CHECK_ROWS: usize = 16_384;

/// The `k` best rows for `query` under `search_type`, best first.
pub fn search(
    rows: &[f32],
    dimensions: usize,
    query: &[f32],
    k: usize,
    search_type: u32,
) -> Vec<Hit> {
    search_until(rows, dimensions, query, k, search_type, || false).expect("never stopped")
}

/// As [`search`], asking `stop` every [`STOP_CHECK_ROWS`] rows whether to
/// give up (None).
pub fn search_until(
    rows: &[f32],
    dimensions: usize,
    query: &[f32],
    k: usize,
    search_type: u32,
    stop: impl FnMut() -> bool,
) -> Option<Vec<Hit>> {
    let slots = 0..rows.len() / dimensions.max(1);
    search_slots_until(rows, dimensions, slots, query, k, search_type, stop)
}

/// As [`search_until`] over the rows of `slots` only (a filter's matches).
pub fn search_slots_until(
    rows: &[f32],
    dimensions: usize,
    slots: impl IntoIterator<Item = usize>,
    query: &[f32],
    k: usize,
    search_type: u32,
    mut stop: impl FnMut() -> bool,
) -> Option<Vec<Hit>> {
    let order = best_first(search_type);
    let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k + 1);
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
        let hit = Hit { slot, value };
        if heap.len() < k {
            heap.push(Worst { hit, order: &order });
        } else if let Some(worst) = heap.peek() {
            if order(&hit, &worst.hit) == Ordering::Less {
                heap.pop();
                heap.push(Worst { hit, order: &order });
            }
        }
    }
    let mut hits: Vec<Hit> = heap.into_iter().map(|w| w.hit).collect();
    hits.sort_by(&order);
    Some(hits)
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
}
