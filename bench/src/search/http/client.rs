//! Qdrant's REST API as `vexfs-bench search --http` speaks it: one ureq
//! agent (its connection kept alive between requests, TCP_NODELAY), the
//! request bodies (body.rs) written into a reused buffer; and
//! [`HttpSystem`], the run's workload over that API, behind the same
//! [`VectorSystem`] as the ioctl path.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::body::{
    collection_body, parse_batch_hits, parse_hits, quote, write_query, write_query_batch,
    write_upsert, IndexState,
};
use crate::datasets::Metric;
use crate::fs::check_interrupted;
use crate::latency::{new_histogram, Percentiles};
use crate::search::systems::{VectorSystem, INDEX_BUILD_WAIT_MAX};

/// Longest one request may take: a first search builds an index of up to
/// 20,000 vectors in the request itself (docs/VECTORS.md).
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest answer read (a query's answer is a few hundred bytes per point).
const ANSWER_BYTES_MAX: u64 = 64 << 20;
/// How often GET /collections/{name} is asked while the index builds.
const INDEX_POLL: Duration = Duration::from_millis(50);
/// Queries one `POST …/points/query/batch` may carry: vexfs-serve's
/// `QUERIES_PER_BATCH_MAX` (server/src/routes/query.rs), which refuses more.
pub const SERVE_QUERIES_PER_BATCH_MAX: usize = 100;

/// `http://HOST:PORT[/PREFIX]` without trailing slashes; this build's
/// client speaks plain HTTP only.
pub fn parse_base_url(url: &str) -> Result<String> {
    let Some(rest) = url.strip_prefix("http://") else {
        if url.starts_with("https://") {
            bail!("--http-url {url}: this client speaks plain HTTP only (vexfs-serve has no TLS; put it on loopback)");
        }
        bail!("--http-url {url}: give http://HOST:PORT");
    };
    let trimmed = rest.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') {
        bail!("--http-url {url}: no host");
    }
    Ok(format!("http://{trimmed}"))
}

/// The message of a Qdrant error answer (`{"status": {"error": "…"}}`),
/// else the start of the body.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["status"]["error"].as_str().map(str::to_string));
    parsed.unwrap_or_else(|| quote(body))
}

/// A blocking client of one server.
pub struct QdrantClient {
    agent: ureq::Agent,
    base: String,
    api_key: Option<String>,
}

impl QdrantClient {
    pub fn new(url: &str, api_key: Option<&str>) -> Result<Self> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_REQUEST_TIMEOUT))
            .no_delay(true)
            .build()
            .into();
        Ok(QdrantClient {
            agent,
            base: parse_base_url(url)?,
            api_key: api_key.map(str::to_string),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// (status, body) of one request to `url`, any status.
    fn send(&self, method: &str, url: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>)> {
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        if let Some(key) = &self.api_key {
            request = request.header("api-key", key);
        }
        let sent = match body {
            Some(body) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(body)
                    .context("building the request")?,
            ),
            None => self
                .agent
                .run(request.body(()).context("building the request")?),
        };
        let mut answer = sent.with_context(|| format!("{method} {url}"))?;
        let status = answer.status().as_u16();
        let bytes = answer
            .body_mut()
            .with_config()
            .limit(ANSWER_BYTES_MAX)
            .read_to_vec()
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        Ok((status, bytes))
    }

    /// The body of a request that must succeed (2xx), else Qdrant's error.
    fn ok(&self, method: &str, url: &str, body: Option<&[u8]>) -> Result<Vec<u8>> {
        let (status, answer) = self.send(method, url, body)?;
        if !(200..300).contains(&status) {
            bail!("{method} {url}: {status}: {}", error_message(&answer));
        }
        Ok(answer)
    }

    /// `GET /healthz` answers 200 (false on any error: the server may not be up yet).
    pub fn healthy(&self) -> bool {
        matches!(self.send("GET", &self.url("/healthz"), None), Ok((200, _)))
    }

    /// `GET /` names the server, and `GET /collections` takes the key;
    /// returns the title and version.
    pub fn check_server(&self) -> Result<String> {
        let root = self.ok("GET", &self.url("/"), None)?;
        let root: Value = serde_json::from_slice(&root)
            .with_context(|| format!("GET / is not JSON: {}", quote(&root)))?;
        self.ok("GET", &self.url("/collections"), None)?;
        Ok(format!(
            "{} {}",
            root["title"].as_str().unwrap_or("(no title)"),
            root["version"].as_str().unwrap_or("(no version)")
        ))
    }
}

/// One collection on the server, driven as the ioctl path drives its file:
/// upsert batches (`wait=false`: answered once the filesystem has made the
/// change) and one `wait=true` (fsync) at the end, then queries in batches
/// (`points/query/batch`) and one at a time.
pub struct HttpSystem {
    client: QdrantClient,
    collection: String,
    upsert_url: String,
    query_url: String,
    query_batch_url: String,
    dims: usize,
    /// The search parameters every query runs with: the server's (its API cannot change them).
    search_params: String,
    inserted: u64,
    /// Request bodies, reused.
    body: Vec<u8>,
    deleted: bool,
}

impl HttpSystem {
    /// Creates the collection (refused when one of that name exists).
    pub fn create(
        client: QdrantClient,
        collection: &str,
        dims: usize,
        metric: Metric,
        hnsw_m: u32,
        search_params: &str,
    ) -> Result<Self> {
        let path = format!("/collections/{collection}");
        let body = serde_json::to_vec(&collection_body(dims, metric, hnsw_m))?;
        client.ok("PUT", &client.url(&path), Some(&body))?;
        Ok(HttpSystem {
            upsert_url: client.url(&format!("{path}/points")),
            query_url: client.url(&format!("{path}/points/query")),
            query_batch_url: client.url(&format!("{path}/points/query/batch")),
            client,
            collection: collection.to_string(),
            dims,
            search_params: search_params.to_string(),
            inserted: 0,
            body: Vec::new(),
            deleted: false,
        })
    }

    fn info(&self) -> Result<IndexState> {
        let url = self
            .client
            .url(&format!("/collections/{}", self.collection));
        IndexState::parse(&self.client.ok("GET", &url, None)?)
    }

    /// `count` times `GET /healthz` on the same connection: an HTTP round
    /// trip in which the server touches no file, the floor of the hop.
    pub fn round_trips(&mut self, count: usize) -> Result<Percentiles> {
        let url = self.client.url("/healthz");
        let mut latency_ns = new_histogram();
        for _ in 0..count {
            check_interrupted()?;
            let started = Instant::now();
            self.client.ok("GET", &url, None)?;
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            latency_ns.saturating_record(ns.max(1));
        }
        Ok(Percentiles::from_histogram(&latency_ns))
    }

    /// `DELETE /collections/{name}`; Drop does it when this was not called.
    pub fn delete(&mut self) -> Result<()> {
        self.deleted = true;
        let url = self
            .client
            .url(&format!("/collections/{}", self.collection));
        self.client.ok("DELETE", &url, None).map(drop)
    }
}

impl Drop for HttpSystem {
    fn drop(&mut self) {
        if !self.deleted {
            if let Err(error) = self.delete() {
                eprintln!("vexfs-bench: cleanup: {error:#}");
            }
        }
    }
}

impl VectorSystem for HttpSystem {
    fn name(&self) -> &'static str {
        "HTTP (vexfs-serve)"
    }

    fn prepare(&mut self, _all_vectors: &[f32]) -> Result<()> {
        Ok(())
    }

    fn insert(&mut self, vectors: &[f32], ids: &[u64]) -> Result<()> {
        write_upsert(&mut self.body, ids, vectors, self.dims)?;
        self.client.ok("PUT", &self.upsert_url, Some(&self.body))?;
        self.inserted += ids.len() as u64;
        Ok(())
    }

    /// An upsert of no points with `wait=true`: the server fsyncs the file.
    fn finish_insert(&mut self) -> Result<()> {
        let url = format!("{}?wait=true", self.upsert_url);
        self.client.ok("PUT", &url, Some(br#"{"points":[]}"#))?;
        Ok(())
    }

    fn search(&mut self, query: &[f32], ids: &mut [u64]) -> Result<usize> {
        write_query(&mut self.body, query, ids.len())?;
        let answer = self.client.ok("POST", &self.query_url, Some(&self.body))?;
        parse_hits(&answer, ids)
    }

    fn search_batch_max(&self) -> usize {
        SERVE_QUERIES_PER_BATCH_MAX
    }

    fn search_batch(&mut self, queries: &[f32], k: usize, ids: &mut [u64]) -> Result<()> {
        write_query_batch(&mut self.body, queries, self.dims, k)?;
        let answer = self
            .client
            .ok("POST", &self.query_batch_url, Some(&self.body))?;
        parse_batch_hits(&answer, k, ids)
    }

    fn set_search_params(&mut self, params: &str) -> Result<()> {
        if params != self.search_params {
            bail!(
                "vexfs-serve's API cannot set {params:?}: its queries run with {:?}",
                self.search_params
            );
        }
        Ok(())
    }

    /// Polls the collection until its index covers every point and no build runs.
    fn wait_for_index(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            check_interrupted()?;
            let state = self.info()?;
            if state.points != self.inserted {
                bail!(
                    "collection {} holds {} points; {} were upserted",
                    self.collection,
                    state.points,
                    self.inserted
                );
            }
            if state.is_built() {
                return Ok(());
            }
            if started.elapsed() > INDEX_BUILD_WAIT_MAX {
                bail!(
                    "collection {}: {} of {} points indexed ({}) after {} s",
                    self.collection,
                    state.indexed,
                    state.points,
                    state.status,
                    INDEX_BUILD_WAIT_MAX.as_secs()
                );
            }
            std::thread::sleep(INDEX_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::http::body::QUOTE_CHARS_MAX;

    #[test]
    fn base_urls_are_plain_http_without_a_trailing_slash() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:6333/").unwrap(),
            "http://127.0.0.1:6333"
        );
        assert_eq!(
            parse_base_url("http://host:1/prefix").unwrap(),
            "http://host:1/prefix"
        );
        assert!(parse_base_url("https://host:1")
            .unwrap_err()
            .to_string()
            .contains("plain HTTP"));
        assert!(parse_base_url("127.0.0.1:6333").is_err());
        assert!(parse_base_url("http://").is_err());
        assert!(parse_base_url("http:///x").is_err());
    }

    #[test]
    fn error_messages_are_qdrants_or_the_start_of_the_body() {
        assert_eq!(
            error_message(br#"{"status":{"error":"Wrong input: no"},"time":0}"#),
            "Wrong input: no"
        );
        assert_eq!(error_message(b"plain text"), "plain text");
        assert_eq!(error_message(&[b'x'; 1000]).len(), QUOTE_CHARS_MAX);
    }
}
