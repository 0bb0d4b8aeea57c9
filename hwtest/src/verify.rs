//! The `verify`, `fill` and `check` commands: opening what the user named
//! (and refusing block devices without --destructive), then passes of
//! [`crate::pass`] over it. fill/check prove that data written and flushed
//! before a crash is there after it. Rates include the CPU time of making
//! and checking patterns; the write rate includes the final fdatasync.

use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use vexfs_engine::queue::QUEUE_DEPTH_MAX;
use vexfs_engine::rbd::is_rbd_spec;
use vexfs_engine::{QueueDevice, RbdDevice, UringDevice, UringOptions};

use crate::pass::{describe, open_queue, read_pass, write_pass, Layout};

/// Largest single I/O a pass issues (one registered buffer per slot).
pub const IO_BYTES_MAX: usize = 64 << 20;
/// Buffer memory one pass may pin: queue depth × I/O size.
pub const IN_FLIGHT_BYTES_MAX: u64 = 1 << 30;
/// Pattern block of fill/check, and of verify wherever I/O sizes allow it.
pub const PATTERN_BLOCK_BYTES: usize = 4096;
/// Queue depth of fill and check.
pub const FILL_QUEUE_DEPTH: u32 = 32;
/// Mismatching blocks check prints before it only counts.
pub const MISMATCH_LINES_MAX: usize = 10;
const MIB: f64 = (1u64 << 20) as f64;

/// Whether a pass may write to what `path` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    Write { destructive: bool },
}

/// The only rule that lets this tool write to a block device (an RBD
/// image follows it too: it may hold someone's filesystem).
fn write_allowed(path: &Path, is_block_device: bool, access: Access) -> Result<()> {
    if access == (Access::Write { destructive: false }) && is_block_device {
        bail!(
            "refusing to write to block device {} without --destructive",
            path.display()
        );
    }
    Ok(())
}

/// A file, device or RBD image opened for passes over its first `bytes`.
pub struct Target {
    /// io_uring O_DIRECT for files and devices, librbd aio for `rbd:` images.
    pub device: Box<dyn QueueDevice>,
    pub bytes: u64,
    /// Exclusive open (O_EXCL) of a block device being written: the kernel
    /// refuses it while the device or a partition is mounted or held (LVM,
    /// md), and refuses mounts while we hold it.
    _claim: Option<File>,
}

impl Target {
    pub fn logical_block_bytes(&self) -> usize {
        self.device.geometry().logical_block_bytes as usize
    }
}

/// Opens `path` for passes over `[0, bytes)`. A regular file being written
/// is created, or extended to `bytes`; a block device is written only with
/// `destructive` and while nothing else uses it.
pub fn open_target(path: &Path, bytes: u64, access: Access) -> Result<Target> {
    if bytes == 0 {
        bail!("--bytes must be more than 0");
    }
    if let Some(spec) = path.to_str().filter(|p| is_rbd_spec(p)) {
        if access == (Access::Write { destructive: false }) {
            bail!("refusing to write to RBD image {spec} without --destructive");
        }
        let device =
            RbdDevice::open(spec, access == Access::ReadOnly).map_err(|e| anyhow!(describe(&e)))?;
        return sized_target(Box::new(device), path, bytes, None);
    }
    let metadata = std::fs::metadata(path);
    let is_block_device = matches!(&metadata, Ok(m) if m.file_type().is_block_device());
    write_allowed(path, is_block_device, access)?;
    let mut claim = None;
    if let Access::Write { .. } = access {
        if is_block_device {
            let file = File::options()
                .read(true)
                .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
                .open(path)
                .with_context(|| {
                    format!(
                        "{} is in use (mounted, or held by dm/md/another exclusive user)",
                        path.display()
                    )
                })?;
            claim = Some(file);
        } else if metadata.as_ref().map_or(true, |m| m.is_file()) {
            let file = File::options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let len = file.metadata()?.len();
            if len < bytes {
                file.set_len(bytes)
                    .with_context(|| format!("extending {} to {bytes} bytes", path.display()))?;
            }
        }
    }
    let options = UringOptions {
        // The pooled ring is unused (passes take their own); keep it small.
        queue_depth: 1,
        queues_max: 1,
        read_only: access == Access::ReadOnly,
        ..UringOptions::default()
    };
    let device = UringDevice::open(path, options).map_err(|e| anyhow!(describe(&e)))?;
    sized_target(Box::new(device), path, bytes, claim)
}

/// Checks that `[0, bytes)` fits the opened device in whole logical blocks.
fn sized_target(
    device: Box<dyn QueueDevice>,
    path: &Path,
    bytes: u64,
    claim: Option<File>,
) -> Result<Target> {
    let geometry = device.geometry();
    if bytes > geometry.size_bytes {
        bail!(
            "--bytes {bytes} runs past the end of {} ({} bytes)",
            path.display(),
            geometry.size_bytes
        );
    }
    if bytes % u64::from(geometry.logical_block_bytes) != 0 {
        bail!(
            "--bytes {bytes} is not a multiple of the logical block size {} of {}",
            geometry.logical_block_bytes,
            path.display()
        );
    }
    Ok(Target {
        device,
        bytes,
        _claim: claim,
    })
}

/// What `verify` runs: every depth × block size over the first `bytes`.
#[derive(Clone, Debug)]
pub struct VerifyPlan {
    pub depths: Vec<u32>,
    pub block_sizes: Vec<usize>,
    pub bytes: u64,
    /// Generation of the first combination; each next one adds 1.
    pub seed: u64,
}

impl VerifyPlan {
    /// Checks every limit before any I/O.
    fn check_limits(&self) -> Result<()> {
        if self.depths.is_empty() || self.block_sizes.is_empty() {
            bail!("--depths and --block-sizes need at least one value each");
        }
        for &depth in &self.depths {
            if depth == 0 || depth > QUEUE_DEPTH_MAX {
                bail!("queue depth {depth} is not in 1..={QUEUE_DEPTH_MAX}");
            }
            for &io_bytes in &self.block_sizes {
                if io_bytes == 0 || io_bytes > IO_BYTES_MAX {
                    bail!("block size {io_bytes} is not in 1..={IO_BYTES_MAX}");
                }
                if u64::from(depth) * io_bytes as u64 > IN_FLIGHT_BYTES_MAX {
                    bail!(
                        "qd={depth} × bs={io_bytes} needs more than {IN_FLIGHT_BYTES_MAX} bytes of buffers"
                    );
                }
            }
        }
        Ok(())
    }
}

/// How one combination ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Mismatch,
    IoError,
    Skipped,
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MIB / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// `vexfs-hwtest verify`: prints one line per combination and returns the verdicts.
pub fn verify(path: &Path, plan: &VerifyPlan, destructive: bool) -> Result<Vec<Verdict>> {
    plan.check_limits()?;
    let target = open_target(path, plan.bytes, Access::Write { destructive })?;
    let logical = target.logical_block_bytes();
    println!(
        "verify: {}, first {} bytes, seed {}",
        target.device.describe(),
        target.bytes,
        plan.seed
    );
    let mut verdicts = Vec::new();
    let mut generation = plan.seed;
    for &depth in &plan.depths {
        for &io_bytes in &plan.block_sizes {
            let label = format!("verify qd={depth} bs={io_bytes} bytes={}", target.bytes);
            if io_bytes < logical || io_bytes % logical != 0 {
                let why = if io_bytes < logical {
                    "smaller than"
                } else {
                    "not a multiple of"
                };
                println!("{label}: skipped, {why} the logical block size {logical}");
                verdicts.push(Verdict::Skipped);
                continue;
            }
            // A new generation per combination: a block the last one left
            // behind (a lost write) reads back as the wrong generation.
            generation = generation.wrapping_add(1);
            let verdict = verify_one(&target, depth, io_bytes, generation, &label);
            verdicts.push(verdict);
        }
    }
    Ok(verdicts)
}

fn verify_one(
    target: &Target,
    depth: u32,
    io_bytes: usize,
    generation: u64,
    label: &str,
) -> Verdict {
    let logical = target.logical_block_bytes();
    let fits_4k = |n: u64| n % PATTERN_BLOCK_BYTES as u64 == 0;
    let pattern_block_bytes =
        if logical <= PATTERN_BLOCK_BYTES && fits_4k(io_bytes as u64) && fits_4k(target.bytes) {
            PATTERN_BLOCK_BYTES
        } else {
            logical
        };
    let layout = Layout::new(target.bytes, io_bytes, pattern_block_bytes);
    let mut queue = match open_queue(target.device.as_ref(), depth, io_bytes) {
        Ok(queue) => queue,
        Err(e) => {
            println!("{label}: I/O error setting up the queue: {}", describe(&e));
            return Verdict::IoError;
        }
    };
    let written = match write_pass(queue.as_mut(), &layout, generation) {
        Ok(elapsed) => elapsed,
        Err(e) => {
            println!("{label}: I/O error writing: {}", describe(&e));
            return Verdict::IoError;
        }
    };
    let mut mismatch = None;
    let read = read_pass(queue.as_mut(), &layout, |number, verdict| {
        let reason = match verdict {
            Ok(found) if found == generation => return ControlFlow::Continue(()),
            Ok(found) => format!("block {number} holds generation {found}, expected {generation}"),
            Err(reason) => reason,
        };
        mismatch = Some((number * pattern_block_bytes as u64, reason));
        ControlFlow::Break(())
    });
    match (read, mismatch) {
        (Err(e), _) => {
            println!("{label}: I/O error reading: {}", describe(&e));
            Verdict::IoError
        }
        (Ok(_), Some((offset, reason))) => {
            println!("{label}: MISMATCH at offset {offset}: {reason}");
            Verdict::Mismatch
        }
        (Ok(read), None) => {
            println!(
                "{label}: ok (write {:.0} MiB/s, read {:.0} MiB/s)",
                mib_per_s(layout.bytes, written),
                mib_per_s(layout.bytes, read)
            );
            Verdict::Ok
        }
    }
}

/// The fixed shape of fill and check, so that check reads what fill wrote.
fn fill_layout(target: &Target) -> Result<Layout> {
    if target.logical_block_bytes() > PATTERN_BLOCK_BYTES
        || target.bytes % PATTERN_BLOCK_BYTES as u64 != 0
    {
        bail!(
            "fill/check need --bytes a multiple of {PATTERN_BLOCK_BYTES} on a device whose \
             logical block is at most that (here {} bytes, logical block {})",
            target.bytes,
            target.logical_block_bytes()
        );
    }
    Ok(Layout::new(
        target.bytes,
        PATTERN_BLOCK_BYTES,
        PATTERN_BLOCK_BYTES,
    ))
}

/// `vexfs-hwtest fill`: returns the number of blocks written and flushed.
pub fn fill(path: &Path, generation: u64, bytes: u64, destructive: bool) -> Result<u64> {
    let target = open_target(path, bytes, Access::Write { destructive })?;
    let layout = fill_layout(&target)?;
    let mut queue = open_queue(
        target.device.as_ref(),
        FILL_QUEUE_DEPTH,
        PATTERN_BLOCK_BYTES,
    )
    .map_err(|e| anyhow!("fill: {}", describe(&e)))?;
    write_pass(queue.as_mut(), &layout, generation)
        .map_err(|e| anyhow!("fill: {}", describe(&e)))?;
    Ok(layout.pattern_blocks())
}

/// What `check` found.
#[derive(Debug)]
pub struct CheckReport {
    pub blocks: u64,
    pub blocks_wrong: u64,
    /// The lowest-numbered wrong blocks, at most [`MISMATCH_LINES_MAX`]: (block, reason).
    pub first_wrong: Vec<(u64, String)>,
}

/// `vexfs-hwtest check`: reads every block (read-only) and reports which do
/// not hold `generation`.
pub fn check(path: &Path, generation: u64, bytes: u64) -> Result<CheckReport> {
    let target = open_target(path, bytes, Access::ReadOnly)?;
    let layout = fill_layout(&target)?;
    let mut queue = open_queue(
        target.device.as_ref(),
        FILL_QUEUE_DEPTH,
        PATTERN_BLOCK_BYTES,
    )
    .map_err(|e| anyhow!("check: {}", describe(&e)))?;
    let mut report = CheckReport {
        blocks: layout.pattern_blocks(),
        blocks_wrong: 0,
        first_wrong: Vec::with_capacity(MISMATCH_LINES_MAX + 1),
    };
    read_pass(queue.as_mut(), &layout, |number, verdict| {
        let reason = match verdict {
            Ok(found) if found == generation => return ControlFlow::Continue(()),
            Ok(found) => format!("holds generation {found}"),
            Err(reason) => reason,
        };
        report.blocks_wrong += 1;
        // Reads complete out of order: keep the lowest-numbered ones.
        report.first_wrong.push((number, reason));
        report.first_wrong.sort_by_key(|(number, _)| *number);
        report.first_wrong.truncate(MISMATCH_LINES_MAX);
        ControlFlow::Continue(())
    })
    .map_err(|e| anyhow!("check: {}", describe(&e)))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::ScratchFile;

    #[test]
    fn block_devices_are_written_only_with_destructive() {
        let path = Path::new("/dev/example");
        let refused = write_allowed(path, true, Access::Write { destructive: false });
        let message = format!("{:#}", refused.expect_err("must refuse"));
        assert_eq!(
            message,
            "refusing to write to block device /dev/example without --destructive"
        );
        assert!(write_allowed(path, true, Access::Write { destructive: true }).is_ok());
        assert!(write_allowed(path, true, Access::ReadOnly).is_ok());
        assert!(write_allowed(path, false, Access::Write { destructive: false }).is_ok());
    }

    #[test]
    fn verify_creates_the_file_and_passes_every_combination() {
        let scratch = ScratchFile::new("verify");
        let plan = VerifyPlan {
            depths: vec![1, 4],
            // 512 runs where the file system takes 512-byte direct I/O and is
            // skipped where it does not; 12 KiB leaves a short last I/O.
            block_sizes: vec![512, 4096, 12288, 65536],
            bytes: (1 << 20) + 8192,
            seed: 100,
        };
        let verdicts = verify(&scratch.path, &plan, false).expect("verify runs");
        assert_eq!(verdicts.len(), 8);
        assert!(
            verdicts[1..4]
                .iter()
                .chain(&verdicts[5..])
                .all(|v| *v == Verdict::Ok),
            "{verdicts:?}"
        );
        assert!(matches!(verdicts[0], Verdict::Ok | Verdict::Skipped));
        let len = std::fs::metadata(&scratch.path).expect("created").len();
        assert_eq!(len, plan.bytes);
    }

    #[test]
    fn limits_are_checked_before_any_io() {
        let scratch = ScratchFile::new("verify-limits");
        let plan = VerifyPlan {
            depths: vec![4096],
            block_sizes: vec![1 << 20],
            bytes: 1 << 20,
            seed: 1,
        };
        assert!(verify(&scratch.path, &plan, false).is_err());
        assert!(!scratch.path.exists(), "nothing created for a refused plan");
    }

    #[test]
    fn check_accepts_the_filled_generation_and_rejects_any_other() {
        let scratch = ScratchFile::new("fill-check");
        let bytes = 256 * PATTERN_BLOCK_BYTES as u64;
        assert_eq!(fill(&scratch.path, 7, bytes, false).expect("fill"), 256);

        let good = check(&scratch.path, 7, bytes).expect("check runs");
        assert_eq!((good.blocks, good.blocks_wrong), (256, 0));

        let wrong = check(&scratch.path, 8, bytes).expect("check runs");
        assert_eq!((wrong.blocks, wrong.blocks_wrong), (256, 256));
        let numbers: Vec<u64> = wrong.first_wrong.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, (0..MISMATCH_LINES_MAX as u64).collect::<Vec<_>>());
        assert_eq!(wrong.first_wrong[0].1, "holds generation 7");

        // Check is read-only: it never extends the file to cover --bytes.
        assert!(check(&scratch.path, 7, 2 * bytes).is_err());
        assert_eq!(
            std::fs::metadata(&scratch.path).expect("exists").len(),
            bytes
        );
    }

    #[test]
    fn a_second_fill_replaces_the_first_only_where_it_reaches() {
        let scratch = ScratchFile::new("fill-twice");
        let bytes = 64 * PATTERN_BLOCK_BYTES as u64;
        fill(&scratch.path, 1, bytes, false).expect("fill 1");
        fill(&scratch.path, 2, bytes / 2, false).expect("fill 2");
        let report = check(&scratch.path, 2, bytes).expect("check runs");
        assert_eq!(report.blocks_wrong, 32);
        assert_eq!(
            report.first_wrong[0],
            (32, "holds generation 1".to_string())
        );
    }
}
