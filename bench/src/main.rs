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
use vexfs_bench::latency::Percentiles;
use vexfs_engine::{parse_size, BackingKind, BlockDevice, UringDevice, UringOptions};

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
}

#[derive(clap::Args)]
struct EngineArgs {
    /// File or block device. A file that does not exist is created (needs --size).
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
    /// Allow write patterns on a block device (they destroy its contents).
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
    let region_bytes = engine::prepare_file(&args.path, args.size, &mut progress)?;
    let device = UringDevice::open(&args.path, UringOptions::default())
        .with_context(|| format!("opening {}", args.path.display()))?;
    if device.kind() == BackingKind::BlockDevice && args.pattern.writes() && !args.destructive {
        bail!(
            "--pattern {} writes to {}, a block device, destroying what it holds: add --destructive if that is intended",
            args.pattern,
            args.path.display()
        );
    }
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
    let device = Arc::new(device);
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

    if args.json {
        let ratio = fio_result.as_ref().map(|f| {
            json!({
                "iops": result.iops / f.iops,
                "mbps": result.mbps / f.mbps,
                "lat_p50": result.lat_us.p50 / f.lat_us.p50,
                "lat_p99": result.lat_us.p99 / f.lat_us.p99,
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
            "iops": result.iops,
            "mbps": result.mbps,
            "lat_us": result.lat_us,
            "read_lat_us": result.read_lat_us,
            "write_lat_us": result.write_lat_us,
            "registered_buffers": result.registered_buffers,
            "registered_file": result.registered_file,
            "fio": fio_result,
            "ratio": ratio,
        });
        println!("{report}");
    } else {
        print_table(&workload, &result, fio_result.as_ref());
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

fn print_table(workload: &Workload, result: &engine::EngineResult, fio: Option<&fio::FioResult>) {
    let header = match fio {
        Some(_) => format!(
            "{:<22}{:>12}{:>12}{:>12}",
            "", "engine", "fio", "engine/fio"
        ),
        None => format!("{:<22}{:>12}", "", "engine"),
    };
    println!("{header}");
    let row = |label: &str, ours: f64, theirs: Option<f64>| match theirs {
        Some(theirs) => println!(
            "{label:<22}{ours:>12.1}{theirs:>12.1}{:>12.2}",
            ours / theirs
        ),
        None => println!("{label:<22}{ours:>12.1}"),
    };
    row("IOPS", result.iops, fio.map(|f| f.iops));
    row("MB/s", result.mbps, fio.map(|f| f.mbps));
    let directions: Vec<(&str, Option<Percentiles>, Option<Percentiles>)> =
        if workload.pattern.reads() && workload.pattern.writes() {
            vec![
                ("read", result.read_lat_us, fio.and_then(|f| f.read_lat_us)),
                (
                    "write",
                    result.write_lat_us,
                    fio.and_then(|f| f.write_lat_us),
                ),
            ]
        } else {
            vec![("", Some(result.lat_us), fio.map(|f| f.lat_us))]
        };
    for (direction, ours, theirs) in directions {
        let Some(ours) = ours else { continue };
        for (i, (name, value)) in ours.rows().into_iter().enumerate() {
            let label = format!(
                "{direction}{}lat {name} (us)",
                if direction.is_empty() { "" } else { " " }
            );
            row(&label, value, theirs.map(|t| t.rows()[i].1));
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
    if let Some(fio) = fio {
        println!("{}: {}", fio.version, fio.command);
    }
}
