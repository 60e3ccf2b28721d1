#!/usr/bin/env python3
"""Seed-averaged significance for this report's README: each test query's
Recall@1 and average precision averaged over the five training seeds of a
student (the run files of `seeds.md`, kept in the work directory), then the
paired two-sided randomization test of `uae eval` (10,000 sign flips) on
those per-query means. Usage: python3 seed_pooled.py [WORK_DIR]."""
import collections
import os
import random
import statistics
import sys

work = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/uae/benchmark-test80-qwenq")
runs = os.path.join(work, "seeds/report6/runs")

relevant = collections.defaultdict(set)
for line in open(os.path.join(work, "data/qrels/test.tsv")):
    fields = line.split()
    if len(fields) >= 3 and fields[0] != "query-id" and int(fields[2]) > 0:
        relevant[fields[0]].add(fields[1])
queries = sorted(relevant)


def per_query(system):
    """(Recall@1, average precision) of each query in `system`'s TREC run."""
    ranked = collections.defaultdict(list)
    for line in open(os.path.join(runs, f"{system}.trec")):
        q, _, doc, rank = line.split()[:4]
        ranked[q].append((int(rank), doc))
    out = {}
    for q in queries:
        docs = [d for _, d in sorted(ranked.get(q, []))]
        gold = relevant[q]
        hits, ap = 0, 0.0
        for i, d in enumerate(docs, 1):
            if d in gold:
                hits += 1
                ap += hits / i
        out[q] = ((1 if docs and docs[0] in gold else 0) / len(gold), ap / len(gold))
    return out


def seed_mean(systems):
    scores = [per_query(s) for s in systems]
    return {q: tuple(statistics.mean(s[q][k] for s in scores) for k in (0, 1)) for q in queries}


def test(a, b, k, rng, resamples=10_000):
    d = [a[q][k] - b[q][k] for q in queries]
    observed = abs(sum(d))
    extreme = sum(abs(sum(x if rng.random() < 0.5 else -x for x in d)) >= observed - 1e-12 for _ in range(resamples))
    return sum(d) / len(d), (extreme + 1) / (resamples + 1)


base = per_query("base")
uae = seed_mean(["uae"] + [f"uae-s{s}" for s in range(1, 5)])
infonce = seed_mean(["infonce"] + [f"infonce-s{s}" for s in range(1, 5)])
rng = random.Random(7)
for name, a, b in [("UAE (5 seeds) - base", uae, base), ("InfoNCE (5 seeds) - base", infonce, base), ("UAE - InfoNCE (5 seeds each)", uae, infonce)]:
    (r1, p1), (ap, p2) = test(a, b, 0, rng), test(a, b, 1, rng)
    print(f"{name}: Recall@1 {r1:+.3f} p={p1:.3f}, MAP {ap:+.3f} p={p2:.3f}")
