//! A small ioctl client for one vector file: what a C program written
//! against `vexfs_v2_uapi.h` does, in safe Rust. The request structs are the
//! uapi crate's; their pointer fields are the addresses of this process's
//! slices, which the daemon reads and writes with process_vm_readv/writev.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use vexfs_uapi::{
    VexfsBatchInsertRequest, VexfsDeleteRequest, VexfsGetVectorsRequest, VexfsVectorFileInfo,
    VexfsVectorSearchRequest, VEXFS_COMPRESS_NONE, VEXFS_IOC_BATCH_INSERT,
    VEXFS_IOC_DELETE_VECTORS, VEXFS_IOC_GET_VECTORS, VEXFS_IOC_GET_VECTOR_META,
    VEXFS_IOC_SET_VECTOR_META, VEXFS_IOC_VECTOR_SEARCH, VEXFS_STORAGE_DENSE, VEXFS_VECTOR_FLOAT32,
};

/// Extended attribute naming the file's faiss index-factory string.
pub const XATTR_INDEX: &str = "user.vexfs.index";
/// Extended attribute holding the index's search parameters (`efSearch=64`).
pub const XATTR_SEARCH: &str = "user.vexfs.search";

/// A regular file on a VexFS mount, opened read-write, used as a vector file.
pub struct VectorFile {
    file: File,
    path: PathBuf,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn count_u32(what: &str, count: usize) -> io::Result<u32> {
    u32::try_from(count).map_err(|_| invalid(format!("{count} {what} do not fit a u32 count")))
}

/// The address the daemon reads or writes; it must stay valid for the call.
fn address<T>(slice: &[T]) -> u64 {
    slice.as_ptr() as u64
}

impl VectorFile {
    /// Creates (or truncates) `path` and opens it read-write.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing vector file read-write.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
                self.file.as_raw_fd(),
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
        let info = VexfsVectorFileInfo {
            dimensions,
            element_type: VEXFS_VECTOR_FLOAT32,
            storage_format: VEXFS_STORAGE_DENSE,
            compression_type: VEXFS_COMPRESS_NONE,
            ..Default::default()
        };
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
            results_addr: address(distances),
            result_ids_addr: address(ids),
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
            vectors_addr: address(vectors),
            id_count: count_u32("ids", ids.len())?,
            dimensions,
            ..Default::default()
        };
        self.ioctl(VEXFS_IOC_GET_VECTORS, &mut request.to_bytes())
    }

    /// setxattr(2) on the file, replacing any value it had.
    pub fn set_xattr(&self, name: &str, value: &str) -> io::Result<()> {
        let path = CString::new(self.path.as_os_str().as_encoded_bytes())
            .map_err(|_| invalid(format!("{}: a NUL in the path", self.path.display())))?;
        let name = CString::new(name).map_err(|_| invalid(format!("{name:?}: a NUL")))?;
        // SAFETY: path and name are NUL-terminated and outlive the call;
        // value is a live buffer of value.len() bytes.
        let rc = unsafe {
            libc::setxattr(
                path.as_ptr(),
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

    /// fsync(2): the vectors are durable when it returns.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}
