//! `vexfs-hwtest`: lists block devices and verifies O_DIRECT data through the VexFS engine,
//! in a QEMU guest on /dev/ublkb0 or on a user's own disk (exit 1: a fault found, or a refusal).
//! It must never write to a device nobody named, nor to a block device without --destructive.

mod devices;
mod pass;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use vexfs_engine::parse_size;
use vexfs_engine::queue::QUEUE_DEPTH_MAX;

use verify::{Verdict, VerifyPlan, MISMATCH_LINES_MAX, PATTERN_BLOCK_BYTES};

#[derive(Parser, Debug)]
#[command(
    name = "vexfs-hwtest",
    version,
    about = "Block device listing and O_DIRECT data verification through the VexFS engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List whole block devices (sysfs; opens none of them).
    Devices,
    /// Write pattern blocks then read and check them, at each queue depth × block size.
    Verify(VerifyArgs),
    /// Write pattern blocks of one generation (4 KiB blocks, QD 32) and fdatasync.
    Fill(FillArgs),
    /// Read-only: check every 4 KiB block holds the pattern of one generation.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
struct DeviceArgs {
    /// Regular file (created or extended to --bytes), block device, or Ceph
    /// RBD image rbd:POOL/IMAGE (cluster from CEPH_CONF, CEPH_ID,
    /// CEPH_KEYRING; needs a build with --features rbd; written only with
    /// --destructive, as a block device).
    #[arg(long)]
    device: PathBuf,
    /// Bytes from the start of the device to cover (K, M, G, T suffixes).
    #[arg(long, default_value = "64M", value_parser = parse_bytes)]
    bytes: u64,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    #[command(flatten)]
    target: DeviceArgs,
    /// Queue depths, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,32",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(QUEUE_DEPTH_MAX)))]
    depths: Vec<u32>,
    /// I/O sizes in bytes (K, M suffixes), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "4096,65536,1048576", value_parser = parse_block_size)]
    block_sizes: Vec<usize>,
    /// Allow writing to a block device (everything in the first --bytes is lost).
    #[arg(long)]
    destructive: bool,
    /// Generation of the first combination (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Args, Debug)]
struct FillArgs {
    #[command(flatten)]
    target: DeviceArgs,
    #[arg(long)]
    generation: u64,
    /// Allow writing to a block device (everything in the first --bytes is lost).
    #[arg(long)]
    destructive: bool,
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    target: DeviceArgs,
    #[arg(long)]
    generation: u64,
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

fn parse_block_size(text: &str) -> Result<usize, String> {
    let bytes = parse_bytes(text)?;
    usize::try_from(bytes).map_err(|_| format!("{text}: too large"))
}

fn seed_from_clock() -> u64 {
    // A new seed per run: a write lost by this run cannot be hidden by
    // identical data a previous run left on the device.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// Runs the command; `Ok(false)` when it ran and found a fault.
fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Devices => {
            devices::run()?;
            Ok(true)
        }
        Command::Verify(args) => {
            let plan = VerifyPlan {
                depths: args.depths,
                block_sizes: args.block_sizes,
                bytes: args.target.bytes,
                seed: args.seed.unwrap_or_else(seed_from_clock),
            };
            let verdicts = verify::verify(&args.target.device, &plan, args.destructive)?;
            Ok(!verdicts
                .iter()
                .any(|v| matches!(v, Verdict::Mismatch | Verdict::IoError)))
        }
        Command::Fill(args) => {
            let blocks = verify::fill(
                &args.target.device,
                args.generation,
                args.target.bytes,
                args.destructive,
            )?;
            println!(
                "fill: {blocks} blocks of generation {} written and flushed",
                args.generation
            );
            Ok(true)
        }
        Command::Check(args) => {
            let report = verify::check(&args.target.device, args.generation, args.target.bytes)?;
            if report.blocks_wrong == 0 {
                println!(
                    "check: {} blocks of generation {} ok",
                    report.blocks, args.generation
                );
                return Ok(true);
            }
            for (number, reason) in &report.first_wrong {
                println!(
                    "check: block {number} (offset {}): {reason}",
                    number * PATTERN_BLOCK_BYTES as u64
                );
            }
            if report.blocks_wrong > MISMATCH_LINES_MAX as u64 {
                println!(
                    "check: ... and {} more",
                    report.blocks_wrong - MISMATCH_LINES_MAX as u64
                );
            }
            println!(
                "check: {} of {} blocks do not hold generation {}",
                report.blocks_wrong, report.blocks, args.generation
            );
            Ok(false)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vexfs-hwtest: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("vexfs-hwtest").chain(args.iter().copied()))
    }

    #[test]
    fn verify_lists_and_sizes_parse() {
        let cli = parse(&[
            "verify",
            "--device",
            "/var/tmp/x.img",
            "--depths",
            "1,8,128",
            "--block-sizes",
            "4K,64k,1M,8192",
            "--bytes",
            "16M",
        ])
        .expect("valid arguments");
        let Command::Verify(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.depths, [1, 8, 128]);
        assert_eq!(args.block_sizes, [4096, 65536, 1 << 20, 8192]);
        assert_eq!(args.target.bytes, 16 << 20);
        assert!(!args.destructive);
    }

    #[test]
    fn verify_defaults_are_the_documented_ones() {
        let cli = parse(&["verify", "--device", "/var/tmp/x.img"]).expect("valid arguments");
        let Command::Verify(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.depths, [1, 4, 32]);
        assert_eq!(args.block_sizes, [4096, 65536, 1048576]);
        assert_eq!(args.target.bytes, 64 << 20);
        assert_eq!(args.seed, None);
    }

    #[test]
    fn bad_lists_are_usage_errors() {
        let device = ["verify", "--device", "/var/tmp/x.img"];
        for bad in [
            &["--depths", "0"][..],
            &["--depths", "1,x"],
            &["--depths", "5000"],
            &["--block-sizes", "4Q"],
            &["--bytes", "lots"],
        ] {
            let args: Vec<&str> = device.iter().chain(bad).copied().collect();
            assert!(parse(&args).is_err(), "{bad:?} was accepted");
        }
        assert!(
            parse(&["fill", "--device", "/var/tmp/x.img"]).is_err(),
            "generation is required"
        );
        assert!(parse(&[
            "check",
            "--device",
            "/x",
            "--generation",
            "3",
            "--destructive"
        ])
        .is_err());
    }
}
