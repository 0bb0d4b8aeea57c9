//! fsck: a read-only check of every structure in FORMAT.md. A committed
//! journal transaction is applied in memory first, as mount would apply it.
//! Vector files have their own checks, in [`vectors`]. What a repair can
//! fix is also reported as a [`Fix`]; [`repair`] applies them.

mod repair;
mod vectors;

pub use repair::repair;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use vexfs_engine::BlockDevice;

use crate::error::{Error, Result};
use crate::format::*;
use crate::store::{Replay, Store};

/// A problem `vexfs fsck --repair` knows how to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fix {
    /// Blocks marked used that nothing references: freed.
    Leaked { start: u64, len: u64 },
    /// The superblock's free-block or inode count is wrong: recounted.
    Counts,
    /// The link count disagrees with the directory entries: set to them.
    LinkCount { ino: u64, nlink: u32 },
    /// The block count disagrees with the extents: set to them.
    BlockCount { ino: u64, blocks: u64 },
    /// An entry names a missing inode: removed.
    DanglingEntry { dir: u64, name: Vec<u8> },
    /// An inode no directory names: put in /lost+found when it has links,
    /// on the orphan list (freed at mount) when it has none.
    Lost { ino: u64, nlink: u32 },
    /// The orphan list names a missing inode: the entry goes.
    OrphanOfMissingInode { ino: u64 },
    /// Flagged as a vector file with no VectorMeta item: the flag goes and
    /// the file's bytes stay readable as a plain file.
    VectorFlagWithoutItem { ino: u64 },
}

#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    /// The problems a repair can fix (a subset of `problems`).
    pub fixes: Vec<Fix>,
    pub replayed: Option<Replay>,
    pub inodes: u64,
    pub directories: u64,
    pub tree_nodes: u64,
    pub data_blocks: u64,
    pub free_blocks: u64,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Problems beyond this many are counted, not listed.
const PROBLEMS_LISTED_MAX: usize = 100;

struct Check {
    report: Report,
    referenced: Vec<u64>,
    owners: HashMap<u64, u64>,
    total_blocks: u64,
}

impl Check {
    fn problem(&mut self, text: String) {
        if self.report.problems.len() < PROBLEMS_LISTED_MAX {
            self.report.problems.push(text);
        } else if self.report.problems.len() == PROBLEMS_LISTED_MAX {
            self.report
                .problems
                .push("... more problems not listed".into());
        }
    }

    /// Marks a block in use by `owner` (0 = filesystem metadata); reports double use.
    fn claim(&mut self, block: u64, owner: u64, what: &str) {
        if block >= self.total_blocks {
            self.problem(format!(
                "{what}: block {block} is past the end of the device"
            ));
            return;
        }
        let (word, bit) = ((block / 64) as usize, block % 64);
        if self.referenced[word] & (1 << bit) != 0 {
            let other = self.owners.get(&block).copied().unwrap_or(0);
            self.problem(format!(
                "{what}: block {block} is also used by inode {other} (0 = metadata)"
            ));
            return;
        }
        self.referenced[word] |= 1 << bit;
        if owner != 0 {
            self.owners.insert(block, owner);
        }
    }

    fn fix(&mut self, fix: Fix) {
        self.report.fixes.push(fix);
    }

    fn is_referenced(&self, block: u64) -> bool {
        self.referenced[(block / 64) as usize] & (1 << (block % 64)) != 0
    }
}

pub fn fsck(dev: Arc<dyn BlockDevice>) -> Result<Report> {
    let (mut st, replayed) = match Store::open(dev, true) {
        Ok(opened) => opened,
        Err(e @ Error::Corrupt { .. }) => {
            return Ok(Report {
                problems: vec![e.to_string()],
                ..Report::default()
            });
        }
        Err(e) => return Err(e),
    };
    let sb = st.sb.clone();
    let mut c = Check {
        report: Report {
            replayed,
            ..Report::default()
        },
        referenced: vec![0u64; sb.total_blocks.div_ceil(64) as usize],
        owners: HashMap::new(),
        total_blocks: sb.total_blocks,
    };
    for block in 0..sb.data_start() {
        c.claim(block, 0, "fixed region");
    }
    c.claim(sb.backup_block(), 0, "backup superblock");

    // The tree: structure, then items.
    let mut items: Vec<(Key, Vec<u8>)> = Vec::new();
    walk(
        &mut st,
        &mut c,
        sb.tree_root,
        sb.tree_height - 1,
        Key::MIN,
        Key::MAX,
        &mut items,
    );

    let mut inodes: BTreeMap<u64, InodeRecord> = BTreeMap::new();
    let mut links: HashMap<u64, u32> = HashMap::new();
    let mut subdirs: HashMap<u64, u32> = HashMap::new();
    let mut entries_of: Vec<(u64, Dirent)> = Vec::new();
    let mut orphans: HashSet<u64> = HashSet::new();
    let mut extent_blocks: HashMap<u64, u64> = HashMap::new();
    let mut last_extent: HashMap<u64, u64> = HashMap::new();
    let mut extents: Vec<(u64, Extent)> = Vec::new();
    let mut vector_items: Vec<vectors::VectorItem<'_>> = Vec::new();

    for (key, val) in &items {
        match Kind::from_u8(key.kind) {
            Some(Kind::Inode) => match InodeRecord::decode(val, key.ino) {
                Ok(record) => {
                    if key.ino >= sb.next_ino {
                        c.problem(format!(
                            "inode {}: number not below next_ino {}",
                            key.ino, sb.next_ino
                        ));
                    }
                    inodes.insert(key.ino, record);
                }
                Err(e) => c.problem(e.to_string()),
            },
            Some(Kind::Dirent) => match decode_dirents(val, key.ino) {
                Ok(list) => {
                    for entry in list {
                        if dirent_hash(sb.hash_seed, &entry.name) != key.offset {
                            c.problem(format!(
                                "directory {}: entry {:?} is filed under the wrong hash",
                                key.ino,
                                String::from_utf8_lossy(&entry.name)
                            ));
                        }
                        entries_of.push((key.ino, entry));
                    }
                }
                Err(e) => c.problem(e.to_string()),
            },
            Some(Kind::Extent) => match Extent::decode(key, val) {
                Ok(e) => {
                    if let Some(&prev_last) = last_extent.get(&key.ino) {
                        if e.logical <= prev_last {
                            c.problem(format!(
                                "inode {}: extent at block {} overlaps the previous one",
                                key.ino, e.logical
                            ));
                        }
                    }
                    last_extent.insert(key.ino, e.last_logical());
                    if e.physical < sb.data_start() || e.physical + e.len > sb.total_blocks - 1 {
                        c.problem(format!(
                            "inode {}: extent {}+{} lies outside the data area",
                            key.ino, e.physical, e.len
                        ));
                    } else {
                        for block in e.physical..e.physical + e.len {
                            c.claim(block, key.ino, &format!("inode {} extent", key.ino));
                        }
                    }
                    *extent_blocks.entry(key.ino).or_default() += e.len;
                    extents.push((key.ino, e));
                }
                Err(e) => c.problem(e.to_string()),
            },
            Some(Kind::Xattr) => match decode_xattrs(val, key.ino) {
                Ok(list) => {
                    for (name, _) in list {
                        if name_hash(sb.hash_seed, &name) != key.offset {
                            c.problem(format!(
                                "inode {}: xattr {:?} is filed under the wrong hash",
                                key.ino,
                                String::from_utf8_lossy(&name)
                            ));
                        }
                    }
                }
                Err(e) => c.problem(e.to_string()),
            },
            Some(Kind::Orphan) => {
                orphans.insert(key.offset);
            }
            Some(Kind::VectorMeta) => vector_items.push((key.ino, key.offset, val)),
            None => c.problem(format!("item {key:?}: unknown kind {}", key.kind)),
        }
    }

    for (dir, entry) in &entries_of {
        match inodes.get(dir) {
            Some(d) if d.is_dir() => {}
            _ => c.problem(format!(
                "entry {:?} belongs to {dir}, which is not a directory",
                String::from_utf8_lossy(&entry.name)
            )),
        }
        match inodes.get(&entry.ino) {
            None => {
                c.problem(format!(
                    "directory {dir}: entry {:?} points to missing inode {}",
                    String::from_utf8_lossy(&entry.name),
                    entry.ino
                ));
                c.fix(Fix::DanglingEntry {
                    dir: *dir,
                    name: entry.name.clone(),
                });
            }
            Some(child) => {
                if crate::fs::file_type_of(child.mode) != entry.file_type {
                    c.problem(format!(
                        "directory {dir}: entry {:?} has the wrong file type",
                        String::from_utf8_lossy(&entry.name)
                    ));
                }
                *links.entry(entry.ino).or_default() += 1;
                if child.is_dir() {
                    *subdirs.entry(*dir).or_default() += 1;
                    if child.parent != *dir {
                        c.problem(format!(
                            "directory {}: parent is {} but it is listed in {dir}",
                            entry.ino, child.parent
                        ));
                    }
                }
            }
        }
    }

    for (&ino, record) in &inodes {
        c.report.inodes += 1;
        let names = links.get(&ino).copied().unwrap_or(0);
        let orphan = orphans.contains(&ino);
        if record.is_dir() {
            c.report.directories += 1;
            let expected = if record.nlink == 0 && orphan {
                0
            } else {
                2 + subdirs.get(&ino).copied().unwrap_or(0)
            };
            if record.nlink != expected {
                c.problem(format!(
                    "directory {ino}: link count {} but {expected} expected",
                    record.nlink
                ));
                if names > 0 || ino == ROOT_INO {
                    c.fix(Fix::LinkCount {
                        ino,
                        nlink: expected,
                    });
                }
            }
            if names > 1 {
                c.problem(format!("directory {ino} has {names} names"));
            }
        } else if record.nlink != names && !(record.nlink == 0 && orphan) {
            c.problem(format!(
                "inode {ino}: link count {} but {names} directory entries",
                record.nlink
            ));
            if names > 0 {
                c.fix(Fix::LinkCount { ino, nlink: names });
            }
        }
        if ino != ROOT_INO && names == 0 && !orphan {
            c.problem(format!("inode {ino} is not in any directory (lost)"));
            c.fix(Fix::Lost {
                ino,
                nlink: record.nlink,
            });
        }
        if record.nlink == 0 && !orphan && names > 0 {
            c.problem(format!(
                "inode {ino} has no links and is not on the orphan list"
            ));
        }
        let blocks = extent_blocks.get(&ino).copied().unwrap_or(0);
        if blocks != record.blocks {
            c.problem(format!(
                "inode {ino}: records {} blocks but its extents hold {blocks}",
                record.blocks
            ));
            c.fix(Fix::BlockCount { ino, blocks });
        }
        if record.is_dir() && blocks != 0 {
            c.problem(format!("directory {ino} has data extents"));
        }
    }
    for (ino, e) in &extents {
        match inodes.get(ino) {
            None => c.problem(format!(
                "extent {}+{} belongs to missing inode {ino}",
                e.physical, e.len
            )),
            Some(record) => {
                if !e.unwritten()
                    && e.logical * BLOCK_BYTES_U64
                        >= record.size.max(1).div_ceil(BLOCK_BYTES_U64) * BLOCK_BYTES_U64
                    && !orphans.contains(ino)
                {
                    c.problem(format!("inode {ino}: written extent at block {} lies past the end of the file ({} bytes)", e.logical, record.size));
                }
            }
        }
    }
    vectors::check(
        &mut c,
        st.device().as_ref(),
        &inodes,
        &vector_items,
        &extents,
    );
    for orphan in &orphans {
        if !inodes.contains_key(orphan) {
            c.problem(format!("orphan list names missing inode {orphan}"));
            c.fix(Fix::OrphanOfMissingInode { ino: *orphan });
        }
    }
    match inodes.get(&ROOT_INO) {
        Some(root) if root.is_dir() => {}
        _ => c.problem("the root directory (inode 1) is missing or not a directory".into()),
    }
    if sb.inode_count != c.report.inodes {
        c.problem(format!(
            "superblock counts {} inodes, the tree holds {}",
            sb.inode_count, c.report.inodes
        ));
        c.fix(Fix::Counts);
    }

    // The bitmap must agree with what the tree references.
    let mut free = 0u64;
    let mut leaked = 0u64;
    let mut first_leak = None;
    for block in 0..sb.total_blocks {
        let used = match st.is_used(block) {
            Ok(used) => used,
            Err(e) => {
                c.problem(e.to_string());
                break;
            }
        };
        let referenced = c.is_referenced(block);
        if used && !referenced {
            leaked += 1;
            first_leak.get_or_insert(block);
            match c.report.fixes.last_mut() {
                Some(Fix::Leaked { start, len }) if *start + *len == block => *len += 1,
                _ => c.fix(Fix::Leaked {
                    start: block,
                    len: 1,
                }),
            }
        }
        if !used && referenced {
            c.problem(format!(
                "block {block} is in use but marked free in the bitmap"
            ));
        }
        if !used {
            free += 1;
        }
    }
    if leaked > 0 {
        c.problem(format!(
            "{leaked} blocks are marked used but nothing references them (first: {})",
            first_leak.unwrap_or(0)
        ));
    }
    if free != sb.free_blocks {
        c.problem(format!(
            "superblock counts {} free blocks, the bitmap has {free}",
            sb.free_blocks
        ));
        c.fix(Fix::Counts);
    }
    c.report.free_blocks = free;
    c.report.data_blocks = extent_blocks.values().sum();
    Ok(c.report)
}

/// Checks one subtree: node integrity, levels, and that keys stay inside the
/// range the parent gave it. Collects leaf items in key order.
fn walk(
    st: &mut Store,
    c: &mut Check,
    block: u64,
    level: u32,
    lo: Key,
    hi: Key,
    items: &mut Vec<(Key, Vec<u8>)>,
) {
    c.claim(block, 0, "tree node");
    c.report.tree_nodes += 1;
    let node = match st.node(block) {
        Ok(node) => node.clone(),
        Err(e) => {
            c.problem(e.to_string());
            return;
        }
    };
    if node.level as u32 != level {
        c.problem(format!(
            "tree node {block}: level {} where {level} was expected",
            node.level
        ));
        return;
    }
    let first_checked = if node.is_leaf() { 0 } else { 1 };
    for key in &node.keys[first_checked.min(node.keys.len())..] {
        if *key < lo || *key >= hi {
            c.problem(format!(
                "tree node {block}: key {key:?} outside its parent's range"
            ));
            return;
        }
    }
    if node.is_leaf() {
        if node.keys.is_empty() && level + 1 != st.sb.tree_height {
            c.problem(format!("tree node {block}: empty leaf below the root"));
        }
        items.extend(node.keys.into_iter().zip(node.vals));
        return;
    }
    for (i, &child) in node.children.iter().enumerate() {
        let child_lo = if i == 0 { lo } else { node.keys[i] };
        let child_hi = node.keys.get(i + 1).copied().unwrap_or(hi);
        walk(st, c, child, level - 1, child_lo, child_hi, items);
    }
}
