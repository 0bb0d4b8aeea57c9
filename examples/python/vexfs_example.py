#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The VexFS vector ioctls from Python, standard library only.

    python3 vexfs_example.py FILE

FILE is a file on a mounted VexFS. The program makes it a vector file of 16
float32 dimensions, inserts 200 vectors with ids 1000.., fsyncs, reads the
metadata back, searches (cosine, k=5) with a stored vector as the query,
fetches that vector by id, deletes it and searches again. Exit status 0 when
every step did what docs/VECTORS.md says, 1 with a message otherwise.

The structures mirror uapi/include/vexfs_v2_uapi.h. Pointers inside them are
the addresses of ctypes arrays (ctypes.addressof); the structure itself is
passed to fcntl.ioctl as a mutable buffer, so the fields the daemon writes
(vector_count, result_count, ...) come back in it.
"""

import array
import ctypes
import errno
import fcntl
import os
import sys

# --- The ABI (vexfs_v2_uapi.h) ---------------------------------------------

VEXFS_VECTOR_FLOAT32 = 0x01
VEXFS_STORAGE_DENSE = 0x00
VEXFS_COMPRESS_NONE = 0x00
VEXFS_SEARCH_EUCLIDEAN = 0x00
VEXFS_SEARCH_COSINE = 0x01
VEXFS_SEARCH_DOT_PRODUCT = 0x02


class VectorFileInfo(ctypes.Structure):
    """struct vexfs_vector_file_info, 40 bytes."""

    _fields_ = [
        ("dimensions", ctypes.c_uint32),
        ("element_type", ctypes.c_uint32),
        ("vector_count", ctypes.c_uint32),
        ("storage_format", ctypes.c_uint32),
        ("data_offset", ctypes.c_uint64),
        ("index_offset", ctypes.c_uint64),
        ("compression_type", ctypes.c_uint32),
        ("alignment_bytes", ctypes.c_uint32),
    ]


class SearchRequest(ctypes.Structure):
    """struct vexfs_vector_search_request, 48 bytes."""

    _fields_ = [
        ("query_vector", ctypes.c_void_p),
        ("dimensions", ctypes.c_uint32),
        ("k", ctypes.c_uint32),
        ("search_type", ctypes.c_uint32),
        ("results", ctypes.c_void_p),
        ("result_ids", ctypes.c_void_p),
        ("result_count", ctypes.c_uint32),
    ]


class BatchInsertRequest(ctypes.Structure):
    """struct vexfs_batch_insert_request, 32 bytes."""

    _fields_ = [
        ("vectors", ctypes.c_void_p),
        ("vector_count", ctypes.c_uint32),
        ("dimensions", ctypes.c_uint32),
        ("vector_ids", ctypes.c_void_p),
        ("flags", ctypes.c_uint32),
    ]


class DeleteRequest(ctypes.Structure):
    """struct vexfs_delete_request, 24 bytes."""

    _fields_ = [
        ("ids", ctypes.c_void_p),
        ("id_count", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("deleted_count", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class GetVectorsRequest(ctypes.Structure):
    """struct vexfs_get_vectors_request, 32 bytes."""

    _fields_ = [
        ("ids", ctypes.c_void_p),
        ("vectors", ctypes.c_void_p),
        ("id_count", ctypes.c_uint32),
        ("dimensions", ctypes.c_uint32),
        ("found_count", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    ]


# The request numbers as <asm-generic/ioctl.h> builds them.
_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction, nr, struct_type):
    return (direction << 30) | (ctypes.sizeof(struct_type) << 16) | (ord("V") << 8) | nr


def _iow(nr, struct_type):
    return _ioc(_IOC_WRITE, nr, struct_type)


def _ior(nr, struct_type):
    return _ioc(_IOC_READ, nr, struct_type)


def _iowr(nr, struct_type):
    return _ioc(_IOC_READ | _IOC_WRITE, nr, struct_type)


VEXFS_IOC_SET_VECTOR_META = _iow(1, VectorFileInfo)
VEXFS_IOC_GET_VECTOR_META = _ior(2, VectorFileInfo)
VEXFS_IOC_VECTOR_SEARCH = _iowr(3, SearchRequest)
VEXFS_IOC_BATCH_INSERT = _iow(4, BatchInsertRequest)
VEXFS_IOC_DELETE_VECTORS = _iowr(5, DeleteRequest)
VEXFS_IOC_GET_VECTORS = _iowr(6, GetVectorsRequest)

# The header checks the same at compile time; a mismatch here is a bug in this file.
for _struct_type, _size in [
    (VectorFileInfo, 40),
    (SearchRequest, 48),
    (BatchInsertRequest, 32),
    (DeleteRequest, 24),
    (GetVectorsRequest, 32),
]:
    assert ctypes.sizeof(_struct_type) == _size, _struct_type.__name__
assert VEXFS_IOC_SET_VECTOR_META == 0x40285601
assert VEXFS_IOC_GET_VECTOR_META == 0x80285602
assert VEXFS_IOC_VECTOR_SEARCH == 0xC0305603
assert VEXFS_IOC_BATCH_INSERT == 0x40205604
assert VEXFS_IOC_DELETE_VECTORS == 0xC0185605
assert VEXFS_IOC_GET_VECTORS == 0xC0205606

# --- The example -------------------------------------------------------------

DIMENSIONS = 16
VECTOR_COUNT = 200
ID_FIRST = 1000
SEARCH_K = 5
PROBE_INDEX = 42
SELF_DISTANCE_EPSILON = 1e-3
LCG_SEED = 0x5645584653  # "VEXFS"


class ExampleError(Exception):
    pass


def ioctl(fd, request, name, buffer):
    """One ioctl; the daemon's answers land in `buffer`."""
    try:
        fcntl.ioctl(fd, request, buffer, True)
    except OSError as error:
        code = errno.errorcode.get(error.errno, "?")
        raise ExampleError(f"{name}: {code}: {error.strerror}") from error


def generate_vectors(count, dimensions):
    """count x dimensions floats in [-1, 1) from a 64-bit LCG: the same on every run."""
    state = LCG_SEED
    values = array.array("f")
    for _ in range(count * dimensions):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        values.append((state >> 40) / float(1 << 23) - 1.0)
    return values


def row(vectors, index):
    """A ctypes view of vector `index` (shares memory with `vectors`)."""
    row_type = ctypes.c_float * DIMENSIONS
    return row_type.from_buffer(vectors, index * DIMENSIONS * vectors.itemsize)


def set_meta(fd):
    # vector_count is not 0: on a file that holds vectors of another layout,
    # 0 would drop them; any other value makes the request fail with EBUSY.
    info = VectorFileInfo(
        dimensions=DIMENSIONS,
        element_type=VEXFS_VECTOR_FLOAT32,
        vector_count=VECTOR_COUNT,
        storage_format=VEXFS_STORAGE_DENSE,
        compression_type=VEXFS_COMPRESS_NONE,
    )
    ioctl(fd, VEXFS_IOC_SET_VECTOR_META, "VEXFS_IOC_SET_VECTOR_META", info)


def get_meta(fd):
    info = VectorFileInfo()
    ioctl(fd, VEXFS_IOC_GET_VECTOR_META, "VEXFS_IOC_GET_VECTOR_META", info)
    print(
        f"meta: dims={info.dimensions} count={info.vector_count} "
        f"data_offset={info.data_offset} index_offset={info.index_offset}"
    )
    return info


def insert(fd, vectors):
    data = (ctypes.c_float * len(vectors)).from_buffer(vectors)
    ids = (ctypes.c_uint64 * VECTOR_COUNT)(*range(ID_FIRST, ID_FIRST + VECTOR_COUNT))
    request = BatchInsertRequest(
        vectors=ctypes.addressof(data),
        vector_count=VECTOR_COUNT,
        dimensions=DIMENSIONS,
        vector_ids=ctypes.addressof(ids),
        flags=0,
    )
    ioctl(fd, VEXFS_IOC_BATCH_INSERT, "VEXFS_IOC_BATCH_INSERT", request)
    print(f"inserted {VECTOR_COUNT} vectors")


def search(fd, query, search_type):
    """[(id, distance)], best first."""
    distances = (ctypes.c_float * SEARCH_K)()
    ids = (ctypes.c_uint64 * SEARCH_K)()
    request = SearchRequest(
        query_vector=ctypes.addressof(query),
        dimensions=DIMENSIONS,
        k=SEARCH_K,
        search_type=search_type,
        results=ctypes.addressof(distances),
        result_ids=ctypes.addressof(ids),
    )
    ioctl(fd, VEXFS_IOC_VECTOR_SEARCH, "VEXFS_IOC_VECTOR_SEARCH", request)
    if request.result_count > SEARCH_K:
        raise ExampleError(f"search: result_count {request.result_count} above k")
    results = [(ids[rank], distances[rank]) for rank in range(request.result_count)]
    for rank, (found_id, distance) in enumerate(results):
        print(f"cosine {rank} {found_id} {distance:.6f}")
    return results


def get_vector(fd, vector_id):
    fetched = (ctypes.c_float * DIMENSIONS)()
    ids = (ctypes.c_uint64 * 1)(vector_id)
    request = GetVectorsRequest(
        ids=ctypes.addressof(ids),
        vectors=ctypes.addressof(fetched),
        id_count=1,
        dimensions=DIMENSIONS,
    )
    ioctl(fd, VEXFS_IOC_GET_VECTORS, "VEXFS_IOC_GET_VECTORS", request)
    if request.found_count != 1:
        raise ExampleError(f"get_vectors: found_count {request.found_count}, expected 1")
    return fetched


def delete(fd, vector_id):
    ids = (ctypes.c_uint64 * 1)(vector_id)
    request = DeleteRequest(ids=ctypes.addressof(ids), id_count=1)
    ioctl(fd, VEXFS_IOC_DELETE_VECTORS, "VEXFS_IOC_DELETE_VECTORS", request)
    print(f"delete: id {vector_id} deleted_count={request.deleted_count}")
    if request.deleted_count != 1:
        raise ExampleError(f"delete: deleted_count {request.deleted_count}, expected 1")


def check_meta(info, count):
    if info.dimensions != DIMENSIONS or info.vector_count != count:
        raise ExampleError(
            f"meta: expected dims={DIMENSIONS} count={count}, "
            f"got dims={info.dimensions} count={info.vector_count}"
        )


def run(path):
    vectors = generate_vectors(VECTOR_COUNT, DIMENSIONS)
    probe = row(vectors, PROBE_INDEX)
    probe_id = ID_FIRST + PROBE_INDEX

    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        set_meta(fd)
        insert(fd, vectors)
        os.fsync(fd)
        check_meta(get_meta(fd), VECTOR_COUNT)

        print(f"metric rank id distance (query: vector #{PROBE_INDEX}, id {probe_id})")
        results = search(fd, probe, VEXFS_SEARCH_COSINE)
        if not results or results[0][0] != probe_id or abs(results[0][1]) > SELF_DISTANCE_EPSILON:
            raise ExampleError(f"search: expected id {probe_id} at distance ~0 first")

        if bytes(get_vector(fd, probe_id)) != bytes(probe):
            raise ExampleError(f"get_vectors: id {probe_id} differs from the inserted vector")
        print(f"get_vectors: id {probe_id} matches the inserted bytes")

        delete(fd, probe_id)
        print(f"metric rank id distance (query: vector #{PROBE_INDEX}, deleted)")
        results = search(fd, probe, VEXFS_SEARCH_COSINE)
        if any(found_id == probe_id for found_id, _ in results):
            raise ExampleError(f"search: deleted id {probe_id} still found")
        os.fsync(fd)
        check_meta(get_meta(fd), VECTOR_COUNT - 1)
    finally:
        os.close(fd)


def main(argv):
    if len(argv) != 2:
        print("usage: python3 vexfs_example.py FILE", file=sys.stderr)
        return 2
    try:
        run(argv[1])
    except ExampleError as error:
        print(f"vexfs_example.py: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"vexfs_example.py: {error}", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
