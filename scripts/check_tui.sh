#!/usr/bin/env bash
# Checks how `uae train` reports progress, on a short real run (all-MiniLM-L6-v2,
# 2 epochs over synthetic labels for 24 python-faq training queries, K = 4):
#
# 1. in a terminal (a detached tmux pane, 160x48), Burn's TUI: the pane is
#    captured every few seconds (`tmux capture-pane -p`) and the captures must
#    name the metrics Loss, Recall@1 and MRR and show training and validation
#    values;
# 2. piped (`| cat`), uae's line renderer: stdout must hold metric lines with
#    numeric values (`| Loss 1.2345`, `| Recall@1 ...`, `| MRR ...`).
#
#   scripts/check_tui.sh
#
# Environment: UAE_BIN (a prebuilt uae; otherwise `cargo build --release`),
# UAE_CACHE (default ~/.cache/uae), WORK (keep the runs and the captures,
# WORK/tui-capture-*.txt, there instead of in a deleted temporary directory),
# INTERVAL (seconds between captures, default 3). Installs tmux with apt-get
# when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$UAE_CACHE/target}"
if ! command -v tmux >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y tmux >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y tmux >&2; }
fi
model="$(assets/fetch.sh minilm | tail -n1)"
data="$UAE_CACHE/data/python-faq"
if [ -z "${UAE_BIN:-}" ]; then
    cargo build --release -p uae-cli >&2
fi
uae="$(realpath "${UAE_BIN:-$CARGO_TARGET_DIR/release/uae}")"

if [ -n "${WORK:-}" ]; then
    work="$(realpath -m "$WORK")"
    mkdir -p "$work"
    rm -rf "$work/run-tui" "$work/run-piped" "$work"/tui-capture-*.txt "$work/tui.rc" "$work/piped.txt"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
WORK="$work" LABELS_ONLY=1 QUERIES=24 CANDIDATES=4 scripts/check_export.sh
cat > "$work/train.json" <<'JSON'
{"epochs": 2, "batch_size": 4, "lr": 5e-5, "valid_share": 0.25, "max_length": 64,
 "log_every": 1, "seed": 3, "sampling": {"candidates": 4}}
JSON
train=("$uae" train --model "$model" --data "$data" --labels "$work/labels.jsonl" --config "$work/train.json")

fail=0
# 1. The TUI, in a tmux pane that stays open after uae exits.
# A private tmux server run with -D (no daemon(3), which fails where /dev/null
# is not a character device), so no other tmux session is touched.
session="uae-check-tui"
tm=(tmux -L "uae-check-tui-$$")
"${tm[@]}" -D </dev/zero >"$work/tmux-server.log" 2>&1 &
server=$!
trap '"${tm[@]}" kill-server 2>/dev/null || true; [ -n "${WORK:-}" ] || rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -S "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/uae-check-tui-$$" ] && break; sleep 0.1; done
printf -v cmd '%q ' "${train[@]}" --out "$work/run-tui"
printf -v rcfile '%q' "$work/tui.rc"
"${tm[@]}" new-session -d -s "$session" -x 160 -y 48 "$cmd; echo \$? > $rcfile; sleep 3600"
n=0
while [ ! -e "$work/tui.rc" ] && [ "$n" -lt 200 ]; do
    sleep "${INTERVAL:-3}"
    n=$((n + 1))
    "${tm[@]}" capture-pane -p -t "$session" > "$work/tui-capture-$(printf %03d "$n").txt"
done
"${tm[@]}" capture-pane -p -t "$session" > "$work/tui-capture-final.txt"
"${tm[@]}" kill-server
wait "$server" || true
rc="$(cat "$work/tui.rc" 2>/dev/null || echo timeout)"
echo "TUI run: exit status $rc, $n captures in $work" >&2
[ "$rc" = 0 ] || fail=1
# The metric names are tab titles from the start; values appear in the
# Metrics panel as "Train epoch <value> - batch <value>" (and "Valid ...").
for pattern in Loss Recall@1 MRR 'Train epoch [0-9]' 'Valid epoch [0-9]'; do
    hits="$(grep -l -E -- "$pattern" "$work"/tui-capture-[0-9]*.txt 2>/dev/null | wc -l || true)"
    echo "TUI: '$pattern' in $hits of $n captures" >&2
    [ "$hits" -gt 0 ] || fail=1
done
# The fullest capture, for the log.
best="$( (grep -c -H -E 'Loss|Recall@1|MRR|Progress' "$work"/tui-capture-[0-9]*.txt 2>/dev/null || true) | sort -t: -k2 -n | tail -n1 | cut -d: -f1)"
[ -n "$best" ] && { echo "--- $best" >&2; sed -e '/^[[:space:]]*$/d' "$best" >&2; echo "---" >&2; }

# 2. Piped: the line renderer.
"${train[@]}" --out "$work/run-piped" | cat > "$work/piped.txt"
grep -E '^epoch ' "$work/piped.txt" >&2 || true
for pattern in '\| Loss [0-9]' '\| Recall@1 [0-9]' '\| MRR [0-9]' '\| Learning Rate [0-9]'; do
    if ! grep -q -E "$pattern" "$work/piped.txt"; then
        echo "piped: no line matches '$pattern'" >&2
        fail=1
    fi
done
if grep -E '^epoch ' "$work/piped.txt" | grep -q -E 'NaN|inf'; then
    echo "warning: piped metric lines hold non-finite values:" >&2
    grep -o -E '\| [A-Za-z@0-9 -]+ (NaN|-?inf)' "$work/piped.txt" | sort | uniq -c >&2
fi
if [ "$fail" = 0 ]; then echo "check_tui: OK"; else echo "check_tui: FAILED"; exit 1; fi
