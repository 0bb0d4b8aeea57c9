//! Latency histograms and the percentiles every report prints.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram records exactly (longer ones saturate): one minute.
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// A histogram of nanoseconds with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("valid histogram bounds")
}

/// Percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn from_histogram(histogram: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            p50: us(histogram.value_at_quantile(0.50)),
            p90: us(histogram.value_at_quantile(0.90)),
            p99: us(histogram.value_at_quantile(0.99)),
            p999: us(histogram.value_at_quantile(0.999)),
            max: us(histogram.max()),
        }
    }

    /// (label, value) pairs in print order.
    pub fn rows(&self) -> [(&'static str, f64); 5] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p999),
            ("max", self.max),
        ]
    }
}

/// Throughput and latency of one system on one workload: what every
/// column of a side-by-side table holds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Measurement {
    pub iops: f64,
    /// 10^6 bytes per second.
    pub mbps: f64,
    /// All I/Os (for fio, which cannot merge directions: reads, else writes).
    pub lat_us: Percentiles,
    pub read_lat_us: Option<Percentiles>,
    pub write_lat_us: Option<Percentiles>,
}

impl Measurement {
    /// From per-direction histograms; a direction the workload never does is `None`.
    pub fn from_histograms(
        read: &Histogram<u64>,
        write: &Histogram<u64>,
        (reads, writes): (bool, bool),
        ios: u64,
        bytes: u64,
        seconds: f64,
    ) -> Self {
        let mut all = read.clone();
        all.add(write).expect("histograms share their bounds");
        Self {
            iops: ios as f64 / seconds,
            mbps: bytes as f64 / seconds / 1e6,
            lat_us: Percentiles::from_histogram(&all),
            read_lat_us: reads.then(|| Percentiles::from_histogram(read)),
            write_lat_us: writes.then(|| Percentiles::from_histogram(write)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_distribution() {
        let mut histogram = new_histogram();
        for ns in 1..=1000u64 {
            histogram.record(ns * 1000).unwrap();
        }
        let p = Percentiles::from_histogram(&histogram);
        // hdrhistogram keeps 3 significant digits.
        assert!((p.p50 - 500.0).abs() <= 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() <= 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() <= 1.0, "{p:?}");
    }
}
