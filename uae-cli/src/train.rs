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
use uae_train::loss::LossKind;
use uae_train::train::{RunPaths, TrainConfig, config_path, train};

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
    /// The run directory (checkpoints, logs, final weights).
    #[arg(long)]
    out: PathBuf,
    /// The objective: um-infonce, infonce, kl or stable-distill.
    #[arg(long)]
    loss: Option<LossKind>,
    /// A training configuration, TOML (`.toml`) or JSON: any subset of the
    /// options. With --resume and no --config, the run's stored one is used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from the run's last checkpoint.
    #[arg(long)]
    resume: bool,
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
}

/// Runs `uae train`.
pub fn run(args: TrainArgs, device: &Device) -> Result<()> {
    let mut config = match (&args.config, args.resume) {
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
    let paths = RunPaths { model: args.model, data: args.data, labels: args.labels, out: args.out };
    let summary = train(&paths, &config, args.resume, device, &mut |line| println!("{line}"))?;
    if let Some(epoch) = summary.resumed_from {
        eprintln!("resumed after epoch {epoch}");
    }
    eprintln!(
        "trained on {} queries, validated on {} ({} texts truncated); weights in {}",
        summary.train_queries,
        summary.valid_queries,
        summary.truncated,
        summary.weights.display()
    );
    Ok(())
}
