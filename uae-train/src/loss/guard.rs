//! Host-side checks of a batch's teacher targets and losses.

use burn::tensor::Tensor;

use super::LossError;
use super::metrics::softmax;

/// A target whose largest probability exceeds `1 - ONE_HOT_MARGIN` counts as
/// one-hot: the softmax has underflowed to a hard label (in `f32`, every
/// other candidate then holds less than the rounding error of the top one).
pub const ONE_HOT_MARGIN: f64 = 1e-6;

/// A row whose utility spread divided by `tau_u` is at most this counts as
/// uniform: every target probability is within a factor `e^1e-6` of `1/K`.
pub const UNIFORM_SPREAD: f64 = 1e-6;

/// Degenerate teacher targets found in one batch by [`super::LossConfig::guard`].
///
/// Neither case is an error: a few such queries are normal. What the trainer
/// should do:
/// - `one_hot_rows`: `softmax(U / tau_u)` has collapsed onto one candidate
///   (its top-two utility gap exceeds about `ln(1e6) * tau_u = 13.8 * tau_u`).
///   UM-InfoNCE then trains plain InfoNCE on the teacher's favourite and the
///   order of the other candidates is lost. Sum the count over an epoch and
///   log it; when a large share of queries is one-hot, raise `tau_u` (a value
///   near `widest_spread / 14` keeps the widest row soft).
/// - `uniform_rows`: all utilities of the row are equal (for example a
///   teacher that failed to score, or an empty answer), so the target carries
///   no ranking signal and only pulls the row's similarities together. Sum
///   and log them too; when they are frequent, check the labelling and drop
///   such queries when building the training set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetReport {
    /// How many query rows were inspected (0 when the batch has no utilities).
    pub rows: usize,
    /// Query rows whose teacher target is one-hot after the temperature.
    pub one_hot_rows: Vec<usize>,
    /// Query rows whose teacher target is uniform (and not one-hot, which
    /// only a single-candidate row is both).
    pub uniform_rows: Vec<usize>,
    /// The largest `max_d U - min_d U` over the rows.
    pub widest_spread: f32,
}

impl TargetReport {
    /// True when no row was one-hot or uniform.
    pub fn is_clean(&self) -> bool {
        self.one_hot_rows.is_empty() && self.uniform_rows.is_empty()
    }
}

/// Reads `utilities` (`[B, K]`) back, errors on the first non-finite one and
/// classifies each row's target `softmax(U / tau_u)`.
pub(super) fn inspect_targets(utilities: &Tensor<2>, tau_u: f64) -> Result<TargetReport, LossError> {
    let [rows, k] = utilities.dims();
    let values = read(utilities.clone())?;
    let mut report = TargetReport {
        rows,
        ..TargetReport::default()
    };
    for (row, u) in values.chunks(k.max(1)).enumerate().take(rows) {
        if let Some(column) = u.iter().position(|v| !v.is_finite()) {
            return Err(LossError::NonFiniteUtility {
                row,
                column,
                value: u[column],
            });
        }
        let spread = spread(u);
        report.widest_spread = report.widest_spread.max(spread);
        if is_one_hot(u, tau_u) {
            report.one_hot_rows.push(row);
        } else if f64::from(spread) / tau_u <= UNIFORM_SPREAD {
            report.uniform_rows.push(row);
        }
    }
    Ok(report)
}

/// Reads the per-query losses back and errors on the first non-finite one.
pub(super) fn check_losses(per_query: &Tensor<1>) -> Result<(), LossError> {
    let values = read(per_query.clone())?;
    match values.iter().position(|v| !v.is_finite()) {
        Some(row) => Err(LossError::NonFiniteLoss {
            row,
            value: values[row],
        }),
        None => Ok(()),
    }
}

/// Whether `softmax(u / tau_u)` puts more than `1 - ONE_HOT_MARGIN` on one
/// candidate: the teacher target has collapsed to a hard label.
pub fn is_one_hot(u: &[f32], tau_u: f64) -> bool {
    softmax(u, tau_u).into_iter().fold(0.0, f64::max) > 1.0 - ONE_HOT_MARGIN
}

/// `max - min` of a non-empty row of finite values.
fn spread(u: &[f32]) -> f32 {
    let max = u.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let min = u.iter().copied().fold(f32::INFINITY, f32::min);
    max - min
}

/// A tensor's values as `f32` on the host.
fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, LossError> {
    t.try_into_vec_as::<f32>()
        .map_err(|e| LossError::Read(format!("{e:?}")))
}
