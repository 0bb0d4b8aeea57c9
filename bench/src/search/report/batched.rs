//! The batched passes' table: per setting a row per system (VexFS, faiss
//! in-process, faiss-cpu, HTTP), q/s and recall per query but latency per
//! request, and each system's gain over its own one-at-a-time pass.

use super::{cells, push_line, setting_label_of, SETTING_WIDTH};
use crate::search::{BatchedStats, SearchRun, SearchStats};

/// Label of faiss-cpu's rows in the batched table (its full name is in its own section).
const FAISS_CPU_LABEL: &str = "faiss-cpu (PyPI, Python)";
const SYSTEM_WIDTH: usize = 26;

/// The batched passes: per setting, a row per system, latency per request.
pub(super) fn render_batched(run: &SearchRun) -> String {
    let mut out = String::new();
    push_line(
        &mut out,
        &format!(
            "batched, {} queries per request (VexFS: one FILTERED_SEARCH ioctl without a filter; faiss: one search call); latency per REQUEST, not per query",
            run.search_batch
        ),
    );
    push_line(
        &mut out,
        &format!(
            "{:<SETTING_WIDTH$}{:<SYSTEM_WIDTH$}|{:>10} {:>9} {:>8} {:>8} {:>9} {:>9} |{:>11}",
            "setting",
            "system",
            "QPS",
            format!("recall@{}", run.k),
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "÷ 1 by 1"
        ),
    );
    let http = run.http.as_ref().map(|h| &h.result);
    let mut systems: Vec<(&str, &[BatchedStats], &[SearchStats])> = vec![
        (run.vexfs.name, &run.vexfs.batched, &run.vexfs.settings),
        (run.faiss.name, &run.faiss.batched, &run.faiss.settings),
    ];
    if let Some(faiss_cpu) = &run.faiss_cpu {
        systems.push((FAISS_CPU_LABEL, &faiss_cpu.batched, &faiss_cpu.settings));
    }
    if let Some(http) = http {
        systems.push((http.name, &http.batched, &http.settings));
    }
    for params in &run.settings {
        for (name, batched, one_by_one) in &systems {
            let Some(stats) = batched.iter().find(|b| &b.search_params == params) else {
                continue;
            };
            let speedup = one_by_one
                .iter()
                .find(|s| &s.search_params == params)
                .map_or("-".to_string(), |s| format!("{:.2}", stats.qps / s.qps));
            push_line(
                &mut out,
                &format!(
                    "{:<SETTING_WIDTH$}{name:<SYSTEM_WIDTH$}|{} |{speedup:>11}",
                    setting_label_of(params),
                    cells(stats.qps, stats.recall_at_k, &stats.request_lat_us),
                ),
            );
        }
    }
    let shorts: Vec<String> = systems
        .iter()
        .flat_map(|(name, batched, _)| {
            batched
                .iter()
                .filter(|b| b.short_answers > 0)
                .map(move |b| {
                    format!(
                        "{name} at {}: {}",
                        setting_label_of(&b.search_params),
                        b.short_answers
                    )
                })
        })
        .collect();
    if !shorts.is_empty() {
        push_line(
            &mut out,
            &format!(
                "  fewer than {} neighbours (each missing one a miss): {}",
                run.k,
                shorts.join("; ")
            ),
        );
    }
    push_line(
        &mut out,
        "  QPS = queries per second; ÷ 1 by 1 = this QPS / the same system's one-at-a-time QPS at the setting",
    );
    if let Some(http) = http {
        match &http.batched_left_out {
            Some(why) => push_line(&mut out, &format!("  {}: left out: {why}", http.name)),
            None => push_line(
                &mut out,
                &format!(
                    "  {}: one POST …/points/query/batch per request, at its one setting",
                    http.name
                ),
            ),
        }
    }
    out
}
