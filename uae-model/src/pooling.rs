//! Sentence vectors from token vectors, as sentence-transformers computes them.

use burn::prelude::*;

use crate::sentence::Pooling;

/// Pools `hidden` `[batch, seq, width]` into `[batch, width]`. Mean pooling
/// averages the tokens whose `mask` is 1 (dividing by the count clamped at
/// 1e-9, as sentence-transformers does); CLS pooling takes the first token.
pub fn pool(hidden: Tensor<3>, mask: Tensor<2>, pooling: Pooling) -> Tensor<2> {
    let [batch, seq, width] = hidden.dims();
    match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1).reshape([batch, width]),
        Pooling::Mean => {
            let mask = mask.reshape([batch, seq, 1]);
            let summed = (hidden * mask.clone()).sum_dim(1).reshape([batch, width]);
            let counts = mask.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
            summed / counts
        }
    }
}

/// Divides each row by its L2 norm, clamped at 1e-12 (PyTorch's
/// `F.normalize`).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
