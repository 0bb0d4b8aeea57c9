//! File data (FORMAT.md §8): extents in the tree, data written straight to
//! the device through the engine. A write allocates blocks and records the
//! extent under the metadata lock, then writes the data with no lock but the
//! file's own and the shared commit gate, so the commit that makes the
//! extent reachable always follows the data (ordered mode).

use std::sync::atomic::Ordering;

use vexfs_engine::{AlignedBuf, IoOp};

use crate::btree;
use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::{now, Fs};
use crate::store::Store;

pub const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
pub const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;

/// Extents that overlap logical blocks [first, last], in order.
pub(crate) fn overlapping(st: &mut Store, ino: u64, first: u64, last: u64) -> Result<Vec<Extent>> {
    let mut out = Vec::new();
    btree::scan(
        st,
        Key::new(ino, Kind::Extent, first),
        Key::new(ino, Kind::Extent, u64::MAX),
        &mut |key, raw| {
            let extent = Extent::decode(&key, raw)?;
            if extent.logical > last {
                return Ok(false);
            }
            out.push(extent);
            Ok(true)
        },
    )?;
    Ok(out)
}

fn put_extent(st: &mut Store, ino: u64, e: &Extent) -> Result<()> {
    btree::insert(
        st,
        Key::new(ino, Kind::Extent, e.last_logical()),
        e.encode(),
    )
}

fn remove_extent(st: &mut Store, ino: u64, e: &Extent) -> Result<()> {
    btree::remove(st, &Key::new(ino, Kind::Extent, e.last_logical()))?;
    Ok(())
}

/// Inserts an extent, merging it with a neighbour that continues it on disk.
fn map(st: &mut Store, ino: u64, mut e: Extent) -> Result<()> {
    if e.logical > 0 {
        if let Some(raw) = btree::get(st, &Key::new(ino, Kind::Extent, e.logical - 1))? {
            let left = Extent::decode(&Key::new(ino, Kind::Extent, e.logical - 1), &raw)?;
            if left.physical + left.len == e.physical
                && left.flags == e.flags
                && left.len + e.len <= EXTENT_BLOCKS_MAX
            {
                remove_extent(st, ino, &left)?;
                e = Extent {
                    logical: left.logical,
                    physical: left.physical,
                    len: left.len + e.len,
                    flags: e.flags,
                };
            }
        }
    }
    if let Some(right) = overlapping(st, ino, e.end_logical(), e.end_logical())?
        .first()
        .copied()
    {
        if right.logical == e.end_logical()
            && e.physical + e.len == right.physical
            && right.flags == e.flags
            && right.len + e.len <= EXTENT_BLOCKS_MAX
        {
            remove_extent(st, ino, &right)?;
            e.len += right.len;
        }
    }
    put_extent(st, ino, &e)
}

/// Removes the mapping of logical blocks [first, last]; extents that stick
/// out are trimmed. Returns the removed pieces (their blocks still allocated).
fn cut(st: &mut Store, ino: u64, first: u64, last: u64) -> Result<Vec<Extent>> {
    let mut removed = Vec::new();
    for e in overlapping(st, ino, first, last)? {
        remove_extent(st, ino, &e)?;
        let lo = e.logical.max(first);
        let hi = e.last_logical().min(last);
        if e.logical < lo {
            put_extent(
                st,
                ino,
                &Extent {
                    len: lo - e.logical,
                    ..e
                },
            )?;
        }
        if e.last_logical() > hi {
            let skip = hi + 1 - e.logical;
            put_extent(
                st,
                ino,
                &Extent {
                    logical: hi + 1,
                    physical: e.physical + skip,
                    len: e.len - skip,
                    flags: e.flags,
                },
            )?;
        }
        removed.push(Extent {
            logical: lo,
            physical: e.physical + (lo - e.logical),
            len: hi - lo + 1,
            flags: e.flags,
        });
    }
    Ok(removed)
}

/// Unmaps and frees every block from logical block `first` on; returns how many were freed.
pub(crate) fn unmap(st: &mut Store, ino: u64, first: u64) -> Result<u64> {
    let mut freed = 0;
    for piece in cut(st, ino, first, u64::MAX - 1)? {
        st.free(piece.physical, piece.len)?;
        freed += piece.len;
    }
    Ok(freed)
}

/// One contiguous run of the request as it lies on disk.
struct Run {
    logical: u64,
    physical: u64,
    len: u64,
    /// No data of the file is there yet: partial blocks are padded with zeros, not read.
    fresh: bool,
    /// Allocated by this write (rather than an unwritten extent it converts).
    allocated: bool,
}

/// Whose clock a write's mtime and ctime follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    /// The write sets both to now.
    Now,
    /// The kernel keeps them and sends them itself (its writeback cache).
    Kernel,
}

impl Fs {
    fn regular_file(st: &mut Store, ino: u64) -> Result<InodeRecord> {
        let record = Fs::inode(st, ino)?;
        if record.is_dir() {
            return Err(Error::refused(libc::EISDIR, "is a directory"));
        }
        if !record.is_reg() && !record.is_symlink() {
            return Err(Error::refused(libc::EINVAL, "not a regular file"));
        }
        Ok(record)
    }

    pub fn read(&self, ino: u64, offset: u64, size: usize) -> Result<Vec<u8>> {
        let file = self.file_state(ino);
        let _io = file.io.read();
        self.read_locked(ino, offset, size)
    }

    /// [`read`](Self::read) for a caller that holds the file's `io` lock.
    pub(crate) fn read_locked(&self, ino: u64, offset: u64, size: usize) -> Result<Vec<u8>> {
        let (len, extents) = {
            let mut st = self.lock();
            let record = Fs::regular_file(&mut st, ino)?;
            if offset >= record.size || size == 0 {
                return Ok(Vec::new());
            }
            let len = (size as u64).min(record.size - offset);
            let first = offset / BLOCK_BYTES_U64;
            let last = (offset + len - 1) / BLOCK_BYTES_U64;
            (len, overlapping(&mut st, ino, first, last)?)
        };
        let first = offset / BLOCK_BYTES_U64;
        let last = (offset + len - 1) / BLOCK_BYTES_U64;
        let mut buf = AlignedBuf::zeroed(((last - first + 1) * BLOCK_BYTES_U64) as usize);
        {
            let mut rest = &mut buf[..];
            let mut at = first;
            let mut ops = Vec::new();
            for e in extents.iter().filter(|e| !e.unwritten()) {
                let lo = e.logical.max(first);
                let hi = e.last_logical().min(last);
                let (_, tail) =
                    std::mem::take(&mut rest).split_at_mut(((lo - at) * BLOCK_BYTES_U64) as usize);
                let (piece, tail) = tail.split_at_mut(((hi - lo + 1) * BLOCK_BYTES_U64) as usize);
                ops.push(IoOp::Read {
                    offset: (e.physical + (lo - e.logical)) * BLOCK_BYTES_U64,
                    buf: piece,
                });
                rest = tail;
                at = hi + 1;
            }
            self.dev.submit(&mut ops)?;
        }
        let skip = (offset - first * BLOCK_BYTES_U64) as usize;
        Ok(buf[skip..skip + len as usize].to_vec())
    }

    /// Writes `data` at `offset`, allocating what is not yet mapped. Returns bytes written.
    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<usize> {
        self.write_stamped(ino, offset, data, Stamp::Now)
    }

    /// [`write`](Self::write) with the file's times as `stamp` says: the
    /// kernel's writeback cache sends cached data late and the times it
    /// keeps itself in a SETATTR of their own (fuse/writeback.rs).
    pub fn write_stamped(&self, ino: u64, offset: u64, data: &[u8], stamp: Stamp) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= FILE_BYTES_MAX);
        if end.is_none() {
            return Err(Error::refused(
                libc::EFBIG,
                format!("write past FILE_BYTES_MAX {FILE_BYTES_MAX}"),
            ));
        }
        match self.write_once(ino, offset, data, stamp) {
            // Blocks freed by the running transaction become usable at its commit.
            Err(e) if e.errno() == libc::ENOSPC && self.lock().has_pending_frees() => {
                self.commit()?;
                self.write_once(ino, offset, data, stamp)?;
            }
            other => other?,
        }
        self.commit_if_large()?;
        Ok(data.len())
    }

    fn write_once(&self, ino: u64, offset: u64, data: &[u8], stamp: Stamp) -> Result<()> {
        let file = self.file_state(ino);
        let _io = file.io.write();
        let _gate = self.gate.read();
        Self::refuse_vector_file(&mut self.lock(), ino)?;
        self.write_locked_stamped(ino, offset, data, stamp)
    }

    /// Writes `data` at `offset` without changing any block the file maps
    /// now: the blocks of the range are read, unmapped (their blocks are
    /// not reused before the running transaction commits) and written
    /// afresh. Until that commit the file's committed metadata still points
    /// at the old bytes, so the rewrite is atomic with the metadata that
    /// describes it. Same locks as [`write_locked`](Self::write_locked).
    pub(crate) fn write_fresh_locked(&self, ino: u64, offset: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset + data.len() as u64;
        let first = offset / BLOCK_BYTES_U64;
        let last = (end - 1) / BLOCK_BYTES_U64;
        let size = {
            let mut st = self.lock();
            if overlapping(&mut st, ino, first, last)?.is_empty() {
                drop(st);
                return self.write_locked(ino, offset, data);
            }
            Fs::inode(&mut st, ino)?.size
        };
        let start = first * BLOCK_BYTES_U64;
        // Keep the bytes the blocks hold up to the file's size; never extend past `end` by this.
        let stop = end.max(size.min((last + 1) * BLOCK_BYTES_U64));
        let mut buf = self.read_locked(ino, start, (stop - start) as usize)?;
        buf.resize((stop - start) as usize, 0);
        buf[(offset - start) as usize..(end - start) as usize].copy_from_slice(data);
        {
            let mut st = self.lock();
            let mut record = Fs::inode(&mut st, ino)?;
            for piece in cut(&mut st, ino, first, last)? {
                st.free(piece.physical, piece.len)?;
                record.blocks -= piece.len;
            }
            Fs::put_inode(&mut st, ino, &record)?;
        }
        self.write_locked(ino, start, &buf)
    }

    /// A vector file's bytes change only through the vector requests. The
    /// caller holds the file's data lock, so it cannot become one meanwhile.
    fn refuse_vector_file(st: &mut Store, ino: u64) -> Result<()> {
        if Fs::inode(st, ino)?.flags & INODE_FLAG_VECTOR != 0 {
            return Err(Self::vector_file_refusal());
        }
        Ok(())
    }

    fn vector_file_refusal() -> Error {
        Error::refused(
            libc::EPERM,
            "a vector file is written through the vector ioctls, not write(2), truncate or fallocate",
        )
    }

    /// [`write`](Self::write) for a caller that holds the file's `io` lock
    /// for writing and the commit gate for reading, so that several writes
    /// and metadata changes land in one transaction. No ENOSPC retry.
    pub(crate) fn write_locked(&self, ino: u64, offset: u64, data: &[u8]) -> Result<()> {
        self.write_locked_stamped(ino, offset, data, Stamp::Now)
    }

    fn write_locked_stamped(&self, ino: u64, offset: u64, data: &[u8], stamp: Stamp) -> Result<()> {
        let end = offset + data.len() as u64;
        if data.is_empty() {
            return Ok(());
        }
        let first = offset / BLOCK_BYTES_U64;
        let last = (end - 1) / BLOCK_BYTES_U64;
        let runs = {
            let mut st = self.lock();
            Fs::regular_file(&mut st, ino)?;
            self.plan_write(&mut st, ino, first, last)?
        };
        let mut st = if let Err(e) = self.write_runs(&runs, first, offset, data) {
            // Blocks that never got their data go back to what they were.
            let mut st = self.lock();
            let mut record = Fs::inode(&mut st, ino)?;
            for run in runs.iter().filter(|r| r.fresh) {
                cut(&mut st, ino, run.logical, run.logical + run.len - 1)?;
                if run.allocated {
                    st.free(run.physical, run.len)?;
                    record.blocks -= run.len;
                } else {
                    map(
                        &mut st,
                        ino,
                        Extent {
                            logical: run.logical,
                            physical: run.physical,
                            len: run.len,
                            flags: EXTENT_FLAG_UNWRITTEN,
                        },
                    )?;
                }
            }
            Fs::put_inode(&mut st, ino, &record)?;
            return Err(e);
        } else {
            self.lock()
        };
        let mut record = Fs::inode(&mut st, ino)?;
        record.size = record.size.max(end);
        if stamp == Stamp::Now {
            let t = now();
            record.mtime = t;
            record.ctime = t;
        }
        if record.is_reg() {
            // A write drops set-ID bits and file capabilities: the kernel
            // leaves that to the daemon (FUSE_HANDLE_KILLPRIV_V2, fuse.rs).
            kill_privileges(&mut record);
            crate::xattr::drop_capability(&mut st, ino)?;
        }
        Fs::put_inode(&mut st, ino, &record)
    }

    /// Maps logical blocks [first, last] for writing: holes get new blocks,
    /// unwritten extents become written. All allocation happens before any
    /// mapping changes, so ENOSPC leaves the file as it was.
    fn plan_write(&self, st: &mut Store, ino: u64, first: u64, last: u64) -> Result<Vec<Run>> {
        let existing = overlapping(st, ino, first, last)?;
        let mut holes = Vec::new();
        let mut at = first;
        for e in &existing {
            if e.logical > at {
                holes.push((at, e.logical - 1));
            }
            at = e.end_logical();
        }
        if at <= last {
            holes.push((at, last));
        }
        let mut goal = existing
            .first()
            .map(|e| e.physical + (first.max(e.logical) - e.logical))
            .unwrap_or(0);
        if goal == 0 && first > 0 {
            if let Some(prev) = overlapping(st, ino, first - 1, first - 1)?.first() {
                goal = prev.physical + prev.len;
            }
        }
        let mut fresh = Vec::new();
        for &(lo, hi) in &holes {
            let mut at = lo;
            while at <= hi {
                match st.alloc_data(ino, goal, hi - at + 1) {
                    Ok((physical, len)) => {
                        fresh.push(Extent {
                            logical: at,
                            physical,
                            len,
                            flags: 0,
                        });
                        goal = physical + len;
                        at += len;
                    }
                    Err(e) => {
                        for f in &fresh {
                            st.free(f.physical, f.len)?;
                        }
                        return Err(e);
                    }
                }
            }
        }
        let mut runs = Vec::new();
        let mut allocated = 0;
        for f in &fresh {
            map(st, ino, *f)?;
            allocated += f.len;
            runs.push(Run {
                logical: f.logical,
                physical: f.physical,
                len: f.len,
                fresh: true,
                allocated: true,
            });
        }
        for e in existing {
            let lo = e.logical.max(first);
            let hi = e.last_logical().min(last);
            let physical = e.physical + (lo - e.logical);
            if e.unwritten() {
                cut(st, ino, lo, hi)?;
                map(
                    st,
                    ino,
                    Extent {
                        logical: lo,
                        physical,
                        len: hi - lo + 1,
                        flags: 0,
                    },
                )?;
            }
            runs.push(Run {
                logical: lo,
                physical,
                len: hi - lo + 1,
                fresh: e.unwritten(),
                allocated: false,
            });
        }
        if allocated > 0 {
            let mut record = Fs::inode(st, ino)?;
            record.blocks += allocated;
            Fs::put_inode(st, ino, &record)?;
        }
        runs.sort_by_key(|r| r.logical);
        Ok(runs)
    }

    /// Writes the data into its runs; partial edge blocks are read first
    /// (or zero-padded where nothing was written before).
    fn write_runs(&self, runs: &[Run], first: u64, offset: u64, data: &[u8]) -> Result<()> {
        let end = offset + data.len() as u64;
        let mut bufs = Vec::with_capacity(runs.len());
        for run in runs {
            let mut buf = AlignedBuf::zeroed((run.len * BLOCK_BYTES_U64) as usize);
            let run_start = run.logical * BLOCK_BYTES_U64;
            let run_end = run_start + run.len * BLOCK_BYTES_U64;
            if !run.fresh {
                if offset > run_start {
                    self.dev
                        .read_at(run.physical * BLOCK_BYTES_U64, &mut buf[..BLOCK_BYTES])?;
                }
                if end < run_end {
                    let at = ((run.len - 1) * BLOCK_BYTES_U64) as usize;
                    if !(run.len == 1 && offset > run_start) {
                        self.dev.read_at(
                            (run.physical + run.len - 1) * BLOCK_BYTES_U64,
                            &mut buf[at..],
                        )?;
                    }
                }
            }
            let lo = offset.max(run_start);
            let hi = end.min(run_end);
            buf[(lo - run_start) as usize..(hi - run_start) as usize]
                .copy_from_slice(&data[(lo - offset) as usize..(hi - offset) as usize]);
            bufs.push((run.physical, buf));
        }
        debug_assert!(runs.first().is_none_or(|r| r.logical == first));
        let mut ops: Vec<IoOp<'_>> = bufs
            .iter()
            .map(|(physical, buf)| IoOp::Write {
                offset: physical * BLOCK_BYTES_U64,
                buf: &buf[..],
                fua: false,
            })
            .collect();
        self.dev.submit(&mut ops)?;
        self.data_unflushed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Sets the size; shrinking frees the blocks past the end and zeroes the
    /// tail of the last block, so a later extension reads zeros there.
    pub fn truncate(&self, ino: u64, size: u64) -> Result<()> {
        if self.truncate_plain(ino, size)? {
            Ok(())
        } else {
            Err(Self::vector_file_refusal())
        }
    }

    /// [`truncate`](Self::truncate) of a file that is not a vector file;
    /// false (nothing changed) when it is one. The check is made under the
    /// file's data lock, which SET_VECTOR_META's write-back holds.
    pub(crate) fn truncate_plain(&self, ino: u64, size: u64) -> Result<bool> {
        if size > FILE_BYTES_MAX {
            return Err(Error::refused(
                libc::EFBIG,
                format!("size {size} exceeds FILE_BYTES_MAX {FILE_BYTES_MAX}"),
            ));
        }
        let file = self.file_state(ino);
        let _io = file.io.write();
        {
            let _gate = self.gate.read();
            if Fs::inode(&mut self.lock(), ino)?.flags & INODE_FLAG_VECTOR != 0 {
                return Ok(false);
            }
            self.truncate_locked(ino, size)?;
        }
        self.commit_if_large()?;
        Ok(true)
    }

    /// [`truncate`](Self::truncate) for a caller holding the file's `io`
    /// lock for writing and the commit gate for reading.
    pub(crate) fn truncate_locked(&self, ino: u64, size: u64) -> Result<()> {
        {
            let mut st = self.lock();
            let mut record = Fs::regular_file(&mut st, ino)?;
            if size < record.size {
                let keep_blocks = size.div_ceil(BLOCK_BYTES_U64);
                record.blocks -= unmap(&mut st, ino, keep_blocks)?;
                if size % BLOCK_BYTES_U64 != 0 {
                    let tail_block = size / BLOCK_BYTES_U64;
                    if let Some(e) = overlapping(&mut st, ino, tail_block, tail_block)?
                        .first()
                        .filter(|e| !e.unwritten())
                    {
                        let physical = e.physical + (tail_block - e.logical);
                        let mut buf = AlignedBuf::zeroed(BLOCK_BYTES);
                        self.dev.read_at(physical * BLOCK_BYTES_U64, &mut buf[..])?;
                        buf[(size % BLOCK_BYTES_U64) as usize..].fill(0);
                        self.dev.write_at(physical * BLOCK_BYTES_U64, &buf[..])?;
                        self.data_unflushed.store(true, Ordering::SeqCst);
                    }
                }
            }
            if size != record.size {
                record.size = size;
                let t = now();
                record.mtime = t;
                record.ctime = t;
            }
            Fs::put_inode(&mut st, ino, &record)?;
        }
        Ok(())
    }

    /// fallocate: mode 0 and KEEP_SIZE reserve blocks (read as zeros until
    /// written); PUNCH_HOLE|KEEP_SIZE frees whole blocks and zeroes partial ones.
    pub fn fallocate(&self, ino: u64, offset: u64, len: u64, mode: i32) -> Result<()> {
        if len == 0 {
            return Err(Error::refused(libc::EINVAL, "fallocate of 0 bytes"));
        }
        // Past the largest file: EFBIG, as write(2) and truncate give (and ext4).
        let Some(end) = offset.checked_add(len).filter(|&e| e <= FILE_BYTES_MAX) else {
            return Err(Error::refused(
                libc::EFBIG,
                format!("fallocate past FILE_BYTES_MAX {FILE_BYTES_MAX}"),
            ));
        };
        // Checked early for a clear refusal, and again under the data lock.
        Self::refuse_vector_file(&mut self.lock(), ino)?;
        match mode {
            0 | FALLOC_FL_KEEP_SIZE => self.reserve(ino, offset, end, mode == 0),
            m if m == FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE => {
                self.punch_hole(ino, offset, end)
            }
            _ => Err(Error::refused(
                libc::EOPNOTSUPP,
                format!("fallocate mode {mode:#x} is not supported"),
            )),
        }
    }

    fn reserve(&self, ino: u64, offset: u64, end: u64, extend: bool) -> Result<()> {
        let file = self.file_state(ino);
        let _io = file.io.write();
        {
            let _gate = self.gate.read();
            let mut st = self.lock();
            Self::refuse_vector_file(&mut st, ino)?;
            let mut record = Fs::regular_file(&mut st, ino)?;
            let first = offset / BLOCK_BYTES_U64;
            let last = (end - 1) / BLOCK_BYTES_U64;
            let mut holes = Vec::new();
            let mut at = first;
            for e in overlapping(&mut st, ino, first, last)? {
                if e.logical > at {
                    holes.push((at, e.logical - 1));
                }
                at = e.end_logical();
            }
            if at <= last {
                holes.push((at, last));
            }
            let mut got: Vec<Extent> = Vec::new();
            let mut goal = 0;
            for (lo, hi) in holes {
                let mut at = lo;
                while at <= hi {
                    match st.alloc_data(ino, goal, hi - at + 1) {
                        Ok((physical, n)) => {
                            got.push(Extent {
                                logical: at,
                                physical,
                                len: n,
                                flags: EXTENT_FLAG_UNWRITTEN,
                            });
                            goal = physical + n;
                            at += n;
                        }
                        Err(e) => {
                            for g in &got {
                                st.free(g.physical, g.len)?;
                            }
                            return Err(e);
                        }
                    }
                }
            }
            for g in &got {
                map(&mut st, ino, *g)?;
                record.blocks += g.len;
            }
            if extend && end > record.size {
                record.size = end;
            }
            record.ctime = now();
            Fs::put_inode(&mut st, ino, &record)?;
        }
        self.commit_if_large()
    }

    fn punch_hole(&self, ino: u64, offset: u64, end: u64) -> Result<()> {
        let size = self.getattr(ino)?.size;
        let end = end.min(size);
        if offset >= end {
            return Ok(());
        }
        // Partial blocks at the edges are zeroed by writing zeros.
        let first_whole = offset.div_ceil(BLOCK_BYTES_U64);
        let end_whole = end / BLOCK_BYTES_U64;
        if first_whole > end_whole {
            return self
                .write(ino, offset, &vec![0u8; (end - offset) as usize])
                .map(|_| ());
        }
        if offset < first_whole * BLOCK_BYTES_U64 {
            self.write(
                ino,
                offset,
                &vec![0u8; (first_whole * BLOCK_BYTES_U64 - offset) as usize],
            )?;
        }
        if end > end_whole * BLOCK_BYTES_U64 {
            self.write(
                ino,
                end_whole * BLOCK_BYTES_U64,
                &vec![0u8; (end - end_whole * BLOCK_BYTES_U64) as usize],
            )?;
        }
        if first_whole < end_whole {
            let file = self.file_state(ino);
            let _io = file.io.write();
            let _gate = self.gate.read();
            let mut st = self.lock();
            Self::refuse_vector_file(&mut st, ino)?;
            let mut record = Fs::regular_file(&mut st, ino)?;
            for piece in cut(&mut st, ino, first_whole, end_whole - 1)? {
                st.free(piece.physical, piece.len)?;
                record.blocks -= piece.len;
            }
            let t = now();
            record.mtime = t;
            record.ctime = t;
            Fs::put_inode(&mut st, ino, &record)?;
        }
        self.commit_if_large()
    }

    /// The file's extents, for `vexfs info` and tests.
    pub fn extents(&self, ino: u64) -> Result<Vec<Extent>> {
        overlapping(&mut self.lock(), ino, 0, u64::MAX - 1)
    }
}

/// Clears set-user-ID, and set-group-ID where group-executable (without
/// group execute it marks mandatory locking and stays), as Linux does at
/// a write, a truncate by an unprivileged caller, or a chown.
pub(crate) fn kill_privileges(record: &mut InodeRecord) {
    record.mode &= !libc::S_ISUID;
    if record.mode & libc::S_IXGRP != 0 {
        record.mode &= !libc::S_ISGID;
    }
}
