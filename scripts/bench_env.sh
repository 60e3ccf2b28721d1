# Sourced by the benchmark scripts, from the repository root. Sets up what
# every benchmark needs: UAE_CACHE (default ~/.cache/uae), the shared Cargo
# target directory, $py (the PyTorch reference venv's python, installed by
# assets/setup-reference-env.sh when missing) and $uae, the binary measured:
# $UAE_BIN if set (a prebuilt uae), otherwise a release build made here.
export UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$UAE_CACHE/target}"
py="$UAE_CACHE/venv/bin/python"
[ -x "$py" ] || assets/setup-reference-env.sh
if [ -z "${UAE_BIN:-}" ]; then
    cargo build --release -p uae-cli >&2
fi
uae="${UAE_BIN:-$CARGO_TARGET_DIR/release/uae}"
