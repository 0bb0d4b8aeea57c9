//! The filesystem core without FUSE: format, operate, remount, fsck.

use std::sync::Arc;

use vexfs_engine::{BlockDevice, RamDevice};
use vexfs_fs::fsck::fsck;
use vexfs_fs::mkfs::{mkfs, MkfsOptions};
use vexfs_fs::{Fs, MountOptions};

const ROOT: u64 = 1;

fn fresh(size: u64) -> Arc<dyn BlockDevice> {
    let dev: Arc<dyn BlockDevice> = Arc::new(RamDevice::new(size, 4096).unwrap());
    mkfs(dev.as_ref(), &MkfsOptions::default()).unwrap();
    dev
}

fn assert_clean(dev: &Arc<dyn BlockDevice>) {
    let report = fsck(dev.clone()).unwrap();
    assert!(report.clean(), "fsck: {:#?}", report.problems);
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn files_and_directories_survive_remount() {
    let dev = fresh(64 << 20);
    assert_clean(&dev);
    {
        let fs = Fs::open(dev.clone(), &MountOptions::default()).unwrap();
        let (d, _) = fs
            .mknod(ROOT, b"dir", libc::S_IFDIR | 0o755, 0, 0, 0)
            .unwrap();
        for i in 0..300u64 {
            let name = format!("f{i}");
            let (ino, _) = fs
                .mknod(d, name.as_bytes(), libc::S_IFREG | 0o644, 0, 0, 0)
                .unwrap();
            let data = pattern(i, (i as usize * 977) % 70_000);
            fs.write(ino, 0, &data).unwrap();
        }
        let (big, _) = fs
            .mknod(ROOT, b"big", libc::S_IFREG | 0o600, 0, 0, 0)
            .unwrap();
        fs.write(big, 5000, &pattern(7, 3 << 20)).unwrap();
        fs.setxattr(big, b"user.k", b"v", 0).unwrap();
        fs.symlink(ROOT, b"link", b"dir/f1", 0, 0).unwrap();
        fs.unlink(d, b"f3").unwrap();
        fs.rename(d, b"f4", ROOT, b"moved", 0).unwrap();
        fs.unmount().unwrap();
    }
    assert_clean(&dev);
    let fs = Fs::open(dev.clone(), &MountOptions::default()).unwrap();
    let (d, _) = fs.lookup(ROOT, b"dir").unwrap();
    for i in 0..300u64 {
        let name = format!("f{i}");
        let found = fs.lookup(d, name.as_bytes());
        if i == 3 || i == 4 {
            assert!(found.is_err());
            continue;
        }
        let (ino, rec) = found.unwrap();
        let want = pattern(i, (i as usize * 977) % 70_000);
        assert_eq!(rec.size, want.len() as u64);
        assert_eq!(fs.read(ino, 0, want.len() + 10).unwrap(), want, "file {i}");
    }
    let (big, rec) = fs.lookup(ROOT, b"big").unwrap();
    assert_eq!(rec.size, 5000 + (3 << 20));
    let got = fs.read(big, 0, rec.size as usize).unwrap();
    assert!(got[..5000].iter().all(|&b| b == 0));
    assert_eq!(&got[5000..], &pattern(7, 3 << 20)[..]);
    assert_eq!(fs.getxattr(big, b"user.k").unwrap(), b"v");
    let (link, _) = fs.lookup(ROOT, b"link").unwrap();
    assert_eq!(fs.readlink(link).unwrap(), b"dir/f1");
    let listed = fs.readdir(d, 0, 10_000).unwrap();
    assert_eq!(listed.len(), 298 + 2);
    fs.unmount().unwrap();
    drop(fs);
    assert_clean(&dev);
}

#[test]
fn an_open_of_a_file_freed_since_its_lookup_is_enoent() {
    // The kernel looks a name up, an unlink frees the inode (no descriptor
    // was open), then the kernel's OPEN of the looked-up inode arrives.
    let dev = fresh(64 << 20);
    let fs = Fs::open(dev.clone(), &MountOptions::default()).unwrap();
    let (ino, _) = fs
        .mknod(ROOT, b"f", libc::S_IFREG | 0o644, 0, 0, 0)
        .unwrap();
    fs.unlink(ROOT, b"f").unwrap();
    assert_eq!(fs.opened(ino).unwrap_err().errno(), libc::ENOENT);
    // An open that came first keeps the unlinked file readable.
    let (ino, _) = fs
        .mknod(ROOT, b"g", libc::S_IFREG | 0o644, 0, 0, 0)
        .unwrap();
    fs.write(ino, 0, b"kept").unwrap();
    fs.opened(ino).unwrap();
    fs.unlink(ROOT, b"g").unwrap();
    assert_eq!(fs.read(ino, 0, 4).unwrap(), b"kept");
    fs.released(ino).unwrap();
    assert_eq!(fs.getattr(ino).unwrap_err().errno(), libc::ENOENT);
    fs.unmount().unwrap();
    assert_clean(&dev);
}
