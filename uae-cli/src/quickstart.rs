//! `uae quickstart`: the whole pipeline on the embedded defaults, as the
//! sequence of `uae` commands a user could type (each is printed before it
//! runs): index the corpus with the base encoder, mine training candidates
//! with it, label them with the teacher, fine-tune the encoder twice (InfoNCE
//! on gold passages, and UM-InfoNCE on the teacher's utilities), export
//! both, and compare everything on the held-out split with `uae eval`.
//!
//! Each stage records, in `<out>/stages/<name>.json`, a key made of its
//! command line and a checksum of every input file; a rerun skips a stage
//! whose key is unchanged and whose outputs exist, so a changed input
//! recomputes exactly the stages that depend on it. Labelling and training
//! resume where a killed run stopped when their key is unchanged.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use uae_index::data::DataSet;
use uae_index::mine::{CandidateLine, check_split_hygiene};
use uae_model::source::{fetched_model, uae_cache};

/// Arguments of `uae quickstart`.
#[derive(Args)]
pub struct QuickstartArgs {
    /// The data set, BEIR layout with train/dev/test qrels and answers
    /// [default: $UAE_CACHE/data/python-faq, built by scripts/quickstart.sh].
    #[arg(long)]
    data: Option<PathBuf>,
    /// The base encoder [default: $UAE_CACHE/models/all-MiniLM-L6-v2].
    #[arg(long)]
    student: Option<String>,
    /// The teacher, re-ranker and generator LLM [default:
    /// $UAE_CACHE/models/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf].
    #[arg(long)]
    teacher: Option<String>,
    /// The work directory [default: $UAE_CACHE/quickstart].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Candidates mined and labelled per training query.
    #[arg(long, default_value_t = 6)]
    candidates: usize,
    /// Candidates each training query keeps per step (the best half by
    /// utility, the rest drawn at random from its labelled pool).
    #[arg(long, default_value_t = 4)]
    train_candidates: usize,
    /// Teacher temperature of UM-InfoNCE's target softmax(U / tau_u).
    #[arg(long, default_value_t = 0.3)]
    tau_u: f64,
    /// Training epochs of each fine-tuned encoder.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Queries per training batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Texts are cut to this many word pieces in training.
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// Passages the LLM re-ranks per test query.
    #[arg(long, default_value_t = 10)]
    rerank_k: usize,
    /// Most tokens per generated answer.
    #[arg(long, default_value_t = 24)]
    max_new_tokens: usize,
    /// The split evaluated.
    #[arg(long, default_value = "test")]
    split: String,
    /// Recompute every stage.
    #[arg(long)]
    force: bool,
}

/// What `<out>/stages/<name>.json` records.
#[derive(Debug, Serialize, Deserialize)]
struct StageRecord {
    key: String,
    command: Vec<String>,
    finished: bool,
    seconds: f64,
}

/// One stage as run or reused, for the summary.
#[derive(Debug, Serialize)]
struct StageSummary {
    name: String,
    command: String,
    reused: bool,
    seconds: f64,
}

/// The `uae` command line of a stage, and what it reads and writes.
struct Stage {
    name: &'static str,
    argv: Vec<String>,
    inputs: Vec<PathBuf>,
    outputs: Vec<PathBuf>,
    /// Continues a run killed with the same key instead of starting over.
    resumable: bool,
}

/// A checksum of `path`: of a file, its size and contents; of a folder, the
/// same over its files in name order, with their relative paths. CRC-32
/// (crc32fast, already used for index integrity) over each file, combined
/// in one 64-bit FNV-1a; enough to notice a changed input.
fn fingerprint(path: &Path) -> Result<u64> {
    let mut files = Vec::new();
    collect_files(path, path, &mut files)?;
    if files.is_empty() {
        bail!("input {} does not exist", path.display());
    }
    let mut hash = FNV_OFFSET;
    for (relative, file) in files {
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        hash = fnv1a(hash, relative.as_bytes());
        hash = fnv1a(hash, &(bytes.len() as u64).to_le_bytes());
        hash = fnv1a(hash, &crc32fast::hash(&bytes).to_le_bytes());
    }
    Ok(hash)
}

/// The 64-bit FNV-1a offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds `bytes` into the 64-bit FNV-1a `hash`.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn collect_files(root: &Path, path: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    if path.is_file() {
        let relative = path.strip_prefix(root).unwrap_or(path).display().to_string();
        out.push((relative, path.to_path_buf()));
    } else if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .map(|e| Ok(e?.path()))
            .collect::<Result<_>>()?;
        entries.sort();
        for entry in entries {
            collect_files(root, &entry, out)?;
        }
    }
    Ok(())
}

fn remove(path: &Path) -> Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path).with_context(|| format!("cannot remove {}", path.display()))?;
    } else if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `dir/name`, atomically.
fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<()> {
    uae_index::store::write_atomically(dir, name, serde_json::to_string_pretty(value)?.as_bytes())
}

/// Quotes an argument for the printed command line when the shell needs it.
fn shell_word(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,".contains(c)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// Runs stages and keeps their records and summaries.
struct Runner<'a> {
    /// Where `<name>.json` records are kept.
    stages_dir: PathBuf,
    /// The `--device` spec passed to every stage.
    device: &'a str,
    /// Recompute every stage.
    force: bool,
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
        let mut key_parts = vec![stage.argv.join("\u{1f}")];
        for input in &stage.inputs {
            key_parts.push(format!("{:016x}", fingerprint(input)?));
        }
        let key = format!("{:016x}", fnv1a(FNV_OFFSET, key_parts.join("\u{1e}").as_bytes()));
        let record_name = format!("{}.json", stage.name);
        let record_path = self.stages_dir.join(&record_name);
        let previous: Option<StageRecord> =
            std::fs::read_to_string(&record_path).ok().and_then(|t| serde_json::from_str(&t).ok());
        let command = format!("uae {}", stage.argv.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" "));
        if !self.force
            && let Some(p) = &previous
            && p.finished
            && p.key == key
            && stage.outputs.iter().all(|o| o.exists())
        {
            eprintln!("== {}: reused (inputs unchanged, finished in {:.0} s)", stage.name, p.seconds);
            return Ok(StageSummary { name: stage.name.into(), command, reused: true, seconds: p.seconds });
        }
        let resume = !self.force && stage.resumable && previous.as_ref().is_some_and(|p| !p.finished && p.key == key);
        if !resume {
            for output in &stage.outputs {
                remove(output)?;
            }
        }
        let mut argv = stage.argv.clone();
        // Training continues from its last checkpoint when it has one.
        if resume && argv[0] == "train" {
            let out = argv.iter().position(|a| a == "--out").map(|i| PathBuf::from(&argv[i + 1]));
            if out.is_some_and(|o| o.join("checkpoint").read_dir().is_ok_and(|mut d| d.next().is_some())) {
                argv.push("--resume".into());
            }
        }
        eprintln!("== {}{}: {command}", stage.name, if resume { " (resuming)" } else { "" });
        write_json(&self.stages_dir, &record_name, &StageRecord { key: key.clone(), command: stage.argv.clone(), finished: false, seconds: 0.0 })?;
        let start = Instant::now();
        let mut full = vec!["uae".to_string(), "--device".into(), self.device.into()];
        full.extend(argv);
        crate::run_argv(&full).with_context(|| format!("stage {} failed", stage.name))?;
        let seconds = start.elapsed().as_secs_f64();
        write_json(&self.stages_dir, &record_name, &StageRecord { key, command: stage.argv, finished: true, seconds })?;
        eprintln!("== {}: done in {seconds:.0} s", stage.name);
        Ok(StageSummary { name: stage.name.into(), command, reused: false, seconds })
    }
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

/// Runs `uae quickstart` on `device` (the `--device` spec).
pub fn run(args: QuickstartArgs, device: &str) -> Result<()> {
    let data = match &args.data {
        Some(d) => d.clone(),
        None => {
            let d = uae_cache().join("data/python-faq");
            if !d.join("corpus.jsonl").is_file() {
                bail!("{} is missing: run scripts/quickstart.sh, which builds it, or give --data", d.display());
            }
            d
        }
    };
    let student = match &args.student {
        Some(s) => s.clone(),
        None => s(&fetched_model("all-MiniLM-L6-v2", "minilm")?),
    };
    let teacher = match &args.teacher {
        Some(t) => t.clone(),
        None => s(&fetched_model("SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2")?),
    };
    let out = args.out.clone().unwrap_or_else(|| uae_cache().join("quickstart"));
    let stages_dir = out.join("stages");
    for dir in [&stages_dir, &out.join("configs")] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let local = |p: &str| if Path::new(p).exists() { vec![PathBuf::from(p)] } else { vec![] };
    let data_s = s(&data);
    let base_index = out.join("indexes/base");
    let candidates = out.join("candidates.jsonl");
    // QASPER-style data (a pools.jsonl) mines within each query's own document.
    let pool = if data.join(uae_index::data::beir::POOLS).is_file() { "document" } else { "corpus" };
    let labels = out.join("labels.jsonl");
    let started = Instant::now();
    let mut runner = Runner { stages_dir: stages_dir.clone(), device, force: args.force, summary: Vec::new() };

    runner.run(Stage {
        name: "index-base",
        argv: vec!["index".into(), "build".into(), "--model".into(), student.clone(), "--corpus".into(), s(&data.join("corpus.jsonl")), "--out".into(), s(&base_index)],
        inputs: [local(&student), vec![data.join("corpus.jsonl")]].concat(),
        outputs: vec![base_index.clone()],
        resumable: false,
    })?;
    runner.run(Stage {
        name: "mine",
        argv: vec![
            "mine".into(), "--model".into(), student.clone(), "--index".into(), s(&base_index), "--data".into(), data_s.clone(),
            "--split".into(), "train".into(), "--k".into(), args.candidates.to_string(), "--pool".into(), pool.into(),
            "--out".into(), s(&candidates),
        ],
        inputs: [local(&student), vec![data.clone(), base_index.clone()]].concat(),
        outputs: vec![candidates.clone()],
        resumable: false,
    })?;
    check_hygiene(&data, &candidates, &args.split)?;
    runner.run(Stage {
        name: "label",
        argv: vec![
            "label".into(), "--teacher".into(), teacher.clone(), "--data".into(), data_s.clone(),
            "--candidates".into(), s(&candidates), "--out".into(), s(&labels),
        ],
        inputs: [local(&teacher), vec![data.clone(), candidates.clone()]].concat(),
        outputs: vec![labels.clone(), labels.with_extension("jsonl.meta.json")],
        resumable: true,
    })?;
    for (name, loss) in [("infonce", "infonce"), ("uae", "um-infonce")] {
        let config = out.join("configs").join(format!("{name}.toml"));
        let text = format!(
            "# Written by `uae quickstart`.\nepochs = {}\nbatch_size = {}\nlr = {}\nmax_length = {}\nlog_every = 1\n\n\
             [loss]\nkind = \"{loss}\"\ntau_u = {}\n\n[sampling]\ncandidates = {}\n",
            args.epochs, args.batch_size, args.lr, args.max_length, args.tau_u, args.train_candidates
        );
        if std::fs::read_to_string(&config).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&config, &text).with_context(|| format!("cannot write {}", config.display()))?;
        }
        let run_dir = out.join("runs").join(name);
        let model_dir = out.join("models").join(name);
        runner.run(Stage {
            name: if name == "uae" { "train-uae" } else { "train-infonce" },
            argv: vec![
                "train".into(), "--model".into(), student.clone(), "--data".into(), data_s.clone(), "--labels".into(), s(&labels),
                "--out".into(), s(&run_dir), "--config".into(), s(&config),
            ],
            inputs: [local(&student), vec![data.clone(), labels.clone(), config.clone()]].concat(),
            outputs: vec![run_dir.clone()],
            resumable: true,
        })?;
        runner.run(Stage {
            name: if name == "uae" { "export-uae" } else { "export-infonce" },
            argv: vec!["export".into(), "--run".into(), s(&run_dir), "--out".into(), s(&model_dir)],
            inputs: vec![run_dir.join("model.safetensors"), run_dir.join("train_config.json")],
            outputs: vec![model_dir.clone()],
            resumable: false,
        })?;
    }
    let report = out.join("report");
    let pipeline = out.join("pipeline.json");
    write_json(
        &out,
        "pipeline.json",
        &serde_json::json!({
            "data": data_s, "student": student, "teacher": teacher, "candidates": args.candidates,
            "train_candidates": args.train_candidates, "tau_u": args.tau_u,
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "max_length": args.max_length,
            "stages": runner.summary,
        }),
    )?;
    let models = [("base", PathBuf::from(&student)), ("infonce", out.join("models/infonce")), ("uae", out.join("models/uae"))];
    let mut argv = vec!["eval".into(), "--data".into(), data_s.clone(), "--split".into(), args.split.clone()];
    for (name, path) in &models {
        argv.extend(["--model".into(), format!("{name}={}", s(path))]);
    }
    argv.extend([
        "--indexes".into(), s(&out.join("indexes")), "--rerank-teacher".into(), teacher.clone(),
        "--rerank-k".into(), args.rerank_k.to_string(), "--max-new-tokens".into(), args.max_new_tokens.to_string(),
        "--labels".into(), s(&labels),
        "--run".into(), format!("infonce={}", s(&out.join("runs/infonce"))),
        "--run".into(), format!("uae={}", s(&out.join("runs/uae"))),
        "--pipeline-config".into(), s(&pipeline), "--report".into(), s(&report),
    ]);
    runner.run(Stage {
        name: "eval",
        argv,
        inputs: [local(&student), local(&teacher), vec![data.clone(), labels.clone(), out.join("models")]].concat(),
        outputs: vec![report.join("report.json")],
        resumable: false,
    })?;
    eprintln!("\nstage            seconds  reused");
    for st in &runner.summary {
        eprintln!("{:<16} {:>7.0}  {}", st.name, st.seconds, if st.reused { "yes" } else { "no" });
    }
    eprintln!(
        "quickstart finished in {:.0} s; report: {}",
        started.elapsed().as_secs_f64(),
        report.join("report.md").display()
    );
    if runner.summary.last().is_some_and(|s| s.reused) {
        let text = std::fs::read_to_string(report.join("report.md"))
            .with_context(|| format!("cannot read {}", report.join("report.md").display()))?;
        print!("{text}");
    }
    Ok(())
}

/// Checks the mined training candidates against the evaluated and dev splits.
fn check_hygiene(data: &Path, candidates: &Path, split: &str) -> Result<()> {
    let qrels_dir = data.join("qrels");
    let mut held_out = vec![split.to_string()];
    if split != "dev" && qrels_dir.join("dev.tsv").is_file() {
        held_out.push("dev".into());
    }
    let splits: Vec<&str> = std::iter::once("train").chain(held_out.iter().map(String::as_str)).collect();
    let set = DataSet::load(data, &splits)?;
    let lines: Vec<CandidateLine> = uae_model::jsonl::read(&candidates.display().to_string())?;
    let held: Vec<&str> = held_out.iter().map(String::as_str).collect();
    check_split_hygiene(&set, &lines, "train", &held, &candidates.display().to_string())
}
