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
}
