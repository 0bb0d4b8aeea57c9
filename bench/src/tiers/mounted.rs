//! The workloads through the filesystem: VexFS formatted on the tier and
//! mounted through FUSE by its daemon, then small files written and synced
//! and vectors inserted and searched through the v2 ioctls.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vexfs_uapi::VEXFS_SEARCH_COSINE;

use super::target::{Kind, Target};
use super::timeline::Timeline;
use super::{Config, Measured, Outcome, Workload};
use crate::datasets;
use crate::fs::{check_interrupted, Mounted, Scratch, VexfsMount};
use crate::vectors::VectorFile;

/// Bytes of each small file.
pub const SMALL_FILE_BYTES: usize = 4096;
/// Small files at most: they and their metadata must fit the tier's image.
pub const SMALL_FILES_MAX: u64 = 100_000;
/// The vector set: small enough to insert in a blink on any tier.
pub const VECTORS_COUNT: usize = 2_000;
pub const VECTORS_DIMS: usize = 128;
pub const VECTORS_BATCH: usize = 100;
pub const SEARCH_K: usize = 10;
/// Distinct queries, asked in turn until the time is up.
pub const SEARCH_QUERIES: usize = 200;
const SEED: u64 = 42;

/// One outcome per workload in `workloads`, in order. Fails only when cleaning up fails.
pub fn run(
    target: &Target,
    tier: &str,
    config: &Config,
    workloads: &[Workload],
    step: &mut dyn FnMut(Workload),
) -> Result<Vec<Outcome>> {
    let skip = |reason: String| {
        Ok(workloads
            .iter()
            .map(|_| Outcome::Skipped {
                reason: reason.clone(),
            })
            .collect())
    };
    if !target.writable() {
        return skip(format!("mkfs: {}", target.write_refusal()));
    }
    if target.kind != Kind::Ram && target.path.is_none() {
        return skip("no file or device to format".to_string());
    }
    if let Some(missing) = missing_prerequisites(config) {
        return skip(format!("needs {missing}"));
    }
    let scratch = Scratch::create(&config.out, &format!("tier-{tier}"), false)?;
    // keep: never remove the image from here; a file this run created is
    // the tier's own and goes with it, a device or user's file stays.
    let mounted = match target.path.as_deref() {
        // The daemon formats a RAM device itself (it is blank at every open).
        None => VexfsMount::create_on_ram(
            &config.vexfs_binary,
            target.region_bytes,
            &scratch.path,
            &[],
        ),
        Some(image) => VexfsMount::create_on(
            &config.vexfs_binary,
            image,
            None,
            config.destructive,
            &scratch.path,
            true,
            &[],
        ),
    };
    let mount = match mounted {
        Ok(mount) => mount,
        Err(error) => {
            remove_log(&scratch.path);
            let error = format!("mkfs and mount: {error:#}");
            return Ok(workloads
                .iter()
                .map(|_| Outcome::Failed {
                    error: error.clone(),
                })
                .collect());
        }
    };
    let duration = Duration::from_secs_f64(config.seconds);
    let files_max = (target.region_bytes / 4 / SMALL_FILE_BYTES as u64).clamp(1, SMALL_FILES_MAX);
    let mut outcomes = Vec::new();
    // Made by the insert workload, searched by the search workload.
    let mut vector_file: Option<VectorFile> = None;
    for &workload in workloads {
        step(workload);
        let root = mount.root();
        let measured = match workload {
            Workload::FileCreate4k => small_files(&root.join("small-files"), files_max, duration),
            Workload::VectorInsert => insert(root).map(|(measured, file)| {
                vector_file = Some(file);
                measured
            }),
            Workload::VectorSearch => match &vector_file {
                Some(file) => search(file, duration),
                None => Err(anyhow::anyhow!("no vectors: the insert workload failed")),
            },
            other => Err(anyhow::anyhow!(
                "{} does not run through the filesystem",
                other.label()
            )),
        };
        outcomes.push(match measured {
            Ok(measured) => Outcome::from_measured(measured),
            Err(error) => Outcome::Failed {
                error: format!("{error:#}"),
            },
        });
        if check_interrupted().is_err() {
            break;
        }
    }
    drop(vector_file);
    let finished = mount.finish();
    remove_log(&scratch.path);
    finished?;
    check_interrupted()?;
    Ok(outcomes)
}

fn missing_prerequisites(config: &Config) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("root (to mount through FUSE)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse (the kernel's FUSE driver)".into());
    }
    if !config.vexfs_binary.is_file() {
        return Some(format!(
            "{} (cargo build -p vexfs-fs)",
            config.vexfs_binary.display()
        ));
    }
    None
}

/// The daemon's log, kept by the mount guard for a device (keep = true).
fn remove_log(scratch: &Path) {
    let _ = std::fs::remove_file(scratch.join("vexfs.log"));
}

/// create + write 4 KiB + fsync + close of new files, each timed as one operation.
fn small_files(dir: &Path, files_max: u64, duration: Duration) -> Result<Measured> {
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let payload = vec![0x5a_u8; SMALL_FILE_BYTES];
    let mut timeline = Timeline::start();
    let mut index = 0u64;
    while timeline.elapsed() < duration && index < files_max {
        check_interrupted()?;
        let path = dir.join(format!("f{index:07}"));
        timeline.time(1, || -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            file.write_all(&payload)?;
            file.sync_all()
        });
        index += 1;
    }
    timeline.bytes = timeline.ops * SMALL_FILE_BYTES as u64;
    Ok(timeline.finish(true))
}

/// The vector set inserted once, in batches; each batch's ioctl is timed,
/// ops count vectors.
fn insert(root: &Path) -> Result<(Measured, VectorFile)> {
    let vectors = datasets::original(VECTORS_COUNT, VECTORS_DIMS, SEED)?;
    let file = VectorFile::create(&root.join("vectors"))
        .with_context(|| format!("creating {}", root.join("vectors").display()))?;
    file.set_meta(VECTORS_DIMS as u32)
        .context("SET_VECTOR_META")?;
    let ids: Vec<u64> = (0..VECTORS_COUNT as u64).collect();
    let mut timeline = Timeline::start();
    for first in (0..VECTORS_COUNT).step_by(VECTORS_BATCH) {
        check_interrupted()?;
        let count = VECTORS_BATCH.min(VECTORS_COUNT - first);
        let batch = vectors.rows(first, count);
        timeline.time(count as u64, || {
            file.batch_insert(
                batch,
                VECTORS_DIMS as u32,
                Some(&ids[first..first + count]),
                0,
            )
        });
    }
    timeline.bytes = timeline.ops * (VECTORS_DIMS * 4) as u64;
    let measured = timeline.finish(true);
    // Durable before the search workload; not part of the insert rate.
    file.sync().context("fsync of the vector file")?;
    if measured.ops != VECTORS_COUNT as u64 {
        bail!(
            "{} of {VECTORS_COUNT} vectors inserted; first error: {}",
            measured.ops,
            measured.first_error.as_deref().unwrap_or("none")
        );
    }
    Ok((measured, file))
}

/// k-NN queries (cosine) on the vectors [`insert`] stored, one at a time;
/// one untimed search first builds the index.
fn search(file: &VectorFile, duration: Duration) -> Result<Measured> {
    let queries = datasets::original_queries(SEARCH_QUERIES, VECTORS_DIMS, SEED)?;
    let mut distances = vec![0f32; SEARCH_K];
    let mut ids = vec![0u64; SEARCH_K];
    file.search(
        queries.row(0),
        VEXFS_SEARCH_COSINE,
        &mut distances,
        &mut ids,
    )
    .context("first search (builds the index)")?;
    let mut timeline = Timeline::start();
    let mut index = 0;
    while timeline.elapsed() < duration {
        check_interrupted()?;
        let query = queries.row(index % SEARCH_QUERIES);
        let start = Instant::now();
        match file.search(query, VEXFS_SEARCH_COSINE, &mut distances, &mut ids) {
            Ok(found) if found == SEARCH_K => timeline.record(start, Instant::now(), 1),
            Ok(found) => {
                timeline.errors += 1;
                timeline
                    .first_error
                    .get_or_insert_with(|| format!("{found} results, expected {SEARCH_K}"));
            }
            Err(error) => {
                timeline.errors += 1;
                timeline
                    .first_error
                    .get_or_insert_with(|| error.to_string());
            }
        }
        index += 1;
    }
    Ok(timeline.finish(false))
}
