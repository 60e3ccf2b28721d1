#!/usr/bin/env python3
r"""Reference teacher throughput: continuation log-likelihoods with transformers
(PyTorch, fp32, eval) on the SmolLM2 GGUF, batched exactly like uae's Rust
teacher.

    assets/fetch.sh smollm2 && assets/setup-reference-env.sh
    python3 assets/make_logprob_bench_input.py       # -> $UAE_CACHE/data/logprob-bench-256.jsonl
    $UAE_CACHE/venv/bin/python assets/bench_logprob_reference.py \
        --input $UAE_CACHE/data/logprob-bench-256.jsonl --batch-tokens 4096

Input: JSONL of {"id", "prompt", "continuation"}. Each prompt and continuation
is tokenised SEPARATELY without special tokens and the ids are concatenated
(lm-evaluation-harness convention); both must be non-empty.

Batching is uae-model/src/batch.rs `token_budget_batches` on the total lengths:
indices sorted by length descending (stable), a new batch is cut when
(len(batch) + 1) * max(longest so far, this length) > --batch-tokens, and a
batch always holds at least one input (lengths count as at least 1).

Each batch is right-padded with id 2 (<|im_end|>, the GGUF's padding id) and run
with its attention_mask; the hidden states of the positions that predict a
continuation token (row len(prompt)-1+j for token j) are gathered before the
tied lm_head, as uae's CausalLm does, and log_softmax is taken in float64. The
first batch (the longest) is run once untimed as a warm-up; then all batches
are timed, --repeats times, and the fastest pass is reported as one JSON line:
{"system", "tokens_per_second" (real, non-pad prompt+continuation tokens per
second), "items_per_second", "seconds", "n_items", "n_tokens",
"padded_tokens", "batches", "batch_tokens", "torch_threads", "device",
"dtype", "attn_implementation", "versions"}.
--scores-out FILE writes {"id", "logprob_sum", "n_tokens"} per item (input
order) for checking another implementation's numbers.
"""
import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path

UAE_CACHE = Path(os.environ.get("UAE_CACHE", Path.home() / ".cache" / "uae"))
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL = UAE_CACHE / "models" / "SmolLM2-135M-Instruct-GGUF" / GGUF_NAME
DEFAULT_INPUT = UAE_CACHE / "data" / "logprob-bench-256.jsonl"
PAD_ID = 2


def token_budget_batches(lengths, budget):
    """Port of uae-model/src/batch.rs token_budget_batches (same output)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])   # stable
    batches, current, longest = [], [], 0
    for i in order:
        n = max(lengths[i], 1)
        widest = max(longest, n)
        if current and (len(current) + 1) * widest > budget:
            batches.append(current)
            current, longest = [], 0
        longest = max(longest, n)
        current.append(i)
    if current:
        batches.append(current)
    return batches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="the .gguf file")
    ap.add_argument("--input", default=str(DEFAULT_INPUT))
    ap.add_argument("--batch-tokens", type=int, required=True,
                    help="token budget per batch (batch size * longest input)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed passes over the input; the fastest is reported")
    ap.add_argument("--limit", type=int, default=None, help="use the first N items only")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"],
                    help="transformers attn_implementation (default sdpa)")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    ap.add_argument("--scores-out", default=None,
                    help="write {id, logprob_sum, n_tokens} per item to this JSONL")
    args = ap.parse_args()

    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    with open(args.input, encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    if args.limit is not None:
        items = items[: args.limit]
    if not items:
        sys.exit(f"{args.input}: no items")

    gguf = Path(args.model)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
        attn_implementation=args.attn).to(args.device).eval()
    dev = torch.device(args.device)

    pairs = []
    for it in items:
        p = tok(it["prompt"], add_special_tokens=False)["input_ids"]
        c = tok(it["continuation"], add_special_tokens=False)["input_ids"]
        if not p or not c:
            sys.exit(f"item {it['id']}: empty prompt or continuation after tokenisation")
        pairs.append((p, c))
    lengths = [len(p) + len(c) for p, c in pairs]
    batches = token_budget_batches(lengths, args.batch_tokens)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)

    def prepare(batch):
        """Padded ids, mask, and the flat hidden-state rows / target ids."""
        width = max(lengths[i] for i in batch)
        ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, targets, owner = [], [], []
        for b, i in enumerate(batch):
            p, c = pairs[i]
            ids[b, : lengths[i]] = torch.tensor(p + c)
            mask[b, : lengths[i]] = 1
            for j, t in enumerate(c):
                rows.append(b * width + len(p) + j - 1)
                targets.append(t)
                owner.append(b)
        return (ids.to(dev), mask.to(dev), torch.tensor(rows, device=dev),
                torch.tensor(targets, device=dev), torch.tensor(owner, device=dev))

    prepared = [prepare(b) for b in batches]

    def run(prep, n):
        ids, mask, rows, targets, owner = prep
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows)
        lp = torch.log_softmax(model.lm_head(h).double(), dim=-1)
        tok_lp = lp.gather(1, targets[:, None])[:, 0]
        return torch.zeros(n, dtype=torch.float64, device=dev).index_add_(0, owner, tok_lp)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    sums = [None] * len(items)
    with torch.inference_mode():
        run(prepared[0], len(batches[0]))                        # warm-up
        sync()
        best = None
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            outs = [run(prep, len(b)) for prep, b in zip(prepared, batches)]
            sync()
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        for b, out in zip(batches, outs):
            for i, s in zip(b, out.tolist()):
                sums[i] = s

    if args.scores_out:
        with open(args.scores_out, "w", encoding="utf-8") as f:
            for it, (p, c), s in zip(items, pairs, sums):
                f.write(json.dumps({"id": it["id"], "logprob_sum": s, "n_tokens": len(c)}) + "\n")

    def ver(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    n_tokens = sum(lengths)
    print(json.dumps({
        "system": "transformers",
        "tokens_per_second": round(n_tokens / best, 2),
        "items_per_second": round(len(items) / best, 3),
        "seconds": round(best, 4),
        "n_items": len(items),
        "n_tokens": n_tokens,
        "padded_tokens": padded,
        "batches": len(batches),
        "batch_tokens": args.batch_tokens,
        "torch_threads": torch.get_num_threads(),
        "device": str(dev),
        "dtype": "float32",
        "attn_implementation": args.attn,
        "model": gguf.name,
        "versions": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "tokenizers": ver("tokenizers"),
            "gguf": ver("gguf"),
            "python": platform.python_version(),
        },
    }))


if __name__ == "__main__":
    main()
