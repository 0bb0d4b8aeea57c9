//! The side-by-side table of `vexfs-bench vectors`, the efSearch curve, and
//! the peer figures measured separately (BRIEF.md), printed as such.

use serde::Serialize;

use super::{SearchStats, SystemResult, VectorsRun};

/// A peer's figures from BRIEF.md ("Peers and the numbers to beat"):
/// measured on this machine, separately, never in this run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PeerFigure {
    pub system: &'static str,
    /// 10,000 × 1536, the original benchmark's data, fresh queries, cosine, k = 10.
    pub original_10k_1536: &'static str,
    /// 20,000 × 384 real sentence embeddings, cosine, k = 10.
    pub sentences_20k_384: &'static str,
}

pub const PEERS: &[PeerFigure] = &[
    PeerFigure {
        system: "faiss exact (1 thread)",
        original_10k_1536: "537 q/s, recall 1.0",
        sentences_20k_384: "1,495 q/s, recall 1.0",
    },
    PeerFigure {
        system: "faiss HNSW32 in-process",
        original_10k_1536: "efSearch 128: 1,044 q/s at 0.88",
        sentences_20k_384: "efSearch 64: 5,373 q/s at 0.991",
    },
    PeerFigure {
        system: "Qdrant's engine, embedded",
        original_10k_1536: "insert 18,163/s; 1,910 q/s at 0.82",
        sentences_20k_384: "insert 64,679/s; 3,056 q/s at 0.993",
    },
    PeerFigure {
        system: "ChromaDB 1.5, embedded / HTTP",
        original_10k_1536: "insert 1,710/s; 591 / 337 q/s at 0.81",
        sentences_20k_384: "insert 2,946/s; 809 / 499 q/s at 0.991",
    },
    PeerFigure {
        system: "LanceDB 0.40 (IVF_PQ + refine)",
        original_10k_1536: "120 q/s at 0.40",
        sentences_20k_384: "109 q/s at 0.97",
    },
    PeerFigure {
        system: "original VexFS (published)",
        original_10k_1536: "0.63 q/s at 0.20 through its FUSE layer",
        sentences_20k_384: "-",
    },
];

const LABEL_WIDTH: usize = 28;

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

fn latency_cells(search: &SearchStats) -> String {
    let lat = &search.lat_us;
    format!(
        "{:>9.1}{:>9.1}{:>10.1}{:>10.1}",
        lat.p50, lat.p99, lat.p999, lat.max
    )
}

fn system_row(result: &SystemResult) -> String {
    format!(
        "{:<LABEL_WIDTH$}{:>13.0}{:>9.3}{:>10.1}{}{:>11.4}",
        result.name,
        result.insert.vectors_per_s,
        result.ready_seconds,
        result.search.qps,
        latency_cells(&result.search),
        result.search.recall_at_k,
    )
}

/// The report a person reads: what ran, the two rows, the sweep, the peers.
pub fn render_table(run: &VectorsRun) -> String {
    let mut out = String::new();
    let params = if run.search_params.is_empty() {
        String::new()
    } else {
        format!(" ({})", run.search_params)
    };
    push_line(
        &mut out,
        &format!(
            "vectors: {} × {} {}, {} queries, k = {}, {}, index {}{}, batches of {}; one client thread",
            run.count, run.dims, run.dataset, run.queries, run.k, run.metric, run.index, params, run.batch
        ),
    );
    push_line(&mut out, "");
    push_line(
        &mut out,
        &format!(
            "{:<LABEL_WIDTH$}{:>13}{:>9}{:>10}{:>9}{:>9}{:>10}{:>10}{:>11}",
            "",
            "insert vec/s",
            "ready s",
            "QPS",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            format!("recall@{}", run.k)
        ),
    );
    push_line(&mut out, &system_row(&run.vexfs));
    push_line(&mut out, &system_row(&run.faiss));
    push_line(
        &mut out,
        &format!(
            "{:<LABEL_WIDTH$}{:>13.2}{:>9.2}{:>10.2}",
            "VexFS / faiss",
            run.vexfs.insert.vectors_per_s / run.faiss.insert.vectors_per_s,
            run.vexfs.ready_seconds / run.faiss.ready_seconds,
            run.vexfs.search.qps / run.faiss.search.qps,
        ),
    );
    push_line(&mut out, "");
    let (vexfs, faiss) = (&run.vexfs, &run.faiss);
    push_line(
        &mut out,
        &format!(
            "insert: VexFS: BATCH_INSERT ioctls of {} with ids, then fsync ({:.1} ms), timed together; per batch p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            run.batch,
            vexfs.insert.finish_ms,
            vexfs.insert.batch_lat_us.p50,
            vexfs.insert.batch_lat_us.p99,
            vexfs.insert.batch_lat_us.max
        ),
    );
    push_line(
        &mut out,
        &format!(
            "        faiss: train ({:.1} ms) and add in batches of {}{}; in memory, nothing persisted",
            faiss.insert.prepare_ms,
            faiss.insert.batch,
            if faiss.insert.batch < run.count {
                format!(
                    "; per batch p50 {:.1} µs, p99 {:.1} µs",
                    faiss.insert.batch_lat_us.p50, faiss.insert.batch_lat_us.p99
                )
            } else {
                " (one add; --faiss-batched adds in batches of --batch)".to_string()
            }
        ),
    );
    push_line(
        &mut out,
        &format!(
            "ready: insert plus the first search; VexFS builds its index on the first search ({:.1} ms), faiss while adding (first search {:.2} ms)",
            vexfs.first_search_ms, faiss.first_search_ms
        ),
    );
    push_line(
        &mut out,
        "search: each query once, one at a time, after the first search; recall against exact brute-force neighbours",
    );
    push_line(&mut out, &format!("VexFS: {}", vexfs.target));

    if !vexfs.ef_sweep.is_empty() {
        push_line(&mut out, "");
        push_line(
            &mut out,
            &format!(
                "HNSW efSearch sweep (VexFS: user.vexfs.search set between runs; faiss: ParameterSpace)\n{:<10}{:>11}{:>11}{:>9}{:>9}  {:>11}{:>11}{:>9}{:>9}",
                "efSearch",
                "VexFS QPS",
                format!("recall@{}", run.k),
                "p50 µs",
                "p99 µs",
                "faiss QPS",
                format!("recall@{}", run.k),
                "p50 µs",
                "p99 µs"
            ),
        );
        for (ours, theirs) in vexfs.ef_sweep.iter().zip(&faiss.ef_sweep) {
            let (a, b) = (&ours.search, &theirs.search);
            push_line(
                &mut out,
                &format!(
                    "{:<10}{:>11.1}{:>11.4}{:>9.1}{:>9.1}  {:>11.1}{:>11.4}{:>9.1}{:>9.1}",
                    ours.ef_search,
                    a.qps,
                    a.recall_at_k,
                    a.lat_us.p50,
                    a.lat_us.p99,
                    b.qps,
                    b.recall_at_k,
                    b.lat_us.p50,
                    b.lat_us.p99
                ),
            );
        }
    }

    push_line(&mut out, "");
    push_line(
        &mut out,
        "Peers, measured SEPARATELY on this machine (BRIEF.md, November 2026), NOT in this run; one client thread, k = 10, cosine:",
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
        "  (The structured data set here is synthetic: compare its figures with the right-hand column only loosely.)",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::Metric;
    use crate::latency::Percentiles;
    use crate::vectors::{InsertStats, SweepPoint};

    fn search(qps: f64, recall_at_k: f64) -> SearchStats {
        SearchStats {
            search_params: "efSearch=64".into(),
            queries: 100,
            seconds: 100.0 / qps,
            qps,
            lat_us: Percentiles {
                p50: 1e6 / qps,
                ..Default::default()
            },
            k: 10,
            recall_at_k,
        }
    }

    fn system(name: &'static str, qps: f64) -> SystemResult {
        SystemResult {
            name,
            target: format!("{name} target"),
            insert: InsertStats {
                vectors: 1000,
                batch: 100,
                seconds: 1.0,
                vectors_per_s: 1000.0,
                batch_lat_us: Percentiles::default(),
                prepare_ms: 0.0,
                finish_ms: 1.0,
            },
            first_search_ms: 5.0,
            ready_seconds: 1.005,
            search: search(qps, 0.99),
            ef_sweep: vec![SweepPoint {
                ef_search: 32,
                search: search(qps * 2.0, 0.95),
            }],
        }
    }

    #[test]
    fn the_table_names_both_rows_the_sweep_and_the_peers_as_separate() {
        let run = VectorsRun {
            benchmark: "vectors",
            dataset: "structured".into(),
            count: 1000,
            dims: 64,
            queries: 100,
            k: 10,
            metric: Metric::Cosine,
            batch: 100,
            index: "HNSW32".into(),
            search_params: "efSearch=64".into(),
            vexfs: system("VexFS (ioctl through FUSE)", 500.0),
            faiss: system("faiss in-process", 1000.0),
            peers_measured_separately: PEERS,
            kept: None,
        };
        let table = render_table(&run);
        for needle in [
            "VexFS (ioctl through FUSE)",
            "faiss in-process",
            "recall@10",
            "p99.9 µs",
            "efSearch sweep",
            "NOT in this run",
            "ChromaDB",
            "Qdrant",
        ] {
            assert!(table.contains(needle), "{needle} missing:\n{table}");
        }
        let ratio = table
            .lines()
            .find(|l| l.starts_with("VexFS / faiss"))
            .unwrap();
        assert!(ratio.trim_end().ends_with("0.50"), "{ratio}");
    }
}
