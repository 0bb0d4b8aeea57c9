# SPDX-License-Identifier: Apache-2.0
"""Vector files on a mounted VexFS from Python.

    import numpy as np, vexfs
    with vexfs.Collection("/mnt/vexfs/docs.vec", dims=384) as docs:
        docs.upsert(ids, embeddings)          # numpy (n, 384) float32
        ids, distances = docs.search(query, k=10)
        docs.upsert(ids, embeddings, payloads=[{"city": "London"}, ...])
        ids, distances = docs.search(query, k=10, filter={
            "must": [{"key": "city", "match": {"value": "London"}}]})

Pure Python over the VexFS v2 ioctls (``vexfs_v2_uapi.h``); numpy arrays
go to the filesystem without copies, payloads and filters as JSON.
"""

from ._abi import (
    VEXFS_SEARCH_COSINE,
    VEXFS_SEARCH_DOT_PRODUCT,
    VEXFS_SEARCH_EUCLIDEAN,
)
from ._json import Filter, Payload
from .collection import METRICS, Collection, VexFSError

__version__ = "0.1.0"
__all__ = [
    "Collection",
    "VexFSError",
    "METRICS",
    "Payload",
    "Filter",
    "VEXFS_SEARCH_COSINE",
    "VEXFS_SEARCH_DOT_PRODUCT",
    "VEXFS_SEARCH_EUCLIDEAN",
]
