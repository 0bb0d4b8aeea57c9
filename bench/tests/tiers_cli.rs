//! `vexfs-bench tiers` as a user runs it: a RAM tier, a directory tier and
//! one that does not exist, side by side; then every file it promises is
//! there and parses, and nothing it created is left behind.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{bench, build_vexfs, mounted_under, Scratch};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

/// 17 workloads of 0.3 s plus filling, mkfs, mount and plots: about 10 s here.
const RUN_SECONDS_MAX: u64 = 90;
const RAW_WORKLOADS: [&str; 7] = [
    "randread-4k-qd1",
    "randread-4k-qd32",
    "randwrite-4k-qd1",
    "randwrite-4k-qd32",
    "read-128k-qd32",
    "write-128k-qd32",
    "flush-4k",
];
const FS_WORKLOADS: [&str; 3] = ["file-create-4k", "vector-insert", "vector-search"];

fn fuse_available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && Path::new("/dev/fuse").exists()
}

#[test]
fn measures_ram_and_a_file_tier_side_by_side_and_leaves_nothing_behind() {
    let fuse = fuse_available();
    if fuse {
        build_vexfs();
    } else {
        eprintln!("no root or /dev/fuse: the filesystem workloads are expected to be skipped");
    }
    let scratch = Scratch::new("tiers-cli");
    let tier_dir = scratch.0.join("tier");
    let out = scratch.0.join("out");
    std::fs::create_dir(&tier_dir).unwrap();
    let file_tier = format!("file={}", tier_dir.display());

    // fio beside the engine on the file tier, where scripts/setup installed it.
    let fio = std::process::Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !fio {
        eprintln!("fio is not installed: --compare-fio not exercised (scripts/setup installs it)");
    }
    let started = Instant::now();
    let mut args = vec![
        "tiers",
        "--seconds",
        "0.3",
        "--size",
        "64M",
        "--out",
        out.to_str().unwrap(),
        "--tier",
        "ram=ram:",
        "--tier",
        &file_tier,
        "--tier",
        "absent=/nonexistent",
    ];
    if fio {
        args.push("--compare-fio");
    }
    let output = bench(&args);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "vexfs-bench tiers failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(took < Duration::from_secs(RUN_SECONDS_MAX), "took {took:?}");

    // The table: one column per tier, the absent one said so.
    let header = stdout.lines().next().unwrap();
    for name in ["ram", "file", "absent"] {
        assert!(header.contains(name), "{name} missing from {header:?}");
    }
    assert!(
        stdout.contains("absent: absent: /nonexistent does not exist"),
        "{stdout}"
    );
    assert!(stdout.contains("randread 4K QD1 IOPS"), "{stdout}");
    assert_eq!(stdout.contains("  fio IOPS"), fio, "{stdout}");

    // tiers.json: every number, non-zero where the tier is present.
    let json = std::fs::read_to_string(out.join("tiers.json")).unwrap();
    let run: serde_json::Value = serde_json::from_str(&json).unwrap();
    let tiers = run["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 3);
    assert_eq!(tiers[2]["status"], "absent", "{}", tiers[2]);
    for tier in &tiers[..2] {
        assert_eq!(tier["status"], "present", "{tier}");
        let workload = |key: &str| {
            tier["workloads"]
                .as_array()
                .unwrap()
                .iter()
                .find(|w| w["workload"] == key)
                .unwrap_or_else(|| panic!("{key} missing in {tier}"))
                .clone()
        };
        let mut expected_ok: Vec<&str> = RAW_WORKLOADS.to_vec();
        if fuse {
            expected_ok.extend(FS_WORKLOADS);
        } else {
            for key in FS_WORKLOADS {
                assert_eq!(workload(key)["status"], "skipped", "{}", workload(key));
            }
        }
        for key in expected_ok {
            let report = workload(key);
            assert_eq!(report["status"], "ok", "{report}");
            assert!(report["ops"].as_u64().unwrap() > 0, "{report}");
            assert!(report["ops_per_s"].as_f64().unwrap() > 0.0, "{report}");
            assert_eq!(report["errors"], 0, "{report}");
            let lat = &report["lat_us"];
            assert!(lat["count"].as_u64().unwrap() > 0, "{report}");
            assert!(lat["p50"].as_f64().unwrap() <= lat["p99"].as_f64().unwrap());
            assert!(lat["p99"].as_f64().unwrap() <= lat["max"].as_f64().unwrap());
            // The interval log parses back to as many latencies as were counted.
            let hlog = out.join(report["hlog"].as_str().unwrap());
            let recorded = hlog_count(&hlog);
            assert_eq!(
                recorded,
                lat["count"].as_u64().unwrap(),
                "{}",
                hlog.display()
            );
            // fio ran each random and sequential workload on the file tier,
            // never on RAM and never the flush.
            let fio_expected =
                fio && tier["name"] == "file" && key != "flush-4k" && !FS_WORKLOADS.contains(&key);
            assert_eq!(report["fio"].is_object(), fio_expected, "{report}");
            if fio_expected {
                let fio = &report["fio"];
                assert_eq!(fio["status"], "ok", "{fio}");
                assert!(fio["iops"].as_f64().unwrap() > 0.0, "{fio}");
                assert!(fio["lat_us"]["p50"].as_f64().unwrap() > 0.0, "{fio}");
                assert!(
                    fio["command"]
                        .as_str()
                        .unwrap()
                        .contains("--ioengine=io_uring"),
                    "{fio}"
                );
            }
        }
    }

    // Plots: a real PNG and an SVG of each.
    let plots: Vec<_> = std::fs::read_dir(out.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        plots.iter().any(|p| p.ends_with("throughput.png")),
        "{plots:?}"
    );
    assert!(plots
        .iter()
        .any(|p| p.ends_with("spectrum-randread-4k-qd1.svg")));
    for plot in &plots {
        let bytes = std::fs::read(plot).unwrap();
        match plot.extension().and_then(|e| e.to_str()) {
            Some("png") => assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{}",
                plot.display()
            ),
            Some("svg") => assert!(String::from_utf8_lossy(&bytes).contains("<svg")),
            other => panic!("unexpected plot file {other:?}"),
        }
    }

    // Nothing left behind: the tier's file, the mount, its scratch directory.
    assert_eq!(
        std::fs::read_dir(&tier_dir).unwrap().count(),
        0,
        "files left in the tier directory"
    );
    assert!(mounted_under(&scratch.0).is_empty());
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut left_sorted = left.clone();
    left_sorted.sort();
    assert_eq!(left_sorted, ["hlog", "plots", "tiers.json"], "{left:?}");

    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir(&tier_dir).unwrap();
}

/// Latencies in all the interval histograms of one log.
fn hlog_count(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let mut deserializer = Deserializer::new();
    let mut count = 0;
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(interval) = entry.unwrap() {
            let encoded = base64_decode(interval.encoded_histogram());
            let histogram: Histogram<u64> =
                deserializer.deserialize(&mut encoded.as_slice()).unwrap();
            count += histogram.len();
            intervals += 1;
        }
    }
    assert!(intervals > 0, "{}: no intervals", path.display());
    count
}

/// Standard base64 (the interval log's encoding of each histogram).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut bits = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            bits |= value(c) << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn refuses_bad_arguments_naming_the_flag() {
    for (args, flag) in [
        (vec!["tiers", "--tier", "nvme"], "--tier"),
        (vec!["tiers", "--tier", "bad name=/tmp"], "--tier"),
        (vec!["tiers", "--seconds", "0"], "--seconds"),
        (vec!["tiers", "--seconds", "601"], "--seconds"),
        (vec!["tiers", "--size", "1M"], "--size"),
        (
            vec!["tiers", "--tier", "a=/tmp", "--tier", "a=/var/tmp"],
            "--tier",
        ),
    ] {
        let output = bench(&args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}
