//! Model selection on held-out retrieval (docs/method.md, "Model
//! selection"): the model is scored on judged held-out queries by
//! full-corpus retrieval before the first step (the base model), after each
//! epoch and, with `eval_every`, every that many training batches; the best
//! weights by the chosen metric are kept, and a run whose every checkpoint is
//! worse than the base exports the base weights unchanged.
//!
//! The retrieval itself is the caller's [`DevEvaluator`] (`uae-eval`
//! implements it with `uae eval`'s exact search and metrics), so this crate
//! needs no search index.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::train::Interrupter;
use serde::{Deserialize, Serialize};
use uae_data::{Qrels, Query};
use burn::tensor::Device;
use uae_model::bert::{BertConfig, BertModel};
use uae_model::encoder::SentenceEmbedder;

/// The metric model selection maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SelectMetric {
    /// Mean average precision.
    #[default]
    #[serde(rename = "map")]
    Map,
    /// Recall@1.
    #[serde(rename = "recall@1")]
    RecallAt1,
    /// nDCG@10.
    #[serde(rename = "ndcg@10")]
    NdcgAt10,
}

impl SelectMetric {
    /// Every metric, in the order documented.
    pub const ALL: [SelectMetric; 3] = [SelectMetric::Map, SelectMetric::RecallAt1, SelectMetric::NdcgAt10];

    /// The metric's name, as `uae eval` names it.
    pub fn name(self) -> &'static str {
        match self {
            SelectMetric::Map => "map",
            SelectMetric::RecallAt1 => "recall@1",
            SelectMetric::NdcgAt10 => "ndcg@10",
        }
    }

    /// The metric's title in charts and metric lines.
    pub fn title(self) -> &'static str {
        match self {
            SelectMetric::Map => "MAP",
            SelectMetric::RecallAt1 => "Recall@1",
            SelectMetric::NdcgAt10 => "nDCG@10",
        }
    }
}

impl fmt::Display for SelectMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SelectMetric {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        SelectMetric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown selection metric {s:?}; expected map, recall@1 or ndcg@10"))
    }
}

/// The judged held-out queries selection ranks the corpus for.
#[derive(Debug, Clone)]
pub struct DevQueries {
    /// Where they come from: a split name, or a description of the held-out
    /// share of the training queries.
    pub source: String,
    /// The queries.
    pub queries: Vec<Query>,
    /// Their judgements.
    pub qrels: Qrels,
}

/// Which weights embed the corpus in a dev evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassageSide {
    /// The base model's, unchanged: before the first step, and always when
    /// the passage encoder is frozen (`query_only`). An evaluator may reuse
    /// the base's corpus index or the vectors of an earlier evaluation.
    Base,
    /// The evaluated weights'.
    Evaluated,
}

/// Scores a model by retrieval over held-out queries.
pub trait DevEvaluator: Send {
    /// The retrieval metrics of `embedder` (the run's tokenizer, pooling and
    /// prefixes are the evaluator's) over `dev`, by `uae eval`'s names; at
    /// least every [`SelectMetric`]. `embedder` embeds the queries, and the
    /// passages too when `passages` is [`PassageSide::Evaluated`].
    fn evaluate(
        &mut self,
        embedder: &SentenceEmbedder,
        dev: &DevQueries,
        passages: PassageSide,
    ) -> Result<BTreeMap<String, f64>>;
}

/// One evaluation of the model on the dev queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevPoint {
    /// Training batches taken before it (0: the base model).
    pub step: usize,
    /// The metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Seconds the evaluation took.
    pub seconds: f64,
}

/// One interpolation of the chosen weights with the base, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergePoint {
    /// The fine-tuned weights' share: `alpha * chosen + (1 - alpha) * base`.
    pub alpha: f64,
    /// The metrics.
    pub metrics: BTreeMap<String, f64>,
}

/// What selection chose, kept in `<run>/selection.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionSummary {
    /// The metric maximised.
    pub metric: SelectMetric,
    /// Where the dev queries come from, and how many there are.
    pub dev: String,
    /// Every evaluation, in step order; the first is the base model.
    pub history: Vec<DevPoint>,
    /// The step of the exported weights (0: the base weights, unchanged).
    pub chosen_step: usize,
    /// Interpolations of the chosen step's weights with the base (`merge_base`).
    #[serde(default)]
    pub merges: Vec<MergePoint>,
    /// The interpolation exported, when one beat the chosen step's weights.
    #[serde(default)]
    pub chosen_merge: Option<f64>,
}

impl SelectionSummary {
    /// The metric's value at the base model and for the exported weights.
    pub fn base_and_chosen(&self) -> (f64, f64) {
        let key = self.metric.name();
        let value = |step: usize| self.history.iter().find(|p| p.step == step).map_or(f64::NAN, |p| p.metrics[key]);
        let merged = self.chosen_merge.and_then(|a| self.merges.iter().find(|m| m.alpha == a)).map(|m| m.metrics[key]);
        (value(0), merged.unwrap_or_else(|| value(self.chosen_step)))
    }
}

impl fmt::Display for SelectionSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (base, chosen) = self.base_and_chosen();
        let metric = self.metric;
        if self.chosen_step == 0 {
            let best = self.history.iter().skip(1).map(|p| p.metrics[metric.name()]).fold(f64::NAN, f64::max);
            write!(
                f,
                "no checkpoint beat the base model on {} ({metric} {base:.4}; best fine-tuned {best:.4}): \
                 exporting the base weights unchanged",
                self.dev
            )
        } else {
            let merged = self.chosen_merge.map_or(String::new(), |a| format!(" merged with the base at alpha {a}"));
            write!(
                f,
                "exporting the weights after {} training batches{merged}: {metric} {chosen:.4} on {} against {base:.4} for the base model",
                self.chosen_step, self.dev
            )
        }
    }
}

/// The file the best weights so far are kept in while training runs.
pub fn best_weights(out: &Path) -> PathBuf {
    out.join("best.safetensors")
}

/// The selection record of a run directory.
pub fn summary_path(out: &Path) -> PathBuf {
    out.join("selection.json")
}

struct State {
    merges: Vec<MergePoint>,
    chosen_merge: Option<f64>,
    evaluator: Box<dyn DevEvaluator>,
    dev: DevQueries,
    metric: SelectMetric,
    out: PathBuf,
    eval_every: Option<usize>,
    /// Whether the passage encoder is frozen (the base's).
    frozen_passages: bool,
    /// Training batches taken so far.
    steps: usize,
    history: Vec<DevPoint>,
    chosen_step: usize,
    error: Option<String>,
    interrupter: Interrupter,
}

impl State {
    fn value(&self, point: &DevPoint) -> f64 {
        self.metric_of(&point.metrics)
    }

    /// The selection metric among `metrics` (NaN when absent).
    fn metric_of(&self, metrics: &BTreeMap<String, f64>) -> f64 {
        metrics.get(self.metric.name()).copied().unwrap_or(f64::NAN)
    }

    /// Records the selection so far in `selection.json`.
    fn write_summary(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.summary())?;
        uae_data::atomic::write_file_atomically(&summary_path(&self.out), text.as_bytes())
    }

    /// Which weights embed the corpus for the model at the current step.
    fn passage_side(&self) -> PassageSide {
        if self.steps == 0 || self.frozen_passages { PassageSide::Base } else { PassageSide::Evaluated }
    }

    fn evaluated_at(&self, step: usize) -> bool {
        self.history.iter().any(|p| p.step == step)
    }

    fn best(&self) -> f64 {
        self.history.iter().find(|p| p.step == self.chosen_step).map_or(f64::NEG_INFINITY, |p| self.value(p))
    }

    fn summary(&self) -> SelectionSummary {
        SelectionSummary {
            metric: self.metric,
            dev: format!("{} ({} queries)", self.dev.source, self.dev.queries.len()),
            history: self.history.clone(),
            chosen_step: self.chosen_step,
            merges: self.merges.clone(),
            chosen_merge: self.chosen_merge,
        }
    }

    /// Evaluates `embedder` at the current step; keeps its weights when it
    /// is strictly better than the best so far (the base wins ties).
    fn evaluate(&mut self, embedder: &SentenceEmbedder) -> Result<()> {
        let start = Instant::now();
        let side = self.passage_side();
        let metrics = self.evaluator.evaluate(embedder, &self.dev, side).with_context(|| match self.steps {
            0 => "evaluating the base model on the dev queries".to_string(),
            n => format!("evaluating the model after {n} training batches on the dev queries"),
        })?;
        if !metrics.contains_key(self.metric.name()) {
            anyhow::bail!("the dev evaluation gave no {} figure", self.metric);
        }
        let point = DevPoint { step: self.steps, metrics, seconds: start.elapsed().as_secs_f64() };
        let value = self.value(&point);
        let first = self.history.is_empty();
        let better = !first && value > self.best();
        self.history.push(point);
        self.history.sort_by_key(|p| p.step);
        if better {
            // Written next to the run and renamed into place, so a kill
            // leaves the previous best intact.
            let staging = self.out.join("best.safetensors.partial");
            embedder.bert.save(&staging)?;
            std::fs::rename(&staging, best_weights(&self.out))
                .with_context(|| format!("cannot move {} into place", staging.display()))?;
            self.chosen_step = self.steps;
        }
        self.write_summary()
    }
}

/// Model selection shared by the training model's clones: the training step
/// counts batches and evaluates every `eval_every`, the validation step
/// evaluates once per epoch, and the run reads the outcome at the end.
#[derive(Clone)]
pub struct Selection {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selection").finish_non_exhaustive()
    }
}

/// How a run selects its model.
#[derive(Debug, Clone, Copy)]
pub struct SelectOptions {
    /// The metric selection maximises.
    pub metric: SelectMetric,
    /// Also evaluate every this many training batches.
    pub eval_every: Option<usize>,
    /// Whether the passage encoder is frozen, so that every evaluation's
    /// corpus vectors are the base's ([`PassageSide::Base`]).
    pub frozen_passages: bool,
}

impl Selection {
    /// Selection over `dev` for the run in `out`. `resumed` is the record of
    /// an earlier, interrupted part of the run and the batches it took. A
    /// failed evaluation stops training through `interrupter`.
    pub fn new(
        evaluator: Box<dyn DevEvaluator>,
        dev: DevQueries,
        options: SelectOptions,
        out: &Path,
        resumed: Option<(SelectionSummary, usize)>,
        interrupter: Interrupter,
    ) -> Self {
        let (history, chosen_step, steps) = match resumed {
            Some((summary, steps)) => {
                // Evaluations after the checkpoint resumed from belong to the
                // lost part of the run, which resumed training repeats. The
                // chosen one stays (its weights are in the best file) and is
                // not evaluated again.
                let history: Vec<DevPoint> =
                    summary.history.into_iter().filter(|p| p.step <= steps || p.step == summary.chosen_step).collect();
                (history, summary.chosen_step, steps)
            }
            None => (Vec::new(), 0, 0),
        };
        let state = State {
            merges: Vec::new(),
            chosen_merge: None,
            evaluator,
            dev,
            metric: options.metric,
            out: out.to_path_buf(),
            eval_every: options.eval_every,
            frozen_passages: options.frozen_passages,
            steps,
            history,
            chosen_step,
            error: None,
            interrupter,
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Evaluates the base model (before any step), unless a resumed record
    /// already holds it.
    pub fn evaluate_base(&self, embedder: &SentenceEmbedder) -> Result<()> {
        let mut state = self.lock();
        if state.history.is_empty() { state.evaluate(embedder) } else { Ok(()) }
    }

    /// Called by the training step before each batch, with the model before
    /// that batch's update: counts the batch, and evaluates when
    /// `eval_every` batches have passed since the start.
    pub fn before_batch(&self, embedder: impl FnOnce() -> SentenceEmbedder) {
        let mut state = self.lock();
        let due = state.eval_every.is_some_and(|n| state.steps > 0 && state.steps % n == 0);
        if due && !state.evaluated_at(state.steps) {
            Self::record(&mut state, &embedder());
        }
        state.steps += 1;
    }

    /// Called by the validation step: evaluates the model once per state of
    /// the weights (the first validation batch after training batches).
    pub fn at_validation(&self, embedder: &SentenceEmbedder) {
        let mut state = self.lock();
        if state.steps > 0 && !state.evaluated_at(state.steps) {
            Self::record(&mut state, embedder);
        }
    }

    /// Evaluates the final weights when the last evaluation was earlier
    /// (a run without validation batches).
    pub fn at_end(&self, embedder: &SentenceEmbedder) -> Result<()> {
        let mut state = self.lock();
        if let Some(error) = state.error.take() {
            anyhow::bail!("model selection failed: {error}");
        }
        if !state.evaluated_at(state.steps) {
            state.evaluate(embedder)?;
        }
        Ok(())
    }

    fn record(state: &mut State, embedder: &SentenceEmbedder) {
        if state.error.is_some() {
            return;
        }
        if let Err(e) = state.evaluate(embedder) {
            let message = format!("{e:#}");
            state.interrupter.stop(Some(&message));
            state.error = Some(message);
        }
    }

    /// Evaluates `embedder`, the chosen weights interpolated with the base at
    /// `alpha`, and records it; true when it beats every evaluation so far,
    /// so that the merge is the weights to export.
    pub fn evaluate_merge(&self, alpha: f64, embedder: &SentenceEmbedder) -> Result<bool> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let side = if state.frozen_passages { PassageSide::Base } else { PassageSide::Evaluated };
        let metrics = state.evaluator.evaluate(embedder, &state.dev, side)?;
        let value = state.metric_of(&metrics);
        let chosen_merge = state.merges.iter().find(|m| Some(m.alpha) == state.chosen_merge);
        let best = chosen_merge.map_or_else(|| state.best(), |m| state.metric_of(&m.metrics));
        state.merges.push(MergePoint { alpha, metrics });
        let better = value > best;
        if better {
            state.chosen_merge = Some(alpha);
        }
        state.write_summary()?;
        Ok(better)
    }

    /// Ends selection on the final weights `trained` and writes the export
    /// `weights`: the best evaluated weights, or the best of their merges
    /// with the base at each share of `merge_base` when one is better on
    /// dev, or the base model's own file `base_weights`, byte for byte, when
    /// nothing beat it.
    pub fn export(
        &self,
        trained: &SentenceEmbedder,
        config: &BertConfig,
        base_weights: &Path,
        merge_base: &[f64],
        weights: &Path,
        device: &Device,
    ) -> Result<SelectionSummary> {
        self.at_end(trained)?;
        let out = self.lock().out.clone();
        let mut export_from = best_weights(&out);
        if self.summary().chosen_step > 0 && !merge_base.is_empty() {
            // The base in the export's own tensor names (a checkpoint may
            // nest them under `bert.` or carry a pooler).
            let base_export = out.join("base-export.safetensors");
            BertModel::load(config, base_weights, device)?.save(&base_export)?;
            for &alpha in merge_base {
                let merged = out.join(format!("merged-{alpha}.safetensors"));
                uae_model::weights::interpolate(&best_weights(&out), &base_export, alpha as f32, &merged)?;
                let bert = BertModel::load(config, &merged, device)?;
                let embedder = SentenceEmbedder { bert, pooling: trained.pooling, normalize: trained.normalize };
                if self.evaluate_merge(alpha, &embedder)? {
                    if export_from != best_weights(&out) {
                        std::fs::remove_file(&export_from).ok();
                    }
                    export_from = merged;
                } else {
                    std::fs::remove_file(&merged).ok();
                }
            }
            std::fs::remove_file(&base_export).ok();
        }
        let summary = self.summary();
        // Copied, not moved: a resumed run still finds its best weights.
        let from = if summary.chosen_step == 0 { base_weights.to_path_buf() } else { export_from };
        let bytes = std::fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
        uae_data::atomic::write_file_atomically(weights, &bytes)?;
        Ok(summary)
    }

    /// The latest value of the selection metric (NaN before any).
    pub fn latest(&self) -> f64 {
        let state = self.lock();
        state.history.iter().rev().find(|p| p.step <= state.steps).map_or(f64::NAN, |p| state.value(p))
    }

    /// The record so far.
    pub fn summary(&self) -> SelectionSummary {
        self.lock().summary()
    }
}
