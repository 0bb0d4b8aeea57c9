//! The in-flight table both queues keep ([`crate::queue::Queue`] over
//! io_uring, [`crate::rbd::RbdQueue`] over librbd): one entry per I/O
//! handed to the backend and not yet reaped, found by its index (the SQE's
//! user data, the librbd callback's argument), and the indexes free for
//! the next I/O. Fixed at the queue's depth: nothing allocates per I/O.

use crate::error::{Error, Result};

pub(crate) struct Slots<T> {
    entries: Vec<Option<T>>,
    /// Free indexes; popped from the end, so the lowest is used first.
    free: Vec<u32>,
}

impl<T> Slots<T> {
    pub fn new(depth: u32) -> Self {
        Slots {
            entries: (0..depth).map(|_| None).collect(),
            free: (0..depth).rev().collect(),
        }
    }

    pub fn depth(&self) -> usize {
        self.entries.len()
    }

    pub fn in_flight(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// A free index, now in use (EINVAL naming the depth when none is).
    pub fn claim(&mut self) -> Result<u32> {
        self.free.pop().ok_or_else(|| {
            Error::invalid(
                "queue_depth",
                format!("all {} slots are in flight", self.entries.len()),
            )
        })
    }

    /// Gives back an index claimed but left empty (its I/O was refused).
    #[cfg_attr(not(feature = "rbd"), allow(dead_code))] // librbd's queue only
    pub fn unclaim(&mut self, index: u32) {
        debug_assert!(self.entries[index as usize].is_none());
        self.free.push(index);
    }

    pub fn set(&mut self, index: u32, entry: T) {
        self.entries[index as usize] = Some(entry);
    }

    /// The entry at `index`; panics when none is in flight there (a
    /// completion for an index never issued is a backend bug).
    pub fn get(&self, index: u32) -> &T {
        self.entries[index as usize]
            .as_ref()
            .expect("a completion for a slot that is not in flight")
    }

    pub fn get_mut(&mut self, index: u32) -> &mut T {
        self.entries[index as usize]
            .as_mut()
            .expect("a completion for a slot that is not in flight")
    }

    /// Empties the entry at `index` without freeing the index (it is
    /// reused or given back with [`unclaim`](Self::unclaim)).
    #[cfg_attr(not(feature = "rbd"), allow(dead_code))] // librbd's queue only
    pub fn clear(&mut self, index: u32) -> Option<T> {
        self.entries[index as usize].take()
    }

    /// The I/O at `index` is done: its entry, and the index is free again.
    pub fn finish(&mut self, index: u32) -> T {
        let entry = self.entries[index as usize]
            .take()
            .expect("a completion for a slot that is not in flight");
        self.free.push(index);
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_claimed_lowest_first_and_come_back() {
        let mut slots: Slots<&str> = Slots::new(2);
        assert_eq!((slots.depth(), slots.in_flight()), (2, 0));
        let a = slots.claim().unwrap();
        let b = slots.claim().unwrap();
        assert_eq!((a, b), (0, 1));
        assert!(!slots.has_free());
        let full = slots.claim().unwrap_err();
        assert_eq!(full.errno(), libc::EINVAL);
        assert!(full.to_string().contains("all 2 slots"), "{full}");
        slots.set(a, "a");
        slots.unclaim(b);
        assert_eq!(*slots.get(a), "a");
        assert_eq!(slots.finish(a), "a");
        assert_eq!(slots.in_flight(), 0);
    }
}
