//! The kernel's writeback cache (`-o writeback_cache`): which opens of a
//! plain file the kernel may cache writes for, and how a write(2) still
//! meets ENOSPC when the device fills.
//!
//! With `FUSE_WRITEBACK_CACHE` a write(2) lands in the page cache and the
//! daemon sees it later (at writeback, close or fsync), so the daemon
//! cannot refuse it when it is made. Three rules keep that from losing
//! data quietly:
//!
//! * the kernel may hold at most a quarter of the space file data may use
//!   dirty for this mount (the bdi's `max_bytes`, kept up to date as the
//!   device fills; FUSE's bdi is strictly limited), between
//!   `WRITEBACK_DIRTY_BYTES_MIN` and `WRITEBACK_DIRTY_BYTES_MAX`: what the
//!   kernel holds always fits in what is left;
//! * once that space falls below `WRITEBACK_TIGHT_BYTES`, new opens are
//!   write-through (FOPEN_DIRECT_IO), so their writes meet ENOSPC at
//!   write(2) as without the cache;
//! * handles already open with the cache are told the same way: their
//!   inodes' attributes are invalidated, so their next write(2) asks for
//!   attributes first (FUSE_GETATTR with the handle), and that answer is
//!   ENOSPC while the device stays that full.
//!
//! A plain file becomes a vector file by SET_VECTOR_META; from then on its
//! bytes change only by ioctl, so cached data written back later would be
//! refused and lost (EIO at close). So the change is refused with EBUSY
//! while the file is open for writing with the cache by another handle; an
//! open that races with the change is served write-through
//! (`Writers::converting`, `begin_conversion`, `opened_writer`); and what
//! the caller's own handle cached is written back first, off the FUSE
//! workers (caches.rs, `convert_after_writeback`), so a file that has
//! bytes is refused (EBUSY) exactly as without the cache.
//!
//! Should a write-through writer use the room meant for cached data first,
//! close(2) and fsync(2) report ENOSPC, as the kernel's writeback errors
//! always are. Where the bdi limit cannot be set (Linux before 6.2), every
//! open is write-through.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::locks::{Mutex, Rank};

/// Most bytes of this mount the kernel may hold dirty.
pub const WRITEBACK_DIRTY_BYTES_MAX: u64 = 1 << 30;
/// Least: a device this full takes writes through anyway.
pub const WRITEBACK_DIRTY_BYTES_MIN: u64 = 2 << 20;
/// The dirty limit is the space file data may use divided by this.
pub const WRITEBACK_DIRTY_AVAILABLE_DIVISOR: u64 = 4;
/// Below this much space for file data, new opens are write-through and
/// cached write(2)s fail with ENOSPC.
pub const WRITEBACK_TIGHT_BYTES: u64 = 4 * WRITEBACK_DIRTY_BYTES_MIN;

/// The dirty limit for a device with `available_bytes` for file data.
pub fn dirty_limit_bytes(available_bytes: u64) -> u64 {
    (available_bytes / WRITEBACK_DIRTY_AVAILABLE_DIVISOR)
        .clamp(WRITEBACK_DIRTY_BYTES_MIN, WRITEBACK_DIRTY_BYTES_MAX)
}

pub fn is_tight(available_bytes: u64) -> bool {
    available_bytes < WRITEBACK_TIGHT_BYTES
}

#[derive(Default)]
struct Writers {
    /// Handles opened with the cache and for writing: fh -> inode.
    by_handle: HashMap<u64, u64>,
    /// Plain files becoming vector files right now.
    converting: HashSet<u64>,
}

/// While held, `ino` is becoming a vector file (see `begin_conversion`).
pub struct Conversion {
    cache: Arc<WritebackCache>,
    ino: u64,
}

impl Drop for Conversion {
    fn drop(&mut self) {
        self.cache.writers.lock().converting.remove(&self.ino);
    }
}

pub struct WritebackCache {
    /// /sys/class/bdi/MAJ:MIN/max_bytes of this mount, once found.
    max_bytes_path: OnceLock<PathBuf>,
    /// The limit last written there.
    dirty_limit_bytes: AtomicU64,
    writers: Mutex<Writers>,
    /// Last seen state, so cached writers are told once per transition.
    tight: AtomicBool,
}

impl Default for WritebackCache {
    fn default() -> WritebackCache {
        WritebackCache {
            max_bytes_path: OnceLock::new(),
            dirty_limit_bytes: AtomicU64::new(0),
            writers: Mutex::new(Rank::Table, Writers::default()),
            tight: AtomicBool::new(false),
        }
    }
}

impl WritebackCache {
    /// Finds the mount's bdi and sets its first dirty limit. Until this
    /// succeeded, `usable` is false and opens are write-through.
    pub fn attach(&self, mountpoint: &Path, available_bytes: u64) -> std::io::Result<()> {
        let path = bdi_max_bytes_path(mountpoint)?;
        let limit = dirty_limit_bytes(available_bytes);
        std::fs::write(&path, limit.to_string())?;
        self.dirty_limit_bytes.store(limit, Ordering::Relaxed);
        let _ = self.max_bytes_path.set(path);
        Ok(())
    }

    pub fn usable(&self) -> bool {
        self.max_bytes_path.get().is_some()
    }

    /// After a write: follows the device's space with the dirty limit
    /// (rewritten when it moved by more than a quarter) and returns the
    /// inodes whose cached writers must be told, on the turn to tight.
    pub fn observe(&self, available_bytes: u64) -> std::io::Result<Vec<u64>> {
        if let Some(path) = self.max_bytes_path.get() {
            let limit = dirty_limit_bytes(available_bytes);
            let last = self.dirty_limit_bytes.load(Ordering::Relaxed);
            if limit < last - last / 4 || limit > last + last / 4 {
                self.dirty_limit_bytes.store(limit, Ordering::Relaxed);
                std::fs::write(path, limit.to_string())?;
            }
        }
        if !is_tight(available_bytes) {
            self.tight.store(false, Ordering::Relaxed);
            return Ok(Vec::new());
        }
        if self.tight.swap(true, Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let mut inos: Vec<u64> = self.writers.lock().by_handle.values().copied().collect();
        inos.sort_unstable();
        inos.dedup();
        Ok(inos)
    }

    pub fn dirty_limit(&self) -> u64 {
        self.dirty_limit_bytes.load(Ordering::Relaxed)
    }

    /// Records a handle opened with the cache for writing; false (nothing
    /// recorded: serve it write-through) while `ino` is becoming a vector
    /// file. The caller checks the file is still plain afterwards and
    /// calls `released` if it is not: a conversion either saw this handle
    /// (and was refused) or finished before it was recorded.
    pub fn opened_writer(&self, fh: u64, ino: u64) -> bool {
        let mut writers = self.writers.lock();
        if writers.converting.contains(&ino) {
            return false;
        }
        writers.by_handle.insert(fh, ino);
        true
    }

    pub fn released(&self, fh: u64) {
        self.writers.lock().by_handle.remove(&fh);
    }

    pub fn is_writer(&self, fh: u64) -> bool {
        self.writers.lock().by_handle.contains_key(&fh)
    }

    /// Before plain file `ino` becomes a vector file through handle
    /// `own_fh`: EBUSY while another handle may still hold cached data
    /// for it; else no cached writer can open it until the guard drops.
    pub fn begin_conversion(
        self: &Arc<Self>,
        ino: u64,
        own_fh: u64,
    ) -> Result<Conversion, crate::Error> {
        let mut writers = self.writers.lock();
        if writers
            .by_handle
            .iter()
            .any(|(&fh, &of)| of == ino && fh != own_fh)
        {
            return Err(crate::Error::refused(
                libc::EBUSY,
                format!(
                    "inode {ino} is open for writing with the writeback cache elsewhere: \
                     its cached data would be refused once it is a vector file"
                ),
            ));
        }
        writers.converting.insert(ino);
        Ok(Conversion {
            cache: self.clone(),
            ino,
        })
    }
}

/// The `max_bytes` file of the bdi of the FUSE mount on `mountpoint`
/// (Linux 6.2+), found through /proc/self/mountinfo: a stat(2) of the
/// mount could wait for this very daemon.
fn bdi_max_bytes_path(mountpoint: &Path) -> std::io::Result<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let wanted = mountpoint.to_string_lossy();
    // The newest mount on the path is the last line naming it.
    let device = mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let device = fields.nth(2)?;
            let point = fields.nth(1)?;
            (unescape_mountinfo(point) == wanted).then_some(device)
        })
        .next_back()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{wanted} is not in /proc/self/mountinfo"),
            )
        })?;
    let path = PathBuf::from(format!("/sys/class/bdi/{device}/max_bytes"));
    if !path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("{} is missing (Linux before 6.2?)", path.display()),
        ));
    }
    Ok(path)
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dirty_limit_follows_the_space_and_writers_are_told_once_per_turn() {
        assert_eq!(dirty_limit_bytes(0), WRITEBACK_DIRTY_BYTES_MIN);
        assert_eq!(dirty_limit_bytes(400 << 20), 100 << 20);
        assert_eq!(dirty_limit_bytes(1 << 40), WRITEBACK_DIRTY_BYTES_MAX);
        // At the turn to tight, what the kernel may hold fits in what is left.
        assert!(dirty_limit_bytes(WRITEBACK_TIGHT_BYTES) <= WRITEBACK_TIGHT_BYTES / 2);
        assert!(!is_tight(WRITEBACK_TIGHT_BYTES));
        assert!(is_tight(WRITEBACK_TIGHT_BYTES - 1));

        let cache = WritebackCache::default();
        assert!(!cache.usable());
        assert!(cache.opened_writer(1, 10));
        assert!(cache.opened_writer(2, 10));
        assert!(cache.opened_writer(3, 11));
        assert!(cache.is_writer(2));
        let roomy = 1 << 30;
        let full = 1 << 20;
        assert_eq!(cache.observe(roomy).unwrap(), Vec::<u64>::new());
        assert_eq!(cache.observe(full).unwrap(), vec![10, 11]);
        assert_eq!(cache.observe(full).unwrap(), Vec::<u64>::new());
        cache.released(3);
        assert_eq!(cache.observe(roomy).unwrap(), Vec::<u64>::new());
        assert_eq!(cache.observe(full).unwrap(), vec![10]);
    }

    #[test]
    fn a_file_with_cached_writers_does_not_become_a_vector_file() {
        let cache = Arc::new(WritebackCache::default());
        assert!(cache.opened_writer(1, 10));
        assert!(cache.opened_writer(2, 10));
        assert_eq!(
            cache.begin_conversion(10, 1).err().unwrap().errno(),
            libc::EBUSY
        );
        cache.released(2);
        {
            let _converting = cache.begin_conversion(10, 1).unwrap();
            // An open racing with the change is served write-through.
            assert!(!cache.opened_writer(3, 10));
            assert!(cache.opened_writer(4, 11));
        }
        assert!(cache.opened_writer(5, 10));
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_mountinfo(r"/plain\0"), r"/plain\0");
    }
}
