//! `vexfs-bench tiers`: one matrix of workloads on each storage tier (RAM,
//! tmpfs, the local disk, or any file or block device a user names), side by
//! side: raw block I/O through the engine, then VexFS formatted on the tier
//! and mounted through FUSE. Every operation's latency goes into an
//! hdrhistogram, per second too (interval logs), and into plots.
//!
//! A tier that is not there is reported absent, never faked; a device that
//! holds data is refused unless the user says `--destructive`.

mod command;
mod mounted;
mod raw;
mod report;
mod target;
mod timeline;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::fio::FioResult;
use crate::fs::{catch_interrupts, check_interrupted};
use crate::latency::Percentiles;
pub use command::{command, Args};
pub use report::{render_table, write_outputs, DEFINITIONS};
pub use target::{parse_tier, TierSpec, Where};

/// Limits of one run, named so that the flags can say them.
pub const SECONDS_MAX: f64 = 600.0;
pub const SIZE_BYTES_MIN: u64 = 64 << 20;
pub const SIZE_BYTES_MAX: u64 = 1 << 40;
pub const TIERS_MAX: usize = 16;
pub const NAME_BYTES_MAX: usize = 32;
/// Interval of the HdrHistogram interval logs.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What to measure, where.
#[derive(Clone, Debug)]
pub struct Config {
    pub tiers: Vec<TierSpec>,
    /// Per workload.
    pub seconds: f64,
    /// Bytes of each tier the workloads cover (a RAM tier's size; a file created for a tier).
    pub size_bytes: u64,
    /// tiers.json, hlog/, plots/ and the scratch mountpoints go here.
    pub out: PathBuf,
    /// Allow writes to a block device or an existing file, and data on it.
    pub destructive: bool,
    /// The `vexfs` binary (mkfs, mount).
    pub vexfs_binary: PathBuf,
    /// Run fio with each raw workload's shape on each file or device tier too.
    pub compare_fio: bool,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if !(self.seconds > 0.0 && self.seconds <= SECONDS_MAX) {
            bail!("--seconds {} is not in (0, {SECONDS_MAX}]", self.seconds);
        }
        if !(SIZE_BYTES_MIN..=SIZE_BYTES_MAX).contains(&self.size_bytes) {
            bail!(
                "--size {} is not in [{} MiB, {} TiB]",
                self.size_bytes,
                SIZE_BYTES_MIN >> 20,
                SIZE_BYTES_MAX >> 40
            );
        }
        if self.tiers.is_empty() || self.tiers.len() > TIERS_MAX {
            bail!(
                "--tier: {} tiers, 1 to {TIERS_MAX} allowed",
                self.tiers.len()
            );
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            if self.tiers[..i].iter().any(|t| t.name == tier.name) {
                bail!("--tier {}: the name is given twice", tier.name);
            }
        }
        Ok(())
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    /// How many times `step` will be told of a workload, for a progress bar:
    /// every workload on every tier, and fio's runs where there are any.
    pub fn steps(&self) -> usize {
        let fio_tiers = if self.compare_fio {
            self.tiers
                .iter()
                .filter(|t| !matches!(t.place, Where::Ram(_)))
                .count()
        } else {
            0
        };
        let fio_workloads = Workload::ALL.iter().filter(|w| w.fio_equivalent()).count();
        self.tiers.len() * Workload::ALL.len() + fio_tiers * fio_workloads
    }
}

/// The tiers measured when no --tier is given: RAM, tmpfs, the local disk.
pub fn default_tiers(size_bytes: u64) -> Vec<TierSpec> {
    vec![
        TierSpec {
            name: "ram".into(),
            place: Where::Ram(Some(size_bytes)),
        },
        TierSpec {
            name: "tmpfs".into(),
            place: Where::Tmpfs,
        },
        TierSpec {
            name: "disk".into(),
            place: Where::Path(PathBuf::from("/var/tmp")),
        },
    ]
}

/// The matrix, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Randread4kQd1,
    Randread4kQd32,
    Randwrite4kQd1,
    Randwrite4kQd32,
    Read128kQd32,
    Write128kQd32,
    Flush4k,
    FileCreate4k,
    VectorInsert,
    VectorSearch,
}

impl Workload {
    pub const ALL: [Workload; 10] = [
        Workload::Randread4kQd1,
        Workload::Randread4kQd32,
        Workload::Randwrite4kQd1,
        Workload::Randwrite4kQd32,
        Workload::Read128kQd32,
        Workload::Write128kQd32,
        Workload::Flush4k,
        Workload::FileCreate4k,
        Workload::VectorInsert,
        Workload::VectorSearch,
    ];

    /// File-name form: `randread-4k-qd1`.
    pub fn key(self) -> &'static str {
        match self {
            Workload::Randread4kQd1 => "randread-4k-qd1",
            Workload::Randread4kQd32 => "randread-4k-qd32",
            Workload::Randwrite4kQd1 => "randwrite-4k-qd1",
            Workload::Randwrite4kQd32 => "randwrite-4k-qd32",
            Workload::Read128kQd32 => "read-128k-qd32",
            Workload::Write128kQd32 => "write-128k-qd32",
            Workload::Flush4k => "flush-4k",
            Workload::FileCreate4k => "file-create-4k",
            Workload::VectorInsert => "vector-insert",
            Workload::VectorSearch => "vector-search",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Workload::Randread4kQd1 => "randread 4K QD1",
            Workload::Randread4kQd32 => "randread 4K QD32",
            Workload::Randwrite4kQd1 => "randwrite 4K QD1",
            Workload::Randwrite4kQd32 => "randwrite 4K QD32",
            Workload::Read128kQd32 => "seq read 128K QD32",
            Workload::Write128kQd32 => "seq write 128K QD32",
            Workload::Flush4k => "flush after 4K write",
            Workload::FileCreate4k => "fs: 4K file create+fsync",
            Workload::VectorInsert => "fs: vector insert",
            Workload::VectorSearch => "fs: vector search k=10",
        }
    }

    /// What ops/s counts.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::FileCreate4k => "files/s",
            Workload::VectorInsert => "vectors/s",
            Workload::VectorSearch => "queries/s",
            Workload::Flush4k => "flushes/s",
            _ => "IOPS",
        }
    }

    /// Rows whose point is latency: the table shows their p99.9 too.
    pub fn latency_row(self) -> bool {
        matches!(
            self,
            Workload::Randread4kQd1
                | Workload::Randwrite4kQd1
                | Workload::Flush4k
                | Workload::FileCreate4k
                | Workload::VectorSearch
        )
    }

    pub fn writes(self) -> bool {
        !matches!(
            self,
            Workload::Randread4kQd1 | Workload::Randread4kQd32 | Workload::Read128kQd32
        )
    }

    /// Raw I/O workloads that fio can run with the same shape (not the
    /// flush, whose write fio would time with it).
    pub fn fio_equivalent(self) -> bool {
        !self.through_fs() && self != Workload::Flush4k
    }

    pub fn through_fs(self) -> bool {
        matches!(
            self,
            Workload::FileCreate4k | Workload::VectorInsert | Workload::VectorSearch
        )
    }
}

/// Serialised as its key, the name its files carry.
impl Serialize for Workload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.key())
    }
}

/// One workload's histograms and counts, as measured.
pub struct Measured {
    pub ops: u64,
    /// Bytes moved, for MB/s; None where MB/s means nothing.
    pub bytes: Option<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    /// Every latency (ns).
    pub total: Histogram<u64>,
    /// The same latencies per [`INTERVAL`], by completion time.
    pub intervals: Vec<Histogram<u64>>,
    /// Wall-clock start, for the interval log's header.
    pub started_at: std::time::SystemTime,
}

/// Numbers of one histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LatencyStats {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub stdev_us: f64,
    #[serde(flatten)]
    pub percentiles: Percentiles,
}

impl LatencyStats {
    pub fn from_histogram(histogram: &Histogram<u64>) -> Self {
        Self {
            count: histogram.len(),
            min_us: histogram.min() as f64 / 1000.0,
            mean_us: histogram.mean() / 1000.0,
            stdev_us: histogram.stdev() / 1000.0,
            percentiles: Percentiles::from_histogram(histogram),
        }
    }
}

/// How one workload on one tier went.
#[derive(Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    Ok {
        ops: u64,
        seconds: f64,
        ops_per_s: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        mb_per_s: Option<f64>,
        errors: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        first_error: Option<String>,
        lat_us: LatencyStats,
        /// Relative to --out.
        #[serde(skip_serializing_if = "Option::is_none")]
        hlog: Option<PathBuf>,
        #[serde(skip)]
        measured: Box<Measured>,
    },
    /// Not run, and why (e.g. writes to a device without --destructive).
    Skipped {
        reason: String,
    },
    Failed {
        error: String,
    },
}

impl Outcome {
    pub fn from_measured(measured: Measured) -> Self {
        let seconds = measured.seconds.max(f64::MIN_POSITIVE);
        Outcome::Ok {
            ops: measured.ops,
            seconds: measured.seconds,
            ops_per_s: measured.ops as f64 / seconds,
            mb_per_s: measured.bytes.map(|b| b as f64 / seconds / 1e6),
            errors: measured.errors,
            first_error: measured.first_error.clone(),
            lat_us: LatencyStats::from_histogram(&measured.total),
            hlog: None,
            measured: Box::new(measured),
        }
    }
}

#[derive(Serialize)]
pub struct WorkloadReport {
    pub workload: Workload,
    pub label: &'static str,
    pub unit: &'static str,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// fio with the same shape on the same file or device (--compare-fio).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fio: Option<FioOutcome>,
}

/// How fio's run of a workload went.
#[derive(Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum FioOutcome {
    Ok(FioResult),
    Failed { error: String },
}

impl From<Result<FioResult>> for FioOutcome {
    fn from(ran: Result<FioResult>) -> Self {
        match ran {
            Ok(result) => FioOutcome::Ok(result),
            Err(error) => FioOutcome::Failed {
                error: format!("{error:#}"),
            },
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum TierStatus {
    Present,
    Absent {
        reason: String,
    },
    Refused {
        reason: String,
    },
    /// It is there but could not be opened or prepared.
    Failed {
        error: String,
    },
}

#[derive(Serialize)]
pub struct TierReport {
    pub name: String,
    /// As given (`ram:256M`, a directory, a file, a device).
    pub spec: String,
    /// What was measured: the device, or the file created for the tier.
    pub target: Option<String>,
    #[serde(flatten)]
    pub status: TierStatus,
    pub workloads: Vec<WorkloadReport>,
}

/// The whole run, as tiers.json holds it.
#[derive(Serialize)]
pub struct TiersRun {
    pub benchmark: &'static str,
    pub seconds: f64,
    pub size_bytes: u64,
    pub interval_s: f64,
    pub definitions: Vec<(&'static str, &'static str)>,
    pub tiers: Vec<TierReport>,
}

/// Told (tier, what runs next) before each workload, and None after the last.
pub type Step<'a> = dyn FnMut(Option<(&str, &str)>) + 'a;

/// Measures every tier in turn; absent or refused tiers become rows that say so.
/// `step` is called before each workload with (tier, workload) and after the last with None.
pub fn run(config: &Config, step: &mut Step) -> Result<TiersRun> {
    config.validate()?;
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("--out {}: creating it", config.out.display()))?;
    catch_interrupts();
    let mut tiers = Vec::new();
    for spec in &config.tiers {
        check_interrupted()?;
        tiers.push(measure_tier(config, spec, step)?);
    }
    step(None);
    Ok(TiersRun {
        benchmark: "tiers",
        seconds: config.seconds,
        size_bytes: config.size_bytes,
        interval_s: INTERVAL.as_secs_f64(),
        definitions: DEFINITIONS.to_vec(),
        tiers,
    })
}

fn measure_tier(config: &Config, spec: &TierSpec, step: &mut Step) -> Result<TierReport> {
    let mut report = TierReport {
        name: spec.name.clone(),
        spec: spec.place.to_string(),
        target: None,
        status: TierStatus::Present,
        workloads: Vec::new(),
    };
    let target = match target::Target::open(spec, config) {
        Ok(target::Opened::Ready(target)) => target,
        Ok(target::Opened::Absent(reason)) => {
            report.status = TierStatus::Absent { reason };
            return Ok(report);
        }
        Ok(target::Opened::Refused(reason)) => {
            report.status = TierStatus::Refused { reason };
            return Ok(report);
        }
        Err(error) => {
            report.status = TierStatus::Failed {
                error: format!("{error:#}"),
            };
            return Ok(report);
        }
    };
    report.target = Some(target.describe());
    let duration = config.duration();
    for workload in Workload::ALL.into_iter().filter(|w| !w.through_fs()) {
        step(Some((&spec.name, workload.label())));
        check_interrupted()?;
        let refused = workload.writes() && !target.writable();
        let outcome = if refused {
            Outcome::Skipped {
                reason: target.write_refusal(),
            }
        } else {
            match raw::run(&target, workload, duration) {
                Ok(measured) => Outcome::from_measured(measured),
                Err(error) => Outcome::Failed {
                    error: format!("{error:#}"),
                },
            }
        };
        let fio = if config.compare_fio && workload.fio_equivalent() && target.path.is_some() {
            step(Some((&spec.name, &format!("fio {}", workload.label()))));
            check_interrupted()?;
            let ran = (!refused).then(|| raw::fio(&target, workload, duration));
            ran.flatten().map(FioOutcome::from)
        } else {
            None
        };
        report.workloads.push(WorkloadReport {
            workload,
            label: workload.label(),
            unit: workload.unit(),
            outcome,
            fio,
        });
    }
    let fs_workloads: Vec<Workload> = Workload::ALL
        .into_iter()
        .filter(|w| w.through_fs())
        .collect();
    let outcomes = mounted::run(&target, &spec.name, config, &fs_workloads, &mut |w| {
        step(Some((&spec.name, w.label())))
    })?;
    for (workload, outcome) in fs_workloads.into_iter().zip(outcomes) {
        report.workloads.push(WorkloadReport {
            workload,
            label: workload.label(),
            unit: workload.unit(),
            outcome,
            fio: None,
        });
    }
    target.finish()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_keys_are_unique_file_names() {
        for (i, w) in Workload::ALL.iter().enumerate() {
            assert!(w
                .key()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            assert!(Workload::ALL[..i].iter().all(|o| o.key() != w.key()));
        }
    }

    #[test]
    fn limits_are_enforced_and_named() {
        let config = Config {
            tiers: default_tiers(SIZE_BYTES_MIN),
            seconds: 1.0,
            size_bytes: SIZE_BYTES_MIN,
            out: PathBuf::from("/tmp"),
            destructive: false,
            vexfs_binary: PathBuf::from("vexfs"),
            compare_fio: false,
        };
        assert!(config.validate().is_ok());
        let error = Config {
            seconds: SECONDS_MAX + 1.0,
            ..config.clone()
        }
        .validate()
        .unwrap_err();
        assert!(error.to_string().contains("--seconds"));
        let error = Config {
            size_bytes: 1 << 20,
            ..config.clone()
        }
        .validate()
        .unwrap_err();
        assert!(error.to_string().contains("--size"));
        let mut twice = config.clone();
        twice.tiers.push(twice.tiers[0].clone());
        assert!(twice.validate().unwrap_err().to_string().contains("twice"));
    }
}
