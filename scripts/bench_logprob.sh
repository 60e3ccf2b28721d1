#!/usr/bin/env bash
# Benchmark: teacher answer-scoring throughput (continuation log-likelihoods)
# on SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to f32), `uae logprob`
# (release, flex CPU backend) against transformers (PyTorch CPU fp32, same
# GGUF, same batches), same machine, same run. 256 real QA items from the
# Python FAQ data set (assets/make_logprob_bench_input.py). Prints both
# figures and the ratio as one JSON line. Needs the reference venv:
# assets/setup-reference-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/bench_env.sh
model="$(assets/fetch.sh smollm2 | tail -n1)"
[ -d "$UAE_CACHE/data/python-faq" ] || "$py" assets/make_faq_dataset.py >&2
input="$UAE_CACHE/data/logprob-bench-256.jsonl"
[ -s "$input" ] || python3 assets/make_logprob_bench_input.py --out "$input" >&2
batch_tokens="${BATCH_TOKENS:-4096}"
# ITEMS: use the first N items only (quick runs); REPEATS: best of N passes.
items="${ITEMS:-256}"
repeats="${REPEATS:-3}"
subset="$(mktemp --suffix .jsonl)"
trap 'rm -f "$subset"' EXIT
head -n "$items" "$input" > "$subset"

best_uae=0
for _ in $(seq "$repeats"); do
    line="$("$uae" logprob --teacher "$model" --input "$subset" --output /dev/null --batch-tokens "$batch_tokens" 2>&1 | grep '^scored')"
    rate="$(echo "$line" | sed -E 's/.*\(([0-9.]+) tokens\/s\).*/\1/')"
    best_uae="$(python3 -c "print(max(float('$rate'), float('$best_uae')))")"
done
ref="$("$py" assets/bench_logprob_reference.py --model "$model" --input "$subset" --batch-tokens "$batch_tokens" --repeats "$repeats")"
python3 - "$best_uae" "$ref" "$batch_tokens" <<'PY'
import json, os, sys
uae, info, bt = float(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
ref = info["tokens_per_second"]
print(json.dumps({"uae_tokens_per_second": uae, "transformers_tokens_per_second": ref,
                  "ratio": round(uae / ref, 3), "batch_tokens": bt, "cores": os.cpu_count(),
                  "load_average": os.getloadavg(), "reference": info}))
PY
