#!/usr/bin/env bash
# Benchmark: vector search queries/s and HNSW recall@10, `uae index bench`
# (release build) against faiss-cpu (IndexFlatIP and IndexHNSWFlat), both
# reading the very same .npy vectors in the same run. Prints one JSON object
# per data set with both sides' figures and the ratios (uae / faiss).
#
# Usage: scripts/bench_search.sh [random] [faq]      (default: both)
#   random  N x DIM standard-normal vectors, L2-normalised, seed SEED, and
#           QUERIES queries from the same generator (numpy default_rng).
#   faq     all-MiniLM-L6-v2 embeddings (by `uae embed`) of the Python FAQ data
#           set (assets/make_faq_dataset.py; needs python3.11-doc): the 2,293
#           passages and the 179 questions as queries.
# Env: N (100000), DIM (384), QUERIES (1000), SEED (0), K (10),
#      EF_SEARCH (16,32,64,128,256,512), HNSW_M (16), EF_CONSTRUCTION (200),
#      UAE_BIN (a prebuilt uae to measure instead of building one).
# Needs the reference venv (assets/setup-reference-env.sh: faiss-cpu, numpy).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/bench_env.sh
N="${N:-100000}" DIM="${DIM:-384}" QUERIES="${QUERIES:-1000}" SEED="${SEED:-0}" K="${K:-10}"
EF_SEARCH="${EF_SEARCH:-16,32,64,128,256,512}" HNSW_M="${HNSW_M:-16}" EF_CONSTRUCTION="${EF_CONSTRUCTION:-200}"
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(random faq)

work="$UAE_CACHE/bench-search"
mkdir -p "$work"

# random: writes $work/random-*.npy once per (N, DIM, QUERIES, SEED).
make_random() {
    base="$work/random-$N-$DIM-$SEED.npy" queries="$work/random-$N-$DIM-$SEED-q$QUERIES.npy"
    [ -s "$base" ] && [ -s "$queries" ] && return
    echo "[bench-search] writing random vectors to $work" >&2
    "$py" - "$N" "$DIM" "$QUERIES" "$SEED" "$base" "$queries" <<'PY'
import sys
import numpy as np
n, dim, nq, seed = map(int, sys.argv[1:5])
rng = np.random.default_rng(seed)
for rows, path in ((n, sys.argv[5]), (nq, sys.argv[6])):
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(path, x)
PY
}

# faq: embeds the Python FAQ data set with uae once.
make_faq() {
    local data="$UAE_CACHE/data/python-faq"
    [ -s "$data/corpus.jsonl" ] || python3 assets/make_faq_dataset.py --out "$data" >&2
    base="$work/faq-minilm.npy" queries="$work/faq-minilm-queries.npy"
    [ -s "$base" ] && [ -s "$queries" ] && return
    local model
    model="$(assets/fetch.sh minilm | tail -n1)"
    echo "[bench-search] embedding the Python FAQ with uae" >&2
    "$py" - "$data" "$work" <<'PY'
import json, sys
data, work = sys.argv[1:3]
for name, out in (("corpus", "faq-passages.jsonl"), ("queries", "faq-queries.jsonl")):
    with open(f"{data}/{name}.jsonl") as f, open(f"{work}/{out}", "w") as o:
        for line in f:
            r = json.loads(line)
            title = (r.get("title") or "").strip()
            text = f"{r['title']}. {r['text']}" if title else r["text"]
            o.write(json.dumps({"id": r["_id"], "text": text}) + "\n")
PY
    "$uae" embed --model "$model" --input "$work/faq-passages.jsonl" --output "$work/faq-passages.emb.jsonl" >&2
    "$uae" embed --model "$model" --query --input "$work/faq-queries.jsonl" --output "$work/faq-queries.emb.jsonl" >&2
    "$py" - "$work/faq-passages.emb.jsonl" "$base" "$work/faq-queries.emb.jsonl" "$queries" <<'PY'
import json, sys
import numpy as np
for src, dst in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    x = np.array([json.loads(l)["embedding"] for l in open(src)], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(dst, x)
PY
}

for set in "${sets[@]}"; do
    case "$set" in
        random) make_random ;;
        faq) make_faq ;;
        *) echo "unknown data set $set (random or faq)" >&2; exit 2 ;;
    esac
    echo "[bench-search] $set: uae (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    ours="$("$uae" index bench --vectors "$base" --queries "$queries" -k "$K" --ef-search "$EF_SEARCH" \
        --hnsw-m "$HNSW_M" --hnsw-ef-construction "$EF_CONSTRUCTION")"
    echo "[bench-search] $set: faiss (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    theirs="$("$py" assets/bench_search_reference.py --vectors "$base" --query-vectors "$queries" --k "$K" \
        --ef-search "$EF_SEARCH" --m "$HNSW_M" --ef-construction "$EF_CONSTRUCTION")"
    "$py" - "$set" "$ours" "$theirs" <<'PY'
import json, os, sys
name, ours, theirs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
TARGET = 0.95

def fastest(points, recall, qps):
    """The fastest efSearch point reaching TARGET recall, by `qps`."""
    ok = [p for p in points if p[recall] >= TARGET]
    return max(ok, key=lambda p: p[qps]) if ok else None

flat = theirs["flat"]
faiss_one = max(flat["one_at_a_time_qps_1_thread"], flat["one_at_a_time_qps_all_threads"])
ratios = {
    "exact_batch": round(ours["exact"]["batch_qps"] / flat["batch_qps"], 3),
    "exact_one_at_a_time": round(ours["exact"]["one_at_a_time_qps"] / faiss_one, 3),
}
u = fastest(ours["hnsw"]["sweep"] + [ours["hnsw"]["default"]], "recall_at_k", "batch_qps")
f = fastest(theirs["hnsw"]["efSearch"], "recall_at_k", "qps_all_threads")
if u and f:
    ratios["hnsw_batch_at_recall_0.95"] = round(u["batch_qps"] / f["qps_all_threads"], 3)
    f_one = max(f["one_at_a_time_qps_1_thread"], f["one_at_a_time_qps_all_threads"])
    ratios["hnsw_one_at_a_time_at_recall_0.95"] = round(u["one_at_a_time_qps"] / f_one, 3)
print(json.dumps({
    "data": name, "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    "uae_hnsw_at_recall_0.95": u, "faiss_hnsw_at_recall_0.95": f,
    "ratios": ratios, "uae": ours, "faiss": theirs,
}))
PY
done
