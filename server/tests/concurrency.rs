//! vexfs-serve under many clients at once: 100 concurrent clients upsert
//! and query the same collection and all get right answers, and clients
//! that hang up mid-request (while sending, or before reading) leave the
//! server answering.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use common::{fuse_available, Client, Mounted, Rng, Server};
use vexfs_server::Config;

const CLIENTS: u64 = 100;
const POINTS_PER_CLIENT: u64 = 20;
const DIMS: usize = 16;

#[test]
fn a_hundred_clients_at_once() {
    if !fuse_available("a_hundred_clients_at_once") {
        return;
    }
    let mount = Mounted::new("concurrency");
    let server = Server::start(Config::new(mount.dir.clone()));
    server.client().ok(
        "PUT",
        "/collections/c",
        Some(json!({"vectors": {"size": DIMS, "distance": "Euclid"}})),
    );

    let workers: Vec<_> = (0..CLIENTS)
        .map(|client_id| {
            let base = server.base.clone();
            std::thread::spawn(move || {
                let client = Client::new(&base, None);
                let mut rng = Rng(0x1000 + client_id);
                let ids: Vec<u64> = (0..POINTS_PER_CLIENT).map(|i| client_id * 1000 + i).collect();
                let vectors: Vec<Vec<f32>> = ids.iter().map(|_| rng.vector(DIMS)).collect();
                let payloads: Vec<_> = ids.iter().map(|_| json!({"client": client_id})).collect();
                client.ok(
                    "PUT",
                    "/collections/c/points?wait=true",
                    Some(json!({"batch": {"ids": ids, "vectors": vectors, "payloads": payloads}})),
                );
                // Each of its own points is its own nearest neighbour among its points.
                for (id, vector) in ids.iter().zip(&vectors).take(3) {
                    let filter = json!({"must": [{"key": "client", "match": {"value": client_id}}]});
                    let found = client.ok(
                        "POST",
                        "/collections/c/points/query",
                        Some(json!({"query": vector, "filter": filter, "limit": 1})),
                    );
                    assert_eq!(found["points"][0]["id"], *id, "{found}");
                    assert!(found["points"][0]["score"].as_f64().unwrap() < 1e-3);
                }
                let count = client.ok(
                    "POST",
                    "/collections/c/points/count",
                    Some(json!({"filter": {"must": [{"key": "client", "match": {"value": client_id}}]}})),
                );
                assert_eq!(count["count"], POINTS_PER_CLIENT);
            })
        })
        .collect();

    // Clients that hang up: mid-body, and after sending a whole query.
    let address = server.base.trim_start_matches("http://").to_string();
    for _ in 0..5 {
        let mut half = TcpStream::connect(&address).unwrap();
        half.write_all(b"PUT /collections/c/points HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"points\": [").unwrap();
        drop(half);
        let mut gone = TcpStream::connect(&address).unwrap();
        let body = json!({"query": vec![0.1; DIMS], "limit": 100}).to_string();
        let request = format!(
            "POST /collections/c/points/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        gone.write_all(request.as_bytes()).unwrap();
        drop(gone);
    }

    for worker in workers {
        worker.join().expect("a client saw a wrong answer");
    }
    let client = server.client();
    assert_eq!(
        client.ok("POST", "/collections/c/points/count", None)["count"],
        CLIENTS * POINTS_PER_CLIENT
    );
    assert_eq!(client.raw("GET", "/healthz", None).0, 200);
    // A raw HTTP/1.1 exchange still gets a whole answer.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /collections/c/exists HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"exists\":true"), "{answer}");
}
