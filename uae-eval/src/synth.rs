//! `uae synth` as one call: synthetic training questions from a corpus
//! (`uae_teacher::synth`), filtered by a round trip through the base
//! encoder's corpus index (built when the given one does not match). The
//! `uae` binary and the pipeline's `synth` stage both run it.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use uae_data::{DataSet, Progress};
use uae_index::corpus_index::{self, Searcher};
use uae_model::encoder::{BiEncoder, EncoderOptions};
use uae_teacher::teacher::Teacher;
use uae_teacher::synth::{GenerateReport, Sources, SynthOptions, SynthSummary, synthesize};

/// Texts embedded per batch (word pieces).
const BATCH_TOKENS: usize = 1024;

/// What a synthesis run reads and writes.
#[derive(Debug, Clone)]
pub struct SynthJob {
    /// The teacher that writes the questions: a GGUF file, a model directory or a hub id.
    pub teacher: String,
    /// The data set (BEIR); few-shot examples come from its train split.
    pub data: PathBuf,
    /// The new data set's folder.
    pub out: PathBuf,
    /// The base bi-encoder whose index checks the round trip.
    pub student: String,
    /// Its corpus index; `None` (or one that does not match) embeds the
    /// corpus into `<out>/index`.
    pub index: Option<PathBuf>,
    /// Keep a question only when its source passage is in the base encoder's top this many.
    pub round_trip: usize,
    /// Generation settings.
    pub options: SynthOptions,
}

impl SynthJob {
    /// The round-trip depth `uae synth` and the pipeline use unless told otherwise.
    pub const DEFAULT_ROUND_TRIP: usize = 20;
}

/// Runs `job` (resuming a killed run) and says what it did through `progress`.
pub fn run_synth(job: &SynthJob, device: &Device, progress: &dyn Progress) -> Result<(GenerateReport, SynthSummary)> {
    let data = DataSet::load_all(&job.data)?;
    let lm = Teacher::load(&job.teacher, device)?;
    let encoder = BiEncoder::load(&job.student, device, &EncoderOptions::default())?;
    let passages = data.corpus.as_slice();
    let index = job.index.clone().unwrap_or_else(|| job.out.join("index"));
    let store = match corpus_index::open_matching(&index, &encoder, &job.student, passages) {
        Ok(store) => store,
        Err(_) => {
            let index = job.out.join("index");
            progress.message(&format!("embedding {} passages into {}", passages.len(), index.display()));
            progress.start(passages.len() as u64, "passages");
            corpus_index::build(&encoder, &job.student, passages, &index, BATCH_TOKENS, None, |n| progress.advance(n as u64))?;
            progress.finish();
            corpus_index::open_matching(&index, &encoder, &job.student, passages)?
        }
    };
    let round_trip = |questions: &[String]| -> Result<Vec<Vec<String>>> {
        let rankings = corpus_index::search_texts(&store, &Searcher::Exact, &encoder, questions, job.round_trip, BATCH_TOKENS)?;
        Ok(rankings.into_iter().map(|r| r.into_iter().map(|h| h.id).collect()).collect())
    };
    let mut started = false;
    let mut last = 0;
    let (report, summary) = synthesize(&lm, &data, &job.out, &job.options, job.round_trip, round_trip, |done, total| {
        if !started {
            progress.start(total as u64, "passages");
            started = true;
        }
        progress.advance((done - last) as u64);
        last = done;
    })?;
    progress.finish();
    if report.repaired_torn_line {
        progress.message(&format!("removed a torn last line from {}", job.out.join(uae_teacher::synth::GENERATIONS).display()));
    }
    progress.message(&format!(
        "generated for {} passages ({} already done) with {} few-shot examples; sources: {}{}{}",
        report.generated,
        report.resumed,
        report.shots,
        job.options.sources,
        match job.options.sources {
            Sources::Corpus => String::new(),
            Sources::NotHeldOutGold => format!(" ({} passages gold for held-out queries left out)", report.held_out_sources),
        },
        if job.options.source_prefixes.is_empty() {
            String::new()
        } else {
            format!(", ids starting with {}", job.options.source_prefixes.join(" or "))
        }
    ));
    if report.fitted_prompts > 0 {
        progress.message(&format!(
            "{} prompts left out few-shot examples, or shortened their passage, to fit the teacher's context window",
            report.fitted_prompts
        ));
    }
    progress.message(&summary.to_string());
    progress.message(&format!("wrote the data set to {}", job.out.display()));
    Ok((report, summary))
}
