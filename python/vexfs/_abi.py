# SPDX-License-Identifier: Apache-2.0
"""The VexFS v2 ioctl ABI (uapi/include/vexfs_v2_uapi.h) as ctypes.

tests/test_abi.py compiles a C program against the header and compares
every struct size, field offset, request number and constant with these.
"""

import ctypes

VEXFS_VECTOR_FLOAT32 = 0x01
VEXFS_STORAGE_DENSE = 0x00
VEXFS_COMPRESS_NONE = 0x00
VEXFS_SEARCH_EUCLIDEAN = 0x00
VEXFS_SEARCH_COSINE = 0x01
VEXFS_SEARCH_DOT_PRODUCT = 0x02
VEXFS_INSERT_OVERWRITE = 0x01
VEXFS_INSERT_APPEND = 0x02
VEXFS_INSERT_VALIDATE = 0x04
VEXFS_INSERT_NO_REPLACE = 0x08
# SET_PAYLOADS: merge the given top-level keys into the stored object.
VEXFS_PAYLOAD_MERGE = 0x01
# FILTERED_SEARCH: scan every matching vector exactly, whatever the index.
VEXFS_SEARCH_EXACT = 0x01
# The id FILTERED_SEARCH writes to a result place no vector filled; read
# as int64 it is -1, the padding id faiss uses.
VEXFS_NO_ID = 0xFFFF_FFFF_FFFF_FFFF

# Limits the daemon enforces (uapi/src/limits.rs); checked here first so
# the error names the argument.
DIMENSIONS_MAX = 65536
BATCH_VECTORS_MAX = 1_000_000
SEARCH_K_MAX = 10_000
REQUEST_BYTES_MAX = 256 << 20
PAYLOAD_BYTES_MAX = 65536
FILTER_BYTES_MAX = 65536
SEARCH_QUERIES_MAX = 1024


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


class SetPayloadsRequest(ctypes.Structure):
    """struct vexfs_set_payloads_request, 48 bytes."""

    _fields_ = [
        ("ids", ctypes.c_void_p),
        ("payloads", ctypes.c_void_p),
        ("payload_bytes", ctypes.c_void_p),
        ("vectors", ctypes.c_void_p),
        ("id_count", ctypes.c_uint32),
        ("dimensions", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class GetPayloadsRequest(ctypes.Structure):
    """struct vexfs_get_payloads_request, 40 bytes."""

    _fields_ = [
        ("ids", ctypes.c_void_p),
        ("buffer", ctypes.c_void_p),
        ("payload_bytes", ctypes.c_void_p),
        ("buffer_bytes", ctypes.c_uint64),
        ("id_count", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    ]


class FilteredSearchRequest(ctypes.Structure):
    """struct vexfs_filtered_search_request, 64 bytes."""

    _fields_ = [
        ("query_vector", ctypes.c_void_p),
        ("results", ctypes.c_void_p),
        ("result_ids", ctypes.c_void_p),
        ("filter", ctypes.c_void_p),
        ("filter_bytes", ctypes.c_uint32),
        ("dimensions", ctypes.c_uint32),
        ("k", ctypes.c_uint32),
        ("search_type", ctypes.c_uint32),
        ("query_count", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("result_count", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class ScrollRequest(ctypes.Structure):
    """struct vexfs_scroll_request, 56 bytes."""

    _fields_ = [
        ("filter", ctypes.c_void_p),
        ("ids", ctypes.c_void_p),
        ("start_id", ctypes.c_uint64),
        ("next_id", ctypes.c_uint64),
        ("filter_bytes", ctypes.c_uint32),
        ("limit", ctypes.c_uint32),
        ("id_count", ctypes.c_uint32),
        ("matching_count", ctypes.c_uint32),
        ("more", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    ]


_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, nr: int, struct_type: type) -> int:
    # As <asm-generic/ioctl.h> builds request numbers.
    return (direction << 30) | (ctypes.sizeof(struct_type) << 16) | (ord("V") << 8) | nr


VEXFS_IOC_SET_VECTOR_META = _ioc(_IOC_WRITE, 1, VectorFileInfo)
VEXFS_IOC_GET_VECTOR_META = _ioc(_IOC_READ, 2, VectorFileInfo)
VEXFS_IOC_VECTOR_SEARCH = _ioc(_IOC_READ | _IOC_WRITE, 3, SearchRequest)
VEXFS_IOC_BATCH_INSERT = _ioc(_IOC_WRITE, 4, BatchInsertRequest)
VEXFS_IOC_DELETE_VECTORS = _ioc(_IOC_READ | _IOC_WRITE, 5, DeleteRequest)
VEXFS_IOC_GET_VECTORS = _ioc(_IOC_READ | _IOC_WRITE, 6, GetVectorsRequest)
VEXFS_IOC_SET_PAYLOADS = _ioc(_IOC_WRITE, 7, SetPayloadsRequest)
VEXFS_IOC_GET_PAYLOADS = _ioc(_IOC_READ | _IOC_WRITE, 8, GetPayloadsRequest)
VEXFS_IOC_FILTERED_SEARCH = _ioc(_IOC_READ | _IOC_WRITE, 9, FilteredSearchRequest)
# 27, not 10: numbers 10..26 belonged to old experimental VexFS builds.
VEXFS_IOC_SCROLL = _ioc(_IOC_READ | _IOC_WRITE, 27, ScrollRequest)

STRUCTS = {
    "vexfs_vector_file_info": VectorFileInfo,
    "vexfs_vector_search_request": SearchRequest,
    "vexfs_batch_insert_request": BatchInsertRequest,
    "vexfs_delete_request": DeleteRequest,
    "vexfs_get_vectors_request": GetVectorsRequest,
    "vexfs_set_payloads_request": SetPayloadsRequest,
    "vexfs_get_payloads_request": GetPayloadsRequest,
    "vexfs_filtered_search_request": FilteredSearchRequest,
    "vexfs_scroll_request": ScrollRequest,
}
REQUESTS = {
    "VEXFS_IOC_SET_VECTOR_META": VEXFS_IOC_SET_VECTOR_META,
    "VEXFS_IOC_GET_VECTOR_META": VEXFS_IOC_GET_VECTOR_META,
    "VEXFS_IOC_VECTOR_SEARCH": VEXFS_IOC_VECTOR_SEARCH,
    "VEXFS_IOC_BATCH_INSERT": VEXFS_IOC_BATCH_INSERT,
    "VEXFS_IOC_DELETE_VECTORS": VEXFS_IOC_DELETE_VECTORS,
    "VEXFS_IOC_GET_VECTORS": VEXFS_IOC_GET_VECTORS,
    "VEXFS_IOC_SET_PAYLOADS": VEXFS_IOC_SET_PAYLOADS,
    "VEXFS_IOC_GET_PAYLOADS": VEXFS_IOC_GET_PAYLOADS,
    "VEXFS_IOC_FILTERED_SEARCH": VEXFS_IOC_FILTERED_SEARCH,
    "VEXFS_IOC_SCROLL": VEXFS_IOC_SCROLL,
}
# Every constant above under its name in the header.
CONSTANTS = {
    "VEXFS_VECTOR_FLOAT32": VEXFS_VECTOR_FLOAT32,
    "VEXFS_STORAGE_DENSE": VEXFS_STORAGE_DENSE,
    "VEXFS_COMPRESS_NONE": VEXFS_COMPRESS_NONE,
    "VEXFS_SEARCH_EUCLIDEAN": VEXFS_SEARCH_EUCLIDEAN,
    "VEXFS_SEARCH_COSINE": VEXFS_SEARCH_COSINE,
    "VEXFS_SEARCH_DOT_PRODUCT": VEXFS_SEARCH_DOT_PRODUCT,
    "VEXFS_INSERT_OVERWRITE": VEXFS_INSERT_OVERWRITE,
    "VEXFS_INSERT_APPEND": VEXFS_INSERT_APPEND,
    "VEXFS_INSERT_VALIDATE": VEXFS_INSERT_VALIDATE,
    "VEXFS_INSERT_NO_REPLACE": VEXFS_INSERT_NO_REPLACE,
    "VEXFS_PAYLOAD_MERGE": VEXFS_PAYLOAD_MERGE,
    "VEXFS_SEARCH_EXACT": VEXFS_SEARCH_EXACT,
    "VEXFS_NO_ID": VEXFS_NO_ID,
    "VEXFS_DIMENSIONS_MAX": DIMENSIONS_MAX,
    "VEXFS_BATCH_VECTORS_MAX": BATCH_VECTORS_MAX,
    "VEXFS_SEARCH_K_MAX": SEARCH_K_MAX,
    "VEXFS_REQUEST_BYTES_MAX": REQUEST_BYTES_MAX,
    "VEXFS_PAYLOAD_BYTES_MAX": PAYLOAD_BYTES_MAX,
    "VEXFS_FILTER_BYTES_MAX": FILTER_BYTES_MAX,
    "VEXFS_SEARCH_QUERIES_MAX": SEARCH_QUERIES_MAX,
}
