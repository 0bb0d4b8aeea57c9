//! The comparison as printed: faiss-cpu's one-at-a-time rows, and VexFS
//! through the mount ÷ faiss-cpu in q/s per setting, one at a time and
//! batched.

use serde::Serialize;

use super::FaissCpuReport;
use crate::search::measure::{BatchedStats, SystemResult};
use crate::search::report::{search_cells, setting_label_of};

/// The VexFS ÷ faiss-cpu q/s of one setting.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct QpsRatio {
    pub search_params: String,
    pub one_at_a_time: f64,
    /// None where either side ran no batched pass at this setting.
    pub batched: Option<f64>,
}

/// VexFS ÷ faiss-cpu q/s at each setting both measured.
pub fn qps_ratios(vexfs: &SystemResult, faiss_cpu: &FaissCpuReport) -> Vec<QpsRatio> {
    faiss_cpu
        .settings
        .iter()
        .filter_map(|theirs| {
            let ours = vexfs
                .settings
                .iter()
                .find(|s| s.search_params == theirs.search_params)?;
            let batched_of = |rows: &[BatchedStats]| {
                rows.iter()
                    .find(|b| b.search_params == theirs.search_params)
                    .map(|b| b.qps)
            };
            let batched = match (batched_of(&vexfs.batched), batched_of(&faiss_cpu.batched)) {
                (Some(ours), Some(theirs)) => Some(ours / theirs),
                _ => None,
            };
            Some(QpsRatio {
                search_params: theirs.search_params.clone(),
                one_at_a_time: ours.qps / theirs.qps,
                batched,
            })
        })
        .collect()
}

const SETTING_WIDTH: usize = 16;

/// faiss-cpu's one-at-a-time rows and the VexFS ÷ faiss-cpu q/s per setting.
pub fn render_faiss_cpu(report: &FaissCpuReport, k: usize, search_batch: usize) -> String {
    let mut lines = vec![
        format!(
            "{} beside VexFS, same data, index, queries and passes:",
            report.name
        ),
        format!(
            "  {}, numpy {}; {} OpenMP thread; SIMD level {} (from {}); compile options {}",
            report.python,
            report.numpy_version,
            report.omp_threads,
            report.simd_level,
            report.simd_level_from,
            report.compile_options
        ),
        format!(
            "  built in {:.2} s (train {:.2} s, one add {:.2} s); {}",
            report.train_seconds + report.add_seconds,
            report.train_seconds,
            report.add_seconds,
            report.peer
        ),
        format!(
            "{:<SETTING_WIDTH$}|{:>10} {:>9} {:>8} {:>8} {:>9} {:>9}   one at a time, latency per query",
            "setting",
            "QPS",
            format!("recall@{k}"),
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs"
        ),
    ];
    for stats in &report.settings {
        lines.push(format!(
            "{:<SETTING_WIDTH$}|{}",
            setting_label_of(&stats.search_params),
            search_cells(stats)
        ));
    }
    let batched_header = if search_batch > 0 {
        format!("batched ({search_batch} per request)")
    } else {
        "batched (--search-batch 0: not run)".to_string()
    };
    let batched_width = batched_header.chars().count();
    lines.push(format!(
        "VexFS (mount) ÷ faiss-cpu, q/s:\n{:<SETTING_WIDTH$}|{:>14} {batched_header:>batched_width$}",
        "setting", "one at a time"
    ));
    for ratio in &report.vexfs_over_faiss_cpu {
        lines.push(format!(
            "{:<SETTING_WIDTH$}|{:>14.2} {:>batched_width$}",
            setting_label_of(&ratio.search_params),
            ratio.one_at_a_time,
            ratio.batched.map_or("-".to_string(), |r| format!("{r:.2}"))
        ));
    }
    lines.push(format!("  faiss-cpu protocol: {}", report.protocol));
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Percentiles;
    use crate::search::faiss_cpu::{PEER_SCRIPT, PROTOCOL};
    use crate::search::SearchStats;

    #[test]
    fn ratios_pair_the_same_settings_and_are_rendered() {
        let stats = |params: &str, qps: f64| SearchStats {
            search_params: params.into(),
            queries: 100,
            seconds: 100.0 / qps,
            qps,
            lat_us: Percentiles::default(),
            k: 10,
            recall_at_k: 0.99,
            short_answers: 0,
            daemon_service_us_mean: None,
        };
        let batched = |params: &str, qps: f64| BatchedStats {
            search_params: params.into(),
            queries_per_request: 100,
            requests: 1,
            queries: 100,
            seconds: 100.0 / qps,
            qps,
            request_lat_us: Percentiles::default(),
            k: 10,
            recall_at_k: 0.99,
            short_answers: 0,
            daemon_service_us_mean: None,
        };
        let vexfs = SystemResult::of_passes(
            "VexFS (through FUSE)",
            100,
            vec![stats("efSearch=16", 800.0), stats("efSearch=64", 500.0)],
            vec![batched("efSearch=16", 3000.0)],
        );
        let mut report = FaissCpuReport {
            name: "faiss-cpu 1.15.1 (PyPI wheel, Python, in-process), SIMD AVX2".into(),
            python: "python (Python 3.11.2)".into(),
            peer: PEER_SCRIPT.into(),
            faiss_version: "1.15.1".into(),
            compile_options: "OPTIMIZE DD AVX2".into(),
            simd_level: "AVX2".into(),
            simd_level_from: "faiss",
            numpy_version: "2.4.6".into(),
            omp_threads: 1,
            train_seconds: 0.0,
            add_seconds: 0.5,
            protocol: PROTOCOL,
            settings: Vec::new(),
            batched: Vec::new(),
            vexfs_over_faiss_cpu: Vec::new(),
        };
        report.settings = vec![stats("efSearch=16", 1000.0), stats("efSearch=64", 1000.0)];
        report.batched = vec![
            batched("efSearch=16", 2000.0),
            batched("efSearch=64", 2000.0),
        ];
        report.vexfs_over_faiss_cpu = qps_ratios(&vexfs, &report);
        assert_eq!(
            report.vexfs_over_faiss_cpu,
            [
                QpsRatio {
                    search_params: "efSearch=16".into(),
                    one_at_a_time: 0.8,
                    batched: Some(1.5)
                },
                QpsRatio {
                    search_params: "efSearch=64".into(),
                    one_at_a_time: 0.5,
                    batched: None
                },
            ]
        );
        let text = render_faiss_cpu(&report, 10, 100);
        for needle in [
            "faiss-cpu 1.15.1 (PyPI wheel, Python, in-process), SIMD AVX2 beside VexFS",
            "VexFS (mount) ÷ faiss-cpu, q/s",
            "batched (100 per request)",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        let row = text
            .lines()
            .rfind(|l| l.starts_with("efSearch=16"))
            .unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 2..], ["0.80", "1.50"], "{row}");
        let row = text
            .lines()
            .rfind(|l| l.starts_with("efSearch=64"))
            .unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 2..], ["0.50", "-"], "{row}");
    }
}
