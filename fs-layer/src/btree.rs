//! The metadata tree (FORMAT.md §6): one B+tree of (ino, kind, offset) keys
//! holding inodes, directory buckets, extents, xattrs and orphans. Nodes are
//! updated in place inside journal transactions; splits keep every node
//! within a block; a node that empties is freed, underfull nodes are not merged.

use crate::error::{Error, Result};
use crate::format::*;
use crate::store::Store;

#[derive(Clone, Debug, Default)]
pub struct Node {
    /// 0 for a leaf.
    pub level: u8,
    pub keys: Vec<Key>,
    /// Leaf values, parallel to `keys`.
    pub vals: Vec<Vec<u8>>,
    /// Internal children, parallel to `keys`; `keys[0]` is not used for routing.
    pub children: Vec<u64>,
}

impl Node {
    pub fn leaf() -> Node {
        Node::default()
    }

    pub fn is_leaf(&self) -> bool {
        self.level == 0
    }

    fn leaf_bytes(&self) -> usize {
        NODE_HEADER_BYTES
            + self
                .vals
                .iter()
                .map(|v| LEAF_SLOT_BYTES + v.len())
                .sum::<usize>()
    }

    fn overflows(&self) -> bool {
        if self.is_leaf() {
            self.leaf_bytes() > BLOCK_BYTES
        } else {
            self.children.len() > INTERNAL_FANOUT_MAX
        }
    }

    /// Index of the child whose range holds `key`.
    fn child_index(&self, key: &Key) -> usize {
        match self.keys[1..].binary_search(key) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    pub fn encode(&self, block: u64) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK_BYTES];
        b[HEADER_BYTES] = self.level;
        put_u16(&mut b, HEADER_BYTES + 2, self.keys.len() as u16);
        let mut at = NODE_HEADER_BYTES;
        if self.is_leaf() {
            let mut value_at = BLOCK_BYTES;
            for (key, val) in self.keys.iter().zip(&self.vals) {
                value_at -= val.len();
                b[value_at..value_at + val.len()].copy_from_slice(val);
                key.encode(&mut b[at..]);
                put_u16(&mut b, at + KEY_BYTES, value_at as u16);
                put_u16(&mut b, at + KEY_BYTES + 2, val.len() as u16);
                at += LEAF_SLOT_BYTES;
            }
            assert!(at <= value_at, "leaf overflow at encode");
        } else {
            for (key, child) in self.keys.iter().zip(&self.children) {
                key.encode(&mut b[at..]);
                put_u64(&mut b, at + KEY_BYTES, *child);
                at += INTERNAL_ENTRY_BYTES;
            }
        }
        seal_block(&mut b, MAGIC_NODE, block);
        b
    }

    pub fn decode(b: &[u8], block: u64) -> Result<Node> {
        let what = "tree node";
        check_block(b, MAGIC_NODE, block, what)?;
        let bad = |reason: String| Err(Error::corrupt(what, block, reason));
        let level = b[HEADER_BYTES];
        let count = le_u16(b, HEADER_BYTES + 2) as usize;
        if level as u32 >= TREE_HEIGHT_MAX {
            return bad(format!("level {level} too deep"));
        }
        let mut node = Node {
            level,
            ..Node::default()
        };
        let mut at = NODE_HEADER_BYTES;
        if level == 0 {
            if NODE_HEADER_BYTES + count * LEAF_SLOT_BYTES > BLOCK_BYTES {
                return bad(format!("{count} items do not fit a leaf"));
            }
            let slots_end = NODE_HEADER_BYTES + count * LEAF_SLOT_BYTES;
            for _ in 0..count {
                let key = Key::decode(&b[at..]);
                let value_at = le_u16(b, at + KEY_BYTES) as usize;
                let len = le_u16(b, at + KEY_BYTES + 2) as usize;
                if value_at < slots_end || value_at + len > BLOCK_BYTES {
                    return bad(format!(
                        "value of item {key:?} lies outside the leaf's value area"
                    ));
                }
                node.keys.push(key);
                node.vals.push(b[value_at..value_at + len].to_vec());
                at += LEAF_SLOT_BYTES;
            }
        } else {
            if count == 0 || count > INTERNAL_FANOUT_MAX {
                return bad(format!("internal node with {count} children"));
            }
            for _ in 0..count {
                node.keys.push(Key::decode(&b[at..]));
                node.children.push(le_u64(b, at + KEY_BYTES));
                at += INTERNAL_ENTRY_BYTES;
            }
        }
        let start = if level == 0 { 0 } else { 1 };
        if node.keys.len() > start + 1 && node.keys[start..].windows(2).any(|w| w[0] >= w[1]) {
            return bad("keys out of order".into());
        }
        Ok(node)
    }

    /// Moves the upper half into a new node; returns it.
    fn split(&mut self) -> Node {
        let at = if self.is_leaf() {
            // The split point nearest the middle at which both halves fit;
            // one exists because no item exceeds ITEM_BYTES_MAX.
            let sizes: Vec<usize> = self
                .vals
                .iter()
                .map(|v| LEAF_SLOT_BYTES + v.len())
                .collect();
            let total: usize = sizes.iter().sum();
            let mut left = 0;
            let mut best = None;
            for at in 1..sizes.len() {
                left += sizes[at - 1];
                let fits = NODE_HEADER_BYTES + left <= BLOCK_BYTES
                    && NODE_HEADER_BYTES + total - left <= BLOCK_BYTES;
                let imbalance = left.abs_diff(total - left);
                if fits && best.is_none_or(|(_, b)| imbalance < b) {
                    best = Some((at, imbalance));
                }
            }
            best.expect("a leaf holding items of at most ITEM_BYTES_MAX always has a split point")
                .0
        } else {
            self.keys.len() / 2
        };
        Node {
            level: self.level,
            keys: self.keys.split_off(at),
            vals: if self.is_leaf() {
                self.vals.split_off(at)
            } else {
                Vec::new()
            },
            children: if self.is_leaf() {
                Vec::new()
            } else {
                self.children.split_off(at)
            },
        }
    }
}

pub fn get(st: &mut Store, key: &Key) -> Result<Option<Vec<u8>>> {
    let mut block = st.sb.tree_root;
    loop {
        let node = st.node(block)?;
        if node.is_leaf() {
            return Ok(node
                .keys
                .binary_search(key)
                .ok()
                .map(|i| node.vals[i].clone()));
        }
        block = node.children[node.child_index(key)];
    }
}

/// Inserts or replaces one item.
pub fn insert(st: &mut Store, key: Key, val: Vec<u8>) -> Result<()> {
    if val.len() > ITEM_BYTES_MAX {
        return Err(Error::refused(
            libc::E2BIG,
            format!(
                "item of {} bytes exceeds ITEM_BYTES_MAX {ITEM_BYTES_MAX}",
                val.len()
            ),
        ));
    }
    let root = st.sb.tree_root;
    if let Some((separator, right)) = insert_into(st, root, key, val)? {
        let level = st.node(root)?.level + 1;
        let (new_root, _) = st.alloc(root, 1)?;
        st.put_node(
            new_root,
            Node {
                level,
                keys: vec![Key::MIN, separator],
                vals: Vec::new(),
                children: vec![root, right],
            },
        );
        st.sb.tree_root = new_root;
        st.sb.tree_height += 1;
        st.mark_sb_dirty();
    }
    Ok(())
}

fn insert_into(st: &mut Store, block: u64, key: Key, val: Vec<u8>) -> Result<Option<(Key, u64)>> {
    let node = st.node(block)?;
    if !node.is_leaf() {
        let index = node.child_index(&key);
        let child = node.children[index];
        let Some((separator, right)) = insert_into(st, child, key, val)? else {
            return Ok(None);
        };
        let node = st.node_mut(block)?;
        node.keys.insert(index + 1, separator);
        node.children.insert(index + 1, right);
    } else {
        let node = st.node_mut(block)?;
        match node.keys.binary_search(&key) {
            Ok(i) => node.vals[i] = val,
            Err(i) => {
                node.keys.insert(i, key);
                node.vals.insert(i, val);
            }
        }
    }
    let node = st.node_mut(block)?;
    if !node.overflows() {
        return Ok(None);
    }
    let right = node.split();
    let separator = right.keys[0];
    let (right_block, _) = st.alloc(block + 1, 1)?;
    st.put_node(right_block, right);
    Ok(Some((separator, right_block)))
}

/// Removes one item; returns its value if it was there.
pub fn remove(st: &mut Store, key: &Key) -> Result<Option<Vec<u8>>> {
    let root = st.sb.tree_root;
    let (old, _) = remove_from(st, root, key)?;
    // Shrink the tree while the root is an internal node with one child.
    loop {
        let root = st.sb.tree_root;
        let node = st.node(root)?;
        if node.is_leaf() || node.children.len() != 1 {
            break;
        }
        let only = node.children[0];
        st.sb.tree_root = only;
        st.sb.tree_height -= 1;
        st.mark_sb_dirty();
        st.free(root, 1)?;
    }
    let root = st.sb.tree_root;
    if st.node(root)?.children.is_empty() && !st.node(root)?.is_leaf() {
        *st.node_mut(root)? = Node::leaf();
        st.sb.tree_height = 1;
        st.mark_sb_dirty();
    }
    Ok(old)
}

/// Returns (removed value, whether the node is now empty).
fn remove_from(st: &mut Store, block: u64, key: &Key) -> Result<(Option<Vec<u8>>, bool)> {
    let node = st.node(block)?;
    if node.is_leaf() {
        let Ok(i) = node.keys.binary_search(key) else {
            return Ok((None, false));
        };
        let node = st.node_mut(block)?;
        node.keys.remove(i);
        let old = node.vals.remove(i);
        return Ok((Some(old), node.keys.is_empty()));
    }
    let index = node.child_index(key);
    let child = node.children[index];
    let (old, child_empty) = remove_from(st, child, key)?;
    if !child_empty {
        return Ok((old, false));
    }
    let node = st.node_mut(block)?;
    node.keys.remove(index);
    node.children.remove(index);
    let empty = node.children.is_empty();
    st.free(child, 1)?;
    Ok((old, empty))
}

/// Calls `f` on every item with `from <= key <= to`, in order, until it returns false.
pub fn scan(
    st: &mut Store,
    from: Key,
    to: Key,
    f: &mut dyn FnMut(Key, &[u8]) -> Result<bool>,
) -> Result<()> {
    let root = st.sb.tree_root;
    scan_node(st, root, from, to, f).map(|_| ())
}

fn scan_node(
    st: &mut Store,
    block: u64,
    from: Key,
    to: Key,
    f: &mut dyn FnMut(Key, &[u8]) -> Result<bool>,
) -> Result<bool> {
    let node = st.node(block)?;
    if node.is_leaf() {
        let first = node.keys.partition_point(|k| *k < from);
        let items: Vec<(Key, Vec<u8>)> = node.keys[first..]
            .iter()
            .zip(&node.vals[first..])
            .take_while(|(k, _)| **k <= to)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (k, v) in items {
            if !f(k, &v)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    let first = node.child_index(&from);
    let children: Vec<u64> = (first..node.children.len())
        .take_while(|&i| i == first || node.keys[i] <= to)
        .map(|i| node.children[i])
        .collect();
    for child in children {
        if !scan_node(st, child, from, to, f)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Collects the items of one inode and kind.
pub fn items(st: &mut Store, ino: u64, kind: Kind) -> Result<Vec<(Key, Vec<u8>)>> {
    let mut out = Vec::new();
    scan(
        st,
        Key::new(ino, kind, 0),
        Key::new(ino, kind, u64::MAX),
        &mut |k, v| {
            out.push((k, v.to_vec()));
            Ok(true)
        },
    )?;
    Ok(out)
}

/// Reads every node and hands every item to `check`: what mount runs so
/// that a damaged node or item is refused up front, not met mid-operation.
/// Errors name the node's block and the key range it should hold.
pub fn verify(st: &mut Store, check: &mut dyn FnMut(&Key, &[u8]) -> Result<()>) -> Result<u64> {
    let root = st.sb.tree_root;
    let height = st.sb.tree_height;
    verify_node(st, root, height - 1, Key::MIN, Key::MAX, check)
}

fn verify_node(
    st: &mut Store,
    block: u64,
    level: u32,
    lo: Key,
    hi: Key,
    check: &mut dyn FnMut(&Key, &[u8]) -> Result<()>,
) -> Result<u64> {
    let holds = |reason: String| -> Error {
        Error::corrupt(
            "tree node",
            block,
            format!(
                "{reason} (the node holds keys from inode {} to inode {})",
                lo.ino, hi.ino
            ),
        )
    };
    let node = st.node(block).map_err(|e| match e {
        Error::Corrupt { reason, .. } => holds(reason),
        other => other,
    })?;
    if node.level as u32 != level {
        return Err(holds(format!(
            "level {} where {level} was expected",
            node.level
        )));
    }
    let first = if node.is_leaf() { 0 } else { 1 };
    if node.keys.iter().skip(first).any(|k| *k < lo || *k >= hi) {
        return Err(holds(
            "a key lies outside the range its parent gives it".into(),
        ));
    }
    if node.is_leaf() {
        let items: Vec<(Key, Vec<u8>)> = node
            .keys
            .iter()
            .copied()
            .zip(node.vals.iter().cloned())
            .collect();
        for (key, val) in &items {
            check(key, val)?;
        }
        return Ok(1);
    }
    let (keys, children) = (node.keys.clone(), node.children.clone());
    let mut nodes = 1;
    for (i, child) in children.into_iter().enumerate() {
        let child_lo = if i == 0 { lo } else { keys[i] };
        let child_hi = keys.get(i + 1).copied().unwrap_or(hi);
        nodes += verify_node(st, child, level - 1, child_lo, child_hi, check)?;
    }
    Ok(nodes)
}

/// The leaf block where `key` lives (or would live).
pub fn leaf_of(st: &mut Store, key: &Key) -> Result<u64> {
    let mut block = st.sb.tree_root;
    loop {
        let node = st.node(block)?;
        if node.is_leaf() {
            return Ok(block);
        }
        block = node.children[node.child_index(key)];
    }
}
