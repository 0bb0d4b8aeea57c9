//! The queues a device lends to calling threads, one call each: idle ones
//! are reused, new ones are made up to a limit, and a caller beyond the
//! limit waits for one to come back. [`crate::UringDevice`] pools rings and
//! [`crate::RbdDevice`] pools librbd queues this way.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex};

use crate::error::Result;

struct Lent<Q> {
    idle: Vec<Q>,
    /// Queues that exist: idle, lent, or being made.
    open: usize,
}

pub(crate) struct QueuePool<Q> {
    lent: Mutex<Lent<Q>>,
    queue_returned: Condvar,
    queues_max: usize,
}

impl<Q> QueuePool<Q> {
    /// A pool holding `first` (made at open, so that a device which cannot
    /// make queues fails there), growing to `queues_max` queues at most.
    pub(crate) fn new(first: Q, queues_max: usize) -> Self {
        assert!(
            queues_max >= 1,
            "a queue pool holds at least its first queue"
        );
        Self {
            lent: Mutex::new(Lent {
                idle: vec![first],
                open: 1,
            }),
            queue_returned: Condvar::new(),
            queues_max,
        }
    }

    /// An idle queue, else a new one from `make` while under the limit,
    /// else the next one returned. Making happens outside the lock.
    pub(crate) fn checkout(&self, make: impl FnOnce() -> Result<Q>) -> Result<PooledQueue<'_, Q>> {
        let mut lent = self.lent.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(queue) = lent.idle.pop() {
                return Ok(PooledQueue {
                    pool: self,
                    queue: Some(queue),
                });
            }
            if lent.open < self.queues_max {
                lent.open += 1;
                drop(lent);
                return match make() {
                    Ok(queue) => Ok(PooledQueue {
                        pool: self,
                        queue: Some(queue),
                    }),
                    Err(e) => {
                        self.lent.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
                        self.queue_returned.notify_one();
                        Err(e)
                    }
                };
            }
            lent = self
                .queue_returned
                .wait(lent)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A queue borrowed from the pool; goes back on drop.
pub(crate) struct PooledQueue<'a, Q> {
    pool: &'a QueuePool<Q>,
    queue: Option<Q>,
}

impl<Q> Deref for PooledQueue<'_, Q> {
    type Target = Q;
    fn deref(&self) -> &Q {
        self.queue.as_ref().expect("checked-out queue")
    }
}

impl<Q> DerefMut for PooledQueue<'_, Q> {
    fn deref_mut(&mut self) -> &mut Q {
        self.queue.as_mut().expect("checked-out queue")
    }
}

impl<Q> Drop for PooledQueue<'_, Q> {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            let mut lent = self.pool.lent.lock().unwrap_or_else(|e| e.into_inner());
            lent.idle.push(queue);
            drop(lent);
            self.pool.queue_returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn pool_reuses_grows_to_its_limit_and_forgets_failed_makes() {
        let pool = QueuePool::new(0u32, 2);
        let first = pool
            .checkout(|| unreachable!("an idle queue is reused"))
            .unwrap();
        assert_eq!(*first, 0);
        assert!(pool
            .checkout(|| Err(Error::invalid("queue", "refused")))
            .is_err());
        let second = pool.checkout(|| Ok(1)).unwrap();
        assert_eq!(*second, 1);
        drop(first);
        let again = pool
            .checkout(|| unreachable!("the returned queue is reused"))
            .unwrap();
        assert_eq!(*again, 0);
    }
}
