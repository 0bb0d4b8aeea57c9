//! `vexfs-bench`: see the crate documentation in lib.rs.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use vexfs_bench::engine::{self, Pattern, Workload};
use vexfs_bench::fio;
use vexfs_bench::fs;
use vexfs_bench::latency::{Measurement, Percentiles};
use vexfs_bench::search;
use vexfs_bench::tiers;
use vexfs_bench::tokio_uring_peer;
use vexfs_bench::vectors;
use vexfs_engine::parse_size;
use vexfs_engine::rbd::is_rbd_spec;

#[derive(Parser)]
#[command(name = "vexfs-bench", version, about = "VexFS latency benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Raw block I/O through the io_uring engine, optionally beside fio.
    Engine(EngineArgs),
    /// POSIX workloads on VexFS mounted through FUSE, beside ext4 on a loop
    /// device over an image of the same size in the same directory.
    Fs(FsArgs),
    /// The original VexFS validator's matrix through a VexFS mount:
    /// SET/GET_VECTOR_META, BATCH_INSERT per batch size, VECTOR_SEARCH, per dimension.
    Vectors(vectors::Args),
    /// Recall@k and QPS/latency across index settings, through a VexFS mount
    /// and with the same faiss index in this process, side by side.
    // Boxed: its options outweigh the other commands' (clippy::large_enum_variant).
    Search(Box<search::Args>),
    /// One matrix of workloads (raw engine I/O, VexFS through FUSE) on each
    /// storage tier, side by side, with interval logs and plots.
    Tiers(tiers::Args),
}

#[derive(clap::Args)]
struct FsArgs {
    /// Directory for both image files and their mountpoints: on the disk to measure.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Size of each image file (K, M, G, T suffixes).
    #[arg(long, default_value = "2G", value_parser = parse_bytes)]
    size: u64,
    /// Empty files to create, stat and unlink.
    #[arg(long, default_value_t = 2000)]
    files: usize,
    /// Seconds per latency workload: random read, random overwrite, fsync.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Leave the image files (unmounted) behind.
    #[arg(long)]
    keep: bool,
    /// Measure VexFS alone (no losetup or mkfs.ext4 needed).
    #[arg(long)]
    no_ext4: bool,
    /// Also run create/write/fsync/stat (and search on VexFS) from this
    /// many threads at once for --seconds; 0 leaves the mixed workload out.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// A `vexfs mount -o` option for the VexFS mount (repeatable), e.g.
    /// `--vexfs-option threads=1` to measure another FUSE worker count.
    #[arg(long = "vexfs-option")]
    vexfs_options: Vec<String>,
}

#[derive(clap::Args)]
struct EngineArgs {
    /// File or block device (a file that does not exist is created; needs
    /// --size), or a Ceph RBD image rbd:POOL/IMAGE (cluster from CEPH_CONF,
    /// CEPH_ID, CEPH_KEYRING; needs a build with --features rbd).
    #[arg(long)]
    path: PathBuf,
    /// Bytes to cover from offset 0 (K, M, G, T suffixes): default the whole file or device.
    #[arg(long, value_parser = parse_bytes)]
    size: Option<u64>,
    /// randread | randwrite | read | write | randrw (50% reads).
    #[arg(long, default_value = "randread")]
    pattern: Pattern,
    /// Bytes per I/O.
    #[arg(long, default_value = "4096", value_parser = parse_bytes)]
    bs: u64,
    /// I/Os in flight per thread.
    #[arg(long, default_value_t = 32)]
    qd: u32,
    /// Threads, each with its own io_uring.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds to run (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// SQEs queued before an immediate submit (fio's iodepth_batch_submit;
    /// 1 = each I/O as soon as it is issued; 0 = all at once when waiting).
    #[arg(long, default_value_t = 1)]
    submit_batch: u32,
    /// Use a kernel submission-polling thread per ring (costs a CPU while busy).
    #[arg(long)]
    sqpoll: bool,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Run fio with the same workload on the same target right after, and compare.
    #[arg(long)]
    compare_fio: bool,
    /// Run the same workload through tokio-uring right after, and compare.
    #[arg(long)]
    compare_tokio_uring: bool,
    /// Allow write patterns on a block device or RBD image (they destroy its contents).
    #[arg(long)]
    destructive: bool,
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Engine(args) => engine_command(args),
        Command::Fs(args) => fs_command(args),
        Command::Vectors(args) => vectors::command(args),
        Command::Search(args) => search::command(*args),
        Command::Tiers(args) => tiers::command(args),
    };
    if let Err(error) = outcome {
        eprintln!("vexfs-bench: {error:#}");
        std::process::exit(1);
    }
}

fn engine_command(args: EngineArgs) -> Result<()> {
    if args.path.to_string_lossy().starts_with("ram:") {
        bail!(
            "--path ram:SIZE: the engine benchmark drives io_uring queues; the RAM tier has none"
        );
    }
    if !(args.seconds > 0.0 && args.seconds <= 86_400.0) {
        bail!("--seconds {} is not in (0, 86400]", args.seconds);
    }
    let quiet = args.json;
    let mut progress = |message: &str| {
        if !quiet || std::io::stderr().is_terminal() {
            eprintln!("{message}");
        }
    };
    if is_rbd_spec(&args.path.to_string_lossy()) && args.compare_tokio_uring {
        bail!("--compare-tokio-uring: tokio-uring has no RBD backend (--compare-fio runs fio's rbd engine)");
    }
    let (device, region_bytes) = engine::open_target(
        &args.path,
        args.size,
        args.pattern,
        args.destructive,
        &mut progress,
    )?;
    let workload = Workload {
        pattern: args.pattern,
        block_bytes: args.bs,
        queue_depth: args.qd,
        threads: args.threads,
        duration: Duration::from_secs_f64(args.seconds),
        sqpoll: args.sqpoll,
        submit_batch: args.submit_batch,
        region_bytes,
    };
    progress(&format!(
        "engine: {} {} B, qd {}, {} thread(s), {:.1} s on {}",
        workload.pattern,
        workload.block_bytes,
        workload.queue_depth,
        workload.threads,
        args.seconds,
        device.describe()
    ));
    let result = engine::run(Arc::clone(&device), &workload)?;
    if result.ios == 0 {
        bail!(
            "no I/O completed: {}",
            result.first_error.as_deref().unwrap_or("unknown reason")
        );
    }
    let describe = device.describe();
    drop(device);

    let fio_result = if args.compare_fio {
        progress("fio: same workload, same target");
        Some(fio::run(&args.path, &workload)?)
    } else {
        None
    };

    let tokio_result = if args.compare_tokio_uring {
        progress("tokio-uring: same workload, same target");
        Some(tokio_uring_peer::run(&args.path, &workload)?)
    } else {
        None
    };

    if args.json {
        let ratio = fio_result.as_ref().map(|f| {
            json!({
                "iops": result.measured.iops / f.measured.iops,
                "mbps": result.measured.mbps / f.measured.mbps,
                "lat_p50": result.measured.lat_us.p50 / f.measured.lat_us.p50,
                "lat_p99": result.measured.lat_us.p99 / f.measured.lat_us.p99,
            })
        });
        let report = json!({
            "benchmark": "engine",
            "path": args.path,
            "target": describe,
            "pattern": workload.pattern,
            "bs": workload.block_bytes,
            "qd": workload.queue_depth,
            "threads": workload.threads,
            "size": workload.region_bytes,
            "sqpoll": workload.sqpoll,
            "seconds": result.seconds,
            "ios": result.ios,
            "errors": result.errors,
            "iops": result.measured.iops,
            "mbps": result.measured.mbps,
            "lat_us": result.measured.lat_us,
            "read_lat_us": result.measured.read_lat_us,
            "write_lat_us": result.measured.write_lat_us,
            "registered_buffers": result.registered_buffers,
            "registered_file": result.registered_file,
            "fio": fio_result,
            "ratio": ratio,
            "tokio_uring": tokio_result,
        });
        println!("{report}");
    } else {
        let mut peers: Vec<(&str, &Measurement)> = Vec::new();
        if let Some(f) = &fio_result {
            peers.push(("fio", &f.measured));
        }
        if let Some(t) = &tokio_result {
            peers.push(("tokio-uring", &t.measured));
        }
        print_table(&workload, &result, &peers);
        if let Some(fio) = &fio_result {
            println!("{}: {}", fio.version, fio.command);
        }
    }
    if result.errors > 0 {
        bail!(
            "{} I/O errors; first: {}",
            result.errors,
            result.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

fn fs_command(args: FsArgs) -> Result<()> {
    let vexfs_binary = std::env::current_exe()
        .context("locating vexfs-bench")?
        .with_file_name("vexfs");
    let config = fs::Config {
        dir: args.dir,
        size_bytes: args.size,
        files: args.files,
        seconds: args.seconds,
        keep: args.keep,
        ext4: !args.no_ext4,
        vexfs_binary,
        threads: args.threads,
        vexfs_options: args.vexfs_options,
    };
    let quiet = args.json;
    let mut progress = |message: &str| {
        if !quiet || std::io::stderr().is_terminal() {
            eprintln!("{message}");
        }
    };
    let run = fs::run(&config, &mut progress)?;
    if args.json {
        println!("{}", serde_json::to_string(&run)?);
    } else {
        print!("{}", fs::render_table(&run));
    }
    Ok(())
}

fn print_table(workload: &Workload, result: &engine::EngineResult, peers: &[(&str, &Measurement)]) {
    let mut header = format!("{:<22}{:>12}", "", "engine");
    for (name, _) in peers {
        header += &format!("{name:>13}");
    }
    for (name, _) in peers {
        header += &format!("{:>19}", format!("engine/{name}"));
    }
    println!("{header}");
    let row = |label: &str, ours: f64, theirs: &[Option<f64>]| {
        let mut line = format!("{label:<22}{ours:>12.1}");
        for value in theirs {
            line += &match value {
                Some(v) => format!("{v:>13.1}"),
                None => format!("{:>13}", "-"),
            };
        }
        for value in theirs {
            line += &match value {
                Some(v) => format!("{:>19.2}", ours / v),
                None => format!("{:>19}", "-"),
            };
        }
        println!("{line}");
    };
    let values = |pick: &dyn Fn(&Measurement) -> Option<f64>| -> Vec<Option<f64>> {
        peers.iter().map(|(_, m)| pick(m)).collect()
    };
    let ours = &result.measured;
    row("IOPS", ours.iops, &values(&|c| Some(c.iops)));
    row("MB/s", ours.mbps, &values(&|c| Some(c.mbps)));
    type Pick = fn(&Measurement) -> Option<Percentiles>;
    let directions: Vec<(&str, Option<Percentiles>, Pick)> =
        if workload.pattern.reads() && workload.pattern.writes() {
            vec![
                ("read ", ours.read_lat_us, |c| c.read_lat_us),
                ("write ", ours.write_lat_us, |c| c.write_lat_us),
            ]
        } else {
            vec![("", Some(ours.lat_us), |c| Some(c.lat_us))]
        };
    for (direction, ours, pick) in directions {
        let Some(ours) = ours else { continue };
        for (i, (name, value)) in ours.rows().into_iter().enumerate() {
            let theirs = values(&|c| pick(c).map(|p| p.rows()[i].1));
            row(&format!("{direction}lat {name} (us)"), value, &theirs);
        }
    }
    println!(
        "engine: {} I/Os in {:.2} s, {} errors; registered buffers: {}, registered file: {}",
        result.ios,
        result.seconds,
        result.errors,
        result.registered_buffers,
        result.registered_file
    );
}
