//! The daemon's own counters: FUSE requests by operation, commits and their
//! latency, the metadata cache's hits and misses. Read as Prometheus text
//! through the computed attribute `user.vexfs.metrics` of any directory
//! of the mount (`getfattr -n user.vexfs.metrics --only-values /mnt/vexfs`);
//! vexfs-serve's `/metrics` appends it (docs/HTTP.md). Counting is a
//! relaxed atomic add: nothing on a request's path waits for it.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Read-only, computed at each getxattr of a directory, not listed.
pub const XATTR_METRICS: &[u8] = b"user.vexfs.metrics";

/// FUSE operations counted apart; the rest are `other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lookup,
    Getattr,
    Setattr,
    Open,
    Create,
    Read,
    Write,
    Flush,
    Release,
    Fsync,
    Unlink,
    Rename,
    Mkdir,
    Readdir,
    Xattr,
    Ioctl,
    Other,
}

const OPS: [(Op, &str); 17] = [
    (Op::Lookup, "lookup"),
    (Op::Getattr, "getattr"),
    (Op::Setattr, "setattr"),
    (Op::Open, "open"),
    (Op::Create, "create"),
    (Op::Read, "read"),
    (Op::Write, "write"),
    (Op::Flush, "flush"),
    (Op::Release, "release"),
    (Op::Fsync, "fsync"),
    (Op::Unlink, "unlink"),
    (Op::Rename, "rename"),
    (Op::Mkdir, "mkdir"),
    (Op::Readdir, "readdir"),
    (Op::Xattr, "xattr"),
    (Op::Ioctl, "ioctl"),
    (Op::Other, "other"),
];

/// Commit latency buckets: ≤ 2^i µs for i in 0..COMMIT_BUCKETS (the last,
/// 2^24 µs ≈ 17 s), then +Inf.
const COMMIT_BUCKETS: usize = 25;

pub struct Counters {
    requests: [AtomicU64; OPS.len()],
    commits: AtomicU64,
    commit_us_sum: AtomicU64,
    /// Commits at most 2^i µs long, not cumulative (made so when rendered).
    commit_us: [AtomicU64; COMMIT_BUCKETS + 1],
    journal_blocks: AtomicU64,
    /// Search requests served, the queries they carried, and the
    /// nanoseconds spent serving them inside the daemon.
    searches: AtomicU64,
    search_queries: AtomicU64,
    search_ns_sum: AtomicU64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            commits: AtomicU64::new(0),
            commit_us_sum: AtomicU64::new(0),
            commit_us: std::array::from_fn(|_| AtomicU64::new(0)),
            journal_blocks: AtomicU64::new(0),
            searches: AtomicU64::new(0),
            search_queries: AtomicU64::new(0),
            search_ns_sum: AtomicU64::new(0),
        }
    }
}

/// What the metadata cache reports, read under the metadata lock.
pub struct CacheFigures {
    pub hits: u64,
    pub misses: u64,
    pub cached_blocks: u64,
    pub dirty_blocks: u64,
}

impl Counters {
    pub fn request(&self, op: Op) {
        let at = OPS
            .iter()
            .position(|(o, _)| *o == op)
            .unwrap_or(OPS.len() - 1);
        self.requests[at].fetch_add(1, Ordering::Relaxed);
    }

    /// A commit that made `journal_blocks` blocks durable in `latency`
    /// (from its seal to its journal's flush).
    pub fn commit(&self, latency: Duration, journal_blocks: u64) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = (0..COMMIT_BUCKETS)
            .find(|&i| us <= 1 << i)
            .unwrap_or(COMMIT_BUCKETS);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_us_sum.fetch_add(us, Ordering::Relaxed);
        self.commit_us[bucket].fetch_add(1, Ordering::Relaxed);
        self.journal_blocks
            .fetch_add(journal_blocks, Ordering::Relaxed);
    }

    /// A search request of `queries` queries served in `service` (from
    /// the ioctl handler's start to the answer written into the caller;
    /// FUSE's transport to and from the daemon is not in it).
    pub fn search(&self, queries: u64, service: Duration) {
        self.searches.fetch_add(1, Ordering::Relaxed);
        self.search_queries.fetch_add(queries, Ordering::Relaxed);
        self.search_ns_sum.fetch_add(
            u64::try_from(service.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Prometheus text exposition format.
    /// The text of `user.vexfs.metrics`; `huge_page_bytes`: what the
    /// process has had collapsed into huge pages (vectors::huge_pages).
    pub fn render(&self, cache: &CacheFigures, huge_page_bytes: u64) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP vexfs_fuse_requests_total FUSE requests the daemon served, by operation.\n# TYPE vexfs_fuse_requests_total counter"
        );
        for ((_, name), count) in OPS.iter().zip(&self.requests) {
            let _ = writeln!(
                out,
                "vexfs_fuse_requests_total{{op=\"{name}\"}} {}",
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP vexfs_commit_seconds Commits from seal to durable journal.\n# TYPE vexfs_commit_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, count) in self.commit_us.iter().enumerate() {
            cumulative += load(count);
            if i < COMMIT_BUCKETS {
                let le = (1u64 << i) as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "vexfs_commit_seconds_bucket{{le=\"{le}\"}} {cumulative}"
                );
            } else {
                let _ = writeln!(
                    out,
                    "vexfs_commit_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
                );
            }
        }
        let _ = writeln!(
            out,
            "vexfs_commit_seconds_sum {}\nvexfs_commit_seconds_count {}",
            load(&self.commit_us_sum) as f64 / 1e6,
            load(&self.commits)
        );
        let _ = writeln!(
            out,
            "# HELP vexfs_journal_blocks_total Blocks commits wrote to the journal.\n# TYPE vexfs_journal_blocks_total counter\nvexfs_journal_blocks_total {}",
            load(&self.journal_blocks)
        );
        let _ = writeln!(
            out,
            "# HELP vexfs_search_requests_total Search ioctls served (VECTOR_SEARCH, FILTERED_SEARCH).\n# TYPE vexfs_search_requests_total counter\nvexfs_search_requests_total {}",
            load(&self.searches)
        );
        let _ = writeln!(
            out,
            "# HELP vexfs_search_queries_total Queries those requests carried.\n# TYPE vexfs_search_queries_total counter\nvexfs_search_queries_total {}",
            load(&self.search_queries)
        );
        let _ = writeln!(
            out,
            "# HELP vexfs_search_service_seconds_total Time the daemon spent serving them, without FUSE's transport.\n# TYPE vexfs_search_service_seconds_total counter\nvexfs_search_service_seconds_total {}",
            load(&self.search_ns_sum) as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "# HELP vexfs_metadata_cache_hits_total Metadata block reads the cache answered.\n# TYPE vexfs_metadata_cache_hits_total counter\nvexfs_metadata_cache_hits_total {}",
            cache.hits
        );
        let _ = writeln!(
            out,
            "# HELP vexfs_metadata_cache_misses_total Metadata block reads that went to the device.\n# TYPE vexfs_metadata_cache_misses_total counter\nvexfs_metadata_cache_misses_total {}",
            cache.misses
        );
        let _ = writeln!(
            out,
            "# HELP vexfs_metadata_cache_blocks Metadata blocks held, and of them dirty.\n# TYPE vexfs_metadata_cache_blocks gauge\nvexfs_metadata_cache_blocks{{state=\"cached\"}} {}\nvexfs_metadata_cache_blocks{{state=\"dirty\"}} {}",
            cache.cached_blocks, cache.dirty_blocks
        );
        let _ = writeln!(
            out,
            "# HELP vexfs_huge_page_collapsed_bytes_total Bytes of the daemon's resident memory collapsed into 2 MiB pages after index builds.\n# TYPE vexfs_huge_page_collapsed_bytes_total counter\nvexfs_huge_page_collapsed_bytes_total {huge_page_bytes}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_prometheus_text() {
        let c = Counters::default();
        c.request(Op::Lookup);
        c.request(Op::Lookup);
        c.request(Op::Ioctl);
        c.commit(Duration::from_micros(300), 7);
        c.commit(Duration::from_micros(5), 3);
        c.search(1, Duration::from_micros(60));
        c.search(100, Duration::from_micros(440));
        let text = c.render(
            &CacheFigures {
                hits: 10,
                misses: 2,
                cached_blocks: 5,
                dirty_blocks: 1,
            },
            6 << 20,
        );
        assert!(text.contains("vexfs_fuse_requests_total{op=\"lookup\"} 2\n"));
        assert!(text.contains("vexfs_fuse_requests_total{op=\"ioctl\"} 1\n"));
        assert!(text.contains("vexfs_commit_seconds_count 2\n"));
        // 5 µs lies in the ≤ 8 µs bucket, 300 µs in ≤ 512 µs; buckets add up.
        assert!(text.contains("vexfs_commit_seconds_bucket{le=\"0.000004\"} 0\n"));
        assert!(text.contains("vexfs_commit_seconds_bucket{le=\"0.000008\"} 1\n"));
        assert!(text.contains("vexfs_commit_seconds_bucket{le=\"0.000512\"} 2\n"));
        assert!(text.contains("vexfs_commit_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("vexfs_journal_blocks_total 10\n"));
        assert!(text.contains("vexfs_search_requests_total 2\n"));
        assert!(text.contains("vexfs_search_queries_total 101\n"));
        assert!(text.contains("vexfs_search_service_seconds_total 0.0005\n"));
        assert!(text.contains("vexfs_metadata_cache_misses_total 2\n"));
        assert!(text.contains("vexfs_huge_page_collapsed_bytes_total 6291456\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
