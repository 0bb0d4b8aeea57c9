//! The server's shared state and the request path every route shares:
//! the metrics clock, the API key, the body limit, Qdrant-shaped answers
//! for unknown routes, and the bridge from async handlers to the blocking
//! filesystem calls (bounded by FILESYSTEM_REQUESTS_MAX).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::config::{Config, FILESYSTEM_REQUESTS_MAX};
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::reply;
use crate::store::Store;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub metrics: Metrics,
    permits: Semaphore,
    operations: AtomicU64,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub fn new(config: Config) -> Self {
        AppState {
            store: Store::new(config.mount.clone(), config.read_only),
            config,
            metrics: Metrics::default(),
            permits: Semaphore::new(FILESYSTEM_REQUESTS_MAX),
            operations: AtomicU64::new(0),
        }
    }

    /// Runs filesystem work on a blocking thread, at most
    /// FILESYSTEM_REQUESTS_MAX at once. A client that goes away does not
    /// stop work already started: each filesystem request is all or nothing.
    pub async fn blocking<T, F>(self: &Arc<Self>, work: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&AppState) -> ApiResult<T> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::internal("the server is shutting down"))?;
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&state))
            .await
            .map_err(|e| ApiError::internal(format!("a filesystem call failed: {e}")))?
    }

    /// 403 when the server is read-only.
    pub fn writable(&self) -> ApiResult<()> {
        if self.config.read_only {
            return Err(ApiError::forbidden(
                "this server is read-only (--read-only): it changes nothing",
            ));
        }
        Ok(())
    }

    /// The next operation number of an answered change.
    pub fn next_operation(&self) -> u64 {
        self.operations.fetch_add(1, Ordering::Relaxed)
    }
}

/// Every request: the clock, the key, then the route; the answer is
/// counted under its route template.
pub async fn around(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = reply::timed(async {
        match crate::auth::check(
            state.config.api_key.as_deref(),
            request.uri().path(),
            request.headers(),
        ) {
            Ok(()) => next.run(request).await,
            Err(refused) => refused.into_response(),
        }
    })
    .await;
    state.metrics.record(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// A path no route serves.
pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {} in this server (docs/HTTP.md lists them)",
        uri.path()
    ))
}

/// A JSON request body, parsed into `T`; an empty body reads as `{}`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_refused)?;
        parse_json(&bytes).map(Body)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("Format error in JSON body: {e}")))
}

fn body_refused(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            status,
            "Payload too large: the request body is over the server's limit (--body-bytes-max)",
        );
    }
    ApiError::new(status, format!("Bad request: {}", rejection.body_text()))
}

/// The query string of a change: `?wait=true|false` and Qdrant's
/// `ordering` and `timeout`, which a single file has no use for.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateParams {
    pub wait: Option<bool>,
    pub ordering: Option<String>,
    pub timeout: Option<u64>,
}

/// The query string of a read: Qdrant's `consistency` and `timeout`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    pub consistency: Option<String>,
    pub timeout: Option<u64>,
}

/// Parses a request's query string into `T`.
pub fn query_params<T: DeserializeOwned + Default>(uri: &Uri) -> ApiResult<T> {
    match uri.query() {
        None | Some("") => Ok(T::default()),
        Some(_) => axum::extract::Query::<T>::try_from_uri(uri)
            .map(|q| q.0)
            .map_err(|e| ApiError::bad_request(format!("query string: {}", e.body_text()))),
    }
}

impl UpdateParams {
    pub fn from_uri(uri: &Uri) -> ApiResult<Self> {
        let params: UpdateParams = query_params(uri)?;
        if !matches!(
            params.ordering.as_deref(),
            None | Some("weak" | "medium" | "strong")
        ) {
            return Err(ApiError::bad_request("ordering is weak, medium or strong"));
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_params_take_wait_and_qdrants_no_op_options() {
        let uri: Uri = "/c/points?wait=true&ordering=strong".parse().unwrap();
        let params = UpdateParams::from_uri(&uri).unwrap();
        assert_eq!(params.wait, Some(true));
        let none: Uri = "/c/points".parse().unwrap();
        assert_eq!(UpdateParams::from_uri(&none).unwrap().wait, None);
        for bad in ["/c?wait=maybe", "/c?ordering=total", "/c?colour=red"] {
            let e = UpdateParams::from_uri(&bad.parse().unwrap()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn bodies_parse_as_json_and_say_where_they_do_not() {
        let empty: serde_json::Value = parse_json(b"  ").unwrap();
        assert_eq!(empty, serde_json::json!({}));
        let e = parse_json::<serde_json::Value>(b"{\"a\": ").unwrap_err();
        assert!(
            e.message
                .starts_with("Wrong input: Format error in JSON body"),
            "{}",
            e.message
        );
    }
}
