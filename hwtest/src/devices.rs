//! Listing the whole block devices the kernel knows (`/sys/block`) with what
//! a person needs before pointing a destructive test at one: size, transport,
//! block sizes, partitions, and whether anything on it is mounted or held.
//! Reads sysfs and `/proc/self/mounts` only; it never opens a device.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where the kernel lists whole block devices, one entry (a symlink) each.
pub const SYS_BLOCK: &str = "/sys/block";
/// The mount table of this process's mount namespace.
const PROC_MOUNTS: &str = "/proc/self/mounts";
/// Devices that are not hardware worth testing: loop devices, RAM disks,
/// compressed swap in RAM.
const SKIPPED_NAME_PREFIXES: [&str; 3] = ["loop", "ram", "zram"];
/// sysfs `size` counts 512-byte sectors whatever the device's block size.
const SYSFS_SECTOR_BYTES: u64 = 512;

/// How a disk is attached, as far as sysfs shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Nvme,
    Usb,
    Virtio,
    Sata,
    Scsi,
    /// Served by a userspace target through `ublk_drv` (ours: /dev/ublkbN).
    Ublk,
    /// Another kernel-made device with no bus (nbd, md, ...).
    Virtual,
    Unknown,
}

impl Transport {
    /// Classifies from the device name and where `/sys/block/NAME` resolves,
    /// e.g. `/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/.../block/sdb`.
    /// Order matters: a USB bridge sits below a PCI controller and in front
    /// of a SCSI host, so the more specific bus wins.
    pub fn classify(name: &str, sysfs_path: &str) -> Self {
        if name.starts_with("nvme") {
            Transport::Nvme
        } else if name.starts_with("ublkb") {
            Transport::Ublk
        } else if sysfs_path.contains("/usb") {
            Transport::Usb
        } else if sysfs_path.contains("virtio") {
            Transport::Virtio
        } else if sysfs_path.contains("/ata") {
            Transport::Sata
        } else if sysfs_path.contains("/host") || sysfs_path.contains("/target") {
            Transport::Scsi
        } else if sysfs_path.contains("/devices/virtual/") {
            Transport::Virtual
        } else {
            Transport::Unknown
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Nvme => "nvme",
            Transport::Usb => "usb",
            Transport::Virtio => "virtio",
            Transport::Sata => "sata",
            Transport::Scsi => "scsi",
            Transport::Ublk => "ublk",
            Transport::Virtual => "virtual",
            Transport::Unknown => "unknown",
        }
    }
}

/// One whole block device.
#[derive(Debug)]
pub struct Disk {
    pub name: String,
    pub dev_path: PathBuf,
    /// `device/model`, trimmed; empty where the bus reports none (virtio).
    pub model: String,
    pub size_bytes: u64,
    pub rotational: Option<bool>,
    pub transport: Transport,
    pub logical_block_bytes: Option<u32>,
    pub physical_block_bytes: Option<u32>,
    /// Partition names (`nvme0n1p1`, `sda2`).
    pub partitions: Vec<String>,
    /// What uses the disk or one of its partitions: mount points, and
    /// devices stacked on top (dm, md) with their own mount points.
    pub users: Vec<String>,
}

impl Disk {
    pub fn in_use(&self) -> bool {
        !self.users.is_empty()
    }
}

/// A line of the mount table: the mounted device's kernel name (`nvme0n1p2`,
/// `dm-0`) and where it is mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub device_name: String,
    pub mount_point: String,
}

/// The mounts of `/dev/...` sources in a `/proc/self/mounts` text. A source
/// given through a symlink (`/dev/mapper/root`, `/dev/disk/by-uuid/...`) is
/// resolved to the kernel name when the link exists.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let source = fields.next()?;
            let mount_point = fields.next()?;
            if !source.starts_with("/dev/") {
                return None;
            }
            let source = unescape_mount_field(source);
            let resolved = fs::canonicalize(&source).unwrap_or_else(|_| PathBuf::from(&source));
            let device_name = resolved.file_name()?.to_string_lossy().into_owned();
            Some(Mount {
                device_name,
                mount_point: unescape_mount_field(mount_point),
            })
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash in mount fields as
/// three-digit octal escapes (`\040`).
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes.get(i + 1..i + 4).filter(|_| bytes[i] == b'\\');
        match escape
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok())
        {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn read_number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    read_trimmed(path)?.parse().ok()
}

/// Names of the entries of `dir` (empty if it cannot be read).
fn entry_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whole block devices under `sys_block` (normally [`SYS_BLOCK`]), sorted by
/// name, with their use taken from `mounts`.
pub fn list(sys_block: &Path, mounts: &[Mount]) -> Result<Vec<Disk>> {
    let names = fs::read_dir(sys_block)
        .with_context(|| format!("reading {}", sys_block.display()))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !SKIPPED_NAME_PREFIXES.iter().any(|p| name.starts_with(p)));
    let mut disks: Vec<Disk> = names
        .map(|name| read_disk(sys_block, name, mounts))
        .collect();
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(disks)
}

fn read_disk(sys_block: &Path, name: String, mounts: &[Mount]) -> Disk {
    let dir = sys_block.join(&name);
    let resolved = fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    let partitions: Vec<String> = entry_names(&dir)
        .into_iter()
        .filter(|entry| dir.join(entry).join("partition").exists())
        .collect();

    // The disk itself and each partition can be mounted, or held by a
    // device stacked on it (LVM, dm-crypt, md), which can be mounted in turn.
    let mut users = Vec::new();
    let own_dirs = std::iter::once((name.clone(), dir.clone()))
        .chain(partitions.iter().map(|p| (p.clone(), dir.join(p))));
    for (device_name, device_dir) in own_dirs {
        for mount in mounts.iter().filter(|m| m.device_name == device_name) {
            users.push(mount.mount_point.clone());
        }
        for holder in entry_names(&device_dir.join("holders")) {
            let holder_mounts: Vec<&Mount> =
                mounts.iter().filter(|m| m.device_name == holder).collect();
            if holder_mounts.is_empty() {
                users.push(format!("held by {holder}"));
            }
            for mount in holder_mounts {
                users.push(format!("{} (via {holder})", mount.mount_point));
            }
        }
    }

    let queue = dir.join("queue");
    Disk {
        dev_path: Path::new("/dev").join(&name),
        model: read_trimmed(&dir.join("device/model")).unwrap_or_default(),
        size_bytes: read_number::<u64>(&dir.join("size")).unwrap_or(0) * SYSFS_SECTOR_BYTES,
        rotational: read_number::<u8>(&queue.join("rotational")).map(|r| r != 0),
        transport: Transport::classify(&name, &resolved.to_string_lossy()),
        logical_block_bytes: read_number(&queue.join("logical_block_size")),
        physical_block_bytes: read_number(&queue.join("physical_block_size")),
        partitions,
        users,
        name,
    }
}

/// `1.5 GiB`-style size with binary units.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The disks as an aligned text table, header first.
pub fn table(disks: &[Disk]) -> String {
    let header = [
        "NAME",
        "PATH",
        "TRANSPORT",
        "SIZE",
        "BYTES",
        "ROT",
        "LOG/PHYS",
        "PARTS",
        "IN USE",
        "MODEL",
    ];
    let optional = |value: Option<u32>| value.map_or("?".to_string(), |v| v.to_string());
    let rows: Vec<[String; 10]> = disks
        .iter()
        .map(|disk| {
            [
                disk.name.clone(),
                disk.dev_path.display().to_string(),
                disk.transport.name().to_string(),
                human_bytes(disk.size_bytes),
                disk.size_bytes.to_string(),
                match disk.rotational {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                }
                .to_string(),
                format!(
                    "{}/{}",
                    optional(disk.logical_block_bytes),
                    optional(disk.physical_block_bytes)
                ),
                disk.partitions.len().to_string(),
                if disk.in_use() {
                    disk.users.join(", ")
                } else {
                    "no".to_string()
                },
                if disk.model.is_empty() {
                    "-".to_string()
                } else {
                    disk.model.clone()
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `vexfs-hwtest devices`.
pub fn run() -> Result<()> {
    let mounts_text = fs::read_to_string(PROC_MOUNTS).unwrap_or_default();
    let disks = list(Path::new(SYS_BLOCK), &parse_mounts(&mounts_text))?;
    if disks.is_empty() {
        println!("no block devices found in {SYS_BLOCK}");
    } else {
        print!("{}", table(&disks));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_classified_from_name_and_sysfs_path() {
        let cases = [
            ("nvme0n1", "/sys/devices/pci0000:00/0000:00:01.1/0000:01:00.0/nvme/nvme0/nvme0n1", Transport::Nvme),
            ("sdb", "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host4/target4:0:0/4:0:0:0/block/sdb", Transport::Usb),
            ("vda", "/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", Transport::Virtio),
            ("sda", "/sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda", Transport::Sata),
            ("sdc", "/sys/devices/pci0000:00/0000:00:03.0/host2/target2:0:0/2:0:0:0/block/sdc", Transport::Scsi),
            ("ublkb0", "/sys/devices/virtual/block/ublkb0", Transport::Ublk),
            ("nbd0", "/sys/devices/virtual/block/nbd0", Transport::Virtual),
            ("mmcblk0", "/sys/devices/platform/soc/mmc0/mmc0:0001/block/mmcblk0", Transport::Unknown),
        ];
        for (name, path, expected) in cases {
            assert_eq!(Transport::classify(name, path), expected, "{name}");
        }
    }

    #[test]
    fn mount_table_lines_give_device_names_and_unescaped_mount_points() {
        let text = "proc /proc proc rw 0 0\n\
                    /dev/vexfs-test-nvme9n1p2 / ext4 rw 0 0\n\
                    /dev/vexfs-test-sdz1 /media/my\\040stick vfat rw 0 0\n\
                    tmpfs /tmp tmpfs rw 0 0\n";
        let mounts = parse_mounts(text);
        assert_eq!(
            mounts,
            vec![
                Mount {
                    device_name: "vexfs-test-nvme9n1p2".into(),
                    mount_point: "/".into()
                },
                Mount {
                    device_name: "vexfs-test-sdz1".into(),
                    mount_point: "/media/my stick".into()
                },
            ]
        );
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(500_107_862_016), "465.8 GiB");
    }

    /// A fake /sys/block with one partitioned, mounted disk and a loop
    /// device that must be left out.
    #[test]
    fn a_sysfs_tree_lists_disks_partitions_and_mounts() {
        let root = std::env::temp_dir().join(format!("vexfs-hwtest-sysfs-{}", std::process::id()));
        let disk = root.join("sdq");
        let write = |path: &Path, text: &str| {
            fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        };
        write(&disk.join("size"), "2048\n");
        write(&disk.join("device/model"), "Test Disk        \n");
        write(&disk.join("queue/rotational"), "1\n");
        write(&disk.join("queue/logical_block_size"), "512\n");
        write(&disk.join("queue/physical_block_size"), "4096\n");
        write(&disk.join("sdq1/partition"), "1\n");
        write(&disk.join("sdq2/partition"), "2\n");
        fs::create_dir_all(disk.join("sdq2/holders/dm-7")).expect("mkdir");
        write(&root.join("loop3/size"), "8\n");
        let mounts = [
            Mount {
                device_name: "sdq1".into(),
                mount_point: "/boot".into(),
            },
            Mount {
                device_name: "dm-7".into(),
                mount_point: "/home".into(),
            },
        ];

        let listed = list(&root, &mounts);
        fs::remove_dir_all(&root).expect("clean up the fake sysfs");
        let disks = listed.expect("list");
        assert_eq!(disks.len(), 1, "loop devices are skipped");
        let sdq = &disks[0];
        assert_eq!(sdq.dev_path, Path::new("/dev/sdq"));
        assert_eq!(sdq.model, "Test Disk");
        assert_eq!(sdq.size_bytes, 2048 * 512);
        assert_eq!(sdq.rotational, Some(true));
        assert_eq!(sdq.logical_block_bytes, Some(512));
        assert_eq!(sdq.physical_block_bytes, Some(4096));
        assert_eq!(sdq.partitions, ["sdq1", "sdq2"]);
        assert_eq!(sdq.users, ["/boot", "/home (via dm-7)"]);
        assert!(table(&disks).contains("/boot, /home (via dm-7)"));
    }
}
