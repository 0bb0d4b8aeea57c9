# SPDX-License-Identifier: Apache-2.0
"""One vector file on a mounted VexFS, as a collection of (id, vector)."""

from __future__ import annotations

import ctypes
import errno as errno_codes
import fcntl
import os
from typing import Dict, Optional, Tuple, Union

import numpy as np

from . import _abi

METRICS = {
    "euclidean": _abi.VEXFS_SEARCH_EUCLIDEAN,
    "l2": _abi.VEXFS_SEARCH_EUCLIDEAN,
    "cosine": _abi.VEXFS_SEARCH_COSINE,
    "dot": _abi.VEXFS_SEARCH_DOT_PRODUCT,
}

XATTR_INDEX = "user.vexfs.index"
XATTR_SEARCH = "user.vexfs.search"
XATTR_STATUS = "user.vexfs.status"

ArrayLike = Union[np.ndarray, list, tuple]


class VexFSError(OSError):
    """A request the filesystem refused: `errno` is the filesystem's, and
    the message names the request and what was sent (the daemon's log
    names the field it refused)."""


def _refused(request: str, sent: str, error: OSError) -> VexFSError:
    code = error.errno or errno_codes.EIO
    return VexFSError(code, f"{request} ({sent}): {os.strerror(code)}")


def _address(array: np.ndarray) -> int:
    return array.ctypes.data


class Collection:
    """A vector file on a mounted VexFS.

    ``Collection(path, dims=128)`` opens ``path`` (creating it) and, when
    it is empty, makes it a float32 vector file of ``dims`` dimensions;
    ``Collection(path)`` opens an existing vector file. ``metric`` is how
    :meth:`search` ranks: ``"cosine"`` (distance 1 - cos), ``"euclidean"``
    (squared L2) or ``"dot"`` (inner product, largest first).

    Arrays are passed to the filesystem without copies when they are
    float32 / uint64 and C-contiguous; other arrays are converted once.
    """

    def __init__(self, path: Union[str, os.PathLike], dims: Optional[int] = None,
                 metric: str = "cosine") -> None:
        if metric not in METRICS:
            raise ValueError(f"metric: {metric!r} is not one of {sorted(METRICS)}")
        self.path = os.fspath(path)
        self.metric = metric
        self._search_type = METRICS[metric]
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            info = self._meta_or_none()
            if info is None:
                if dims is None:
                    raise ValueError(f"dims: {self.path} is not a vector file yet; "
                                     "give the number of dimensions to make it one")
                self._set_meta(dims)
            elif dims is not None and dims != info.dimensions:
                raise ValueError(f"dims: {self.path} holds vectors of {info.dimensions} "
                                 f"dimensions, not {dims}")
            self.dims = self._meta().dimensions
        except BaseException:
            os.close(self._fd)
            raise

    # -- requests -----------------------------------------------------------

    def _ioctl(self, request: str, number: int, struct: ctypes.Structure, sent: str) -> None:
        if self._fd < 0:
            raise ValueError(f"{request}: the collection {self.path} is closed")
        try:
            fcntl.ioctl(self._fd, number, struct, True)
        except OSError as error:
            raise _refused(request, sent, error) from None

    def _meta(self) -> _abi.VectorFileInfo:
        info = _abi.VectorFileInfo()
        self._ioctl("GET_VECTOR_META", _abi.VEXFS_IOC_GET_VECTOR_META, info, self.path)
        return info

    def _meta_or_none(self) -> Optional[_abi.VectorFileInfo]:
        try:
            return self._meta()
        except VexFSError as error:
            if error.errno == errno_codes.EINVAL:  # a plain file
                return None
            raise

    def _set_meta(self, dims: int) -> None:
        if not 1 <= dims <= _abi.DIMENSIONS_MAX:
            raise ValueError(f"dims: {dims} is not in 1..={_abi.DIMENSIONS_MAX}")
        info = _abi.VectorFileInfo(dimensions=dims, element_type=_abi.VEXFS_VECTOR_FLOAT32,
                                   storage_format=_abi.VEXFS_STORAGE_DENSE,
                                   compression_type=_abi.VEXFS_COMPRESS_NONE)
        self._ioctl("SET_VECTOR_META", _abi.VEXFS_IOC_SET_VECTOR_META, info,
                    f"{dims} dimensions")

    def _rows(self, vectors: ArrayLike, what: str = "vectors") -> np.ndarray:
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self.dims:
            raise ValueError(f"{what}: expected shape (n, {self.dims}), got {np.shape(vectors)}")
        return rows

    @staticmethod
    def _ids(ids: ArrayLike, count: Optional[int] = None) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim == 0:
            ids = ids.reshape(1)
        if ids.ndim != 1:
            raise ValueError(f"ids: expected a 1-D array, got shape {ids.shape}")
        if ids.size and ids.dtype.kind == "i" and ids.min() < 0:
            raise ValueError("ids: ids are unsigned 64-bit; got a negative one")
        if ids.dtype.kind not in "iu":
            raise ValueError(f"ids: expected integers, got {ids.dtype}")
        ids = np.ascontiguousarray(ids, dtype=np.uint64)
        if count is not None and ids.size != count:
            raise ValueError(f"ids: {ids.size} ids for {count} vectors")
        if not 1 <= ids.size <= _abi.BATCH_VECTORS_MAX:
            raise ValueError(f"ids: {ids.size} is not in 1..={_abi.BATCH_VECTORS_MAX}")
        return ids

    def _insert(self, ids: ArrayLike, vectors: ArrayLike, flags: int, request: str) -> None:
        rows = self._rows(vectors)
        keys = self._ids(ids, rows.shape[0])
        if rows.nbytes + keys.nbytes > _abi.REQUEST_BYTES_MAX:
            raise ValueError(f"vectors: {rows.nbytes + keys.nbytes} bytes in one request; "
                             f"at most {_abi.REQUEST_BYTES_MAX} (send smaller batches)")
        req = _abi.BatchInsertRequest(vectors=_address(rows), vector_count=rows.shape[0],
                                      dimensions=self.dims, vector_ids=_address(keys),
                                      flags=flags)
        self._ioctl(request, _abi.VEXFS_IOC_BATCH_INSERT, req,
                    f"{rows.shape[0]} vectors of {self.dims} dimensions")

    # -- the API --------------------------------------------------------------

    def add(self, ids: ArrayLike, vectors: ArrayLike) -> None:
        """Inserts new vectors; EEXIST (nothing stored) if an id is already
        stored or repeats in the batch. All or nothing."""
        self._insert(ids, vectors, _abi.VEXFS_INSERT_NO_REPLACE, "BATCH_INSERT (add)")

    def upsert(self, ids: ArrayLike, vectors: ArrayLike) -> None:
        """Inserts vectors, replacing those stored under the same ids.
        All or nothing."""
        self._insert(ids, vectors, 0, "BATCH_INSERT (upsert)")

    def search(self, queries: ArrayLike, k: int = 10) -> Tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored vectors of each query, best first.

        One query (shape ``(dims,)``) gives ``(ids, distances)`` of shape
        ``(k,)``; a batch ``(n, dims)`` gives shape ``(n, k)``. Ids are
        int64 with -1 (and distance NaN) where fewer than ``k`` vectors are
        stored, as faiss does. Distances as :attr:`metric` defines them.
        """
        if not 1 <= k <= _abi.SEARCH_K_MAX:
            raise ValueError(f"k: {k} is not in 1..={_abi.SEARCH_K_MAX}")
        single = np.ndim(queries) == 1
        rows = self._rows(queries, "queries")
        ids = np.full((rows.shape[0], k), -1, dtype=np.int64)
        distances = np.full((rows.shape[0], k), np.nan, dtype=np.float32)
        found = np.zeros(k, dtype=np.uint64)
        values = np.zeros(k, dtype=np.float32)
        for row in range(rows.shape[0]):
            query = rows[row]
            req = _abi.SearchRequest(query_vector=_address(query), dimensions=self.dims, k=k,
                                     search_type=self._search_type, results=_address(values),
                                     result_ids=_address(found))
            self._ioctl("VECTOR_SEARCH", _abi.VEXFS_IOC_VECTOR_SEARCH, req,
                        f"k={k}, {self.metric}")
            count = min(req.result_count, k)
            ids[row, :count] = found[:count].astype(np.int64)
            distances[row, :count] = values[:count]
        if single:
            return ids[0], distances[0]
        return ids, distances

    def get(self, ids: ArrayLike) -> np.ndarray:
        """The stored vectors of ``ids``, shape ``(len(ids), dims)``; ENOENT
        (VexFSError) if any id is not stored."""
        keys = self._ids(ids)
        out = np.empty((keys.size, self.dims), dtype=np.float32)
        req = _abi.GetVectorsRequest(ids=_address(keys), vectors=_address(out),
                                     id_count=keys.size, dimensions=self.dims)
        self._ioctl("GET_VECTORS", _abi.VEXFS_IOC_GET_VECTORS, req, f"{keys.size} ids")
        return out

    def delete(self, ids: ArrayLike) -> int:
        """Deletes ``ids``; returns how many were stored. Ids not stored are
        skipped."""
        keys = self._ids(ids)
        req = _abi.DeleteRequest(ids=_address(keys), id_count=keys.size)
        self._ioctl("DELETE_VECTORS", _abi.VEXFS_IOC_DELETE_VECTORS, req, f"{keys.size} ids")
        return int(req.deleted_count)

    def count(self) -> int:
        """How many vectors are stored."""
        return int(self._meta().vector_count)

    def __len__(self) -> int:
        return self.count()

    def set_index(self, factory: str, **search_parameters: int) -> None:
        """Chooses the file's faiss index (a factory string: ``"Flat"``,
        ``"HNSW32"``, ``"IVF256,Flat"``, ...) and its search parameters
        (``efSearch=64``, ``nprobe=8``); the filesystem builds it in the
        background and keeps it in the file."""
        self._set_xattr(XATTR_INDEX, factory)
        if search_parameters:
            value = ",".join(f"{name}={number}" for name, number in search_parameters.items())
            self._set_xattr(XATTR_SEARCH, value)

    def status(self) -> Dict[str, str]:
        """The file's ``user.vexfs.status``: vectors, dimensions, index,
        metric, indexed, tombstones, building, stored_index."""
        try:
            text = os.getxattr(self._fd, XATTR_STATUS).decode()
        except OSError as error:
            raise _refused("getxattr", XATTR_STATUS, error) from None
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def _set_xattr(self, name: str, value: str) -> None:
        try:
            os.setxattr(self._fd, name, value.encode())
        except OSError as error:
            raise _refused("setxattr", f"{name}={value}", error) from None

    def fsync(self) -> None:
        """Everything stored so far is durable when this returns."""
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"{self.dims} dims, {self.metric}"
        return f"Collection({self.path!r}, {state})"
