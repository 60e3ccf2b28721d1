//! The SwiGLU gate of the Llama feed-forward block, `silu(gate) * up`, with a
//! fast path for Burn's flex CPU backend.
//!
//! Burn 0.22.1's flex backend evaluates SiLU as `x * sigmoid(x)` with a
//! scalar libm `expf` per element, then multiplies by `up` in another pass
//! into another fresh buffer; `expf` was 6.5% of a SmolLM2 scoring profile
//! (with the attention softmax). The fast path computes `silu(gate) * up` in
//! one pass, in place over the gate's buffer, with a branch-free f32 exp
//! (vectorised, on both cores). Every other tensor (GPU, autodiff) takes
//! Burn's `activation::silu(gate) * up`.

use burn::prelude::*;
use burn::tensor::activation;
#[cfg(feature = "flex")]
use crate::flex::{CHUNK, exp_nonpositive};
#[cfg(feature = "flex")]
use rayon::prelude::*;

/// `silu(gate) * up`: transformers' `act_fn(gate_proj(x)) * up_proj(x)`.
pub(super) fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    let gate = match crate::flex::zip_in_place(gate, up.clone(), |gs, us| {
        gs.par_chunks_mut(CHUNK).zip(us.par_chunks(CHUNK)).for_each(|(g, u)| silu_mul_slice(g, u))
    }) {
        Ok(done) => return done,
        Err(untouched) => untouched,
    };
    activation::silu(gate) * up
}

#[cfg(feature = "flex")]
crate::flex::widest_simd! {
    /// `g = silu(g) * u` for every pair of `gs` and `us`.
    fn silu_mul_slice(gs: &mut [f32], us: &[f32]) => silu_mul_portable
}

/// sigmoid(x) = 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below, so that
/// the exponential's argument, -|x|, is never positive.
#[inline(always)]
#[cfg(feature = "flex")]
fn silu_mul_portable(gs: &mut [f32], us: &[f32]) {
    for (g, u) in gs.iter_mut().zip(us) {
        let x = *g;
        let e = exp_nonpositive(-x.abs());
        let sigmoid = if x >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
        *g = x * sigmoid * *u;
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    fn exact(x: f32, u: f32) -> f64 {
        let x = x as f64;
        x / (1.0 + (-x).exp()) * u as f64
    }

    #[test]
    fn within_four_f32_roundings_of_exact_silu_times_up() {
        let mut xs: Vec<f32> = (-400_000..=400_000).map(|i| i as f32 * 1e-4).collect();
        xs.extend([f32::MAX, f32::MIN, 1e30, -1e30, 0.0, -0.0, f32::MIN_POSITIVE]);
        let us: Vec<f32> = (0..xs.len()).map(|i| ((i % 13) as f32 - 6.0) * 0.37).collect();
        let mut gs = xs.clone();
        silu_mul_slice(&mut gs, &us);
        for ((&x, &u), &g) in xs.iter().zip(&us).zip(&gs) {
            let want = exact(x, u);
            // Four f32 roundings; below -87 the kernel's e^x stops at e^-87
            // (an absolute error under |x u| 1.7e-38).
            let tolerance = want.abs() * 4.8e-7 + if x < -87.0 { (x as f64 * u as f64).abs() * 1.7e-38 } else { 1e-38 };
            assert!((g as f64 - want).abs() <= tolerance, "silu({x}) * {u} = {g}, exact {want}");
        }
    }

    #[test]
    fn every_dispatch_path_gives_the_same_bits() {
        let xs: Vec<f32> = (-5000..5000).map(|i| i as f32 * 1.7e-3).collect();
        let us: Vec<f32> = xs.iter().map(|x| 1.5 - x).collect();
        let (mut a, mut b) = (xs.clone(), xs.clone());
        silu_mul_slice(&mut a, &us);
        silu_mul_portable(&mut b, &us);
        assert_eq!(a, b);
    }

    #[test]
    fn inference_flex_tensors_take_the_fast_path_and_match_burn() {
        let device = Device::flex();
        let tensor = |f: fn(i32) -> f32| {
            Tensor::<3>::from_data(TensorData::new((0..6000).map(f).collect::<Vec<_>>(), [2, 30, 100]), &device)
        };
        let gate = || tensor(|i| (i - 3000) as f32 * 3.1e-3);
        let up = || tensor(|i| ((i % 11) - 5) as f32 * 0.21);
        let values = |t: Tensor<3>| t.into_data().try_into_vec_as::<f32>().unwrap();
        let burns = values(activation::silu(gate()) * up());

        let mut want = values(gate());
        silu_mul_slice(&mut want, &values(up()));
        assert_eq!(values(swiglu(gate(), up())), want, "the fast path runs");
        // A strided `up` (a transposed view laid back) is read through a copy.
        let strided = up().swap_dims(1, 2).into_data();
        let strided = Tensor::<3>::from_data(strided, &device).swap_dims(1, 2);
        assert_eq!(values(swiglu(gate(), strided)), want);
        for (a, b) in want.iter().zip(&burns) {
            assert!((a - b).abs() <= 1e-6, "fast {a} against Burn's {b}");
        }
        // Under autodiff Burn's own ops run.
        let on_autodiff = |t: Tensor<3>| Tensor::<3>::from_data(t.into_data(), &device.clone().autodiff());
        assert_eq!(values(swiglu(on_autodiff(gate()), on_autodiff(up()))), values(activation::silu(on_autodiff(gate())) * on_autodiff(up())));
    }
}
