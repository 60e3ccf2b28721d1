//! The exact (erf) GELU, with a fast path for Burn's flex CPU backend.
//!
//! Burn 0.22.1's flex backend evaluates GELU with a scalar, single-threaded
//! `libm::erff` per element (`burn-flex/src/ops/activation.rs`): 15% of a
//! MiniLM forward pass on two cores. No crate offers a vectorised erf for a
//! Burn tensor, so this one is our own: a branch-free rational erf (Eigen's
//! `generic_fast_erf_float` minimax coefficients, evaluated in f64 so that
//! the result stays within 3e-7 of the exact GELU, closer than f32 `erff`
//! itself), written so that the compiler vectorises it, on both cores with
//! rayon. It runs in place on an inference (non-autodiff) flex tensor that
//! owns its buffer; on an autodiff flex tensor (training) it is recorded in
//! the graph with its derivative, vectorised the same way (flex's
//! `gelu_backward` is scalar `erff` and `exp` too). Every other tensor (GPU,
//! other dtypes) takes Burn's own `activation::gelu`.

use burn::prelude::*;
use burn::tensor::activation;
#[cfg(feature = "flex")]
use crate::flex::{CHUNK, exp_small};
#[cfg(feature = "flex")]
use rayon::prelude::*;

/// GELU with erf, `0.5 x (1 + erf(x / sqrt 2))`, as transformers' `gelu`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    let x = match crate::flex::map_in_place(x, |xs| xs.par_chunks_mut(CHUNK).for_each(gelu_slice)) {
        Ok(done) => return done,
        Err(untouched) => untouched,
    };
    #[cfg(feature = "flex")]
    let x = match crate::flex::autodiff_elementwise(x, flex::GELU) {
        Ok(done) => return done,
        Err(untouched) => untouched,
    };
    activation::gelu(x)
}

/// GELU and its derivative on flex tensors, for the autodiff graph.
#[cfg(feature = "flex")]
mod flex {
    use super::{CHUNK, gelu_grad_slice, gelu_slice};
    use burn::tensor::TensorData;
    use burn_flex::FlexTensor;
    use rayon::prelude::*;

    pub(super) const GELU: crate::flex::Elementwise =
        crate::flex::Elementwise { forward, backward };

    /// A new tensor: the input is kept for the backward pass.
    fn forward(x: &FlexTensor) -> FlexTensor {
        let mut y = x.to_contiguous().as_slice::<f32>().expect("a contiguous f32 tensor").to_vec();
        y.par_chunks_mut(CHUNK).for_each(gelu_slice);
        FlexTensor::from_data(TensorData::new(y, x.layout().shape().clone()))
    }

    /// Scales the output gradient in place (copied first only when shared).
    fn backward(x: &FlexTensor, grad: FlexTensor) -> FlexTensor {
        let x = x.to_contiguous();
        let xs = x.as_slice::<f32>().expect("a contiguous f32 tensor");
        let mut g = grad.to_contiguous();
        drop(grad);
        let (start, end) = g.layout().contiguous_offsets().expect("a contiguous tensor");
        let gs = &mut g.storage_mut::<f32>()[start..end];
        xs.par_chunks(CHUNK).zip(gs.par_chunks_mut(CHUNK)).for_each(|(x, g)| gelu_grad_slice(x, g));
        g
    }
}

#[cfg(feature = "flex")]
crate::flex::widest_simd! {
    /// GELU of every element of `xs`, in place.
    pub(crate) fn gelu_slice(xs: &mut [f32]) => gelu_portable
}

#[cfg(feature = "flex")]
crate::flex::widest_simd! {
    /// `g *= gelu'(x)` for every pair of `xs` and `gs`: the backward pass.
    pub(crate) fn gelu_grad_slice(xs: &[f32], gs: &mut [f32]) => gelu_grad_portable
}

/// gelu'(x) = Phi(x) + x phi(x), with the CDF of [`normal_cdf`] and the
/// density term dropped beyond |x| = 6 sqrt 2 (where it is below 1e-15).
#[inline(always)]
#[cfg(feature = "flex")]
fn gelu_grad_portable(xs: &[f32], gs: &mut [f32]) {
    const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
    for (x, g) in xs.iter().zip(gs.iter_mut()) {
        let v = *x as f64;
        let t = v * std::f64::consts::FRAC_1_SQRT_2;
        let density = if t.abs() < 6.0 { v * INV_SQRT_2PI * exp_small(-t * t) } else { 0.0 };
        *g = (*g as f64 * (normal_cdf(t) + density)) as f32;
    }
}

#[inline(always)]
#[cfg(feature = "flex")]
fn gelu_portable(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        let v = *x as f64;
        *x = (v * normal_cdf(v * std::f64::consts::FRAC_1_SQRT_2)) as f32;
    }
}

/// The standard normal CDF at `t sqrt 2`, `(1 + erf(t)) / 2`. Beyond |t| = 4
/// it is 0 or 1 to within 2e-8; pinning it keeps huge inputs exact (the
/// rational form is not exactly ±1 there).
#[inline(always)]
#[cfg(feature = "flex")]
fn normal_cdf(t: f64) -> f64 {
    if t >= 4.0 {
        1.0
    } else if t <= -4.0 {
        0.0
    } else {
        0.5 * (1.0 + erf(t))
    }
}

/// Eigen's minimax rational erf (`generic_fast_erf_float`): odd numerator of
/// degree 13 over an even denominator of degree 8, for `|x| < 4` (the caller
/// handles the rest). In f64 its error is below 2e-7.
#[inline(always)]
#[cfg(feature = "flex")]
fn erf(x: f64) -> f64 {
    const ALPHA: [f64; 7] = [
        -1.60960333262415e-02,
        -2.95459980854025e-03,
        -7.34990630326855e-04,
        -5.69250639462346e-05,
        -2.10102402082508e-06,
        2.77068142495902e-08,
        -2.72614225801306e-10,
    ];
    const BETA: [f64; 5] =
        [-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03, -2.13374055278905e-04, -1.45660718464996e-05];
    let x2 = x * x;
    let mut p = ALPHA[6];
    for a in ALPHA[..6].iter().rev() {
        p = p * x2 + a;
    }
    let mut q = BETA[4];
    for b in BETA[..4].iter().rev() {
        q = q * x2 + b;
    }
    x * p / q
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    fn exact(x: f32) -> f64 {
        let x = x as f64;
        0.5 * x * (1.0 + libm_erf(x / std::f64::consts::SQRT_2))
    }

    /// erf in f64 to about 1e-15 (Abramowitz and Stegun 7.1.5 series for
    /// small |x|, the continued fraction of erfc beyond), to judge the kernel.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let mut term = x;
            let mut sum = x;
            let mut n = 0.0;
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
            let a = x.abs();
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / f;
            (1.0 - erfc).copysign(x)
        }
    }

    #[test]
    fn within_3e7_of_exact_gelu_on_a_dense_grid() {
        let mut xs: Vec<f32> = (-1_200_000..=1_200_000).map(|i| i as f32 * 1e-5).collect();
        xs.extend([f32::MAX, f32::MIN, 1e30, -1e30, 0.0, -0.0, f32::MIN_POSITIVE]);
        let mut ys = xs.clone();
        gelu_slice(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = exact(x);
            let tolerance = 3e-7 + want.abs() * 1.2e-7;
            assert!((y as f64 - want).abs() <= tolerance, "gelu({x}) = {y}, exact {want}");
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn inference_flex_tensors_change_in_place() {
        let xs: Vec<f32> = (-3000..3000).map(|i| i as f32 * 3.1e-3).collect();
        let mut want = xs.clone();
        gelu_slice(&mut want);
        let on = |device: &Device| Tensor::<2>::from_data(TensorData::new(xs.clone(), [60, 100]), device);
        let values = |t: Tensor<2>| t.into_data().try_into_vec_as::<f32>().unwrap();

        let flex = Device::flex();
        let fast = crate::flex::map_in_place(on(&flex), gelu_slice);
        assert_eq!(values(fast.expect("an inference flex tensor is changed in place")), want);
        // A strided view is not contiguous: the fast path leaves it to Burn.
        assert!(crate::flex::map_in_place(on(&flex).swap_dims(0, 1), gelu_slice).is_err());

        // An autodiff tensor is left to the autodiff path.
        assert!(crate::flex::map_in_place(on(&flex.clone().autodiff()), gelu_slice).is_err());
        let burns = values(activation::gelu(on(&flex)));
        for (a, b) in values(gelu(on(&flex))).iter().zip(&burns) {
            assert!((a - b).abs() <= 1e-6, "fast {a} against Burn's {b}");
        }
    }

    #[test]
    fn the_derivative_is_within_1e6_of_the_exact_one() {
        let mut xs: Vec<f32> = (-1_200_000..=1_200_000).map(|i| i as f32 * 1e-5).collect();
        xs.extend([f32::MAX, f32::MIN, 1e30, -1e30, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY]);
        let mut gs = vec![1.0f32; xs.len()];
        gelu_grad_slice(&xs, &mut gs);
        for (&x, &g) in xs.iter().zip(&gs) {
            let v = x as f64;
            let density = if v.is_finite() { v * (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt() } else { 0.0 };
            let want = 0.5 * (1.0 + libm_erf(v / std::f64::consts::SQRT_2)) + density;
            assert!((g as f64 - want).abs() <= 1e-6, "gelu'({x}) = {g}, exact {want}");
        }
        // The output gradient scales the result.
        let mut scaled = vec![-2.5f32; 3];
        gelu_grad_slice(&[0.0, 1.0, -1.0], &mut scaled);
        assert_eq!(scaled[0], -1.25);
    }

    #[cfg(feature = "flex")]
    #[test]
    fn autodiff_gelu_and_its_gradient_match_burns() {
        let xs: Vec<f32> = (-3000..3000).map(|i| i as f32 * 3.1e-3).collect();
        let device = Device::flex().autodiff();
        let input = || Tensor::<2>::from_data(TensorData::new(xs.clone(), [60, 100]), &device).require_grad();
        let values = |t: Tensor<2>| t.into_data().try_into_vec_as::<f32>().unwrap();
        // A weighted sum, so that each element's gradient is scaled differently.
        let weights = Tensor::<2>::from_data(TensorData::new((0..6000).map(|i| (i % 7) as f32 - 3.0).collect::<Vec<_>>(), [60, 100]), &device);
        let run = |f: fn(Tensor<2>) -> Tensor<2>| {
            let x = input();
            let y = f(x.clone());
            let grads = (y.clone() * weights.clone()).sum().backward();
            (values(y), values(x.grad(&grads).expect("x is tracked")))
        };
        let (y_ours, g_ours) = run(gelu);
        let (y_burn, g_burn) = run(activation::gelu);
        for (a, b) in y_ours.iter().zip(&y_burn).chain(g_ours.iter().zip(&g_burn)) {
            assert!((a - b).abs() <= 2e-6, "ours {a} against Burn's {b}");
        }
        // The fast path took it: Burn's f32 erf differs from ours somewhere.
        assert_ne!(g_ours, g_burn);
    }

    #[test]
    fn every_dispatch_path_gives_the_same_bits() {
        let xs: Vec<f32> = (-5000..5000).map(|i| i as f32 * 1.7e-3).collect();
        let mut a = xs.clone();
        let mut b = xs.clone();
        gelu_slice(&mut a);
        gelu_portable(&mut b);
        assert_eq!(a, b);
        let (mut ga, mut gb) = (vec![0.7f32; xs.len()], vec![0.7f32; xs.len()]);
        gelu_grad_slice(&xs, &mut ga);
        gelu_grad_portable(&xs, &mut gb);
        assert_eq!(ga, gb);
    }
}
