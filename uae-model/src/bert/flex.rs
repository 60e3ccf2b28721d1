//! Fast paths for Burn's flex CPU backend: they reach the flex tensor behind
//! a `Tensor` (Burn's backend-extension API), in inference or under
//! autodiff, and leave every other tensor (GPU) to the caller's generic code.

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
pub(super) fn is_inference<const D: usize>(x: &Tensor<D>) -> bool {
    let DispatchTensor { kind, autodiff } = x.clone().into_dispatch();
    matches!((kind, autodiff), (DispatchTensorKind::Flex(BackendTensor::Float(_)), DispatchAutodiffContext::Disabled))
}

/// Applies `f` to the elements of `x` in place when `x` is an inference flex
/// f32 tensor that owns its contiguous buffer; gives `x` back unchanged
/// otherwise.
pub(super) fn map_in_place<const D: usize>(x: Tensor<D>, f: impl FnOnce(&mut [f32])) -> Result<Tensor<D>, Tensor<D>> {
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

/// An element-wise function of an f32 flex tensor and its derivative, as
/// plain functions (the autodiff graph keeps them in its backward step).
#[derive(Debug, Clone, Copy)]
pub(super) struct Elementwise {
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
pub(super) fn autodiff_elementwise<const D: usize>(x: Tensor<D>, op: Elementwise) -> Result<Tensor<D>, Tensor<D>> {
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
pub(super) fn contiguous<const D: usize>(mask: Tensor<D, Bool>) -> Tensor<D, Bool> {
    let DispatchTensor { kind, autodiff } = mask.into_dispatch();
    let kind = match kind {
        DispatchTensorKind::Flex(BackendTensor::Bool(t)) => DispatchTensorKind::Flex(BackendTensor::Bool(t.to_contiguous())),
        kind => kind,
    };
    Tensor::from_dispatch(DispatchTensor { kind, autodiff })
}
