//! Writing a vector file back into its own bytes (FORMAT.md §13): changed
//! rows and ids, the header, a stored index, then the VectorMeta item and
//! the size, all in one transaction, never over bytes the committed item
//! still describes.

use crate::btree;
use crate::error::{Error, Result};
use crate::format::{Key, Kind, INODE_FLAG_VECTOR};
use crate::fs::{now, Fs};

use super::layout::{self, CAPACITY_MIN, INDEX_SPEC_BYTES_MAX};
use super::{capacity_for, write_lock, VectorFile, WRITE_CHUNK_BYTES};

impl Fs {
    /// Writes every changed vector file back (the periodic write-back and sync).
    /// Files another thread holds are left for the next round, so a write-back
    /// started from inside a vector request never waits on itself.
    pub(crate) fn write_back_vectors(&self) -> Result<()> {
        for (ino, file) in self.vectors.all() {
            let Ok(mut file) = file.try_write() else {
                continue;
            };
            if file.dirty() {
                self.write_back(ino, &mut file, false)?;
            }
        }
        Ok(())
    }

    /// Writes `ino` back if it is a vector file with changes (before fsync,
    /// and before its bytes are read or its size reported).
    pub fn write_back_vector_file(&self, ino: u64) -> Result<()> {
        if let Some(file) = self.vectors.get(ino) {
            let mut file = write_lock(&file);
            if file.dirty() {
                self.write_back(ino, &mut file, false)?;
            }
        }
        Ok(())
    }

    /// The last descriptor of `ino` closed: write it back and let it go.
    pub(crate) fn vector_file_closed(&self, ino: u64) -> Result<()> {
        if self.vectors.get(ino).is_none() {
            return Ok(());
        }
        let result = self.write_back_vector_file(ino);
        self.vectors.forget(ino);
        result
    }

    /// `truncate(0)` / `O_TRUNC` of a vector file: drop the vectors, keep the layout.
    pub(crate) fn clear_vector_file(&self, ino: u64) -> Result<()> {
        let file = self.vector_file(ino)?;
        let mut file = write_lock(&file);
        file.set.clear();
        file.index = None;
        let (ids_offset, index_offset) = layout::regions(file.meta.dimensions, CAPACITY_MIN);
        file.meta.capacity = CAPACITY_MIN;
        file.meta.ids_offset = ids_offset;
        file.meta.index_offset = index_offset;
        file.meta.vector_count = 0;
        file.rewrite = true;
        file.truncate_first = true;
        file.changed();
        self.write_back(ino, &mut file, false)
    }

    /// Writes rows, ids, header and (when worth it) the index, then the
    /// VectorMeta item and the size, all in one transaction.
    pub(super) fn write_back(&self, ino: u64, file: &mut VectorFile, first: bool) -> Result<()> {
        let state = self.file_state(ino);
        let _io = state.io.write().unwrap_or_else(|p| p.into_inner());
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());

        let d = file.meta.dimensions as usize;
        let row_bytes = layout::row_bytes(file.meta.dimensions);
        let count = file.set.len() as u64;
        let capacity = capacity_for(file.meta.capacity, count);
        let (ids_offset, index_offset) = layout::regions(file.meta.dimensions, capacity);
        let ids_moved = ids_offset != file.meta.ids_offset;
        if file.truncate_first {
            // An older layout's bytes go; everything is written afresh.
            self.truncate_locked(ino, 0)?;
            file.set.mark_all_changed();
        }

        let (changed, appended) = file.set.unpersisted();
        let mut rows_bytes = Vec::new();
        let mut ids_bytes = Vec::new();
        // Changed slots: runs of consecutive slots go out as one write.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for slot in changed {
            match runs.last_mut() {
                Some((_, end)) if *end == slot => *end += 1,
                _ => runs.push((slot, slot + 1)),
            }
        }
        if !appended.is_empty() {
            match runs.last_mut() {
                Some((_, end)) if *end == appended.start => *end = appended.end,
                _ => runs.push((appended.start, appended.end)),
            }
        }
        let slots_per_chunk = (WRITE_CHUNK_BYTES / row_bytes as usize).max(1);
        for (start, end) in runs {
            let mut at = start;
            while at < end {
                let stop = end.min(at + slots_per_chunk);
                rows_bytes.clear();
                for value in &file.set.rows()[at * d..stop * d] {
                    rows_bytes.extend_from_slice(&value.to_le_bytes());
                }
                self.write_fresh_locked(
                    ino,
                    layout::DATA_OFFSET + at as u64 * row_bytes,
                    &rows_bytes,
                )?;
                if !ids_moved {
                    self.write_ids(
                        ino,
                        ids_offset,
                        &file.set.ids()[at..stop],
                        at,
                        &mut ids_bytes,
                    )?;
                }
                at = stop;
            }
        }
        if ids_moved {
            // The id region moved past the grown rows: write it whole.
            self.write_ids(ino, ids_offset, file.set.ids(), 0, &mut ids_bytes)?;
        }

        let mut meta = file.meta.clone();
        meta.vector_count = count;
        meta.capacity = capacity;
        meta.ids_offset = ids_offset;
        meta.index_offset = index_offset;
        meta.next_id = file.set.next_id();
        meta.generation = file.generation;
        // The index: store a current, non-exact one; keep a stored one that
        // is still current; otherwise store none.
        let store_index = file.index.as_ref().filter(|index| {
            file.index_generation == file.generation
                && index.factory != "Flat"
                && index.factory.len() <= INDEX_SPEC_BYTES_MAX
                && !(meta.index_bytes > 0
                    && meta.index_generation == file.generation
                    && meta.index_metric == index.search_type
                    && meta.index_spec == index.factory
                    && !ids_moved)
        });
        let keep_stored =
            meta.index_bytes > 0 && meta.index_generation == file.generation && !ids_moved;
        if let Some(index) = store_index {
            match index.to_bytes() {
                Ok(bytes) => {
                    self.write_fresh_locked(ino, index_offset, &bytes)?;
                    meta.index_bytes = bytes.len() as u64;
                    meta.index_crc = crc32c::crc32c(&bytes);
                    meta.index_generation = file.generation;
                    meta.index_metric = index.search_type;
                    meta.index_spec = index.factory.clone();
                }
                Err(e) => {
                    eprintln!("vexfs: vector file {ino}: cannot serialise the index: {e}");
                    meta.index_bytes = 0;
                }
            }
        } else if !keep_stored {
            meta.index_bytes = 0;
            meta.index_crc = 0;
            meta.index_generation = 0;
            meta.index_metric = layout::METRIC_NONE;
            meta.index_spec.clear();
        }
        meta.check()
            .map_err(|e| Error::corrupt("vector metadata", ino, format!("about to write: {e}")))?;
        self.write_fresh_locked(ino, 0, &layout::header_block(&meta))?;
        let size = meta.file_bytes();
        if self.getattr(ino)?.size != size {
            self.truncate_locked(ino, size)?;
        }
        {
            let mut st = self.lock();
            let mut record = Fs::inode(&mut st, ino)?;
            if first || record.flags & INODE_FLAG_VECTOR == 0 {
                record.flags |= INODE_FLAG_VECTOR;
                record.ctime = now();
                Fs::put_inode(&mut st, ino, &record)?;
            }
            btree::insert(&mut st, Key::new(ino, Kind::VectorMeta, 0), meta.encode())?;
        }
        file.meta = meta;
        file.set.mark_persisted();
        file.rewrite = false;
        file.truncate_first = false;
        Ok(())
    }

    /// Ids of slots `first..first + ids.len()`.
    fn write_ids(
        &self,
        ino: u64,
        ids_offset: u64,
        ids: &[u64],
        first: usize,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        for (chunk_index, chunk) in ids.chunks(WRITE_CHUNK_BYTES / 8).enumerate() {
            buf.clear();
            for id in chunk {
                buf.extend_from_slice(&id.to_le_bytes());
            }
            let slot = first + chunk_index * (WRITE_CHUNK_BYTES / 8);
            self.write_fresh_locked(ino, ids_offset + slot as u64 * 8, buf)?;
        }
        Ok(())
    }
}
