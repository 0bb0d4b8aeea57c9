//! What a ublk device is served from: an O_DIRECT file or block device
//! through the engine, a Ceph RBD image through librbd (feature `rbd`), or
//! the engine's RAM tier; and the block-layer limits the device advertises
//! for it.

use std::path::Path;

use libublk::sys;
use vexfs_engine::rbd::{is_rbd_spec, RbdSpec};
use vexfs_engine::{
    parse_size, BackingKind, Geometry, RamDevice, RbdDevice, UringDevice, UringOptions,
};

/// Largest discard or write-zeroes request the kernel sends us in one piece.
pub const ZEROING_BYTES_MAX: u64 = 1 << 30;
/// Logical block sizes a device may have.
pub const LOGICAL_BLOCK_SIZES: [u32; 2] = [512, 4096];

#[derive(Debug, thiserror::Error)]
pub enum BackingError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Engine(#[from] vexfs_engine::Error),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> BackingError {
    BackingError::Invalid {
        field,
        reason: reason.into(),
    }
}

pub enum Backing {
    /// A regular file or block device, O_DIRECT.
    Direct(UringDevice),
    /// A Ceph RBD image, librbd aio (see [`crate::rbd`]).
    Rbd(RbdDevice),
    Ram(RamDevice),
}

/// A backing and the shape of the device it is exported as.
pub struct Served {
    pub backing: Backing,
    /// As given by the user (`ram:SIZE` or a path; an `rbd:` spec with the
    /// CEPH_* environment folded in and paths made absolute); kept so
    /// `recover` can reopen it.
    pub spec: String,
    pub logical_block_bytes: u32,
    /// The backing's size rounded down to whole logical blocks.
    pub size_bytes: u64,
    /// Discard is advertised only where the backing can do it.
    pub discard: bool,
}

impl Served {
    /// Opens `spec` (`ram:SIZE` or a path) for a device with the given
    /// logical block size. RAM is zeroed at every open: a recovered RAM
    /// device comes back empty, so `recover` refuses it.
    pub fn open(spec: &str, logical_block_bytes: Option<u32>) -> Result<Self, BackingError> {
        if let Some(bytes) = logical_block_bytes.filter(|b| !LOGICAL_BLOCK_SIZES.contains(b)) {
            return Err(invalid(
                "--logical-block-size",
                format!("{bytes} is not 512 or 4096"),
            ));
        }
        let mut recorded = spec.to_string();
        let (backing, discard) = match spec.strip_prefix("ram:") {
            None if is_rbd_spec(spec) => {
                // `recover` may run with another environment or directory.
                recorded = RbdSpec::parse(spec)?
                    .with_environment(|key| std::env::var(key).ok())
                    .with_absolute_paths()
                    .to_string();
                (Backing::Rbd(RbdDevice::open(&recorded, false)?), true)
            }
            Some(size) => {
                let size = parse_size(size)?;
                let ram = RamDevice::new(size, logical_block_bytes.unwrap_or(512))?;
                (Backing::Ram(ram), true)
            }
            None => {
                let options = UringOptions {
                    // Only the rare synchronous discard fallback uses the pool.
                    queue_depth: 4,
                    queues_max: 4,
                    ..UringOptions::default()
                };
                let device = UringDevice::open(spec, options)?;
                let discard = match device.kind() {
                    BackingKind::RegularFile => true,
                    BackingKind::BlockDevice => block_device_discards(Path::new(spec)),
                };
                (Backing::Direct(device), discard)
            }
        };
        let geometry = backing.geometry();
        let logical_block_bytes =
            logical_block_bytes.unwrap_or(geometry.logical_block_bytes.max(512));
        if !LOGICAL_BLOCK_SIZES.contains(&logical_block_bytes) {
            return Err(invalid(
                "--backing",
                format!("{spec} has {logical_block_bytes}-byte logical blocks; ublk devices have 512 or 4096"),
            ));
        }
        if logical_block_bytes < geometry.logical_block_bytes {
            return Err(invalid(
                "--logical-block-size",
                format!(
                    "{logical_block_bytes} is below the backing's logical block size {} \
                     (O_DIRECT cannot address smaller blocks)",
                    geometry.logical_block_bytes
                ),
            ));
        }
        let size_bytes =
            geometry.size_bytes / u64::from(logical_block_bytes) * u64::from(logical_block_bytes);
        if size_bytes == 0 {
            return Err(invalid(
                "--backing",
                format!("{spec} is smaller than one {logical_block_bytes}-byte block"),
            ));
        }
        Ok(Self {
            backing,
            spec: recorded,
            logical_block_bytes,
            size_bytes,
            discard,
        })
    }

    /// Block-layer parameters of the exported device.
    pub fn params(&self, io_buf_bytes: u32) -> sys::ublk_params {
        let physical = self
            .backing
            .geometry()
            .physical_block_bytes
            .max(self.logical_block_bytes);
        // Files, devices and librbd have caches that only a flush empties;
        // RAM has nothing to flush, so the kernel sends it no flushes.
        let attrs = match self.backing {
            Backing::Direct(_) | Backing::Rbd(_) => {
                sys::UBLK_ATTR_VOLATILE_CACHE | sys::UBLK_ATTR_FUA
            }
            Backing::Ram(_) => 0,
        };
        let zeroing_sectors = (ZEROING_BYTES_MAX >> 9) as u32;
        sys::ublk_params {
            types: sys::UBLK_PARAM_TYPE_BASIC | sys::UBLK_PARAM_TYPE_DISCARD,
            basic: sys::ublk_param_basic {
                attrs,
                logical_bs_shift: self.logical_block_bytes.trailing_zeros() as u8,
                physical_bs_shift: physical.trailing_zeros() as u8,
                io_min_shift: physical.trailing_zeros() as u8,
                io_opt_shift: physical.max(4096).trailing_zeros() as u8,
                max_sectors: io_buf_bytes >> 9,
                dev_sectors: self.size_bytes >> 9,
                ..Default::default()
            },
            discard: sys::ublk_param_discard {
                discard_granularity: physical.max(4096),
                max_discard_sectors: if self.discard { zeroing_sectors } else { 0 },
                max_write_zeroes_sectors: zeroing_sectors,
                max_discard_segments: 1,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// What `list` shows and `recover` reads back.
    pub fn to_json(&self, recoverable: bool) -> serde_json::Value {
        serde_json::json!({
            "backing": self.spec,
            "logical_block_bytes": self.logical_block_bytes,
            "size_bytes": self.size_bytes,
            "recoverable": recoverable,
            "discard": self.discard,
        })
    }
}

impl Backing {
    pub fn geometry(&self) -> Geometry {
        use vexfs_engine::BlockDevice;
        match self {
            Backing::Direct(device) => device.geometry(),
            Backing::Rbd(device) => device.geometry(),
            Backing::Ram(ram) => ram.geometry(),
        }
    }
}

/// Whether the block device at `path` accepts discards (sysfs says how much
/// one discard may cover; 0 means none).
fn block_device_discards(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return false;
    };
    let rdev = metadata.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let queue = format!("/sys/dev/block/{major}:{minor}/queue/discard_max_bytes");
    // A partition has no queue directory of its own; its disk's applies.
    let partition = format!("/sys/dev/block/{major}:{minor}/../queue/discard_max_bytes");
    [queue, partition].iter().any(|path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .is_some_and(|bytes| bytes > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_backing_is_sized_and_limited() {
        let served = Served::open("ram:8M", Some(4096)).expect("8 MiB of RAM");
        assert_eq!(served.size_bytes, 8 << 20);
        let params = served.params(512 << 10);
        assert_eq!(params.basic.logical_bs_shift, 12);
        assert_eq!(params.basic.dev_sectors, (8 << 20) >> 9);
        assert_eq!(params.basic.max_sectors, 1024);
        assert_eq!(params.basic.attrs, 0);
        assert!(params.discard.max_discard_sectors > 0);
    }

    #[test]
    fn bad_specs_name_the_field() {
        let err = Served::open("ram:8M", Some(1024))
            .err()
            .expect("1024 refused");
        assert!(err.to_string().starts_with("--logical-block-size"), "{err}");
        let err = Served::open("/nonexistent/vexfs-ublk.img", None)
            .err()
            .expect("missing file refused");
        assert!(
            err.to_string().contains("/nonexistent/vexfs-ublk.img"),
            "{err}"
        );
    }

    #[cfg(not(feature = "rbd"))]
    #[test]
    fn rbd_backings_say_how_to_build_them() {
        let err = Served::open("rbd:rbd/img", None)
            .err()
            .expect("no librbd in this build");
        assert!(err.to_string().contains("--features rbd"), "{err}");
    }

    /// Needs a cluster: CEPH_CONF and VEXFS_TEST_RBD_IMAGE (scripts/test-ceph).
    #[cfg(feature = "rbd")]
    #[test]
    fn rbd_backing_advertises_cache_and_records_its_cluster() {
        let (Ok(image), Ok(conf)) = (
            std::env::var("VEXFS_TEST_RBD_IMAGE"),
            std::env::var("CEPH_CONF"),
        ) else {
            eprintln!("skipped: no Ceph cluster (set CEPH_CONF and VEXFS_TEST_RBD_IMAGE)");
            return;
        };
        let spec = format!("rbd:{}", image.trim_start_matches("rbd:"));
        let served = Served::open(&spec, None).expect("the test image opens");
        assert_eq!(served.logical_block_bytes, 512);
        assert!(served.discard);
        let attrs = served.params(512 << 10).basic.attrs;
        assert_eq!(attrs, sys::UBLK_ATTR_VOLATILE_CACHE | sys::UBLK_ATTR_FUA);
        // `recover` reopens from the record, whatever its environment.
        let conf = std::path::absolute(conf).expect("absolute conf");
        assert!(
            served.spec.contains(&format!(":conf={}", conf.display())),
            "{}",
            served.spec
        );
    }

    #[test]
    fn file_backing_advertises_cache_and_rounds_down() {
        let path =
            std::env::temp_dir().join(format!("vexfs-ublk-backing-{}.img", std::process::id()));
        let file = std::fs::File::create(&path).expect("create temp image");
        file.set_len((1 << 20) + 512).expect("size temp image");
        drop(file);
        let opened = Served::open(path.to_str().expect("utf-8 path"), Some(4096));
        std::fs::remove_file(&path).expect("remove temp image");
        let served = opened.expect("file backing opens");
        assert_eq!(served.size_bytes, 1 << 20);
        let attrs = served.params(512 << 10).basic.attrs;
        assert_eq!(attrs, sys::UBLK_ATTR_VOLATILE_CACHE | sys::UBLK_ATTR_FUA);
    }
}
