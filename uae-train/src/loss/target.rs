//! The teacher target before its softmax: per-query normalisation of the
//! utilities (docs/method.md, "Teacher target"), and statistics of the
//! resulting targets that `uae train` prints.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::LossError;
use super::metrics::softmax;

/// How a query's utilities are rescaled before `softmax(. / tau_u)`.
///
/// Over the query's `K` sampled candidates, with `mean`, `std` (population)
/// `min` and `max` of its utilities:
/// - `none`: `U`;
/// - `zscore`: `(U - mean) / std`;
/// - `minmax`: `(U - min) / (max - min)`, in `[0, 1]`.
///
/// A query whose utilities are all equal becomes all zeros (a uniform
/// target) under `zscore` and `minmax`; the loader skips such queries anyway.
/// The serde and [`FromStr`] names are the lower-case ones above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UtilityNorm {
    /// Raw utilities (nats).
    #[default]
    None,
    /// Standardised per query.
    Zscore,
    /// Scaled to `[0, 1]` per query.
    Minmax,
}

impl UtilityNorm {
    /// Every normalisation, in the order documented.
    pub const ALL: [UtilityNorm; 3] = [UtilityNorm::None, UtilityNorm::Zscore, UtilityNorm::Minmax];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            UtilityNorm::None => "none",
            UtilityNorm::Zscore => "zscore",
            UtilityNorm::Minmax => "minmax",
        }
    }

    /// One query's utilities, normalised (finite inputs give finite outputs).
    pub fn apply(self, u: &[f32]) -> Vec<f32> {
        if u.is_empty() {
            return Vec::new();
        }
        let n = u.len() as f64;
        match self {
            UtilityNorm::None => u.to_vec(),
            UtilityNorm::Zscore => {
                let mean = u.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
                let var = u.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
                let std = var.sqrt();
                u.iter().map(|&x| if std > 0.0 { ((f64::from(x) - mean) / std) as f32 } else { 0.0 }).collect()
            }
            UtilityNorm::Minmax => {
                let min = u.iter().copied().fold(f32::INFINITY, f32::min);
                let max = u.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let range = f64::from(max) - f64::from(min);
                u.iter()
                    .map(|&x| if range > 0.0 { ((f64::from(x) - f64::from(min)) / range) as f32 } else { 0.0 })
                    .collect()
            }
        }
    }
}

impl fmt::Display for UtilityNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for UtilityNorm {
    type Err = LossError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UtilityNorm::ALL.into_iter().find(|n| n.name() == s).ok_or_else(|| {
            LossError::InvalidConfig(format!("unknown utility normalisation {s:?}; expected none, zscore or minmax"))
        })
    }
}

/// A target that puts more than this on one candidate counts as peaked in
/// [`TargetStats`].
pub const PEAKED: f64 = 0.99;

/// How graded a set of teacher targets `softmax(U / tau_u)` is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetStats {
    /// Queries measured.
    pub queries: usize,
    /// Mean entropy of the targets, in nats (0 for one-hot; `ln K` for uniform).
    pub mean_entropy: f64,
    /// Mean of `ln K`, the entropy of a uniform target, for scale.
    pub mean_max_entropy: f64,
    /// Share of queries whose target puts more than [`PEAKED`] on one candidate.
    pub peaked_share: f64,
}

impl TargetStats {
    /// The statistics of each row of `utilities` (already normalised) at
    /// temperature `tau_u`; NaN figures for no rows.
    pub fn of<'a>(utilities: impl IntoIterator<Item = &'a [f32]>, tau_u: f64) -> Self {
        let (mut queries, mut entropy, mut max_entropy, mut peaked) = (0usize, 0.0, 0.0, 0usize);
        for u in utilities {
            let p = softmax(u, tau_u);
            entropy -= p.iter().filter(|&&x| x > 0.0).map(|x| x * x.ln()).sum::<f64>();
            max_entropy += (u.len() as f64).ln();
            peaked += usize::from(p.iter().copied().fold(0.0, f64::max) > PEAKED);
            queries += 1;
        }
        let n = queries as f64;
        Self { queries, mean_entropy: entropy / n, mean_max_entropy: max_entropy / n, peaked_share: peaked as f64 / n }
    }
}

impl fmt::Display for TargetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "teacher targets over {} queries: mean entropy {:.3} nats (uniform {:.3}); {:.1}% put more than {} on one candidate",
            self.queries,
            self.mean_entropy,
            self.mean_max_entropy,
            100.0 * self.peaked_share,
            PEAKED
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed: U = [3, 1, 0, 0]; mean 1, population variance
    /// (4 + 0 + 1 + 1) / 4 = 1.5, std 1.224745; min 0, max 3.
    #[test]
    fn normalisations_match_a_hand_computed_case() {
        let u = [3.0f32, 1.0, 0.0, 0.0];
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert_eq!(UtilityNorm::None.apply(&u), u.to_vec());
        let z = UtilityNorm::Zscore.apply(&u);
        assert!(close(&z, &[1.632993, 0.0, -0.816497, -0.816497]), "{z:?}");
        let m = UtilityNorm::Minmax.apply(&u);
        assert!(close(&m, &[1.0, 1.0 / 3.0, 0.0, 0.0]), "{m:?}");
        for norm in UtilityNorm::ALL {
            assert!(norm.apply(&[2.0, 2.0]).iter().all(|x| x.is_finite()), "{norm}");
            assert_eq!(norm.name().parse::<UtilityNorm>().unwrap(), norm);
        }
        assert_eq!(UtilityNorm::Zscore.apply(&[2.0, 2.0]), vec![0.0, 0.0]);
        assert!("z".parse::<UtilityNorm>().is_err());
    }

    /// A uniform target has entropy ln K and is not peaked; a gap of 10 nats
    /// at tau_u 1 is peaked with entropy near 0.
    #[test]
    fn target_statistics() {
        let rows: [&[f32]; 2] = [&[1.0, 1.0, 1.0, 1.0], &[10.0, 0.0, 0.0, 0.0]];
        let stats = TargetStats::of(rows, 1.0);
        assert_eq!(stats.queries, 2);
        assert!((stats.mean_max_entropy - 4f64.ln()).abs() < 1e-12);
        // Row 2: p = [1, e^-10, e^-10, e^-10] / Z.
        let z = 1.0 + 3.0 * (-10f64).exp();
        let h2 = -(1.0 / z * (1.0 / z).ln() + 3.0 * ((-10f64).exp() / z) * ((-10f64).exp() / z).ln());
        assert!((stats.mean_entropy - (4f64.ln() + h2) / 2.0).abs() < 1e-9, "{stats:?}");
        assert_eq!(stats.peaked_share, 0.5);
        assert!(TargetStats::of(std::iter::empty::<&[f32]>(), 1.0).mean_entropy.is_nan());
    }
}
