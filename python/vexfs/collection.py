# SPDX-License-Identifier: Apache-2.0
"""One vector file on a mounted VexFS, as a collection of points: an id, a
vector and, optionally, a payload (a JSON object) that filters select on."""

from __future__ import annotations

import ctypes
import errno as errno_codes
import fcntl
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _abi, _json

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

# GET_PAYLOADS learns the size, then fetches; a writer that grows the
# payloads in between makes the fetch ERANGE, and the size is learnt again.
PAYLOAD_FETCH_TRIES = 3


class VexFSError(OSError):
    """A request the filesystem refused: `errno` is the filesystem's, and
    the message names the request and what was sent (the daemon's log
    names the field it refused)."""


def _refused(request: str, sent: str, error: OSError) -> VexFSError:
    code = error.errno or errno_codes.EIO
    return VexFSError(code, f"{request} ({sent}): {os.strerror(code)}")


def _address(array: np.ndarray) -> int:
    return array.ctypes.data


def _check_lengths(lengths: np.ndarray, total_bytes: int) -> None:
    # Cheap, and a daemon that broke it would have us slice payloads wrongly.
    lengths_bytes = int(lengths.sum(dtype=np.uint64))
    if lengths_bytes != total_bytes:
        raise VexFSError(errno_codes.EIO, f"GET_PAYLOADS: payload lengths add up to "
                         f"{lengths_bytes} bytes, but buffer_bytes is {total_bytes}")


class Collection:
    """A vector file on a mounted VexFS.

    ``Collection(path, dims=128)`` opens ``path`` (creating it) and, when
    it is empty, makes it a float32 vector file of ``dims`` dimensions;
    ``Collection(path)`` opens an existing vector file. ``metric`` is how
    :meth:`search` ranks: ``"cosine"`` (distance 1 - cos), ``"euclidean"``
    (squared L2) or ``"dot"`` (inner product, largest first).

    Each id may carry a payload, a dict stored as a JSON object (at most
    PAYLOAD_BYTES_MAX bytes of it): :meth:`search`, :meth:`count`,
    :meth:`scroll` and :meth:`delete` take a Qdrant filter over them
    (docs/VECTORS.md, "Payloads and filters").

    Arrays are passed to the filesystem without copies when they are
    float32 / uint64 and C-contiguous; other arrays are converted once.
    A write is one request, all or nothing (:meth:`add` with payloads and
    :meth:`delete` with a filter say where they are more); one that would
    move more than REQUEST_BYTES_MAX is a ValueError: send smaller batches.
    Reads (a batch search, payloads) are split into as many requests as
    the limits need.
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

    @staticmethod
    def _check_request_bytes(what: str, request_bytes: int) -> None:
        if request_bytes > _abi.REQUEST_BYTES_MAX:
            raise ValueError(f"{what}: {request_bytes} bytes in one request; at most "
                             f"{_abi.REQUEST_BYTES_MAX} (send smaller batches)")

    def _insert(self, keys: np.ndarray, rows: np.ndarray, flags: int, request: str) -> None:
        req = _abi.BatchInsertRequest(vectors=_address(rows), vector_count=rows.shape[0],
                                      dimensions=self.dims, vector_ids=_address(keys),
                                      flags=flags)
        self._ioctl(request, _abi.VEXFS_IOC_BATCH_INSERT, req,
                    f"{rows.shape[0]} vectors of {self.dims} dimensions")

    def _set_payloads(self, keys: np.ndarray, data: bytes, lengths: np.ndarray,
                      rows: Optional[np.ndarray], flags: int, request: str) -> None:
        # Sizes were checked by the caller, before anything was sent.
        concatenated = np.frombuffer(data, dtype=np.uint8) if data else None
        req = _abi.SetPayloadsRequest(
            ids=_address(keys),
            # NULL when every length is 0 (all removals): there is nothing to read.
            payloads=None if concatenated is None else _address(concatenated),
            payload_bytes=_address(lengths),
            vectors=None if rows is None else _address(rows),
            id_count=keys.size, dimensions=0 if rows is None else self.dims, flags=flags)
        with_vectors = "" if rows is None else f" with vectors of {self.dims} dimensions"
        self._ioctl(request, _abi.VEXFS_IOC_SET_PAYLOADS, req,
                    f"{keys.size} ids, {len(data)} bytes of payloads{with_vectors}")

    def _set_one_payload(self, ids: ArrayLike, payload: Optional[_json.Payload], flags: int,
                         request: str) -> None:
        keys = self._ids(ids)
        data = b"" if payload is None else _json.encode_payload(payload, "payload")
        self._check_request_bytes("ids", keys.size * (8 + 4 + len(data)))
        lengths = np.full(keys.size, len(data), dtype=np.uint32)
        self._set_payloads(keys, data * keys.size, lengths, None, flags, request)

    def _payload_bytes(self, keys: np.ndarray) -> List[Optional[bytes]]:
        """The stored payloads of ``keys`` as JSON bytes, None where an id has
        none: GET_PAYLOADS once to learn the lengths, once to fetch."""
        lengths = np.zeros(keys.size, dtype=np.uint32)
        for attempt in range(PAYLOAD_FETCH_TRIES):
            sizing = _abi.GetPayloadsRequest(ids=_address(keys), payload_bytes=_address(lengths),
                                             id_count=keys.size)
            self._ioctl("GET_PAYLOADS", _abi.VEXFS_IOC_GET_PAYLOADS, sizing,
                        f"{keys.size} ids, sizing")
            total_bytes = int(sizing.buffer_bytes)
            _check_lengths(lengths, total_bytes)
            if total_bytes == 0:
                return [None] * keys.size
            if total_bytes > _abi.REQUEST_BYTES_MAX:
                # More than one request may move: fetch the ids in two runs
                # (each payload is at most PAYLOAD_BYTES_MAX, so the first
                # run holds at least one id).
                cut = int(np.searchsorted(np.cumsum(lengths, dtype=np.uint64),
                                          _abi.REQUEST_BYTES_MAX, side="right"))
                return self._payload_bytes(keys[:cut]) + self._payload_bytes(keys[cut:])
            buffer = np.empty(total_bytes, dtype=np.uint8)
            fetch = _abi.GetPayloadsRequest(ids=_address(keys), buffer=_address(buffer),
                                            payload_bytes=_address(lengths),
                                            buffer_bytes=total_bytes, id_count=keys.size)
            try:
                self._ioctl("GET_PAYLOADS", _abi.VEXFS_IOC_GET_PAYLOADS, fetch,
                            f"{keys.size} ids, {total_bytes} bytes")
            except VexFSError as error:
                # Another writer grew the payloads since the sizing request
                # (ERANGE, nothing written): learn the size again.
                if error.errno == errno_codes.ERANGE and attempt + 1 < PAYLOAD_FETCH_TRIES:
                    continue
                raise
            written_bytes = int(fetch.buffer_bytes)
            _check_lengths(lengths, written_bytes)
            data = buffer[:written_bytes].tobytes()
            ends = np.cumsum(lengths, dtype=np.int64).tolist()
            starts = [0] + ends[:-1]
            return [data[start:end] if end > start else None
                    for start, end in zip(starts, ends)]
        raise AssertionError("unreachable: the last try returns or raises")

    def _search_one(self, query: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        # VECTOR_SEARCH writes result_count places; the rest keep the -1 / NaN padding.
        ids = np.full(k, -1, dtype=np.int64)
        distances = np.full(k, np.nan, dtype=np.float32)
        req = _abi.SearchRequest(query_vector=_address(query), dimensions=self.dims, k=k,
                                 search_type=self._search_type, results=_address(distances),
                                 result_ids=_address(ids))
        self._ioctl("VECTOR_SEARCH", _abi.VEXFS_IOC_VECTOR_SEARCH, req, f"k={k}, {self.metric}")
        assert req.result_count <= k, f"VECTOR_SEARCH wrote {req.result_count} results for k={k}"
        return ids, distances

    def _search_many(self, rows: np.ndarray, k: int, filter_bytes: Optional[bytes],
                     exact: bool) -> Tuple[np.ndarray, np.ndarray]:
        # The daemon writes VEXFS_NO_ID (all ones: -1 as int64) and NaN in the
        # places no vector filled, so the arrays take its answer as they are.
        ids = np.empty((rows.shape[0], k), dtype=np.int64)
        distances = np.empty((rows.shape[0], k), dtype=np.float32)
        query_bytes = self.dims * 4 + k * (4 + 8)
        filter_size = 0 if filter_bytes is None else len(filter_bytes)
        queries_per_request = min(_abi.SEARCH_QUERIES_MAX,
                                  (_abi.REQUEST_BYTES_MAX - filter_size) // query_bytes)
        # DIMENSIONS_MAX and SEARCH_K_MAX keep one query far below REQUEST_BYTES_MAX.
        assert queries_per_request >= 1
        sent = f"k={k}, {self.metric}"
        if filter_bytes is not None:
            sent += f", a filter of {filter_size} bytes"
        if exact:
            sent += ", exact"
        concatenated = None if filter_bytes is None else np.frombuffer(filter_bytes, np.uint8)
        for start in range(0, rows.shape[0], queries_per_request):
            stop = min(start + queries_per_request, rows.shape[0])
            req = _abi.FilteredSearchRequest(
                query_vector=_address(rows[start:stop]), results=_address(distances[start:stop]),
                result_ids=_address(ids[start:stop]),
                filter=None if concatenated is None else _address(concatenated),
                filter_bytes=filter_size, dimensions=self.dims, k=k,
                search_type=self._search_type, query_count=stop - start,
                flags=_abi.VEXFS_SEARCH_EXACT if exact else 0)
            self._ioctl("FILTERED_SEARCH", _abi.VEXFS_IOC_FILTERED_SEARCH, req,
                        f"{stop - start} queries, {sent}")
            assert req.result_count <= k, \
                f"FILTERED_SEARCH wrote {req.result_count} results for k={k}"
        return ids, distances

    def _result_payloads(self, ids: np.ndarray) -> List[List[Optional[_json.Payload]]]:
        found = np.unique(ids[ids != -1])
        stored = self._payload_bytes(found.astype(np.uint64)) if found.size else []
        by_id = dict(zip(found.tolist(), stored))
        # Decoded per place, so that two queries that found the same id do
        # not share one dict.
        return [[None if id == -1 else _json.decode_payload(by_id[id]) for id in row]
                for row in ids.tolist()]

    def _scroll(self, filter_bytes: Optional[bytes], limit: int,
                start_id: int) -> Tuple[np.ndarray, int, Optional[int]]:
        """SCROLL: (up to ``limit`` matching ids from ``start_id`` on, how
        many match from there on in all, where the next page starts or None).
        ``limit`` 0 only counts."""
        ids = np.empty(limit, dtype=np.uint64)
        concatenated = None if filter_bytes is None else np.frombuffer(filter_bytes, np.uint8)
        req = _abi.ScrollRequest(
            filter=None if concatenated is None else _address(concatenated),
            # NULL ids with limit 0 asks for the count alone.
            ids=_address(ids) if limit else None, start_id=start_id,
            filter_bytes=0 if filter_bytes is None else len(filter_bytes), limit=limit)
        what = "every id" if filter_bytes is None else f"a filter of {len(filter_bytes)} bytes"
        self._ioctl("SCROLL", _abi.VEXFS_IOC_SCROLL, req,
                    f"{what}, from id {start_id}, limit {limit}")
        count = int(req.id_count)
        assert count <= limit, f"SCROLL wrote {count} ids for limit {limit}"
        next_id = int(req.next_id) if req.more else None
        assert next_id is None or next_id > start_id, "SCROLL went backwards"
        # A short page would otherwise keep the whole limit's buffer alive.
        page = ids if count == limit else ids[:count].copy()
        return page, int(req.matching_count), next_id

    def _delete(self, keys: np.ndarray, request: str = "DELETE_VECTORS") -> int:
        req = _abi.DeleteRequest(ids=_address(keys), id_count=keys.size)
        self._ioctl(request, _abi.VEXFS_IOC_DELETE_VECTORS, req, f"{keys.size} ids")
        return int(req.deleted_count)

    # -- the API --------------------------------------------------------------

    def add(self, ids: ArrayLike, vectors: ArrayLike,
            payloads: Optional[Sequence[Optional[_json.Payload]]] = None) -> None:
        """Inserts new vectors; EEXIST (nothing stored) if an id is already
        stored or repeats in the batch. All or nothing.

        ``payloads``: one dict (or None: no payload) per id. The filesystem
        has no strict insert of payloads, so an add with payloads is two
        requests: BATCH_INSERT with NO_REPLACE (which refuses stored ids),
        then SET_PAYLOADS on the ids it just stored. If the second is
        refused, the ids are deleted again (they were new, so that restores
        what was stored) and its error is raised. Between the two requests
        another reader may see the vectors without their payloads.
        """
        rows = self._rows(vectors)
        keys = self._ids(ids, rows.shape[0])
        self._check_request_bytes("vectors", rows.nbytes + keys.nbytes)
        if payloads is None:
            self._insert(keys, rows, _abi.VEXFS_INSERT_NO_REPLACE, "BATCH_INSERT (add)")
            return
        data, lengths = _json.encode_payloads(payloads, keys)
        self._check_request_bytes("payloads", keys.size * (8 + 4) + len(data))
        self._insert(keys, rows, _abi.VEXFS_INSERT_NO_REPLACE, "BATCH_INSERT (add)")
        if not data:
            return  # every entry is None, and new ids have no payload
        try:
            self._set_payloads(keys, data, lengths, None, 0, "SET_PAYLOADS (add)")
        except VexFSError:
            self._delete(keys, "DELETE_VECTORS (undoing add)")
            raise

    def upsert(self, ids: ArrayLike, vectors: ArrayLike,
               payloads: Optional[Sequence[Optional[_json.Payload]]] = None) -> None:
        """Inserts vectors, replacing those stored under the same ids.
        All or nothing, in one request.

        Without ``payloads`` (BATCH_INSERT) the payloads stored under the
        ids stay. With them (one dict or None per id; SET_PAYLOADS with the
        vectors), each id's payload is replaced by its entry and None
        removes it, as Qdrant's upsert replaces a whole point.
        """
        rows = self._rows(vectors)
        keys = self._ids(ids, rows.shape[0])
        if payloads is None:
            self._check_request_bytes("vectors", rows.nbytes + keys.nbytes)
            self._insert(keys, rows, 0, "BATCH_INSERT (upsert)")
            return
        data, lengths = _json.encode_payloads(payloads, keys)
        self._check_request_bytes("vectors", rows.nbytes + keys.size * (8 + 4) + len(data))
        self._set_payloads(keys, data, lengths, rows, 0, "SET_PAYLOADS (upsert)")

    def set_payload(self, ids: ArrayLike, payload: _json.Payload) -> None:
        """Merges ``payload``'s top-level keys into the payload of each of
        ``ids`` (other keys stay; an id without one gets ``payload``), as
        Qdrant's set_payload. ENOENT (nothing changed) if an id is not stored."""
        self._set_one_payload(ids, payload, _abi.VEXFS_PAYLOAD_MERGE, "SET_PAYLOADS (merge)")

    def overwrite_payload(self, ids: ArrayLike, payload: _json.Payload) -> None:
        """Replaces the payload of each of ``ids`` by ``payload``, as Qdrant's
        overwrite_payload. ENOENT (nothing changed) if an id is not stored."""
        self._set_one_payload(ids, payload, 0, "SET_PAYLOADS (overwrite)")

    def clear_payload(self, ids: ArrayLike) -> None:
        """Removes the payloads of ``ids``; their vectors stay. ENOENT
        (nothing changed) if an id is not stored."""
        self._set_one_payload(ids, None, 0, "SET_PAYLOADS (clear)")

    def search(self, queries: ArrayLike, k: int = 10, filter: Optional[_json.Filter] = None,
               exact: bool = False, with_payload: bool = False) -> Union[
                   Tuple[np.ndarray, np.ndarray],
                   Tuple[np.ndarray, np.ndarray, list]]:
        """The ``k`` nearest stored vectors of each query, best first.

        One query (shape ``(dims,)``) gives ``(ids, distances)`` of shape
        ``(k,)``; a batch ``(n, dims)`` gives shape ``(n, k)``. Ids are
        int64 with -1 (and distance NaN) where fewer than ``k`` vectors are
        stored or match, as faiss does. Distances as :attr:`metric` defines
        them.

        ``filter``: a Qdrant filter (a dict, or its JSON as str or bytes);
        only vectors whose payload matches are ranked, and the answer is the
        ``k`` best of those. ``exact``: rank by an exact scan whatever the
        index (Qdrant's ``exact``). A batch, a filter or ``exact`` is one
        FILTERED_SEARCH request per 1,024 queries (SEARCH_QUERIES_MAX); one
        query without them is one VECTOR_SEARCH.

        ``with_payload``: a third element, the payloads of the results as
        dicts (None for -1 and for ids without one), a list of ``k`` per
        query (one list for one query). Fetched by a second request: an id
        deleted in between makes it fail with ENOENT.
        """
        if not 1 <= k <= _abi.SEARCH_K_MAX:
            raise ValueError(f"k: {k} is not in 1..={_abi.SEARCH_K_MAX}")
        single = np.ndim(queries) == 1
        rows = self._rows(queries, "queries")
        filter_bytes = _json.encode_filter(filter)
        if single and filter_bytes is None and not exact:
            ids, distances = self._search_one(rows[0], k)
            ids, distances = ids.reshape(1, k), distances.reshape(1, k)
        else:
            ids, distances = self._search_many(rows, k, filter_bytes, exact)
        if with_payload:
            payloads = self._result_payloads(ids)
            if single:
                return ids[0], distances[0], payloads[0]
            return ids, distances, payloads
        if single:
            return ids[0], distances[0]
        return ids, distances

    def get(self, ids: ArrayLike, with_payload: bool = False) -> Union[
            np.ndarray, Tuple[np.ndarray, List[Optional[_json.Payload]]]]:
        """The stored vectors of ``ids``, shape ``(len(ids), dims)``; ENOENT
        (VexFSError) if any id is not stored. ``with_payload``: ``(vectors,
        payloads)``, the payloads as by :meth:`payloads` (a second request)."""
        keys = self._ids(ids)
        out = np.empty((keys.size, self.dims), dtype=np.float32)
        req = _abi.GetVectorsRequest(ids=_address(keys), vectors=_address(out),
                                     id_count=keys.size, dimensions=self.dims)
        self._ioctl("GET_VECTORS", _abi.VEXFS_IOC_GET_VECTORS, req, f"{keys.size} ids")
        if with_payload:
            return out, self.payloads(keys)
        return out

    def payloads(self, ids: ArrayLike) -> List[Optional[_json.Payload]]:
        """The payloads of ``ids`` as dicts, in that order; None for an id
        without one. ENOENT (VexFSError) if an id is not stored."""
        return [_json.decode_payload(data) for data in self._payload_bytes(self._ids(ids))]

    def scroll(self, filter: Optional[_json.Filter] = None, limit: int = 100,
               offset: Optional[int] = None, with_payload: bool = False) -> Union[
                   Tuple[np.ndarray, Optional[int]],
                   Tuple[np.ndarray, Optional[int], List[Optional[_json.Payload]]]]:
        """One page of the stored ids whose payload matches ``filter`` (every
        stored id when None), ascending: ``(ids, next_offset)``, ids a uint64
        array of at most ``limit``, ``next_offset`` the id to pass as
        ``offset`` for the next page, None after the last (Qdrant's scroll).
        ``with_payload``: a third element, their payloads (a second request)."""
        if not 1 <= limit <= _abi.BATCH_VECTORS_MAX:
            raise ValueError(f"limit: {limit} is not in 1..={_abi.BATCH_VECTORS_MAX}")
        start_id = 0 if offset is None else offset
        if not isinstance(start_id, (int, np.integer)) or not 0 <= start_id <= _abi.VEXFS_NO_ID:
            raise ValueError(f"offset: {offset!r} is not an id (an integer in 0..=2**64 - 1)")
        page, _, next_id = self._scroll(_json.encode_filter(filter), limit, int(start_id))
        if with_payload:
            stored = self._payload_bytes(page) if page.size else []
            return page, next_id, [_json.decode_payload(data) for data in stored]
        return page, next_id

    def delete(self, ids: Optional[ArrayLike] = None,
               filter: Optional[_json.Filter] = None) -> int:
        """Deletes ``ids``, or the ids whose payload matches ``filter``;
        returns how many were stored and are gone. Ids not stored are
        skipped.

        With ``filter``: the matching ids are scrolled and deleted a page of
        up to BATCH_VECTORS_MAX at a time, so this is not atomic against
        other writers: an id that starts to match behind the current page
        is not deleted, and each page is its own request."""
        if (ids is None) == (filter is None):
            raise ValueError("ids, filter: give exactly one of them")
        if ids is not None:
            return self._delete(self._ids(ids))
        filter_bytes = _json.encode_filter(filter)
        deleted = 0
        start_id: Optional[int] = 0
        while start_id is not None:
            page, _, start_id = self._scroll(filter_bytes, _abi.BATCH_VECTORS_MAX, start_id)
            if page.size:
                deleted += self._delete(page, "DELETE_VECTORS (filter)")
        return deleted

    def count(self, filter: Optional[_json.Filter] = None) -> int:
        """How many vectors are stored; with ``filter``, how many of them
        have a payload that matches it (one SCROLL that only counts)."""
        filter_bytes = _json.encode_filter(filter)
        if filter_bytes is None:
            return int(self._meta().vector_count)
        return self._scroll(filter_bytes, 0, 0)[1]

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
