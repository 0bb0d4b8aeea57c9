/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vexfs_v2_uapi.h - the VexFS v2 vector ioctl interface.
 *
 * Programs open a regular file inside a mounted VexFS and call these ioctls
 * on its descriptor. The layouts below are the ABI: sizes and every field
 * offset are fixed on 64-bit Linux and checked at compile time, here and in
 * the Rust mirror (uapi/src/abi.rs).
 *
 * Two generations of programs exist. Older ones pass vectors as `float *`
 * (.vectors, .query_vector, .results); newer ones pass the IEEE 754 bit
 * patterns as `__u32 *` (.vectors_bits, .query_vector_bits, .results_bits).
 * Each pointer sits in an anonymous union, so both spellings name the same
 * eight bytes and either kind of program compiles unmodified.
 *
 * In user space the fixed-width types are the <stdint.h> ones (as the
 * original header had them), so `uint64_t ids[n]` and `__u64 ids[n]` both
 * fit `.vector_ids`. Kernel-style code (-D__KERNEL__) gets <linux/types.h>
 * and no floating-point helpers.
 */
#ifndef _VEXFS_V2_UAPI_H
#define _VEXFS_V2_UAPI_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/ioctl.h>
#define VEXFS_U32_T __u32
#define VEXFS_U64_T __u64
#else
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
/*
 * The original header defined these names for user space, and programs use
 * them. <linux/types.h> defines them too (as unsigned long long): when it
 * was included first we keep its definitions instead of clashing with them.
 */
#ifndef _LINUX_TYPES_H
#ifndef VEXFS_UAPI_HAVE_KERNEL_TYPEDEFS
#define VEXFS_UAPI_HAVE_KERNEL_TYPEDEFS
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif
#endif
#define VEXFS_U32_T uint32_t
#define VEXFS_U64_T uint64_t
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this interface. */
#define VEXFS_V2_MAJOR_VERSION 2
#define VEXFS_V2_MINOR_VERSION 0
#define VEXFS_V2_PATCH_VERSION 0

/* "VEX2": the on-disk superblock magic and the interface's identity. */
#define VEXFS_V2_MAGIC 0x56455832

/* Element types (vexfs_vector_file_info.element_type). */
#define VEXFS_VECTOR_FLOAT32 0x01
#define VEXFS_VECTOR_FLOAT16 0x02
#define VEXFS_VECTOR_INT8 0x03
#define VEXFS_VECTOR_BINARY 0x04

/* Distance metrics (vexfs_vector_search_request.search_type). */
#define VEXFS_SEARCH_EUCLIDEAN 0x00
#define VEXFS_SEARCH_COSINE 0x01
#define VEXFS_SEARCH_DOT_PRODUCT 0x02

/* Storage formats (vexfs_vector_file_info.storage_format). */
#define VEXFS_STORAGE_DENSE 0x00
#define VEXFS_STORAGE_SPARSE 0x01
#define VEXFS_STORAGE_COMPRESSED 0x02

/* Compression (vexfs_vector_file_info.compression_type). */
#define VEXFS_COMPRESS_NONE 0x00
#define VEXFS_COMPRESS_LZ4 0x01
#define VEXFS_COMPRESS_ZSTD 0x02

/* Insert flags (vexfs_batch_insert_request.flags). */
#define VEXFS_INSERT_OVERWRITE 0x01
#define VEXFS_INSERT_APPEND 0x02
#define VEXFS_INSERT_VALIDATE 0x04
/* Strict insert: an id the file already holds is refused with EEXIST
 * (without it, such an id's vector is replaced). Not with OVERWRITE. */
#define VEXFS_INSERT_NO_REPLACE 0x08

/* SET_PAYLOADS flag (vexfs_set_payloads_request.flags): merge the given keys
 * into the stored object instead of replacing the whole object. */
#define VEXFS_PAYLOAD_MERGE 0x01
/* FILTERED_SEARCH flag (vexfs_filtered_search_request.flags, not
 * .search_type): scan every stored vector exactly instead of using the index. */
#define VEXFS_SEARCH_EXACT 0x01
/* The id of a result place no vector filled (its distance is a NaN). */
#define VEXFS_NO_ID 0xFFFFFFFFFFFFFFFFULL

/* Limits every request is checked against (uapi/src/limits.rs enforces them). */
#define VEXFS_DIMENSIONS_MAX 65536
#define VEXFS_BATCH_VECTORS_MAX 1000000
#define VEXFS_SEARCH_K_MAX 10000
/* Bytes of one payload (a JSON object, UTF-8) and of one filter (JSON). */
#define VEXFS_PAYLOAD_BYTES_MAX 65536
#define VEXFS_FILTER_BYTES_MAX 65536
/* Queries in one FILTERED_SEARCH. */
#define VEXFS_SEARCH_QUERIES_MAX 1024
/* Bytes one request may move between the caller and the daemon (vectors
 * plus ids in, or distances plus ids out); larger requests get E2BIG. */
#define VEXFS_REQUEST_BYTES_MAX (256u << 20)

#define VEXFS_IOC_MAGIC 'V'

/* 40 bytes. Metadata of a vector file. */
struct vexfs_vector_file_info {
	VEXFS_U32_T dimensions;       /* 0:  elements per vector */
	VEXFS_U32_T element_type;     /* 4:  VEXFS_VECTOR_* */
	VEXFS_U32_T vector_count;     /* 8:  vectors stored (out) */
	VEXFS_U32_T storage_format;   /* 12: VEXFS_STORAGE_* */
	VEXFS_U64_T data_offset;      /* 16: where vector data starts in the file (out) */
	VEXFS_U64_T index_offset;     /* 24: where the index starts in the file (out) */
	VEXFS_U32_T compression_type; /* 32: VEXFS_COMPRESS_* */
	VEXFS_U32_T alignment_bytes;  /* 36: alignment of vector data */
};

/* 48 bytes. A k-nearest-neighbour query. */
struct vexfs_vector_search_request {
	union { /* 0: in: dimensions elements */
		float *query_vector;
		VEXFS_U32_T *query_vector_bits;
	};
	VEXFS_U32_T dimensions;  /* 8 */
	VEXFS_U32_T k;           /* 12: 1..VEXFS_SEARCH_K_MAX */
	VEXFS_U32_T search_type; /* 16: VEXFS_SEARCH_* */
	union { /* 24: out: k distances, best first */
		float *results;
		VEXFS_U32_T *results_bits;
	};
	VEXFS_U64_T *result_ids;  /* 32: out: k ids, matching results */
	VEXFS_U32_T result_count; /* 40: out: how many results were written */
};

/* 32 bytes. Vectors to add to a vector file. */
struct vexfs_batch_insert_request {
	union { /* 0: in: vector_count * dimensions elements */
		float *vectors;
		VEXFS_U32_T *vectors_bits;
	};
	VEXFS_U32_T vector_count; /* 8:  1..VEXFS_BATCH_VECTORS_MAX */
	VEXFS_U32_T dimensions;   /* 12 */
	VEXFS_U64_T *vector_ids;  /* 16: in, optional: NULL = the file assigns ids */
	VEXFS_U32_T flags;        /* 24: VEXFS_INSERT_* */
};

/* 24 bytes. Ids to delete from a vector file (VexFS extension, nr 5). */
struct vexfs_delete_request {
	VEXFS_U64_T *ids;          /* 0:  in: id_count ids */
	VEXFS_U32_T id_count;      /* 8:  1..VEXFS_BATCH_VECTORS_MAX */
	VEXFS_U32_T flags;         /* 12: must be 0 */
	VEXFS_U32_T deleted_count; /* 16: out: ids that were present and are gone */
	VEXFS_U32_T reserved;      /* 20: must be 0 */
};

/* 32 bytes. Fetch stored vectors by id (VexFS extension, nr 6). */
struct vexfs_get_vectors_request {
	VEXFS_U64_T *ids;          /* 0:  in: id_count ids */
	union { /* 8: out: id_count * dimensions elements, in the order of ids */
		float *vectors;
		VEXFS_U32_T *vectors_bits;
	};
	VEXFS_U32_T id_count;      /* 16: 1..VEXFS_BATCH_VECTORS_MAX */
	VEXFS_U32_T dimensions;    /* 20: must equal the file's */
	VEXFS_U32_T found_count;   /* 24: out: id_count on success */
	VEXFS_U32_T flags;         /* 28: must be 0 */
};

/* 48 bytes. Set or remove the payloads of ids, optionally upserting their
 * vectors in the same step, all or nothing (VexFS extension, nr 7). */
struct vexfs_set_payloads_request {
	VEXFS_U64_T *ids;            /* 0:  in: id_count ids */
	const char *payloads;        /* 8:  in: the payloads concatenated, each a JSON
				      *     object (UTF-8); NULL only when every length is 0 */
	VEXFS_U32_T *payload_bytes;  /* 16: in: id_count lengths; 0 = remove that id's payload */
	union { /* 24: in, optional: NULL = payloads only (every id must be stored
		 * already); else id_count * dimensions elements, upserted with them */
		float *vectors;
		VEXFS_U32_T *vectors_bits;
	};
	VEXFS_U32_T id_count;        /* 32: 1..VEXFS_BATCH_VECTORS_MAX */
	VEXFS_U32_T dimensions;      /* 36: the file's when vectors != NULL, else 0 */
	VEXFS_U32_T flags;           /* 40: VEXFS_PAYLOAD_MERGE or 0 */
	VEXFS_U32_T reserved;        /* 44: must be 0 */
};

/* 40 bytes. Fetch the payloads of ids (VexFS extension, nr 8). A buffer too
 * small gets ERANGE and nothing written: call with buffer NULL to learn the size. */
struct vexfs_get_payloads_request {
	VEXFS_U64_T *ids;            /* 0:  in: id_count ids, each stored (else ENOENT) */
	char *buffer;                /* 8:  out: the payloads concatenated in the order of
				      *     ids; NULL = lengths only */
	VEXFS_U32_T *payload_bytes;  /* 16: out: id_count lengths; 0 = the id has no payload */
	VEXFS_U64_T buffer_bytes;    /* 24: in: the buffer's size; out: bytes the payloads take */
	VEXFS_U32_T id_count;        /* 32: 1..VEXFS_BATCH_VECTORS_MAX */
	VEXFS_U32_T flags;           /* 36: must be 0 */
};

/* 64 bytes. k-nearest-neighbour queries restricted to the ids whose payload
 * matches a filter (VexFS extension, nr 9). */
struct vexfs_filtered_search_request {
	union { /* 0: in: query_count * dimensions elements */
		float *query_vector;
		VEXFS_U32_T *query_vector_bits;
	};
	union { /* 8: out: query_count * k distances, each query's best first */
		float *results;
		VEXFS_U32_T *results_bits;
	};
	VEXFS_U64_T *result_ids;     /* 16: out: query_count * k ids; an unused place
				      *     gets VEXFS_NO_ID and a NaN distance */
	const char *filter;          /* 24: in: JSON filter (docs/VECTORS.md); NULL = none */
	VEXFS_U32_T filter_bytes;    /* 32: 0 when filter is NULL, else 1..VEXFS_FILTER_BYTES_MAX */
	VEXFS_U32_T dimensions;      /* 36 */
	VEXFS_U32_T k;               /* 40: 1..VEXFS_SEARCH_K_MAX */
	VEXFS_U32_T search_type;     /* 44: VEXFS_SEARCH_EUCLIDEAN, _COSINE or _DOT_PRODUCT */
	VEXFS_U32_T query_count;     /* 48: 1..VEXFS_SEARCH_QUERIES_MAX */
	VEXFS_U32_T flags;           /* 52: VEXFS_SEARCH_EXACT or 0 */
	VEXFS_U32_T result_count;    /* 56: out: the most results any query got (<= k) */
	VEXFS_U32_T reserved;        /* 60: must be 0 */
};

/* 56 bytes. One page of the ids whose payload matches a filter, ascending,
 * or only their count (VexFS extension, nr 27). */
struct vexfs_scroll_request {
	const char *filter;          /* 0:  in: JSON filter; NULL = every id */
	VEXFS_U64_T *ids;            /* 8:  out: up to limit matching ids; NULL = count only */
	VEXFS_U64_T start_id;        /* 16: in: the smallest id to consider */
	VEXFS_U64_T next_id;         /* 24: out: where the next page starts when more = 1 */
	VEXFS_U32_T filter_bytes;    /* 32: 0 when filter is NULL, else 1..VEXFS_FILTER_BYTES_MAX */
	VEXFS_U32_T limit;           /* 36: 0 when ids is NULL, else 1..VEXFS_BATCH_VECTORS_MAX */
	VEXFS_U32_T id_count;        /* 40: out: ids written */
	VEXFS_U32_T matching_count;  /* 44: out: ids >= start_id that match, in all */
	VEXFS_U32_T more;            /* 48: out: 1 when matching ids remain from next_id on */
	VEXFS_U32_T flags;           /* 52: must be 0 */
};

#define VEXFS_IOC_SET_VECTOR_META _IOW(VEXFS_IOC_MAGIC, 1, struct vexfs_vector_file_info)
#define VEXFS_IOC_GET_VECTOR_META _IOR(VEXFS_IOC_MAGIC, 2, struct vexfs_vector_file_info)
#define VEXFS_IOC_VECTOR_SEARCH _IOWR(VEXFS_IOC_MAGIC, 3, struct vexfs_vector_search_request)
#define VEXFS_IOC_BATCH_INSERT _IOW(VEXFS_IOC_MAGIC, 4, struct vexfs_batch_insert_request)
/* Extensions. Numbers 10..26 are avoided: old experimental VexFS builds used them. */
#define VEXFS_IOC_DELETE_VECTORS _IOWR(VEXFS_IOC_MAGIC, 5, struct vexfs_delete_request)
#define VEXFS_IOC_GET_VECTORS _IOWR(VEXFS_IOC_MAGIC, 6, struct vexfs_get_vectors_request)
#define VEXFS_IOC_SET_PAYLOADS _IOW(VEXFS_IOC_MAGIC, 7, struct vexfs_set_payloads_request)
#define VEXFS_IOC_GET_PAYLOADS _IOWR(VEXFS_IOC_MAGIC, 8, struct vexfs_get_payloads_request)
#define VEXFS_IOC_FILTERED_SEARCH _IOWR(VEXFS_IOC_MAGIC, 9, struct vexfs_filtered_search_request)
#define VEXFS_IOC_SCROLL _IOWR(VEXFS_IOC_MAGIC, 27, struct vexfs_scroll_request)

#define VEXFS_VECTOR_FILE_INFO_SIZE 40
#define VEXFS_VECTOR_SEARCH_REQUEST_SIZE 48
#define VEXFS_BATCH_INSERT_REQUEST_SIZE 32
#define VEXFS_DELETE_REQUEST_SIZE 24
#define VEXFS_GET_VECTORS_REQUEST_SIZE 32
#define VEXFS_SET_PAYLOADS_REQUEST_SIZE 48
#define VEXFS_GET_PAYLOADS_REQUEST_SIZE 40
#define VEXFS_FILTERED_SEARCH_REQUEST_SIZE 64
#define VEXFS_SCROLL_REQUEST_SIZE 56

/* Bytes of vector data and of ids for a batch (float32 elements). */
#define VEXFS_VECTOR_DATA_SIZE(dimensions, count) ((dimensions) * (count) * sizeof(float))
#define VEXFS_VECTOR_ID_SIZE(count) ((count) * sizeof(VEXFS_U64_T))

#define VEXFS_VALID_DIMENSIONS(dim) ((dim) > 0 && (dim) <= VEXFS_DIMENSIONS_MAX)
#define VEXFS_VALID_COUNT(count) ((count) > 0 && (count) <= VEXFS_BATCH_VECTORS_MAX)

#ifndef __ASSEMBLY__
#ifdef __cplusplus
#define VEXFS_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#define VEXFS_OFFSETOF(type, field) __builtin_offsetof(type, field)
#else
#define VEXFS_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define VEXFS_OFFSETOF(type, field) __builtin_offsetof(type, field)
#endif

/* The layouts are those of 64-bit Linux, where pointers are 8 bytes. */
#if defined(__LP64__) || defined(_LP64)
VEXFS_STATIC_ASSERT(sizeof(struct vexfs_vector_file_info) == VEXFS_VECTOR_FILE_INFO_SIZE,
		    "vexfs_vector_file_info must be 40 bytes");
VEXFS_STATIC_ASSERT(sizeof(struct vexfs_vector_search_request) == VEXFS_VECTOR_SEARCH_REQUEST_SIZE,
		    "vexfs_vector_search_request must be 48 bytes");
VEXFS_STATIC_ASSERT(sizeof(struct vexfs_batch_insert_request) == VEXFS_BATCH_INSERT_REQUEST_SIZE,
		    "vexfs_batch_insert_request must be 32 bytes");

VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_file_info, dimensions) == 0, "file_info.dimensions");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_file_info, element_type) == 4, "file_info.element_type");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_file_info, vector_count) == 8, "file_info.vector_count");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_file_info, storage_format) == 12, "file_info.storage_format");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_file_info, data_offset) == 16, "file_info.data_offset");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_file_info, index_offset) == 24, "file_info.index_offset");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_file_info, compression_type) == 32, "file_info.compression_type");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_file_info, alignment_bytes) == 36, "file_info.alignment_bytes");

VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_search_request, query_vector) == 0, "search.query_vector");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_search_request, query_vector_bits) == 0, "search.query_vector_bits");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_search_request, dimensions) == 8, "search.dimensions");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_search_request, k) == 12, "search.k");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_search_request, search_type) == 16, "search.search_type");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_search_request, results) == 24, "search.results");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_search_request, results_bits) == 24, "search.results_bits");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_search_request, result_ids) == 32, "search.result_ids");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_vector_search_request, result_count) == 40, "search.result_count");

VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_batch_insert_request, vectors) == 0, "insert.vectors");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_batch_insert_request, vectors_bits) == 0, "insert.vectors_bits");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_batch_insert_request, vector_count) == 8, "insert.vector_count");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_batch_insert_request, dimensions) == 12, "insert.dimensions");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_batch_insert_request, vector_ids) == 16, "insert.vector_ids");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_batch_insert_request, flags) == 24, "insert.flags");

VEXFS_STATIC_ASSERT(sizeof(struct vexfs_delete_request) == VEXFS_DELETE_REQUEST_SIZE,
		    "vexfs_delete_request must be 24 bytes");
VEXFS_STATIC_ASSERT(sizeof(struct vexfs_get_vectors_request) == VEXFS_GET_VECTORS_REQUEST_SIZE,
		    "vexfs_get_vectors_request must be 32 bytes");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_delete_request, deleted_count) == 16, "delete.deleted_count");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_get_vectors_request, vectors) == 8, "get.vectors");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_get_vectors_request, id_count) == 16, "get.id_count");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_get_vectors_request, found_count) == 24, "get.found_count");

VEXFS_STATIC_ASSERT(sizeof(struct vexfs_set_payloads_request) == VEXFS_SET_PAYLOADS_REQUEST_SIZE,
		    "vexfs_set_payloads_request must be 48 bytes");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_set_payloads_request, ids) == 0, "set_payloads.ids");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_set_payloads_request, payloads) == 8, "set_payloads.payloads");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_set_payloads_request, payload_bytes) == 16, "set_payloads.payload_bytes");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_set_payloads_request, vectors) == 24, "set_payloads.vectors");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_set_payloads_request, vectors_bits) == 24, "set_payloads.vectors_bits");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_set_payloads_request, id_count) == 32, "set_payloads.id_count");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_set_payloads_request, dimensions) == 36, "set_payloads.dimensions");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_set_payloads_request, flags) == 40, "set_payloads.flags");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_set_payloads_request, reserved) == 44, "set_payloads.reserved");

VEXFS_STATIC_ASSERT(sizeof(struct vexfs_get_payloads_request) == VEXFS_GET_PAYLOADS_REQUEST_SIZE,
		    "vexfs_get_payloads_request must be 40 bytes");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_get_payloads_request, ids) == 0, "get_payloads.ids");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_get_payloads_request, buffer) == 8, "get_payloads.buffer");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_get_payloads_request, payload_bytes) == 16, "get_payloads.payload_bytes");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_get_payloads_request, buffer_bytes) == 24, "get_payloads.buffer_bytes");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_get_payloads_request, id_count) == 32, "get_payloads.id_count");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_get_payloads_request, flags) == 36, "get_payloads.flags");

VEXFS_STATIC_ASSERT(sizeof(struct vexfs_filtered_search_request) == VEXFS_FILTERED_SEARCH_REQUEST_SIZE,
		    "vexfs_filtered_search_request must be 64 bytes");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, query_vector) == 0, "filtered_search.query_vector");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, query_vector_bits) == 0, "filtered_search.query_vector_bits");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, results) == 8, "filtered_search.results");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, results_bits) == 8, "filtered_search.results_bits");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, result_ids) == 16, "filtered_search.result_ids");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, filter) == 24, "filtered_search.filter");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, filter_bytes) == 32, "filtered_search.filter_bytes");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, dimensions) == 36, "filtered_search.dimensions");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, k) == 40, "filtered_search.k");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, search_type) == 44, "filtered_search.search_type");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, query_count) == 48, "filtered_search.query_count");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, flags) == 52, "filtered_search.flags");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, result_count) == 56, "filtered_search.result_count");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_filtered_search_request, reserved) == 60, "filtered_search.reserved");

VEXFS_STATIC_ASSERT(sizeof(struct vexfs_scroll_request) == VEXFS_SCROLL_REQUEST_SIZE,
		    "vexfs_scroll_request must be 56 bytes");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_scroll_request, filter) == 0, "scroll.filter");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_scroll_request, ids) == 8, "scroll.ids");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_scroll_request, start_id) == 16, "scroll.start_id");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_scroll_request, next_id) == 24, "scroll.next_id");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_scroll_request, filter_bytes) == 32, "scroll.filter_bytes");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_scroll_request, limit) == 36, "scroll.limit");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_scroll_request, id_count) == 40, "scroll.id_count");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_scroll_request, matching_count) == 44, "scroll.matching_count");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_scroll_request, more) == 48, "scroll.more");
VEXFS_STATIC_ASSERT(VEXFS_OFFSETOF(struct vexfs_scroll_request, flags) == 52, "scroll.flags");

VEXFS_STATIC_ASSERT(VEXFS_IOC_SET_VECTOR_META == 0x40285601, "VEXFS_IOC_SET_VECTOR_META");
VEXFS_STATIC_ASSERT(VEXFS_IOC_GET_VECTOR_META == 0x80285602, "VEXFS_IOC_GET_VECTOR_META");
VEXFS_STATIC_ASSERT(VEXFS_IOC_VECTOR_SEARCH == 0xc0305603, "VEXFS_IOC_VECTOR_SEARCH");
VEXFS_STATIC_ASSERT(VEXFS_IOC_BATCH_INSERT == 0x40205604, "VEXFS_IOC_BATCH_INSERT");
VEXFS_STATIC_ASSERT(VEXFS_IOC_DELETE_VECTORS == 0xc0185605, "VEXFS_IOC_DELETE_VECTORS");
VEXFS_STATIC_ASSERT(VEXFS_IOC_GET_VECTORS == 0xc0205606, "VEXFS_IOC_GET_VECTORS");
VEXFS_STATIC_ASSERT(VEXFS_IOC_SET_PAYLOADS == 0x40305607, "VEXFS_IOC_SET_PAYLOADS");
VEXFS_STATIC_ASSERT(VEXFS_IOC_GET_PAYLOADS == 0xc0285608, "VEXFS_IOC_GET_PAYLOADS");
VEXFS_STATIC_ASSERT(VEXFS_IOC_FILTERED_SEARCH == 0xc0405609, "VEXFS_IOC_FILTERED_SEARCH");
VEXFS_STATIC_ASSERT(VEXFS_IOC_SCROLL == 0xc038561b, "VEXFS_IOC_SCROLL");
#endif /* LP64 */
#endif /* __ASSEMBLY__ */

#ifndef __KERNEL__
/*
 * IEEE 754 single precision <-> its bit pattern. memcpy is the conversion
 * that is defined in both C and C++; compilers turn it into a move.
 */
static inline VEXFS_U32_T vexfs_float_to_bits(float value)
{
	VEXFS_U32_T bits;
	memcpy(&bits, &value, sizeof(bits));
	return bits;
}

static inline float vexfs_bits_to_float(VEXFS_U32_T bits)
{
	float value;
	memcpy(&value, &bits, sizeof(value));
	return value;
}

static inline void vexfs_float_array_to_bits(const float *values, VEXFS_U32_T *bits,
					     VEXFS_U32_T count)
{
	VEXFS_U32_T i;
	for (i = 0; i < count; i++)
		bits[i] = vexfs_float_to_bits(values[i]);
}

static inline void vexfs_bits_array_to_float(const VEXFS_U32_T *bits, float *values,
					     VEXFS_U32_T count)
{
	VEXFS_U32_T i;
	for (i = 0; i < count; i++)
		values[i] = vexfs_bits_to_float(bits[i]);
}
#endif /* !__KERNEL__ */

#ifdef __cplusplus
}
#endif

#endif /* _VEXFS_V2_UAPI_H */
