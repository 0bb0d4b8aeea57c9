//! One collection: an open vector file of the mount and its parameters,
//! and the filesystem requests the routes are answered with, each one or a
//! few ioctls of `vexfs-client`. Every call here blocks; the routes run
//! them on tokio's blocking threads.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value};
use vexfs_client::{ScrollPage, VectorFile};
use vexfs_uapi::limits::PAYLOAD_BYTES_MAX;
use vexfs_uapi::VEXFS_NO_ID;

use crate::config::{HAS_ID_CHUNK_IDS, PAYLOAD_BATCH_BYTES_MAX, SCROLL_PAGE_IDS};
use crate::error::{ApiError, ApiResult};
use crate::names::CollectionName;
use crate::qdrant::points::{Payload, PointStruct};
use crate::qdrant::values::PayloadSelector;
use crate::spec::CollectionSpec;

/// Names the keys the filesystem indexes payloads by (docs/VECTORS.md).
pub const XATTR_PAYLOAD_INDEX: &str = "user.vexfs.payload_index";

pub struct Collection {
    pub name: CollectionName,
    pub spec: CollectionSpec,
    /// efSearch the file's HNSW index searches with (`user.vexfs.search`).
    pub ef_search: u32,
    /// The inode the descriptor is for: a file replaced under the same
    /// name is a new collection.
    pub ino: u64,
    file: VectorFile<File>,
    /// Serialises this server's changes to the collection, so that a
    /// read-modify-write (delete payload keys) sees no change of ours in
    /// between. Writers outside the server are not held by it.
    writes: Mutex<()>,
}

/// A point as an answer carries it.
#[derive(Debug, PartialEq)]
pub struct Record {
    pub id: u64,
    pub payload: Option<Payload>,
    pub vector: Option<Vec<f32>>,
}

fn payload_object(id: u64, bytes: &[u8]) -> io::Result<Payload> {
    serde_json::from_slice(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the stored payload of id {id} is not a JSON object: {e}"),
        )
    })
}

/// A `has_id` filter for `ids` (at most HAS_ID_CHUNK_IDS, under the filter size limit).
fn has_id_filter(ids: &[u64]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"must": [{"has_id": ids}]})).unwrap_or_default()
}

impl Collection {
    pub fn new(
        name: CollectionName,
        spec: CollectionSpec,
        ef_search: u32,
        ino: u64,
        file: File,
    ) -> Self {
        Collection {
            name,
            spec,
            ef_search,
            ino,
            file: VectorFile::new(file),
            writes: Mutex::new(()),
        }
    }

    fn dims(&self) -> u32 {
        self.spec.size
    }

    /// Holds this server's other changes to the collection off.
    pub fn write_guard(&self) -> MutexGuard<'_, ()> {
        // A panic while holding it left no state of ours half-changed: the
        // filesystem's requests are each all or nothing.
        self.writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn status(&self) -> io::Result<BTreeMap<String, String>> {
        self.file.status()
    }

    /// The keys and kinds of `user.vexfs.payload_index` (none when unset).
    pub fn payload_index(&self) -> io::Result<Vec<(String, String)>> {
        match self.file.xattr(XATTR_PAYLOAD_INDEX) {
            Ok(text) => Ok(parse_payload_index(&text)),
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Sets `user.vexfs.payload_index` to `fields`; none removes it (the
    /// filesystem refuses an empty value).
    pub fn set_payload_index(&self, fields: &[(String, String)]) -> io::Result<()> {
        if fields.is_empty() {
            return self.remove_payload_index();
        }
        let value: Vec<String> = fields
            .iter()
            .map(|(k, kind)| format!("{k}:{kind}"))
            .collect();
        self.file.set_xattr(XATTR_PAYLOAD_INDEX, &value.join(","))
    }

    fn remove_payload_index(&self) -> io::Result<()> {
        let name = c"user.vexfs.payload_index";
        // SAFETY: the descriptor is open for the call (self owns it) and
        // name is a NUL-terminated literal.
        let rc = unsafe { libc::fremovexattr(self.file.file().as_raw_fd(), name.as_ptr()) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENODATA) {
                return Err(e);
            }
        }
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync()
    }

    /// Replaces whole points (vector and payload; no payload removes the
    /// stored one), in one SET_PAYLOADS: all or nothing.
    pub fn upsert(&self, points: Vec<PointStruct>) -> ApiResult<()> {
        let dims = self.dims() as usize;
        let mut ids = Vec::with_capacity(points.len());
        let mut vectors = Vec::with_capacity(points.len() * dims);
        let mut payloads = Vec::with_capacity(points.len());
        for point in points {
            let id = point.id.0;
            let mut vector = point.vector.0;
            if vector.len() != dims {
                return Err(ApiError::bad_request(format!(
                    "point {id}: vector dimension error: expected dim: {dims}, got {}",
                    vector.len()
                )));
            }
            self.spec.distance.prepare(&mut vector);
            vectors.extend_from_slice(&vector);
            let payload = match point.payload {
                None => Vec::new(),
                Some(payload) => payload_bytes(id, &payload)?,
            };
            ids.push(id);
            payloads.push(payload);
        }
        let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let _writing = self.write_guard();
        self.file
            .set_payloads(&ids, &slices, Some((&vectors, self.dims())), false)
            .map_err(|e| ApiError::io(format!("upsert into `{}`", self.name), e))
    }

    /// The `k` nearest stored points to `query` that `filter` matches, as
    /// (id, what the ioctl wrote), best first.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&[u8]>,
        exact: bool,
    ) -> io::Result<Vec<(u64, f32)>> {
        Ok(self
            .search_batch(query, k, filter, exact)?
            .pop()
            .unwrap_or_default())
    }

    /// [`search`](Self::search) for each query of `queries` (rows of the
    /// collection's size), all in one FILTERED_SEARCH request.
    pub fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        filter: Option<&[u8]>,
        exact: bool,
    ) -> io::Result<Vec<Vec<(u64, f32)>>> {
        let count = queries.len() / self.dims().max(1) as usize;
        let mut distances = vec![0f32; count * k];
        let mut ids = vec![0u64; count * k];
        self.file.filtered_search(
            queries,
            self.dims(),
            k,
            self.spec.distance.search_type(),
            filter,
            exact,
            &mut distances,
            &mut ids,
        )?;
        Ok(ids
            .chunks(k.max(1))
            .zip(distances.chunks(k.max(1)))
            .map(|(ids, distances)| {
                ids.iter()
                    .copied()
                    .zip(distances.iter().copied())
                    .filter(|&(id, _)| id != VEXFS_NO_ID)
                    .collect()
            })
            .collect())
    }

    /// The stored vector of one point.
    pub fn vector(&self, id: u64) -> io::Result<Vec<f32>> {
        let mut vector = vec![0f32; self.dims() as usize];
        self.file.get_vectors(&[id], self.dims(), &mut vector)?;
        Ok(vector)
    }

    pub fn scroll(
        &self,
        filter: Option<&[u8]>,
        start_id: u64,
        limit: usize,
    ) -> io::Result<ScrollPage> {
        self.file.scroll(filter, start_id, limit)
    }

    pub fn count(&self, filter: Option<&[u8]>) -> io::Result<u32> {
        self.file.count(filter)
    }

    /// Which of `ids` are stored.
    pub fn existing(&self, ids: &[u64]) -> io::Result<HashSet<u64>> {
        let mut found = HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(HAS_ID_CHUNK_IDS) {
            let page = self
                .file
                .scroll(Some(&has_id_filter(chunk)), 0, chunk.len())?;
            found.extend(page.ids);
        }
        Ok(found)
    }

    /// Refuses with 404 naming the first of `ids` that is not stored.
    pub fn require_all(&self, ids: &[u64]) -> ApiResult<()> {
        let found = self
            .existing(ids)
            .map_err(|e| ApiError::io(format!("looking up points of `{}`", self.name), e))?;
        match ids.iter().find(|id| !found.contains(id)) {
            Some(&missing) => Err(ApiError::point_not_found(missing)),
            None => Ok(()),
        }
    }

    /// The points of `ids` that are stored, in the order given (each once),
    /// with what the selector and `with_vector` ask for. A point deleted
    /// meanwhile is left out, as if it had not been named.
    pub fn records(
        &self,
        ids: &[u64],
        payload: &PayloadSelector,
        with_vector: bool,
    ) -> io::Result<Vec<Record>> {
        let mut seen = HashSet::with_capacity(ids.len());
        let mut wanted: Vec<u64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        if !payload.wanted() && !with_vector {
            // Nothing to fetch that would fail for a missing id: ask which are stored.
            let found = self.existing(&wanted)?;
            wanted.retain(|id| found.contains(id));
            return self.fetch(&wanted, payload, with_vector);
        }
        // Two tries: the second after learning which points are gone.
        for _ in 0..2 {
            match self.fetch(&wanted, payload, with_vector) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let found = self.existing(&wanted)?;
                    wanted.retain(|id| found.contains(id));
                }
                answer => return answer,
            }
        }
        self.fetch(&wanted, payload, with_vector)
    }

    fn fetch(
        &self,
        ids: &[u64],
        selector: &PayloadSelector,
        with_vector: bool,
    ) -> io::Result<Vec<Record>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let payloads = if selector.wanted() {
            Some(self.file.payloads(ids)?)
        } else {
            None
        };
        let vectors = if with_vector {
            let mut vectors = vec![0f32; ids.len() * self.dims() as usize];
            self.file.get_vectors(ids, self.dims(), &mut vectors)?;
            Some(vectors)
        } else {
            None
        };
        let dims = self.dims() as usize;
        ids.iter()
            .enumerate()
            .map(|(i, &id)| {
                let payload = match &payloads {
                    None => None,
                    Some(payloads) => Some(selector.apply(match &payloads[i] {
                        Some(bytes) => payload_object(id, bytes)?,
                        None => Map::new(),
                    })),
                };
                let vector = vectors
                    .as_ref()
                    .map(|v| v[i * dims..(i + 1) * dims].to_vec());
                Ok(Record {
                    id,
                    payload,
                    vector,
                })
            })
            .collect()
    }

    /// Every stored id `filter` matches, a page at a time, to `each`.
    fn for_each_page(
        &self,
        filter: &[u8],
        mut each: impl FnMut(&[u64]) -> ApiResult<()>,
    ) -> ApiResult<()> {
        let mut start = 0;
        loop {
            let page = self
                .scroll(Some(filter), start, SCROLL_PAGE_IDS)
                .map_err(|e| ApiError::io(format!("scrolling `{}`", self.name), e))?;
            if !page.ids.is_empty() {
                each(&page.ids)?;
            }
            match page.next_id {
                Some(next) => start = next,
                None => return Ok(()),
            }
        }
    }

    /// The stored ids a filter matches, or the ids given.
    fn for_each_target(
        &self,
        target: &Target,
        each: impl FnMut(&[u64]) -> ApiResult<()>,
    ) -> ApiResult<()> {
        match target {
            Target::Ids(ids) => {
                let mut each = each;
                each(ids)
            }
            Target::Filter(filter) => self.for_each_page(filter, each),
        }
    }

    pub fn delete(&self, target: &Target) -> ApiResult<()> {
        let _writing = self.write_guard();
        self.for_each_target(target, |ids| {
            self.file
                .delete(ids)
                .map(drop)
                .map_err(|e| ApiError::io(format!("deleting points of `{}`", self.name), e))
        })
    }

    /// Sets `payload` on each point (merged into what it has, or replacing it).
    pub fn set_payload(&self, target: &Target, payload: &Payload, merge: bool) -> ApiResult<()> {
        let bytes = if payload.is_empty() && !merge {
            // Overwriting with {} clears: the filesystem stores no empty object.
            Vec::new()
        } else {
            payload_bytes(0, payload)?
        };
        let per_call = (PAYLOAD_BATCH_BYTES_MAX / bytes.len().max(1)).max(1);
        let _writing = self.write_guard();
        self.for_each_target(target, |ids| {
            if let Target::Ids(_) = target {
                self.require_all(ids)?;
            }
            for chunk in ids.chunks(per_call) {
                let payloads = vec![bytes.as_slice(); chunk.len()];
                self.file
                    .set_payloads(chunk, &payloads, None, merge)
                    .map_err(|e| ApiError::io(format!("setting payloads in `{}`", self.name), e))?;
            }
            Ok(())
        })
    }

    /// Removes `keys` (dotted paths) from each point's payload.
    pub fn delete_payload_keys(&self, target: &Target, keys: &[String]) -> ApiResult<()> {
        let _writing = self.write_guard();
        self.for_each_target(target, |ids| {
            if let Target::Ids(_) = target {
                self.require_all(ids)?;
            }
            let what = || format!("deleting payload keys in `{}`", self.name);
            let stored = self
                .file
                .payloads(ids)
                .map_err(|e| ApiError::io(what(), e))?;
            let mut changed_ids = Vec::new();
            let mut changed = Vec::new();
            for (&id, payload) in ids.iter().zip(stored) {
                let Some(bytes) = payload else { continue };
                let mut object = payload_object(id, &bytes).map_err(|e| ApiError::io(what(), e))?;
                let mut removed = false;
                for key in keys {
                    removed |= crate::qdrant::values::remove_path(&mut object, key);
                }
                if removed {
                    changed_ids.push(id);
                    changed.push(if object.is_empty() {
                        Vec::new()
                    } else {
                        payload_bytes(id, &object)?
                    });
                }
            }
            if changed_ids.is_empty() {
                return Ok(());
            }
            let slices: Vec<&[u8]> = changed.iter().map(Vec::as_slice).collect();
            self.file
                .set_payloads(&changed_ids, &slices, None, false)
                .map_err(|e| ApiError::io(what(), e))
        })
    }
}

/// The points a change is for: ids, or a filter's JSON bytes.
pub enum Target {
    Ids(Vec<u64>),
    Filter(Vec<u8>),
}

/// A payload as the filesystem takes it, refused here (naming the point)
/// when it is over VEXFS_PAYLOAD_BYTES_MAX.
fn payload_bytes(id: u64, payload: &Map<String, Value>) -> ApiResult<Vec<u8>> {
    let bytes = serde_json::to_vec(payload)
        .map_err(|e| ApiError::bad_request(format!("point {id}: payload: {e}")))?;
    if bytes.len() > PAYLOAD_BYTES_MAX as usize {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Payload too large: point {id}: a payload of {} bytes (VexFS keeps at most {PAYLOAD_BYTES_MAX})",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// `key:kind,key:kind` (docs/VECTORS.md, payload indexes).
pub fn parse_payload_index(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|field| field.trim().rsplit_once(':'))
        .map(|(key, kind)| (key.to_string(), kind.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_index_values_are_key_kind_pairs() {
        assert_eq!(
            parse_payload_index("city:keyword, year:integer"),
            vec![
                ("city".into(), "keyword".into()),
                ("year".into(), "integer".into())
            ]
        );
        assert!(parse_payload_index("").is_empty());
    }

    #[test]
    fn has_id_chunks_fit_the_filter_limit() {
        let ids = vec![u64::MAX - 1; HAS_ID_CHUNK_IDS];
        let bytes = has_id_filter(&ids).len();
        assert!(
            bytes <= vexfs_uapi::limits::FILTER_BYTES_MAX as usize,
            "{bytes}"
        );
    }

    #[test]
    fn payloads_over_the_limit_are_refused_naming_the_point() {
        let mut payload = Map::new();
        payload.insert(
            "text".into(),
            Value::String("x".repeat(PAYLOAD_BYTES_MAX as usize)),
        );
        let e = payload_bytes(9, &payload).unwrap_err();
        assert_eq!(e.status.as_u16(), 413);
        assert!(e.message.contains("point 9"), "{}", e.message);
    }
}
