//! The bytes the daemon's vector requests may hold at once, whatever the
//! number of FUSE worker threads: a request takes what it will allocate
//! (the caller's vectors and ids, or the rows it returns) before it reads
//! anything from the caller, and gives it back when it ends. A request that
//! does not fit waits for others to finish, up to [`REQUEST_MEMORY_WAIT`],
//! then fails with ENOMEM. One request never needs more than
//! `REQUEST_BYTES_MAX` (256 MiB), so each always fits an idle budget.
//!
//! The counter sits behind a plain mutex with a condition variable: a leaf
//! held only to update it, never while another lock of the daemon is held
//! (requests take their grant before touching the filesystem).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::interrupt::{Interrupt, CALLER_CHECK_INTERVAL};

/// Bytes all requests of one mount may hold at once.
pub const REQUEST_MEMORY_BYTES_MAX: u64 = 1 << 30;
/// How long a request waits for room before ENOMEM.
pub const REQUEST_MEMORY_WAIT: Duration = Duration::from_secs(30);

pub struct RequestMemory {
    used: Mutex<u64>,
    freed: Condvar,
    bytes_max: u64,
    wait: Duration,
}

/// Bytes a request holds; given back on drop.
pub struct Grant<'a> {
    budget: &'a RequestMemory,
    bytes: u64,
}

impl Default for RequestMemory {
    fn default() -> Self {
        RequestMemory::new(REQUEST_MEMORY_BYTES_MAX, REQUEST_MEMORY_WAIT)
    }
}

impl RequestMemory {
    pub fn new(bytes_max: u64, wait: Duration) -> RequestMemory {
        RequestMemory {
            used: Mutex::new(0),
            freed: Condvar::new(),
            bytes_max,
            wait,
        }
    }

    fn lock(&self) -> MutexGuard<'_, u64> {
        // A counter cannot be left half-updated; a poisoned lock still
        // means a bug elsewhere, and the daemon's rule is to stop.
        self.used.lock().unwrap_or_else(|_| std::process::abort())
    }

    /// Takes `bytes`, waiting for room; ENOMEM names the request's size
    /// when none comes in time, EINTR ends the wait when the caller is killed.
    pub fn take(&self, bytes: u64, interrupt: &Interrupt) -> Result<Grant<'_>> {
        let refuse = |used: u64| {
            Error::refused(
                libc::ENOMEM,
                format!(
                    "a request of {bytes} bytes: requests in flight hold {used} of the daemon's {} bytes (REQUEST_MEMORY_BYTES_MAX)",
                    self.bytes_max
                ),
            )
        };
        if bytes > self.bytes_max {
            return Err(refuse(0));
        }
        let deadline = Instant::now() + self.wait;
        let mut used = self.lock();
        while *used + bytes > self.bytes_max {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(refuse(*used));
            }
            used = self
                .freed
                .wait_timeout(used, left.min(CALLER_CHECK_INTERVAL))
                .unwrap_or_else(|_| std::process::abort())
                .0;
            if interrupt.due() {
                // Not while holding the counter: reading /proc takes time.
                drop(used);
                interrupt.check()?;
                used = self.lock();
            }
        }
        *used += bytes;
        Ok(Grant {
            budget: self,
            bytes,
        })
    }

    /// Bytes held by requests now.
    pub fn used(&self) -> u64 {
        *self.lock()
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        *self.budget.lock() -= self.bytes;
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_waits_for_room_and_gets_it_when_another_ends() {
        let budget = RequestMemory::new(100, Duration::from_secs(10));
        let first = budget.take(80, &Interrupt::never()).unwrap();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| budget.take(50, &Interrupt::never()).map(|g| g.bytes));
            std::thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "50 more bytes do not fit beside 80");
            drop(first);
            assert_eq!(waiter.join().unwrap().unwrap(), 50);
        });
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn no_room_in_time_is_enomem_and_too_big_is_refused_at_once() {
        let budget = RequestMemory::new(100, Duration::from_millis(20));
        let _held = budget.take(60, &Interrupt::never()).unwrap();
        let err = budget.take(60, &Interrupt::never()).err().unwrap();
        assert_eq!(err.errno(), libc::ENOMEM);
        assert!(err.to_string().contains("60 bytes"), "{err}");
        assert_eq!(
            budget.take(101, &Interrupt::never()).err().unwrap().errno(),
            libc::ENOMEM
        );
        assert_eq!(budget.used(), 60);
    }

    #[test]
    fn a_waiting_request_whose_caller_is_killed_ends_with_eintr() {
        let budget = RequestMemory::new(100, Duration::from_secs(600));
        let _held = budget.take(60, &Interrupt::never()).unwrap();
        let mut caller = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("spawn sleep");
        let pid = caller.id();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                budget
                    .take(60, &Interrupt::for_caller(pid))
                    .err()
                    .map(|e| e.errno())
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "60 more bytes do not fit beside 60");
            caller.kill().unwrap();
            // Without the check it would wait the budget's 600 s.
            assert_eq!(waiter.join().unwrap(), Some(libc::EINTR));
        });
        caller.wait().unwrap();
        assert_eq!(budget.used(), 60);
    }
}
