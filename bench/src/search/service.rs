//! The daemon's own account of its searches (`user.vexfs.metrics` of a
//! directory on the mount): requests served and the time spent serving
//! them, without FUSE's transport. Read before and after a pass, it splits
//! the client's time per request into the daemon's share and the rest.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::SystemResult;

const XATTR_METRICS: &str = "user.vexfs.metrics";
/// Largest metrics text read (it is a few KiB).
const METRICS_BYTES_MAX: usize = 1 << 20;
const REQUESTS: &str = "vexfs_search_requests_total";
const SECONDS: &str = "vexfs_search_service_seconds_total";

/// The daemon's search counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServiceTotals {
    pub requests: u64,
    pub seconds: f64,
}

impl ServiceTotals {
    /// The counters of the daemon serving `dir` (a directory on its mount).
    pub fn read(dir: &Path) -> Result<ServiceTotals> {
        let text = metrics_text(dir)?;
        ServiceTotals::parse(&text).with_context(|| format!("{XATTR_METRICS} of {}", dir.display()))
    }

    /// From the metrics text (Prometheus exposition format).
    pub fn parse(text: &str) -> Result<ServiceTotals> {
        let value = |name: &str| -> Result<&str> {
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .find_map(|line| {
                    let (key, value) = line.split_once(' ')?;
                    (key == name).then_some(value.trim())
                })
                .with_context(|| format!("no {name}"))
        };
        let requests = value(REQUESTS)?;
        let seconds = value(SECONDS)?;
        let totals = ServiceTotals {
            requests: requests
                .parse()
                .with_context(|| format!("{REQUESTS} {requests:?}"))?,
            seconds: seconds
                .parse()
                .with_context(|| format!("{SECONDS} {seconds:?}"))?,
        };
        if !(totals.seconds.is_finite() && totals.seconds >= 0.0) {
            bail!("{SECONDS} {seconds:?} is not a time");
        }
        Ok(totals)
    }

    /// Mean service time per request between `self` and a later `after`, in
    /// µs; None when no request was served in between.
    pub fn mean_us_until(&self, after: &ServiceTotals) -> Option<f64> {
        let requests = after.requests.checked_sub(self.requests)?;
        (requests > 0).then(|| (after.seconds - self.seconds) / requests as f64 * 1e6)
    }
}

/// Per setting, VexFS's mean time per query one at a time (and per
/// request batched) split into the daemon's service and the rest, beside
/// faiss in-process's mean per query; nothing when the daemon's counters
/// were not read.
pub fn split_lines(vexfs: &SystemResult, faiss: &SystemResult) -> Vec<String> {
    let mut lines = Vec::new();
    for (ours, theirs) in vexfs.settings.iter().zip(&faiss.settings) {
        let Some(service) = ours.daemon_service_us_mean else {
            continue;
        };
        let label = if ours.search_params.is_empty() {
            "default"
        } else {
            &ours.search_params
        };
        let mean = 1e6 / ours.qps;
        let mut line = format!(
            "  {label}: VexFS {mean:.1} µs per query one at a time (mean) = {service:.1} µs in the daemon (user.vexfs.metrics) + {:.1} µs FUSE transport and client; faiss in-process {:.1} µs",
            mean - service,
            1e6 / theirs.qps
        );
        if let Some(batched) = vexfs
            .batched
            .iter()
            .find(|b| b.search_params == ours.search_params)
        {
            if let Some(service) = batched.daemon_service_us_mean {
                let per_request = batched.seconds / batched.requests.max(1) as f64 * 1e6;
                line.push_str(&format!(
                    "; batched {per_request:.0} µs per request = {service:.0} in the daemon + {:.0}",
                    per_request - service
                ));
            }
        }
        lines.push(line);
    }
    lines
}

fn metrics_text(dir: &Path) -> Result<String> {
    let path = CString::new(dir.as_os_str().as_bytes()).context("a path with a NUL byte")?;
    let name = CString::new(XATTR_METRICS).expect("no NUL");
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        // SAFETY: both strings are NUL-terminated; `buffer` is writable for its length.
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        if n >= 0 {
            buffer.truncate(n as usize);
            return String::from_utf8(buffer).context("metrics text is not UTF-8");
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::ERANGE) && buffer.len() < METRICS_BYTES_MAX {
            buffer.resize(buffer.len() * 4, 0);
            continue;
        }
        return Err(error)
            .with_context(|| format!("getxattr {XATTR_METRICS} of {}", dir.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_come_from_their_lines_and_give_a_mean() {
        let text = "# HELP vexfs_search_requests_total Search requests served.\n\
                    vexfs_search_requests_total 120\n\
                    vexfs_search_queries_total 1200\n\
                    vexfs_search_service_seconds_total 0.006\n";
        let before = ServiceTotals::parse(text).unwrap();
        assert_eq!(
            before,
            ServiceTotals {
                requests: 120,
                seconds: 0.006
            }
        );
        let after = ServiceTotals {
            requests: 220,
            seconds: 0.011,
        };
        assert!((before.mean_us_until(&after).unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(before.mean_us_until(&before), None);
        let missing = ServiceTotals::parse("vexfs_search_requests_total 1\n").unwrap_err();
        assert!(format!("{missing:#}").contains(SECONDS), "{missing:#}");
        let bad = ServiceTotals::parse(
            "vexfs_search_requests_total 1\nvexfs_search_service_seconds_total -1\n",
        )
        .unwrap_err();
        assert!(format!("{bad:#}").contains("not a time"), "{bad:#}");
    }

    /// The split names the daemon's share and the rest of VexFS's mean,
    /// beside faiss's, per setting that has the counters.
    #[test]
    fn the_split_is_the_mean_less_the_daemons_share() {
        use crate::latency::Percentiles;
        use crate::search::{BatchedStats, SearchStats};
        let stats = |qps: f64, service: Option<f64>| SearchStats {
            search_params: "efSearch=64".into(),
            queries: 1000,
            seconds: 1000.0 / qps,
            qps,
            lat_us: Percentiles::default(),
            k: 10,
            recall_at_k: 1.0,
            short_answers: 0,
            daemon_service_us_mean: service,
        };
        let system = |qps: f64, service: Option<f64>| {
            let batched = BatchedStats {
                search_params: "efSearch=64".into(),
                queries_per_request: 100,
                requests: 10,
                queries: 1000,
                seconds: 0.05,
                qps: 20_000.0,
                request_lat_us: Percentiles::default(),
                k: 10,
                recall_at_k: 1.0,
                short_answers: 0,
                daemon_service_us_mean: service.map(|_| 4_600.0),
            };
            SystemResult::of_passes("x", 1, vec![stats(qps, service)], vec![batched])
        };
        let lines = split_lines(&system(12_500.0, Some(60.0)), &system(20_000.0, None));
        assert_eq!(
            lines,
            ["  efSearch=64: VexFS 80.0 µs per query one at a time (mean) = 60.0 µs in the daemon (user.vexfs.metrics) + 20.0 µs FUSE transport and client; faiss in-process 50.0 µs; batched 5000 µs per request = 4600 in the daemon + 400"]
        );
        assert!(split_lines(&system(12_500.0, None), &system(20_000.0, None)).is_empty());
    }
}
