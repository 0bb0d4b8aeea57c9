//! Times calls into one histogram for the whole run and one per interval,
//! by completion time: what the interval logs are written from.

use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;

use super::{Measured, INTERVAL};
use crate::latency::new_histogram;

pub struct Timeline {
    started: Instant,
    started_at: SystemTime,
    total: Histogram<u64>,
    intervals: Vec<Histogram<u64>>,
    pub ops: u64,
    pub bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Timeline {
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            started_at: SystemTime::now(),
            total: new_histogram(),
            intervals: Vec::new(),
            ops: 0,
            bytes: 0,
            errors: 0,
            first_error: None,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records one latency that ended at `end`, `ops` operations long.
    pub fn record(&mut self, start: Instant, end: Instant, ops: u64) {
        let nanos = u64::try_from((end - start).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.total.saturating_record(nanos);
        let index =
            (end.saturating_duration_since(self.started).as_nanos() / INTERVAL.as_nanos()) as usize;
        while self.intervals.len() <= index {
            self.intervals.push(new_histogram());
        }
        self.intervals[index].saturating_record(nanos);
        self.ops += ops;
    }

    /// Times `op`, counting it as `ops` operations when it succeeds; a
    /// failure is counted and kept (the first one) instead.
    pub fn time<T, E: std::fmt::Display>(
        &mut self,
        ops: u64,
        op: impl FnOnce() -> Result<T, E>,
    ) -> Option<T> {
        let start = Instant::now();
        match op() {
            Ok(value) => {
                self.record(start, Instant::now(), ops);
                Some(value)
            }
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| error.to_string());
                None
            }
        }
    }

    pub fn finish(self, bytes: bool) -> Measured {
        Measured {
            ops: self.ops,
            bytes: bytes.then_some(self.bytes),
            errors: self.errors,
            first_error: self.first_error,
            seconds: self.started.elapsed().as_secs_f64(),
            total: self.total,
            intervals: self.intervals,
            started_at: self.started_at,
        }
    }
}
