#!/usr/bin/env python3
"""Make the GGUF parity fixture assets/fixtures/gguf/dequant_reference.json for
uae-model's GGUF reader (uae-model/src/gguf, tests in uae-model/tests/gguf.rs),
using the Python `gguf` package (llama.cpp's own) and transformers as the
reference.

    assets/fetch.sh smollm2 && assets/setup-reference-env.sh
    $UAE_CACHE/venv/bin/python assets/make_gguf_reference.py

Fixture keys:
  script, versions  how the file was made (gguf / transformers / tokenizers / numpy / python)
  dequant           per ggml type: `type`, `ggml_type` (id), `bytes_hex` (whole
                    blocks), `values` (what gguf.quants.dequantize gives, f32
                    written exactly as f64). Blocks of the legacy types come from
                    gguf.quants.quantize of pseudo-random floats; K-quant blocks
                    are pseudo-random bytes with finite f16 scales.
  q8_0_quantize     `input` floats and the bytes gguf.quants.quantize makes of
                    them (ggml's reference Q8_0 quantiser, bit-exact)
  real_file         `file` name and, for two tensors of the SmolLM2 GGUF, the
                    ggml type, the PyTorch-order shape, and the first and last
                    64 values as gguf.quants.dequantize gives them
  tokenizer         special token ids and cases {text, ids, decoded}: ids from
                    AutoTokenizer.from_pretrained(dir, gguf_file=...) with
                    add_special_tokens=False, `decoded` its decode(ids)
  tokenizer_llama_bpe  the same vocabulary with `tokenizer.ggml.pre` set to
                    "llama-bpe" (transformers' GGUF converter then splits with
                    the Llama-3 regex): cases {text, ids}
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

UAE_CACHE = Path(os.environ.get("UAE_CACHE", Path.home() / ".cache" / "uae"))
ROOT = Path(__file__).resolve().parent
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL = UAE_CACHE / "models" / "SmolLM2-135M-Instruct-GGUF" / GGUF_NAME
DEFAULT_OUT = ROOT / "fixtures" / "gguf" / "dequant_reference.json"

TEXTS = [
    "Hello world",
    " Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "hello",
    "",
    " ",
    "    four spaces then text",
    "tabs\tand\t\ttabs",
    "line one\nline two\n\nline four\r\nwindows",
    "\n\n\n",
    "trailing spaces   ",
    "Numbers: 1234567890 and 3.14159, 1,000,000.",
    "def add(a, b):\n    return a + b  # sum\n",
    "for (int i = 0; i < n; ++i) { x[i] *= 2; }",
    "Café naïve façade résumé Ärger",
    "日本語のテキストと中文",
    "Emoji: 🎉👍🏽 and 🇫🇷",
    "Don't you'll we've I'M THEY'RE",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<jupyter_code>print('x')<empty_output>",
    "URL: https://example.com/path?q=1&r=two#frag",
    "MiXeD-CaSe_under_score and CamelCaseWords",
    "\u00a0non-breaking\u2009thin space\u200bzero-width",
]

LEGACY_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]
K_TYPES = ["Q4_K", "Q5_K", "Q6_K"]
# Byte offsets of the f16 scales inside one K-quant block (kept finite).
K_SCALE_OFFSETS = {"Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}
REAL_TENSORS = ["token_embd.weight", "blk.0.attn_q.weight"]


def f32_list(values):
    """f32 values as Python floats (f64): exact, so Rust can compare bit for bit."""
    import numpy as np
    return [float(v) for v in np.asarray(values, dtype=np.float32).reshape(-1)]


def dequant_cases(rng):
    import numpy as np
    from gguf import GGMLQuantizationType, GGML_QUANT_SIZES
    from gguf.quants import dequantize, quantize

    cases = []
    for name in LEGACY_TYPES:
        qtype = GGMLQuantizationType[name]
        block, _ = GGML_QUANT_SIZES[qtype]
        n = 64 if block == 1 else 4 * block
        x = (rng.standard_normal(n) * rng.choice([0.01, 1.0, 50.0], n)).astype(np.float32)
        if block == 1:
            # Also a few special values: zeros, the f16 max, an f16 subnormal.
            x[:4] = [0.0, -0.0, 65504.0, 3.0e-6]
        else:
            x[:block] = 0.0  # an all-zero block (scale 0)
        raw = quantize(x.reshape(1, -1), qtype).reshape(-1)
        values = dequantize(raw.reshape(1, -1), qtype)
        cases.append({"type": name, "ggml_type": int(qtype), "bytes_hex": raw.tobytes().hex(),
                      "values": f32_list(values)})
    for name in K_TYPES:
        qtype = GGMLQuantizationType[name]
        block, size = GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(2, size), dtype=np.uint8)
        for off in K_SCALE_OFFSETS[name]:
            scales = (rng.standard_normal(2) * 0.05).astype(np.float16)
            raw[:, off:off + 2] = scales.view(np.uint8).reshape(2, 2)
        values = dequantize(raw.reshape(1, -1), qtype)
        cases.append({"type": name, "ggml_type": int(qtype), "bytes_hex": raw.tobytes().hex(),
                      "values": f32_list(values)})
    return cases


def q8_0_quantize_case(rng):
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    x = (rng.standard_normal(96) * 3.0).astype(np.float32)
    x[32:64] = 0.0
    x[64] = 127.0 * 0.5  # exact halves exercise roundf's ties-away-from-zero
    x[65] = -0.5 * (127.0 * 0.5) / 127.0
    raw = quantize(x.reshape(1, -1), GGMLQuantizationType.Q8_0).reshape(-1)
    return {"input": f32_list(x), "bytes_hex": raw.tobytes().hex()}


def real_file_case(path):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    out = []
    for name in REAL_TENSORS:
        t = tensors[name]
        values = dequantize(t.data, t.tensor_type).reshape(-1)
        out.append({"name": name, "ggml_type": int(t.tensor_type),
                    "shape": [int(d) for d in reversed(t.shape)],
                    "first": f32_list(values[:64]), "last": f32_list(values[-64:])})
    return {"file": path.name, "tensors": out}


def tokenizer_cases(path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    cases = []
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids)})
    return {"bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id, "pad_id": tok.pad_token_id,
            "cases": cases}


def llama_bpe_cases(path):
    """transformers' GGUF tokenizer converter on the same vocabulary, as if the
    file said `tokenizer.ggml.pre = "llama-bpe"`."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        convert_gguf_tokenizer, get_gguf_tokenizer)

    architecture, tokenizer_dict, _ = get_gguf_tokenizer(str(path))
    tokenizer_dict = dict(tokenizer_dict, pre_tokenizer_type="llama-bpe")
    backend, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    return {"pre": "llama-bpe",
            "cases": [{"text": t, "ids": backend.encode(t, add_special_tokens=False).ids} for t in TEXTS]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--output", default=str(DEFAULT_OUT))
    args = ap.parse_args()

    import gguf
    import numpy as np
    import tokenizers
    import transformers

    rng = np.random.default_rng(20240601)
    path = Path(args.model)
    fixture = {
        "script": "assets/make_gguf_reference.py",
        "versions": {
            "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf"),
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "dequant": dequant_cases(rng),
        "q8_0_quantize": q8_0_quantize_case(rng),
        "real_file": real_file_case(path),
        "tokenizer": tokenizer_cases(path),
        "tokenizer_llama_bpe": llama_bpe_cases(path),
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fixture, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size} bytes)", file=sys.stderr)


def _dist_version(name):
    from importlib.metadata import version
    return version(name)


if __name__ == "__main__":
    main()
