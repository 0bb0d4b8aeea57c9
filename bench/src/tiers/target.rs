//! Where a tier's workloads run: a RAM device, a file this run creates in a
//! directory (removed at the end), an existing file, a block device or a
//! Ceph RBD image (left as found unless `--destructive`). A device or image
//! that holds a filesystem, a partition table or swap, or is in use, is
//! refused unless `--destructive`.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use vexfs_engine::rbd::is_rbd_spec;
use vexfs_engine::{
    parse_size, BlockDevice, IoOp, QueueDevice, RamDevice, RbdDevice, UringDevice, UringOptions,
};

use super::{Config, NAME_BYTES_MAX};
use crate::engine::prepare_file;

/// statfs f_type of tmpfs (linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// Where the tmpfs tier lives when it is tmpfs.
const SHM_DIR: &str = "/dev/shm";
/// Room on a tmpfs this run mounts beyond the tier's size (mkfs, logs).
const TMPFS_SLACK_BYTES: u64 = 32 << 20;
/// Bytes read from the start of a device to look for signatures.
const SNIFF_BYTES: usize = 72 << 10;
/// Chunk of the fill of a RAM tier.
const RAM_FILL_CHUNK_BYTES: usize = 1 << 20;

/// A tier as named on the command line.
#[derive(Clone, Debug)]
pub struct TierSpec {
    pub name: String,
    pub place: Where,
}

#[derive(Clone, Debug)]
pub enum Where {
    /// The engine's RAM device; None: --size.
    Ram(Option<u64>),
    /// /dev/shm when it is tmpfs, else a tmpfs this run mounts under --out.
    Tmpfs,
    /// A directory (a file is created in it), a file or a block device.
    Path(PathBuf),
    /// A Ceph RBD image, `rbd:POOL/IMAGE[...]` (feature `rbd`).
    Rbd(String),
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Where::Ram(Some(bytes)) => write!(f, "ram:{}M", bytes >> 20),
            Where::Ram(None) => f.write_str("ram:"),
            Where::Tmpfs => f.write_str("tmpfs:"),
            Where::Path(path) => write!(f, "{}", path.display()),
            Where::Rbd(spec) => f.write_str(spec),
        }
    }
}

/// Parses `NAME=PATH`; PATH is `ram:[SIZE]`, `tmpfs:`, `rbd:POOL/IMAGE`, a
/// directory, a file or a block device.
pub fn parse_tier(text: &str) -> std::result::Result<TierSpec, String> {
    let Some((name, place)) = text.split_once('=') else {
        return Err(format!(
            "--tier {text:?}: expected NAME=PATH (e.g. nvme=/dev/nvme0n1p3, ram=ram:256M, tmpfs=tmpfs:, disk=/var/tmp, ceph=rbd:rbd/vexfs)"
        ));
    };
    if name.is_empty()
        || name.len() > NAME_BYTES_MAX
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "--tier {text:?}: NAME must be 1 to {NAME_BYTES_MAX} of [A-Za-z0-9_-] (it names files)"
        ));
    }
    if place.is_empty() {
        return Err(format!("--tier {text:?}: PATH is empty"));
    }
    let place = if let Some(size) = place.strip_prefix("ram:") {
        if size.is_empty() {
            Where::Ram(None)
        } else {
            Where::Ram(Some(
                parse_size(size).map_err(|e| format!("--tier {text:?}: {e}"))?,
            ))
        }
    } else if place == "tmpfs:" {
        Where::Tmpfs
    } else if is_rbd_spec(place) {
        Where::Rbd(place.to_string())
    } else {
        Where::Path(PathBuf::from(place))
    };
    Ok(TierSpec {
        name: name.to_string(),
        place,
    })
}

/// The signature a device or file starts with, if any (what blkid would find first).
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    let vexfs = vexfs_uapi::abi::VEXFS_V2_MAGIC.to_le_bytes();
    [
        (at(0, &vexfs), "a VexFS superblock"),
        (at(1080, &0xEF53u16.to_le_bytes()), "an ext2/3/4 superblock"),
        (at(0, b"XFSB"), "an XFS superblock"),
        (at(65600, b"_BHRfS_M"), "a btrfs superblock"),
        (at(4086, b"SWAPSPACE2"), "a swap signature"),
        (at(0, b"LUKS\xba\xbe"), "a LUKS header"),
        (at(536, b"LVM2 001"), "an LVM physical volume"),
        (at(512, b"EFI PART"), "a GPT partition table"),
        (at(4096, b"EFI PART"), "a GPT partition table (4K sectors)"),
        (
            at(510, &[0x55, 0xAA]),
            "an MBR partition table or boot sector",
        ),
    ]
    .into_iter()
    .find_map(|(found, what)| found.then_some(what))
}

pub enum Backing {
    Ram(Arc<RamDevice>),
    /// io_uring on a file or device, or librbd on an image: both lend the
    /// engine benchmark its dedicated queues.
    Queued(Arc<dyn QueueDevice>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ram,
    /// A file this run created, filled and will remove.
    CreatedFile,
    ExistingFile,
    BlockDevice,
    RbdImage,
}

pub enum Opened {
    Ready(Target),
    Absent(String),
    Refused(String),
}

/// A tier ready to measure. Dropped, it closes the device, then removes the
/// file and unmounts the tmpfs this run created (fields drop in this order).
pub struct Target {
    pub backing: Backing,
    pub kind: Kind,
    /// File or device path, or the `rbd:` spec (None for RAM).
    pub path: Option<PathBuf>,
    /// Bytes the raw workloads cover, from offset 0.
    pub region_bytes: u64,
    destructive: bool,
    created: Option<CreatedFile>,
    tmpfs: Option<TmpfsMount>,
}

impl Target {
    pub fn open(spec: &TierSpec, config: &Config) -> Result<Opened> {
        match &spec.place {
            Where::Ram(size) => {
                let size = size.unwrap_or(config.size_bytes);
                let device = RamDevice::new(size, 512)
                    .with_context(|| format!("RAM device of {size} bytes"))?;
                fill_ram(&device)?;
                Ok(Opened::Ready(Target {
                    backing: Backing::Ram(Arc::new(device)),
                    kind: Kind::Ram,
                    path: None,
                    region_bytes: size,
                    destructive: config.destructive,
                    created: None,
                    tmpfs: None,
                }))
            }
            Where::Tmpfs => {
                if is_tmpfs(Path::new(SHM_DIR)) {
                    return Self::in_directory(spec, config, Path::new(SHM_DIR), None);
                }
                let mountpoint =
                    config
                        .out
                        .join(format!("tmpfs-{}.{}", spec.name, std::process::id()));
                let tmpfs =
                    match TmpfsMount::mount(&mountpoint, config.size_bytes + TMPFS_SLACK_BYTES) {
                        Ok(tmpfs) => tmpfs,
                        Err(error) => {
                            return Ok(Opened::Absent(format!(
                                "{SHM_DIR} is not tmpfs and mounting one failed: {error:#}"
                            )))
                        }
                    };
                let dir = tmpfs.path.clone();
                Self::in_directory(spec, config, &dir, Some(tmpfs))
            }
            Where::Rbd(spec) => Self::rbd(config, spec),
            Where::Path(path) => {
                let metadata = match std::fs::metadata(path) {
                    Ok(metadata) => metadata,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(Opened::Absent(format!("{} does not exist", path.display())))
                    }
                    Err(error) => {
                        return Ok(Opened::Absent(format!("{}: {error}", path.display())))
                    }
                };
                if metadata.is_dir() {
                    Self::in_directory(spec, config, path, None)
                } else if metadata.is_file() || metadata.file_type().is_block_device() {
                    Self::existing(config, path, &metadata)
                } else {
                    Ok(Opened::Refused(format!(
                        "{} is neither a directory, a regular file nor a block device",
                        path.display()
                    )))
                }
            }
        }
    }

    /// A file of --size created and filled in `dir`, removed at the end.
    fn in_directory(
        spec: &TierSpec,
        config: &Config,
        dir: &Path,
        tmpfs: Option<TmpfsMount>,
    ) -> Result<Opened> {
        let path = dir.join(format!(
            "vexfs-bench-tier-{}.{}.img",
            spec.name,
            std::process::id()
        ));
        if path.exists() {
            bail!("{} exists already", path.display());
        }
        // Made before the file, so that a failed fill still removes it.
        let created = CreatedFile(path.clone());
        let region_bytes = prepare_file(&path, Some(config.size_bytes), &mut |_| {})?;
        let device = UringDevice::open(&path, UringOptions::default())
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Opened::Ready(Target {
            backing: Backing::Queued(Arc::new(device)),
            kind: Kind::CreatedFile,
            path: Some(path),
            region_bytes,
            destructive: config.destructive,
            created: Some(created),
            tmpfs,
        }))
    }

    /// A file or block device the user named: refused when it holds data
    /// or is in use, unless --destructive; written only with --destructive.
    fn existing(config: &Config, path: &Path, metadata: &std::fs::Metadata) -> Result<Opened> {
        let block = metadata.file_type().is_block_device();
        let mut refusals = Vec::new();
        if block {
            refusals.extend(in_use(path, metadata.rdev()));
        }
        let mut head = vec![0u8; SNIFF_BYTES];
        let read = File::open(path)
            .and_then(|mut file| read_up_to(&mut file, &mut head))
            .with_context(|| format!("reading the start of {}", path.display()))?;
        if let Some(what) = sniff(&head[..read]) {
            refusals.push(format!("it holds {what}"));
        }
        if !refusals.is_empty() && !config.destructive {
            return Ok(Opened::Refused(format!(
                "{}: {}; add --destructive to measure it anyway (its contents are lost)",
                path.display(),
                refusals.join("; ")
            )));
        }
        let device = UringDevice::open(
            path,
            UringOptions {
                read_only: !config.destructive,
                ..UringOptions::default()
            },
        )
        .with_context(|| format!("opening {}", path.display()))?;
        let region_bytes = device.geometry().size_bytes.min(config.size_bytes);
        Ok(Opened::Ready(Target {
            backing: Backing::Queued(Arc::new(device)),
            kind: if block {
                Kind::BlockDevice
            } else {
                Kind::ExistingFile
            },
            path: Some(path.to_path_buf()),
            region_bytes,
            destructive: config.destructive,
            created: None,
            tmpfs: None,
        }))
    }

    /// An RBD image the user named: refused when it holds data, unless
    /// --destructive; written only with --destructive. Absent (skipped with
    /// the reason) when this build has no librbd or the cluster cannot be
    /// reached.
    fn rbd(config: &Config, spec: &str) -> Result<Opened> {
        let device = match RbdDevice::open(spec, !config.destructive) {
            Ok(device) => device,
            Err(error) => return Ok(Opened::Absent(error.to_string())),
        };
        let sniff_bytes = (SNIFF_BYTES as u64).min(device.geometry().size_bytes) as usize;
        let mut head = vec![0u8; sniff_bytes];
        device
            .read_at(0, &mut head)
            .with_context(|| format!("reading the start of {spec}"))?;
        if let Some(what) = sniff(&head).filter(|_| !config.destructive) {
            return Ok(Opened::Refused(format!(
                "{spec}: it holds {what}; add --destructive to measure it anyway (its contents are lost)"
            )));
        }
        let region_bytes = device.geometry().size_bytes.min(config.size_bytes);
        // The read workloads must read data, as on a file tier (see
        // rbd_region_with_data); without --destructive a sparse region is refused.
        if let Err(error) = crate::engine::rbd_region_with_data(
            &device,
            region_bytes,
            config.destructive,
            &mut |m| eprintln!("tiers: {m}"),
        ) {
            return Ok(Opened::Refused(format!("{error:#}")));
        }
        if config.destructive {
            crate::engine::prime_rbd_cache(&device)?;
        }
        Ok(Opened::Ready(Target {
            backing: Backing::Queued(Arc::new(device)),
            kind: Kind::RbdImage,
            path: Some(PathBuf::from(spec)),
            region_bytes,
            destructive: config.destructive,
            created: None,
            tmpfs: None,
        }))
    }

    /// Whether write workloads (and mkfs) may run.
    pub fn writable(&self) -> bool {
        matches!(self.kind, Kind::Ram | Kind::CreatedFile) || self.destructive
    }

    pub fn write_refusal(&self) -> String {
        let what = match self.kind {
            Kind::BlockDevice => "a block device",
            Kind::RbdImage => "an RBD image",
            _ => "an existing file",
        };
        format!("writes to {what} need --destructive")
    }

    pub fn describe(&self) -> String {
        let mut text = match &self.backing {
            Backing::Ram(device) => device.describe(),
            Backing::Queued(device) => device.describe(),
        };
        if self.kind == Kind::CreatedFile {
            text += &format!(
                ", a {} MiB file created for this run",
                self.region_bytes >> 20
            );
        }
        if let Some(tmpfs) = &self.tmpfs {
            text += &format!(", on a tmpfs mounted at {}", tmpfs.path.display());
        }
        text
    }

    /// Closes the device and removes what this run created, reporting failures.
    pub fn finish(self) -> Result<()> {
        let Target {
            backing,
            created,
            tmpfs,
            ..
        } = self;
        drop(backing);
        if let Some(created) = created {
            created.remove()?;
        }
        if let Some(tmpfs) = tmpfs {
            tmpfs.unmount()?;
        }
        Ok(())
    }
}

/// A file this run created for a tier: removed when dropped.
struct CreatedFile(PathBuf);

impl CreatedFile {
    fn remove(mut self) -> Result<()> {
        let path = std::mem::take(&mut self.0);
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(error).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for CreatedFile {
    fn drop(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.0) {
            if error.kind() != std::io::ErrorKind::NotFound {
                eprintln!(
                    "vexfs-bench: cleanup: removing {}: {error}",
                    self.0.display()
                );
            }
        }
    }
}

/// Fills a RAM tier with data, so that reads touch memory and not the zero page.
fn fill_ram(device: &RamDevice) -> Result<()> {
    let mut chunk = vec![0u8; RAM_FILL_CHUNK_BYTES];
    vexfs_engine::pattern::Rng::new(0x5eed).fill(&mut chunk);
    let size = device.geometry().size_bytes;
    let mut offset = 0;
    while offset < size {
        let len = (size - offset).min(chunk.len() as u64) as usize;
        device.submit(&mut [IoOp::Write {
            offset,
            buf: &chunk[..len],
            fua: false,
        }])?;
        offset += len as u64;
    }
    Ok(())
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read(&mut buf[done..])? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

fn is_tmpfs(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data; zeroed is a valid value.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated; stat is a live, writable statfs.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut stat) };
    rc == 0 && stat.f_type as i64 == TMPFS_MAGIC
}

/// Why a block device is in use, if it is: mounted (it or a partition of
/// it), or held open exclusively (mounted, swap, device mapper, md).
fn in_use(path: &Path, rdev: u64) -> Vec<String> {
    let mut reasons = Vec::new();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let mut devices = vec![format!("{major}:{minor}")];
    // Partitions of a whole disk: /sys/dev/block/M:m/<part>/dev.
    if let Ok(entries) = std::fs::read_dir(format!("/sys/dev/block/{major}:{minor}")) {
        for entry in entries.flatten() {
            if entry.path().join("partition").exists() {
                if let Ok(dev) = std::fs::read_to_string(entry.path().join("dev")) {
                    devices.push(dev.trim().to_string());
                }
            }
        }
    }
    if let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let (Some(dev), Some(mountpoint)) = (fields.get(2), fields.get(4)) {
                if devices.iter().any(|d| d == dev) {
                    reasons.push(format!("{dev} is mounted on {mountpoint}"));
                }
            }
        }
    }
    // O_EXCL on a block device fails with EBUSY while anyone holds it exclusively.
    if let Err(error) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(path)
    {
        if error.raw_os_error() == Some(libc::EBUSY) {
            reasons.push("it is in use (open exclusively: mounted, swap, LVM or RAID)".into());
        }
    }
    reasons
}

/// A tmpfs this run mounted; unmounted and its mountpoint removed at the end.
struct TmpfsMount {
    path: PathBuf,
    mounted: bool,
}

impl TmpfsMount {
    fn mount(path: &Path, size_bytes: u64) -> Result<Self> {
        std::fs::create_dir(path).with_context(|| format!("creating {}", path.display()))?;
        let mut guard = TmpfsMount {
            path: path.to_path_buf(),
            mounted: false,
        };
        let target = CString::new(path.as_os_str().as_bytes())?;
        let data = CString::new(format!("size={size_bytes}"))?;
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mounting a tmpfs on {}", path.display()));
        }
        guard.mounted = true;
        Ok(guard)
    }

    fn unmount(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        if self.mounted {
            let target = CString::new(self.path.as_os_str().as_bytes())?;
            // SAFETY: target is NUL-terminated and outlives the call.
            if unsafe { libc::umount2(target.as_ptr(), 0) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("unmounting {}", self.path.display()));
            }
            self.mounted = false;
        }
        match std::fs::remove_dir(&self.path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(error).with_context(|| format!("removing {}", self.path.display()))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        if let Err(error) = self.release() {
            eprintln!("vexfs-bench: cleanup: {error:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_syntax_errors_name_the_flag() {
        for bad in ["nvme", "=/dev/x", "a b=/x", "x=", "r=ram:lots"] {
            let error = parse_tier(bad).unwrap_err();
            assert!(error.starts_with("--tier"), "{bad}: {error}");
        }
        assert!(
            matches!(parse_tier("r=ram:64M").unwrap().place, Where::Ram(Some(n)) if n == 64 << 20)
        );
        assert!(matches!(
            parse_tier("r=ram:").unwrap().place,
            Where::Ram(None)
        ));
        assert!(matches!(
            parse_tier("t=tmpfs:").unwrap().place,
            Where::Tmpfs
        ));
        assert!(
            matches!(parse_tier("ceph=rbd:rbd/img").unwrap().place, Where::Rbd(ref s) if s == "rbd:rbd/img")
        );
        let nvme = parse_tier("nvme=/dev/nvme0n1p3").unwrap();
        assert_eq!(nvme.name, "nvme");
        assert!(matches!(nvme.place, Where::Path(ref p) if p == Path::new("/dev/nvme0n1p3")));
    }

    #[test]
    fn signatures_are_found_where_blkid_looks() {
        let blank = vec![0u8; SNIFF_BYTES];
        assert_eq!(sniff(&blank), None);
        let with = |offset: usize, magic: &[u8]| {
            let mut bytes = blank.clone();
            bytes[offset..offset + magic.len()].copy_from_slice(magic);
            sniff(&bytes)
        };
        assert!(with(1080, &[0x53, 0xEF]).unwrap().contains("ext"));
        assert!(with(0, b"XFSB").unwrap().contains("XFS"));
        assert!(with(65600, b"_BHRfS_M").unwrap().contains("btrfs"));
        assert!(with(4086, b"SWAPSPACE2").unwrap().contains("swap"));
        assert!(with(510, &[0x55, 0xAA]).unwrap().contains("MBR"));
        assert!(with(512, b"EFI PART").unwrap().contains("GPT"));
        let vexfs = vexfs_uapi::abi::VEXFS_V2_MAGIC.to_le_bytes();
        assert!(with(0, &vexfs).unwrap().contains("VexFS"));
        // A short read (a tiny file) finds nothing rather than panicking.
        assert_eq!(sniff(&[0u8; 16]), None);
    }
}
