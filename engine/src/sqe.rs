//! io_uring entries for block I/O on one backing descriptor, built in one
//! place: the engine's own [`Queue`](crate::Queue) submits them on its rings,
//! and the ublk target submits the same entries on libublk's per-queue ring,
//! so a block request reaches the backing without a hop to another thread.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

/// Which descriptor an entry names: an index into the ring's registered
/// files (saves a file-table lookup per I/O) or a plain descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackingFd {
    Fixed(u32),
    Raw(RawFd),
}

/// `fallocate` mode that zeroes a range and keeps the size: the kernel
/// offloads it (WRITE ZEROES on devices, unwritten extents on files).
pub const FALLOC_ZERO_RANGE: i32 = libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE;
/// `fallocate` mode that deallocates a range of a file; it reads back as zeros.
pub const FALLOC_PUNCH_HOLE: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
/// `fallocate` mode that a block device turns into a discard (unlike
/// [`FALLOC_PUNCH_HOLE`], which a block device turns into zeroing). Kernels
/// that dropped this mode answer EOPNOTSUPP; callers fall back to BLKDISCARD.
pub const FALLOC_DISCARD_BLOCK_DEVICE: i32 = FALLOC_PUNCH_HOLE | FALLOC_FL_NO_HIDE_STALE;
/// Not exported by the libc crate (linux/falloc.h).
const FALLOC_FL_NO_HIDE_STALE: i32 = 0x04;

// The opcode builders take private marker types, so each entry is spelled
// once per kind of descriptor.
macro_rules! on_backing {
    ($fd:expr, |$target:ident| $build:expr) => {
        match $fd {
            BackingFd::Fixed(index) => {
                let $target = types::Fixed(index);
                $build
            }
            BackingFd::Raw(raw) => {
                let $target = types::Fd(raw);
                $build
            }
        }
    };
}

/// Reads `len` bytes at `offset` into `addr`. With `buffer_index`, `addr`
/// lies inside that registered buffer (READ_FIXED: no page pinning per I/O).
pub fn read(
    fd: BackingFd,
    addr: *mut u8,
    len: u32,
    offset: u64,
    buffer_index: Option<u16>,
) -> squeue::Entry {
    on_backing!(fd, |target| match buffer_index {
        Some(index) => opcode::ReadFixed::new(target, addr, len, index)
            .offset(offset)
            .build(),
        None => opcode::Read::new(target, addr, len).offset(offset).build(),
    })
}

/// Writes `len` bytes from `addr` at `offset`; `fua` makes this write alone
/// durable at completion (RWF_DSYNC), without flushing anything else.
pub fn write(
    fd: BackingFd,
    addr: *const u8,
    len: u32,
    offset: u64,
    fua: bool,
    buffer_index: Option<u16>,
) -> squeue::Entry {
    let rw_flags = if fua { libc::RWF_DSYNC } else { 0 };
    on_backing!(fd, |target| match buffer_index {
        Some(index) => opcode::WriteFixed::new(target, addr, len, index)
            .offset(offset)
            .rw_flags(rw_flags)
            .build(),
        None => opcode::Write::new(target, addr, len)
            .offset(offset)
            .rw_flags(rw_flags)
            .build(),
    })
}

/// Makes every write that completed before it durable (fdatasync: the data
/// and the metadata needed to read it back, through the device's cache).
pub fn flush(fd: BackingFd) -> squeue::Entry {
    on_backing!(fd, |target| opcode::Fsync::new(target)
        .flags(types::FsyncFlags::DATASYNC)
        .build())
}

/// `fallocate(mode, offset, len)`: one of the `FALLOC_*` modes above.
pub fn fallocate(fd: BackingFd, mode: i32, offset: u64, len: u64) -> squeue::Entry {
    on_backing!(fd, |target| opcode::Fallocate::new(target, len)
        .offset(offset)
        .mode(mode)
        .build())
}
