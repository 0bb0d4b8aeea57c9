//! Qdrant's REST API as `vexfs-bench search --http` speaks it: one ureq
//! agent (its connection kept alive between requests, TCP_NODELAY), the
//! request bodies written into a reused buffer, the answers read for the
//! few fields the benchmark needs; and [`HttpSystem`], the run's workload
//! over that API, behind the same [`VectorSystem`] as the ioctl path.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::datasets::Metric;
use crate::fs::check_interrupted;
use crate::latency::{new_histogram, Percentiles};
use crate::search::systems::{VectorSystem, INDEX_BUILD_WAIT_MAX};

/// Longest one request may take: a first search builds an index of up to
/// 20,000 vectors in the request itself (docs/VECTORS.md).
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest answer read (a query's answer is a few hundred bytes per point).
const ANSWER_BYTES_MAX: u64 = 64 << 20;
/// Characters of an unexpected answer quoted in an error.
const QUOTE_CHARS_MAX: usize = 300;
/// How often GET /collections/{name} is asked while the index builds.
const INDEX_POLL: Duration = Duration::from_millis(50);

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

fn quote(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(QUOTE_CHARS_MAX)
        .collect()
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

/// Qdrant's distance for a metric.
pub fn distance(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "Cosine",
        Metric::L2 => "Euclid",
        Metric::Dot => "Dot",
    }
}

/// `PUT /collections/{name}`: the run's dimensions, metric and index
/// (HNSW links per node `hnsw_m`; 0: Flat, exact search).
pub fn collection_body(dims: usize, metric: Metric, hnsw_m: u32) -> Value {
    json!({
        "vectors": {"size": dims, "distance": distance(metric)},
        "hnsw_config": {"m": hnsw_m},
    })
}

/// `rows` (row-major, `dims` each) as a JSON list of lists.
struct Rows<'a> {
    flat: &'a [f32],
    dims: usize,
}

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.flat.len() / self.dims))?;
        for row in self.flat.chunks_exact(self.dims) {
            seq.serialize_element(row)?;
        }
        seq.end()
    }
}

#[derive(serde::Serialize)]
struct UpsertBatch<'a> {
    ids: &'a [u64],
    vectors: Rows<'a>,
}

#[derive(serde::Serialize)]
struct UpsertBody<'a> {
    batch: UpsertBatch<'a>,
}

/// `PUT …/points`: `{"batch": {"ids": [...], "vectors": [[...], ...]}}`.
pub fn write_upsert(out: &mut Vec<u8>, ids: &[u64], vectors: &[f32], dims: usize) -> Result<()> {
    if dims == 0 || vectors.len() != ids.len() * dims {
        bail!("{} floats for {} ids of {dims}", vectors.len(), ids.len());
    }
    out.clear();
    let body = UpsertBody {
        batch: UpsertBatch {
            ids,
            vectors: Rows {
                flat: vectors,
                dims,
            },
        },
    };
    serde_json::to_writer(out, &body).context("writing the upsert body")
}

#[derive(serde::Serialize)]
struct QueryBody<'a> {
    query: &'a [f32],
    limit: usize,
}

/// `POST …/points/query`: `{"query": [...], "limit": k}` (no payloads, no vectors).
pub fn write_query(out: &mut Vec<u8>, query: &[f32], limit: usize) -> Result<()> {
    out.clear();
    serde_json::to_writer(out, &QueryBody { query, limit }).context("writing the query body")
}

#[derive(Deserialize)]
struct Hit {
    id: u64,
}

#[derive(Deserialize)]
struct Hits {
    points: Vec<Hit>,
}

#[derive(Deserialize)]
struct QueryAnswer {
    result: Hits,
}

/// The ids of a query's answer into `ids`, best first; how many.
pub fn parse_hits(answer: &[u8], ids: &mut [u64]) -> Result<usize> {
    let parsed: QueryAnswer = serde_json::from_slice(answer).with_context(|| {
        format!(
            "a query answer without result.points[].id: {}",
            quote(answer)
        )
    })?;
    let points = parsed.result.points;
    if points.len() > ids.len() {
        bail!("a query for {} points answered {}", ids.len(), points.len());
    }
    for (slot, hit) in ids.iter_mut().zip(&points) {
        *slot = hit.id;
    }
    Ok(points.len())
}

/// What `GET /collections/{name}` says of the index.
#[derive(Debug, PartialEq)]
pub struct IndexState {
    pub points: u64,
    pub indexed: u64,
    /// "green": no build running.
    pub status: String,
}

impl IndexState {
    pub fn parse(answer: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(answer)
            .with_context(|| format!("collection info is not JSON: {}", quote(answer)))?;
        let result = &value["result"];
        let count = |key: &str| {
            result[key]
                .as_u64()
                .with_context(|| format!("collection info without result.{key}: {}", quote(answer)))
        };
        Ok(IndexState {
            points: count("points_count")?,
            indexed: count("indexed_vectors_count")?,
            status: result["status"].as_str().unwrap_or_default().to_string(),
        })
    }

    pub fn is_built(&self) -> bool {
        self.indexed == self.points && self.status == "green"
    }
}

/// One collection on the server, driven as the ioctl path drives its file:
/// upsert batches (`wait=false`: answered once the filesystem has made the
/// change) and one `wait=true` (fsync) at the end, then queries one at a time.
pub struct HttpSystem {
    client: QdrantClient,
    collection: String,
    upsert_url: String,
    query_url: String,
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
    fn the_collection_has_the_runs_dims_metric_and_index() {
        assert_eq!(
            collection_body(384, Metric::Cosine, 32),
            json!({"vectors": {"size": 384, "distance": "Cosine"}, "hnsw_config": {"m": 32}})
        );
        assert_eq!(
            collection_body(8, Metric::L2, 0)["vectors"]["distance"],
            "Euclid"
        );
        assert_eq!(distance(Metric::Dot), "Dot");
    }

    #[test]
    fn upserts_carry_ids_and_rows_and_floats_round_trip() {
        let mut body = Vec::new();
        let rows = [0.1f32, -2.5, 1e-7, f32::MAX, 3.0, 1.0 / 3.0];
        write_upsert(&mut body, &[7, 9], &rows[..4], 2).unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["batch"]["ids"], json!([7, 9]));
        let vectors = value["batch"]["vectors"].as_array().unwrap();
        assert_eq!(vectors.len(), 2);
        let back: Vec<f32> = vectors
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter())
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(back, rows[..4]);
        assert!(write_upsert(&mut body, &[1], &rows, 2).is_err());
        // The buffer is reused, not appended to.
        write_query(&mut body, &rows[4..], 10).unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["limit"], 10);
        assert_eq!(value["query"].as_array().unwrap().len(), 2);
        assert_eq!(value["query"][1].as_f64().unwrap() as f32, 1.0 / 3.0);
    }

    #[test]
    fn hits_are_read_best_first_and_bounded() {
        let answer = br#"{"result":{"points":[{"id":5,"version":0,"score":0.9,"payload":null,"vector":null},{"id":2,"score":0.8}]},"status":"ok","time":0.001}"#;
        let mut ids = [u64::MAX; 3];
        assert_eq!(parse_hits(answer, &mut ids).unwrap(), 2);
        assert_eq!(ids[..2], [5, 2]);
        let mut one = [0u64; 1];
        assert!(parse_hits(answer, &mut one).is_err());
        assert!(parse_hits(br#"{"result":[]}"#, &mut ids).is_err());
        assert!(parse_hits(br#"{"result":{"points":[{"id":"6a1c"}]}}"#, &mut ids).is_err());
    }

    #[test]
    fn the_index_is_built_when_it_covers_every_point_and_nothing_builds() {
        let info = |status: &str, indexed: u64| {
            let body = json!({"result": {"status": status, "points_count": 20, "indexed_vectors_count": indexed}});
            IndexState::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
        };
        assert!(info("green", 20).is_built());
        assert!(!info("yellow", 20).is_built());
        assert!(!info("green", 0).is_built());
        assert!(IndexState::parse(br#"{"result":{"status":"green"}}"#).is_err());
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
