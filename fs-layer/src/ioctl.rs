//! The vector ioctls as a FUSE server sees them: the fixed struct bytes the
//! kernel copied, pointers into the calling process, and the descriptor's
//! open flags. Checks come first (request number, file kind, access, every
//! field, the per-request byte limit), then the caller's memory is read,
//! then [`Fs`] does the work; nothing is stored unless all of it succeeds.

mod caller;
mod search;

use vexfs_uapi::*;

use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::interrupt::Interrupt;
use crate::vectors::filter::{self, Filter};
pub use caller::Caller;

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

/// The largest request struct of the ABI: what a reply may copy back.
pub const REPLY_BYTES_MAX: usize = 64;

/// A request struct to copy back to the caller, without a heap allocation.
pub struct ReplyBytes {
    bytes: [u8; REPLY_BYTES_MAX],
    len: usize,
}

impl ReplyBytes {
    /// Nothing to copy back (an `_IOW` request).
    pub fn none() -> ReplyBytes {
        ReplyBytes {
            bytes: [0; REPLY_BYTES_MAX],
            len: 0,
        }
    }

    pub fn of<const N: usize>(bytes: [u8; N]) -> ReplyBytes {
        const { assert!(N <= REPLY_BYTES_MAX) };
        let mut reply = ReplyBytes::none();
        reply.bytes[..N].copy_from_slice(&bytes);
        reply.len = N;
        reply
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What a request produced: the bytes to copy back to the caller's struct,
/// and whether the file's contents changed (the kernel's cache of it must go).
pub struct Outcome {
    pub reply: ReplyBytes,
    pub changed: bool,
}

impl Outcome {
    fn unchanged(reply: ReplyBytes) -> Outcome {
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
    // A vector file in memory is a regular file (an open inode does not
    // change kind): knowing it takes no metadata lock.
    if !fs.is_loaded_vector_file(ino) {
        let record = fs.getattr(ino)?;
        if record.is_dir() || !record.is_reg() {
            return Err(Error::refused(
                libc::ENOTTY,
                "vector requests apply to regular files only",
            ));
        }
    }
    check_access(open_flags, writes)?;
    let interrupt = Interrupt::for_caller(caller.pid);
    let sync = open_flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
    let outcome = match cmd {
        VEXFS_IOC_SET_VECTOR_META => {
            let info = VexfsVectorFileInfo::from_bytes(&fixed(in_data)?);
            fs.set_vector_meta(ino, &info)?;
            Outcome {
                reply: ReplyBytes::none(),
                changed: true,
            }
        }
        VEXFS_IOC_GET_VECTOR_META => {
            Outcome::unchanged(ReplyBytes::of(fs.get_vector_meta(ino)?.to_bytes()))
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
                reply: ReplyBytes::none(),
                changed: true,
            }
        }
        VEXFS_IOC_VECTOR_SEARCH => search::vector_search(fs, caller, ino, &interrupt, in_data)?,
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
                reply: ReplyBytes::of(request.to_bytes()),
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
            Outcome::unchanged(ReplyBytes::of(request.to_bytes()))
        }
        VEXFS_IOC_SET_PAYLOADS => {
            set_payloads(fs, caller, ino, &interrupt, in_data)?;
            Outcome {
                reply: ReplyBytes::none(),
                changed: true,
            }
        }
        VEXFS_IOC_GET_PAYLOADS => get_payloads(fs, caller, ino, &interrupt, in_data)?,
        VEXFS_IOC_FILTERED_SEARCH => search::filtered_search(fs, caller, ino, &interrupt, in_data)?,
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
    Ok(Outcome::unchanged(ReplyBytes::of(request.to_bytes())))
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
    Ok(Outcome::unchanged(ReplyBytes::of(request.to_bytes())))
}
