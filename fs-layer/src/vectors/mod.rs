//! Vector files (docs/VECTORS.md): the vectors, ids and faiss index of a
//! regular file, held in memory while the file is in use and written back
//! into the file's own bytes (FORMAT.md §13) at fsync, at the periodic
//! write-back, at last close and at unmount.
//!
//! Here: the files in memory and their lifetime; the requests that change
//! them are in `requests`, the search path in [`search`], the write-back in
//! `writeback`.
//! Locks follow the one order of [`crate::locks`]: a file's [`VectorFile`]
//! lock, then the file's `io` lock, the commit lock, the gate, the
//! metadata lock, the tables.

pub mod answers;
mod builder;
mod changes;
pub mod exact;
pub mod filter;
pub mod huge_pages;
pub mod index;
pub mod labels;
pub mod layout;
mod matches;
pub mod payloads;
mod points;
mod requests;
mod search;
pub mod set;
pub mod spec;
pub mod stored;
mod writeback;

pub use self::answers::{with_scratch, Answers, Ranking, Scratch};
pub use self::points::{PayloadChange, ScrollPage};
pub use self::search::{Among, FILTER_INDEX_FRACTION_MIN};

use std::collections::HashMap;
use std::sync::Arc;

use vexfs_uapi::*;

use crate::btree;
use crate::error::{Error, Result};
use crate::format::{Key, Kind, BLOCK_BYTES_U64, INODE_FLAG_VECTOR};
use crate::fs::Fs;
use crate::interrupt::Interrupt;
use crate::locks::{Mutex, Rank, ReadGuard, RwLock, WriteGuard};

use self::exact::TopK;
use self::index::{IndexChoice, VectorIndex};
use self::layout::{VectorMeta, CAPACITY_MIN};
use self::payloads::Payloads;
use self::set::VectorSet;

/// Vectors one file may hold (`vector_count` is a u32 in the ABI).
pub const FILE_VECTORS_MAX: usize = u32::MAX as usize;
/// Vector bytes one file may hold: the daemon keeps them in memory while the file is in use.
pub const FILE_VECTOR_BYTES_MAX: u64 = 16 << 30;
/// Largest piece of rows written to the device in one write.
const WRITE_CHUNK_BYTES: usize = 8 << 20;

pub const XATTR_INDEX: &[u8] = b"user.vexfs.index";
pub const XATTR_SEARCH: &[u8] = b"user.vexfs.search";
/// The payload keys to index (`city:keyword,year:integer`, docs/VECTORS.md).
pub const XATTR_PAYLOAD_INDEX: &[u8] = b"user.vexfs.payload_index";
/// Read-only: the state of the file's index, computed at each read
/// (docs/VECTORS.md); not listed by listxattr, so copies leave it behind.
pub const XATTR_STATUS: &[u8] = b"user.vexfs.status";

/// One vector file in memory.
pub struct VectorFile {
    /// Layout as requested, counts and regions as last written back.
    meta: VectorMeta,
    set: VectorSet,
    /// A JSON object per id, for some of the ids in `set`.
    payloads: Payloads,
    /// Bumped by every change to the vectors; an index covers one generation.
    generation: u64,
    index: Option<VectorIndex>,
    /// Generation the in-memory index is current for.
    index_generation: u64,
    /// The file's bytes must be rewritten even if no slot changed (layout, clear, index).
    rewrite: bool,
    /// The stored bytes belong to an older layout: drop them before writing.
    truncate_first: bool,
    /// An index that could not be built for (factory, metric, generation):
    /// not tried again until the vectors change.
    failed: Option<(String, u32, u64)>,
    /// The file is a vector file on disk (its first write-back is done).
    stored: bool,
    /// The index the builder thread is making for it.
    building: Option<changes::Build>,
    /// The index choice last resolved from its `user.vexfs.*` attributes
    /// (search.rs): a search reads them only after they change.
    choice: Mutex<Option<search::CachedChoice>>,
    /// The payload index last built for a filtered request (matches.rs),
    /// with what it was built for.
    payload_index: Mutex<Option<matches::CachedPayloadIndex>>,
    /// What recent filters matched (matches.rs).
    matches: Mutex<matches::MatchesCache>,
}

/// Vector files in memory, by inode.
///
/// A vector file stays in memory as long as any request holds it, and
/// leaves only through [`evict`](Self::evict): when the caller is the only
/// holder and nothing in it is unwritten. A request that finds no entry
/// loads the file from its stored bytes, which are then current.
#[derive(Default)]
pub struct VectorFiles {
    resident: Mutex<Residents>,
    builder: builder::Builder,
    /// Bumped after every change to a `user.vexfs.index` or
    /// `user.vexfs.search` attribute: a cached index choice resolved
    /// before it is stale.
    xattr_epoch: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Residents {
    files: HashMap<u64, Arc<RwLock<VectorFile>>>,
    /// Bumped by every eviction: a load that overlapped one may have read
    /// bytes older than the evicted file's last write-back, and is redone.
    evictions: u64,
}

impl VectorFiles {
    fn get(&self, ino: u64) -> Option<Arc<RwLock<VectorFile>>> {
        self.resident.lock().files.get(&ino).cloned()
    }

    fn evictions(&self) -> u64 {
        self.resident.lock().evictions
    }

    /// Makes `loaded` resident unless another is already; None when an
    /// eviction happened since `evictions` was read (load again).
    fn insert_loaded(
        &self,
        ino: u64,
        loaded: Arc<RwLock<VectorFile>>,
        evictions: u64,
    ) -> Option<Arc<RwLock<VectorFile>>> {
        let mut resident = self.resident.lock();
        if resident.evictions != evictions {
            return None;
        }
        Some(resident.files.entry(ino).or_insert(loaded).clone())
    }

    fn all(&self) -> Vec<(u64, Arc<RwLock<VectorFile>>)> {
        self.resident
            .lock()
            .files
            .iter()
            .map(|(ino, file)| (*ino, file.clone()))
            .collect()
    }

    /// Drops `ino` from memory if `file` is its entry, the caller's handle
    /// is the only one besides the table's, and `guard` (the caller's write
    /// lock on it) shows nothing unwritten. Any other request that holds the
    /// file shows in the count, and none can take it while the table is locked.
    fn evict(&self, ino: u64, file: &Arc<RwLock<VectorFile>>, guard: &VectorFile) -> bool {
        let mut resident = self.resident.lock();
        let only_holder = resident
            .files
            .get(&ino)
            .is_some_and(|f| Arc::ptr_eq(f, file))
            && Arc::strong_count(file) == 2;
        if !only_holder || guard.dirty() {
            return false;
        }
        resident.files.remove(&ino);
        resident.evictions += 1;
        true
    }

    /// A `user.vexfs.index` / `user.vexfs.search` attribute changed (call
    /// after the change is stored).
    pub(crate) fn vector_xattr_changed(&self) {
        self.xattr_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn xattr_epoch(&self) -> u64 {
        self.xattr_epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The inode was freed: its vectors have nowhere to go.
    pub(crate) fn discard(&self, ino: u64) {
        let mut resident = self.resident.lock();
        if resident.files.remove(&ino).is_some() {
            resident.evictions += 1;
        }
    }
}

fn write_lock(file: &RwLock<VectorFile>) -> WriteGuard<'_, VectorFile> {
    file.write()
}

fn read_lock(file: &RwLock<VectorFile>) -> ReadGuard<'_, VectorFile> {
    file.read()
}

fn einval(reason: String) -> Error {
    Error::refused(libc::EINVAL, reason)
}

fn from_refusal(refusal: Refusal) -> Error {
    Error::refused(refusal.errno(), refusal.to_string())
}

/// The slot count the file's regions have room for: the stored capacity,
/// doubled until `count` fits. Deterministic, so GET_VECTOR_META and the
/// next write-back agree.
fn capacity_for(stored: u64, count: u64) -> u64 {
    let mut capacity = stored.max(CAPACITY_MIN);
    while capacity < count {
        capacity *= 2;
    }
    capacity
}

impl VectorFile {
    fn layout_matches(&self, info: &VexfsVectorFileInfo) -> bool {
        self.meta.dimensions == info.dimensions
            && self.meta.element_type == info.element_type
            && self.meta.storage_format == info.storage_format
            && self.meta.compression_type == info.compression_type
    }

    fn info(&self) -> VexfsVectorFileInfo {
        let capacity = capacity_for(self.meta.capacity, self.set.len() as u64);
        let (_, index_offset) = layout::regions(self.meta.dimensions, capacity);
        VexfsVectorFileInfo {
            dimensions: self.meta.dimensions,
            element_type: self.meta.element_type,
            vector_count: self.set.len() as u32,
            storage_format: self.meta.storage_format,
            data_offset: self.meta.data_offset,
            index_offset,
            compression_type: self.meta.compression_type,
            alignment_bytes: self.meta.alignment_bytes,
        }
    }

    /// Rows were appended.
    fn changed(&mut self) {
        self.generation += 1;
    }

    /// Every row is gone or has another layout: the index and any build
    /// of one are dropped.
    fn changed_all(&mut self) {
        self.generation += 1;
        self.index = None;
        self.building = None;
    }

    fn dirty(&self) -> bool {
        self.set.is_dirty()
            || self.payloads.is_changed()
            || self.rewrite
            || self.meta.generation != self.generation
    }

    /// The in-memory index can answer `search_type` for the current vectors.
    fn index_serves(&self, search_type: u32, choice: &IndexChoice) -> bool {
        self.index.as_ref().is_some_and(|index| {
            index.search_type == search_type
                && index.factory == choice.factory
                && index.params == choice.params
                && self.index_generation == self.generation
        })
    }

    /// Whether a search for `query` has anything to rank: EINVAL when its
    /// dimensions are not the file's, false when the file holds no vectors.
    fn answers(&self, query: &[f32]) -> Result<bool> {
        if query.len() != self.meta.dimensions as usize {
            return Err(einval(format!(
                "dimensions: {} does not match the file's {}",
                query.len(),
                self.meta.dimensions
            )));
        }
        if let Some(at) = query.iter().position(|x| !x.is_finite()) {
            return Err(einval(format!(
                "query_vector: element {at} is {} (NaN and Inf are refused)",
                query[at]
            )));
        }
        Ok(!self.set.is_empty())
    }

    /// Exact answer by a scan of every row, or of the `among` slots only,
    /// ranked in `top` (id, value), best first; EINTR when the caller is
    /// killed meanwhile.
    fn scan<'s>(
        &'s self,
        query: &[f32],
        (k, search_type): (usize, u32),
        among: Option<&[usize]>,
        interrupt: &Interrupt,
        top: &'s mut TopK,
    ) -> Result<impl Iterator<Item = (u64, f32)> + 's> {
        let dimensions = self.meta.dimensions as usize;
        let mut stopped = None;
        let stop = || {
            if !interrupt.due() {
                return false;
            }
            stopped = interrupt.check().err();
            stopped.is_some()
        };
        let rows = self.set.rows();
        let ranked = (k, search_type);
        let hits = match among {
            None => {
                let slots = 0..rows.len() / dimensions.max(1);
                exact::search_slots_until(rows, dimensions, slots, query, ranked, stop, top)
            }
            Some(slots) => {
                let slots = slots.iter().copied();
                exact::search_slots_until(rows, dimensions, slots, query, ranked, stop, top)
            }
        };
        let Some(hits) = hits else {
            return Err(stopped.expect("stopped only with an error"));
        };
        let ids = self.set.ids();
        Ok(hits
            .iter()
            .filter(move |hit| hit.slot < ids.len())
            .map(move |hit| (ids[hit.slot], hit.value)))
    }

    /// Building `choice` for `search_type` failed on these very vectors.
    fn index_failed(&self, search_type: u32, choice: &IndexChoice) -> bool {
        self.failed
            .as_ref()
            .is_some_and(|(factory, metric, generation)| {
                *factory == choice.factory
                    && *metric == search_type
                    && *generation == self.generation
            })
    }
}

impl Fs {
    // ---- finding and loading ----

    /// Whether `ino` is a vector file held in memory (one that a request
    /// used since it was opened).
    pub(crate) fn is_loaded_vector_file(&self, ino: u64) -> bool {
        self.vectors.get(ino).is_some()
    }

    /// The vector file `ino` in memory, loading it on first use.
    fn vector_file(&self, ino: u64) -> Result<Arc<RwLock<VectorFile>>> {
        loop {
            let evictions = self.vectors.evictions();
            if let Some(file) = self.vectors.get(ino) {
                return Ok(file);
            }
            let loaded = Arc::new(RwLock::new(Rank::VectorFile, self.load_vector_file(ino)?));
            // Another thread may have loaded it meanwhile: keep the first.
            if let Some(file) = self.vectors.insert_loaded(ino, loaded, evictions) {
                return Ok(file);
            }
        }
    }

    fn vector_meta_item(&self, ino: u64) -> Result<Option<VectorMeta>> {
        let mut st = self.lock();
        let record = Fs::inode(&mut st, ino)?;
        if record.is_dir() {
            return Err(Error::refused(
                libc::ENOTTY,
                "vector requests on a directory",
            ));
        }
        if !record.is_reg() || record.flags & INODE_FLAG_VECTOR == 0 {
            return Ok(None);
        }
        match btree::get(&mut st, &Key::new(ino, Kind::VectorMeta, 0))? {
            Some(raw) => Ok(Some(VectorMeta::decode(&raw, ino)?)),
            None => Err(Error::corrupt(
                "vector metadata",
                ino,
                "inode is flagged as a vector file but has no VectorMeta item".into(),
            )),
        }
    }

    fn load_vector_file(&self, ino: u64) -> Result<VectorFile> {
        // Item, rows and ids as one snapshot: a write-back holds this lock
        // (for writing) from its first change to its VectorMeta item.
        let state = self.file_state(ino);
        let _io = state.io.read();
        let Some(meta) = self.vector_meta_item(ino)? else {
            return Err(einval(format!(
                "inode {ino} is not a vector file (SET_VECTOR_META makes it one)"
            )));
        };
        let count = meta.vector_count as usize;
        let row_bytes = layout::row_bytes(meta.dimensions) as usize;
        // The rows and ids are written, never holes: the blocks the inode
        // holds bound what loading them may allocate.
        let record = self.getattr(ino)?;
        let needed = (count as u64) * (row_bytes as u64 + 8) + meta.payload_bytes;
        if record.blocks.saturating_mul(BLOCK_BYTES_U64) < needed {
            return Err(Error::corrupt(
                "vector file",
                ino,
                format!(
                    "{count} vectors need {needed} bytes, the file holds {} blocks",
                    record.blocks
                ),
            ));
        }
        let raw_rows = self.read_locked(ino, meta.data_offset, count * row_bytes)?;
        let raw_ids = self.read_locked(ino, meta.ids_offset, count * 8)?;
        if raw_rows.len() != count * row_bytes || raw_ids.len() != count * 8 {
            return Err(Error::corrupt(
                "vector file",
                ino,
                format!("the file is shorter than its {count} vectors"),
            ));
        }
        let rows: Vec<f32> = raw_rows
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let ids: Vec<u64> = raw_ids
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        let (set, dropped) = VectorSet::from_stored(meta.dimensions, rows, ids, meta.next_id);
        if dropped > 0 {
            eprintln!(
                "vexfs: vector file {ino}: {dropped} duplicate ids (an unsynced delete cut by a crash); keeping the first of each"
            );
        }
        let payloads = self.load_payloads(ino, &meta, &set)?;
        Ok(VectorFile {
            generation: meta.generation + u64::from(dropped > 0),
            meta,
            set,
            payloads,
            index: None,
            index_generation: 0,
            rewrite: false,
            truncate_first: false,
            failed: None,
            stored: true,
            building: None,
            choice: Mutex::new(Rank::Table, None),
            payload_index: Mutex::new(Rank::Table, None),
            matches: Mutex::new(Rank::Table, matches::MatchesCache::default()),
        })
    }

    /// The payload region the item describes, checked whole (FORMAT.md
    /// §13.6); called with the file's data lock held, after the rows.
    fn load_payloads(&self, ino: u64, meta: &VectorMeta, set: &VectorSet) -> Result<Payloads> {
        if meta.payload_bytes == 0 {
            return Ok(Payloads::default());
        }
        let region = self.read_locked(ino, meta.payload_offset(), meta.payload_bytes as usize)?;
        if region.len() as u64 != meta.payload_bytes {
            return Err(Error::corrupt(
                "vector file",
                ino,
                format!(
                    "the file is shorter than its {} bytes of payloads",
                    meta.payload_bytes
                ),
            ));
        }
        Payloads::decode(&region, meta.payload_count, meta.payload_crc, |id| {
            set.slot_of(id).is_some()
        })
        .map_err(|e| Error::corrupt("vector payloads", ino, e))
    }
}
