#!/usr/bin/env bash
# Benchmark: embeddings per second for all-MiniLM-L6-v2 on 1,000 real passages
# (20-250 word-pieces by default, from Debian's python3.11-doc), `uae embed` (release, flex CPU
# backend) against sentence-transformers (PyTorch CPU fp32), same machine,
# same run. Prints both figures and the ratio. Needs the reference venv:
# assets/setup-reference-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/bench_env.sh
model="$(assets/fetch.sh minilm | tail -n1)"
# MIN_TOKENS / MAX_TOKENS: the passages' word-piece range (short texts:
# MIN_TOKENS=5 MAX_TOKENS=39, all under 40 words).
min_tokens="${MIN_TOKENS:-20}"
max_tokens="${MAX_TOKENS:-250}"
passages="$UAE_CACHE/data/passages-1000-$min_tokens-$max_tokens.jsonl"
[ -s "$passages" ] || "$py" assets/make_passages.py -n 1000 --min-tokens "$min_tokens" --max-tokens "$max_tokens" -o "$passages"
batch_tokens="${BATCH_TOKENS:-1024}"
ref_batch=32
# ONE_AT_A_TIME=1: each text in its own forward pass on both sides (uae's
# token budget of 1 puts every text in a batch alone; the reference's
# batch size 1), as a search query arrives: the rate is 1 / latency.
if [ "${ONE_AT_A_TIME:-0}" = 1 ]; then batch_tokens=1; ref_batch=1; fi

best_uae=""
for _ in 1 2 3; do
    line="$("$uae" embed --model "$model" --input "$passages" --output /dev/null --batch-tokens "$batch_tokens" 2>&1 | grep '^embedded')"
    rate="$(echo "$line" | sed -E 's/.*\(([0-9.]+) texts\/s\).*/\1/')"
    best_uae="$(python3 -c "print(max(float('$rate'), float('${best_uae:-0}')))")"
done
ref="$("$py" assets/bench_embed_reference.py --model "$model" --input "$passages" --batch-size "$ref_batch" --repeats 3)"
ref_rate="$(echo "$ref" | python3 -c 'import json,sys; print(json.load(sys.stdin)["per_second"])')"
python3 - "$best_uae" "$ref_rate" "$ref" "$batch_tokens" <<'PY'
import json, os, sys
uae, ref, info, bt = float(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
print(json.dumps({"uae_per_second": uae, "uae_batch_tokens": int(bt),
                  "sentence_transformers_per_second": ref, "ratio": round(uae / ref, 3),
                  "cores": os.cpu_count(), "reference": info}))
PY
