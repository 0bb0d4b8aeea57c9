//! `vexfs-bench fs` as a user runs it: formats and mounts VexFS and ext4
//! under a directory, prints one JSON object, and leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use vexfs_bench::fs::find_tool;

/// The whole run at --seconds 1 takes about 10 s here; the brief allows 60.
const RUN_SECONDS_MAX: u64 = 60;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vexfs-bench"))
        .args(args)
        .output()
        .expect("run vexfs-bench")
}

/// vexfs-bench looks for `vexfs` beside itself, and cargo builds another
/// package's binary for this test only when asked: build it with the same
/// profile and target directory (a no-op when it is up to date).
fn build_vexfs() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_vexfs-bench"));
    let vexfs = bench.with_file_name("vexfs");
    let profile_dir = bench
        .parent()
        .expect("the binary sits in a profile directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(name) => name,
        None => "dev",
    };
    let target_dir = profile_dir.parent().expect("a target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let built = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "-p",
            "vexfs-fs",
            "--bin",
            "vexfs",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .status();
    match built {
        Ok(status) if status.success() => {}
        other if vexfs.is_file() => {
            eprintln!(
                "building vexfs failed ({other:?}); using the {} already there",
                vexfs.display()
            )
        }
        other => panic!(
            "building vexfs failed ({other:?}) and there is none at {}",
            vexfs.display()
        ),
    }
    vexfs
}

/// A directory of its own for the run, checked empty and removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn mounted_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|line| line.contains(&dir))
        .map(str::to_string)
        .collect()
}

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
