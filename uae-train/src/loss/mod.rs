//! Distillation losses: how far the student's similarity distribution over a
//! query's candidates is from the teacher's utility distribution.
//!
//! # Inputs and notation
//!
//! One batch holds `B` queries, each with its own pool of `K` candidates
//! (see [`LossInput`]):
//!
//! - `s[b, d]`: the student's cosine similarity between query `b` and its
//!   candidate `d` (`scores`, `[B, K]`);
//! - `n[b, m]`: optional in-batch negatives, the similarities of query `b` to
//!   `M` passages that belong to other queries (`in_batch`, `[B, M]`); they
//!   compete in the student's softmax but get target mass 0;
//! - `U[b, d]`: the teacher's utility of candidate `d` for query `b`
//!   (`utilities`, `[B, K]`), treated as a constant (no gradient);
//! - `pos[b]`: the index of query `b`'s gold candidate (`positive`).
//!
//! With the student temperature `tau` and the teacher temperature `tau_u`
//! ([`LossConfig`]):
//!
//! ```text
//! z_b            = concat(s[b, :], n[b, :]) / tau                  (K + M logits)
//! log p_theta(.) = log_softmax(z_b)                                 (over K + M)
//! log p_U(.)     = log_softmax(U[b, :] / tau_u)                     (over K; 0 mass on in-batch)
//! ```
//!
//! Each loss ([`LossKind`]) gives a per-query value `l_b`, and the batch loss
//! is `mean_b l_b`. Everything goes through `log_softmax` (a max-shifted
//! log-sum-exp), never through `log(softmax(..))`, so large logits stay finite.
//!
//! # Checking a batch
//!
//! [`LossConfig::loss`] validates shapes and configuration without reading
//! tensors back. [`LossConfig::guard`] reads the utilities and per-query
//! losses back to the host, turns non-finite values into an error naming the
//! query row, and counts degenerate teacher targets in a [`TargetReport`].
//!
//! The host-side helpers in [`metrics`] compute the validation metrics (KL,
//! Recall@1, MRR) over candidate pools.

mod error;
mod guard;
pub mod metrics;
mod objectives;
mod target;

pub use error::LossError;
pub use guard::{ONE_HOT_MARGIN, TargetReport, UNIFORM_SPREAD, is_one_hot};
pub use target::{PEAKED, TargetStats, UtilityNorm};

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Which distillation objective to train with.
///
/// The serde and [`FromStr`] names are the kebab-case ones listed in
/// [`LossKind::name`], so the same strings work in JSON configs and on the
/// command line (a clap argument can parse this type through `FromStr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// `um-infonce`, Utility-Modulated InfoNCE: the cross-entropy from the
    /// teacher distribution to the student's,
    /// `l_b = -sum_{d in K} p_U(d) log p_theta(d)`.
    /// Equal to `KL(p_U || p_theta)` plus the teacher entropy `H(p_U)`, a
    /// constant, so it has the same gradient as an unscaled KL.
    #[default]
    UmInfonce,
    /// `infonce`, one gold positive per query; the other candidates are hard
    /// negatives, plus the in-batch negatives:
    /// `l_b = -log p_theta(pos_b)`.
    /// This is sentence-transformers' `MultipleNegativesRankingLoss` with
    /// `scale = 1 / tau` (scale 20 is tau 0.05). Utilities are not used.
    Infonce,
    /// `kl`, KL distillation with separate temperatures for student (`tau`)
    /// and teacher (`tau_u`), multiplied by `tau^2` as in
    /// sentence-transformers' `DistillKLDivLoss`:
    /// `l_b = tau^2 * sum_{d in K} p_U(d) (log p_U(d) - log p_theta(d))`.
    /// Terms with `p_U(d) = 0` (including every in-batch negative) are 0.
    Kl,
    /// `stable-distill`, LLM-Embedder's stable distillation (FlagEmbedding,
    /// `research/llm_embedder/src/retrieval/modeling_dense.py`,
    /// `DenseRetriever._compute_loss` with `stable_distill=True`): for every
    /// candidate `i`, a cross-entropy towards `i` in which the candidates the
    /// teacher ranks above `i` are masked out, weighted by the teacher
    /// probability of `i`:
    /// `l_b = sum_{i in K} p_U(i) * -log_softmax(z_b with A_i masked)(i)`,
    /// `A_i = { j in K : U_j > U_i, or U_j = U_i and j < i }`.
    /// See `objectives::stable_distill` for the correspondence with
    /// FlagEmbedding's loop.
    StableDistill,
}

impl LossKind {
    /// Every loss, in the order they are documented.
    pub const ALL: [LossKind; 4] = [
        LossKind::UmInfonce,
        LossKind::Infonce,
        LossKind::Kl,
        LossKind::StableDistill,
    ];

    /// The loss's name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::UmInfonce => "um-infonce",
            LossKind::Infonce => "infonce",
            LossKind::Kl => "kl",
            LossKind::StableDistill => "stable-distill",
        }
    }

    /// Whether the loss reads the teacher utilities.
    pub fn needs_utilities(self) -> bool {
        self != LossKind::Infonce
    }

    /// Whether the loss reads the gold positive of each query.
    pub fn needs_positive(self) -> bool {
        self == LossKind::Infonce
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LossKind {
    type Err = LossError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LossKind::ALL.into_iter().find(|kind| kind.name() == s).ok_or_else(|| {
            let names: Vec<&str> = LossKind::ALL.iter().map(|k| k.name()).collect();
            LossError::InvalidConfig(format!("unknown loss {s:?}; expected one of {}", names.join(", ")))
        })
    }
}

/// The loss to train with and its temperatures.
///
/// Defaults ([`LossConfig::default`]):
/// - `kind`: `um-infonce`, the method's own objective;
/// - `tau = 0.05`: the student temperature (sentence-transformers' scale 20).
///   Cosines lie in [-1, 1], so logits span at most 40. FlagEmbedding trains
///   `stable-distill` with 0.01; uae keeps one default for every loss so
///   that baselines compare at the same temperature (set 0.01 explicitly to
///   reproduce LLM-Embedder);
/// - `tau_u = 1.0`: the teacher temperature. Utilities are mean per-token
///   log-likelihood gains in nats, so at 1.0 a one-nat-per-token advantage
///   multiplies a candidate's target odds by e. It is the default teacher
///   temperature of both FlagEmbedding's LLM-Embedder and
///   sentence-transformers' `DistillKLDivLoss`, and [`LossConfig::guard`]
///   reports the rows where it leaves a one-hot or a uniform target;
/// - `use_in_batch = true`: other queries' passages serve as extra negatives,
///   as in `MultipleNegativesRankingLoss`;
/// - `infonce_weight = 0`: no InfoNCE term is added (see the field).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// The objective.
    pub kind: LossKind,
    /// Student temperature: logits are `similarity / tau`.
    pub tau: f64,
    /// Teacher temperature: the target is `softmax(utility / tau_u)`.
    pub tau_u: f64,
    /// Whether batches carry in-batch negatives ([`LossInput::in_batch`]).
    pub use_in_batch: bool,
    /// Adds `infonce_weight * -log p_theta(pos_b)` (InfoNCE on the gold
    /// candidate, over the same logits) to each query's loss, anchoring a
    /// distillation loss to the judgements (Tamber et al. use 0.1). Ignored
    /// by `infonce` itself.
    pub infonce_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            kind: LossKind::UmInfonce,
            tau: 0.05,
            tau_u: 1.0,
            use_in_batch: true,
            infonce_weight: 0.0,
        }
    }
}

/// One batch's inputs to a loss.
///
/// Tensors may live on an autodiff device; gradients flow into `scores` and
/// `in_batch` only.
#[derive(Debug, Clone)]
pub struct LossInput {
    /// Student cosine similarities of each query to its own candidates, `[B, K]`.
    pub scores: Tensor<2>,
    /// Student similarities of each query to other queries' passages, `[B, M]`.
    /// Present exactly when [`LossConfig::use_in_batch`] is set.
    pub in_batch: Option<Tensor<2>>,
    /// Teacher utilities of each query's candidates, `[B, K]`; required by
    /// every loss except `infonce`.
    pub utilities: Option<Tensor<2>>,
    /// Index in `0..K` of each query's gold candidate, `B` entries; required
    /// by `infonce`. Kept on the host so it is checked without a device read.
    pub positive: Option<Vec<usize>>,
}

/// A loss's value for one batch.
#[derive(Debug, Clone)]
pub struct LossOutput {
    /// The batch loss, `mean_b l_b`, shape `[1]`; call `backward` on it.
    pub loss: Tensor<1>,
    /// The per-query losses `l_b`, shape `[B]`, for [`LossConfig::guard`].
    pub per_query: Tensor<1>,
}

impl LossConfig {
    /// A configuration for `kind` with the default temperatures.
    pub fn new(kind: LossKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// Whether the loss reads the gold positive of each query: `infonce`,
    /// or any loss with an InfoNCE term.
    pub fn needs_positive(&self) -> bool {
        self.kind.needs_positive() || self.infonce_term()
    }

    /// Whether an InfoNCE term is added to a distillation loss.
    fn infonce_term(&self) -> bool {
        self.kind != LossKind::Infonce && self.infonce_weight > 0.0
    }

    /// Checks that both temperatures are finite and positive, and the
    /// InfoNCE weight finite and not negative.
    pub fn validate(&self) -> Result<(), LossError> {
        if !(self.infonce_weight.is_finite() && self.infonce_weight >= 0.0) {
            return Err(LossError::InvalidConfig(format!(
                "infonce_weight must be finite and not negative, got {}",
                self.infonce_weight
            )));
        }
        for (name, value) in [("tau", self.tau), ("tau_u", self.tau_u)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(LossError::InvalidConfig(format!(
                    "{name} must be finite and positive, got {value}"
                )));
            }
        }
        Ok(())
    }

    /// Computes the configured loss for one batch.
    ///
    /// Errors, without reading any tensor back, when the configuration is
    /// invalid, an input the loss needs is missing, shapes disagree, a
    /// positive index is out of range, or the softmax would range over a
    /// single logit (its loss and gradient would be identically zero).
    pub fn loss(&self, input: &LossInput) -> Result<LossOutput, LossError> {
        self.validate()?;
        let [rows, candidates] = self.check_shapes(input)?;
        let logits = self.student_logits(input);
        let per_query = match self.kind {
            LossKind::UmInfonce => objectives::um_infonce(logits.clone(), teacher(input)?, self.tau_u),
            LossKind::Infonce => {
                let target = one_hot(positive(input)?, rows, candidates, &input.scores);
                objectives::soft_cross_entropy(target, logits.clone())
            }
            LossKind::Kl => objectives::kl(logits.clone(), teacher(input)?, self.tau, self.tau_u),
            LossKind::StableDistill => objectives::stable_distill(logits.clone(), teacher(input)?, self.tau_u),
        };
        let per_query = if self.infonce_term() {
            let target = one_hot(positive(input)?, rows, candidates, &input.scores);
            per_query + objectives::soft_cross_entropy(target, logits).mul_scalar(self.infonce_weight)
        } else {
            per_query
        };
        Ok(LossOutput {
            loss: per_query.clone().mean(),
            per_query,
        })
    }

    /// Inspects a batch after [`LossConfig::loss`]: reads the utilities and
    /// the per-query losses back (a device synchronisation) and reports.
    ///
    /// Errors name the query row: a NaN or infinite utility, or a non-finite
    /// loss. Degenerate teacher targets are not errors; they are counted in
    /// the returned [`TargetReport`], whose documentation says what the
    /// trainer should do with them.
    pub fn guard(&self, input: &LossInput, output: &LossOutput) -> Result<TargetReport, LossError> {
        let report = match &input.utilities {
            Some(utilities) => guard::inspect_targets(utilities, self.tau_u)?,
            None => TargetReport::default(),
        };
        guard::check_losses(&output.per_query)?;
        Ok(report)
    }

    /// `concat(scores, in_batch) / tau`, `[B, K + M]`; an empty `in_batch`
    /// (`M = 0`, as in a batch of one query) adds nothing.
    fn student_logits(&self, input: &LossInput) -> Tensor<2> {
        let logits = match &input.in_batch {
            Some(in_batch) if in_batch.dims()[1] > 0 => Tensor::cat(vec![input.scores.clone(), in_batch.clone()], 1),
            _ => input.scores.clone(),
        };
        logits.div_scalar(self.tau)
    }

    /// Checks every shape against `scores` `[B, K]` and returns `[B, K]`.
    fn check_shapes(&self, input: &LossInput) -> Result<[usize; 2], LossError> {
        let [rows, candidates] = input.scores.dims();
        if rows == 0 || candidates == 0 {
            return Err(LossError::Shape(format!(
                "scores must be non-empty, got [{rows}, {candidates}]"
            )));
        }
        let negatives = self.check_in_batch(input, rows)?;
        if candidates + negatives < 2 {
            return Err(LossError::Shape(
                "a softmax over one logit is constant: give each query a second candidate \
                 or in-batch negatives"
                    .into(),
            ));
        }
        if self.kind.needs_utilities() {
            let dims = teacher(input)?.dims();
            if dims != [rows, candidates] {
                return Err(LossError::Shape(format!(
                    "utilities are {dims:?} but scores are [{rows}, {candidates}]"
                )));
            }
        }
        if self.needs_positive() {
            check_positive(positive(input)?, rows, candidates)?;
        }
        Ok([rows, candidates])
    }

    /// Checks `in_batch` against `use_in_batch` and `B`; returns `M`.
    fn check_in_batch(&self, input: &LossInput, rows: usize) -> Result<usize, LossError> {
        match (&input.in_batch, self.use_in_batch) {
            (None, false) => Ok(0),
            (Some(in_batch), true) => {
                let [in_rows, negatives] = in_batch.dims();
                if in_rows != rows {
                    return Err(LossError::Shape(format!(
                        "in_batch has {in_rows} rows but scores have {rows}"
                    )));
                }
                Ok(negatives)
            }
            (None, true) => Err(LossError::MissingInput(
                "in_batch (the configuration sets use_in_batch)",
            )),
            (Some(_), false) => Err(LossError::InvalidConfig(
                "in_batch was given but the configuration does not set use_in_batch".into(),
            )),
        }
    }
}

/// The utilities, or an error naming them as missing.
fn teacher(input: &LossInput) -> Result<Tensor<2>, LossError> {
    input
        .utilities
        .clone()
        .ok_or(LossError::MissingInput("utilities (teacher scores)"))
}

/// The gold positives, or an error naming them as missing.
fn positive(input: &LossInput) -> Result<&[usize], LossError> {
    input
        .positive
        .as_deref()
        .ok_or(LossError::MissingInput("positive (gold candidate indices)"))
}

/// Checks one positive per query, each inside its candidate pool.
fn check_positive(positive: &[usize], rows: usize, candidates: usize) -> Result<(), LossError> {
    if positive.len() != rows {
        return Err(LossError::Shape(format!(
            "{} positives for {rows} queries",
            positive.len()
        )));
    }
    match positive.iter().position(|&p| p >= candidates) {
        Some(row) => Err(LossError::PositiveOutOfRange {
            row,
            positive: positive[row],
            candidates,
        }),
        None => Ok(()),
    }
}

/// The one-hot target `[B, K]` of the gold positives, on `like`'s device.
/// The positives must have passed [`check_positive`].
fn one_hot(positive: &[usize], rows: usize, candidates: usize, like: &Tensor<2>) -> Tensor<2> {
    let mut values = vec![0.0f32; rows * candidates];
    for (row, &p) in positive.iter().enumerate() {
        values[row * candidates + p] = 1.0;
    }
    let data = TensorData::new(values, [rows, candidates]);
    Tensor::<2>::from_data(data, &like.device())
}
