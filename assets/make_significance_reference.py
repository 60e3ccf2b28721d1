#!/usr/bin/env python3
"""Make assets/fixtures/significance/reference.json: paired per-query scores
of two systems and scipy's paired randomization test and bootstrap interval
of their mean difference, the reference uae-eval's `significance` module is
checked against.

    python3 -m pip install scipy
    python3 assets/make_significance_reference.py

The tests (uae-eval/tests/significance.rs) use the conventions below, which
are scipy's (docs/method.md, "Significance"):
  * differences d_i = a_i - b_i; statistic = mean(d);
  * randomization test: under the null each pair's two values are
    exchangeable, i.e. each d_i's sign flips with probability 1/2.
    scipy.stats.permutation_test(permutation_type="samples") enumerates all
    2^n sign vectors when 2^n <= n_resamples (exact test, no +1 adjustment);
    otherwise it draws n_resamples of them at random and counts the observed
    statistic once more ((count + 1) / (n_resamples + 1)). Two-sided p =
    min(1, 2 * min(P(null <= observed), P(null >= observed))), comparisons
    widened by 100 machine epsilons of |observed|;
  * bootstrap: scipy.stats.bootstrap(method="percentile"): resample the n
    differences with replacement n_resamples times, take the mean of each,
    and the 2.5th and 97.5th percentiles (numpy's linear interpolation).

Exact cases must match to 1e-12. Random ones differ in their draws: the
reference is scipy's with 400,000 resamples, and the test allows for the
Monte-Carlo error of 10,000 (p within 0.015, interval bounds within 0.01,
or one step of 1/n where the mean lies on that grid).
"""
import json
import pathlib

import numpy as np
from scipy import stats

OUT = pathlib.Path(__file__).resolve().parent / "fixtures" / "significance" / "reference.json"
rng = np.random.default_rng(20261202)


def case(name, a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    n = len(a)
    exact = 2**n <= 10_000
    resamples = 10_000 if exact else 400_000

    def statistic(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    perm = stats.permutation_test(
        (a, b), statistic, permutation_type="samples", n_resamples=resamples,
        alternative="two-sided", vectorized=True, random_state=rng,
    )
    d = a - b
    if np.all(d == d[0]):
        low = high = float(d[0])
    else:
        boot = stats.bootstrap(
            (d,), np.mean, method="percentile", n_resamples=400_000,
            confidence_level=0.95, vectorized=True, random_state=rng,
        )
        low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    return {
        "name": name, "a": a.tolist(), "b": b.tolist(), "exact": exact,
        "mean_difference": float(d.mean()), "p_value": float(perm.pvalue),
        "ci_low": low, "ci_high": high,
    }


cases = []
# Exact: 10 pairs of graded scores.
cases.append(case("exact-10", rng.uniform(0, 1, 10).round(3), rng.uniform(0, 1, 10).round(3)))
# Exact, one-sided-looking: 12 pairs where a wins on most.
base = rng.uniform(0.2, 0.8, 12).round(3)
cases.append(case("exact-12-shifted", (base + rng.uniform(0.0, 0.2, 12)).round(3), base))
# Random: 36 binary Recall@1-like values, a report-sized test split.
a = (rng.uniform(0, 1, 36) < 0.55).astype(float)
b = np.where(rng.uniform(0, 1, 36) < 0.8, a, 1 - a)
cases.append(case("recall-36", a, b))
# Random: 200 AP-like values with a small true gain.
b = rng.beta(2, 2, 200).round(4)
a = np.clip(b + rng.normal(0.03, 0.15, 200), 0, 1).round(4)
cases.append(case("map-200", a, b))
# No difference at all: p = 1 and the interval is the point 0.
same = rng.uniform(0, 1, 20).round(3)
cases.append(case("identical-20", same, same))

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps({"scipy": __import__("scipy").__version__, "cases": cases}, indent=1) + "\n")
print(f"wrote {OUT}")
for c in cases:
    print(c["name"], c["mean_difference"], c["p_value"], c["ci_low"], c["ci_high"])
