//! Payloads: one JSON object per id, kept beside the vectors in memory and
//! stored in the payload region of the file (FORMAT.md §13.6):
//!
//! ```text
//! entry, in ascending id order:  id u64 | len u32 | len bytes of JSON object (UTF-8)
//! ```
//!
//! The VectorMeta item carries the region's length, entry count and crc32c,
//! so a region is checked whole before any entry is believed. Each entry is
//! parsed again when loaded: a payload that is not a JSON object within the
//! limits of [`filter::parse_payload`] is corruption, not data.

use std::collections::HashMap;

use serde_json::Value;

use super::filter::{self, PAYLOAD_BYTES_MAX};
use super::layout::FILE_PAYLOAD_BYTES_MAX;

/// Bytes an entry takes in the region besides its JSON text.
pub const ENTRY_HEADER_BYTES: u64 = 12;

/// One id's payload: the text as stored (compact JSON, as serde_json
/// writes it) and the parsed value filters are evaluated against.
#[derive(Clone, Debug)]
pub struct Payload {
    text: Box<[u8]>,
    value: Value,
}

impl Payload {
    /// From a value already checked by [`filter::parse_payload`].
    pub fn from_value(value: Value) -> Result<Payload, String> {
        let text = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
        if text.len() > PAYLOAD_BYTES_MAX {
            return Err(format!(
                "{} bytes once written compactly, over the {PAYLOAD_BYTES_MAX}-byte limit",
                text.len()
            ));
        }
        Ok(Payload {
            text: text.into_boxed_slice(),
            value,
        })
    }

    pub fn text(&self) -> &[u8] {
        &self.text
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    fn region_bytes(&self) -> u64 {
        ENTRY_HEADER_BYTES + self.text.len() as u64
    }
}

/// The payloads of one vector file, by id.
#[derive(Debug, Default)]
pub struct Payloads {
    by_id: HashMap<u64, Payload>,
    /// What the region would take if written now.
    region_bytes: u64,
    /// Changed since the region was last written.
    changed: bool,
    /// Bumped by every change: what was derived from them (a payload
    /// index) is current while this is unchanged.
    version: u64,
}

impl Payloads {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<&Payload> {
        self.by_id.get(&id)
    }

    pub fn region_bytes(&self) -> u64 {
        self.region_bytes
    }

    pub fn is_changed(&self) -> bool {
        self.changed
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// (slot, payload) of every slot with a payload; `ids` are the slots' ids.
    pub fn by_slot<'a>(&'a self, ids: &'a [u64]) -> impl Iterator<Item = (usize, &'a Value)> + 'a {
        ids.iter()
            .enumerate()
            .filter_map(|(slot, id)| self.by_id.get(id).map(|p| (slot, &p.value)))
    }

    pub fn mark_written(&mut self) {
        self.changed = false;
    }

    /// The region bytes after `changes` (id, new payload or None to remove)
    /// were applied, without applying them.
    pub fn region_bytes_after(&self, changes: &[(u64, Option<&Payload>)]) -> u64 {
        let mut bytes = self.region_bytes;
        let mut seen = std::collections::HashSet::with_capacity(changes.len());
        // A later change to the same id supersedes an earlier one: count the last.
        for (id, payload) in changes.iter().rev() {
            if !seen.insert(*id) {
                continue;
            }
            if let Some(old) = self.by_id.get(id) {
                bytes -= old.region_bytes();
            }
            if let Some(new) = payload {
                bytes += new.region_bytes();
            }
        }
        bytes
    }

    pub fn set(&mut self, id: u64, payload: Payload) {
        self.region_bytes += payload.region_bytes();
        if let Some(old) = self.by_id.insert(id, payload) {
            self.region_bytes -= old.region_bytes();
        }
        self.changed = true;
        self.version += 1;
    }

    pub fn remove(&mut self, id: u64) {
        if let Some(old) = self.by_id.remove(&id) {
            self.region_bytes -= old.region_bytes();
            self.changed = true;
            self.version += 1;
        }
    }

    pub fn clear(&mut self) {
        if !self.by_id.is_empty() {
            self.changed = true;
            self.version += 1;
        }
        self.by_id.clear();
        self.region_bytes = 0;
    }

    /// The region's bytes, entries in ascending id order.
    pub fn encode(&self) -> Vec<u8> {
        let mut ids: Vec<u64> = self.by_id.keys().copied().collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(self.region_bytes as usize);
        for id in ids {
            let text = &self.by_id[&id].text;
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text);
        }
        debug_assert_eq!(out.len() as u64, self.region_bytes);
        out
    }

    /// A stored region, checked against what its item says (`count`
    /// entries, crc32c `crc`) and against the live ids (`is_live`): every
    /// entry must belong to a stored vector.
    pub fn decode(
        region: &[u8],
        count: u64,
        crc: u32,
        is_live: impl Fn(u64) -> bool,
    ) -> Result<Payloads, String> {
        if region.len() as u64 > FILE_PAYLOAD_BYTES_MAX {
            return Err(format!(
                "payload region of {} bytes is over the {FILE_PAYLOAD_BYTES_MAX}-byte limit",
                region.len()
            ));
        }
        let actual = crc32c::crc32c(region);
        if actual != crc {
            return Err(format!(
                "payload region crc32c is {actual:#010x}, the item says {crc:#010x}"
            ));
        }
        let mut payloads = Payloads::default();
        let mut at = 0usize;
        let mut last: Option<u64> = None;
        while at < region.len() {
            let header_end = at + ENTRY_HEADER_BYTES as usize;
            if header_end > region.len() {
                return Err(format!("entry at byte {at} is cut short"));
            }
            let id = u64::from_le_bytes(region[at..at + 8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(region[at + 8..header_end].try_into().expect("4 bytes"))
                as usize;
            if len == 0 || len > PAYLOAD_BYTES_MAX {
                return Err(format!(
                    "entry at byte {at} (id {id}) is {len} bytes, outside 1..={PAYLOAD_BYTES_MAX}"
                ));
            }
            let end = header_end + len;
            if end > region.len() {
                return Err(format!("entry at byte {at} (id {id}) runs past the region"));
            }
            if last.is_some_and(|last| last >= id) {
                return Err(format!(
                    "entry at byte {at}: id {id} is not above the one before"
                ));
            }
            if !is_live(id) {
                return Err(format!("entry at byte {at}: id {id} has no stored vector"));
            }
            let value = filter::parse_payload(&region[header_end..end])
                .map_err(|e| format!("entry at byte {at} (id {id}): {e}"))?;
            payloads.by_id.insert(
                id,
                Payload {
                    text: region[header_end..end].into(),
                    value,
                },
            );
            payloads.region_bytes += ENTRY_HEADER_BYTES + len as u64;
            last = Some(id);
            at = end;
        }
        if payloads.by_id.len() as u64 != count {
            return Err(format!(
                "payload region holds {} entries, the item says {count}",
                payloads.by_id.len()
            ));
        }
        Ok(payloads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(text: &str) -> Payload {
        Payload::from_value(filter::parse_payload(text.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn a_region_round_trips_in_id_order() {
        let mut p = Payloads::default();
        p.set(9, payload(r#"{"city":"London","year":2021}"#));
        p.set(2, payload(r#"{"tags":["a","b"]}"#));
        p.set(5, payload(r#"{"x":{"y":1}}"#));
        p.remove(5);
        let region = p.encode();
        assert_eq!(region.len() as u64, p.region_bytes());
        assert_eq!(u64::from_le_bytes(region[..8].try_into().unwrap()), 2);
        let back = Payloads::decode(&region, 2, crc32c::crc32c(&region), |_| true).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.get(9).unwrap().value()["city"], "London");
        assert!(back.get(5).is_none());
        assert_eq!(back.region_bytes(), p.region_bytes());
    }

    #[test]
    fn a_damaged_region_is_refused_with_the_reason() {
        let mut p = Payloads::default();
        p.set(1, payload(r#"{"a":1}"#));
        p.set(3, payload(r#"{"b":2}"#));
        let region = p.encode();
        let crc = crc32c::crc32c(&region);
        let refused = |region: &[u8], count: u64, crc: u32| {
            Payloads::decode(region, count, crc, |id| id != 7).unwrap_err()
        };
        assert!(refused(&region, 2, crc ^ 1).contains("crc32c"));
        assert!(refused(&region, 3, crc).contains("says 3"));
        let mut swapped = region.clone();
        swapped[..8].copy_from_slice(&5u64.to_le_bytes());
        assert!(refused(&swapped, 2, crc32c::crc32c(&swapped)).contains("not above"));
        let mut dead = region.clone();
        dead[..8].copy_from_slice(&7u64.to_le_bytes());
        assert!(refused(&dead, 2, crc32c::crc32c(&dead)).contains("no stored vector"));
        let mut long = region.clone();
        long[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(refused(&long, 2, crc32c::crc32c(&long)).contains("outside"));
        let mut not_json = region.clone();
        not_json[12] = b'[';
        assert!(refused(&not_json, 2, crc32c::crc32c(&not_json)).contains("id 1"));
        let cut = &region[..region.len() - 1];
        assert!(refused(cut, 2, crc32c::crc32c(cut)).contains("past the region"));
    }

    #[test]
    fn region_bytes_after_counts_the_last_change_per_id() {
        let mut p = Payloads::default();
        p.set(1, payload(r#"{"a":1}"#));
        let big = payload(r#"{"a":"0123456789"}"#);
        let small = payload(r#"{"b":2}"#);
        let after = p.region_bytes_after(&[(1, Some(&big)), (1, Some(&small)), (4, None)]);
        assert_eq!(after, ENTRY_HEADER_BYTES + small.text().len() as u64);
        assert_eq!(p.region_bytes_after(&[(1, None)]), 0);
    }
}
