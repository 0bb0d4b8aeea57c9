//! Vector files (docs/VECTORS.md): the vectors, ids and faiss index of a
//! regular file, held in memory while the file is in use and written back
//! into the file's own bytes (FORMAT.md §13) at fsync, at the periodic
//! write-back, at last close and at unmount.
//!
//! Here: the files in memory, their lifetime, and the requests that change
//! them; the search path is in [`search`], the write-back in `writeback`.
//! Locks follow the one order of [`crate::locks`]: a file's [`VectorFile`]
//! lock, then the file's `io` lock, the commit lock, the gate, the
//! metadata lock, the tables.

mod builder;
mod changes;
pub mod exact;
pub mod filter;
pub mod index;
pub mod labels;
pub mod layout;
pub mod payloads;
mod points;
mod search;
pub mod set;
pub mod spec;
pub mod stored;
mod writeback;

use self::writeback::Plan;

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

use self::exact::Hit;
use self::index::{IndexChoice, VectorIndex};
use self::layout::{VectorMeta, CAPACITY_MIN};
use self::payloads::Payloads;
use self::set::{InsertRefusal, VectorSet};

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
    /// The payload index last built for a filtered request (search.rs),
    /// with what it was built for.
    payload_index: Mutex<Option<search::CachedPayloadIndex>>,
    /// What recent filters matched (search.rs).
    matches: Mutex<search::MatchesCache>,
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

    /// Exact answer by a scan of every row, or of the `among` slots only;
    /// EINTR when the caller is killed meanwhile.
    fn scan(
        &self,
        query: &[f32],
        k: usize,
        search_type: u32,
        among: Option<&[usize]>,
        interrupt: &Interrupt,
    ) -> Result<Vec<(u64, f32)>> {
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
        let hits = match among {
            None => exact::search_until(rows, dimensions, query, k, search_type, stop),
            Some(slots) => exact::search_slots_until(
                rows,
                dimensions,
                slots.iter().copied(),
                query,
                k,
                search_type,
                stop,
            ),
        };
        match hits {
            Some(hits) => Ok(resolve_ids(&self.set, &hits)),
            None => Err(stopped.expect("stopped only with an error")),
        }
    }

    /// The slots whose (id, payload) `filter` matches, ascending; only
    /// `candidates` (ascending, a superset of the matches) are checked when
    /// given.
    fn matching_slots(
        &self,
        filter: &filter::Filter,
        candidates: Option<Vec<usize>>,
    ) -> Vec<usize> {
        let matches = |slot: usize| {
            let id = self.set.ids()[slot];
            filter.matches(id, self.payloads.get(id).map(payloads::Payload::value))
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
            matches: Mutex::new(Rank::Table, search::MatchesCache::default()),
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

    // ---- the requests ----

    pub fn set_vector_meta(&self, ino: u64, info: &VexfsVectorFileInfo) -> Result<()> {
        self.check_writable()?;
        limits::check_file_info(info).map_err(from_refusal)?;
        if info.element_type != VEXFS_VECTOR_FLOAT32 {
            return Err(einval(format!(
                "element_type: {} is not supported; only FLOAT32 (1) is",
                info.element_type
            )));
        }
        if info.storage_format != VEXFS_STORAGE_DENSE {
            return Err(einval(format!(
                "storage_format: {} is not supported; only DENSE (0) is",
                info.storage_format
            )));
        }
        if info.compression_type != VEXFS_COMPRESS_NONE {
            return Err(einval(format!(
                "compression_type: {} is not supported; only NONE (0) is",
                info.compression_type
            )));
        }
        let fresh = || {
            VectorMeta::empty(
                info.dimensions,
                info.element_type,
                info.storage_format,
                info.compression_type,
                info.alignment_bytes,
            )
        };
        let file = match self.vector_meta_item(ino)? {
            None => {
                // A plain file becomes a vector file only while it holds no
                // bytes (checked again by the write-back, under the data lock).
                let size = self.getattr(ino)?.size;
                if size != 0 {
                    return Err(Error::refused(
                        libc::EBUSY,
                        format!(
                            "the file holds {size} bytes that are not vectors; truncate it first"
                        ),
                    ));
                }
                let mut file = VectorFile {
                    meta: fresh(),
                    set: VectorSet::new(info.dimensions),
                    payloads: Payloads::default(),
                    generation: 1,
                    index: None,
                    index_generation: 0,
                    rewrite: true,
                    truncate_first: false,
                    failed: None,
                    stored: false,
                    building: None,
                    choice: Mutex::new(Rank::Table, None),
                    payload_index: Mutex::new(Rank::Table, None),
                    matches: Mutex::new(Rank::Table, search::MatchesCache::default()),
                };
                // On disk first, in memory after: nobody sees a vector file
                // that is not one on disk.
                match self.write_back(ino, &mut file) {
                    Ok(()) => return Ok(()),
                    // A concurrent SET_VECTOR_META made it one first.
                    Err(e) if e.errno() == libc::EEXIST => self.vector_file(ino)?,
                    Err(e) => return Err(e),
                }
            }
            Some(_) => self.vector_file(ino)?,
        };
        let mut file = write_lock(&file);
        {
            if file.layout_matches(info) {
                if file.meta.alignment_bytes != info.alignment_bytes {
                    file.meta.alignment_bytes = info.alignment_bytes;
                    file.rewrite = true;
                }
                return Ok(());
            }
            if !file.set.is_empty() && info.vector_count != 0 {
                return Err(Error::refused(
                        libc::EBUSY,
                        format!(
                            "dimensions: the file holds {} vectors of {} dimensions; set vector_count = 0 to drop them for {}",
                            file.set.len(),
                            file.meta.dimensions,
                            info.dimensions
                        ),
                    ));
            }
            file.set = VectorSet::new(info.dimensions);
            file.payloads.clear();
            file.meta = fresh();
            file.rewrite = true;
            file.truncate_first = true;
            file.changed_all();
            self.write_back(ino, &mut file)
        }
    }

    pub fn get_vector_meta(&self, ino: u64) -> Result<VexfsVectorFileInfo> {
        let file = self.vector_file(ino)?;
        let info = read_lock(&file).info();
        Ok(info)
    }

    /// BATCH_INSERT of rows already read from the caller.
    pub fn insert_vectors(
        &self,
        ino: u64,
        dimensions: u32,
        rows: &[f32],
        ids: Option<&[u64]>,
        flags: u32,
    ) -> Result<()> {
        self.check_writable()?;
        let shared = self.vector_file(ino)?;
        let mut file = write_lock(&shared);
        self.insert_locked(ino, &shared, &mut file, dimensions, rows, ids, flags, 0)
    }

    /// BATCH_INSERT into `file` (write-locked), reserving `more_blocks`
    /// beyond what the rows' write-back needs (payloads set with them):
    /// nothing changes unless all of it is taken.
    #[allow(clippy::too_many_arguments)]
    fn insert_locked(
        &self,
        ino: u64,
        shared: &Arc<RwLock<VectorFile>>,
        file: &mut VectorFile,
        dimensions: u32,
        rows: &[f32],
        ids: Option<&[u64]>,
        flags: u32,
        more_blocks: u64,
    ) -> Result<()> {
        if dimensions != file.meta.dimensions {
            return Err(einval(format!(
                "dimensions: {dimensions} does not match the file's {}",
                file.meta.dimensions
            )));
        }
        // NaN and Inf are refused whatever the flags (VALIDATE is the
        // default): faiss's graph search never ends over a NaN.
        if let Some(at) = rows.iter().position(|x| !x.is_finite()) {
            let d = dimensions as usize;
            return Err(einval(format!(
                "vectors: vector {} element {} is {} (NaN and Inf are refused)",
                at / d,
                at % d,
                rows[at]
            )));
        }
        let row_bytes = layout::row_bytes(dimensions);
        let vectors_max = (FILE_VECTOR_BYTES_MAX / row_bytes).min(FILE_VECTORS_MAX as u64) as usize;
        // The slots this batch replaces: the index learns of each.
        let mut replaced: Vec<usize> = ids
            .unwrap_or(&[])
            .iter()
            .filter_map(|id| file.set.slot_of(*id))
            .collect();
        replaced.sort_unstable();
        replaced.dedup();
        // The space its write-back needs is taken now: an insert the device
        // cannot hold is refused here, not at fsync.
        let count = (rows.len() / dimensions as usize) as u64;
        self.reserve_for_change(
            ino,
            Plan::blocks_after_insert(file, count, replaced.len() as u64) + more_blocks,
        )?;
        let outcome = file
            .set
            .insert(rows, ids, flags & VEXFS_INSERT_NO_REPLACE != 0, vectors_max);
        if more_blocks == 0 {
            self.reserve_exactly(ino, file);
        }
        let outcome = outcome.map_err(|refusal| match refusal {
            InsertRefusal::Exists(id) => Error::refused(
                libc::EEXIST,
                format!("vector_ids: id {id} is already stored (NO_REPLACE)"),
            ),
            InsertRefusal::TooLarge(why) => Error::refused(libc::EFBIG, why),
        })?;
        let index_was_current = file.index_generation == file.generation;
        file.changed();
        file.follow_insert(ino, &replaced, outcome.first_new_slot, index_was_current);
        self.rebuild_if_due(ino, shared, file);
        Ok(())
    }

    pub fn delete_vectors(&self, ino: u64, ids: &[u64]) -> Result<u32> {
        self.check_writable()?;
        let shared = self.vector_file(ino)?;
        let mut file = write_lock(&shared);
        let stored = ids
            .iter()
            .filter(|id| file.set.slot_of(**id).is_some())
            .count() as u64;
        if stored == 0 {
            return Ok(0);
        }
        // A delete moves the last row into the hole: that row is written again.
        self.reserve_for_change(ino, Plan::blocks_after_delete(&file, stored))?;
        let index_was_current = file.index_generation == file.generation;
        let holes = file.set.delete(ids);
        for id in ids {
            file.payloads.remove(*id);
        }
        file.changed();
        self.reserve_exactly(ino, &file);
        file.follow_delete(ino, &holes, index_was_current);
        self.rebuild_if_due(ino, &shared, &mut file);
        Ok(holes.len() as u32)
    }

    /// Reserves the blocks the next write-back of `ino` will need after a
    /// change, before the change: ENOSPC refuses the change itself.
    pub(super) fn reserve_for_change(&self, ino: u64, blocks: u64) -> Result<()> {
        self.reserve_write_back(ino, blocks).map_err(|e| {
            if e.errno() == libc::ENOSPC {
                Error::refused(libc::ENOSPC, format!("vectors: {e}"))
            } else {
                e
            }
        })
    }

    /// After a change: the reservation becomes exactly what the write-back
    /// needs (no more than was reserved before it).
    pub(super) fn reserve_exactly(&self, ino: u64, file: &VectorFile) {
        let blocks = Plan::of(file).blocks(file.meta.dimensions);
        if let Err(e) = self.lock().reserve(ino, blocks) {
            // Only a bound that was too small gets here; the write-back reserves again.
            debug_assert!(false, "reservation bound too small: {e}");
            eprintln!("vexfs: vector file {ino}: {e}");
        }
    }

    /// GET_VECTORS: the rows of `ids`, in order; ENOENT names the first id not stored.
    pub fn get_vectors(&self, ino: u64, dimensions: u32, ids: &[u64]) -> Result<Vec<f32>> {
        let file = self.vector_file(ino)?;
        let file = read_lock(&file);
        if dimensions != file.meta.dimensions {
            return Err(einval(format!(
                "dimensions: {dimensions} does not match the file's {}",
                file.meta.dimensions
            )));
        }
        let mut out = Vec::with_capacity(ids.len() * dimensions as usize);
        for id in ids {
            let Some(slot) = file.set.slot_of(*id) else {
                return Err(Error::refused(
                    libc::ENOENT,
                    format!("ids: id {id} is not stored"),
                ));
            };
            out.extend_from_slice(file.set.row(slot));
        }
        Ok(out)
    }
}

fn resolve_ids(set: &VectorSet, hits: &[Hit]) -> Vec<(u64, f32)> {
    hits.iter()
        .filter(|hit| hit.slot < set.len())
        .map(|hit| (set.ids()[hit.slot], hit.value))
        .collect()
}
