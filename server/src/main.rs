//! `vexfs-serve --mount DIR`: a mounted VexFS's collections over
//! Qdrant's REST API (docs/HTTP.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use vexfs_server::config::BODY_BYTES_MAX_DEFAULT;
use vexfs_server::Config;

#[derive(Parser)]
#[command(
    name = "vexfs-serve",
    version,
    about = "Serve a mounted VexFS's vector files over a Qdrant-compatible REST API"
)]
struct Args {
    /// The directory of a mounted VexFS: each collection is a vector file in it.
    #[arg(long)]
    mount: PathBuf,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:6333")]
    listen: SocketAddr,
    /// Every request (except /, /healthz, /livez, /readyz) must carry this key.
    #[arg(long, conflicts_with = "api_key_file")]
    api_key: Option<String>,
    /// Read the API key from this file (its first line), so that it stays out of `ps`.
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Refuse every request that would change the mount (403).
    #[arg(long)]
    read_only: bool,
    /// Largest request body accepted (413 above it).
    #[arg(long, default_value_t = BODY_BYTES_MAX_DEFAULT)]
    body_bytes_max: usize,
}

fn api_key(args: &Args) -> anyhow::Result<Option<String>> {
    let key = match (&args.api_key, &args.api_key_file) {
        (Some(key), _) => key.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the API key from {}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        (None, None) => return Ok(None),
    };
    if key.is_empty() {
        bail!("the API key is empty");
    }
    Ok(Some(key))
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.mount.is_dir() {
        bail!("--mount {}: not a directory", args.mount.display());
    }
    let mut config = Config::new(args.mount.clone());
    config.api_key = api_key(&args)?;
    config.read_only = args.read_only;
    config.body_bytes_max = args.body_bytes_max;
    if !args.listen.ip().is_loopback() && config.api_key.is_none() {
        eprintln!(
            "vexfs-serve: warning: listening on {} without an API key",
            args.listen
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    eprintln!(
        "vexfs-serve: serving {} on http://{}{}",
        args.mount.display(),
        listener.local_addr()?,
        if config.read_only { " (read-only)" } else { "" }
    );
    vexfs_server::serve_until(listener, config, shutdown_signal()).await?;
    Ok(())
}
