//! Nearest-neighbour queries: `points/query` (by vector, by a stored
//! point's vector, or none: points by id), the older `points/search`, and
//! their batch forms, all answered by one plan: FILTERED_SEARCH for
//! offset + limit, the ioctl's distances turned into Qdrant's scores, the
//! threshold, then the payloads and vectors asked for.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::Uri;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::points::check_answer_size;
use super::{collection_name, filter_bytes, filtered_io};
use crate::app::{query_params, AppState, Body, ReadParams, Shared};
use crate::collection::Collection;
use crate::error::{ApiError, ApiResult};
use crate::names::CollectionName;
use crate::qdrant::points::{Payload, Query, QueryTarget, Search};
use crate::qdrant::values::PayloadSelector;
use crate::reply::Answer;

/// Queries in one batch request.
pub const QUERIES_PER_BATCH_MAX: usize = 100;
/// Qdrant's limit when a query gives none.
const LIMIT_DEFAULT: u64 = 10;

/// Qdrant's `ScoredPoint`.
#[derive(Debug, Serialize)]
pub struct ScoredPoint {
    id: u64,
    version: u64,
    score: f32,
    payload: Option<Payload>,
    vector: Option<Vec<f32>>,
}

#[derive(Serialize)]
pub struct QueryResponse {
    points: Vec<ScoredPoint>,
}

/// One query, checked and bounded, ready to run against its collection.
#[derive(Debug)]
struct Plan {
    target: QueryTarget,
    filter: Option<Value>,
    limit: usize,
    offset: usize,
    score_threshold: Option<f32>,
    exact: bool,
    hnsw_ef: Option<u64>,
    payload: PayloadSelector,
    with_vector: bool,
}

impl Plan {
    fn new(query: Query) -> ApiResult<Plan> {
        query.check().map_err(ApiError::bad_request)?;
        let target = query.target().map_err(ApiError::bad_request)?;
        let limit = query.limit.unwrap_or(LIMIT_DEFAULT);
        let offset = query.offset.unwrap_or(0);
        if limit == 0 {
            return Err(ApiError::bad_request(
                "limit = 0: ask for at least one point",
            ));
        }
        check_answer_size("limit + offset", limit.saturating_add(offset))?;
        // Checked here, sent as bytes in run().
        filter_bytes(query.filter.as_ref())?;
        let params = query.params.unwrap_or_default();
        Ok(Plan {
            target,
            filter: query.filter.filter(|f| !f.is_null()),
            limit: limit as usize,
            offset: offset as usize,
            score_threshold: query.score_threshold,
            exact: params.exact.unwrap_or(false),
            hnsw_ef: params.hnsw_ef,
            payload: query.with_payload.unwrap_or(PayloadSelector::None),
            with_vector: query.with_vector.unwrap_or_default().0,
        })
    }

    /// The filter sent: the query's, and for a query by point also
    /// "not that point" (Qdrant leaves out the points a query names).
    fn filter_bytes(&self) -> ApiResult<Option<Vec<u8>>> {
        let filter = match (&self.target, &self.filter) {
            (QueryTarget::Point(id), None) => json!({"must_not": [{"has_id": [id.0]}]}),
            (QueryTarget::Point(id), Some(f)) => {
                json!({"must": [f], "must_not": [{"has_id": [id.0]}]})
            }
            (_, None) => return Ok(None),
            (_, Some(f)) => f.clone(),
        };
        serde_json::to_vec(&filter)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("filter: {e}")))
    }

    /// Whether it is answered exactly: asked so, or a larger beam than
    /// the file's efSearch (at least as accurate as asked, never less;
    /// docs/HTTP.md).
    fn exact_for(&self, collection: &Collection) -> bool {
        self.exact
            || self
                .hnsw_ef
                .is_some_and(|ef| ef > u64::from(collection.ef_search))
    }

    /// What it asks FILTERED_SEARCH for when it is a query by vector of
    /// the collection's dimensions: (k, filter, exact); queries that ask
    /// the same can share one request.
    fn search_key(&self, collection: &Collection) -> ApiResult<Option<SearchKey>> {
        Ok(match &self.target {
            QueryTarget::Vector(query) if query.len() == collection.spec.size as usize => Some((
                self.offset + self.limit,
                self.filter_bytes()?,
                self.exact_for(collection),
            )),
            _ => None,
        })
    }

    /// Its answer; `searched`: the ioctl's hits for its vector, when a
    /// batch already searched for it.
    fn run(&self, collection: &Collection, searched: Option<Hits>) -> ApiResult<Vec<ScoredPoint>> {
        let name = &collection.name;
        let filter = self.filter_bytes()?;
        let with_filter = filter.is_some();
        let k = self.offset + self.limit;
        let exact = self.exact_for(collection);
        let distance = collection.spec.distance;
        let search = |query: &[f32]| match &searched {
            Some(hits) => Ok(hits.clone()),
            None => collection
                .search(query, k, filter.as_deref(), exact)
                .map_err(|e| filtered_io(format!("searching `{name}`"), e, with_filter)),
        };
        let hits: Vec<(u64, f32)> = match &self.target {
            QueryTarget::ById => collection
                .scroll(filter.as_deref(), 0, k)
                .map_err(|e| filtered_io(format!("scrolling `{name}`"), e, with_filter))?
                .ids
                .into_iter()
                .map(|id| (id, 1.0))
                .collect(),
            QueryTarget::Vector(query) => {
                if query.len() != collection.spec.size as usize {
                    return Err(ApiError::bad_request(format!(
                        "Vector dimension error: expected dim: {}, got {}",
                        collection.spec.size,
                        query.len()
                    )));
                }
                score_hits(search(query)?, distance)
            }
            QueryTarget::Point(id) => {
                let query = collection
                    .vector(id.0)
                    .map_err(|e| match e.raw_os_error() {
                        Some(libc::ENOENT) => ApiError::point_not_found(id.0),
                        _ => ApiError::io(format!("reading point {} of `{name}`", id.0), e),
                    })?;
                score_hits(search(&query)?, distance)
            }
        };
        let hits: Vec<(u64, f32)> = hits
            .into_iter()
            .skip(self.offset)
            .filter(|&(_, score)| {
                self.score_threshold
                    .is_none_or(|t| distance.passes(score, t))
            })
            .collect();
        if !self.payload.wanted() && !self.with_vector {
            return Ok(hits
                .into_iter()
                .map(|(id, score)| scored(id, score, None, None))
                .collect());
        }
        let ids: Vec<u64> = hits.iter().map(|&(id, _)| id).collect();
        let mut records: HashMap<u64, _> = collection
            .records(&ids, &self.payload, self.with_vector)
            .map_err(|e| ApiError::io(format!("retrieving points of `{name}`"), e))?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        // A point deleted since the search is left out.
        Ok(hits
            .into_iter()
            .filter_map(|(id, score)| {
                let record = records.remove(&id)?;
                Some(scored(id, score, record.payload, record.vector))
            })
            .collect())
    }
}

fn scored(id: u64, score: f32, payload: Option<Payload>, vector: Option<Vec<f32>>) -> ScoredPoint {
    ScoredPoint {
        id,
        version: 0,
        score,
        payload,
        vector,
    }
}

fn score_hits(hits: Vec<(u64, f32)>, distance: crate::distance::Distance) -> Vec<(u64, f32)> {
    hits.into_iter()
        .map(|(id, raw)| (id, distance.score(raw)))
        .collect()
}

/// (k, filter, exact): what a query by vector asks FILTERED_SEARCH for.
type SearchKey = (usize, Option<Vec<u8>>, bool);
/// The ioctl's (id, distance) pairs of one query, best first.
type Hits = Vec<(u64, f32)>;

/// The ioctl's hits of every query by vector that shares its (k, filter,
/// exact) with another in `plans`, each group in one FILTERED_SEARCH (one
/// faiss call in the daemon); None for the rest, which search alone.
fn search_together(collection: &Collection, plans: &[Plan]) -> ApiResult<Vec<Option<Hits>>> {
    let mut searched: Vec<Option<Hits>> = plans.iter().map(|_| None).collect();
    let mut groups: Vec<(SearchKey, Vec<usize>)> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        if let Some(key) = plan.search_key(collection)? {
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
    }
    for ((k, filter, exact), members) in groups.into_iter().filter(|(_, m)| m.len() > 1) {
        let mut queries = Vec::with_capacity(members.len() * collection.spec.size as usize);
        for &i in &members {
            if let QueryTarget::Vector(query) = &plans[i].target {
                queries.extend_from_slice(query);
            }
        }
        let hits = collection
            .search_batch(&queries, k, filter.as_deref(), exact)
            .map_err(|e| {
                filtered_io(
                    format!("searching `{}`", collection.name),
                    e,
                    filter.is_some(),
                )
            })?;
        for (i, hits) in members.into_iter().zip(hits) {
            searched[i] = Some(hits);
        }
    }
    Ok(searched)
}

/// Runs plans against one collection on a blocking thread.
async fn run_all(
    state: &Shared,
    name: CollectionName,
    plans: Vec<Plan>,
) -> ApiResult<Vec<Vec<ScoredPoint>>> {
    state
        .blocking(move |state: &AppState| {
            let collection = state.store.get(&name)?;
            let mut searched = search_together(&collection, &plans)?;
            plans
                .iter()
                .zip(searched.iter_mut())
                .map(|(plan, hits)| plan.run(&collection, hits.take()))
                .collect()
        })
        .await
}

pub async fn query(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<Query>,
) -> ApiResult<Answer<QueryResponse>> {
    query_params::<ReadParams>(&uri)?;
    let name = collection_name(&name)?;
    let plan = Plan::new(request)?;
    let mut answers = run_all(&state, name, vec![plan]).await?;
    Ok(Answer(QueryResponse {
        points: answers.pop().unwrap_or_default(),
    }))
}

pub async fn search(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<Search>,
) -> ApiResult<Answer<Vec<ScoredPoint>>> {
    query_params::<ReadParams>(&uri)?;
    let name = collection_name(&name)?;
    let plan = Plan::new(request.into_query().map_err(ApiError::bad_request)?)?;
    let mut answers = run_all(&state, name, vec![plan]).await?;
    Ok(Answer(answers.pop().unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch<T> {
    searches: Vec<T>,
}

fn plans<T>(
    batch: Batch<T>,
    into_query: impl Fn(T) -> Result<Query, String>,
) -> ApiResult<Vec<Plan>> {
    if batch.searches.len() > QUERIES_PER_BATCH_MAX {
        return Err(ApiError::bad_request(format!(
            "{} queries in one batch (at most {QUERIES_PER_BATCH_MAX})",
            batch.searches.len()
        )));
    }
    batch
        .searches
        .into_iter()
        .enumerate()
        .map(|(i, search)| {
            into_query(search)
                .map_err(ApiError::bad_request)
                .and_then(Plan::new)
                .map_err(|e| ApiError::new(e.status, format!("searches[{i}]: {}", e.message)))
        })
        .collect()
}

pub async fn query_batch(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(batch): Body<Batch<Query>>,
) -> ApiResult<Answer<Vec<QueryResponse>>> {
    query_params::<ReadParams>(&uri)?;
    let name = collection_name(&name)?;
    let plans = plans(batch, Ok)?;
    let answers = run_all(&state, name, plans).await?;
    Ok(Answer(
        answers
            .into_iter()
            .map(|points| QueryResponse { points })
            .collect(),
    ))
}

pub async fn search_batch(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(batch): Body<Batch<Search>>,
) -> ApiResult<Answer<Vec<Vec<ScoredPoint>>>> {
    query_params::<ReadParams>(&uri)?;
    let name = collection_name(&name)?;
    let plans = plans(batch, Search::into_query)?;
    Ok(Answer(run_all(&state, name, plans).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qdrant::values::WithVector;

    fn plan(body: Value) -> ApiResult<Plan> {
        Plan::new(serde_json::from_value(body).unwrap())
    }

    #[test]
    fn plans_are_bounded_and_default_as_qdrant_does() {
        let p = plan(json!({"query": [1.0]})).unwrap();
        assert_eq!(
            (p.limit, p.offset, p.exact, p.with_vector),
            (10, 0, false, false)
        );
        assert_eq!(p.payload, PayloadSelector::None);
        assert!(plan(json!({"query": [1.0], "limit": 0})).is_err());
        assert!(
            plan(json!({"query": [1.0], "limit": 9_000, "offset": 1_001}))
                .unwrap_err()
                .message
                .contains("at most")
        );
        assert!(plan(json!({"query": [1.0], "limit": 9_000, "offset": 1_000})).is_ok());
        let e = plan(json!({"query": [1.0], "filter": {"must": [{"key": "g", "geo_radius": {}}]}}))
            .unwrap_err();
        assert!(e.message.contains("geo filtering"), "{}", e.message);
    }

    #[test]
    fn a_query_by_point_leaves_the_point_out() {
        let by_point = plan(json!({"query": 5})).unwrap();
        let filter: Value =
            serde_json::from_slice(&by_point.filter_bytes().unwrap().unwrap()).unwrap();
        assert_eq!(filter, json!({"must_not": [{"has_id": [5]}]}));
        let user = json!({"must": [{"key": "a", "match": {"value": 1}}]});
        let by_point = plan(json!({"query": {"nearest": 5}, "filter": user})).unwrap();
        let filter: Value =
            serde_json::from_slice(&by_point.filter_bytes().unwrap().unwrap()).unwrap();
        assert_eq!(
            filter,
            json!({"must": [user], "must_not": [{"has_id": [5]}]})
        );
        assert_eq!(
            plan(json!({"query": [1.0]}))
                .unwrap()
                .filter_bytes()
                .unwrap(),
            None
        );
    }

    #[test]
    fn batches_are_bounded_and_name_the_bad_query() {
        let many: Vec<Value> = (0..=QUERIES_PER_BATCH_MAX)
            .map(|_| json!({"query": [1.0]}))
            .collect();
        let batch: Batch<Query> = serde_json::from_value(json!({"searches": many})).unwrap();
        assert!(plans(batch, Ok).is_err());
        let batch: Batch<Query> = serde_json::from_value(
            json!({"searches": [{"query": [1.0]}, {"query": [1.0], "limit": 0}]}),
        )
        .unwrap();
        assert!(plans(batch, Ok)
            .unwrap_err()
            .message
            .starts_with("searches[1]: "));
    }

    #[test]
    fn with_vector_defaults_off() {
        assert_eq!(WithVector::default(), WithVector(false));
    }
}
