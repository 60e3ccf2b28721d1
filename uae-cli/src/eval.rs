//! `uae eval`: evaluation commands. Without a subcommand it compares
//! retrieval systems end to end and writes a report
//! (`uae_eval::compare`); `uae eval metrics` scores a TREC run against qrels
//! with the metrics of `uae_eval::metrics`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};
use uae_data::json::read_json;
use uae_data::lock::Lock;
use uae_data::{Qrels, Run};
use uae_eval::compare::{CompareOptions, compare};
use uae_eval::metrics::{self, DEFAULT_KS};
use uae_eval::significance::TestOptions;

use crate::progress::Bars;
use crate::stdout;

/// Arguments of `uae eval`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    compare: CompareArgs,
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
        None => run_compare(args.compare, &device()?),
    }
}

/// Arguments of the comparison (`uae eval` without a subcommand).
#[derive(Args)]
pub struct CompareArgs {
    /// Data set directory in the BEIR layout; queries need "answers" for token F1.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The split evaluated (qrels/<split>.tsv).
    #[arg(long, default_value = "test")]
    split: String,
    /// A bi-encoder as NAME=PATH (or PATH, named after its folder); repeat
    /// for more rows. The first is the base encoder LLM re-ranking starts
    /// from; the last is the student the paper's goals are checked for.
    /// Models given under one NAME are seeds of one system (the same recipe
    /// trained with other seeds): its row and tests use each query's mean
    /// over them, and a "Seeds" section lists each one.
    #[arg(long = "model")]
    models: Vec<String>,
    /// Where each model's corpus index is kept (`<DIR>/<NAME>`), reused
    /// when it matches the model and corpus [default: <report>/indexes].
    #[arg(long)]
    indexes: Option<PathBuf>,
    /// Re-rank the base encoder's top passages with this LLM (GGUF file,
    /// Hugging Face directory or hub id) at query time.
    #[arg(long)]
    rerank_teacher: Option<String>,
    /// Passages the LLM re-ranks per query.
    #[arg(long, default_value_t = 10)]
    rerank_k: usize,
    /// The LLM that answers from each system's top-1 passage, for token F1
    /// and exact match [default: the --rerank-teacher].
    #[arg(long)]
    generator: Option<String>,
    /// Most tokens per generated answer.
    #[arg(long, default_value_t = 48)]
    max_new_tokens: usize,
    /// Teacher passages (re-ranking and answering) are cut to this many tokens.
    #[arg(long, default_value_t = 256)]
    max_passage_tokens: usize,
    /// A labels file of `uae label`: reports how often the teacher's top
    /// candidate is a gold passage (judged by --labels-split).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The split whose qrels judge --labels.
    #[arg(long, default_value = "train")]
    labels_split: String,
    /// A training run as NAME=DIR whose metric logs become training curves; repeatable.
    #[arg(long = "run")]
    runs: Vec<String>,
    /// Test every system against this one (a system name) for
    /// significance; repeat for more [default: the base encoder].
    #[arg(long)]
    against: Vec<String>,
    /// Permutations of the randomization test and bootstrap resamples.
    #[arg(long, default_value_t = 10_000)]
    test_resamples: usize,
    /// Seed of the significance tests.
    #[arg(long, default_value_t = 42)]
    test_seed: u64,
    /// Passages ranked per query (the depth of MAP).
    #[arg(long, default_value_t = 100)]
    k: usize,
    /// Padded tokens per forward pass when embedding the corpus.
    #[arg(long, default_value_t = 1024)]
    batch_tokens: usize,
    /// A JSON file stored in the report's configuration as "pipeline" (the
    /// quickstart records its stages there).
    #[arg(long)]
    pipeline_config: Option<PathBuf>,
    /// The report directory (report.md, report.json, metrics.png,
    /// training.png, answers.jsonl, runs/).
    #[arg(long)]
    report: Option<PathBuf>,
}

fn run_compare(args: CompareArgs, device: &Device) -> Result<()> {
    let (Some(data), Some(report)) = (args.data, args.report) else {
        bail!("`uae eval` needs --data and --report (or a subcommand such as `uae eval metrics`)");
    };
    // One comparison writes a report folder at a time (the indexes it
    // builds are locked one by one as they are written).
    let _lock = Lock::acquire(&report)?;
    let pipeline = args.pipeline_config.as_deref().map(read_json::<serde_json::Value>).transpose()?;
    let options = CompareOptions {
        data,
        split: args.split,
        models: args.models,
        indexes: args.indexes,
        rerank_teacher: args.rerank_teacher,
        rerank_k: args.rerank_k,
        generator: args.generator,
        max_new_tokens: args.max_new_tokens,
        max_passage_tokens: args.max_passage_tokens,
        labels: args.labels,
        labels_split: args.labels_split,
        runs: args.runs,
        against: args.against,
        tests: TestOptions { resamples: args.test_resamples, seed: args.test_seed, ..TestOptions::default() },
        k: args.k,
        batch_tokens: args.batch_tokens,
        pipeline,
        command: std::env::args().collect(),
        report,
    };
    let report = compare(&options, device, &Bars::default())?;
    stdout::print(&report.markdown())?;
    eprintln!("report written to {}", options.report.display());
    Ok(())
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
        stdout::print(&format!("{}\n", serde_json::to_string(&report.mean)?))?;
    } else {
        let mut table = format!("{:<12}value\n", "metric");
        for name in metrics::metric_names(&DEFAULT_KS) {
            table.push_str(&format!("{name:<12}{:.4}\n", report.mean[&name]));
        }
        stdout::print(&table)?;
        eprintln!("averaged over {} queries", report.per_query.len());
    }
    let absent = report.per_query.keys().filter(|q| run.ranking(q).is_empty()).count();
    if absent > 0 {
        eprintln!("note: judged queries missing from {} (they score 0): {absent}", args.run.display());
    }
    let unjudged = run.queries().filter(|q| !report.per_query.contains_key(*q)).count();
    if unjudged > 0 {
        eprintln!("note: queries of {} without a relevant judgement (not scored): {unjudged}", args.run.display());
    }
    Ok(())
}
