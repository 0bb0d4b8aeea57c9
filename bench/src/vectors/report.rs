//! The matrix as a table, and the original VexFS's published figures beside
//! this run's nearest cells, each with a line on what it measured.

use serde::Serialize;

use super::{Cell, MatrixRun, Op, CELL_INSERT_BYTES_MAX};
use crate::vectors::cells::Stop;

/// A figure the original VexFS project published (BRIEF.md): never measured here.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Published {
    pub what: &'static str,
    pub figure: &'static str,
    /// What the original measured.
    pub there: &'static str,
    /// What the matching cells here measure.
    pub here: &'static str,
}

pub const ORIGINAL_PUBLISHED: &[Published] = &[
    Published {
        what: "metadata",
        figure: "361,000 ioctls/s",
        there: "in-kernel module on a memory-backed mount; the ioctl kept the struct in kernel memory, nothing persisted",
        here: "each request a FUSE round trip to the userspace daemon; a same-layout SET changes nothing, a layout change rewrites the file's header (journaled, durable at fsync)",
    },
    Published {
        what: "insertion",
        figure: "\"263,852 vectors/s\"",
        there: "in-kernel module, the figure as the original published it, without the conditions beside it",
        here: "vectors read from this process through FUSE (process_vm_readv) into the file's vector region; durable at fsync, timed apart (note column)",
    },
    Published {
        what: "search",
        figure: "0.63 q/s at 20 % recall@10",
        there: "10,000 × 1536 through its FUSE layer",
        here: "an exact scan (Flat), k = 10, over what the insert cells stored, so recall 1.0; recall against QPS at 10,000 × 1536: vexfs-bench search --dataset original-large",
    },
];

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

fn note(cell: &Cell) -> String {
    match cell.op {
        Op::SetVectorMeta => "same layout: a no-op after the 1st".to_string(),
        Op::SetVectorMetaRelayout => {
            let other = if cell.dims < crate::datasets::DIMENSIONS_MAX {
                cell.dims + 1
            } else {
                cell.dims - 1
            };
            format!("{} ↔ {other} on the empty file", cell.dims)
        }
        Op::GetVectorMeta => "the layout, from the daemon's memory".to_string(),
        Op::BatchInsert => {
            let mut note = format!("then fsync {:.1} ms", cell.fsync_ms.unwrap_or_default());
            if cell.stopped_by == Stop::Bytes {
                note += &format!(" ({} MiB cap)", CELL_INSERT_BYTES_MAX >> 20);
            }
            note
        }
        Op::VectorSearch => format!(
            "Flat; 1st search {:.1} ms",
            cell.first_search_ms.unwrap_or_default()
        ),
    }
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The cell of `op` with the most ops/s.
fn fastest(run: &MatrixRun, op: Op, by: impl Fn(&Cell) -> f64) -> Option<&Cell> {
    run.cells
        .iter()
        .filter(|c| c.op == op && c.ops > c.errors)
        .max_by(|a, b| by(a).total_cmp(&by(b)))
}

fn ours(run: &MatrixRun, what: &str) -> String {
    let ops = |op| {
        fastest(run, op, |c| c.ops_per_s).map_or("-".to_string(), |c| {
            format!("{}/s (d = {})", thousands(c.ops_per_s), c.dims)
        })
    };
    match what {
        "metadata" => format!(
            "SET {}, relayout {}, GET {}",
            ops(Op::SetVectorMeta),
            ops(Op::SetVectorMetaRelayout),
            ops(Op::GetVectorMeta)
        ),
        "insertion" => fastest(run, Op::BatchInsert, |c| c.vectors_per_s.unwrap_or(0.0)).map_or(
            "-".to_string(),
            |c| {
                format!(
                    "{} vectors/s (d = {}, batch {})",
                    thousands(c.vectors_per_s.unwrap_or(0.0)),
                    c.dims,
                    c.batch.unwrap_or(0)
                )
            },
        ),
        _ => run
            .cells
            .iter()
            .filter(|c| c.op == Op::VectorSearch)
            .max_by_key(|c| c.dims)
            .map_or("-".to_string(), |c| {
                format!(
                    "{} q/s over {} × {}",
                    thousands(c.ops_per_s),
                    thousands(c.stored as f64),
                    c.dims
                )
            }),
    }
}

/// The report a person reads.
pub fn render_table(run: &MatrixRun) -> String {
    let mut out = String::new();
    let budget = match (run.budget.ops, run.budget.seconds) {
        (None, None) => format!("{} s", super::CELL_SECONDS_DEFAULT),
        (Some(ops), None) => format!("{ops} requests"),
        (None, Some(s)) => format!("{s} s"),
        (Some(ops), Some(s)) => format!("{ops} requests or {s} s"),
    };
    push_line(
        &mut out,
        &format!(
            "vectors: the original VexFS validator's matrix through the mount, one client thread, each cell at most {budget}; a fresh file per dimension"
        ),
    );
    push_line(&mut out, &format!("VexFS: {}", run.target));
    push_line(&mut out, "");
    push_line(
        &mut out,
        &format!(
            "{:>5}  {:<25}{:>6} {:>8} {:>7} {:>9} {:>11} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}  {}",
            "dims",
            "request",
            "batch",
            "stored",
            "ops",
            "ops/s",
            "vectors/s",
            "p50 µs",
            "p95 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "errors",
            "note"
        ),
    );
    for cell in &run.cells {
        let lat = &cell.lat_us;
        push_line(
            &mut out,
            &format!(
                "{:>5}  {:<25}{:>6} {:>8} {:>7} {:>9.0} {:>11} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>7}  {}",
                cell.dims,
                cell.op.label(),
                cell.batch.map_or("-".to_string(), |b| b.to_string()),
                cell.stored,
                cell.ops,
                cell.ops_per_s,
                cell.vectors_per_s
                    .map_or("-".to_string(), |v| format!("{v:.0}")),
                lat.p50,
                lat.p95,
                lat.p99,
                lat.p999,
                lat.max,
                cell.errors,
                note(cell)
            ),
        );
    }
    for cell in run.cells.iter().filter(|c| c.errors > 0) {
        let errnos: Vec<String> = cell
            .errnos
            .iter()
            .map(|(name, count)| format!("{name} ×{count}"))
            .collect();
        push_line(
            &mut out,
            &format!(
                "  errors: d = {} {}: {} of {} ({:.2} %): {}",
                cell.dims,
                cell.op.label(),
                cell.errors,
                cell.ops,
                cell.error_rate * 100.0,
                errnos.join(", ")
            ),
        );
    }
    push_line(
        &mut out,
        "  latency: the requests that succeeded; vectors/s of VECTOR_SEARCH: queries answered; stored: vectors in the file when the cell began",
    );
    push_line(
        &mut out,
        &format!(
            "  an insert cell also ends after {} MiB of vectors; BATCH_INSERT carries ids; searches are cosine, k = {}, cycling through 64 queries",
            CELL_INSERT_BYTES_MAX >> 20,
            run.search_k
        ),
    );
    push_line(&mut out, "");
    push_line(
        &mut out,
        "The original VexFS's published figures (BRIEF.md), NOT measured here, beside this run:",
    );
    for figure in ORIGINAL_PUBLISHED {
        push_line(
            &mut out,
            &format!(
                "  {:<10} original: {:<28} {}",
                figure.what, figure.figure, figure.there
            ),
        );
        push_line(
            &mut out,
            &format!("  {:<10} here:     {}", "", ours(run, figure.what)),
        );
        push_line(&mut out, &format!("  {:<20} {}", "", figure.here));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::{Budget, CellLatency};

    fn cell(op: Op, dims: usize, ops_per_s: f64) -> Cell {
        Cell {
            op,
            dims,
            batch: (op == Op::BatchInsert).then_some(100),
            stored: 0,
            ops: 10,
            errors: 0,
            error_rate: 0.0,
            errnos: Default::default(),
            seconds: 10.0 / ops_per_s,
            ops_per_s,
            vectors_per_s: (op == Op::BatchInsert).then_some(ops_per_s * 100.0),
            lat_us: CellLatency::default(),
            stopped_by: Stop::Ops,
            fsync_ms: Some(1.0),
            first_search_ms: Some(2.0),
        }
    }

    #[test]
    fn the_table_shows_every_cell_and_the_published_figures_as_not_ours() {
        let mut failed = cell(Op::GetVectorMeta, 128, 900.0);
        failed.errors = 1;
        failed.errnos.insert("EINVAL".into(), 1);
        let run = MatrixRun {
            benchmark: "vectors",
            target: "test".into(),
            budget: Budget {
                ops: Some(10),
                seconds: None,
            },
            search_k: 10,
            search_index: "Flat",
            cells: vec![
                cell(Op::SetVectorMeta, 4, 40_000.0),
                cell(Op::SetVectorMetaRelayout, 4, 4_000.0),
                failed,
                cell(Op::BatchInsert, 4, 1_000.0),
                cell(Op::VectorSearch, 4, 500.0),
            ],
            original_published: ORIGINAL_PUBLISHED,
            kept: None,
        };
        let table = render_table(&run);
        for needle in [
            "SET_VECTOR_META relayout",
            "4 ↔ 5 on the empty file",
            "p99.9 µs",
            "361,000 ioctls/s",
            "263,852",
            "0.63 q/s",
            "NOT measured here",
            "SET 40,000/s (d = 4)",
            "100,000 vectors/s (d = 4, batch 100)",
            "EINVAL ×1",
        ] {
            assert!(table.contains(needle), "{needle} missing:\n{table}");
        }
    }
}
