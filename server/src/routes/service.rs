//! The service routes: version, probes and metrics.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use crate::app::Shared;
use crate::error::ApiError;
use crate::metrics::label;

/// The title a client sees at `GET /`.
pub const TITLE: &str = "vexfs-serve (qdrant-compatible)";
/// The Qdrant release whose REST API this server answers to (its shapes
/// are checked against that release's OpenAPI document); the official
/// clients compare it with their own and only warn on a mismatch.
pub const QDRANT_API_VERSION: &str = "1.19.0";

/// Qdrant answers `GET /` with its `VersionInfo` alone, outside the
/// envelope (the Python client reads `version` at the top level).
pub async fn version() -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "title": TITLE,
        "version": QDRANT_API_VERSION,
        "commit": null,
        "vexfs_server_version": env!("CARGO_PKG_VERSION"),
    }))
}

fn text(status: StatusCode, body: String) -> axum::response::Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The process answers.
pub async fn healthz() -> axum::response::Response {
    text(StatusCode::OK, "healthz check passed".into())
}

/// The mount answers: its directory can be read.
pub async fn readyz(State(state): State<Shared>) -> axum::response::Response {
    match state
        .blocking(|state| {
            state
                .store
                .ready()
                .map_err(|e| ApiError::io("reading the mount", e))
        })
        .await
    {
        Ok(()) => text(StatusCode::OK, "all shards are ready".into()),
        Err(e) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", e.message),
        ),
    }
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed: this path takes other methods (docs/HTTP.md lists them)",
    )
}

/// Requests by route and status, latency per route, and the points each
/// collection holds (read from `user.vexfs.status` at each scrape).
pub async fn metrics(State(state): State<Shared>) -> axum::response::Response {
    let daemon = state
        .blocking(|state| Ok(state.store.daemon_metrics()))
        .await;
    let collections = state
        .blocking(|state| {
            let mut rows = Vec::new();
            for name in state.store.list()? {
                // A collection removed between listing and reading is left out.
                let Ok(collection) = state.store.get(&name) else {
                    continue;
                };
                if let Ok(status) = collection.status() {
                    rows.push((name, status));
                }
            }
            Ok(rows)
        })
        .await;
    let mut out = String::new();
    state.metrics.render(&mut out);
    match collections {
        Ok(rows) => {
            for (metric, key, help) in [
                (
                    "vexfs_collection_points",
                    "vectors",
                    "Points (vectors) stored in the collection.",
                ),
                (
                    "vexfs_collection_indexed_vectors",
                    "indexed",
                    "Vectors the collection's index covers.",
                ),
                (
                    "vexfs_collection_tombstones",
                    "tombstones",
                    "Deleted or replaced vectors still in the index.",
                ),
            ] {
                let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} gauge");
                for (name, status) in &rows {
                    let value: u64 = status.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
                    let _ = writeln!(
                        out,
                        "{metric}{{collection=\"{}\"}} {value}",
                        label(name.as_str())
                    );
                }
            }
            let _ = writeln!(out, "# HELP vexfs_serve_mount_up Whether the served directory could be read.\n# TYPE vexfs_serve_mount_up gauge\nvexfs_serve_mount_up 1");
        }
        Err(_) => {
            let _ = writeln!(out, "# HELP vexfs_serve_mount_up Whether the served directory could be read.\n# TYPE vexfs_serve_mount_up gauge\nvexfs_serve_mount_up 0");
        }
    }
    // The FUSE daemon's own counters, from the mount (fs-layer/src/metrics.rs).
    let daemon_up = match daemon {
        Ok(Ok(text)) => {
            out.push_str(&text);
            1
        }
        _ => 0,
    };
    let _ = writeln!(out, "# HELP vexfs_serve_daemon_metrics_up Whether the mount's daemon answered user.vexfs.metrics.\n# TYPE vexfs_serve_daemon_metrics_up gauge\nvexfs_serve_daemon_metrics_up {daemon_up}");
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
