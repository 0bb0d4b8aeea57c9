//! `vexfs fsck --repair`: applies the [`Fix`]es a check reported, in one
//! transaction, then recounts the superblock. What a crash or a bug leaves
//! (leaked blocks, wrong counts, entries to missing inodes, inodes no
//! directory names, a vector flag without its item) is fixed here; damage
//! it cannot fix (a torn tree node, a bad checksum) stays a problem for the
//! operator, and the check that follows the repair still names it.

use std::sync::Arc;

use vexfs_engine::BlockDevice;

use super::Fix;
use crate::btree;
use crate::dir;
use crate::error::Result;
use crate::format::*;
use crate::fs::{file_type_of, now, Fs};
use crate::store::Store;

/// Name of the directory lost inodes are put in, under the root.
pub const LOST_AND_FOUND: &[u8] = b"lost+found";

/// Applies `fixes` to the filesystem on `dev` (replaying its journal
/// first) and commits. Returns one line per change made.
pub fn repair(dev: Arc<dyn BlockDevice>, fixes: &[Fix]) -> Result<Vec<String>> {
    let (mut st, _) = Store::open(dev, false)?;
    let mut done = Vec::new();
    for fix in fixes {
        match fix {
            Fix::Leaked { start, len } => {
                st.free(*start, *len)?;
                done.push(format!("freed {len} leaked blocks at {start}"));
            }
            Fix::Counts => {}
            Fix::LinkCount { ino, nlink } => {
                let mut record = Fs::inode(&mut st, *ino)?;
                done.push(format!(
                    "inode {ino}: link count {} -> {nlink}",
                    record.nlink
                ));
                record.nlink = *nlink;
                Fs::put_inode(&mut st, *ino, &record)?;
            }
            Fix::BlockCount { ino, blocks } => {
                let mut record = Fs::inode(&mut st, *ino)?;
                done.push(format!(
                    "inode {ino}: block count {} -> {blocks}",
                    record.blocks
                ));
                record.blocks = *blocks;
                Fs::put_inode(&mut st, *ino, &record)?;
            }
            Fix::DanglingEntry { dir, name } => {
                dir::remove(&mut st, *dir, name)?;
                done.push(format!(
                    "directory {dir}: removed entry {:?} to a missing inode",
                    String::from_utf8_lossy(name)
                ));
            }
            Fix::Lost { ino, nlink: 0 } => {
                btree::insert(&mut st, Key::new(0, Kind::Orphan, *ino), Vec::new())?;
                done.push(format!(
                    "inode {ino}: no links and no name: on the orphan list, freed at the next mount"
                ));
            }
            Fix::Lost { ino, .. } => {
                let name = adopt(&mut st, *ino)?;
                done.push(format!(
                    "inode {ino}: no name: now /{}/{name}",
                    String::from_utf8_lossy(LOST_AND_FOUND)
                ));
            }
            Fix::OrphanOfMissingInode { ino } => {
                btree::remove(&mut st, &Key::new(0, Kind::Orphan, *ino))?;
                done.push(format!("orphan list: removed missing inode {ino}"));
            }
            Fix::VectorFlagWithoutItem { ino } => {
                let mut record = Fs::inode(&mut st, *ino)?;
                record.flags &= !INODE_FLAG_VECTOR;
                record.ctime = now();
                Fs::put_inode(&mut st, *ino, &record)?;
                done.push(format!(
                    "inode {ino}: vector flag without its VectorMeta item cleared; its bytes read as a plain file"
                ));
            }
        }
    }
    recount(&mut st, &mut done)?;
    st.commit()?;
    st.retire_journal()?;
    Ok(done)
}

/// Gives lost inode `ino` the name `#INO` in /lost+found (made if absent).
fn adopt(st: &mut Store, ino: u64) -> Result<String> {
    let found = match dir::lookup(st, ROOT_INO, LOST_AND_FOUND)? {
        Some(entry) => entry.ino,
        None => make_lost_and_found(st)?,
    };
    let mut record = Fs::inode(st, ino)?;
    let name = format!("#{ino}");
    dir::add(
        st,
        found,
        Dirent {
            ino,
            file_type: file_type_of(record.mode),
            name: name.clone().into_bytes(),
        },
    )?;
    let t = now();
    let mut parent = Fs::inode(st, found)?;
    if record.is_dir() {
        record.parent = found;
        record.nlink = 2 + subdirectories(st, ino)?;
        parent.nlink += 1;
    } else {
        record.nlink = 1;
    }
    record.ctime = t;
    parent.mtime = t;
    parent.ctime = t;
    Fs::put_inode(st, ino, &record)?;
    Fs::put_inode(st, found, &parent)?;
    Ok(name)
}

fn subdirectories(st: &mut Store, ino: u64) -> Result<u32> {
    let mut count = 0;
    for (_, entry) in dir::list(st, ino, 0, usize::MAX)? {
        if Fs::inode(st, entry.ino)?.is_dir() {
            count += 1;
        }
    }
    Ok(count)
}

fn make_lost_and_found(st: &mut Store) -> Result<u64> {
    let ino = st.sb.next_ino;
    st.sb.next_ino += 1;
    st.mark_sb_dirty();
    let t = now();
    let record = InodeRecord::directory(0o700, 0, 0, ROOT_INO, t);
    Fs::put_inode(st, ino, &record)?;
    dir::add(
        st,
        ROOT_INO,
        Dirent {
            ino,
            file_type: file_type_of(record.mode),
            name: LOST_AND_FOUND.to_vec(),
        },
    )?;
    let mut root = Fs::inode(st, ROOT_INO)?;
    root.nlink += 1;
    root.mtime = t;
    root.ctime = t;
    Fs::put_inode(st, ROOT_INO, &root)?;
    Ok(ino)
}

/// The superblock's inode and free-block counts, from the tree and the bitmap.
fn recount(st: &mut Store, done: &mut Vec<String>) -> Result<()> {
    let mut inodes = 0u64;
    btree::scan(st, Key::MIN, Key::MAX, &mut |key, _| {
        if key.kind == Kind::Inode as u8 {
            inodes += 1;
        }
        Ok(true)
    })?;
    let mut free = 0u64;
    for block in 0..st.sb.total_blocks {
        if !st.is_used(block)? {
            free += 1;
        }
    }
    if (inodes, free) != (st.sb.inode_count, st.sb.free_blocks) {
        done.push(format!(
            "superblock: {} inodes -> {inodes}, {} free blocks -> {free}",
            st.sb.inode_count, st.sb.free_blocks
        ));
        st.sb.inode_count = inodes;
        st.sb.free_blocks = free;
        st.mark_sb_dirty();
    }
    Ok(())
}
