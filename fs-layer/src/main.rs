//! `vexfs`: mkfs, fsck, mount and info for VexFS (and `serve`, which runs
//! the HTTP server's own program). Invoked as `mkfs.vexfs`,
//! `fsck.vexfs` or `mount.vexfs` it acts as that subcommand, so
//! `mkfs -t vexfs` and `mount -t vexfs` work once those names are in PATH.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use vexfs_engine::{open_backing, parse_size, rbd, AlignedBuf, BlockDevice, UringOptions};
use vexfs_fs::format::{Superblock, BLOCK_BYTES, BLOCK_BYTES_U64};
use vexfs_fs::fsck::fsck;
use vexfs_fs::mkfs::{mkfs, MkfsOptions};
use vexfs_fs::mount::{mount, MountRequest, THREADS_DEFAULT};
use vexfs_fs::store::read_superblock;

/// fsck exit codes, as e2fsck uses them.
const FSCK_CLEAN: u8 = 0;
const FSCK_REPAIRED: u8 = 1;
const FSCK_PROBLEMS: u8 = 4;
const FSCK_FAILED: u8 = 8;
/// Repair passes before fsck gives up on what is left.
const REPAIR_PASSES_MAX: usize = 3;

#[derive(Parser)]
#[command(
    name = "vexfs",
    version,
    about = "VexFS: format, check and mount (FUSE over the io_uring engine)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Format a device or image file.
    Mkfs {
        path: String,
        /// Create the image file with this size when PATH does not exist (e.g. 1G).
        #[arg(long)]
        size: Option<String>,
        #[arg(long, short = 'L', default_value = "")]
        label: String,
        /// Overwrite an existing filesystem.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Check a filesystem without changing it (exit 0 clean, 4 problems found, 8 could not check).
    Fsck {
        path: String,
        /// Restore a damaged primary superblock from the backup, then check.
        #[arg(long)]
        repair: bool,
        /// Accepted for fsck(8) compatibility (-a, -p, -n, -y); the check is read-only anyway.
        #[arg(short = 'a', short_alias = 'p', hide = true)]
        _auto: bool,
        #[arg(short = 'n', short_alias = 'y', hide = true)]
        _no: bool,
    },
    /// Mount; returns once the mount is ready and leaves a daemon serving it.
    Mount {
        path: String,
        mountpoint: PathBuf,
        /// Comma-separated: allow_other, ro, rw, nosuid, nodev, noexec, noatime, threads=N, cache_blocks=N, request_memory=SIZE, writeback_cache (the kernel caches writes to plain files; see the README), log=PATH, nocheck (skip the metadata check at mount).
        #[arg(short = 'o')]
        options: Vec<String>,
        /// Serve in this process instead of a daemon.
        #[arg(long, short = 'f')]
        foreground: bool,
        /// Accepted for mount(8) helper compatibility: -n (no mtab), -s (sloppy), -v (verbose).
        #[arg(short = 'n', hide = true)]
        _no_mtab: bool,
        #[arg(short = 's', hide = true)]
        _sloppy: bool,
        #[arg(short = 'v', hide = true)]
        _verbose: bool,
    },
    /// Print the superblock and usage.
    Info { path: String },
    /// Serve the vector files of a mount over HTTP (Qdrant's REST API):
    /// runs `vexfs-serve` from beside this program (docs/HTTP.md).
    #[command(disable_help_flag = true)]
    Serve {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let program = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    if let Some(sub) = program.strip_suffix(".vexfs") {
        if matches!(sub, "mkfs" | "fsck" | "mount") {
            args.insert(1, sub.to_string());
        }
    }
    let cli = Cli::parse_from(args);
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("vexfs: {e:#}");
            ExitCode::from(FSCK_FAILED.max(1))
        }
    }
}

fn open(path: &str, read_only: bool) -> anyhow::Result<Arc<dyn BlockDevice>> {
    open_backing(
        path,
        UringOptions {
            read_only,
            ..UringOptions::default()
        },
    )
    .with_context(|| format!("opening {path}"))
}

/// `path` as the mount daemon (which leaves the working directory) must
/// see it: files and devices canonical, `ram:` as given, `rbd:` specs as
/// given but for relative conf=/keyring= paths, made absolute.
fn absolute(path: &str) -> anyhow::Result<String> {
    if path.starts_with("ram:") {
        return Ok(path.to_string());
    }
    if rbd::is_rbd_spec(path) {
        return Ok(rbd::absolute_spec(path));
    }
    Ok(std::fs::canonicalize(path)
        .with_context(|| path.to_string())?
        .to_string_lossy()
        .into_owned())
}

/// CEPH_CONF and CEPH_KEYRING made absolute, for the mount daemon that
/// opens an `rbd:` image after leaving the working directory.
fn absolute_ceph_environment() -> anyhow::Result<()> {
    for key in ["CEPH_CONF", "CEPH_KEYRING"] {
        if let Some(value) = std::env::var_os(key).filter(|v| !v.is_empty()) {
            let path = std::path::absolute(&value)
                .with_context(|| format!("{key}={}", value.to_string_lossy()))?;
            // Single-threaded here: nothing else reads the environment.
            std::env::set_var(key, path);
        }
    }
    Ok(())
}

fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Mkfs {
            path,
            size,
            label,
            force,
        } => {
            if let Some(size) = size.as_deref().filter(|_| rbd::is_rbd_spec(&path)) {
                bail!("--size {size}: an RBD image has the size it was created with (rbd create --size, rbd resize)");
            }
            if let Some(size) = size {
                let bytes = parse_size(&size)?;
                if !Path::new(&path).exists() {
                    let file = std::fs::File::create_new(&path)
                        .with_context(|| format!("creating {path}"))?;
                    file.set_len(bytes)
                        .with_context(|| format!("sizing {path}"))?;
                } else if std::fs::metadata(&path)?.is_file()
                    && std::fs::metadata(&path)?.len() != bytes
                {
                    bail!("{path} exists with another size; remove it or leave out --size");
                }
            }
            let dev = open(&path, false)?;
            let sb = mkfs(
                dev.as_ref(),
                &MkfsOptions {
                    label,
                    force,
                    root_uid: 0,
                    root_gid: 0,
                },
            )?;
            print_superblock(&path, &sb);
            Ok(0)
        }
        Command::Fsck { path, repair, .. } => {
            let mut code = FSCK_CLEAN;
            if repair {
                let dev = open(&path, false)?;
                if restore_superblock(dev.as_ref())? {
                    println!("{path}: primary superblock restored from the backup");
                    code = FSCK_REPAIRED;
                }
            }
            let mut report = fsck(open(&path, true)?)?;
            // A fix can reveal another (an extent of a missing inode, once
            // gone, leaves its blocks leaked): a few passes at most.
            let mut passes = 0;
            while repair && !report.fixes.is_empty() && passes < REPAIR_PASSES_MAX {
                passes += 1;
                for line in vexfs_fs::fsck::repair(open(&path, false)?, &report.fixes)? {
                    println!("{path}: repaired: {line}");
                }
                code = FSCK_REPAIRED;
                report = fsck(open(&path, true)?)?;
            }
            if let Some(replay) = report.replayed {
                println!("{path}: journal transaction {} ({} blocks) is committed and will be replayed at mount", replay.sequence, replay.blocks);
            }
            if report.clean() {
                println!(
                    "{path}: clean, {} inodes ({} directories), {} data blocks, {} tree nodes, {} free blocks",
                    report.inodes, report.directories, report.data_blocks, report.tree_nodes, report.free_blocks
                );
                Ok(code)
            } else {
                println!("{path}: {} problems:", report.problems.len());
                for problem in &report.problems {
                    println!("  {problem}");
                }
                Ok(FSCK_PROBLEMS)
            }
        }
        Command::Mount {
            path,
            mountpoint,
            options,
            foreground,
            ..
        } => {
            let mountpoint = PathBuf::from(absolute(&mountpoint.to_string_lossy())?);
            let mut request = MountRequest {
                device: absolute(&path)?,
                mountpoint,
                allow_other: false,
                read_only: false,
                foreground,
                threads: THREADS_DEFAULT,
                cache_blocks: None,
                skip_check: false,
                request_memory_bytes: None,
                kernel_options: Vec::new(),
                writeback_cache: false,
                log: None,
            };
            for o in &options {
                request.apply_options(o)?;
            }
            if rbd::is_rbd_spec(&request.device) {
                absolute_ceph_environment()?;
            }
            // The daemon leaves the working directory; a relative log path
            // means the one it names from here.
            if let Some(log) = request.log.take() {
                request.log = Some(
                    std::path::absolute(&log)
                        .with_context(|| format!("-o log={}", log.display()))?,
                );
            }
            mount(&request)?;
            Ok(0)
        }
        Command::Info { path } => {
            let dev = open(&path, true)?;
            let sb = read_superblock(dev.as_ref())?;
            print_superblock(&path, &sb);
            Ok(0)
        }
        Command::Serve { args } => serve(&args),
    }
}

/// `vexfs serve ARGS`: replaces this process with `vexfs-serve ARGS`, the
/// HTTP server (crate server/), found beside this program. The server is
/// its own program so the filesystem's carries no HTTP stack.
fn serve(args: &[String]) -> anyhow::Result<u8> {
    use std::os::unix::process::CommandExt;
    let me = std::env::current_exe().context("finding this program")?;
    let server = me.with_file_name("vexfs-serve");
    if !server.exists() {
        bail!(
            "{} is not installed beside {} (cargo build -p vexfs-server builds it)",
            server.display(),
            me.display()
        );
    }
    let error = std::process::Command::new(&server).args(args).exec();
    Err(error).with_context(|| format!("running {}", server.display()))
}

/// Copies the backup superblock over a damaged primary. Returns whether it did.
fn restore_superblock(dev: &dyn BlockDevice) -> anyhow::Result<bool> {
    let mut buf = AlignedBuf::zeroed(BLOCK_BYTES);
    dev.read_at(0, &mut buf[..])?;
    if Superblock::decode(&buf[..], 0).is_ok() {
        return Ok(false);
    }
    let backup = dev.geometry().size_bytes / BLOCK_BYTES_U64 - 1;
    dev.read_at(backup * BLOCK_BYTES_U64, &mut buf[..])?;
    let sb = Superblock::decode(&buf[..], backup)
        .context("the backup superblock is damaged too; nothing to restore from")?;
    buf.copy_from_slice(&sb.encode());
    dev.write_at(0, &buf[..])?;
    dev.flush()?;
    Ok(true)
}

fn print_superblock(path: &str, sb: &Superblock) {
    let uuid: String = sb
        .uuid
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if matches!(i, 4 | 6 | 8 | 10) {
                format!("-{b:02x}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect();
    let used = sb.total_blocks - sb.free_blocks;
    println!("{path}: VexFS format {}", sb.format_version);
    println!("  uuid           {uuid}");
    println!("  label          {:?}", sb.label);
    println!(
        "  size           {} bytes ({} blocks of {BLOCK_BYTES})",
        sb.total_blocks * BLOCK_BYTES_U64,
        sb.total_blocks
    );
    println!(
        "  used           {} blocks ({:.1}%), {} free",
        used,
        used as f64 * 100.0 / sb.total_blocks as f64,
        sb.free_blocks
    );
    println!("  inodes         {} (next {})", sb.inode_count, sb.next_ino);
    println!(
        "  journal        blocks {}..{} ({} KiB), next sequence {}",
        sb.journal_start,
        sb.journal_start + sb.journal_blocks,
        sb.journal_blocks * 4,
        sb.journal_sequence
    );
    println!(
        "  bitmap         blocks {}..{}",
        sb.bitmap_start,
        sb.bitmap_start + sb.bitmap_blocks
    );
    println!(
        "  tree           root {} height {}",
        sb.tree_root, sb.tree_height
    );
    println!("  backup sb      block {}", sb.backup_block());
    println!("  mounts         {}", sb.mount_count);
}

#[cfg(test)]
mod tests {
    use super::absolute;

    #[test]
    fn rbd_specs_pass_through_with_absolute_config_paths() {
        assert_eq!(absolute("rbd:pool/img").unwrap(), "rbd:pool/img");
        assert_eq!(absolute("ram:64M").unwrap(), "ram:64M");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            absolute("rbd:pool/img:conf=ceph.conf").unwrap(),
            format!("rbd:pool/img:conf={}/ceph.conf", cwd.display())
        );
    }
}
