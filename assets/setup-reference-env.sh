#!/usr/bin/env bash
# Create the Python reference environment used ONLY by fixture and benchmark
# scripts (never by CI tests): CPU PyTorch, transformers, sentence-transformers,
# gguf, accelerate (transformers needs it to load a GGUF file), safetensors,
# numpy, tokenizers, and the retrieval references faiss-cpu, pytrec-eval-terrier
# and ranx. Installs from plain PyPI (the only index reachable here); the PyPI
# torch wheel pulls CUDA libraries (~6 GB) but runs fine on CPU.
#
# Usage: assets/setup-reference-env.sh        (idempotent)
# Env:   UAE_CACHE (default ~/.cache/uae); venv goes to $UAE_CACHE/venv
#        PYTHON    (default python3) interpreter used to create the venv
set -euo pipefail

UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
VENV="$UAE_CACHE/venv"
PYTHON="${PYTHON:-python3}"
PACKAGES=(torch transformers sentence-transformers gguf accelerate safetensors numpy tokenizers
          faiss-cpu pytrec-eval-terrier ranx)

check() {
    "$VENV/bin/python" - <<'PY' 2>/dev/null
import torch, transformers, sentence_transformers, gguf, accelerate, safetensors, numpy, tokenizers
import faiss, pytrec_eval, ranx
from importlib.metadata import version
print("torch", torch.__version__, "| transformers", transformers.__version__,
      "| sentence-transformers", sentence_transformers.__version__,
      "| gguf", version("gguf"), "| accelerate", accelerate.__version__,
      "| numpy", numpy.__version__, "| faiss-cpu", version("faiss-cpu"),
      "| ranx", version("ranx"))
PY
}

if [[ -x "$VENV/bin/python" ]] && check; then
    echo "reference env already ready: $VENV"
    exit 0
fi

mkdir -p "$UAE_CACHE"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating venv at $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
echo "installing ${PACKAGES[*]} (several GB, takes minutes)"
if ! "$VENV/bin/python" -m pip install "${PACKAGES[@]}"; then
    echo "error: pip install failed (is PyPI reachable? enough disk under $UAE_CACHE?)" >&2
    exit 1
fi
check || { echo "error: packages installed but imports fail" >&2; exit 1; }
echo "reference env ready: $VENV"
