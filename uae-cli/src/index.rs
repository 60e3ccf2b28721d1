//! `uae index build|add` and `uae search`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};
use uae_index::corpus_index::{self, Scored};
use uae_index::data::beir::{read_corpus, read_queries};
use uae_index::store::VectorStore;
use uae_index::trec::{Run, write_run};
use uae_model::encoder::{BiEncoder, EncoderOptions};
use uae_model::jsonl::JsonlWriter;

use crate::progress;

/// `uae index`: build or extend an on-disk index.
#[derive(Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Embed a corpus ({"_id", "title", "text"} lines) into a new index.
    Build(BuildArgs),
    /// Embed more passages and append them to an existing index.
    Add(AddArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// The bi-encoder: a model directory or hub id.
    #[arg(long)]
    model: String,
    /// The corpus, BEIR corpus.jsonl format.
    #[arg(long)]
    corpus: String,
    /// The index directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Padded tokens per forward pass.
    #[arg(long, default_value_t = 1024)]
    batch_tokens: usize,
}

#[derive(Args)]
struct AddArgs {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// The passages to add, BEIR corpus.jsonl format.
    #[arg(long)]
    corpus: String,
    /// The bi-encoder (default: the one the index was built with).
    #[arg(long)]
    model: Option<String>,
    /// Padded tokens per forward pass.
    #[arg(long, default_value_t = 1024)]
    batch_tokens: usize,
}

/// `uae search`: the best passages of an index for text queries.
#[derive(Args)]
pub struct SearchArgs {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// The bi-encoder for the queries (default: the one the index was built with).
    #[arg(long)]
    model: Option<String>,
    /// One query text.
    #[arg(long, conflicts_with = "queries", required_unless_present = "queries")]
    query: Option<String>,
    /// Queries, BEIR queries.jsonl format ({"_id", "text"} lines).
    #[arg(long)]
    queries: Option<String>,
    /// How many passages per query.
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// Write the results as a TREC run file (default: print them).
    #[arg(long)]
    run_out: Option<String>,
    /// Padded tokens per forward pass.
    #[arg(long, default_value_t = 1024)]
    batch_tokens: usize,
}

fn load_encoder(model: &str, device: &Device) -> Result<BiEncoder> {
    BiEncoder::load(model, device, &EncoderOptions::default())
}

/// Runs `uae index`.
pub fn run_index(args: IndexArgs, device: &Device) -> Result<()> {
    match args.command {
        IndexCommand::Build(a) => {
            let passages = read_corpus(&a.corpus)?;
            let encoder = load_encoder(&a.model, device)?;
            let bar = progress::bar(passages.len() as u64, "passages");
            corpus_index::build(&encoder, &a.model, passages.as_slice(), &a.out, a.batch_tokens, |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            eprintln!("indexed {} passages into {}", passages.len(), a.out.display());
        }
        IndexCommand::Add(a) => {
            let passages = read_corpus(&a.corpus)?;
            let model = match a.model {
                Some(m) => m,
                None => VectorStore::open(&a.index)?.header().model.name.clone(),
            };
            let encoder = load_encoder(&model, device)?;
            let bar = progress::bar(passages.len() as u64, "passages");
            corpus_index::add(&encoder, &model, passages.as_slice(), &a.index, a.batch_tokens, |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            eprintln!("added {} passages to {}", passages.len(), a.index.display());
        }
    }
    Ok(())
}

/// Runs `uae search`.
pub fn run_search(args: SearchArgs, device: &Device) -> Result<()> {
    if args.k == 0 {
        bail!("-k must be at least 1");
    }
    let store = VectorStore::open(&args.index)?;
    let model = args.model.unwrap_or_else(|| store.header().model.name.clone());
    let encoder = load_encoder(&model, device)?;
    store.check_model(&corpus_index::model_stamp(&encoder, &model)?, encoder.dim())?;
    let (ids, texts): (Vec<String>, Vec<String>) = match (&args.query, &args.queries) {
        (Some(text), _) => (vec!["q".into()], vec![text.clone()]),
        (None, Some(path)) => read_queries(path)?.as_slice().iter().map(|q| (q.id.clone(), q.text.clone())).unzip(),
        (None, None) => unreachable!("clap requires --query or --queries"),
    };
    let results = corpus_index::search_texts(&store, &encoder, &texts, args.k, args.batch_tokens)?;
    if args.query.is_some() && args.run_out.is_none() {
        for (rank, Scored { id, score }) in results[0].iter().enumerate() {
            println!("{}\t{score:.6}\t{id}", rank + 1);
        }
        return Ok(());
    }
    let mut run = Run::default();
    for (qid, hits) in ids.iter().zip(&results) {
        for hit in hits {
            run.insert(qid.clone(), hit.id.clone(), hit.score as f64);
        }
    }
    let target = args.run_out.as_deref().unwrap_or("-");
    let mut writer = JsonlWriter::create(target)?;
    write_run(&run, "uae", writer.writer())?;
    writer.finish()
}
