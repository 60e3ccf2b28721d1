//! Fast paths for Burn's flex CPU backend: they reach the flex tensor behind
//! a `Tensor` (Burn's backend-extension API), in inference or under
//! autodiff, and leave every other tensor (GPU) to the caller's generic code.
//! Also the branch-free math those paths share (written so that the compiler
//! vectorises it; libm's scalar `exp` does not vectorise).

use burn::prelude::*;
use burn_dispatch::backends::autodiff::checkpoint::base::Checkpointer;
use burn_dispatch::backends::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
use burn_dispatch::backends::autodiff::grads::Gradients;
use burn_dispatch::backends::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn_dispatch::backends::Flex;
use burn_dispatch::{
    BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind, GradientCheckpointingStrategy,
};
use burn_flex::FlexTensor;

/// Whether `x` lives on the flex backend outside autodiff.
pub(crate) fn is_inference<const D: usize>(x: &Tensor<D>) -> bool {
    let DispatchTensor { kind, autodiff } = x.clone().into_dispatch();
    matches!((kind, autodiff), (DispatchTensorKind::Flex(BackendTensor::Float(_)), DispatchAutodiffContext::Disabled))
}

/// The flex tensor behind `x` (sharing its buffer) when `x` is an inference
/// flex f32 tensor laid out contiguously, so that its elements can be read
/// as one row-major slice; `None` otherwise.
pub(crate) fn contiguous_f32<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    if x.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    match x.clone().into_dispatch() {
        DispatchTensor { kind: DispatchTensorKind::Flex(BackendTensor::Float(t)), autodiff: DispatchAutodiffContext::Disabled }
            if t.is_contiguous() =>
        {
            Some(t)
        }
        _ => None,
    }
}

/// Where the heads of `x` `[batch, heads, rows, dim]` lie in a shared flex
/// buffer: head `n` (counting `b * heads + h`) is the row-major `[rows, dim]`
/// block at `start + n * stride` of `tensor`'s storage.
pub(crate) struct Heads {
    /// The flex tensor whose storage holds the heads (sharing `x`'s buffer).
    pub tensor: FlexTensor,
    /// Offset of the first head's first element.
    pub start: usize,
    /// Elements from one head's start to the next's.
    pub stride: usize,
}

/// The heads of `x` when it is an inference flex f32 tensor whose heads are
/// contiguous blocks evenly spaced in its buffer: a contiguous tensor, or
/// the first rows of each head of one (the filled part of a key/value cache
/// with room to grow); `None` otherwise.
pub(crate) fn f32_heads(x: &Tensor<4>) -> Option<Heads> {
    if x.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    let [batch, heads, rows, dim] = x.dims();
    let tensor = match x.clone().into_dispatch() {
        DispatchTensor { kind: DispatchTensorKind::Flex(BackendTensor::Float(t)), autodiff: DispatchAutodiffContext::Disabled } => t,
        _ => return None,
    };
    let layout = tensor.layout();
    let [s0, s1, s2, s3] = <[isize; 4]>::try_from(layout.strides()).ok()?;
    let blocks = (s3 == 1 || dim <= 1) && (s2 == dim as isize || rows <= 1);
    let stride = usize::try_from(s1).ok()?;
    if !blocks || stride < rows * dim || (batch > 1 && s0 != (heads * stride) as isize) {
        return None;
    }
    Some(Heads { start: layout.start_offset(), stride, tensor })
}

/// Applies `f` to the elements of `x` in place when `x` is an inference flex
/// f32 tensor that owns its contiguous buffer; gives `x` back unchanged
/// otherwise.
pub(crate) fn map_in_place<const D: usize>(x: Tensor<D>, f: impl FnOnce(&mut [f32])) -> Result<Tensor<D>, Tensor<D>> {
    if x.dtype() != burn::tensor::DType::F32 {
        return Err(x);
    }
    let DispatchTensor { kind, autodiff } = x.into_dispatch();
    let (kind, done) = match (kind, &autodiff) {
        (DispatchTensorKind::Flex(BackendTensor::Float(mut t)), DispatchAutodiffContext::Disabled) => {
            let done = match (t.layout().contiguous_offsets(), t.try_storage_mut::<f32>()) {
                (Some((start, end)), Some(storage)) => {
                    f(&mut storage[start..end]);
                    true
                }
                _ => false,
            };
            (DispatchTensorKind::Flex(BackendTensor::Float(t)), done)
        }
        (kind, _) => (kind, false),
    };
    let tensor = Tensor::from_dispatch(DispatchTensor { kind, autodiff });
    if done { Ok(tensor) } else { Err(tensor) }
}

/// Applies `f` to the elements of `x` (in place) and `y` together when both
/// are inference flex f32 tensors of the same shape and `x` owns its
/// contiguous buffer (`y` is made contiguous if it is a view); gives `x`
/// back unchanged otherwise.
pub(crate) fn zip_in_place<const D: usize>(
    x: Tensor<D>,
    y: Tensor<D>,
    f: impl FnOnce(&mut [f32], &[f32]),
) -> Result<Tensor<D>, Tensor<D>> {
    if x.dims() != y.dims() || y.dtype() != burn::tensor::DType::F32 {
        return Err(x);
    }
    let DispatchTensor { kind, autodiff } = y.into_dispatch();
    let y = match (kind, autodiff) {
        (DispatchTensorKind::Flex(BackendTensor::Float(t)), DispatchAutodiffContext::Disabled) => t.to_contiguous(),
        _ => return Err(x),
    };
    match y.as_slice::<f32>() {
        Some(ys) => map_in_place(x, |xs| f(xs, ys)),
        None => Err(x),
    }
}

/// An element-wise function of an f32 flex tensor and its derivative, as
/// plain functions (the autodiff graph keeps them in its backward step).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Elementwise {
    /// `y = f(x)`, into a new tensor.
    pub forward: fn(&FlexTensor) -> FlexTensor,
    /// The input gradient `f'(x) * grad`, from `x` and the output gradient.
    pub backward: fn(&FlexTensor, FlexTensor) -> FlexTensor,
}

impl Backward<Flex, 1> for Elementwise {
    /// The input, kept for the backward pass.
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| (self.backward)(&x, grad));
    }
}

/// `op` applied to `x` when `x` is an autodiff flex f32 tensor, recorded in
/// the graph with `op`'s own derivative; gives `x` back unchanged otherwise.
pub(crate) fn autodiff_elementwise<const D: usize>(x: Tensor<D>, op: Elementwise) -> Result<Tensor<D>, Tensor<D>> {
    if x.dtype() != burn::tensor::DType::F32 {
        return Err(x);
    }
    let DispatchTensor { kind, autodiff } = x.into_dispatch();
    // Records `op` in the graph with checkpointing strategy `$C` (the
    // autodiff tensor's type does not depend on it, the recording does).
    macro_rules! record {
        ($t:expr, $C:ty) => {{
            let t = $t;
            match op.prepare::<$C>([t.node()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let input = t.into_primitive();
                    let output = (op.forward)(&input);
                    prep.finish(input, output)
                }
                OpsKind::UnTracked(prep) => prep.finish((op.forward)(&t.into_primitive())),
            }
        }};
    }
    // An autodiff float tensor is the backend's autodiff tensor, boxed.
    match (kind, autodiff) {
        (DispatchTensorKind::Autodiff(inner), DispatchAutodiffContext::Enabled(strategy)) => {
            let autodiff = DispatchAutodiffContext::Enabled(strategy);
            match *inner {
                DispatchTensorKind::Flex(BackendTensor::Autodiff(t)) => {
                    let y = match strategy {
                        GradientCheckpointingStrategy::Balanced => record!(t, BalancedCheckpointing),
                        GradientCheckpointingStrategy::Disabled => record!(t, NoCheckpointing),
                    };
                    let kind = DispatchTensorKind::Autodiff(Box::new(DispatchTensorKind::Flex(BackendTensor::Autodiff(y))));
                    Ok(Tensor::from_dispatch(DispatchTensor { kind, autodiff }))
                }
                inner => Err(Tensor::from_dispatch(DispatchTensor { kind: DispatchTensorKind::Autodiff(Box::new(inner)), autodiff })),
            }
        }
        (kind, autodiff) => Err(Tensor::from_dispatch(DispatchTensor { kind, autodiff })),
    }
}

/// `mask` (a flex bool tensor) laid out in one contiguous buffer, so that
/// flex's attention reads it in place instead of copying it on every layer.
pub(crate) fn contiguous<const D: usize>(mask: Tensor<D, Bool>) -> Tensor<D, Bool> {
    let DispatchTensor { kind, autodiff } = mask.into_dispatch();
    let kind = match kind {
        DispatchTensorKind::Flex(BackendTensor::Bool(t)) => DispatchTensorKind::Flex(BackendTensor::Bool(t.to_contiguous())),
        kind => kind,
    };
    Tensor::from_dispatch(DispatchTensor { kind, autodiff })
}

/// Defines `$name`, which runs the `#[inline(always)]` function `$portable`
/// compiled for the widest vector unit this CPU has: AVX-512F, else AVX2
/// with FMA, else the baseline (the body is the same; only the instructions
/// the compiler may use differ, chosen at run time). The second form names
/// one body for the two vector units (which both have FMA) and another for
/// the baseline, for code that calls `mul_add` only where it is one
/// instruction; the third names one body per unit, for code whose tile
/// size follows the vector width.
macro_rules! widest_simd {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $portable:ident) => {
        $crate::flex::widest_simd! { $(#[$attr])* $vis fn $name($($arg: $ty),*) => $portable, $portable }
    };
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $simd:path, $portable:path) => {
        $crate::flex::widest_simd! { $(#[$attr])* $vis fn $name($($arg: $ty),*) => $simd, $simd, $portable }
    };
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $avx512:path, $avx2:path, $portable:path) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    $avx512($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $avx2($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F, checked just above.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $portable($($arg),*)
        }
    };
}
pub(crate) use widest_simd;

/// Elements per parallel task of the element-wise fast paths: large enough
/// that scheduling costs nothing next to the arithmetic, small enough to
/// split a `[8, 128, 1536]` block.
pub(crate) const CHUNK: usize = 16 * 1024;

/// e^a for a <= 0 in f32, within 2 ulp (e^-87 below -87), branch-free so
/// that it vectorises 16 lanes wide: a = n ln 2 + r with |r| <= ln 2 / 2,
/// e^r by Cephes' `expf` polynomial, 2^n from the exponent bits. For f32
/// results (the SwiGLU gate, softmax), where [`exp_small`]'s f64 series
/// buys nothing: the SwiGLU pass measured memory-bound with either.
#[inline(always)]
pub(crate) fn exp_nonpositive(a: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let a = a.clamp(-87.0, 0.0);
    let n = (a * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (a - n * LN2_HI) - n * LN2_LO;
    const P: [f32; 6] = [1.987_569_2e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];
    let mut p = P[0];
    for c in &P[1..] {
        p = p * r + c;
    }
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// e^a for a in [-36, 0] to about 1e-14 relative, branch-free so that it
/// vectorises (libm's `exp` does not): a = n ln 2 + r with |r| <= ln 2 / 2,
/// e^r by its Taylor series to degree 11, 2^n from the exponent bits.
/// Below -40 it returns e^-40.
#[inline(always)]
pub(crate) fn exp_small(a: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_2e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Adding and subtracting 1.5 * 2^52 rounds to the nearest integer.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let a = a.clamp(-40.0, 0.0);
    let n = (a * std::f64::consts::LOG2_E + ROUND) - ROUND;
    let r = (a - n * LN2_HI) - n * LN2_LO;
    // 1 + r (1 + r/2 (1 + r/3 (... (1 + r/11)))), with 1/k precomputed.
    const INV: [f64; 11] =
        [1.0, 1.0 / 2.0, 1.0 / 3.0, 1.0 / 4.0, 1.0 / 5.0, 1.0 / 6.0, 1.0 / 7.0, 1.0 / 8.0, 1.0 / 9.0, 1.0 / 10.0, 1.0 / 11.0];
    let mut p = 1.0;
    for inv in INV.iter().rev() {
        p = 1.0 + r * inv * p;
    }
    p * f64::from_bits(((n as i64 + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_f32_exp_is_within_2_ulp() {
        for i in 0..=870_000 {
            let a = -(i as f32) * 1e-4;
            let (got, want) = (exp_nonpositive(a) as f64, (a as f64).exp());
            assert!((got - want).abs() <= want * 2.4e-7, "exp({a}) = {got}, exact {want}");
        }
    }

    #[test]
    fn the_vectorisable_exp_matches_libm() {
        for i in 0..=360_000 {
            let a = -(i as f64) * 1e-4;
            let (got, want) = (exp_small(a), a.exp());
            assert!((got - want).abs() <= want * 1e-13, "exp({a}) = {got}, libm {want}");
        }
    }
}
