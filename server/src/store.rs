//! The served directory as a set of collections: a collection NAME is the
//! regular file DIR/NAME that carries `user.vexfs.collection`. Opened
//! collections are kept (one descriptor each, shared by the requests) and
//! checked against the directory at every request: a name that is gone is
//! 404, a file replaced under it is opened anew. Nothing here follows a
//! symlink or leaves the directory. Every call blocks.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vexfs_client::{VectorFile, XATTR_INDEX, XATTR_SEARCH};

use crate::collection::Collection;
use crate::config::DIRECTORY_ENTRIES_MAX;
use crate::error::{ApiError, ApiResult};
use crate::names::CollectionName;
use crate::spec::{ef_search_of, CollectionSpec, EF_SEARCH_DEFAULT, XATTR_COLLECTION};

/// Collections kept open at once; past it the cache starts over.
pub const OPEN_COLLECTIONS_MAX: usize = 1024;

pub struct Store {
    dir: PathBuf,
    read_only: bool,
    open: Mutex<HashMap<CollectionName, Arc<Collection>>>,
}

fn is_missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENODATA))
}

impl Store {
    pub fn new(dir: PathBuf, read_only: bool) -> Self {
        Store {
            dir,
            read_only,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &CollectionName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<CollectionName, Arc<Collection>>> {
        // The map holds only descriptors: a panic elsewhere left it whole.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens DIR/NAME itself, never through a symlink.
    fn open_file(&self, name: &CollectionName, write: bool) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.path(name))
    }

    /// The collection NAME, or 404.
    pub fn get(&self, name: &CollectionName) -> ApiResult<Arc<Collection>> {
        let not_found = || ApiError::collection_not_found(name.as_str());
        let metadata = match std::fs::symlink_metadata(self.path(name)) {
            Ok(m) if m.file_type().is_file() => m,
            Ok(_) => return Err(not_found()),
            Err(e) if is_missing(&e) => {
                self.cache().remove(name);
                return Err(not_found());
            }
            Err(e) => return Err(ApiError::io(format!("looking up `{name}`"), e)),
        };
        if let Some(open) = self.cache().get(name) {
            if open.ino == metadata.ino() {
                return Ok(Arc::clone(open));
            }
        }
        let file = match self.open_file(name, !self.read_only) {
            Ok(file) => file,
            Err(e) if is_missing(&e) || e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(not_found())
            }
            Err(e) => return Err(ApiError::io(format!("opening `{name}`"), e)),
        };
        let ino = file
            .metadata()
            .map_err(|e| ApiError::io(format!("fstat of `{name}`"), e))?
            .ino();
        let vector_file = VectorFile::new(&file);
        let spec = match vector_file.xattr(XATTR_COLLECTION) {
            Ok(text) => CollectionSpec::from_xattr(&text)
                .map_err(|e| ApiError::internal(format!("collection `{name}`: {e}")))?,
            Err(e) if is_missing(&e) => return Err(not_found()),
            Err(e) => return Err(ApiError::io(format!("reading `{name}`'s parameters"), e)),
        };
        let ef_search = match vector_file.xattr(XATTR_SEARCH) {
            Ok(text) => ef_search_of(&text).unwrap_or(EF_SEARCH_DEFAULT),
            Err(e) if is_missing(&e) => EF_SEARCH_DEFAULT,
            Err(e) => {
                return Err(ApiError::io(
                    format!("reading `{name}`'s search parameters"),
                    e,
                ))
            }
        };
        let collection = Arc::new(Collection::new(name.clone(), spec, ef_search, ino, file));
        let mut cache = self.cache();
        if cache.len() >= OPEN_COLLECTIONS_MAX {
            cache.clear();
        }
        cache.insert(name.clone(), Arc::clone(&collection));
        Ok(collection)
    }

    /// Creates the collection: a new file (never an existing one), its
    /// layout, its index choice, and last the xattr that makes it a
    /// collection. On any failure the file is removed again.
    pub fn create(&self, name: &CollectionName, spec: &CollectionSpec) -> ApiResult<()> {
        let xattr = spec.to_xattr().map_err(ApiError::bad_request)?;
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.path(name))
        {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let message = if self.is_collection(name)? {
                    format!("Wrong input: Collection `{name}` already exists!")
                } else {
                    format!("Wrong input: `{name}` is taken by a file of the mount that is not a collection")
                };
                return Err(ApiError::new(axum::http::StatusCode::CONFLICT, message));
            }
            Err(e) => return Err(ApiError::io(format!("creating `{name}`"), e)),
        };
        let vector_file = VectorFile::new(&file);
        let made = vector_file
            .set_meta(spec.size)
            .map_err(|e| ApiError::io(format!("SET_VECTOR_META of `{name}`"), e))
            .and_then(|()| match spec.index_string() {
                Some(index) => vector_file
                    .set_xattr(XATTR_INDEX, &index)
                    .map_err(|e| ApiError::io(format!("{XATTR_INDEX} = {index} on `{name}`"), e)),
                None => Ok(()),
            })
            .and_then(|()| {
                vector_file
                    .set_xattr(XATTR_COLLECTION, &xattr)
                    .map_err(|e| ApiError::io(format!("{XATTR_COLLECTION} on `{name}`"), e))
            })
            .and_then(|()| {
                vector_file
                    .sync()
                    .map_err(|e| ApiError::io(format!("fsync of `{name}`"), e))
            });
        if made.is_err() {
            let _ = std::fs::remove_file(self.path(name));
        }
        made
    }

    /// Whether NAME is a collection (a regular file with the collection xattr).
    pub fn is_collection(&self, name: &CollectionName) -> ApiResult<bool> {
        match self.get(name) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Unlinks the collection's file; false when NAME is not a collection
    /// (a file without the collection xattr is never removed).
    pub fn delete(&self, name: &CollectionName) -> ApiResult<bool> {
        if !self.is_collection(name)? {
            return Ok(false);
        }
        self.cache().remove(name);
        match std::fs::remove_file(self.path(name)) {
            Ok(()) => Ok(true),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(ApiError::io(format!("unlinking `{name}`"), e)),
        }
    }

    /// The collections in the directory, by name (at most
    /// DIRECTORY_ENTRIES_MAX directory entries are looked at).
    pub fn list(&self) -> ApiResult<Vec<CollectionName>> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| ApiError::io("reading the served directory", e))?;
        let mut names = Vec::new();
        for entry in entries.take(DIRECTORY_ENTRIES_MAX) {
            let entry = entry.map_err(|e| ApiError::io("reading the served directory", e))?;
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| CollectionName::parse(n).ok())
            else {
                continue;
            };
            if is_file && self.has_collection_xattr(&name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn has_collection_xattr(&self, name: &CollectionName) -> bool {
        self.open_file(name, false)
            .and_then(|file| VectorFile::new(&file).xattr(XATTR_COLLECTION))
            .is_ok()
    }

    /// The directory can be read (the mount answers).
    pub fn ready(&self) -> io::Result<()> {
        std::fs::read_dir(&self.dir)?.next().transpose()?;
        Ok(())
    }

    /// The FUSE daemon's own counters, Prometheus text it computes for the
    /// attribute `user.vexfs.metrics` of any directory of the mount.
    pub fn daemon_metrics(&self) -> io::Result<String> {
        let dir = self.dir.clone();
        let file = std::fs::File::open(&dir)?;
        // The daemon's text is a few KiB; the attribute size limit of
        // Linux (XATTR_SIZE_MAX) bounds what it may answer.
        let text =
            VectorFile::new(&file).xattr_bytes(DAEMON_METRICS_XATTR, DAEMON_METRICS_BYTES_MAX)?;
        String::from_utf8(text).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "user.vexfs.metrics is not UTF-8",
            )
        })
    }
}

/// The attribute the daemon answers its counters in (fs-layer/src/metrics.rs).
const DAEMON_METRICS_XATTR: &str = "user.vexfs.metrics";
/// Linux's XATTR_SIZE_MAX: the most one getxattr returns.
const DAEMON_METRICS_BYTES_MAX: usize = 65_536;
