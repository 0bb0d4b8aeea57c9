//! `vexfs-bench fs`: the same POSIX workloads, in one run, on VexFS mounted
//! through FUSE and on ext4 over a loop device, each on an image file of the
//! same size in the same directory. Every operation's latency is recorded.

mod mixed;
mod mount;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::latency::Percentiles;
pub use mixed::{MixedStats, THREADS_MAX};
pub use mount::{find_tool, Ext4Mount, Ext4Tools, Mounted, VexfsMount};
use workload::{append_fsync, drop_caches, fill, metadata, random_reads, random_writes};
pub(crate) use workload::{catch_interrupts, check_interrupted};

/// Bytes of every read, overwrite and append.
pub const IO_BYTES: u64 = 4096;
/// The random-I/O file is a quarter of the image, at most this.
pub const IO_FILE_BYTES_MAX: u64 = 256 << 20;
/// Smallest image: its quarter still makes a file worth reading at random.
pub const SIZE_BYTES_MIN: u64 = 64 << 20;
pub const SIZE_BYTES_MAX: u64 = 1 << 40;
pub const FILES_MAX: usize = 1_000_000;
pub const SECONDS_MAX: f64 = 3600.0;

/// What to measure, where.
#[derive(Clone, Debug)]
pub struct Config {
    /// Holds the images and their mountpoints: on the disk to measure.
    pub dir: PathBuf,
    pub size_bytes: u64,
    pub files: usize,
    /// Per latency workload (random read, random overwrite, fsync).
    pub seconds: f64,
    /// Leave the (unmounted) images behind.
    pub keep: bool,
    /// Measure ext4 beside VexFS.
    pub ext4: bool,
    /// The `vexfs` binary (mkfs, mount).
    pub vexfs_binary: PathBuf,
    /// Threads of the mixed workload; 0 leaves it out.
    pub threads: usize,
    /// Extra `vexfs mount -o` options (e.g. `threads=1`).
    pub vexfs_options: Vec<String>,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if !(SIZE_BYTES_MIN..=SIZE_BYTES_MAX).contains(&self.size_bytes) {
            bail!(
                "--size {} is not in [{} MiB, {} TiB]",
                self.size_bytes,
                SIZE_BYTES_MIN >> 20,
                SIZE_BYTES_MAX >> 40
            );
        }
        if !(1..=FILES_MAX).contains(&self.files) {
            bail!("--files {} is not in [1, {FILES_MAX}]", self.files);
        }
        if !(self.seconds > 0.0 && self.seconds <= SECONDS_MAX) {
            bail!("--seconds {} is not in (0, {SECONDS_MAX}]", self.seconds);
        }
        if self.threads > THREADS_MAX {
            bail!("--threads {} is not in [0, {THREADS_MAX}]", self.threads);
        }
        Ok(())
    }

    /// Size of the file read and overwritten at random, and of the most the
    /// fsync workload appends before it truncates and starts over.
    pub fn io_file_bytes(&self) -> u64 {
        (self.size_bytes / 4).min(IO_FILE_BYTES_MAX) / IO_BYTES * IO_BYTES
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

/// Everything this run needs that the machine may lack, named all at once.
/// Returns the ext4 tools when ext4 is to be measured.
pub fn check_prerequisites(config: &Config) -> Result<Option<Ext4Tools>> {
    let mut missing = Vec::new();
    if !config.dir.is_dir() {
        missing.push(format!("--dir {}: no such directory", config.dir.display()));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (mount, losetup and drop_caches need it)".to_string());
    }
    if !Path::new("/dev/fuse").exists() {
        missing.push("/dev/fuse (the kernel's FUSE driver: modprobe fuse)".to_string());
    }
    if !config.vexfs_binary.is_file() {
        missing.push(format!(
            "{} (build it beside vexfs-bench: cargo build --release -p vexfs-fs)",
            config.vexfs_binary.display()
        ));
    }
    let mut tools = None;
    if config.ext4 {
        let losetup = find_tool("losetup");
        let mkfs = find_tool("mkfs.ext4");
        for (name, found, package) in [
            ("losetup", &losetup, "util-linux"),
            ("mkfs.ext4", &mkfs, "e2fsprogs"),
        ] {
            if found.is_none() {
                missing.push(format!(
                    "{name} (from {package}; or pass --no-ext4 to measure VexFS alone)"
                ));
            }
        }
        if let (Some(losetup), Some(mkfs)) = (losetup, mkfs) {
            tools = Some(Ext4Tools { losetup, mkfs });
        }
    }
    if !missing.is_empty() {
        bail!("cannot run here; missing: {}", missing.join("; "));
    }
    Ok(tools)
}

/// Throughput and latency of one workload on one filesystem.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct OpStats {
    pub ops: u64,
    /// Wall time of the whole loop, untimed steps included.
    pub seconds: f64,
    pub ops_per_s: f64,
    /// Latency of the timed call alone.
    pub lat_us: Percentiles,
}

/// One column of the report.
#[derive(Clone, Debug, Serialize)]
pub struct FsResult {
    pub name: &'static str,
    pub target: String,
    /// open(O_CREAT|O_EXCL) + close of an empty file.
    pub create: OpStats,
    /// lstat of each file just created.
    pub stat: OpStats,
    pub unlink: OpStats,
    /// 4 KiB pread at QD1, each block at most once, after a remount.
    pub randread: OpStats,
    /// Blocks in the random-I/O file (`randread.ops` of them were read).
    pub randread_blocks: u64,
    /// No read can have been served from a page cache: the filesystem was
    /// remounted, and its backing is read with O_DIRECT or the host page
    /// cache was dropped.
    pub randread_cold: bool,
    /// 4 KiB buffered pwrite at random offsets of the same file.
    pub randwrite: OpStats,
    /// fsync after each 4 KiB append (the append is not timed).
    pub fsync: OpStats,
    /// `--threads N`: create/write/fsync/stat/search from N threads at once.
    pub mixed: Option<MixedStats>,
}

/// The whole run, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct FsRun {
    pub benchmark: &'static str,
    pub dir: PathBuf,
    pub size_bytes: u64,
    pub files: usize,
    pub seconds: f64,
    pub io_bytes: u64,
    pub io_file_bytes: u64,
    pub vexfs: FsResult,
    pub ext4: Option<FsResult>,
    /// Where the images were left with --keep.
    pub kept_in: Option<PathBuf>,
}

/// Formats, mounts and measures VexFS, then ext4; unmounts and removes
/// everything it created whether it succeeds, fails or panics.
pub fn run(config: &Config, progress: &mut dyn FnMut(&str)) -> Result<FsRun> {
    config.validate()?;
    let ext4_tools = check_prerequisites(config)?;
    catch_interrupts();
    let scratch = Scratch::create(&config.dir, "fs", config.keep)?;

    progress(&format!(
        "fs: VexFS: mkfs and mount a {} MiB image in {}",
        config.size_bytes >> 20,
        scratch.path.display()
    ));
    let mut vexfs = VexfsMount::create(
        &config.vexfs_binary,
        &scratch.path,
        config.size_bytes,
        config.keep,
        &config.vexfs_options,
    )?;
    // Its backing is opened with O_DIRECT by the engine: the host page cache never holds it.
    let vexfs_result = measure(&mut vexfs, config, true, progress)?;
    progress("fs: VexFS: unmount, waiting for the daemon to write back and exit");
    vexfs.finish()?;

    let ext4_result = match ext4_tools {
        None => None,
        Some(tools) => {
            progress(&format!(
                "fs: ext4: losetup, mkfs.ext4 and mount a {} MiB image in {}",
                config.size_bytes >> 20,
                scratch.path.display()
            ));
            let mut ext4 =
                Ext4Mount::create(&tools, &scratch.path, config.size_bytes, config.keep)?;
            let direct_io = ext4.direct_io();
            let result = measure(&mut ext4, config, direct_io, progress)?;
            progress("fs: ext4: unmount and detach the loop device");
            ext4.finish()?;
            Some(result)
        }
    };

    Ok(FsRun {
        benchmark: "fs",
        dir: config.dir.clone(),
        size_bytes: config.size_bytes,
        files: config.files,
        seconds: config.seconds,
        io_bytes: IO_BYTES,
        io_file_bytes: config.io_file_bytes(),
        vexfs: vexfs_result,
        ext4: ext4_result,
        kept_in: config.keep.then(|| scratch.path.clone()),
    })
}

/// Every workload, in order, on one mounted filesystem. `backing_direct`:
/// the filesystem's image is read past the host page cache.
fn measure(
    mount: &mut dyn Mounted,
    config: &Config,
    backing_direct: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<FsResult> {
    let name = mount.name();
    let root = mount.root().to_path_buf();
    let duration = config.duration();
    let io_file_bytes = config.io_file_bytes();

    progress(&format!(
        "fs: {name}: create, stat, unlink {} empty files",
        config.files
    ));
    let [create, stat, unlink] = metadata(&root.join("metadata"), config.files)
        .with_context(|| format!("{name}: metadata workload"))?;

    progress(&format!(
        "fs: {name}: write a {} MiB file, remount, drop caches",
        io_file_bytes >> 20
    ));
    let io_file = root.join("random-io");
    fill(&io_file, io_file_bytes)
        .with_context(|| format!("{name}: writing {}", io_file.display()))?;
    mount
        .remount()
        .with_context(|| format!("{name}: remount"))?;
    let page_cache_dropped = match drop_caches() {
        Ok(()) => true,
        Err(error) => {
            eprintln!("vexfs-bench: {error:#}");
            false
        }
    };

    progress(&format!(
        "fs: {name}: 4 KiB random read, QD1, {:.1} s",
        config.seconds
    ));
    let randread = random_reads(&io_file, io_file_bytes, duration)
        .with_context(|| format!("{name}: random read workload"))?;
    progress(&format!(
        "fs: {name}: 4 KiB random overwrite, QD1, {:.1} s",
        config.seconds
    ));
    let randwrite = random_writes(&io_file, io_file_bytes, duration)
        .with_context(|| format!("{name}: random overwrite workload"))?;
    progress(&format!(
        "fs: {name}: 4 KiB append + fsync, {:.1} s",
        config.seconds
    ));
    let fsync = append_fsync(&root.join("append"), io_file_bytes, duration)
        .with_context(|| format!("{name}: fsync workload"))?;
    let mixed = match config.threads {
        0 => None,
        threads => {
            progress(&format!(
                "fs: {name}: create/write/fsync/stat{} from {threads} threads, {:.1} s",
                if name == "VexFS" { "/search" } else { "" },
                config.seconds
            ));
            Some(
                mixed::mixed(&root.join("mixed"), threads, duration, name == "VexFS")
                    .with_context(|| format!("{name}: mixed workload"))?,
            )
        }
    };

    Ok(FsResult {
        name,
        target: mount.describe(),
        create,
        stat,
        unlink,
        randread,
        randread_blocks: io_file_bytes / IO_BYTES,
        randread_cold: backing_direct || page_cache_dropped,
        randwrite,
        fsync,
        mixed,
    })
}

/// The directory the images and mountpoints live in; removed at the end
/// once empty (the mount guards remove their own contents first).
pub(crate) struct Scratch {
    pub(crate) path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// `DIR/vexfs-bench-LABEL.PID`.
    pub(crate) fn create(dir: &Path, label: &str, keep: bool) -> Result<Self> {
        let path = dir.join(format!("vexfs-bench-{label}.{}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, keep })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // Not remove_dir_all: a mount that failed to come off would be walked into.
        if let Err(error) = std::fs::remove_dir(&self.path) {
            eprintln!(
                "vexfs-bench: cleanup: removing {}: {error}",
                self.path.display()
            );
        }
    }
}

type Pick = fn(&FsResult) -> &OpStats;
type MixedPick = fn(&MixedStats) -> Option<&OpStats>;

/// The mixed workload's rows: label and field, in order.
const MIXED_OPS: [(&str, MixedPick); 5] = [
    ("create", |m| Some(&m.create)),
    ("write 4K", |m| Some(&m.write)),
    ("fsync", |m| Some(&m.fsync)),
    ("stat", |m| Some(&m.stat)),
    ("search", |m| m.search.as_ref()),
];

/// Report rows: label and field, in order.
const WORKLOADS: [(&str, Pick); 6] = [
    ("create", |r| &r.create),
    ("stat", |r| &r.stat),
    ("unlink", |r| &r.unlink),
    ("randread 4K", |r| &r.randread),
    ("randwrite 4K", |r| &r.randwrite),
    ("fsync 4K append", |r| &r.fsync),
];

const TABLE_LABEL_WIDTH: usize = 34;
const SEARCH_K_NOTE: usize = 10;
const SEARCH_NOTE: &str = "2000 x 64";
const TABLE_VALUE_WIDTH: usize = 12;
const TABLE_RATIO_WIDTH: usize = 14;

/// One line of the table; with two values, their ratio after them.
fn push_row(out: &mut String, label: &str, values: &[f64]) {
    *out += &format!("{label:<TABLE_LABEL_WIDTH$}");
    // NaN: the filesystem has no such operation (search on ext4).
    for value in values {
        *out += &if value.is_nan() {
            format!("{:>TABLE_VALUE_WIDTH$}", "-")
        } else {
            format!("{value:>TABLE_VALUE_WIDTH$.1}")
        };
    }
    if let [ours, theirs] = values {
        let ratio = ours / theirs;
        *out += &if ratio.is_nan() {
            format!("{:>TABLE_RATIO_WIDTH$}", "-")
        } else {
            format!("{ratio:>TABLE_RATIO_WIDTH$.2}")
        };
    }
    *out += "\n";
}

/// The side-by-side table and the notes that say what each row measured.
pub fn render_table(run: &FsRun) -> String {
    let columns: Vec<&FsResult> = std::iter::once(&run.vexfs).chain(&run.ext4).collect();
    let mut out = format!("{:<TABLE_LABEL_WIDTH$}", "");
    for column in &columns {
        out += &format!("{:>TABLE_VALUE_WIDTH$}", column.name);
    }
    if let Some(ext4) = &run.ext4 {
        let ratio = format!("{}/{}", run.vexfs.name, ext4.name);
        out += &format!("{ratio:>TABLE_RATIO_WIDTH$}");
    }
    out += "\n";
    for (i, (workload, pick)) in WORKLOADS.iter().enumerate() {
        if i > 0 {
            out += "\n";
        }
        let stats: Vec<&OpStats> = columns.iter().map(|c| pick(c)).collect();
        let ops_per_s: Vec<f64> = stats.iter().map(|s| s.ops_per_s).collect();
        push_row(&mut out, &format!("{workload} ops/s"), &ops_per_s);
        for (j, (name, _)) in Percentiles::default().rows().iter().enumerate() {
            let lat_us: Vec<f64> = stats.iter().map(|s| s.lat_us.rows()[j].1).collect();
            push_row(&mut out, &format!("{workload} {name} (us)"), &lat_us);
        }
    }
    if let Some(threads) = run.vexfs.mixed.as_ref().map(|m| m.threads) {
        for (op, pick) in MIXED_OPS {
            let stats: Vec<Option<&OpStats>> = columns
                .iter()
                .map(|c| c.mixed.as_ref().and_then(pick))
                .collect();
            if stats.iter().all(|s| s.is_none()) {
                continue;
            }
            let row = |value: &dyn Fn(&OpStats) -> f64| -> Vec<f64> {
                stats.iter().map(|s| s.map_or(f64::NAN, value)).collect()
            };
            out += "\n";
            let label = format!("{threads} threads: {op}");
            push_row(&mut out, &format!("{label} ops/s"), &row(&|s| s.ops_per_s));
            for (j, (name, _)) in Percentiles::default().rows().iter().enumerate() {
                push_row(
                    &mut out,
                    &format!("{label} {name} (us)"),
                    &row(&|s| s.lat_us.rows()[j].1),
                );
            }
        }
    }
    let mut note = |line: String| {
        out += &line;
        out += "\n";
    };
    note(String::new());
    for column in &columns {
        note(format!("{}: {}", column.name, column.target));
    }
    note(format!(
        "images: {} MiB each, in {}{}",
        run.size_bytes >> 20,
        run.dir.display(),
        match &run.kept_in {
            Some(path) => format!("; kept, unmounted, in {}", path.display()),
            None => String::new(),
        }
    ));
    note(format!(
        "create/stat/unlink: {} empty files in one directory; create includes the close; stat right after all the creates",
        run.files
    ));
    let reads: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "{} {} of {} blocks",
                c.name, c.randread.ops, c.randread_blocks
            )
        })
        .collect();
    note(format!(
        "randread 4K: pread at QD1 of a {} MiB file after a remount, readahead off, each block at most once ({})",
        run.io_file_bytes >> 20,
        reads.join(", ")
    ));
    for column in &columns {
        note(if column.randread_cold {
            format!(
                "  {}: no read could be served from a page cache",
                column.name
            )
        } else {
            format!(
                "  {}: image read through the host page cache, which could not be dropped: reads may hit it",
                column.name
            )
        });
    }
    note("randwrite 4K: buffered pwrite at QD1 into the same file; it returns when the filesystem has the data (ext4: in the page cache), not when it is durable".to_string());
    if let Some(mixed) = &run.vexfs.mixed {
        note(format!(
            "{} threads: each in its own directory cycles create (O_EXCL + 4 KiB write + close), 4 KiB overwrite of its data file, fsync of it, stat of a file it created, and k={SEARCH_K_NOTE} search of a shared {SEARCH_NOTE} vector file (VexFS only); ops/s per op over all threads",
            mixed.threads
        ));
    }
    note(format!(
        "fsync 4K append: latency of fsync(2) after each 4 KiB append (the append untimed; the file starts over every {} MiB); ops/s counts append+fsync pairs",
        run.io_file_bytes >> 20
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ops_per_s: f64, p50: f64) -> OpStats {
        OpStats {
            ops: 10,
            seconds: 1.0,
            ops_per_s,
            lat_us: Percentiles {
                p50,
                p90: p50,
                p99: p50,
                p999: p50,
                max: p50,
            },
        }
    }

    fn result(name: &'static str, scale: f64) -> FsResult {
        FsResult {
            name,
            target: format!("{name} target"),
            create: stats(1000.0 * scale, 10.0),
            stat: stats(2000.0 * scale, 5.0),
            unlink: stats(500.0 * scale, 20.0),
            randread: stats(100.0 * scale, 50.0),
            randread_blocks: 65536,
            randread_cold: true,
            randwrite: stats(300.0 * scale, 3.0),
            fsync: stats(50.0 * scale, 400.0),
            mixed: None,
        }
    }

    fn config(size_bytes: u64) -> Config {
        Config {
            dir: PathBuf::from("/var/tmp"),
            size_bytes,
            files: 2000,
            seconds: 5.0,
            keep: false,
            ext4: true,
            vexfs_binary: PathBuf::from("vexfs"),
            threads: 0,
            vexfs_options: Vec::new(),
        }
    }

    #[test]
    fn the_io_file_is_a_quarter_of_the_image_at_most_256_mib() {
        assert_eq!(config(2 << 30).io_file_bytes(), 256 << 20);
        assert_eq!(config(256 << 20).io_file_bytes(), 64 << 20);
        assert_eq!(config((64 << 20) + 4).io_file_bytes(), 16 << 20);
        assert!(config(1 << 20).validate().is_err());
    }

    #[test]
    fn the_table_has_both_columns_their_ratio_and_every_percentile() {
        let run = FsRun {
            benchmark: "fs",
            dir: PathBuf::from("/var/tmp"),
            size_bytes: 2 << 30,
            files: 2000,
            seconds: 5.0,
            io_bytes: IO_BYTES,
            io_file_bytes: 256 << 20,
            vexfs: result("VexFS", 1.0),
            ext4: Some(result("ext4", 2.0)),
            kept_in: None,
        };
        let table = render_table(&run);
        let header = table.lines().next().unwrap();
        assert!(
            header.contains("VexFS") && header.contains("VexFS/ext4"),
            "{table}"
        );
        let create = table
            .lines()
            .find(|l| l.starts_with("create ops/s"))
            .unwrap();
        assert!(create.ends_with("0.50"), "{create}");
        for (workload, _) in WORKLOADS {
            for name in ["p50", "p90", "p99", "p99.9", "max"] {
                let label = format!("{workload} {name} (us)");
                assert!(table.contains(&label), "{label} missing:\n{table}");
            }
        }

        let alone = render_table(&FsRun { ext4: None, ..run });
        let header = alone.lines().next().unwrap();
        assert!(
            header.contains("VexFS") && !header.contains("ext4"),
            "{alone}"
        );
    }
}
