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
//!
//! Here, the file, its vectors and its xattrs; `points` holds payloads and
//! the requests that filter by them.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use vexfs_uapi::{
    VexfsBatchInsertRequest, VexfsDeleteRequest, VexfsGetVectorsRequest, VexfsVectorFileInfo,
    VexfsVectorSearchRequest, VEXFS_COMPRESS_NONE, VEXFS_IOC_BATCH_INSERT,
    VEXFS_IOC_DELETE_VECTORS, VEXFS_IOC_GET_VECTORS, VEXFS_IOC_GET_VECTOR_META,
    VEXFS_IOC_SET_VECTOR_META, VEXFS_IOC_VECTOR_SEARCH, VEXFS_STORAGE_DENSE, VEXFS_VECTOR_FLOAT32,
};

mod points;

pub use points::ScrollPage;

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
        let value = self.xattr_bytes(name, XATTR_VALUE_BYTES_MAX)?;
        String::from_utf8(value)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the xattr value is not UTF-8"))
    }

    /// fgetxattr(2) of at most `bytes_max` bytes (ERANGE when longer); on a
    /// directory's descriptor too (the daemon's `user.vexfs.metrics`).
    pub fn xattr_bytes(&self, name: &str, bytes_max: usize) -> io::Result<Vec<u8>> {
        let name = CString::new(name).map_err(|_| invalid(format!("{name:?}: a NUL")))?;
        let mut value = vec![0u8; bytes_max];
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
        Ok(value)
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

#[cfg(test)]
mod tests {
    use super::*;
    use vexfs_uapi::{VEXFS_SEARCH_COSINE, VEXFS_SEARCH_EUCLIDEAN};

    pub(super) fn scratch(name: &str) -> std::path::PathBuf {
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
