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
use vexfs_bench::tokio_uring_peer;
use vexfs_bench::vectors;
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
    /// POSIX workloads on VexFS mounted through FUSE, beside ext4 on a loop
    /// device over an image of the same size in the same directory.
    Fs(FsArgs),
    /// Bulk insert and k-NN search through a VexFS mount (ioctls through
    /// FUSE), beside the same faiss index in this process, with recall.
    Vectors(VectorsArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Dataset {
    /// The original VexFS benchmark's data: 10 Gaussian clusters, normalised.
    Original,
    /// A mixture of a few hundred Gaussian clusters of varied spread.
    Structured,
}

#[derive(clap::Args)]
struct VectorsArgs {
    /// A directory on a mounted VexFS; without it, an image is formatted and mounted under --dir.
    #[arg(long)]
    mount: Option<PathBuf>,
    /// Where the scratch image and mountpoint go when --mount is not given.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Size of the scratch image (K, M, G, T suffixes); default: room for the vectors and index.
    #[arg(long, value_parser = parse_bytes)]
    size: Option<u64>,
    #[arg(long, value_enum, default_value = "original")]
    dataset: Dataset,
    /// Vectors to store (with --vectors: keep the first N).
    #[arg(long)]
    count: Option<usize>,
    #[arg(long, default_value_t = 1536)]
    dims: usize,
    /// Clusters of the structured data set.
    #[arg(long, default_value_t = 300)]
    clusters: usize,
    /// Queries to run (with --queries-file: keep the first N).
    #[arg(long)]
    queries: Option<usize>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, value_enum, default_value = "cosine")]
    metric: vexfs_bench::datasets::Metric,
    /// Vectors per BATCH_INSERT ioctl (and per faiss add).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Add to the in-process faiss index in batches of --batch too (default:
    /// one add of everything, as VexFS builds its index at the first search).
    #[arg(long)]
    faiss_batched: bool,
    /// faiss index-factory string (user.vexfs.index); default: the daemon's (Flat below 16,384 vectors, else HNSW32).
    #[arg(long)]
    index: Option<String>,
    /// Search parameters (user.vexfs.search), e.g. efSearch=128 or nprobe=16.
    #[arg(long)]
    search_params: Option<String>,
    /// Stored vectors from a file: float32 .npy (2-D, C order) or .fvecs.
    #[arg(long, requires = "queries_file")]
    vectors: Option<PathBuf>,
    /// Queries from a file, same formats (needs --vectors).
    #[arg(long, requires = "vectors")]
    queries_file: Option<PathBuf>,
    /// HNSW efSearch values to measure after the main run, e.g. 16,32,64,128,256.
    #[arg(long, value_delimiter = ',')]
    ef_sweep: Vec<u32>,
    /// Seed of the generated data sets.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Leave the vector file (and the scratch image, unmounted) behind.
    #[arg(long)]
    keep: bool,
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
    /// Run the same workload through tokio-uring right after, and compare.
    #[arg(long)]
    compare_tokio_uring: bool,
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
        Command::Fs(args) => fs_command(args),
        Command::Vectors(args) => vectors_command(args),
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

/// Vectors stored and queries run when neither a count nor a file says otherwise.
const VECTORS_COUNT_DEFAULT: usize = 10_000;
const VECTORS_QUERIES_DEFAULT: usize = 1_000;

fn vectors_command(args: VectorsArgs) -> Result<()> {
    let data = match (&args.vectors, &args.queries_file) {
        (Some(vectors), Some(queries)) => vectors::DataSource::Files {
            vectors: vectors.clone(),
            queries: queries.clone(),
            count: args.count,
            queries_count: args.queries,
        },
        _ => {
            let count = args.count.unwrap_or(VECTORS_COUNT_DEFAULT);
            let queries = args.queries.unwrap_or(VECTORS_QUERIES_DEFAULT);
            match args.dataset {
                Dataset::Original => vectors::DataSource::Original {
                    count,
                    dims: args.dims,
                    queries,
                    seed: args.seed,
                },
                Dataset::Structured => vectors::DataSource::Structured {
                    count,
                    dims: args.dims,
                    clusters: args.clusters,
                    queries,
                    seed: args.seed,
                },
            }
        }
    };
    let place = match args.mount {
        Some(dir) => vectors::Place::Mounted(dir),
        None => vectors::Place::Scratch {
            dir: args.dir,
            size_bytes: args.size,
            vexfs_binary: std::env::current_exe()
                .context("locating vexfs-bench")?
                .with_file_name("vexfs"),
        },
    };
    let config = vectors::Config {
        data,
        k: args.k,
        metric: args.metric,
        batch: args.batch,
        faiss_batched: args.faiss_batched,
        index: args.index,
        search_params: args.search_params,
        ef_sweep: args.ef_sweep,
        place,
        keep: args.keep,
    };
    let quiet = args.json;
    let mut progress = |message: &str| {
        if !quiet || std::io::stderr().is_terminal() {
            eprintln!("{message}");
        }
    };
    let run = vectors::run(&config, &mut progress)?;
    if args.json {
        println!("{}", serde_json::to_string(&run)?);
    } else {
        print!("{}", vectors::render_table(&run));
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
