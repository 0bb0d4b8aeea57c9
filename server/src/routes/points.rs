//! Points: upsert, retrieve (by ids and one by path), delete, count, scroll.

use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Serialize;
use serde_json::Value;

use super::{collection_name, completed, filter_bytes, filtered_io, target, UpdateResult};
use crate::app::{query_params, Body, ReadParams, Shared, UpdateParams};
use crate::collection::Record;
use crate::config::{POINTS_PER_ANSWER_MAX, UPSERT_POINTS_MAX};
use crate::error::{ApiError, ApiResult};
use crate::qdrant::points::{
    refuse_present, refuse_shard_key, Count, Payload, PointsSelector, Retrieve, Scroll, Upsert,
};
use crate::qdrant::values::{PayloadSelector, PointId, WithVector};
use crate::reply::Answer;

/// Qdrant's `Record`.
#[derive(Debug, Serialize)]
pub struct RecordOut {
    pub id: u64,
    pub payload: Option<Payload>,
    pub vector: Option<Vec<f32>>,
}

impl From<Record> for RecordOut {
    fn from(r: Record) -> Self {
        RecordOut {
            id: r.id,
            payload: r.payload,
            vector: r.vector,
        }
    }
}

/// A bound on the points one answer holds.
pub fn check_answer_size(what: &str, points: u64) -> ApiResult<usize> {
    match usize::try_from(points) {
        Ok(points) if points <= POINTS_PER_ANSWER_MAX => Ok(points),
        _ => Err(ApiError::bad_request(format!(
            "{what} = {points}: one answer holds at most {POINTS_PER_ANSWER_MAX} points"
        ))),
    }
}

pub async fn upsert(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<Upsert>,
) -> ApiResult<Answer<UpdateResult>> {
    state.writable()?;
    let wait = UpdateParams::from_uri(&uri)?.wait.unwrap_or(false);
    let name = collection_name(&name)?;
    let points = request.into_points().map_err(ApiError::bad_request)?;
    if points.len() > UPSERT_POINTS_MAX {
        return Err(ApiError::bad_request(format!(
            "{} points in one upsert (at most {UPSERT_POINTS_MAX})",
            points.len()
        )));
    }
    let answer = state
        .blocking(move |state| {
            let collection = state.store.get(&name)?;
            if !points.is_empty() {
                collection.upsert(points)?;
            }
            completed(state, &collection, wait)
        })
        .await?;
    Ok(Answer(answer))
}

pub async fn retrieve(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<Retrieve>,
) -> ApiResult<Answer<Vec<RecordOut>>> {
    query_params::<ReadParams>(&uri)?;
    let name = collection_name(&name)?;
    refuse_shard_key(&request.shard_key).map_err(ApiError::bad_request)?;
    check_answer_size("ids", request.ids.len() as u64)?;
    let ids: Vec<u64> = request.ids.iter().map(|id| id.0).collect();
    let selector = request.with_payload.unwrap_or(PayloadSelector::All);
    let with_vector = request.with_vector.unwrap_or_default().0;
    let records = state
        .blocking(move |state| {
            let collection = state.store.get(&name)?;
            collection
                .records(&ids, &selector, with_vector)
                .map_err(|e| ApiError::io(format!("retrieving points of `{name}`"), e))
        })
        .await?;
    Ok(Answer(records.into_iter().map(RecordOut::from).collect()))
}

/// `GET /collections/{name}/points/{id}`: the point with payload and vector, or 404.
pub async fn get_one(
    State(state): State<Shared>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Answer<RecordOut>> {
    let name = collection_name(&name)?;
    let id: PointId = serde_json::from_value(
        id.parse::<u64>()
            .map(Value::from)
            .unwrap_or(Value::String(id)),
    )
    .map_err(|e| ApiError::bad_request(format!("point id: {e}")))?;
    let record = state
        .blocking(move |state| {
            let collection = state.store.get(&name)?;
            let mut records = collection
                .records(&[id.0], &PayloadSelector::All, true)
                .map_err(|e| ApiError::io(format!("retrieving a point of `{name}`"), e))?;
            records.pop().ok_or_else(|| ApiError::point_not_found(id.0))
        })
        .await?;
    Ok(Answer(record.into()))
}

pub async fn delete(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<PointsSelector>,
) -> ApiResult<Answer<UpdateResult>> {
    state.writable()?;
    let wait = UpdateParams::from_uri(&uri)?.wait.unwrap_or(false);
    let name = collection_name(&name)?;
    let target = target(request.into_selection().map_err(ApiError::bad_request)?)?;
    let answer = state
        .blocking(move |state| {
            let collection = state.store.get(&name)?;
            collection.delete(&target)?;
            completed(state, &collection, wait)
        })
        .await?;
    Ok(Answer(answer))
}

#[derive(Serialize)]
pub struct CountResult {
    count: u32,
}

pub async fn count(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<Count>,
) -> ApiResult<Answer<CountResult>> {
    query_params::<ReadParams>(&uri)?;
    let name = collection_name(&name)?;
    refuse_shard_key(&request.shard_key).map_err(ApiError::bad_request)?;
    let filter = filter_bytes(request.filter.as_ref())?;
    let count = state
        .blocking(move |state| {
            let collection = state.store.get(&name)?;
            collection
                .count(filter.as_deref())
                .map_err(|e| filtered_io(format!("counting `{name}`"), e, filter.is_some()))
        })
        .await?;
    Ok(Answer(CountResult { count }))
}

#[derive(Serialize)]
pub struct ScrollResult {
    points: Vec<RecordOut>,
    next_page_offset: Option<u64>,
}

pub async fn scroll(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<Scroll>,
) -> ApiResult<Answer<ScrollResult>> {
    query_params::<ReadParams>(&uri)?;
    let name = collection_name(&name)?;
    refuse_shard_key(&request.shard_key).map_err(ApiError::bad_request)?;
    refuse_present(&request.order_by, "order_by", "points scroll in id order")
        .map_err(ApiError::bad_request)?;
    let limit = check_answer_size("limit", request.limit.unwrap_or(10))?;
    if limit == 0 {
        return Err(ApiError::bad_request(
            "limit = 0: a page holds at least one point",
        ));
    }
    let start = request.offset.map_or(0, |id| id.0);
    let filter = filter_bytes(request.filter.as_ref())?;
    let selector = request.with_payload.unwrap_or(PayloadSelector::All);
    let WithVector(with_vector) = request.with_vector.unwrap_or_default();
    let answer = state
        .blocking(move |state| {
            let collection = state.store.get(&name)?;
            let page = collection
                .scroll(filter.as_deref(), start, limit)
                .map_err(|e| filtered_io(format!("scrolling `{name}`"), e, filter.is_some()))?;
            let records = collection
                .records(&page.ids, &selector, with_vector)
                .map_err(|e| ApiError::io(format!("retrieving points of `{name}`"), e))?;
            Ok(ScrollResult {
                points: records.into_iter().map(RecordOut::from).collect(),
                next_page_offset: page.next_id,
            })
        })
        .await?;
    Ok(Answer(answer))
}
