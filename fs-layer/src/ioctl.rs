//! The vector ioctls as a FUSE server sees them: the fixed struct bytes the
//! kernel copied, pointers into the calling process, and the descriptor's
//! open flags. Checks come first (request number, file kind, access, every
//! field, the per-request byte limit), then the caller's memory is read,
//! then [`Fs`] does the work; nothing is stored unless all of it succeeds.

use std::io::IoSliceMut;

use vexfs_uapi::*;

use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::interrupt::Interrupt;

/// The process a request came from. Its buffers are reached with
/// `process_vm_readv`/`process_vm_writev` on the pid the kernel put in the
/// FUSE request, so the daemon touches no other process's memory.
pub struct Caller {
    pub pid: u32,
}

fn efault(what: &str, addr: u64, len: usize, detail: impl std::fmt::Display) -> Error {
    Error::refused(
        libc::EFAULT,
        format!("{what}: cannot access {len} bytes at {addr:#x} in the caller: {detail}"),
    )
}

impl Caller {
    /// Fills `buf` from the caller's `addr`; EFAULT names `what` when any byte is unreachable.
    fn read_into(&self, what: &str, addr: u64, buf: &mut [u8]) -> Result<()> {
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

    fn write_from(&self, what: &str, addr: u64, data: &[u8]) -> Result<()> {
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

    fn read_f32s(&self, what: &str, addr: u64, count: usize) -> Result<Vec<f32>> {
        let mut values = vec![0f32; count];
        // SAFETY: any 4 bytes are a valid f32; the byte view covers exactly the Vec's elements.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr() as *mut u8, count * 4) };
        self.read_into(what, addr, bytes)?;
        // x86-64 is little-endian, as the ABI is; the bytes are the values.
        Ok(values)
    }

    fn read_u64s(&self, what: &str, addr: u64, count: usize) -> Result<Vec<u64>> {
        let mut values = vec![0u64; count];
        // SAFETY: any 8 bytes are a valid u64; the byte view covers exactly the Vec's elements.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr() as *mut u8, count * 8) };
        self.read_into(what, addr, bytes)?;
        Ok(values)
    }
}

/// Whether a descriptor's open flags allow reading / writing.
fn check_access(open_flags: i32, write: bool) -> Result<()> {
    let mode = open_flags & libc::O_ACCMODE;
    let allowed = if write {
        mode == libc::O_WRONLY || mode == libc::O_RDWR
    } else {
        mode == libc::O_RDONLY || mode == libc::O_RDWR
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::refused(
            libc::EBADF,
            format!(
                "the descriptor is not open for {}",
                if write { "writing" } else { "reading" }
            ),
        ))
    }
}

fn refusal(r: Refusal) -> Error {
    Error::refused(r.errno(), r.to_string())
}

fn fixed<const N: usize>(in_data: &[u8]) -> Result<[u8; N]> {
    in_data.try_into().map_err(|_| {
        Error::refused(
            libc::EINVAL,
            format!("request struct is {} bytes, expected {N}", in_data.len()),
        )
    })
}

/// What a request produced: the bytes to copy back to the caller's struct,
/// and whether the file's contents changed (the kernel's cache of it must go).
pub struct Outcome {
    pub reply: Vec<u8>,
    pub changed: bool,
}

impl Outcome {
    fn unchanged(reply: Vec<u8>) -> Outcome {
        Outcome {
            reply,
            changed: false,
        }
    }
}

/// One vector ioctl on `ino`, opened with `open_flags`, from `caller`.
pub fn handle(
    fs: &Fs,
    caller: &Caller,
    ino: u64,
    open_flags: i32,
    cmd: u32,
    in_data: &[u8],
) -> Result<Outcome> {
    let writes = match cmd {
        VEXFS_IOC_SET_VECTOR_META | VEXFS_IOC_BATCH_INSERT | VEXFS_IOC_DELETE_VECTORS => true,
        VEXFS_IOC_GET_VECTOR_META | VEXFS_IOC_VECTOR_SEARCH | VEXFS_IOC_GET_VECTORS => false,
        _ => {
            return Err(Error::refused(
                libc::ENOTTY,
                format!("unknown request {cmd:#x}"),
            ))
        }
    };
    let record = fs.getattr(ino)?;
    if record.is_dir() || !record.is_reg() {
        return Err(Error::refused(
            libc::ENOTTY,
            "vector requests apply to regular files only",
        ));
    }
    check_access(open_flags, writes)?;
    let interrupt = Interrupt::for_caller(caller.pid);
    let sync = open_flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
    let outcome = match cmd {
        VEXFS_IOC_SET_VECTOR_META => {
            let info = VexfsVectorFileInfo::from_bytes(&fixed(in_data)?);
            fs.set_vector_meta(ino, &info)?;
            Outcome {
                reply: Vec::new(),
                changed: true,
            }
        }
        VEXFS_IOC_GET_VECTOR_META => {
            Outcome::unchanged(fs.get_vector_meta(ino)?.to_bytes().to_vec())
        }
        VEXFS_IOC_BATCH_INSERT => {
            let request = VexfsBatchInsertRequest::from_bytes(&fixed(in_data)?);
            limits::check_insert(&request).map_err(refusal)?;
            let count = request.vector_count as usize;
            // Not a vector file: EINVAL before any caller memory is read.
            fs.get_vector_meta(ino)?;
            let id_bytes = if request.vector_ids_addr == 0 {
                0
            } else {
                count as u64 * 8
            };
            let _memory = fs.request_memory.take(
                count as u64 * u64::from(request.dimensions) * 4 + id_bytes,
                &interrupt,
            )?;
            let rows = caller.read_f32s(
                "vectors",
                request.vectors_addr,
                count * request.dimensions as usize,
            )?;
            let ids = if request.vector_ids_addr == 0 {
                None
            } else {
                Some(caller.read_u64s("vector_ids", request.vector_ids_addr, count)?)
            };
            // The last point where a killed caller's request changes nothing.
            interrupt.check()?;
            fs.insert_vectors(
                ino,
                request.dimensions,
                &rows,
                ids.as_deref(),
                request.flags,
            )?;
            Outcome {
                reply: Vec::new(),
                changed: true,
            }
        }
        VEXFS_IOC_VECTOR_SEARCH => {
            let mut request = VexfsVectorSearchRequest::from_bytes(&fixed(in_data)?);
            limits::check_search(&request).map_err(refusal)?;
            fs.get_vector_meta(ino)?;
            let _memory = fs.request_memory.take(
                u64::from(request.dimensions) * 4 + u64::from(request.k) * (4 + 8) * 2,
                &interrupt,
            )?;
            let query = caller.read_f32s(
                "query_vector",
                request.query_vector_addr,
                request.dimensions as usize,
            )?;
            let hits =
                fs.search_vectors_for(ino, &query, request.k, request.search_type, &interrupt)?;
            let mut values = Vec::with_capacity(hits.len() * 4);
            let mut ids = Vec::with_capacity(hits.len() * 8);
            for (id, value) in &hits {
                values.extend_from_slice(&value.to_le_bytes());
                ids.extend_from_slice(&id.to_le_bytes());
            }
            caller.write_from("results", request.results_addr, &values)?;
            caller.write_from("result_ids", request.result_ids_addr, &ids)?;
            request.result_count = hits.len() as u32;
            Outcome::unchanged(request.to_bytes().to_vec())
        }
        VEXFS_IOC_DELETE_VECTORS => {
            let mut request = VexfsDeleteRequest::from_bytes(&fixed(in_data)?);
            limits::check_delete(&request).map_err(refusal)?;
            fs.get_vector_meta(ino)?;
            let _memory = fs
                .request_memory
                .take(u64::from(request.id_count) * 8, &interrupt)?;
            let ids = caller.read_u64s("ids", request.ids_addr, request.id_count as usize)?;
            interrupt.check()?;
            request.deleted_count = fs.delete_vectors(ino, &ids)?;
            Outcome {
                reply: request.to_bytes().to_vec(),
                changed: request.deleted_count > 0,
            }
        }
        VEXFS_IOC_GET_VECTORS => {
            let mut request = VexfsGetVectorsRequest::from_bytes(&fixed(in_data)?);
            limits::check_get_vectors(&request).map_err(refusal)?;
            fs.get_vector_meta(ino)?;
            let count = u64::from(request.id_count);
            let _memory = fs.request_memory.take(
                count * 8 + count * u64::from(request.dimensions) * 4,
                &interrupt,
            )?;
            let ids = caller.read_u64s("ids", request.ids_addr, request.id_count as usize)?;
            let rows = fs.get_vectors(ino, request.dimensions, &ids)?;
            // SAFETY: the byte view covers exactly the Vec's f32 elements;
            // x86-64 is little-endian, as the ABI is: the bytes are the values.
            let bytes =
                unsafe { std::slice::from_raw_parts(rows.as_ptr() as *const u8, rows.len() * 4) };
            caller.write_from("vectors", request.vectors_addr, bytes)?;
            request.found_count = request.id_count;
            Outcome::unchanged(request.to_bytes().to_vec())
        }
        _ => unreachable!("request numbers were matched above"),
    };
    if writes && outcome.changed && sync {
        fs.write_back_vector_file(ino)?;
        fs.commit()?;
    }
    Ok(outcome)
}
