//! A user's session against vexfs-serve on a fresh mount, over HTTP as a
//! Qdrant client talks: create collections of each distance, upsert points
//! with payloads (list and batch forms), query with and without filters,
//! by vector and by point, page and threshold, retrieve, scroll, count,
//! change payloads, delete points and collections; every answer checked
//! against a brute force over what was sent.

mod common;

use serde_json::{json, Value};

use common::{fuse_available, Client, Mounted, Rng, Server};
use vexfs_server::Config;

const DIMS: usize = 8;
const POINTS: u64 = 300;
const CITIES: [&str; 3] = ["Oslo", "Lima", "Pune"];

#[derive(Clone, Copy, PartialEq)]
enum Metric {
    Cosine,
    Euclid,
    Dot,
}

struct Point {
    id: u64,
    /// As Qdrant stores it (normalised for Cosine).
    vector: Vec<f32>,
    payload: Option<Value>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = dot(v, v).sqrt();
    v.iter().map(|x| x / norm).collect()
}

fn score(metric: Metric, query: &[f32], stored: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => dot(&normalised(query), stored),
        Metric::Euclid => query
            .iter()
            .zip(stored)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            .sqrt(),
        Metric::Dot => dot(query, stored),
    }
}

/// The best `k` (id, score) among the points `keep` admits, best first.
fn brute(
    points: &[Point],
    metric: Metric,
    query: &[f32],
    keep: impl Fn(&Point) -> bool,
    k: usize,
) -> Vec<(u64, f32)> {
    let mut scored: Vec<(u64, f32)> = points
        .iter()
        .filter(|p| keep(p))
        .map(|p| (p.id, score(metric, query, &p.vector)))
        .collect();
    scored.sort_by(|a, b| match metric {
        Metric::Euclid => a.1.total_cmp(&b.1),
        _ => b.1.total_cmp(&a.1),
    });
    scored.truncate(k);
    scored
}

/// The server's answer ranks like the brute force: the same scores rank by
/// rank, each id scored as the brute force scores it (ties may swap).
fn assert_ranked(
    answer: &Value,
    expected: &[(u64, f32)],
    all: &[Point],
    metric: Metric,
    query: &[f32],
) {
    let got: Vec<(u64, f32)> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_u64().unwrap(),
                p["score"].as_f64().unwrap() as f32,
            )
        })
        .collect();
    assert_eq!(got.len(), expected.len(), "{answer}");
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * a.abs().max(1.0);
    for ((id, s), (_, e)) in got.iter().zip(expected) {
        assert!(
            close(*s, *e),
            "score {s} where the brute force has {e}: {answer}"
        );
        let point = all.iter().find(|p| p.id == *id).unwrap();
        assert!(
            close(*s, score(metric, query, &point.vector)),
            "id {id} scored {s}"
        );
    }
}

fn payload_of(i: u64) -> Option<Value> {
    (i % 7 != 0).then(|| {
        json!({
            "city": CITIES[(i % 3) as usize],
            "year": 2000 + i % 25,
            "meta": {"rank": i % 10, "note": "n"},
        })
    })
}

fn city_is(p: &Point, city: &str) -> bool {
    p.payload.as_ref().is_some_and(|v| v["city"] == city)
}

/// Upserts POINTS points: the first 200 as a list, the rest as a batch.
fn upsert(client: &Client, name: &str, metric: Metric, rng: &mut Rng) -> Vec<Point> {
    let points: Vec<Point> = (0..POINTS)
        .map(|id| {
            let raw = rng.vector(DIMS);
            Point {
                id,
                vector: if metric == Metric::Cosine {
                    normalised(&raw)
                } else {
                    raw
                },
                payload: payload_of(id),
            }
        })
        .collect();
    // Sent as generated (Cosine ones are normalised again by the server: same vector).
    let list: Vec<Value> = points[..200]
        .iter()
        .map(|p| json!({"id": p.id, "vector": p.vector, "payload": p.payload}))
        .collect();
    let answer = client.ok(
        "PUT",
        &format!("/collections/{name}/points?wait=true"),
        Some(json!({"points": list})),
    );
    assert_eq!(answer["status"], "completed");
    let rest = &points[200..];
    let batch = json!({"batch": {
        "ids": rest.iter().map(|p| p.id).collect::<Vec<_>>(),
        "vectors": rest.iter().map(|p| p.vector.clone()).collect::<Vec<_>>(),
        "payloads": rest.iter().map(|p| p.payload.clone()).collect::<Vec<_>>(),
    }});
    client.ok("PUT", &format!("/collections/{name}/points"), Some(batch));
    points
}

fn check_queries(
    client: &Client,
    name: &str,
    metric: Metric,
    points: &[Point],
    rng: &mut Rng,
    exact: bool,
) {
    let path = format!("/collections/{name}/points/query");
    let params = json!({"exact": exact});
    for _ in 0..5 {
        let q = rng.vector(DIMS);
        let expected = brute(points, metric, &q, |_| true, 10);
        let answer = client.ok(
            "POST",
            &path,
            Some(json!({"query": q, "limit": 10, "params": params})),
        );
        assert_ranked(&answer["points"], &expected, points, metric, &q);
        // The older search endpoint answers the same.
        let old = client.ok(
            "POST",
            &format!("/collections/{name}/points/search"),
            Some(json!({"vector": q, "limit": 10, "params": params})),
        );
        assert_ranked(&old, &expected, points, metric, &q);

        // A filter: Oslo, not before 2005.
        let filter = json!({"must": [{"key": "city", "match": {"value": "Oslo"}}],
                            "must_not": [{"key": "year", "range": {"lt": 2005}}]});
        let keep = |p: &Point| {
            city_is(p, "Oslo")
                && p.payload
                    .as_ref()
                    .is_some_and(|v| v["year"].as_u64().unwrap() >= 2005)
        };
        let expected = brute(points, metric, &q, keep, 7);
        let answer = client.ok("POST", &path, Some(json!({"query": {"nearest": q}, "filter": filter, "limit": 7, "with_payload": true, "params": params})));
        assert_ranked(&answer["points"], &expected, points, metric, &q);
        for p in answer["points"].as_array().unwrap() {
            assert_eq!(p["payload"]["city"], "Oslo", "{p}");
        }

        // offset pages through the same ranking.
        let expected = brute(points, metric, &q, |_| true, 8);
        let answer = client.ok(
            "POST",
            &path,
            Some(json!({"query": q, "limit": 5, "offset": 3, "params": params})),
        );
        assert_ranked(&answer["points"], &expected[3..], points, metric, &q);

        // score_threshold keeps the better side of the 4th score.
        let threshold = expected[3].1;
        let answer = client.ok(
            "POST",
            &path,
            Some(json!({"query": q, "limit": 10, "score_threshold": threshold, "params": params})),
        );
        let kept = answer["points"].as_array().unwrap();
        assert!(kept.len() >= 3 && kept.len() <= 5, "{answer}");
    }
    // A batch: the same-shaped queries share one FILTERED_SEARCH (one faiss
    // call), the others (another limit, a filter, by point) go alone; each
    // answer is its own query's, in order.
    let queries: Vec<Vec<f32>> = (0..6).map(|_| rng.vector(DIMS)).collect();
    let oslo = json!({"must": [{"key": "city", "match": {"value": "Oslo"}}]});
    let mut searches: Vec<Value> = queries
        .iter()
        .map(|q| json!({"query": q, "limit": 6, "params": params}))
        .collect();
    searches[2] = json!({"query": queries[2], "limit": 3, "params": params});
    searches[4] = json!({"query": queries[4], "limit": 6, "filter": oslo, "params": params});
    searches.push(json!({"query": 7, "limit": 6, "params": params}));
    let answer = client.ok(
        "POST",
        &format!("{path}/batch"),
        Some(json!({"searches": searches})),
    );
    let answers = answer.as_array().unwrap();
    assert_eq!(answers.len(), 7, "{answer}");
    for (i, q) in queries.iter().enumerate() {
        let (keep, limit): (&dyn Fn(&Point) -> bool, usize) = match i {
            2 => (&|_| true, 3),
            4 => (&|p| city_is(p, "Oslo"), 6),
            _ => (&|_| true, 6),
        };
        let expected = brute(points, metric, q, keep, limit);
        assert_ranked(&answers[i]["points"], &expected, points, metric, q);
    }
    let stored = &points[7].vector;
    let expected = brute(points, metric, stored, |p| p.id != 7, 6);
    assert_ranked(&answers[6]["points"], &expected, points, metric, stored);

    // By a stored point: its neighbours, itself left out.
    let stored = points[5].vector.clone();
    let expected = brute(points, metric, &stored, |p| p.id != 5, 4);
    let answer = client.ok(
        "POST",
        &path,
        Some(json!({"query": 5, "limit": 4, "with_vector": true, "params": params})),
    );
    assert_ranked(&answer["points"], &expected, points, metric, &stored);
    let first = &answer["points"][0];
    let vector: Vec<f32> = serde_json::from_value(first["vector"].clone()).unwrap();
    let id = first["id"].as_u64().unwrap();
    assert_eq!(vector, points[id as usize].vector);
    assert!(first["payload"].is_null());
}

#[test]
fn a_collection_through_its_life() {
    if !fuse_available("a_collection_through_its_life") {
        return;
    }
    let mount = Mounted::new("flow");
    let server = Server::start(Config::new(mount.dir.clone()));
    let client = server.client();
    let mut rng = Rng(0x5eed);

    // Qdrant's VersionInfo, outside the envelope, as clients read it.
    let (status, version) = client.call("GET", "/", None);
    assert_eq!(status, 200);
    assert_eq!(version["title"], "vexfs-serve (qdrant-compatible)");
    assert!(version["version"].as_str().unwrap().starts_with("1."));

    let metrics = [
        ("cos", Metric::Cosine, "Cosine"),
        ("l2", Metric::Euclid, "Euclid"),
        ("dot", Metric::Dot, "Dot"),
    ];
    for (name, metric, distance) in metrics {
        let mut body = json!({"vectors": {"size": DIMS, "distance": distance}});
        if metric == Metric::Euclid {
            body["hnsw_config"] = json!({"m": 16});
        }
        assert_eq!(
            client.ok("PUT", &format!("/collections/{name}"), Some(body)),
            true
        );
        let points = upsert(&client, name, metric, &mut rng);
        let info = client.ok("GET", &format!("/collections/{name}"), None);
        assert_eq!(info["status"], "green");
        assert_eq!(info["points_count"], POINTS);
        assert_eq!(
            info["config"]["params"]["vectors"],
            json!({"size": DIMS, "distance": distance})
        );
        // HNSW16 (asked for) answers exactly when told to; Flat (the default below 16,384) always.
        check_queries(
            &client,
            name,
            metric,
            &points,
            &mut rng,
            metric == Metric::Euclid,
        );
        let file =
            vexfs_client::VectorFile::new(std::fs::File::open(mount.dir.join(name)).unwrap());
        match file.xattr(vexfs_client::XATTR_INDEX) {
            Ok(index) => assert_eq!((metric == Metric::Euclid, index.as_str()), (true, "HNSW16")),
            Err(e) => assert_eq!(
                (metric == Metric::Euclid, e.raw_os_error()),
                (false, Some(libc::ENODATA))
            ),
        }
    }
    let listed = client.ok("GET", "/collections", None);
    assert_eq!(
        listed["collections"],
        json!([{"name": "cos"}, {"name": "dot"}, {"name": "l2"}])
    );
    assert_eq!(
        client.ok("GET", "/collections/cos/exists", None)["exists"],
        true
    );
    assert_eq!(
        client.ok("GET", "/collections/nope/exists", None)["exists"],
        false
    );

    points_and_payloads(&client);

    assert_eq!(client.ok("DELETE", "/collections/cos", None), true);
    assert_eq!(client.ok("DELETE", "/collections/cos", None), false);
    client.refused(404, "GET", "/collections/cos", None);
    assert!(!mount.dir.join("cos").exists());
    let metrics = client.raw("GET", "/metrics", None).1;
    assert!(metrics.contains("vexfs_serve_requests_total{route=\"/collections/{name}/points/query\",method=\"POST\",status=\"200\"}"), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "vexfs_collection_points{{collection=\"dot\"}} {}",
            POINTS - 3 - 85
        )),
        "{metrics}"
    );
    assert!(metrics.contains("vexfs_serve_request_duration_seconds_bucket{route=\"/collections/{name}/points\",method=\"PUT\",le=\"+Inf\"}"));
    // The FUSE daemon's own counters, read from the mount: the queries above
    // were ioctls, the upserts with wait=true commits.
    assert!(
        metrics.contains("vexfs_serve_daemon_metrics_up 1"),
        "{metrics}"
    );
    let daemon = |line: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in {metrics}"))
    };
    assert!(daemon("vexfs_fuse_requests_total{op=\"ioctl\"}") > 0);
    assert!(daemon("vexfs_commit_seconds_count") > 0);
}

/// Retrieve, scroll, count, payload changes and deletes on `dot`.
fn points_and_payloads(client: &Client) {
    let c = "/collections/dot";
    let records = client.ok(
        "POST",
        &format!("{c}/points"),
        Some(json!({"ids": [2, 1, 99_999, 2], "with_vector": true})),
    );
    let ids: Vec<u64> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![2, 1]);
    assert_eq!(records[1]["payload"], payload_of(1).unwrap());
    assert_eq!(records[0]["vector"].as_array().unwrap().len(), DIMS);
    // A point without payload has {} (asked for) and none (not asked for).
    let records = client.ok("POST", &format!("{c}/points"), Some(json!({"ids": [7]})));
    assert_eq!(records[0]["payload"], json!({}));
    assert!(records[0]["vector"].is_null());
    let record = client.ok("GET", &format!("{c}/points/1"), None);
    assert_eq!(record["id"], 1);
    client.refused(404, "GET", &format!("{c}/points/99999"), None);
    let picked = client.ok(
        "POST",
        &format!("{c}/points"),
        Some(json!({"ids": [1], "with_payload": ["meta.rank"]})),
    );
    assert_eq!(picked[0]["payload"], json!({"meta": {"rank": 1}}));

    // Scroll: every id once, ascending, in pages.
    let mut seen = Vec::new();
    let mut offset = Value::Null;
    loop {
        let page = client.ok(
            "POST",
            &format!("{c}/points/scroll"),
            Some(json!({"limit": 64, "offset": offset, "with_payload": false})),
        );
        seen.extend(
            page["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_u64().unwrap()),
        );
        offset = page["next_page_offset"].clone();
        if offset.is_null() {
            break;
        }
    }
    assert_eq!(seen, (0..POINTS).collect::<Vec<_>>());
    let lima = (0..POINTS)
        .filter(|&i| payload_of(i).is_some_and(|p| p["city"] == "Lima"))
        .count();
    let filter = json!({"must": [{"key": "city", "match": {"value": "Lima"}}]});
    let count = client.ok(
        "POST",
        &format!("{c}/points/count"),
        Some(json!({"filter": filter, "exact": true})),
    );
    assert_eq!(count["count"], lima);
    let page = client.ok(
        "POST",
        &format!("{c}/points/scroll"),
        Some(json!({"filter": filter, "limit": 1000})),
    );
    assert_eq!(page["points"].as_array().unwrap().len(), lima);
    assert!(page["next_page_offset"].is_null());
    assert_eq!(
        client.ok("POST", &format!("{c}/points/count"), None)["count"],
        POINTS
    );

    // Payload: set merges, overwrite replaces, delete removes keys, clear empties.
    client.ok(
        "POST",
        &format!("{c}/points/payload?wait=true"),
        Some(json!({"payload": {"flag": true}, "points": [1, 2]})),
    );
    client.ok(
        "PUT",
        &format!("{c}/points/payload"),
        Some(json!({"payload": {"only": 1}, "points": [3]})),
    );
    client.ok(
        "POST",
        &format!("{c}/points/payload/delete"),
        Some(json!({"keys": ["city", "meta.note"], "points": [1]})),
    );
    client.ok(
        "POST",
        &format!("{c}/points/payload/clear"),
        Some(json!({"points": [2]})),
    );
    let records = client.ok(
        "POST",
        &format!("{c}/points"),
        Some(json!({"ids": [1, 2, 3]})),
    );
    let mut one = payload_of(1).unwrap();
    one["flag"] = json!(true);
    one.as_object_mut().unwrap().remove("city");
    one["meta"].as_object_mut().unwrap().remove("note");
    assert_eq!(records[0]["payload"], one);
    assert_eq!(records[1]["payload"], json!({}));
    assert_eq!(records[2]["payload"], json!({"only": 1}));
    client.refused(
        404,
        "POST",
        &format!("{c}/points/payload"),
        Some(json!({"payload": {"a": 1}, "points": [1, 123_456]})),
    );
    // By filter: every Lima point gets a tag.
    client.ok(
        "POST",
        &format!("{c}/points/payload"),
        Some(json!({"payload": {"tag": "lima"}, "filter": filter})),
    );
    let tagged = json!({"must": [{"key": "tag", "match": {"value": "lima"}}]});
    // Point 1 was in Lima until its city was deleted above.
    assert_eq!(
        client.ok(
            "POST",
            &format!("{c}/points/count"),
            Some(json!({"filter": tagged}))
        )["count"],
        lima - 1
    );

    // Deletes: by ids (unknown ones skipped), then by filter.
    client.ok(
        "POST",
        &format!("{c}/points/delete?wait=true"),
        Some(json!({"points": [1, 2, 3, 777_777]})),
    );
    assert_eq!(
        client.ok("POST", &format!("{c}/points/count"), None)["count"],
        POINTS - 3
    );
    let pune = json!({"must": [{"key": "city", "match": {"value": "Pune"}}]});
    let punes = client.ok(
        "POST",
        &format!("{c}/points/count"),
        Some(json!({"filter": pune})),
    )["count"]
        .as_u64()
        .unwrap();
    // Pune points with a payload, less point 2 whose payload was cleared.
    assert_eq!(punes, 85);
    client.ok(
        "POST",
        &format!("{c}/points/delete"),
        Some(json!({"filter": pune})),
    );
    assert_eq!(
        client.ok("POST", &format!("{c}/points/count"), None)["count"],
        POINTS - 3 - punes
    );
    assert_eq!(
        client.ok(
            "POST",
            &format!("{c}/points/count"),
            Some(json!({"filter": pune}))
        )["count"],
        0
    );
    // A query without a vector lists points by id, score 1.
    let listed = client.ok(
        "POST",
        &format!("{c}/points/query"),
        Some(json!({"limit": 3, "offset": 1})),
    );
    let ids: Vec<u64> = listed["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![4, 6, 7]);
    assert_eq!(listed["points"][0]["score"], 1.0);
}
