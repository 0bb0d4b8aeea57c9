//! Whether the process a request works for still waits for its answer.
//!
//! The kernel tells a FUSE server that a caller was interrupted with a
//! FUSE_INTERRUPT request, but fuser 0.18 answers those itself with ENOSYS,
//! after which the kernel sends no more and a caller with a fatal signal
//! waits (in D state) for the daemon's answer. So a request that can wait
//! or work for long (for room in the request-memory budget, or scanning a
//! large file) asks the kernel about its caller instead: every
//! [`CALLER_CHECK_INTERVAL`] it reads `/proc/PID/status`, and once the caller
//! is dying (a fatal signal pending, a zombie, or gone) the request stops
//! before it changes anything and answers EINTR, which frees the caller.
//! A non-fatal signal does not interrupt a request (as on a `hard` NFS
//! mount): the caller's handler runs after the answer.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often a long request looks at its caller: the bound on how long a
/// killed caller waits for its answer, beside the longest step between two
/// checks.
pub const CALLER_CHECK_INTERVAL: Duration = Duration::from_millis(100);

const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);

/// The caller of one request, checked on the thread that serves it.
pub struct Interrupt {
    /// 0: no process waits (a request from the kernel, or the daemon's own work).
    pid: u32,
    next_check: Cell<Instant>,
}

impl Interrupt {
    /// Work no process waits for: never interrupted.
    pub fn never() -> Interrupt {
        Interrupt::for_caller(0)
    }

    /// The first look is [`CALLER_CHECK_INTERVAL`] after the request
    /// began: a short request never reads `/proc`.
    pub fn for_caller(pid: u32) -> Interrupt {
        Interrupt {
            pid,
            next_check: Cell::new(Instant::now() + CALLER_CHECK_INTERVAL),
        }
    }

    /// EINTR when the caller is dying; looks at most every [`CALLER_CHECK_INTERVAL`].
    pub fn check(&self) -> Result<()> {
        if self.pid == 0 {
            return Ok(());
        }
        let now = Instant::now();
        if now < self.next_check.get() {
            return Ok(());
        }
        self.next_check.set(now + CALLER_CHECK_INTERVAL);
        if caller_dying(self.pid) {
            return Err(Error::refused(
                libc::EINTR,
                format!(
                    "process {} that sent the request was killed; nothing was changed",
                    self.pid
                ),
            ));
        }
        Ok(())
    }

    /// Whether `check` is worth calling now (cheaper than `check` in a tight loop).
    pub fn due(&self) -> bool {
        self.pid != 0 && Instant::now() >= self.next_check.get()
    }
}

/// Whether process `pid` will never read an answer: it is gone, a zombie,
/// or has a fatal signal pending (the kernel marks a fatal signal as SIGKILL
/// pending on every thread of the dying process).
pub fn caller_dying(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    for line in status.lines() {
        if let Some(state) = line.strip_prefix("State:") {
            if matches!(state.trim_start().chars().next(), Some('Z' | 'X')) {
                return true;
            }
        } else if let Some(mask) = line
            .strip_prefix("SigPnd:")
            .or_else(|| line.strip_prefix("ShdPnd:"))
        {
            if u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & SIGKILL_BIT != 0) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_or_reaped_caller_is_dying_a_live_one_is_not() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        assert!(!caller_dying(pid));
        let interrupt = Interrupt::for_caller(pid);
        std::thread::sleep(CALLER_CHECK_INTERVAL);
        assert!(interrupt.check().is_ok());
        child.kill().unwrap();
        // Killed and not reaped yet: a zombie (or still dying).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !caller_dying(pid) {
            assert!(
                Instant::now() < deadline,
                "a killed child never looked dying"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Not looked at before its interval has passed, then EINTR.
        assert!(interrupt.check().is_ok());
        std::thread::sleep(CALLER_CHECK_INTERVAL);
        assert_eq!(
            interrupt.check().err().map(|e| e.errno()),
            Some(libc::EINTR)
        );
        child.wait().unwrap();
        assert!(caller_dying(pid));
        assert!(Interrupt::never().check().is_ok());
    }
}
