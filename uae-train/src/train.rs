//! A distillation run on Burn's Learner: configuration, data preparation,
//! the optimiser and learning-rate schedule, metrics, checkpoints, resume
//! and the final weights.
//!
//! A run directory holds:
//! - `train_config.json`: the resolved [`TrainConfig`];
//! - `base/`: the base model's `config.json`, tokenizer files and
//!   sentence-transformers files ([`BASE_FILES`]), so that export needs nothing else (with
//!   `query_only`, also its weights: the frozen passage encoder);
//! - `train_inputs.json`: the labels file it trains on (size and CRC-32), so
//!   that `--resume` with other labels is refused;
//! - `checkpoint/`: the model, optimiser and scheduler state of the two
//!   newest epochs (`model-<epoch>.bpk`, ..., each with its `.bpk.sum`) and,
//!   in `steps/`, the newest state saved within an epoch
//!   (`checkpoint_every`), from which `--resume` continues
//!   ([`crate::checkpoint`], [`crate::strategy`]);
//! - `model.safetensors`: the exported weights with Hugging Face tensor
//!   names, written when training ends: with model selection, the best
//!   evaluated weights, or the base model's unchanged when nothing beat it;
//! - `selection.json` and, while training runs, `best.safetensors`: the
//!   dev evaluations and the best weights so far ([`crate::select`]);
//! - Burn's metric logs (`train/`, `valid/`, `experiment.log`).
//!
//! A configuration file (JSON; every field optional, unknown fields are
//! errors):
//!
//! ```json
//! {"loss": {"kind": "um-infonce", "tau": 0.05, "tau_u": 1.0, "use_in_batch": true},
//!  "sampling": {"candidates": 8, "top_share": 0.5, "seed": 42},
//!  "split": "train", "valid_share": 0.1, "epochs": 3, "batch_size": 16,
//!  "grad_accumulation": 1, "lr": 2e-5, "warmup_ratio": 0.1, "decay": "linear",
//!  "weight_decay": 0.01, "max_grad_norm": 1.0, "seed": 42,
//!  "early_stopping_patience": null, "log_every": 10, "max_length": null,
//!  "utility_norm": "none", "select": true, "select_metric": "map",
//!  "select_split": "dev", "eval_every": null, "merge_base": [],
//!  "query_only": false, "checkpoint_every": "5m", "grad_cache": 32,
//!  "gradient_checkpointing": true}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::grad_clipping::GradientClippingConfig;
use burn::lr_scheduler::LrSchedulerConfig;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::module::Module;
use burn::optim::AdamWConfig;
use burn::prelude::*;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{LearningRateMetric, LossMetric};
use burn::train::{
    Interrupter, Learner, MetricEarlyStoppingStrategy, StoppingCondition, SupervisedTraining, TrainingStrategy,
};
use serde::{Deserialize, Serialize};
use uae_data::DataSet;
use uae_model::encoder::{BiEncoder, EncoderOptions, TextRole};

use crate::batcher::{DistillBatcher, Prefixes, tokenise};
use crate::checkpoint::{self, ResumePoint, SafeCheckpointer};
use crate::data::{LoadReport, Sampling, load_labelled, split_train_valid, teacher_top_is_gold};
use crate::loss::{LossConfig, TargetStats, UtilityNorm};
use crate::metrics::{DevMetric, ExamplesPerSecond, PoolMetric, PoolStat};
use crate::model::{DistillModel, StepFailure};
use crate::select::{DevEvaluator, DevQueries, SelectMetric, SelectOptions, Selection, SelectionSummary};
use crate::renderer::{LineRenderer, MetricLines};
use crate::shuffle::EpochShuffled;
use crate::strategy::{CheckpointEvery, StepCheckpointing};

/// Epoch checkpoint sets a run keeps: the newest, which `--resume`
/// continues from, and the one before it, complete while the newest is being
/// written (Burn saves and deletes each kind of file on a thread of its own,
/// so with one set kept a kill could leave no complete set). Burn's default
/// also keeps the set of lowest validation loss for good; model selection
/// does not use it (the best weights by dev retrieval are in
/// `best.safetensors`), so it only cost disk: one more set of about 260 MB
/// per all-MiniLM-L6-v2 run, 1.3 GB for a BERT-base one.
const KEPT_EPOCH_SETS: usize = 2;

/// The files of the base model a run keeps in `base/` (those present), and
/// so its export: the tokenizer's configuration, special tokens and
/// vocabulary too, which loaders other than `tokenizers` (transformers'
/// slow tokenizers, fastembed-style loaders) look for.
pub const BASE_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
];

/// How the learning rate decays after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decay {
    /// Linearly to 0 at the last step.
    Linear,
    /// Along a half cosine to 0 at the last step.
    Cosine,
}

/// Every setting of a run; read from `--config train.json` (any field may be
/// left out and takes the default shown in [`TrainConfig::default`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The objective and temperatures.
    pub loss: LossConfig,
    /// Candidates per query and how they are sampled.
    pub sampling: Sampling,
    /// The qrels split whose judgements mark relevant candidates
    /// (`qrels/<split>.tsv`); `null` for none.
    pub split: Option<String>,
    /// Share of labelled queries held out for validation.
    pub valid_share: f64,
    /// Epochs.
    pub epochs: usize,
    /// Queries per batch.
    pub batch_size: usize,
    /// Batches whose gradients are summed before each optimiser step.
    pub grad_accumulation: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Share of optimiser steps spent warming up linearly to `lr`.
    pub warmup_ratio: f64,
    /// Decay after the warm-up.
    pub decay: Decay,
    /// AdamW weight decay.
    pub weight_decay: f32,
    /// Clip the gradient's global L2 norm to this value; `null` for none.
    pub max_grad_norm: Option<f32>,
    /// Seed of the device, the shuffling, the sampling and the split.
    pub seed: u64,
    /// Stop when the validation loss has not improved for this many epochs;
    /// `null` never stops early.
    pub early_stopping_patience: Option<usize>,
    /// Print a metrics line every this many steps when stdout is not a
    /// terminal.
    pub log_every: usize,
    /// Truncate texts to this many tokens instead of the model's maximum.
    pub max_length: Option<usize>,
    /// Per-query normalisation of the utilities before the teacher softmax.
    pub utility_norm: UtilityNorm,
    /// Model selection on held-out retrieval: evaluate the base and each
    /// epoch (and every `eval_every` batches), export the best, and the base
    /// unchanged when nothing beats it.
    pub select: bool,
    /// The metric selection maximises.
    pub select_metric: SelectMetric,
    /// The split whose judged queries selection ranks the corpus for; when
    /// the data set has no such split, the held-out share of the training
    /// queries (`valid_share`) is used.
    pub select_split: Option<String>,
    /// Also evaluate every this many training batches; `null` only after
    /// each epoch.
    pub eval_every: Option<usize>,
    /// After selection, interpolate the chosen weights with the base at each
    /// of these shares `alpha` (`alpha * chosen + (1 - alpha) * base`),
    /// evaluate each on dev, and export the best of all.
    pub merge_base: Vec<f64>,
    /// Train the query encoder only. The passage encoder stays the base
    /// model: the candidates' vectors are computed once (or read from
    /// [`RunPaths::base_index`]), each step runs the encoder on queries
    /// alone, dev evaluations embed only the dev queries, a corpus index the
    /// base built stays valid, and the export carries the base as its
    /// passage encoder (`uae_model::encoder::PASSAGE_DIR`).
    pub query_only: bool,
    /// How often to save the run's state within an epoch, for `--resume`:
    /// `N` optimiser steps, `"Xm"` minutes, or `0` for after each epoch
    /// only. Not part of what a resume must match.
    pub checkpoint_every: CheckpointEvery,
    /// Encode each training step's texts this many at a time with cached
    /// gradients (GradCache, [`crate::model::DistillModel::cached_step`])
    /// when a batch has more queries or candidates than that: the same loss
    /// and gradients, activations held for one chunk instead of the whole
    /// batch, for one more forward pass; `0` encodes every batch in one
    /// graph. Not part of what a resume must match.
    pub grad_cache: usize,
    /// Recompute memory-bound activations (element-wise operations, softmax)
    /// in the backward pass instead of keeping them: Burn's balanced
    /// gradient checkpointing; the same gradients with less memory. Not part
    /// of what a resume must match.
    pub gradient_checkpointing: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            loss: LossConfig::default(),
            sampling: Sampling::default(),
            split: Some("train".into()),
            valid_share: 0.1,
            epochs: 3,
            batch_size: 16,
            grad_accumulation: 1,
            lr: 2e-5,
            warmup_ratio: 0.1,
            decay: Decay::Linear,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
            seed: 42,
            early_stopping_patience: None,
            log_every: 10,
            max_length: None,
            utility_norm: UtilityNorm::None,
            select: true,
            select_metric: SelectMetric::Map,
            select_split: Some("dev".into()),
            eval_every: None,
            merge_base: Vec::new(),
            query_only: false,
            checkpoint_every: CheckpointEvery::default(),
            grad_cache: 32,
            gradient_checkpointing: true,
        }
    }
}

impl TrainConfig {
    /// Reads a configuration file: TOML when its name ends in `.toml`, JSON
    /// otherwise. Errors name the file (and, for TOML, the line and field).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let invalid = || format!("{} is not a valid train config", path.display());
        let config: Self = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
            toml::from_str(&text).with_context(invalid)?
        } else {
            serde_json::from_str(&text).with_context(invalid)?
        };
        config.validate().with_context(|| format!("{}", path.display()))?;
        Ok(config)
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        self.loss.validate()?;
        if self.epochs == 0 || self.batch_size == 0 || self.grad_accumulation == 0 || self.log_every == 0 {
            bail!("epochs, batch_size, grad_accumulation and log_every must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr <= 1.0) {
            bail!("lr must lie in (0, 1], got {}", self.lr);
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            bail!("warmup_ratio must lie in [0, 1), got {}", self.warmup_ratio);
        }
        if self.max_grad_norm.is_some_and(|n| !(n.is_finite() && n > 0.0)) {
            bail!("max_grad_norm must be positive");
        }
        if self.eval_every == Some(0) {
            bail!("eval_every must be at least 1");
        }
        if let Some(alpha) = self.merge_base.iter().find(|a| !(0.0..=1.0).contains(*a)) {
            bail!("merge_base shares must lie in [0, 1], got {alpha}");
        }
        Ok(())
    }
}

/// Where a run reads and writes.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// The base model: a local directory or hub id.
    pub model: String,
    /// The BEIR data folder the labels refer to.
    pub data: PathBuf,
    /// `labels.jsonl` from `uae label`.
    pub labels: PathBuf,
    /// The run directory.
    pub out: PathBuf,
    /// A corpus index the base model built over the data set's corpus
    /// (`uae index build`): with `query_only`, the candidates' frozen
    /// vectors are read from it rather than embedded.
    pub base_index: Option<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// What loading the labels skipped.
    pub load: LoadReport,
    /// Training and validation queries.
    pub train_queries: usize,
    /// Validation queries.
    pub valid_queries: usize,
    /// Texts cut to the maximum length.
    pub truncated: usize,
    /// Where training resumed, if it did.
    pub resumed_from: Option<ResumePoint>,
    /// Where the final weights are.
    pub weights: PathBuf,
    /// What model selection measured and chose, when it ran.
    pub selection: Option<SelectionSummary>,
}

/// The stored configuration of a run directory.
pub fn config_path(out: &Path) -> PathBuf {
    out.join("train_config.json")
}

/// How a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new run; refused when the run directory holds a complete
    /// checkpoint set (incomplete ones, from a kill during the first save,
    /// are removed).
    Fresh,
    /// Continue from the newest complete checkpoint set (of an epoch or
    /// saved within one), or after the given epoch's
    /// ([`crate::checkpoint::prepare_resume`]).
    Resume(Option<usize>),
}

/// What a run trained on, recorded in `train_inputs.json` so that a resume
/// with other labels is refused rather than mixing two trainings, and so
/// that an export's model card can name its base, data and teacher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// The base model as it was given (absent in runs older than model cards).
    #[serde(default)]
    pub model: Option<String>,
    /// The data set folder (absent likewise).
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// The labels file as it was given.
    pub labels: PathBuf,
    /// Its size in bytes.
    pub labels_bytes: u64,
    /// Its CRC-32.
    pub labels_crc32: u32,
}

impl Inputs {
    fn of(paths: &RunPaths) -> Result<Self> {
        let bytes = std::fs::read(&paths.labels).with_context(|| format!("cannot read {}", paths.labels.display()))?;
        Ok(Self {
            model: Some(paths.model.clone()),
            data: Some(paths.data.clone()),
            labels: paths.labels.clone(),
            labels_bytes: bytes.len() as u64,
            labels_crc32: crc32fast::hash(&bytes),
        })
    }
}

/// The inputs record of a run directory.
pub fn inputs_path(out: &Path) -> PathBuf {
    out.join("train_inputs.json")
}

/// Checks what a resumed run is given against what it was started with.
fn check_resume(out: &Path, config: &TrainConfig, inputs: &Inputs) -> Result<()> {
    let stored = TrainConfig::from_file(&config_path(out))?;
    let unmatched = TrainConfig {
        checkpoint_every: config.checkpoint_every,
        grad_cache: config.grad_cache,
        gradient_checkpointing: config.gradient_checkpointing,
        ..stored
    };
    if unmatched != *config {
        bail!("--resume: the configuration differs from the run's {}", config_path(out).display());
    }
    let path = inputs_path(out);
    if path.is_file() {
        let recorded: Inputs = uae_data::json::read_json(&path)?;
        if (recorded.labels_bytes, recorded.labels_crc32) != (inputs.labels_bytes, inputs.labels_crc32) {
            bail!(
                "--resume: {} is not the labels file this run was trained on ({}, {} bytes, recorded in {}); \
                 resume with those labels, or start over in a new --out",
                inputs.labels.display(),
                recorded.labels.display(),
                recorded.labels_bytes,
                path.display()
            );
        }
    }
    Ok(())
}

/// Readies `out` for a run that starts as `start` says: a resume must be
/// given what the run was started with; a fresh run must not overwrite
/// checkpoints.
fn prepare_start(out: &Path, start: Start, config: &TrainConfig, inputs: &Inputs, note: &mut dyn FnMut(&str)) -> Result<()> {
    match start {
        Start::Resume(_) => check_resume(out, config, inputs),
        Start::Fresh => {
            if checkpoint::resumable(out)? {
                bail!("{} already holds checkpoints: pass --resume to continue, or choose another --out", out.display());
            }
            let folder = checkpoint::folder(out);
            if folder.exists() {
                // A run killed while saving its first set: nothing to resume.
                std::fs::remove_dir_all(&folder).with_context(|| format!("cannot remove {}", folder.display()))?;
                note("removed an incomplete checkpoint set left by a killed run");
            }
            Ok(())
        }
    }
}

/// Where a resumed run continues, with `per_epoch` batches in an epoch
/// ([`checkpoint::prepare_resume`]); `None` for a fresh run.
fn resume_point(out: &Path, start: Start, per_epoch: usize, note: &mut dyn FnMut(&str)) -> Result<Option<ResumePoint>> {
    let Start::Resume(from) = start else { return Ok(None) };
    let (point, removed) = checkpoint::prepare_resume(out, from, per_epoch)?;
    for line in removed {
        note(&line);
    }
    let set = match point.batches {
        0 => format!("{}/{{model,optim,scheduler}}-{}.bpk", checkpoint::folder(out).display(), point.epochs),
        _ => format!(
            "{}/{{model,optim,scheduler}}-{}.bpk",
            checkpoint::steps_folder(out).display(),
            point.position(per_epoch)
        ),
    };
    note(&format!("resuming {point} from the checked set {set}"));
    Ok(Some(point))
}

/// Copies the base model's configuration and tokenizer files into `base/`.
fn keep_base_files(model_root: &Path, out: &Path) -> Result<()> {
    for name in BASE_FILES {
        let from = model_root.join(name);
        if !from.is_file() {
            continue;
        }
        let to = out.join("base").join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::copy(&from, &to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// The frozen passage encoder's unit vectors of every candidate of
/// `queries`, by passage id: read from `paths.base_index` when the base model
/// built it over this corpus, embedded once with the base otherwise. The
/// passage encoder embeds as it will in use, with the model's own maximum
/// length (`max_length` cuts the texts the model trains on).
fn frozen_vectors(
    paths: &RunPaths,
    data: &DataSet,
    queries: &[crate::data::LabelledQuery],
    device: &Device,
    note: &mut dyn FnMut(&str),
) -> Result<HashMap<String, Vec<f32>>> {
    let base = BiEncoder::load(&paths.model, device, &EncoderOptions::default())?;
    let mut wanted: BTreeMap<&str, &str> = BTreeMap::new();
    for q in queries {
        wanted.extend(q.doc_ids.iter().map(String::as_str).zip(q.passages.iter().map(String::as_str)));
    }
    if let Some(dir) = &paths.base_index {
        match uae_index::corpus_index::open_matching(dir, &base, &paths.model, data.corpus.as_slice()) {
            Ok(store) => {
                // A matching index holds the corpus in order.
                let dim = store.header().dim;
                let found: Option<HashMap<String, Vec<f32>>> = wanted
                    .keys()
                    .map(|&id| Some((id.to_string(), store.vectors()[data.corpus.position(id)? * dim..][..dim].to_vec())))
                    .collect();
                if let Some(found) = found {
                    note(&format!("frozen passage vectors of {} candidates read from {}", found.len(), dir.display()));
                    return Ok(found);
                }
            }
            Err(e) => note(&format!("the base index is not used for the frozen passages: {e:#}")),
        }
    }
    let texts: Vec<String> = wanted.values().map(|t| t.to_string()).collect();
    let vectors = base.embed(&texts, TextRole::Passage, 4096, |_| {})?.vectors;
    note(&format!("embedded {} candidates with the frozen passage encoder", texts.len()));
    Ok(wanted
        .keys()
        .zip(vectors)
        .map(|(id, mut v)| {
            uae_index::store::normalize(&mut v);
            (id.to_string(), v)
        })
        .collect())
}

/// How many queries' targets `softmax(U / tau_u)` have collapsed onto one
/// candidate (the guard's rule, see [`crate::loss::TargetReport`]).
fn one_hot_targets(queries: &[crate::data::LabelledQuery], tau_u: f64) -> usize {
    queries.iter().filter(|q| crate::loss::is_one_hot(&q.utilities, tau_u)).count()
}

/// The warm-up then decay schedule over `total` optimiser steps.
fn schedule(config: &TrainConfig, total: usize) -> Result<burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler> {
    let total = total.max(1);
    let warmup = ((total as f64 * config.warmup_ratio).ceil() as usize).min(total - 1);
    let decay_steps = total - warmup;
    let decay = match config.decay {
        Decay::Linear => LrSchedulerConfig::Linear(LinearLrSchedulerConfig::new(config.lr, 0.0, decay_steps)),
        Decay::Cosine => LrSchedulerConfig::Cosine(CosineAnnealingLrSchedulerConfig::new(config.lr, decay_steps)),
    };
    let scheduler = if warmup == 0 {
        SequentialLrSchedulerConfig::new(vec![decay], vec![]).init()
    } else {
        // Linear warm-up from lr / warmup (a scheduler may not start at 0).
        let warm = LrSchedulerConfig::Linear(LinearLrSchedulerConfig::new(config.lr / warmup as f64, config.lr, warmup));
        SequentialLrSchedulerConfig::new(vec![warm, decay], vec![warmup]).init()
    };
    scheduler.map_err(|e| anyhow::anyhow!("invalid learning-rate schedule: {e}"))
}

/// The judged held-out queries model selection ranks the corpus for: the
/// `select_split` of the data set when it has one, else the validation
/// share of the labelled training queries; `None` when there are neither.
fn dev_queries(
    paths: &RunPaths,
    config: &TrainConfig,
    data: &DataSet,
    valid: &[crate::data::LabelledQuery],
) -> Result<Option<DevQueries>> {
    if let Some(split) = &config.select_split
        && paths.data.join("qrels").join(format!("{split}.tsv")).is_file()
    {
        let with_split = DataSet::load(&paths.data, &[split.as_str()])?;
        let qrels = with_split.qrels[split].clone();
        let queries: Vec<uae_data::Query> = with_split
            .queries_of_split(split)?
            .into_iter()
            .filter(|q| qrels.relevant(&q.id).next().is_some())
            .cloned()
            .collect();
        if !queries.is_empty() {
            return Ok(Some(DevQueries { source: format!("the {split} split"), queries, qrels }));
        }
    }
    let Some(train_qrels) = config.split.as_ref().and_then(|s| data.qrels.get(s)) else { return Ok(None) };
    let queries: Vec<uae_data::Query> = valid
        .iter()
        .filter(|q| train_qrels.relevant(&q.query_id).next().is_some())
        .filter_map(|q| data.queries.get(&q.query_id).cloned())
        .collect();
    if queries.is_empty() {
        return Ok(None);
    }
    let qrels = queries.iter().filter_map(|q| Some((q.id.clone(), train_qrels.get(&q.id)?.clone()))).collect();
    Ok(Some(DevQueries { source: "the held-out training queries".into(), queries, qrels }))
}

/// Runs (or, with [`Start::Resume`], continues) a distillation run and writes the
/// exported weights to `<out>/model.safetensors`. With `config.select` and
/// an `evaluator`, the base model and every epoch are scored on held-out
/// retrieval and the best is exported (the base weights, unchanged, when
/// nothing beats them). What loading the labels found (skips, the teacher's
/// agreement with the judgements, how graded the targets are) and what
/// selection chose go to `note`, one line each. Progress shows on Burn's
/// dashboard when standard output is a terminal, else as metric lines on
/// `lines`.
pub fn train(
    paths: &RunPaths,
    config: &TrainConfig,
    start: Start,
    device: &Device,
    evaluator: Option<Box<dyn DevEvaluator>>,
    lines: MetricLines,
    note: &mut dyn FnMut(&str),
) -> Result<TrainSummary> {
    config.validate()?;
    let out = &paths.out;
    let inputs = Inputs::of(paths)?;
    prepare_start(out, start, config, &inputs, note)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    uae_data::atomic::write_file_atomically(&config_path(out), serde_json::to_string_pretty(config)?.as_bytes())?;
    uae_data::atomic::write_file_atomically(&inputs_path(out), serde_json::to_string_pretty(&inputs)?.as_bytes())?;
    device.seed(config.seed);

    let options = EncoderOptions { max_length: config.max_length, ..Default::default() };
    // Loaded on the autodiff device so that its parameters are tracked; the
    // Learner keeps them tracked when it forks the model.
    let training_device = match config.gradient_checkpointing {
        true => device.clone().autodiff().gradient_checkpointing(),
        false => device.clone().autodiff(),
    };
    let encoder = BiEncoder::load(&paths.model, &training_device, &options)?;
    if encoder.passage_embedder.is_some() {
        bail!(
            "{} has a separate passage encoder ({}/); train from the symmetric model it was made from",
            paths.model,
            uae_model::encoder::PASSAGE_DIR
        );
    }
    keep_base_files(encoder.dir.root(), out)?;
    if config.query_only {
        let from = encoder.dir.file("model.safetensors");
        let to = out.join("base").join("model.safetensors");
        std::fs::copy(&from, &to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }

    let splits: Vec<&str> = config.split.iter().map(String::as_str).collect();
    let data = DataSet::load(&paths.data, &splits)?;
    let (mut queries, load) = load_labelled(&paths.labels, &data, config.split.as_deref(), &config.sampling)?;
    note(&load.to_string());
    for q in &mut queries {
        q.utilities = config.utility_norm.apply(&q.utilities);
    }
    if config.loss.kind.needs_utilities() {
        let stats = TargetStats::of(queries.iter().map(|q| q.utilities.as_slice()), config.loss.tau_u);
        note(&format!("{stats} (utility_norm {}, tau_u {})", config.utility_norm, config.loss.tau_u));
    }
    let gold = teacher_top_is_gold(&queries);
    if config.split.is_some() {
        note(&format!("teacher's best candidate vs the judgements: {gold:?}"));
    }
    let one_hot = one_hot_targets(&queries, config.loss.tau_u);
    if one_hot > 0 && config.loss.kind.needs_utilities() {
        note(&format!(
            "warning: {one_hot} of {} queries have a one-hot teacher target at tau_u = {}; \
             the order of their other candidates is lost (raise tau_u to keep it)",
            queries.len(),
            config.loss.tau_u
        ));
    }
    let frozen =
        if config.query_only { Some(frozen_vectors(paths, &data, &queries, device, note)?) } else { None };
    let (train_set, valid_set) = split_train_valid(queries, config.valid_share, config.seed)?;
    let prefixes = Prefixes { query: encoder.sentence.query_prefix.clone(), passage: encoder.sentence.passage_prefix.clone() };
    let (train_items, cut_train) = tokenise(&train_set, &encoder.tokenizer, &prefixes, frozen.as_ref())?;
    let (valid_items, cut_valid) = tokenise(&valid_set, &encoder.tokenizer, &prefixes, frozen.as_ref())?;
    let (train_queries, valid_queries) = (train_items.len(), valid_items.len());
    let batches = train_queries.div_ceil(config.batch_size);
    let resumed_from = resume_point(out, start, batches, note)?;

    let batcher = DistillBatcher { pad_id: encoder.config.pad_token_id as u32 };
    let train_loader = DataLoaderBuilder::new(batcher.clone())
        .batch_size(config.batch_size)
        .set_device(device.clone())
        .build(EpochShuffled::new(train_items, config.seed, resumed_from.map_or(0, |p| p.epochs)));
    let valid_loader = DataLoaderBuilder::new(batcher)
        .batch_size(config.batch_size)
        .set_device(device.clone())
        .build(InMemDataset::new(valid_items));

    let steps = batches.div_ceil(config.grad_accumulation) * config.epochs;
    let optimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay)
        .with_epsilon(1e-8)
        .with_grad_clipping(config.max_grad_norm.map(GradientClippingConfig::Norm))
        .init();
    let interrupter = Interrupter::new();
    let strategy = StepCheckpointing {
        device: training_device,
        every: config.checkpoint_every,
        out: out.clone(),
        per_epoch: batches,
        resume: resumed_from,
    };
    let failure = StepFailure::new(interrupter.clone());
    let selection = match (config.select, evaluator) {
        (true, Some(evaluator)) => match dev_queries(paths, config, &data, &valid_set)? {
            Some(dev) => {
                let resumed = match resumed_from {
                    Some(point) => {
                        let path = crate::select::summary_path(out);
                        let summary: SelectionSummary = uae_data::json::read_json(&path)?;
                        Some((summary, point.position(batches)))
                    }
                    None => None,
                };
                let options = SelectOptions {
                    metric: config.select_metric,
                    eval_every: config.eval_every,
                    frozen_passages: config.query_only,
                };
                let selection = Selection::new(evaluator, dev, options, out, resumed, interrupter.clone());
                selection.evaluate_base(&encoder.embedder.valid())?;
                Some(selection)
            }
            None => {
                note("model selection is off: the data set has no dev split and no training query is held out (valid_share)");
                None
            }
        },
        (true, None) => {
            note("model selection is off: no dev evaluator was given");
            None
        }
        (false, _) => None,
    };
    let model = DistillModel {
        embedder: encoder.embedder,
        loss: config.loss,
        failure: failure.clone(),
        selection: selection.clone(),
        grad_cache: (config.grad_cache > 0).then_some(config.grad_cache),
    };
    let learner = Learner::new(model, optimizer, schedule(config, steps)?);

    let [model_checkpointer, optim_checkpointer, scheduler_checkpointer] = SafeCheckpointer::set(out)?;
    let mut training = SupervisedTraining::new(out, train_loader, valid_loader)
        .num_epochs(config.epochs)
        .metric_train_numeric(LossMetric::new())
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train_numeric(ExamplesPerSecond::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_valid_numeric(PoolMetric::new(PoolStat::RecallAt1))
        .metric_valid_numeric(PoolMetric::new(PoolStat::Mrr))
        .metric_valid_numeric(PoolMetric::new(PoolStat::TeacherRecallAt1))
        .metric_valid_numeric(PoolMetric::new(PoolStat::Kl))
        .metric_valid_numeric(DevMetric::new(config.select_metric))
        .grads_accumulation(config.grad_accumulation)
        .with_interrupter(interrupter.clone())
        .with_training_strategy(TrainingStrategy::Custom(std::sync::Arc::new(strategy)))
        .with_custom_checkpointers(model_checkpointer, optim_checkpointer, scheduler_checkpointer)
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(KEPT_EPOCH_SETS));
    if let Some(n_epochs) = config.early_stopping_patience {
        training = training.early_stopping(MetricEarlyStoppingStrategy::new(
            &LossMetric::new(),
            Aggregate::Mean,
            Direction::Lowest,
            Split::Valid,
            StoppingCondition::NoImprovementSince { n_epochs },
        ));
    }
    if !std::io::stdout().is_terminal() {
        training = training.renderer(Box::new(LineRenderer::new(config.log_every, lines)));
    }
    // The strategy loads a set saved within an epoch itself.
    if let Some(ResumePoint { epochs, batches: 0 }) = resumed_from
        && epochs > 0
    {
        training = training.checkpoint(epochs);
    }
    let result = training.launch(learner);
    if let Some(failure) = failure.first() {
        bail!("{}: training stopped: {failure}", paths.labels.display());
    }
    if let Some(error) = interrupter.error() {
        bail!("{}: training stopped: {error}", out.display());
    }
    // A finished run has its last epoch's set, so the sets within epochs are
    // spent; a run the user stopped keeps them for --resume.
    let steps_folder = checkpoint::steps_folder(out);
    if !interrupter.should_stop() && steps_folder.exists() {
        std::fs::remove_dir_all(&steps_folder).with_context(|| format!("cannot remove {}", steps_folder.display()))?;
    }
    let weights = out.join("model.safetensors");
    let trained = result.model.embedder.valid();
    let summary = match &selection {
        Some(selection) => {
            let base_weights = encoder.dir.file("model.safetensors");
            let summary = selection.export(&trained, &encoder.config, &base_weights, &config.merge_base, &weights, device)?;
            note(&summary.to_string());
            Some(summary)
        }
        None => {
            trained.bert.save(&weights)?;
            None
        }
    };
    Ok(TrainSummary {
        load,
        train_queries,
        valid_queries,
        truncated: cut_train + cut_valid,
        resumed_from,
        weights,
        selection: summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_build_for_both_decays() {
        for decay in [Decay::Linear, Decay::Cosine] {
            for warmup_ratio in [0.0, 0.3] {
                let config = TrainConfig { decay, warmup_ratio, ..TrainConfig::default() };
                assert!(schedule(&config, 10).is_ok(), "{decay:?} {warmup_ratio}");
                assert!(schedule(&config, 1).is_ok(), "{decay:?} {warmup_ratio}");
            }
        }
    }

    #[test]
    fn documented_example_parses() {
        let doc = include_str!("train.rs");
        let start = doc.find("//! ```json").unwrap();
        let end = start + doc[start..].find("//! ```\n").unwrap();
        let json: String = doc[start..end].lines().skip(1).map(|l| l.trim_start_matches("//!")).collect();
        let config: TrainConfig = serde_json::from_str(&json).unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn toml_config_files_read_like_json_ones() {
        let dir = std::env::temp_dir().join(format!("uae-train-toml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("train.toml");
        std::fs::write(&path, "epochs = 3\nlr = 1e-4\ndecay = \"cosine\"\n\n[loss]\nkind = \"kl\"\n").unwrap();
        let config = TrainConfig::from_file(&path).unwrap();
        assert_eq!((config.epochs, config.lr), (3, 1e-4));
        let json: TrainConfig = serde_json::from_str(r#"{"epochs": 3, "lr": 1e-4, "decay": "cosine", "loss": {"kind": "kl"}}"#).unwrap();
        assert_eq!(serde_json::to_value(&config).unwrap(), serde_json::to_value(&json).unwrap());
        std::fs::write(&path, "epochs = 3\nepoch = 1\n").unwrap();
        let err = format!("{:#}", TrainConfig::from_file(&path).unwrap_err());
        assert!(err.contains("train.toml") && err.contains("epoch"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_json_rejects_unknown_fields_and_bad_values() {
        assert!(serde_json::from_str::<TrainConfig>(r#"{"epoch": 1}"#).is_err());
        let config: TrainConfig = serde_json::from_str(r#"{"loss": {"kind": "kl"}, "decay": "cosine"}"#).unwrap();
        assert_eq!(config.loss.kind, crate::loss::LossKind::Kl);
        assert!(TrainConfig { lr: 0.0, ..TrainConfig::default() }.validate().is_err());
        assert!(TrainConfig { warmup_ratio: 1.0, ..TrainConfig::default() }.validate().is_err());
    }
}
