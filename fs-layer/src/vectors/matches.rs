//! What a filter matches in a vector file: the slots, found by checking
//! each payload (or only those a payload index gives), kept for the file's
//! recent filters with the index labels faiss's selector needs. Searches
//! ([`search`](super::search)) and scrolls ([`points`](super::points))
//! take their matches from here.

use std::sync::Arc;

use crate::error::Result;
use crate::fs::Fs;
use crate::locks::{Mutex, Rank};

use super::filter::{parse_index_spec, Candidates, Filter, IndexedField, PayloadIndex};
use super::index::VectorIndex;
use super::payloads::Payload;
use super::{einval, VectorFile, XATTR_PAYLOAD_INDEX};

/// A bitmap over `slots` slots (bit s of byte s / 8, LSB first) with the
/// `matching` ones set.
fn slot_bitmap(matching: &[usize], slots: usize) -> Vec<u8> {
    let mut bitmap = vec![0u8; slots.div_ceil(8)];
    for &slot in matching {
        bitmap[slot / 8] |= 1 << (slot % 8);
    }
    bitmap
}

/// Filters whose matches one file keeps, the most recent first: an
/// application that repeats a filter (a tenant, a category) has its
/// matches found once per state of the file, as an in-process user of
/// faiss keeps its ID selector.
const MATCHES_CACHED_MAX: usize = 8;
/// Slots the cached match lists of one file hold together (8 bytes each,
/// plus the bitmaps); a filter matching more is not kept.
const MATCHES_CACHED_SLOTS_MAX: usize = 8 << 20;

/// The vectors one filter matches in one state of a file.
pub(super) struct Matches {
    filter: Box<[u8]>,
    /// (generation, payloads version, attribute epoch) they were found at.
    stamp: (u64, u64, u64),
    /// Matching slots, ascending.
    slots: Vec<usize>,
    /// The labels of those slots in the file's index, for faiss's selector.
    labels: Mutex<Option<LabelBitmap>>,
}

/// A filter's matches as labels of one index state: (index serial, bitmap;
/// None when the index takes no selector).
type LabelBitmap = (u64, Option<Arc<Vec<u8>>>);

/// A file's recent [`Matches`].
#[derive(Default)]
pub(super) struct MatchesCache {
    recent: std::collections::VecDeque<Arc<Matches>>,
}

impl MatchesCache {
    fn find(&self, filter: &[u8], stamp: (u64, u64, u64)) -> Option<Arc<Matches>> {
        self.recent
            .iter()
            .find(|m| m.stamp == stamp && *m.filter == *filter)
            .cloned()
    }

    fn keep(&mut self, matches: Arc<Matches>) {
        if matches.slots.len() > MATCHES_CACHED_SLOTS_MAX {
            return;
        }
        self.recent.push_front(matches);
        let mut slots = 0;
        let kept = self
            .recent
            .iter()
            .take(MATCHES_CACHED_MAX)
            .take_while(|m| {
                slots += m.slots.len();
                slots <= MATCHES_CACHED_SLOTS_MAX
            })
            .count();
        self.recent.truncate(kept);
    }
}

impl Matches {
    /// Matching slots, ascending.
    pub(super) fn slots(&self) -> &[usize] {
        &self.slots
    }

    /// The index's labels of these slots, made once per index state.
    pub(super) fn label_bitmap(&self, index: &VectorIndex, slots: usize) -> Option<Arc<Vec<u8>>> {
        let mut cached = self.labels.lock();
        if let Some((serial, bitmap)) = cached.as_ref() {
            if *serial == index.serial() {
                return bitmap.clone();
            }
        }
        let bitmap = index
            .label_bitmap(&slot_bitmap(&self.slots, slots))
            .map(Arc::new);
        *cached = Some((index.serial(), bitmap.clone()));
        bitmap
    }
}

/// A file's payload index (`user.vexfs.payload_index`) as of attribute
/// epoch `epoch`, and the index built over one state of its payloads.
pub(super) struct CachedPayloadIndex {
    epoch: u64,
    /// Empty: the file indexes no payload key.
    fields: Vec<IndexedField>,
    /// (generation, payloads version) it was built for, and the index.
    built: Option<(u64, u64, PayloadIndex)>,
}

impl VectorFile {
    /// The slots whose (id, payload) `filter` matches, ascending; only
    /// `candidates` (ascending, a superset of the matches) are checked when
    /// given.
    fn matching_slots(&self, filter: &Filter, candidates: Option<Vec<usize>>) -> Vec<usize> {
        let matches = |slot: usize| {
            let id = self.set.ids()[slot];
            filter.matches(id, self.payloads.get(id).map(Payload::value))
        };
        match filter.id_candidates() {
            Some(ids) => {
                let mut slots: Vec<usize> = ids
                    .iter()
                    .filter_map(|id| self.set.slot_of(*id))
                    .filter(|&slot| matches(slot))
                    .collect();
                slots.sort_unstable();
                slots.dedup();
                slots
            }
            None => match candidates {
                Some(slots) => slots.into_iter().filter(|&slot| matches(slot)).collect(),
                None => (0..self.set.len()).filter(|&slot| matches(slot)).collect(),
            },
        }
    }
}

impl Fs {
    /// What `filter` matches in `file` now: from the file's recent
    /// matches when the same filter met the same state, else found (and kept).
    pub(super) fn matches(
        &self,
        ino: u64,
        file: &VectorFile,
        filter: &Filter,
    ) -> Result<Arc<Matches>> {
        let stamp = (
            file.generation,
            file.payloads.version(),
            self.vectors.xattr_epoch(),
        );
        if let Some(found) = file.matches.lock().find(filter.source(), stamp) {
            return Ok(found);
        }
        let matches = Arc::new(Matches {
            filter: filter.source().into(),
            stamp,
            slots: self.matching_slots(ino, file, filter)?,
            labels: Mutex::new(Rank::Table, None),
        });
        file.matches.lock().keep(matches.clone());
        Ok(matches)
    }

    /// The slots of `file` whose (id, payload) `filter` matches, ascending:
    /// checked only among the payload index's candidates when the file has
    /// one that answers part of the filter (taken as they are when it
    /// answers all of it), else over every slot.
    fn matching_slots(&self, ino: u64, file: &VectorFile, filter: &Filter) -> Result<Vec<usize>> {
        if filter.id_candidates().is_some() {
            // A has_id list is narrower than any index.
            return Ok(file.matching_slots(filter, None));
        }
        Ok(match self.payload_candidates(ino, file, filter)? {
            Some(candidates) if candidates.exact => candidates.slots,
            Some(candidates) => file.matching_slots(filter, Some(candidates.slots)),
            None => file.matching_slots(filter, None),
        })
    }

    /// The payload index's candidates for `filter`, building the index
    /// when the payloads, the vectors or the attribute changed since.
    fn payload_candidates(
        &self,
        ino: u64,
        file: &VectorFile,
        filter: &Filter,
    ) -> Result<Option<Candidates>> {
        // Read before the attribute: a change after this makes the cache
        // stale, never the other way round. The attribute is read with no
        // cache lock held (the metadata lock ranks before it).
        let epoch = self.vectors.xattr_epoch();
        let stale = file
            .payload_index
            .lock()
            .as_ref()
            .is_none_or(|cached| cached.epoch != epoch);
        if stale {
            let fields = match self.vector_xattr(ino, XATTR_PAYLOAD_INDEX)? {
                None => Vec::new(),
                Some(text) => parse_index_spec(&text)
                    .map_err(|e| einval(format!("user.vexfs.payload_index: {e}")))?,
            };
            *file.payload_index.lock() = Some(CachedPayloadIndex {
                epoch,
                fields,
                built: None,
            });
        }
        let mut cache = file.payload_index.lock();
        let Some(cache) = cache.as_mut().filter(|c| !c.fields.is_empty()) else {
            return Ok(None);
        };
        let current = (file.generation, file.payloads.version());
        if cache
            .built
            .as_ref()
            .is_none_or(|(g, v, _)| (*g, *v) != current)
        {
            let index = PayloadIndex::build(&cache.fields, file.payloads.by_slot(file.set.ids()));
            cache.built = Some((current.0, current.1, index));
        }
        Ok(cache
            .built
            .as_ref()
            .and_then(|(_, _, index)| index.candidates(filter)))
    }
}
