#!/usr/bin/env python3
"""Make the retrieval-metric fixtures under assets/fixtures/metrics/ and their
reference values, computed with pytrec_eval (trec_eval's C code) and
cross-checked with ranx and with a plain-Python implementation.

    $UAE_CACHE/venv/bin/python -m pip install pytrec-eval-terrier ranx
    $UAE_CACHE/venv/bin/python assets/make_metric_reference.py [--out DIR]

Files written (the judgements and the run are defined in this script, below):
  qrels.trec      "qid 0 docid rel" per line (TREC qrels; rel in 0..3)
  qrels.tsv       BEIR qrels: header "query-id\tcorpus-id\tscore", then the same
                  judgements in the same order (rel-0 lines included)
  run.trec        "qid Q0 docid rank score tag" (TREC run). The rank column is
                  ignored (as by trec_eval): query q03 is written out of order and
                  its rank column is deliberately wrong. Scores are decimal
                  floats, some in exponent form; "0.5", "0.50" and "5e-1" are
                  equal (a tie), so compare parsed values, never the text.
  reference.json  reference values, see "reference.json" below.

Conventions (uae's; docs/method.md, "Ranking order" and "Metrics"):
  * Ranking of a query's run: score descending, ties broken by document id
    ASCENDING, comparing the ids' UTF-8 bytes (so "K1" < "d10" < "d100" < "d9"
    < "k1" < "k10" < "k2": no natural/numeric sort).
  * Relevant: rel >= 1. Judged rel-0 and unjudged documents are non-relevant.
  * recall@k = |relevant in top k| / |relevant in qrels|
    p@k      = |relevant in top k| / k  (k, even if fewer were retrieved)
    mrr@k    = 1 / rank of the first relevant in the top k, else 0
    map      = (1/|relevant in qrels|) * sum over relevant ranks i of P@i,
               over the whole ranking (no cut-off)
    ndcg@k   = DCG@k / IDCG@k, DCG = sum_i gain_i / log2(i + 1), gain = rel
               (LINEAR; trec_eval ndcg_cut and ranx "ndcg" are linear, ranx
               "ndcg_burges" is 2^rel - 1); IDCG@k from all judged grades of the
               query sorted descending.
  * Means: over the queries with at least one relevant (rel >= 1) judgement in
    the qrels. Such a query absent from the run scores 0 on every metric
    (trec_eval -c). Run queries not in the qrels, and queries whose
    judgements are all rel 0, are ignored.

What the reference tools do (checked by this script, recorded in reference.json
under "tools"):
  * trec_eval / pytrec_eval break score ties by document id DESCENDING (strcmp).
    Our order differs, so "per_query"/"mean" are computed by pytrec_eval on a
    copy of the run whose scores are replaced by strictly decreasing ones in
    uae's order (the order is listed in "ranking"). The values pytrec_eval gives
    on the raw run (trec_eval's tie order, listed in "ranking_trec_eval") are in
    "trec_eval_ties"; they differ on q02, q07, q10 (the tie queries).
  * pytrec_eval has no cut-off reciprocal rank: mrr@k = its recip_rank on the
    run truncated to uae's top k.
  * pytrec_eval returns per-query values for queries in both qrels and run,
    including a query with no relevant judgement (all zeros); it drops qrels
    queries missing from the run (it has no -c mean); means are ours.
  * ranx keeps ties in input order (numba argsort of the scores; input order is
    file/dict insertion order, and numba's quicksort is not stable for long
    lists), so its tie order is neither trec_eval's nor ours.
  * ranx means include qrels queries with no relevant judgement (as 0) and
    missing-from-run queries (as 0), so its means differ from ours; per-query
    values on the untied run equal pytrec_eval's.

reference.json keys:
  description, script, versions, conventions (text), ks, metrics (names in
  order), queries (ids averaged over, sorted), excluded (id -> reason),
  ranking (qid -> doc ids in uae's order), ranking_trec_eval (qid -> doc ids in
  trec_eval's order), per_query (qid -> metric -> value, uae's order),
  mean (metric -> value), trec_eval_ties ({per_query, mean} on trec_eval's
  order, same averaging), tools (what was checked: disagreements, ranx means).
Metric names: recall@k, p@k, mrr@k, ndcg@k for k in 1,3,5,10,100, and map.
"""
import argparse
import json
import math
import platform
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "fixtures" / "metrics"
KS = [1, 3, 5, 10, 100]
METRICS = ([f"recall@{k}" for k in KS] + [f"p@{k}" for k in KS] +
           [f"mrr@{k}" for k in KS] + ["map"] + [f"ndcg@{k}" for k in KS])
TOL = 1e-12

# ------------------------------------------------------------- fixture data --
# (qid, docid, rel) in file order.
QRELS = [
    # q01: graded, a rel-0 doc ranked first, an unretrieved relevant (d9).
    ("q01", "d3", 3), ("q01", "d7", 1), ("q01", "d5", 0), ("q01", "d9", 2),
    # q02: three-way tie d9/d100/d10 at the top; only d9 is relevant.
    ("q02", "d9", 2), ("q02", "d100", 0), ("q02", "d4", 1),
    # q03: 15 retrieved, relevant at ranks 2, 11, 14, one never retrieved.
    ("q03", "p02", 1), ("q03", "p11", 3), ("q03", "p14", 2), ("q03", "p99", 1),
    ("q03", "p05", 0), ("q03", "p06", 0),
    # q04: only rel-0 judgements (no relevant doc): excluded from means.
    ("q04", "d1", 0), ("q04", "d2", 0),
    # q05: relevant docs, query absent from the run: scores 0, counted.
    ("q05", "d1", 1), ("q05", "d2", 2),
    # q07: tie 0.5 == 0.50 == 5e-1 across the k=3 boundary.
    ("q07", "z", 1), ("q07", "c", 2),
    # q08: fewer retrieved (2) than most cut-offs.
    ("q08", "m2", 1), ("q08", "m3", 1),
    # q09: 12 relevant (grades 1..3) in a non-ideal order, negative scores.
    ("q09", "g01", 1), ("q09", "g02", 3), ("q09", "g03", 2), ("q09", "g04", 0),
    ("q09", "g05", 3), ("q09", "g06", 1), ("q09", "g07", 2), ("q09", "g08", 1),
    ("q09", "g09", 1), ("q09", "g10", 2), ("q09", "g11", 3), ("q09", "g12", 1),
    ("q09", "g13", 2), ("q09", "g14", 0),
    # q10: all 12 scores equal: the ranking is the id order (upper case first).
    ("q10", "k2", 1), ("q10", "k10", 3), ("q10", "K1", 2), ("q10", "k7", 0),
    # q11: perfect ranking.
    ("q11", "n1", 3),
    # q12: retrieved only rel-0 and unjudged docs; its relevant one not retrieved.
    ("q12", "r1", 0), ("q12", "r2", 0), ("q12", "r3", 1),
]

# (qid, docid, score text) in file order (rank column = position in this list
# within the query, except q03, see below).
RUN = [
    ("q01", "d5", "0.95"), ("q01", "d3", "0.90"), ("q01", "d11", "0.80"),
    ("q01", "d2", "0.70"), ("q01", "d7", "0.60"), ("q01", "d8", "0.5"),
    ("q02", "d9", "0.9"), ("q02", "d100", "0.9"), ("q02", "d10", "0.9"),
    ("q02", "d4", "0.8"), ("q02", "d1", "0.1"),
    # q03 shuffled; scores 15 .. 1 for p01 .. p15, some in exponent form.
    ("q03", "p07", "9"), ("q03", "p14", "2.0"), ("q03", "p01", "1.5e1"),
    ("q03", "p11", "5"), ("q03", "p03", "13"), ("q03", "p15", "1e0"),
    ("q03", "p02", "14.0"), ("q03", "p09", "7"), ("q03", "p04", "12"),
    ("q03", "p12", "4"), ("q03", "p05", "11"), ("q03", "p13", "3"),
    ("q03", "p06", "1.0E1"), ("q03", "p10", "6"), ("q03", "p08", "8"),
    ("q04", "d1", "0.5"), ("q04", "d2", "0.4"), ("q04", "d3", "0.3"),
    ("q06", "d1", "3"), ("q06", "d2", "2"), ("q06", "d3", "1"),
    ("q07", "a", "0.9"), ("q07", "b", "0.7"), ("q07", "x", "0.5"),
    ("q07", "y", "0.50"), ("q07", "z", "5e-1"), ("q07", "c", "0.2"),
    ("q08", "m1", "2.0"), ("q08", "m2", "1.0"),
    ("q09", "g04", "-0.1"), ("q09", "g01", "-0.2"), ("q09", "g13", "-0.3"),
    ("q09", "g02", "-0.4"), ("q09", "g20", "-0.5"), ("q09", "g07", "-0.6"),
    ("q09", "g12", "-0.7"), ("q09", "g05", "-0.8"), ("q09", "g21", "-0.9"),
    ("q09", "g09", "-1.0"), ("q09", "g11", "-1.1"), ("q09", "g03", "-1.2"),
    ("q09", "g06", "-1.3"),
] + [("q10", d, "-1.5") for d in
     ["k7", "k2", "k11", "k10", "k1", "K1", "k3", "k12", "k4", "k9", "k5", "k8"]] + [
    ("q11", "n1", "3"), ("q11", "n2", "2"),
    ("q12", "r1", "0.3"), ("q12", "r4", "0.2"), ("q12", "r2", "0.1"),
]
RUN_TAG = "uae-fixture"


# ------------------------------------------------------------------ helpers --
def as_dicts():
    qrels, run = {}, {}
    for q, d, r in QRELS:
        assert d not in qrels.setdefault(q, {}), (q, d)
        qrels[q][d] = r
    for q, d, s in RUN:
        assert d not in run.setdefault(q, {}), (q, d)
        run[q][d] = float(s)
    return qrels, run


def order(docs, desc_ids=False):
    """Doc ids sorted by score desc, then id bytes asc (or desc: trec_eval)."""
    by_id = sorted(docs, key=lambda d: d.encode("utf-8"), reverse=desc_ids)
    return sorted(by_id, key=lambda d: -docs[d])  # stable: keeps the id order


def strict_run(run, desc_ids=False):
    """Same ranking, tie-free scores (n, n-1, ..., 1)."""
    out = {}
    for q, docs in run.items():
        ranked = order(docs, desc_ids)
        out[q] = {d: float(len(ranked) - i) for i, d in enumerate(ranked)}
    return out


def naive(rels, ranked):
    """Plain-Python metrics for one query (rels: doc -> grade)."""
    nrel = sum(1 for g in rels.values() if g >= 1)
    hit = [1 if rels.get(d, 0) >= 1 else 0 for d in ranked]
    out = {}
    for k in KS:
        h = sum(hit[:k])
        out[f"recall@{k}"] = h / nrel
        out[f"p@{k}"] = h / k
        first = next((i for i, x in enumerate(hit[:k]) if x), None)
        out[f"mrr@{k}"] = 0.0 if first is None else 1.0 / (first + 1)
        dcg = sum(max(rels.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
        ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        out[f"ndcg@{k}"] = dcg / idcg
    ap, h = 0.0, 0
    for i, x in enumerate(hit):
        if x:
            h += 1
            ap += h / (i + 1)
    out["map"] = ap / nrel
    return out


def pytrec_per_query(qrels, run):
    """uae metric names -> values, for queries in qrels and run, via pytrec_eval.
    `run` must be tie-free (so truncation to the top k is well defined)."""
    import pytrec_eval
    cuts = ",".join(map(str, KS))
    ev = pytrec_eval.RelevanceEvaluator(
        qrels, {f"recall.{cuts}", f"P.{cuts}", f"ndcg_cut.{cuts}", "map", "recip_rank"})
    res = ev.evaluate(run)
    out = {q: {} for q in res}
    for q, m in res.items():
        for k in KS:
            out[q][f"recall@{k}"] = m[f"recall_{k}"]
            out[q][f"p@{k}"] = m[f"P_{k}"]
            out[q][f"ndcg@{k}"] = m[f"ndcg_cut_{k}"]
        out[q]["map"] = m["map"]
    for k in KS:
        top = {q: dict(sorted(d.items(), key=lambda x: -x[1])[:k]) for q, d in run.items()}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top)
        for q in out:
            out[q][f"mrr@{k}"] = rr[q]["recip_rank"]
    return out


def ranx_per_query(qrels, run, *, from_files=None):
    """uae metric names -> values for every qrels query (ranx fills missing
    ones with 0), and ranx's own means."""
    import ranx
    if from_files:
        q = ranx.Qrels.from_file(str(from_files[0]), kind="trec")
        r = ranx.Run.from_file(str(from_files[1]), kind="trec")
    else:
        q, r = ranx.Qrels(qrels), ranx.Run(run)
    names = {}
    for k in KS:
        names[f"recall@{k}"] = f"recall@{k}"
        names[f"p@{k}"] = f"precision@{k}"
        names[f"mrr@{k}"] = f"mrr@{k}"
        names[f"ndcg@{k}"] = f"ndcg@{k}"
    names["map"] = "map"
    means = ranx.evaluate(q, r, list(names.values()), make_comparable=True,
                          save_results_in_run=True)
    per_q = {}
    for ours, theirs in names.items():
        for qid, v in r.scores[theirs].items():
            per_q.setdefault(qid, {})[ours] = float(v)
    return per_q, {m: float(means[names[m]]) for m in METRICS}


def mean_over(per_query, queries):
    return {m: sum(per_query.get(q, {}).get(m, 0.0) for q in queries) / len(queries)
            for m in METRICS}


def diffs(a, b, queries):
    out = []
    for q in queries:
        for m in METRICS:
            x, y = a.get(q, {}).get(m, 0.0), b.get(q, {}).get(m, 0.0)
            if abs(x - y) > TOL:
                out.append({"query": q, "metric": m, "a": x, "b": y})
    return out


def dump_json(obj) -> str:
    """One top-level key per line; dicts of dicts one entry per line."""
    lines = []
    for k, v in obj.items():
        key = json.dumps(k)
        if isinstance(v, dict) and v and all(isinstance(x, (dict, list)) for x in v.values()):
            items = [f"  {json.dumps(kk)}:" + json.dumps(vv, separators=(",", ":"))
                     for kk, vv in v.items()]
            lines.append(f"{key}:{{\n" + ",\n".join(items) + "\n}")
        else:
            lines.append(f"{key}:" + json.dumps(v, separators=(",", ":")))
    return "{\n" + ",\n".join(lines) + "\n}\n"


# --------------------------------------------------------------------- main --
def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # Fixture files.
    with open(out / "qrels.trec", "w") as f:
        for q, d, r in QRELS:
            f.write(f"{q} 0 {d} {r}\n")
    with open(out / "qrels.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d, r in QRELS:
            f.write(f"{q}\t{d}\t{r}\n")
    with open(out / "run.trec", "w") as f:
        pos = {}
        for q, d, s in RUN:
            pos[q] = pos.get(q, 0) + 1
            rank = pos[q] if q != "q03" else 16 - pos[q]  # q03: meaningless ranks
            f.write(f"{q} Q0 {d} {rank} {s} {RUN_TAG}\n")

    qrels, run = as_dicts()
    queries = sorted(q for q, r in qrels.items() if any(g >= 1 for g in r.values()))
    excluded = {q: "no relevant (rel >= 1) judgement in qrels" for q in qrels if q not in queries}
    excluded.update({q: "in run, not in qrels" for q in run if q not in qrels})
    ranking = {q: order(run[q]) for q in sorted(run)}
    ranking_te = {q: order(run[q], desc_ids=True) for q in sorted(run)}

    # uae order: pytrec_eval on the tie-free run; check with ranx and naive.
    ours = pytrec_per_query(qrels, strict_run(run))
    ours = {q: ours[q] if q in ours else {m: 0.0 for m in METRICS} for q in queries}
    nv = {q: naive(qrels[q], ranking.get(q, [])) for q in queries}
    rx, rx_mean_strict = ranx_per_query(qrels, strict_run(run))
    for name, other in (("naive", nv), ("ranx", rx)):
        bad = diffs(ours, other, queries)
        if bad:
            sys.exit(f"error: pytrec_eval and {name} disagree on the tie-free run: {bad}")

    # trec_eval order: pytrec_eval on the raw run; check with naive(desc ids).
    te = pytrec_per_query(qrels, strict_run(run, desc_ids=True))
    raw = pytrec_per_query(qrels, run)
    for q in raw:  # mrr@k from the raw run cannot be truncated: take te's
        for k in KS:
            raw[q][f"mrr@{k}"] = te[q][f"mrr@{k}"]
    bad = diffs(raw, te, sorted(raw))
    if bad:
        sys.exit(f"error: pytrec_eval's tie order is not doc id descending: {bad}")
    te = {q: te[q] if q in te else {m: 0.0 for m in METRICS} for q in queries}
    nv_te = {q: naive(qrels[q], ranking_te.get(q, [])) for q in queries}
    bad = diffs(te, nv_te, queries)
    if bad:
        sys.exit(f"error: naive (desc ids) disagrees with pytrec_eval: {bad}")

    # What ranx does with the raw files (ties, missing and zero-relevant queries).
    rx_raw, rx_raw_mean = ranx_per_query(None, None,
                                         from_files=(out / "qrels.trec", out / "run.trec"))
    tie_queries = sorted({q for q in queries if ranking.get(q) != ranking_te.get(q)})
    tools = {
        "pytrec_eval_tie_order": "score desc, doc id desc (strcmp); verified",
        "ranx_tie_order": "input (file) order for ties",
        "queries_with_ties_that_change_metrics": sorted(
            {d["query"] for d in diffs(ours, te, queries)}),
        "queries_whose_order_differs_uae_vs_trec_eval": tie_queries,
        "uae_vs_trec_eval_ties": diffs(ours, te, queries),
        "ranx_raw_vs_uae": diffs(rx_raw, ours, queries),
        "ranx_raw_vs_trec_eval_ties": diffs(rx_raw, te, queries),
        "pytrec_eval_raw_query_ids": sorted(raw),
        "ranx_queries_averaged": sorted(rx_raw),
        "ranx_mean_tie_free_run": rx_mean_strict,
        "ranx_mean_raw_files": rx_raw_mean,
        "ranx_ndcg_gain": "linear (ndcg: Jarvelin); ndcg_burges: 2^rel-1",
    }

    versions = {"pytrec_eval": metadata.version("pytrec-eval-terrier"),
                "ranx": metadata.version("ranx"),
                "numba": metadata.version("numba"),
                "python": platform.python_version()}
    ref = {
        "description": "uae retrieval-metric reference on qrels.trec / run.trec",
        "script": "assets/make_metric_reference.py (see its docstring for conventions)",
        "versions": versions,
        "conventions": ("rank by score desc then doc id ascending (UTF-8 bytes); "
                        "relevant = rel >= 1; ndcg gain = rel (linear), discount log2(i+1); "
                        "map over the full ranking; means over qrels queries with >= 1 "
                        "relevant, missing-from-run = 0; rank column ignored"),
        "ks": KS,
        "metrics": METRICS,
        "queries": queries,
        "excluded": excluded,
        "ranking": ranking,
        "ranking_trec_eval": ranking_te,
        "per_query": ours,
        "mean": mean_over(ours, queries),
        "trec_eval_ties": {"per_query": te, "mean": mean_over(te, queries)},
        "tools": tools,
    }
    with open(out / "reference.json", "w") as f:
        f.write(dump_json(ref))

    m = ref["mean"]
    print(json.dumps({
        "out": str(out), "queries": len(queries), "excluded": excluded,
        "tie_queries": tools["queries_with_ties_that_change_metrics"],
        "ranx_raw_disagreements_vs_uae": len(tools["ranx_raw_vs_uae"]),
        "ranx_raw_disagreements_vs_trec_eval": len(tools["ranx_raw_vs_trec_eval_ties"]),
        "mean": {k: round(m[k], 6) for k in ("recall@10", "p@5", "mrr@10", "map", "ndcg@10")},
        "ranx_mean_raw": {k: round(rx_raw_mean[k], 6) for k in ("recall@10", "map", "ndcg@10")},
        "versions": versions,
    }), file=sys.stderr)


if __name__ == "__main__":
    main()
