//! The VexFS vector ioctls from Rust, for one vector file on a mount: what
//! a C program written against `vexfs_v2_uapi.h` does, in safe Rust, for
//! the benchmarks, the tests and servers. It talks to a mounted VexFS
//! through open(2), ioctl(2) and xattrs only, never to its device.
//!
//! The request structs are the uapi crate's; their pointer fields are the
//! addresses of this process's slices, which the daemon reads and writes
//! with process_vm_readv/writev. Every count is checked against its slice
//! before a request is built; the daemon checks the rest (limits, errnos
//! in docs/VECTORS.md).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use vexfs_uapi::limits::REQUEST_BYTES_MAX;
use vexfs_uapi::{
    VexfsBatchInsertRequest, VexfsDeleteRequest, VexfsFilteredSearchRequest,
    VexfsGetPayloadsRequest, VexfsGetVectorsRequest, VexfsScrollRequest, VexfsSetPayloadsRequest,
    VexfsVectorFileInfo, VexfsVectorSearchRequest, VEXFS_COMPRESS_NONE, VEXFS_IOC_BATCH_INSERT,
    VEXFS_IOC_DELETE_VECTORS, VEXFS_IOC_FILTERED_SEARCH, VEXFS_IOC_GET_PAYLOADS,
    VEXFS_IOC_GET_VECTORS, VEXFS_IOC_GET_VECTOR_META, VEXFS_IOC_SCROLL, VEXFS_IOC_SET_PAYLOADS,
    VEXFS_IOC_SET_VECTOR_META, VEXFS_IOC_VECTOR_SEARCH, VEXFS_NO_ID, VEXFS_PAYLOAD_MERGE,
    VEXFS_SEARCH_EXACT, VEXFS_STORAGE_DENSE, VEXFS_VECTOR_FLOAT32,
};

/// Extended attribute naming the file's faiss index-factory string.
pub const XATTR_INDEX: &str = "user.vexfs.index";
/// Extended attribute holding the index's search parameters (`efSearch=64`).
pub const XATTR_SEARCH: &str = "user.vexfs.search";

/// Read-only extended attribute: the file's vectors, dimensions, index,
/// metric, indexed count, tombstones, build state, one `key=value` a line.
pub const XATTR_STATUS: &str = "user.vexfs.status";
/// Largest xattr value VexFS stores (and so the largest read here).
pub const XATTR_VALUE_BYTES_MAX: usize = 1536;

/// A regular file on a VexFS mount used as a vector file: an owned
/// [`File`] (from [`create`](VectorFile::create) or
/// [`open`](VectorFile::open)) or any descriptor, borrowed ones included
/// ([`new`](VectorFile::new) with a `&File`).
pub struct VectorFile<F: AsFd = File> {
    file: F,
}

/// One page of [`VectorFile::scroll`]: matching ids, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrollPage {
    pub ids: Vec<u64>,
    /// Where the next page starts, when matching ids remain.
    pub next_id: Option<u64>,
    /// Ids at or after the page's start that match, in all.
    pub matching_count: u32,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The daemon answered something its own contract rules out.
fn corrupt(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn count_u32(what: &str, count: usize) -> io::Result<u32> {
    u32::try_from(count).map_err(|_| invalid(format!("{count} {what} do not fit a u32 count")))
}

/// The address the daemon reads; it must stay valid for the call.
fn address<T>(slice: &[T]) -> u64 {
    slice.as_ptr() as u64
}

/// The address the daemon writes: taken from a unique borrow, so that the
/// compiler does not assume the slice unchanged across the ioctl.
fn address_mut<T>(slice: &mut [T]) -> u64 {
    slice.as_mut_ptr() as u64
}

/// A JSON filter's (address, bytes): (0, 0) for none. An empty filter is
/// refused here rather than sent as an address with 0 bytes (EINVAL).
fn filter_fields(filter: Option<&[u8]>) -> io::Result<(u64, u32)> {
    match filter {
        None => Ok((0, 0)),
        Some([]) => Err(invalid(
            "an empty filter (None means no filter)".to_string(),
        )),
        Some(filter) => Ok((address(filter), count_u32("filter bytes", filter.len())?)),
    }
}

impl VectorFile<File> {
    /// Creates (or truncates) `path` and opens it read-write.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Self { file })
    }

    /// Opens an existing vector file read-write.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self { file })
    }
}

impl<F: AsFd> VectorFile<F> {
    /// Any descriptor of a file on a VexFS mount (opened for writing for
    /// the requests that change it, EBADF otherwise).
    pub fn new(file: F) -> Self {
        Self { file }
    }

    pub fn file(&self) -> &F {
        &self.file
    }

    /// One ioctl whose argument is the fixed struct `bytes` (the kernel copies
    /// it in, and back out for `_IOR`/`_IOWR` requests).
    fn ioctl(&self, request: u32, bytes: &mut [u8]) -> io::Result<()> {
        // SAFETY: `bytes` is a live, exclusively borrowed buffer of exactly
        // the size that `request` encodes, so the kernel reads and writes
        // within it. The addresses inside it are those of slices the caller
        // borrows for the whole call, with lengths that match the counts in
        // the struct (each caller checks that before building it).
        let rc = unsafe {
            libc::ioctl(
                self.file.as_fd().as_raw_fd(),
                request as libc::Ioctl,
                bytes.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Makes the file a dense float32 vector file of `dimensions`.
    pub fn set_meta(&self, dimensions: u32) -> io::Result<()> {
        self.set_info(&VexfsVectorFileInfo {
            dimensions,
            element_type: VEXFS_VECTOR_FLOAT32,
            storage_format: VEXFS_STORAGE_DENSE,
            compression_type: VEXFS_COMPRESS_NONE,
            ..Default::default()
        })
    }

    /// SET_VECTOR_META with every field as given (`vector_count = 0` on a
    /// vector file of another layout drops its vectors: docs/VECTORS.md).
    pub fn set_info(&self, info: &VexfsVectorFileInfo) -> io::Result<()> {
        self.ioctl(VEXFS_IOC_SET_VECTOR_META, &mut info.to_bytes())
    }

    pub fn get_meta(&self) -> io::Result<VexfsVectorFileInfo> {
        let mut bytes = VexfsVectorFileInfo::default().to_bytes();
        self.ioctl(VEXFS_IOC_GET_VECTOR_META, &mut bytes)?;
        Ok(VexfsVectorFileInfo::from_bytes(&bytes))
    }

    /// Inserts `vectors.len() / dimensions` vectors; with `ids`, under those ids.
    pub fn batch_insert(
        &self,
        vectors: &[f32],
        dimensions: u32,
        ids: Option<&[u64]>,
        flags: u32,
    ) -> io::Result<()> {
        let dims = dimensions.max(1) as usize;
        if dimensions == 0 || vectors.len() % dims != 0 {
            return Err(invalid(format!(
                "{} values are not whole vectors of {dimensions}",
                vectors.len()
            )));
        }
        let count = vectors.len() / dims;
        if let Some(ids) = ids {
            if ids.len() != count {
                return Err(invalid(format!("{} ids for {count} vectors", ids.len())));
            }
        }
        let request = VexfsBatchInsertRequest {
            vectors_addr: address(vectors),
            vector_count: count_u32("vectors", count)?,
            dimensions,
            vector_ids_addr: ids.map_or(0, address),
            flags,
            ..Default::default()
        };
        self.ioctl(VEXFS_IOC_BATCH_INSERT, &mut request.to_bytes())
    }

    /// The `distances.len()` nearest neighbours of `query` (k = that length);
    /// returns how many the file wrote, best first.
    pub fn search(
        &self,
        query: &[f32],
        search_type: u32,
        distances: &mut [f32],
        ids: &mut [u64],
    ) -> io::Result<usize> {
        if distances.len() != ids.len() {
            return Err(invalid(format!(
                "{} distance slots but {} id slots",
                distances.len(),
                ids.len()
            )));
        }
        let request = VexfsVectorSearchRequest {
            query_vector_addr: address(query),
            dimensions: count_u32("dimensions", query.len())?,
            k: count_u32("neighbours", ids.len())?,
            search_type,
            results_addr: address_mut(distances),
            result_ids_addr: address_mut(ids),
            ..Default::default()
        };
        let mut bytes = request.to_bytes();
        self.ioctl(VEXFS_IOC_VECTOR_SEARCH, &mut bytes)?;
        let written = VexfsVectorSearchRequest::from_bytes(&bytes).result_count as usize;
        if written > ids.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("result_count {written} is over k = {}", ids.len()),
            ));
        }
        Ok(written)
    }

    /// The `k` nearest neighbours of `query` as (id, distance), best first.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        search_type: u32,
    ) -> io::Result<Vec<(u64, f32)>> {
        let mut distances = vec![0f32; k];
        let mut ids = vec![0u64; k];
        let written = self.search(query, search_type, &mut distances, &mut ids)?;
        Ok(ids[..written]
            .iter()
            .copied()
            .zip(distances[..written].iter().copied())
            .collect())
    }

    /// Deletes `ids`; returns how many were stored (and are now gone).
    pub fn delete(&self, ids: &[u64]) -> io::Result<u32> {
        let request = VexfsDeleteRequest {
            ids_addr: address(ids),
            id_count: count_u32("ids", ids.len())?,
            ..Default::default()
        };
        let mut bytes = request.to_bytes();
        self.ioctl(VEXFS_IOC_DELETE_VECTORS, &mut bytes)?;
        Ok(VexfsDeleteRequest::from_bytes(&bytes).deleted_count)
    }

    /// Fetches the vectors of `ids`, in that order, into `vectors`.
    pub fn get_vectors(&self, ids: &[u64], dimensions: u32, vectors: &mut [f32]) -> io::Result<()> {
        if vectors.len() != ids.len() * dimensions as usize {
            return Err(invalid(format!(
                "{} slots for {} vectors of {dimensions}",
                vectors.len(),
                ids.len()
            )));
        }
        let request = VexfsGetVectorsRequest {
            ids_addr: address(ids),
            vectors_addr: address_mut(vectors),
            id_count: count_u32("ids", ids.len())?,
            dimensions,
            ..Default::default()
        };
        self.ioctl(VEXFS_IOC_GET_VECTORS, &mut request.to_bytes())
    }

    /// Sets the payload of each of `ids` (a JSON object each, UTF-8); an
    /// empty payload removes that id's. With `vectors` (elements and
    /// dimensions), upserts the ids' vectors in the same step, all or
    /// nothing. `merge` merges the given keys into each stored object
    /// instead of replacing it.
    pub fn set_payloads(
        &self,
        ids: &[u64],
        payloads: &[&[u8]],
        vectors: Option<(&[f32], u32)>,
        merge: bool,
    ) -> io::Result<()> {
        if payloads.len() != ids.len() {
            return Err(invalid(format!(
                "{} payloads for {} ids",
                payloads.len(),
                ids.len()
            )));
        }
        let (vectors_addr, dimensions) = match vectors {
            None => (0, 0),
            Some((vectors, dimensions)) => {
                let elements = ids.len().checked_mul(dimensions as usize);
                if dimensions == 0 || elements != Some(vectors.len()) {
                    return Err(invalid(format!(
                        "{} values are not {} vectors of {dimensions}",
                        vectors.len(),
                        ids.len()
                    )));
                }
                (address(vectors), dimensions)
            }
        };
        let payload_bytes = payloads
            .iter()
            .map(|payload| count_u32("payload bytes", payload.len()))
            .collect::<io::Result<Vec<u32>>>()?;
        let concatenated = payloads.concat();
        let request = VexfsSetPayloadsRequest {
            ids_addr: address(ids),
            // NULL when every payload is a removal: there is nothing to read.
            payloads_addr: if concatenated.is_empty() {
                0
            } else {
                address(&concatenated)
            },
            payload_bytes_addr: address(&payload_bytes),
            vectors_addr,
            id_count: count_u32("ids", ids.len())?,
            dimensions,
            flags: if merge { VEXFS_PAYLOAD_MERGE } else { 0 },
            reserved: 0,
        };
        self.ioctl(VEXFS_IOC_SET_PAYLOADS, &mut request.to_bytes())
    }

    /// The payloads of `ids`, in that order; `None` for an id without one.
    pub fn payloads(&self, ids: &[u64]) -> io::Result<Vec<Option<Vec<u8>>>> {
        let id_count = count_u32("ids", ids.len())?;
        let mut payload_bytes = vec![0u32; ids.len()];
        // Another writer may grow the payloads between learning their size
        // and fetching them (ERANGE, nothing written); learn it once more.
        let mut tries_left = 2;
        let buffer = loop {
            tries_left -= 1;
            let sizing = VexfsGetPayloadsRequest {
                ids_addr: address(ids),
                buffer_addr: 0,
                payload_bytes_addr: address_mut(&mut payload_bytes),
                buffer_bytes: 0,
                id_count,
                flags: 0,
            };
            let mut bytes = sizing.to_bytes();
            self.ioctl(VEXFS_IOC_GET_PAYLOADS, &mut bytes)?;
            let total_bytes = VexfsGetPayloadsRequest::from_bytes(&bytes).buffer_bytes;
            check_payload_total(&payload_bytes, total_bytes)?;
            if total_bytes == 0 {
                break Vec::new();
            }
            if total_bytes > REQUEST_BYTES_MAX {
                // The daemon refuses a buffer this large; say so without allocating it.
                return Err(io::Error::from_raw_os_error(libc::E2BIG));
            }
            let mut buffer = vec![0u8; total_bytes as usize];
            let fetch = VexfsGetPayloadsRequest {
                buffer_addr: address_mut(&mut buffer),
                buffer_bytes: total_bytes,
                ..sizing
            };
            let mut bytes = fetch.to_bytes();
            match self.ioctl(VEXFS_IOC_GET_PAYLOADS, &mut bytes) {
                Ok(()) => {
                    let written = VexfsGetPayloadsRequest::from_bytes(&bytes).buffer_bytes;
                    if written > total_bytes {
                        return Err(corrupt(format!(
                            "buffer_bytes {written} is over the {total_bytes} bytes given"
                        )));
                    }
                    check_payload_total(&payload_bytes, written)?;
                    buffer.truncate(written as usize);
                    break buffer;
                }
                Err(e) if e.raw_os_error() == Some(libc::ERANGE) && tries_left > 0 => continue,
                Err(e) => return Err(e),
            }
        };
        let mut rest = &buffer[..];
        Ok(payload_bytes
            .iter()
            .map(|&length| {
                let (payload, after) = rest.split_at(length as usize);
                rest = after;
                (length > 0).then(|| payload.to_vec())
            })
            .collect())
    }

    /// `queries.len() / dimensions` queries, each for its `k` nearest
    /// neighbours among the ids whose payload matches `filter` (all ids
    /// when `None`); `exact` scans every vector instead of using the index.
    /// Query q's results are `distances`/`ids[q * k..(q + 1) * k]`, best
    /// first, an unused place holding [`VEXFS_NO_ID`]. Returns the most
    /// results any query got.
    #[allow(clippy::too_many_arguments)] // the ioctl's fields, each with its own meaning
    pub fn filtered_search(
        &self,
        queries: &[f32],
        dimensions: u32,
        k: usize,
        search_type: u32,
        filter: Option<&[u8]>,
        exact: bool,
        distances: &mut [f32],
        ids: &mut [u64],
    ) -> io::Result<usize> {
        let dims = dimensions.max(1) as usize;
        if dimensions == 0 || queries.len() % dims != 0 {
            return Err(invalid(format!(
                "{} values are not whole queries of {dimensions}",
                queries.len()
            )));
        }
        let query_count = queries.len() / dims;
        if distances.len() != ids.len() {
            return Err(invalid(format!(
                "{} distance slots but {} id slots",
                distances.len(),
                ids.len()
            )));
        }
        if query_count.checked_mul(k) != Some(ids.len()) {
            return Err(invalid(format!(
                "{} result slots for {query_count} queries of k = {k}",
                ids.len()
            )));
        }
        let (filter_addr, filter_bytes) = filter_fields(filter)?;
        let request = VexfsFilteredSearchRequest {
            query_vector_addr: address(queries),
            results_addr: address_mut(distances),
            result_ids_addr: address_mut(ids),
            filter_addr,
            filter_bytes,
            dimensions,
            k: count_u32("neighbours", k)?,
            search_type,
            query_count: count_u32("queries", query_count)?,
            flags: if exact { VEXFS_SEARCH_EXACT } else { 0 },
            ..Default::default()
        };
        let mut bytes = request.to_bytes();
        self.ioctl(VEXFS_IOC_FILTERED_SEARCH, &mut bytes)?;
        let written = VexfsFilteredSearchRequest::from_bytes(&bytes).result_count as usize;
        if written > k {
            return Err(corrupt(format!("result_count {written} is over k = {k}")));
        }
        Ok(written)
    }

    /// The `k` nearest neighbours of `query` among the ids whose payload
    /// matches `filter`, as (id, distance), best first.
    pub fn filtered_nearest(
        &self,
        query: &[f32],
        k: usize,
        search_type: u32,
        filter: Option<&[u8]>,
    ) -> io::Result<Vec<(u64, f32)>> {
        let dimensions = count_u32("dimensions", query.len())?;
        let mut distances = vec![0f32; k];
        let mut ids = vec![0u64; k];
        let written = self.filtered_search(
            query,
            dimensions,
            k,
            search_type,
            filter,
            false,
            &mut distances,
            &mut ids,
        )?;
        Ok(ids[..written]
            .iter()
            .copied()
            .zip(distances[..written].iter().copied())
            .filter(|&(id, _)| id != VEXFS_NO_ID)
            .collect())
    }

    /// Up to `limit` stored ids from `start_id` on whose payload matches
    /// `filter` (every stored id when `None`), ascending; `limit` 0 only
    /// counts them.
    pub fn scroll(
        &self,
        filter: Option<&[u8]>,
        start_id: u64,
        limit: usize,
    ) -> io::Result<ScrollPage> {
        let (filter_addr, filter_bytes) = filter_fields(filter)?;
        let mut ids = vec![0u64; limit];
        let request = VexfsScrollRequest {
            filter_addr,
            // NULL ids asks for the count alone, and goes with limit 0.
            ids_addr: if limit == 0 { 0 } else { address_mut(&mut ids) },
            start_id,
            filter_bytes,
            limit: count_u32("ids", limit)?,
            ..Default::default()
        };
        let mut bytes = request.to_bytes();
        self.ioctl(VEXFS_IOC_SCROLL, &mut bytes)?;
        let answer = VexfsScrollRequest::from_bytes(&bytes);
        if answer.id_count as usize > limit {
            return Err(corrupt(format!(
                "id_count {} is over limit = {limit}",
                answer.id_count
            )));
        }
        ids.truncate(answer.id_count as usize);
        Ok(ScrollPage {
            ids,
            next_id: (answer.more != 0).then_some(answer.next_id),
            matching_count: answer.matching_count,
        })
    }

    /// How many stored ids have a payload matching `filter` (all of them when `None`).
    pub fn count(&self, filter: Option<&[u8]>) -> io::Result<u32> {
        Ok(self.scroll(filter, 0, 0)?.matching_count)
    }

    /// fsetxattr(2) on the file, replacing any value it had.
    pub fn set_xattr(&self, name: &str, value: &str) -> io::Result<()> {
        let name = CString::new(name).map_err(|_| invalid(format!("{name:?}: a NUL")))?;
        // SAFETY: the descriptor is open for the call, name is
        // NUL-terminated and outlives it, value is a live buffer of
        // value.len() bytes.
        let rc = unsafe {
            libc::fsetxattr(
                self.file.as_fd().as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// fgetxattr(2) of the file as text (at most `XATTR_VALUE_BYTES_MAX`).
    pub fn xattr(&self, name: &str) -> io::Result<String> {
        let name = CString::new(name).map_err(|_| invalid(format!("{name:?}: a NUL")))?;
        let mut value = vec![0u8; XATTR_VALUE_BYTES_MAX];
        // SAFETY: the descriptor is open for the call, name is
        // NUL-terminated, value is a live buffer of value.len() bytes.
        let rc = unsafe {
            libc::fgetxattr(
                self.file.as_fd().as_raw_fd(),
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        value.truncate(rc as usize);
        String::from_utf8(value)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the xattr value is not UTF-8"))
    }

    /// `user.vexfs.status` as key -> value (vectors, dimensions, index,
    /// metric, indexed, tombstones, building, stored_index).
    pub fn status(&self) -> io::Result<BTreeMap<String, String>> {
        Ok(self
            .xattr(XATTR_STATUS)?
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// fsync(2): the vectors are durable when it returns.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: the descriptor is open for the call.
        if unsafe { libc::fsync(self.file.as_fd().as_raw_fd()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The lengths GET_PAYLOADS wrote add up to the bytes it says they take.
fn check_payload_total(payload_bytes: &[u32], total_bytes: u64) -> io::Result<()> {
    let sum: u64 = payload_bytes.iter().map(|&length| u64::from(length)).sum();
    if sum != total_bytes {
        return Err(corrupt(format!(
            "payload lengths add up to {sum} bytes, but buffer_bytes is {total_bytes}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vexfs_uapi::{VEXFS_SEARCH_COSINE, VEXFS_SEARCH_EUCLIDEAN};

    fn scratch(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("vexfs-client-{name}-{}", std::process::id()))
    }

    #[test]
    fn counts_that_do_not_match_their_slices_are_refused_before_any_ioctl() {
        let path = scratch("counts");
        let file = VectorFile::create(&path).unwrap();
        let refused = |r: io::Result<()>| r.unwrap_err().kind();
        assert_eq!(
            refused(file.batch_insert(&[0.0; 5], 2, None, 0)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            refused(file.batch_insert(&[0.0; 4], 0, None, 0)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            refused(file.batch_insert(&[0.0; 4], 2, Some(&[1]), 0)),
            io::ErrorKind::InvalidInput
        );
        let (mut distances, mut ids) = (vec![0f32; 3], vec![0u64; 2]);
        assert_eq!(
            file.search(&[0.0; 2], VEXFS_SEARCH_EUCLIDEAN, &mut distances, &mut ids)
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        let mut out = vec![0f32; 3];
        assert_eq!(
            refused(file.get_vectors(&[1, 2], 2, &mut out)),
            io::ErrorKind::InvalidInput
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn payload_and_filter_counts_are_refused_before_any_ioctl() {
        let path = scratch("payload-counts");
        let file = VectorFile::create(&path).unwrap();
        let refused = |r: io::Result<()>| r.unwrap_err().kind();
        let payload: &[u8] = br#"{"color":"red"}"#;
        // Two ids, one payload.
        assert_eq!(
            refused(file.set_payloads(&[1, 2], &[payload], None, false)),
            io::ErrorKind::InvalidInput
        );
        // Vectors that are not one per id, or of no dimensions.
        for vectors in [(&[0.0; 6][..], 2), (&[0.0; 4], 0)] {
            assert_eq!(
                refused(file.set_payloads(&[1, 2], &[payload, b""], Some(vectors), true)),
                io::ErrorKind::InvalidInput
            );
        }
        let (mut distances, mut ids) = (vec![0f32; 6], vec![0u64; 6]);
        for (queries, dimensions, k) in [
            (&[0.0; 5][..], 2, 3), // not whole queries
            (&[0.0; 4], 0, 3),     // no dimensions
            (&[0.0; 4], 2, 2),     // 2 queries x k = 2 is not 6 slots
        ] {
            assert_eq!(
                file.filtered_search(
                    queries,
                    dimensions,
                    k,
                    VEXFS_SEARCH_EUCLIDEAN,
                    None,
                    false,
                    &mut distances,
                    &mut ids
                )
                .unwrap_err()
                .kind(),
                io::ErrorKind::InvalidInput
            );
        }
        assert_eq!(
            file.filtered_search(
                &[0.0; 4],
                2,
                3,
                VEXFS_SEARCH_EUCLIDEAN,
                None,
                false,
                &mut distances,
                &mut ids[..5]
            )
            .unwrap_err()
            .kind(),
            io::ErrorKind::InvalidInput
        );
        // An empty filter is refused rather than sent as "0 bytes at an address".
        assert_eq!(
            file.filtered_nearest(&[0.0; 2], 3, VEXFS_SEARCH_COSINE, Some(b""))
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            file.scroll(Some(b""), 0, 10).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            file.count(Some(b"")).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn payload_lengths_must_add_up_to_the_bytes_they_take() {
        assert!(check_payload_total(&[3, 0, 5], 8).is_ok());
        assert!(check_payload_total(&[], 0).is_ok());
        assert_eq!(
            check_payload_total(&[3, 0, 5], 9).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn payload_and_filter_requests_on_a_file_outside_vexfs_answer_enotty() {
        let path = scratch("plain-payloads");
        let file = VectorFile::create(&path).unwrap();
        let enotty = |e: io::Error| assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "{e}");
        let filter: &[u8] = br#"{"must":[{"key":"color","match":{"value":"red"}}]}"#;
        let payload: &[u8] = br#"{"color":"red"}"#;
        enotty(
            file.set_payloads(&[1, 2], &[payload, b""], None, false)
                .unwrap_err(),
        );
        enotty(
            file.set_payloads(&[1], &[payload], Some((&[0.5; 4], 4)), true)
                .unwrap_err(),
        );
        enotty(file.payloads(&[1, 2]).unwrap_err());
        enotty(
            file.filtered_nearest(&[0.0; 4], 3, VEXFS_SEARCH_COSINE, Some(filter))
                .unwrap_err(),
        );
        enotty(file.scroll(Some(filter), 0, 10).unwrap_err());
        enotty(file.scroll(None, 5, 0).unwrap_err());
        enotty(file.count(None).unwrap_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_outside_vexfs_answers_enotty() {
        let path = scratch("plain");
        let owned = VectorFile::create(&path).unwrap();
        // A borrowed descriptor works the same.
        let borrowed = VectorFile::new(owned.file());
        for file in [&VectorFile::new(owned.file()), &borrowed] {
            assert_eq!(
                file.get_meta().unwrap_err().raw_os_error(),
                Some(libc::ENOTTY)
            );
            assert_eq!(
                file.set_meta(4).unwrap_err().raw_os_error(),
                Some(libc::ENOTTY)
            );
            assert_eq!(
                file.nearest(&[0.0; 4], 3, VEXFS_SEARCH_COSINE)
                    .unwrap_err()
                    .raw_os_error(),
                Some(libc::ENOTTY)
            );
        }
        std::fs::remove_file(&path).unwrap();
    }
}
