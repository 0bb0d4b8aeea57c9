//! What one ublk I/O descriptor asks for, decoded and checked before any I/O.

use libublk::sys;

/// A block request in bytes, after the checks every backing relies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Read {
        offset: u64,
        len: u32,
    },
    Write {
        offset: u64,
        len: u32,
        fua: bool,
    },
    /// Completion means every write completed before it is durable.
    Flush,
    Discard {
        offset: u64,
        len: u64,
    },
    WriteZeroes {
        offset: u64,
        len: u64,
    },
}

/// Why a descriptor was refused; the kernel gets the errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// An operation this target does not implement (zoned ops, WRITE_SAME).
    Unsupported(u32),
    /// Past the device end, or larger than the tag's buffer: a driver bug.
    OutOfRange,
}

impl Refused {
    pub fn errno(self) -> i32 {
        match self {
            Refused::Unsupported(_) => libc::EOPNOTSUPP,
            Refused::OutOfRange => libc::EIO,
        }
    }
}

const SECTOR_SHIFT: u32 = 9;

/// Decodes a descriptor for a device of `device_bytes` whose per-tag buffer
/// holds `buffer_bytes`.
pub fn decode(
    iod: &sys::ublksrv_io_desc,
    device_bytes: u64,
    buffer_bytes: u32,
) -> Result<Request, Refused> {
    let op = iod.op_flags & 0xff;
    let offset = iod.start_sector.checked_shl(SECTOR_SHIFT);
    let len = u64::from(iod.nr_sectors) << SECTOR_SHIFT;
    let in_range = offset
        .and_then(|offset| offset.checked_add(len))
        .is_some_and(|end| end <= device_bytes);
    let offset = offset.unwrap_or(u64::MAX);
    let data_len = || match u32::try_from(len) {
        Ok(len) if in_range && len <= buffer_bytes => Ok(len),
        _ => Err(Refused::OutOfRange),
    };
    match op {
        sys::UBLK_IO_OP_READ => Ok(Request::Read {
            offset,
            len: data_len()?,
        }),
        sys::UBLK_IO_OP_WRITE => Ok(Request::Write {
            offset,
            len: data_len()?,
            fua: iod.op_flags & sys::UBLK_IO_F_FUA != 0,
        }),
        sys::UBLK_IO_OP_FLUSH => Ok(Request::Flush),
        sys::UBLK_IO_OP_DISCARD if in_range => Ok(Request::Discard { offset, len }),
        sys::UBLK_IO_OP_WRITE_ZEROES if in_range => Ok(Request::WriteZeroes { offset, len }),
        sys::UBLK_IO_OP_DISCARD | sys::UBLK_IO_OP_WRITE_ZEROES => Err(Refused::OutOfRange),
        other => Err(Refused::Unsupported(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iod(op_flags: u32, start_sector: u64, nr_sectors: u32) -> sys::ublksrv_io_desc {
        sys::ublksrv_io_desc {
            op_flags,
            nr_sectors,
            start_sector,
            addr: 0,
        }
    }

    const DEVICE: u64 = 1 << 20;
    const BUFFER: u32 = 64 << 10;

    #[test]
    fn reads_and_writes_become_byte_ranges() {
        assert_eq!(
            decode(&iod(sys::UBLK_IO_OP_READ, 8, 8), DEVICE, BUFFER),
            Ok(Request::Read {
                offset: 4096,
                len: 4096
            })
        );
        assert_eq!(
            decode(
                &iod(sys::UBLK_IO_OP_WRITE | sys::UBLK_IO_F_FUA, 0, 128),
                DEVICE,
                BUFFER
            ),
            Ok(Request::Write {
                offset: 0,
                len: 65536,
                fua: true
            })
        );
        assert_eq!(
            decode(&iod(sys::UBLK_IO_OP_FLUSH, 0, 0), DEVICE, BUFFER),
            Ok(Request::Flush)
        );
    }

    #[test]
    fn ranges_past_the_end_or_the_buffer_are_refused() {
        // Ends exactly at the device end: fine.
        assert!(decode(&iod(sys::UBLK_IO_OP_READ, 2040, 8), DEVICE, BUFFER).is_ok());
        assert_eq!(
            decode(&iod(sys::UBLK_IO_OP_READ, 2041, 8), DEVICE, BUFFER),
            Err(Refused::OutOfRange)
        );
        assert_eq!(
            decode(&iod(sys::UBLK_IO_OP_WRITE, 0, 129), DEVICE, BUFFER),
            Err(Refused::OutOfRange)
        );
        assert_eq!(
            decode(&iod(sys::UBLK_IO_OP_READ, u64::MAX >> 8, 8), DEVICE, BUFFER),
            Err(Refused::OutOfRange)
        );
        // Discards are not bounded by the buffer, only by the device.
        assert_eq!(
            decode(&iod(sys::UBLK_IO_OP_DISCARD, 0, 2048), DEVICE, BUFFER),
            Ok(Request::Discard {
                offset: 0,
                len: DEVICE
            })
        );
        assert_eq!(
            decode(&iod(sys::UBLK_IO_OP_WRITE_ZEROES, 8, 2048), DEVICE, BUFFER),
            Err(Refused::OutOfRange)
        );
    }

    #[test]
    fn unknown_operations_are_unsupported() {
        let refused = decode(&iod(sys::UBLK_IO_OP_ZONE_APPEND, 0, 8), DEVICE, BUFFER);
        assert_eq!(
            refused,
            Err(Refused::Unsupported(sys::UBLK_IO_OP_ZONE_APPEND))
        );
        assert_eq!(refused.unwrap_err().errno(), libc::EOPNOTSUPP);
    }
}
