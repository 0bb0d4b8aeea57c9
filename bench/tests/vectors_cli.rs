//! `vexfs-bench vectors` as a user runs it: formats and mounts VexFS, runs
//! the original validator's matrix through the ioctls (SET/GET_VECTOR_META,
//! BATCH_INSERT per batch size, VECTOR_SEARCH), prints one JSON object,
//! writes vectors.json, and leaves nothing behind.

mod common;

use std::path::Path;

use common::{bench, build_vexfs, run_json_leaving_nothing, Scratch};
use serde_json::Value;

fn can_mount() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0 && Path::new("/dev/fuse").exists()
}

fn number(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {value}"))
}

#[test]
fn every_cell_of_a_small_matrix_is_measured_without_errors() {
    if !can_mount() {
        eprintln!(
            "SKIP every_cell_of_a_small_matrix_is_measured_without_errors: needs root and /dev/fuse"
        );
        return;
    }
    let vexfs = build_vexfs();
    assert!(vexfs.is_file(), "{} was not built", vexfs.display());
    let scratch = Scratch::new("vectors-matrix");
    let out = Scratch::new("vectors-matrix-out");
    let args = [
        "vectors",
        "--dir",
        scratch.0.to_str().unwrap(),
        "--dims",
        "4,128",
        "--batches",
        "1,100",
        "--ops",
        "20",
        "--json",
        "--out",
        out.0.to_str().unwrap(),
    ];
    let report = run_json_leaving_nothing(&args, &scratch.0);

    let written = out.0.join("vectors.json");
    let from_file: Value =
        serde_json::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
    std::fs::remove_file(&written).unwrap();
    assert_eq!(from_file["cells"], report["cells"]);

    assert_eq!(report["benchmark"], "vectors");
    let cells = report["cells"].as_array().unwrap();
    // Per dimension: SET (same layout), SET (relayout), GET, 2 inserts, search.
    assert_eq!(cells.len(), 2 * 6, "{report}");
    for cell in cells {
        let op = cell["op"].as_str().unwrap();
        assert_eq!(cell["ops"].as_u64(), Some(20), "{cell}");
        assert_eq!(cell["errors"].as_u64(), Some(0), "{cell}");
        assert_eq!(number(cell, "error_rate"), 0.0, "{cell}");
        assert!(number(cell, "ops_per_s") > 0.0, "{cell}");
        let lat = &cell["lat_us"];
        let ordered = ["p50", "p95", "p99", "p999", "max"].map(|p| number(lat, p));
        assert!(ordered[0] > 0.0, "{cell}");
        assert!(
            ordered.windows(2).all(|w| w[0] <= w[1]),
            "percentiles out of order: {cell}"
        );
        match op {
            "BATCH_INSERT" => {
                assert!(number(cell, "vectors_per_s") > 0.0, "{cell}");
                assert!(number(cell, "fsync_ms") >= 0.0, "{cell}");
            }
            "VECTOR_SEARCH" => {
                // 20 batches of 1 and 20 of 100 were stored before it.
                assert_eq!(cell["stored"].as_u64(), Some(2_020), "{cell}");
                assert!(number(cell, "first_search_ms") > 0.0, "{cell}");
            }
            _ => assert!(cell["vectors_per_s"].is_null(), "{cell}"),
        }
    }
    let dims: Vec<u64> = cells.iter().map(|c| c["dims"].as_u64().unwrap()).collect();
    assert_eq!(&dims[..6], &[4; 6]);
    assert_eq!(&dims[6..], &[128; 6]);
    assert!(report["original_published"][0]["figure"]
        .as_str()
        .unwrap()
        .contains("361,000"));
}

#[test]
fn refuses_bad_arguments_before_touching_anything() {
    let scratch = Scratch::new("vectors-cli-bad");
    let dir = scratch.0.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--dims", "0"], "--dims"),
        (&["--dims", "65537"], "--dims"),
        (&["--batches", "0"], "--batches"),
        (&["--ops", "0"], "--ops"),
        (&["--seconds", "0"], "--seconds"),
        (&["--dims", "65536", "--batches", "1000"], "MiB"),
    ];
    for (extra, named) in cases {
        let mut args = vec!["vectors", "--dir", dir];
        args.extend_from_slice(extra);
        let output = bench(&args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(&scratch.0).unwrap().count(), 0);
}
