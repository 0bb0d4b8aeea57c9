//! Where a vector benchmark's files live: a directory of a VexFS the user
//! mounted, or a fresh image formatted and mounted for the run and
//! unmounted after it, also when the run fails (the mount guard's Drop).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::fs::{Mounted, Scratch, VexfsMount};

/// Smallest image a vector benchmark formats for itself.
pub const IMAGE_BYTES_MIN: u64 = 256 << 20;

/// Where the vector files live.
#[derive(Clone, Debug)]
pub enum Place {
    /// A directory on a VexFS the user mounted.
    Mounted(PathBuf),
    /// A fresh image, formatted and mounted in a scratch directory under `dir`.
    Scratch {
        dir: PathBuf,
        size_bytes: Option<u64>,
        vexfs_binary: PathBuf,
        /// Pin the mount's daemon to this CPU (`--pin-cpu`).
        daemon_cpu: Option<usize>,
    },
}

impl Place {
    /// `--mount DIR` when given, else a scratch image under `dir`, made and
    /// mounted by the `vexfs` binary that sits beside this one.
    pub fn from_args(
        mount: Option<PathBuf>,
        dir: PathBuf,
        size_bytes: Option<u64>,
    ) -> Result<Self> {
        Ok(match mount {
            Some(dir) => Place::Mounted(dir),
            None => Place::Scratch {
                dir,
                size_bytes,
                vexfs_binary: std::env::current_exe()
                    .context("locating vexfs-bench")?
                    .with_file_name("vexfs"),
                daemon_cpu: None,
            },
        })
    }

    /// The same place, its daemon pinned to `cpu` once mounted; refused for
    /// a VexFS the user mounted, whose daemon this run does not know.
    pub fn with_daemon_on_cpu(self, cpu: usize) -> Result<Self> {
        match self {
            Place::Mounted(dir) => bail!(
                "--pin-cpu with --mount {}: this run did not start that daemon; \
                 pin it yourself (taskset -a -p -c {cpu} PID) and run without --pin-cpu",
                dir.display()
            ),
            Place::Scratch {
                dir,
                size_bytes,
                vexfs_binary,
                ..
            } => Ok(Place::Scratch {
                dir,
                size_bytes,
                vexfs_binary,
                daemon_cpu: Some(cpu),
            }),
        }
    }

    /// Everything a scratch mount needs that the machine may lack, named at once.
    pub fn check_prerequisites(&self) -> Result<()> {
        let Place::Scratch {
            dir, vexfs_binary, ..
        } = self
        else {
            return Ok(());
        };
        let mut missing = Vec::new();
        if !dir.is_dir() {
            missing.push(format!("--dir {}: no such directory", dir.display()));
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            missing.push("root (mounting needs it; or pass --mount DIR of a mounted VexFS)".into());
        }
        if !Path::new("/dev/fuse").exists() {
            missing.push("/dev/fuse (the kernel's FUSE driver: modprobe fuse)".into());
        }
        if !vexfs_binary.is_file() {
            missing.push(format!(
                "{} (build it beside vexfs-bench: cargo build --release -p vexfs-fs)",
                vexfs_binary.display()
            ));
        }
        if !missing.is_empty() {
            bail!("cannot run here; missing: {}", missing.join("; "));
        }
        Ok(())
    }
}

/// Runs `work(directory, description, progress)` on a VexFS directory: the
/// user's, or a scratch image of `size_bytes_default` (unless the place
/// names a size) mounted for the call and unmounted after it, waiting for
/// the daemon to write back and exit. Returns what `work` returned and,
/// with `keep`, the scratch directory left behind (unmounted).
pub fn on_vexfs<T>(
    place: &Place,
    label: &str,
    size_bytes_default: u64,
    keep: bool,
    progress: &mut dyn FnMut(&str),
    work: impl FnOnce(&Path, &str, &mut dyn FnMut(&str)) -> Result<T>,
) -> Result<(T, Option<PathBuf>)> {
    match place {
        Place::Mounted(dir) => {
            let description = format!("{} (mounted by the user)", dir.display());
            Ok((work(dir, &description, progress)?, None))
        }
        Place::Scratch {
            dir,
            size_bytes,
            vexfs_binary,
            daemon_cpu,
        } => {
            let size_bytes = size_bytes
                .unwrap_or(size_bytes_default)
                .max(IMAGE_BYTES_MIN)
                .next_multiple_of(1 << 20);
            let scratch = Scratch::create(dir, label, keep)?;
            progress(&format!(
                "{label}: mkfs and mount a {} MiB VexFS image in {}",
                size_bytes >> 20,
                scratch.path.display()
            ));
            let mount = VexfsMount::create(vexfs_binary, &scratch.path, size_bytes, keep, &[])?;
            if let Some(cpu) = daemon_cpu {
                mount.pin_daemon(*cpu)?;
            }
            let result = work(mount.root(), &mount.describe(), progress);
            progress(&format!(
                "{label}: unmount, waiting for the daemon to write back and exit"
            ));
            let finished = mount.finish();
            let result = result?;
            finished?;
            Ok((result, keep.then(|| scratch.path.clone())))
        }
    }
}

/// Removes a benchmark's file; a failure is printed, not fatal.
pub(crate) fn remove_file(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            eprintln!("vexfs-bench: cleanup: removing {}: {error}", path.display());
        }
    }
}
