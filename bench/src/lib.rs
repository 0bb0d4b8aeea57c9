//! Benchmarks a storage engineer runs to decide where data lives: every
//! number is a latency distribution (hdrhistogram) measured next to the tool
//! one would otherwise use, in the same run. It measures; it must not tune or hide anything.

pub mod datasets;
pub mod engine;
pub mod fio;
pub mod fs;
pub mod latency;
pub mod pin;
pub mod plot;
pub mod search;
pub mod tiers;
pub mod tokio_uring_peer;
pub mod vectors;
