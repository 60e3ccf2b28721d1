#!/usr/bin/env python3
"""Reference vector-search figures from faiss (CPU) for uae-index: exact
inner-product search and HNSW, on random unit vectors or given ones.

    $UAE_CACHE/venv/bin/python -m pip install faiss-cpu
    $UAE_CACHE/venv/bin/python assets/bench_search_reference.py \
        [--n 100000 --dim 384 --queries 1000 --k 10 --seed 0] \
        [--vectors X.npy --query-vectors Q.npy] [--m 16 --ef-construction 200]

Data: without --vectors, rng = numpy.random.default_rng(seed); the database is
rng.standard_normal((n, dim), float32) and then the queries
rng.standard_normal((queries, dim), float32) from the same generator, each row
divided by its L2 norm. With --vectors/--query-vectors (.npy, 2-d) the arrays
are used as given (cast to C-contiguous float32, not re-normalised).

Measures (threads = --threads, default all cores, via faiss.omp_set_num_threads):
  flat   IndexFlatIP: add time; search of all queries in one batch (queries/s,
         all threads); one query at a time over the first --single-queries
         queries (queries/s, with 1 thread and with all threads: faiss runs a
         lone query on one thread, and on a busy machine the idle OpenMP
         threads' barrier makes "all threads" much slower). The batched result
         is the exact ground truth.
  hnsw   IndexHNSWFlat(dim, M, METRIC_INNER_PRODUCT), efConstruction: build
         (add) time with all threads; then for each efSearch: recall@k = mean
         over queries of |HNSW top k ∩ exact top k| / k, and queries/s for
         the batch with 1 thread and with all threads, and one query at a time
         (as for flat, 1 thread and all threads).
Each timing follows a warm-up search of 10 queries (not timed) and is repeated
until 1 s has passed (at most 5 runs); the best rate is kept, as `uae index
bench` does (on a shared machine the fastest run is the least disturbed).
Prints progress on stderr and one JSON line on stdout.

Note: random unit vectors in 384-d have no structure (every neighbour is
nearly as far as any other point), the worst case for HNSW: its recall here is
far below what real embeddings give (use --vectors with real ones for that).
HNSW build time dominates the run (reduce --ef-construction to shorten it; the
value used is in the JSON). Measured at the defaults with faiss-cpu 1.15.1 on 2
cores shared with a cargo build (nice 10): 125 s in all, HNSW build 106 s.
"""
import argparse
import json
import os
import platform
import sys
import time


def log(*a):
    print("[bench-search]", *a, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vectors", default=None, help=".npy database (n x dim)")
    ap.add_argument("--query-vectors", default=None, help=".npy queries (q x dim)")
    ap.add_argument("--m", type=int, default=16, help="HNSW M")
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef-search", default="16,32,64,128,256")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--single-queries", type=int, default=200,
                    help="queries timed one at a time (the first N)")
    ap.add_argument("--no-hnsw", action="store_true")
    args = ap.parse_args()

    import faiss
    import numpy as np

    if bool(args.vectors) != bool(args.query_vectors):
        sys.exit("error: give both --vectors and --query-vectors, or neither")
    if args.vectors:
        xb = np.ascontiguousarray(np.load(args.vectors), dtype=np.float32)
        xq = np.ascontiguousarray(np.load(args.query_vectors), dtype=np.float32)
        if xb.ndim != 2 or xq.ndim != 2 or xb.shape[1] != xq.shape[1]:
            sys.exit(f"error: shapes {xb.shape} and {xq.shape} are not (n,d) and (q,d)")
        source = {"vectors": args.vectors, "query_vectors": args.query_vectors}
    else:
        rng = np.random.default_rng(args.seed)
        xb = rng.standard_normal((args.n, args.dim), dtype=np.float32)
        xq = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        xq /= np.linalg.norm(xq, axis=1, keepdims=True)
        source = {"random": "numpy default_rng(seed) standard_normal, L2-normalised",
                  "seed": args.seed}
    n, dim = xb.shape
    nq, k = xq.shape[0], args.k
    faiss.omp_set_num_threads(args.threads)
    threads = faiss.omp_get_max_threads()
    log(f"n={n} dim={dim} queries={nq} k={k} threads={threads} faiss={faiss.__version__}")

    def timed_once(fn):
        """fn's result and its time (for steps that change the index)."""
        t = time.perf_counter()
        r = fn()
        return r, time.perf_counter() - t

    def timed(fn):
        """fn's result and its shortest time over runs repeated until 1 s has
        passed (at most 5)."""
        start, best, r = time.perf_counter(), float("inf"), None
        for _ in range(5):
            t = time.perf_counter()
            r = fn()
            best = min(best, time.perf_counter() - t)
            if time.perf_counter() - start >= 1.0:
                break
        return r, best

    def one_at_a_time(index):
        """queries/s searching the first --single-queries one by one, with 1
        thread and with all threads."""
        ns = min(nq, args.single_queries)

        def run():
            for i in range(ns):
                index.search(xq[i:i + 1], k)
        out = {}
        for name, th in (("1_thread", 1), ("all_threads", args.threads)):
            faiss.omp_set_num_threads(th)
            out[f"one_at_a_time_qps_{name}"] = round(ns / timed(run)[1], 1)
        faiss.omp_set_num_threads(args.threads)
        return out

    # ---------------------------------------------------------------- flat --
    flat = faiss.IndexFlatIP(dim)
    _, t_add = timed_once(lambda: flat.add(xb))
    flat.search(xq[:10], k)
    (d_exact, i_exact), t_batch = timed(lambda: flat.search(xq, k))
    res_flat = {"add_s": round(t_add, 4), "batch_s": round(t_batch, 4),
                "batch_qps": round(nq / t_batch, 1), **one_at_a_time(flat)}
    log("flat", res_flat)

    # ---------------------------------------------------------------- hnsw --
    res_hnsw = None
    if not args.no_hnsw:
        hnsw = faiss.IndexHNSWFlat(dim, args.m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = args.ef_construction
        log(f"hnsw build M={args.m} efConstruction={args.ef_construction} ...")
        _, t_build = timed_once(lambda: hnsw.add(xb))
        log(f"hnsw build {t_build:.1f} s")
        res_hnsw = {"M": args.m, "efConstruction": args.ef_construction,
                    "build_s": round(t_build, 3), "build_vectors_per_s": round(n / t_build, 1),
                    "efSearch": []}
        for ef in [int(x) for x in args.ef_search.split(",")]:
            hnsw.hnsw.efSearch = ef
            hnsw.search(xq[:10], k)
            faiss.omp_set_num_threads(1)
            (_, i_h), t1 = timed(lambda: hnsw.search(xq, k))
            faiss.omp_set_num_threads(args.threads)
            _, tn = timed(lambda: hnsw.search(xq, k))
            one = one_at_a_time(hnsw)
            hits = sum(len(set(a[a >= 0].tolist()) & set(b.tolist()))
                       for a, b in zip(i_h, i_exact))
            row = {"efSearch": ef, "recall_at_k": round(hits / (nq * k), 5),
                   "qps_1_thread": round(nq / t1, 1),
                   "qps_all_threads": round(nq / tn, 1),
                   **one}
            res_hnsw["efSearch"].append(row)
            log("hnsw", row)

    opts = faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else ""
    print(json.dumps({
        "system": "faiss-cpu", "n": n, "dim": dim, "queries": nq, "k": k,
        "metric": "inner_product", "data": source,
        "threads": threads, "cpu_count": os.cpu_count(),
        "single_queries": min(nq, args.single_queries),
        "flat": res_flat, "hnsw": res_hnsw,
        "versions": {"faiss": faiss.__version__, "faiss_compile_options": opts,
                     "numpy": np.__version__, "python": platform.python_version()},
        "machine": platform.machine(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
