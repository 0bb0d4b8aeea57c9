//! Request counters and latency histograms per route template, kept in
//! hdrhistogram, written in Prometheus' text format by `GET /metrics`
//! (with the collections' gauges the service routes add).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies recorded up to an hour, to 3 significant digits.
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Bucket bounds of the Prometheus histogram, in seconds.
const BUCKETS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    latency_us: Histogram<u64>,
    latency_us_sum: u64,
}

/// What the server has answered, by (route template, method).
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<(String, String), RouteStats>>,
}

/// A label value as Prometheus' text format writes it.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn record(&self, route: &str, method: &str, status: u16, latency: Duration) {
        let latency_us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_US_MAX);
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let stats = routes
            .entry((route.to_string(), method.to_string()))
            .or_insert_with(|| RouteStats {
                by_status: BTreeMap::new(),
                // The bounds are constants that hdrhistogram accepts.
                latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                    .expect("constant histogram bounds are valid"),
                latency_us_sum: 0,
            });
        *stats.by_status.entry(status).or_insert(0) += 1;
        // Clamped into the histogram's range above, so it cannot fail.
        let _ = stats.latency_us.record(latency_us);
        stats.latency_us_sum = stats.latency_us_sum.saturating_add(latency_us);
    }

    /// The requests' metrics in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "# HELP vexfs_serve_requests_total Requests answered, by route template, method and status.");
        let _ = writeln!(out, "# TYPE vexfs_serve_requests_total counter");
        for ((route, method), stats) in routes.iter() {
            for (status, count) in &stats.by_status {
                let _ = writeln!(
                    out,
                    "vexfs_serve_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                    label(route)
                );
            }
        }
        let _ = writeln!(out, "# HELP vexfs_serve_request_duration_seconds Time from request to answer, by route template and method.");
        let _ = writeln!(out, "# TYPE vexfs_serve_request_duration_seconds histogram");
        for ((route, method), stats) in routes.iter() {
            let labels = format!("route=\"{}\",method=\"{method}\"", label(route));
            let h = &stats.latency_us;
            for le in BUCKETS_SECONDS {
                let count = h.count_between(0, (le * 1e6) as u64);
                let _ = writeln!(
                    out,
                    "vexfs_serve_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "vexfs_serve_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.len()
            );
            let _ = writeln!(
                out,
                "vexfs_serve_request_duration_seconds_sum{{{labels}}} {}",
                stats.latency_us_sum as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "vexfs_serve_request_duration_seconds_count{{{labels}}} {}",
                h.len()
            );
        }
        let _ = writeln!(out, "# HELP vexfs_serve_request_latency_seconds Quantiles of the time from request to answer (hdrhistogram, since start).");
        let _ = writeln!(out, "# TYPE vexfs_serve_request_latency_seconds summary");
        for ((route, method), stats) in routes.iter() {
            let labels = format!("route=\"{}\",method=\"{method}\"", label(route));
            let h = &stats.latency_us;
            for q in QUANTILES {
                let seconds = h.value_at_quantile(q) as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "vexfs_serve_request_latency_seconds{{{labels},quantile=\"{q}\"}} {seconds}"
                );
            }
            let _ = writeln!(
                out,
                "vexfs_serve_request_latency_seconds_sum{{{labels}}} {}",
                stats.latency_us_sum as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "vexfs_serve_request_latency_seconds_count{{{labels}}} {}",
                h.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_buckets_and_quantiles_per_route() {
        let metrics = Metrics::default();
        let route = "/collections/{name}/points/query";
        for ms in [1, 2, 3, 200] {
            metrics.record(route, "POST", 200, Duration::from_millis(ms));
        }
        metrics.record(route, "POST", 400, Duration::from_micros(50));
        let mut text = String::new();
        metrics.render(&mut text);
        let labels = format!("route=\"{route}\",method=\"POST\"");
        for line in [
            format!("vexfs_serve_requests_total{{{labels},status=\"200\"}} 4"),
            format!("vexfs_serve_requests_total{{{labels},status=\"400\"}} 1"),
            format!("vexfs_serve_request_duration_seconds_bucket{{{labels},le=\"0.0001\"}} 1"),
            format!("vexfs_serve_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 4"),
            format!("vexfs_serve_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 5"),
            format!("vexfs_serve_request_duration_seconds_count{{{labels}}} 5"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let p999 = text
            .lines()
            .find(|l| l.contains("quantile=\"0.999\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        assert!((0.19..0.21).contains(&p999), "{p999}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
