//! Directories (FORMAT.md §9): entries live in tree items keyed by
//! (directory ino, Dirent, 48-bit name hash), so lookup, insert and delete
//! cost one tree descent at any directory size. Entries whose names collide
//! on the hash share one item (a bucket).

use crate::btree;
use crate::error::{Error, Result};
use crate::format::*;
use crate::store::Store;

/// readdir cookies 1 and 2 are "." and ".."; entries resume at
/// `(hash + 1) << 8 | index_in_bucket`.
pub const COOKIE_DOT: u64 = 1;
pub const COOKIE_DOTDOT: u64 = 2;
const BUCKET_ENTRIES_MAX: usize = 255;

pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::refused(
            libc::EINVAL,
            format!(
                "name {:?} is not a valid directory entry",
                String::from_utf8_lossy(name)
            ),
        ));
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(Error::refused(
            libc::ENAMETOOLONG,
            format!(
                "name of {} bytes exceeds NAME_BYTES_MAX {NAME_BYTES_MAX}",
                name.len()
            ),
        ));
    }
    Ok(())
}

fn bucket_key(seed: u64, dir: u64, name: &[u8]) -> Key {
    Key::new(dir, Kind::Dirent, dirent_hash(seed, name))
}

fn bucket(st: &mut Store, key: &Key) -> Result<Vec<Dirent>> {
    match btree::get(st, key)? {
        Some(raw) => decode_dirents(&raw, key.ino),
        None => Ok(Vec::new()),
    }
}

pub fn lookup(st: &mut Store, dir: u64, name: &[u8]) -> Result<Option<Dirent>> {
    let key = bucket_key(st.sb.hash_seed, dir, name);
    Ok(bucket(st, &key)?.into_iter().find(|e| e.name == name))
}

/// Adds an entry; EEXIST if the name is taken.
pub fn add(st: &mut Store, dir: u64, entry: Dirent) -> Result<()> {
    let key = bucket_key(st.sb.hash_seed, dir, &entry.name);
    let mut entries = bucket(st, &key)?;
    if entries.iter().any(|e| e.name == entry.name) {
        return Err(Error::refused(
            libc::EEXIST,
            format!("{:?} already exists", String::from_utf8_lossy(&entry.name)),
        ));
    }
    entries.push(entry);
    let raw = encode_dirents(&entries);
    if raw.len() > ITEM_BYTES_MAX || entries.len() > BUCKET_ENTRIES_MAX {
        return Err(Error::refused(
            libc::ENOSPC,
            "too many names in this directory share one hash bucket",
        ));
    }
    btree::insert(st, key, raw)
}

/// Removes an entry and returns it; ENOENT if absent.
pub fn remove(st: &mut Store, dir: u64, name: &[u8]) -> Result<Dirent> {
    let key = bucket_key(st.sb.hash_seed, dir, name);
    let mut entries = bucket(st, &key)?;
    let Some(at) = entries.iter().position(|e| e.name == name) else {
        return Err(Error::refused(
            libc::ENOENT,
            format!("{:?} does not exist", String::from_utf8_lossy(name)),
        ));
    };
    let removed = entries.remove(at);
    if entries.is_empty() {
        btree::remove(st, &key)?;
    } else {
        btree::insert(st, key, encode_dirents(&entries))?;
    }
    Ok(removed)
}

/// Points an existing name at another inode (rename over an existing target).
pub fn retarget(st: &mut Store, dir: u64, name: &[u8], ino: u64, file_type: u8) -> Result<()> {
    let key = bucket_key(st.sb.hash_seed, dir, name);
    let mut entries = bucket(st, &key)?;
    let Some(entry) = entries.iter_mut().find(|e| e.name == name) else {
        return Err(Error::refused(
            libc::ENOENT,
            format!("{:?} does not exist", String::from_utf8_lossy(name)),
        ));
    };
    entry.ino = ino;
    entry.file_type = file_type;
    btree::insert(st, key, encode_dirents(&entries))
}

pub fn is_empty(st: &mut Store, dir: u64) -> Result<bool> {
    let mut empty = true;
    btree::scan(
        st,
        Key::new(dir, Kind::Dirent, 0),
        Key::new(dir, Kind::Dirent, u64::MAX),
        &mut |_, _| {
            empty = false;
            Ok(false)
        },
    )?;
    Ok(empty)
}

/// Up to `limit` entries starting at `cookie`; each comes with the cookie
/// that resumes after it. "." and ".." are the caller's.
pub fn list(st: &mut Store, dir: u64, cookie: u64, limit: usize) -> Result<Vec<(u64, Dirent)>> {
    let (hash, index) = if cookie <= COOKIE_DOTDOT {
        (0, 0)
    } else {
        ((cookie >> 8) - 1, (cookie & 0xff) as usize)
    };
    let mut out = Vec::new();
    btree::scan(
        st,
        Key::new(dir, Kind::Dirent, hash),
        Key::new(dir, Kind::Dirent, u64::MAX),
        &mut |key, raw| {
            let entries = decode_dirents(raw, dir)?;
            let skip = if key.offset == hash { index } else { 0 };
            for (i, entry) in entries.into_iter().enumerate().skip(skip) {
                out.push((((key.offset + 1) << 8) | (i as u64 + 1), entry));
            }
            Ok(out.len() < limit)
        },
    )?;
    Ok(out)
}
