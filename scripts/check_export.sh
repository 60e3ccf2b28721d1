#!/usr/bin/env bash
# End-to-end check of `uae export`: trains all-MiniLM-L6-v2 for one short
# epoch on synthetic utility labels over python-faq training queries, exports
# the run, and checks that sentence-transformers and `uae embed` embed the
# same texts with the exported directory (cosine >= 0.9999 per text; see
# assets/check_export.py). Prints check_export.py's JSON line.
#
#   scripts/check_export.sh
#
# Environment: UAE_BIN (a prebuilt uae; otherwise `cargo build --release`),
# UAE_CACHE (default ~/.cache/uae), WORK (keep the run, labels and export in
# this directory instead of a deleted temporary one), QUERIES (labelled
# queries, default 40), CANDIDATES (per query, default 8), LABELS_ONLY=1
# (only write WORK/labels.jsonl and WORK/texts.jsonl; scripts/check_tui.sh
# uses it).
# Needs the reference venv (assets/setup-reference-env.sh) and python-faq
# (assets/make_faq_dataset.py; needs python3.11-doc).
set -euo pipefail
cd "$(dirname "$0")/.."

export UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$UAE_CACHE/target}"
data="$UAE_CACHE/data/python-faq"
[ -s "$data/corpus.jsonl" ] || python3 assets/make_faq_dataset.py --out "$data" >&2

if [ -n "${WORK:-}" ]; then
    work="$WORK"
    mkdir -p "$work"
    rm -rf "$work/run" "$work/exported"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi

# Synthetic labels: for each of the first QUERIES training queries, its gold
# passages (qrels/train.tsv) and random other passages up to CANDIDATES; gold
# passages get utilities near 1, the others below 0. Also writes the texts to
# compare: labelled queries, their candidates and a few edge cases.
python3 - "$data" "$work" "${QUERIES:-40}" "${CANDIDATES:-8}" <<'PY'
import json, random, sys
data, work, n, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(7)
corpus = {}
with open(f"{data}/corpus.jsonl", encoding="utf-8") as f:
    for line in f:
        d = json.loads(line)
        corpus[d["_id"]] = f'{d["title"]}. {d["text"]}' if d.get("title") else d["text"]
queries = {}
with open(f"{data}/queries.jsonl", encoding="utf-8") as f:
    for line in f:
        q = json.loads(line)
        queries[q["_id"]] = q["text"]
gold = {}
with open(f"{data}/qrels/train.tsv", encoding="utf-8") as f:
    next(f)
    for line in f:
        qid, did, score = line.rstrip("\n").split("\t")
        if int(score) > 0 and did in corpus and qid in queries:
            gold.setdefault(qid, []).append(did)
ids = sorted(corpus)
texts = []
with open(f"{work}/labels.jsonl", "w", encoding="utf-8") as out:
    for qid in list(gold)[:n]:
        docs = gold[qid][: k // 2]
        while len(docs) < k:
            d = rng.choice(ids)
            if d not in docs and d not in gold[qid]:
                docs.append(d)
        rng.shuffle(docs)
        utilities = [1.0 + rng.uniform(0, 0.5) if d in gold[qid] else rng.uniform(-1.5, -0.1) for d in docs]
        logp_without = -2.0
        out.write(json.dumps({"query_id": qid, "doc_ids": docs, "utilities": utilities,
                              "logp_with": [logp_without + u for u in utilities],
                              "logp_without": logp_without}) + "\n")
        texts.append(queries[qid])
        texts.extend(corpus[d] for d in docs[:2])
texts += ["", "naïve café — 東京 🐍", "def f(x):\n    return x ** 2", "word " * 400]
with open(f"{work}/texts.jsonl", "w", encoding="utf-8") as out:
    for i, t in enumerate(texts):
        out.write(json.dumps({"id": i, "text": t}) + "\n")
PY
[ "${LABELS_ONLY:-}" = 1 ] && exit 0

py="$UAE_CACHE/venv/bin/python"
[ -x "$py" ] || assets/setup-reference-env.sh
model="$(assets/fetch.sh minilm | tail -n1)"
if [ -z "${UAE_BIN:-}" ]; then
    cargo build --release -p uae-cli >&2
fi
uae="${UAE_BIN:-$CARGO_TARGET_DIR/release/uae}"

cat > "$work/train.json" <<'JSON'
{"epochs": 1, "batch_size": 8, "lr": 5e-5, "warmup_ratio": 0.1, "valid_share": 0.2,
 "max_length": 128, "log_every": 1, "seed": 3}
JSON
echo "training on $(wc -l < "$work/labels.jsonl") labelled queries in $work/run" >&2
"$uae" train --model "$model" --data "$data" --labels "$work/labels.jsonl" \
    --config "$work/train.json" --candidates "${CANDIDATES:-8}" --out "$work/run" >&2
"$uae" export --run "$work/run" --out "$work/exported" >&2
if cmp -s "$model/model.safetensors" "$work/exported/model.safetensors"; then
    # Model selection exports the base unchanged when no checkpoint beat it
    # on dev retrieval; anything else that copies the base is a bug.
    if ! grep -q '"chosen_step": 0' "$work/run/selection.json" 2>/dev/null; then
        echo "FAIL: the exported weights are the base model's" >&2
        exit 1
    fi
    echo "note: model selection kept the base weights (no checkpoint beat it on dev)" >&2
fi
"$py" assets/check_export.py --uae "$uae" --model "$work/exported" --texts "$work/texts.jsonl"
