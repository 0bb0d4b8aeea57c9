//! The daemon's locks and the one order they are taken in.
//!
//! Every lock in the filesystem has a rank; a thread takes locks in rising
//! rank only, and never two of the same rank at once:
//!
//! | rank | lock | guards |
//! |---|---|---|
//! | 1 | [`Rank::VectorFile`] | one vector file's vectors, ids and index in memory |
//! | 2 | [`Rank::FileIo`] | one file's data (readers share, a writer excludes) |
//! | 3 | [`Rank::Commit`] | one commit at a time, from seal to checkpoint |
//! | 4 | [`Rank::Gate`] | the commit gate: data writers shared, a seal exclusive |
//! | 5 | [`Rank::Meta`] | the store: cache, tree, bitmap, running transaction |
//! | 6 | [`Rank::Table`] | the maps of resident files, vector files and open handles |
//!
//! Tables are leaves: nothing is taken while one is held. So is the
//! request-memory counter (`budget.rs`, a mutex and condition variable of
//! its own), which a request takes before any of these. A `try_` lock
//! cannot wait, so it cannot close a cycle: it is exempt from the order
//! (and recorded, so that what it holds is checked against later locks).
//!
//! Debug builds (every test, every daemon the tests mount) check the order
//! at each acquisition and panic naming both locks. A poisoned lock means a
//! thread panicked half-way through a change: the daemon aborts rather than
//! let half-applied metadata reach the journal; the next mount recovers the
//! last commit from the journal.

use std::cell::RefCell;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    VectorFile = 1,
    FileIo = 2,
    Commit = 3,
    Gate = 4,
    Meta = 5,
    Table = 6,
}

thread_local! {
    /// Ranks this thread holds, in the order it took them.
    static HELD: RefCell<Vec<Rank>> = const { RefCell::new(Vec::new()) };
}

/// Proof that this thread holds a lock of `rank`; forgets it on drop.
struct Held {
    #[cfg(debug_assertions)]
    rank: Rank,
}

impl Held {
    fn take(rank: Rank, waits: bool) -> Held {
        #[cfg(debug_assertions)]
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if waits {
                if let Some(highest) = held.iter().max().filter(|h| **h >= rank) {
                    panic!(
                        "lock order violated: taking {rank:?} while holding {highest:?} \
                         (src/locks.rs gives the order)"
                    );
                }
            }
            held.push(rank);
        });
        #[cfg(not(debug_assertions))]
        let _ = (rank, waits, &HELD);
        Held {
            #[cfg(debug_assertions)]
            rank,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(at) = held.iter().rposition(|r| *r == self.rank) {
                held.remove(at);
            }
        });
    }
}

fn poisoned(rank: Rank) -> ! {
    eprintln!(
        "vexfs: a thread panicked holding the {rank:?} lock; aborting so that no \
         half-applied change is committed (the next mount replays the journal)"
    );
    std::process::abort()
}

pub struct Mutex<T> {
    rank: Rank,
    inner: std::sync::Mutex<T>,
}

pub struct MutexGuard<'a, T> {
    guard: std::sync::MutexGuard<'a, T>,
    _held: Held,
}

impl<T> Mutex<T> {
    pub fn new(rank: Rank, value: T) -> Mutex<T> {
        Mutex {
            rank,
            inner: std::sync::Mutex::new(value),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        let held = Held::take(self.rank, true);
        let guard = self.inner.lock().unwrap_or_else(|_| poisoned(self.rank));
        MutexGuard { guard, _held: held }
    }

    /// The lock if nobody holds it now; never waits.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.inner.try_lock() {
            Ok(guard) => Some(MutexGuard {
                guard,
                _held: Held::take(self.rank, false),
            }),
            Err(std::sync::TryLockError::WouldBlock) => None,
            Err(std::sync::TryLockError::Poisoned(_)) => poisoned(self.rank),
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(Rank::Table, T::default())
    }
}

impl<T> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

pub struct RwLock<T> {
    rank: Rank,
    inner: std::sync::RwLock<T>,
}

pub struct ReadGuard<'a, T> {
    guard: std::sync::RwLockReadGuard<'a, T>,
    _held: Held,
}

pub struct WriteGuard<'a, T> {
    guard: std::sync::RwLockWriteGuard<'a, T>,
    _held: Held,
}

impl<T> RwLock<T> {
    pub fn new(rank: Rank, value: T) -> RwLock<T> {
        RwLock {
            rank,
            inner: std::sync::RwLock::new(value),
        }
    }

    pub fn read(&self) -> ReadGuard<'_, T> {
        let held = Held::take(self.rank, true);
        let guard = self.inner.read().unwrap_or_else(|_| poisoned(self.rank));
        ReadGuard { guard, _held: held }
    }

    pub fn write(&self) -> WriteGuard<'_, T> {
        let held = Held::take(self.rank, true);
        let guard = self.inner.write().unwrap_or_else(|_| poisoned(self.rank));
        WriteGuard { guard, _held: held }
    }

    /// The write lock if nobody holds the lock now; never waits.
    pub fn try_write(&self) -> Option<WriteGuard<'_, T>> {
        match self.inner.try_write() {
            Ok(guard) => Some(WriteGuard {
                guard,
                _held: Held::take(self.rank, false),
            }),
            Err(std::sync::TryLockError::WouldBlock) => None,
            Err(std::sync::TryLockError::Poisoned(_)) => poisoned(self.rank),
        }
    }
}

impl<T> std::ops::Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rising_ranks_are_allowed_and_released_out_of_order() {
        let file = RwLock::new(Rank::FileIo, ());
        let meta = Mutex::new(Rank::Meta, ());
        let table = Mutex::new(Rank::Table, ());
        let io = file.write();
        let st = meta.lock();
        drop(io);
        let t = table.lock();
        drop(st);
        drop(t);
        // Everything was forgotten: the lowest rank may be taken again.
        let _io = file.read();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order violated: taking Gate while holding Meta")]
    fn a_lower_rank_under_a_higher_one_panics() {
        let gate = RwLock::new(Rank::Gate, ());
        let meta = Mutex::new(Rank::Meta, ());
        let _st = meta.lock();
        let _gate = gate.read();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "taking FileIo while holding FileIo")]
    fn two_locks_of_one_rank_panic() {
        let a = RwLock::new(Rank::FileIo, ());
        let b = RwLock::new(Rank::FileIo, ());
        let _a = a.read();
        let _b = b.read();
    }

    #[test]
    fn a_try_lock_may_go_against_the_order() {
        let file = RwLock::new(Rank::VectorFile, ());
        let meta = Mutex::new(Rank::Meta, ());
        let _st = meta.lock();
        assert!(file.try_write().is_some());
    }
}
