//! What the kernel caches of this filesystem, and how the daemon keeps
//! it true: open handles and the FOPEN flags each is served with,
//! invalidation of attributes and pages a vector request changed, and,
//! under `-o writeback_cache`, the space rules of writeback.rs and the
//! sizes of vector files the kernel keeps itself.

use std::sync::atomic::Ordering;
use std::time::Duration;

use fuser::{FileHandle, FopenFlags, INodeNo};

use super::convert::open_flags;
use super::writeback;
use super::{Handle, VexFuse, ATTR_TTL};
use crate::format::{InodeRecord, BLOCK_BYTES_U64, INODE_FLAG_VECTOR};

/// Sends one invalidation; ENOENT means the kernel caches nothing of it.
pub(super) fn send_invalidation(notifier: &fuser::Notifier, ino: u64, offset: i64) {
    if let Err(e) = notifier.inval_inode(INodeNo(ino), offset, 0) {
        if e.raw_os_error() != Some(libc::ENOENT) {
            eprintln!("vexfs: invalidating the kernel's cache of inode {ino}: {e}");
        }
    }
}

impl VexFuse {
    /// The kernel's cached attributes and pages of `ino` are stale.
    ///
    /// Dropping cached pages makes the kernel lock each page, and a page
    /// stays locked while a read(2) of it waits for this daemon to answer
    /// FUSE_READ. A worker thread that sent the invalidation itself would
    /// wait for that read while the read waits for a free worker: with a
    /// few readers and inserters on one file every worker ended up in
    /// `fuse_reverse_inval_inode -> __folio_lock` and the mount hung. So:
    /// attributes are dropped here (offset -1: the kernel drops the
    /// attributes and touches no page), and pages by the invalidation
    /// thread, which holds no lock of the daemon, so the reads it waits for
    /// are served by the workers. Vector files are opened with
    /// FOPEN_DIRECT_IO, so their reads never go through the page cache;
    /// the page invalidation serves descriptors opened before the file
    /// became a vector file, and private mappings.
    pub(super) fn invalidate(&self, ino: u64) {
        if let Some(notifier) = self.notifier.get() {
            send_invalidation(notifier, ino, -1);
        }
        // The receiver lives as long as the session; a send after it ended has nothing to drop.
        let _ = self.stale_pages.send(ino);
    }

    /// Opens a handle; returns it with the FOPEN flags it is served with.
    /// ENOENT when the file was freed since the kernel looked it up.
    pub(super) fn open_handle(
        &self,
        ino: u64,
        record: &InodeRecord,
        flags: i32,
    ) -> crate::Result<(FileHandle, FopenFlags)> {
        self.fs.opened(ino)?;
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let mut fopen = open_flags(record);
        if let Some(cache) = &self.writeback {
            if !fopen.contains(FopenFlags::FOPEN_DIRECT_IO) {
                if !cache.usable() || writeback::is_tight(self.available_bytes()) {
                    // Written through, so its writes meet ENOSPC at write(2).
                    fopen = FopenFlags::FOPEN_DIRECT_IO;
                } else if flags & libc::O_ACCMODE != libc::O_RDONLY {
                    // Still plain once recorded? (writeback.rs, conversions)
                    let plain = cache.opened_writer(fh, ino) && self.is_plain_file(ino);
                    if !plain {
                        cache.released(fh);
                        fopen = FopenFlags::FOPEN_DIRECT_IO;
                    }
                }
            }
        }
        self.handles.lock().insert(fh, Handle { ino, flags });
        Ok((FileHandle(fh), fopen))
    }

    /// After a write: once the device turns tight, the kernel is told to
    /// ask for the attributes of every file it caches writes for, so their
    /// next write(2) meets ENOSPC in `getattr` (writeback.rs).
    pub(super) fn observe_space(&self) {
        let Some(cache) = &self.writeback else { return };
        let told = match cache.observe(self.available_bytes()) {
            Ok(told) => told,
            Err(e) => {
                eprintln!("vexfs: -o writeback_cache: setting the dirty limit: {e}");
                return;
            }
        };
        if let Some(notifier) = self.notifier.get() {
            for ino in told {
                // Attributes only (offset -1): touches no page, so safe on a worker.
                send_invalidation(notifier, ino, -1);
            }
        }
    }

    /// How long the kernel may keep `r`'s attributes. Under the writeback
    /// cache a vector file's are never kept: a write(2) through a handle
    /// the kernel caches then always asks for them first (getattr answers
    /// EPERM there), so no byte of a vector file waits in the page cache.
    pub(super) fn attr_ttl(&self, r: &InodeRecord) -> Duration {
        if self.writeback.is_some() && r.flags & INODE_FLAG_VECTOR != 0 {
            Duration::ZERO
        } else {
            ATTR_TTL
        }
    }

    pub(super) fn is_plain_file(&self, ino: u64) -> bool {
        self.fs
            .getattr(ino)
            .is_ok_and(|r| r.is_reg() && r.flags & INODE_FLAG_VECTOR == 0)
    }

    /// Bytes of the device file data may still use.
    pub(super) fn available_bytes(&self) -> u64 {
        self.fs.statfs().available_blocks * BLOCK_BYTES_U64
    }

    /// With the writeback cache the kernel keeps the size (and times) of
    /// every regular file itself and ignores those in attributes; a vector
    /// file grows by ioctl, so its new size is pushed: a FUSE_NOTIFY_STORE
    /// of the file's last byte grows the kernel's size (a store of no
    /// bytes would not). The kernel has no notification that shrinks a
    /// size or sets times: after deletes its size of a vector file can
    /// stay larger, and its mtime older, until the inode leaves its cache;
    /// reads still end at the real end (vector files are FOPEN_DIRECT_IO).
    /// This is why the cache is not the default.
    /// Called wherever attributes of `r` go to the kernel (lookup,
    /// getattr, readdirplus); does nothing but under the writeback cache.
    pub(super) fn push_vector_file_size(&self, ino: u64, r: &InodeRecord) {
        if self.writeback.is_none() || r.flags & INODE_FLAG_VECTOR == 0 {
            return;
        }
        let size = r.size;
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        if size == 0
            || self
                .vector_sizes_told
                .lock()
                .get(&ino)
                .is_some_and(|&told| told >= size)
        {
            return;
        }
        let last = match self.fs.read(ino, size - 1, 1) {
            Ok(last) if last.len() == 1 => last,
            Ok(_) => return,
            Err(e) => {
                eprintln!("vexfs: reading the last byte of vector file {ino}: {e}");
                return;
            }
        };
        match notifier.store(INodeNo(ino), size - 1, &last) {
            Ok(()) => {
                self.vector_sizes_told.lock().insert(ino, size);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => eprintln!("vexfs: telling the kernel the size of vector file {ino}: {e}"),
        }
    }

    pub fn handle(&self, fh: FileHandle) -> Option<Handle> {
        self.handles.lock().get(&fh.0).copied()
    }
}
