//! The memory tier: a device held in RAM, striped so that callers on
//! different stripes never contend.

use std::sync::RwLock;

use crate::device::{BlockDevice, Geometry, IoOp};
use crate::error::{Error, Result};

/// Bytes per stripe; each stripe has its own lock.
pub const RAM_STRIPE_BYTES: usize = 1 << 20;
/// Largest RAM device (the allocation is checked up front, never assumed).
pub const RAM_SIZE_BYTES_MAX: u64 = 1 << 40;

pub struct RamDevice {
    geometry: Geometry,
    stripes: Vec<RwLock<Box<[u8]>>>,
}

impl RamDevice {
    /// A zeroed device of `size_bytes` with the given logical block size (512 or 4096).
    pub fn new(size_bytes: u64, logical_block_bytes: u32) -> Result<Self> {
        if !matches!(logical_block_bytes, 512 | 4096) {
            return Err(Error::invalid(
                "logical_block_size",
                format!("{logical_block_bytes} is not 512 or 4096"),
            ));
        }
        if size_bytes == 0
            || size_bytes % RAM_STRIPE_BYTES as u64 != 0
            || size_bytes > RAM_SIZE_BYTES_MAX
        {
            return Err(Error::invalid(
                "size",
                format!(
                    "{size_bytes} must be a non-zero multiple of {RAM_STRIPE_BYTES} up to {RAM_SIZE_BYTES_MAX}"
                ),
            ));
        }
        let count = (size_bytes / RAM_STRIPE_BYTES as u64) as usize;
        let mut stripes = Vec::new();
        stripes.try_reserve_exact(count).map_err(|_| Error::Io {
            op: "allocate",
            offset: 0,
            len: size_bytes,
            source: std::io::Error::from_raw_os_error(libc::ENOMEM),
        })?;
        for _ in 0..count {
            // Zeroed allocations of this size come from fresh mmap'd pages, so
            // memory is only committed where the device is written.
            stripes.push(RwLock::new(vec![0u8; RAM_STRIPE_BYTES].into_boxed_slice()));
        }
        Ok(Self {
            geometry: Geometry {
                size_bytes,
                logical_block_bytes,
                physical_block_bytes: 4096,
                memory_align_bytes: 1,
            },
            stripes,
        })
    }

    /// Calls `visit(stripe, range in stripe, range in request)` for each stripe the range touches.
    fn for_each_stripe(
        &self,
        offset: u64,
        len: usize,
        mut visit: impl FnMut(usize, std::ops::Range<usize>, std::ops::Range<usize>),
    ) {
        let mut done = 0;
        while done < len {
            let at = offset + done as u64;
            let stripe = (at / RAM_STRIPE_BYTES as u64) as usize;
            let start = (at % RAM_STRIPE_BYTES as u64) as usize;
            let take = (RAM_STRIPE_BYTES - start).min(len - done);
            visit(stripe, start..start + take, done..done + take);
            done += take;
        }
    }
}

impl BlockDevice for RamDevice {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn submit(&self, ops: &mut [IoOp<'_>]) -> Result<()> {
        self.geometry.check_ops(ops)?;
        for op in ops.iter_mut() {
            match op {
                IoOp::Read { offset, buf } => {
                    self.for_each_stripe(*offset, buf.len(), |s, from, to| {
                        let stripe = self.stripes[s].read().unwrap_or_else(|e| e.into_inner());
                        buf[to].copy_from_slice(&stripe[from]);
                    })
                }
                IoOp::Write { offset, buf, .. } => {
                    self.for_each_stripe(*offset, buf.len(), |s, to, from| {
                        let mut stripe = self.stripes[s].write().unwrap_or_else(|e| e.into_inner());
                        stripe[to].copy_from_slice(&buf[from]);
                    })
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        // RAM is as durable as it will ever be.
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> Result<()> {
        self.geometry.check_range(offset, len)?;
        self.for_each_stripe(offset, len as usize, |s, range, _| {
            let mut stripe = self.stripes[s].write().unwrap_or_else(|e| e.into_inner());
            stripe[range].fill(0);
        });
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "RAM ({} bytes, logical block {} B)",
            self.geometry.size_bytes, self.geometry.logical_block_bytes
        )
    }
}
