//! The JSON `vexfs-bench search --http` sends to a Qdrant-style server
//! and the few fields it reads back: the collection, upserts, queries one
//! at a time and in batches, their hits, and the index's state.

use anyhow::{bail, Context, Result};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::datasets::Metric;

/// Characters of an unexpected answer quoted in an error.
pub(super) const QUOTE_CHARS_MAX: usize = 300;
/// The start of an unexpected answer, for an error message.
pub(super) fn quote(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(QUOTE_CHARS_MAX)
        .collect()
}

/// Qdrant's distance for a metric.
pub fn distance(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "Cosine",
        Metric::L2 => "Euclid",
        Metric::Dot => "Dot",
    }
}

/// `PUT /collections/{name}`: the run's dimensions, metric and index
/// (HNSW links per node `hnsw_m`; 0: Flat, exact search).
pub fn collection_body(dims: usize, metric: Metric, hnsw_m: u32) -> Value {
    json!({
        "vectors": {"size": dims, "distance": distance(metric)},
        "hnsw_config": {"m": hnsw_m},
    })
}

/// `rows` (row-major, `dims` each) as a JSON list of lists.
struct Rows<'a> {
    flat: &'a [f32],
    dims: usize,
}

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.flat.len() / self.dims))?;
        for row in self.flat.chunks_exact(self.dims) {
            seq.serialize_element(row)?;
        }
        seq.end()
    }
}

#[derive(serde::Serialize)]
struct UpsertBatch<'a> {
    ids: &'a [u64],
    vectors: Rows<'a>,
}

#[derive(serde::Serialize)]
struct UpsertBody<'a> {
    batch: UpsertBatch<'a>,
}

/// `PUT …/points`: `{"batch": {"ids": [...], "vectors": [[...], ...]}}`.
pub fn write_upsert(out: &mut Vec<u8>, ids: &[u64], vectors: &[f32], dims: usize) -> Result<()> {
    if dims == 0 || vectors.len() != ids.len() * dims {
        bail!("{} floats for {} ids of {dims}", vectors.len(), ids.len());
    }
    out.clear();
    let body = UpsertBody {
        batch: UpsertBatch {
            ids,
            vectors: Rows {
                flat: vectors,
                dims,
            },
        },
    };
    serde_json::to_writer(out, &body).context("writing the upsert body")
}

#[derive(serde::Serialize)]
struct QueryBody<'a> {
    query: &'a [f32],
    limit: usize,
}

/// `POST …/points/query`: `{"query": [...], "limit": k}` (no payloads, no vectors).
pub fn write_query(out: &mut Vec<u8>, query: &[f32], limit: usize) -> Result<()> {
    out.clear();
    serde_json::to_writer(out, &QueryBody { query, limit }).context("writing the query body")
}

/// `searches` of `POST …/points/query/batch`: one query body per row.
struct Searches<'a> {
    flat: &'a [f32],
    dims: usize,
    limit: usize,
}

impl Serialize for Searches<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.flat.len() / self.dims))?;
        for query in self.flat.chunks_exact(self.dims) {
            seq.serialize_element(&QueryBody {
                query,
                limit: self.limit,
            })?;
        }
        seq.end()
    }
}

#[derive(serde::Serialize)]
struct BatchBody<'a> {
    searches: Searches<'a>,
}

/// `POST …/points/query/batch`: `{"searches": [{"query": [...], "limit": k}, ...]}`.
pub fn write_query_batch(
    out: &mut Vec<u8>,
    queries: &[f32],
    dims: usize,
    limit: usize,
) -> Result<()> {
    if dims == 0 || queries.len() % dims != 0 {
        bail!("{} floats are not whole queries of {dims}", queries.len());
    }
    out.clear();
    let body = BatchBody {
        searches: Searches {
            flat: queries,
            dims,
            limit,
        },
    };
    serde_json::to_writer(out, &body).context("writing the batch query body")
}

#[derive(Deserialize)]
struct Hit {
    id: u64,
}

#[derive(Deserialize)]
struct Hits {
    points: Vec<Hit>,
}

#[derive(Deserialize)]
struct QueryAnswer {
    result: Hits,
}

/// The ids of a query's answer into `ids`, best first; how many.
pub fn parse_hits(answer: &[u8], ids: &mut [u64]) -> Result<usize> {
    let parsed: QueryAnswer = serde_json::from_slice(answer).with_context(|| {
        format!(
            "a query answer without result.points[].id: {}",
            quote(answer)
        )
    })?;
    let points = parsed.result.points;
    if points.len() > ids.len() {
        bail!("a query for {} points answered {}", ids.len(), points.len());
    }
    for (slot, hit) in ids.iter_mut().zip(&points) {
        *slot = hit.id;
    }
    Ok(points.len())
}

#[derive(Deserialize)]
struct BatchAnswer {
    result: Vec<Hits>,
}

/// The ids of a batch answer into `ids`, `k` places per query, best first,
/// `u64::MAX` where a query got fewer.
pub fn parse_batch_hits(answer: &[u8], k: usize, ids: &mut [u64]) -> Result<()> {
    let parsed: BatchAnswer = serde_json::from_slice(answer).with_context(|| {
        format!(
            "a batch answer without result[].points[].id: {}",
            quote(answer)
        )
    })?;
    let queries = ids.len() / k.max(1);
    if parsed.result.len() != queries {
        bail!(
            "a batch of {queries} queries answered {}",
            parsed.result.len()
        );
    }
    for (q, (row, hits)) in ids.chunks_exact_mut(k).zip(&parsed.result).enumerate() {
        if hits.points.len() > k {
            bail!(
                "query {q} of a batch asked {k} points and got {}",
                hits.points.len()
            );
        }
        row.fill(u64::MAX);
        for (slot, hit) in row.iter_mut().zip(&hits.points) {
            *slot = hit.id;
        }
    }
    Ok(())
}

/// What `GET /collections/{name}` says of the index.
#[derive(Debug, PartialEq)]
pub struct IndexState {
    pub points: u64,
    pub indexed: u64,
    /// "green": no build running.
    pub status: String,
}

impl IndexState {
    pub fn parse(answer: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(answer)
            .with_context(|| format!("collection info is not JSON: {}", quote(answer)))?;
        let result = &value["result"];
        let count = |key: &str| {
            result[key]
                .as_u64()
                .with_context(|| format!("collection info without result.{key}: {}", quote(answer)))
        };
        Ok(IndexState {
            points: count("points_count")?,
            indexed: count("indexed_vectors_count")?,
            status: result["status"].as_str().unwrap_or_default().to_string(),
        })
    }

    pub fn is_built(&self) -> bool {
        self.indexed == self.points && self.status == "green"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collection_has_the_runs_dims_metric_and_index() {
        assert_eq!(
            collection_body(384, Metric::Cosine, 32),
            json!({"vectors": {"size": 384, "distance": "Cosine"}, "hnsw_config": {"m": 32}})
        );
        assert_eq!(
            collection_body(8, Metric::L2, 0)["vectors"]["distance"],
            "Euclid"
        );
        assert_eq!(distance(Metric::Dot), "Dot");
    }

    #[test]
    fn upserts_carry_ids_and_rows_and_floats_round_trip() {
        let mut body = Vec::new();
        let rows = [0.1f32, -2.5, 1e-7, f32::MAX, 3.0, 1.0 / 3.0];
        write_upsert(&mut body, &[7, 9], &rows[..4], 2).unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["batch"]["ids"], json!([7, 9]));
        let vectors = value["batch"]["vectors"].as_array().unwrap();
        assert_eq!(vectors.len(), 2);
        let back: Vec<f32> = vectors
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter())
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(back, rows[..4]);
        assert!(write_upsert(&mut body, &[1], &rows, 2).is_err());
        // The buffer is reused, not appended to.
        write_query(&mut body, &rows[4..], 10).unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["limit"], 10);
        assert_eq!(value["query"].as_array().unwrap().len(), 2);
        assert_eq!(value["query"][1].as_f64().unwrap() as f32, 1.0 / 3.0);
    }

    #[test]
    fn hits_are_read_best_first_and_bounded() {
        let answer = br#"{"result":{"points":[{"id":5,"version":0,"score":0.9,"payload":null,"vector":null},{"id":2,"score":0.8}]},"status":"ok","time":0.001}"#;
        let mut ids = [u64::MAX; 3];
        assert_eq!(parse_hits(answer, &mut ids).unwrap(), 2);
        assert_eq!(ids[..2], [5, 2]);
        let mut one = [0u64; 1];
        assert!(parse_hits(answer, &mut one).is_err());
        assert!(parse_hits(br#"{"result":[]}"#, &mut ids).is_err());
        assert!(parse_hits(br#"{"result":{"points":[{"id":"6a1c"}]}}"#, &mut ids).is_err());
    }

    #[test]
    fn batches_carry_one_query_per_row_and_answers_fill_k_places_each() {
        let mut body = Vec::new();
        write_query_batch(&mut body, &[1.0, 0.5, 0.0, 2.0], 2, 3).unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"searches": [{"query": [1.0, 0.5], "limit": 3}, {"query": [0.0, 2.0], "limit": 3}]})
        );
        assert!(write_query_batch(&mut body, &[1.0, 0.5, 0.0], 2, 3).is_err());

        let answer = br#"{"result":[{"points":[{"id":4,"score":1.0},{"id":9,"score":0.5}]},{"points":[]}],"status":"ok"}"#;
        let mut ids = [0u64; 4];
        parse_batch_hits(answer, 2, &mut ids).unwrap();
        assert_eq!(ids, [4, 9, u64::MAX, u64::MAX]);
        // Answers for another number of queries, or more points than asked.
        let mut three = [0u64; 6];
        assert!(parse_batch_hits(answer, 2, &mut three).is_err());
        let mut narrow = [0u64; 2];
        assert!(parse_batch_hits(answer, 1, &mut narrow).is_err());
    }

    #[test]
    fn the_index_is_built_when_it_covers_every_point_and_nothing_builds() {
        let info = |status: &str, indexed: u64| {
            let body = json!({"result": {"status": status, "points_count": 20, "indexed_vectors_count": indexed}});
            IndexState::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
        };
        assert!(info("green", 20).is_built());
        assert!(!info("yellow", 20).is_built());
        assert!(!info("green", 0).is_built());
        assert!(IndexState::parse(br#"{"result":{"status":"green"}}"#).is_err());
    }
}
