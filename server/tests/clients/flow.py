#!/usr/bin/env python3
"""The official `qdrant-client` (PyPI) against vexfs-serve, checked against numpy.

Usage: flow.py --url http://127.0.0.1:PORT --api-key KEY [--points 2000]

Creates collections (Cosine, Euclid, Dot), upserts points with payloads in both
the points-list and the batch form, and checks every answer the server gives
(query by vector and by id, with and without filters, retrieve, scroll, count,
payload updates, deletes, collection info) against a brute force over the
points it sent, with scores as Qdrant defines them: cosine similarity, euclid
distance, dot product. Then: 401 without the key, 400 for malformed JSON and a
UUID id, 100 concurrent clients, and clients that disconnect mid-request.
Exits 1 with a message naming the first mismatch. scripts/test-http runs it.
"""

import argparse
import http.client
import json
import random
import socket
import sys
import threading
import time
import urllib.parse
import uuid
import warnings

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

DIM = 32
# Scores: f32 arithmetic on the server, float64 here.
ABS_TOL, REL_TOL = 3e-5, 1e-5
PREFIX = "flow_py_"
CITIES = ["London", "Paris", "Berlin", "Tokyo", "Lima", "Oslo"]
TAGS = ["news", "blog", "tech", "sport", "art"]


# The client warns about an api key over plain http on every construction: expected here.
warnings.filterwarnings("ignore", message="Api key is used with an insecure connection")


class Mismatch(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Mismatch(msg)


def close(a, b):
    return abs(a - b) <= ABS_TOL + REL_TOL * abs(b)


# ---------------------------------------------------------------- local model


def get_values(payload, key):
    """Values at a dotted key, arrays flattened as Qdrant does."""
    cur = [payload]
    for part in key.split("."):
        cur = [c[part] for c in cur if isinstance(c, dict) and part in c]
    out = []
    for v in cur:
        out.extend(v) if isinstance(v, list) else out.append(v)
    return out


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def match_one(m, v):
    if "value" in m:
        want = m["value"]
        if isinstance(want, bool) or isinstance(v, bool):
            return isinstance(v, bool) and isinstance(want, bool) and v == want
        if isinstance(want, str):
            return isinstance(v, str) and v == want
        return is_int(v) and v == want
    if "any" in m:
        return (isinstance(v, str) or is_int(v)) and v in m["any"]
    if "except" in m:
        if v is None:
            return False
        if isinstance(v, str) or is_int(v):
            return v not in m["except"]
        return True
    raise AssertionError(f"flow.py: unknown match {m}")


def cond_holds(c, pid, payload):
    if any(k in c for k in ("must", "should", "must_not")):
        return filter_holds(c, pid, payload)
    if "has_id" in c:
        return pid in c["has_id"]
    if "is_empty" in c:
        return all(v is None for v in get_values(payload, c["is_empty"]["key"]))
    vals = get_values(payload, c["key"])
    if "match" in c and c["match"] is not None:
        return any(match_one(c["match"], v) for v in vals)
    if "range" in c and c["range"] is not None:
        r = c["range"]
        def inr(x):
            return ((r.get("gt") is None or x > r["gt"]) and (r.get("gte") is None or x >= r["gte"])
                    and (r.get("lt") is None or x < r["lt"]) and (r.get("lte") is None or x <= r["lte"]))
        return any((is_int(v) or isinstance(v, float)) and inr(v) for v in vals)
    raise AssertionError(f"flow.py: unknown condition {c}")


def as_list(x):
    return [] if x is None else (x if isinstance(x, list) else [x])


def filter_holds(f, pid, payload):
    if f is None:
        return True
    if not all(cond_holds(c, pid, payload) for c in as_list(f.get("must"))):
        return False
    if f.get("should") is not None and not any(cond_holds(c, pid, payload) for c in as_list(f["should"])):
        return False
    return not any(cond_holds(c, pid, payload) for c in as_list(f.get("must_not")))


def fjson(f):
    return None if f is None else json.loads(f.model_dump_json(exclude_none=True, by_alias=True))


class Collection:
    """What the server should hold: id -> vector (float32) and payload."""

    def __init__(self, name, distance):
        self.name, self.distance = name, distance
        self.vecs, self.payloads = {}, {}

    def stored(self, v):
        v = np.asarray(v, dtype=np.float32)
        if self.distance == "Cosine":
            v = (v / np.linalg.norm(v.astype(np.float64))).astype(np.float32)
        return v

    def put(self, pid, vec, payload):
        self.vecs[pid] = self.stored(vec)
        self.payloads[pid] = payload if payload is not None else {}
        self._mat = None

    def remove(self, pid):
        del self.vecs[pid], self.payloads[pid]
        self._mat = None

    def matching(self, f):
        fj = fjson(f)
        return [p for p in self.vecs if filter_holds(fj, p, self.payloads[p])]

    def scores(self, q):
        """id -> Qdrant's score of every stored point for query q (float64)."""
        if getattr(self, "_mat", None) is None:
            ids = list(self.vecs)
            self._mat = (ids, np.array([self.vecs[p] for p in ids], dtype=np.float64).reshape(-1, DIM))
        ids, mat = self._mat
        q = self.stored(q).astype(np.float64)
        s = np.linalg.norm(mat - q, axis=1) if self.distance == "Euclid" else mat @ q
        return dict(zip(ids, s.tolist()))

    def score(self, pid, q):
        return self.scores(q)[pid]

    def ranked(self, q, ids):
        all_scores = self.scores(q)
        scored = [(p, all_scores[p]) for p in ids]
        rev = self.distance != "Euclid"
        return sorted(scored, key=lambda x: (-x[1] if rev else x[1], x[0]))


def check_ranking(tag, coll, got, q, f=None, limit=10, offset=0, threshold=None, exclude=()):
    cands = [p for p in coll.matching(f) if p not in exclude]
    truth = coll.scores(q)
    exp = coll.ranked(q, cands)
    if threshold is not None:
        keep = (lambda s: s >= threshold) if coll.distance != "Euclid" else (lambda s: s <= threshold)
        exp = [e for e in exp if keep(e[1])]
    exp = exp[offset:offset + limit]
    where = f"{tag} [{coll.name}, {coll.distance}, filter={fjson(f)}]"
    check(len(got) == len(exp), f"{where}: {len(got)} results, brute force has {len(exp)}: "
          f"got ids {[g.id for g in got]}, expected {[e[0] for e in exp]}")
    seen = set()
    cset = set(cands)
    for i, (g, e) in enumerate(zip(got, exp)):
        check(g.id not in seen, f"{where}: id {g.id} returned twice")
        seen.add(g.id)
        check(g.id in cset, f"{where}: rank {i}: id {g.id} does not match the filter / is not stored")
        check(close(g.score, e[1]), f"{where}: rank {i}: id {g.id} score {g.score}, brute force rank {i} "
              f"is id {e[0]} score {e[1]}")
        true = truth[g.id]
        check(close(g.score, true), f"{where}: rank {i}: id {g.id} reported score {g.score}, its true score {true}")
    return exp


# ---------------------------------------------------------------- data


def make_payload(rng, i):
    p = {"city": rng.choice(CITIES), "year": rng.randint(1990, 2025)}
    r = rng.random()
    if r < 0.1:
        pass  # no tags key
    elif r < 0.2:
        p["tags"] = []
    else:
        p["tags"] = rng.sample(TAGS, rng.randint(1, 3))
    if rng.random() < 0.95:
        p["meta"] = {"score": round(rng.random(), 6), "lang": rng.choice(["en", "de"])}
    if rng.random() < 0.05:
        p["note"] = None
    return p


def raw(base, method, path, body=None, headers=None, timeout=30):
    """One plain HTTP request; returns (status, parsed JSON or raw bytes)."""
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data
    finally:
        conn.close()


def expect_status(tag, status, fn):
    try:
        fn()
    except UnexpectedResponse as e:
        check(e.status_code == status, f"{tag}: HTTP {e.status_code}, expected {status}: {e.content[:300]!r}")
        if status == 401:
            return  # Qdrant answers 401 with a plain-text body
        try:
            body = json.loads(e.content)
        except ValueError:
            body = {}
        check(isinstance(body.get("status"), dict) and "error" in body["status"],
              f"{tag}: error body is not Qdrant's {{\"status\": {{\"error\": …}}}}: {e.content[:300]!r}")
        return
    raise Mismatch(f"{tag}: succeeded, expected HTTP {status}")


# ---------------------------------------------------------------- the flow


class Flow:
    def __init__(self, url, key, n):
        self.url, self.key, self.n = url, key, n
        self.client = QdrantClient(url=url, api_key=key, timeout=60, check_compatibility=True)
        self.rng = random.Random(17)
        self.nrng = np.random.default_rng(17)

    def step(self, name, fn):
        t = time.monotonic()
        fn()
        print(f"  ok  {name} ({(time.monotonic() - t) * 1000:.0f} ms)", flush=True)

    def qvec(self):
        return self.nrng.standard_normal(DIM).astype(np.float32)

    def fresh(self, name, distance):
        c = self.client
        if c.collection_exists(name):
            c.delete_collection(name)
        check(c.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=distance)) is True,
              f"create_collection({name}) did not return true")
        return Collection(name, distance.value if hasattr(distance, "value") else distance)

    def run(self):
        c = self.client
        self.step("GET / (version the client accepts)", self.version)
        self.step("create collections", self.create)
        self.step(f"upsert {self.n} points (points list + batch)", self.upsert)
        self.step("collection info / exists / list", self.info)
        self.step("query by vector vs brute force", self.query_plain)
        self.step("query with filters vs brute force", self.query_filtered)
        self.step("payload indexes, then filtered queries again", self.payload_index)
        self.step("query batch", self.query_batch)
        self.step("query by stored id", self.query_by_id)
        self.step("Euclid and Dot scores", self.other_metrics)
        self.step("retrieve", self.retrieve)
        self.step("scroll pagination and count", self.scroll_and_count)
        self.step("set / overwrite / delete / clear payload", self.payload_ops)
        self.step("delete points by ids and by filter", self.delete_points)
        self.step("errors: 401, 400 malformed, 400 UUID, 404", self.errors)
        self.step("100 concurrent clients", self.concurrent)
        self.step("clients that disconnect mid-request", self.disconnects)
        self.step("delete collections", self.drop)

    def version(self):
        from importlib.metadata import version
        from qdrant_client.common.version_check import is_compatible
        st, body = raw(self.url, "GET", "/")
        check(st == 200 and isinstance(body, dict) and isinstance(body.get("version"), str),
              f"GET /: HTTP {st} {body!r:.200}; Qdrant answers a bare {{\"title\": …, \"version\": …}}, "
              "no result envelope, and the clients read it so")
        mine, theirs = version("qdrant-client"), self.client.info().version
        check(is_compatible(mine, theirs), f"GET / says version {theirs!r}, which qdrant-client {mine} "
              "calls incompatible (major must match, minor differ by at most 1)")

    def create(self):
        self.cos = self.fresh(PREFIX + "cos", models.Distance.COSINE)
        self.l2 = self.fresh(PREFIX + "l2", models.Distance.EUCLID)
        self.dot = self.fresh(PREFIX + "dot", models.Distance.DOT)

    def upsert(self):
        c, n = self.client, self.n
        ids = [3 * i + 1 for i in range(n - 10)] + [2 ** 40 + 7 * i for i in range(10)]
        self.rng.shuffle(ids)
        vecs = self.nrng.standard_normal((n, DIM)).astype(np.float32)
        pls = [make_payload(self.rng, i) for i in range(n)]
        half = n // 2
        for s in range(0, half, 250):
            e = min(s + 250, half)
            r = c.upsert(self.cos.name, points=[models.PointStruct(id=ids[i], vector=vecs[i].tolist(), payload=pls[i])
                                                for i in range(s, e)], wait=True)
            check(r.status == models.UpdateStatus.COMPLETED, f"upsert (points) status {r.status}")
        for s in range(half, n, 250):
            e = min(s + 250, n)
            r = c.upsert(self.cos.name, points=models.Batch(ids=ids[s:e], vectors=vecs[s:e].tolist(),
                                                            payloads=pls[s:e]), wait=True)
            check(r.status == models.UpdateStatus.COMPLETED, f"upsert (batch) status {r.status}")
        for i in range(n):
            self.cos.put(ids[i], vecs[i], pls[i])
        # Upsert of existing ids replaces vector and payload.
        for pid in ids[:5]:
            v, p = self.qvec(), {"city": "Quito", "year": 2000, "tags": ["new"]}
            c.upsert(self.cos.name, points=[models.PointStruct(id=pid, vector=v.tolist(), payload=p)])
            self.cos.put(pid, v, p)
        self.ids = ids
        for coll in (self.l2, self.dot):
            m = 300
            v = (self.nrng.standard_normal((m, DIM)) * 2).astype(np.float32)
            mids = list(range(10, 10 + m))
            c.upload_collection(coll.name, vectors=v, ids=mids, batch_size=64, wait=True)
            for pid, vec in zip(mids, v):
                coll.put(pid, vec, None)

    def info(self):
        c = self.client
        for coll in (self.cos, self.l2, self.dot):
            ci = c.get_collection(coll.name)
            check(ci.points_count == len(coll.vecs), f"get_collection({coll.name}).points_count = {ci.points_count}, "
                  f"expected {len(coll.vecs)}")
            vp = ci.config.params.vectors
            check(vp.size == DIM and vp.distance.value == coll.distance,
                  f"get_collection({coll.name}) vectors config {vp}, expected size {DIM} {coll.distance}")
            check(c.collection_exists(coll.name) is True, f"collection_exists({coll.name}) is not True")
        check(c.collection_exists(PREFIX + "nope") is False, "collection_exists(missing) is not False")
        names = {d.name for d in c.get_collections().collections}
        check({self.cos.name, self.l2.name, self.dot.name} <= names, f"get_collections() = {sorted(names)}")

    def query(self, coll, q, f=None, **kw):
        return self.client.query_points(coll.name, query=q.tolist() if hasattr(q, "tolist") else q,
                                        query_filter=f, **kw).points

    def query_plain(self):
        cos = self.cos
        for i in range(10):
            q = self.qvec()
            exact = models.SearchParams(exact=True) if i % 2 else None
            got = self.query(cos, q, limit=10, search_params=exact)
            check_ranking(f"query #{i}", cos, got, q)
        q = self.qvec()
        check_ranking("query limit 5 offset 5", cos, self.query(cos, q, limit=5, offset=5), q, limit=5, offset=5)
        check_ranking("query hnsw_ef=128", cos, self.query(cos, q, limit=20,
                      search_params=models.SearchParams(hnsw_ef=128)), q, limit=20)
        r = cos.ranked(q, list(cos.vecs))
        thr = (r[6][1] + r[7][1]) / 2  # halfway between two scores: no rounding decides it
        check_ranking("query score_threshold", cos, self.query(cos, q, limit=20, score_threshold=thr), q,
                      limit=20, threshold=thr)
        got = self.query(cos, q, limit=3, with_payload=True, with_vectors=True)
        for g in got:
            check(g.payload == cos.payloads[g.id], f"query with_payload: id {g.id} payload {g.payload}, "
                  f"stored {cos.payloads[g.id]}")
            check(g.vector is not None and np.allclose(g.vector, cos.vecs[g.id], atol=1e-5),
                  f"query with_vector: id {g.id} vector differs from the stored (normalised for Cosine) one")
        got = self.query(cos, q, limit=3, with_payload=["city"])
        for g in got:
            check(g.payload == {"city": cos.payloads[g.id]["city"]},
                  f"query with_payload=['city']: id {g.id} payload {g.payload}")
        got = self.query(cos, q, limit=3, with_payload=False)
        check(all(not g.payload and g.vector is None for g in got), "query with_payload=False returned payloads")

    def filters(self):
        F, FC, M = models.Filter, models.FieldCondition, models
        some = self.rng.sample(self.ids, 40)
        return [
            F(must=[FC(key="city", match=M.MatchValue(value="London"))]),
            F(must=[FC(key="city", match=M.MatchAny(any=["Paris", "Berlin"])),
                    FC(key="year", range=M.Range(gte=2000, lt=2015))]),
            F(should=[FC(key="tags", match=M.MatchValue(value="news")),
                      FC(key="meta.score", range=M.Range(gt=0.9))],
              must_not=[FC(key="city", match=M.MatchValue(value="Tokyo"))]),
            F(must=[FC(key="tags", match=M.MatchExcept(**{"except": ["news", "blog"]}))]),
            F(must=[FC(key="city", match=M.MatchExcept(**{"except": ["London", "Paris", "Oslo"]}))]),
            F(must=[M.HasIdCondition(has_id=some)]),
            F(must=[M.HasIdCondition(has_id=some), FC(key="year", range=M.Range(lte=2005))]),
            F(must=[M.IsEmptyCondition(is_empty=M.PayloadField(key="tags"))]),
            F(must_not=[M.IsEmptyCondition(is_empty=M.PayloadField(key="meta.score"))],
              must=[FC(key="meta.lang", match=M.MatchValue(value="de"))]),
            F(must=[FC(key="year", match=M.MatchValue(value=2001))]),
            F(must=[FC(key="year", match=M.MatchAny(any=[1999, 2005, 2010]))]),
            F(must=[F(should=[FC(key="city", match=M.MatchValue(value="Lima")),
                              F(must=[FC(key="meta.score", range=M.Range(lt=0.1))])])],
              must_not=[FC(key="tags", match=M.MatchAny(any=["art"]))]),
            F(must=[FC(key="city", match=M.MatchValue(value="Atlantis"))]),
        ]

    def query_filtered(self):
        for j, f in enumerate(self.filters()):
            for exact in (False, True):
                q = self.qvec()
                got = self.query(self.cos, q, f, limit=10,
                                 search_params=models.SearchParams(exact=True) if exact else None)
                check_ranking(f"filtered query #{j} exact={exact}", self.cos, got, q, f)

    def payload_index(self):
        c, cos, M = self.client, self.cos, models
        for field, schema in (("city", M.PayloadSchemaType.KEYWORD), ("year", M.PayloadSchemaType.INTEGER)):
            r = c.create_payload_index(cos.name, field_name=field, field_schema=schema, wait=True)
            check(r.status == M.UpdateStatus.COMPLETED, f"create_payload_index({field}): status {r.status}")
        for j, f in enumerate(self.filters()):
            q = self.qvec()
            check_ranking(f"indexed filtered query #{j}", cos, self.query(cos, q, f, limit=10), q, f)
            got = c.count(cos.name, count_filter=f, exact=True).count
            check(got == len(cos.matching(f)), f"indexed count filter={fjson(f)}: {got}, expected {len(cos.matching(f))}")
        # Outside the supported subset the answer is a 400, or else right.
        f = M.Filter(must=[M.FieldCondition(key="city", match=M.MatchText(text="ond"))])
        try:
            got = c.count(cos.name, count_filter=f).count
        except UnexpectedResponse as e:
            check(e.status_code == 400, f"count with match.text: HTTP {e.status_code}, expected 400 or a right answer")
        else:
            want = sum("ond" in p.get("city", "") for p in cos.payloads.values())
            check(got == want, f"count with match.text 'ond': {got}, expected {want} (or a 400)")

    def query_batch(self):
        cos, fs = self.cos, self.filters()
        qs = [self.qvec() for _ in range(4)]
        reqs = [models.QueryRequest(query=q.tolist(), filter=fs[k], limit=7) for k, q in enumerate(qs)]
        got = self.client.query_batch_points(cos.name, requests=reqs)
        check(len(got) == len(reqs), f"query_batch_points: {len(got)} answers for {len(reqs)} requests")
        for k, (g, q) in enumerate(zip(got, qs)):
            check_ranking(f"query batch [{k}]", cos, g.points, q, fs[k], limit=7)

    def query_by_id(self):
        cos = self.cos
        for pid in self.rng.sample(self.ids, 5):
            got = self.query(cos, pid, limit=10)
            # Qdrant leaves the point it was asked about out of the results.
            check_ranking(f"query by id {pid}", cos, got, cos.vecs[pid], exclude={pid})
        f = models.Filter(must=[models.FieldCondition(key="city", match=models.MatchValue(value="Berlin"))])
        pid = self.ids[100]
        check_ranking(f"query by id {pid} + filter", cos, self.query(cos, pid, f), cos.vecs[pid], f, exclude={pid})
        expect_status("query by a missing id", 404, lambda: self.query(cos, 999_999_999))

    def other_metrics(self):
        for coll in (self.l2, self.dot):
            for i in range(5):
                q = self.qvec() * 2
                check_ranking(f"query #{i}", coll, self.query(coll, q, limit=10), q)
            q = self.qvec()
            r = coll.ranked(q, list(coll.vecs))
            thr = (r[4][1] + r[5][1]) / 2
            check_ranking("score_threshold", coll, self.query(coll, q, limit=20, score_threshold=thr), q,
                          limit=20, threshold=thr)
            got = self.client.retrieve(coll.name, ids=[10, 11], with_vectors=True)
            for r in got:
                check(np.allclose(r.vector, coll.vecs[r.id], atol=1e-6),
                      f"retrieve {coll.name}/{r.id}: vector changed ({coll.distance} stores it as given)")

    def retrieve(self):
        c, cos = self.client, self.cos
        want = self.rng.sample(self.ids, 30) + [5, 999_999_998]  # two that do not exist
        got = c.retrieve(cos.name, ids=want, with_payload=True, with_vectors=True)
        check(sorted(r.id for r in got) == sorted(i for i in want if i in cos.vecs),
              f"retrieve ids: got {sorted(r.id for r in got)}")
        for r in got:
            check(r.payload == cos.payloads[r.id], f"retrieve {r.id}: payload {r.payload}, stored {cos.payloads[r.id]}")
            check(np.allclose(r.vector, cos.vecs[r.id], atol=1e-5), f"retrieve {r.id}: vector differs")
        got = c.retrieve(cos.name, ids=want[:5], with_payload=False, with_vectors=False)
        check(len(got) == 5 and all(not r.payload and r.vector is None for r in got),
              "retrieve with_payload=False, with_vectors=False returned payloads or vectors")

    def scroll_all(self, coll, f, page):
        out, offset = [], None
        for _ in range(10_000):
            recs, nxt = self.client.scroll(coll.name, scroll_filter=f, limit=page, offset=offset,
                                           with_payload=True, with_vectors=False)
            check(len(recs) <= page, f"scroll page of {len(recs)} > limit {page}")
            for r in recs:
                check((r.payload or {}) == coll.payloads[r.id], f"scroll {r.id}: payload {r.payload}, "
                      f"stored {coll.payloads[r.id]}")
            out += [r.id for r in recs]
            if nxt is None:
                return out
            check(not recs or nxt > recs[-1].id, f"scroll next_page_offset {nxt} <= last id {recs[-1].id}")
            offset = nxt
        raise Mismatch("scroll did not end after 10,000 pages")

    def scroll_and_count(self):
        for f in [None] + self.filters():
            got, exp = self.scroll_all(self.cos, f, 97), sorted(self.cos.matching(f))
            check(got == exp, f"scroll filter={fjson(f)}: {len(got)} ids, expected {len(exp)}; "
                  f"first differences {[(a, b) for a, b in zip(got, exp) if a != b][:5]}")
            n = self.client.count(self.cos.name, count_filter=f, exact=True).count
            check(n == len(exp), f"count filter={fjson(f)}: {n}, expected {len(exp)}")

    def payload_ops(self):
        c, cos = self.client, self.cos
        a, b, d, e = (self.ids[200:220], self.ids[220:240], self.ids[240:260], self.ids[260:280])
        c.set_payload(cos.name, payload={"flag": True, "city": "Rome"}, points=a, wait=True)
        for p in a:
            cos.payloads[p] = {**cos.payloads[p], "flag": True, "city": "Rome"}
        c.overwrite_payload(cos.name, payload={"only": 1}, points=b, wait=True)
        for p in b:
            cos.payloads[p] = {"only": 1}
        c.delete_payload(cos.name, keys=["year", "meta"], points=d, wait=True)
        for p in d:
            cos.payloads[p] = {k: v for k, v in cos.payloads[p].items() if k not in ("year", "meta")}
        c.clear_payload(cos.name, points_selector=models.PointIdsList(points=e), wait=True)
        for p in e:
            cos.payloads[p] = {}
        for p, r in ((r.id, r) for r in c.retrieve(cos.name, ids=a + b + d + e, with_payload=True)):
            check((r.payload or {}) == cos.payloads[p], f"after payload updates: id {p} payload {r.payload}, "
                  f"expected {cos.payloads[p]}")
        M = models
        for f in [M.Filter(must=[M.FieldCondition(key="flag", match=M.MatchValue(value=True))]),
                  M.Filter(must=[M.FieldCondition(key="only", match=M.MatchValue(value=1))]),
                  M.Filter(must=[M.IsEmptyCondition(is_empty=M.PayloadField(key="year"))]),
                  M.Filter(must=[M.FieldCondition(key="city", match=M.MatchValue(value="Rome"))])]:
            got = c.count(cos.name, count_filter=f).count
            check(got == len(cos.matching(f)), f"count after payload updates, filter={fjson(f)}: {got}, "
                  f"expected {len(cos.matching(f))}")
            q = self.qvec()
            check_ranking("query after payload updates", cos, self.query(cos, q, f), q, f)

    def delete_points(self):
        c, cos = self.client, self.cos
        gone = self.ids[300:350]
        r = c.delete(cos.name, points_selector=models.PointIdsList(points=gone), wait=True)
        check(r.status == models.UpdateStatus.COMPLETED, f"delete by ids: status {r.status}")
        for p in gone:
            cos.remove(p)
        check(c.retrieve(cos.name, ids=gone) == [], "delete by ids: retrieve still finds them")
        f = models.Filter(must=[models.FieldCondition(key="city", match=models.MatchValue(value="Oslo"))])
        c.delete(cos.name, points_selector=models.FilterSelector(filter=f), wait=True)
        for p in cos.matching(f):
            cos.remove(p)
        check(c.count(cos.name, count_filter=f).count == 0, "delete by filter: points still match")
        total = c.count(cos.name, exact=True).count
        check(total == len(cos.vecs), f"count after deletes: {total}, expected {len(cos.vecs)}")
        check(c.get_collection(cos.name).points_count == len(cos.vecs), "points_count after deletes")
        for i in range(3):
            q = self.qvec()
            check_ranking(f"query after deletes #{i}", cos, self.query(cos, q, limit=20), q, limit=20)
        check(self.scroll_all(cos, None, 500) == sorted(cos.vecs), "scroll after deletes")

    def errors(self):
        cos, base, key = self.cos, self.url, self.key
        anon = QdrantClient(url=base, timeout=30, check_compatibility=False)
        expect_status("no api-key: get_collections", 401, anon.get_collections)
        expect_status("no api-key: query", 401, lambda: anon.query_points(cos.name, query=[0.1] * DIM))
        wrong = QdrantClient(url=base, api_key=key + "x", timeout=30, check_compatibility=False)
        expect_status("wrong api-key: count", 401, lambda: wrong.count(cos.name))
        st, body = raw(base, "GET", "/collections", headers={"Authorization": f"Bearer {key}"})
        check(st == 200, f"GET /collections with 'Authorization: Bearer KEY': HTTP {st} {body!r:.200}")
        h = {"api-key": key, "Content-Type": "application/json"}
        for bad in (b'{"query": [0.1, 0.2', b"not json", b'{"query": "abc"}', b"[1,2,3]"):
            st, body = raw(base, "POST", f"/collections/{cos.name}/points/query", bad, h)
            check(st == 400, f"POST /collections/{cos.name}/points/query body {bad!r}: HTTP {st}, expected 400")
            check(isinstance(body, dict) and "error" in body.get("status", {}),
                  f"malformed body {bad!r}: response is not Qdrant's error shape: {body!r:.200}")
        u = str(uuid.uuid4())
        expect_status("upsert with a UUID id", 400, lambda: self.client.upsert(
            cos.name, points=[models.PointStruct(id=u, vector=[0.5] * DIM)]))
        expect_status("retrieve a UUID id", 400, lambda: self.client.retrieve(cos.name, ids=[u]))
        expect_status("wrong vector size", 400, lambda: self.client.upsert(
            cos.name, points=[models.PointStruct(id=1, vector=[0.5] * (DIM - 1))]))
        expect_status("query a missing collection", 404,
                      lambda: self.client.query_points(PREFIX + "nope", query=[0.1] * DIM))
        expect_status("get a missing collection", 404, lambda: self.client.get_collection(PREFIX + "nope"))
        check(self.client.count(cos.name).count == len(cos.vecs), "the failed requests changed the collection")

    def concurrent(self):
        cos, errors, qs = self.cos, [], [self.qvec() for _ in range(300)]
        cos.scores(qs[0])  # build the brute-force matrix before the threads share it
        barrier = threading.Barrier(100)

        def worker(t):
            try:
                cl = QdrantClient(url=self.url, api_key=self.key, timeout=120, check_compatibility=False)
                barrier.wait(timeout=60)
                for k in range(3):
                    q = qs[3 * t + k]
                    check_ranking(f"client {t} query {k}", cos, cl.query_points(cos.name, query=q.tolist(),
                                  limit=5).points, q, limit=5)
                cl.close()
            except Exception as ex:  # noqa: BLE001 - reported below
                errors.append(f"client {t}: {type(ex).__name__}: {ex}")

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        check(not any(t.is_alive() for t in threads), "concurrent clients: some did not finish in 300 s")
        check(not errors, f"{len(errors)} of 100 concurrent clients failed; first: {errors[:3]}")

    def disconnects(self):
        u = urllib.parse.urlparse(self.url)
        body = json.dumps({"query": [0.1] * DIM, "limit": 5}).encode()
        head = (f"POST /collections/{self.cos.name}/points/query HTTP/1.1\r\nHost: {u.netloc}\r\n"
                f"api-key: {self.key}\r\nContent-Type: application/json\r\n").encode()
        attempts = [
            head + f"Content-Length: {len(body) * 4}\r\n\r\n".encode() + body[: len(body) // 2],  # half a body
            head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body,  # whole; close before the answer
            head[: len(head) // 2],  # half the headers
            head + b"Transfer-Encoding: chunked\r\n\r\n100\r\n" + body[:40],  # a chunk cut short
        ]
        for n, data in enumerate(attempts):
            for _ in range(5):
                s = socket.create_connection((u.hostname, u.port), timeout=10)
                s.sendall(data)
                s.close()
            time.sleep(0.05)
            check(self.client.count(self.cos.name).count == len(self.cos.vecs),
                  f"after clients disconnected mid-request (kind {n}): count is wrong")
            q = self.qvec()
            check_ranking(f"query after disconnects (kind {n})", self.cos, self.query(self.cos, q), q)

    def drop(self):
        c = self.client
        for coll in (self.cos, self.l2, self.dot):
            check(c.delete_collection(coll.name) is True, f"delete_collection({coll.name}) did not return true")
            check(c.collection_exists(coll.name) is False, f"collection_exists({coll.name}) after delete")
        names = {d.name for d in c.get_collections().collections}
        check(not names & {self.cos.name, self.l2.name, self.dot.name}, f"deleted collections still listed: {names}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--points", type=int, default=2000)
    a = ap.parse_args()
    t = time.monotonic()
    from importlib.metadata import version
    print(f"flow.py: qdrant-client {version('qdrant-client')} against {a.url}", flush=True)
    try:
        Flow(a.url, a.api_key, a.points).run()
    except Mismatch as e:
        print(f"flow.py: FAIL: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - an HTTP error, a dropped connection, a bad body
        import traceback
        traceback.print_exc()
        print(f"flow.py: FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"flow.py: PASS ({time.monotonic() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
