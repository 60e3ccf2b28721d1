//! Host-side validation metrics over one query's candidate pool.
//!
//! Ranks follow the workspace's convention: candidates sorted by score
//! descending, ties broken by candidate index ascending (the lower index
//! ranks first). A NaN score ranks as minus infinity.

use super::LossError;

/// `softmax(values / temperature)` in `f64`, computed as
/// `exp(x_d - max) / sum_e exp(x_e - max)` so that large values stay finite.
/// Empty input gives an empty output.
pub fn softmax(values: &[f32], temperature: f64) -> Vec<f64> {
    let scaled: Vec<f64> = values.iter().map(|&v| f64::from(v) / temperature).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = scaled.iter().map(|&x| (x - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// `KL(p || q) = sum_d p(d) (ln p(d) - ln q(d))`, in nats.
///
/// Terms with `p(d) = 0` are 0; a term with `p(d) > 0 = q(d)` makes the
/// result `+inf`. For the validation KL metric, pass
/// `p = softmax(utilities, tau_u)` and `q = softmax(scores, tau)`.
/// Errors when the lengths differ.
pub fn kl_divergence(p: &[f64], q: &[f64]) -> Result<f64, LossError> {
    if p.len() != q.len() {
        return Err(LossError::Shape(format!(
            "KL over {} and {} probabilities",
            p.len(),
            q.len()
        )));
    }
    Ok(p.iter()
        .zip(q)
        .filter(|(p, _)| **p > 0.0)
        .map(|(p, q)| p * (p.ln() - q.ln()))
        .sum())
}

/// The index of the largest value, ties to the lowest index; `None` when
/// empty. Applied to utilities it gives the teacher's top candidate, the
/// relevant one for teacher-agreement metrics.
pub fn argmax(values: &[f32]) -> Option<usize> {
    (0..values.len()).find(|&i| rank_unchecked(values, i) == 1)
}

/// The 1-based rank of candidate `target` under `scores`.
/// Errors when `target` is outside the pool.
pub fn rank(scores: &[f32], target: usize) -> Result<usize, LossError> {
    if target >= scores.len() {
        return Err(LossError::Shape(format!(
            "candidate {target} is outside a pool of {}",
            scores.len()
        )));
    }
    Ok(rank_unchecked(scores, target))
}

/// Recall@1 with one relevant candidate: 1 when `target` ranks first, else 0.
pub fn recall_at_1(scores: &[f32], target: usize) -> Result<f64, LossError> {
    Ok(if rank(scores, target)? == 1 { 1.0 } else { 0.0 })
}

/// Reciprocal rank of `target` over the whole pool (MRR is its mean over
/// queries).
pub fn reciprocal_rank(scores: &[f32], target: usize) -> Result<f64, LossError> {
    Ok(1.0 / rank(scores, target)? as f64)
}

/// `1 + #{j : s_j > s_t, or s_j = s_t and j < t}` for an in-range `t`,
/// NaN read as minus infinity.
fn rank_unchecked(scores: &[f32], target: usize) -> usize {
    let s = rank_key(scores[target]);
    1 + scores
        .iter()
        .map(|&v| rank_key(v))
        .enumerate()
        .filter(|&(j, v)| v > s || (v == s && j < target))
        .count()
}

/// A score as it is ranked: NaN becomes minus infinity.
fn rank_key(v: f32) -> f32 {
    if v.is_nan() { f32::NEG_INFINITY } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_normalised() {
        let p = softmax(&[1000.0, 1000.0, 0.0], 1.0);
        assert!((p[0] - 0.5).abs() < 1e-12 && (p[1] - 0.5).abs() < 1e-12);
        assert!(p[2] >= 0.0 && p[2] < 1e-300);
    }

    #[test]
    fn kl_is_zero_on_equal_and_skips_zero_mass() {
        let p = softmax(&[0.3, -1.0, 2.0], 0.5);
        assert!(kl_divergence(&p, &p).unwrap().abs() < 1e-15);
        let kl = kl_divergence(&[0.5, 0.5, 0.0], &[0.25, 0.25, 0.5]).unwrap();
        assert!((kl - 2f64.ln()).abs() < 1e-12);
        assert_eq!(kl_divergence(&[1.0, 0.0], &[0.0, 1.0]).unwrap(), f64::INFINITY);
        assert!(kl_divergence(&[1.0], &[0.5, 0.5]).is_err());
    }

    #[test]
    fn ranks_break_ties_by_index() {
        let scores = [0.2, 0.9, 0.9, -0.1];
        assert_eq!(rank(&scores, 1).unwrap(), 1);
        assert_eq!(rank(&scores, 2).unwrap(), 2);
        assert_eq!(rank(&scores, 3).unwrap(), 4);
        assert_eq!(argmax(&scores), Some(1));
        assert_eq!(argmax(&[]), None);
        assert_eq!(recall_at_1(&scores, 1).unwrap(), 1.0);
        assert_eq!(recall_at_1(&scores, 2).unwrap(), 0.0);
        assert_eq!(reciprocal_rank(&scores, 0).unwrap(), 1.0 / 3.0);
        assert!(rank(&scores, 4).is_err());
        assert_eq!(rank(&[f32::NAN, 0.0], 0).unwrap(), 2);
    }
}
