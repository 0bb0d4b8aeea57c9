# SPDX-License-Identifier: Apache-2.0
"""Payloads and filters through the vexfs package, against a real mount:
what a Qdrant user does (upsert points with payloads, set/overwrite/clear
them, search with a filter, count, scroll, delete by filter), each answer
checked against the same filter evaluated here in Python and brute force
in numpy."""

import errno
import os

import numpy as np
import pytest

import vexfs

DIMS = 24
CITIES = ["London", "Paris", "Berlin", "Tokyo", "Oslo"]
TAGS = ["red", "green", "blue", "black"]
MISSING = object()


def point_payload(i):
    """The payload of point i: every kind of value the filters look at,
    some keys missing, some null, some points without a payload at all."""
    if i % 13 == 0:
        return None
    payload = {
        "city": CITIES[i % 5],
        "year": 1990 + (i * 7) % 35,
        "score": ((i * 37) % 1000) / 10,
        "tags": [tag for bit, tag in enumerate(TAGS) if (i >> bit) & 1],
        "meta": {"draft": i % 4 == 0, "level": i % 3},
    }
    if i % 6 == 2:
        payload["author"] = None
    elif i % 6 != 1:
        payload["author"] = f"a{i % 9}"
    return payload


# -- the filter language, evaluated here (the subset the tests use) -------------


def value_at(payload, key):
    value = payload if payload is not None else {}
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def same(stored, wanted):
    # bool is not an integer here, and an integer does not match a float.
    return type(stored) is type(wanted) and stored == wanted


def field_matches(condition, payload):
    value = value_at(payload, condition["key"])
    if value is MISSING:
        return False
    elements = value if isinstance(value, list) else [value]
    if "match" in condition:
        match = condition["match"]
        if "value" in match:
            return any(same(e, match["value"]) for e in elements)
        if "any" in match:
            return any(same(e, w) for e in elements for w in match["any"])
        return not any(same(e, w) for e in elements for w in match["except"])
    bounds = condition["range"]
    numbers = [e for e in elements if type(e) in (int, float)]
    return any(all((name != "gt" or e > limit) and (name != "gte" or e >= limit)
                   and (name != "lt" or e < limit) and (name != "lte" or e <= limit)
                   for name, limit in bounds.items()) for e in numbers)


def condition_holds(condition, point_id, payload):
    if "key" in condition:
        return field_matches(condition, payload)
    if "has_id" in condition:
        return point_id in set(int(i) for i in condition["has_id"])
    if "is_empty" in condition:
        return value_at(payload, condition["is_empty"]["key"]) in (MISSING, None, [])
    if "is_null" in condition:
        return value_at(payload, condition["is_null"]["key"]) is None
    return filter_holds(condition, point_id, payload)


def as_list(conditions):
    return conditions if isinstance(conditions, list) else [conditions]


def filter_holds(filter, point_id, payload):
    if "must" in filter and not all(condition_holds(c, point_id, payload)
                                    for c in as_list(filter["must"])):
        return False
    if "should" in filter and not any(condition_holds(c, point_id, payload)
                                      for c in as_list(filter["should"])):
        return False
    return not any(condition_holds(c, point_id, payload)
                   for c in as_list(filter.get("must_not", [])))


# -- the data -------------------------------------------------------------------

N = 3000
IDS = np.array([10_000 + 3 * i for i in range(N)], dtype=np.uint64)
PAYLOADS = [point_payload(i) for i in range(N)]
VECTORS = np.random.default_rng(11).standard_normal((N, DIMS), dtype=np.float32)
BY_ID = {int(point_id): payload for point_id, payload in zip(IDS, PAYLOADS)}

FILTERS = {
    "match value": {"must": [{"key": "city", "match": {"value": "London"}}]},
    "range and must_not": {"must": [{"key": "year", "range": {"gte": 2000, "lt": 2010}}],
                           "must_not": [{"key": "meta.draft", "match": {"value": True}}]},
    "should any or has_id": {"should": [{"key": "tags", "match": {"any": ["red", "blue"]}},
                                        {"has_id": [10_000, 10_003, 10_006, 19_000]}]},
    "except and nested key": {"must": [{"key": "city", "match": {"except": ["London", "Paris"]}},
                                       {"key": "meta.level", "match": {"value": 2}}]},
    "not is_empty": {"must_not": [{"is_empty": {"key": "author"}}]},
    "is_null": {"must": [{"is_null": {"key": "author"}}]},
    "has_id of numpy ids": {"must": [{"has_id": IDS[100:400]}]},
    "nested filters": {"must": [{"should": [{"key": "city", "match": {"value": "Tokyo"}},
                                            {"key": "year", "range": {"lt": 1995}}]},
                                {"must_not": {"key": "tags", "match": {"any": ["green"]}}}]},
    "float range": {"must": [{"key": "score", "range": {"gt": 25.5, "lte": 70}}]},
    "most of them": {"must_not": [{"key": "meta.draft", "match": {"value": True}}]},
    "fewer than k": {"must": [{"has_id": [10_030, 10_033, 10_036]}]},
    "none": {"must": [{"key": "city", "match": {"value": "Nowhere"}}]},
}


def matching(filter):
    mask = np.array([filter_holds(filter, int(i), p) for i, p in zip(IDS, PAYLOADS)])
    return IDS[mask], VECTORS[mask]


def cosine_nearest(stored, ids, queries, k):
    """(ids, distances) of the k nearest by cosine distance, in float64."""
    unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    distances = 1.0 - q.astype(np.float64) @ unit.T.astype(np.float64)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return ids[order].astype(np.int64), np.take_along_axis(distances, order, axis=1)


def assert_nearest(got_ids, got_distances, want_ids, want_distances, k):
    """The daemon's k best equal brute force's: as many found, the same
    distances, and the same ids wherever two distances are not a tie."""
    found = want_ids.size
    assert list(got_ids[found:]) == [-1] * (k - found)
    assert np.isnan(got_distances[found:]).all()
    np.testing.assert_allclose(got_distances[:found], want_distances, atol=1e-5)
    gaps = np.diff(np.concatenate(([-np.inf], want_distances, [np.inf])))
    clear = (gaps[:-1] > 1e-5) & (gaps[1:] > 1e-5)
    assert list(got_ids[:found][clear]) == list(want_ids[clear])


@pytest.fixture(scope="module")
def points(mount):
    with vexfs.Collection(os.path.join(mount, "points.vec"), dims=DIMS) as collection:
        collection.upsert(IDS, VECTORS, payloads=PAYLOADS)
        yield collection


# -- the tests ------------------------------------------------------------------


def test_payloads_round_trip(points):
    assert points.count() == N
    assert points.payloads(IDS) == PAYLOADS
    vectors, payloads = points.get(IDS[[5, 13, 2]], with_payload=True)
    assert np.array_equal(vectors, VECTORS[[5, 13, 2]])
    assert payloads == [PAYLOADS[5], None, PAYLOADS[2]]
    with pytest.raises(vexfs.VexFSError) as missing:
        points.payloads([10_001])
    assert missing.value.errno == errno.ENOENT


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("exact", [False, True])
def test_filtered_search_is_brute_force_over_the_matches(points, name, exact):
    filter = FILTERS[name]
    ids, vectors = matching(filter)
    queries = VECTORS[[7, 1500, 2999]] + 0.1
    k = 10
    want_ids, want_distances = cosine_nearest(vectors, ids, queries, k)
    for row, query in enumerate(queries):
        got_ids, got_distances = points.search(query, k=k, filter=filter, exact=exact)
        assert got_ids.shape == (k,) and got_ids.dtype == np.int64
        assert_nearest(got_ids, got_distances, want_ids[row], want_distances[row], k)


def test_a_filter_as_json_text_or_bytes_is_the_same_filter(points):
    query = VECTORS[42]
    as_dict = points.search(query, k=5, filter=FILTERS["match value"])
    text = '{"must":[{"key":"city","match":{"value":"London"}}]}'
    for same_filter in (text, text.encode()):
        got = points.search(query, k=5, filter=same_filter)
        assert np.array_equal(got[0], as_dict[0])


def test_batch_filtered_search_is_one_answer_per_query(points):
    filter = FILTERS["range and must_not"]
    ids, vectors = matching(filter)
    queries = VECTORS[:40] * -1.0
    got_ids, got_distances = points.search(queries, k=7, filter=filter)
    assert got_ids.shape == (40, 7) and got_distances.shape == (40, 7)
    want_ids, want_distances = cosine_nearest(vectors, ids, queries, 7)
    for row in range(40):
        assert_nearest(got_ids[row], got_distances[row], want_ids[row], want_distances[row], 7)


def test_a_batch_above_the_queries_per_request_is_split(points):
    # 1,100 queries: SEARCH_QUERIES_MAX (1,024) in one request, 76 in the next.
    queries = np.random.default_rng(3).standard_normal((1100, DIMS), dtype=np.float32)
    got_ids, got_distances = points.search(queries, k=3, exact=True)
    want_ids, want_distances = cosine_nearest(VECTORS, IDS, queries, 3)
    for row in (0, 1023, 1024, 1099):
        assert_nearest(got_ids[row], got_distances[row], want_ids[row], want_distances[row], 3)
    assert (got_ids[:, 0] == want_ids[:, 0]).mean() > 0.99


def test_with_payload_gives_the_payloads_of_the_results(points):
    filter = FILTERS["should any or has_id"]
    ids, distances, payloads = points.search(VECTORS[9], k=4, filter=filter, with_payload=True)
    assert len(payloads) == 4
    assert payloads == [BY_ID[int(i)] for i in ids]
    ids, _, payloads = points.search(VECTORS[:3], k=4, with_payload=True)
    assert [[p for p in row] for row in payloads] == \
        [[BY_ID[int(i)] for i in row] for row in ids]
    ids, _, payloads = points.search(VECTORS[0], k=5, filter=FILTERS["fewer than k"],
                                     with_payload=True)
    assert list(ids[3:]) == [-1, -1] and payloads[3:] == [None, None]


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_count_and_scroll_pages_are_the_matching_ids(points, name):
    filter = FILTERS[name]
    want, _ = matching(filter)
    assert points.count(filter) == want.size
    pages, offset = [], None
    while True:
        page, offset = points.scroll(filter, limit=37, offset=offset)
        assert page.dtype == np.uint64 and page.size <= 37
        pages.append(page)
        if offset is None:
            break
    assert list(np.concatenate(pages)) == list(want)
    # An offset is an id: the page starts at the first match from it on.
    if want.size > 2:
        page, _ = points.scroll(filter, limit=2, offset=int(want[1]) - 1)
        assert list(page) == list(want[1:3])


def test_scroll_without_a_filter_pages_through_every_id(points):
    page, offset = points.scroll(limit=1000)
    assert list(page) == list(IDS[:1000]) and offset == int(IDS[1000])
    page, offset, payloads = points.scroll(limit=5, offset=offset, with_payload=True)
    assert payloads == PAYLOADS[1000:1005]
    assert points.count() == N


def test_merge_overwrite_clear_and_upsert(mount):
    with vexfs.Collection(os.path.join(mount, "merge.vec"), dims=4) as merge:
        merge.upsert([1, 2], np.eye(4, dtype=np.float32)[:2],
                     payloads=[{"a": 1, "b": {"x": 1}}, None])
        merge.set_payload([1, 2], {"b": {"y": 2}, "c": "é"})
        # Merge replaces top-level keys, whole: b is the new object.
        assert merge.payloads([1, 2]) == [{"a": 1, "b": {"y": 2}, "c": "é"},
                                          {"b": {"y": 2}, "c": "é"}]
        merge.overwrite_payload([1], {"d": [1, 2.5, None, True]})
        assert merge.payloads([1]) == [{"d": [1, 2.5, None, True]}]
        # An upsert without payloads keeps them; with them it replaces them.
        merge.upsert([1], np.ones((1, 4), dtype=np.float32))
        assert merge.payloads([1]) == [{"d": [1, 2.5, None, True]}]
        merge.upsert([1, 2], np.ones((2, 4), dtype=np.float32), payloads=[{"e": 0}, None])
        assert merge.payloads([1, 2]) == [{"e": 0}, None]
        merge.clear_payload([1])
        assert merge.payloads([1, 2]) == [None, None]
        assert merge.count() == 2
        with pytest.raises(vexfs.VexFSError) as missing:
            merge.set_payload([1, 3], {"f": 1})
        assert missing.value.errno == errno.ENOENT
        assert merge.payloads([1]) == [None]


def test_add_with_payloads_refuses_stored_ids_and_undoes_a_refused_payload(mount):
    with vexfs.Collection(os.path.join(mount, "add.vec"), dims=4) as add:
        add.add([1, 2], np.eye(4, dtype=np.float32)[:2], payloads=[{"n": 1}, None])
        assert add.payloads([1, 2]) == [{"n": 1}, None]
        with pytest.raises(vexfs.VexFSError) as exists:
            add.add([2, 3], np.eye(4, dtype=np.float32)[:2], payloads=[{"n": 2}, {"n": 3}])
        assert exists.value.errno == errno.EEXIST
        assert add.count() == 2 and add.payloads([2]) == [None]
        # 40 levels deep: valid JSON, over the daemon's 32, so only it refuses.
        deep = {}
        for _ in range(40):
            deep = {"a": deep}
        with pytest.raises(vexfs.VexFSError) as refused:
            add.add([3, 4], np.eye(4, dtype=np.float32)[2:], payloads=[{"n": 3}, deep])
        assert refused.value.errno == errno.EINVAL
        assert "SET_PAYLOADS (add)" in str(refused.value)
        assert add.count() == 2 and add.count({"must": {"has_id": [3, 4]}}) == 0


def test_delete_by_filter_deletes_exactly_the_matches(mount):
    with vexfs.Collection(os.path.join(mount, "delete.vec"), dims=DIMS) as doomed:
        doomed.upsert(IDS, VECTORS, payloads=PAYLOADS)
        filter = FILTERS["nested filters"]
        want, _ = matching(filter)
        assert doomed.delete(filter=filter) == want.size > 0
        assert doomed.count() == N - want.size and doomed.count(filter) == 0
        kept, _ = doomed.scroll(limit=N)
        assert list(kept) == sorted(set(IDS.tolist()) - set(want.tolist()))
        assert doomed.delete(filter=filter) == 0
        assert doomed.delete(IDS[:2]) == len(set(IDS[:2].tolist()) - set(want.tolist()))


def test_bad_payloads_and_filters_name_the_argument_and_store_nothing(mount):
    with vexfs.Collection(os.path.join(mount, "strict-payloads.vec"), dims=4) as strict:
        rows = np.eye(4, dtype=np.float32)[:3]
        bad = [
            ([{"a": 1}, {"a": 2}], r"payloads: 2 payloads for 3 ids"),
            ({"a": 1}, r"payloads: expected a sequence of dicts"),
            ([{"a": 1}, "text", None], r"payloads\[1\] \(id 6\): expected a dict"),
            ([None, None, {"a": float("nan")}], r"payloads\[2\] \(id 7\): not JSON"),
            ([{"a": {1, 2}}, None, None], r"payloads\[0\] \(id 5\): not JSON"),
            ([{"a": "x" * 70_000}, None, None], r"payloads\[0\] \(id 5\): 70008 bytes"),
        ]
        for payloads, message in bad:
            for call in (strict.add, strict.upsert):
                with pytest.raises(ValueError, match=message):
                    call([5, 6, 7], rows, payloads=payloads)
        deep = {}
        for _ in range(40):
            deep = {"a": deep}
        with pytest.raises(vexfs.VexFSError) as refused:
            strict.upsert([5, 6, 7], rows, payloads=[None, deep, None])
        assert refused.value.errno == errno.EINVAL
        assert strict.count() == 0
        strict.upsert([5], rows[:1], payloads=[{"a": 1}])
        for filter, message in [
            (["city"], "filter: expected a dict"),
            ("", r"filter: 0 bytes"),
            ({"must": {"has_id": list(range(20_000))}}, r"filter: \d+ bytes of JSON"),
            ({"must": {"key": "a", "match": {"value": float("inf")}}}, "filter: not JSON"),
        ]:
            with pytest.raises(ValueError, match=message):
                strict.search(rows[0], k=1, filter=filter)
            with pytest.raises(ValueError, match=message):
                strict.count(filter)
        for filter in ({"must": {"key": "a", "match": {"text": "x"}}},
                       {"must": {"key": "a", "match": {"value": 1.5}}},
                       {"must": {"key": "a", "geo_radius": {}}},
                       "{not json"):
            for call in (lambda f: strict.search(rows[0], k=1, filter=f), strict.count,
                         lambda f: strict.scroll(f)):
                with pytest.raises(vexfs.VexFSError) as refused:
                    call(filter)
                assert refused.value.errno == errno.EINVAL
        with pytest.raises(ValueError, match="ids, filter: give exactly one"):
            strict.delete()
        with pytest.raises(ValueError, match="ids, filter: give exactly one"):
            strict.delete([5], filter={"must": []})
        with pytest.raises(ValueError, match="limit: 0"):
            strict.scroll(limit=0)
        with pytest.raises(ValueError, match="offset: -1"):
            strict.scroll(offset=-1)
        with pytest.raises(ValueError, match="payload: expected a dict"):
            strict.set_payload([5], [("a", 1)])
        assert strict.count() == 1 and strict.payloads([5]) == [{"a": 1}]


def test_payloads_and_filters_persist_across_a_remount(remountable):
    path = os.path.join(remountable.point, "kept.vec")
    filter = FILTERS["except and nested key"]
    with vexfs.Collection(path, dims=DIMS) as kept:
        kept.upsert(IDS, VECTORS, payloads=PAYLOADS)
        kept.set_payload(IDS[:10], {"batch": "first"})
        before = kept.search(VECTORS[:5], k=6, filter=filter)
        kept.fsync()
    remountable.remount()
    with vexfs.Collection(path) as again:
        assert again.count() == N
        assert again.payloads(IDS[:12]) == \
            [{**(p or {}), "batch": "first"} for p in PAYLOADS[:10]] + \
            PAYLOADS[10:12]
        assert again.count({"must": {"key": "batch", "match": {"value": "first"}}}) == 10
        after = again.search(VECTORS[:5], k=6, filter=filter)
        assert np.array_equal(after[0], before[0])
        want, _ = matching(filter)
        assert again.count(filter) == want.size


def test_a_filter_over_an_hnsw_index_is_exact_on_request(mount):
    # 3,000 vectors, below SYNC_BUILD_VECTORS_MAX: the index is built at the first search.
    with vexfs.Collection(os.path.join(mount, "hnsw-filtered.vec"), dims=DIMS) as hnsw:
        hnsw.upsert(IDS, VECTORS, payloads=PAYLOADS)
        hnsw.set_index("HNSW32", efSearch=64)
        filter = FILTERS["most of them"]  # above a quarter: the index with a selector
        ids, vectors = matching(filter)
        queries = VECTORS[:20] + 0.05
        want_ids, want_distances = cosine_nearest(vectors, ids, queries, 10)
        got_ids, got_distances = hnsw.search(queries, k=10, filter=filter, exact=True)
        for row in range(20):
            assert_nearest(got_ids[row], got_distances[row], want_ids[row],
                           want_distances[row], 10)
        approximate, _ = hnsw.search(queries, k=10, filter=filter)
        assert set(approximate.ravel().tolist()) <= set(ids.astype(np.int64).tolist())
        recall = np.mean([len(set(a) & set(w)) / 10 for a, w in zip(approximate, want_ids)])
        assert recall >= 0.9
        assert hnsw.status()["index"].startswith("HNSW32")


def test_payloads_grown_between_sizing_and_fetch_are_sized_again(mount, monkeypatch):
    path = os.path.join(mount, "grown.vec")
    with vexfs.Collection(path, dims=4) as reader, vexfs.Collection(path) as writer:
        reader.upsert([1, 2], np.eye(4, dtype=np.float32)[:2], payloads=[{"a": 1}, {"b": 2}])
        real_ioctl = vexfs.Collection._ioctl
        growths = []
        long_bytes = [0]

        def grow_before_each_fetch(self, request, number, struct, sent):
            # Another writer lengthens id 1's payload after the reader learnt
            # the sizes: the daemon answers the fetch with ERANGE.
            if self is reader and number == vexfs._abi.VEXFS_IOC_GET_PAYLOADS and struct.buffer:
                if len(growths) < growths_wanted:
                    growths.append(1)
                    long_bytes[0] += 100
                    writer.set_payload([1], {"long": "x" * long_bytes[0]})
            return real_ioctl(self, request, number, struct, sent)

        monkeypatch.setattr(vexfs.Collection, "_ioctl", grow_before_each_fetch)
        growths_wanted = 1
        assert reader.payloads([1, 2]) == [{"a": 1, "long": "x" * 100}, {"b": 2}]
        assert growths == [1]
        # A writer that outruns every try: ERANGE reaches the caller.
        growths.clear()
        growths_wanted = vexfs.collection.PAYLOAD_FETCH_TRIES
        with pytest.raises(vexfs.VexFSError) as outrun:
            reader.payloads([1, 2])
        assert outrun.value.errno == errno.ERANGE


def test_requests_are_split_or_refused_at_the_request_bytes_limit(points, monkeypatch):
    want_payloads = points.payloads(IDS)
    queries = VECTORS[:50]
    want_ids, want_distances = points.search(queries, k=10, filter=FILTERS["float range"])
    # At 4 KiB a request: 4,096 / (24 * 4 + 10 * 12) = 18 queries per
    # FILTERED_SEARCH, payloads in many GET_PAYLOADS, and writes refused.
    monkeypatch.setattr(vexfs._abi, "REQUEST_BYTES_MAX", 4096)
    assert points.payloads(IDS) == want_payloads
    got_ids, got_distances = points.search(queries, k=10, filter=FILTERS["float range"])
    assert np.array_equal(got_ids, want_ids) and np.array_equal(got_distances, want_distances)
    with pytest.raises(ValueError, match="vectors: .* bytes in one request; at most 4096"):
        points.upsert(IDS[:100], VECTORS[:100])
    with pytest.raises(ValueError, match="vectors: .* bytes in one request; at most 4096"):
        points.upsert(IDS[:20], VECTORS[:20], payloads=PAYLOADS[:20])
    with pytest.raises(ValueError, match="ids: .* bytes in one request; at most 4096"):
        points.set_payload(IDS, {"x": 1})
    assert points.payloads(IDS[:10]) == want_payloads[:10]
