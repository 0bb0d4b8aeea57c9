//! What a tiers run leaves: the side-by-side table, tiers.json, one
//! HdrHistogram interval log per tier and workload, and plots.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use super::{
    FioOutcome, Measured, Outcome, TierReport, TierStatus, TiersRun, Workload, WorkloadReport,
    INTERVAL,
};
use crate::latency::Percentiles;
use crate::plot::{self, Axis, LineChart, Series};

/// What each row measures, printed under the table and stored in tiers.json.
pub const DEFINITIONS: [(&str, &str); 10] = [
    ("randread/randwrite 4K", "O_DIRECT 4 KiB I/Os at random 4 KiB-aligned offsets of the tier's region through one engine io_uring queue (registered buffers), or one librbd aio queue on an rbd: tier, QD 1 or 32; latency from submission to completion"),
    ("seq read/write 128K QD32", "sequential 128 KiB O_DIRECT I/Os at queue depth 32 (4 MiB in flight, enough to stream a single NVMe queue), wrapping at the region's end; MB/s = 10^6 bytes/s"),
    ("flush after 4K write", "a 4 KiB write at a random offset (untimed), then the engine's flush: IORING_OP_FSYNC with DATASYNC (fdatasync) on files and devices, rbd_aio_flush on an RBD image, nothing on RAM; the latency is the flush's alone"),
    ("fio rows (--compare-fio)", "fio with ioengine=io_uring, direct=1, registered buffers and file (ioengine=rbd on an rbd: tier), the same block size, queue depth, region, uniform random offsets (no random map) and duration, on the same file, device or image right after the engine; its completion latency percentiles; no fio row on RAM"),
    ("RAM tier", "the engine's RamDevice has no queue: QD n is n operations per BlockDevice::submit call, each operation's latency its batch's"),
    ("fs: 4K file create+fsync", "VexFS formatted on the tier and mounted through FUSE; open(O_CREAT|O_EXCL) + write 4 KiB + fsync + close of a new file in one directory, timed together"),
    ("fs: vector insert", "2,000 x 128 float32 vectors (the original VexFS benchmark's distribution) into one file in BATCH_INSERT ioctls of 100: latency per ioctl, ops/s counts vectors; the fsync after is untimed"),
    ("fs: vector search k=10", "VECTOR_SEARCH ioctls, cosine, k = 10, one at a time over 200 queries in turn; one untimed search first builds the index; ops/s counts queries"),
    ("latency", "microseconds from hdrhistogram (3 significant digits); the table shows p50 / p99, and p99.9 on rows where latency is the point"),
    ("files", "tiers.json (every number), hlog/TIER-WORKLOAD.hlog (HdrHistogram interval logs, 1 s intervals, values in ns), plots/*.png and *.svg"),
];

/// Percentile spectrum points: 1/(1-p) from 1 to this (p99.999).
const SPECTRUM_X_MAX: f64 = 100_000.0;
const SPECTRUM_STEPS_PER_DECADE: u32 = 20;
/// Interval logs report max values in ms, as the Java tools expect of ns values.
const HLOG_MAX_VALUE_DIVISOR: f64 = 1_000_000.0;

fn measured(outcome: &Outcome) -> Option<&Measured> {
    match outcome {
        Outcome::Ok { measured, .. } => Some(measured),
        _ => None,
    }
}

/// Writes hlog/, plots/ and tiers.json under `out`; returns what it wrote.
pub fn write_outputs(run: &mut TiersRun, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let hlog_dir = out.join("hlog");
    let plot_dir = out.join("plots");
    for dir in [&hlog_dir, &plot_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for tier in &mut run.tiers {
        for report in &mut tier.workloads {
            if let Outcome::Ok { hlog, measured, .. } = &mut report.outcome {
                let name = format!("{}-{}.hlog", tier.name, report.workload.key());
                write_hlog(&hlog_dir.join(&name), report.workload, measured)?;
                *hlog = Some(Path::new("hlog").join(&name));
                written.push(hlog_dir.join(name));
            }
        }
    }
    for workload in Workload::ALL {
        let series: Vec<Series> = run
            .tiers
            .iter()
            .filter_map(|tier| {
                let report = tier.workloads.iter().find(|w| w.workload == workload)?;
                let measured = measured(&report.outcome)?;
                Some(Series {
                    name: tier.name.clone(),
                    points: spectrum(&measured.total),
                })
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let title = format!("{}: latency by percentile", workload.label());
        written.extend(plot::line_chart(
            &plot_dir.join(format!("spectrum-{}", workload.key())),
            &LineChart {
                title: &title,
                x_label: "percentile as 1/(1-p): 10 = p90, 100 = p99, 1000 = p99.9, 100k = p99.999",
                y_label: "latency (us)",
                x_axis: Axis::Log,
                y_axis: Axis::Log,
                series: &series,
            },
        )?);
    }
    let categories: Vec<String> = Workload::ALL.iter().map(|w| w.key().to_string()).collect();
    let series: Vec<Series> = run
        .tiers
        .iter()
        .filter(|t| matches!(t.status, TierStatus::Present))
        .map(|tier| Series {
            name: tier.name.clone(),
            points: tier
                .workloads
                .iter()
                .filter_map(|report| {
                    let Outcome::Ok { ops_per_s, .. } = report.outcome else {
                        return None;
                    };
                    let index = Workload::ALL.iter().position(|w| *w == report.workload)?;
                    Some((index as f64, ops_per_s))
                })
                .collect(),
        })
        .collect();
    if !series.is_empty() {
        written.extend(plot::bar_chart(
            &plot_dir.join("throughput"),
            "Operations per second by tier",
            "ops/s (IOPS, flushes, files, vectors or queries)",
            &categories,
            &series,
        )?);
    }
    let json = out.join("tiers.json");
    std::fs::write(&json, serde_json::to_string_pretty(run)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    written.push(json);
    Ok(written)
}

/// (1/(1-p), latency µs) from p = 0 up to p99.999, no further than the
/// samples reach (beyond 1/(1-p) = count every percentile is the max).
fn spectrum(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    let count = histogram.len() as f64;
    let mut points = Vec::new();
    for step in 0..=(5 * SPECTRUM_STEPS_PER_DECADE) {
        let x = 10f64.powf(f64::from(step) / f64::from(SPECTRUM_STEPS_PER_DECADE));
        if x > SPECTRUM_X_MAX || x > count {
            break;
        }
        let quantile = 1.0 - 1.0 / x;
        points.push((x, histogram.value_at_quantile(quantile) as f64 / 1000.0));
    }
    points
}

fn write_hlog(path: &Path, workload: Workload, measured: &Measured) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = BufWriter::new(file);
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "vexfs-bench tiers: {} ({}); values in nanoseconds",
            workload.label(),
            workload.unit()
        ))
        .with_start_time(measured.started_at)
        .with_base_time(measured.started_at)
        .with_max_value_divisor(HLOG_MAX_VALUE_DIVISOR)
        .begin_log_with(&mut writer, &mut serializer)
        .with_context(|| format!("writing {}", path.display()))?;
    let tag = Tag::new(workload.key());
    let total = Duration::from_secs_f64(measured.seconds);
    for (index, histogram) in measured.intervals.iter().enumerate() {
        let start = INTERVAL * index as u32;
        let length = total.saturating_sub(start).min(INTERVAL);
        log.write_histogram(histogram, start, length, tag)
            .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", path.display()))?;
    }
    drop(log);
    std::io::Write::flush(&mut writer).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A count readers take in at a glance: 1.23M, 18.6k, 950.
fn rate(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn micros(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 1000.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// The ops/s cell: a rate, and MB/s on the sequential rows.
fn ops_cell(workload: Workload, ops_per_s: f64, mb_per_s: Option<f64>) -> String {
    let mut cell = rate(ops_per_s);
    if let Some(mb) =
        mb_per_s.filter(|_| matches!(workload, Workload::Read128kQd32 | Workload::Write128kQd32))
    {
        cell += &format!(" {mb:.0}MB/s");
    }
    cell
}

/// p50 / p99, and p99.9 on rows where latency is the point.
fn latency_cell(workload: Workload, p: &Percentiles) -> String {
    let mut cell = format!("{} / {}", micros(p.p50), micros(p.p99));
    if workload.latency_row() {
        cell += &format!(" / {}", micros(p.p999));
    }
    cell
}

fn latency_label(workload: Workload) -> &'static str {
    if workload.latency_row() {
        "p50 / p99 / p99.9 (us)"
    } else {
        "p50 / p99 (us)"
    }
}

/// (ops/s, latency) cells of the engine's or the filesystem's run of
/// `workload` on `tier`; what went wrong goes to `note`.
fn engine_cells(
    tier: &TierReport,
    workload: Workload,
    report: Option<&WorkloadReport>,
    note: &mut dyn FnMut(String),
) -> (String, String) {
    let report = match (&tier.status, report) {
        (TierStatus::Absent { .. }, _) => return ("absent".to_string(), String::new()),
        (TierStatus::Refused { .. }, _) => return ("refused".to_string(), String::new()),
        (TierStatus::Failed { .. }, _) => return ("FAILED".to_string(), String::new()),
        (TierStatus::Present, None) => return ("-".to_string(), String::new()),
        (TierStatus::Present, Some(report)) => report,
    };
    match &report.outcome {
        Outcome::Ok {
            ops_per_s,
            mb_per_s,
            errors,
            first_error,
            lat_us,
            ..
        } => {
            let mut ops = ops_cell(workload, *ops_per_s, *mb_per_s);
            if *errors > 0 {
                ops += " !";
                note(format!(
                    "{} {}: {errors} errors, first: {}",
                    tier.name,
                    workload.label(),
                    first_error.as_deref().unwrap_or("?")
                ));
            }
            (ops, latency_cell(workload, &lat_us.percentiles))
        }
        Outcome::Skipped { reason } => {
            note(format!("{}: skipped: {reason}", tier.name));
            ("skipped".to_string(), String::new())
        }
        Outcome::Failed { error } => {
            note(format!(
                "{} {}: FAILED: {error}",
                tier.name,
                workload.label()
            ));
            ("FAILED".to_string(), String::new())
        }
    }
}

/// (ops/s, latency) cells of fio's run of `workload` on `tier`, "-" where
/// there was none.
fn fio_cells(
    tier: &TierReport,
    workload: Workload,
    report: Option<&WorkloadReport>,
    note: &mut dyn FnMut(String),
) -> (String, String) {
    match report.and_then(|r| r.fio.as_ref()) {
        None => ("-".to_string(), String::new()),
        Some(FioOutcome::Ok(fio)) => (
            ops_cell(workload, fio.measured.iops, Some(fio.measured.mbps)),
            latency_cell(workload, &fio.measured.lat_us),
        ),
        Some(FioOutcome::Failed { error }) => {
            note(format!(
                "{} fio {}: FAILED: {error}",
                tier.name,
                workload.label()
            ));
            ("FAILED".to_string(), String::new())
        }
    }
}

/// The side-by-side table (rows: workloads, columns: tiers) and its notes.
pub fn render_table(run: &TiersRun) -> String {
    const LABEL_WIDTH: usize = 36;
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut note = |line: String| {
        if !notes.contains(&line) {
            notes.push(line);
        }
    };
    for workload in Workload::ALL {
        let mut ops_row = Vec::new();
        let mut lat_row = Vec::new();
        let mut fio_ops_row = Vec::new();
        let mut fio_lat_row = Vec::new();
        for tier in &run.tiers {
            let report = tier.workloads.iter().find(|w| w.workload == workload);
            let (ops, lat) = engine_cells(tier, workload, report, &mut note);
            let (fio_ops, fio_lat) = fio_cells(tier, workload, report, &mut note);
            ops_row.push(ops);
            lat_row.push(lat);
            fio_ops_row.push(fio_ops);
            fio_lat_row.push(fio_lat);
        }
        let fio_ran = run
            .tiers
            .iter()
            .flat_map(|t| &t.workloads)
            .any(|w| w.workload == workload && w.fio.is_some());
        rows.push((format!("{} {}", workload.label(), workload.unit()), ops_row));
        rows.push((format!("  {}", latency_label(workload)), lat_row));
        if fio_ran {
            rows.push(("  fio IOPS".to_string(), fio_ops_row));
            rows.push((format!("  fio {}", latency_label(workload)), fio_lat_row));
        }
    }
    let widths: Vec<usize> = run
        .tiers
        .iter()
        .enumerate()
        .map(|(i, tier)| {
            rows.iter()
                .map(|(_, cells)| cells[i].len())
                .chain([tier.name.len()])
                .max()
                .unwrap_or(0)
                + 3
        })
        .collect();
    let mut out = format!("{:<LABEL_WIDTH$}", "");
    for (tier, width) in run.tiers.iter().zip(&widths) {
        out += &format!("{:>width$}", tier.name);
    }
    out += "\n";
    for (label, cells) in &rows {
        out += &format!("{label:<LABEL_WIDTH$}");
        for (cell, width) in cells.iter().zip(&widths) {
            out += &format!("{cell:>width$}");
        }
        out += "\n";
    }
    out += "\n";
    for tier in &run.tiers {
        out += &match (&tier.status, &tier.target) {
            (TierStatus::Absent { reason }, _) => format!("{}: absent: {reason}\n", tier.name),
            (TierStatus::Refused { reason }, _) => format!("{}: refused: {reason}\n", tier.name),
            (TierStatus::Failed { error }, _) => format!("{}: FAILED: {error}\n", tier.name),
            (TierStatus::Present, Some(target)) => {
                format!("{}: {} ({target})\n", tier.name, tier.spec)
            }
            (TierStatus::Present, None) => format!("{}: {}\n", tier.name, tier.spec),
        };
    }
    for line in notes {
        out += &line;
        out += "\n";
    }
    out += &format!(
        "\n{:.1} s per workload, {} MiB per tier.\n",
        run.seconds,
        run.size_bytes >> 20
    );
    for (name, definition) in DEFINITIONS {
        out += &format!("{name}: {definition}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::new_histogram;

    #[test]
    fn the_spectrum_stops_where_the_samples_do() {
        let mut histogram = new_histogram();
        for ns in 1..=1000u64 {
            histogram.record(ns * 1000).unwrap();
        }
        let points = spectrum(&histogram);
        let (x_last, y_last) = *points.last().unwrap();
        assert!(x_last <= 1000.0 && x_last > 800.0, "{x_last}");
        assert!((y_last - 1000.0).abs() < 5.0, "{y_last}");
        assert!(points.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(spectrum(&new_histogram()).is_empty());
    }

    #[test]
    fn rates_and_latencies_read_at_a_glance() {
        assert_eq!(rate(1_234_567.0), "1.23M");
        assert_eq!(rate(18_640.0), "18.6k");
        assert_eq!(rate(950.2), "950");
        assert_eq!(micros(4.256), "4.26");
        assert_eq!(micros(47.06), "47.1");
        assert_eq!(micros(12_345.6), "12346");
    }
}
