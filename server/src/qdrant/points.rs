//! Qdrant's points requests: upsert (list and batch forms), retrieve,
//! query and the older search, scroll, count, delete and the payload
//! requests. Every documented field is named: null means absent, and a
//! value VexFS cannot honour is refused by name; unknown fields are refused.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::values::{DenseVector, PayloadSelector, PointId, WithVector, UUID_IDS_REFUSED};

/// A JSON object: a point's payload.
pub type Payload = Map<String, Value>;

/// Refuses a field that is present (not null) with the reason VexFS has.
pub fn refuse_present<T>(field: &Option<T>, name: &str, why: &str) -> Result<(), String> {
    match field {
        None => Ok(()),
        Some(_) => Err(format!("{name} is not supported: {why}")),
    }
}

const NO_SHARDS: &str = "a VexFS collection is one file (no shards)";

/// Every request that may name a shard key refuses one the same way.
pub fn refuse_shard_key<T>(shard_key: &Option<T>) -> Result<(), String> {
    refuse_present(shard_key, "shard_key", NO_SHARDS)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointStruct {
    pub id: PointId,
    pub vector: DenseVector,
    pub payload: Option<Payload>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub ids: Vec<PointId>,
    pub vectors: Vec<DenseVector>,
    pub payloads: Option<Vec<Option<Payload>>>,
}

/// `PUT /collections/{name}/points`: `{"points": [...]}` or `{"batch": {...}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upsert {
    pub points: Option<Vec<PointStruct>>,
    pub batch: Option<Batch>,
    pub shard_key: Option<Value>,
    pub update_filter: Option<Value>,
    pub update_mode: Option<String>,
}

impl Upsert {
    /// The points as (id, vector, payload), in the order given.
    pub fn into_points(self) -> Result<Vec<PointStruct>, String> {
        refuse_shard_key(&self.shard_key)?;
        refuse_present(
            &self.update_filter,
            "update_filter",
            "upserts replace whole points",
        )?;
        if !matches!(self.update_mode.as_deref(), None | Some("upsert")) {
            return Err("update_mode other than \"upsert\" is not supported".into());
        }
        match (self.points, self.batch) {
            (Some(points), None) => Ok(points),
            (None, Some(batch)) => {
                let count = batch.ids.len();
                if batch.vectors.len() != count {
                    return Err(format!(
                        "batch: {count} ids but {} vectors",
                        batch.vectors.len()
                    ));
                }
                let payloads = match batch.payloads {
                    None => vec![None; count],
                    Some(p) if p.len() == count => p,
                    Some(p) => return Err(format!("batch: {count} ids but {} payloads", p.len())),
                };
                Ok(batch
                    .ids
                    .into_iter()
                    .zip(batch.vectors)
                    .zip(payloads)
                    .map(|((id, vector), payload)| PointStruct {
                        id,
                        vector,
                        payload,
                    })
                    .collect())
            }
            _ => Err("give either \"points\": [...] or \"batch\": {...}".into()),
        }
    }
}

/// `POST /collections/{name}/points`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retrieve {
    pub ids: Vec<PointId>,
    pub with_payload: Option<PayloadSelector>,
    pub with_vector: Option<WithVector>,
    pub shard_key: Option<Value>,
}

/// Search parameters of query and search.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    pub hnsw_ef: Option<u64>,
    pub exact: Option<bool>,
    /// Without quantized vectors (VexFS has none) these change nothing.
    pub quantization: Option<Value>,
    pub indexed_only: Option<bool>,
    pub acorn: Option<Value>,
    pub idf: Option<Value>,
}

impl SearchParams {
    pub fn check(&self) -> Result<(), String> {
        if self.indexed_only == Some(true) {
            return Err("params.indexed_only = true is not supported".into());
        }
        refuse_present(
            &self.acorn,
            "params.acorn",
            "filtered search already ranks the matching points",
        )?;
        refuse_present(&self.idf, "params.idf", "sparse vectors are not supported")
    }
}

/// What a query looks for.
#[derive(Debug, PartialEq)]
pub enum QueryTarget {
    /// Points ordered by id (no query: Qdrant's scroll through query).
    ById,
    Vector(Vec<f32>),
    /// The nearest to a stored point's vector, the point itself excluded.
    Point(PointId),
}

/// `POST /collections/{name}/points/query`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub shard_key: Option<Value>,
    pub prefetch: Option<Value>,
    pub query: Option<Value>,
    pub using: Option<String>,
    pub filter: Option<Value>,
    pub params: Option<SearchParams>,
    pub score_threshold: Option<f32>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub with_vector: Option<WithVector>,
    pub with_payload: Option<PayloadSelector>,
    pub lookup_from: Option<Value>,
}

impl Query {
    pub fn check(&self) -> Result<(), String> {
        refuse_shard_key(&self.shard_key)?;
        refuse_present(&self.prefetch, "prefetch", "queries run one stage")?;
        refuse_present(
            &self.lookup_from,
            "lookup_from",
            "queries look in their own collection",
        )?;
        check_using(self.using.as_deref())?;
        self.params.as_ref().map_or(Ok(()), SearchParams::check)
    }

    pub fn target(&self) -> Result<QueryTarget, String> {
        match &self.query {
            None => Ok(QueryTarget::ById),
            Some(query) => query_target(query),
        }
    }
}

fn check_using(using: Option<&str>) -> Result<(), String> {
    match using {
        None | Some("") => Ok(()),
        Some(name) => Err(format!("using = {name:?}: named vectors are not supported")),
    }
}

/// Qdrant's query: a vector, a point id, or `{"nearest": either}`.
fn query_target(query: &Value) -> Result<QueryTarget, String> {
    match query {
        Value::Number(_) => Ok(QueryTarget::Point(point_id(query)?)),
        Value::String(_) => Err(UUID_IDS_REFUSED.into()),
        Value::Array(_) => Ok(QueryTarget::Vector(dense(query)?)),
        Value::Object(object) => {
            if let Some(nearest) = object.get("nearest") {
                if let Some(key) = object
                    .keys()
                    .find(|k| *k != "nearest" && !object[*k].is_null())
                {
                    return Err(format!(
                        "query.{key} is not supported (nearest by vector or id is)"
                    ));
                }
                return match nearest {
                    Value::Object(_) => Err("query.nearest: sparse vectors, documents and images \
                                             are not supported; give a vector or a point id"
                        .into()),
                    Value::Null => Err("query.nearest is null".into()),
                    other => query_target(other),
                };
            }
            match object.keys().next() {
                Some(kind) => Err(format!(
                    "query {{\"{kind}\": ...}} is not supported (nearest by vector or id is)"
                )),
                None => Err("query {} names no query".into()),
            }
        }
        other => Err(format!("query {other} is neither a vector nor a point id")),
    }
}

fn point_id(value: &Value) -> Result<PointId, String> {
    PointId::deserialize(value).map_err(|e| e.to_string())
}

fn dense(value: &Value) -> Result<Vec<f32>, String> {
    DenseVector::deserialize(value)
        .map(|v| v.0)
        .map_err(|e| e.to_string())
}

/// `POST /collections/{name}/points/search` (clients before the query API).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    pub vector: Value,
    pub filter: Option<Value>,
    pub params: Option<SearchParams>,
    pub limit: u64,
    pub offset: Option<u64>,
    pub with_payload: Option<PayloadSelector>,
    pub with_vector: Option<WithVector>,
    pub score_threshold: Option<f32>,
    pub shard_key: Option<Value>,
}

impl Search {
    /// The same search as a query (the one code path both answer by).
    pub fn into_query(self) -> Result<Query, String> {
        let vector = match &self.vector {
            Value::Array(_) => dense(&self.vector)?,
            Value::Object(named) => {
                check_using(named.get("name").and_then(Value::as_str).or(Some("?")))?;
                dense(named.get("vector").unwrap_or(&Value::Null))?
            }
            other => return Err(format!("vector {other} is not a list of numbers")),
        };
        Ok(Query {
            shard_key: self.shard_key,
            query: Some(Value::from(vector)),
            filter: self.filter,
            params: self.params,
            score_threshold: self.score_threshold,
            limit: Some(self.limit),
            offset: self.offset,
            with_vector: self.with_vector,
            with_payload: self.with_payload,
            ..Query::default()
        })
    }
}

/// `POST /collections/{name}/points/scroll`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scroll {
    pub shard_key: Option<Value>,
    pub offset: Option<PointId>,
    pub limit: Option<u64>,
    pub filter: Option<Value>,
    pub with_payload: Option<PayloadSelector>,
    pub with_vector: Option<WithVector>,
    pub order_by: Option<Value>,
}

/// `POST /collections/{name}/points/count`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Count {
    pub shard_key: Option<Value>,
    pub filter: Option<Value>,
    /// Counts are always exact here.
    pub exact: Option<bool>,
}

/// Which points a delete or payload change is for.
#[derive(Debug, PartialEq)]
pub enum Selection {
    Ids(Vec<u64>),
    Filter(Value),
}

fn selection(points: Option<Vec<PointId>>, filter: Option<Value>) -> Result<Selection, String> {
    match (points, filter) {
        (Some(points), None) => Ok(Selection::Ids(points.into_iter().map(|p| p.0).collect())),
        (None, Some(filter)) => Ok(Selection::Filter(filter)),
        (Some(_), Some(_)) => Err("give either \"points\" or \"filter\", not both".into()),
        (None, None) => Err("give \"points\": [ids] or \"filter\": {...}".into()),
    }
}

/// `POST …/points/delete` and `POST …/points/payload/clear`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointsSelector {
    pub points: Option<Vec<PointId>>,
    pub filter: Option<Value>,
    pub shard_key: Option<Value>,
}

impl PointsSelector {
    pub fn into_selection(self) -> Result<Selection, String> {
        refuse_shard_key(&self.shard_key)?;
        selection(self.points, self.filter)
    }
}

/// `PUT` (overwrite) and `POST` (set) `…/points/payload`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPayload {
    pub payload: Payload,
    pub points: Option<Vec<PointId>>,
    pub filter: Option<Value>,
    pub shard_key: Option<Value>,
    pub key: Option<String>,
}

impl SetPayload {
    pub fn into_parts(self) -> Result<(Payload, Selection), String> {
        refuse_shard_key(&self.shard_key)?;
        refuse_present(
            &self.key,
            "key",
            "payload is set at the top level of the object",
        )?;
        Ok((self.payload, selection(self.points, self.filter)?))
    }
}

/// `POST …/points/payload/delete`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletePayload {
    pub keys: Vec<String>,
    pub points: Option<Vec<PointId>>,
    pub filter: Option<Value>,
    pub shard_key: Option<Value>,
}

impl DeletePayload {
    pub fn into_parts(self) -> Result<(Vec<String>, Selection), String> {
        refuse_shard_key(&self.shard_key)?;
        if let Some(key) = self.keys.iter().find(|k| k.is_empty() || k.contains('[')) {
            return Err(format!(
                "key {key:?}: keys are dotted paths through objects (no [] or [N])"
            ));
        }
        Ok((self.keys, selection(self.points, self.filter)?))
    }
}

#[cfg(test)]
#[path = "points_tests.rs"]
mod tests;
