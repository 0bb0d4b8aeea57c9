//! What vexfs-serve refuses, and with which of Qdrant's statuses: a missing
//! or wrong key (401), a body over the limit (413), names, ids, fields and
//! options outside the subset (400), what is not there (404), what is
//! already there (409), and every change on a read-only server (403).

mod common;

use serde_json::json;

use common::{fuse_available, Client, Mounted, Server};
use vexfs_server::Config;

fn create(client: &Client, name: &str) {
    client.ok(
        "PUT",
        &format!("/collections/{name}"),
        Some(json!({"vectors": {"size": 4, "distance": "Dot"}})),
    );
}

#[test]
fn refusals_carry_qdrants_statuses_and_say_why() {
    if !fuse_available("refusals_carry_qdrants_statuses_and_say_why") {
        return;
    }
    let mount = Mounted::new("refusals");
    let mut config = Config::new(mount.dir.clone());
    config.api_key = Some("s3cret-key".into());
    config.body_bytes_max = 64 << 10;
    let server = Server::start(config);
    let client = server.client();

    // The key: none or a wrong one is 401, the probes stay open, Bearer works.
    let anonymous = Client::new(&server.base, None);
    let e = anonymous.refused(401, "GET", "/collections", None);
    assert!(e.contains("API key"), "{e}");
    Client::new(&server.base, Some("wrong")).refused(401, "GET", "/collections", None);
    anonymous.refused(401, "GET", "/metrics", None);
    assert_eq!(anonymous.raw("GET", "/healthz", None).0, 200);
    assert_eq!(anonymous.raw("GET", "/readyz", None).0, 200);
    assert_eq!(anonymous.call("GET", "/", None).0, 200);
    let bearer = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let status = bearer
        .get(format!("{}/collections", server.base))
        .header("authorization", "Bearer s3cret-key")
        .call()
        .unwrap()
        .status();
    assert_eq!(status, 200);

    create(&client, "c");
    let e = client.refused(
        409,
        "PUT",
        "/collections/c",
        Some(json!({"vectors": {"size": 4, "distance": "Dot"}})),
    );
    assert!(e.contains("already exists"), "{e}");

    // Names that could leave the directory, or are not names.
    for path in [
        "/collections/a%2Fb",
        "/collections/a%00b",
        "/collections/%2E%2E",
        "/collections/sp%20ace",
    ] {
        let e = client.refused(
            400,
            "PUT",
            path,
            Some(json!({"vectors": {"size": 4, "distance": "Dot"}})),
        );
        assert!(e.contains("collection name"), "{path}: {e}");
        client.refused(400, "GET", path, None);
    }
    assert!(!mount.dir.join("a").exists());

    // Options VexFS cannot honour are named.
    let e = client.refused(
        400,
        "PUT",
        "/collections/q",
        Some(json!({
            "vectors": {"size": 4, "distance": "Cosine"},
            "hnsw_config": {"m": 16, "ef_construct": 200},
            "quantization_config": {"scalar": {"type": "int8"}}
        })),
    );
    assert!(
        e.contains("hnsw_config.ef_construct") && e.contains("quantization_config"),
        "{e}"
    );
    client.refused(
        400,
        "PUT",
        "/collections/q",
        Some(json!({"vectors": {"a": {"size": 4, "distance": "Dot"}}})),
    );
    assert_eq!(
        client.ok("GET", "/collections/q/exists", None)["exists"],
        false
    );

    // Ids, fields, vectors and filters outside the subset.
    let points = "/collections/c/points";
    let e = client.refused(400, "PUT", points, Some(json!({"points": [{"id": "550e8400-e29b-41d4-a716-446655440000", "vector": [1, 2, 3, 4]}]})));
    assert!(
        e.contains("UUID point ids are not supported; use unsigned integers"),
        "{e}"
    );
    let e = client.refused(
        400,
        "PUT",
        points,
        Some(json!({"points": [{"id": 1, "vector": [1, 2, 3, 4]}], "colour": "red"})),
    );
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = client.refused(
        400,
        "PUT",
        points,
        Some(json!({"points": [{"id": 1, "vector": [1, 2, 3]}]})),
    );
    assert!(e.contains("expected dim: 4, got 3"), "{e}");
    let e = client.refused(400, "POST", "/collections/c/points/query", Some(json!({"query": [1, 2, 3, 4], "filter": {"must": [{"key": "at", "geo_radius": {"center": {"lon": 0, "lat": 0}, "radius": 1}}]}})));
    assert!(e.contains("geo filtering"), "{e}");
    // A filter the daemon refuses (an unknown clause) is 400 too.
    let e = client.refused(
        400,
        "POST",
        "/collections/c/points/count",
        Some(json!({"filter": {"must": [{"key": "a", "match": {"value": 1.5}}]}})),
    );
    assert!(e.contains("VexFS refused the filter"), "{e}");
    client.refused(
        400,
        "POST",
        "/collections/c/points/query",
        Some(json!({"query": [1, 2, 3, 4], "using": "image"})),
    );
    client.refused(
        400,
        "POST",
        "/collections/c/points/query",
        Some(json!({"query": [1, 2, 3, 4], "limit": 10_001})),
    );
    client.refused(
        400,
        "POST",
        "/collections/c/points/query",
        Some(json!({"query": {"recommend": {"positive": [1]}}})),
    );
    assert_eq!(
        client
            .raw(
                "POST",
                "/collections/c/points/query",
                Some(b"{not json".to_vec())
            )
            .0,
        400
    );
    assert_eq!(
        client
            .raw(
                "POST",
                "/collections/c/points/scroll",
                Some(b"{\"limit\": ".to_vec())
            )
            .0,
        400
    );

    // Not there: 404, Qdrant-shaped.
    let e = client.refused(404, "GET", "/collections/none", None);
    assert!(e.contains("Collection `none` doesn't exist!"), "{e}");
    client.refused(
        404,
        "PUT",
        "/collections/none/points",
        Some(json!({"points": []})),
    );
    client.refused(
        404,
        "POST",
        "/collections/c/points/query",
        Some(json!({"query": 42})),
    );
    client.refused(404, "GET", "/no/such/route", None);
    // A plain file in the directory is not a collection, and is never removed.
    std::fs::write(mount.dir.join("plain"), b"bytes").unwrap();
    client.refused(404, "GET", "/collections/plain", None);
    assert_eq!(client.ok("DELETE", "/collections/plain", None), false);
    let e = client.refused(
        409,
        "PUT",
        "/collections/plain",
        Some(json!({"vectors": {"size": 4, "distance": "Dot"}})),
    );
    assert!(e.contains("not a collection"), "{e}");
    assert_eq!(std::fs::read(mount.dir.join("plain")).unwrap(), b"bytes");
    assert_eq!(
        client.ok("GET", "/collections", None)["collections"],
        json!([{"name": "c"}])
    );

    // Bodies over the limit: 413 before any of it is parsed.
    let big: Vec<serde_json::Value> = (0..4000)
        .map(|i| json!({"id": i, "vector": [0.5, 0.5, 0.5, 0.5]}))
        .collect();
    let e = client.refused(413, "PUT", points, Some(json!({"points": big})));
    assert!(e.contains("over the server's limit"), "{e}");
    // A payload over the filesystem's 64 KiB limit names its point.
    let mut config = Config::new(mount.dir.clone());
    config.api_key = Some("s3cret-key".into());
    let roomy = Server::start(config);
    let e = roomy.client().refused(413, "PUT", points, Some(json!({"points": [{"id": 5, "vector": [1, 2, 3, 4], "payload": {"text": "x".repeat(70_000)}}]})));
    assert!(e.contains("point 5"), "{e}");
    assert_eq!(
        client.ok("POST", "/collections/c/points/count", None)["count"],
        0
    );
}

#[test]
fn a_read_only_server_changes_nothing() {
    if !fuse_available("a_read_only_server_changes_nothing") {
        return;
    }
    let mount = Mounted::new("read-only");
    let writer = Server::start(Config::new(mount.dir.clone()));
    create(&writer.client(), "c");
    writer.client().ok(
        "PUT",
        "/collections/c/points",
        Some(json!({"points": [{"id": 1, "vector": [1, 0, 0, 0], "payload": {"a": 1}}]})),
    );

    let mut config = Config::new(mount.dir.clone());
    config.read_only = true;
    let reader = Server::start(config);
    let client = reader.client();
    let vectors = Some(json!({"vectors": {"size": 4, "distance": "Dot"}}));
    let e = client.refused(403, "PUT", "/collections/d", vectors);
    assert!(e.contains("read-only"), "{e}");
    client.refused(403, "DELETE", "/collections/c", None);
    client.refused(
        403,
        "PUT",
        "/collections/c/points",
        Some(json!({"points": [{"id": 2, "vector": [0, 1, 0, 0]}]})),
    );
    client.refused(
        403,
        "POST",
        "/collections/c/points/delete",
        Some(json!({"points": [1]})),
    );
    client.refused(
        403,
        "POST",
        "/collections/c/points/payload",
        Some(json!({"payload": {"b": 2}, "points": [1]})),
    );
    client.refused(
        403,
        "PUT",
        "/collections/c/points/payload",
        Some(json!({"payload": {"b": 2}, "points": [1]})),
    );
    client.refused(
        403,
        "POST",
        "/collections/c/points/payload/delete",
        Some(json!({"keys": ["a"], "points": [1]})),
    );
    client.refused(
        403,
        "POST",
        "/collections/c/points/payload/clear",
        Some(json!({"points": [1]})),
    );
    client.refused(
        403,
        "PUT",
        "/collections/c/index",
        Some(json!({"field_name": "a", "field_schema": "integer"})),
    );
    // Reads still work, and nothing changed.
    let found = client.ok(
        "POST",
        "/collections/c/points/query",
        Some(json!({"query": [1, 0, 0, 0], "with_payload": true})),
    );
    assert_eq!(found["points"][0]["id"], 1);
    assert_eq!(found["points"][0]["payload"], json!({"a": 1}));
    assert_eq!(
        client.ok("POST", "/collections/c/points/count", None)["count"],
        1
    );
    assert!(!mount.dir.join("d").exists());
}
