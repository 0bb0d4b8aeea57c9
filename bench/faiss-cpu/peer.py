"""faiss-cpu from PyPI, in-process in Python, as `vexfs-bench search
--compare-faiss-cpu` runs it beside VexFS: the same vectors, queries, index
and protocol as the bench's other rows, one OpenMP thread.

    peer.py describe
        One JSON object: the faiss and Python it runs with, the SIMD level.
    peer.py run --base B.npy --queries Q.npy --params P.json
        Builds the index like the daemon does, then per search setting the
        batched pass and the one-at-a-time pass; one JSON object with the
        latencies (ns) and result ids of every pass. vexfs-bench computes
        recall and percentiles from them with the code of its other rows.

Only that one JSON object goes to stdout; progress goes to stderr.
The parameters (P.json): {"metric": "cosine" | "l2" | "dot", "index": a
faiss index-factory string, "settings": ["efSearch=64", ...] (an empty
string: the index's defaults), "k": neighbours, "search_batch": queries per
request of the batched pass (0: none)}.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import faiss

METRICS = ("cosine", "l2", "dot")


def progress(message):
    print(f"faiss-cpu: {message}", file=sys.stderr, flush=True)


def describe():
    """What this interpreter's faiss is, and the SIMD level its dynamic
    dispatch picked (FAISS_SIMD_LEVEL, when set, chooses it)."""
    config = getattr(faiss, "SIMDConfig", None)
    return {
        "faiss_version": faiss.__version__,
        "compile_options": faiss.get_compile_options().strip(),
        "simd_level": config.get_level_name() if config is not None else None,
        "simd_level_env": os.environ.get("FAISS_SIMD_LEVEL"),
        "python": sys.version.split()[0],
        "numpy_version": np.__version__,
    }


def load_rows(path, what):
    rows = np.load(path)
    if rows.dtype != np.float32 or rows.ndim != 2:
        raise ValueError(f"{what} {path}: {rows.dtype} of shape {rows.shape}, expected 2-D float32")
    return np.ascontiguousarray(rows)


def check_params(params, dims):
    for key in ("metric", "index", "settings", "k", "search_batch"):
        if key not in params:
            raise ValueError(f"parameters: no {key!r}")
    if params["metric"] not in METRICS:
        raise ValueError(f"parameters: metric {params['metric']!r} is not one of {METRICS}")
    if not isinstance(params["k"], int) or params["k"] < 1:
        raise ValueError(f"parameters: k {params['k']!r} is not a positive integer")
    if not isinstance(params["search_batch"], int) or params["search_batch"] < 0:
        raise ValueError(f"parameters: search_batch {params['search_batch']!r} is not a count")
    if dims < 1:
        raise ValueError("vectors of no dimensions")


def build(base, metric, factory):
    """The daemon's index: cosine is inner product over L2-normalised copies,
    trained (when the index needs it) on all vectors, then one add."""
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.index_factory(base.shape[1], factory, faiss_metric)
    stored = base
    if metric == "cosine":
        stored = base.copy()
        faiss.normalize_L2(stored)
    started = time.perf_counter()
    if not index.is_trained:
        index.train(stored)
    trained = time.perf_counter()
    index.add(stored)
    added = time.perf_counter()
    return index, trained - started, added - trained


def batched_pass(index, queries, k, per_request, normalize):
    """Every query once, in requests of `per_request`: one index.search per
    request, its latency from the slice to the answer."""
    count = queries.shape[0]
    ids = np.empty((count, k), dtype=np.int64)
    latency_ns = []
    started = time.perf_counter()
    for first in range(0, count, per_request):
        request_started = time.perf_counter_ns()
        rows = queries[first : first + per_request]
        if normalize:
            rows = rows.copy()
            faiss.normalize_L2(rows)
        _, labels = index.search(rows, k)
        latency_ns.append(time.perf_counter_ns() - request_started)
        ids[first : first + len(labels)] = labels
    seconds = time.perf_counter() - started
    return {
        "queries_per_request": per_request,
        "seconds": seconds,
        "latency_ns": latency_ns,
        "ids": ids.ravel().tolist(),
    }


def one_at_a_time_pass(index, queries, k, normalize):
    """Every query once, as a user asks one: for cosine a normalised (1, d)
    copy, then index.search; each timed on its own."""
    count = queries.shape[0]
    ids = np.empty((count, k), dtype=np.int64)
    latency_ns = []
    started = time.perf_counter()
    for i in range(count):
        query_started = time.perf_counter_ns()
        query = queries[i : i + 1]
        if normalize:
            query = query.copy()
            faiss.normalize_L2(query)
        _, labels = index.search(query, k)
        latency_ns.append(time.perf_counter_ns() - query_started)
        ids[i] = labels[0]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "latency_ns": latency_ns, "ids": ids.ravel().tolist()}


def run(args):
    with open(args.params, encoding="utf-8") as f:
        params = json.load(f)
    base = load_rows(args.base, "base vectors")
    queries = load_rows(args.queries, "queries")
    if base.shape[1] != queries.shape[1]:
        raise ValueError(f"base vectors of {base.shape[1]} dimensions, queries of {queries.shape[1]}")
    check_params(params, base.shape[1])
    faiss.omp_set_num_threads(1)
    metric, factory, k = params["metric"], params["index"], params["k"]
    per_request = params["search_batch"]
    normalize = metric == "cosine"
    progress(f"building {factory} over {base.shape[0]} × {base.shape[1]} ({metric}), one add")
    index, train_seconds, add_seconds = build(base, metric, factory)
    space = faiss.ParameterSpace()
    passes = []
    for setting in params["settings"]:
        if setting:
            space.set_index_parameters(index, setting)
        label = setting or "default search parameters"
        progress(f"{queries.shape[0]} queries, k = {k}, {label}")
        # Untimed, as vexfs-bench does after setting the parameters.
        index.search(normalized(queries[:1]) if normalize else queries[:1], k)
        batched = batched_pass(index, queries, k, per_request, normalize) if per_request else None
        one = one_at_a_time_pass(index, queries, k, normalize)
        passes.append({"search_params": setting, "batched": batched, "one_at_a_time": one})
    return {
        "peer": describe(),
        "omp_threads": faiss.omp_get_max_threads(),
        "count": base.shape[0],
        "dims": base.shape[1],
        "queries": queries.shape[0],
        "k": k,
        "train_seconds": train_seconds,
        "add_seconds": add_seconds,
        "passes": passes,
    }


def normalized(rows):
    rows = rows.copy()
    faiss.normalize_L2(rows)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("describe")
    measure = commands.add_parser("run")
    measure.add_argument("--base", required=True, help="stored vectors, 2-D float32 .npy")
    measure.add_argument("--queries", required=True, help="queries, 2-D float32 .npy")
    measure.add_argument("--params", required=True, help="the run's parameters, JSON")
    args = parser.parse_args()
    try:
        report = describe() if args.command == "describe" else run(args)
    except Exception as error:  # one line for vexfs-bench to quote, not a traceback
        print(f"peer.py: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    json.dump(report, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
