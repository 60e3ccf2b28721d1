//! Rotary position embeddings in transformers' "rotate half" form, with the
//! same float32 arithmetic as transformers (`inv_freq` from `base ** (2i/d)`,
//! angles `position * inv_freq`), so logits match it closely even at long
//! positions. The cos/sin tables are made on the host for the positions a
//! forward pass needs: that is `seq x head_dim` values, negligible next to the
//! pass itself, and it avoids keeping a `max_positions`-long table on the
//! device.

use burn::prelude::*;

use super::config::{LlamaConfig, RopeScaling};

/// Inverse frequencies of the rotary embedding, one per pair of dimensions.
pub fn inverse_frequencies(config: &LlamaConfig) -> Vec<f32> {
    let dim = config.head_dim();
    let base = config.rope_theta as f32;
    let inv: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
        .collect();
    match &config.rope_scaling {
        Some(scaling) if scaling.rope_type == "llama3" => llama3_scaled(&inv, scaling),
        _ => inv,
    }
}

/// transformers' `_compute_llama3_parameters`: long wavelengths are stretched
/// by `factor`, short ones kept, and the band between interpolated.
fn llama3_scaled(inv: &[f32], s: &RopeScaling) -> Vec<f32> {
    let old = s.original_max_position_embeddings as f32;
    let (factor, low, high) = (s.factor as f32, s.low_freq_factor as f32, s.high_freq_factor as f32);
    let low_wavelen = old / low;
    let high_wavelen = old / high;
    inv.iter()
        .map(|&f| {
            let wavelen = 2.0 * std::f32::consts::PI / f;
            let scaled = if wavelen > low_wavelen { f / factor } else { f };
            let medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
            if medium {
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 - smooth) * scaled / factor + smooth * scaled
            } else {
                scaled
            }
        })
        .collect()
}

/// The cos and sin tables `[rows, seq, head_dim]` of `positions`, row after
/// row (`rows * seq` of them). One row serves every sequence of a batch that
/// starts at the same position.
pub fn tables(inv_freq: &[f32], positions: &[usize], rows: usize, device: &Device) -> (Tensor<3>, Tensor<3>) {
    let half = inv_freq.len();
    let dim = half * 2;
    let seq = positions.len() / rows.max(1);
    let mut cos = vec![0f32; positions.len() * dim];
    let mut sin = vec![0f32; positions.len() * dim];
    for (p, &position) in positions.iter().enumerate() {
        let pos = position as f32;
        for (i, &f) in inv_freq.iter().enumerate() {
            let angle = pos * f;
            let (s, c) = angle.sin_cos();
            for j in [i, i + half] {
                cos[p * dim + j] = c;
                sin[p * dim + j] = s;
            }
        }
    }
    (
        Tensor::from_data(TensorData::new(cos, [rows, seq, dim]), device),
        Tensor::from_data(TensorData::new(sin, [rows, seq, dim]), device),
    )
}

/// Splits a projection `x` `[batch, seq, heads * head_dim]` into heads
/// `[batch, heads, seq, head_dim]`, rotated by `tables` (`(cos, sin)`, as
/// [`apply`]) when given. On flex in inference this is one pass into a
/// contiguous tensor, with [`apply`]'s arithmetic (the same bits): Burn's
/// ops take six passes over strided views, and attention copies its
/// inputs into contiguous buffers anyway.
pub fn split_heads(x: Tensor<3>, heads: usize, tables: Option<(&Tensor<3>, &Tensor<3>)>) -> Tensor<4> {
    let [batch, seq, width] = x.dims();
    #[cfg(feature = "flex")]
    if let Some(y) = fast::split_heads(&x, heads, tables) {
        return y;
    }
    let x = x.reshape([batch, seq, heads, width / heads]).swap_dims(1, 2);
    match tables {
        Some((cos, sin)) => apply(x, cos, sin),
        None => x,
    }
}

#[cfg(feature = "flex")]
mod fast {
    use burn::prelude::*;
    use rayon::prelude::*;

    use crate::flex::contiguous_f32;

    pub(super) fn split_heads(x: &Tensor<3>, heads: usize, tables: Option<(&Tensor<3>, &Tensor<3>)>) -> Option<Tensor<4>> {
        let [batch, seq, width] = x.dims();
        let dim = width / heads;
        if dim % 2 != 0 || dim * heads != width {
            return None;
        }
        let xs = contiguous_f32(x)?;
        let tables = match tables {
            Some((cos, sin)) => {
                let rows = cos.dims()[0];
                if cos.dims() != [rows, seq, dim] || sin.dims() != cos.dims() || (rows != 1 && rows != batch) {
                    return None;
                }
                Some((contiguous_f32(cos)?, contiguous_f32(sin)?, rows))
            }
            None => None,
        };
        let xs = xs.as_slice::<f32>()?;
        let tables = match &tables {
            Some((c, s, rows)) => Some((c.as_slice::<f32>()?, s.as_slice::<f32>()?, *rows)),
            None => None,
        };
        let mut out = vec![0.0f32; batch * heads * seq * dim];
        out.par_chunks_mut(seq * dim).enumerate().for_each(|(bh, block)| {
            let (b, h) = (bh / heads, bh % heads);
            for (p, o) in block.chunks_exact_mut(dim).enumerate() {
                let at = (b * seq + p) * width + h * dim;
                let xr = &xs[at..at + dim];
                match tables {
                    Some((cos, sin, rows)) => {
                        let t = ((if rows == 1 { 0 } else { b }) * seq + p) * dim;
                        super::rotate_head(xr, &cos[t..t + dim], &sin[t..t + dim], o);
                    }
                    None => o.copy_from_slice(xr),
                }
            }
        });
        Some(Tensor::from_data(TensorData::new(out, [batch, heads, seq, dim]), &x.device()))
    }
}

/// One head's row `x` rotated by its position's `cos` and `sin` rows into
/// `out` (all `head_dim` long): [`apply`]'s arithmetic, so the same bits.
#[cfg(feature = "flex")]
pub(super) fn rotate_head(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
    let half = x.len() / 2;
    // x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1].
    for j in 0..half {
        out[j] = x[j] * cos[j] + -x[j + half] * sin[j];
        out[j + half] = x[j + half] * cos[j + half] + x[j] * sin[j + half];
    }
}

/// Rotates `x` `[batch, heads, seq, head_dim]`: `x * cos + rotate_half(x) * sin`,
/// with tables `[batch or 1, seq, head_dim]`.
pub fn apply(x: Tensor<4>, cos: &Tensor<3>, sin: &Tensor<3>) -> Tensor<4> {
    let [_, _, _, dim] = x.dims();
    let half = dim / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    let cos = cos.clone().unsqueeze_dim::<4>(1);
    let sin = sin.clone().unsqueeze_dim::<4>(1);
    x * cos + rotated * sin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_keeps_high_and_stretches_low_frequencies() {
        let s = RopeScaling {
            rope_type: "llama3".into(),
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let inv = [1.0f32, 1e-2, 1e-5];
        let scaled = llama3_scaled(&inv, &s);
        assert_eq!(scaled[0], 1.0);
        assert!((scaled[2] - 1e-5 / 8.0).abs() < 1e-12);
        assert!(scaled[1] <= 1e-2 && scaled[1] >= 1e-2 / 8.0);
    }

    #[cfg(feature = "flex")]
    #[test]
    fn split_heads_fast_path_gives_burns_bits() {
        let device = Device::flex();
        let (batch, seq, heads, dim) = (3, 5, 4, 8);
        let values: Vec<f32> = (0..batch * seq * heads * dim).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let x = Tensor::<3>::from_data(TensorData::new(values, [batch, seq, heads * dim]), &device);
        let inv = [1.0f32, 0.1, 0.01, 0.001];
        let positions: Vec<usize> = (0..batch).flat_map(|b| (0..seq).map(move |p| p + 3 * b)).collect();
        for (positions, rows) in [(&positions[..seq], 1), (&positions[..], batch)] {
            let (cos, sin) = tables(&inv, positions, rows, &device);
            let expected = apply(x.clone().reshape([batch, seq, heads, dim]).swap_dims(1, 2), &cos, &sin);
            assert!(fast::split_heads(&x, heads, Some((&cos, &sin))).is_some());
            let got = split_heads(x.clone(), heads, Some((&cos, &sin)));
            assert_eq!(got.into_data(), expected.into_data(), "rows {rows}");
        }
        let plain = x.clone().reshape([batch, seq, heads, dim]).swap_dims(1, 2);
        assert_eq!(split_heads(x, heads, None).into_data(), plain.into_data());
    }
}
