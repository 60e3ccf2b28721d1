#!/usr/bin/env python3
"""Deterministic input for the training-step benchmark (scripts/bench_train.sh).

From a BEIR folder (default: the python-faq set that `uae` fetches) this writes a
new BEIR folder whose every passage is real FAQ text at least `--min-tokens`
tokens long (consecutive corpus passages joined until the model's tokenizer
counts enough tokens), plus a `labels.jsonl` in the format `uae label` writes:
`--queries` queries, each with `--candidates` candidates (the long passage that
starts with the query's judged answer, then distinct others) and synthetic
utilities (the answer 2.0, the rest seeded values in [-1, 1]).

With `max_length: 128` in the train config, every candidate is then exactly
128 tokens, so one step of 16 queries is 16 x 16 x 128 passage tokens.

    python assets/make_train_bench_input.py --out DIR [--queries 65] [--candidates 16]

Writes DIR/data/{corpus.jsonl,queries.jsonl,qrels/train.tsv}, DIR/labels.jsonl
and DIR/summary.json. Needs the `tokenizers` package (the reference venv has it).
"""

import argparse
import json
import os
import random
import sys


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=os.path.expanduser("~/.cache/uae/data/python-faq"))
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/uae/models/all-MiniLM-L6-v2"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--queries", type=int, default=65, help="labelled queries (16 per step, +1 held out by uae)")
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--min-tokens", type=int, default=160, help="tokens per passage before truncation")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()

    corpus = read_jsonl(os.path.join(args.source, "corpus.jsonl"))
    queries = {q["_id"]: q for q in read_jsonl(os.path.join(args.source, "queries.jsonl"))}
    gold = {}
    with open(os.path.join(args.source, "qrels", "train.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0 and qid in queries:
                gold.setdefault(qid, did)
    index = {p["_id"]: i for i, p in enumerate(corpus)}

    def long_text(start):
        """Corpus passages start, start+1, ... joined until min_tokens."""
        parts, i = [], start
        while True:
            p = corpus[i % len(corpus)]
            parts.append(p["text"].strip())
            text = " ".join(parts)
            if len(tok.encode(text).ids) >= args.min_tokens:
                return text
            i += 1

    qids = sorted(q for q in gold if gold[q] in index)
    if len(qids) < args.queries:
        sys.exit(f"only {len(qids)} queries with a judged passage, need {args.queries}")
    rng = random.Random(args.seed)
    rng.shuffle(qids)
    qids = qids[: args.queries]

    data = os.path.join(args.out, "data")
    os.makedirs(os.path.join(data, "qrels"), exist_ok=True)
    passages = {}  # new id -> text
    labels = []
    for qid in qids:
        starts = [index[gold[qid]]]
        while len(starts) < args.candidates:
            s = rng.randrange(len(corpus))
            if s not in starts:
                starts.append(s)
        doc_ids = []
        for s in starts:
            did = f"bench/{s}"
            if did not in passages:
                passages[did] = long_text(s)
            doc_ids.append(did)
        utilities = [2.0] + [round(rng.uniform(-1.0, 1.0), 4) for _ in starts[1:]]
        # The answer's position is seeded, not always first.
        pos = rng.randrange(args.candidates)
        doc_ids.insert(pos, doc_ids.pop(0))
        utilities.insert(pos, utilities.pop(0))
        labels.append({"query_id": qid, "doc_ids": doc_ids, "utilities": utilities})

    lengths = [len(tok.encode(t).ids) for t in passages.values()]
    with open(os.path.join(data, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for did in sorted(passages):
            f.write(json.dumps({"_id": did, "title": "", "text": passages[did]}) + "\n")
    with open(os.path.join(data, "queries.jsonl"), "w", encoding="utf-8") as f:
        for qid in qids:
            f.write(json.dumps({"_id": qid, "text": queries[qid]["text"]}) + "\n")
    with open(os.path.join(data, "qrels", "train.tsv"), "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for line in labels:
            f.write(f"{line['query_id']}\tbench/{index[gold[line['query_id']]]}\t1\n")
    with open(os.path.join(args.out, "labels.jsonl"), "w", encoding="utf-8") as f:
        for line in labels:
            f.write(json.dumps(line) + "\n")
    summary = {
        "queries": len(labels),
        "candidates": args.candidates,
        "passages": len(passages),
        "passage_tokens_min": min(lengths),
        "passage_tokens_max": max(lengths),
        "seed": args.seed,
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
