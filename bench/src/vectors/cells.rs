//! One cell of the matrix: the same request again and again until its
//! budget runs out, each success's latency in a histogram, each failure
//! counted under its errno; nothing is dropped.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Cell, Op};
use crate::fs::check_interrupted;
use crate::latency::new_histogram;

/// Failures in a row after which a cell gives up: a request that always
/// fails would otherwise spin until the budget ends, and one that fails
/// this often says all there is to say.
pub const ERRORS_IN_A_ROW_MAX: u64 = 100;

/// What ended a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stop {
    Ops,
    Seconds,
    /// An insert cell reached [`super::CELL_INSERT_BYTES_MAX`].
    Bytes,
    /// [`ERRORS_IN_A_ROW_MAX`] failures in a row.
    Errors,
}

/// When a cell ends: whichever limit comes first.
pub(super) struct Limits {
    pub ops: u64,
    /// What to call reaching `ops` (an insert cell's byte cap is an ops limit too).
    pub ops_stop: Stop,
    pub duration: Option<Duration>,
}

/// Latency percentiles in microseconds, p95 included (the matrix's columns).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct CellLatency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl CellLatency {
    fn from_histogram(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            p50: us(histogram.value_at_quantile(0.50)),
            p95: us(histogram.value_at_quantile(0.95)),
            p99: us(histogram.value_at_quantile(0.99)),
            p999: us(histogram.value_at_quantile(0.999)),
            max: us(histogram.max()),
        }
    }
}

/// What one cell counted.
pub(super) struct Tally {
    ops: u64,
    errors: u64,
    errnos: BTreeMap<String, u64>,
    seconds: f64,
    latency_ns: Histogram<u64>,
    stopped_by: Stop,
    vectors_per_op: u64,
}

impl Tally {
    pub fn into_cell(self, op: Op, dims: usize, batch: Option<usize>, stored: u64) -> Cell {
        let succeeded = self.ops - self.errors;
        let per_s = |n: u64| {
            if self.seconds > 0.0 {
                n as f64 / self.seconds
            } else {
                0.0
            }
        };
        Cell {
            op,
            dims,
            batch,
            stored,
            ops: self.ops,
            errors: self.errors,
            error_rate: if self.ops == 0 {
                0.0
            } else {
                self.errors as f64 / self.ops as f64
            },
            errnos: self.errnos,
            seconds: self.seconds,
            ops_per_s: per_s(self.ops),
            vectors_per_s: (self.vectors_per_op > 0)
                .then(|| per_s(succeeded * self.vectors_per_op)),
            lat_us: CellLatency::from_histogram(&self.latency_ns),
            stopped_by: self.stopped_by,
            fsync_ms: None,
            first_search_ms: None,
        }
    }
}

/// The errno's name as the C headers spell it, for the ones these requests return.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EINTR => "EINTR",
        libc::EAGAIN => "EAGAIN",
        libc::ENOTCONN => "ENOTCONN",
        libc::ENOSYS => "ENOSYS",
        other => return format!("errno {other}"),
    };
    name.to_string()
}

fn failure_name(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(errno) => errno_name(errno),
        None => error.to_string(),
    }
}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Calls `op(i)` for i = 0, 1, … until a limit is reached; `vectors_per_op`
/// is what one success moves (0 for metadata requests).
pub(super) fn measure_cell(
    limits: Limits,
    vectors_per_op: u64,
    mut op: impl FnMut(u64) -> io::Result<()>,
) -> Result<Tally> {
    let mut tally = Tally {
        ops: 0,
        errors: 0,
        errnos: BTreeMap::new(),
        seconds: 0.0,
        latency_ns: new_histogram(),
        stopped_by: limits.ops_stop,
        vectors_per_op,
    };
    let mut errors_in_a_row = 0;
    let started = Instant::now();
    while tally.ops < limits.ops {
        check_interrupted()?;
        if limits.duration.is_some_and(|d| started.elapsed() >= d) {
            tally.stopped_by = Stop::Seconds;
            break;
        }
        let op_started = Instant::now();
        let outcome = op(tally.ops);
        let ns = elapsed_ns(op_started);
        tally.ops += 1;
        match outcome {
            Ok(()) => {
                tally.latency_ns.saturating_record(ns.max(1));
                errors_in_a_row = 0;
            }
            Err(error) => {
                tally.errors += 1;
                *tally.errnos.entry(failure_name(&error)).or_default() += 1;
                errors_in_a_row += 1;
                if errors_in_a_row >= ERRORS_IN_A_ROW_MAX {
                    tally.stopped_by = Stop::Errors;
                    break;
                }
            }
        }
    }
    tally.seconds = started.elapsed().as_secs_f64();
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_is_counted_under_its_errno() {
        let limits = Limits {
            ops: 10,
            ops_stop: Stop::Ops,
            duration: None,
        };
        let tally = measure_cell(limits, 4, |i| {
            if i % 5 == 0 {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                Ok(())
            }
        })
        .unwrap();
        let cell = tally.into_cell(Op::BatchInsert, 8, Some(4), 0);
        assert_eq!((cell.ops, cell.errors), (10, 2));
        assert_eq!(cell.error_rate, 0.2);
        assert_eq!(cell.errnos.get("EINVAL"), Some(&2));
        assert_eq!(cell.stopped_by, Stop::Ops);
        let lat = cell.lat_us;
        assert!(lat.p50 <= lat.p95 && lat.p95 <= lat.p99 && lat.p99 <= lat.p999);
        assert!(lat.p999 <= lat.max, "{lat:?}");
        assert!(cell.vectors_per_s.unwrap() > 0.0);
    }

    #[test]
    fn a_request_that_always_fails_ends_its_cell() {
        let limits = Limits {
            ops: u64::MAX,
            ops_stop: Stop::Ops,
            duration: None,
        };
        let tally = measure_cell(limits, 0, |_| {
            Err(io::Error::from_raw_os_error(libc::ENOTTY))
        })
        .unwrap();
        let cell = tally.into_cell(Op::GetVectorMeta, 4, None, 0);
        assert_eq!(cell.stopped_by, Stop::Errors);
        assert_eq!(cell.errors, ERRORS_IN_A_ROW_MAX);
        assert_eq!(cell.error_rate, 1.0);
        assert_eq!(cell.vectors_per_s, None);
    }
}
