//! vexfs-serve: the vector files of a mounted VexFS served as collections
//! over a Qdrant-compatible REST API (docs/HTTP.md), every request through
//! the filesystem's vector ioctls via `vexfs-client`.
//! It must not read or write a device, or hold state the filesystem does
//! not: what it answers is what the mount holds.

pub mod app;
pub mod auth;
pub mod collection;
pub mod config;
pub mod distance;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod names;
pub mod qdrant;
pub mod reply;
pub mod routes;
pub mod spec;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::Config;

/// Serves `config.mount` on `listener` until `shutdown` completes; requests
/// in flight then finish before it returns.
pub async fn serve_until(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(app::AppState::new(config));
    axum::serve(
        listener::BoundedListener::new(listener),
        routes::router(state),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves `config.mount` on `listener` for as long as the task runs.
pub async fn serve(listener: TcpListener, config: Config) -> std::io::Result<()> {
    serve_until(listener, config, std::future::pending()).await
}
