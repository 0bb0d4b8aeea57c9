//! Durability: how changes become durable, top to bottom. A change is
//! made in memory (the running transaction of the store, file data written
//! to its blocks under the commit gate); `commit` makes it durable; `sync`
//! also writes every vector file back first; `unmount` leaves nothing to
//! replay. The on-disk order of one commit is FORMAT.md §4's; here is who
//! waits for whom.

use std::sync::atomic::Ordering;

use crate::committer::Answer;
use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::locks::MutexGuard;

impl Fs {
    /// EIO once commits have stopped.
    pub(crate) fn check_running(&self) -> Result<()> {
        match self.stopped.get() {
            Some(why) => Err(Error::refused(
                libc::EIO,
                format!("the filesystem stopped committing ({why}); unmount and mount again to recover its last commit"),
            )),
            None => Ok(()),
        }
    }

    /// A change failed half-way through the running transaction, which now
    /// holds part of it: from here on nothing is committed (ext4's
    /// errors=remount-ro), so the device keeps the last commit, which the
    /// next mount finds.
    pub(crate) fn stop_commits(&self, why: String) {
        eprintln!(
            "vexfs: {why}; no further commits: unmount and mount again to recover the last commit"
        );
        let _ = self.stopped.set(why);
    }

    /// Commits everything: file data written so far, every vector file's
    /// vectors and all metadata are durable on return.
    pub fn sync(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.write_back_vectors()?;
        self.commit()
    }

    /// Commits the running transaction: file data written and metadata
    /// changed so far are durable on return. Vector files not written back
    /// are not part of it (fsync writes back its own file first).
    ///
    /// The pipeline, one commit at a time (the commit lock):
    /// 1. A commit that started after the caller's changes and has finished
    ///    covers them: return (group commit: concurrent fsyncs share one).
    /// 2. Seal, under the gate (exclusive: no data write is half-way) and
    ///    the metadata lock: the running transaction's blocks are encoded
    ///    and the next transaction starts. Both locks are let go at once.
    /// 3. Device I/O with neither lock held: flush, journal, flush
    ///    (FORMAT.md §4). Readers and writers of every file go on in the
    ///    next transaction meanwhile. The transaction is durable: callers
    ///    of [`commit_through_then`](Self::commit_through_then) are
    ///    answered here, before the checkpoint.
    /// 4. The checkpoint (home writes), still under the commit lock: the
    ///    next commit writes the journal again only after it.
    /// 5. Done, under the metadata lock: blocks the transaction freed
    ///    become reusable.
    ///
    /// A failed write leaves the device with the previous commit and stops
    /// further commits (the next mount recovers from the journal).
    pub fn commit(&self) -> Result<()> {
        let needed = self.lock().transaction();
        self.commit_through(needed)
    }

    /// The transaction a commit must reach to cover the changes made so far.
    pub fn transaction_now(&self) -> u64 {
        self.lock().transaction()
    }

    /// [`commit`](Self::commit) of the changes made before transaction
    /// `needed` (from [`transaction_now`](Self::transaction_now)) began:
    /// returns at once when a commit already covered them.
    pub fn commit_through(&self, needed: u64) -> Result<()> {
        self.commit_through_then(needed, |_| {})
    }

    /// [`commit_through`](Self::commit_through) that calls `durable` with
    /// the outcome as soon as it is known: once the changes are durable,
    /// before the checkpoint that follows (an fsync is answered there).
    /// The return value adds a failed checkpoint, which stops commits.
    pub fn commit_through_then(
        &self,
        needed: u64,
        durable: impl FnOnce(&Result<()>),
    ) -> Result<()> {
        if self.read_only {
            let done = Ok(());
            durable(&done);
            return done;
        }
        if let Err(e) = self.check_running() {
            let failed = Err(e);
            durable(&failed);
            return failed;
        }
        let commit = self.commit_lock.lock();
        self.commit_holding(needed, commit, durable)
    }

    /// [`commit_through_then`](Self::commit_through_then) when no commit
    /// is running now; `answer` comes back untouched when one is.
    pub fn try_commit_through_then(&self, needed: u64, answer: Answer) -> Option<Answer> {
        if self.read_only {
            answer(&Ok(()));
            return None;
        }
        if let Err(e) = self.check_running() {
            answer(&Err(e));
            return None;
        }
        let Some(commit) = self.commit_lock.try_lock() else {
            return Some(answer);
        };
        // A failed checkpoint was logged and stopped commits; the answer had its outcome.
        let _ = self.commit_holding(needed, commit, answer);
        None
    }

    /// The pipeline from step 1, the commit lock held; `durable` is called
    /// exactly once, at step 3 or at the failure that ends the commit.
    fn commit_holding(
        &self,
        needed: u64,
        _commit: MutexGuard<'_, ()>,
        durable: impl FnOnce(&Result<()>),
    ) -> Result<()> {
        let mut durable = Some(durable);
        if self.lock().durable_transaction() >= needed {
            return answer_once(Ok(()), &mut durable);
        }
        if let Err(e) = self.check_running() {
            return answer_once(Err(e), &mut durable);
        }
        let started = std::time::Instant::now();
        let (sealed, unflushed) = {
            let _gate = self.gate.write();
            let mut st = self.lock();
            let unflushed = self.data_unflushed.swap(false, Ordering::SeqCst);
            match st.seal() {
                Ok(sealed) => (sealed, unflushed),
                Err(e) => {
                    self.data_unflushed.store(unflushed, Ordering::SeqCst);
                    drop(st);
                    return answer_once(Err(e), &mut durable);
                }
            }
        };
        if let Err(e) = sealed.write_journal(self.dev.as_ref(), unflushed) {
            self.stop_commits(format!("commit I/O failed: {e}"));
            return answer_once(Err(e), &mut durable);
        }
        self.lock().sealed_durable(&sealed);
        self.metrics
            .commit(started.elapsed(), sealed.journal_blocks());
        let _ = answer_once(Ok(()), &mut durable);
        if let Err(e) = sealed.write_home(self.dev.as_ref()) {
            // The transaction is durable in the journal; the next mount
            // replays it. Commits stop so the journal is not overwritten.
            self.stop_commits(format!("checkpoint I/O failed: {e}"));
            return Err(e);
        }
        self.lock().sealed_done(sealed);
        Ok(())
    }

    /// Called after each change with no lock held: commits early when the
    /// running transaction nears half the journal.
    pub(crate) fn commit_if_large(&self) -> Result<()> {
        if self.lock().wants_commit() {
            self.sync()?;
        }
        Ok(())
    }

    /// Writes everything back; the image is consistent when this returns.
    pub fn unmount(&self) -> Result<()> {
        self.sync()?;
        let _commit = self.commit_lock.lock();
        let _gate = self.gate.write();
        self.lock().retire_journal()
    }
}

/// Calls the pending `durable` (if not yet called) with `result`; returns it.
fn answer_once<F: FnOnce(&Result<()>)>(result: Result<()>, durable: &mut Option<F>) -> Result<()> {
    if let Some(durable) = durable.take() {
        durable(&result);
    }
    result
}
