//! The side-by-side table of `vexfs-bench search`: insert, then recall and
//! QPS/latency per index setting for VexFS and faiss; the original VexFS's
//! published figures and the peers measured separately (BRIEF.md), each
//! labelled as what it is.

mod batched;

use super::faiss_cpu::render_faiss_cpu;
use super::http::render_http;
use super::published::{ORIGINAL_PUBLISHED, PEERS};
use super::{FilteredReport, FilteredStats, SearchRun, SearchStats, SystemResult};
use crate::latency::Percentiles;
use batched::render_batched;

const LABEL_WIDTH: usize = 24;
const SETTING_WIDTH: usize = 16;

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

fn insert_row(result: &SystemResult) -> String {
    let lat = &result.insert.batch_lat_us;
    format!(
        "{:<LABEL_WIDTH$}{:>12.0} {:>10.2} {:>10.2} {:>10.2} {:>14.1} {:>8.3}",
        result.name,
        result.insert.vectors_per_s,
        lat.p50 / 1000.0,
        lat.p99 / 1000.0,
        lat.max / 1000.0,
        result.first_search_ms,
        result.ready_seconds,
    )
}

pub(crate) fn search_cells(search: &SearchStats) -> String {
    cells(search.qps, search.recall_at_k, &search.lat_us)
}

/// The q/s, recall and latency cells every search row shows.
pub(crate) fn cells(qps: f64, recall_at_k: f64, lat: &Percentiles) -> String {
    format!(
        "{:>10.1} {:>9.4} {:>8.1} {:>8.1} {:>9.1} {:>9.1}",
        qps, recall_at_k, lat.p50, lat.p99, lat.p999, lat.max
    )
}

fn setting_label(stats: &SearchStats) -> &str {
    setting_label_of(&stats.search_params)
}

/// The report a person reads: what ran, insert, each setting, the context.
pub fn render_table(run: &SearchRun) -> String {
    let mut out = String::new();
    let passes = if run.search_batch > 0 {
        format!(
            "per setting every query in requests of {}, then every query one at a time",
            run.search_batch
        )
    } else {
        "one query at a time".to_string()
    };
    push_line(
        &mut out,
        &format!(
            "search: {} × {} {}, {} queries, k = {}, {}, index {}, batches of {}; one client thread, {passes}",
            run.count, run.dims, run.dataset, run.queries, run.k, run.metric, run.index, run.batch
        ),
    );
    push_line(&mut out, &format!("host: {}", run.host_cpu.describe()));
    push_line(
        &mut out,
        &match run.pinned_cpu {
            Some(cpu) => format!(
                "placement: this process, its peers and the VexFS daemon pinned to CPU {cpu} (--pin-cpu)"
            ),
            None => "placement: where the scheduler puts them (--pin-cpu N pins them to one CPU)"
                .to_string(),
        },
    );
    push_line(&mut out, &format!("ground truth: {}", run.ground_truth));
    push_line(&mut out, "");
    push_line(
        &mut out,
        &format!(
            "{:<LABEL_WIDTH$}{:>12} {:>10} {:>10} {:>10} {:>14} {:>8}",
            "insert", "vectors/s", "p50 ms", "p99 ms", "max ms", "1st search ms", "ready s"
        ),
    );
    push_line(&mut out, &insert_row(&run.vexfs));
    if let Some(http) = &run.http {
        push_line(&mut out, &insert_row(&http.result));
    }
    push_line(&mut out, &insert_row(&run.faiss));
    push_line(
        &mut out,
        &format!(
            "  VexFS: BATCH_INSERT ioctls of {} with ids (latency per batch), then fsync ({:.1} ms), timed together; it builds its index at the first search, past 20,000 vectors in the background (waited {:.1} ms for it, in ready)",
            run.batch, run.vexfs.insert.finish_ms, run.vexfs.index_wait_ms
        ),
    );
    push_line(
        &mut out,
        &format!(
            "  faiss: train ({:.1} ms) and add in batches of {}, in memory, nothing persisted; ready = insert + first search",
            run.faiss.insert.prepare_ms, run.faiss.insert.batch
        ),
    );
    push_line(&mut out, "");
    let recall = format!("recall@{}", run.k);
    push_line(
        &mut out,
        &format!(
            "{:<SETTING_WIDTH$}|{:>10} {:>9} {:>8} {:>8} {:>9} {:>9} |{:>10} {:>9} {:>8} {:>8} {:>9} {:>9} |{:>8}",
            "setting",
            "VexFS QPS",
            &recall,
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "faiss QPS",
            &recall,
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "QPS ÷"
        ),
    );
    for (ours, theirs) in run.vexfs.settings.iter().zip(&run.faiss.settings) {
        push_line(
            &mut out,
            &format!(
                "{:<SETTING_WIDTH$}|{} |{} |{:>8.2}",
                setting_label(ours),
                search_cells(ours),
                search_cells(theirs),
                ours.qps / theirs.qps
            ),
        );
    }
    for (ours, theirs) in run.vexfs.settings.iter().zip(&run.faiss.settings) {
        if ours.short_answers + theirs.short_answers > 0 {
            push_line(
                &mut out,
                &format!(
                    "  {}: fewer than {} neighbours for {} (VexFS) and {} (faiss) of {} queries: the index visited fewer vectors; each missing one counts as a miss",
                    setting_label(ours),
                    run.k,
                    ours.short_answers,
                    theirs.short_answers,
                    ours.queries
                ),
            );
        }
    }
    push_line(
        &mut out,
        "  per setting: user.vexfs.search set on the file (VexFS) or faiss's ParameterSpace (in-process), one untimed query, then every query once",
    );
    push_line(
        &mut out,
        "  QPS ÷ = VexFS QPS / faiss QPS on the same index: what the FUSE round trip and the daemon add",
    );
    for line in super::service::split_lines(&run.vexfs, &run.faiss) {
        push_line(&mut out, &line);
    }
    push_line(&mut out, &format!("  VexFS: {}", run.vexfs.target));
    if !run.plot.is_empty() {
        let paths: Vec<String> = run.plot.iter().map(|p| p.display().to_string()).collect();
        push_line(&mut out, &format!("  plot: {}", paths.join(", ")));
    }
    if run.search_batch > 0 {
        push_line(&mut out, "");
        out.push_str(&render_batched(run));
    }
    if let Some(faiss_cpu) = &run.faiss_cpu {
        push_line(&mut out, "");
        out.push_str(&render_faiss_cpu(faiss_cpu, run.k, run.search_batch));
    }
    if let Some(http) = &run.http {
        push_line(&mut out, "");
        out.push_str(&render_http(run, http));
    }
    if let Some(filtered) = &run.filtered {
        push_line(&mut out, "");
        out.push_str(&render_filtered(filtered));
    }

    push_line(&mut out, "");
    push_line(
        &mut out,
        "Published by the original VexFS project (its reports, as BRIEF.md quotes them), NOT measured here:",
    );
    for figure in ORIGINAL_PUBLISHED {
        let inserts = figure
            .inserts_per_s
            .map_or(String::new(), |v| format!("insert {v:.0}/s, "));
        let recall = figure.recall_at_10.map_or(String::new(), |r| {
            format!(" at {:.0} % recall@10", r * 100.0)
        });
        push_line(
            &mut out,
            &format!(
                "  {:<42}{inserts}{} q/s{recall} ({})",
                figure.system, figure.queries_per_s, figure.conditions
            ),
        );
    }
    push_line(&mut out, "");
    push_line(
        &mut out,
        "Measured SEPARATELY on this machine by this project (BRIEF.md, November 2026), NOT in this run; one client thread, k = 10, cosine:",
    );
    push_line(
        &mut out,
        &format!(
            "  {:<32}{:<42}{}",
            "system", "10,000 × 1536 original's data", "20,000 × 384 real sentence embeddings"
        ),
    );
    for peer in PEERS {
        push_line(
            &mut out,
            &format!(
                "  {:<32}{:<42}{}",
                peer.system, peer.original_10k_1536, peer.sentences_20k_384
            ),
        );
    }
    push_line(
        &mut out,
        "  (the original's data has near-tied neighbours: graph indexes land near 0.8 recall there; exact search is the honest answer on it)",
    );
    out
}

/// A setting as the tables name it: its parameters, or "(default)".
pub(super) fn setting_label_of(params: &str) -> &str {
    if params.is_empty() {
        "(default)"
    } else {
        params
    }
}

fn filtered_cells(stats: &FilteredStats) -> String {
    format!(
        "{:>9.1} {:>7.4} {:>9.1}",
        stats.qps, stats.recall_at_k, stats.lat_us.p50
    )
}

/// The filtered-search table: one row per selectivity, the systems side by side.
pub fn render_filtered(report: &FilteredReport) -> String {
    let mut out = String::new();
    push_line(
        &mut out,
        &format!(
            "filtered search: {} queries per fraction, k = {}, {}; payload {{\"bucket\": B(id)}}, B a hash of the id into 0..100000; filter {{\"must\":[{{\"key\":\"bucket\",\"range\":{{\"lt\": fraction × 100000}}}}]}}",
            report.queries,
            report.k,
            if report.search_params.is_empty() {
                "default search parameters"
            } else {
                &report.search_params
            }
        ),
    );
    let payloads = &report.payloads;
    push_line(
        &mut out,
        &format!(
            "payloads: SET_PAYLOADS (no vectors) of {} ids in batches of {}, then fsync: {:.0} payloads/s ({:.2} s; per batch p50 {:.1} ms, max {:.1} ms; fsync {:.1} ms)",
            payloads.payloads,
            payloads.batch,
            payloads.payloads_per_s,
            payloads.seconds,
            payloads.batch_lat_us.p50 / 1000.0,
            payloads.batch_lat_us.max / 1000.0,
            payloads.fsync_ms
        ),
    );
    push_line(
        &mut out,
        &format!(
            "VexFS before the filtered queries: {}",
            report.vexfs_index_status
        ),
    );
    push_line(&mut out, &format!("ground truth: {}", report.ground_truth));
    push_line(&mut out, "");
    let block = |name: &str| format!("{name:-^27}");
    push_line(
        &mut out,
        &format!(
            "{:>11} {:>8} |{} |{} |{} |{} | QPS ratios",
            "",
            "",
            block(" VexFS "),
            block(" VexFS + payload index "),
            block(" faiss + IDSelector "),
            block(" faiss exact + IDSel "),
        ),
    );
    let columns = format!("{:>9} {:>7} {:>9}", "QPS", "recall", "p50 µs");
    push_line(
        &mut out,
        &format!(
            "{:>11} {:>8} |{columns} |{columns} |{columns} |{columns} |{:>8} {:>10} {:>12}",
            "selectivity", "matching", "÷ faiss", "pidx÷faiss", "pidx÷exact"
        ),
    );
    for row in &report.rows {
        push_line(
            &mut out,
            &format!(
                "{:>11} {:>8} |{} |{} |{} |{} |{:>8.3} {:>10.3} {:>12.3}",
                row.selectivity,
                row.matching,
                filtered_cells(&row.vexfs),
                filtered_cells(&row.vexfs_payload_index),
                filtered_cells(&row.faiss),
                filtered_cells(&row.faiss_exact),
                row.vexfs.qps / row.faiss.qps,
                row.vexfs_payload_index.qps / row.faiss.qps,
                row.vexfs_payload_index.qps / row.faiss_exact.qps
            ),
        );
    }
    for row in &report.rows {
        let systems = [
            &row.vexfs,
            &row.vexfs_payload_index,
            &row.faiss,
            &row.faiss_exact,
        ];
        let shorts = systems.map(|s| s.short_answers);
        if shorts.iter().any(|&n| n > 0) {
            push_line(
                &mut out,
                &format!(
                    "  {}: fewer than min(k, matching) neighbours for {} (VexFS), {} (VexFS + payload index), {} (faiss) and {} (faiss exact) of {} queries; each missing one counts as a miss",
                    row.selectivity, shorts[0], shorts[1], shorts[2], shorts[3], row.vexfs.queries
                ),
            );
        }
    }
    for line in [
        "  VexFS: one FILTERED_SEARCH ioctl per query; below a quarter of the vectors matching it scans the matches exactly, otherwise its index with faiss's ID selector (docs/VECTORS.md)",
        &format!("  VexFS + payload index: the same after setfattr user.vexfs.payload_index={} (the filter's range is then checked only on the slots the index gives)", report.payload_index),
        "  faiss: the run's index in this process with an IDSelectorBitmap over the matching ids, made once per fraction outside the timed loop; faiss exact: IndexFlat with the same selector",
        "  ratios of QPS: ÷ faiss = VexFS / faiss + IDSelector; pidx÷faiss = VexFS + payload index / faiss + IDSelector; pidx÷exact = VexFS + payload index / faiss exact",
        "  one untimed query per fraction and system first; p90, p99, p99.9 and max of every cell are in --json",
    ] {
        push_line(&mut out, line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::Metric;

    use crate::search::BatchedStats;

    fn search(params: &str, qps: f64, recall_at_k: f64) -> SearchStats {
        SearchStats {
            search_params: params.into(),
            queries: 100,
            seconds: 100.0 / qps,
            qps,
            lat_us: Percentiles {
                p50: 1e6 / qps,
                ..Default::default()
            },
            k: 10,
            recall_at_k,
            short_answers: 0,
            daemon_service_us_mean: None,
        }
    }

    fn system(name: &'static str, qps: f64) -> SystemResult {
        SystemResult::of_passes(
            name,
            1000,
            vec![
                search("efSearch=32", qps * 2.0, 0.95),
                search("efSearch=64", qps, 0.99),
            ],
            vec![
                batched("efSearch=32", qps * 3.0, 0.95),
                batched("efSearch=64", qps * 1.5, 0.99),
            ],
        )
    }

    fn batched(params: &str, qps: f64, recall_at_k: f64) -> BatchedStats {
        BatchedStats {
            search_params: params.into(),
            queries_per_request: 100,
            requests: 1,
            queries: 100,
            seconds: 100.0 / qps,
            qps,
            request_lat_us: Percentiles {
                p50: 1e8 / qps,
                ..Default::default()
            },
            k: 10,
            recall_at_k,
            short_answers: 0,
            daemon_service_us_mean: None,
        }
    }

    #[test]
    fn the_table_names_both_systems_every_setting_and_the_context_as_such() {
        let run = SearchRun {
            benchmark: "search",
            dataset: "structured".into(),
            count: 1000,
            dims: 64,
            queries: 100,
            k: 10,
            metric: Metric::Cosine,
            batch: 100,
            search_batch: 100,
            index: "HNSW32".into(),
            host_cpu: crate::search::HostCpu::parse("model name\t: AMD EPYC\nflags\t: avx2\n"),
            pinned_cpu: Some(1),
            ground_truth: "computed here by brute force".into(),
            settings: vec!["efSearch=32".into(), "efSearch=64".into()],
            vexfs: system("VexFS (through FUSE)", 500.0),
            faiss: system("faiss in-process", 1000.0),
            filtered: None,
            http: None,
            faiss_cpu: None,
            original_published: ORIGINAL_PUBLISHED,
            peers_measured_separately: PEERS,
            plot: Vec::new(),
            kept: None,
        };
        let table = render_table(&run);
        for needle in [
            "VexFS (through FUSE)",
            "faiss in-process",
            "recall@10",
            "p99.9 µs",
            "efSearch=32",
            "NOT measured here",
            "NOT in this run",
            "insert 948/s, 249 q/s",
            "Qdrant",
            "0.63 q/s at 20 % recall@10",
            "host: AMD EPYC (avx2 yes, avx512f no)",
            "pinned to CPU 1 (--pin-cpu)",
            "requests of 100, then every query one at a time",
            "batched, 100 queries per request",
            "latency per REQUEST",
        ] {
            assert!(table.contains(needle), "{needle} missing:\n{table}");
        }
        let row = table
            .lines()
            .find(|l| l.starts_with("efSearch=64"))
            .unwrap();
        assert!(row.trim_end().ends_with("0.50"), "{row}");
        // The batched rows: one per system and setting, with the speedup
        // over the same system one at a time.
        let batched: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with("efSearch=64") && l.contains("faiss in-process"))
            .collect();
        assert_eq!(batched.len(), 1, "{table}");
        let cells: Vec<&str> = batched[0].split_whitespace().collect();
        assert_eq!(cells[4], "1500.0", "{}", batched[0]);
        assert_eq!(cells.last(), Some(&"1.50"), "{}", batched[0]);
        assert!(
            cells.contains(&"66666.7"),
            "p50 per request: {}",
            batched[0]
        );
    }

    #[test]
    fn the_filtered_table_has_a_row_per_selectivity_with_the_ratio() {
        let stats = |qps: f64, recall_at_k: f64| FilteredStats {
            queries: 200,
            seconds: 200.0 / qps,
            qps,
            lat_us: Percentiles {
                p50: 1e6 / qps,
                ..Default::default()
            },
            recall_at_k,
            short_answers: 0,
        };
        let row = |selectivity: f64, matching: usize| crate::search::FilteredRow {
            selectivity,
            bucket_limit: 0,
            filter: String::new(),
            matching,
            vexfs: stats(400.0, 1.0),
            vexfs_payload_index: stats(1200.0, 1.0),
            faiss: stats(1600.0, 0.97),
            faiss_exact: stats(800.0, 1.0),
        };
        let report = FilteredReport {
            queries: 200,
            k: 10,
            search_params: "efSearch=64".into(),
            ground_truth: "computed here",
            payloads: crate::search::PayloadStats {
                payloads: 100_000,
                batch: 10_000,
                seconds: 0.5,
                payloads_per_s: 200_000.0,
                batch_lat_us: Percentiles::default(),
                fsync_ms: 3.0,
            },
            vexfs_index_status: "index=HNSW32 indexed=100000 building=none".into(),
            payload_index: "bucket:integer",
            rows: vec![row(0.5, 50_123), row(0.001, 97)],
        };
        let table = render_filtered(&report);
        for needle in [
            "200000 payloads/s",
            "efSearch=64",
            "IDSelector",
            "pidx÷exact",
            "index=HNSW32",
            "payload_index=bucket:integer",
        ] {
            assert!(table.contains(needle), "{needle} missing:\n{table}");
        }
        let line = table
            .lines()
            .find(|l| l.trim_start().starts_with("0.001"))
            .unwrap();
        let cells: Vec<&str> = line.split_whitespace().filter(|c| *c != "|").collect();
        assert_eq!(cells[1], "97", "{line}");
        assert_eq!(
            cells[cells.len() - 3..],
            ["0.250", "0.750", "1.500"],
            "{line}"
        );
        assert!(line.contains("0.9700"), "{line}");
    }

    #[test]
    fn wide_numbers_stay_in_their_own_columns() {
        // An HNSW build inside one 10,000-vector add: 153 vectors/s, 65 s per batch.
        let mut slow = system("faiss in-process", 0.5);
        slow.insert.vectors_per_s = 153.0;
        slow.insert.batch_lat_us = Percentiles {
            p50: 65_263_370.2,
            p99: 65_263_370.2,
            max: 65_263_370.2,
            ..Default::default()
        };
        let row = insert_row(&slow);
        let fields: Vec<&str> = row.split_whitespace().skip(2).collect();
        assert_eq!(
            fields,
            ["153", "65263.37", "65263.37", "65263.37", "5.0", "1.005"]
        );
        let cells: Vec<String> = search_cells(&slow.settings[1])
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(cells.len(), 6, "{cells:?}");
        assert_eq!(cells[2], "2000000.0");
    }
}
