#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The vexfs package (python/, `pip install ./python`) on a mounted VexFS.

    python3 vexfs_collection.py FILE

FILE is a file on a mounted VexFS. The program makes it a collection of 64
dimensions (cosine), upserts 5,000 vectors with ids 10000.. and a payload
each, searches with a stored vector and a batch of 20, searches among the
vectors a payload filter matches, checks the answers against brute force
in numpy, counts and scrolls the matches, chooses an HNSW index, fetches
and deletes by id, fsyncs, and reopens it. Exit status 0 when every
answer is what python/README.md says, 1 with a message otherwise.
"""

import sys

import numpy as np

import vexfs


def nearest_by_brute_force(stored, ids, queries, k):
    unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return ids[np.argsort(1.0 - q @ unit.T, axis=1, kind="stable")[:, :k]]


def main(path):
    rng = np.random.default_rng(7)
    data = rng.standard_normal((5000, 64), dtype=np.float32)
    ids = np.arange(10_000, 15_000, dtype=np.uint64)
    colours = ["red", "green", "blue"]
    payloads = [{"colour": colours[i % 3], "size": i % 100} for i in range(5000)]
    with vexfs.Collection(path, dims=64, metric="cosine") as docs:
        docs.upsert(ids, data, payloads=payloads)
        print(f"upserted {len(docs)} vectors of {docs.dims} dimensions, with payloads")
        hits, distances = docs.search(data[123], k=5)
        print(f"search: nearest of id 10123 is {hits[0]} at distance {distances[0]:.6f}")
        if hits[0] != 10_123:
            return f"the nearest of a stored vector is {hits[0]}, not 10123"
        batch, _ = docs.search(data[:20], k=10)
        want = nearest_by_brute_force(data, ids.astype(np.int64), data[:20], 10)
        recall = np.mean([len(set(b) & set(w)) / 10 for b, w in zip(batch, want)])
        print(f"batch of 20 queries, k=10: recall {recall:.3f} against brute force")
        if recall < 0.99:
            return f"exact search recall {recall} below 0.99"
        small_blue = {"must": [{"key": "colour", "match": {"value": "blue"}},
                               {"key": "size", "range": {"lt": 30}}]}
        matches = np.array([p["colour"] == "blue" and p["size"] < 30 for p in payloads])
        hits, _, found = docs.search(data[0], k=10, filter=small_blue, with_payload=True)
        want = nearest_by_brute_force(data[matches], ids[matches].astype(np.int64),
                                      data[:1], 10)[0]
        print(f"filtered search (blue, size < 30): {docs.count(small_blue)} of "
              f"{len(docs)} match; nearest {hits[0]} {found[0]}")
        if list(hits) != list(want):
            return f"filtered search gave {list(hits)}, brute force {list(want)}"
        if docs.count(small_blue) != matches.sum():
            return f"count(filter) is {docs.count(small_blue)}, not {matches.sum()}"
        page, offset = docs.scroll(small_blue, limit=1000)
        if list(page) != list(ids[matches]) or offset is not None:
            return "scroll(filter) differs from the matching ids"
        docs.set_index("HNSW32", efSearch=64)
        hits, _ = docs.search(data[4000], k=1)
        print(f"index {docs.status()['index']}: nearest of id 14000 is {hits[0]}")
        if hits[0] != 14_000:
            return f"with HNSW the nearest of a stored vector is {hits[0]}, not 14000"
        if not np.array_equal(docs.get([10_001])[0], data[1]):
            return "get(10001) differs from the inserted vector"
        print(f"delete: {docs.delete([10_001, 99])} of 2 ids were stored")
        docs.fsync()
    with vexfs.Collection(path) as again:
        print(f"reopened: {again.count()} vectors, metric {again.metric}")
        if again.count() != 4999:
            return f"{again.count()} vectors after reopening, not 4999"
    print("OK")
    return None


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        failure = main(sys.argv[1])
    except (OSError, ValueError) as error:
        failure = str(error)
    if failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
