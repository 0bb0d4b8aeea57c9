//! Values between the kernel's FUSE protocol and the filesystem: errnos,
//! times, file types, attributes, open flags.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, FopenFlags, INodeNo, TimeOrNow};

use crate::error::Error;
use crate::format::{InodeRecord, Timespec, BLOCK_BYTES, INODE_FLAG_VECTOR};
use crate::fs::TimeSet;

/// Logs what the daemon's operator needs (corruption, device errors) and
/// hands the kernel the errno.
pub(super) fn errno(op: &str, e: Error) -> Errno {
    errno_ref(op, &e)
}

pub(super) fn errno_ref(op: &str, e: &Error) -> Errno {
    if matches!(e, Error::Corrupt { .. } | Error::Device(_)) {
        eprintln!("vexfs: {op}: {e}");
    }
    Errno::from_i32(e.errno())
}

pub(super) fn system_time(t: Timespec) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + Duration::from_nanos(t.nsec as u64)
    }
}

pub(super) fn timespec(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(before) => {
            let d = before.duration();
            let (mut sec, mut nsec) = (-(d.as_secs() as i64), d.subsec_nanos());
            if nsec > 0 {
                sec -= 1;
                nsec = 1_000_000_000 - nsec;
            }
            Timespec { sec, nsec }
        }
    }
}

pub(super) fn kind(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

pub fn attr(ino: u64, r: &InodeRecord) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: r.size,
        blocks: r.blocks * (BLOCK_BYTES as u64 / 512),
        atime: system_time(r.atime),
        mtime: system_time(r.mtime),
        ctime: system_time(r.ctime),
        crtime: system_time(r.crtime),
        kind: kind(r.mode),
        perm: (r.mode & 0o7777) as u16,
        nlink: r.nlink,
        uid: r.uid,
        gid: r.gid,
        rdev: r.rdev,
        blksize: BLOCK_BYTES as u32,
        flags: 0,
    }
}

/// The attributes of a name that does not exist: node 0 tells the kernel.
pub(super) fn negative_entry() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: BLOCK_BYTES as u32,
        flags: 0,
    }
}

pub(super) fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(at) => TimeSet::At(timespec(at)),
    }
}

/// Plain files keep their page cache across opens; a vector file's bytes
/// change by ioctl, so its reads bypass the page cache (see `invalidate`).
pub(super) fn open_flags(record: &InodeRecord) -> FopenFlags {
    if record.flags & INODE_FLAG_VECTOR != 0 {
        FopenFlags::FOPEN_DIRECT_IO
    } else {
        FopenFlags::FOPEN_KEEP_CACHE
    }
}
