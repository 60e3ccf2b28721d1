#!/usr/bin/env python3
"""Seed-averaged significance for this report's README: each test query's
Recall@1 and average precision, as `uae eval` computed them (the per-query
values in `seeds.json`, the report.json of `seeds.md`), averaged over the
five training seeds of a student, then the paired two-sided randomization
test that `uae eval` runs (10,000 sign flips) on those per-query means:
`uae eval` tests systems, and a seed average is not one.
Usage: python3 seed_pooled.py [REPORT_JSON]."""
import json
import os
import random
import statistics
import sys

report = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds.json")
per_query = {s["name"]: s["per_query"] for s in json.load(open(report))["systems"]}
METRICS = ("recall@1", "map")
queries = sorted(per_query["base"]["map"])


def seed_mean(systems):
    return {m: {q: statistics.mean(per_query[s][m][q] for s in systems) for q in queries} for m in METRICS}


def test(a, b, metric, rng, resamples=10_000):
    d = [a[metric][q] - b[metric][q] for q in queries]
    observed = abs(sum(d))
    extreme = sum(abs(sum(x if rng.random() < 0.5 else -x for x in d)) >= observed - 1e-12 for _ in range(resamples))
    return sum(d) / len(d), (extreme + 1) / (resamples + 1)


base = seed_mean(["base"])
uae = seed_mean(["uae"] + [f"uae-s{s}" for s in range(1, 5)])
infonce = seed_mean(["infonce"] + [f"infonce-s{s}" for s in range(1, 5)])
rng = random.Random(7)
for name, a, b in [("UAE (5 seeds) - base", uae, base), ("InfoNCE (5 seeds) - base", infonce, base), ("UAE - InfoNCE (5 seeds each)", uae, infonce)]:
    (r1, p1), (ap, p2) = test(a, b, "recall@1", rng), test(a, b, "map", rng)
    print(f"{name}: Recall@1 {r1:+.3f} p={p1:.3f}, MAP {ap:+.3f} p={p2:.3f}")
