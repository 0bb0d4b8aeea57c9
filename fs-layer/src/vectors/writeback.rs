//! Writing a vector file back into its own bytes (FORMAT.md §13): changed
//! rows and ids, the header, a stored index, then the VectorMeta item and
//! the size, all in one transaction, never over bytes the committed item
//! still describes.

use crate::btree;
use crate::error::{Error, Result};
use crate::format::{Key, Kind, BLOCK_BYTES_U64, INODE_FLAG_VECTOR};
use crate::fs::{now, Fs};

use super::labels::TOMBSTONES_FRACTION_MAX;
use super::layout::{self, VectorMeta, CAPACITY_MIN, INDEX_SPEC_BYTES_MAX};
use super::{capacity_for, write_lock, VectorFile, WRITE_CHUNK_BYTES};

impl Fs {
    /// Writes every changed vector file back (the periodic write-back,
    /// syncfs and unmount) and lets go of those no descriptor has open.
    /// Files another thread holds are left for the next round, so a
    /// write-back started from inside a vector request never waits on
    /// itself. A file that fails does not stop the others; the first
    /// failure is returned.
    pub(crate) fn write_back_vectors(&self) -> Result<()> {
        let mut first_error = None;
        for (ino, file) in self.vectors.all() {
            let Some(mut guard) = file.try_write() else {
                continue;
            };
            if guard.dirty() {
                if let Err(e) = self.write_back(ino, &mut guard) {
                    eprintln!("vexfs: writing back vector file {ino}: {e}");
                    first_error.get_or_insert(e);
                    continue;
                }
            }
            if self.open_count(ino) == 0 {
                self.vectors.evict(ino, &file, &guard);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes `ino` back if it is a vector file with changes (before fsync,
    /// and before its bytes are read or its size reported).
    pub fn write_back_vector_file(&self, ino: u64) -> Result<()> {
        if let Some(file) = self.vectors.get(ino) {
            let mut file = write_lock(&file);
            if file.dirty() {
                self.write_back(ino, &mut file)?;
            }
        }
        Ok(())
    }

    /// The last descriptor of `ino` closed: write it back and let it go,
    /// unless a request still holds it (then the periodic write-back or a
    /// later close lets it go). A file whose write-back failed stays in
    /// memory, its vectors unlost, and is tried again.
    pub(crate) fn vector_file_closed(&self, ino: u64) -> Result<()> {
        let Some(file) = self.vectors.get(ino) else {
            return Ok(());
        };
        let mut guard = write_lock(&file);
        if guard.dirty() {
            self.write_back(ino, &mut guard)?;
        }
        self.vectors.evict(ino, &file, &guard);
        Ok(())
    }

    /// `truncate(0)` / `O_TRUNC` of a vector file: drop the vectors, keep the layout.
    pub(crate) fn clear_vector_file(&self, ino: u64) -> Result<()> {
        let file = self.vector_file(ino)?;
        let mut file = write_lock(&file);
        file.set.clear();
        file.payloads.clear();
        let (ids_offset, index_offset) = layout::regions(file.meta.dimensions, CAPACITY_MIN);
        file.meta.capacity = CAPACITY_MIN;
        file.meta.ids_offset = ids_offset;
        file.meta.index_offset = index_offset;
        file.meta.vector_count = 0;
        file.rewrite = true;
        file.truncate_first = true;
        file.changed_all();
        self.write_back(ino, &mut file)
    }

    /// Writes rows, ids, header and (when worth it) the index, then the
    /// VectorMeta item and the size, all in one transaction. The blocks it
    /// needs are reserved first: without them it fails with ENOSPC having
    /// changed nothing. A failure after its first change (a device error)
    /// stops the filesystem's commits, so the half-written file never
    /// reaches the journal and the next mount finds the last commit.
    pub(super) fn write_back(&self, ino: u64, file: &mut VectorFile) -> Result<()> {
        let plan = Plan::of(file);
        let index_bytes = self.index_to_store(ino, file, plan.ids_moved);
        let need = plan.blocks(file.meta.dimensions);
        let index_blocks = index_bytes
            .as_ref()
            .map_or(0, |b| (b.len() as u64).div_ceil(BLOCK_BYTES_U64) + 1);
        let index_bytes = match self.reserve_write_back(ino, need + index_blocks) {
            Ok(()) => index_bytes,
            Err(e) if e.errno() == libc::ENOSPC && index_blocks > 0 => {
                // The index is a cache of the vectors: without room for it
                // the vectors are stored alone and it is rebuilt on demand.
                eprintln!("vexfs: vector file {ino}: no room to store its index ({e})");
                self.reserve_write_back(ino, need)?;
                None
            }
            Err(e) => return Err(e),
        };
        let result = {
            let state = self.file_state(ino);
            let _io = state.io.write();
            let _gate = self.gate.read();
            // Under the data lock the inode cannot be freed (free_if_unused)
            // nor written by write(2).
            match self.getattr(ino) {
                Err(e) => Err((e, false)),
                Ok(record) if !file.stored && record.flags & INODE_FLAG_VECTOR != 0 => Err((
                    Error::refused(libc::EEXIST, "the file is a vector file already"),
                    false,
                )),
                Ok(record) if !file.stored && record.size != 0 => Err((
                    Error::refused(
                        libc::EBUSY,
                        format!(
                            "the file holds {} bytes that are not vectors; truncate it first",
                            record.size
                        ),
                    ),
                    false,
                )),
                Ok(_) => self
                    .write_planned(ino, file, &plan, index_bytes)
                    .map_err(|e| (e, true)),
            }
        };
        let released = self.lock().reserve(ino, 0);
        match result {
            Ok(()) => released,
            Err((e, half_way)) => {
                if half_way {
                    self.stop_commits(format!("writing back vector file {ino} failed: {e}"));
                }
                Err(e)
            }
        }
    }

    /// Reserves `blocks` for the next write-back of `ino`; when only blocks
    /// freed by the running transaction are missing, commits to free them.
    pub(super) fn reserve_write_back(&self, ino: u64, blocks: u64) -> Result<()> {
        let first = self.lock().reserve(ino, blocks);
        match first {
            Err(e) if e.errno() == libc::ENOSPC && self.lock().has_pending_frees() => {
                self.commit()?;
                self.lock().reserve(ino, blocks)
            }
            other => other,
        }
    }

    /// The serialised index to store with this write-back: a current,
    /// non-exact one not stored yet. None keeps what is stored if it is
    /// still current, and stores no index otherwise.
    fn index_to_store(&self, ino: u64, file: &VectorFile, ids_moved: bool) -> Option<Vec<u8>> {
        let meta = &file.meta;
        let index = file.index.as_ref().filter(|index| {
            file.index_generation == file.generation
                && index.tombstone_fraction() <= TOMBSTONES_FRACTION_MAX
                && super::spec::IndexSpec::parse(&index.factory)
                    .is_ok_and(|spec| super::stored::loadable(&spec))
                && index.factory.len() <= INDEX_SPEC_BYTES_MAX
                && !(meta.index_bytes > 0
                    && meta.index_generation == file.generation
                    && meta.index_metric == index.search_type
                    && meta.index_spec == index.factory
                    && !ids_moved)
        })?;
        let faiss = index
            .to_bytes()
            .inspect_err(|e| eprintln!("vexfs: vector file {ino}: cannot serialise the index: {e}"))
            .ok()?;
        Some(match index.labels() {
            Some(labels) => {
                let mut bytes = super::stored::encode_label_map(labels);
                bytes.extend_from_slice(&faiss);
                bytes
            }
            None => faiss,
        })
    }

    /// The write-back proper, under the file's data lock and the commit gate.
    fn write_planned(
        &self,
        ino: u64,
        file: &mut VectorFile,
        plan: &Plan,
        index_bytes: Option<Vec<u8>>,
    ) -> Result<()> {
        let d = file.meta.dimensions as usize;
        let row_bytes = layout::row_bytes(file.meta.dimensions);
        if file.truncate_first {
            // An older layout's bytes go; everything is written afresh.
            self.truncate_locked(ino, 0)?;
        }
        let mut rows_bytes = Vec::new();
        let mut ids_bytes = Vec::new();
        let slots_per_chunk = (WRITE_CHUNK_BYTES / row_bytes as usize).max(1);
        for &(start, end) in &plan.runs {
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
                if !plan.ids_moved {
                    self.write_ids(
                        ino,
                        plan.ids_offset,
                        &file.set.ids()[at..stop],
                        at,
                        &mut ids_bytes,
                    )?;
                }
                at = stop;
            }
        }
        if plan.ids_moved {
            // The id region moved past the grown rows: write it whole.
            self.write_ids(ino, plan.ids_offset, file.set.ids(), 0, &mut ids_bytes)?;
        }

        let mut meta = file.meta.clone();
        meta.vector_count = plan.count;
        meta.capacity = plan.capacity;
        meta.ids_offset = plan.ids_offset;
        meta.index_offset = plan.index_offset;
        meta.next_id = file.set.next_id();
        meta.generation = file.generation;
        let keep_stored =
            meta.index_bytes > 0 && meta.index_generation == file.generation && !plan.ids_moved;
        match (index_bytes, file.index.as_ref()) {
            (Some(bytes), Some(index)) => {
                self.write_fresh_locked(ino, plan.index_offset, &bytes)?;
                meta.index_bytes = bytes.len() as u64;
                meta.index_crc = crc32c::crc32c(&bytes);
                meta.index_generation = file.generation;
                meta.index_metric = index.search_type;
                meta.index_label_map = index.labels().is_some();
                meta.index_spec = index.factory.clone();
            }
            _ if keep_stored => {}
            _ => {
                meta.index_bytes = 0;
                meta.index_crc = 0;
                meta.index_generation = 0;
                meta.index_metric = layout::METRIC_NONE;
                meta.index_label_map = false;
                meta.index_spec.clear();
            }
        }
        self.write_payloads(ino, file, &mut meta)?;
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
            if record.flags & INODE_FLAG_VECTOR == 0 {
                record.flags |= INODE_FLAG_VECTOR;
                record.ctime = now();
                Fs::put_inode(&mut st, ino, &record)?;
            }
            btree::insert(&mut st, Key::new(ino, Kind::VectorMeta, 0), meta.encode())?;
        }
        file.meta = meta;
        file.set.mark_persisted();
        file.payloads.mark_written();
        file.rewrite = false;
        file.truncate_first = false;
        file.stored = true;
        Ok(())
    }

    /// The payload region (FORMAT.md §13.6) after the index as `meta` now
    /// places it: rewritten into fresh blocks when a payload changed or the
    /// stored index before it changed length, left alone otherwise.
    fn write_payloads(&self, ino: u64, file: &VectorFile, meta: &mut VectorMeta) -> Result<()> {
        let moved =
            file.meta.payload_bytes > 0 && meta.payload_offset() != file.meta.payload_offset();
        if !(file.payloads.is_changed() || moved || file.truncate_first) {
            return Ok(());
        }
        if file.payloads.is_empty() {
            meta.payload_bytes = 0;
            meta.payload_count = 0;
            meta.payload_crc = 0;
            return Ok(());
        }
        let region = file.payloads.encode();
        self.write_fresh_locked(ino, meta.payload_offset(), &region)?;
        meta.payload_bytes = region.len() as u64;
        meta.payload_count = file.payloads.len() as u64;
        meta.payload_crc = crc32c::crc32c(&region);
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

/// What a write-back writes: runs of slots whose rows (and ids, unless the
/// id region moves) go out, and where the regions lie afterwards. Made
/// from the file alone, so the space a write-back needs is known before it
/// starts, and at every insert.
pub(super) struct Plan {
    /// [start, end) slot ranges, ascending.
    runs: Vec<(usize, usize)>,
    count: u64,
    capacity: u64,
    ids_offset: u64,
    index_offset: u64,
    ids_moved: bool,
    /// The payload region as it stands: any write-back may rewrite it
    /// (the index before it can change length), so its blocks are counted.
    payload_bytes: u64,
}

impl Plan {
    pub(super) fn of(file: &VectorFile) -> Plan {
        let count = file.set.len() as u64;
        let capacity = capacity_for(file.meta.capacity, count);
        let (ids_offset, index_offset) = layout::regions(file.meta.dimensions, capacity);
        let ids_moved = ids_offset != file.meta.ids_offset;
        let mut runs: Vec<(usize, usize)> = Vec::new();
        if file.truncate_first {
            if count > 0 {
                runs.push((0, count as usize));
            }
        } else {
            let (changed, appended) = file.set.unpersisted();
            // Runs of consecutive slots go out as one write.
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
        }
        Plan {
            runs,
            count,
            capacity,
            ids_offset,
            index_offset,
            ids_moved,
            payload_bytes: file.payloads.region_bytes(),
        }
    }

    /// At most the blocks a write-back of `file` needs once `rows` more
    /// rows are inserted, `replaced` of them over stored ones: known before
    /// the insert changes anything. The new rows lie after the last slot
    /// (ids too); each replaced row may sit in blocks of its own; a grown
    /// capacity moves the whole id region.
    pub(super) fn blocks_after_insert(file: &VectorFile, rows: u64, replaced: u64) -> u64 {
        let row_bytes = layout::row_bytes(file.meta.dimensions);
        let blocks_per_row = row_bytes.div_ceil(BLOCK_BYTES_U64) + 1;
        let appended = rows.saturating_sub(replaced);
        let count = file.set.len() as u64;
        let rows_blocks =
            (appended * row_bytes).div_ceil(BLOCK_BYTES_U64) + 1 + replaced * blocks_per_row;
        let ids_blocks = (rows * 8).div_ceil(BLOCK_BYTES_U64) + 1 + replaced;
        let moved_ids_blocks = if capacity_for(file.meta.capacity, count + appended)
            != capacity_for(file.meta.capacity, count)
        {
            ((count + appended) * 8).div_ceil(BLOCK_BYTES_U64) + 1
        } else {
            0
        };
        Plan::of(file).blocks(file.meta.dimensions) + rows_blocks + ids_blocks + moved_ids_blocks
    }

    /// At most the blocks a write-back of `file` needs once `deleted`
    /// stored rows are deleted: each moves one row and its id.
    pub(super) fn blocks_after_delete(file: &VectorFile, deleted: u64) -> u64 {
        let row_bytes = layout::row_bytes(file.meta.dimensions);
        let blocks_per_row = row_bytes.div_ceil(BLOCK_BYTES_U64) + 1;
        Plan::of(file).blocks(file.meta.dimensions) + deleted * (blocks_per_row + 1)
    }

    /// Blocks the write-back allocates for rows, ids and the header block:
    /// it writes each of them into a fresh block (the committed ones stay
    /// until its commit), so every block it touches counts once.
    pub(super) fn blocks(&self, dimensions: u32) -> u64 {
        let row_bytes = layout::row_bytes(dimensions);
        let mut blocks = Blocks::default();
        for &(start, end) in &self.runs {
            blocks.add(
                layout::DATA_OFFSET + start as u64 * row_bytes,
                layout::DATA_OFFSET + end as u64 * row_bytes,
            );
        }
        let mut ids = Blocks::default();
        if self.ids_moved {
            ids.add(self.ids_offset, self.ids_offset + self.count * 8);
        } else {
            for &(start, end) in &self.runs {
                ids.add(
                    self.ids_offset + start as u64 * 8,
                    self.ids_offset + end as u64 * 8,
                );
            }
        }
        blocks.total + ids.total + 1 + payload_blocks(self.payload_bytes)
    }
}

/// Blocks a payload region of `bytes` may take (it starts on a block
/// boundary, §13.6).
pub(super) fn payload_blocks(bytes: u64) -> u64 {
    if bytes == 0 {
        0
    } else {
        bytes.div_ceil(BLOCK_BYTES_U64)
    }
}

/// Distinct blocks under ascending byte ranges.
#[derive(Default)]
struct Blocks {
    total: u64,
    last: Option<u64>,
}

impl Blocks {
    fn add(&mut self, start: u64, end: u64) {
        if end <= start {
            return;
        }
        let mut first = start / BLOCK_BYTES_U64;
        let last = (end - 1) / BLOCK_BYTES_U64;
        if self.last.is_some_and(|l| l >= first) {
            first = self.last.map_or(first, |l| l + 1);
        }
        if first <= last {
            self.total += last - first + 1;
        }
        self.last = Some(self.last.map_or(last, |l| l.max(last)));
    }
}
