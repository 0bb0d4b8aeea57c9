/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vexfs_example.c - the VexFS vector ioctls from C, start to finish.
 *
 *   vexfs_example FILE [--dims N] [--count N] [--k N] [--check-only]
 *
 * Makes FILE (on a mounted VexFS) a vector file of `dims` float32 elements,
 * inserts `count` deterministic pseudo-random vectors with ids 1000.., makes
 * them durable with fsync, searches with a stored vector as the query under
 * each metric, fetches one vector back by id, deletes it and searches again.
 *
 * --check-only opens FILE read-only and checks what a full run left behind
 * (for example after an unmount and a remount): count - 1 vectors, id 1007
 * gone, every other vector still found.
 *
 * This program uses the newer spellings of the header: vectors travel as
 * IEEE 754 bit patterns (`vectors_bits`, `query_vector_bits`,
 * `results_bits`). vexfs_legacy.c shows the older `float *` spellings.
 *
 * Exit status 0 when every step did what docs/VECTORS.md says, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vexfs_v2_uapi.h"

#define ID_FIRST 1000u
/* Vectors per VEXFS_IOC_BATCH_INSERT. */
#define INSERT_BATCH_VECTORS 100u
/* The stored vector used as the query, and the one that stays after its delete. */
#define PROBE_INDEX 7u
#define PROBE_AFTER_DELETE_INDEX 8u
#define COUNT_MIN (PROBE_AFTER_DELETE_INDEX + 1u)
/* All vectors are generated up front; keep that bounded. */
#define VECTOR_BYTES_MAX (1ull << 30)
/* A stored vector's distance to itself: 0 up to float rounding. */
#define SELF_DISTANCE_EPSILON 1e-3f
#define LCG_SEED 0x5645584653ull /* "VEXFS" */

struct options {
	const char *path;
	uint32_t dimensions;
	uint32_t count;
	uint32_t k;
	int check_only;
};

struct metric {
	uint32_t search_type;
	const char *name;
	/* Whether the query's own vector must come first (not so for a dot product). */
	int self_first;
};

static const struct metric metrics[] = {
	{ VEXFS_SEARCH_EUCLIDEAN, "euclidean", 1 },
	{ VEXFS_SEARCH_COSINE, "cosine", 1 },
	{ VEXFS_SEARCH_DOT_PRODUCT, "dot_product", 0 },
};
#define METRIC_COUNT (sizeof(metrics) / sizeof(metrics[0]))

/* Results of one search, distances already converted back from bits. */
struct results {
	uint32_t count;
	uint64_t *ids;
	float *distances;
};

static void fail_errno(const char *what)
{
	int error = errno;
	fprintf(stderr, "vexfs_example: %s: %s (errno %d)\n", what, strerror(error), error);
	exit(1);
}

static void fail(const char *format, ...)
{
	va_list args;
	fprintf(stderr, "vexfs_example: ");
	va_start(args, format);
	vfprintf(stderr, format, args);
	va_end(args);
	fprintf(stderr, "\n");
	exit(1);
}

static void *allocate(size_t bytes)
{
	void *memory = calloc(1, bytes);
	if (memory == NULL)
		fail_errno("calloc");
	return memory;
}

static uint32_t parse_u32(const char *name, const char *text, uint32_t min, uint32_t max)
{
	char *end = NULL;
	unsigned long long value;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
		fail("%s must be an integer in %u..%u, not '%s'", name, min, max, text);
	return (uint32_t)value;
}

static void usage(void)
{
	fprintf(stderr, "usage: vexfs_example FILE [--dims N] [--count N] [--k N] [--check-only]\n");
	exit(2);
}

static struct options parse_options(int argc, char **argv)
{
	struct options options = { NULL, 128, 1000, 5, 0 };
	int i;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--check-only") == 0) {
			options.check_only = 1;
		} else if (strcmp(arg, "--dims") == 0 && i + 1 < argc) {
			options.dimensions = parse_u32("--dims", argv[++i], 1, VEXFS_DIMENSIONS_MAX);
		} else if (strcmp(arg, "--count") == 0 && i + 1 < argc) {
			options.count = parse_u32("--count", argv[++i], COUNT_MIN,
						  VEXFS_BATCH_VECTORS_MAX);
		} else if (strcmp(arg, "--k") == 0 && i + 1 < argc) {
			options.k = parse_u32("--k", argv[++i], 1, VEXFS_SEARCH_K_MAX);
		} else if (arg[0] != '-' && options.path == NULL) {
			options.path = arg;
		} else {
			usage();
		}
	}
	if (options.path == NULL)
		usage();
	if ((unsigned long long)options.count * options.dimensions * sizeof(float) >
	    VECTOR_BYTES_MAX)
		fail("--count x --dims x 4 must stay within %llu bytes", VECTOR_BYTES_MAX);
	return options;
}

/* A 64-bit LCG (Knuth's MMIX constants): the same vectors on every run. */
static float next_element(uint64_t *state)
{
	*state = *state * 6364136223846793005ull + 1442695040888963407ull;
	/* The top 24 bits as a float in [-1, 1). */
	return (float)(*state >> 40) / (float)(1u << 23) - 1.0f;
}

/* count x dimensions elements, row i being the vector with id ID_FIRST + i. */
static uint32_t *generate_vector_bits(uint32_t count, uint32_t dimensions)
{
	uint32_t *bits = allocate((size_t)count * dimensions * sizeof(uint32_t));
	float *row = allocate((size_t)dimensions * sizeof(float));
	uint64_t state = LCG_SEED;
	uint32_t i, j;

	for (i = 0; i < count; i++) {
		for (j = 0; j < dimensions; j++)
			row[j] = next_element(&state);
		vexfs_float_array_to_bits(row, bits + (size_t)i * dimensions, dimensions);
	}
	free(row);
	return bits;
}

/*
 * On a file that already holds vectors of this layout nothing changes. On one
 * of another layout, vector_count = 0 would drop the stored vectors (as
 * vexfs_legacy.c does on purpose); any other value makes the request fail
 * with EBUSY instead, so this example never throws away someone's vectors.
 */
static void set_meta(int fd, uint32_t dimensions, uint32_t count)
{
	struct vexfs_vector_file_info info = {
		.dimensions = dimensions,
		.element_type = VEXFS_VECTOR_FLOAT32,
		.vector_count = count,
		.storage_format = VEXFS_STORAGE_DENSE,
		.compression_type = VEXFS_COMPRESS_NONE,
	};

	if (ioctl(fd, VEXFS_IOC_SET_VECTOR_META, &info) != 0)
		fail_errno("VEXFS_IOC_SET_VECTOR_META");
}

static struct vexfs_vector_file_info get_meta(int fd)
{
	struct vexfs_vector_file_info info;

	memset(&info, 0, sizeof(info));
	if (ioctl(fd, VEXFS_IOC_GET_VECTOR_META, &info) != 0)
		fail_errno("VEXFS_IOC_GET_VECTOR_META");
	printf("meta: dims=%u count=%u data_offset=%llu index_offset=%llu\n", info.dimensions,
	       info.vector_count, (unsigned long long)info.data_offset,
	       (unsigned long long)info.index_offset);
	return info;
}

static void check_meta(const struct vexfs_vector_file_info *info, uint32_t dimensions,
		       uint32_t count)
{
	if (info->dimensions != dimensions || info->element_type != VEXFS_VECTOR_FLOAT32)
		fail("meta: expected %u float32 dimensions, file has %u of type %u", dimensions,
		     info->dimensions, info->element_type);
	if (info->vector_count != count)
		fail("meta: expected %u vectors, file holds %u", count, info->vector_count);
}

static void insert_all(int fd, const uint32_t *bits, uint32_t count, uint32_t dimensions)
{
	uint64_t ids[INSERT_BATCH_VECTORS];
	uint32_t first, i, batches = 0;

	for (first = 0; first < count; first += INSERT_BATCH_VECTORS) {
		uint32_t batch = count - first < INSERT_BATCH_VECTORS ? count - first
								       : INSERT_BATCH_VECTORS;
		struct vexfs_batch_insert_request request = {
			.vectors_bits = (uint32_t *)(bits + (size_t)first * dimensions),
			.vector_count = batch,
			.dimensions = dimensions,
			.vector_ids = ids,
			.flags = 0,
		};

		for (i = 0; i < batch; i++)
			ids[i] = ID_FIRST + first + i;
		if (ioctl(fd, VEXFS_IOC_BATCH_INSERT, &request) != 0)
			fail_errno("VEXFS_IOC_BATCH_INSERT");
		batches++;
	}
	printf("inserted %u vectors in %u batches\n", count, batches);
}

static struct results search(int fd, const uint32_t *query_bits, uint32_t dimensions,
			     uint32_t k, const struct metric *metric)
{
	struct results results;
	uint32_t *distance_bits = allocate((size_t)k * sizeof(uint32_t));
	struct vexfs_vector_search_request request = {
		.query_vector_bits = (uint32_t *)query_bits,
		.dimensions = dimensions,
		.k = k,
		.search_type = metric->search_type,
		.results_bits = distance_bits,
		.result_ids = NULL,
		.result_count = 0,
	};

	results.ids = allocate((size_t)k * sizeof(uint64_t));
	results.distances = allocate((size_t)k * sizeof(float));
	request.result_ids = results.ids;
	if (ioctl(fd, VEXFS_IOC_VECTOR_SEARCH, &request) != 0)
		fail_errno("VEXFS_IOC_VECTOR_SEARCH");
	if (request.result_count > k)
		fail("search %s: result_count %u above k %u", metric->name, request.result_count, k);
	results.count = request.result_count;
	vexfs_bits_array_to_float(distance_bits, results.distances, results.count);
	free(distance_bits);
	return results;
}

static void free_results(struct results *results)
{
	free(results->ids);
	free(results->distances);
}

static void print_results(const struct metric *metric, const struct results *results)
{
	uint32_t rank;

	for (rank = 0; rank < results->count; rank++)
		printf("%s %u %llu %.6f\n", metric->name, rank,
		       (unsigned long long)results->ids[rank], results->distances[rank]);
}

static int contains_id(const struct results *results, uint64_t id)
{
	uint32_t rank;

	for (rank = 0; rank < results->count; rank++)
		if (results->ids[rank] == id)
			return 1;
	return 0;
}

/*
 * Searches with stored vector `index` as the query under every metric and
 * prints the results. `absent_id`, when not 0, is a deleted id: it must not
 * appear at all. The query's own vector, unless it is the deleted one, must
 * rank first (distance ~0) where the metric is a distance.
 */
static void search_all_metrics(int fd, const uint32_t *bits, uint32_t index,
			       const struct options *options, uint64_t absent_id)
{
	const uint32_t *query = bits + (size_t)index * options->dimensions;
	uint64_t self_id = ID_FIRST + index;
	size_t m;

	printf("metric rank id distance (query: vector #%u, id %llu)\n", index,
	       (unsigned long long)self_id);
	for (m = 0; m < METRIC_COUNT; m++) {
		const struct metric *metric = &metrics[m];
		struct results results = search(fd, query, options->dimensions, options->k, metric);

		print_results(metric, &results);
		if (results.count == 0)
			fail("search %s: no results", metric->name);
		if (metric->self_first && self_id != absent_id &&
		    (results.ids[0] != self_id || results.distances[0] > SELF_DISTANCE_EPSILON ||
		     results.distances[0] < -SELF_DISTANCE_EPSILON))
			fail("search %s: expected id %llu at distance ~0 first, got id %llu at %f",
			     metric->name, (unsigned long long)self_id,
			     (unsigned long long)results.ids[0], results.distances[0]);
		if (absent_id != 0 && contains_id(&results, absent_id))
			fail("search %s: deleted id %llu still found", metric->name,
			     (unsigned long long)absent_id);
		free_results(&results);
	}
}

/* Fetches stored vector `index` by its id and compares it bit for bit. */
static void get_and_compare(int fd, const uint32_t *bits, uint32_t index, uint32_t dimensions)
{
	uint64_t id = ID_FIRST + index;
	uint32_t *fetched = allocate((size_t)dimensions * sizeof(uint32_t));
	struct vexfs_get_vectors_request request = {
		.ids = &id,
		.vectors_bits = fetched,
		.id_count = 1,
		.dimensions = dimensions,
		.found_count = 0,
		.flags = 0,
	};

	if (ioctl(fd, VEXFS_IOC_GET_VECTORS, &request) != 0)
		fail_errno("VEXFS_IOC_GET_VECTORS");
	if (request.found_count != 1)
		fail("get_vectors: found_count %u, expected 1", request.found_count);
	if (memcmp(fetched, bits + (size_t)index * dimensions, dimensions * sizeof(uint32_t)) != 0)
		fail("get_vectors: id %llu differs from the inserted vector",
		     (unsigned long long)id);
	printf("get_vectors: id %llu matches the inserted bytes\n", (unsigned long long)id);
	free(fetched);
}

/* A deleted id is not stored any more: GET_VECTORS answers ENOENT. */
static void expect_not_stored(int fd, uint64_t id, uint32_t dimensions)
{
	uint32_t *fetched = allocate((size_t)dimensions * sizeof(uint32_t));
	struct vexfs_get_vectors_request request = {
		.ids = &id,
		.vectors_bits = fetched,
		.id_count = 1,
		.dimensions = dimensions,
	};

	if (ioctl(fd, VEXFS_IOC_GET_VECTORS, &request) == 0)
		fail("get_vectors: deleted id %llu is still stored", (unsigned long long)id);
	if (errno != ENOENT)
		fail_errno("VEXFS_IOC_GET_VECTORS of a deleted id (expected ENOENT)");
	printf("get_vectors: id %llu is gone (%s)\n", (unsigned long long)id, strerror(errno));
	free(fetched);
}

static void delete_id(int fd, uint64_t id)
{
	struct vexfs_delete_request request = {
		.ids = &id,
		.id_count = 1,
		.flags = 0,
		.deleted_count = 0,
		.reserved = 0,
	};

	if (ioctl(fd, VEXFS_IOC_DELETE_VECTORS, &request) != 0)
		fail_errno("VEXFS_IOC_DELETE_VECTORS");
	if (request.deleted_count != 1)
		fail("delete: deleted_count %u, expected 1", request.deleted_count);
	printf("delete: id %llu deleted_count=%u\n", (unsigned long long)id,
	       request.deleted_count);
}

static void run_full(int fd, const uint32_t *bits, const struct options *options)
{
	struct vexfs_vector_file_info info;
	uint64_t probe_id = ID_FIRST + PROBE_INDEX;

	set_meta(fd, options->dimensions, options->count);
	insert_all(fd, bits, options->count, options->dimensions);
	if (fsync(fd) != 0)
		fail_errno("fsync");
	info = get_meta(fd);
	check_meta(&info, options->dimensions, options->count);

	search_all_metrics(fd, bits, PROBE_INDEX, options, 0);
	get_and_compare(fd, bits, PROBE_INDEX, options->dimensions);

	delete_id(fd, probe_id);
	search_all_metrics(fd, bits, PROBE_INDEX, options, probe_id);
	expect_not_stored(fd, probe_id, options->dimensions);
	if (fsync(fd) != 0)
		fail_errno("fsync");
	info = get_meta(fd);
	check_meta(&info, options->dimensions, options->count - 1);
}

/* What a full run left behind: read access is all these requests need. */
static void run_check(int fd, const uint32_t *bits, const struct options *options)
{
	struct vexfs_vector_file_info info = get_meta(fd);
	uint64_t probe_id = ID_FIRST + PROBE_INDEX;

	check_meta(&info, options->dimensions, options->count - 1);
	search_all_metrics(fd, bits, PROBE_INDEX, options, probe_id);
	search_all_metrics(fd, bits, PROBE_AFTER_DELETE_INDEX, options, probe_id);
	get_and_compare(fd, bits, PROBE_AFTER_DELETE_INDEX, options->dimensions);
	get_and_compare(fd, bits, options->count - 1, options->dimensions);
	expect_not_stored(fd, probe_id, options->dimensions);
}

int main(int argc, char **argv)
{
	struct options options = parse_options(argc, argv);
	uint32_t *bits = generate_vector_bits(options.count, options.dimensions);
	int fd;

	printf("vexfs_example: %s dims=%u count=%u k=%u%s\n", options.path, options.dimensions,
	       options.count, options.k, options.check_only ? " (check only)" : "");
	if (options.check_only)
		fd = open(options.path, O_RDONLY);
	else
		fd = open(options.path, O_CREAT | O_RDWR, 0644);
	if (fd < 0)
		fail_errno(options.path);

	if (options.check_only)
		run_check(fd, bits, &options);
	else
		run_full(fd, bits, &options);

	if (close(fd) != 0)
		fail_errno("close");
	free(bits);
	printf("OK\n");
	return 0;
}
