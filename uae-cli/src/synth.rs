//! `uae synth`: synthetic training questions from a corpus
//! (`uae_teacher::synth`), filtered by a round trip through the base
//! encoder's index.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use clap::Args;
use uae_data::DataSet;
use uae_index::corpus_index::{self, Searcher};
use uae_model::encoder::{BiEncoder, EncoderOptions};
use uae_model::llm::CausalLm;
use uae_teacher::synth::{SynthOptions, synthesize};

use crate::progress;

/// Arguments of `uae synth`.
#[derive(Args)]
pub struct SynthArgs {
    /// The teacher that writes the questions: a GGUF file, a Hugging Face directory, or a hub id.
    #[arg(long)]
    teacher: String,
    /// The data set, BEIR layout; few-shot examples come from its train split.
    #[arg(long)]
    data: PathBuf,
    /// The new data set's folder (BEIR, plus synth.jsonl, verdicts.jsonl and synth.json).
    #[arg(long)]
    out: PathBuf,
    /// The base bi-encoder whose index checks the round trip.
    #[arg(long)]
    student: String,
    /// A corpus index the base encoder built over this corpus; without one,
    /// the corpus is embedded into <out>/index.
    #[arg(long)]
    index: Option<PathBuf>,
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
    #[arg(long, default_value_t = 20)]
    round_trip: usize,
    /// Most tokens generated per question.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
}

/// Runs `uae synth`.
pub fn run(args: SynthArgs, device: &Device) -> Result<()> {
    let data = DataSet::load_all(&args.data)?;
    let lm = CausalLm::load(&args.teacher, device)?;
    let encoder = BiEncoder::load(&args.student, device, &EncoderOptions::default())?;
    let passages = data.corpus.as_slice();
    let index = args.index.clone().unwrap_or_else(|| args.out.join("index"));
    let store = match corpus_index::open_matching(&index, &encoder, &args.student, passages) {
        Ok(store) => store,
        Err(_) => {
            eprintln!("embedding {} passages into {}", passages.len(), index.display());
            let bar = progress::bar(passages.len() as u64, "passages");
            corpus_index::build(&encoder, &args.student, passages, &index, 1024, None, |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            corpus_index::open_matching(&index, &encoder, &args.student, passages)?
        }
    };
    let options = SynthOptions {
        per_passage: args.per_passage,
        max_passages: args.max_passages,
        seed: args.seed,
        shots: args.shots,
        max_new_tokens: args.max_new_tokens,
        ..SynthOptions::default()
    };
    let bar = progress::bar(0, "passages");
    let round_trip = |questions: &[String]| -> Result<Vec<Vec<String>>> {
        let rankings = corpus_index::search_texts(&store, &Searcher::Exact, &encoder, questions, args.round_trip, 1024)?;
        Ok(rankings.into_iter().map(|r| r.into_iter().map(|h| h.id).collect()).collect())
    };
    let (report, summary) = synthesize(&lm, &data, &args.out, &options, args.round_trip, round_trip, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    if report.repaired_torn_line {
        eprintln!("removed a torn last line from {}", args.out.join(uae_teacher::synth::GENERATIONS).display());
    }
    eprintln!(
        "generated for {} passages ({} already done) with {} few-shot examples",
        report.generated, report.resumed, report.shots
    );
    eprintln!("{summary}");
    eprintln!("wrote the data set to {}", args.out.display());
    Ok(())
}
