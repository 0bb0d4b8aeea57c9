# SPDX-License-Identifier: Apache-2.0
"""The vexfs package against a real mount: what a user of faiss or Qdrant
does first (create, upsert, search, fetch, delete, index, reopen)."""

import errno
import os

import numpy as np
import pytest

import vexfs


def vectors(n, d, seed):
    return np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)


def brute_force(stored, ids, query, k):
    unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    q = query / np.linalg.norm(query)
    order = np.argsort(1.0 - unit @ q, kind="stable")[:k]
    return ids[order]


def test_upsert_search_get_delete_and_reopen(mount):
    path = os.path.join(mount, "docs.vec")
    data = vectors(2000, 32, 1)
    ids = np.arange(1000, 3000, dtype=np.uint64)
    with vexfs.Collection(path, dims=32) as docs:
        assert len(docs) == 0
        docs.upsert(ids, data)
        assert docs.count() == 2000
        got, distances = docs.search(data[7], k=5)
        assert got[0] == 1007 and abs(distances[0]) < 1e-5
        assert list(got) == list(brute_force(data, ids, data[7], 5))
        batch_ids, batch_distances = docs.search(data[:3], k=4)
        assert batch_ids.shape == (3, 4) and batch_distances.shape == (3, 4)
        assert list(batch_ids[:, 0]) == [1000, 1001, 1002]
        assert np.array_equal(docs.get([1005, 1000]), data[[5, 0]])
        # An upsert replaces; add refuses an id that is stored.
        docs.upsert([1000], np.ones((1, 32), dtype=np.float32))
        assert np.array_equal(docs.get([1000])[0], np.ones(32, dtype=np.float32))
        with pytest.raises(vexfs.VexFSError) as refused:
            docs.add([1001], np.zeros((1, 32), dtype=np.float32))
        assert refused.value.errno == errno.EEXIST
        assert docs.delete([1002, 999_999]) == 1
        with pytest.raises(vexfs.VexFSError) as missing:
            docs.get([1002])
        assert missing.value.errno == errno.ENOENT
        docs.fsync()
    with vexfs.Collection(path) as again:
        assert again.dims == 32 and again.count() == 1999
        assert again.status()["vectors"] == "1999"


def test_fewer_vectors_than_k_pad_with_minus_one(mount):
    with vexfs.Collection(os.path.join(mount, "few.vec"), dims=4, metric="euclidean") as few:
        few.upsert([1, 2], [[0, 0, 0, 1], [0, 0, 1, 0]])
        ids, distances = few.search([0, 0, 0, 1], k=4)
        assert list(ids) == [1, 2, -1, -1]
        assert distances[0] == 0.0 and np.isnan(distances[3])


def test_an_index_is_chosen_and_used(mount):
    path = os.path.join(mount, "hnsw.vec")
    data = vectors(3000, 16, 2)
    ids = np.arange(3000, dtype=np.uint64)
    with vexfs.Collection(path, dims=16) as hnsw:
        hnsw.upsert(ids, data)
        hnsw.set_index("HNSW32", efSearch=64)
        got, _ = hnsw.search(data[42], k=1)
        assert got[0] == 42
        assert hnsw.status()["index"].startswith("HNSW32")


def test_bad_input_names_the_argument_and_stores_nothing(mount):
    with vexfs.Collection(os.path.join(mount, "strict.vec"), dims=8) as strict:
        with pytest.raises(ValueError, match=r"vectors: expected shape \(n, 8\)"):
            strict.upsert([1, 2], np.zeros((2, 7)))
        with pytest.raises(ValueError, match="ids: 1 ids for 2 vectors"):
            strict.upsert([1], np.zeros((2, 8)))
        with pytest.raises(ValueError, match="negative"):
            strict.upsert([-1], np.zeros((1, 8)))
        with pytest.raises(ValueError, match="k: 0"):
            strict.search(np.zeros(8), k=0)
        nan = np.zeros((1, 8), dtype=np.float32)
        nan[0, 3] = np.nan
        with pytest.raises(vexfs.VexFSError) as refused:
            strict.upsert([5], nan)
        assert refused.value.errno == errno.EINVAL
        assert strict.count() == 0
    with pytest.raises(ValueError, match="dims: .* holds vectors of 8 dimensions, not 9"):
        vexfs.Collection(os.path.join(mount, "strict.vec"), dims=9)
    with pytest.raises(ValueError, match="not a vector file yet"):
        vexfs.Collection(os.path.join(mount, "plain.txt"))
    with pytest.raises(ValueError, match="metric"):
        vexfs.Collection(os.path.join(mount, "x.vec"), dims=4, metric="manhattan")
