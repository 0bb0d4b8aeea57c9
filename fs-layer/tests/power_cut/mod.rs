//! Shared by the power-cut simulations (crash.rs, vector_crash.rs).

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
