//! What librbd's callback thread touches: per queue, an eventfd and a short
//! list of finished slots; per slot, the callback's argument.
//!
//! The callback ([`on_complete`]) locks the list, appends its slot, writes
//! the eventfd and unlocks: it never waits for the queue's owner. Writing
//! under the lock matters: once the owner has seen a slot in the list, the
//! callback is done with the eventfd, so the queue may be dropped (and the
//! descriptor closed) right after the last reap.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ffi;

/// Shared by the callback thread and the queue's owner.
pub(super) struct Signal {
    eventfd: OwnedFd,
    /// Slots whose aio finished, not yet reaped; never longer than the depth.
    done: Mutex<Vec<u32>>,
}

/// The callback's argument: one per slot, at a fixed address for the
/// queue's life.
pub(super) struct Wake {
    signal: *const Signal,
    slot: u32,
}

impl Signal {
    /// A signal for `depth` slots, and the callback argument of each slot
    /// (they point into the returned `Arc`, which must outlive every aio).
    pub fn new(depth: u32) -> io::Result<(Arc<Self>, Box<[Wake]>)> {
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let signal = Arc::new(Signal {
            // SAFETY: fd was just created and is owned by nothing else.
            eventfd: unsafe { OwnedFd::from_raw_fd(fd) },
            done: Mutex::new(Vec::with_capacity(depth as usize)),
        });
        let wakes = (0..depth)
            .map(|slot| Wake {
                signal: Arc::as_ptr(&signal),
                slot,
            })
            .collect();
        Ok((signal, wakes))
    }

    pub fn event_fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    pub fn done(&self) -> MutexGuard<'_, Vec<u32>> {
        self.done.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until a callback writes the eventfd (or did since the last read).
    pub fn wait(&self) -> io::Result<()> {
        let mut count = 0u64;
        loop {
            // SAFETY: reads 8 bytes into a live u64 from our open eventfd.
            let rc = unsafe { libc::read(self.event_fd(), (&mut count as *mut u64).cast(), 8) };
            if rc >= 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EINTR) {
                return Err(error);
            }
        }
    }
}

/// Runs on a librbd thread when an aio finishes; `arg` is its slot's [`Wake`].
pub(super) unsafe extern "C" fn on_complete(_completion: ffi::RbdCompletion, arg: *mut c_void) {
    // SAFETY: arg is a &Wake of the queue that issued this aio; the queue
    // (and so its Wakes and Signal) lives until it has reaped this slot,
    // which it cannot do before the push below.
    let wake = unsafe { &*(arg as *const Wake) };
    // SAFETY: as above.
    let signal = unsafe { &*wake.signal };
    let mut done = signal.done();
    // Capacity is the depth and a slot is listed at most once: no allocation.
    done.push(wake.slot);
    let one = 1u64;
    // An eventfd write only fails when the counter would overflow (2^64 - 2
    // pending wakes); the slot is in the list either way.
    // SAFETY: writes 8 bytes from a live u64 to the queue's open eventfd.
    let _ = unsafe { libc::write(signal.event_fd(), (&one as *const u64).cast(), 8) };
    drop(done);
}
