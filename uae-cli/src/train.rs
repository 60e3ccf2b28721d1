//! `uae train`: distil a labelled data set's teacher utilities into a
//! bi-encoder on Burn's Learner (see `uae_train::train`).
//!
//! The configuration is a TOML or JSON file (`--config train.toml`, any
//! subset of `uae_train::train::TrainConfig`'s fields).
//! Flags override the file.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use clap::Args;
use uae_data::lock::{Lock, claim_folder};
use uae_eval::dev::DevRetrieval;
use uae_train::loss::{LossKind, UtilityNorm};
use uae_train::select::{DevEvaluator, SelectMetric};
use uae_train::strategy::CheckpointEvery;
use uae_train::renderer::MetricLines;
use uae_train::train::{RunPaths, Start, TrainConfig, config_path, train};

use crate::stdout;

/// Arguments of `uae train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The base bi-encoder: a model directory in the Hugging Face layout, or a hub id.
    #[arg(long)]
    model: String,
    /// The BEIR data folder the labels were made from (corpus.jsonl, queries.jsonl, qrels/).
    #[arg(long)]
    data: PathBuf,
    /// labels.jsonl written by `uae label`.
    #[arg(long)]
    labels: PathBuf,
    /// The run directory (checkpoints, logs, final weights): a new or empty
    /// folder, or an earlier run's.
    #[arg(long)]
    out: PathBuf,
    /// Write the run into --out even when it is a folder of other files
    /// (any of the run's own file names there is replaced).
    #[arg(long)]
    force: bool,
    /// The objective: um-infonce, infonce, kl or stable-distill.
    #[arg(long)]
    loss: Option<LossKind>,
    /// A training configuration, TOML (`.toml`) or JSON: any subset of the
    /// options. With --resume and no --config, the run's stored one is used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from the run's newest complete checkpoint set, of an epoch or
    /// saved within one (each file is checked against the size and CRC-32
    /// recorded when it was written).
    #[arg(long)]
    resume: bool,
    /// Continue after this epoch's checkpoint set instead of the newest
    /// (implies --resume; a run keeps the sets of its two newest epochs);
    /// later sets are removed.
    #[arg(long, value_name = "EPOCH")]
    resume_from: Option<usize>,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the queries per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Override the peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Override the candidates per query (K).
    #[arg(long)]
    candidates: Option<usize>,
    /// Override the seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the teacher temperature (softmax(U / tau_u)).
    #[arg(long)]
    tau_u: Option<f64>,
    /// Override the weight of an InfoNCE-on-gold term added to the loss.
    #[arg(long)]
    infonce_weight: Option<f64>,
    /// Override the per-query normalisation of utilities: none, zscore or minmax.
    #[arg(long)]
    utility_norm: Option<UtilityNorm>,
    /// Override the metric model selection keeps the best by: map, recall@1 or ndcg@10.
    #[arg(long)]
    select_metric: Option<SelectMetric>,
    /// Also evaluate on the dev queries every N training batches.
    #[arg(long)]
    eval_every: Option<usize>,
    /// Save the run's state within epochs every N optimiser steps, every
    /// Xm minutes (5m unless the config says otherwise), or 0 for after
    /// each epoch only; --resume continues from the newest save.
    #[arg(long, value_name = "N|Xm")]
    checkpoint_every: Option<CheckpointEvery>,
    /// After selection, also try the chosen weights interpolated with the
    /// base at this share ALPHA (alpha * tuned + (1 - alpha) * base), chosen
    /// on dev like the epochs; repeat for more shares.
    #[arg(long = "merge-base")]
    merge_base: Vec<f64>,
    /// A corpus index of the base model (`uae index build`) whose vectors
    /// model selection (and, with --query-only, training) reuses instead of
    /// embedding the corpus.
    #[arg(long)]
    base_index: Option<PathBuf>,
    /// Train the query encoder only: passages keep the base model's vectors,
    /// so the base's corpus index stays valid and is searched by the export.
    #[arg(long)]
    query_only: bool,
    /// Encode each step's texts N at a time with cached gradients
    /// (GradCache; the config's default 32): the same training in less
    /// memory; 0 encodes a batch in one graph.
    #[arg(long, value_name = "N")]
    grad_cache: Option<usize>,
    /// Export the last epoch's weights without evaluating on dev retrieval.
    #[arg(long)]
    no_select: bool,
}

/// Runs `uae train`.
pub fn run(args: TrainArgs, device: &Device) -> Result<()> {
    let start = match (args.resume, args.resume_from) {
        (_, Some(epoch)) => Start::Resume(Some(epoch)),
        (true, None) => Start::Resume(None),
        (false, None) => Start::Fresh,
    };
    // Held until the run ends; `uae export` takes it too, so that it never
    // reads a run that is still being written.
    let _lock = Lock::acquire(&args.out)?;
    if start == Start::Fresh {
        claim_folder(&args.out, &config_path(&args.out), "a training run", args.force)?;
    }
    let mut config = match (&args.config, start != Start::Fresh) {
        (Some(path), _) => TrainConfig::from_file(path)?,
        (None, true) => TrainConfig::from_file(&config_path(&args.out))?,
        (None, false) => TrainConfig::default(),
    };
    if let Some(kind) = args.loss {
        config.loss.kind = kind;
    }
    if let Some(epochs) = args.epochs {
        config.epochs = epochs;
    }
    if let Some(batch_size) = args.batch_size {
        config.batch_size = batch_size;
    }
    if let Some(lr) = args.lr {
        config.lr = lr;
    }
    if let Some(k) = args.candidates {
        config.sampling.candidates = Some(k);
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(tau_u) = args.tau_u {
        config.loss.tau_u = tau_u;
    }
    if let Some(weight) = args.infonce_weight {
        config.loss.infonce_weight = weight;
    }
    if let Some(norm) = args.utility_norm {
        config.utility_norm = norm;
    }
    if let Some(metric) = args.select_metric {
        config.select_metric = metric;
    }
    if let Some(every) = args.checkpoint_every {
        config.checkpoint_every = every;
    }
    if args.eval_every.is_some() {
        config.eval_every = args.eval_every;
    }
    if !args.merge_base.is_empty() {
        config.merge_base = args.merge_base.clone();
    }
    if args.query_only {
        config.query_only = true;
    }
    if let Some(chunk) = args.grad_cache {
        config.grad_cache = chunk;
    }
    if args.no_select {
        config.select = false;
    }
    let evaluator: Option<Box<dyn DevEvaluator>> = if config.select {
        Some(Box::new(DevRetrieval::new(&args.data, &args.model, args.base_index.as_deref(), device)?))
    } else {
        None
    };
    let paths = RunPaths { model: args.model, data: args.data, labels: args.labels, out: args.out, base_index: args.base_index };
    let summary = train(&paths, &config, start, device, evaluator, MetricLines::Stdout, &mut |line| {
        // A closed stdout must not stop training (as in uae_train's renderer).
        let _ = stdout::print(&format!("{line}\n"));
    })?;
    eprintln!(
        "trained on {} queries, validated on {} ({} texts truncated); weights in {}",
        summary.train_queries,
        summary.valid_queries,
        summary.truncated,
        summary.weights.display()
    );
    Ok(())
}
