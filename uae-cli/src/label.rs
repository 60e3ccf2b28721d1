//! `uae label`: perplexity-reduction utilities of each query's candidates,
//! appended per query so that a killed run resumes. The labels file is
//! locked for the whole run: a second `uae label` on it would label every
//! query again into the same file. `uae label merge` joins the shards of
//! `--shard i/n` runs.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use clap::{Args, Subcommand};
use uae_data::{DataSet, Shard};
use uae_data::interchange::{LabelFormat, export_labels};
use uae_data::lock::Lock;
use uae_teacher::label::{LabelOptions, label, merge};
use uae_teacher::prompt::{Utility, UtilityPrompt};
use uae_teacher::teacher::Teacher;

use crate::progress;

/// `uae label`: a labelling run, or `uae label merge`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LabelCommand {
    #[command(subcommand)]
    action: Option<LabelAction>,
    #[command(flatten)]
    run: Option<LabelArgs>,
}

/// What `uae label` does besides labelling.
#[derive(Subcommand)]
enum LabelAction {
    /// Merge the label shards of `uae label --shard i/n` runs into one file,
    /// checking that they come from one run and that none is missing,
    /// unfinished or overlapping.
    Merge(MergeArgs),
    /// Write labels in another trainer's format: FlagEmbedding's
    /// fine-tuning JSONL (query, pos, neg, pos_scores, neg_scores) or a
    /// sentence-transformers distillation data set (query, positive,
    /// negative_1..k, label).
    Export(ExportArgs),
}

/// Arguments of `uae label export`.
#[derive(Args)]
struct ExportArgs {
    /// The labels file.
    #[arg(long)]
    labels: PathBuf,
    /// The data set the labels refer to (BEIR layout).
    #[arg(long)]
    data: PathBuf,
    /// `flagembedding` or `sentence-transformers`.
    #[arg(long)]
    format: LabelFormat,
    /// The JSONL file to write (atomically).
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `uae label merge`.
#[derive(Args)]
struct MergeArgs {
    /// The merged labels file (written atomically, with its sidecar).
    #[arg(long)]
    out: PathBuf,
    /// Shard files, each with its `.meta.json` sidecar beside it.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
}

/// Arguments of a labelling run.
#[derive(Args)]
pub struct LabelArgs {
    /// The teacher: a GGUF file, a Hugging Face directory, a hub id, or a
    /// served one, `openai:http://HOST:PORT/v1#MODEL` (MODEL is the served
    /// name and where its tokenizer is found; docs/scale.md).
    #[arg(long)]
    teacher: String,
    /// Data set directory in the BEIR layout (corpus.jsonl, queries.jsonl with "answers", qrels/).
    #[arg(long)]
    data: PathBuf,
    /// Candidates file with lines {"query_id", "doc_ids": [...]} (`uae mine` writes it).
    #[arg(long)]
    candidates: PathBuf,
    /// Labels output, appended to and resumed: lines {"query_id", "doc_ids", "utilities", "logp_with", "logp_without"}.
    #[arg(long)]
    out: PathBuf,
    /// Label only the queries at positions i mod n of the candidates file, e.g. 0/4.
    #[arg(long)]
    shard: Option<Shard>,
    /// Padded tokens per teacher forward pass.
    #[arg(long, default_value_t = 4096)]
    batch_tokens: usize,
    /// Cut passages longer than this many teacher tokens (counted in the report).
    #[arg(long, default_value_t = 512)]
    max_passage_tokens: usize,
    /// Queries scored together, their prompts batched by length; a kill
    /// loses about one step of teacher work.
    #[arg(long, default_value_t = 8)]
    queries_per_step: usize,
    /// The text scored: the gold `answer` (perplexity reduction) or the
    /// `question` itself (query likelihood; needs no answers).
    #[arg(long, default_value_t = Utility::Answer)]
    utility: Utility,
    /// Prompt with a passage; must contain {passage}, and {question} for the
    /// answer utility [default: the utility's, see docs/method.md].
    #[arg(long)]
    prompt_with_passage: Option<String>,
    /// Prompt without a passage; must contain {question} for the answer
    /// utility [default: the utility's].
    #[arg(long)]
    prompt_without_passage: Option<String>,
    /// System message for chat models.
    #[arg(long)]
    system: Option<String>,
    /// Use plain-text prompts even when the teacher has a chat template.
    #[arg(long)]
    no_chat_template: bool,
}

/// Runs `uae label` or `uae label merge`.
pub fn run(command: LabelCommand, device: &Device) -> Result<()> {
    match (command.action, command.run) {
        (Some(LabelAction::Merge(args)), _) => run_merge(args),
        (Some(LabelAction::Export(args)), _) => run_export(args),
        (None, Some(args)) => run_label(args, device),
        (None, None) => anyhow::bail!("uae label needs --teacher, --data, --candidates and --out (or the merge subcommand); see uae label --help"),
    }
}

fn run_merge(args: MergeArgs) -> Result<()> {
    let _lock = Lock::acquire(&args.out)?;
    let report = merge(&args.shards, &args.out)?;
    eprintln!(
        "merged {} shards into {}: {} queries labelled of {} expected",
        report.shards,
        args.out.display(),
        report.queries,
        report.expected
    );
    Ok(())
}

fn run_export(args: ExportArgs) -> Result<()> {
    let data = DataSet::load(&args.data, &[])?;
    let report = export_labels(&data, &args.labels, args.format, &args.out)?;
    eprintln!(
        "wrote {} queries with {} negatives each at most to {}{}",
        report.written,
        report.negatives,
        args.out.display(),
        if report.skipped > 0 { format!("; skipped {} (a utility that is not a number, or one candidate)", report.skipped) } else { String::new() }
    );
    Ok(())
}

fn run_label(args: LabelArgs, device: &Device) -> Result<()> {
    let _lock = Lock::acquire(&args.out)?;
    let data = DataSet::load(&args.data, &[])?;
    let lm = Teacher::load(&args.teacher, device)?;
    let options = LabelOptions {
        prompt: {
            let defaults = UtilityPrompt::of(args.utility);
            UtilityPrompt {
                with_passage: args.prompt_with_passage.unwrap_or(defaults.with_passage),
                without_passage: args.prompt_without_passage.unwrap_or(defaults.without_passage),
                system: args.system,
                use_chat_template: !args.no_chat_template,
                ..defaults
            }
        },
        batch_tokens: args.batch_tokens,
        max_passage_tokens: args.max_passage_tokens,
        shard: args.shard,
        queries_per_step: args.queries_per_step,
    };
    let bar = progress::bar(0, "queries");
    let start = std::time::Instant::now();
    let report = label(&lm, &data, &args.data, &args.candidates, &args.out, &options, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        let seconds = start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{:.0} tokens/s", p.tokens as f64 / seconds));
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "labelled {} queries in {seconds:.1} s ({:.2} queries/s, {:.0} tokens/s); {} already done",
        report.labelled,
        report.labelled as f64 / seconds.max(1e-9),
        report.tokens as f64 / seconds.max(1e-9),
        report.resumed
    );
    if report.repaired_torn_line {
        eprintln!("note: removed a torn last line left by an interrupted run");
    }
    if !report.no_answer.is_empty() {
        eprintln!(
            "warning: skipped {} queries without a gold answer: {}",
            report.no_answer.len(),
            report.no_answer.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if report.truncated_passages > 0 {
        eprintln!("warning: {} passages were cut to {} tokens", report.truncated_passages, options.max_passage_tokens);
    }
    if report.empty_passages > 0 {
        eprintln!("warning: {} candidates have an empty passage", report.empty_passages);
    }
    Ok(())
}
