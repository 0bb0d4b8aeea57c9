//! The filesystem's operations in POSIX terms, independent of FUSE: the
//! mount, the crash simulator and the tests all call these.
//!
//! Locking (the order is in [`crate::locks`]): `meta` (the store: cache,
//! tree, bitmap, running transaction) is held only for in-memory work and
//! metadata block reads, never across file data I/O or a commit's device
//! I/O. Each file has its own RwLock for its data (readers share, a writer
//! excludes). `gate` orders file data before the commit that makes it
//! reachable: writers hold it shared from block allocation to the end of
//! their data I/O; a commit's seal takes it exclusively ([`crate::commit`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use vexfs_engine::BlockDevice;

use crate::btree;
use crate::dir;
use crate::error::{enoent, Error, Result};
use crate::format::*;
use crate::locks::{Mutex, MutexGuard, Rank, RwLock};
use crate::store::{Replay, Store};

pub use crate::namespace::{RENAME_EXCHANGE, RENAME_NOREPLACE};

#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    pub read_only: bool,
    /// Bound on cached metadata blocks; None keeps the default (64 MiB).
    pub cache_blocks: Option<usize>,
    /// Skip reading and checking all metadata at mount (the default checks:
    /// it costs one read of the tree, about 1 MiB per 25,000 files).
    pub skip_check: bool,
    /// Bytes vector requests in flight may hold at once; None keeps
    /// `REQUEST_MEMORY_BYTES_MAX`.
    pub request_memory_bytes: Option<u64>,
}

/// Per-file state of an inode some caller has open.
pub(crate) struct FileState {
    pub(crate) io: RwLock<()>,
    open: AtomicU32,
}

pub struct Fs {
    pub(crate) dev: Arc<dyn BlockDevice>,
    meta: Mutex<Store>,
    pub(crate) gate: RwLock<()>,
    /// Held by one commit from its seal to the end of its device I/O.
    pub(crate) commit_lock: Mutex<()>,
    files: Mutex<HashMap<u64, Arc<FileState>>>,
    /// File data has been written since the last device flush.
    pub(crate) data_unflushed: AtomicBool,
    pub(crate) read_only: bool,
    /// Set when a change failed half-way: nothing is committed after it.
    pub(crate) stopped: std::sync::OnceLock<String>,
    replayed: Option<Replay>,
    /// Vector files in use (docs/VECTORS.md).
    pub(crate) vectors: crate::vectors::VectorFiles,
    /// What vector requests in flight may hold at once.
    pub(crate) request_memory: crate::budget::RequestMemory,
    /// The daemon's counters (metrics.rs), read through `user.vexfs.metrics`.
    pub(crate) metrics: crate::metrics::Counters,
}

/// Changes a setattr asks for; None leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    pub ctime: Option<Timespec>,
    /// The caller lacks CAP_FSETID: a size change also clears set-ID bits
    /// and file capabilities (the kernel leaves it to the daemon).
    pub unprivileged: bool,
}

#[derive(Clone, Copy, Debug)]
pub enum TimeSet {
    Now,
    At(Timespec),
}

#[derive(Clone, Copy, Debug)]
pub struct Statfs {
    pub blocks: u64,
    pub free_blocks: u64,
    /// Free blocks file data may use: the metadata reserve is not among them.
    pub available_blocks: u64,
    pub files: u64,
    pub free_files: u64,
}

pub fn now() -> Timespec {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    }
}

pub fn file_type_of(mode: u32) -> u8 {
    ((mode & libc::S_IFMT) >> 12) as u8
}

impl Fs {
    /// Opens the filesystem: replays the journal, finishes orphans left by a crash.
    pub fn open(dev: Arc<dyn BlockDevice>, options: &MountOptions) -> Result<Fs> {
        let (mut store, replayed) = Store::open(dev.clone(), options.read_only)?;
        if let Some(blocks) = options.cache_blocks {
            store.set_cache_blocks_max(blocks);
        }
        let fs = Fs {
            dev,
            meta: Mutex::new(Rank::Meta, store),
            gate: RwLock::new(Rank::Gate, ()),
            commit_lock: Mutex::new(Rank::Commit, ()),
            files: Mutex::new(Rank::Table, HashMap::new()),
            data_unflushed: AtomicBool::new(false),
            read_only: options.read_only,
            stopped: std::sync::OnceLock::new(),
            replayed,
            vectors: Default::default(),
            request_memory: crate::budget::RequestMemory::new(
                options
                    .request_memory_bytes
                    .unwrap_or(crate::budget::REQUEST_MEMORY_BYTES_MAX),
                crate::budget::REQUEST_MEMORY_WAIT,
            ),
            metrics: Default::default(),
        };
        if !options.skip_check {
            fs.check_metadata()?;
        }
        // The root must be a directory; a damaged root is a refusal, not a panic later.
        let root = fs.getattr(ROOT_INO)?;
        if !root.is_dir() {
            return Err(Error::corrupt(
                "inode",
                ROOT_INO,
                "the root inode is not a directory".into(),
            ));
        }
        if !options.read_only {
            fs.finish_orphans()?;
            let mut st = fs.lock();
            st.sb.mount_count += 1;
            st.mark_sb_dirty();
            drop(st);
            fs.sync()?;
        }
        Ok(fs)
    }

    /// Every tree node and item must decode; the first damage found is the error.
    fn check_metadata(&self) -> Result<u64> {
        let mut st = self.lock();
        btree::verify(&mut st, &mut |key, val| match Kind::from_u8(key.kind) {
            Some(Kind::Inode) => InodeRecord::decode(val, key.ino).map(|_| ()),
            Some(Kind::Dirent) => decode_dirents(val, key.ino).map(|_| ()),
            Some(Kind::Extent) => Extent::decode(key, val).map(|_| ()),
            Some(Kind::Xattr) => decode_xattrs(val, key.ino).map(|_| ()),
            Some(Kind::Orphan | Kind::VectorMeta) => Ok(()),
            None => Err(Error::corrupt(
                "tree item",
                key.ino,
                format!("unknown item kind {}", key.kind),
            )),
        })
    }

    pub fn replayed(&self) -> Option<Replay> {
        self.replayed
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.meta.lock()
    }

    pub fn superblock(&self) -> Superblock {
        self.lock().sb.clone()
    }

    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    /// The per-file state of `ino`, made on first use. One exists per inode
    /// at a time: it leaves the table only when nothing else holds it.
    pub(crate) fn file_state(&self, ino: u64) -> Arc<FileState> {
        let mut files = self.files.lock();
        files
            .entry(ino)
            .or_insert_with(|| {
                Arc::new(FileState {
                    io: RwLock::new(Rank::FileIo, ()),
                    open: AtomicU32::new(0),
                })
            })
            .clone()
    }

    /// Drops the per-file state of `ino` when no descriptor has it open and
    /// no request holds it: two states for one inode would be two data locks.
    fn forget_file_state(&self, ino: u64) {
        let mut files = self.files.lock();
        if files
            .get(&ino)
            .is_some_and(|f| f.open.load(Ordering::SeqCst) == 0 && Arc::strong_count(f) == 1)
        {
            files.remove(&ino);
        }
    }

    pub(crate) fn open_count(&self, ino: u64) -> u32 {
        let files = self.files.lock();
        files
            .get(&ino)
            .map(|f| f.open.load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::refused(
                libc::EROFS,
                "the filesystem is mounted read-only",
            ));
        }
        self.check_running()
    }

    // ---- inodes ----

    pub(crate) fn inode(st: &mut Store, ino: u64) -> Result<InodeRecord> {
        match btree::get(st, &Key::new(ino, Kind::Inode, 0))? {
            Some(raw) => InodeRecord::decode(&raw, ino),
            None => Err(enoent(format!("inode {ino} does not exist"))),
        }
    }

    pub(crate) fn put_inode(st: &mut Store, ino: u64, record: &InodeRecord) -> Result<()> {
        btree::insert(st, Key::new(ino, Kind::Inode, 0), record.encode())
    }

    pub(crate) fn dir_inode(st: &mut Store, ino: u64) -> Result<InodeRecord> {
        let record = Self::inode(st, ino)?;
        if !record.is_dir() {
            return Err(Error::refused(
                libc::ENOTDIR,
                format!("inode {ino} is not a directory"),
            ));
        }
        Ok(record)
    }

    pub fn getattr(&self, ino: u64) -> Result<InodeRecord> {
        Self::inode(&mut self.lock(), ino)
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<(u64, InodeRecord)> {
        let mut st = self.lock();
        Self::dir_inode(&mut st, parent)?;
        if name.len() > NAME_BYTES_MAX {
            return Err(Error::refused(
                libc::ENAMETOOLONG,
                "name exceeds NAME_BYTES_MAX",
            ));
        }
        match dir::lookup(&mut st, parent, name)? {
            Some(entry) => Ok((entry.ino, Self::inode(&mut st, entry.ino)?)),
            None => Err(enoent(format!(
                "{:?} not found",
                String::from_utf8_lossy(name)
            ))),
        }
    }

    /// Creates a file, directory, fifo, socket or device node.
    pub fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(u64, InodeRecord)> {
        self.check_writable()?;
        dir::check_name(name)?;
        let result = self.create_inode(parent, name, mode, rdev, uid, gid, None);
        self.commit_if_large()?;
        result
    }

    pub fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<(u64, InodeRecord)> {
        self.check_writable()?;
        dir::check_name(name)?;
        if target.is_empty() || target.len() > SYMLINK_BYTES_MAX {
            return Err(Error::refused(
                libc::ENAMETOOLONG,
                format!(
                    "symlink target of {} bytes (1..={SYMLINK_BYTES_MAX})",
                    target.len()
                ),
            ));
        }
        let result = self.create_inode(
            parent,
            name,
            libc::S_IFLNK | 0o777,
            0,
            uid,
            gid,
            Some(target),
        );
        self.commit_if_large()?;
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn create_inode(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        uid: u32,
        mut gid: u32,
        target: Option<&[u8]>,
    ) -> Result<(u64, InodeRecord)> {
        let mut mode = mode;
        if mode & libc::S_IFMT == 0 {
            mode |= libc::S_IFREG;
        }
        let (ino, record) = {
            let _gate = self.gate.read();
            let mut st = self.lock();
            let mut parent_record = Self::dir_inode(&mut st, parent)?;
            if parent_record.nlink == 0 {
                return Err(enoent("the directory has been removed"));
            }
            if dir::lookup(&mut st, parent, name)?.is_some() {
                return Err(Error::refused(
                    libc::EEXIST,
                    format!("{:?} already exists", String::from_utf8_lossy(name)),
                ));
            }
            // BSD group semantics under a set-group-ID directory, as ext4 does.
            if parent_record.mode & libc::S_ISGID != 0 {
                gid = parent_record.gid;
                if mode & libc::S_IFMT == libc::S_IFDIR {
                    mode |= libc::S_ISGID;
                }
            }
            let is_dir = mode & libc::S_IFMT == libc::S_IFDIR;
            let t = now();
            let ino = st.sb.next_ino;
            st.sb.next_ino += 1;
            st.sb.inode_count += 1;
            st.mark_sb_dirty();
            let record = InodeRecord {
                mode,
                uid,
                gid,
                nlink: if is_dir { 2 } else { 1 },
                rdev,
                atime: t,
                mtime: t,
                ctime: t,
                crtime: t,
                parent: if is_dir { parent } else { 0 },
                ..InodeRecord::default()
            };
            Self::put_inode(&mut st, ino, &record)?;
            dir::add(
                &mut st,
                parent,
                Dirent {
                    ino,
                    file_type: file_type_of(mode),
                    name: name.to_vec(),
                },
            )?;
            if is_dir {
                parent_record.nlink += 1;
            }
            parent_record.mtime = t;
            parent_record.ctime = t;
            Self::put_inode(&mut st, parent, &parent_record)?;
            (ino, record)
        };
        if let Some(target) = target {
            self.write(ino, 0, target)?;
            return Ok((ino, self.getattr(ino)?));
        }
        Ok((ino, record))
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let record = self.getattr(ino)?;
        if !record.is_symlink() {
            return Err(Error::refused(libc::EINVAL, "not a symbolic link"));
        }
        self.read(ino, 0, record.size as usize)
    }

    /// Frees an inode nothing names or holds open, and whatever of it is in memory.
    pub(crate) fn free_inode(&self, st: &mut Store, ino: u64, record: &InodeRecord) -> Result<()> {
        self.vectors.discard(ino);
        st.reserve(ino, 0)?;
        let freed = crate::file::unmap(st, ino, 0)?;
        debug_assert_eq!(freed, record.blocks);
        for (key, _) in btree::items(st, ino, Kind::Xattr)? {
            btree::remove(st, &key)?;
        }
        for (key, _) in btree::items(st, ino, Kind::VectorMeta)? {
            btree::remove(st, &key)?;
        }
        btree::remove(st, &Key::new(ino, Kind::Inode, 0))?;
        btree::remove(st, &Key::new(0, Kind::Orphan, ino))?;
        st.sb.inode_count -= 1;
        st.mark_sb_dirty();
        Ok(())
    }

    /// Inodes unlinked while open when the last mount ended are freed now.
    fn finish_orphans(&self) -> Result<()> {
        let mut st = self.lock();
        let orphans = btree::items(&mut st, 0, Kind::Orphan)?;
        for (key, _) in orphans {
            let ino = key.offset;
            match Self::inode(&mut st, ino) {
                Ok(record) if record.nlink == 0 => self.free_inode(&mut st, ino, &record)?,
                _ => {
                    btree::remove(&mut st, &key)?;
                }
            }
        }
        Ok(())
    }

    /// A caller opened `ino`; an unlinked file stays readable until the
    /// last release. ENOENT when `ino` was freed since the caller looked
    /// it up (an unlink of its last name, with no descriptor open, frees
    /// it at once): counted and checked under the file's data lock, which
    /// `free_if_unused` holds from its check of the count to the free, so
    /// either the free sees this descriptor or this sees the free.
    pub fn opened(&self, ino: u64) -> Result<()> {
        let state = self.file_state(ino);
        let _io = state.io.read();
        state.open.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = Self::inode(&mut self.lock(), ino) {
            state.open.fetch_sub(1, Ordering::SeqCst);
            return Err(e);
        }
        Ok(())
    }

    /// A descriptor of `ino` was closed (FUSE RELEASE, which the kernel
    /// sends after close(2) returns: a newer descriptor's requests may
    /// already be running). At the last one: the vector file is written
    /// back and let go, and an unlinked inode is freed.
    pub fn released(&self, ino: u64) -> Result<()> {
        let last = self
            .files
            .lock()
            .get(&ino)
            .is_some_and(|f| f.open.fetch_sub(1, Ordering::SeqCst) == 1);
        if !last || self.read_only {
            return Ok(());
        }
        if let Err(e) = self.vector_file_closed(ino) {
            eprintln!("vexfs: writing back vector file {ino} at its last close: {e}");
        }
        self.free_if_unused(ino)?;
        self.forget_file_state(ino);
        self.commit_if_large()
    }

    /// Frees `ino` if no name and no descriptor is left to it. Takes the
    /// file's data lock first: no write-back of the file (which holds that
    /// lock from its first change to its last) is half-way when it goes.
    pub(crate) fn free_if_unused(&self, ino: u64) -> Result<()> {
        let state = self.file_state(ino);
        let _io = state.io.write();
        let _gate = self.gate.read();
        let mut st = self.lock();
        match Self::inode(&mut st, ino) {
            Ok(record) if record.nlink == 0 && state.open.load(Ordering::SeqCst) == 0 => {
                self.free_inode(&mut st, ino, &record)
            }
            _ => Ok(()),
        }
    }

    pub fn setattr(&self, ino: u64, changes: &SetAttr) -> Result<InodeRecord> {
        self.check_writable()?;
        if let Some(size) = changes.size {
            // A plain file may become a vector file at any moment; truncate
            // checks again under the file's data lock and says so.
            let plain = self.getattr(ino)?.flags & INODE_FLAG_VECTOR == 0
                && self.truncate_plain(ino, size)?;
            if plain {
            } else if size == 0 {
                // O_TRUNC of a vector file drops its vectors, as it drops bytes.
                self.clear_vector_file(ino)?;
            } else {
                return Err(Error::refused(
                    libc::EPERM,
                    "a vector file's size follows its vectors; only truncation to 0 is allowed",
                ));
            }
        }
        let mut st = self.lock();
        let mut record = Self::inode(&mut st, ino)?;
        let t = now();
        if let Some(mode) = changes.mode {
            record.mode = (record.mode & libc::S_IFMT) | (mode & 0o7777);
        }
        if let Some(uid) = changes.uid {
            record.uid = uid;
        }
        if let Some(gid) = changes.gid {
            record.gid = gid;
        }
        // chown clears set-user-ID, (group-executable) set-group-ID and file
        // capabilities, as does a truncate by an unprivileged caller.
        let chown = changes.uid.is_some() || changes.gid.is_some();
        let truncate = changes.size.is_some() && changes.unprivileged;
        if (chown || truncate) && !record.is_dir() && changes.mode.is_none() {
            crate::file::kill_privileges(&mut record);
            crate::xattr::drop_capability(&mut st, ino)?;
        }
        let resolve = |set: TimeSet| match set {
            TimeSet::Now => t,
            TimeSet::At(at) => at,
        };
        if let Some(a) = changes.atime {
            record.atime = resolve(a);
        }
        if let Some(m) = changes.mtime {
            record.mtime = resolve(m);
        }
        record.ctime = changes.ctime.unwrap_or(t);
        Self::put_inode(&mut st, ino, &record)?;
        drop(st);
        self.commit_if_large()?;
        Ok(record)
    }

    /// Up to `limit` entries after `cookie` with their attributes, "." and ".." first.
    pub fn readdir(
        &self,
        ino: u64,
        cookie: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Dirent, InodeRecord)>> {
        let mut st = self.lock();
        let record = Self::dir_inode(&mut st, ino)?;
        let mut out = Vec::new();
        if cookie < dir::COOKIE_DOT {
            out.push((
                dir::COOKIE_DOT,
                Dirent {
                    ino,
                    file_type: file_type_of(record.mode),
                    name: b".".to_vec(),
                },
                record.clone(),
            ));
        }
        if cookie < dir::COOKIE_DOTDOT {
            let parent = if ino == ROOT_INO {
                ROOT_INO
            } else {
                record.parent
            };
            let parent_record = Self::inode(&mut st, parent)?;
            out.push((
                dir::COOKIE_DOTDOT,
                Dirent {
                    ino: parent,
                    file_type: file_type_of(parent_record.mode),
                    name: b"..".to_vec(),
                },
                parent_record,
            ));
        }
        for (next, entry) in dir::list(&mut st, ino, cookie, limit)? {
            let child = Self::inode(&mut st, entry.ino)?;
            out.push((next, entry, child));
        }
        Ok(out)
    }

    pub fn statfs(&self) -> Statfs {
        let st = self.lock();
        let sb = &st.sb;
        // Inodes cost a share of a tree leaf, not a fixed table slot: every
        // free block could hold about 16 more.
        let free_files = sb.free_blocks.saturating_mul(16);
        Statfs {
            blocks: sb.total_blocks,
            free_blocks: sb.free_blocks,
            available_blocks: sb
                .free_blocks
                .saturating_sub(st.metadata_reserve_blocks())
                .saturating_sub(st.reserved_blocks()),
            files: sb.inode_count + free_files,
            free_files,
        }
    }
}
