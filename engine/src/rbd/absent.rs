//! [`RbdDevice`] and [`RbdQueue`] in a build without the `rbd` feature:
//! the same names and methods, but no value of either can exist
//! ([`RbdDevice::open`] always fails, saying how to build with the feature),
//! so callers compile the same either way and never reach the bodies.

use std::os::fd::RawFd;

use crate::device::{BlockDevice, Geometry, IoOp};
use crate::error::Result;
use crate::queue::{BufferQueue, Completion, QueueConfig, QueueDevice};

/// No value: this build has no librbd.
#[derive(Clone, Copy, Debug)]
enum Absent {}

pub struct RbdDevice(Absent);

pub struct RbdQueue(Absent);

impl RbdDevice {
    /// Always fails: this build has no librbd (see [`super::RBD_NOT_BUILT`]).
    pub fn open(_spec: &str, _read_only: bool) -> Result<Self> {
        Err(super::not_built())
    }

    pub fn object_bytes(&self) -> u64 {
        match self.0 {}
    }

    pub fn read_only(&self) -> bool {
        match self.0 {}
    }

    pub fn spec(&self) -> &str {
        match self.0 {}
    }

    pub fn write_zeroes(&self, _offset: u64, _len: u64) -> Result<()> {
        match self.0 {}
    }

    pub fn written_bytes(&self, _offset: u64, _len: u64) -> Result<u64> {
        match self.0 {}
    }

    pub fn queue(&self, _config: &QueueConfig) -> Result<RbdQueue> {
        match self.0 {}
    }
}

impl BlockDevice for RbdDevice {
    fn geometry(&self) -> Geometry {
        match self.0 {}
    }
    fn submit(&self, _ops: &mut [IoOp<'_>]) -> Result<()> {
        match self.0 {}
    }
    fn flush(&self) -> Result<()> {
        match self.0 {}
    }
    fn discard(&self, _offset: u64, _len: u64) -> Result<()> {
        match self.0 {}
    }
    fn describe(&self) -> String {
        match self.0 {}
    }
}

impl QueueDevice for RbdDevice {
    fn dedicated_queue(&self, _config: &QueueConfig) -> Result<Box<dyn BufferQueue + '_>> {
        match self.0 {}
    }
}

impl RbdQueue {
    pub fn event_fd(&self) -> RawFd {
        match self.0 {}
    }

    pub fn in_flight(&self) -> usize {
        match self.0 {}
    }

    pub fn has_free_slot(&self) -> bool {
        match self.0 {}
    }

    pub fn flush(&mut self, _tag: u64) -> Result<()> {
        match self.0 {}
    }

    pub fn discard(&mut self, _offset: u64, _len: u64, _tag: u64) -> Result<()> {
        match self.0 {}
    }

    pub fn write_zeroes(&mut self, _offset: u64, _len: u64, _tag: u64) -> Result<()> {
        match self.0 {}
    }

    /// # Safety
    /// As the feature's `RbdQueue::read_raw`.
    pub unsafe fn read_raw(
        &mut self,
        _ptr: *mut u8,
        _len: usize,
        _offset: u64,
        _tag: u64,
    ) -> Result<()> {
        match self.0 {}
    }

    /// # Safety
    /// As the feature's `RbdQueue::write_raw`.
    pub unsafe fn write_raw(
        &mut self,
        _ptr: *const u8,
        _len: usize,
        _offset: u64,
        _fua: bool,
        _tag: u64,
    ) -> Result<()> {
        match self.0 {}
    }

    pub fn reap(&mut self, _on_done: impl FnMut(Completion)) -> usize {
        match self.0 {}
    }
}

impl BufferQueue for RbdQueue {
    fn depth(&self) -> usize {
        match self.0 {}
    }
    fn in_flight(&self) -> usize {
        match self.0 {}
    }
    fn buffer_count(&self) -> usize {
        match self.0 {}
    }
    fn buffer(&self, _index: usize) -> Option<&[u8]> {
        match self.0 {}
    }
    fn buffer_mut(&mut self, _index: usize) -> Option<&mut [u8]> {
        match self.0 {}
    }
    fn read_to_buffer(
        &mut self,
        _index: usize,
        _offset: u64,
        _len: usize,
        _tag: u64,
    ) -> Result<()> {
        match self.0 {}
    }
    fn write_from_buffer(
        &mut self,
        _index: usize,
        _offset: u64,
        _len: usize,
        _fua: bool,
        _tag: u64,
    ) -> Result<()> {
        match self.0 {}
    }
    fn flush(&mut self, _tag: u64) -> Result<()> {
        match self.0 {}
    }
    fn submit_and_wait(&mut self, _want: usize) -> Result<()> {
        match self.0 {}
    }
    fn reap(&mut self, _on_done: &mut dyn FnMut(Completion)) -> usize {
        match self.0 {}
    }
}
