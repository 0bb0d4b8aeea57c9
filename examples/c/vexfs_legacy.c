/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vexfs_legacy.c - a program of the older generation, as the original VexFS
 * validator was written: `float *` spellings (.vectors, .query_vector,
 * .results), `uint64_t` ids, no ids given on insert.
 *
 *   vexfs_legacy FILE
 *
 * Sets the metadata to 4 dimensions and appends 10 vectors, then sets it
 * again to 8 dimensions with vector_count = 0 (which drops the 4-dimensional
 * vectors, docs/VECTORS.md), appends 10 vectors of 8 dimensions and searches
 * for the 3 nearest to one of them. Exit status 0 when every step worked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vexfs_v2_uapi.h"

#define VECTOR_COUNT 10
#define DIMENSIONS_FIRST 4
#define DIMENSIONS_SECOND 8
#define DIMENSIONS_MAX DIMENSIONS_SECOND
#define SEARCH_K 3
#define QUERY_INDEX 5

static int fd = -1;

static void fail(const char *what)
{
	int error = errno;
	fprintf(stderr, "vexfs_legacy: %s: %s (errno %d)\n", what, strerror(error), error);
	if (fd >= 0)
		close(fd);
	exit(1);
}

static void set_meta(uint32_t dimensions, const char *what)
{
	struct vexfs_vector_file_info info;

	memset(&info, 0, sizeof(info));
	info.dimensions = dimensions;
	info.element_type = VEXFS_VECTOR_FLOAT32;
	info.vector_count = 0; /* on a layout change: drop what is stored */
	info.storage_format = VEXFS_STORAGE_DENSE;
	info.compression_type = VEXFS_COMPRESS_NONE;
	info.alignment_bytes = 32;
	if (ioctl(fd, VEXFS_IOC_SET_VECTOR_META, &info) != 0)
		fail(what);
	printf("%s: dimensions=%u\n", what, dimensions);
}

static uint32_t vector_count(void)
{
	struct vexfs_vector_file_info info;

	memset(&info, 0, sizeof(info));
	if (ioctl(fd, VEXFS_IOC_GET_VECTOR_META, &info) != 0)
		fail("VEXFS_IOC_GET_VECTOR_META");
	printf("meta: dims=%u count=%u\n", info.dimensions, info.vector_count);
	return info.vector_count;
}

/* Vector i, element j: distinct, easy to read back in a hex dump. */
static void fill_vectors(float *vectors, uint32_t dimensions)
{
	uint32_t i, j;

	for (i = 0; i < VECTOR_COUNT; i++)
		for (j = 0; j < dimensions; j++)
			vectors[i * dimensions + j] = (float)i + (float)j * 0.1f;
}

static void append(float *vectors, uint32_t dimensions)
{
	struct vexfs_batch_insert_request request;

	memset(&request, 0, sizeof(request));
	request.vectors = vectors;
	request.vector_count = VECTOR_COUNT;
	request.dimensions = dimensions;
	request.vector_ids = NULL; /* the file assigns the ids */
	request.flags = VEXFS_INSERT_APPEND;
	if (ioctl(fd, VEXFS_IOC_BATCH_INSERT, &request) != 0)
		fail("VEXFS_IOC_BATCH_INSERT");
	printf("inserted %u vectors of %u dimensions\n", VECTOR_COUNT, dimensions);
}

int main(int argc, char **argv)
{
	float vectors[VECTOR_COUNT * DIMENSIONS_MAX];
	float results[SEARCH_K];
	uint64_t result_ids[SEARCH_K];
	struct vexfs_vector_search_request search;
	uint32_t i;

	if (argc != 2) {
		fprintf(stderr, "usage: vexfs_legacy FILE\n");
		return 2;
	}
	fd = open(argv[1], O_CREAT | O_RDWR, 0644);
	if (fd < 0)
		fail(argv[1]);

	set_meta(DIMENSIONS_FIRST, "set meta");
	fill_vectors(vectors, DIMENSIONS_FIRST);
	append(vectors, DIMENSIONS_FIRST);
	if (vector_count() != VECTOR_COUNT) {
		fprintf(stderr, "vexfs_legacy: expected %u vectors\n", VECTOR_COUNT);
		return 1;
	}

	set_meta(DIMENSIONS_SECOND, "re-set meta");
	if (vector_count() != 0) {
		fprintf(stderr, "vexfs_legacy: the re-set should have dropped the vectors\n");
		return 1;
	}
	fill_vectors(vectors, DIMENSIONS_SECOND);
	append(vectors, DIMENSIONS_SECOND);
	if (fsync(fd) != 0)
		fail("fsync");
	if (vector_count() != VECTOR_COUNT) {
		fprintf(stderr, "vexfs_legacy: expected %u vectors\n", VECTOR_COUNT);
		return 1;
	}

	memset(&search, 0, sizeof(search));
	search.query_vector = &vectors[QUERY_INDEX * DIMENSIONS_SECOND];
	search.dimensions = DIMENSIONS_SECOND;
	search.k = SEARCH_K;
	search.search_type = VEXFS_SEARCH_EUCLIDEAN;
	search.results = results;
	search.result_ids = result_ids;
	if (ioctl(fd, VEXFS_IOC_VECTOR_SEARCH, &search) != 0)
		fail("VEXFS_IOC_VECTOR_SEARCH");
	for (i = 0; i < search.result_count; i++)
		printf("result %u: id=%llu distance=%f\n", i, (unsigned long long)result_ids[i],
		       results[i]);
	/* Vectors i and i +- 1 differ by 1 in each of 8 elements: squared L2 8. */
	if (search.result_count != SEARCH_K || results[0] > 1e-3f || results[0] < -1e-3f ||
	    results[1] < 7.99f || results[1] > 8.01f) {
		fprintf(stderr, "vexfs_legacy: unexpected search results\n");
		return 1;
	}

	if (close(fd) != 0)
		fail("close");
	printf("OK\n");
	return 0;
}
