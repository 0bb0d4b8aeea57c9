//! Payload changes: set (merge keys, `POST`), overwrite (`PUT`), delete
//! keys and clear, each for listed points (404 naming one that is not
//! stored) or for the points a filter matches (page by page).

use axum::extract::{Path, State};
use axum::http::Uri;

use super::{collection_name, completed, target, UpdateResult};
use crate::app::{Body, Shared, UpdateParams};
use crate::collection::{Collection, Target};
use crate::error::{ApiError, ApiResult};
use crate::qdrant::points::{DeletePayload, Payload, PointsSelector, SetPayload};
use crate::reply::Answer;

/// Runs one change on the collection and answers it.
async fn change<F>(
    state: Shared,
    name: String,
    uri: &Uri,
    work: F,
) -> ApiResult<Answer<UpdateResult>>
where
    F: FnOnce(&Collection) -> ApiResult<()> + Send + 'static,
{
    state.writable()?;
    let wait = UpdateParams::from_uri(uri)?.wait.unwrap_or(false);
    let name = collection_name(&name)?;
    let answer = state
        .blocking(move |state| {
            let collection = state.store.get(&name)?;
            work(&collection)?;
            completed(state, &collection, wait)
        })
        .await?;
    Ok(Answer(answer))
}

fn set_parts(request: SetPayload) -> ApiResult<(Payload, Target)> {
    let (payload, selection) = request.into_parts().map_err(ApiError::bad_request)?;
    Ok((payload, target(selection)?))
}

/// `POST …/points/payload`: the given keys replace those stored, others stay.
pub async fn set(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<SetPayload>,
) -> ApiResult<Answer<UpdateResult>> {
    let (payload, target) = set_parts(request)?;
    change(state, name, &uri, move |c| {
        c.set_payload(&target, &payload, true)
    })
    .await
}

/// `PUT …/points/payload`: the payload replaces what is stored.
pub async fn overwrite(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<SetPayload>,
) -> ApiResult<Answer<UpdateResult>> {
    let (payload, target) = set_parts(request)?;
    change(state, name, &uri, move |c| {
        c.set_payload(&target, &payload, false)
    })
    .await
}

pub async fn delete_keys(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<DeletePayload>,
) -> ApiResult<Answer<UpdateResult>> {
    let (keys, selection) = request.into_parts().map_err(ApiError::bad_request)?;
    let target = target(selection)?;
    change(state, name, &uri, move |c| {
        c.delete_payload_keys(&target, &keys)
    })
    .await
}

pub async fn clear(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<PointsSelector>,
) -> ApiResult<Answer<UpdateResult>> {
    let target = target(request.into_selection().map_err(ApiError::bad_request)?)?;
    change(state, name, &uri, move |c| {
        c.set_payload(&target, &Payload::new(), false)
    })
    .await
}
