//! Fixtures for the engine tests: scratch files, loop devices and small
//! tmpfs mounts that clean up after themselves, also when a test fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A file of `size` bytes (all zero, allocated) that is deleted on drop.
pub struct ScratchFile {
    pub path: PathBuf,
}

impl ScratchFile {
    pub fn new(dir: &Path, name: &str, size: u64) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(size).unwrap();
        Self { path }
    }

    /// Under the cargo target dir, on the same disk as the build.
    pub fn on_disk(name: &str, size: u64) -> Self {
        Self::new(Path::new(env!("CARGO_TARGET_TMPDIR")), name, size)
    }

    pub fn on_tmpfs(name: &str, size: u64) -> Self {
        Self::new(Path::new("/dev/shm"), name, size)
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A loop device over a file, detached on drop.
pub struct LoopDevice {
    pub device: PathBuf,
}

impl LoopDevice {
    pub fn attach(backing: &Path) -> Option<Self> {
        let output = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(backing)
            .output()
            .ok()?;
        if !output.status.success() {
            eprintln!(
                "losetup failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return None;
        }
        let device = String::from_utf8(output.stdout).ok()?.trim().to_string();
        Some(Self {
            device: PathBuf::from(device),
        })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let status = Command::new("losetup").arg("-d").arg(&self.device).status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("warning: could not detach {}", self.device.display());
            return;
        }
        // io_uring closes registered files after the ring is gone, so the
        // device may still be open and the kernel detaches it at last close.
        // Wait for that, so that the backing file is free when we return.
        let name = self
            .device
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let backing = PathBuf::from(format!("/sys/block/{name}/loop/backing_file"));
        for _ in 0..100 {
            if !backing.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        eprintln!(
            "warning: {} still attached 5 s after losetup -d",
            self.device.display()
        );
    }
}

/// A tmpfs of a fixed size mounted on a fresh directory, unmounted on drop.
pub struct SmallTmpfs {
    pub dir: PathBuf,
}

impl SmallTmpfs {
    pub fn mount(name: &str, size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("vexfs-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .ok()?;
        if !status.success() {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Self { dir })
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        // Files closed by io_uring teardown may keep it busy for a moment.
        for _ in 0..100 {
            let unmounted = Command::new("umount")
                .arg(&self.dir)
                .stderr(std::process::Stdio::null())
                .status();
            if matches!(unmounted, Ok(s) if s.success()) {
                let _ = std::fs::remove_dir(&self.dir);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        eprintln!(
            "warning: {} busy for 5 s; detaching it lazily",
            self.dir.display()
        );
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

pub use vexfs_engine::pattern::{check_block, fill_block, Rng};

/// Bytes per patterned block.
pub const BLOCK: usize = 4096;
