#!/usr/bin/env bash
# Benchmark: batched greedy generation (how `uae eval` writes its answers and
# `uae synth` its questions) with SmolLM2-135M-Instruct (Q4_1 GGUF
# dequantised to f32): `uae generate --input` (release, flex CPU backend)
# against transformers' generate (PyTorch CPU fp32, same GGUF, same prompts,
# same left-padded batches), same machine, same run, at batch 1 and batch
# $BATCH. Prompts: the answer prompt of `uae eval` (a Python FAQ question
# with its gold passage) for the first $PROMPTS train questions. Prints one
# JSON line per batch size: both rates, the ratio, peak RSS of each, and how
# many of the generated texts are identical. Needs the reference venv:
# assets/setup-reference-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/bench_env.sh
model="$(assets/fetch.sh smollm2 | tail -n1)"
[ -d "$UAE_CACHE/data/python-faq" ] || python3 assets/make_faq_dataset.py >&2
prompts="${PROMPTS:-32}"
batch="${BATCH:-8}"
max_new="${MAX_NEW_TOKENS:-24}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$UAE_CACHE/data/python-faq" "$prompts" > "$work/prompts.jsonl" <<'PY'
import json, sys
sys.path.insert(0, "assets")
from make_logprob_bench_input import WITH_PASSAGE, read_jsonl
data, n = sys.argv[1], int(sys.argv[2])
corpus = {p["_id"]: p for p in read_jsonl(f"{data}/corpus.jsonl")}
queries = {q["_id"]: q for q in read_jsonl(f"{data}/queries.jsonl")}
gold = {}
for line in list(open(f"{data}/qrels/train.tsv"))[1:]:
    qid, did, _ = line.rstrip("\n").split("\t")
    gold.setdefault(qid, did)
for qid in list(gold)[:n]:
    passage = corpus[gold[qid]]
    text = (passage["title"] + ": " if passage.get("title") else "") + passage["text"]
    print(json.dumps({"prompt": WITH_PASSAGE.format(passage=text, question=queries[qid]["text"])}))
PY
for b in 1 "$batch"; do
    # /usr/bin/time writes the peak RSS (KiB) as the log's last line.
    /usr/bin/time -f '%M' "$uae" generate --teacher "$model" --input "$work/prompts.jsonl" \
        --output "$work/uae-$b.jsonl" --batch "$b" --max-new-tokens "$max_new" 2> "$work/uae-$b.log"
    line="$(grep '^generated' "$work/uae-$b.log")"
    rate="$(echo "$line" | sed -E 's/.*\(([0-9.]+) tokens\/s.*/\1/')"
    ref="$("$py" assets/bench_generate_reference.py --model "$model" --input "$work/prompts.jsonl" \
        --batch "$b" --max-new-tokens "$max_new" --output "$work/ref-$b.jsonl")"
    python3 - "$rate" "$ref" "$(tail -n1 "$work/uae-$b.log")" "$work/uae-$b.jsonl" "$work/ref-$b.jsonl" "$b" <<'PY'
import json, os, sys
rate, ref, rss_kib, ours, theirs, b = float(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
a = [json.loads(l)["text"].strip() for l in open(ours)]
t = [json.loads(l)["text"].strip() for l in open(theirs)]
print(json.dumps({"batch": b, "uae_tokens_per_second": rate,
                  "transformers_tokens_per_second": ref["tokens_per_second"],
                  "ratio": round(rate / ref["tokens_per_second"], 3),
                  "uae_peak_rss_mib": round(rss_kib / 1024, 1), "transformers_peak_rss_mib": ref["peak_rss_mib"],
                  "identical_texts": f"{sum(x == y for x, y in zip(a, t))}/{len(a)}",
                  "prompts": len(a), "cores": os.cpu_count(), "load_average": os.getloadavg(),
                  "reference": ref}))
PY
done
