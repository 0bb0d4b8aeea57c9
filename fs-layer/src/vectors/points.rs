//! Requests that treat a vector, its id and its payload as one point (the
//! word Qdrant uses): setting payloads (alone or with their vectors, all or
//! nothing), reading them, and listing or counting the ids a filter
//! matches. The filtered search itself is [`Fs::search_points`].

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::fs::Fs;

use super::filter::{self, Filter};
use super::layout::FILE_PAYLOAD_BYTES_MAX;
use super::payloads::Payload;
use super::writeback::{payload_blocks, Plan};
use super::{read_lock, write_lock};

/// One id's part of a SET_PAYLOADS request: the JSON object to store, or
/// None to remove the id's payload.
pub type PayloadChange = (u64, Option<Value>);

/// A page of [`Fs::scroll_points`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScrollPage {
    /// Matching ids from the start id on, ascending, at most the limit.
    pub ids: Vec<u64>,
    /// Where the next page starts, when ids beyond this page match.
    pub next_id: Option<u64>,
    /// Matching ids from the start id on, in all.
    pub matching: u64,
}

fn not_stored(id: u64) -> Error {
    Error::refused(libc::ENOENT, format!("ids: id {id} is not stored"))
}

impl Fs {
    /// SET_PAYLOADS: stores (or removes) the payload of each id; with
    /// `vectors` (dimensions, rows) the rows are upserted in the same step.
    /// Every payload is checked and the space for the write-back reserved
    /// before anything changes; without vectors every id must be stored.
    /// With `merge`, a payload's top-level keys replace those already
    /// stored for its id (Qdrant's set_payload) instead of the whole object.
    pub fn set_payloads(
        &self,
        ino: u64,
        changes: Vec<PayloadChange>,
        vectors: Option<(u32, &[f32])>,
        merge: bool,
    ) -> Result<()> {
        self.check_writable()?;
        let shared = self.vector_file(ino)?;
        let mut file = write_lock(&shared);
        if vectors.is_none() {
            if let Some((id, _)) = changes
                .iter()
                .find(|(id, _)| file.set.slot_of(*id).is_none())
            {
                return Err(not_stored(*id));
            }
        }
        // The payloads as they will be stored, built before any change.
        let mut finals: Vec<(u64, Option<Payload>)> = Vec::with_capacity(changes.len());
        let mut merged: HashMap<u64, usize> = HashMap::new();
        for (i, (id, value)) in changes.into_iter().enumerate() {
            let value = match (value, merge) {
                (Some(value), true) => {
                    // An earlier change to the same id in this batch is merged into too.
                    let base = match merged.get(&id) {
                        Some(&at) => finals[at].1.as_ref().map(|p| p.value().clone()),
                        None => file.payloads.get(id).map(|p| p.value().clone()),
                    };
                    let mut base = base.unwrap_or_else(|| Value::Object(Default::default()));
                    filter::merge_payload(&mut base, value);
                    Some(base)
                }
                (value, _) => value,
            };
            let payload = value.map(Payload::from_value).transpose().map_err(|e| {
                Error::refused(libc::E2BIG, format!("payloads[{i}] (id {id}): {e}"))
            })?;
            merged.insert(id, finals.len());
            finals.push((id, payload));
        }
        let view: Vec<(u64, Option<&Payload>)> =
            finals.iter().map(|(id, p)| (*id, p.as_ref())).collect();
        let region_bytes = file.payloads.region_bytes_after(&view);
        if region_bytes > FILE_PAYLOAD_BYTES_MAX {
            return Err(Error::refused(
                libc::EFBIG,
                format!(
                    "payloads: the file's payloads would take {region_bytes} bytes, over the {FILE_PAYLOAD_BYTES_MAX} a file may store"
                ),
            ));
        }
        let more_blocks = payload_blocks(region_bytes);
        match vectors {
            Some((dimensions, rows)) => {
                let ids: Vec<u64> = finals.iter().map(|(id, _)| *id).collect();
                self.insert_locked(
                    ino,
                    &shared,
                    &mut file,
                    dimensions,
                    rows,
                    Some(&ids),
                    0,
                    more_blocks,
                )?;
            }
            None => {
                let d = file.meta.dimensions;
                self.reserve_for_change(ino, Plan::of(&file).blocks(d) + more_blocks)?;
            }
        }
        for (id, payload) in finals {
            match payload {
                Some(payload) => file.payloads.set(id, payload),
                None => file.payloads.remove(id),
            }
        }
        self.reserve_exactly(ino, &file);
        Ok(())
    }

    /// GET_PAYLOADS: each id's payload text (None: it has none); ENOENT
    /// names the first id not stored.
    pub fn get_payloads(&self, ino: u64, ids: &[u64]) -> Result<Vec<Option<Box<[u8]>>>> {
        let file = self.vector_file(ino)?;
        let file = read_lock(&file);
        ids.iter()
            .map(|&id| {
                if file.set.slot_of(id).is_none() {
                    return Err(not_stored(id));
                }
                Ok(file.payloads.get(id).map(|p| p.text().into()))
            })
            .collect()
    }

    /// SCROLL: the ids from `start_id` on that `filter` matches (all of
    /// them without one), ascending, at most `limit`.
    pub fn scroll_points(
        &self,
        ino: u64,
        filter: Option<&Filter>,
        start_id: u64,
        limit: usize,
    ) -> Result<ScrollPage> {
        let file = self.vector_file(ino)?;
        let file = read_lock(&file);
        let mut ids: Vec<u64> = match filter {
            Some(filter) => self
                .matches(ino, &file, filter)?
                .slots()
                .iter()
                .copied()
                .map(|slot| file.set.ids()[slot])
                .filter(|&id| id >= start_id)
                .collect(),
            None => file
                .set
                .ids()
                .iter()
                .copied()
                .filter(|&id| id >= start_id)
                .collect(),
        };
        let matching = ids.len() as u64;
        // Only the page needs ordering: select it, then sort it.
        let next_id = if ids.len() > limit {
            ids.select_nth_unstable(limit);
            let next = ids[limit..].iter().copied().min();
            ids.truncate(limit);
            next
        } else {
            None
        };
        ids.sort_unstable();
        Ok(ScrollPage {
            ids,
            next_id,
            matching,
        })
    }
}
