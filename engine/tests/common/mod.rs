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
        }
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
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// xorshift64*: a fast deterministic generator for offsets and payloads.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Bytes per patterned block.
pub const BLOCK: usize = 4096;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fills one block: [block number][generation][checksum of the rest][payload].
pub fn fill_block(block: &mut [u8], number: u64, generation: u64) {
    let mut rng = Rng::new(number ^ generation.rotate_left(32));
    for chunk in block[24..].chunks_mut(8) {
        let word = rng.next().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    block[0..8].copy_from_slice(&number.to_le_bytes());
    block[8..16].copy_from_slice(&generation.to_le_bytes());
    let sum = fnv1a(&block[24..]) ^ number ^ generation;
    block[16..24].copy_from_slice(&sum.to_le_bytes());
}

/// Checks a block written by [`fill_block`]; returns its generation.
pub fn check_block(block: &[u8], number: u64) -> Result<u64, String> {
    let word = |i: usize| u64::from_le_bytes(block[i * 8..i * 8 + 8].try_into().unwrap());
    let (stored_number, generation, sum) = (word(0), word(1), word(2));
    if stored_number != number {
        return Err(format!("block {number} holds block {stored_number}'s data"));
    }
    if fnv1a(&block[24..]) ^ number ^ generation != sum {
        return Err(format!(
            "block {number} generation {generation}: checksum mismatch"
        ));
    }
    let mut expected = vec![0u8; block.len()];
    fill_block(&mut expected, number, generation);
    if expected != block {
        return Err(format!(
            "block {number} generation {generation}: payload differs"
        ));
    }
    Ok(generation)
}
