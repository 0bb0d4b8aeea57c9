//! Names: hard links, unlink and rmdir (with the orphan rule for files
//! still open), and rename with RENAME_NOREPLACE and RENAME_EXCHANGE.

use crate::btree;
use crate::dir;
use crate::error::{enoent, Error, Result};
use crate::format::*;
use crate::fs::{file_type_of, now, Fs};
use crate::store::Store;

pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

impl Fs {
    pub fn link(&self, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<InodeRecord> {
        self.check_writable()?;
        dir::check_name(new_name)?;
        let mut st = self.lock();
        let mut record = Self::inode(&mut st, ino)?;
        if record.is_dir() {
            return Err(Error::refused(
                libc::EPERM,
                "hard links to directories are not allowed",
            ));
        }
        if record.nlink == 0 {
            return Err(enoent("the file has been removed"));
        }
        if record.nlink == u32::MAX {
            return Err(Error::refused(libc::EMLINK, "link count at its maximum"));
        }
        let mut parent = Self::dir_inode(&mut st, new_parent)?;
        dir::add(
            &mut st,
            new_parent,
            Dirent {
                ino,
                file_type: file_type_of(record.mode),
                name: new_name.to_vec(),
            },
        )?;
        let t = now();
        record.nlink += 1;
        record.ctime = t;
        Self::put_inode(&mut st, ino, &record)?;
        parent.mtime = t;
        parent.ctime = t;
        Self::put_inode(&mut st, new_parent, &parent)?;
        drop(st);
        self.commit_if_large()?;
        Ok(record)
    }

    pub fn unlink(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.remove_entry(parent, name, false)
    }

    pub fn rmdir(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.remove_entry(parent, name, true)
    }

    fn remove_entry(&self, parent: u64, name: &[u8], want_dir: bool) -> Result<()> {
        self.check_writable()?;
        let nameless = {
            let _gate = self.gate.read();
            let mut st = self.lock();
            let mut parent_record = Self::dir_inode(&mut st, parent)?;
            let Some(entry) = dir::lookup(&mut st, parent, name)? else {
                return Err(enoent(format!(
                    "{:?} not found",
                    String::from_utf8_lossy(name)
                )));
            };
            let record = Self::inode(&mut st, entry.ino)?;
            if want_dir && !record.is_dir() {
                return Err(Error::refused(libc::ENOTDIR, "not a directory"));
            }
            if !want_dir && record.is_dir() {
                return Err(Error::refused(libc::EISDIR, "is a directory"));
            }
            if record.is_dir() && !dir::is_empty(&mut st, entry.ino)? {
                return Err(Error::refused(libc::ENOTEMPTY, "directory not empty"));
            }
            dir::remove(&mut st, parent, name)?;
            let t = now();
            if record.is_dir() {
                parent_record.nlink -= 1;
            }
            parent_record.mtime = t;
            parent_record.ctime = t;
            Self::put_inode(&mut st, parent, &parent_record)?;
            self.drop_link(&mut st, entry.ino, record, t)?
        };
        if let Some(ino) = nameless {
            self.free_if_unused(ino)?;
        }
        self.commit_if_large()
    }

    /// One name less for `ino`. When none remain it becomes an orphan, and
    /// its number is returned: the caller frees it once it has let go of
    /// the metadata lock (see [`Fs::free_if_unused`]).
    fn drop_link(
        &self,
        st: &mut Store,
        ino: u64,
        mut record: InodeRecord,
        t: Timespec,
    ) -> Result<Option<u64>> {
        record.nlink = if record.is_dir() {
            0
        } else {
            record.nlink.saturating_sub(1)
        };
        record.ctime = t;
        Self::put_inode(st, ino, &record)?;
        if record.nlink > 0 {
            return Ok(None);
        }
        btree::insert(st, Key::new(0, Kind::Orphan, ino), Vec::new())?;
        Ok(Some(ino))
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.check_writable()?;
        dir::check_name(new_name)?;
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
            || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
        {
            return Err(Error::refused(
                libc::EINVAL,
                format!("rename flags {flags:#x} not supported"),
            ));
        }
        let nameless = {
            let _gate = self.gate.read();
            let mut st = self.lock();
            self.rename_locked(&mut st, parent, name, new_parent, new_name, flags)?
        };
        if let Some(ino) = nameless {
            self.free_if_unused(ino)?;
        }
        self.commit_if_large()
    }

    fn rename_locked(
        &self,
        st: &mut Store,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> Result<Option<u64>> {
        Self::dir_inode(st, parent)?;
        Self::dir_inode(st, new_parent)?;
        let Some(src) = dir::lookup(st, parent, name)? else {
            return Err(enoent(format!(
                "{:?} not found",
                String::from_utf8_lossy(name)
            )));
        };
        let dst = dir::lookup(st, new_parent, new_name)?;
        let mut src_record = Self::inode(st, src.ino)?;
        let t = now();
        if flags & RENAME_EXCHANGE != 0 {
            let Some(dst) = dst else {
                return Err(enoent(format!(
                    "{:?} not found",
                    String::from_utf8_lossy(new_name)
                )));
            };
            let mut dst_record = Self::inode(st, dst.ino)?;
            if src_record.is_dir() {
                self.check_not_ancestor(st, src.ino, new_parent)?;
            }
            if dst_record.is_dir() {
                self.check_not_ancestor(st, dst.ino, parent)?;
            }
            dir::retarget(st, parent, name, dst.ino, dst.file_type)?;
            dir::retarget(st, new_parent, new_name, src.ino, src.file_type)?;
            if parent != new_parent {
                let (src_dir, dst_dir) = (src_record.is_dir(), dst_record.is_dir());
                if src_dir {
                    src_record.parent = new_parent;
                }
                if dst_dir {
                    dst_record.parent = parent;
                }
                if src_dir != dst_dir {
                    let (from, to) = if src_dir {
                        (parent, new_parent)
                    } else {
                        (new_parent, parent)
                    };
                    self.adjust_nlink(st, from, -1, t)?;
                    self.adjust_nlink(st, to, 1, t)?;
                }
            }
            src_record.ctime = t;
            dst_record.ctime = t;
            Self::put_inode(st, src.ino, &src_record)?;
            Self::put_inode(st, dst.ino, &dst_record)?;
            self.adjust_nlink(st, parent, 0, t)?;
            return self.adjust_nlink(st, new_parent, 0, t).map(|()| None);
        }
        if let Some(dst) = &dst {
            if flags & RENAME_NOREPLACE != 0 {
                return Err(Error::refused(
                    libc::EEXIST,
                    format!("{:?} exists", String::from_utf8_lossy(new_name)),
                ));
            }
            if dst.ino == src.ino {
                return Ok(None); // two names of one file: POSIX says do nothing
            }
        }
        if src_record.is_dir() {
            self.check_not_ancestor(st, src.ino, new_parent)?;
        }
        let nameless = if let Some(dst) = dst {
            let dst_record = Self::inode(st, dst.ino)?;
            match (src_record.is_dir(), dst_record.is_dir()) {
                (true, false) => {
                    return Err(Error::refused(
                        libc::ENOTDIR,
                        "cannot replace a non-directory with a directory",
                    ))
                }
                (false, true) => {
                    return Err(Error::refused(
                        libc::EISDIR,
                        "cannot replace a directory with a non-directory",
                    ))
                }
                (true, true) if !dir::is_empty(st, dst.ino)? => {
                    return Err(Error::refused(
                        libc::ENOTEMPTY,
                        "target directory not empty",
                    ))
                }
                _ => {}
            }
            dir::retarget(st, new_parent, new_name, src.ino, src.file_type)?;
            if dst_record.is_dir() {
                self.adjust_nlink(st, new_parent, -1, t)?;
            }
            self.drop_link(st, dst.ino, dst_record, t)?
        } else {
            dir::add(
                st,
                new_parent,
                Dirent {
                    ino: src.ino,
                    file_type: src.file_type,
                    name: new_name.to_vec(),
                },
            )?;
            None
        };
        dir::remove(st, parent, name)?;
        if src_record.is_dir() && parent != new_parent {
            src_record.parent = new_parent;
            self.adjust_nlink(st, parent, -1, t)?;
            self.adjust_nlink(st, new_parent, 1, t)?;
        }
        src_record.ctime = t;
        Self::put_inode(st, src.ino, &src_record)?;
        self.adjust_nlink(st, parent, 0, t)?;
        self.adjust_nlink(st, new_parent, 0, t)?;
        Ok(nameless)
    }

    /// Adds `delta` to a directory's link count and stamps its mtime/ctime.
    fn adjust_nlink(&self, st: &mut Store, ino: u64, delta: i32, t: Timespec) -> Result<()> {
        let mut record = Self::inode(st, ino)?;
        record.nlink = record.nlink.saturating_add_signed(delta);
        record.mtime = t;
        record.ctime = t;
        Self::put_inode(st, ino, &record)
    }

    /// EINVAL when `dir` is `moving` or below it: a directory cannot move into itself.
    fn check_not_ancestor(&self, st: &mut Store, moving: u64, dir: u64) -> Result<()> {
        let mut at = dir;
        for _ in 0..=u16::MAX {
            if at == moving {
                return Err(Error::refused(
                    libc::EINVAL,
                    "cannot move a directory into itself",
                ));
            }
            if at == ROOT_INO {
                return Ok(());
            }
            at = Self::inode(st, at)?.parent;
        }
        Err(Error::corrupt(
            "inode",
            dir,
            "parent chain does not reach the root".into(),
        ))
    }
}
