//! Which slot each of an index's labels stands for, once a replacement or
//! a delete made them differ.
//!
//! faiss cannot change or remove a vector in a graph index. So a replaced
//! vector gets a new label (its new row is added) and its old label becomes
//! a tombstone; a delete, which moves the file's last row into the hole
//! (see [`VectorSet::delete`](super::set::VectorSet::delete)), tombstones
//! the hole's label and points the moved row's label at the hole. Searches
//! leave tombstones out with faiss's ID selector (a bitmap of live labels),
//! so answers stay exact with respect to every change; once tombstones pass
//! [`TOMBSTONES_FRACTION_REBUILD`] of the labels the index is rebuilt in
//! the background.

/// Tombstones, as a fraction of the labels, past which a rebuild is asked for.
pub const TOMBSTONES_FRACTION_REBUILD: f64 = 0.10;
/// Tombstones past which the index is dropped rather than searched (when no
/// rebuild could replace it): searches are then exact until one is built.
pub const TOMBSTONES_FRACTION_MAX: f64 = 0.50;

/// Labels per slot a stored index may have: an index is not stored past
/// [`TOMBSTONES_FRACTION_MAX`] tombstones, so at most two labels per row.
pub const LABELS_PER_SLOT_MAX: usize = 2;

const TOMBSTONE: u32 = u32::MAX;

/// The map from labels to slots and back. Slots are below
/// [`FILE_VECTORS_MAX`](super::FILE_VECTORS_MAX) (= u32::MAX), so u32::MAX
/// is free to mark a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels {
    /// label → slot, or TOMBSTONE.
    slot_of: Vec<u32>,
    /// slot → label.
    label_of: Vec<usize>,
    /// One bit per label, set while it is live: what faiss's bitmap selector reads.
    live: Vec<u8>,
    tombstones: usize,
}

impl Labels {
    /// Label i is slot i, for `count` of them.
    pub fn identity(count: usize) -> Labels {
        debug_assert!(count < TOMBSTONE as usize);
        let mut live = vec![0xFFu8; count.div_ceil(8)];
        if count % 8 != 0 {
            *live.last_mut().expect("count > 0") = (1u8 << (count % 8)) - 1;
        }
        Labels {
            slot_of: (0..count as u32).collect(),
            label_of: (0..count).collect(),
            live,
            tombstones: 0,
        }
    }

    /// A map read back from a stored index (`slot_of[label]`, u32::MAX for a
    /// tombstone) of a file of `slots` rows: every slot must appear exactly once.
    pub fn from_slot_of(slot_of: Vec<u32>, slots: usize) -> Result<Labels, String> {
        let mut label_of = vec![usize::MAX; slots];
        let mut live = vec![0u8; slot_of.len().div_ceil(8)];
        let mut tombstones = 0;
        for (label, &slot) in slot_of.iter().enumerate() {
            if slot == TOMBSTONE {
                tombstones += 1;
                continue;
            }
            let Some(entry) = label_of.get_mut(slot as usize) else {
                return Err(format!(
                    "label {label} is slot {slot}, the file holds {slots}"
                ));
            };
            if *entry != usize::MAX {
                return Err(format!("slot {slot} has labels {} and {label}", *entry));
            }
            *entry = label;
            live[label / 8] |= 1 << (label % 8);
        }
        if let Some(slot) = label_of.iter().position(|l| *l == usize::MAX) {
            return Err(format!("slot {slot} has no label"));
        }
        Ok(Labels {
            slot_of,
            label_of,
            live,
            tombstones,
        })
    }

    /// Each label's slot (u32::MAX for a tombstone), as stored.
    pub fn slot_of_labels(&self) -> &[u32] {
        &self.slot_of
    }

    /// Labels handed out, live and tombstoned: the index's vector count.
    pub fn labels(&self) -> usize {
        self.slot_of.len()
    }

    /// Slots covered.
    pub fn slots(&self) -> usize {
        self.label_of.len()
    }

    pub fn tombstones(&self) -> usize {
        self.tombstones
    }

    /// Tombstones as a fraction of all labels.
    pub fn tombstone_fraction(&self) -> f64 {
        if self.slot_of.is_empty() {
            0.0
        } else {
            self.tombstones as f64 / self.slot_of.len() as f64
        }
    }

    /// The slot `label` stands for; None for a tombstone or a label never handed out.
    pub fn slot(&self, label: usize) -> Option<usize> {
        match self.slot_of.get(label) {
            Some(&slot) if slot != TOMBSTONE => Some(slot as usize),
            _ => None,
        }
    }

    /// The live-label bitmap (bit i of byte i / 8).
    pub fn live_bitmap(&self) -> &[u8] {
        &self.live
    }

    /// The next label, added to the index for a row appended at the next slot.
    pub fn push_slot(&mut self) {
        let slot = self.label_of.len();
        let label = self.new_label(slot);
        self.label_of.push(label);
    }

    /// `slot` got a new row, added to the index under the next label.
    pub fn replace(&mut self, slot: usize) {
        let old = self.label_of[slot];
        self.kill(old);
        self.label_of[slot] = self.new_label(slot);
    }

    /// The row at `hole` was deleted and the last slot's row moved into it.
    pub fn remove(&mut self, hole: usize) {
        let last = self.label_of.len() - 1;
        let gone = self.label_of[hole];
        self.kill(gone);
        if hole != last {
            let moved = self.label_of[last];
            self.label_of[hole] = moved;
            self.slot_of[moved] = hole as u32;
        }
        self.label_of.pop();
    }

    fn new_label(&mut self, slot: usize) -> usize {
        let label = self.slot_of.len();
        self.slot_of.push(slot as u32);
        if label % 8 == 0 {
            self.live.push(0);
        }
        self.live[label / 8] |= 1 << (label % 8);
        label
    }

    fn kill(&mut self, label: usize) {
        debug_assert_ne!(self.slot_of[label], TOMBSTONE);
        self.slot_of[label] = TOMBSTONE;
        self.live[label / 8] &= !(1 << (label % 8));
        self.tombstones += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every live label's slot points back at it, and the bitmap agrees.
    fn consistent(labels: &Labels) {
        let mut live = 0;
        for label in 0..labels.labels() {
            let bit = labels.live[label / 8] & (1 << (label % 8)) != 0;
            match labels.slot(label) {
                Some(slot) => {
                    assert!(bit);
                    assert_eq!(labels.label_of[slot], label);
                    live += 1;
                }
                None => assert!(!bit),
            }
        }
        assert_eq!(live, labels.slots());
        assert_eq!(labels.tombstones + live, labels.labels());
    }

    #[test]
    fn replacements_and_deletes_keep_the_map_and_bitmap_in_step() {
        let mut labels = Labels::identity(10);
        consistent(&labels);
        labels.replace(3);
        assert_eq!(labels.slot(3), None);
        assert_eq!(labels.slot(10), Some(3));
        labels.remove(0); // slot 9 moves into 0
        assert_eq!(labels.slot(9), Some(0));
        assert_eq!(labels.slot(0), None);
        labels.remove(8); // the last slot itself
        labels.push_slot();
        assert_eq!(labels.slot(11), Some(8));
        consistent(&labels);
        assert_eq!(labels.tombstones(), 3);
        assert_eq!(labels.slots(), 9);
        assert!((labels.tombstone_fraction() - 3.0 / 12.0).abs() < 1e-9);
    }

    #[test]
    fn a_stored_map_reads_back_and_a_bad_one_is_named() {
        let mut labels = Labels::identity(6);
        labels.replace(2);
        labels.remove(0);
        let back = Labels::from_slot_of(labels.slot_of_labels().to_vec(), 5).unwrap();
        assert_eq!(back, labels);
        let e = Labels::from_slot_of(vec![0, 0], 2).unwrap_err();
        assert!(e.contains("slot 0 has labels 0 and 1"), "{e}");
        let e = Labels::from_slot_of(vec![0, TOMBSTONE], 2).unwrap_err();
        assert!(e.contains("slot 1 has no label"), "{e}");
        let e = Labels::from_slot_of(vec![7], 1).unwrap_err();
        assert!(e.contains("label 0 is slot 7"), "{e}");
    }

    #[test]
    fn identity_bitmap_covers_exactly_the_labels() {
        for n in [0, 1, 7, 8, 9, 16, 17] {
            let labels = Labels::identity(n);
            consistent(&labels);
            assert_eq!(labels.live.len(), n.div_ceil(8));
        }
    }
}
