#!/usr/bin/env bash
# Creates the small Python environment the CI tests talk to (no torch):
# llama-cpp-python's OpenAI-compatible server (a real third-party teacher
# server for `uae label --teacher openai:...`), fastembed (whose tokenizer
# loader an export must satisfy) and huggingface_hub (which parses an
# export's model card). Prints the interpreter's path on its last line.
#
# llama-cpp-python ships as source: its wheel is built once (about 10-14
# minutes on two cores) into $UAE_CACHE/wheels and installed from there
# afterwards.
#
# Usage: assets/setup-test-env.sh        (idempotent)
# Env:   UAE_CACHE (default ~/.cache/uae); the venv is $UAE_CACHE/test-venv
set -euo pipefail

UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
VENV="$UAE_CACHE/test-venv"
WHEELS="$UAE_CACHE/wheels"
LLAMA_CPP="llama-cpp-python==0.3.36"
PACKAGES=("$LLAMA_CPP" "llama-cpp-python[server]" "fastembed==0.9.1" "huggingface_hub")

check() {
    "$VENV/bin/python" -c 'import llama_cpp.server, fastembed, huggingface_hub' 2>/dev/null
}

if [[ -x "$VENV/bin/python" ]] && check; then
    echo "$VENV/bin/python"
    exit 0
fi
mkdir -p "$WHEELS"
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip >&2
if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    echo "[test-env] building $LLAMA_CPP (compiles llama.cpp; minutes)" >&2
    "$VENV/bin/pip" install -q cmake ninja >&2
    "$VENV/bin/pip" wheel -q --no-deps "$LLAMA_CPP" -w "$WHEELS" >&2
fi
"$VENV/bin/pip" install -q --find-links "$WHEELS" "${PACKAGES[@]}" >&2
check
echo "$VENV/bin/python"
