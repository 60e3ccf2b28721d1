//! `uae quickstart`: the whole pipeline (`uae_eval::pipeline`) on the
//! embedded defaults; each stage prints the `uae` command that does the same
//! work before it runs, and finished stages are reused.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::Args;
use uae_data::cache::{fetched_model, uae_cache};
use uae_eval::pipeline::{PipelineOptions, run_pipeline};
use uae_teacher::prompt::Utility;
use uae_teacher::synth::{Sources, SynthOptions};
use uae_train::loss::UtilityNorm;

use crate::progress::Bars;
use crate::stdout;

/// Arguments of `uae quickstart`.
#[derive(Args)]
pub struct QuickstartArgs {
    /// The data set, BEIR layout with train/dev/test qrels and answers
    /// [default: $UAE_CACHE/data/python-faq-heldout, the Python FAQ split
    /// 10/20/70, built by scripts/quickstart.sh].
    #[arg(long)]
    data: Option<PathBuf>,
    /// The base encoder [default: $UAE_CACHE/models/all-MiniLM-L6-v2].
    #[arg(long)]
    student: Option<String>,
    /// The teacher, re-ranker and generator LLM [default:
    /// $UAE_CACHE/models/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf].
    #[arg(long)]
    teacher: Option<String>,
    /// The LLM that writes the synthetic questions [default: the teacher].
    #[arg(long)]
    synth_teacher: Option<String>,
    /// The work directory [default: $UAE_CACHE/quickstart].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Corpus passages the teacher writes synthetic training questions for
    /// (`uae synth`, added to the data set's own train questions); 0 trains
    /// on the data set's train questions only.
    #[arg(long, default_value_t = 192)]
    synth_passages: usize,
    /// Synthetic questions per sampled passage.
    #[arg(long, default_value_t = 1)]
    synth_per_passage: usize,
    /// Sampling temperature of a passage's synthetic questions after its
    /// first (`uae synth --temperature`).
    #[arg(long, default_value_t = SynthOptions::DEFAULT_TEMPERATURE)]
    synth_temperature: f32,
    /// Which passages synthetic questions may be about: the whole `corpus`,
    /// or `not-held-out-gold` (no passage a dev or test query judges relevant).
    #[arg(long, default_value_t = Sources::Corpus)]
    synth_sources: Sources,
    /// Only passages whose id starts with this may be synthetic questions'
    /// sources (`uae synth --source-prefix`; repeat for several; `""` for
    /// any) [default: `faq/` on the embedded Python FAQ data set, so the
    /// questions are about its answers, not the 2,000 library-reference
    /// distractors; any passage with --data].
    #[arg(long = "synth-source-prefix", value_name = "PREFIX")]
    synth_source_prefixes: Vec<String>,
    /// Candidates mined and labelled per training query.
    #[arg(long, default_value_t = 8)]
    candidates: usize,
    /// Candidates each training query keeps per step (the best half by
    /// utility, the rest drawn at random from its labelled pool).
    #[arg(long, default_value_t = 8)]
    train_candidates: usize,
    /// The text whose likelihood the teacher's utilities measure: the gold
    /// `answer` or the `question`.
    #[arg(long, default_value_t = Utility::Question)]
    utility: Utility,
    /// Teacher temperature of UM-InfoNCE's target softmax(N(U) / tau_u).
    #[arg(long, default_value_t = 0.5)]
    tau_u: f64,
    /// Per-query normalisation N of the utilities: none, zscore or minmax.
    #[arg(long, default_value = "zscore")]
    utility_norm: UtilityNorm,
    /// Weight of an InfoNCE-on-gold term added to UM-InfoNCE. The default
    /// recipe (question utility, tau_u 0.5, weight 3) is the best UAE one
    /// on dev in reports/python-faq-own-docs/.
    #[arg(long, default_value_t = 3.0)]
    infonce_weight: f64,
    /// Training seeds of each fine-tuned encoder: the report pools each
    /// recipe's seeds per test query (`uae eval` with the models under one
    /// name), so a gain is the recipe's and not one seed's luck (a training
    /// run costs 15 s on the embedded data, the evaluation most of the time).
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// Training epochs of each fine-tuned encoder.
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// Queries per training batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    lr: f64,
    /// Train the query encoders only (`uae train --query-only`): passages
    /// keep the base's vectors and its corpus index serves every model.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    query_only: bool,
    /// Texts are cut to this many word pieces in training.
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// Passages the LLM re-ranks per test query (5: re-ranking 125 test
    /// queries' top 10 alone would take 17 minutes on two cores).
    #[arg(long, default_value_t = 5)]
    rerank_k: usize,
    /// Most tokens per generated answer.
    #[arg(long, default_value_t = 24)]
    max_new_tokens: usize,
    /// The split evaluated.
    #[arg(long, default_value = "test")]
    split: String,
    /// Recompute every stage (and work in --out even when it holds files
    /// that are not an earlier quickstart's).
    #[arg(long)]
    force: bool,
}

/// Runs `uae quickstart` on `device`.
pub fn run(args: QuickstartArgs, device: &Device) -> Result<()> {
    let data = match &args.data {
        Some(d) => d.clone(),
        None => {
            let d = uae_cache().join("data/python-faq-heldout");
            if !d.join("corpus.jsonl").is_file() {
                bail!("{} is missing: run scripts/quickstart.sh, which builds it, or give --data", d.display());
            }
            d
        }
    };
    let path = |p: PathBuf| p.display().to_string();
    let student = match &args.student {
        Some(s) => s.clone(),
        None => path(fetched_model("all-MiniLM-L6-v2", "minilm")?),
    };
    let teacher = match &args.teacher {
        Some(t) => t.clone(),
        None => path(fetched_model("SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2")?),
    };
    let options = PipelineOptions {
        data,
        student,
        synth_teacher: args.synth_teacher.clone().unwrap_or_else(|| teacher.clone()),
        teacher,
        out: args.out.clone().unwrap_or_else(|| uae_cache().join("quickstart")),
        synth_passages: args.synth_passages,
        synth_per_passage: args.synth_per_passage,
        synth_temperature: args.synth_temperature,
        synth_sources: args.synth_sources,
        synth_source_prefixes: source_prefixes(args.synth_source_prefixes, args.data.is_none()),
        candidates: args.candidates,
        train_candidates: args.train_candidates,
        utility: args.utility,
        tau_u: args.tau_u,
        utility_norm: args.utility_norm,
        infonce_weight: args.infonce_weight,
        seeds: args.seeds,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        query_only: args.query_only,
        max_length: args.max_length,
        rerank_k: args.rerank_k,
        max_new_tokens: args.max_new_tokens,
        split: args.split,
        force: args.force,
        command: std::env::args().collect(),
    };
    let done = run_pipeline(&options, device, &Bars::default())?;
    stdout::print(&done.markdown)?;
    eprintln!("\nstage              seconds  reused");
    for st in &done.stages {
        eprintln!("{:<18} {:>7.0}  {}", st.name, st.seconds, if st.reused { "yes" } else { "no" });
    }
    eprintln!("quickstart finished in {:.0} s; report: {}", done.seconds, done.report_dir.join("report.md").display());
    Ok(())
}

/// The synthetic questions' source prefixes: those given, or on the embedded
/// Python FAQ data set (no `--data`) its own answers, `faq/`.
fn source_prefixes(given: Vec<String>, embedded_data: bool) -> Vec<String> {
    if given.is_empty() && embedded_data { vec!["faq/".to_string()] } else { given }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_faq_writes_about_its_own_answers_unless_told_otherwise() {
        assert_eq!(source_prefixes(Vec::new(), true), ["faq/"]);
        assert!(source_prefixes(Vec::new(), false).is_empty(), "another data set samples its whole corpus");
        assert_eq!(source_prefixes(vec![String::new()], true), [""], "an empty prefix samples every passage");
        assert_eq!(source_prefixes(vec!["a/".into(), "b/".into()], false), ["a/", "b/"]);
    }
}
