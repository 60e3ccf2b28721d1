//! Paired significance of the difference between two systems' per-query
//! scores: a two-sided randomization (sign-flip permutation) test and a
//! percentile-bootstrap confidence interval of the mean difference, with
//! scipy's conventions (`scipy.stats.permutation_test` with
//! `permutation_type="samples"`, `scipy.stats.bootstrap` with
//! `method="percentile"`; docs/method.md, "Significance"; checked against
//! scipy in `tests/significance.rs`).
//!
//! Hand-written rather than taken from a crate: no statistics crate on
//! crates.io implements scipy's exact-or-Monte-Carlo rule and its p-value
//! adjustment, and the whole is forty lines.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// How a paired comparison is resampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestOptions {
    /// Sign vectors drawn by the randomization test (all `2^n` are
    /// enumerated when there are no more than this), and bootstrap resamples.
    pub resamples: usize,
    /// Seed of both resamplings.
    pub seed: u64,
    /// Coverage of the bootstrap interval.
    pub confidence: f64,
    /// A difference is significant when its p-value is below this.
    pub alpha: f64,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self { resamples: 10_000, seed: 42, confidence: 0.95, alpha: 0.05 }
    }
}

/// The paired comparison of system A with system B on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedTest {
    /// Queries compared.
    pub n: usize,
    /// Mean of A's score minus B's over the queries.
    pub mean_difference: f64,
    /// Two-sided p-value of the randomization test.
    pub p_value: f64,
    /// Lower bound of the bootstrap interval of the mean difference.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Whether `p_value` is below the options' `alpha`.
    pub significant: bool,
}

/// Compares per-query scores `a` and `b` (the same queries in the same
/// order). Panics when their lengths differ; NaN figures for no queries.
pub fn paired(a: &[f64], b: &[f64], options: &TestOptions) -> PairedTest {
    assert_eq!(a.len(), b.len(), "paired scores must cover the same queries");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    if d.is_empty() {
        return PairedTest { n: 0, mean_difference: f64::NAN, p_value: f64::NAN, ci_low: f64::NAN, ci_high: f64::NAN, significant: false };
    }
    let p_value = randomization_p(&d, options.resamples, options.seed);
    let (ci_low, ci_high) = bootstrap_interval(&d, options.resamples, options.confidence, options.seed);
    PairedTest { n: d.len(), mean_difference: mean(&d), p_value, ci_low, ci_high, significant: p_value < options.alpha }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Two-sided p-value of mean(`d`) under random sign flips: exact over all
/// `2^n` sign vectors when there are at most `resamples`, else from
/// `resamples` random ones with the observed statistic counted once more.
pub fn randomization_p(d: &[f64], resamples: usize, seed: u64) -> f64 {
    let n = d.len();
    let observed = mean(d);
    // scipy widens the comparisons by 100 epsilons of the statistic, so that
    // rounding does not split statistics equal to the observed one.
    let gamma = (observed * f64::EPSILON * 100.0).abs();
    let (mut below, mut above) = (0usize, 0usize);
    let mut count = |statistic: f64| {
        below += usize::from(statistic <= observed + gamma);
        above += usize::from(statistic >= observed - gamma);
    };
    let exact = n < usize::BITS as usize - 1 && (1usize << n) <= resamples;
    let (total, adjustment) = if exact {
        for signs in 0..1usize << n {
            let sum: f64 = d.iter().enumerate().map(|(i, x)| if signs >> i & 1 == 1 { -x } else { *x }).sum();
            count(sum / n as f64);
        }
        (1usize << n, 0)
    } else {
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..resamples {
            let sum: f64 = d.iter().map(|x| if rng.random::<bool>() { -x } else { *x }).sum();
            count(sum / n as f64);
        }
        (resamples, 1)
    };
    let share = |hits: usize| (hits + adjustment) as f64 / (total + adjustment) as f64;
    (2.0 * share(below).min(share(above))).min(1.0)
}

/// The percentile-bootstrap interval of mean(`d`) with coverage
/// `confidence`: the means of `resamples` resamples with replacement, cut
/// at their (1 - confidence) / 2 and (1 + confidence) / 2 quantiles with
/// linear interpolation (numpy's default).
pub fn bootstrap_interval(d: &[f64], resamples: usize, confidence: f64, seed: u64) -> (f64, f64) {
    let n = d.len();
    // A different stream from the randomization test's, from the same seed.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| d[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let position = q * (means.len() - 1) as f64;
        let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
        means[lo] + (means[hi] - means[lo]) * (position - lo as f64)
    };
    let tail = (1.0 - confidence) / 2.0;
    (quantile(tail), quantile(1.0 - tail))
}
