//! The daemon's committer thread: an fsync waits for its commit here, not
//! on a FUSE worker thread.
//!
//! A commit is device I/O (flush, journal, flush, then the checkpoint:
//! about a millisecond here; an fsync is answered before the checkpoint).
//! When each fsync waited for it on its worker, eight clients fsyncing at
//! once held every worker, and a `stat` or `create`
//! from anyone queued behind them. So a worker that finds a commit running
//! hands the fsync's answer to this thread and goes back to serve the next
//! request (with no commit running it commits itself: a lone fsync pays no
//! thread hop). The thread takes
//! every answer waiting, runs one [`Fs::commit_through`] to the latest
//! transaction any of them needs (none when a commit already covered
//! them), and gives each its result: a group commit with one thread blocked. The thread ends
//! when the [`Committer`] is dropped, after answering what it holds.

use std::sync::mpsc;
use std::sync::Arc;

use crate::error::Error;
use crate::fs::Fs;

/// An fsync's answer, given once its commit is durable (or failed).
pub type Answer = Box<dyn FnOnce(&Result<(), Error>) + Send>;

/// Fsyncs waiting at once beyond which a worker commits itself: the
/// queue holds answers, not data, but nothing in the daemon is unbounded.
pub const WAITING_MAX: usize = 4096;

/// An answer and the transaction its commit must reach.
struct Waiting {
    needed: u64,
    answer: Answer,
}

pub struct Committer {
    waiting: mpsc::SyncSender<Waiting>,
}

impl Committer {
    /// Starts the thread; Err when it cannot be started.
    pub fn start(fs: Arc<Fs>) -> std::io::Result<Committer> {
        let (waiting, answers) = mpsc::sync_channel::<Waiting>(WAITING_MAX);
        std::thread::Builder::new()
            .name("vexfs-commit".into())
            .spawn(move || {
                while let Ok(first) = answers.recv() {
                    let mut batch = vec![first];
                    batch.extend(answers.try_iter());
                    // One commit reaching the latest transaction any of them
                    // needs (none when the last commit already did).
                    let needed = batch.iter().map(|w| w.needed).max().unwrap_or(0);
                    // Answered once durable, before the checkpoint; a failed
                    // checkpoint stopped commits and was logged.
                    let _ = fs.commit_through_then(needed, |result| {
                        for waiting in batch {
                            (waiting.answer)(result);
                        }
                    });
                }
            })?;
        Ok(Committer { waiting })
    }

    /// Queues `answer` for the commit that covers transaction `needed`
    /// (from [`Fs::transaction_now`], taken after the caller's changes);
    /// gives it back when the queue is full (the caller commits itself).
    pub fn after_commit(&self, needed: u64, answer: Answer) -> Result<(), Answer> {
        self.waiting
            .try_send(Waiting { needed, answer })
            .map_err(|e| match e {
                mpsc::TrySendError::Full(w) | mpsc::TrySendError::Disconnected(w) => w.answer,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ROOT_INO;
    use crate::mkfs::{mkfs, MkfsOptions};
    use crate::MountOptions;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};
    use vexfs_engine::{BlockDevice, Geometry, IoOp, RamDevice};

    /// A RAM device that, once armed, holds the first write submitted
    /// after the commit's second flush (the checkpoint) until released.
    struct HeldCheckpoint {
        ram: RamDevice,
        armed: AtomicBool,
        flushes: AtomicUsize,
        holding: AtomicBool,
        released: (Mutex<bool>, Condvar),
    }

    impl HeldCheckpoint {
        fn release(&self) {
            *self.released.0.lock().unwrap() = true;
            self.released.1.notify_all();
        }
    }

    impl BlockDevice for HeldCheckpoint {
        fn geometry(&self) -> Geometry {
            self.ram.geometry()
        }
        fn submit(&self, ops: &mut [IoOp<'_>]) -> vexfs_engine::Result<()> {
            let writes = ops.iter().any(|op| matches!(op, IoOp::Write { .. }));
            if writes
                && self.armed.load(Ordering::SeqCst)
                && self.flushes.load(Ordering::SeqCst) == 2
            {
                self.holding.store(true, Ordering::SeqCst);
                let mut released = self.released.0.lock().unwrap();
                while !*released {
                    released = self.released.1.wait(released).unwrap();
                }
                self.holding.store(false, Ordering::SeqCst);
            }
            self.ram.submit(ops)
        }
        fn flush(&self) -> vexfs_engine::Result<()> {
            if self.armed.load(Ordering::SeqCst) {
                self.flushes.fetch_add(1, Ordering::SeqCst);
            }
            self.ram.flush()
        }
        fn discard(&self, offset: u64, len: u64) -> vexfs_engine::Result<()> {
            self.ram.discard(offset, len)
        }
        fn describe(&self) -> String {
            "RAM, checkpoint held".into()
        }
    }

    #[test]
    fn an_fsync_is_answered_once_durable_before_the_checkpoint() {
        let held = Arc::new(HeldCheckpoint {
            ram: RamDevice::new(64 << 20, 4096).unwrap(),
            armed: AtomicBool::new(false),
            flushes: AtomicUsize::new(0),
            holding: AtomicBool::new(false),
            released: (Mutex::new(false), Condvar::new()),
        });
        let dev: Arc<dyn BlockDevice> = held.clone();
        mkfs(dev.as_ref(), &MkfsOptions::default()).unwrap();
        let fs = Arc::new(Fs::open(dev, &MountOptions::default()).unwrap());
        fs.mknod(ROOT_INO, b"f", libc::S_IFREG | 0o644, 0, 0, 0)
            .unwrap();
        let needed = fs.transaction_now();
        held.armed.store(true, Ordering::SeqCst);
        let (answered, answer) = mpsc::channel();
        let committing = {
            let fs = fs.clone();
            std::thread::spawn(move || {
                fs.commit_through_then(needed, |result| {
                    answered.send(result.is_ok()).unwrap();
                })
            })
        };
        let ok = answer.recv_timeout(std::time::Duration::from_secs(30));
        // The answer is sent just before the checkpoint's first write, on
        // the same thread: that write is then held, and the checkpoint
        // cannot end before the release below, whenever it is reached.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !held.holding.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let held_then = held.holding.load(Ordering::SeqCst);
        held.release();
        assert_eq!(
            ok,
            Ok(true),
            "the fsync was not answered while the checkpoint waited"
        );
        assert!(held_then, "no checkpoint write was held after the answer");
        assert!(fs.lock().durable_transaction() >= needed);
        committing.join().unwrap().unwrap();
        held.armed.store(false, Ordering::SeqCst);
        fs.unmount().unwrap();
    }

    #[test]
    fn every_queued_answer_gets_a_commit_that_covers_its_changes() {
        let dev: Arc<dyn BlockDevice> = Arc::new(RamDevice::new(64 << 20, 4096).unwrap());
        mkfs(dev.as_ref(), &MkfsOptions::default()).unwrap();
        let fs = Arc::new(Fs::open(dev, &MountOptions::default()).unwrap());
        let committer = Committer::start(fs.clone()).unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let (done, finished) = mpsc::channel();
        for i in 0..64 {
            fs.mknod(
                ROOT_INO,
                format!("f{i}").as_bytes(),
                libc::S_IFREG | 0o644,
                0,
                0,
                0,
            )
            .unwrap();
            let (fs, answered, done) = (fs.clone(), answered.clone(), done.clone());
            let needed = fs.transaction_now();
            let answer: Answer = Box::new(move |result| {
                assert!(result.is_ok(), "{result:?}");
                assert!(fs.lock().durable_transaction() >= needed);
                answered.fetch_add(1, Ordering::SeqCst);
                done.send(()).unwrap();
            });
            assert!(committer.after_commit(needed, answer).is_ok());
        }
        for _ in 0..64 {
            finished
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("an fsync was never answered");
        }
        assert_eq!(answered.load(Ordering::SeqCst), 64);
    }
}
