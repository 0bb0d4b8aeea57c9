//! The requests on one vector file that change or read its vectors:
//! SET_VECTOR_META / GET_VECTOR_META, BATCH_INSERT, DELETE_VECTORS and
//! GET_VECTORS, each checked whole and with its write-back's space
//! reserved before anything changes.

use std::sync::Arc;

use vexfs_uapi::*;

use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::locks::{Mutex, Rank, RwLock};

use super::layout::{self, VectorMeta};
use super::payloads::Payloads;
use super::set::{InsertRefusal, VectorSet};
use super::writeback::Plan;
use super::{
    einval, from_refusal, read_lock, write_lock, VectorFile, FILE_VECTORS_MAX,
    FILE_VECTOR_BYTES_MAX,
};

impl Fs {
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
                    matches: Mutex::new(Rank::Table, super::matches::MatchesCache::default()),
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
    pub(super) fn insert_locked(
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
