//! The FUSE protocol side: turns kernel requests into [`Fs`] calls and
//! errors into errnos. Holds no filesystem state of its own beyond open
//! file handles (which descriptor was opened how).

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileHandle, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    TimeOrNow, WriteFlags,
};

mod caches;
mod convert;
mod vector_requests;
pub mod writeback;

use self::caches::send_invalidation;
use self::convert::{attr, errno, errno_ref, kind, negative_entry, time_set, timespec};
use self::vector_requests::ConversionJob;
use self::writeback::WritebackCache;
use crate::committer::{self, Committer};
use crate::file::Stamp;
use crate::format::{BLOCK_BYTES, NAME_BYTES_MAX};
use crate::fs::{Fs, SetAttr};
use crate::locks::{Mutex, Rank};
use crate::metrics::Op;

/// How long the kernel may cache names and attributes. This daemon is the
/// only writer of its device, so the cache is never stale for long.
const ATTR_TTL: Duration = Duration::from_secs(1);
/// Largest write the kernel sends in one request.
pub const MAX_WRITE_BYTES: u32 = 1 << 20;
/// Entries fetched per readdir batch.
const READDIR_BATCH: usize = 256;

/// An open file description: which inode, and the open(2) flags.
#[derive(Clone, Copy, Debug)]
pub struct Handle {
    pub ino: u64,
    pub flags: i32,
}

pub struct VexFuse {
    fs: Arc<Fs>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_handle: AtomicU64,
    /// Tells the kernel to drop what it cached of a file the daemon changed
    /// behind its back (a vector request rewrites the file's bytes). Set
    /// once the session exists.
    notifier: Arc<OnceLock<fuser::Notifier>>,
    /// Inodes whose cached pages the invalidation thread drops.
    stale_pages: mpsc::Sender<u64>,
    /// Where an fsync waits for its commit (committer.rs).
    committer: Committer,
    /// `-o writeback_cache`, once the kernel agreed to it (writeback.rs).
    writeback: Option<Arc<WritebackCache>>,
    /// Answers SET_VECTOR_META after a writeback (caches.rs).
    converter: mpsc::Sender<ConversionJob>,
    /// With it: the largest size of each vector file told to the kernel.
    vector_sizes_told: Mutex<HashMap<u64, u64>>,
    mountpoint: PathBuf,
}

impl VexFuse {
    /// `writeback_cache`: ask the kernel for its writeback cache
    /// (writeback.rs) for the mount on `mountpoint`.
    pub fn new(
        fs: Arc<Fs>,
        notifier: Arc<OnceLock<fuser::Notifier>>,
        mountpoint: &Path,
        writeback_cache: bool,
    ) -> std::io::Result<VexFuse> {
        let (stale_pages, pages) = mpsc::channel::<u64>();
        let thread_notifier = notifier.clone();
        // Ends when the VexFuse (the only sender) is dropped.
        std::thread::Builder::new()
            .name("vexfs-invalidate".into())
            .spawn(move || {
                while let Ok(first) = pages.recv() {
                    let mut inos = BTreeSet::from([first]);
                    inos.extend(pages.try_iter());
                    if let Some(notifier) = thread_notifier.get() {
                        for ino in inos {
                            send_invalidation(notifier, ino, 0);
                        }
                    }
                }
            })?;
        let committer = Committer::start(fs.clone())?;
        Ok(VexFuse {
            writeback: writeback_cache.then(|| Arc::new(WritebackCache::default())),
            converter: vector_requests::spawn_converter(fs.clone(), notifier.clone())?,
            vector_sizes_told: Mutex::new(Rank::Table, HashMap::new()),
            mountpoint: mountpoint.to_path_buf(),
            fs,
            committer,
            handles: Mutex::new(Rank::Table, HashMap::new()),
            next_handle: AtomicU64::new(1),
            notifier,
            stale_pages,
        })
    }

    /// Answers `reply` once a commit that began after this call is
    /// durable. With no commit running, this worker commits (no thread
    /// hop: a lone fsync pays nothing for the committer); while one runs,
    /// the committer thread waits for it instead of this worker, which
    /// goes back to serve others; here again when the committer's queue
    /// is full.
    fn answer_after_commit(&self, what: &'static str, reply: ReplyEmpty) {
        let needed = self.fs.transaction_now();
        let answer: committer::Answer = Box::new(move |result| match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_ref(what, e)),
        });
        // Answered as soon as the commit is durable, before its checkpoint.
        let Some(answer) = self.fs.try_commit_through_then(needed, answer) else {
            return;
        };
        if let Err(answer) = self.committer.after_commit(needed, answer) {
            // The queue is full: this worker waits. A failed checkpoint
            // stopped commits and was logged; the answer had its outcome.
            let _ = self.fs.commit_through_then(needed, answer);
        }
    }
}

impl fuser::Filesystem for VexFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE_BYTES);
        let _ = config
            .add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        // The daemon clears set-ID bits and security.capability itself at
        // write, truncate and chown (file.rs, fs.rs). So the kernel need not
        // ask for security.capability (a GETXATTR round trip) before every
        // write(2): with this flag it marks the superblock SB_NOSEC.
        let _ = config.add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2);
        // Vector files are FOPEN_DIRECT_IO; programs still map them shared.
        let _ = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        let _ = config.set_time_granularity(Duration::from_nanos(1));
        if self.writeback.is_some() {
            if let Err(unsupported) = config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE) {
                eprintln!(
                    "vexfs: -o writeback_cache: the kernel offers no writeback cache \
                     ({unsupported:?}); writes are written through"
                );
                self.writeback = None;
            }
        }
        if let Some(cache) = &self.writeback {
            // The mount exists by now (INIT follows mount(2)).
            if let Err(e) = cache.attach(&self.mountpoint, self.available_bytes()) {
                eprintln!(
                    "vexfs: -o writeback_cache: cannot limit this mount's dirty pages ({e}); \
                     writes are written through"
                );
            }
        }
        Ok(())
    }

    fn destroy(&mut self) {
        if let Err(e) = self.fs.unmount() {
            eprintln!("vexfs: writing back at unmount failed: {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.fs.metrics.request(Op::Lookup);
        match self.fs.lookup(parent.0, name.as_bytes()) {
            Ok((ino, r)) => {
                self.push_vector_file_size(ino, &r);
                reply.entry_with_ttls(&self.attr_ttl(&r), &ATTR_TTL, &attr(ino, &r), Generation(0))
            }
            // A negative entry (node 0) the kernel caches for ATTR_TTL: a
            // create is then not a failed lookup + create. Every name is
            // made through this mount, so the kernel drops it itself when
            // the name is created.
            Err(e) if e.errno() == libc::ENOENT => {
                reply.entry(&ATTR_TTL, &negative_entry(), Generation(0))
            }
            Err(e) => reply.error(errno("lookup", e)),
        }
    }

    /// The kernel dropped its inode (FORGET comes at eviction, with every
    /// lookup at once): the next lookup gives it the size afresh.
    fn forget(&self, _req: &Request, ino: INodeNo, _nlookup: u64) {
        self.fs.metrics.request(Op::Other);
        if self.writeback.is_some() {
            self.vector_sizes_told.lock().remove(&ino.0);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        self.fs.metrics.request(Op::Getattr);
        if let (Some(cache), Some(fh)) = (&self.writeback, fh) {
            // A write(2) through the page cache asks this first when the
            // attributes are stale (observe_space, attr_ttl): while the
            // device is tight it fails here, and through a handle opened
            // before the file became a vector file.
            if cache.is_writer(fh.0) {
                if writeback::is_tight(self.available_bytes()) {
                    return reply.error(Errno::ENOSPC);
                }
                if !self.is_plain_file(ino.0) {
                    return reply.error(Errno::EPERM);
                }
            }
        }
        // A vector file's size follows its vectors: write them back first.
        if let Err(e) = self.fs.write_back_vector_file(ino.0) {
            return reply.error(errno("getattr", e));
        }
        match self.fs.getattr(ino.0) {
            Ok(r) => {
                self.push_vector_file_size(ino.0, &r);
                reply.attr(&self.attr_ttl(&r), &attr(ino.0, &r))
            }
            Err(e) => reply.error(errno("getattr", e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.fs.metrics.request(Op::Setattr);
        let changes = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
            ctime: ctime.map(timespec),
            // fuser does not pass FATTR_KILL_SUIDGID on: root stands for CAP_FSETID.
            unprivileged: req.uid() != 0,
        };
        match self.fs.setattr(ino.0, &changes) {
            Ok(r) => reply.attr(&ATTR_TTL, &attr(ino.0, &r)),
            Err(e) => reply.error(errno("setattr", e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.fs.metrics.request(Op::Other);
        match self.fs.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno("readlink", e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.fs.metrics.request(Op::Create);
        match self
            .fs
            .mknod(parent.0, name.as_bytes(), mode, rdev, req.uid(), req.gid())
        {
            Ok((ino, r)) => reply.entry(&ATTR_TTL, &attr(ino, &r), Generation(0)),
            Err(e) => reply.error(errno("mknod", e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.fs.metrics.request(Op::Mkdir);
        let mode = libc::S_IFDIR | (mode & 0o7777);
        match self
            .fs
            .mknod(parent.0, name.as_bytes(), mode, 0, req.uid(), req.gid())
        {
            Ok((ino, r)) => reply.entry(&ATTR_TTL, &attr(ino, &r), Generation(0)),
            Err(e) => reply.error(errno("mkdir", e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.fs.metrics.request(Op::Unlink);
        match self.fs.unlink(parent.0, name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("unlink", e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.fs.metrics.request(Op::Unlink);
        match self.fs.rmdir(parent.0, name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("rmdir", e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.fs.metrics.request(Op::Create);
        match self.fs.symlink(
            parent.0,
            link_name.as_bytes(),
            target.as_os_str().as_bytes(),
            req.uid(),
            req.gid(),
        ) {
            Ok((ino, r)) => reply.entry(&ATTR_TTL, &attr(ino, &r), Generation(0)),
            Err(e) => reply.error(errno("symlink", e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.metrics.request(Op::Rename);
        match self.fs.rename(
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            flags.bits(),
        ) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("rename", e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.fs.metrics.request(Op::Other);
        match self.fs.link(ino.0, newparent.0, newname.as_bytes()) {
            Ok(r) => reply.entry(&ATTR_TTL, &attr(ino.0, &r), Generation(0)),
            Err(e) => reply.error(errno("link", e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.fs.metrics.request(Op::Open);
        match self.fs.getattr(ino.0) {
            Ok(r) if r.is_dir() => reply.error(Errno::EISDIR),
            Ok(r) => match self.open_handle(ino.0, &r, flags.0) {
                Ok((fh, fopen)) => reply.opened(fh, fopen),
                Err(e) => reply.error(errno("open", e)),
            },
            Err(e) => reply.error(errno("open", e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.fs.metrics.request(Op::Read);
        // read(2) of a vector file sees every vector inserted so far.
        if let Err(e) = self.fs.write_back_vector_file(ino.0) {
            return reply.error(errno("read", e));
        }
        match self.fs.read(ino.0, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno("read", e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.fs.metrics.request(Op::Write);
        // Data from the kernel's writeback cache arrives after the write(2)
        // that made it; the kernel keeps that file's times and sends them.
        let stamp = if write_flags.contains(WriteFlags::FUSE_WRITE_CACHE) {
            Stamp::Kernel
        } else {
            Stamp::Now
        };
        let result = self.fs.write_stamped(ino.0, offset, data, stamp);
        // O_SYNC / O_DSYNC: durable before the write returns.
        let result = match result {
            Ok(n) if flags.0 & (libc::O_SYNC | libc::O_DSYNC) != 0 => self.fs.commit().map(|_| n),
            other => other,
        };
        match result {
            Ok(n) => {
                self.observe_space();
                reply.written(n as u32)
            }
            Err(e) => reply.error(errno("write", e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.fs.metrics.request(Op::Flush);
        // Data is written through at write(); durability is fsync's job; no
        // POSIX locks are kept here. So FLUSH has nothing to do, and ENOSYS
        // tells the kernel never to send it again: close(2) of every file
        // saves a round trip.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.metrics.request(Op::Release);
        self.handles.lock().remove(&fh.0);
        if let Some(cache) = &self.writeback {
            cache.released(fh.0);
        }
        match self.fs.released(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("release", e)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.metrics.request(Op::Fsync);
        // This file's vectors and the running transaction; other vector
        // files are not this fsync's business. The commit is waited for on
        // the committer thread, so this worker serves others meanwhile.
        if let Err(e) = self.fs.write_back_vector_file(ino.0) {
            return reply.error(errno("fsync", e));
        }
        self.answer_after_commit("fsync", reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.fs.metrics.request(Op::Open);
        match self.fs.getattr(ino.0) {
            Ok(r) if r.is_dir() => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(errno("opendir", e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.fs.metrics.request(Op::Readdir);
        let mut cookie = offset;
        loop {
            let batch = match self.fs.readdir(ino.0, cookie, READDIR_BATCH) {
                Ok(batch) => batch,
                Err(e) => return reply.error(errno("readdir", e)),
            };
            if batch.is_empty() {
                return reply.ok();
            }
            for (next, entry, r) in batch {
                if reply.add(
                    INodeNo(entry.ino),
                    next,
                    kind(r.mode),
                    OsStr::from_bytes(&entry.name),
                ) {
                    return reply.ok();
                }
                cookie = next;
            }
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.fs.metrics.request(Op::Readdir);
        let mut cookie = offset;
        loop {
            let batch = match self.fs.readdir(ino.0, cookie, READDIR_BATCH) {
                Ok(batch) => batch,
                Err(e) => return reply.error(errno("readdirplus", e)),
            };
            if batch.is_empty() {
                return reply.ok();
            }
            for (next, entry, r) in batch {
                self.push_vector_file_size(entry.ino, &r);
                let a = attr(entry.ino, &r);
                if reply.add(
                    INodeNo(entry.ino),
                    next,
                    OsStr::from_bytes(&entry.name),
                    &self.attr_ttl(&r),
                    &a,
                    Generation(0),
                ) {
                    return reply.ok();
                }
                cookie = next;
            }
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.metrics.request(Op::Fsync);
        self.answer_after_commit("fsyncdir", reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.fs.metrics.request(Op::Other);
        let s = self.fs.statfs();
        let bsize = BLOCK_BYTES as u32;
        reply.statfs(
            s.blocks,
            s.free_blocks,
            s.available_blocks,
            s.files,
            s.free_files,
            bsize,
            NAME_BYTES_MAX as u32,
            bsize,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.fs.metrics.request(Op::Xattr);
        match self.fs.setxattr(ino.0, name.as_bytes(), value, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("setxattr", e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.fs.metrics.request(Op::Xattr);
        match self.fs.getxattr(ino.0, name.as_bytes()) {
            Ok(value) if size == 0 => reply.size(value.len() as u32),
            Ok(value) if value.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(value) => reply.data(&value),
            Err(e) => reply.error(errno("getxattr", e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.fs.metrics.request(Op::Xattr);
        match self.fs.listxattr(ino.0) {
            Ok(names) => {
                let mut list = Vec::new();
                for name in names {
                    list.extend_from_slice(&name);
                    list.push(0);
                }
                if size == 0 {
                    reply.size(list.len() as u32)
                } else if list.len() > size as usize {
                    reply.error(Errno::ERANGE)
                } else {
                    reply.data(&list)
                }
            }
            Err(e) => reply.error(errno("listxattr", e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.fs.metrics.request(Op::Xattr);
        match self.fs.removexattr(ino.0, name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("removexattr", e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.fs.metrics.request(Op::Create);
        match self
            .fs
            .mknod(parent.0, name.as_bytes(), mode, 0, req.uid(), req.gid())
        {
            Ok((ino, r)) => match self.open_handle(ino, &r, flags) {
                Ok((fh, fopen)) => {
                    reply.created(&ATTR_TTL, &attr(ino, &r), Generation(0), fh, fopen)
                }
                Err(e) => reply.error(errno("create", e)),
            },
            Err(e) => reply.error(errno("create", e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.fs.metrics.request(Op::Other);
        match self.fs.fallocate(ino.0, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("fallocate", e)),
        }
    }

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: fuser::IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        self.fs.metrics.request(Op::Ioctl);
        self.serve_ioctl(req.pid(), ino, fh, cmd, in_data, out_size, reply);
    }
}
