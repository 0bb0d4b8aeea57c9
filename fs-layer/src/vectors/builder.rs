//! Index builds off the request path. Building HNSW over 100,000 vectors
//! takes tens of seconds here (over 1,000,000, minutes); a search that did
//! it while holding the file's write lock stalled every request on the
//! file for that long, and a caller killed meanwhile stayed in D state
//! until the build ended (FUSE cannot abandon a request the daemon holds).
//!
//! So a file of more than [`SYNC_BUILD_VECTORS_MAX`] vectors that needs a
//! first index gets it from this thread: the search that noticed hands over
//! a job and is answered by an exact scan, as every search is until the
//! index is in place. A rebuild ([`changes`](super::changes): tombstones
//! or growth) comes here too, whatever the file's size, and the old index
//! answers meanwhile. The thread copies the rows under the file's read
//! lock, builds with no lock held, then under the write lock replays the
//! changes logged since the copy and installs the index. A job whose file
//! has since asked for another build (or dropped its rows) is skipped.
//! One thread per mount, one build at a time.
//!
//! After a build, and when a search put an index in place itself, the
//! thread also asks for the index's memory in huge pages
//! ([`huge_pages`](super::huge_pages)); the kernel copies every block it
//! collapses, so that stays off the request path too.

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use crate::locks::RwLock;

use super::huge_pages;
use super::index::{IndexChoice, VectorIndex};
use super::{read_lock, write_lock, VectorFile};

/// Vectors above which a new index is built in the background.
pub const SYNC_BUILD_VECTORS_MAX: usize = 20_000;

/// One index to build for one file.
pub(super) struct Job {
    pub ino: u64,
    pub file: Arc<RwLock<VectorFile>>,
    pub choice: IndexChoice,
    pub search_type: u32,
    /// The [`Build`](super::changes::Build) it is for.
    pub serial: u64,
}

/// What the builder thread is asked to do.
enum Work {
    Build(Job),
    /// An index was put in place on the request path: its memory in huge pages.
    HugePages,
}

/// The mount's builder thread, started with its first job; it ends when
/// the mount's [`VectorFiles`](super::VectorFiles) are dropped.
#[derive(Default)]
pub(super) struct Builder {
    jobs: OnceLock<Option<mpsc::Sender<Work>>>,
}

impl Builder {
    /// Hands `job` to the builder thread; false when there is no thread
    /// (it could not be started), and the caller builds itself.
    pub(super) fn submit(&self, job: Job) -> bool {
        self.send(Work::Build(job))
    }

    /// Asks the builder thread to put index memory in huge pages; nothing
    /// happens where there is no thread.
    pub(super) fn huge_pages_later(&self) {
        self.send(Work::HugePages);
    }

    fn send(&self, work: Work) -> bool {
        let sender = self.jobs.get_or_init(|| {
            let (sender, jobs) = mpsc::channel::<Work>();
            let started = std::thread::Builder::new()
                .name("vexfs-index".into())
                .spawn(move || {
                    while let Ok(work) = jobs.recv() {
                        match work {
                            Work::Build(job) => build(job),
                            Work::HugePages => collapse_index_memory(),
                        }
                    }
                });
            match started {
                Ok(_) => Some(sender),
                Err(e) => {
                    eprintln!("vexfs: cannot start the index builder ({e}); searches build indexes themselves");
                    None
                }
            }
        });
        sender.as_ref().is_some_and(|s| s.send(work).is_ok())
    }
}

fn collapse_index_memory() {
    let collapsed = huge_pages::collapse_resident();
    if collapsed.bytes > 0 {
        eprintln!(
            "vexfs: index memory: {} MiB more in huge pages",
            collapsed.bytes >> 20
        );
    }
}

fn build(job: Job) {
    let (rows, dimensions, log_start) = {
        let file = read_lock(&job.file);
        let Some(build) = file.building.as_ref().filter(|b| b.serial == job.serial) else {
            return; // superseded before it started
        };
        (
            file.set.rows().to_vec(),
            file.meta.dimensions as usize,
            build.log.len(),
        )
    };
    let built = VectorIndex::build(&job.choice, &rows, dimensions, job.search_type);
    drop(rows);
    if built.is_ok() {
        // Before the write lock: requests go on meanwhile.
        collapse_index_memory();
    }
    let mut file = write_lock(&job.file);
    let Some(build) = file.building.take_if(|b| b.serial == job.serial) else {
        return; // superseded while it ran: its rows are not the file's
    };
    let mut index = match built {
        Ok(index) => index,
        Err(e) => {
            eprintln!(
                "vexfs: vector file {}: building {:?}: {e}; searches stay exact",
                job.ino, job.choice.factory
            );
            let generation = file.generation;
            file.failed = Some((job.choice.factory.clone(), job.search_type, generation));
            return;
        }
    };
    if build.overflowed {
        eprintln!(
            "vexfs: vector file {}: more changes than its log holds ({} changes, {} values) while {:?} was built; built again when next asked",
            job.ino,
            super::changes::BUILD_LOG_CHANGES_MAX,
            super::changes::BUILD_LOG_FLOATS_MAX,
            job.choice.factory
        );
        return;
    }
    if let Err(e) = build.log[log_start..]
        .iter()
        .try_for_each(|change| change.apply(&mut index))
    {
        eprintln!(
            "vexfs: vector file {}: {e}; rebuilt at a later search",
            job.ino
        );
        return;
    }
    if index.covered != file.set.len() {
        debug_assert!(
            false,
            "a replayed index covers {} of {} rows",
            index.covered,
            file.set.len()
        );
        return;
    }
    file.index = Some(index);
    file.index_generation = file.generation;
    // Worth keeping: the next write-back stores it.
    file.rewrite = true;
}
