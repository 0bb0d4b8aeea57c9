//! Vector files (docs/VECTORS.md): the vectors, ids and faiss index of a
//! regular file, held in memory while the file is in use and written back
//! into the file's own bytes (FORMAT.md §13) at fsync, at the periodic
//! write-back, at last close and at unmount.
//!
//! Locks, always taken in this order: a file's [`VectorFile`] lock, then
//! the file's `io` lock, the commit gate, the metadata lock. Nothing that
//! holds a later one takes an earlier one.

pub mod exact;
pub mod index;
pub mod layout;
pub mod set;
mod writeback;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use vexfs_uapi::*;

use crate::btree;
use crate::error::{Error, Result};
use crate::format::{Key, Kind, INODE_FLAG_VECTOR};
use crate::fs::Fs;

use self::exact::Hit;
use self::index::{IndexChoice, VectorIndex};
use self::layout::{VectorMeta, CAPACITY_MIN, INDEX_SPEC_BYTES_MAX};
use self::set::{InsertRefusal, VectorSet};

/// Vectors one file may hold (`vector_count` is a u32 in the ABI).
pub const FILE_VECTORS_MAX: usize = u32::MAX as usize;
/// Vector bytes one file may hold: the daemon keeps them in memory while the file is in use.
pub const FILE_VECTOR_BYTES_MAX: u64 = 16 << 30;
/// Largest piece of rows written to the device in one write.
const WRITE_CHUNK_BYTES: usize = 8 << 20;

pub const XATTR_INDEX: &[u8] = b"user.vexfs.index";
pub const XATTR_SEARCH: &[u8] = b"user.vexfs.search";

/// One vector file in memory.
pub struct VectorFile {
    /// Layout as requested, counts and regions as last written back.
    meta: VectorMeta,
    set: VectorSet,
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
}

/// Vector files in use, by inode.
#[derive(Default)]
pub struct VectorFiles {
    open: Mutex<HashMap<u64, Arc<RwLock<VectorFile>>>>,
}

impl VectorFiles {
    fn get(&self, ino: u64) -> Option<Arc<RwLock<VectorFile>>> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ino)
            .cloned()
    }

    fn all(&self) -> Vec<(u64, Arc<RwLock<VectorFile>>)> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(ino, file)| (*ino, file.clone()))
            .collect()
    }

    fn forget(&self, ino: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ino);
    }
}

fn write_lock(file: &RwLock<VectorFile>) -> std::sync::RwLockWriteGuard<'_, VectorFile> {
    file.write().unwrap_or_else(|p| p.into_inner())
}

fn read_lock(file: &RwLock<VectorFile>) -> std::sync::RwLockReadGuard<'_, VectorFile> {
    file.read().unwrap_or_else(|p| p.into_inner())
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

    fn changed(&mut self) {
        self.generation += 1;
    }

    fn dirty(&self) -> bool {
        self.set.is_dirty() || self.rewrite || self.meta.generation != self.generation
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

    /// Exact answer by a scan of every row.
    fn scan(&self, query: &[f32], k: usize, search_type: u32) -> Vec<(u64, f32)> {
        let dimensions = self.meta.dimensions as usize;
        let hits = exact::search(self.set.rows(), dimensions, query, k, search_type);
        resolve_ids(&self.set, &hits)
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
        if let Some(file) = self.vectors.get(ino) {
            return Ok(file);
        }
        let loaded = Arc::new(RwLock::new(self.load_vector_file(ino)?));
        let mut open = self.vectors.open.lock().unwrap_or_else(|p| p.into_inner());
        // Another thread may have loaded it meanwhile: keep the first.
        Ok(open.entry(ino).or_insert(loaded).clone())
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
        let Some(meta) = self.vector_meta_item(ino)? else {
            return Err(einval(format!(
                "inode {ino} is not a vector file (SET_VECTOR_META makes it one)"
            )));
        };
        let count = meta.vector_count as usize;
        let row_bytes = layout::row_bytes(meta.dimensions) as usize;
        let raw_rows = self.read(ino, meta.data_offset, count * row_bytes)?;
        let raw_ids = self.read(ino, meta.ids_offset, count * 8)?;
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
        Ok(VectorFile {
            generation: meta.generation + u64::from(dropped > 0),
            meta,
            set,
            index: None,
            index_generation: 0,
            rewrite: false,
            truncate_first: false,
            failed: None,
        })
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
        match self.vector_meta_item(ino)? {
            None => {
                // A plain file becomes a vector file only while it holds no bytes.
                let size = self.getattr(ino)?.size;
                if size != 0 {
                    return Err(Error::refused(
                        libc::EBUSY,
                        format!(
                            "the file holds {size} bytes that are not vectors; truncate it first"
                        ),
                    ));
                }
                let file = VectorFile {
                    meta: fresh(),
                    set: VectorSet::new(info.dimensions),
                    generation: 1,
                    index: None,
                    index_generation: 0,
                    rewrite: true,
                    truncate_first: false,
                    failed: None,
                };
                let file = Arc::new(RwLock::new(file));
                {
                    let mut open = self.vectors.open.lock().unwrap_or_else(|p| p.into_inner());
                    open.insert(ino, file.clone());
                }
                let mut file = write_lock(&file);
                self.write_back(ino, &mut file, true)
            }
            Some(_) => {
                let file = self.vector_file(ino)?;
                let mut file = write_lock(&file);
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
                file.meta = fresh();
                file.index = None;
                file.rewrite = true;
                file.truncate_first = true;
                file.changed();
                self.write_back(ino, &mut file, false)
            }
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
        let file = self.vector_file(ino)?;
        let mut file = write_lock(&file);
        if dimensions != file.meta.dimensions {
            return Err(einval(format!(
                "dimensions: {dimensions} does not match the file's {}",
                file.meta.dimensions
            )));
        }
        if flags & VEXFS_INSERT_VALIDATE != 0 {
            if let Some(at) = rows.iter().position(|x| !x.is_finite()) {
                let d = dimensions as usize;
                return Err(einval(format!(
                    "vectors: vector {} element {} is {} (VALIDATE refuses NaN and Inf)",
                    at / d,
                    at % d,
                    rows[at]
                )));
            }
        }
        let row_bytes = layout::row_bytes(dimensions);
        let vectors_max = (FILE_VECTOR_BYTES_MAX / row_bytes).min(FILE_VECTORS_MAX as u64) as usize;
        let outcome = file
            .set
            .insert(rows, ids, flags & VEXFS_INSERT_NO_REPLACE != 0, vectors_max)
            .map_err(|refusal| match refusal {
                InsertRefusal::Exists(id) => Error::refused(
                    libc::EEXIST,
                    format!("vector_ids: id {id} is already stored (NO_REPLACE)"),
                ),
                InsertRefusal::TooLarge(why) => Error::refused(libc::EFBIG, why),
            })?;
        let index_was_current = file.index_generation == file.generation;
        file.changed();
        // Keep an index current by adding what was appended; a replaced
        // vector makes it stale (faiss cannot update one in place).
        if index_was_current && outcome.replaced == 0 {
            let d = dimensions as usize;
            let first = outcome.first_new_slot;
            let generation = file.generation;
            let VectorFile { index, set, .. } = &mut *file;
            let appended = set.len() - first;
            if index
                .as_ref()
                .is_some_and(|i| i.covered != first || !i.takes_more(appended))
            {
                // Rebuilt at the next search.
                *index = None;
            }
            if let Some(index) = index.as_mut() {
                match index.add(&set.rows()[first * d..]) {
                    Ok(()) => file.index_generation = generation,
                    Err(e) => {
                        eprintln!("vexfs: vector file {ino}: {e}; the index is rebuilt at the next search");
                        file.index = None;
                    }
                }
            }
        }
        Ok(())
    }

    pub fn delete_vectors(&self, ino: u64, ids: &[u64]) -> Result<u32> {
        self.check_writable()?;
        let file = self.vector_file(ino)?;
        let mut file = write_lock(&file);
        let removed = file.set.delete(ids);
        if removed > 0 {
            file.changed();
        }
        Ok(removed as u32)
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

    /// VECTOR_SEARCH: (id, value) pairs, best first.
    pub fn search_vectors(
        &self,
        ino: u64,
        query: &[f32],
        k: u32,
        search_type: u32,
    ) -> Result<Vec<(u64, f32)>> {
        let file = self.vector_file(ino)?;
        let choice = {
            let guard = read_lock(&file);
            if query.len() != guard.meta.dimensions as usize {
                return Err(einval(format!(
                    "dimensions: {} does not match the file's {}",
                    query.len(),
                    guard.meta.dimensions
                )));
            }
            if guard.set.is_empty() {
                return Ok(Vec::new());
            }
            self.index_choice(ino, guard.set.len())?
        };
        let k = k as usize;
        loop {
            let guard = read_lock(&file);
            if guard.index_serves(search_type, &choice) {
                let index = guard.index.as_ref().expect("checked by index_serves");
                let hits = index
                    .search(query, k)
                    .map_err(|e| Error::refused(libc::EIO, format!("faiss search failed: {e}")))?;
                return Ok(resolve_ids(&guard.set, &hits));
            }
            // The chosen index, current, but built for another metric.
            let other_metric = guard.index.as_ref().is_some_and(|i| {
                i.search_type != search_type
                    && i.factory == choice.factory
                    && guard.index_generation == guard.generation
            });
            if other_metric || guard.set.len() < k || guard.index_failed(search_type, &choice) {
                // The index was built for another metric (or cannot rank
                // more than it holds): a scan is exact and cheap enough.
                return Ok(guard.scan(query, k, search_type));
            }
            drop(guard);
            let mut guard = write_lock(&file);
            if !guard.index_serves(search_type, &choice) {
                if let Err(e) = self.prepare_index(ino, &mut guard, search_type, &choice) {
                    guard.failed = Some((choice.factory.clone(), search_type, guard.generation));
                    eprintln!(
                        "vexfs: vector file {ino}: index {:?}: {e}; answering by exact scan",
                        choice.factory
                    );
                    return Ok(guard.scan(query, k, search_type));
                }
            }
        }
    }

    fn index_choice(&self, ino: u64, count: usize) -> Result<IndexChoice> {
        let read_xattr = |name: &[u8]| -> Result<Option<String>> {
            match self.getxattr(ino, name) {
                Ok(value) if value.len() > INDEX_SPEC_BYTES_MAX => Err(einval(format!(
                    "{}: {} bytes, over the maximum of {INDEX_SPEC_BYTES_MAX}",
                    String::from_utf8_lossy(name),
                    value.len()
                ))),
                Ok(value) => Ok(Some(String::from_utf8_lossy(&value).into_owned())),
                Err(e) if e.errno() == libc::ENODATA => Ok(None),
                Err(e) => Err(e),
            }
        };
        let factory = read_xattr(XATTR_INDEX)?;
        let params = read_xattr(XATTR_SEARCH)?;
        IndexChoice::resolve(factory.as_deref(), params.as_deref(), count)
            .map_err(|e| einval(format!("{}: {e}", String::from_utf8_lossy(XATTR_SEARCH))))
    }

    /// Makes `file.index` serve `search_type` under `choice`: the stored index
    /// when it matches, else a new build.
    fn prepare_index(
        &self,
        ino: u64,
        file: &mut VectorFile,
        search_type: u32,
        choice: &IndexChoice,
    ) -> std::result::Result<(), String> {
        let d = file.meta.dimensions as usize;
        if let Some(index) = file
            .index
            .as_mut()
            .filter(|index| index.search_type == search_type && index.factory == choice.factory)
        {
            if file.index_generation == file.generation {
                // Only the search parameters changed.
                return index.set_params(&choice.params);
            }
        }
        let stored_matches = file.meta.index_bytes > 0
            && file.meta.index_generation == file.generation
            && file.meta.index_metric == search_type
            && file.meta.index_spec == choice.factory;
        if stored_matches && file.index.is_none() {
            match self.read_stored_index(ino, &file.meta, choice) {
                Ok(index) if index.covered == file.set.len() => {
                    file.index = Some(index);
                    file.index_generation = file.generation;
                    return Ok(());
                }
                Ok(_) => eprintln!("vexfs: vector file {ino}: stored index does not cover every vector; rebuilding"),
                Err(e) => eprintln!("vexfs: vector file {ino}: stored index unusable ({e}); rebuilding"),
            }
        }
        let index = VectorIndex::build(choice, file.set.rows(), d, search_type)?;
        file.index = Some(index);
        file.index_generation = file.generation;
        if !choice.is_flat() {
            // Worth keeping: the next write-back stores it.
            file.rewrite = true;
        }
        Ok(())
    }

    fn read_stored_index(
        &self,
        ino: u64,
        meta: &VectorMeta,
        choice: &IndexChoice,
    ) -> std::result::Result<VectorIndex, String> {
        let bytes = self
            .read(ino, meta.index_offset, meta.index_bytes as usize)
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 != meta.index_bytes || crc32c::crc32c(&bytes) != meta.index_crc {
            return Err("checksum mismatch".into());
        }
        VectorIndex::from_bytes(
            &bytes,
            meta.dimensions as usize,
            meta.index_metric,
            &meta.index_spec,
            &choice.params,
        )
    }
}

fn resolve_ids(set: &VectorSet, hits: &[Hit]) -> Vec<(u64, f32)> {
    hits.iter()
        .filter(|hit| hit.slot < set.len())
        .map(|hit| (set.ids()[hit.slot], hit.value))
        .collect()
}
