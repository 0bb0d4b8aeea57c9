//! Page-aligned heap buffers: what O_DIRECT and registered buffers need,
//! and the [`BufferPool`] a queue keeps of them.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::error::{Error, Result};

/// Most registered buffers one queue may own (buffer indexes are u16).
pub const QUEUE_BUFFERS_MAX: usize = 4096;

/// Alignment of every [`AlignedBuf`]: a page, which satisfies any
/// `dio_mem_align` a Linux device reports.
pub const BUFFER_ALIGN_BYTES: usize = 4096;

/// A zero-initialised, page-aligned byte buffer.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out &[u8]; mutation needs &mut self.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A buffer of `len` bytes (at least 1), all zero.
    pub fn zeroed(len: usize) -> Self {
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size (len is clamped to >= 1).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        Self { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), BUFFER_ALIGN_BYTES).expect("buffer size overflows")
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialised bytes while self lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with exactly this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

/// The buffer index of an I/O on caller memory rather than a pool buffer.
pub(crate) const NO_BUFFER: u16 = u16::MAX;

/// The buffers a queue owns, each free or lent to one I/O in flight.
/// Every backend's queue keeps one; the flags are what stop a caller from
/// touching (or reusing) a buffer the device is still reading or writing.
pub(crate) struct BufferPool {
    in_flight: Vec<bool>,
    buffers: Vec<AlignedBuf>,
}

impl BufferPool {
    /// `count` zeroed buffers of `bytes` each; `bytes` must be whole logical
    /// blocks up to the backend's per-I/O maximum `bytes_max`.
    pub(crate) fn new(
        count: usize,
        bytes: usize,
        logical_block_bytes: u32,
        bytes_max: usize,
    ) -> Result<Self> {
        if count > QUEUE_BUFFERS_MAX {
            return Err(Error::invalid(
                "buffer_count",
                format!("{count} is over the maximum of {QUEUE_BUFFERS_MAX}"),
            ));
        }
        if count > 0
            && (bytes == 0 || bytes > bytes_max || bytes % logical_block_bytes as usize != 0)
        {
            return Err(Error::invalid(
                "buffer_bytes",
                format!(
                    "{bytes} must be a multiple of the logical block size {logical_block_bytes} up to {bytes_max}"
                ),
            ));
        }
        Ok(Self {
            in_flight: vec![false; count],
            buffers: (0..count).map(|_| AlignedBuf::zeroed(bytes)).collect(),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.buffers.len()
    }

    /// Every buffer, in index order, in flight or not (for registering them).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &AlignedBuf> {
        self.buffers.iter()
    }

    /// The buffer, unless an I/O on it is in flight.
    pub(crate) fn get(&self, index: usize) -> Option<&[u8]> {
        match self.in_flight.get(index) {
            Some(false) => Some(&self.buffers[index]),
            _ => None,
        }
    }

    /// The buffer, unless an I/O on it is in flight.
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        match self.in_flight.get(index) {
            Some(false) => Some(&mut self.buffers[index]),
            _ => None,
        }
    }

    /// The address of buffer `index` for an I/O of `len` bytes, if the
    /// buffer exists, is free and is long enough. The buffer stays free
    /// until [`BufferPool::lend`]: a push that fails after this check
    /// leaves it untouched.
    pub(crate) fn check_free(&self, index: usize, len: usize) -> Result<usize> {
        match self.in_flight.get(index) {
            None => Err(Error::invalid(
                "buffer",
                format!(
                    "index {index} is past the {} buffers of this queue",
                    self.buffers.len()
                ),
            )),
            Some(true) => Err(Error::invalid(
                "buffer",
                format!("buffer {index} already has an I/O in flight"),
            )),
            Some(false) if len > self.buffers[index].len() => Err(Error::invalid(
                "length",
                format!(
                    "{len} is larger than buffer {index} ({} bytes)",
                    self.buffers[index].len()
                ),
            )),
            Some(false) => Ok(self.buffers[index].as_ptr() as usize),
        }
    }

    /// Marks `buffer` as lent to an I/O now in flight ([`NO_BUFFER`]: none).
    pub(crate) fn lend(&mut self, buffer: u16) {
        if buffer != NO_BUFFER {
            self.in_flight[buffer as usize] = true;
        }
    }

    /// Marks `buffer` free again once its I/O completed ([`NO_BUFFER`]: none).
    pub(crate) fn release(&mut self, buffer: u16) {
        if buffer != NO_BUFFER {
            self.in_flight[buffer as usize] = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_page_aligned_and_zeroed() {
        for len in [1, 512, 4096, 65536 + 512] {
            let buf = AlignedBuf::zeroed(len);
            assert_eq!(buf.as_ptr() as usize % BUFFER_ALIGN_BYTES, 0);
            assert_eq!(buf.len(), len);
            assert!(buf.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn pool_lends_each_buffer_to_one_io_at_a_time() {
        let mut pool = BufferPool::new(2, 4096, 512, 1 << 20).unwrap();
        assert_eq!(pool.len(), 2);
        let addr = pool.check_free(1, 4096).unwrap();
        assert_eq!(addr % BUFFER_ALIGN_BYTES, 0);
        assert!(pool.check_free(1, 4097).is_err());
        assert!(pool.check_free(2, 512).is_err());
        pool.lend(1);
        assert!(pool.get(1).is_none() && pool.get_mut(1).is_none());
        assert!(pool.check_free(1, 512).is_err());
        assert!(pool.get(0).is_some());
        pool.lend(NO_BUFFER);
        pool.release(1);
        assert!(pool.get_mut(1).is_some());
        assert!(BufferPool::new(1, 4000, 512, 1 << 20).is_err());
        assert!(BufferPool::new(1, 0, 512, 1 << 20).is_err());
        assert!(BufferPool::new(QUEUE_BUFFERS_MAX + 1, 512, 512, 1 << 20).is_err());
        assert!(BufferPool::new(0, 0, 512, 1 << 20).is_ok());
    }
}
