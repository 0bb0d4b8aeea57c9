//! What every backend offers: byte-addressed I/O in whole logical blocks,
//! durable flush, discard, and the device's geometry.

use crate::error::{Error, Result};

/// Shape of a device as the engine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Usable bytes: a whole number of logical blocks.
    pub size_bytes: u64,
    /// Every offset and length must be a multiple of this.
    pub logical_block_bytes: u32,
    /// The device's own atomic write unit; I/O aligned to it avoids read-modify-write.
    pub physical_block_bytes: u32,
    /// Memory alignment O_DIRECT needs; unaligned caller buffers are bounced.
    pub memory_align_bytes: u32,
}

impl Geometry {
    /// Checks every op of a batch, so that a bad op fails the batch before any I/O.
    pub fn check_ops(&self, ops: &[IoOp<'_>]) -> Result<()> {
        ops.iter()
            .try_for_each(|op| self.check_range(op.offset(), op.len() as u64))
    }

    /// Checks that `[offset, offset + len)` is whole logical blocks inside the device.
    pub fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        let block = u64::from(self.logical_block_bytes);
        if len == 0 {
            return Err(Error::invalid("length", "must be at least one block"));
        }
        if offset % block != 0 {
            return Err(Error::invalid(
                "offset",
                format!("{offset} is not a multiple of the logical block size {block}"),
            ));
        }
        if len % block != 0 {
            return Err(Error::invalid(
                "length",
                format!("{len} is not a multiple of the logical block size {block}"),
            ));
        }
        match offset.checked_add(len) {
            Some(end) if end <= self.size_bytes => Ok(()),
            _ => Err(Error::invalid(
                "offset",
                format!(
                    "range {offset}+{len} runs past the end of the device ({} bytes)",
                    self.size_bytes
                ),
            )),
        }
    }
}

/// One I/O of a batch.
pub enum IoOp<'a> {
    Read {
        offset: u64,
        buf: &'a mut [u8],
    },
    /// `fua`: the write is durable when it completes (RWF_DSYNC: FUA on devices that have it).
    Write {
        offset: u64,
        buf: &'a [u8],
        fua: bool,
    },
}

impl IoOp<'_> {
    pub fn offset(&self) -> u64 {
        match self {
            IoOp::Read { offset, .. } | IoOp::Write { offset, .. } => *offset,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            IoOp::Read { buf, .. } => buf.len(),
            IoOp::Write { buf, .. } => buf.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A block device the filesystem and the ublk target can use from many threads.
///
/// All offsets and lengths are in bytes and must be whole logical blocks
/// (`EINVAL` otherwise); a range past the end is `EINVAL`. Errors from the
/// device come back as values with their errno, never as panics.
pub trait BlockDevice: Send + Sync {
    fn geometry(&self) -> Geometry;

    /// Runs every op of the batch (one submission where the backend can) and
    /// returns when all have finished; the first error wins.
    fn submit(&self, ops: &mut [IoOp<'_>]) -> Result<()>;

    /// Everything written before this call is durable when it returns.
    fn flush(&self) -> Result<()>;

    /// The range's contents are no longer needed. Files and RAM read back
    /// zeros afterwards; block devices make no promise about what reads return.
    fn discard(&self, offset: u64, len: u64) -> Result<()>;

    /// One line for logs: backend, path, mode.
    fn describe(&self) -> String;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.submit(&mut [IoOp::Read { offset, buf }])
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<()> {
        self.submit(&mut [IoOp::Write {
            offset,
            buf,
            fua: false,
        }])
    }
}

/// Parses `4096`, `512K`, `64M`, `1G`, `2T` (binary multiples; `KiB` and `k` also accepted).
pub fn parse_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    let number: u64 = digits.parse().map_err(|_| {
        Error::invalid(
            "size",
            format!("{text:?} is not a size like 4096, 64M or 1G"),
        )
    })?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(Error::invalid(
                "size",
                format!("{text:?}: unknown unit {suffix:?} (use K, M, G or T)"),
            ))
        }
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| Error::invalid("size", format!("{text:?} overflows 64 bits")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("2T").unwrap(), 2 << 40);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn range_checks_name_the_bad_field() {
        let geometry = Geometry {
            size_bytes: 1 << 20,
            logical_block_bytes: 512,
            physical_block_bytes: 4096,
            memory_align_bytes: 512,
        };
        assert!(geometry.check_range(0, 512).is_ok());
        assert!(geometry.check_range((1 << 20) - 512, 512).is_ok());
        let field = |r: Result<()>| match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert_eq!(field(geometry.check_range(1, 512)), "offset");
        assert_eq!(field(geometry.check_range(0, 100)), "length");
        assert_eq!(field(geometry.check_range(0, 0)), "length");
        assert_eq!(field(geometry.check_range(1 << 20, 512)), "offset");
        assert_eq!(field(geometry.check_range(u64::MAX - 511, 512)), "offset");
    }
}
