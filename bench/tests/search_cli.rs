//! `vexfs-bench search` as a user runs it: formats and mounts VexFS, inserts
//! and searches through the ioctls at each index setting, measures faiss
//! in-process on the same vectors, prints one JSON object, writes the
//! report and the recall-vs-QPS plot, and leaves nothing behind.

mod common;

use std::path::{Path, PathBuf};

use common::{bench, build_beside, build_vexfs, run_json_leaving_nothing, Scratch};
use serde_json::Value;

fn can_mount() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0 && Path::new("/dev/fuse").exists()
}

/// Runs `vexfs-bench search ARGS --dir SCRATCH --json`; the report, after
/// checking that the scratch directory is unmounted and empty again.
fn run_search(name: &str, args: &[&str]) -> Value {
    let vexfs = build_vexfs();
    assert!(vexfs.is_file(), "{} was not built", vexfs.display());
    let scratch = Scratch::new(name);
    let dir = scratch.0.to_str().unwrap();
    let mut all = vec!["search", "--dir", dir, "--json"];
    all.extend_from_slice(args);
    run_json_leaving_nothing(&all, &scratch.0)
}

fn number(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {value}"))
}

/// recall@k of each setting, in order.
fn recalls(report: &Value, system: &str) -> Vec<f64> {
    report[system]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| number(s, "recall_at_k"))
        .collect()
}

/// Both systems inserted everything and answered every query at every setting.
fn assert_throughput(report: &Value, count: u64, queries: u64, settings: usize) {
    for system in ["vexfs", "faiss"] {
        assert_eq!(report[system]["insert"]["vectors"].as_u64(), Some(count));
        assert!(number(&report[system]["insert"], "vectors_per_s") > 0.0);
        let measured = report[system]["settings"].as_array().unwrap();
        assert_eq!(measured.len(), settings, "{system}: {report}");
        for setting in measured {
            assert_eq!(setting["queries"].as_u64(), Some(queries));
            assert!(number(setting, "qps") > 0.0, "{system}: {setting}");
            let lat = &setting["lat_us"];
            let ordered = ["p50", "p99", "p999", "max"].map(|p| number(lat, p));
            assert!(ordered[0] > 0.0, "{system}: {setting}");
            assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{setting}");
        }
    }
}

#[test]
fn an_hnsw_sweep_keeps_its_recall_through_the_mount_and_is_plotted() {
    if !can_mount() {
        eprintln!("SKIP an_hnsw_sweep_keeps_its_recall_through_the_mount_and_is_plotted: needs root and /dev/fuse");
        return;
    }
    let out = Scratch::new("search-hnsw-out");
    let report = run_search(
        "search-hnsw",
        &[
            "--dataset",
            "structured",
            "--count",
            "5000",
            "--dims",
            "128",
            "--clusters",
            "100",
            "--query-count",
            "100",
            "--index",
            "HNSW32",
            "--ef-search",
            "8,32,128",
            "--out",
            out.0.to_str().unwrap(),
        ],
    );
    assert_eq!(report["benchmark"], "search");
    assert_eq!(report["index"], "HNSW32");
    assert_eq!(
        report["settings"],
        serde_json::json!(["efSearch=8", "efSearch=32", "efSearch=128"])
    );
    assert_throughput(&report, 5_000, 100, 3);
    for system in ["vexfs", "faiss"] {
        let recall = recalls(&report, system);
        assert!(recall[2] >= 0.95, "{system}: recall@10 {recall:?}");
        // A wider search finds at least about as much.
        assert!(
            recall.windows(2).all(|w| w[1] >= w[0] - 0.02),
            "{system}: {recall:?}"
        );
    }

    let files: Vec<PathBuf> = [
        "search.json",
        "search-recall-qps.png",
        "search-recall-qps.svg",
    ]
    .iter()
    .map(|name| out.0.join(name))
    .collect();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(written["vexfs"]["settings"], report["vexfs"]["settings"]);
    let png = std::fs::read(&files[1]).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let svg = std::fs::read_to_string(&files[2]).unwrap();
    assert!(svg.contains("<svg"), "not an SVG");
    assert_eq!(report["plot"].as_array().map(Vec::len), Some(2));
    for file in &files {
        std::fs::remove_file(file).unwrap();
    }
}

#[test]
fn flat_through_the_mount_is_exact() {
    if !can_mount() {
        eprintln!("SKIP flat_through_the_mount_is_exact: needs root and /dev/fuse");
        return;
    }
    let report = run_search(
        "search-flat",
        &[
            "--dataset",
            "structured",
            "--count",
            "2000",
            "--dims",
            "64",
            "--clusters",
            "30",
            "--query-count",
            "100",
            "--index",
            "Flat",
        ],
    );
    assert_throughput(&report, 2_000, 100, 1);
    // The data is deterministic: a near-tie between ranks 10 and 11 that
    // float rounding could flip would fail every time, not now and then.
    for system in ["vexfs", "faiss"] {
        assert_eq!(recalls(&report, system), [1.0], "{system}: exact search");
        // The batched pass (--search-batch 100 by default): one request of
        // all 100 queries, the same exact answers.
        let batched = &report[system]["batched"][0];
        assert_eq!(
            batched["queries"].as_u64(),
            Some(100),
            "{system}: {batched}"
        );
        assert_eq!(batched["requests"].as_u64(), Some(1), "{system}: {batched}");
        assert_eq!(number(batched, "recall_at_k"), 1.0, "{system}: {batched}");
        assert!(number(&batched["request_lat_us"], "p50") > 0.0, "{batched}");
    }
    assert_eq!(report["search_batch"].as_u64(), Some(100));
    assert!(
        report["faiss_cpu"].is_null(),
        "only with --compare-faiss-cpu"
    );
}

#[test]
fn an_ivf_probe_that_finds_fewer_than_k_counts_them_as_misses() {
    if !can_mount() {
        eprintln!("SKIP an_ivf_probe_that_finds_fewer_than_k_counts_them_as_misses: needs root and /dev/fuse");
        return;
    }
    // 300 vectors in 64 lists: one probed list holds about 5, fewer than k.
    let report = run_search(
        "search-ivf-short",
        &[
            "--dataset",
            "original",
            "--count",
            "300",
            "--dims",
            "8",
            "--query-count",
            "20",
            "--index",
            "IVF64,Flat",
            "--nprobe",
            "1,64",
        ],
    );
    assert_throughput(&report, 300, 20, 2);
    // faiss in-process answers short (fewer than k) at nprobe=1; the
    // daemon answers min(k, count) always, by an exact scan when its index
    // comes back short (docs/VECTORS.md), so its recall is at least faiss's.
    let faiss_short = report["faiss"]["settings"][0]["short_answers"]
        .as_u64()
        .unwrap();
    assert!(
        faiss_short > 0,
        "faiss: nprobe=1 found k every time: {report}"
    );
    for setting in report["vexfs"]["settings"].as_array().unwrap() {
        assert_eq!(
            setting["short_answers"].as_u64(),
            Some(0),
            "vexfs: {report}"
        );
    }
    let (ours, theirs) = (recalls(&report, "vexfs"), recalls(&report, "faiss"));
    assert!(ours[0] >= theirs[0], "vexfs {ours:?} vs faiss {theirs:?}");
    let short = report["faiss"]["settings"][1]["short_answers"].as_u64();
    assert_eq!(short, Some(0), "faiss: every list probed: {report}");
    assert!(theirs[0] < 1.0, "faiss: {theirs:?}");
    assert_eq!(theirs[1], 1.0, "faiss: IVF probing every list is exact");
    assert_eq!(ours[1], 1.0, "vexfs: IVF probing every list is exact");
}

#[test]
fn filtered_search_answers_only_matching_ids_beside_faiss_with_a_selector() {
    if !can_mount() {
        eprintln!("SKIP filtered_search_answers_only_matching_ids_beside_faiss_with_a_selector: needs root and /dev/fuse");
        return;
    }
    let report = run_search(
        "search-filtered",
        &[
            "--dataset",
            "structured",
            "--count",
            "4000",
            "--dims",
            "32",
            "--clusters",
            "40",
            "--query-count",
            "60",
            "--index",
            "HNSW32",
            "--filter-selectivity",
            "0.5,0.02",
            "--filter-queries",
            "40",
        ],
    );
    assert_throughput(&report, 4_000, 60, 1);
    let filtered = &report["filtered"];
    assert_eq!(filtered["queries"].as_u64(), Some(40), "{filtered}");
    assert_eq!(filtered["payloads"]["payloads"].as_u64(), Some(4_000));
    assert!(number(&filtered["payloads"], "payloads_per_s") > 0.0);
    let rows = filtered["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{filtered}");
    for (row, fraction) in rows.iter().zip([0.5, 0.02]) {
        assert_eq!(number(row, "selectivity"), fraction);
        // The hash spreads ids evenly over the buckets: about the fraction matches.
        let matching = number(row, "matching");
        assert!(
            (matching / 4_000.0 - fraction).abs() < 0.01 + fraction * 0.2,
            "{row}"
        );
        for system in ["vexfs", "faiss", "faiss_exact"] {
            assert_eq!(row[system]["queries"].as_u64(), Some(40), "{row}");
            assert!(number(&row[system], "qps") > 0.0, "{system}: {row}");
        }
        // Both exact paths are exact; VexFS scans exactly below a quarter and
        // falls back to exact when its index comes back short.
        assert_eq!(number(&row["faiss_exact"], "recall_at_k"), 1.0, "{row}");
        for system in ["vexfs", "vexfs_payload_index"] {
            assert!(number(&row[system], "recall_at_k") >= 0.95, "{row}");
        }
    }
    for system in ["vexfs", "vexfs_payload_index"] {
        let recall = number(&rows[1][system], "recall_at_k");
        assert_eq!(recall, 1.0, "{system}, exact scan: {filtered}");
    }
}

#[test]
fn the_same_queries_through_http_beside_the_ioctls_and_the_server_is_gone_after() {
    let name = "the_same_queries_through_http_beside_the_ioctls_and_the_server_is_gone_after";
    if !can_mount() {
        eprintln!("SKIP {name}: needs root and /dev/fuse");
        return;
    }
    if let Err(why) = build_beside("vexfs-server", "vexfs-serve") {
        eprintln!("SKIP {name}: no vexfs-serve beside vexfs-bench: {why}");
        return;
    }
    let report = run_search(
        "search-http",
        &[
            "--dataset",
            "structured",
            "--count",
            "2000",
            "--dims",
            "32",
            "--clusters",
            "30",
            "--query-count",
            "50",
            "--index",
            "HNSW32",
            "--http",
        ],
    );
    assert_throughput(&report, 2_000, 50, 1);
    let http = &report["http"];
    assert_eq!(http["search_params"], "efSearch=64", "{http}");
    let result = &http["result"];
    assert_eq!(result["name"], "HTTP (vexfs-serve)");
    assert_eq!(result["insert"]["vectors"].as_u64(), Some(2_000));
    assert!(number(&result["insert"], "vectors_per_s") > 0.0);
    let measured = result["settings"].as_array().unwrap();
    assert_eq!(measured.len(), 1, "{http}");
    assert_eq!(measured[0]["queries"].as_u64(), Some(50));
    // The same vectors and index behind both paths: the same neighbours, near enough.
    let (ioctl, through_http) = (
        recalls(&report, "vexfs")[0],
        number(&measured[0], "recall_at_k"),
    );
    assert!(through_http >= 0.95, "{http}");
    assert!(
        (through_http - ioctl).abs() <= 0.02,
        "ioctl {ioctl}, HTTP {through_http}"
    );
    // HTTP adds to the ioctl path; the hop is what it adds at the median.
    let hop = &http["hop_us"];
    assert_eq!(hop["search_params"], "efSearch=64");
    let http_p50 = number(&measured[0]["lat_us"], "p50");
    let ioctl_p50 = number(&report["vexfs"]["settings"][0]["lat_us"], "p50");
    assert!(
        (number(hop, "p50") - (http_p50 - ioctl_p50)).abs() < 1e-6,
        "{hop}"
    );
    // Started by the bench, stopped by it: the pid is gone (or someone else's).
    let server = http["server"].as_str().unwrap();
    assert!(server.contains("started by the bench"), "{server}");
    let pid = server
        .split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no pid in {server}"));
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_ne!(comm.trim(), "vexfs-serve", "pid {pid} still runs");
}

/// A small deterministic data set, written as .fvecs, with its exact cosine
/// neighbours (computed here in f64) written as .ivecs.
struct Files {
    vectors: PathBuf,
    queries: PathBuf,
    truth: PathBuf,
}

const FILE_VECTORS: usize = 1_000;
const FILE_QUERIES: usize = 30;
const FILE_DIMS: usize = 16;
const FILE_K: usize = 10;

fn write_files(dir: &Path) -> Files {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut rows = |count: usize| -> Vec<Vec<f32>> {
        (0..count)
            .map(|_| (0..FILE_DIMS).map(|_| next() as f32).collect())
            .collect()
    };
    let base = rows(FILE_VECTORS);
    let queries = rows(FILE_QUERIES);
    let fvecs = |rows: &[Vec<f32>]| -> Vec<u8> {
        let mut bytes = Vec::new();
        for row in rows {
            bytes.extend_from_slice(&(FILE_DIMS as i32).to_le_bytes());
            for x in row {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        bytes
    };
    let cosine = |a: &[f32], b: &[f32]| -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let norm = |v: &[f32]| v.iter().map(|x| *x as f64 * *x as f64).sum::<f64>().sqrt();
        dot / (norm(a) * norm(b))
    };
    let mut ivecs = Vec::new();
    for query in &queries {
        let mut order: Vec<usize> = (0..FILE_VECTORS).collect();
        order.sort_by(|&i, &j| cosine(query, &base[j]).total_cmp(&cosine(query, &base[i])));
        ivecs.extend_from_slice(&(FILE_K as i32).to_le_bytes());
        for id in &order[..FILE_K] {
            ivecs.extend_from_slice(&(*id as i32).to_le_bytes());
        }
    }
    let files = Files {
        vectors: dir.join("base.fvecs"),
        queries: dir.join("queries.fvecs"),
        truth: dir.join("truth.ivecs"),
    };
    std::fs::write(&files.vectors, fvecs(&base)).unwrap();
    std::fs::write(&files.queries, fvecs(&queries)).unwrap();
    std::fs::write(&files.truth, ivecs).unwrap();
    files
}

#[test]
fn fvecs_input_with_given_ground_truth_agrees_with_computed() {
    if !can_mount() {
        eprintln!(
            "SKIP fvecs_input_with_given_ground_truth_agrees_with_computed: needs root and /dev/fuse"
        );
        return;
    }
    let data = Scratch::new("search-files-data");
    let files = write_files(&data.0);
    let common = [
        "--vectors",
        files.vectors.to_str().unwrap(),
        "--queries",
        files.queries.to_str().unwrap(),
        "--index",
        "HNSW32",
        "--ef-search",
        "2,64",
    ];
    let computed = run_search("search-files-computed", &common);
    let mut with_truth = common.to_vec();
    with_truth.extend_from_slice(&["--ground-truth", files.truth.to_str().unwrap()]);
    let given = run_search("search-files-given", &with_truth);
    for path in [&files.vectors, &files.queries, &files.truth] {
        std::fs::remove_file(path).unwrap();
    }

    assert!(computed["ground_truth"]
        .as_str()
        .unwrap()
        .starts_with("computed"));
    assert!(given["ground_truth"].as_str().unwrap().starts_with("given"));
    for report in [&computed, &given] {
        assert_eq!(report["dims"].as_u64(), Some(FILE_DIMS as u64));
        assert_throughput(report, FILE_VECTORS as u64, FILE_QUERIES as u64, 2);
    }
    // The same index answers the same way in both runs: equal recall means
    // the file's neighbours and the computed ones agree.
    for system in ["vexfs", "faiss"] {
        let (a, b) = (recalls(&computed, system), recalls(&given, system));
        assert_eq!(a, b, "{system}: computed {a:?}, given {b:?}");
        assert!(a[1] > 0.9, "{system}: {a:?}");
    }
}

#[test]
fn refuses_bad_arguments_before_touching_anything() {
    let scratch = Scratch::new("search-cli-bad");
    let dir = scratch.0.to_str().unwrap();
    let cases: [(&[&str], &str); 20] = [
        (&["--k", "0"], "--k"),
        (&["--batch", "0"], "--batch"),
        (&["--dataset", "original", "--count", "0"], "--count"),
        (&["--index", "Flat", "--ef-search", "16"], "--ef-search"),
        (&["--index", "HNSW32", "--nprobe", "4"], "--nprobe"),
        (&["--search-params", "efSearch"], "name=value"),
        (
            &["--dataset", "original-small", "--count", "5"],
            "1000 × 384",
        ),
        (&["--ef-search", "16", "--nprobe", "4"], "one parameter"),
        (&["--filter-selectivity", "0"], "(0, 1]"),
        (&["--filter-selectivity", "0.5,1.5"], "(0, 1]"),
        (
            &["--index", "PQ8", "--filter-selectivity", "0.5"],
            "ID selector",
        ),
        (&["--filter-queries", "10"], "--filter-selectivity"),
        (&["--index", "IVF64,Flat", "--http"], "HNSW<m> or Flat"),
        (&["--http-url", "localhost:6333"], "http://HOST:PORT"),
        (&["--http-api-key", "k"], "--http-url"),
        (&["--search-batch", "1025"], "--search-batch"),
        (&["--faiss-cpu-simd-level", "AVX2"], "--compare-faiss-cpu"),
        (
            &["--compare-faiss-cpu", "--faiss-cpu-simd-level", "avx2"],
            "--faiss-cpu-simd-level",
        ),
        (&["--pin-cpu", "1023"], "not one of this process's CPUs"),
        (&["--pin-cpu", "0", "--mount", "/tmp"], "--mount"),
    ];
    for (extra, named) in cases {
        let mut args = vec!["search", "--dir", dir, "--query-count", "10"];
        args.extend_from_slice(extra);
        let output = bench(&args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(&scratch.0).unwrap().count(), 0);
}
