//! What one server serves and how (the mount, the key, read-only), and the
//! limits every request is held to, each named once.

use std::path::PathBuf;

use vexfs_uapi::limits::{BATCH_VECTORS_MAX, SEARCH_K_MAX};

/// Longest collection name, in bytes (NAME_MAX of the directory it lives in).
pub const NAME_BYTES_MAX: usize = 255;
/// Request bodies larger than this are refused with 413 unless
/// `--body-bytes-max` says otherwise.
pub const BODY_BYTES_MAX_DEFAULT: usize = 32 << 20;
/// Points one upsert may carry (the ioctl's own batch limit).
pub const UPSERT_POINTS_MAX: usize = BATCH_VECTORS_MAX as usize;
/// Ids one delete, payload change or retrieve may name.
pub const IDS_PER_REQUEST_MAX: usize = BATCH_VECTORS_MAX as usize;
/// Points one answer may hold (query limit + offset, scroll limit,
/// retrieve ids): the ioctl's k limit, which also bounds the payloads and
/// vectors an answer carries.
pub const POINTS_PER_ANSWER_MAX: usize = SEARCH_K_MAX as usize;
/// Ids read from the filesystem in one SCROLL when a request walks every
/// point a filter matches (delete, set or clear payload by filter).
pub const SCROLL_PAGE_IDS: usize = 16_384;
/// Ids named in one `has_id` filter: 2,048 ids of up to 20 digits stay
/// under the filesystem's 65,536-byte filter limit.
pub const HAS_ID_CHUNK_IDS: usize = 2_048;
/// Bytes of payloads one SET_PAYLOADS carries when a request sets the same
/// payload on many points (well under the ioctl's 256 MiB).
pub const PAYLOAD_BATCH_BYTES_MAX: usize = 64 << 20;
/// Filesystem requests in flight at once; more wait their turn (each holds
/// a blocking thread and the daemon's request memory).
pub const FILESYSTEM_REQUESTS_MAX: usize = 64;
/// Directory entries `GET /collections` and `/metrics` look at.
pub const DIRECTORY_ENTRIES_MAX: usize = 65_536;

/// The server's settings, from the command line or a test.
#[derive(Clone, Debug)]
pub struct Config {
    /// The directory of a mounted VexFS whose vector files are the collections.
    pub mount: PathBuf,
    /// When set, every request outside the probes must carry it.
    pub api_key: Option<String>,
    /// Refuse every request that would change the mount (403).
    pub read_only: bool,
    pub body_bytes_max: usize,
}

impl Config {
    pub fn new(mount: PathBuf) -> Self {
        Config {
            mount,
            api_key: None,
            read_only: false,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
        }
    }
}
