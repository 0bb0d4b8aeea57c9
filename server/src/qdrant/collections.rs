//! Qdrant's collection requests and answers: `PUT /collections/{name}`'s
//! body, checked option by option (what VexFS cannot honour is refused by
//! name, never dropped), and the `CollectionInfo` that `GET` answers.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use vexfs_uapi::limits::DIMENSIONS_MAX;

use crate::distance::Distance;
use crate::spec::{
    CollectionSpec, EF_CONSTRUCT, FLAT_VECTORS_MAX_DEFAULT, HNSW_M_DEFAULT, HNSW_M_MAX, HNSW_M_MIN,
    SPEC_VERSION,
};

/// `PUT /collections/{name}`. Every field Qdrant 1.19 documents is named so
/// that a null (absent) or "off" value is accepted and anything else is
/// refused by name; fields Qdrant does not know are refused too.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    vectors: Option<Value>,
    shard_number: Option<u64>,
    sharding_method: Option<String>,
    replication_factor: Option<u64>,
    write_consistency_factor: Option<u64>,
    on_disk_payload: Option<bool>,
    payload: Option<Value>,
    hnsw_config: Option<HnswConfigDiff>,
    wal_config: Option<Value>,
    optimizers_config: Option<Value>,
    quantization_config: Option<Value>,
    sparse_vectors: Option<Map<String, Value>>,
    strict_mode_config: Option<Value>,
    metadata: Option<Map<String, Value>>,
    init_from: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorParams {
    size: u64,
    distance: String,
    hnsw_config: Option<HnswConfigDiff>,
    quantization_config: Option<Value>,
    on_disk: Option<bool>,
    memory: Option<Value>,
    datatype: Option<String>,
    multivector_config: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HnswConfigDiff {
    m: Option<u64>,
    ef_construct: Option<u64>,
    full_scan_threshold: Option<u64>,
    max_indexing_threads: Option<u64>,
    on_disk: Option<bool>,
    memory: Option<Value>,
    payload_m: Option<u64>,
    inline_storage: Option<bool>,
}

/// Collects the names of options that cannot be honoured.
#[derive(Default)]
struct Refusals(Vec<String>);

impl Refusals {
    fn unless(&mut self, honoured: bool, what: impl Into<String>) {
        if !honoured {
            self.0.push(what.into());
        }
    }
}

impl HnswConfigDiff {
    /// The links per node it asks for, after refusing what has no VexFS meaning.
    fn check(&self, at: &str, refusals: &mut Refusals) -> Result<Option<u32>, String> {
        refusals.unless(
            self.ef_construct.is_none(),
            format!("{at}.ef_construct (VexFS builds HNSW with efConstruction {EF_CONSTRUCT})"),
        );
        refusals.unless(
            self.full_scan_threshold.is_none(),
            format!("{at}.full_scan_threshold"),
        );
        refusals.unless(
            matches!(self.max_indexing_threads, None | Some(0)),
            format!("{at}.max_indexing_threads"),
        );
        refusals.unless(self.on_disk != Some(true), format!("{at}.on_disk"));
        refusals.unless(self.memory.is_none(), format!("{at}.memory"));
        refusals.unless(self.payload_m.is_none(), format!("{at}.payload_m"));
        refusals.unless(
            self.inline_storage != Some(true),
            format!("{at}.inline_storage"),
        );
        match self.m {
            None => Ok(None),
            Some(0) => Ok(Some(0)),
            Some(m) if (HNSW_M_MIN..=HNSW_M_MAX).contains(&m) => Ok(Some(m as u32)),
            Some(m) => Err(format!(
                "{at}.m = {m}: VexFS's HNSW takes {HNSW_M_MIN}..={HNSW_M_MAX} links per node \
                 (or 0: no graph, exact search)"
            )),
        }
    }
}

impl CreateCollection {
    /// The collection's parameters, or a message naming every option refused.
    pub fn into_spec(self) -> Result<CollectionSpec, String> {
        let mut refusals = Refusals::default();
        refusals.unless(matches!(self.shard_number, None | Some(1)), "shard_number");
        refusals.unless(
            matches!(self.sharding_method.as_deref(), None | Some("auto")),
            "sharding_method",
        );
        refusals.unless(
            matches!(self.replication_factor, None | Some(1)),
            "replication_factor",
        );
        refusals.unless(
            matches!(self.write_consistency_factor, None | Some(1)),
            "write_consistency_factor",
        );
        refusals.unless(self.on_disk_payload != Some(true), "on_disk_payload");
        refusals.unless(self.payload.is_none(), "payload");
        refusals.unless(self.wal_config.is_none(), "wal_config");
        refusals.unless(self.optimizers_config.is_none(), "optimizers_config");
        refusals.unless(self.quantization_config.is_none(), "quantization_config");
        refusals.unless(
            self.sparse_vectors.as_ref().is_none_or(Map::is_empty),
            "sparse_vectors",
        );
        refusals.unless(self.strict_mode_config.is_none(), "strict_mode_config");
        refusals.unless(self.init_from.is_none(), "init_from");

        let collection_m = match &self.hnsw_config {
            Some(hnsw) => hnsw.check("hnsw_config", &mut refusals)?,
            None => None,
        };
        let params = vector_params(self.vectors)?;
        refusals.unless(
            params.quantization_config.is_none(),
            "vectors.quantization_config",
        );
        refusals.unless(params.on_disk != Some(true), "vectors.on_disk");
        refusals.unless(params.memory.is_none(), "vectors.memory");
        refusals.unless(
            matches!(params.datatype.as_deref(), None | Some("float32")),
            "vectors.datatype (VexFS stores float32)",
        );
        refusals.unless(
            params.multivector_config.is_none(),
            "vectors.multivector_config",
        );
        let vector_m = match &params.hnsw_config {
            Some(hnsw) => hnsw.check("vectors.hnsw_config", &mut refusals)?,
            None => None,
        };
        if !refusals.0.is_empty() {
            return Err(format!("not supported by VexFS: {}", refusals.0.join(", ")));
        }
        if params.size == 0 || params.size > u64::from(DIMENSIONS_MAX) {
            return Err(format!(
                "vectors.size = {}: VexFS takes 1..={DIMENSIONS_MAX} dimensions",
                params.size
            ));
        }
        Ok(CollectionSpec {
            v: SPEC_VERSION,
            size: params.size as u32,
            distance: Distance::parse(&params.distance).map_err(|e| format!("vectors.{e}"))?,
            hnsw_m: vector_m.or(collection_m),
            metadata: self.metadata,
        })
    }
}

/// The one unnamed vector's parameters; named vectors are refused.
fn vector_params(vectors: Option<Value>) -> Result<VectorParams, String> {
    let Some(vectors) = vectors else {
        return Err("\"vectors\": {\"size\": N, \"distance\": ...} is required \
                    (collections without dense vectors are not supported)"
            .into());
    };
    let is_single = vectors.as_object().is_some_and(|o| o.contains_key("size"));
    if !is_single {
        return Err(
            "named vectors are not supported: give \"vectors\": {\"size\": N, \"distance\": ...}"
                .into(),
        );
    }
    serde_json::from_value(vectors).map_err(|e| format!("vectors: {e}"))
}

/// What `user.vexfs.status` says of a collection (docs/VECTORS.md).
pub struct CollectionState<'a> {
    pub status: &'a BTreeMap<String, String>,
    /// Keys and kinds named in `user.vexfs.payload_index`.
    pub payload_index: &'a [(String, String)],
}

fn count(status: &BTreeMap<String, String>, key: &str) -> u64 {
    status.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Qdrant's `CollectionInfo` for a collection and the file's state.
pub fn collection_info(spec: &CollectionSpec, state: &CollectionState) -> Value {
    let vectors = count(state.status, "vectors");
    let building = state.status.get("building").is_some_and(|b| b != "none");
    // Qdrant's thresholds are kilobytes of vectors; 1 KB holds 256 floats.
    let flat_kilobytes = FLAT_VECTORS_MAX_DEFAULT * u64::from(spec.size) / 256;
    let payload_schema: Map<String, Value> = state
        .payload_index
        .iter()
        .map(|(key, kind)| (key.clone(), json!({"data_type": kind, "points": vectors})))
        .collect();
    json!({
        "status": if building { "yellow" } else { "green" },
        "optimizer_status": "ok",
        "vectors_count": vectors,
        "indexed_vectors_count": count(state.status, "indexed"),
        "points_count": vectors,
        "segments_count": 1,
        "config": {
            "params": {
                "vectors": {"size": spec.size, "distance": spec.distance},
                "shard_number": 1,
                "replication_factor": 1,
                "write_consistency_factor": 1,
                "on_disk_payload": false,
            },
            "hnsw_config": {
                "m": spec.hnsw_m.unwrap_or(HNSW_M_DEFAULT),
                "ef_construct": EF_CONSTRUCT,
                "full_scan_threshold": flat_kilobytes,
            },
            "optimizer_config": {
                "deleted_threshold": 0.1,
                "vacuum_min_vector_number": 0,
                "default_segment_number": 1,
                "max_segment_size": null,
                "memmap_threshold": null,
                "indexing_threshold": flat_kilobytes,
                "flush_interval_sec": 5,
                "max_optimization_threads": null,
            },
            "quantization_config": null,
            "metadata": spec.metadata,
        },
        "payload_schema": payload_schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<CollectionSpec, String> {
        serde_json::from_value::<CreateCollection>(body)
            .map_err(|e| e.to_string())?
            .into_spec()
    }

    #[test]
    fn a_plain_collection_and_its_hnsw_m() {
        let spec = parse(json!({"vectors": {"size": 4, "distance": "Cosine"}})).unwrap();
        assert_eq!(
            (spec.size, spec.distance, spec.hnsw_m),
            (4, Distance::Cosine, None)
        );
        let spec = parse(json!({
            "vectors": {"size": 8, "distance": "Dot", "on_disk": false, "datatype": "float32"},
            "hnsw_config": {"m": 16, "ef_construct": null},
            "shard_number": 1, "replication_factor": null, "metadata": {"team": "a"}
        }))
        .unwrap();
        assert_eq!(spec.hnsw_m, Some(16));
        assert_eq!(spec.metadata.unwrap()["team"], "a");
        // The vector's own hnsw_config wins; m = 0 means no graph.
        let spec = parse(json!({
            "vectors": {"size": 8, "distance": "Euclid", "hnsw_config": {"m": 0}},
            "hnsw_config": {"m": 16}
        }))
        .unwrap();
        assert_eq!(spec.index_string().as_deref(), Some("Flat"));
    }

    #[test]
    fn options_that_cannot_be_honoured_are_named() {
        let e = parse(json!({
            "vectors": {"size": 4, "distance": "Cosine", "on_disk": true},
            "hnsw_config": {"m": 16, "ef_construct": 100},
            "quantization_config": {"scalar": {"type": "int8"}},
            "shard_number": 2,
            "sparse_vectors": {"text": {}}
        }))
        .unwrap_err();
        for named in [
            "shard_number",
            "quantization_config",
            "sparse_vectors",
            "hnsw_config.ef_construct",
            "vectors.on_disk",
        ] {
            assert!(e.contains(named), "{named} not in {e}");
        }
        assert!(e.starts_with("not supported by VexFS"));
    }

    #[test]
    fn shapes_outside_the_subset_are_refused() {
        let named = parse(json!({"vectors": {"image": {"size": 4, "distance": "Dot"}}}));
        assert!(named.unwrap_err().contains("named vectors"));
        assert!(parse(json!({})).unwrap_err().contains("required"));
        assert!(parse(json!({"vectors": {"size": 0, "distance": "Dot"}}))
            .unwrap_err()
            .contains("1..="));
        assert!(
            parse(json!({"vectors": {"size": 4, "distance": "Manhattan"}}))
                .unwrap_err()
                .contains("Manhattan")
        );
        assert!(
            parse(json!({"vectors": {"size": 4, "distance": "Dot"}, "hnsw_config": {"m": 2}}))
                .unwrap_err()
                .contains("4..=128")
        );
        assert!(
            parse(json!({"vectors": {"size": 4, "distance": "Dot"}, "colour": "red"}))
                .unwrap_err()
                .contains("unknown field `colour`")
        );
        assert!(
            parse(json!({"vectors": {"size": 4, "distance": "Dot", "extra": 1}}))
                .unwrap_err()
                .contains("unknown field `extra`")
        );
    }

    #[test]
    fn info_reports_the_files_state() {
        let spec = parse(json!({"vectors": {"size": 4, "distance": "Dot"}})).unwrap();
        let status: BTreeMap<String, String> =
            [("vectors", "10"), ("indexed", "8"), ("building", "HNSW32")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let index = [("city".to_string(), "keyword".to_string())];
        let info = collection_info(
            &spec,
            &CollectionState {
                status: &status,
                payload_index: &index,
            },
        );
        assert_eq!(info["status"], "yellow");
        assert_eq!(info["points_count"], 10);
        assert_eq!(info["indexed_vectors_count"], 8);
        assert_eq!(
            info["config"]["params"]["vectors"],
            json!({"size": 4, "distance": "Dot"})
        );
        assert_eq!(info["payload_schema"]["city"]["data_type"], "keyword");
    }
}
