//! The training model: a [`SentenceEmbedder`] that scores each query against
//! its candidates and, optionally, against the other queries' candidates,
//! and takes a [`crate::loss`] objective of those scores. It implements
//! Burn's [`TrainStep`] and [`InferenceStep`] for the Learner.

use std::fmt;
use std::sync::{Arc, Mutex};

use burn::prelude::*;
use burn::train::metric::{Adaptor, ItemLazy, LossInput as LossMetricInput};
use burn::train::{InferenceStep, Interrupter, TrainOutput, TrainStep};
use burn::tensor::ExecutionError;
use uae_model::encoder::SentenceEmbedder;
use uae_model::pooling::l2_normalize;

use crate::batcher::{Candidates, DistillBatch, in_batch_duplicates};
use crate::loss::{LossConfig, LossError, LossInput, LossOutput};
use crate::metrics::{DevInput, PoolInput};
use crate::select::Selection;

/// The bi-encoder under training with its loss.
#[derive(Module, Debug)]
pub struct DistillModel {
    /// The student.
    pub embedder: SentenceEmbedder,
    /// The objective and temperatures.
    #[module(skip)]
    pub loss: LossConfig,
    /// Where a step records a batch it could not train on.
    #[module(skip)]
    pub failure: StepFailure,
    /// Model selection on held-out retrieval, when on.
    #[module(skip)]
    pub selection: Option<Selection>,
}

/// The first batch a training or validation step could not compute a loss
/// for. Burn's Learner takes no error from a step, so the step records the
/// failure here (shared by the model's clones), asks the Learner to stop
/// through its interrupter, and trains that batch on a zero loss;
/// `uae_train::train::train` then returns the failure as an error naming
/// the batch's queries instead of saving weights.
#[derive(Clone, Default)]
pub struct StepFailure {
    first: Arc<Mutex<Option<String>>>,
    interrupter: Interrupter,
}

impl fmt::Debug for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepFailure").field("first", &self.first).finish_non_exhaustive()
    }
}

impl StepFailure {
    /// Failures stop training through `interrupter`.
    pub fn new(interrupter: Interrupter) -> Self {
        Self { first: Arc::default(), interrupter }
    }

    /// Records the failure of the batch of `queries` (the first one is kept)
    /// and stops training.
    fn record(&self, queries: &[String], error: &LossError) {
        let mut first = self.first.lock().expect("failure lock");
        if first.is_none() {
            let message = format!("the batch of queries {} failed: {error}", queries.join(", "));
            self.interrupter.stop(Some(&message));
            *first = Some(message);
        }
    }

    /// The first recorded failure, if any.
    pub fn first(&self) -> Option<String> {
        self.first.lock().expect("failure lock").clone()
    }
}

/// The score a masked in-batch passage gets: finite, so that a zero target
/// times its log-probability stays 0, and low enough that `exp(score / tau)`
/// is 0 in f32 for any temperature up to 1.
pub const MASKED_COSINE: f32 = -1.0e4;

/// The scores of one batch.
#[derive(Debug, Clone)]
pub struct Scores {
    /// Cosine of each query with its own candidates, `[B, K]`.
    pub own: Tensor<2>,
    /// Cosine of each query with the other queries' candidates,
    /// `[B, (B - 1) * K]`; `None` when in-batch negatives are off or `B = 1`.
    /// A passage that is also among the query's own candidates is masked
    /// (score [`MASKED_COSINE`]): pools mined from one corpus share passages
    /// often (on the Python FAQ, 84 of 125 training queries have their gold
    /// passage in another query's pool), and as a negative it would push the
    /// query away from its own gold.
    pub in_batch: Option<Tensor<2>>,
}

/// What a step reports to the metrics.
#[derive(Debug, Clone)]
pub struct DistillOutput {
    /// The scalar batch loss, `[1]`.
    pub loss: Tensor<1>,
    /// Per-query losses, `[B]`.
    pub per_query: Tensor<1>,
    /// Student cosines over each query's own candidates, `[B, K]`.
    pub scores: Tensor<2>,
    /// Teacher utilities, `[B, K]`.
    pub utilities: Tensor<2>,
    /// Relevance flags, `B` rows of `K`.
    pub relevant: Vec<Vec<bool>>,
    /// Student temperature.
    pub tau: f64,
    /// Teacher temperature.
    pub tau_u: f64,
    /// The latest dev value of the selection metric (NaN without selection).
    pub dev: f64,
}

impl DistillModel {
    /// Cosine similarities of a batch (vectors are L2-normalised here
    /// whatever the model's own normalisation).
    pub fn scores(&self, batch: &DistillBatch) -> Scores {
        let queries = l2_normalize(self.embedder.forward(&batch.queries));
        let passages = match &batch.passages {
            Candidates::Tokens(tokens) => l2_normalize(self.embedder.forward(tokens)),
            // Constants: no gradient reaches the frozen passage encoder.
            Candidates::Vectors(vectors) => vectors.clone(),
        };
        let [b, h] = queries.dims();
        let k = passages.dims()[0] / b.max(1);
        let own = passages
            .clone()
            .reshape([b, k, h])
            .matmul(queries.clone().reshape([b, h, 1]))
            .reshape([b, k]);
        let in_batch = (self.loss.use_in_batch && b > 1).then(|| {
            let all = queries.matmul(passages.transpose());
            let others: Vec<i32> = (0..b)
                .flat_map(|row| (0..b * k).filter(move |col| col / k != row).map(|c| c as i32))
                .collect();
            let index = Tensor::<2, Int>::from_data(TensorData::new(others, [b, (b - 1) * k]), &all.device());
            let scores = all.gather(1, index);
            let duplicates = in_batch_duplicates(&batch.doc_ids);
            if duplicates.iter().any(|&d| d) {
                let mask = Tensor::<2, Bool>::from_data(TensorData::new(duplicates, [b, (b - 1) * k]), &scores.device());
                scores.mask_fill(mask, MASKED_COSINE)
            } else {
                scores
            }
        });
        Scores { own, in_batch }
    }

    /// Scores and loss of a batch, checked by [`LossConfig::guard`]: a loss
    /// that cannot be computed, a non-finite utility or a non-finite loss
    /// (training diverged) is recorded in [`DistillModel::failure`], which
    /// stops training, and the batch gets a zero loss.
    pub fn forward_loss(&self, batch: DistillBatch) -> DistillOutput {
        let scores = self.scores(&batch);
        // A last batch of one query has no in-batch negatives.
        let config = LossConfig { use_in_batch: scores.in_batch.is_some(), ..self.loss };
        let input = LossInput {
            scores: scores.own.clone(),
            in_batch: scores.in_batch,
            utilities: Some(batch.utilities.clone()),
            positive: if config.needs_positive() { positives(&batch.relevant, &batch.utilities) } else { None },
        };
        let checked = config.loss(&input).and_then(|output| config.guard(&input, &output).map(|_| output));
        let output = checked.unwrap_or_else(|error| {
            self.failure.record(&batch.query_ids, &error);
            // Zero, but part of the graph, so that backward still runs.
            let zero = scores.own.clone().sum() * 0.0;
            LossOutput { per_query: zero.clone().repeat_dim(0, scores.own.dims()[0]), loss: zero }
        });
        DistillOutput {
            loss: output.loss,
            per_query: output.per_query,
            scores: scores.own,
            utilities: batch.utilities,
            relevant: batch.relevant,
            tau: self.loss.tau,
            tau_u: self.loss.tau_u,
            dev: self.selection.as_ref().map_or(f64::NAN, Selection::latest),
        }
    }
}

/// The gold candidate of each query for `infonce`: the first relevant one,
/// else the teacher's best (host-side, from the relevance flags; utilities
/// are read back only when a row has no relevant candidate).
fn positives(relevant: &[Vec<bool>], utilities: &Tensor<2>) -> Option<Vec<usize>> {
    let mut out = Vec::with_capacity(relevant.len());
    let mut host: Option<Vec<f32>> = None;
    for (row, flags) in relevant.iter().enumerate() {
        match flags.iter().position(|&r| r) {
            Some(i) => out.push(i),
            None => {
                let values = match &host {
                    Some(v) => v,
                    None => host.insert(utilities.clone().try_into_vec_as::<f32>().ok()?),
                };
                let k = flags.len();
                let row_values = &values[row * k..(row + 1) * k];
                out.push(crate::loss::metrics::argmax(row_values)?);
            }
        }
    }
    Some(out)
}

impl TrainStep for DistillModel {
    type Input = DistillBatch;
    type Output = DistillOutput;

    fn step(&self, batch: DistillBatch) -> TrainOutput<DistillOutput> {
        if let Some(selection) = &self.selection {
            selection.before_batch(|| self.embedder.valid());
        }
        let output = self.forward_loss(batch);
        let grads = output.loss.backward();
        TrainOutput::new(self, grads, output)
    }
}

impl InferenceStep for DistillModel {
    type Input = DistillBatch;
    type Output = DistillOutput;

    fn step(&self, batch: DistillBatch) -> DistillOutput {
        if let Some(selection) = &self.selection {
            selection.at_validation(&self.embedder);
        }
        self.forward_loss(batch)
    }
}

impl ItemLazy for DistillOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        self.loss.device().flush()?;
        Ok(Self {
            loss: self.loss.without_autodiff(),
            per_query: self.per_query.without_autodiff(),
            scores: self.scores.without_autodiff(),
            utilities: self.utilities.without_autodiff(),
            ..self
        })
    }
}

impl Adaptor<LossMetricInput> for DistillOutput {
    fn adapt(&self) -> LossMetricInput {
        LossMetricInput::new(self.per_query.clone())
    }
}

impl Adaptor<DevInput> for DistillOutput {
    fn adapt(&self) -> DevInput {
        DevInput { value: self.dev }
    }
}

impl Adaptor<PoolInput> for DistillOutput {
    fn adapt(&self) -> PoolInput {
        PoolInput {
            scores: self.scores.clone(),
            utilities: self.utilities.clone(),
            relevant: self.relevant.clone(),
            tau: self.tau,
            tau_u: self.tau_u,
        }
    }
}
