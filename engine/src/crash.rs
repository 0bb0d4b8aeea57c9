//! A device that can lose power: it models a volatile write cache, so a test
//! can stop a workload at any write or flush and see what a real disk could
//! hold afterwards.
//!
//! The device keeps one image, `durable`: what survives power loss, the
//! state at the last flush plus every FUA write. Reads see `durable`
//! overlaid, in issue order, with the writes still in the cache (`pending`);
//! a flush empties the cache into `durable`. (There is no second, current
//! image: the cache is short between flushes, and a full copy per device is
//! what would cost a crash test its time.) Power loss keeps `durable` and,
//! depending on [`CutMode`], some of the cached writes; each cached write
//! lands whole or not at all, in any combination, because a cache may
//! destage in any order.
//!
//! Every write (one per [`IoOp::Write`], discards included) and every flush is
//! one operation. [`CrashDevice::set_cut_after`] kills the device after that
//! many: later writes and flushes fail with `EIO`, as when the disk loses
//! power under a running workload.

use std::io;
use std::sync::{Mutex, MutexGuard};

use crate::device::{BlockDevice, Geometry, IoOp};
use crate::error::{Error, Result};

/// Largest simulated device: it holds a full image in memory.
pub const CRASH_SIZE_BYTES_MAX: u64 = 1 << 30;

/// What survives the power cut among the writes issued since the last flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutMode {
    /// None of them: the cache is lost entirely.
    DropUnflushed,
    /// A seeded pseudo-random subset of them, each whole or not at all.
    RandomSubset,
}

/// A write still in the volatile cache.
struct PendingWrite {
    offset: usize,
    bytes: Vec<u8>,
    /// Already in `durable`; kept here so that replaying the cache in issue
    /// order does not let an older cached write cover it.
    fua: bool,
}

struct State {
    durable: Vec<u8>,
    pending: Vec<PendingWrite>,
    /// Writes and flushes that completed.
    ops: u64,
    /// The device dies once `ops` reaches this.
    cut_after: Option<u64>,
}

impl State {
    /// Counts one operation, or refuses it once the device is dead.
    fn begin_op(&mut self, op: &'static str, offset: u64, len: u64) -> Result<()> {
        if self.cut_after.is_some_and(|cut| self.ops >= cut) {
            return Err(Error::Io {
                op,
                offset,
                len,
                source: io::Error::from_raw_os_error(libc::EIO),
            });
        }
        self.ops += 1;
        Ok(())
    }

    /// The latest data: `durable`, then every cached write over it in issue order.
    fn read(&self, offset: usize, buf: &mut [u8]) {
        let end = offset + buf.len();
        buf.copy_from_slice(&self.durable[offset..end]);
        for write in &self.pending {
            let write_end = write.offset + write.bytes.len();
            let (from, to) = (offset.max(write.offset), end.min(write_end));
            if from < to {
                buf[from - offset..to - offset]
                    .copy_from_slice(&write.bytes[from - write.offset..to - write.offset]);
            }
        }
    }

    fn write(&mut self, offset: usize, bytes: &[u8], fua: bool) {
        if fua {
            self.durable[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        self.pending.push(PendingWrite {
            offset,
            bytes: bytes.to_vec(),
            fua,
        });
    }
}

/// A RAM device with a volatile write cache and a power switch, for crash tests.
pub struct CrashDevice {
    geometry: Geometry,
    state: Mutex<State>,
}

impl CrashDevice {
    /// A zeroed device of `size_bytes` with the given logical block size (512 or 4096).
    pub fn new(size_bytes: u64, logical_block_bytes: u32) -> Result<Self> {
        Self::check_shape(size_bytes, logical_block_bytes)?;
        Ok(Self::holding(
            vec![0u8; size_bytes as usize],
            logical_block_bytes,
        ))
    }

    /// A device whose durable contents are `image` (what a disk held after
    /// power came back), with the given logical block size (512 or 4096).
    pub fn from_image(image: Vec<u8>, logical_block_bytes: u32) -> Result<Self> {
        Self::check_shape(image.len() as u64, logical_block_bytes)?;
        Ok(Self::holding(image, logical_block_bytes))
    }

    fn check_shape(size_bytes: u64, logical_block_bytes: u32) -> Result<()> {
        if !matches!(logical_block_bytes, 512 | 4096) {
            return Err(Error::invalid(
                "logical_block_size",
                format!("{logical_block_bytes} is not 512 or 4096"),
            ));
        }
        if size_bytes == 0
            || size_bytes % u64::from(logical_block_bytes) != 0
            || size_bytes > CRASH_SIZE_BYTES_MAX
        {
            return Err(Error::invalid(
                "size",
                format!(
                    "{size_bytes} must be a non-zero multiple of {logical_block_bytes} up to {CRASH_SIZE_BYTES_MAX}"
                ),
            ));
        }
        Ok(())
    }

    fn holding(durable: Vec<u8>, logical_block_bytes: u32) -> Self {
        Self {
            geometry: Geometry {
                size_bytes: durable.len() as u64,
                logical_block_bytes,
                physical_block_bytes: 4096,
                memory_align_bytes: 1,
            },
            state: Mutex::new(State {
                durable,
                pending: Vec::new(),
                ops: 0,
                cut_after: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the state whole (every update is a copy
        // into a checked range or a push), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes and flushes completed so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Kills the device once `op` operations have completed (None: never).
    /// Already at or past it, the very next write or flush fails.
    pub fn set_cut_after(&self, op: Option<u64>) {
        self.lock().cut_after = op;
    }

    /// What the disk would hold if power were lost now.
    pub fn image_after_cut(&self, mode: CutMode, seed: u64) -> Vec<u8> {
        let state = self.lock();
        let mut image = state.durable.clone();
        if mode == CutMode::RandomSubset {
            let mut random = SplitMix64(seed);
            for write in &state.pending {
                // Draw for every write, FUA too, so that a write's fate does not
                // depend on the kinds of the writes before it.
                let lands = random.next() & 1 == 1;
                if lands || write.fua {
                    image[write.offset..write.offset + write.bytes.len()]
                        .copy_from_slice(&write.bytes);
                }
            }
        }
        image
    }
}

impl BlockDevice for CrashDevice {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn submit(&self, ops: &mut [IoOp<'_>]) -> Result<()> {
        self.geometry.check_ops(ops)?;
        let mut state = self.lock();
        // In order, each counted on its own: a cut in the middle of a batch
        // leaves the writes before it done, as a dying disk would.
        for op in ops.iter_mut() {
            match op {
                IoOp::Read { offset, buf } => state.read(*offset as usize, buf),
                IoOp::Write { offset, buf, fua } => {
                    state.begin_op("write", *offset, buf.len() as u64)?;
                    state.write(*offset as usize, buf, *fua);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let mut state = self.lock();
        state.begin_op("flush", 0, 0)?;
        let State {
            durable, pending, ..
        } = &mut *state;
        for write in pending.drain(..) {
            durable[write.offset..write.offset + write.bytes.len()].copy_from_slice(&write.bytes);
        }
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> Result<()> {
        self.geometry.check_range(offset, len)?;
        let mut state = self.lock();
        state.begin_op("discard", offset, len)?;
        state.write(offset as usize, &vec![0u8; len as usize], false);
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "crash simulator ({} bytes, logical block {} B)",
            self.geometry.size_bytes, self.geometry.logical_block_bytes
        )
    }
}

/// SplitMix64: a tiny seeded generator, so a failing cut replays exactly.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 64 * 4096;

    fn block(fill: u8) -> Vec<u8> {
        vec![fill; 4096]
    }

    fn at(image: &[u8], block: u64) -> u8 {
        let b = image[(block * 4096) as usize];
        assert!(
            image[(block * 4096) as usize..((block + 1) * 4096) as usize]
                .iter()
                .all(|&x| x == b)
        );
        b
    }

    fn read(dev: &CrashDevice, block: u64) -> u8 {
        let mut buf = vec![0u8; 4096];
        dev.read_at(block * 4096, &mut buf).unwrap();
        at(&buf, 0)
    }

    #[test]
    fn reads_see_latest_and_flush_makes_durable() {
        let dev = CrashDevice::new(SIZE, 4096).unwrap();
        dev.write_at(0, &block(1)).unwrap();
        dev.write_at(0, &block(2)).unwrap();
        dev.write_at(4096, &block(3)).unwrap();
        assert_eq!(read(&dev, 0), 2);
        assert_eq!(read(&dev, 1), 3);
        dev.flush().unwrap();
        assert_eq!(dev.ops(), 4);
        for mode in [CutMode::DropUnflushed, CutMode::RandomSubset] {
            let image = dev.image_after_cut(mode, 7);
            assert_eq!((at(&image, 0), at(&image, 1)), (2, 3));
        }
    }

    #[test]
    fn unflushed_writes_are_dropped() {
        let dev = CrashDevice::new(SIZE, 4096).unwrap();
        dev.write_at(0, &block(1)).unwrap();
        dev.flush().unwrap();
        dev.write_at(0, &block(9)).unwrap();
        dev.write_at(8192, &block(9)).unwrap();
        dev.discard(0, 4096).unwrap();
        assert_eq!(read(&dev, 0), 0);
        assert_eq!(read(&dev, 2), 9);
        let image = dev.image_after_cut(CutMode::DropUnflushed, 0);
        assert_eq!((at(&image, 0), at(&image, 2)), (1, 0));
    }

    #[test]
    fn fua_write_is_durable_at_once_and_not_covered_by_older_writes() {
        let dev = CrashDevice::new(SIZE, 4096).unwrap();
        dev.write_at(0, &block(1)).unwrap();
        let data = block(5);
        dev.submit(&mut [IoOp::Write {
            offset: 0,
            buf: &data,
            fua: true,
        }])
        .unwrap();
        assert_eq!(at(&dev.image_after_cut(CutMode::DropUnflushed, 0), 0), 5);
        for seed in 0..32 {
            assert_eq!(at(&dev.image_after_cut(CutMode::RandomSubset, seed), 0), 5);
        }
    }

    #[test]
    fn cut_fails_later_ops_with_eio() {
        let dev = CrashDevice::new(SIZE, 4096).unwrap();
        dev.set_cut_after(Some(2));
        let (a, b, c) = (block(1), block(2), block(3));
        let eio = |r: Result<()>| match r {
            Err(e) => assert_eq!(e.errno(), libc::EIO, "{e}"),
            Ok(()) => panic!("expected EIO after the cut"),
        };
        // The batch crosses the cut: the first two writes land, the third fails.
        eio(dev.submit(&mut [
            IoOp::Write {
                offset: 0,
                buf: &a,
                fua: false,
            },
            IoOp::Write {
                offset: 4096,
                buf: &b,
                fua: false,
            },
            IoOp::Write {
                offset: 8192,
                buf: &c,
                fua: false,
            },
        ]));
        assert_eq!(dev.ops(), 2);
        assert_eq!((read(&dev, 0), read(&dev, 1), read(&dev, 2)), (1, 2, 0));
        eio(dev.flush());
        eio(dev.write_at(0, &block(4)));
        eio(dev.discard(0, 4096));
        assert_eq!(dev.ops(), 2);
        // Nothing was flushed before the cut.
        assert_eq!(at(&dev.image_after_cut(CutMode::DropUnflushed, 0), 0), 0);
        dev.set_cut_after(None);
        dev.flush().unwrap();
        assert_eq!(dev.ops(), 3);
    }

    #[test]
    fn random_subset_applies_some_writes_whole() {
        let dev = CrashDevice::new(SIZE, 4096).unwrap();
        dev.flush().unwrap();
        let writes = 32u64;
        for b in 0..writes {
            // Two blocks per write, so a torn write would show.
            let data = vec![b as u8 + 1; 8192];
            dev.write_at(b * 8192, &data).unwrap();
        }
        let landed = |seed| {
            let image = dev.image_after_cut(CutMode::RandomSubset, seed);
            (0..writes)
                .map(|b| {
                    let (first, second) = (at(&image, 2 * b), at(&image, 2 * b + 1));
                    assert_eq!(first, second, "write {b} was torn");
                    assert!(first == 0 || first == b as u8 + 1);
                    first != 0
                })
                .collect::<Vec<bool>>()
        };
        let one = landed(1);
        let count = one.iter().filter(|&&l| l).count();
        assert!(0 < count && count < writes as usize, "{count} of {writes}");
        assert_eq!(one, landed(1), "the same seed picks the same subset");
        assert_ne!(one, landed(2), "another seed picks another subset");
    }

    #[test]
    fn random_subset_keeps_issue_order() {
        let dev = CrashDevice::new(SIZE, 4096).unwrap();
        for fill in 1..=16u8 {
            dev.write_at(0, &block(fill)).unwrap();
        }
        // Whatever lands, the block holds the newest of the writes that landed.
        for seed in 0..64 {
            let image = dev.image_after_cut(CutMode::RandomSubset, seed);
            let mut random = SplitMix64(seed);
            let newest = (1..=16u8)
                .filter(|_| random.next() & 1 == 1)
                .last()
                .unwrap_or(0);
            assert_eq!(at(&image, 0), newest);
        }
    }

    #[test]
    fn bad_ranges_are_refused_before_any_op_counts() {
        let dev = CrashDevice::new(SIZE, 4096).unwrap();
        assert!(dev.write_at(SIZE, &block(1)).is_err());
        assert!(dev.write_at(1, &block(1)).is_err());
        assert!(dev.discard(0, 100).is_err());
        assert_eq!(dev.ops(), 0);
        assert!(CrashDevice::new(SIZE + 1, 4096).is_err());
        assert!(CrashDevice::new(SIZE, 1000).is_err());
        assert!(CrashDevice::from_image(vec![0u8; 4095], 4096).is_err());
    }

    #[test]
    fn from_image_starts_durable() {
        let mut image = vec![0u8; SIZE as usize];
        image[4096..8192].fill(7);
        let dev = CrashDevice::from_image(image, 512).unwrap();
        assert_eq!(read(&dev, 1), 7);
        dev.write_at(4096, &block(8)).unwrap();
        assert_eq!(read(&dev, 1), 8);
        assert_eq!(at(&dev.image_after_cut(CutMode::DropUnflushed, 0), 1), 7);
        assert_eq!(dev.ops(), 1);
    }
}
