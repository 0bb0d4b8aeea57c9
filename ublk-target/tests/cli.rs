//! `vexfs-ublk` as a user runs it. Without a ublk driver (this CI host) the
//! commands must say so and change nothing; with one (a host that has
//! `/dev/ublk-control`, or the QEMU guest of `hwtest/vm/run`) a RAM device
//! is added, written, read back and deleted.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Output};

fn vexfs_ublk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vexfs-ublk"))
        .args(args)
        .output()
        .expect("run vexfs-ublk")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_arguments_name_the_field_before_touching_the_driver() {
    for (args, field) in [
        (
            &["add", "--backing", "ram:64M", "--depth", "0"][..],
            "--depth",
        ),
        (
            &["add", "--backing", "ram:64M", "--queues", "33"][..],
            "--queues",
        ),
        (&["add", "--backing", "ram:64M", "--id", "-5"][..], "--id"),
    ] {
        let output = vexfs_ublk(args);
        assert!(!output.status.success(), "{args:?} accepted");
        assert!(
            stderr(&output).contains(field),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn without_a_driver_every_command_says_so() {
    if Path::new("/dev/ublk-control").exists() {
        println!("SKIP: this host has a ublk driver; see the live test");
        return;
    }
    for args in [
        &["add", "--backing", "ram:64M"][..],
        &["list"][..],
        &["features"][..],
        &["del", "--id", "0"][..],
        &["recover", "--id", "0"][..],
    ] {
        let output = vexfs_ublk(args);
        assert!(
            !output.status.success(),
            "{args:?} succeeded without a driver"
        );
        assert!(
            stderr(&output).contains("/dev/ublk-control is missing"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

/// Deletes the device when the test ends, also on failure.
struct Added(String);

impl Drop for Added {
    fn drop(&mut self) {
        let id = self.0.trim_start_matches("/dev/ublkb");
        let _ = vexfs_ublk(&["del", "--id", id]);
    }
}

#[test]
fn a_ram_device_serves_reads_and_writes() {
    if !Path::new("/dev/ublk-control").exists() {
        println!("SKIP: no ublk driver here (/dev/ublk-control missing); hwtest/vm/run covers it");
        return;
    }
    let output = vexfs_ublk(&["add", "--backing", "ram:64M", "--log", "/dev/null"]);
    assert!(output.status.success(), "add: {}", stderr(&output));
    let device = Added(String::from_utf8_lossy(&output.stdout).trim().to_string());
    assert!(
        device.0.starts_with("/dev/ublkb"),
        "add printed {:?}",
        device.0
    );

    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&device.0)
        .expect("open the ublk device");
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 + 3) as u8).collect();
    file.seek(SeekFrom::Start(3 << 20)).expect("seek");
    file.write_all(&block).expect("write");
    file.sync_all().expect("flush");
    let mut back = vec![0u8; block.len()];
    file.seek(SeekFrom::Start(3 << 20)).expect("seek");
    file.read_exact(&mut back).expect("read");
    assert!(back == block, "read back differs from what was written");

    let listed = vexfs_ublk(&["list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("ram:64M"));
}
