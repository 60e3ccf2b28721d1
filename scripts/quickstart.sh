#!/usr/bin/env bash
# The main job on the embedded defaults: fetch all-MiniLM-L6-v2, build the
# release `uae` binary and embed the example texts.
set -euo pipefail
cd "$(dirname "$0")/.."

export UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$UAE_CACHE/target}"

model="$(assets/fetch.sh minilm | tail -n1)"
cargo build --release -p uae-cli
uae="$CARGO_TARGET_DIR/release/uae"

out="$UAE_CACHE/quickstart"
mkdir -p "$out"
"$uae" embed --model "$model" --input assets/examples/texts.jsonl --output "$out/embeddings.jsonl"
echo "wrote $(wc -l < "$out/embeddings.jsonl") embeddings to $out/embeddings.jsonl"
