#!/usr/bin/env python3
"""Reference embedding throughput: sentence-transformers on CPU, fp32.

    $UAE_CACHE/venv/bin/python assets/bench_embed_reference.py \
        --model $UAE_CACHE/models/all-MiniLM-L6-v2 \
        --input $UAE_CACHE/data/passages-1000-20-250.jsonl --batch-size 32

Sets torch threads to the number of cores (override with --threads), encodes
one warm-up batch, then times encoding all passages (in input order, batches
of --batch-size, ST's own length sorting inside encode) and prints one JSON line:
{"system": "sentence-transformers", "n", "seconds", "per_second",
 "torch_threads", "batch_size", "max_seq_length", "versions"}.
"""
import argparse
import json
import os
import platform
import time
from pathlib import Path

UAE_CACHE = Path(os.environ.get("UAE_CACHE", Path.home() / ".cache" / "uae"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(UAE_CACHE / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--input", default=str(UAE_CACHE / "data" / "passages-1000-20-250.jsonl"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed passes over the input; the fastest is reported")
    args = ap.parse_args()

    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    with open(args.input, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]

    model = SentenceTransformer(args.model, device="cpu").float().eval()
    kw = dict(batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
    with torch.inference_mode():
        model.encode(texts[: args.batch_size], **kw)          # warm-up
        best = None
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            emb = model.encode(texts, **kw)
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
    assert emb.shape[0] == len(texts)
    print(json.dumps({
        "system": "sentence-transformers",
        "n": len(texts),
        "seconds": round(best, 4),
        "per_second": round(len(texts) / best, 2),
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "max_seq_length": int(model.max_seq_length),
        "device": "cpu",
        "dtype": "float32",
        "versions": {
            "sentence-transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }))


if __name__ == "__main__":
    main()
