#!/usr/bin/env bash
# Training-step benchmark: `uae train --loss um-infonce` against the PyTorch
# reference (assets/bench_train_reference.py) on the same batches, in one run.
#
# all-MiniLM-L6-v2, 16 queries x 16 candidates x 128 tokens per step, CPU,
# fp32. Prints one JSON line: both query-group rates (queries/s), their ratio
# (uae / PyTorch), both peak RSS and the load average before and after. The
# benchmark's shape is the default; BATCH, K and MAXLEN change it (a smaller
# one checks the script on a slow device, e.g. a GPU emulated on the CPU).
#
#   scripts/bench_train.sh [STEPS]          # timed steps per side, default 3
#
# Environment: UAE (binary, default the release build in ~/.cache/uae/target),
# PYTHON (the reference venv's python), MODEL (model dir), WORK (scratch dir,
# default a fresh mktemp -d), BURN_DEVICE (uae's device, default cpu),
# PYTORCH_DEVICE (the reference's torch device, default cpu; cuda where the
# venv's torch has it),
# GRAD_CACHE (uae's `grad_cache`: encode N texts at a time with cached
# gradients; default 32, uae's default; 0 for the whole batch in one graph).
#
# uae: one epoch over 16 * (STEPS + 1) training queries (+1 query held out for
# validation, the least `uae train` allows) with log_every 1, so it prints a
# line after every step. Each line is time-stamped as it arrives; the rate is
# the queries between the first step's line and the last's over the time
# between them, so model loading, tokenisation, the first (warm-up) step,
# validation, checkpoints and the final save are not timed. Peak RSS is
# /usr/bin/time -v's maximum resident set size of the whole process.
# PyTorch: the same first 16 * (STEPS + 1) labelled queries, one untimed
# warm-up step, then STEPS timed steps (ru_maxrss for peak RSS).
set -euo pipefail

STEPS=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
UAE=${UAE:-$HOME/.cache/uae/target/release/uae}
PYTHON=${PYTHON:-$HOME/.cache/uae/venv/bin/python}
MODEL=${MODEL:-$HOME/.cache/uae/models/all-MiniLM-L6-v2}
WORK=${WORK:-$(mktemp -d /tmp/uae-bench-train.XXXXXX)}
BATCH=${BATCH:-16}
K=${K:-16}
MAXLEN=${MAXLEN:-128}
PYTORCH_DEVICE=${PYTORCH_DEVICE:-cpu}
GRAD_CACHE=${GRAD_CACHE:-32}
QUERIES=$((BATCH * (STEPS + 1) + 1))
mkdir -p "$WORK"

"$PYTHON" "$ROOT/assets/make_train_bench_input.py" --model "$MODEL" --out "$WORK/in" \
    --queries "$QUERIES" --candidates "$K" >"$WORK/input.json"

cat >"$WORK/train.json" <<EOF
{"loss": {"kind": "um-infonce", "tau": 0.05, "tau_u": 1.0, "use_in_batch": true},
 "sampling": {"candidates": $K, "top_share": 0.5, "seed": 42},
 "valid_share": 0.0, "epochs": 1, "batch_size": $BATCH, "lr": 2e-5, "warmup_ratio": 0.0,
 "weight_decay": 0.01, "max_grad_norm": 1.0, "log_every": 1, "max_length": $MAXLEN,
 "grad_cache": $GRAD_CACHE}
EOF

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rm -rf "$WORK/run"
/usr/bin/time -v -o "$WORK/uae_time.txt" "$UAE" train --model "$MODEL" --data "$WORK/in/data" \
    --labels "$WORK/in/labels.jsonl" --out "$WORK/run" --config "$WORK/train.json" 2>"$WORK/uae_stderr.txt" |
    while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done >"$WORK/uae_log.txt"
load_mid=$(cut -d' ' -f1-3 /proc/loadavg)

"$PYTHON" "$ROOT/assets/bench_train_reference.py" --model "$MODEL" --data "$WORK/in/data" \
    --labels "$WORK/in/labels.jsonl" --steps "$STEPS" --warmup 1 --batch-size "$BATCH" \
    --max-length "$MAXLEN" --device "$PYTORCH_DEVICE" >"$WORK/torch.json"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

"$PYTHON" - "$WORK" "$STEPS" "$load_before" "$load_mid" "$load_after" "$GRAD_CACHE" \
    "${BATCH}x${K}x${MAXLEN}" "${BURN_DEVICE:-cpu}" <<'EOF'
import json, os, re, sys
work, steps = sys.argv[1], int(sys.argv[2])
loads = sys.argv[3:6]
grad_cache = int(sys.argv[6])
shape, uae_device = sys.argv[7], sys.argv[8]
points = []  # (time, queries done) after each training step
for line in open(os.path.join(work, "uae_log.txt")):
    stamp, _, text = line.partition(" ")
    m = re.match(r"epoch \d+/\d+ train (\d+)/(\d+)", text)
    if m:
        points.append((float(stamp), int(m.group(1))))
# One line per step; keep the first line of each step count.
seen, steps_seen = set(), []
for t, n in points:
    if n not in seen:
        seen.add(n)
        steps_seen.append((t, n))
if len(steps_seen) < 2:
    sys.exit(f"uae printed {len(steps_seen)} step lines; see {work}/uae_log.txt")
(t0, n0), (t1, n1) = steps_seen[0], steps_seen[-1]
uae_rate = (n1 - n0) / (t1 - t0)
per_step = [round(b[0] - a[0], 3) for a, b in zip(steps_seen, steps_seen[1:])]
rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(os.path.join(work, "uae_time.txt")).read()).group(1))
torch = json.load(open(os.path.join(work, "torch.json")))
print(json.dumps({
    "bench": f"train-step um-infonce all-MiniLM-L6-v2 {shape} fp32",
    "uae_device": uae_device,
    "pytorch_device": torch.get("device", "cpu"),
    "steps_timed": {"uae": len(per_step), "pytorch": torch["steps"]},
    "uae_grad_cache": grad_cache,
    "uae_groups_per_s": round(uae_rate, 4),
    "pytorch_groups_per_s": torch["groups_per_s"],
    "ratio": round(uae_rate / torch["groups_per_s"], 4),
    "uae_seconds_per_step": per_step,
    "pytorch_seconds_per_step": torch["seconds_per_step"],
    "uae_peak_rss_mib": round(rss_kib / 1024, 1),
    "pytorch_peak_rss_mib": torch["peak_rss_mib"],
    "pytorch_peak_gpu_mib": torch.get("peak_gpu_mib"),
    "pytorch_passage_tokens": torch["passage_tokens"],
    "cores": os.cpu_count(),
    "torch_threads": torch["threads"],
    "loadavg_before_uae_between_after": loads,
    "work": work,
}))
EOF
