//! `/collections` and `/collections/{name}`: list, create, describe,
//! delete, exists, and the payload indexes (`user.vexfs.payload_index`).

use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{collection_name, completed, UpdateResult};
use crate::app::{Body, Shared, UpdateParams};
use crate::error::{ApiError, ApiResult};
use crate::qdrant::collections::{collection_info, CollectionState, CreateCollection};
use crate::reply::Answer;

pub async fn list(State(state): State<Shared>) -> ApiResult<Answer<Value>> {
    let names = state.blocking(|state| state.store.list()).await?;
    let collections: Vec<Value> = names.iter().map(|n| json!({"name": n.as_str()})).collect();
    Ok(Answer(json!({"collections": collections})))
}

pub async fn create(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<CreateCollection>,
) -> ApiResult<Answer<bool>> {
    state.writable()?;
    UpdateParams::from_uri(&uri)?;
    let name = collection_name(&name)?;
    let spec = request.into_spec().map_err(ApiError::bad_request)?;
    state
        .blocking(move |state| state.store.create(&name, &spec))
        .await?;
    Ok(Answer(true))
}

pub async fn info(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult<Answer<Value>> {
    let name = collection_name(&name)?;
    let info = state
        .blocking(move |state| {
            let collection = state.store.get(&name)?;
            let status = collection
                .status()
                .map_err(|e| ApiError::io(format!("user.vexfs.status of `{name}`"), e))?;
            let payload_index = collection
                .payload_index()
                .map_err(|e| ApiError::io(format!("payload index of `{name}`"), e))?;
            let state = CollectionState {
                status: &status,
                payload_index: &payload_index,
            };
            Ok(collection_info(&collection.spec, &state))
        })
        .await?;
    Ok(Answer(info))
}

pub async fn exists(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult<Answer<Value>> {
    let name = collection_name(&name)?;
    let exists = state
        .blocking(move |state| state.store.is_collection(&name))
        .await?;
    Ok(Answer(json!({"exists": exists})))
}

pub async fn delete(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<Answer<bool>> {
    state.writable()?;
    UpdateParams::from_uri(&uri)?;
    let name = collection_name(&name)?;
    let deleted = state
        .blocking(move |state| state.store.delete(&name))
        .await?;
    Ok(Answer(deleted))
}

/// `PATCH /collections/{name}`: a collection's parameters are fixed at creation.
pub async fn update(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult<Answer<bool>> {
    state.writable()?;
    collection_name(&name)?;
    Err(ApiError::bad_request(
        "updating a collection's parameters is not supported by VexFS: \
         create a new collection (or set user.vexfs.index / user.vexfs.search on its file)",
    ))
}

/// `PUT /collections/{name}/index`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIndex {
    field_name: String,
    field_schema: Option<Value>,
}

/// The payload index kinds VexFS keeps: Qdrant's `keyword` and `integer`.
fn index_kind(schema: Option<&Value>) -> ApiResult<&'static str> {
    let kind = match schema {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Object(params)) => {
            let extra = params
                .iter()
                .find(|(k, v)| *k != "type" && !v.is_null() && **v != Value::Bool(false));
            if let Some((key, _)) = extra {
                return Err(ApiError::bad_request(format!(
                    "field_schema.{key} is not supported by VexFS"
                )));
            }
            params.get("type").and_then(Value::as_str).unwrap_or("")
        }
        _ => "",
    };
    match kind {
        "keyword" => Ok("keyword"),
        "integer" => Ok("integer"),
        "" => Err(ApiError::bad_request(
            "field_schema is required (keyword or integer)",
        )),
        other => Err(ApiError::bad_request(format!(
            "payload index of type {other:?} is not supported by VexFS (keyword and integer are)"
        ))),
    }
}

pub async fn create_index(
    State(state): State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    Body(request): Body<CreateIndex>,
) -> ApiResult<Answer<UpdateResult>> {
    state.writable()?;
    let wait = UpdateParams::from_uri(&uri)?.wait.unwrap_or(false);
    let name = collection_name(&name)?;
    let kind = index_kind(request.field_schema.as_ref())?;
    let field = request.field_name;
    let answer = state
        .blocking(move |state| {
            let collection = state.store.get(&name)?;
            let _writing = collection.write_guard();
            let what = || format!("payload index of `{name}`");
            let mut fields = collection
                .payload_index()
                .map_err(|e| ApiError::io(what(), e))?;
            fields.retain(|(key, _)| *key != field);
            fields.push((field, kind.to_string()));
            collection
                .set_payload_index(&fields)
                .map_err(|e| ApiError::io(what(), e))?;
            completed(state, &collection, wait)
        })
        .await?;
    Ok(Answer(answer))
}

pub async fn delete_index(
    State(state): State<Shared>,
    Path((name, field)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult<Answer<UpdateResult>> {
    state.writable()?;
    let wait = UpdateParams::from_uri(&uri)?.wait.unwrap_or(false);
    let name = collection_name(&name)?;
    let answer = state
        .blocking(move |state| {
            let collection = state.store.get(&name)?;
            let _writing = collection.write_guard();
            let what = || format!("payload index of `{name}`");
            let mut fields = collection
                .payload_index()
                .map_err(|e| ApiError::io(what(), e))?;
            fields.retain(|(key, _)| *key != field);
            collection
                .set_payload_index(&fields)
                .map_err(|e| ApiError::io(what(), e))?;
            completed(state, &collection, wait)
        })
        .await?;
    Ok(Answer(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_index_kinds_are_keyword_and_integer() {
        assert_eq!(index_kind(Some(&json!("keyword"))).unwrap(), "keyword");
        assert_eq!(
            index_kind(Some(&json!({"type": "integer", "lookup": null}))).unwrap(),
            "integer"
        );
        assert!(index_kind(Some(&json!("float")))
            .unwrap_err()
            .message
            .contains("\"float\""));
        assert!(index_kind(Some(&json!({"type": "integer", "range": true}))).is_err());
        assert!(index_kind(None).is_err());
    }
}
