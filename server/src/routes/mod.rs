//! The routes, by path template, and what their handlers share: names,
//! filters on their way to the filesystem, and the answer to a change.

mod collections;
mod payload;
mod points;
mod query;
mod service;

use std::io;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use serde::Serialize;
use serde_json::Value;

use crate::app::{around, no_route, Shared};
use crate::collection::Target;
use crate::error::{ApiError, ApiResult};
use crate::names::CollectionName;
use crate::qdrant::filter::{self, FILTER_REFUSED_HINT};
use crate::qdrant::points::Selection;

pub fn router(state: Shared) -> Router {
    let body_bytes_max = state.config.body_bytes_max;
    Router::new()
        .route("/", get(service::version))
        .route("/healthz", get(service::healthz))
        .route("/livez", get(service::healthz))
        .route("/readyz", get(service::readyz))
        .route("/metrics", get(service::metrics))
        .route("/collections", get(collections::list))
        .route(
            "/collections/{name}",
            get(collections::info)
                .put(collections::create)
                .delete(collections::delete)
                .patch(collections::update),
        )
        .route("/collections/{name}/exists", get(collections::exists))
        .route("/collections/{name}/index", put(collections::create_index))
        .route(
            "/collections/{name}/index/{field}",
            axum::routing::delete(collections::delete_index),
        )
        .route(
            "/collections/{name}/points",
            put(points::upsert).post(points::retrieve),
        )
        .route("/collections/{name}/points/{id}", get(points::get_one))
        .route("/collections/{name}/points/delete", post(points::delete))
        .route("/collections/{name}/points/count", post(points::count))
        .route("/collections/{name}/points/scroll", post(points::scroll))
        .route("/collections/{name}/points/query", post(query::query))
        .route(
            "/collections/{name}/points/query/batch",
            post(query::query_batch),
        )
        .route("/collections/{name}/points/search", post(query::search))
        .route(
            "/collections/{name}/points/search/batch",
            post(query::search_batch),
        )
        .route(
            "/collections/{name}/points/payload",
            post(payload::set).put(payload::overwrite),
        )
        .route(
            "/collections/{name}/points/payload/delete",
            post(payload::delete_keys),
        )
        .route(
            "/collections/{name}/points/payload/clear",
            post(payload::clear),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(service::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), around))
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .with_state(state)
}

fn collection_name(raw: &str) -> ApiResult<CollectionName> {
    CollectionName::parse(raw)
}

/// A filter checked for what VexFS lacks, as the bytes the ioctl takes.
fn filter_bytes(filter: Option<&Value>) -> ApiResult<Option<Vec<u8>>> {
    let Some(filter) = filter.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    filter::check(filter).map_err(ApiError::bad_request)?;
    serde_json::to_vec(filter)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("filter: {e}")))
}

/// A filesystem error of a request that sent a filter: EINVAL then most
/// likely means the filter, which the daemon names only in its log.
fn filtered_io(what: String, error: io::Error, with_filter: bool) -> ApiError {
    if with_filter && error.raw_os_error() == Some(libc::EINVAL) {
        return ApiError::bad_request(format!("{what}: {FILTER_REFUSED_HINT}"));
    }
    ApiError::io(what, error)
}

/// The points a change is for, bounded.
fn target(selection: Selection) -> ApiResult<Target> {
    match selection {
        Selection::Ids(ids) => {
            if ids.len() > crate::config::IDS_PER_REQUEST_MAX {
                return Err(ApiError::bad_request(format!(
                    "{} ids in one request (at most {})",
                    ids.len(),
                    crate::config::IDS_PER_REQUEST_MAX
                )));
            }
            Ok(Target::Ids(ids))
        }
        Selection::Filter(filter) => Ok(Target::Filter(
            filter_bytes(Some(&filter))?.unwrap_or_else(|| b"{}".to_vec()),
        )),
    }
}

/// Qdrant's `UpdateResult`.
#[derive(Serialize)]
struct UpdateResult {
    operation_id: u64,
    status: &'static str,
}

/// A change is answered once the filesystem has made it (visible to every
/// later request); with `wait=true` also once it is durable (fsync).
fn completed(
    state: &crate::app::AppState,
    collection: &crate::collection::Collection,
    wait: bool,
) -> ApiResult<UpdateResult> {
    if wait {
        collection
            .sync()
            .map_err(|e| ApiError::io(format!("fsync of `{}`", collection.name), e))?;
    }
    Ok(UpdateResult {
        operation_id: state.next_operation(),
        status: "completed",
    })
}
