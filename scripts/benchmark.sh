#!/usr/bin/env bash
# The larger configuration (issue 13): the quickstart with five times the
# synthetic training questions and more labelled candidates per question, in
# its own work directory ($UAE_CACHE/benchmark), so the quickstart's cache is
# left alone. It runs the same stages on the same data set and teacher and
# writes the same report, to $UAE_CACHE/benchmark/report/; about an hour on
# two cores (see reports/python-faq-benchmark/README.md for the measured
# wall time). Environment: SYNTH_PASSAGES (400), CANDIDATES (8), OUT (the
# work directory); extra arguments go to `uae quickstart`. The run of
# reports/python-faq-own-docs/ (questions about the FAQ's own answers only):
#   SYNTH_PASSAGES=293 OUT=$UAE_CACHE/benchmark-faq scripts/benchmark.sh --synth-source-prefix faq/
set -euo pipefail
cd "$(dirname "$0")/.."

export UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
passages="${SYNTH_PASSAGES:-400}"
candidates="${CANDIDATES:-8}"

exec scripts/quickstart.sh --out "${OUT:-$UAE_CACHE/benchmark}" \
    --synth-passages "$passages" \
    --candidates "$candidates" --train-candidates "$candidates" "$@"
