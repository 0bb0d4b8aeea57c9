//! `vexfs-bench engine` as a user runs it: creates its file, prints one JSON
//! object, compares with fio, refuses what would destroy data.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vexfs-bench"))
        .args(args)
        .output()
        .expect("run vexfs-bench")
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn json_of(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "vexfs-bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    // Exactly one JSON object and nothing else on stdout.
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"))
}

#[test]
fn creates_the_file_with_real_data_and_prints_one_json_object() {
    let file = Scratch::new("bench-json");
    let output = bench(&[
        "engine",
        "--path",
        file.path(),
        "--size",
        "8M",
        "--pattern",
        "randrw",
        "--qd",
        "4",
        "--threads",
        "2",
        "--seconds",
        "0.3",
        "--json",
    ]);
    let report = json_of(&output);
    let metadata = std::fs::metadata(&file.0).unwrap();
    assert_eq!(metadata.len(), 8 << 20);
    assert!(
        metadata.blocks() * 512 >= 8 << 20,
        "the file was left sparse"
    );
    assert!(report["iops"].as_f64().unwrap() > 0.0);
    assert!(report["mbps"].as_f64().unwrap() > 0.0);
    for key in ["p50", "p90", "p99", "p999", "max"] {
        let value = report["lat_us"][key].as_f64().unwrap();
        assert!(value > 0.0, "lat_us.{key} = {value}");
    }
    assert!(report["lat_us"]["p50"].as_f64() <= report["lat_us"]["max"].as_f64());
    assert!(report["read_lat_us"]["p50"].as_f64().unwrap() > 0.0);
    assert!(report["write_lat_us"]["p50"].as_f64().unwrap() > 0.0);
    assert_eq!(report["errors"].as_u64(), Some(0));
    assert!(report["fio"].is_null());
}

#[test]
fn compare_fio_reports_both_and_their_ratio() {
    if Command::new("fio").arg("--version").output().is_err() {
        eprintln!("SKIP compare_fio_reports_both_and_their_ratio: fio not installed (scripts/setup installs it)");
        return;
    }
    let file = Scratch::new("bench-fio");
    let output = bench(&[
        "engine",
        "--path",
        file.path(),
        "--size",
        "8M",
        "--qd",
        "8",
        "--seconds",
        "0.5",
        "--compare-fio",
        "--json",
    ]);
    let report = json_of(&output);
    let fio_iops = report["fio"]["iops"].as_f64().unwrap();
    assert!(fio_iops > 0.0);
    let ratio = report["ratio"]["iops"].as_f64().unwrap();
    assert!((ratio - report["iops"].as_f64().unwrap() / fio_iops).abs() < 1e-9);
    assert!(report["fio"]["lat_us"]["p99"].as_f64().unwrap() > 0.0);
    assert!(report["fio"]["command"]
        .as_str()
        .unwrap()
        .contains("--ioengine=io_uring"));

    // The text report shows both columns.
    let output = bench(&[
        "engine",
        "--path",
        file.path(),
        "--qd",
        "2",
        "--seconds",
        "0.3",
        "--compare-fio",
    ]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("engine/fio"), "{text}");
    assert!(text.contains("lat p99.9 (us)"), "{text}");
}

#[test]
fn compare_tokio_uring_runs_the_same_workload() {
    let file = Scratch::new("bench-tokio");
    let output = bench(&[
        "engine",
        "--path",
        file.path(),
        "--size",
        "8M",
        "--pattern",
        "randrw",
        "--qd",
        "8",
        "--seconds",
        "0.3",
        "--compare-tokio-uring",
        "--json",
    ]);
    let report = json_of(&output);
    let peer = &report["tokio_uring"];
    assert!(peer["iops"].as_f64().unwrap() > 0.0, "{peer}");
    assert_eq!(peer["errors"].as_u64(), Some(0));
    assert!(peer["read_lat_us"]["p50"].as_f64().unwrap() > 0.0);
    assert!(peer["write_lat_us"]["p50"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_arguments_are_refused_with_the_flag_named() {
    let file = Scratch::new("bench-bad");
    let cases: [(&[&str], &str); 4] = [
        (&[], "--size"),
        (&["--size", "1M", "--bs", "1000"], "--bs"),
        (&["--size", "1M", "--qd", "0"], "queue_depth"),
        (&["--size", "1M", "--threads", "0"], "--threads"),
    ];
    for (extra, named) in cases {
        let mut args = vec!["engine", "--path", file.path(), "--seconds", "0.1"];
        args.extend_from_slice(extra);
        let output = bench(&args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

#[test]
fn writes_to_a_block_device_need_destructive() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP writes_to_a_block_device_need_destructive: needs root for losetup");
        return;
    }
    let file = Scratch::new("bench-loop");
    std::fs::File::create(&file.0)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let attached = Command::new("losetup")
        .args(["--find", "--show", file.path()])
        .output()
        .unwrap();
    if !attached.status.success() {
        eprintln!("SKIP writes_to_a_block_device_need_destructive: no loop device");
        return;
    }
    let device = String::from_utf8(attached.stdout)
        .unwrap()
        .trim()
        .to_string();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let _detach = Detach(device.clone());

    let refused = bench(&[
        "engine",
        "--path",
        &device,
        "--pattern",
        "randwrite",
        "--seconds",
        "0.1",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--destructive"));

    let reads = bench(&[
        "engine",
        "--path",
        &device,
        "--qd",
        "4",
        "--seconds",
        "0.2",
        "--json",
    ]);
    assert!(json_of(&reads)["iops"].as_f64().unwrap() > 0.0);

    let writes = bench(&[
        "engine",
        "--path",
        &device,
        "--pattern",
        "randwrite",
        "--qd",
        "4",
        "--seconds",
        "0.2",
        "--destructive",
        "--json",
    ]);
    assert!(json_of(&writes)["iops"].as_f64().unwrap() > 0.0);
}
