//! Extended attributes (FORMAT.md §9): tree items keyed by (ino, Xattr,
//! 64-bit name hash), names that collide sharing one bucket.

use crate::btree;
use crate::error::{Error, Result};
use crate::format::*;
use crate::fs::{now, Fs};
use crate::metrics::XATTR_METRICS;
use crate::store::Store;
use crate::vectors::{XATTR_INDEX, XATTR_PAYLOAD_INDEX, XATTR_SEARCH, XATTR_STATUS};

pub const XATTR_CREATE: i32 = 1;
pub const XATTR_REPLACE: i32 = 2;

fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > XATTR_NAME_BYTES_MAX {
        return Err(Error::refused(
            libc::ERANGE,
            format!(
                "xattr name of {} bytes (1..={XATTR_NAME_BYTES_MAX})",
                name.len()
            ),
        ));
    }
    // No ACL support: refusing system.* lets tools fall back to mode bits.
    if !(name.starts_with(b"user.")
        || name.starts_with(b"trusted.")
        || name.starts_with(b"security."))
    {
        return Err(Error::refused(
            libc::EOPNOTSUPP,
            format!(
                "xattr namespace of {:?} is not supported",
                String::from_utf8_lossy(name)
            ),
        ));
    }
    Ok(())
}

/// Attributes the filesystem computes cannot be set or removed.
fn refuse_computed(name: &[u8]) -> Result<()> {
    if name == XATTR_STATUS || name == XATTR_METRICS {
        return Err(Error::refused(
            libc::EPERM,
            format!(
                "{} is computed by the filesystem and read-only",
                String::from_utf8_lossy(name)
            ),
        ));
    }
    Ok(())
}

fn bucket(st: &mut Store, ino: u64, name: &[u8]) -> Result<(Key, XattrBucket)> {
    Fs::inode(st, ino)?;
    let key = Key::new(ino, Kind::Xattr, name_hash(st.sb.hash_seed, name));
    let entries = match btree::get(st, &key)? {
        Some(raw) => decode_xattrs(&raw, ino)?,
        None => Vec::new(),
    };
    Ok((key, entries))
}

/// The attribute a write, truncate or chown takes away (file capabilities),
/// as the kernel's `file_remove_privs` does: the daemon does it itself
/// because it asks the kernel not to (FUSE_HANDLE_KILLPRIV_V2, fuse.rs).
const CAPABILITY_XATTR: &[u8] = b"security.capability";

/// Removes `security.capability` from `ino` if it has one, under the
/// metadata lock the caller holds; true when it did.
pub(crate) fn drop_capability(st: &mut Store, ino: u64) -> Result<bool> {
    let (key, mut entries) = bucket(st, ino, CAPABILITY_XATTR)?;
    let Some(at) = entries.iter().position(|(n, _)| n == CAPABILITY_XATTR) else {
        return Ok(false);
    };
    entries.remove(at);
    if entries.is_empty() {
        btree::remove(st, &key)?;
    } else {
        btree::insert(st, key, encode_xattrs(&entries))?;
    }
    Ok(true)
}

impl Fs {
    pub fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>> {
        check_name(name)?;
        if name == XATTR_STATUS {
            return self.vector_status(ino);
        }
        if name == XATTR_METRICS && self.getattr(ino)?.is_dir() {
            let cache = self.lock().cache_figures();
            let huge_page_bytes = crate::vectors::huge_pages::collapsed_bytes_total();
            return Ok(self.metrics.render(&cache, huge_page_bytes).into_bytes());
        }
        let mut st = self.lock();
        let (_, entries) = bucket(&mut st, ino, name)?;
        entries
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| Error::refused(libc::ENODATA, "no such attribute"))
    }

    pub fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: i32) -> Result<()> {
        check_name(name)?;
        refuse_computed(name)?;
        if value.len() > XATTR_VALUE_BYTES_MAX {
            return Err(Error::refused(
                libc::E2BIG,
                format!(
                    "xattr value of {} bytes exceeds XATTR_VALUE_BYTES_MAX {XATTR_VALUE_BYTES_MAX}",
                    value.len()
                ),
            ));
        }
        if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
            return Err(Error::refused(
                libc::EINVAL,
                format!("xattr flags {flags:#x}"),
            ));
        }
        self.check_vector_xattr(ino, name, value)?;
        {
            self.check_writable()?;
            let mut st = self.lock();
            let (key, mut entries) = bucket(&mut st, ino, name)?;
            match entries.iter_mut().find(|(n, _)| n == name) {
                Some(_) if flags & XATTR_CREATE != 0 => {
                    return Err(Error::refused(libc::EEXIST, "attribute exists"))
                }
                Some((_, v)) => *v = value.to_vec(),
                None if flags & XATTR_REPLACE != 0 => {
                    return Err(Error::refused(libc::ENODATA, "no such attribute"))
                }
                None => entries.push((name.to_vec(), value.to_vec())),
            }
            let raw = encode_xattrs(&entries);
            if raw.len() > ITEM_BYTES_MAX {
                return Err(Error::refused(
                    libc::ENOSPC,
                    "attributes sharing this name hash fill their bucket",
                ));
            }
            btree::insert(&mut st, key, raw)?;
            let mut record = Fs::inode(&mut st, ino)?;
            record.ctime = now();
            Fs::put_inode(&mut st, ino, &record)?;
        }
        if [XATTR_INDEX, XATTR_SEARCH, XATTR_PAYLOAD_INDEX].contains(&name) {
            self.vectors.vector_xattr_changed();
        }
        self.commit_if_large()
    }

    pub fn listxattr(&self, ino: u64) -> Result<Vec<Vec<u8>>> {
        let mut st = self.lock();
        Fs::inode(&mut st, ino)?;
        let mut names = Vec::new();
        for (_, raw) in btree::items(&mut st, ino, Kind::Xattr)? {
            names.extend(decode_xattrs(&raw, ino)?.into_iter().map(|(n, _)| n));
        }
        Ok(names)
    }

    pub fn removexattr(&self, ino: u64, name: &[u8]) -> Result<()> {
        check_name(name)?;
        refuse_computed(name)?;
        {
            self.check_writable()?;
            let mut st = self.lock();
            let (key, mut entries) = bucket(&mut st, ino, name)?;
            let Some(at) = entries.iter().position(|(n, _)| n == name) else {
                return Err(Error::refused(libc::ENODATA, "no such attribute"));
            };
            entries.remove(at);
            if entries.is_empty() {
                btree::remove(&mut st, &key)?;
            } else {
                btree::insert(&mut st, key, encode_xattrs(&entries))?;
            }
            let mut record = Fs::inode(&mut st, ino)?;
            record.ctime = now();
            Fs::put_inode(&mut st, ino, &record)?;
        }
        if [XATTR_INDEX, XATTR_SEARCH, XATTR_PAYLOAD_INDEX].contains(&name) {
            self.vectors.vector_xattr_changed();
        }
        self.commit_if_large()
    }
}
