//! The vectors of one file in memory: rows in slot order, their ids, the id
//! map, and which slots changed since the last write-back.

use std::collections::{BTreeSet, HashMap};

/// Why an insert was refused, before anything changed.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertRefusal {
    /// NO_REPLACE and this id is stored already, or repeats in the batch.
    Exists(u64),
    /// The file would pass a named limit.
    TooLarge(String),
}

/// What an insert did to the slots, for keeping an index current.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Slots that existed before and got a new vector.
    pub replaced: usize,
    /// New slots appended at the end: `first_new_slot..count`.
    pub first_new_slot: usize,
}

pub struct VectorSet {
    dimensions: usize,
    rows: Vec<f32>,
    ids: Vec<u64>,
    slot_of: HashMap<u64, usize>,
    next_id: u64,
    /// Slots below `persisted_count` whose row or id changed since the last write-back.
    changed: BTreeSet<usize>,
    /// Slots at and above this were appended since the last write-back.
    persisted_count: usize,
}

impl VectorSet {
    pub fn new(dimensions: u32) -> VectorSet {
        VectorSet {
            dimensions: dimensions as usize,
            rows: Vec::new(),
            ids: Vec::new(),
            slot_of: HashMap::new(),
            next_id: 0,
            changed: BTreeSet::new(),
            persisted_count: 0,
        }
    }

    /// A set read back from the file. Duplicate ids (an un-synced delete cut
    /// short by a power loss can leave one) keep their first slot; the later
    /// copy is dropped and the caller is told how many were.
    pub fn from_stored(
        dimensions: u32,
        rows: Vec<f32>,
        ids: Vec<u64>,
        next_id: u64,
    ) -> (VectorSet, usize) {
        let d = dimensions as usize;
        debug_assert_eq!(rows.len(), ids.len() * d);
        let mut set = VectorSet::new(dimensions);
        set.next_id = next_id;
        let mut dropped = 0;
        for (slot, id) in ids.iter().enumerate() {
            if set.slot_of.contains_key(id) {
                dropped += 1;
                continue;
            }
            set.slot_of.insert(*id, set.ids.len());
            set.ids.push(*id);
            set.rows.extend_from_slice(&rows[slot * d..(slot + 1) * d]);
            set.next_id = set.next_id.max(id.saturating_add(1));
        }
        set.persisted_count = set.ids.len();
        if dropped > 0 {
            // The whole file is rewritten at the next write-back.
            set.changed.extend(0..set.ids.len());
        }
        (set, dropped)
    }

    pub fn dimensions(&self) -> u32 {
        self.dimensions as u32
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn rows(&self) -> &[f32] {
        &self.rows
    }

    pub fn row(&self, slot: usize) -> &[f32] {
        &self.rows[slot * self.dimensions..(slot + 1) * self.dimensions]
    }

    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    pub fn slot_of(&self, id: u64) -> Option<usize> {
        self.slot_of.get(&id).copied()
    }

    /// Adds a batch (`rows.len() == ids.len() * dimensions`, or ids assigned
    /// when `ids` is None). All or nothing: a refusal changes nothing.
    pub fn insert(
        &mut self,
        rows: &[f32],
        ids: Option<&[u64]>,
        no_replace: bool,
        vectors_max: usize,
    ) -> Result<InsertOutcome, InsertRefusal> {
        let d = self.dimensions;
        let n = rows.len() / d;
        debug_assert_eq!(rows.len(), n * d);
        let assigned: Vec<u64>;
        let ids = match ids {
            Some(ids) => ids,
            None => {
                let Some(last) = self.next_id.checked_add(n as u64) else {
                    return Err(InsertRefusal::TooLarge(
                        "assigned ids would pass 2^64".into(),
                    ));
                };
                assigned = (self.next_id..last).collect();
                &assigned
            }
        };
        // Check everything before changing anything.
        let mut fresh = 0usize;
        let mut seen: HashMap<u64, ()> = HashMap::with_capacity(if no_replace { n } else { 0 });
        let mut in_batch: HashMap<u64, usize> = HashMap::new();
        for &id in ids {
            if no_replace {
                if self.slot_of.contains_key(&id) || seen.insert(id, ()).is_some() {
                    return Err(InsertRefusal::Exists(id));
                }
                fresh += 1;
            } else if !self.slot_of.contains_key(&id) && in_batch.insert(id, 0).is_none() {
                fresh += 1;
            }
        }
        if self.ids.len() + fresh > vectors_max {
            return Err(InsertRefusal::TooLarge(format!(
                "the file would hold {} vectors, over the maximum of {vectors_max}",
                self.ids.len() + fresh
            )));
        }
        let first_new_slot = self.ids.len();
        let mut replaced = 0;
        self.rows.reserve(fresh * d);
        self.ids.reserve(fresh);
        for (i, &id) in ids.iter().enumerate() {
            let row = &rows[i * d..(i + 1) * d];
            match self.slot_of.get(&id) {
                Some(&slot) => {
                    self.rows[slot * d..(slot + 1) * d].copy_from_slice(row);
                    if slot < first_new_slot {
                        replaced += 1;
                    }
                    if slot < self.persisted_count {
                        self.changed.insert(slot);
                    }
                }
                None => {
                    self.slot_of.insert(id, self.ids.len());
                    self.ids.push(id);
                    self.rows.extend_from_slice(row);
                }
            }
            self.next_id = self.next_id.max(id.saturating_add(1));
        }
        Ok(InsertOutcome {
            replaced,
            first_new_slot,
        })
    }

    /// Removes the ids that are stored; the last row moves into each hole.
    /// Returns the holes, in the order they were filled (one per id removed).
    pub fn delete(&mut self, ids: &[u64]) -> Vec<usize> {
        let d = self.dimensions;
        let mut holes = Vec::new();
        for id in ids {
            let Some(slot) = self.slot_of.remove(id) else {
                continue;
            };
            let last = self.ids.len() - 1;
            if slot != last {
                let moved = self.ids[last];
                self.ids[slot] = moved;
                self.rows.copy_within(last * d..(last + 1) * d, slot * d);
                self.slot_of.insert(moved, slot);
                if slot < self.persisted_count {
                    self.changed.insert(slot);
                }
            }
            self.ids.pop();
            self.rows.truncate(last * d);
            holes.push(slot);
        }
        if self.persisted_count > self.ids.len() {
            self.persisted_count = self.ids.len();
            self.changed.retain(|&s| s < self.ids.len());
        }
        holes
    }

    /// Drops every vector; assigned ids start again at 0, as in a new file.
    pub fn clear(&mut self) {
        self.next_id = 0;
        self.rows = Vec::new();
        self.ids = Vec::new();
        self.slot_of = HashMap::new();
        self.changed.clear();
        self.persisted_count = 0;
    }

    /// Slots to write back: changed ones below the persisted count, then
    /// everything appended (as one range).
    pub fn unpersisted(&self) -> (Vec<usize>, std::ops::Range<usize>) {
        (
            self.changed.iter().copied().collect(),
            self.persisted_count..self.ids.len(),
        )
    }

    pub fn is_dirty(&self) -> bool {
        !self.changed.is_empty() || self.persisted_count != self.ids.len()
    }

    pub fn mark_persisted(&mut self) {
        self.changed.clear();
        self.persisted_count = self.ids.len();
    }

    /// Everything must be written again (the id region moved).
    pub fn mark_all_changed(&mut self) {
        self.changed.extend(0..self.persisted_count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[f32]) -> Vec<f32> {
        values.to_vec()
    }

    #[test]
    fn upsert_replaces_and_assigns_increasing_ids() {
        let mut set = VectorSet::new(2);
        let out = set
            .insert(&rows(&[1.0, 1.0, 2.0, 2.0]), None, false, 100)
            .unwrap();
        assert_eq!(out.first_new_slot, 0);
        assert_eq!(set.ids(), &[0, 1]);
        set.insert(&rows(&[9.0, 9.0, 5.0, 5.0]), Some(&[1, 7]), false, 100)
            .unwrap();
        assert_eq!(set.ids(), &[0, 1, 7]);
        assert_eq!(set.row(1), &[9.0, 9.0]);
        // Assigned ids continue above every id seen.
        set.insert(&rows(&[3.0, 3.0]), None, false, 100).unwrap();
        assert_eq!(set.ids(), &[0, 1, 7, 8]);
    }

    #[test]
    fn no_replace_refuses_without_changing_anything() {
        let mut set = VectorSet::new(1);
        set.insert(&[1.0], Some(&[5]), false, 100).unwrap();
        assert_eq!(
            set.insert(&[2.0, 3.0], Some(&[6, 5]), true, 100),
            Err(InsertRefusal::Exists(5))
        );
        assert_eq!(
            set.insert(&[2.0, 3.0], Some(&[6, 6]), true, 100),
            Err(InsertRefusal::Exists(6))
        );
        assert_eq!(set.ids(), &[5]);
        assert_eq!(set.row(0), &[1.0]);
        assert!(matches!(
            set.insert(&[2.0, 3.0], None, false, 2),
            Err(InsertRefusal::TooLarge(_))
        ));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn delete_moves_the_last_row_and_tracks_changes() {
        let mut set = VectorSet::new(1);
        set.insert(&[0.0, 1.0, 2.0, 3.0], None, false, 100).unwrap();
        set.mark_persisted();
        assert_eq!(set.delete(&[1, 42]), vec![1]);
        assert_eq!(set.ids(), &[0, 3, 2]);
        assert_eq!(set.rows(), &[0.0, 3.0, 2.0]);
        assert_eq!(set.slot_of(3), Some(1));
        let (changed, appended) = set.unpersisted();
        assert_eq!(changed, vec![1]);
        assert!(appended.is_empty());
    }

    #[test]
    fn stored_duplicates_keep_the_first_slot() {
        let (set, dropped) = VectorSet::from_stored(1, vec![1.0, 2.0, 1.0], vec![4, 5, 4], 0);
        assert_eq!(dropped, 1);
        assert_eq!(set.ids(), &[4, 5]);
        assert_eq!(set.next_id(), 6);
    }
}
