//! `uae eval`: evaluation commands. Without a subcommand it compares
//! retrieval systems end to end and writes a report (`crate::compare`);
//! `uae eval metrics` scores a TREC run against qrels with the metrics of
//! `uae_index::metrics`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};
use uae_index::metrics::{self, DEFAULT_KS};
use uae_index::trec::{Qrels, Run};

/// Arguments of `uae eval`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    compare: crate::compare::CompareArgs,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Ranking metrics (recall, P, MRR, MAP, nDCG at 1, 3, 5, 10, 100) of a
    /// TREC run, averaged over the queries with a relevant judgement.
    Metrics(MetricsArgs),
}

#[derive(Args)]
struct MetricsArgs {
    /// Relevance judgements: TREC qrels (`qid 0 docid rel`) or BEIR TSV
    /// (`query-id corpus-id score`).
    #[arg(long)]
    qrels: PathBuf,
    /// TREC run file (`qid Q0 docid rank score tag`); the rank column is ignored.
    #[arg(long)]
    run: PathBuf,
    /// Print one JSON object mapping metric names to means.
    #[arg(long)]
    json: bool,
}

/// Runs `uae eval`; `device` is asked for only by the comparison.
pub fn run(args: EvalArgs, device: impl FnOnce() -> Result<Device>) -> Result<()> {
    match args.command {
        Some(EvalCommand::Metrics(args)) => run_metrics(args),
        None => crate::compare::run(args.compare, &device()?),
    }
}

fn run_metrics(args: MetricsArgs) -> Result<()> {
    let qrels = Qrels::read(&args.qrels)?;
    let run = Run::read(&args.run)?;
    let report = metrics::evaluate(&qrels, &run, &DEFAULT_KS);
    if report.per_query.is_empty() {
        bail!(
            "{}: no query has a relevant judgement (grade >= 1)",
            args.qrels.display()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&report.mean)?);
    } else {
        println!("{:<12}value", "metric");
        for name in metrics::metric_names(&DEFAULT_KS) {
            println!("{name:<12}{:.4}", report.mean[&name]);
        }
        eprintln!("averaged over {} queries", report.per_query.len());
    }
    Ok(())
}
