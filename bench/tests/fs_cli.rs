//! `vexfs-bench fs` as a user runs it: formats and mounts VexFS and ext4
//! under a directory, prints one JSON object, and leaves nothing behind.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{bench, build_vexfs, mounted_under, Scratch};
use vexfs_bench::fs::find_tool;

/// The whole run at --seconds 1 takes about 10 s here; the brief allows 60.
const RUN_SECONDS_MAX: u64 = 60;

#[test]
fn measures_vexfs_beside_ext4_and_leaves_nothing_behind() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/dev/fuse").exists() {
        eprintln!(
            "SKIP measures_vexfs_beside_ext4_and_leaves_nothing_behind: needs root and /dev/fuse"
        );
        return;
    }
    let ext4 = find_tool("losetup").is_some() && find_tool("mkfs.ext4").is_some();
    if !ext4 {
        eprintln!("losetup or mkfs.ext4 missing: measuring VexFS alone (--no-ext4)");
    }
    let vexfs = build_vexfs();
    assert!(vexfs.is_file(), "{} was not built", vexfs.display());
    let scratch = Scratch::new("fs-cli");
    let dir = scratch.0.to_str().unwrap();
    let mut args = vec![
        "fs",
        "--dir",
        dir,
        "--files",
        "200",
        "--seconds",
        "1",
        "--size",
        "256M",
        "--threads",
        "2",
        "--json",
    ];
    if !ext4 {
        args.push("--no-ext4");
    }

    let started = Instant::now();
    let output = bench(&args);
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "vexfs-bench fs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(took < Duration::from_secs(RUN_SECONDS_MAX), "took {took:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));

    assert_eq!(report["benchmark"], "fs");
    assert_eq!(report["io_file_bytes"].as_u64(), Some(64 << 20));
    let filesystems: &[&str] = if ext4 { &["vexfs", "ext4"] } else { &["vexfs"] };
    for fs in filesystems {
        let result = &report[fs];
        for workload in ["create", "stat", "unlink"] {
            assert_eq!(
                result[workload]["ops"].as_u64(),
                Some(200),
                "{fs} {workload}"
            );
        }
        let mixed = &result["mixed"];
        assert_eq!(mixed["threads"].as_u64(), Some(2), "{fs}: {mixed}");
        for op in ["create", "write", "fsync", "stat"] {
            assert!(
                mixed[op]["ops"].as_u64().unwrap() > 0,
                "{fs} mixed {op}: {mixed}"
            );
        }
        // Search is VexFS's alone.
        assert_eq!(mixed["search"].is_null(), *fs == "ext4", "{fs}: {mixed}");
        for workload in ["create", "stat", "unlink", "randread", "randwrite", "fsync"] {
            let stats = &result[workload];
            let ops_per_s = stats["ops_per_s"].as_f64().unwrap();
            assert!(ops_per_s > 0.0, "{fs} {workload}: {stats}");
            let p50 = stats["lat_us"]["p50"].as_f64().unwrap();
            let max = stats["lat_us"]["max"].as_f64().unwrap();
            assert!(p50 > 0.0 && p50 <= max, "{fs} {workload}: {stats}");
        }
        assert_eq!(result["randread_cold"], true, "{fs}: {result}");
    }
    if !ext4 {
        assert!(report["ext4"].is_null());
    }

    // Unmounted, detached, removed: the directory is empty again.
    assert!(
        mounted_under(&scratch.0).is_empty(),
        "{:?}",
        mounted_under(&scratch.0)
    );
    let left: Vec<_> = std::fs::read_dir(&scratch.0).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn refuses_bad_arguments_before_touching_anything() {
    let scratch = Scratch::new("fs-cli-bad");
    let dir = scratch.0.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--dir", dir, "--size", "1M"], "--size"),
        (&["--dir", dir, "--files", "0"], "--files"),
        (&["--dir", dir, "--seconds", "0"], "--seconds"),
        (
            &["--dir", "/nonexistent/vexfs-bench"],
            "/nonexistent/vexfs-bench",
        ),
    ];
    for (extra, named) in cases {
        let mut args = vec!["fs"];
        args.extend_from_slice(extra);
        let output = bench(&args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(&scratch.0).unwrap().count(), 0);
}
