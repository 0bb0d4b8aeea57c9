//! `vexfs-bench vectors` on the command line: its options, and what the
//! command prints and writes.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::{parse_bytes, render_table, run, Budget, Config, Place, BATCHES_DEFAULT, DIMS_DEFAULT};

/// The file --out writes in its directory.
pub const REPORT_FILE: &str = "vectors.json";

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// A directory on a mounted VexFS; without it, an image is formatted and mounted under --dir.
    #[arg(long)]
    mount: Option<PathBuf>,
    /// Where the scratch image and mountpoint go when --mount is not given.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Size of the scratch image (K, M, G, T suffixes); default: room for every insert cell.
    #[arg(long, value_parser = parse_bytes)]
    size: Option<u64>,
    /// Dimensions, one fresh file each [default: 4,128,512,1024].
    #[arg(long, value_delimiter = ',')]
    dims: Vec<usize>,
    /// Vectors per BATCH_INSERT, one cell each [default: 1,10,100,1000].
    #[arg(long, value_delimiter = ',')]
    batches: Vec<usize>,
    /// Requests per cell (with --seconds: whichever comes first).
    #[arg(long)]
    ops: Option<u64>,
    /// Seconds per cell [default: 0.5 when --ops is not given].
    #[arg(long)]
    seconds: Option<f64>,
    /// Seed of the vectors and queries.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Write vectors.json into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Leave the scratch image behind (unmounted).
    #[arg(long)]
    keep: bool,
}

/// Runs the matrix, prints the table (or JSON), writes --out; fails when
/// any request failed, after printing them.
pub fn command(args: Args) -> Result<()> {
    let or_default = |list: &[usize], default: &[usize]| {
        if list.is_empty() {
            default.to_vec()
        } else {
            list.to_vec()
        }
    };
    let config = Config {
        dims: or_default(&args.dims, &DIMS_DEFAULT),
        batches: or_default(&args.batches, &BATCHES_DEFAULT),
        budget: Budget {
            ops: args.ops,
            seconds: args.seconds,
        },
        place: Place::from_args(args.mount, args.dir, args.size)?,
        seed: args.seed,
        keep: args.keep,
    };
    config.validate()?;
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }
    let quiet = args.json;
    let mut progress = |message: &str| {
        if !quiet || std::io::stderr().is_terminal() {
            eprintln!("{message}");
        }
    };
    let report = run(&config, &mut progress)?;
    if let Some(out) = &args.out {
        let path = out.join(REPORT_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render_table(&report));
    }
    if report.errors() > 0 {
        bail!(
            "{} requests failed (counted in the table above)",
            report.errors()
        );
    }
    Ok(())
}
