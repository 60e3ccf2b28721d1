#!/usr/bin/env python3
"""PyTorch reference for the training-step benchmark (scripts/bench_train.sh).

The same step as `uae train --loss um-infonce` with the defaults the bench
config sets: a sentence-transformers bi-encoder (transformers AutoModel from
the same directory, mean pooling over the attention mask, L2 normalisation),
batches of 16 queries with their 16 candidates from labels.jsonl, candidates
truncated to --max-length tokens (queries padded to the batch's longest, as
uae's batcher does), UM-InfoNCE with in-batch negatives:

    z      = q . p^T / tau              over all B*K passages of the batch
    log p  = log_softmax(z)             (own K columns + (B-1)*K in-batch)
    p_U    = softmax(U / tau_u)         over the query's own K candidates
    loss   = mean_b -sum_{d in K} p_U(d) log p(d)

AdamW (lr 2e-5, weight decay 0.01, eps 1e-8), gradient clipping at global
norm 1.0, fp32, torch threads = CPU cores, on --device (cpu, or cuda where
this torch has it). Times --steps steps after --warmup untimed ones and
prints one JSON line: query groups/s (queries per second: one group is a
query with its candidates), seconds per step, peak RSS (ru_maxrss) and, on
cuda, the peak of torch's allocated GPU memory.

    python assets/bench_train_reference.py --data DIR/data --labels DIR/labels.jsonl --steps 3
"""

import argparse
import json
import os
import resource
import time


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/uae/models/all-MiniLM-L6-v2"))
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--tau-u", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    corpus = {}
    for p in read_jsonl(os.path.join(args.data, "corpus.jsonl")):
        title = p.get("title", "").strip()
        corpus[p["_id"]] = f"{p['title']}. {p['text']}" if title else p["text"]
    queries = {q["_id"]: q["text"] for q in read_jsonl(os.path.join(args.data, "queries.jsonl"))}
    labels = read_jsonl(args.labels)
    need = (args.warmup + args.steps) * args.batch_size
    if len(labels) < need:
        raise SystemExit(f"{args.labels} has {len(labels)} queries, need {need}")

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model, dtype=torch.float32).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, eps=1e-8)

    def embed(texts):
        enc = tokenizer(texts, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt").to(device)
        out = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1), int(enc["input_ids"].shape[1])

    def step(batch):
        b, k = len(batch), len(batch[0]["doc_ids"])
        q, q_len = embed([queries[x["query_id"]] for x in batch])
        p, p_len = embed([corpus[d] for x in batch for d in x["doc_ids"]])
        utilities = torch.tensor([x["utilities"] for x in batch], dtype=torch.float32, device=device)
        logits = q @ p.T / args.tau  # [B, B*K]
        log_p = F.log_softmax(logits, dim=1)
        own = (torch.arange(k).unsqueeze(0) + (torch.arange(b) * k).unsqueeze(1)).to(device)
        log_p_own = log_p.gather(1, own)  # [B, K]
        target = F.softmax(utilities / args.tau_u, dim=1)
        loss = -(target * log_p_own).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.detach().item(), q_len, p_len

    batches = [labels[i * args.batch_size:(i + 1) * args.batch_size] for i in range(args.warmup + args.steps)]
    for batch in batches[: args.warmup]:
        step(batch)
    times, losses, shapes = [], [], set()
    for batch in batches[args.warmup:]:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, q_len, p_len = step(batch)  # .item() waits for the device
        times.append(time.perf_counter() - t0)
        losses.append(round(loss, 5))
        shapes.add((q_len, p_len))
    total = sum(times)
    queries_done = args.steps * args.batch_size
    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "batch": args.batch_size,
        "candidates": len(labels[0]["doc_ids"]),
        "passage_tokens": sorted({s[1] for s in shapes}),
        "query_tokens": sorted({s[0] for s in shapes}),
        "seconds": round(total, 3),
        "seconds_per_step": [round(t, 3) for t in times],
        "groups_per_s": round(queries_done / total, 4),
        "losses": losses,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
    }))


if __name__ == "__main__":
    main()
