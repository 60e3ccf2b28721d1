#!/usr/bin/env python3
r"""Reference greedy generation throughput: transformers (PyTorch, fp32) on
the same GGUF teacher, the same prompts and the same batches as `uae generate
--input ... --batch B`.

    assets/fetch.sh smollm2 && assets/setup-reference-env.sh
    $UAE_CACHE/venv/bin/python assets/bench_generate_reference.py \
        --input prompts.jsonl --batch 8 --max-new-tokens 24 --output ref.jsonl

Input: JSONL of {"prompt"} user messages; each is rendered with the model's
chat template (add_generation_prompt) and tokenised without special tokens,
as uae does. Batches are consecutive runs of --batch prompts, left-padded with
the pad id and an attention mask; generate(do_sample=False, max_new_tokens,
eos = the GGUF's eos). Generated tokens count each row up to and including
its EOS. Prints one JSON line: {"system", "tokens_per_second", "seconds",
"n_prompts", "n_tokens", "batch", "max_new_tokens", "torch_threads",
"peak_rss_mib", "versions"}; --output writes {"prompt", "text", "ids"} per
prompt (input order) to compare the texts with uae's.
"""
import argparse
import importlib.metadata
import json
import os
import resource
import sys
import time
from pathlib import Path

UAE_CACHE = Path(os.environ.get("UAE_CACHE", Path.home() / ".cache" / "uae"))
DEFAULT_MODEL = UAE_CACHE / "models" / "SmolLM2-135M-Instruct-GGUF" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--input", required=True)
    ap.add_argument("--output")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    gguf = Path(args.model)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                 dtype=torch.float32).eval()
    eos = int(model.config.eos_token_id)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    prompts = [json.loads(l)["prompt"] for l in open(args.input, encoding="utf-8") if l.strip()]
    ids = [tok(tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                       tokenize=False), add_special_tokens=False)["input_ids"]
           for p in prompts]

    def run(chunk):
        width = max(map(len, chunk))
        inp = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for b, s in enumerate(chunk):
            inp[b, width - len(s):] = torch.tensor(s)
            mask[b, width - len(s):] = 1
        out = model.generate(input_ids=inp, attention_mask=mask, max_new_tokens=args.max_new_tokens,
                             do_sample=False, eos_token_id=eos, pad_token_id=pad)
        rows = []
        for row in out[:, width:].tolist():
            new = []
            for t in row:
                new.append(t)
                if t == eos:
                    break
            rows.append(new)
        return rows

    with torch.inference_mode():
        run(ids[:args.batch])   # warm-up, untimed
        start = time.perf_counter()
        results = []
        for i in range(0, len(ids), args.batch):
            results.extend(run(ids[i:i + args.batch]))
        seconds = time.perf_counter() - start
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            for p, new in zip(prompts, results):
                text = tok.decode(new, skip_special_tokens=True)
                f.write(json.dumps({"prompt": p, "text": text, "ids": new}, ensure_ascii=False) + "\n")
    n_tokens = sum(map(len, results))
    versions = {k: importlib.metadata.version(k) for k in ("transformers", "torch")}
    print(json.dumps({
        "system": "transformers", "tokens_per_second": round(n_tokens / seconds, 2),
        "seconds": round(seconds, 3), "n_prompts": len(prompts), "n_tokens": n_tokens,
        "batch": args.batch, "max_new_tokens": args.max_new_tokens,
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "versions": versions,
    }))


if __name__ == "__main__":
    sys.exit(main())
