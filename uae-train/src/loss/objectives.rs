//! The tensor formulas of each loss, per query (`[B]` outputs).
//!
//! Every function takes the student logits `z = concat(scores, in_batch) / tau`
//! (`[B, K + M]`, the first `K` columns are the query's own candidates) and
//! returns `l_b` for each query; the notation is the module's (see
//! [`crate::loss`]).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Int, Tensor};

/// Stand-in for minus infinity in masked logits. FlagEmbedding adds
/// `torch.finfo(dtype).min`; a finite value keeps every backend's
/// `exp`/`max` and their gradients free of `inf - inf`.
const MASKED_LOGIT: f32 = f32::MIN;

/// `log p_U = log_softmax(U / tau_u)` over the `K` candidates, `[B, K]`,
/// detached: the teacher is a constant.
fn teacher_log_probs(utilities: Tensor<2>, tau_u: f64) -> Tensor<2> {
    log_softmax(utilities.detach().div_scalar(tau_u), 1)
}

/// The first `k` columns of `t`, `[B, k]`.
fn own_candidates(t: Tensor<2>, k: usize) -> Tensor<2> {
    t.narrow(1, 0, k)
}

/// Soft-target cross-entropy `l_b = -sum_{d in K} target[b, d] * log p_theta(d)`,
/// with `log p_theta = log_softmax(logits)` over all `K + M` columns and
/// `target` (`[B, K]`) giving the in-batch columns mass 0.
///
/// With a one-hot target this is InfoNCE, `-log p_theta(pos_b)`.
pub(super) fn soft_cross_entropy(target: Tensor<2>, logits: Tensor<2>) -> Tensor<1> {
    let [rows, k] = target.dims();
    let log_p = own_candidates(log_softmax(logits, 1), k);
    (target * log_p).sum_dim(1).reshape([rows]).neg()
}

/// UM-InfoNCE: [`soft_cross_entropy`] with the target
/// `p_U = softmax(U / tau_u)`.
pub(super) fn um_infonce(logits: Tensor<2>, utilities: Tensor<2>, tau_u: f64) -> Tensor<1> {
    soft_cross_entropy(teacher_log_probs(utilities, tau_u).exp(), logits)
}

/// Scaled KL, `l_b = tau^2 * sum_{d in K} p_U(d) (log p_U(d) - log p_theta(d))`.
///
/// `log p_U` comes from `log_softmax`, so it is finite even where `p_U`
/// underflows to 0, and such terms are exactly 0 (no `0 * -inf`).
pub(super) fn kl(logits: Tensor<2>, utilities: Tensor<2>, tau: f64, tau_u: f64) -> Tensor<1> {
    let [rows, k] = utilities.dims();
    let log_p_u = teacher_log_probs(utilities, tau_u);
    let log_p = own_candidates(log_softmax(logits, 1), k);
    let terms = log_p_u.clone().exp() * (log_p_u - log_p);
    terms.sum_dim(1).reshape([rows]).mul_scalar(tau * tau)
}

/// Stable distillation,
/// `l_b = sum_{i in K} p_U(i) * -log_softmax(z_b with A_i masked)(i)`,
/// where `A_i` holds the candidates ranked above `i` ([`ranked_above`]).
///
/// FlagEmbedding (`research/llm_embedder/src/retrieval/modeling_dense.py`,
/// `DenseRetriever._compute_loss`, `stable_distill=True`) loops over the
/// candidate positions `i = 0..N-1`, which its data lists in the teacher's
/// order: `loss += mean(teacher_targets[:, i] * cross_entropy(scores + mask,
/// labels + i))`, then writes `finfo.min` into `mask` at position `i`. So
/// at step `i` the candidates before `i` are masked, the in-batch keys never
/// are, `teacher_targets = softmax(teacher_scores)` (no temperature: our
/// `tau_u = 1`), and the sum over `i` of batch means equals the batch mean of
/// `l_b`. Here the order comes from the utilities, candidates need no
/// sorting, and all `K` cross-entropies run as one `[B, K, K + M]` tensor
/// (memory `B * K * (K + M)` floats).
pub(super) fn stable_distill(logits: Tensor<2>, utilities: Tensor<2>, tau_u: f64) -> Tensor<1> {
    let [rows, width] = logits.dims();
    let k = utilities.dims()[1];
    let own = own_candidates(logits.clone(), k)
        .reshape([rows, 1, k])
        .expand([rows, k, k])
        .mask_fill(ranked_above(utilities.clone()), MASKED_LOGIT);
    let per_target = if width > k {
        let negatives = logits.narrow(1, k, width - k).reshape([rows, 1, width - k]);
        Tensor::cat(vec![own, negatives.expand([rows, k, width - k])], 2)
    } else {
        own
    };
    let targets = candidate_indices(k, &utilities.device())
        .reshape([1, k, 1])
        .expand([rows, k, 1]);
    let cross_entropy = log_softmax(per_target, 2).gather(2, targets).reshape([rows, k]).neg();
    let weights = teacher_log_probs(utilities, tau_u).exp();
    (weights * cross_entropy).sum_dim(1).reshape([rows])
}

/// `above[b, i, j]` is true when the teacher ranks candidate `j` above
/// candidate `i`: `U_j > U_i`, or `U_j = U_i` and `j < i` (ties keep the
/// candidate order, as a stable sort by descending utility would).
fn ranked_above(utilities: Tensor<2>) -> Tensor<3, Bool> {
    let [rows, k] = utilities.dims();
    let u_i = utilities.clone().reshape([rows, k, 1]).expand([rows, k, k]);
    let u_j = utilities.reshape([rows, 1, k]).expand([rows, k, k]);
    let index = candidate_indices(k, &u_i.device());
    let j_before_i = index
        .clone()
        .reshape([1, k])
        .expand([k, k])
        .lower(index.reshape([k, 1]).expand([k, k]))
        .reshape([1, k, k])
        .expand([rows, k, k]);
    let tie_first = u_j.clone().equal(u_i.clone()).bool_and(j_before_i);
    u_j.greater(u_i).bool_or(tie_first)
}

/// Candidate indices `0..k` as an `Int` tensor on `device`.
fn candidate_indices(k: usize, device: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::arange(0..k as i64, device)
}
