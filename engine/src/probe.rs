//! Finding out what a backing file or device is: its kind, size and the
//! alignment O_DIRECT demands of it.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::device::Geometry;
use crate::error::{Error, Result};

/// `STATX_DIOALIGN` (Linux 6.1): fills `stx_dio_mem_align` and `stx_dio_offset_align`.
const STATX_DIOALIGN: u32 = 0x2000;
// <linux/fs.h> block-device ioctls.
const BLKSSZGET: libc::c_ulong = 0x1268;
const BLKPBSZGET: libc::c_ulong = 0x127b;
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
const BLKDISCARD: libc::c_ulong = 0x1277;

/// The smallest logical block the engine uses, even where a filesystem allows finer O_DIRECT.
pub const LOGICAL_BLOCK_BYTES_MIN: u32 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackingKind {
    RegularFile,
    BlockDevice,
}

fn statx(file: &File, mask: u32) -> io::Result<libc::statx> {
    // SAFETY: statx only writes the struct we pass; zeroed is a valid statx.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open, the path is a valid empty C string with AT_EMPTY_PATH,
    // and stx is a valid out-pointer.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            mask,
            &mut stx,
        )
    };
    if rc == 0 {
        Ok(stx)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn ioctl_read<T: Default>(file: &File, request: libc::c_ulong) -> io::Result<T> {
    let mut value = T::default();
    // SAFETY: each request used here writes exactly one T (int, uint or u64).
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as _, &mut value as *mut T) };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Kind and geometry of an opened (O_DIRECT) file or block device.
pub fn probe(path: &Path, file: &File) -> Result<(BackingKind, Geometry)> {
    let open_error = |what, source| Error::Open {
        path: path.to_path_buf(),
        what,
        source,
    };
    let stx = statx(file, libc::STATX_TYPE | libc::STATX_SIZE | STATX_DIOALIGN)
        .map_err(|e| open_error("statx", e))?;
    let file_type = u32::from(stx.stx_mode) & libc::S_IFMT;
    let dio_known = stx.stx_mask & STATX_DIOALIGN != 0 && stx.stx_dio_offset_align != 0;

    let (kind, size_bytes, logical, physical, memory_align) = if file_type == libc::S_IFBLK {
        let logical: libc::c_int =
            ioctl_read(file, BLKSSZGET).map_err(|e| open_error("BLKSSZGET", e))?;
        let physical: libc::c_uint =
            ioctl_read(file, BLKPBSZGET).map_err(|e| open_error("BLKPBSZGET", e))?;
        let size: u64 =
            ioctl_read(file, BLKGETSIZE64).map_err(|e| open_error("BLKGETSIZE64", e))?;
        let logical = logical as u32;
        let memory_align = if dio_known {
            stx.stx_dio_mem_align
        } else {
            logical
        };
        (
            BackingKind::BlockDevice,
            size,
            logical,
            physical,
            memory_align,
        )
    } else if file_type == libc::S_IFREG {
        // open(O_DIRECT) already succeeded, so the filesystem takes direct
        // I/O. Some (tmpfs) do not report their alignment; for those use the
        // filesystem block size, which no filesystem's O_DIRECT rejects.
        let fallback = stx.stx_blksize.clamp(LOGICAL_BLOCK_BYTES_MIN, 4096);
        let (logical, memory_align) = if dio_known {
            (stx.stx_dio_offset_align, stx.stx_dio_mem_align)
        } else {
            (fallback, fallback)
        };
        (
            BackingKind::RegularFile,
            stx.stx_size,
            logical,
            stx.stx_blksize.max(logical),
            memory_align,
        )
    } else {
        return Err(open_error(
            "type",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file or a block device",
            ),
        ));
    };

    let logical = logical.max(LOGICAL_BLOCK_BYTES_MIN);
    if !logical.is_power_of_two() {
        return Err(open_error(
            "logical block size",
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{logical} is not a power of two"),
            ),
        ));
    }
    let size_bytes = size_bytes - size_bytes % u64::from(logical);
    if size_bytes == 0 {
        return Err(open_error(
            "size",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("smaller than one {logical}-byte block"),
            ),
        ));
    }
    Ok((
        kind,
        Geometry {
            size_bytes,
            logical_block_bytes: logical,
            physical_block_bytes: physical.max(logical),
            memory_align_bytes: memory_align.max(1),
        },
    ))
}

/// Discards a range: punches a hole in a file, BLKDISCARD on a device.
pub fn discard(kind: BackingKind, file: &File, offset: u64, len: u64) -> io::Result<()> {
    match kind {
        BackingKind::RegularFile => {
            // SAFETY: plain syscall on an open descriptor.
            let rc = unsafe {
                libc::fallocate(
                    file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    offset as libc::off_t,
                    len as libc::off_t,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        BackingKind::BlockDevice => {
            let range = [offset, len];
            // SAFETY: BLKDISCARD reads two u64s (start, length) from the pointer.
            let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKDISCARD as _, range.as_ptr()) };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
    }
}
