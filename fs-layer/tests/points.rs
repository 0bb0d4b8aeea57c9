//! Payloads and filtered search through a mounted VexFS, as an application
//! sees them: vectors with a JSON object each, searched with a filter,
//! listed and counted, across an unmount and a remount.

mod common;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use common::client::*;
use common::*;
use serde_json::{json, Value};
use vexfs_uapi::*;

const CITIES: [&str; 5] = ["London", "Paris", "Rome", "Oslo", "Lima"];

fn payload_of(id: u64) -> Value {
    json!({
        "city": CITIES[(id % 5) as usize],
        "year": 2000 + (id % 25),
        "tags": [format!("t{}", id % 3), format!("t{}", id % 7)],
        "meta": {"score": (id % 100) as f64 / 10.0, "draft": id % 2 == 0},
    })
}

fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    1.0 - dot / (na * nb)
}

/// The k nearest (cosine) among the ids `keep` accepts.
fn brute_force(
    data: &[f32],
    ids: &[u64],
    d: usize,
    q: &[f32],
    k: usize,
    keep: impl Fn(u64) -> bool,
) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = data
        .chunks_exact(d)
        .zip(ids)
        .filter(|(_, id)| keep(**id))
        .map(|(row, id)| (cosine_distance(row, q), *id))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.iter().take(k).map(|s| s.1).collect()
}

fn filtered(file: &File, q: &[f32], k: usize, filter: &Value) -> Vec<u64> {
    let text = filter.to_string();
    VectorFile::new(file)
        .filtered_nearest(q, k, VEXFS_SEARCH_COSINE, Some(text.as_bytes()))
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

fn set_payloads(
    file: &File,
    ids: &[u64],
    payloads: &[Value],
    vectors: Option<(&[f32], u32)>,
) -> Result<(), i32> {
    let texts: Vec<Vec<u8>> = payloads
        .iter()
        .map(|p| p.to_string().into_bytes())
        .collect();
    let views: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
    VectorFile::new(file)
        .set_payloads(ids, &views, vectors, false)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
}

fn payload(file: &File, id: u64) -> Option<Value> {
    let mut got = VectorFile::new(file).payloads(&[id]).unwrap();
    got.pop()
        .unwrap()
        .map(|text| serde_json::from_slice(&text).unwrap())
}

#[test]
fn payloads_filter_search_and_survive_a_remount() {
    if !fuse_available("payloads_filter_search_and_survive_a_remount") {
        return;
    }
    let image = Image::new("points-persist", "256M");
    let (d, n) = (16usize, 3000usize);
    let data = rows(7, n, d);
    let ids: Vec<u64> = (0..n as u64).map(|i| 1000 + i).collect();
    let payloads: Vec<Value> = ids.iter().map(|&id| payload_of(id)).collect();
    let filters = [
        (
            json!({"must": [{"key": "city", "match": {"value": "Paris"}}]}),
            Box::new(|id: u64| id % 5 == 1) as Box<dyn Fn(u64) -> bool>,
        ),
        (
            json!({"must": [{"key": "year", "range": {"gte": 2010, "lt": 2013}}], "must_not": [{"key": "city", "match": {"any": ["Rome", "Oslo"]}}]}),
            Box::new(|id: u64| (10..13).contains(&(id % 25)) && id % 5 != 2 && id % 5 != 3),
        ),
        (
            json!({"should": [{"key": "tags", "match": {"value": "t2"}}, {"key": "meta.draft", "match": {"value": true}}]}),
            Box::new(|id: u64| id % 3 == 2 || id % 7 == 2 || id % 2 == 0),
        ),
        (
            json!({"must": [{"has_id": [1003, 1500, 2999, 99]}, {"key": "meta.score", "range": {"gt": 0.2}}]}),
            Box::new(|id: u64| [1003, 1500, 2999].contains(&id) && (id % 100) as f64 / 10.0 > 0.2),
        ),
    ];
    let queries = rows(8, 20, d);
    let check_searches = |file: &File| {
        for (filter, keep) in &filters {
            for q in queries.chunks(d) {
                let expected = brute_force(&data, &ids, d, q, 10, keep);
                assert_eq!(filtered(file, q, 10, filter), expected, "filter {filter}");
            }
        }
    };
    {
        let m = Mounted::new(&image, &[]).unwrap();
        let path = m.path("points.vec");
        let file = open_rw(&path);
        set_meta(&file, d as u32, 0).unwrap();
        // The first half arrives with its vectors in one request; the second
        // half's vectors by BATCH_INSERT, its payloads afterwards.
        let half = n / 2;
        set_payloads(
            &file,
            &ids[..half],
            &payloads[..half],
            Some((&data[..half * d], d as u32)),
        )
        .unwrap();
        insert(&file, d as u32, &data[half * d..], Some(&ids[half..]), 0).unwrap();
        set_payloads(&file, &ids[half..], &payloads[half..], None).unwrap();
        assert_eq!(payload(&file, 1234), Some(payload_of(1234)));
        check_searches(&file);
        assert_eq!(vector_status(&path)["payloads"], n.to_string());
        // Indexes on two keys start the filters that test them from the
        // index's slots: the answers are the same.
        assert_eq!(
            try_xattr_set(&path, "user.vexfs.payload_index", "city:text"),
            Err(libc::EINVAL)
        );
        xattr_set(
            &path,
            "user.vexfs.payload_index",
            "city:keyword,year:integer,meta.score:integer",
        );
        check_searches(&file);

        // Scroll pages through the matches in id order; count agrees.
        let paris = br#"{"must":[{"key":"city","match":{"value":"Paris"}}]}"#;
        let client = VectorFile::new(&file);
        let mut seen = Vec::new();
        let mut start = 0;
        loop {
            let page = client.scroll(Some(paris), start, 250).unwrap();
            assert_eq!(page.matching_count as usize, n / 5 - seen.len());
            seen.extend_from_slice(&page.ids);
            match page.next_id {
                Some(next) => start = next,
                None => break,
            }
        }
        let expected: Vec<u64> = ids.iter().copied().filter(|id| id % 5 == 1).collect();
        assert_eq!(seen, expected);
        assert_eq!(client.count(Some(paris)).unwrap() as usize, n / 5);
        assert_eq!(client.count(None).unwrap() as usize, n);

        // read(2) at data_offset still yields the rows.
        let info = get_meta(&file).unwrap();
        let mut raw = vec![0u8; d * 4];
        let mut f = File::open(&path).unwrap();
        f.seek(SeekFrom::Start(info.data_offset)).unwrap();
        f.read_exact(&mut raw).unwrap();
        let first: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(first, data[..d]);
        drop(f);

        // A merge replaces only the keys it names; a delete takes the payload with it.
        // The same filter asked before and after each change sees the change.
        let bergen = br#"{"must":[{"key":"city","match":{"value":"Bergen"}}]}"#;
        let lima = br#"{"must":[{"key":"city","match":{"value":"Lima"}}]}"#;
        assert_eq!(client.count(Some(bergen)).unwrap(), 0);
        assert_eq!(client.count(Some(lima)).unwrap() as usize, n / 5);
        let merged = br#"{"city":"Bergen","new":1}"#;
        client
            .set_payloads(&[1007], &[&merged[..]], None, true)
            .unwrap();
        assert_eq!(client.count(Some(bergen)).unwrap(), 1);
        let mut expected_1007 = payload_of(1007);
        expected_1007["city"] = json!("Bergen");
        expected_1007["new"] = json!(1);
        assert_eq!(payload(&file, 1007), Some(expected_1007.clone()));
        client
            .set_payloads(&[1008], &[&b""[..]], None, false)
            .unwrap();
        assert_eq!(payload(&file, 1008), None);
        assert_eq!(delete(&file, &[1009]).unwrap(), 1);
        assert_eq!(client.count(Some(lima)).unwrap() as usize, n / 5 - 1);
        assert_eq!(
            client.payloads(&[1009]).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
        // Put back as it was, so the searches above hold after the remount.
        set_payloads(
            &file,
            &[1007, 1008],
            &[payload_of(1007), payload_of(1008)],
            None,
        )
        .unwrap();
        set_payloads(
            &file,
            &[1009],
            &[payload_of(1009)],
            Some((&data[9 * d..10 * d], d as u32)),
        )
        .unwrap();
        drop(file);
        m.unmount();
    }
    image.assert_clean();
    let m = Mounted::new(&image, &[]).unwrap();
    let file = open_rw(&m.path("points.vec"));
    assert_eq!(payload(&file, 1007), Some(payload_of(1007)));
    assert_eq!(payload(&file, 2999), Some(payload_of(2999)));
    check_searches(&file);
    drop(file);
    m.unmount();
    image.assert_clean();
}

#[test]
fn filtered_search_over_an_hnsw_index_keeps_recall() {
    if !fuse_available("filtered_search_over_an_hnsw_index_keeps_recall") {
        return;
    }
    let image = Image::new("points-hnsw", "512M");
    let (d, n) = (32usize, 20_000usize);
    let data = rows(11, n, d);
    let ids: Vec<u64> = (0..n as u64).collect();
    let m = Mounted::new(&image, &[]).unwrap();
    let path = m.path("hnsw.vec");
    let file = open_rw(&path);
    set_meta(&file, d as u32, 0).unwrap();
    // "bucket" is id % 1000: a range over it selects a known fraction.
    let payloads: Vec<Value> = ids.iter().map(|id| json!({"bucket": id % 1000})).collect();
    for ((chunk, id_chunk), p_chunk) in data
        .chunks(5000 * d)
        .zip(ids.chunks(5000))
        .zip(payloads.chunks(5000))
    {
        set_payloads(&file, id_chunk, p_chunk, Some((chunk, d as u32))).unwrap();
    }
    xattr_set(&path, "user.vexfs.index", "HNSW32");
    let queries = rows(12, 50, d);
    // The filtered searches below must meet the index, not an exact scan
    // made while it is built.
    wait_for_status(
        &file,
        &path,
        &queries[..d],
        VEXFS_SEARCH_COSINE,
        "the HNSW build",
        |s| s["index"] == "HNSW32" && s["indexed"] == n.to_string() && s["metric"] == "cosine",
    );
    for per_mille in [500u64, 100, 10] {
        let filter = json!({"must": [{"key": "bucket", "range": {"lt": per_mille}}]});
        let (mut found, mut total) = (0usize, 0usize);
        for q in queries.chunks(d) {
            let expected = brute_force(&data, &ids, d, q, 10, |id| id % 1000 < per_mille);
            let got = filtered(&file, q, 10, &filter);
            assert!(
                got.iter().all(|id| id % 1000 < per_mille),
                "a result outside the filter"
            );
            found += got.iter().filter(|id| expected.contains(id)).count();
            total += expected.len();
        }
        let recall = found as f64 / total as f64;
        assert!(
            recall >= 0.99,
            "recall@10 {recall:.3} at {per_mille}/1000 matching"
        );
    }
    let status = vector_status(&path);
    assert_eq!(
        status.get("index").map(String::as_str),
        Some("HNSW32"),
        "{status:?}"
    );
    drop(file);
    m.unmount();
    image.assert_clean();
}

#[test]
fn bad_payloads_and_filters_are_refused_and_change_nothing() {
    if !fuse_available("bad_payloads_and_filters_are_refused_and_change_nothing") {
        return;
    }
    let image = Image::new("points-refused", "128M");
    let d = 4usize;
    let m = Mounted::new(&image, &[]).unwrap();
    let file = open_rw(&m.path("refused.vec"));
    set_meta(&file, d as u32, 0).unwrap();
    let data = rows(3, 3, d);
    set_payloads(
        &file,
        &[1, 2, 3],
        &[json!({"a": 1}), json!({"a": 2}), json!({"a": 3})],
        Some((&data, d as u32)),
    )
    .unwrap();
    let client = VectorFile::new(&file);
    let refused = |ids: &[u64], texts: &[&[u8]], vectors: Option<(&[f32], u32)>| {
        client
            .set_payloads(ids, texts, vectors, false)
            .unwrap_err()
            .raw_os_error()
    };
    // Not JSON, not an object, too large: the whole batch is refused.
    assert_eq!(
        refused(&[1, 2], &[b"{\"a\":9}", b"{oops"], None),
        Some(libc::EINVAL)
    );
    assert_eq!(refused(&[1], &[b"[1,2]"], None), Some(libc::EINVAL));
    let big = format!("{{\"x\":\"{}\"}}", "y".repeat(70_000));
    assert_eq!(refused(&[1], &[big.as_bytes()], None), Some(libc::E2BIG));
    // An id with no vector, without vectors in the request.
    assert_eq!(refused(&[1, 77], &[b"{}", b"{}"], None), Some(libc::ENOENT));
    // Vectors of the wrong dimensions, or holding NaN: nothing stored, payloads included.
    let wrong = rows(4, 1, d + 1);
    assert_eq!(
        refused(&[9], &[b"{\"b\":1}"], Some((&wrong, d as u32 + 1))),
        Some(libc::EINVAL)
    );
    let nan = vec![f32::NAN; d];
    assert_eq!(
        refused(&[9], &[b"{\"b\":1}"], Some((&nan, d as u32))),
        Some(libc::EINVAL)
    );
    assert_eq!(client.count(None).unwrap(), 3);
    assert_eq!(payload(&file, 1), Some(json!({"a": 1})));
    assert_eq!(payload(&file, 2), Some(json!({"a": 2})));

    // Filters: not JSON, an unknown condition, a float in match: EINVAL.
    let q = vec![0.1f32; d];
    for bad in [
        &b"{must"[..],
        br#"{"must":[{"key":"a","match":{"text":"x"}}]}"#,
        br#"{"must":[{"key":"a","match":{"value":1.5}}]}"#,
    ] {
        let e = client
            .filtered_nearest(&q, 2, VEXFS_SEARCH_COSINE, Some(bad))
            .unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EINVAL),
            "{}",
            String::from_utf8_lossy(bad)
        );
        assert_eq!(
            client.scroll(Some(bad), 0, 10).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
    }
    // A filter nothing matches: no results, not an error.
    let none = br#"{"must":[{"key":"a","match":{"value":42}}]}"#;
    assert!(client
        .filtered_nearest(&q, 2, VEXFS_SEARCH_COSINE, Some(none))
        .unwrap()
        .is_empty());
    // Payload-less files answer filters on ids; payload keys match nothing.
    let ids_only = br#"{"must":[{"has_id":[2,3]}]}"#;
    let got: Vec<u64> = client
        .filtered_nearest(&q, 5, VEXFS_SEARCH_COSINE, Some(ids_only))
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![2, 3]);
    drop(file);
    m.unmount();
    image.assert_clean();
}
