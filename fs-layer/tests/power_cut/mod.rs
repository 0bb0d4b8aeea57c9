//! Shared by the power-cut simulations (crash.rs, vector_crash.rs, threaded_crash.rs).

#![allow(dead_code)]

use vexfs_engine::crash::CutMode;
use vexfs_engine::{BlockDevice, CrashDevice};
use vexfs_fs::mkfs::{mkfs, MkfsOptions};

/// The formatted device every run starts from. mkfs draws the directory
/// hash seed and the uuid at random; fixing them makes the tree, and so
/// every cut point, the same from run to run.
pub fn formatted_image(device_bytes: u64, seed: u64) -> Vec<u8> {
    let dev = CrashDevice::new(device_bytes, 4096).unwrap();
    let mut sb = mkfs(&dev, &MkfsOptions::default()).unwrap();
    sb.hash_seed = seed;
    sb.uuid = seed.to_le_bytes().repeat(2).try_into().unwrap();
    let encoded = sb.encode();
    for block in [0, sb.backup_block()] {
        dev.write_at(block * 4096, &encoded).unwrap();
    }
    dev.flush().unwrap();
    dev.image_after_cut(CutMode::DropUnflushed, 0)
}

/// One completed device operation, as [`Recording`] logged it.
pub enum Logged {
    Write {
        offset: usize,
        bytes: Vec<u8>,
        fua: bool,
    },
    Flush,
}

/// A RAM device that logs every write and flush in the order they
/// completed. A workload of several threads cannot be replayed in the same
/// order, so it runs once on this device; the image at any cut point is
/// then rebuilt from the log ([`Replayer`]).
pub struct Recording {
    size_bytes: u64,
    state: std::sync::Mutex<(Vec<u8>, Vec<Logged>)>,
}

impl Recording {
    pub fn new(image: Vec<u8>) -> Recording {
        Recording {
            size_bytes: image.len() as u64,
            state: std::sync::Mutex::new((image, Vec::new())),
        }
    }

    /// Writes and flushes completed so far: an fsync that returned when
    /// this was N survives every cut at N or later.
    pub fn ops(&self) -> u64 {
        self.state.lock().unwrap().1.len() as u64
    }

    pub fn take_log(&self) -> Vec<Logged> {
        std::mem::take(&mut self.state.lock().unwrap().1)
    }
}

impl BlockDevice for Recording {
    fn geometry(&self) -> vexfs_engine::Geometry {
        vexfs_engine::Geometry {
            size_bytes: self.size_bytes,
            logical_block_bytes: 4096,
            physical_block_bytes: 4096,
            memory_align_bytes: 1,
        }
    }

    fn submit(&self, ops: &mut [vexfs_engine::IoOp<'_>]) -> vexfs_engine::Result<()> {
        let mut state = self.state.lock().unwrap();
        let (image, log) = &mut *state;
        for op in ops.iter_mut() {
            match op {
                vexfs_engine::IoOp::Read { offset, buf } => {
                    let at = *offset as usize;
                    buf.copy_from_slice(&image[at..at + buf.len()]);
                }
                vexfs_engine::IoOp::Write { offset, buf, fua } => {
                    let at = *offset as usize;
                    image[at..at + buf.len()].copy_from_slice(buf);
                    log.push(Logged::Write {
                        offset: at,
                        bytes: buf.to_vec(),
                        fua: *fua,
                    });
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> vexfs_engine::Result<()> {
        self.state.lock().unwrap().1.push(Logged::Flush);
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> vexfs_engine::Result<()> {
        let mut state = self.state.lock().unwrap();
        let (image, log) = &mut *state;
        let at = offset as usize;
        image[at..at + len as usize].fill(0);
        log.push(Logged::Write {
            offset: at,
            bytes: vec![0; len as usize],
            fua: false,
        });
        Ok(())
    }

    fn describe(&self) -> String {
        format!("recording RAM device ({} bytes)", self.size_bytes)
    }
}

/// Rebuilds what the disk held at cut points taken in rising order: the
/// start image, every write before the last flush before the cut, FUA
/// writes, and in `RandomSubset` mode a seeded half of the rest.
pub struct Replayer<'a> {
    durable: Vec<u8>,
    log: &'a [Logged],
    /// Log entries before this one are in `durable`.
    applied: usize,
}

impl<'a> Replayer<'a> {
    pub fn new(start: Vec<u8>, log: &'a [Logged]) -> Replayer<'a> {
        Replayer {
            durable: start,
            log,
            applied: 0,
        }
    }

    /// The image after the first `cut` operations; cuts must not go down.
    pub fn image_at(&mut self, cut: usize, mode: CutMode, seed: u64) -> Vec<u8> {
        assert!(cut >= self.applied, "cut points must rise");
        if let Some(flush) = self.log[self.applied..cut]
            .iter()
            .rposition(|op| matches!(op, Logged::Flush))
        {
            let end = self.applied + flush + 1;
            for op in &self.log[self.applied..end] {
                if let Logged::Write { offset, bytes, .. } = op {
                    self.durable[*offset..*offset + bytes.len()].copy_from_slice(bytes);
                }
            }
            self.applied = end;
        }
        let mut image = self.durable.clone();
        let mut random = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for op in &self.log[self.applied..cut] {
            if let Logged::Write { offset, bytes, fua } = op {
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                if *fua || (mode == CutMode::RandomSubset && random & 1 == 1) {
                    image[*offset..*offset + bytes.len()].copy_from_slice(bytes);
                }
            }
        }
        image
    }
}
