//! The `vexfs-bench tiers` command line: flags, progress, output.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vexfs_engine::parse_size;

use super::{
    default_tiers, parse_tier, render_table, run, write_outputs, Config, FioOutcome, Outcome,
    TierSpec, TierStatus,
};

#[derive(clap::Args)]
pub struct Args {
    /// A tier as NAME=PATH, repeatable: PATH is `ram:[SIZE]`, `tmpfs:`, a
    /// directory (a file of --size is created in it and removed after), an
    /// existing file, a block device, or a Ceph RBD image `rbd:POOL/IMAGE`
    /// (CEPH_CONF etc.; a build with --features rbd, vexfs too for the fs
    /// rows). Default: ram=ram: tmpfs=tmpfs: disk=/var/tmp.
    #[arg(long = "tier", value_name = "NAME=PATH", value_parser = parse_tier)]
    tiers: Vec<TierSpec>,
    /// Seconds per workload (fractions allowed), at most 600.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Bytes of each tier the workloads cover (K, M, G, T suffixes), 64M to 1T.
    #[arg(long, default_value = "256M", value_parser = parse_bytes)]
    size: u64,
    /// Directory for tiers.json, hlog/, plots/ (created if missing).
    #[arg(long, default_value = "vexfs-bench-tiers")]
    out: PathBuf,
    /// Allow writes (raw workloads, mkfs) to block devices, RBD images and
    /// existing files, and measure devices that hold a filesystem: their
    /// data is lost.
    #[arg(long)]
    destructive: bool,
    /// Also run fio (io_uring, O_DIRECT, same block size, depth, offsets
    /// and duration; its rbd engine on an RBD image) for each random and
    /// sequential workload on each file, device or image tier, shown under
    /// the engine's row.
    #[arg(long)]
    compare_fio: bool,
    /// Print tiers.json on stdout (and nothing else there).
    #[arg(long)]
    json: bool,
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

pub fn command(args: Args) -> Result<()> {
    let tiers = if args.tiers.is_empty() {
        default_tiers(args.size)
    } else {
        args.tiers
    };
    let config = Config {
        tiers,
        seconds: args.seconds,
        size_bytes: args.size,
        out: args.out,
        destructive: args.destructive,
        vexfs_binary: std::env::current_exe()
            .context("locating vexfs-bench")?
            .with_file_name("vexfs"),
        compare_fio: args.compare_fio,
    };
    config.validate()?;
    let steps = config.steps() as u64;
    // A bar on a terminal; plain lines on a redirected stderr unless --json
    // asked for quiet; stdout carries only the table or the JSON.
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
            .expect("valid progress template"),
    );
    let lines = !terminal && !args.json;
    let mut started = false;
    let mut step = |at: Option<(&str, &str)>| {
        if started {
            bar.inc(1);
        }
        started = true;
        match at {
            Some((tier, what)) => {
                let message = format!("{tier}: {what}");
                if lines {
                    eprintln!("tiers: {message}");
                }
                bar.set_message(message);
            }
            None => bar.finish_and_clear(),
        }
    };
    let mut run = run(&config, &mut step)?;
    bar.finish_and_clear();
    let written = write_outputs(&mut run, &config.out)?;
    if args.json {
        println!("{}", serde_json::to_string(&run)?);
    } else {
        print!("{}", render_table(&run));
        println!("\nwritten under {}:", config.out.display());
        for line in written_summary(&written, &config.out) {
            println!("  {line}");
        }
    }
    let failed: Vec<String> = run
        .tiers
        .iter()
        .filter(|tier| matches!(tier.status, TierStatus::Failed { .. }))
        .map(|tier| tier.name.clone())
        .chain(run.tiers.iter().flat_map(|tier| {
            tier.workloads.iter().flat_map(move |w| {
                let engine = matches!(w.outcome, Outcome::Failed { .. })
                    .then(|| format!("{} {}", tier.name, w.label));
                let fio = matches!(w.fio, Some(FioOutcome::Failed { .. }))
                    .then(|| format!("{} fio {}", tier.name, w.label));
                engine.into_iter().chain(fio)
            })
        }))
        .collect();
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}

/// One line per directory of what was written (30 interval logs would
/// otherwise bury the table): its files, or the first and last of many.
fn written_summary(written: &[PathBuf], out: &Path) -> Vec<String> {
    let mut by_dir: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for path in written {
        let shown = path.strip_prefix(out).unwrap_or(path);
        let dir = shown.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = shown
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        match by_dir.iter_mut().find(|(d, _)| *d == dir) {
            Some((_, names)) => names.push(name),
            None => by_dir.push((dir, vec![name])),
        }
    }
    by_dir
        .into_iter()
        .flat_map(|(dir, names)| {
            let prefix = if dir.as_os_str().is_empty() {
                String::new()
            } else {
                format!("{}/", dir.display())
            };
            if names.len() <= 3 {
                names
                    .into_iter()
                    .map(|name| format!("{prefix}{name}"))
                    .collect::<Vec<_>>()
            } else {
                vec![format!(
                    "{prefix}: {} files, {} … {}",
                    names.len(),
                    names[0],
                    names[names.len() - 1]
                )]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_files_in_one_directory_become_one_line() {
        let out = Path::new("/o");
        let written: Vec<PathBuf> = ["hlog/a.hlog", "hlog/b.hlog", "hlog/c.hlog", "hlog/d.hlog"]
            .iter()
            .chain(&["plots/t.png", "plots/t.svg", "tiers.json"])
            .map(|p| out.join(p))
            .collect();
        assert_eq!(
            written_summary(&written, out),
            [
                "hlog/: 4 files, a.hlog … d.hlog",
                "plots/t.png",
                "plots/t.svg",
                "tiers.json"
            ]
        );
    }
}
