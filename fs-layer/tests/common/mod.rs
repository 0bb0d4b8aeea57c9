//! Test fixtures: image files, and mounts that always unmount (also when a
//! test fails) and wait for their daemon to exit.

#![allow(dead_code)]

pub mod client;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const VEXFS: &str = env!("CARGO_BIN_EXE_vexfs");

/// FUSE mounts need root and /dev/fuse; say why a test is skipped.
pub fn fuse_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/dev/fuse").exists() {
        eprintln!("SKIP {test}: needs root and /dev/fuse (root: {root})");
        return false;
    }
    true
}

pub fn scratch_dir() -> PathBuf {
    // A disk-backed directory: images are sparse files, often larger than RAM would like.
    let dir = PathBuf::from("/var/tmp/vexfs-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A formatted image file, removed on drop.
pub struct Image {
    pub path: PathBuf,
}

impl Image {
    pub fn new(name: &str, size: &str) -> Image {
        let path = scratch_dir().join(format!("{name}-{}.img", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let out = Command::new(VEXFS)
            .args(["mkfs", path.to_str().unwrap(), "--size", size])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mkfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Image { path }
    }

    /// fsck's exit code (-1 if killed by a signal) and its output.
    pub fn fsck(&self) -> (i32, String) {
        let out = Command::new(VEXFS)
            .args(["fsck", self.path.to_str().unwrap()])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    pub fn assert_clean(&self) {
        let (code, text) = self.fsck();
        assert_eq!(code, 0, "fsck found problems:\n{text}");
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A live mount of an image; unmounted on drop.
pub struct Mounted {
    pub dir: PathBuf,
    pid: i32,
    mounted: bool,
}

impl Mounted {
    pub fn new(image: &Image, options: &[&str]) -> Result<Mounted, String> {
        Self::mount(image, options, false)
    }

    /// As a user in the image's directory types it: the image, the
    /// mountpoint and any relative path in `options` are relative to it.
    pub fn new_relative(image: &Image, options: &[&str]) -> Result<Mounted, String> {
        Self::mount(image, options, true)
    }

    fn mount(image: &Image, options: &[&str], relative: bool) -> Result<Mounted, String> {
        let dir = scratch_dir().join(format!(
            "mnt-{}-{}",
            image.path.file_stem().unwrap().to_string_lossy(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(VEXFS);
        if relative {
            cmd.current_dir(scratch_dir()).args([
                "mount",
                image.path.file_name().unwrap().to_str().unwrap(),
                dir.file_name().unwrap().to_str().unwrap(),
            ]);
        } else {
            cmd.args(["mount", image.path.to_str().unwrap(), dir.to_str().unwrap()]);
        }
        for o in options {
            cmd.args(["-o", o]);
        }
        // Runs a whole suite under other mount options, e.g.
        // VEXFS_TEST_MOUNT_OPTIONS=writeback_cache (scripts/test does).
        if let Ok(extra) = std::env::var("VEXFS_TEST_MOUNT_OPTIONS") {
            if !extra.is_empty() {
                cmd.args(["-o", &extra]);
            }
        }
        let out = cmd.output().unwrap();
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let pid = stdout
            .split("daemon pid ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no daemon pid in {stdout:?}"));
        Ok(Mounted {
            dir,
            pid,
            mounted: true,
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// SIGKILLs the daemon (no unmount, no write-back) and waits until it
    /// is gone; dropping the guard then takes the dead mount down.
    pub fn kill_daemon(&self) {
        // SAFETY: the pid is this fixture's own daemon.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        wait_gone(self.pid);
    }

    /// Unmounts and waits until the daemon has written everything back and exited.
    pub fn unmount(mut self) {
        self.do_unmount();
    }

    fn do_unmount(&mut self) {
        if !self.mounted {
            return;
        }
        self.mounted = false;
        let c = std::ffi::CString::new(self.dir.as_os_str().as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // SAFETY: c is a valid path string.
            if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) || err.raw_os_error() == Some(libc::ENOENT)
            {
                break; // not mounted any more
            }
            if Instant::now() > deadline {
                // SAFETY: as above; lazy detach as the last resort.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        wait_gone(self.pid);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.do_unmount();
    }
}

/// Aborts the FUSE connection of the mount whose device number is `dev`:
/// every request waiting on the daemon fails, so stuck callers return and
/// the mount can be taken down. Mounts the fuse control filesystem when
/// nobody has, and takes it down again afterwards.
pub fn abort_fuse_connection(dev: u64) {
    let connections = Path::new("/sys/fs/fuse/connections");
    let minor = libc::minor(dev);
    let abort = connections.join(format!("{minor}/abort"));
    let mounted_here = !abort.exists()
        && Command::new("mount")
            .args(["-t", "fusectl", "none"])
            .arg(connections)
            .status()
            .is_ok_and(|s| s.success());
    if let Err(e) = std::fs::write(&abort, "1") {
        eprintln!("aborting FUSE connection {minor}: {e}");
    }
    if mounted_here {
        let _ = Command::new("umount").arg(connections).status();
    }
}

/// Waits for a process that is not our child (the daemon) to exit.
pub fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(stat) if stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')) => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    panic!("daemon {pid} did not exit within 60 s");
}

/// Deterministic bytes for (seed, offset): any range can be regenerated to compare.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let word = (offset / 8 + i as u64) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut x = word.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 31;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
