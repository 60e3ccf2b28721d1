//! `uae synth`: synthetic training questions from a corpus, filtered by a
//! round trip through the base encoder's index (`uae_eval::synth`).

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use clap::Args;
use uae_eval::synth::{SynthJob, run_synth};
use uae_data::lock::{Lock, claim_folder};
use uae_teacher::synth::{SUMMARY, Sources, SynthOptions};

use crate::progress::Bars;

/// Arguments of `uae synth`.
#[derive(Args)]
pub struct SynthArgs {
    /// The teacher that writes the questions: a GGUF file, a Hugging Face directory, or a hub id.
    #[arg(long)]
    teacher: String,
    /// The data set, BEIR layout; few-shot examples come from its train split.
    #[arg(long)]
    data: PathBuf,
    /// The new data set's folder (BEIR, plus synth.jsonl, verdicts.jsonl and
    /// synth.json): a new or empty folder, or an earlier run's to resume.
    #[arg(long)]
    out: PathBuf,
    /// Write into --out even when it is a folder of other files (a data set
    /// there would have its corpus, queries and qrels replaced).
    #[arg(long)]
    force: bool,
    /// The base bi-encoder whose index checks the round trip.
    #[arg(long)]
    student: String,
    /// A corpus index the base encoder built over this corpus; without one,
    /// the corpus is embedded into <out>/index.
    #[arg(long)]
    index: Option<PathBuf>,
    /// Which passages may be sources: the whole `corpus` (a held-out
    /// question is never seen, but a passage it judges relevant may be
    /// written about, as GPL and InPars do), or `not-held-out-gold` (no
    /// passage a dev or test query judges relevant).
    #[arg(long, default_value_t = Sources::Corpus)]
    sources: Sources,
    /// Only passages whose id starts with this may be sources (repeat for
    /// several; any passage when absent): questions about the user's own
    /// documents in a corpus that mixes in others.
    #[arg(long = "source-prefix", value_name = "PREFIX")]
    source_prefixes: Vec<String>,
    /// Questions per sampled passage.
    #[arg(long, default_value_t = 1)]
    per_passage: usize,
    /// Sample at most this many passages.
    #[arg(long)]
    max_passages: Option<usize>,
    /// Seed of the passage sample and the few-shot examples.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Few-shot examples from the train split.
    #[arg(long, default_value_t = 2)]
    shots: usize,
    /// Keep a question only when its source passage is in the base encoder's top N.
    #[arg(long, default_value_t = SynthJob::DEFAULT_ROUND_TRIP)]
    round_trip: usize,
    /// Most tokens generated per question.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Sampling temperature of a passage's questions after its first, each
    /// drawn from the first's prompt (the first is greedy; top-k 50, top-p
    /// 0.95, seeded per passage); above 0 when --per-passage is above 1.
    #[arg(long, default_value_t = SynthOptions::DEFAULT_TEMPERATURE)]
    temperature: f32,
}

/// Runs `uae synth`.
pub fn run(args: SynthArgs, device: &Device) -> Result<()> {
    let _lock = Lock::acquire(&args.out)?;
    claim_folder(&args.out, &args.out.join(SUMMARY), "a synthetic data set", args.force)?;
    let job = SynthJob {
        teacher: args.teacher,
        data: args.data,
        out: args.out,
        student: args.student,
        index: args.index,
        round_trip: args.round_trip,
        options: SynthOptions {
            sources: args.sources,
            source_prefixes: args.source_prefixes,
            per_passage: args.per_passage,
            max_passages: args.max_passages,
            seed: args.seed,
            shots: args.shots,
            max_new_tokens: args.max_new_tokens,
            temperature: args.temperature,
            ..SynthOptions::default()
        },
    };
    run_synth(&job, device, &Bars::default())?;
    Ok(())
}
