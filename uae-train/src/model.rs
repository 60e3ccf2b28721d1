//! The training model: a [`SentenceEmbedder`] that scores each query against
//! its candidates and, optionally, against the other queries' candidates,
//! and takes a [`crate::loss`] objective of those scores. It implements
//! Burn's [`TrainStep`] and [`InferenceStep`] for the Learner.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::train::metric::{Adaptor, ItemLazy, LossInput as LossMetricInput};
use burn::train::{InferenceStep, Interrupter, TrainOutput, TrainStep};
use burn::tensor::ExecutionError;
use uae_model::bert::TokenBatch;
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
    /// Encode a training step's texts this many at a time with cached
    /// gradients ([`DistillModel::cached_step`]) when the queries or the
    /// candidates are more; `None` encodes every batch in one graph.
    #[module(skip)]
    pub grad_cache: Option<usize>,
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

/// The L2-normalised vectors a batch is scored with.
struct Embedded {
    /// One per query, `[B, H]`.
    queries: Tensor<2>,
    /// One per candidate, `[B * K, H]`.
    passages: Tensor<2>,
}

impl DistillModel {
    /// The batch's vectors, in one graph.
    fn embed(&self, batch: &DistillBatch) -> Embedded {
        Embedded {
            queries: l2_normalize(self.embedder.forward(&batch.queries)),
            passages: match &batch.passages {
                Candidates::Tokens(tokens) => l2_normalize(self.embedder.forward(tokens)),
                // Constants: no gradient reaches the frozen passage encoder.
                Candidates::Vectors(vectors) => vectors.clone(),
            },
        }
    }

    /// Cosine similarities of a batch (vectors are L2-normalised here
    /// whatever the model's own normalisation).
    pub fn scores(&self, batch: &DistillBatch) -> Scores {
        self.scores_of(self.embed(batch), batch)
    }

    fn scores_of(&self, embedded: Embedded, batch: &DistillBatch) -> Scores {
        let Embedded { queries, passages } = embedded;
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
        let embedded = self.embed(&batch);
        self.loss_of(embedded, batch)
    }

    fn loss_of(&self, embedded: Embedded, batch: DistillBatch) -> DistillOutput {
        let scores = self.scores_of(embedded, &batch);
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

    /// One training step by GradCache (Gao et al., 2021, "Scaling Deep
    /// Contrastive Learning Batch Size under Memory Limited Setup"), with
    /// the same loss and gradients as one graph over the whole batch:
    /// 1. every text is encoded `chunk` at a time without a graph;
    /// 2. the loss is taken of those vectors as leaves, and its backward
    ///    gives the gradient of each vector;
    /// 3. each chunk is encoded again with a graph, and the backward of
    ///    (its vectors * their cached gradients).sum() adds that chunk's
    ///    share to the parameters' gradients (the chain rule, summed over
    ///    chunks).
    ///
    /// Only one chunk's activations are alive at a time, for one more
    /// forward pass of compute; exact because the encoder has no dropout.
    pub fn cached_step(&self, batch: DistillBatch, chunk: usize) -> TrainOutput<DistillOutput> {
        let frozen = self.embedder.valid();
        let like = batch.utilities.clone();
        let leaf = |tokens: &TokenBatch| {
            let parts: Vec<Tensor<2>> = chunks(tokens.input_ids.dims()[0], chunk)
                .map(|rows| frozen.forward(&tokens.rows(rows).without_autodiff()))
                .collect();
            beside(Tensor::cat(parts, 0), &like).require_grad()
        };
        let mut texts = vec![(batch.queries.clone(), leaf(&batch.queries))];
        if let Candidates::Tokens(tokens) = &batch.passages {
            texts.push((tokens.clone(), leaf(tokens)));
        }
        let embedded = Embedded {
            queries: l2_normalize(texts[0].1.clone()),
            passages: match &batch.passages {
                Candidates::Tokens(_) => l2_normalize(texts[1].1.clone()),
                Candidates::Vectors(vectors) => vectors.clone(),
            },
        };
        let output = self.loss_of(embedded, batch);
        let mut cached = output.loss.backward();
        let mut grads = GradientsAccumulator::new();
        for (tokens, vectors) in texts {
            // Every leaf takes part in the loss, so each has a gradient.
            let Some(grad) = vectors.grad_remove(&mut cached) else { continue };
            let grad = beside(grad, &like);
            for rows in chunks(tokens.input_ids.dims()[0], chunk) {
                let surrogate = (self.embedder.forward(&tokens.rows(rows.clone())) * grad.clone().slice(rows)).sum();
                grads.accumulate(self, GradientsParams::from_grads(surrogate.backward(), self));
            }
        }
        TrainOutput { grads: grads.grads(), item: output }
    }
}

/// `0..n` in consecutive ranges of at most `size`.
fn chunks(n: usize, size: usize) -> impl Iterator<Item = Range<usize>> {
    (0..n).step_by(size.max(1)).map(move |start| start..(start + size.max(1)).min(n))
}

/// `tensor` (without autodiff) made an autodiff tensor that can be combined
/// with `like`: the same gradient-checkpointing strategy, which Burn
/// requires of every operand.
fn beside(tensor: Tensor<2>, like: &Tensor<2>) -> Tensor<2> {
    let tensor = tensor.autodiff();
    match like.gradient_checkpointing_strategy() {
        Some(strategy) => tensor.with_gradient_checkpointing_strategy(strategy),
        None => tensor,
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
        // A batch whose texts fit in one chunk gains nothing from the cache.
        let texts = match &batch.passages {
            Candidates::Tokens(tokens) => tokens.input_ids.dims()[0],
            Candidates::Vectors(_) => 0,
        }
        .max(batch.queries.input_ids.dims()[0]);
        if let Some(chunk) = self.grad_cache
            && texts > chunk
        {
            return self.cached_step(batch, chunk);
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

#[cfg(test)]
mod tests {
    use burn::module::{ModuleVisitor, Param};
    use uae_model::bert::{BertConfig, BertModel};
    use uae_model::sentence::Pooling;

    use super::*;

    /// A random two-layer BERT with mean pooling, on `device`.
    fn tiny_embedder(device: &Device) -> SentenceEmbedder {
        let config: BertConfig = serde_json::from_str(
            r#"{"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 32, "max_position_embeddings": 32}"#,
        )
        .unwrap();
        SentenceEmbedder { bert: BertModel::new(&config, device), pooling: Pooling::Mean, normalize: true }
    }

    /// 3 queries with 4 candidates each, of several lengths (so padded),
    /// one candidate shared by two queries (an in-batch duplicate).
    fn batch(device: &Device) -> DistillBatch {
        let ids = |n: usize, seed: usize| -> Vec<u32> { (0..n).map(|i| ((i * 7 + seed * 13) % 47 + 2) as u32).collect() };
        let queries: Vec<Vec<u32>> = (0..3).map(|q| ids(3 + q, q)).collect();
        let passages: Vec<Vec<u32>> = (0..12).map(|p| ids(4 + p % 5, 10 + p)).collect();
        let zeros = |rows: &[Vec<u32>]| -> Vec<Vec<u32>> { rows.iter().map(|r| vec![0; r.len()]).collect() };
        let (query_types, passage_types) = (zeros(&queries), zeros(&passages));
        let utilities = vec![2.0, 0.5, 0.1, -0.3, 0.2, 1.5, 0.0, 0.4, -1.0, 0.3, 0.9, 0.6];
        let mut doc_ids: Vec<Vec<String>> = (0..3).map(|q| (0..4).map(|k| format!("d{}", q * 4 + k)).collect()).collect();
        doc_ids[2][3] = "d0".into();
        DistillBatch {
            queries: TokenBatch::pad(&slices(&queries), &slices(&query_types), 0, device),
            passages: Candidates::Tokens(TokenBatch::pad(&slices(&passages), &slices(&passage_types), 0, device)),
            utilities: Tensor::from_data(TensorData::new(utilities, [3, 4]), device),
            relevant: vec![vec![true, false, false, false]; 3],
            doc_ids,
            query_ids: vec!["q0".into(), "q1".into(), "q2".into()],
        }
    }

    fn slices(rows: &[Vec<u32>]) -> Vec<&[u32]> {
        rows.iter().map(Vec::as_slice).collect()
    }

    /// The largest difference between two gradient sets over a module's
    /// parameters, and the largest gradient.
    struct Compare<'a> {
        a: &'a GradientsParams,
        b: &'a GradientsParams,
        largest_difference: f32,
        largest: f32,
        missing: usize,
    }

    impl ModuleVisitor for Compare<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            match (self.a.get::<D>(param.id), self.b.get::<D>(param.id)) {
                (Some(a), Some(b)) => {
                    let a = a.into_data().try_to_vec::<f32>().unwrap();
                    let b = b.into_data().try_to_vec::<f32>().unwrap();
                    for (x, y) in a.iter().zip(&b) {
                        self.largest_difference = self.largest_difference.max((x - y).abs());
                        self.largest = self.largest.max(x.abs());
                    }
                }
                (None, None) => {}
                _ => self.missing += 1,
            }
        }
    }

    #[test]
    fn grad_cache_gives_the_gradients_of_one_graph() {
        for device in [Device::flex().autodiff(), Device::flex().autodiff().gradient_checkpointing()] {
            // A fixed model, so that a failure reproduces.
            device.seed(7);
            let model = DistillModel {
                embedder: tiny_embedder(&device),
                loss: LossConfig { infonce_weight: 0.1, ..LossConfig::default() },
                failure: StepFailure::default(),
                selection: None,
                grad_cache: None,
            };
            let whole = TrainStep::step(&model, batch(&device));
            // Chunks of 5 split 3 queries into one and 12 passages into 5 + 5 + 2.
            let cached = DistillModel { grad_cache: Some(5), ..model.clone() };
            let chunked = TrainStep::step(&cached, batch(&device));
            let loss = |out: &TrainOutput<DistillOutput>| out.item.loss.clone().into_scalar::<f32>();
            // The cached pass encodes through the inference kernels (fused
            // attention), one graph through autodiff's: equal up to f32
            // rounding, relative to the loss as the gradients are below.
            let (a, b) = (loss(&whole), loss(&chunked));
            assert!((a - b).abs() < 1e-6 * a.abs().max(1.0), "{a} vs {b}");
            let mut compare =
                Compare { a: &whole.grads, b: &chunked.grads, largest_difference: 0.0, largest: 0.0, missing: 0 };
            model.visit(&mut compare);
            assert_eq!(compare.missing, 0);
            assert!(compare.largest > 1e-4, "the gradients are all but zero: {}", compare.largest);
            assert!(
                compare.largest_difference < 1e-5 * compare.largest.max(1.0),
                "GradCache moved a gradient by {} (largest {})",
                compare.largest_difference,
                compare.largest
            );
        }
    }
}
