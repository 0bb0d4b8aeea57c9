//! `vexfs-bench vectors` as a user runs it: formats and mounts VexFS,
//! inserts and searches through the ioctls, measures faiss in-process on
//! the same vectors, prints one JSON object, and leaves nothing behind.

mod common;

use std::path::Path;

use common::{bench, build_vexfs, mounted_under, Scratch};
use serde_json::Value;

fn can_mount() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0 && Path::new("/dev/fuse").exists()
}

/// Runs `vexfs-bench vectors ARGS --dir SCRATCH --json`; the report, after
/// checking that the scratch directory is unmounted and empty again.
fn run_vectors(name: &str, args: &[&str]) -> Value {
    let vexfs = build_vexfs();
    assert!(vexfs.is_file(), "{} was not built", vexfs.display());
    let scratch = Scratch::new(name);
    let dir = scratch.0.to_str().unwrap();
    let mut all = vec!["vectors", "--dir", dir, "--json"];
    all.extend_from_slice(args);
    let output = bench(&all);
    assert!(
        output.status.success(),
        "vexfs-bench {all:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));
    assert!(
        mounted_under(&scratch.0).is_empty(),
        "{:?}",
        mounted_under(&scratch.0)
    );
    let left: Vec<_> = std::fs::read_dir(&scratch.0).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    report
}

fn number(report: &Value, path: &[&str]) -> f64 {
    let mut value = report;
    for key in path {
        value = &value[*key];
    }
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {report}"))
}

/// Both systems inserted everything and answered every query, quickly enough to time.
fn assert_throughput(report: &Value, count: u64, queries: u64) {
    for system in ["vexfs", "faiss"] {
        assert_eq!(report[system]["insert"]["vectors"].as_u64(), Some(count));
        assert_eq!(report[system]["search"]["queries"].as_u64(), Some(queries));
        for path in [
            ["insert", "vectors_per_s"],
            ["search", "qps"],
            ["search", "lat_us"],
        ] {
            let value = if path[1] == "lat_us" {
                number(&report[system]["search"]["lat_us"], &["p50"])
            } else {
                number(&report[system], &path)
            };
            assert!(value > 0.0, "{system} {path:?}: {}", report[system]);
        }
    }
}

#[test]
fn hnsw_through_the_mount_keeps_its_recall() {
    if !can_mount() {
        eprintln!("SKIP hnsw_through_the_mount_keeps_its_recall: needs root and /dev/fuse");
        return;
    }
    let report = run_vectors(
        "vectors-hnsw",
        &[
            "--dataset",
            "structured",
            "--count",
            "20000",
            "--dims",
            "384",
            "--clusters",
            "300",
            "--queries",
            "200",
            "--index",
            "HNSW32",
            "--search-params",
            "efSearch=128",
        ],
    );
    assert_eq!(report["benchmark"], "vectors");
    assert_eq!(report["index"], "HNSW32");
    assert_eq!(report["search_params"], "efSearch=128");
    assert_throughput(&report, 20_000, 200);
    for system in ["vexfs", "faiss"] {
        let recall = number(&report[system], &["search", "recall_at_k"]);
        assert!(recall >= 0.95, "{system}: recall@10 {recall}");
    }
}

#[test]
fn flat_through_the_mount_is_exact() {
    if !can_mount() {
        eprintln!("SKIP flat_through_the_mount_is_exact: needs root and /dev/fuse");
        return;
    }
    let report = run_vectors(
        "vectors-flat",
        &[
            "--dataset",
            "structured",
            "--count",
            "2000",
            "--dims",
            "64",
            "--clusters",
            "30",
            "--queries",
            "100",
            "--index",
            "Flat",
        ],
    );
    assert_throughput(&report, 2_000, 100);
    // The data is deterministic: a near-tie between ranks 10 and 11 that
    // float rounding could flip would fail every time, not now and then.
    for system in ["vexfs", "faiss"] {
        let recall = number(&report[system], &["search", "recall_at_k"]);
        assert_eq!(recall, 1.0, "{system}: exact search, recall@10 {recall}");
    }
}

#[test]
fn refuses_bad_arguments_before_touching_anything() {
    let scratch = Scratch::new("vectors-cli-bad");
    let dir = scratch.0.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--k", "0"], "--k"),
        (&["--batch", "0"], "--batch"),
        (&["--count", "0"], "--count"),
        (&["--index", "Flat", "--ef-sweep", "16"], "--ef-sweep"),
        (&["--search-params", "efSearch"], "name=value"),
    ];
    for (extra, named) in cases {
        let mut args = vec!["vectors", "--dir", dir, "--dims", "8", "--queries", "10"];
        args.extend_from_slice(extra);
        let output = bench(&args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(&scratch.0).unwrap().count(), 0);
}
