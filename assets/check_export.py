#!/usr/bin/env python3
"""Checks that an exported model embeds the same in sentence-transformers as
in `uae embed`.

    $UAE_CACHE/venv/bin/python assets/check_export.py --model EXPORTED_DIR \
        --texts texts.jsonl [--uae path/to/uae] [--query] [--min-cosine 0.9999]

`texts.jsonl` holds `{"id": ..., "text": ...}` lines (the `uae embed` input).
Loads EXPORTED_DIR with `SentenceTransformer(dir, device="cpu")`, runs
`uae embed --model EXPORTED_DIR` on the same file (the binary from --uae, else
$UAE_BIN, else `uae` on the PATH) and compares the two embeddings of each
text by cosine. Prints one JSON line {"n", "min_cosine", "mean_cosine",
"worst_id", "dimension", "card"} ("card": the model card's metadata as
huggingface_hub parses it, when README.md exists) and exits 1 when the minimum cosine is below
--min-cosine, or when the counts or dimensions differ.

With --query, both sides embed the texts as queries (uae's --query; the
`query` prompt of sentence-transformers, if the model has one).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="the exported model directory")
    ap.add_argument("--texts", required=True, help='JSONL of {"id", "text"} lines')
    ap.add_argument("--uae", default=os.environ.get("UAE_BIN", "uae"), help="the uae binary")
    ap.add_argument("--query", action="store_true", help="embed the texts as queries")
    ap.add_argument("--min-cosine", type=float, default=0.9999)
    args = ap.parse_args()

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    with open(args.texts, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    if not records:
        sys.exit(f"{args.texts}: no texts")
    ids = [r["id"] for r in records]
    texts = [r["text"] for r in records]

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "uae.jsonl")
        cmd = [args.uae, "embed", "--model", args.model, "--input", args.texts, "--output", out]
        if args.query:
            cmd.append("--query")
        subprocess.run(cmd, check=True)
        with open(out, encoding="utf-8") as f:
            uae = [json.loads(line) for line in f if line.strip()]
    if [r["id"] for r in uae] != ids:
        sys.exit(f"uae embed returned {len(uae)} records whose ids differ from the {len(ids)} inputs")
    ours = np.array([r["embedding"] for r in uae], dtype=np.float64)

    torch.set_num_threads(os.cpu_count() or 1)
    model = SentenceTransformer(args.model, device="cpu")
    kwargs = {}
    if args.query and "query" in (getattr(model, "prompts", None) or {}):
        kwargs["prompt_name"] = "query"
    theirs = model.encode(texts, batch_size=32, convert_to_numpy=True, **kwargs).astype(np.float64)

    if ours.shape != theirs.shape:
        sys.exit(f"shapes differ: uae {ours.shape}, sentence-transformers {theirs.shape}")
    norms = np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
    cosines = (ours * theirs).sum(axis=1) / np.maximum(norms, 1e-12)
    worst = int(cosines.argmin())
    report = {
        "n": len(texts),
        "min_cosine": float(cosines.min()),
        "mean_cosine": float(cosines.mean()),
        "worst_id": ids[worst],
        "dimension": int(ours.shape[1]),
    }
    readme = os.path.join(args.model, "README.md")
    if os.path.isfile(readme):
        from huggingface_hub import ModelCard

        card = ModelCard.load(readme)
        report["card"] = {"library_name": card.data.library_name, "pipeline_tag": card.data.pipeline_tag,
                          "base_model": card.data.base_model}
    print(json.dumps(report))
    if cosines.min() < args.min_cosine:
        print(f"FAIL: min cosine {cosines.min():.6f} < {args.min_cosine} (id {ids[worst]!r})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
