//! The process a vector request came from, and its memory: read and
//! written with `process_vm_readv`/`process_vm_writev` on the pid the
//! kernel put in the FUSE request, EFAULT naming the field when any byte
//! is out of its reach.

use std::io::IoSliceMut;

use crate::error::{Error, Result};

/// The process a request came from. Its buffers are reached with
/// `process_vm_readv`/`process_vm_writev` on the pid the kernel put in the
/// FUSE request, so the daemon touches no other process's memory.
pub struct Caller {
    pub pid: u32,
}

pub(super) fn efault(what: &str, addr: u64, len: usize, detail: impl std::fmt::Display) -> Error {
    Error::refused(
        libc::EFAULT,
        format!("{what}: cannot access {len} bytes at {addr:#x} in the caller: {detail}"),
    )
}

impl Caller {
    /// Fills `buf` from the caller's `addr`; EFAULT names `what` when any byte is unreachable.
    pub(super) fn read_into(&self, what: &str, addr: u64, buf: &mut [u8]) -> Result<()> {
        if self.pid == 0 {
            return Err(efault(
                what,
                addr,
                buf.len(),
                "request has no calling process",
            ));
        }
        let mut done = 0;
        while done < buf.len() {
            let remote = libc::iovec {
                iov_base: (addr as usize).wrapping_add(done) as *mut libc::c_void,
                iov_len: buf.len() - done,
            };
            let mut local = [IoSliceMut::new(&mut buf[done..])];
            // SAFETY: the local iovec covers memory we own (IoSliceMut has the
            // iovec layout); the remote one is only dereferenced by the kernel,
            // which checks it against the caller's address space.
            let n = unsafe {
                libc::process_vm_readv(
                    self.pid as libc::pid_t,
                    local.as_mut_ptr() as *const libc::iovec,
                    1,
                    &remote,
                    1,
                    0,
                )
            };
            match n {
                n if n > 0 => done += n as usize,
                0 => return Err(efault(what, addr, buf.len(), "short read")),
                _ => {
                    return Err(efault(
                        what,
                        addr,
                        buf.len(),
                        std::io::Error::last_os_error(),
                    ))
                }
            }
        }
        Ok(())
    }

    pub(super) fn write_from(&self, what: &str, addr: u64, data: &[u8]) -> Result<()> {
        if self.pid == 0 {
            return Err(efault(
                what,
                addr,
                data.len(),
                "request has no calling process",
            ));
        }
        let mut done = 0;
        while done < data.len() {
            let local = libc::iovec {
                iov_base: data[done..].as_ptr() as *mut libc::c_void,
                iov_len: data.len() - done,
            };
            let remote = libc::iovec {
                iov_base: (addr as usize).wrapping_add(done) as *mut libc::c_void,
                iov_len: data.len() - done,
            };
            // SAFETY: the local iovec covers `data` (only read by the kernel);
            // the remote one is checked by the kernel against the caller.
            let n = unsafe {
                libc::process_vm_writev(self.pid as libc::pid_t, &local, 1, &remote, 1, 0)
            };
            match n {
                n if n > 0 => done += n as usize,
                0 => return Err(efault(what, addr, data.len(), "short write")),
                _ => {
                    return Err(efault(
                        what,
                        addr,
                        data.len(),
                        std::io::Error::last_os_error(),
                    ))
                }
            }
        }
        Ok(())
    }

    pub(super) fn read_f32s(&self, what: &str, addr: u64, count: usize) -> Result<Vec<f32>> {
        let mut values = vec![0f32; count];
        // SAFETY: any 4 bytes are a valid f32; the byte view covers exactly the Vec's elements.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr() as *mut u8, count * 4) };
        self.read_into(what, addr, bytes)?;
        // x86-64 is little-endian, as the ABI is; the bytes are the values.
        Ok(values)
    }

    pub(super) fn read_u64s(&self, what: &str, addr: u64, count: usize) -> Result<Vec<u64>> {
        let mut values = vec![0u64; count];
        // SAFETY: any 8 bytes are a valid u64; the byte view covers exactly the Vec's elements.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr() as *mut u8, count * 8) };
        self.read_into(what, addr, bytes)?;
        Ok(values)
    }

    /// Reads `count` f32 from `addr` into `values` (a buffer kept across
    /// requests: resized, not reallocated once it is large enough).
    pub(super) fn read_f32s_into(
        &self,
        what: &str,
        addr: u64,
        count: usize,
        values: &mut Vec<f32>,
    ) -> Result<()> {
        values.clear();
        values.resize(count, 0.0);
        // SAFETY: any 4 bytes are a valid f32; the byte view covers exactly the Vec's elements.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr() as *mut u8, count * 4) };
        self.read_into(what, addr, bytes)
    }

    /// Writes a search's answers, `values` to `values_addr` (field
    /// `values_what`) and `ids` to `ids_addr`, in one `process_vm_writev`;
    /// when the caller's memory stops it short, the fields are written one
    /// by one so that EFAULT names the one out of reach.
    pub(super) fn write_answers(
        &self,
        (values_what, values_addr, values): (&str, u64, &[f32]),
        (ids_what, ids_addr, ids): (&str, u64, &[u64]),
    ) -> Result<()> {
        // SAFETY: byte views of plain numbers, exactly their elements;
        // x86-64 is little-endian, as the ABI is: the bytes are the values.
        let (values_bytes, ids_bytes) = unsafe {
            (
                std::slice::from_raw_parts(values.as_ptr() as *const u8, values.len() * 4),
                std::slice::from_raw_parts(ids.as_ptr() as *const u8, ids.len() * 8),
            )
        };
        let total = values_bytes.len() + ids_bytes.len();
        if self.pid != 0 && total > 0 {
            let local = [
                libc::iovec {
                    iov_base: values_bytes.as_ptr() as *mut libc::c_void,
                    iov_len: values_bytes.len(),
                },
                libc::iovec {
                    iov_base: ids_bytes.as_ptr() as *mut libc::c_void,
                    iov_len: ids_bytes.len(),
                },
            ];
            let remote = [
                libc::iovec {
                    iov_base: values_addr as usize as *mut libc::c_void,
                    iov_len: values_bytes.len(),
                },
                libc::iovec {
                    iov_base: ids_addr as usize as *mut libc::c_void,
                    iov_len: ids_bytes.len(),
                },
            ];
            // SAFETY: the local iovecs cover memory we own (only read by
            // the kernel); the remote ones are checked by the kernel
            // against the caller's address space.
            let written = unsafe {
                libc::process_vm_writev(
                    self.pid as libc::pid_t,
                    local.as_ptr(),
                    2,
                    remote.as_ptr(),
                    2,
                    0,
                )
            };
            if written >= 0 && written as usize == total {
                return Ok(());
            }
        }
        self.write_from(values_what, values_addr, values_bytes)?;
        self.write_from(ids_what, ids_addr, ids_bytes)
    }
}
