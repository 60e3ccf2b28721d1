#!/usr/bin/env bash
# Creates the small Python environment the CI tests talk to (no torch):
# llama-cpp-python's OpenAI-compatible server (a real third-party teacher
# server for `uae label --teacher openai:...`), fastembed (whose tokenizer
# loader an export must satisfy) and huggingface_hub (which parses an
# export's model card). Prints the interpreter's path on its last line.
#
# llama-cpp-python ships as source: its wheel is built once (about 10-14
# minutes on two cores) into $UAE_CACHE/wheels/<build> and installed from
# there afterwards.
#
# Usage: assets/setup-test-env.sh        (idempotent)
# Env:   UAE_CACHE (default ~/.cache/uae); the venv is $UAE_CACHE/test-venv
set -euo pipefail

UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
VENV="$UAE_CACHE/test-venv"
LLAMA_CPP="llama-cpp-python==0.3.36"
# llama.cpp is built for x86-64-v3 (AVX2, FMA, F16C), not -march=native: a
# virtual machine may list AMX in /proc/cpuinfo without enabling it for
# processes, and a native build then dies in ggml's AMX matmul (a general
# protection fault on `ldtilecfg`) on its first prompt; a cached wheel may
# also meet another CPU than the one it was built on. The build's name keys
# the wheel folder and is recorded in the venv, so an older build is
# replaced.
BUILD="x86-64-v3"
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
WHEELS="$UAE_CACHE/wheels/$BUILD"
MARKER="$VENV/llama-cpp-build"
# The server extras are pinned one by one (the `[server]` extra leaves them
# open), so a new fastapi or uvicorn cannot change the server under the test.
SERVER=("fastapi==0.165.0" "starlette==1.10.0" "uvicorn==0.55.0" "pydantic==2.14.4"
        "pydantic-settings==2.16.3" "sse-starlette==3.7.1" "starlette-context==0.3.6" "PyYAML==6.0.4")
PACKAGES=("$LLAMA_CPP" "llama-cpp-python[server]" "${SERVER[@]}" "fastembed==0.9.1" "huggingface_hub==1.33.0")

check() {
    [[ "$(cat "$MARKER" 2>/dev/null)" == "$BUILD" ]] &&
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
    CMAKE_ARGS="$CMAKE_ARGS" "$VENV/bin/pip" wheel -q --no-deps --no-cache-dir "$LLAMA_CPP" -w "$WHEELS" >&2
fi
"$VENV/bin/pip" install -q --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-0.3.36-*.whl >&2
"$VENV/bin/pip" install -q --find-links "$WHEELS" "${PACKAGES[@]}" >&2
echo "$BUILD" > "$MARKER"
check
echo "$VENV/bin/python"
