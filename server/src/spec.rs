//! A collection's parameters as the file keeps them: compact JSON in the
//! `user.vexfs.collection` xattr (docs/HTTP.md), written last when the
//! collection is created, so a file carrying it is a whole collection.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vexfs_client::XATTR_VALUE_BYTES_MAX;

use crate::distance::Distance;

/// The xattr that marks a vector file as a collection and holds its parameters.
pub const XATTR_COLLECTION: &str = "user.vexfs.collection";
/// The only version of the xattr's layout so far.
pub const SPEC_VERSION: u32 = 1;
/// efSearch the filesystem uses when `user.vexfs.search` does not say
/// (docs/VECTORS.md).
pub const EF_SEARCH_DEFAULT: u32 = 64;
/// HNSW links per node the filesystem's own default index uses.
pub const HNSW_M_DEFAULT: u32 = 32;
/// Below this many vectors the filesystem's default index is Flat (exact).
pub const FLAT_VECTORS_MAX_DEFAULT: u64 = 16_384;
/// The filesystem's HNSW bounds on links per node (HNSW_M_MIN..=HNSW_M_MAX).
pub const HNSW_M_MIN: u64 = 4;
pub const HNSW_M_MAX: u64 = 128;
/// faiss's efConstruction, which VexFS builds every HNSW graph with.
pub const EF_CONSTRUCT: u32 = 40;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionSpec {
    pub v: u32,
    pub size: u32,
    pub distance: Distance,
    /// HNSW links per node asked for at creation (0: no graph, Flat);
    /// absent: the filesystem's default index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw_m: Option<u32>,
    /// Qdrant's free-form collection metadata, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl CollectionSpec {
    /// The `user.vexfs.index` string the collection asks for, if any.
    pub fn index_string(&self) -> Option<String> {
        match self.hnsw_m? {
            0 => Some("Flat".to_string()),
            m => Some(format!("HNSW{m}")),
        }
    }

    /// The xattr value; refused when it does not fit an xattr (large metadata).
    pub fn to_xattr(&self) -> Result<String, String> {
        let text = serde_json::to_string(self).map_err(|e| e.to_string())?;
        if text.len() > XATTR_VALUE_BYTES_MAX {
            return Err(format!(
                "the collection's parameters and metadata take {} bytes as JSON; \
                 VexFS keeps at most {XATTR_VALUE_BYTES_MAX} (make the metadata smaller)",
                text.len()
            ));
        }
        Ok(text)
    }

    pub fn from_xattr(text: &str) -> Result<Self, String> {
        let spec: CollectionSpec =
            serde_json::from_str(text).map_err(|e| format!("{XATTR_COLLECTION}: {e}"))?;
        if spec.v != SPEC_VERSION {
            return Err(format!(
                "{XATTR_COLLECTION}: version {} (this server reads {SPEC_VERSION})",
                spec.v
            ));
        }
        Ok(spec)
    }
}

/// efSearch from a `user.vexfs.search` value (`efSearch=N,nprobe=M`).
pub fn ef_search_of(search_xattr: &str) -> Option<u32> {
    search_xattr
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(key, _)| *key == "efSearch")
        .and_then(|(_, value)| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hnsw_m: Option<u32>) -> CollectionSpec {
        CollectionSpec {
            v: SPEC_VERSION,
            size: 4,
            distance: Distance::Cosine,
            hnsw_m,
            metadata: None,
        }
    }

    #[test]
    fn the_xattr_round_trips_compactly() {
        let text = spec(Some(16)).to_xattr().unwrap();
        assert_eq!(text, r#"{"v":1,"size":4,"distance":"Cosine","hnsw_m":16}"#);
        assert_eq!(CollectionSpec::from_xattr(&text).unwrap(), spec(Some(16)));
        assert!(
            CollectionSpec::from_xattr(r#"{"v":2,"size":4,"distance":"Dot"}"#)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(CollectionSpec::from_xattr("not json").is_err());
    }

    #[test]
    fn large_metadata_does_not_fit() {
        let mut big = spec(None);
        let mut metadata = Map::new();
        metadata.insert("notes".into(), Value::String("x".repeat(2000)));
        big.metadata = Some(metadata);
        assert!(big.to_xattr().unwrap_err().contains("at most"));
    }

    #[test]
    fn index_strings_follow_m() {
        assert_eq!(spec(None).index_string(), None);
        assert_eq!(spec(Some(0)).index_string().as_deref(), Some("Flat"));
        assert_eq!(spec(Some(16)).index_string().as_deref(), Some("HNSW16"));
    }

    #[test]
    fn ef_search_is_read_from_the_search_xattr() {
        assert_eq!(ef_search_of("efSearch=128"), Some(128));
        assert_eq!(ef_search_of("nprobe=4, efSearch=32"), Some(32));
        assert_eq!(ef_search_of("nprobe=4"), None);
    }
}
