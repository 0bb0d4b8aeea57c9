use serde_json::json;

use super::*;

fn parse<T: for<'de> Deserialize<'de>>(body: Value) -> Result<T, String> {
    serde_json::from_value(body).map_err(|e| e.to_string())
}

#[test]
fn upserts_come_as_a_list_or_a_batch() {
    let list: Upsert = parse(json!({"points": [
        {"id": 1, "vector": [1.0, 2.0], "payload": {"city": "Oslo"}},
        {"id": 2, "vector": [3.0, 4.0], "payload": null},
        {"id": 3, "vector": [5.0, 6.0]}
    ]}))
    .unwrap();
    let points = list.into_points().unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(points[0].payload.as_ref().unwrap()["city"], "Oslo");
    assert!(points[1].payload.is_none() && points[2].payload.is_none());

    let batch: Upsert = parse(json!({"batch": {
        "ids": [7, 8], "vectors": [[1.0], [2.0]], "payloads": [{"a": 1}, null]
    }}))
    .unwrap();
    let points = batch.into_points().unwrap();
    assert_eq!((points[0].id, points[1].id), (PointId(7), PointId(8)));
    assert_eq!(points[1].vector.0, vec![2.0]);
    assert!(points[1].payload.is_none());
    let no_payloads: Upsert = parse(json!({"batch": {"ids": [7], "vectors": [[1.0]]}})).unwrap();
    assert!(no_payloads.into_points().unwrap()[0].payload.is_none());
}

#[test]
fn upserts_outside_the_subset_are_refused() {
    let uneven: Upsert = parse(json!({"batch": {"ids": [1, 2], "vectors": [[1.0]]}})).unwrap();
    assert!(uneven
        .into_points()
        .unwrap_err()
        .contains("2 ids but 1 vectors"));
    let both: Upsert = parse(json!({"points": [], "batch": {"ids": [], "vectors": []}})).unwrap();
    assert!(both.into_points().unwrap_err().contains("either"));
    let mode: Upsert = parse(json!({"points": [], "update_mode": "insert_only"})).unwrap();
    assert!(mode.into_points().unwrap_err().contains("update_mode"));
    let uuid = parse::<Upsert>(
        json!({"points": [{"id": "550e8400-e29b-41d4-a716-446655440000", "vector": [1.0]}]}),
    );
    assert!(uuid.unwrap_err().contains(UUID_IDS_REFUSED));
    let unknown = parse::<Upsert>(json!({"points": [{"id": 1, "vector": [1.0], "colour": 1}]}));
    assert!(unknown.unwrap_err().contains("unknown field `colour`"));
    let named = parse::<Upsert>(json!({"points": [{"id": 1, "vector": {"image": [1.0]}}]}));
    assert!(named.unwrap_err().contains("named vectors"));
}

#[test]
fn queries_by_vector_by_id_or_by_nothing() {
    let target = |body: Value| parse::<Query>(body).unwrap().target();
    assert_eq!(
        target(json!({"query": [1.0, 2.0]})),
        Ok(QueryTarget::Vector(vec![1.0, 2.0]))
    );
    assert_eq!(
        target(json!({"query": {"nearest": [1.0]}})),
        Ok(QueryTarget::Vector(vec![1.0]))
    );
    assert_eq!(
        target(json!({"query": {"nearest": [1.0], "mmr": null}})),
        Ok(QueryTarget::Vector(vec![1.0]))
    );
    assert_eq!(
        target(json!({"query": 42})),
        Ok(QueryTarget::Point(PointId(42)))
    );
    assert_eq!(
        target(json!({"query": {"nearest": 42}})),
        Ok(QueryTarget::Point(PointId(42)))
    );
    assert_eq!(target(json!({"limit": 3})), Ok(QueryTarget::ById));
    assert_eq!(
        target(json!({"query": "550e8400-e29b-41d4-a716-446655440000"})),
        Err(UUID_IDS_REFUSED.into())
    );
    assert!(target(json!({"query": {"recommend": {"positive": [1]}}}))
        .unwrap_err()
        .contains("recommend"));
    assert!(
        target(json!({"query": {"nearest": [1.0], "mmr": {"diversity": 0.5}}}))
            .unwrap_err()
            .contains("mmr")
    );
    assert!(
        target(json!({"query": {"nearest": {"indices": [1], "values": [1.0]}}}))
            .unwrap_err()
            .contains("sparse")
    );
    assert!(target(json!({"query": [[1.0], [2.0]]}))
        .unwrap_err()
        .contains("multivectors"));
}

#[test]
fn query_options_outside_the_subset_are_refused() {
    let check = |body: Value| parse::<Query>(body).unwrap().check();
    assert!(check(json!({"query": [1.0], "params": {"hnsw_ef": 32, "exact": false}})).is_ok());
    assert!(check(json!({"query": [1.0], "using": ""})).is_ok());
    assert!(check(json!({"query": [1.0], "using": "image"}))
        .unwrap_err()
        .contains("named vectors"));
    assert!(
        check(json!({"query": [1.0], "prefetch": [{"query": [1.0]}]}))
            .unwrap_err()
            .contains("prefetch")
    );
    assert!(
        check(json!({"query": [1.0], "params": {"indexed_only": true}}))
            .unwrap_err()
            .contains("indexed_only")
    );
    assert!(parse::<Query>(json!({"query": [1.0], "top": 3}))
        .unwrap_err()
        .contains("unknown field `top`"));
}

#[test]
fn the_older_search_is_a_query() {
    let search: Search = parse(json!({
        "vector": [1.0, 0.0], "limit": 5, "offset": 2, "with_payload": true,
        "score_threshold": 0.5, "filter": {"must": []}
    }))
    .unwrap();
    let query = search.into_query().unwrap();
    assert_eq!(query.target(), Ok(QueryTarget::Vector(vec![1.0, 0.0])));
    assert_eq!(
        (query.limit, query.offset, query.score_threshold),
        (Some(5), Some(2), Some(0.5))
    );
    assert_eq!(query.with_payload, Some(PayloadSelector::All));
    assert!(query.filter.is_some());
    let named: Search =
        parse(json!({"vector": {"name": "image", "vector": [1.0]}, "limit": 1})).unwrap();
    assert!(named.into_query().unwrap_err().contains("named vectors"));
    assert!(parse::<Search>(json!({"vector": [1.0]}))
        .unwrap_err()
        .contains("missing field `limit`"));
}

#[test]
fn selections_name_points_or_a_filter() {
    let by_ids: PointsSelector = parse(json!({"points": [1, 2]})).unwrap();
    assert_eq!(by_ids.into_selection(), Ok(Selection::Ids(vec![1, 2])));
    let by_filter: PointsSelector = parse(json!({"filter": {"must": []}})).unwrap();
    assert_eq!(
        by_filter.into_selection(),
        Ok(Selection::Filter(json!({"must": []})))
    );
    let neither: PointsSelector = parse(json!({})).unwrap();
    assert!(neither.into_selection().is_err());
    let set: SetPayload =
        parse(json!({"payload": {"a": 1}, "points": [3], "key": "meta"})).unwrap();
    assert!(set
        .into_parts()
        .unwrap_err()
        .contains("key is not supported"));
    let delete: DeletePayload = parse(json!({"keys": ["a", "b.c"], "filter": {}})).unwrap();
    assert_eq!(delete.into_parts().unwrap().0, vec!["a", "b.c"]);
    let delete: DeletePayload = parse(json!({"keys": ["a[0]"], "points": [1]})).unwrap();
    assert!(delete.into_parts().is_err());
}
