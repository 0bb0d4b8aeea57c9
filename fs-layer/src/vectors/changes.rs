//! How a change to a file's rows reaches its index, off the request path.
//!
//! An insert or delete applies itself to the live index at once: appended
//! rows are added, a replaced row is added under a new label and its old
//! label becomes a tombstone, a deleted row's label becomes one (see
//! [`labels`](super::labels)). Searches never see a tombstone, so answers
//! stay exact with respect to every change and nothing waits for a build.
//! When tombstones pass [`TOMBSTONES_FRACTION_REBUILD`] of the labels, or a
//! graph index grew past twice what it was built over (its recall drops),
//! the builder thread makes a new index from the rows while the old one
//! keeps answering. Changes made meanwhile are logged and replayed onto the
//! new index before it replaces the old one, under the file's write lock,
//! in one step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::fs::Fs;
use crate::locks::RwLock;

use super::builder::Job;
use super::index::{IndexChoice, VectorIndex};
use super::labels::{TOMBSTONES_FRACTION_MAX, TOMBSTONES_FRACTION_REBUILD};
use super::spec::IndexSpec;
use super::VectorFile;

/// Row values a build's change log may hold (64 MiB).
pub const BUILD_LOG_FLOATS_MAX: usize = 16 << 20;
/// Changes a build's log may hold: they are replayed under the file's write
/// lock, as one step of [`FOLLOW_ROWS_MAX`](super::index::FOLLOW_ROWS_MAX).
/// A build outrun by more is thrown away, and asked for again by a later
/// change or search.
pub const BUILD_LOG_CHANGES_MAX: usize = super::index::FOLLOW_ROWS_MAX;

/// One change to a file's rows, in the order it was made.
pub(super) enum Change {
    /// A row appended at the next slot.
    Append(Vec<f32>),
    /// `slot` got a new row.
    Replace { slot: usize, row: Vec<f32> },
    /// The row at `hole` was deleted; the last row moved into it.
    Remove { hole: usize },
}

impl Change {
    fn floats(&self) -> usize {
        match self {
            Change::Append(row) | Change::Replace { row, .. } => row.len(),
            Change::Remove { .. } => 1,
        }
    }

    pub(super) fn apply(&self, index: &mut VectorIndex) -> Result<(), String> {
        match self {
            Change::Append(row) => index.add(row),
            Change::Replace { slot, row } => index.replace(*slot, row),
            Change::Remove { hole } => {
                index.remove(*hole);
                Ok(())
            }
        }
    }
}

/// The index a builder thread is making for a file.
pub(super) struct Build {
    /// Which job this is: a job that finds another serial here was superseded.
    pub serial: u64,
    pub factory: String,
    pub search_type: u32,
    /// Changes since the build was asked for; the builder notes how many
    /// there were when it copied the rows and replays the rest.
    pub log: Vec<Change>,
    log_floats: usize,
    /// The log passed [`BUILD_LOG_FLOATS_MAX`] and was dropped.
    pub overflowed: bool,
}

impl Build {
    pub(super) fn new(factory: String, search_type: u32) -> Build {
        static SERIALS: AtomicU64 = AtomicU64::new(1);
        Build {
            serial: SERIALS.fetch_add(1, Ordering::Relaxed),
            factory,
            search_type,
            log: Vec::new(),
            log_floats: 0,
            overflowed: false,
        }
    }

    fn record(&mut self, change: Change) {
        if self.overflowed {
            return;
        }
        self.log_floats += change.floats();
        if self.log_floats > BUILD_LOG_FLOATS_MAX || self.log.len() >= BUILD_LOG_CHANGES_MAX {
            self.overflowed = true;
            self.log = Vec::new();
        } else {
            self.log.push(change);
        }
    }
}

impl VectorFile {
    /// After an insert: the rows of `replaced` (slots that existed before
    /// it) changed and `first_new_slot..` were appended. `index_was_current`:
    /// the index covered every row before the insert.
    pub(super) fn follow_insert(
        &mut self,
        ino: u64,
        replaced: &[usize],
        first_new_slot: usize,
        index_was_current: bool,
    ) {
        let d = self.meta.dimensions as usize;
        let VectorFile {
            index,
            set,
            building,
            ..
        } = self;
        let appended = set.len() - first_new_slot;
        let applied = match index
            .as_mut()
            .filter(|i| index_was_current && i.follows(replaced.len() + appended))
        {
            None => Err(String::new()),
            Some(index) => replaced
                .iter()
                .try_for_each(|&slot| index.replace(slot, set.row(slot)))
                .and_then(|()| index.add(&set.rows()[first_new_slot * d..])),
        };
        if let Some(build) = building.as_mut() {
            for &slot in replaced {
                let row = set.row(slot).to_vec();
                build.record(Change::Replace { slot, row });
            }
            for row in set.rows()[first_new_slot * d..].chunks_exact(d) {
                build.record(Change::Append(row.to_vec()));
            }
        }
        self.index_followed(ino, applied);
    }

    /// After a delete that filled `holes`, in order, with the then-last row.
    pub(super) fn follow_delete(&mut self, ino: u64, holes: &[usize], index_was_current: bool) {
        let applied = match self.index.as_mut().filter(|_| index_was_current) {
            None => Err(String::new()),
            Some(index) => {
                holes.iter().for_each(|&hole| index.remove(hole));
                Ok(())
            }
        };
        if let Some(build) = self.building.as_mut() {
            for &hole in holes {
                build.record(Change::Remove { hole });
            }
        }
        self.index_followed(ino, applied);
    }

    /// The index is current after a change it followed; dropped (built
    /// again by the next search) when it could not follow.
    fn index_followed(&mut self, ino: u64, applied: Result<(), String>) {
        match applied {
            Ok(()) => self.index_generation = self.generation,
            Err(e) => {
                if self.index.take().is_some() && !e.is_empty() {
                    eprintln!(
                        "vexfs: vector file {ino}: {e}; the index is rebuilt at the next search"
                    );
                }
            }
        }
    }

    /// The index a rebuild of the current one must make.
    fn rebuild_due(&self) -> Option<(IndexChoice, u32)> {
        let index = self.index.as_ref()?;
        if self.building.is_some() || self.index_generation != self.generation {
            return None;
        }
        let due = index.tombstone_fraction() > TOMBSTONES_FRACTION_REBUILD || index.outgrown();
        if !due {
            return None;
        }
        let spec = IndexSpec::parse(&index.factory).ok()?;
        let choice = IndexChoice {
            spec,
            factory: index.factory.clone(),
            params: index.params,
        };
        Some((choice, index.search_type))
    }
}

impl Fs {
    /// After a change to `file` (whose write lock the caller holds through
    /// `guard`): asks the builder for a new index when the current one is
    /// due one, and answers with the current one meanwhile. Without a
    /// builder thread an index past [`TOMBSTONES_FRACTION_MAX`] is dropped
    /// (the next search builds one).
    pub(super) fn rebuild_if_due(
        &self,
        ino: u64,
        file: &Arc<RwLock<VectorFile>>,
        guard: &mut VectorFile,
    ) {
        let Some((choice, search_type)) = guard.rebuild_due() else {
            return;
        };
        let build = Build::new(choice.factory.clone(), search_type);
        let job = Job {
            ino,
            file: file.clone(),
            choice,
            search_type,
            serial: build.serial,
        };
        guard.building = Some(build);
        if !self.vectors.builder.submit(job) {
            guard.building = None;
            if guard
                .index
                .as_ref()
                .is_some_and(|i| i.tombstone_fraction() > TOMBSTONES_FRACTION_MAX || i.outgrown())
            {
                guard.index = None;
            }
        }
    }
}
