#!/usr/bin/env bash
# GPU check: builds uae with a GPU backend (Burn's fusion and autotune on, as
# the feature turns them on), checks it against the CPU build on real weights,
# and times embedding and a training step on the GPU. One short run for a
# machine with a GPU; nothing else in the project depends on it.
#
#   scripts/gpu_check.sh [cuda|vulkan|metal|wgpu]     (default cuda)
#
# Steps, each printing one JSON line:
#   1. parity, embeddings: all-MiniLM-L6-v2 on 200 of the benchmark passages,
#      `uae embed --device GPU` against `--device cpu`: largest difference of
#      any coordinate (unit vectors; goal <= 1e-4).
#   2. parity, teacher: SmolLM2-135M-Instruct answer log-probabilities
#      (`uae logprob`) on 24 FAQ prompts, GPU against CPU: largest difference
#      of a mean log-probability (goal <= 1e-3).
#   3. speed, embedding: texts/s of `uae embed` on the GPU over the 1,000
#      benchmark passages (best of 3), beside the CPU figure.
#   4. speed, training: scripts/bench_train.sh with BURN_DEVICE set (its
#      PyTorch reference runs on the CPU unless PYTORCH_DEVICE=cuda and the
#      venv's torch has CUDA; BATCH, K and MAXLEN shrink the step, to check
#      the script on an emulated GPU such as Mesa's lavapipe).
# Env: UAE_CACHE (~/.cache/uae), OUT (where the JSON lines and logs go;
#      default a fresh mktemp -d), STEPS (timed training steps, 3), UAE_BIN (a
#      uae built with the backend elsewhere, instead of building one here).
# The weights and data come from assets/fetch.sh and the asset scripts, as
# for the tests; a machine without network needs $UAE_CACHE copied over.
set -euo pipefail
cd "$(dirname "$0")/.."

backend="${1:-cuda}"
case "$backend" in
    cuda) device=cuda ;;
    vulkan) device=vulkan ;;
    metal) device=metal ;;
    wgpu) device=wgpu ;;
    *) echo "usage: $0 [cuda|vulkan|metal|wgpu]" >&2; exit 2 ;;
esac
export UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$UAE_CACHE/target-$backend}"
OUT="${OUT:-$(mktemp -d /tmp/uae-gpu-check.XXXXXX)}"
mkdir -p "$OUT"
py="${PYTHON:-python3}"

if [ -z "${UAE_BIN:-}" ]; then
    echo "[gpu-check] building uae --features $backend (release) into $CARGO_TARGET_DIR" >&2
    cargo build --release -p uae-cli --features "$backend" >&2
fi
uae="${UAE_BIN:-$CARGO_TARGET_DIR/release/uae}"
minilm="$(assets/fetch.sh minilm | tail -n1)"
smollm="$(assets/fetch.sh smollm2 | tail -n1)"
passages="$UAE_CACHE/data/passages-1000-20-250.jsonl"
[ -s "$passages" ] || "$py" assets/make_passages.py -n 1000 --min-tokens 20 --max-tokens 250 -o "$passages"
head -n 200 "$passages" > "$OUT/passages-200.jsonl"

# parity CHECK FIELD NOUN TOLERANCE: compares FIELD (a number, or a list of
# numbers) line by line between $OUT/CHECK-cpu.jsonl and the GPU's file and
# prints the largest difference as one JSON line.
parity() {
    "$py" - "$OUT/$1-cpu.jsonl" "$OUT/$1-$device.jsonl" "$@" "$device" <<'PY'
import json, sys
cpu, gpu, check, field, noun, tolerance, device = sys.argv[1:8]
lines = lambda path: [json.loads(l)[field] for l in open(path)]
flat = lambda vs: [x for v in vs for x in (v if isinstance(v, list) else [v])]
a, b = lines(cpu), lines(gpu)
worst = max(abs(x - y) for x, y in zip(flat(a), flat(b)))
print(json.dumps({"check": f"{check} parity", "device": device, noun: len(a), "largest_difference": worst, "ok": worst <= float(tolerance)}))
PY
}

# 1. Embedding parity.
for d in cpu "$device"; do
    "$uae" embed --device "$d" --model "$minilm" --input "$OUT/passages-200.jsonl" --output "$OUT/embed-$d.jsonl" 2> "$OUT/embed-$d.log"
done
parity embed embedding texts 1e-4

# 2. Teacher parity.
data="$UAE_CACHE/data/python-faq"
[ -s "$data/corpus.jsonl" ] || "$py" assets/make_faq_dataset.py --out "$data" >&2
"$py" assets/make_logprob_bench_input.py --data "$data" --n 24 --out "$OUT/logprob-input.jsonl" > /dev/null
for d in cpu "$device"; do
    "$uae" logprob --device "$d" --teacher "$smollm" --input "$OUT/logprob-input.jsonl" --output "$OUT/teacher-$d.jsonl" 2> "$OUT/teacher-$d.log"
done
parity teacher logprob_mean items 1e-3

# 3. Embedding speed.
rate() { sed -E -n 's/^embedded.*\(([0-9.]+) texts\/s\).*/\1/p' "$1"; }
for d in cpu "$device"; do
    best=0
    for _ in 1 2 3; do
        "$uae" embed --device "$d" --model "$minilm" --input "$passages" --output /dev/null 2> "$OUT/speed-$d.log"
        best="$("$py" -c "print(max($best, $(rate "$OUT/speed-$d.log")))")"
    done
    echo "{\"check\": \"embed speed\", \"device\": \"$d\", \"passages\": 1000, \"texts_per_second\": $best}"
done

# 4. Training step.
UAE="$uae" BURN_DEVICE="$device" WORK="$OUT/train" scripts/bench_train.sh "${STEPS:-3}"
