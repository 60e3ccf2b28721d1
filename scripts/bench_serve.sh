#!/usr/bin/env bash
# Benchmark: `uae serve` (release, flex CPU backend) against infinity
# (`infinity-emb` from PyPI, torch engine on the CPU) serving the same
# all-MiniLM-L6-v2 directory, same machine, same run, one after the other:
# $REQUESTS OpenAI embedding requests of one Python documentation passage
# each (python-faq corpus, in order) from $CONCURRENCY keep-alive clients
# (assets/bench_serve_client.py, standard library only). Prints one JSON
# line per server: requests/s, p50/p90/p99 latency, failures, peak RSS of
# the server process, and both versions. infinity goes into its own venv,
# $UAE_CACHE/venv-infinity (it pins older transformers and numpy than the
# reference venv's), created here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$UAE_CACHE/target}"
if [ -z "${UAE_BIN:-}" ]; then
    cargo build --release -p uae-cli >&2
fi
uae="${UAE_BIN:-$CARGO_TARGET_DIR/release/uae}"
model="$(assets/fetch.sh minilm | tail -n1)"
data="$UAE_CACHE/data/python-faq"
[ -d "$data" ] || python3 assets/make_faq_dataset.py >&2
requests="${REQUESTS:-2000}"
concurrency="${CONCURRENCY:-32}"
port="${PORT:-18080}"
venv="$UAE_CACHE/venv-infinity"
if [ ! -x "$venv/bin/infinity_emb" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "infinity-emb[server,torch]" >&2
fi
infinity="$venv/bin/infinity_emb"

wait_healthy() {
    for _ in $(seq 1 600); do
        if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "server on port $port did not become healthy" >&2
    return 1
}

# Runs the client against the server with pid $1 at path $2 and prints the
# client's JSON with the server's name ($3) and peak RSS added.
measure() {
    local pid="$1" path="$2" name="$3" version="$4"
    # One warm-up pass over 64 requests, not timed.
    python3 assets/bench_serve_client.py "http://127.0.0.1:$port" "$path" "$data/corpus.jsonl" 64 4 "$model" >/dev/null
    local result
    result="$(python3 assets/bench_serve_client.py "http://127.0.0.1:$port" "$path" "$data/corpus.jsonl" "$requests" "$concurrency" "$model")"
    local hwm
    hwm="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
    python3 -c 'import json, os, sys; r = json.loads(sys.argv[1]); r.update(server=sys.argv[2], version=sys.argv[3], peak_rss_mib=round(int(sys.argv[4]) / 1024, 1), cores=os.cpu_count(), load_average=os.getloadavg()); print(json.dumps(r))' \
        "$result" "$name" "$version" "$hwm"
}

"$uae" serve --model "$model" --addr "127.0.0.1:$port" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_healthy
measure "$pid" /v1/embeddings "uae serve" "$("$uae" --version)"
kill -TERM "$pid"; wait "$pid" || true

"$infinity" v2 --model-id "$model" --port "$port" --engine torch --device cpu --served-model-name "$model" >/dev/null 2>&1 &
pid=$!
wait_healthy
measure "$pid" /embeddings "infinity" "infinity-emb $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("infinity-emb"))')"
kill -TERM "$pid"; wait "$pid" || true
