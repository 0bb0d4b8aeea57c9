//! What the end-to-end tests share: running the built binary, building
//! `vexfs` beside it, a scratch directory of their own, and the mount table.

#![allow(dead_code)] // each test binary uses a different part.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vexfs-bench"))
        .args(args)
        .output()
        .expect("run vexfs-bench")
}

/// vexfs-bench looks for `vexfs` beside itself, and cargo builds another
/// package's binary for this test only when asked: build it with the same
/// profile and target directory (a no-op when it is up to date).
pub fn build_vexfs() -> PathBuf {
    match build_beside("vexfs-fs", "vexfs") {
        Ok(vexfs) => vexfs,
        Err(e) => panic!("{e}"),
    }
}

/// Builds `package`'s binary `bin` beside vexfs-bench (same profile and
/// target directory); its path, or why there is none. A failed build with
/// a binary already there uses that one, saying so.
pub fn build_beside(package: &str, bin: &str) -> Result<PathBuf, String> {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_vexfs-bench"));
    let binary = bench.with_file_name(bin);
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
        .args(["build", "-p", package, "--bin", bin, "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .status();
    match built {
        Ok(status) if status.success() => Ok(binary),
        other if binary.is_file() => {
            eprintln!(
                "building {bin} failed ({other:?}); using the {} already there",
                binary.display()
            );
            Ok(binary)
        }
        other => Err(format!(
            "building {bin} failed ({other:?}) and there is none at {}",
            binary.display()
        )),
    }
}

/// A directory of its own for the run, checked empty and removed at the end.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
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

pub fn mounted_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|line| line.contains(&dir))
        .map(str::to_string)
        .collect()
}

/// Runs the binary with `args` (which must include `--json`), checks that
/// it succeeded and printed exactly one JSON object, and that nothing is
/// left mounted under or inside `scratch`; returns the object.
pub fn run_json_leaving_nothing(args: &[&str], scratch: &Path) -> serde_json::Value {
    let output = bench(args);
    assert!(
        output.status.success(),
        "vexfs-bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));
    assert!(
        mounted_under(scratch).is_empty(),
        "{:?}",
        mounted_under(scratch)
    );
    let left: Vec<_> = std::fs::read_dir(scratch).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    report
}
