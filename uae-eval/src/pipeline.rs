//! The whole pipeline as typed stages: index the corpus with the base
//! encoder, mine training candidates with it, check split hygiene, label the
//! candidates with the teacher, fine-tune the encoder twice (InfoNCE on gold
//! passages, and UM-InfoNCE on the teacher's utilities), each with one or
//! more training seeds, export them, and compare everything on the held-out
//! split (each recipe's seeds pooled per query). `uae quickstart` runs it.
//!
//! Each stage calls the libraries directly and prints the `uae` command
//! line that does the same work, so a user can rerun any stage by hand. A
//! stage records, in `<out>/stages/<name>.json`, a key: a hash of its
//! serialised parameters and of a fingerprint of every input file. A rerun
//! skips a stage whose key is unchanged and whose outputs exist, so a changed
//! input recomputes exactly the stages that depend on it. Labelling and
//! training resume where a killed run stopped when their key is unchanged.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use uae_data::atomic::write_atomically;
use uae_data::fingerprint::{fingerprint, hash_parts};
use uae_data::lock::{Lock, claim_folder};
use uae_data::records::read_candidates;
use uae_data::{DataSet, Progress};
use uae_index::corpus_index;
use uae_index::mine::{self, DenseSource, MineOptions, Retriever, check_split_hygiene};
use uae_model::encoder::{BiEncoder, EncoderOptions};
use uae_teacher::label::{LabelOptions, label};
use uae_teacher::prompt::{Utility, UtilityPrompt};
use uae_teacher::synth::{Sources, SynthOptions};
use uae_teacher::teacher::Teacher;
use uae_train::checkpoint;
use uae_train::renderer::MetricLines;
use uae_train::train::{RunPaths, Start, TrainConfig, train};

use crate::compare::{CompareOptions, compare};
use crate::synth::{SynthJob, run_synth};

/// The pipeline's inputs and settings (the defaults are `uae quickstart`'s).
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The data set, BEIR layout with train and test (and optionally dev)
    /// qrels and answers.
    pub data: PathBuf,
    /// The base encoder: a model directory or hub id.
    pub student: String,
    /// The teacher, re-ranker and generator LLM.
    pub teacher: String,
    /// The LLM that writes the synthetic questions (often `teacher`; a
    /// larger one writes better questions and costs only one prompt per
    /// sampled passage, where labelling costs one per candidate).
    pub synth_teacher: String,
    /// The work directory.
    pub out: PathBuf,
    /// Corpus passages the teacher writes synthetic training questions for
    /// (`uae synth`); 0 trains on the data set's own train questions only.
    pub synth_passages: usize,
    /// Synthetic questions per sampled passage.
    pub synth_per_passage: usize,
    /// Sampling temperature of a passage's synthetic questions after its first.
    pub synth_temperature: f32,
    /// Which passages synthetic questions may be about.
    pub synth_sources: Sources,
    /// Only passages whose id starts with one of these may be synthetic
    /// questions' sources (any when empty).
    pub synth_source_prefixes: Vec<String>,
    /// Candidates mined and labelled per training query.
    pub candidates: usize,
    /// Candidates each training query keeps per step.
    pub train_candidates: usize,
    /// The text whose likelihood the teacher's utilities measure.
    pub utility: Utility,
    /// Teacher temperature of UM-InfoNCE's target softmax(N(U) / tau_u).
    pub tau_u: f64,
    /// Per-query normalisation N of the utilities before the target softmax.
    pub utility_norm: uae_train::loss::UtilityNorm,
    /// Weight of the InfoNCE-on-gold term added to UM-InfoNCE.
    pub infonce_weight: f64,
    /// Training seeds of each fine-tuned recipe: the first trains with the
    /// configuration's seed into `runs/<recipe>`, seed k of the others with
    /// `--seed k` into `runs/<recipe>-s<k>`; the comparison pools a recipe's
    /// seeds per query.
    pub seeds: usize,
    /// Training epochs of each fine-tuned encoder.
    pub epochs: usize,
    /// Queries per training batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Train the query encoders only, passages keeping the base's vectors.
    pub query_only: bool,
    /// Texts are cut to this many word pieces in training.
    pub max_length: usize,
    /// Passages the LLM re-ranks per test query.
    pub rerank_k: usize,
    /// Most tokens per generated answer.
    pub max_new_tokens: usize,
    /// The split evaluated.
    pub split: String,
    /// Recompute every stage (and work in `out` even when it holds files
    /// that are not an earlier run's).
    pub force: bool,
    /// The command line that asked for the run, stored in the report.
    pub command: Vec<String>,
}

/// One stage as run or reused.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    /// The stage's name (`index-base`, `mine`, `label`, ...).
    pub name: String,
    /// The equivalent `uae` command line.
    pub command: String,
    /// Whether its recorded result was reused.
    pub reused: bool,
    /// How long it took when it ran (the recorded time when reused).
    pub seconds: f64,
}

/// What a pipeline run did.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// Every stage, in order.
    pub stages: Vec<StageSummary>,
    /// The comparison's report as Markdown (`<out>/report/report.md`).
    pub markdown: String,
    /// Where the report was written.
    pub report_dir: PathBuf,
    /// Wall time of the whole run.
    pub seconds: f64,
}

/// What `<out>/stages/<name>.json` records.
#[derive(Debug, Serialize, Deserialize)]
struct StageRecord {
    key: String,
    command: Vec<String>,
    finished: bool,
    seconds: f64,
}

/// The work a stage does, with everything it needs.
enum Work {
    Index { model: String, corpus: PathBuf, out: PathBuf },
    Mine { model: String, index: PathBuf, data: PathBuf, k: usize, per_document: bool, out: PathBuf },
    Synth(Box<SynthJob>),
    Label { teacher: String, data: PathBuf, candidates: PathBuf, out: PathBuf, utility: Utility },
    Train { paths: RunPaths, config: PathBuf, seed: Option<u64> },
    Export { run: PathBuf, out: PathBuf },
    Eval(Box<CompareOptions>),
}

/// One stage: its name, the equivalent command line, what it reads and
/// writes, and its work.
struct Stage {
    name: String,
    argv: Vec<String>,
    inputs: Vec<PathBuf>,
    outputs: Vec<PathBuf>,
    /// Continues a run killed with the same key instead of starting over.
    resumable: bool,
    work: Work,
}

/// Padded tokens per forward pass of the encoder in every stage (the
/// commands' default).
const BATCH_TOKENS: usize = 1024;

/// Runs the pipeline on `device`. Status lines (which stage runs, which is
/// reused) and progress go to `progress`; the report is returned. The work
/// folder is locked for the whole run, and must be new, empty or an earlier
/// run's (it has `stages/`) unless `force`, since stages replace whole
/// folders in it.
pub fn run_pipeline(options: &PipelineOptions, device: &Device, progress: &dyn Progress) -> Result<PipelineReport> {
    let o = options;
    let out = &o.out;
    let stages_dir = out.join("stages");
    let _lock = Lock::acquire(out)?;
    claim_folder(out, &stages_dir, "a quickstart work folder", o.force)?;
    for dir in [&stages_dir, &out.join("configs")] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let local = |p: &str| if Path::new(p).exists() { vec![PathBuf::from(p)] } else { vec![] };
    let data = &o.data;
    let base_index = out.join("indexes/base");
    let candidates = out.join("candidates.jsonl");
    // QASPER-style data (a pools.jsonl) mines within each query's own document.
    let per_document = data.join(uae_data::beir::POOLS).is_file();
    let labels = out.join("labels.jsonl");
    let started = Instant::now();
    let mut runner = Runner { stages_dir, options: o, device, progress, summary: Vec::new() };

    runner.run(Stage {
        name: "index-base".into(),
        argv: argv(&["index", "build", "--model", &o.student, "--corpus", &s(&data.join("corpus.jsonl")), "--out", &s(&base_index)]),
        inputs: [local(&o.student), vec![data.join("corpus.jsonl")]].concat(),
        outputs: vec![base_index.clone()],
        resumable: false,
        work: Work::Index { model: o.student.clone(), corpus: data.join("corpus.jsonl"), out: base_index.clone() },
    })?;
    // With synthetic questions, every later stage reads the data set that
    // `uae synth` writes: the same corpus and held-out splits, the synthetic
    // questions added to the train split.
    let data = &if o.synth_passages > 0 {
        let synth = out.join("data");
        let job = SynthJob {
            teacher: o.synth_teacher.clone(),
            data: o.data.clone(),
            out: synth.clone(),
            student: o.student.clone(),
            index: Some(base_index.clone()),
            round_trip: SynthJob::DEFAULT_ROUND_TRIP,
            options: SynthOptions {
                sources: o.synth_sources,
                source_prefixes: o.synth_source_prefixes.clone(),
                per_passage: o.synth_per_passage,
                max_passages: Some(o.synth_passages),
                temperature: o.synth_temperature,
                ..SynthOptions::default()
            },
        };
        let mut synth_argv = argv(&[
            "synth", "--teacher", &o.synth_teacher, "--data", &s(&o.data), "--out", &s(&synth), "--student", &o.student,
            "--index", &s(&base_index), "--max-passages", &o.synth_passages.to_string(), "--per-passage",
            &o.synth_per_passage.to_string(), "--sources", &o.synth_sources.to_string(),
        ]);
        // The temperature only reaches questions after a passage's first.
        if job.options.samples_later_questions() {
            synth_argv.extend(["--temperature".to_string(), o.synth_temperature.to_string()]);
        }
        for prefix in &o.synth_source_prefixes {
            synth_argv.extend(["--source-prefix".to_string(), prefix.clone()]);
        }
        runner.run(Stage {
            name: "synth".into(),
            argv: synth_argv,
            inputs: [local(&o.student), local(&o.synth_teacher), vec![o.data.clone(), base_index.clone()]].concat(),
            outputs: vec![synth.clone()],
            resumable: true,
            work: Work::Synth(Box::new(job)),
        })?;
        synth
    } else {
        o.data.clone()
    };
    runner.run(Stage {
        name: "mine".into(),
        argv: argv(&[
            "mine", "--model", &o.student, "--index", &s(&base_index), "--data", &s(data), "--split", "train",
            "--k", &o.candidates.to_string(), "--pool", if per_document { "document" } else { "corpus" },
            "--out", &s(&candidates),
        ]),
        inputs: [local(&o.student), vec![data.clone(), base_index.clone()]].concat(),
        outputs: vec![candidates.clone()],
        resumable: false,
        work: Work::Mine {
            model: o.student.clone(),
            index: base_index.clone(),
            data: data.clone(),
            k: o.candidates,
            per_document,
            out: candidates.clone(),
        },
    })?;
    check_hygiene(data, &candidates, &o.split)?;
    runner.run(Stage {
        name: "label".into(),
        argv: {
            let (data_s, candidates_s, labels_s) = (s(data), s(&candidates), s(&labels));
            let mut args =
                vec!["label", "--teacher", &o.teacher, "--data", &data_s, "--candidates", &candidates_s, "--out", &labels_s];
            // Named only when it is not the default, so that the stage's key
            // (its command line) stays that of earlier runs.
            let utility = o.utility.to_string();
            if o.utility != Utility::default() {
                args.extend(["--utility", utility.as_str()]);
            }
            argv(&args)
        },
        inputs: [local(&o.teacher), vec![data.clone(), candidates.clone()]].concat(),
        outputs: vec![labels.clone(), labels.with_extension("jsonl.meta.json")],
        resumable: true,
        work: Work::Label {
            teacher: o.teacher.clone(),
            data: data.clone(),
            candidates: candidates.clone(),
            out: labels.clone(),
            utility: o.utility,
        },
    })?;
    if o.seeds == 0 {
        anyhow::bail!("--seeds must be at least 1");
    }
    // Each recipe's models, one per seed, in training order.
    let mut trained: Vec<(&str, PathBuf)> = Vec::new();
    for (name, loss) in [("infonce", "infonce"), ("uae", "um-infonce")] {
        let config = out.join("configs").join(format!("{name}.toml"));
        let infonce_weight = if loss == "infonce" { 0.0 } else { o.infonce_weight };
        let text = format!(
            "# Written by `uae quickstart`.\nepochs = {}\nbatch_size = {}\nlr = {}\nmax_length = {}\nlog_every = 1\n\
             utility_norm = \"{}\"\nquery_only = {}\n\n[loss]\nkind = \"{loss}\"\ntau_u = {}\ninfonce_weight = {infonce_weight}\n\n\
             [sampling]\ncandidates = {}\n",
            o.epochs, o.batch_size, o.lr, o.max_length, o.utility_norm, o.query_only, o.tau_u, o.train_candidates
        );
        if std::fs::read_to_string(&config).ok().as_deref() != Some(text.as_str()) {
            write_atomically(&out.join("configs"), &format!("{name}.toml"), text.as_bytes())?;
        }
        for k in 0..o.seeds {
            let seed = (k > 0).then_some(k as u64);
            let run_name = seed.map_or(name.to_string(), |k| format!("{name}-s{k}"));
            let run_dir = out.join("runs").join(&run_name);
            let model_dir = out.join("models").join(&run_name);
            let mut train_argv = argv(&[
                "train", "--model", &o.student, "--data", &s(data), "--labels", &s(&labels), "--out", &s(&run_dir),
                "--config", &s(&config), "--base-index", &s(&base_index),
            ]);
            if let Some(k) = seed {
                train_argv.extend(argv(&["--seed", &k.to_string()]));
            }
            runner.run(Stage {
                name: format!("train-{run_name}"),
                argv: train_argv,
                inputs: [local(&o.student), vec![data.clone(), labels.clone(), config.clone()]].concat(),
                outputs: vec![run_dir.clone()],
                resumable: true,
                work: Work::Train {
                    paths: RunPaths {
                        model: o.student.clone(),
                        data: data.clone(),
                        labels: labels.clone(),
                        out: run_dir.clone(),
                        base_index: Some(base_index.clone()),
                    },
                    config: config.clone(),
                    seed,
                },
            })?;
            runner.run(Stage {
                name: format!("export-{run_name}"),
                argv: argv(&["export", "--run", &s(&run_dir), "--out", &s(&model_dir)]),
                inputs: vec![run_dir.join("model.safetensors"), run_dir.join("train_config.json")],
                outputs: vec![model_dir.clone()],
                resumable: false,
                work: Work::Export { run: run_dir.clone(), out: model_dir.clone() },
            })?;
            trained.push((name, model_dir));
        }
    }
    let report = out.join("report");
    // A query-side student embeds passages as its base does, so it searches
    // the base's index; a fully trained one gets its own in the eval stage.
    let student_index = out.join("indexes").join(if o.query_only { "base" } else { "uae" });
    let serve = format!("uae serve --model {} --index {}", s(&out.join("models/uae")), s(&student_index));
    let pipeline = serde_json::json!({
        "data": s(&o.data), "student": o.student, "teacher": o.teacher, "synth_teacher": o.synth_teacher, "synth_passages": o.synth_passages,
        "synth_per_passage": o.synth_per_passage, "synth_temperature": o.synth_temperature, "synth_sources": o.synth_sources, "synth_source_prefixes": o.synth_source_prefixes, "candidates": o.candidates,
        "train_candidates": o.train_candidates, "utility": o.utility.to_string(), "tau_u": o.tau_u, "utility_norm": o.utility_norm,
        "infonce_weight": o.infonce_weight, "query_only": o.query_only,
        "seeds": o.seeds, "epochs": o.epochs, "batch_size": o.batch_size, "lr": o.lr, "max_length": o.max_length,
        "stages": runner.summary, "serve": serve,
    });
    write_atomically(out, "pipeline.json", serde_json::to_string_pretty(&pipeline)?.as_bytes())?;
    let models = [vec![("base", PathBuf::from(&o.student))], trained].concat();
    let compare_options = CompareOptions {
        data: data.clone(),
        split: o.split.clone(),
        models: models.iter().map(|(name, path)| format!("{name}={}", s(path))).collect(),
        indexes: Some(out.join("indexes")),
        rerank_teacher: Some(o.teacher.clone()),
        rerank_k: o.rerank_k,
        generator: None,
        max_new_tokens: o.max_new_tokens,
        max_passage_tokens: 256,
        labels: Some(labels.clone()),
        labels_split: "train".into(),
        runs: vec![format!("infonce={}", s(&out.join("runs/infonce"))), format!("uae={}", s(&out.join("runs/uae")))],
        against: vec!["base".into(), "infonce".into()],
        tests: crate::significance::TestOptions::default(),
        k: 100,
        batch_tokens: BATCH_TOKENS,
        pipeline: Some(pipeline),
        command: o.command.clone(),
        report: report.clone(),
    };
    let mut eval_argv = argv(&["eval", "--data", &s(data), "--split", &o.split]);
    for spec in &compare_options.models {
        eval_argv.extend(argv(&["--model", spec]));
    }
    eval_argv.extend(argv(&[
        "--indexes", &s(&out.join("indexes")), "--rerank-teacher", &o.teacher, "--rerank-k", &o.rerank_k.to_string(),
        "--max-new-tokens", &o.max_new_tokens.to_string(), "--labels", &s(&labels),
    ]));
    for against in &compare_options.against {
        eval_argv.extend(argv(&["--against", against]));
    }
    for run in &compare_options.runs {
        eval_argv.extend(argv(&["--run", run]));
    }
    eval_argv.extend(argv(&["--pipeline-config", &s(&out.join("pipeline.json")), "--report", &s(&report)]));
    runner.run(Stage {
        name: "eval".into(),
        argv: eval_argv,
        inputs: [local(&o.student), local(&o.teacher), vec![data.clone(), labels.clone(), out.join("models")]].concat(),
        outputs: vec![report.join("report.json"), report.join("report.md")],
        resumable: false,
        work: Work::Eval(Box::new(compare_options)),
    })?;
    let markdown = std::fs::read_to_string(report.join("report.md"))
        .with_context(|| format!("cannot read {}", report.join("report.md").display()))?;
    Ok(PipelineReport { stages: runner.summary, markdown, report_dir: report, seconds: started.elapsed().as_secs_f64() })
}

/// Runs stages and keeps their records and summaries.
struct Runner<'a> {
    /// Where `<name>.json` records are kept.
    stages_dir: PathBuf,
    options: &'a PipelineOptions,
    device: &'a Device,
    progress: &'a dyn Progress,
    /// The stages so far, run or reused.
    summary: Vec<StageSummary>,
}

impl Runner<'_> {
    /// Runs `stage` unless its record says it finished with the same key.
    fn run(&mut self, stage: Stage) -> Result<()> {
        let summary = self.run_or_reuse(stage)?;
        self.summary.push(summary);
        Ok(())
    }

    fn run_or_reuse(&self, stage: Stage) -> Result<StageSummary> {
        // The stage's parameters are its command line: every setting that
        // changes its result appears there (the training configuration as
        // the file the command names, fingerprinted as an input).
        let mut key_parts = vec![stage.argv.join("\u{1f}")];
        for input in &stage.inputs {
            key_parts.push(format!("{:016x}", fingerprint(input)?));
        }
        let key = format!("{:016x}", hash_parts(&key_parts));
        let record_name = format!("{}.json", stage.name);
        let record_path = self.stages_dir.join(&record_name);
        let previous: Option<StageRecord> =
            std::fs::read_to_string(&record_path).ok().and_then(|t| serde_json::from_str(&t).ok());
        let command = format!("uae {}", stage.argv.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" "));
        let force = self.options.force;
        if !force
            && let Some(p) = &previous
            && p.finished
            && p.key == key
            && stage.outputs.iter().all(|o| o.exists())
        {
            self.progress.message(&format!("== {}: reused (inputs unchanged, finished in {:.0} s)", stage.name, p.seconds));
            return Ok(StageSummary { name: stage.name.into(), command, reused: true, seconds: p.seconds });
        }
        let resume = !force && stage.resumable && previous.as_ref().is_some_and(|p| !p.finished && p.key == key);
        if !resume {
            for output in &stage.outputs {
                remove(output)?;
            }
        }
        let mut shown = stage.argv.clone();
        // Training continues from its last checkpoint when it has one.
        let resume_training = resume && matches!(&stage.work, Work::Train { paths, .. } if checkpoint::resumable(&paths.out).unwrap_or(false));
        if resume_training {
            shown.push("--resume".into());
        }
        let shown = format!("uae {}", shown.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" "));
        self.progress.message(&format!("== {}{}: {shown}", stage.name, if resume { " (resuming)" } else { "" }));
        let record = StageRecord { key: key.clone(), command: stage.argv.clone(), finished: false, seconds: 0.0 };
        write_atomically(&self.stages_dir, &record_name, serde_json::to_string_pretty(&record)?.as_bytes())?;
        let start = Instant::now();
        self.work(&stage.work, resume_training).with_context(|| format!("stage {} failed", stage.name))?;
        let seconds = start.elapsed().as_secs_f64();
        let record = StageRecord { key, command: stage.argv, finished: true, seconds };
        write_atomically(&self.stages_dir, &record_name, serde_json::to_string_pretty(&record)?.as_bytes())?;
        self.progress.message(&format!("== {}: done in {seconds:.0} s", stage.name));
        Ok(StageSummary { name: stage.name.into(), command, reused: false, seconds })
    }

    /// Does a stage's work by calling the libraries.
    fn work(&self, work: &Work, resume_training: bool) -> Result<()> {
        let (device, progress) = (self.device, self.progress);
        match work {
            Work::Index { model, corpus, out } => {
                let passages = uae_data::beir::read_corpus(corpus)?;
                let encoder = BiEncoder::load(model, device, &EncoderOptions::default())?;
                progress.start(passages.len() as u64, "passages");
                corpus_index::build(&encoder, model, passages.as_slice(), out, BATCH_TOKENS, None, |n| progress.advance(n as u64))?;
                progress.finish();
                progress.message(&format!("indexed {} passages into {}", passages.len(), out.display()));
            }
            Work::Mine { model, index, data, k, per_document, out } => {
                let set = DataSet::load_split(data, "train")?;
                let encoder = BiEncoder::load(model, device, &EncoderOptions::default())?;
                let store = corpus_index::open_matching(index, &encoder, model, set.corpus.as_slice())?;
                let options = MineOptions {
                    split: "train".into(),
                    k: *k,
                    retriever: Retriever::Dense,
                    per_document: *per_document,
                    batch_tokens: BATCH_TOKENS,
                };
                let dense = DenseSource { encoder: &encoder, corpus: Some(store.vectors()) };
                let lines = mine::mine(&set, Some(dense), &options, progress)?;
                uae_data::records::write_candidates(out, &lines)?;
                progress.message(&format!("mined {k} candidates for each of {} train queries into {}", lines.len(), out.display()));
            }
            Work::Synth(job) => {
                run_synth(job, device, progress)?;
            }
            Work::Label { teacher, data, candidates, out, utility } => {
                let set = DataSet::load(data, &[])?;
                let lm = Teacher::load(teacher, device)?;
                let mut done = None;
                let options = LabelOptions { prompt: UtilityPrompt::of(*utility), ..LabelOptions::default() };
                let report = label(&lm, &set, data, candidates, out, &options, |p| {
                    let before = *done.get_or_insert_with(|| {
                        progress.start(p.total as u64, "queries");
                        0
                    });
                    progress.advance((p.done - before) as u64);
                    done = Some(p.done);
                })?;
                progress.finish();
                progress.message(&format!("labelled {} queries; {} already done", report.labelled, report.resumed));
            }
            Work::Train { paths, config, seed } => {
                let mut config = TrainConfig::from_file(config)?;
                if let Some(seed) = seed {
                    config.seed = *seed;
                }
                let evaluator: Option<Box<dyn uae_train::select::DevEvaluator>> = if config.select {
                    Some(Box::new(crate::dev::DevRetrieval::new(&paths.data, &paths.model, paths.base_index.as_deref(), device)?))
                } else {
                    None
                };
                let start = if resume_training { Start::Resume(None) } else { Start::Fresh };
                // Standard output is the report's: metric lines go with the log.
                let summary = train(paths, &config, start, device, evaluator, MetricLines::Stderr, &mut |line| progress.message(line))?;
                progress.message(&format!(
                    "trained on {} queries, validated on {}; weights in {}",
                    summary.train_queries,
                    summary.valid_queries,
                    summary.weights.display()
                ));
            }
            Work::Export { run, out } => {
                uae_train::export::export(run, out)?;
                progress.message(&format!("exported {} to {}", run.display(), out.display()));
            }
            Work::Eval(options) => {
                compare(options, device, progress)?;
            }
        }
        Ok(())
    }
}

/// Checks the mined training candidates against the evaluated and dev splits.
fn check_hygiene(data: &Path, candidates: &Path, split: &str) -> Result<()> {
    let mut held_out = vec![split.to_string()];
    if split != "dev" && data.join("qrels/dev.tsv").is_file() {
        held_out.push("dev".into());
    }
    let splits: Vec<&str> = std::iter::once("train").chain(held_out.iter().map(String::as_str)).collect();
    let set = DataSet::load(data, &splits)?;
    let lines: Vec<_> = read_candidates(candidates)?.into_iter().map(|(_, line)| line).collect();
    let held: Vec<&str> = held_out.iter().map(String::as_str).collect();
    check_split_hygiene(&set, &lines, "train", &held, &candidates.display().to_string())
}

fn remove(path: &Path) -> Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path).with_context(|| format!("cannot remove {}", path.display()))?;
    } else if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// Quotes an argument for the printed command line when the shell needs it.
fn shell_word(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,".contains(c)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn s(path: &Path) -> String {
    path.display().to_string()
}
