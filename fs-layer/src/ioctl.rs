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
use crate::vectors::filter::{self, Filter};
use crate::vectors::Among;

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
        VEXFS_IOC_SET_VECTOR_META
        | VEXFS_IOC_BATCH_INSERT
        | VEXFS_IOC_DELETE_VECTORS
        | VEXFS_IOC_SET_PAYLOADS => true,
        VEXFS_IOC_GET_VECTOR_META
        | VEXFS_IOC_VECTOR_SEARCH
        | VEXFS_IOC_GET_VECTORS
        | VEXFS_IOC_GET_PAYLOADS
        | VEXFS_IOC_FILTERED_SEARCH
        | VEXFS_IOC_SCROLL => false,
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
        VEXFS_IOC_SET_PAYLOADS => {
            set_payloads(fs, caller, ino, &interrupt, in_data)?;
            Outcome {
                reply: Vec::new(),
                changed: true,
            }
        }
        VEXFS_IOC_GET_PAYLOADS => get_payloads(fs, caller, ino, &interrupt, in_data)?,
        VEXFS_IOC_FILTERED_SEARCH => filtered_search(fs, caller, ino, &interrupt, in_data)?,
        VEXFS_IOC_SCROLL => scroll(fs, caller, ino, &interrupt, in_data)?,
        _ => unreachable!("request numbers were matched above"),
    };
    if writes && outcome.changed && sync {
        fs.write_back_vector_file(ino)?;
        fs.commit()?;
    }
    Ok(outcome)
}

/// A request's JSON filter: read from the caller (`filter_bytes` was
/// checked against its limit) and parsed; EINVAL names what is wrong.
fn read_filter(caller: &Caller, addr: u64, bytes: u32) -> Result<Option<Filter>> {
    if addr == 0 {
        return Ok(None);
    }
    let mut text = vec![0u8; bytes as usize];
    caller.read_into("filter", addr, &mut text)?;
    Filter::parse(&text)
        .map(Some)
        .map_err(|e| Error::refused(libc::EINVAL, format!("filter: {e}")))
}

fn set_payloads(
    fs: &Fs,
    caller: &Caller,
    ino: u64,
    interrupt: &Interrupt,
    in_data: &[u8],
) -> Result<()> {
    let request = VexfsSetPayloadsRequest::from_bytes(&fixed(in_data)?);
    limits::check_set_payloads(&request).map_err(refusal)?;
    fs.get_vector_meta(ino)?;
    let count = request.id_count as usize;
    let vector_bytes = if request.vectors_addr == 0 {
        0
    } else {
        count as u64 * u64::from(request.dimensions) * 4
    };
    let fixed_bytes = count as u64 * 12 + vector_bytes;
    let _fixed_memory = fs.request_memory.take(fixed_bytes, interrupt)?;
    let ids = caller.read_u64s("ids", request.ids_addr, count)?;
    let mut lengths = vec![0u32; count];
    // SAFETY: any 4 bytes are a valid u32; the byte view covers exactly the Vec's elements.
    let length_bytes =
        unsafe { std::slice::from_raw_parts_mut(lengths.as_mut_ptr() as *mut u8, count * 4) };
    caller.read_into("payload_bytes", request.payload_bytes_addr, length_bytes)?;
    let total = limits::check_payload_lengths(&lengths, fixed_bytes).map_err(refusal)?;
    if total > 0 && request.payloads_addr == 0 {
        return Err(Error::refused(
            libc::EFAULT,
            format!("payloads: is NULL but payload_bytes add up to {total}"),
        ));
    }
    let _text_memory = fs.request_memory.take(total, interrupt)?;
    let mut text = vec![0u8; total as usize];
    if total > 0 {
        caller.read_into("payloads", request.payloads_addr, &mut text)?;
    }
    let mut changes = Vec::with_capacity(count);
    let mut at = 0usize;
    for (i, (&id, &len)) in ids.iter().zip(&lengths).enumerate() {
        let end = at + len as usize;
        let value = if len == 0 {
            None
        } else {
            Some(filter::parse_payload(&text[at..end]).map_err(|e| {
                Error::refused(libc::EINVAL, format!("payloads[{i}] (id {id}): {e}"))
            })?)
        };
        changes.push((id, value));
        at = end;
    }
    let rows = if request.vectors_addr == 0 {
        None
    } else {
        Some(caller.read_f32s(
            "vectors",
            request.vectors_addr,
            count * request.dimensions as usize,
        )?)
    };
    // The last point where a killed caller's request changes nothing.
    interrupt.check()?;
    fs.set_payloads(
        ino,
        changes,
        rows.as_deref().map(|rows| (request.dimensions, rows)),
        request.flags & VEXFS_PAYLOAD_MERGE != 0,
    )
}

fn get_payloads(
    fs: &Fs,
    caller: &Caller,
    ino: u64,
    interrupt: &Interrupt,
    in_data: &[u8],
) -> Result<Outcome> {
    let mut request = VexfsGetPayloadsRequest::from_bytes(&fixed(in_data)?);
    limits::check_get_payloads(&request).map_err(refusal)?;
    fs.get_vector_meta(ino)?;
    let count = request.id_count as usize;
    let _memory = fs.request_memory.take(count as u64 * 12, interrupt)?;
    let ids = caller.read_u64s("ids", request.ids_addr, count)?;
    let payloads = fs.get_payloads(ino, &ids)?;
    let lengths: Vec<u32> = payloads
        .iter()
        .map(|p| p.as_ref().map_or(0, |t| t.len() as u32))
        .collect();
    let total: u64 = lengths.iter().map(|&l| u64::from(l)).sum();
    if request.buffer_addr != 0 {
        if total > request.buffer_bytes {
            return Err(Error::refused(
                libc::ERANGE,
                format!(
                    "buffer_bytes: the payloads take {total} bytes, the buffer holds {} (ask with buffer NULL for the size)",
                    request.buffer_bytes
                ),
            ));
        }
        let _text_memory = fs.request_memory.take(total, interrupt)?;
        let mut text = Vec::with_capacity(total as usize);
        for payload in payloads.iter().flatten() {
            text.extend_from_slice(payload);
        }
        caller.write_from("buffer", request.buffer_addr, &text)?;
    }
    let length_bytes: Vec<u8> = lengths.iter().flat_map(|l| l.to_le_bytes()).collect();
    caller.write_from("payload_bytes", request.payload_bytes_addr, &length_bytes)?;
    request.buffer_bytes = total;
    Ok(Outcome::unchanged(request.to_bytes().to_vec()))
}

fn filtered_search(
    fs: &Fs,
    caller: &Caller,
    ino: u64,
    interrupt: &Interrupt,
    in_data: &[u8],
) -> Result<Outcome> {
    let mut request = VexfsFilteredSearchRequest::from_bytes(&fixed(in_data)?);
    limits::check_filtered_search(&request).map_err(refusal)?;
    fs.get_vector_meta(ino)?;
    let queries = u64::from(request.query_count);
    let k = u64::from(request.k);
    let _memory = fs.request_memory.take(
        queries * (u64::from(request.dimensions) * 4 + k * (4 + 8) * 2)
            + u64::from(request.filter_bytes),
        interrupt,
    )?;
    let filter = read_filter(caller, request.filter_addr, request.filter_bytes)?;
    let rows = caller.read_f32s(
        "query_vector",
        request.query_vector_addr,
        (queries * u64::from(request.dimensions)) as usize,
    )?;
    let among = Among {
        filter: filter.as_ref().filter(|f| !f.is_empty()),
        exact: request.flags & VEXFS_SEARCH_EXACT != 0,
    };
    let answers = fs.search_points(
        ino,
        &rows,
        request.k,
        request.search_type,
        &among,
        interrupt,
    )?;
    let places = (queries * k) as usize;
    let mut values = vec![f32::NAN.to_le_bytes(); places];
    let mut ids = vec![VEXFS_NO_ID.to_le_bytes(); places];
    let mut most = 0;
    for (q, hits) in answers.iter().enumerate() {
        most = most.max(hits.len());
        for (j, (id, value)) in hits.iter().enumerate() {
            values[q * k as usize + j] = value.to_le_bytes();
            ids[q * k as usize + j] = id.to_le_bytes();
        }
    }
    caller.write_from("results", request.results_addr, values.as_flattened())?;
    caller.write_from("result_ids", request.result_ids_addr, ids.as_flattened())?;
    request.result_count = most as u32;
    Ok(Outcome::unchanged(request.to_bytes().to_vec()))
}

fn scroll(
    fs: &Fs,
    caller: &Caller,
    ino: u64,
    interrupt: &Interrupt,
    in_data: &[u8],
) -> Result<Outcome> {
    let mut request = VexfsScrollRequest::from_bytes(&fixed(in_data)?);
    limits::check_scroll(&request).map_err(refusal)?;
    fs.get_vector_meta(ino)?;
    let _memory = fs.request_memory.take(
        u64::from(request.limit) * 8 + u64::from(request.filter_bytes),
        interrupt,
    )?;
    let filter = read_filter(caller, request.filter_addr, request.filter_bytes)?;
    let page = fs.scroll_points(
        ino,
        filter.as_ref().filter(|f| !f.is_empty()),
        request.start_id,
        request.limit as usize,
    )?;
    if request.ids_addr != 0 && !page.ids.is_empty() {
        let bytes: Vec<u8> = page.ids.iter().flat_map(|id| id.to_le_bytes()).collect();
        caller.write_from("ids", request.ids_addr, &bytes)?;
    }
    request.id_count = page.ids.len() as u32;
    request.matching_count = u32::try_from(page.matching).unwrap_or(u32::MAX);
    request.more = u32::from(page.next_id.is_some());
    request.next_id = page.next_id.unwrap_or(0);
    Ok(Outcome::unchanged(request.to_bytes().to_vec()))
}
