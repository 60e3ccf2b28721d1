#!/usr/bin/env bash
# The larger configuration (issue 13), in its own work directory
# ($UAE_CACHE/benchmark), so the quickstart's cache is left alone: the Python
# FAQ split 10/10/80 (18 train / 18 dev / 143 test real questions),
# Qwen2.5-Coder-1.5B-Instruct writing three questions about each of the FAQ's
# 293 answers (`--synth-teacher`), SmolLM2-135M labelling 8 candidates per
# question (question utility), re-ranking and answering, then the quickstart's
# training, each recipe with five seeds pooled in the report. About 66
# minutes cold on two cores with one seed, most of it the 1.5B model writing
# (see reports/python-faq-test80-qwen-questions/README.md for the measured
# wall times). Environment: SYNTH_PASSAGES (293), CANDIDATES (8), SEEDS (5),
# OUT (the work directory); extra arguments go to `uae quickstart`.
set -euo pipefail
cd "$(dirname "$0")/.."

export UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
export FAQ_DATA="$UAE_CACHE/data/python-faq-test80" FAQ_SPLIT="10/10/80"
passages="${SYNTH_PASSAGES:-293}"
candidates="${CANDIDATES:-8}"
writer="$(assets/fetch.sh qwen2.5-coder-1.5b | tail -n 1)"

exec scripts/quickstart.sh --data "$FAQ_DATA" --out "${OUT:-$UAE_CACHE/benchmark}" \
    --synth-teacher "$writer" --synth-passages "$passages" --synth-per-passage 3 --synth-source-prefix faq/ \
    --candidates "$candidates" --train-candidates "$candidates" --seeds "${SEEDS:-5}" "$@"
