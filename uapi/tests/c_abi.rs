//! Compiles C programs against `include/vexfs_v2_uapi.h` at test time and
//! checks that C and Rust agree on every size, offset, request code and limit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use vexfs_uapi::limits;
use vexfs_uapi::*;

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs `compiler args...`, panicking with its stderr when it fails.
fn compile(compiler: &str, args: &[&str]) {
    let output = Command::new(compiler)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler} (scripts/setup installs it): {e}"));
    assert!(
        output.status.success(),
        "{compiler} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const LAYOUT_PROGRAM: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include "vexfs_v2_uapi.h"
#define SIZE(t) printf("size %s %zu\n", #t, sizeof(struct t))
#define OFF(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(struct t, f))
#define VAL(m) printf("value %s %llu\n", #m, (unsigned long long)(m))
int main(void) {
    SIZE(vexfs_vector_file_info);
    SIZE(vexfs_vector_search_request);
    SIZE(vexfs_batch_insert_request);
    OFF(vexfs_vector_file_info, dimensions); OFF(vexfs_vector_file_info, element_type);
    OFF(vexfs_vector_file_info, vector_count); OFF(vexfs_vector_file_info, storage_format);
    OFF(vexfs_vector_file_info, data_offset); OFF(vexfs_vector_file_info, index_offset);
    OFF(vexfs_vector_file_info, compression_type); OFF(vexfs_vector_file_info, alignment_bytes);
    OFF(vexfs_vector_search_request, query_vector); OFF(vexfs_vector_search_request, query_vector_bits);
    OFF(vexfs_vector_search_request, dimensions); OFF(vexfs_vector_search_request, k);
    OFF(vexfs_vector_search_request, search_type); OFF(vexfs_vector_search_request, results);
    OFF(vexfs_vector_search_request, results_bits); OFF(vexfs_vector_search_request, result_ids);
    OFF(vexfs_vector_search_request, result_count);
    OFF(vexfs_batch_insert_request, vectors); OFF(vexfs_batch_insert_request, vectors_bits);
    OFF(vexfs_batch_insert_request, vector_count); OFF(vexfs_batch_insert_request, dimensions);
    OFF(vexfs_batch_insert_request, vector_ids); OFF(vexfs_batch_insert_request, flags);
    VAL(VEXFS_IOC_SET_VECTOR_META); VAL(VEXFS_IOC_GET_VECTOR_META);
    VAL(VEXFS_IOC_VECTOR_SEARCH); VAL(VEXFS_IOC_BATCH_INSERT);
    VAL(VEXFS_IOC_MAGIC); VAL(VEXFS_V2_MAGIC);
    VAL(VEXFS_V2_MAJOR_VERSION); VAL(VEXFS_V2_MINOR_VERSION); VAL(VEXFS_V2_PATCH_VERSION);
    VAL(VEXFS_VECTOR_FLOAT32); VAL(VEXFS_VECTOR_FLOAT16); VAL(VEXFS_VECTOR_INT8); VAL(VEXFS_VECTOR_BINARY);
    VAL(VEXFS_SEARCH_EUCLIDEAN); VAL(VEXFS_SEARCH_COSINE); VAL(VEXFS_SEARCH_DOT_PRODUCT);
    VAL(VEXFS_STORAGE_DENSE); VAL(VEXFS_STORAGE_SPARSE); VAL(VEXFS_STORAGE_COMPRESSED);
    VAL(VEXFS_COMPRESS_NONE); VAL(VEXFS_COMPRESS_LZ4); VAL(VEXFS_COMPRESS_ZSTD);
    VAL(VEXFS_INSERT_OVERWRITE); VAL(VEXFS_INSERT_APPEND); VAL(VEXFS_INSERT_VALIDATE);
    VAL(VEXFS_INSERT_NO_REPLACE); VAL(VEXFS_REQUEST_BYTES_MAX);
    VAL(VEXFS_IOC_DELETE_VECTORS); VAL(VEXFS_IOC_GET_VECTORS);
    SIZE(vexfs_delete_request); SIZE(vexfs_get_vectors_request);
    OFF(vexfs_delete_request, ids); OFF(vexfs_delete_request, id_count);
    OFF(vexfs_delete_request, flags); OFF(vexfs_delete_request, deleted_count);
    OFF(vexfs_get_vectors_request, ids); OFF(vexfs_get_vectors_request, vectors);
    OFF(vexfs_get_vectors_request, vectors_bits); OFF(vexfs_get_vectors_request, id_count);
    OFF(vexfs_get_vectors_request, dimensions); OFF(vexfs_get_vectors_request, found_count);
    OFF(vexfs_get_vectors_request, flags);
    VAL(VEXFS_DIMENSIONS_MAX); VAL(VEXFS_BATCH_VECTORS_MAX); VAL(VEXFS_SEARCH_K_MAX);
    VAL(VEXFS_VECTOR_FILE_INFO_SIZE); VAL(VEXFS_VECTOR_SEARCH_REQUEST_SIZE);
    VAL(VEXFS_BATCH_INSERT_REQUEST_SIZE);
    VAL(VEXFS_VECTOR_DATA_SIZE(3, 5)); VAL(VEXFS_VECTOR_ID_SIZE(7));
    VAL(VEXFS_VALID_DIMENSIONS(0)); VAL(VEXFS_VALID_DIMENSIONS(65536)); VAL(VEXFS_VALID_DIMENSIONS(65537));
    VAL(VEXFS_VALID_COUNT(0)); VAL(VEXFS_VALID_COUNT(1000000)); VAL(VEXFS_VALID_COUNT(1000001));
    VAL(vexfs_float_to_bits(1.5f)); VAL(vexfs_float_to_bits(-0.0f));
    SIZE(vexfs_set_payloads_request);
    OFF(vexfs_set_payloads_request, ids); OFF(vexfs_set_payloads_request, payloads);
    OFF(vexfs_set_payloads_request, payload_bytes); OFF(vexfs_set_payloads_request, vectors);
    OFF(vexfs_set_payloads_request, vectors_bits); OFF(vexfs_set_payloads_request, id_count);
    OFF(vexfs_set_payloads_request, dimensions); OFF(vexfs_set_payloads_request, flags);
    OFF(vexfs_set_payloads_request, reserved);
    SIZE(vexfs_get_payloads_request);
    OFF(vexfs_get_payloads_request, ids); OFF(vexfs_get_payloads_request, buffer);
    OFF(vexfs_get_payloads_request, payload_bytes); OFF(vexfs_get_payloads_request, buffer_bytes);
    OFF(vexfs_get_payloads_request, id_count); OFF(vexfs_get_payloads_request, flags);
    SIZE(vexfs_filtered_search_request);
    OFF(vexfs_filtered_search_request, query_vector);
    OFF(vexfs_filtered_search_request, query_vector_bits);
    OFF(vexfs_filtered_search_request, results); OFF(vexfs_filtered_search_request, results_bits);
    OFF(vexfs_filtered_search_request, result_ids); OFF(vexfs_filtered_search_request, filter);
    OFF(vexfs_filtered_search_request, filter_bytes);
    OFF(vexfs_filtered_search_request, dimensions); OFF(vexfs_filtered_search_request, k);
    OFF(vexfs_filtered_search_request, search_type);
    OFF(vexfs_filtered_search_request, query_count); OFF(vexfs_filtered_search_request, flags);
    OFF(vexfs_filtered_search_request, result_count); OFF(vexfs_filtered_search_request, reserved);
    SIZE(vexfs_scroll_request);
    OFF(vexfs_scroll_request, filter); OFF(vexfs_scroll_request, ids);
    OFF(vexfs_scroll_request, start_id); OFF(vexfs_scroll_request, next_id);
    OFF(vexfs_scroll_request, filter_bytes); OFF(vexfs_scroll_request, limit);
    OFF(vexfs_scroll_request, id_count); OFF(vexfs_scroll_request, matching_count);
    OFF(vexfs_scroll_request, more); OFF(vexfs_scroll_request, flags);
    VAL(VEXFS_IOC_SET_PAYLOADS); VAL(VEXFS_IOC_GET_PAYLOADS); VAL(VEXFS_IOC_FILTERED_SEARCH);
    VAL(VEXFS_IOC_SCROLL); VAL(VEXFS_SET_PAYLOADS_REQUEST_SIZE);
    VAL(VEXFS_GET_PAYLOADS_REQUEST_SIZE); VAL(VEXFS_FILTERED_SEARCH_REQUEST_SIZE);
    VAL(VEXFS_SCROLL_REQUEST_SIZE); VAL(VEXFS_PAYLOAD_BYTES_MAX); VAL(VEXFS_FILTER_BYTES_MAX);
    VAL(VEXFS_SEARCH_QUERIES_MAX); VAL(VEXFS_PAYLOAD_MERGE); VAL(VEXFS_SEARCH_EXACT);
    VAL(VEXFS_NO_ID);
    return vexfs_bits_to_float(0x3fc00000u) == 1.5f ? 0 : 1;
}
"#;

fn c_layout() -> BTreeMap<String, u64> {
    let dir = scratch_dir("c_abi_layout");
    let source = dir.join("layout.c");
    let binary = dir.join("layout");
    std::fs::write(&source, LAYOUT_PROGRAM).unwrap();
    let include = format!("-I{}", include_dir().display());
    compile(
        "gcc",
        &[
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            &include,
            source.to_str().unwrap(),
            "-o",
            binary.to_str().unwrap(),
        ],
    );
    let output = Command::new(&binary).output().expect("run layout program");
    assert!(output.status.success(), "layout program failed");
    let mut values = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        // "<kind> <name, which may hold spaces> <value>"
        let (_kind, rest) = line.split_once(' ').expect("kind");
        let (name, value) = rest.rsplit_once(' ').expect("value");
        let value = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        values.insert(name.to_string(), value);
    }
    values
}

#[test]
fn c_and_rust_agree_on_sizes_offsets_codes_and_limits() {
    use core::mem::{offset_of, size_of};
    let c = c_layout();
    let rust: Vec<(&str, u64)> = vec![
        (
            "vexfs_vector_file_info",
            size_of::<VexfsVectorFileInfo>() as u64,
        ),
        (
            "vexfs_vector_search_request",
            size_of::<VexfsVectorSearchRequest>() as u64,
        ),
        (
            "vexfs_batch_insert_request",
            size_of::<VexfsBatchInsertRequest>() as u64,
        ),
        (
            "vexfs_vector_file_info.dimensions",
            offset_of!(VexfsVectorFileInfo, dimensions) as u64,
        ),
        (
            "vexfs_vector_file_info.element_type",
            offset_of!(VexfsVectorFileInfo, element_type) as u64,
        ),
        (
            "vexfs_vector_file_info.vector_count",
            offset_of!(VexfsVectorFileInfo, vector_count) as u64,
        ),
        (
            "vexfs_vector_file_info.storage_format",
            offset_of!(VexfsVectorFileInfo, storage_format) as u64,
        ),
        (
            "vexfs_vector_file_info.data_offset",
            offset_of!(VexfsVectorFileInfo, data_offset) as u64,
        ),
        (
            "vexfs_vector_file_info.index_offset",
            offset_of!(VexfsVectorFileInfo, index_offset) as u64,
        ),
        (
            "vexfs_vector_file_info.compression_type",
            offset_of!(VexfsVectorFileInfo, compression_type) as u64,
        ),
        (
            "vexfs_vector_file_info.alignment_bytes",
            offset_of!(VexfsVectorFileInfo, alignment_bytes) as u64,
        ),
        (
            "vexfs_vector_search_request.query_vector",
            offset_of!(VexfsVectorSearchRequest, query_vector_addr) as u64,
        ),
        (
            "vexfs_vector_search_request.query_vector_bits",
            offset_of!(VexfsVectorSearchRequest, query_vector_addr) as u64,
        ),
        (
            "vexfs_vector_search_request.dimensions",
            offset_of!(VexfsVectorSearchRequest, dimensions) as u64,
        ),
        (
            "vexfs_vector_search_request.k",
            offset_of!(VexfsVectorSearchRequest, k) as u64,
        ),
        (
            "vexfs_vector_search_request.search_type",
            offset_of!(VexfsVectorSearchRequest, search_type) as u64,
        ),
        (
            "vexfs_vector_search_request.results",
            offset_of!(VexfsVectorSearchRequest, results_addr) as u64,
        ),
        (
            "vexfs_vector_search_request.results_bits",
            offset_of!(VexfsVectorSearchRequest, results_addr) as u64,
        ),
        (
            "vexfs_vector_search_request.result_ids",
            offset_of!(VexfsVectorSearchRequest, result_ids_addr) as u64,
        ),
        (
            "vexfs_vector_search_request.result_count",
            offset_of!(VexfsVectorSearchRequest, result_count) as u64,
        ),
        (
            "vexfs_batch_insert_request.vectors",
            offset_of!(VexfsBatchInsertRequest, vectors_addr) as u64,
        ),
        (
            "vexfs_batch_insert_request.vectors_bits",
            offset_of!(VexfsBatchInsertRequest, vectors_addr) as u64,
        ),
        (
            "vexfs_batch_insert_request.vector_count",
            offset_of!(VexfsBatchInsertRequest, vector_count) as u64,
        ),
        (
            "vexfs_batch_insert_request.dimensions",
            offset_of!(VexfsBatchInsertRequest, dimensions) as u64,
        ),
        (
            "vexfs_batch_insert_request.vector_ids",
            offset_of!(VexfsBatchInsertRequest, vector_ids_addr) as u64,
        ),
        (
            "vexfs_batch_insert_request.flags",
            offset_of!(VexfsBatchInsertRequest, flags) as u64,
        ),
        (
            "VEXFS_IOC_SET_VECTOR_META",
            VEXFS_IOC_SET_VECTOR_META.into(),
        ),
        (
            "VEXFS_IOC_GET_VECTOR_META",
            VEXFS_IOC_GET_VECTOR_META.into(),
        ),
        ("VEXFS_IOC_VECTOR_SEARCH", VEXFS_IOC_VECTOR_SEARCH.into()),
        ("VEXFS_IOC_BATCH_INSERT", VEXFS_IOC_BATCH_INSERT.into()),
        ("VEXFS_IOC_MAGIC", VEXFS_IOC_MAGIC.into()),
        ("VEXFS_V2_MAGIC", VEXFS_V2_MAGIC.into()),
        ("VEXFS_V2_MAJOR_VERSION", VEXFS_V2_MAJOR_VERSION.into()),
        ("VEXFS_V2_MINOR_VERSION", VEXFS_V2_MINOR_VERSION.into()),
        ("VEXFS_V2_PATCH_VERSION", VEXFS_V2_PATCH_VERSION.into()),
        ("VEXFS_VECTOR_FLOAT32", VEXFS_VECTOR_FLOAT32.into()),
        ("VEXFS_VECTOR_FLOAT16", VEXFS_VECTOR_FLOAT16.into()),
        ("VEXFS_VECTOR_INT8", VEXFS_VECTOR_INT8.into()),
        ("VEXFS_VECTOR_BINARY", VEXFS_VECTOR_BINARY.into()),
        ("VEXFS_SEARCH_EUCLIDEAN", VEXFS_SEARCH_EUCLIDEAN.into()),
        ("VEXFS_SEARCH_COSINE", VEXFS_SEARCH_COSINE.into()),
        ("VEXFS_SEARCH_DOT_PRODUCT", VEXFS_SEARCH_DOT_PRODUCT.into()),
        ("VEXFS_STORAGE_DENSE", VEXFS_STORAGE_DENSE.into()),
        ("VEXFS_STORAGE_SPARSE", VEXFS_STORAGE_SPARSE.into()),
        ("VEXFS_STORAGE_COMPRESSED", VEXFS_STORAGE_COMPRESSED.into()),
        ("VEXFS_COMPRESS_NONE", VEXFS_COMPRESS_NONE.into()),
        ("VEXFS_COMPRESS_LZ4", VEXFS_COMPRESS_LZ4.into()),
        ("VEXFS_COMPRESS_ZSTD", VEXFS_COMPRESS_ZSTD.into()),
        ("VEXFS_INSERT_OVERWRITE", VEXFS_INSERT_OVERWRITE.into()),
        ("VEXFS_INSERT_APPEND", VEXFS_INSERT_APPEND.into()),
        ("VEXFS_INSERT_VALIDATE", VEXFS_INSERT_VALIDATE.into()),
        ("VEXFS_INSERT_NO_REPLACE", VEXFS_INSERT_NO_REPLACE.into()),
        ("VEXFS_REQUEST_BYTES_MAX", limits::REQUEST_BYTES_MAX),
        ("VEXFS_IOC_DELETE_VECTORS", VEXFS_IOC_DELETE_VECTORS.into()),
        ("VEXFS_IOC_GET_VECTORS", VEXFS_IOC_GET_VECTORS.into()),
        (
            "vexfs_delete_request",
            size_of::<VexfsDeleteRequest>() as u64,
        ),
        (
            "vexfs_get_vectors_request",
            size_of::<VexfsGetVectorsRequest>() as u64,
        ),
        (
            "vexfs_delete_request.ids",
            offset_of!(VexfsDeleteRequest, ids_addr) as u64,
        ),
        (
            "vexfs_delete_request.id_count",
            offset_of!(VexfsDeleteRequest, id_count) as u64,
        ),
        (
            "vexfs_delete_request.flags",
            offset_of!(VexfsDeleteRequest, flags) as u64,
        ),
        (
            "vexfs_delete_request.deleted_count",
            offset_of!(VexfsDeleteRequest, deleted_count) as u64,
        ),
        (
            "vexfs_get_vectors_request.ids",
            offset_of!(VexfsGetVectorsRequest, ids_addr) as u64,
        ),
        (
            "vexfs_get_vectors_request.vectors",
            offset_of!(VexfsGetVectorsRequest, vectors_addr) as u64,
        ),
        (
            "vexfs_get_vectors_request.vectors_bits",
            offset_of!(VexfsGetVectorsRequest, vectors_addr) as u64,
        ),
        (
            "vexfs_get_vectors_request.id_count",
            offset_of!(VexfsGetVectorsRequest, id_count) as u64,
        ),
        (
            "vexfs_get_vectors_request.dimensions",
            offset_of!(VexfsGetVectorsRequest, dimensions) as u64,
        ),
        (
            "vexfs_get_vectors_request.found_count",
            offset_of!(VexfsGetVectorsRequest, found_count) as u64,
        ),
        (
            "vexfs_get_vectors_request.flags",
            offset_of!(VexfsGetVectorsRequest, flags) as u64,
        ),
        ("VEXFS_DIMENSIONS_MAX", limits::DIMENSIONS_MAX.into()),
        ("VEXFS_BATCH_VECTORS_MAX", limits::BATCH_VECTORS_MAX.into()),
        ("VEXFS_SEARCH_K_MAX", limits::SEARCH_K_MAX.into()),
        (
            "VEXFS_VECTOR_FILE_INFO_SIZE",
            VEXFS_VECTOR_FILE_INFO_SIZE as u64,
        ),
        (
            "VEXFS_VECTOR_SEARCH_REQUEST_SIZE",
            VEXFS_VECTOR_SEARCH_REQUEST_SIZE as u64,
        ),
        (
            "VEXFS_BATCH_INSERT_REQUEST_SIZE",
            VEXFS_BATCH_INSERT_REQUEST_SIZE as u64,
        ),
        ("VEXFS_VECTOR_DATA_SIZE(3, 5)", 3 * 5 * 4),
        ("VEXFS_VECTOR_ID_SIZE(7)", 7 * 8),
        (
            "VEXFS_VALID_DIMENSIONS(0)",
            limits::check_dimensions("d", 0).is_ok().into(),
        ),
        (
            "VEXFS_VALID_DIMENSIONS(65536)",
            limits::check_dimensions("d", 65_536).is_ok().into(),
        ),
        (
            "VEXFS_VALID_DIMENSIONS(65537)",
            limits::check_dimensions("d", 65_537).is_ok().into(),
        ),
        (
            "VEXFS_VALID_COUNT(0)",
            limits::check_batch_count(0).is_ok().into(),
        ),
        (
            "VEXFS_VALID_COUNT(1000000)",
            limits::check_batch_count(1_000_000).is_ok().into(),
        ),
        (
            "VEXFS_VALID_COUNT(1000001)",
            limits::check_batch_count(1_000_001).is_ok().into(),
        ),
        ("vexfs_float_to_bits(1.5f)", 1.5f32.to_bits().into()),
        ("vexfs_float_to_bits(-0.0f)", (-0.0f32).to_bits().into()),
        (
            "vexfs_set_payloads_request",
            size_of::<VexfsSetPayloadsRequest>() as u64,
        ),
        (
            "vexfs_set_payloads_request.ids",
            offset_of!(VexfsSetPayloadsRequest, ids_addr) as u64,
        ),
        (
            "vexfs_set_payloads_request.payloads",
            offset_of!(VexfsSetPayloadsRequest, payloads_addr) as u64,
        ),
        (
            "vexfs_set_payloads_request.payload_bytes",
            offset_of!(VexfsSetPayloadsRequest, payload_bytes_addr) as u64,
        ),
        (
            "vexfs_set_payloads_request.vectors",
            offset_of!(VexfsSetPayloadsRequest, vectors_addr) as u64,
        ),
        (
            "vexfs_set_payloads_request.vectors_bits",
            offset_of!(VexfsSetPayloadsRequest, vectors_addr) as u64,
        ),
        (
            "vexfs_set_payloads_request.id_count",
            offset_of!(VexfsSetPayloadsRequest, id_count) as u64,
        ),
        (
            "vexfs_set_payloads_request.dimensions",
            offset_of!(VexfsSetPayloadsRequest, dimensions) as u64,
        ),
        (
            "vexfs_set_payloads_request.flags",
            offset_of!(VexfsSetPayloadsRequest, flags) as u64,
        ),
        (
            "vexfs_set_payloads_request.reserved",
            offset_of!(VexfsSetPayloadsRequest, reserved) as u64,
        ),
        (
            "vexfs_get_payloads_request",
            size_of::<VexfsGetPayloadsRequest>() as u64,
        ),
        (
            "vexfs_get_payloads_request.ids",
            offset_of!(VexfsGetPayloadsRequest, ids_addr) as u64,
        ),
        (
            "vexfs_get_payloads_request.buffer",
            offset_of!(VexfsGetPayloadsRequest, buffer_addr) as u64,
        ),
        (
            "vexfs_get_payloads_request.payload_bytes",
            offset_of!(VexfsGetPayloadsRequest, payload_bytes_addr) as u64,
        ),
        (
            "vexfs_get_payloads_request.buffer_bytes",
            offset_of!(VexfsGetPayloadsRequest, buffer_bytes) as u64,
        ),
        (
            "vexfs_get_payloads_request.id_count",
            offset_of!(VexfsGetPayloadsRequest, id_count) as u64,
        ),
        (
            "vexfs_get_payloads_request.flags",
            offset_of!(VexfsGetPayloadsRequest, flags) as u64,
        ),
        (
            "vexfs_filtered_search_request",
            size_of::<VexfsFilteredSearchRequest>() as u64,
        ),
        (
            "vexfs_filtered_search_request.query_vector",
            offset_of!(VexfsFilteredSearchRequest, query_vector_addr) as u64,
        ),
        (
            "vexfs_filtered_search_request.query_vector_bits",
            offset_of!(VexfsFilteredSearchRequest, query_vector_addr) as u64,
        ),
        (
            "vexfs_filtered_search_request.results",
            offset_of!(VexfsFilteredSearchRequest, results_addr) as u64,
        ),
        (
            "vexfs_filtered_search_request.results_bits",
            offset_of!(VexfsFilteredSearchRequest, results_addr) as u64,
        ),
        (
            "vexfs_filtered_search_request.result_ids",
            offset_of!(VexfsFilteredSearchRequest, result_ids_addr) as u64,
        ),
        (
            "vexfs_filtered_search_request.filter",
            offset_of!(VexfsFilteredSearchRequest, filter_addr) as u64,
        ),
        (
            "vexfs_filtered_search_request.filter_bytes",
            offset_of!(VexfsFilteredSearchRequest, filter_bytes) as u64,
        ),
        (
            "vexfs_filtered_search_request.dimensions",
            offset_of!(VexfsFilteredSearchRequest, dimensions) as u64,
        ),
        (
            "vexfs_filtered_search_request.k",
            offset_of!(VexfsFilteredSearchRequest, k) as u64,
        ),
        (
            "vexfs_filtered_search_request.search_type",
            offset_of!(VexfsFilteredSearchRequest, search_type) as u64,
        ),
        (
            "vexfs_filtered_search_request.query_count",
            offset_of!(VexfsFilteredSearchRequest, query_count) as u64,
        ),
        (
            "vexfs_filtered_search_request.flags",
            offset_of!(VexfsFilteredSearchRequest, flags) as u64,
        ),
        (
            "vexfs_filtered_search_request.result_count",
            offset_of!(VexfsFilteredSearchRequest, result_count) as u64,
        ),
        (
            "vexfs_filtered_search_request.reserved",
            offset_of!(VexfsFilteredSearchRequest, reserved) as u64,
        ),
        (
            "vexfs_scroll_request",
            size_of::<VexfsScrollRequest>() as u64,
        ),
        (
            "vexfs_scroll_request.filter",
            offset_of!(VexfsScrollRequest, filter_addr) as u64,
        ),
        (
            "vexfs_scroll_request.ids",
            offset_of!(VexfsScrollRequest, ids_addr) as u64,
        ),
        (
            "vexfs_scroll_request.start_id",
            offset_of!(VexfsScrollRequest, start_id) as u64,
        ),
        (
            "vexfs_scroll_request.next_id",
            offset_of!(VexfsScrollRequest, next_id) as u64,
        ),
        (
            "vexfs_scroll_request.filter_bytes",
            offset_of!(VexfsScrollRequest, filter_bytes) as u64,
        ),
        (
            "vexfs_scroll_request.limit",
            offset_of!(VexfsScrollRequest, limit) as u64,
        ),
        (
            "vexfs_scroll_request.id_count",
            offset_of!(VexfsScrollRequest, id_count) as u64,
        ),
        (
            "vexfs_scroll_request.matching_count",
            offset_of!(VexfsScrollRequest, matching_count) as u64,
        ),
        (
            "vexfs_scroll_request.more",
            offset_of!(VexfsScrollRequest, more) as u64,
        ),
        (
            "vexfs_scroll_request.flags",
            offset_of!(VexfsScrollRequest, flags) as u64,
        ),
        ("VEXFS_IOC_SET_PAYLOADS", VEXFS_IOC_SET_PAYLOADS.into()),
        ("VEXFS_IOC_GET_PAYLOADS", VEXFS_IOC_GET_PAYLOADS.into()),
        (
            "VEXFS_IOC_FILTERED_SEARCH",
            VEXFS_IOC_FILTERED_SEARCH.into(),
        ),
        ("VEXFS_IOC_SCROLL", VEXFS_IOC_SCROLL.into()),
        (
            "VEXFS_SET_PAYLOADS_REQUEST_SIZE",
            VEXFS_SET_PAYLOADS_REQUEST_SIZE as u64,
        ),
        (
            "VEXFS_GET_PAYLOADS_REQUEST_SIZE",
            VEXFS_GET_PAYLOADS_REQUEST_SIZE as u64,
        ),
        (
            "VEXFS_FILTERED_SEARCH_REQUEST_SIZE",
            VEXFS_FILTERED_SEARCH_REQUEST_SIZE as u64,
        ),
        (
            "VEXFS_SCROLL_REQUEST_SIZE",
            VEXFS_SCROLL_REQUEST_SIZE as u64,
        ),
        ("VEXFS_PAYLOAD_BYTES_MAX", limits::PAYLOAD_BYTES_MAX.into()),
        ("VEXFS_FILTER_BYTES_MAX", limits::FILTER_BYTES_MAX.into()),
        (
            "VEXFS_SEARCH_QUERIES_MAX",
            limits::SEARCH_QUERIES_MAX.into(),
        ),
        ("VEXFS_PAYLOAD_MERGE", VEXFS_PAYLOAD_MERGE.into()),
        ("VEXFS_SEARCH_EXACT", VEXFS_SEARCH_EXACT.into()),
        ("VEXFS_NO_ID", VEXFS_NO_ID),
    ];
    let mut mismatches = Vec::new();
    for (name, rust_value) in &rust {
        match c.get(*name) {
            Some(c_value) if c_value == rust_value => {}
            other => mismatches.push(format!("{name}: C {other:?}, Rust {rust_value}")),
        }
    }
    assert_eq!(
        c.len(),
        rust.len(),
        "the C program printed names Rust does not check"
    );
    assert!(
        mismatches.is_empty(),
        "C and Rust disagree:\n{}",
        mismatches.join("\n")
    );
}

/// Both generations of programs: `float *` spellings and `__u32 *_bits`
/// spellings, in C11 and in C++, with `uint64_t` or `__u64` ids.
const BOTH_GENERATIONS: &str = r#"
#include "vexfs_v2_uapi.h"
int older(float *v, float *q, float *d, uint64_t *ids) {
    struct vexfs_batch_insert_request ins = { 0 };
    struct vexfs_vector_search_request s = { 0 };
    struct vexfs_set_payloads_request p = { 0 };
    struct vexfs_filtered_search_request f = { 0 };
    ins.vectors = v; ins.vector_count = 1; ins.dimensions = 4; ins.vector_ids = ids;
    ins.flags = VEXFS_INSERT_APPEND;
    s.query_vector = q; s.results = d; s.result_ids = ids; s.k = 1; s.dimensions = 4;
    p.ids = ids; p.payloads = "{}"; p.vectors = v; p.flags = VEXFS_PAYLOAD_MERGE;
    f.query_vector = q; f.results = d; f.result_ids = ids; f.filter = "{}";
    f.flags = VEXFS_SEARCH_EXACT;
    return (int)(ins.vector_count + s.k + p.flags + f.flags);
}
int newer(__u32 *v, __u32 *q, __u32 *d, __u64 *ids, char *buffer) {
    struct vexfs_batch_insert_request ins = { 0 };
    struct vexfs_vector_search_request s = { 0 };
    struct vexfs_set_payloads_request p = { 0 };
    struct vexfs_get_payloads_request g = { 0 };
    struct vexfs_filtered_search_request f = { 0 };
    struct vexfs_scroll_request sc = { 0 };
    ins.vectors_bits = v; ins.vector_ids = ids;
    s.query_vector_bits = q; s.results_bits = d; s.result_ids = ids;
    p.vectors_bits = v; p.payload_bytes = q;
    g.ids = ids; g.buffer = buffer; g.payload_bytes = d;
    f.query_vector_bits = q; f.results_bits = d;
    sc.ids = ids; sc.start_id = ids[0];
    return (int)(ins.flags + s.result_count + p.id_count + g.id_count + f.result_count
                 + (sc.next_id == VEXFS_NO_ID));
}
"#;

#[test]
fn header_compiles_for_both_generations_in_c_cpp_and_kernel_style() {
    let dir = scratch_dir("c_abi_generations");
    let include = format!("-I{}", include_dir().display());
    let c_source = dir.join("generations.c");
    std::fs::write(&c_source, BOTH_GENERATIONS).unwrap();
    let object = dir.join("out.o");
    let common = ["-Wall", "-Wextra", "-Werror", "-c"];

    let mut c11 = vec!["-std=c11", &include];
    c11.extend(common);
    c11.extend([c_source.to_str().unwrap(), "-o", object.to_str().unwrap()]);
    compile("gcc", &c11);

    // C++ has no `= { 0 }` without warnings on every field; use value-init.
    let cpp_source = dir.join("generations.cc");
    std::fs::write(&cpp_source, BOTH_GENERATIONS.replace("= { 0 }", "{}")).unwrap();
    let mut cpp = vec!["-std=c++11", &include];
    cpp.extend(common);
    cpp.extend([cpp_source.to_str().unwrap(), "-o", object.to_str().unwrap()]);
    compile("g++", &cpp);

    // Kernel-style: <linux/types.h>, no floating point allowed in registers.
    let kernel_source = dir.join("kernel_style.c");
    std::fs::write(
        &kernel_source,
        "#include \"vexfs_v2_uapi.h\"\n\
         long handle(unsigned int cmd, struct vexfs_batch_insert_request *r) {\n\
         if (cmd != VEXFS_IOC_BATCH_INSERT) return -25;\n\
         return (long)r->vector_count * VEXFS_VALID_DIMENSIONS(r->dimensions); }\n",
    )
    .unwrap();
    let mut kernel = vec![
        "-D__KERNEL__",
        "-std=gnu11",
        "-mgeneral-regs-only",
        &include,
    ];
    kernel.extend(common);
    kernel.extend([
        kernel_source.to_str().unwrap(),
        "-o",
        object.to_str().unwrap(),
    ]);
    compile("gcc", &kernel);

    // A program that pulls in <linux/types.h> before the header still compiles.
    let mixed_source = dir.join("mixed.c");
    std::fs::write(
        &mixed_source,
        "#include <linux/fs.h>\n#include \"vexfs_v2_uapi.h\"\n\
         unsigned f(struct vexfs_vector_file_info *i) { return i->dimensions; }\n",
    )
    .unwrap();
    let mut mixed = vec!["-std=c11", &include];
    mixed.extend(common);
    mixed.extend([
        mixed_source.to_str().unwrap(),
        "-o",
        object.to_str().unwrap(),
    ]);
    compile("gcc", &mixed);
}
