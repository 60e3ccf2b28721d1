//! `uae mine`: candidate pools for the teacher to label.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use uae_data::{CandidateLine, DataSet};
use uae_data::lock::Lock;
use uae_index::corpus_index;
use uae_index::mine::{self, DenseSource, MineOptions, Retriever};
use uae_model::encoder::{BiEncoder, EncoderOptions};

use crate::progress::Bars;

/// Where each query's candidates are searched.
#[derive(Clone, Copy, ValueEnum)]
enum Pool {
    /// The whole corpus.
    Corpus,
    /// The query's own document (per-document pools, QASPER-style).
    Document,
}

/// Arguments of `uae mine`.
#[derive(Args)]
pub struct MineArgs {
    /// The bi-encoder for dense retrieval (unused with --bm25).
    #[arg(long, required_unless_present = "bm25")]
    model: Option<String>,
    /// A data set: a folder in the BEIR layout, or a QASPER JSON file (its
    /// questions are taken as the --split split, each with its paper's
    /// paragraphs as the document pool).
    #[arg(long)]
    data: String,
    /// The split whose queries get candidates (qrels/<split>.tsv).
    #[arg(long, default_value = "train")]
    split: String,
    /// Candidates per query.
    #[arg(long, default_value_t = 16)]
    k: usize,
    /// Output, lines {"query_id", "doc_ids", "relevant", "inserted"}.
    #[arg(long)]
    out: String,
    /// Retrieve with BM25 only.
    #[arg(long, conflicts_with = "hybrid")]
    bm25: bool,
    /// Fuse dense and BM25 rankings by reciprocal rank.
    #[arg(long)]
    hybrid: bool,
    /// Search the whole corpus or each query's own document.
    #[arg(long, value_enum, default_value = "corpus")]
    pool: Pool,
    /// Reuse this index's passage vectors (built by `uae index build` with
    /// --model from the data set's corpus) instead of embedding the corpus.
    #[arg(long, requires = "model")]
    index: Option<PathBuf>,
    /// Padded tokens per forward pass.
    #[arg(long, default_value_t = 1024)]
    batch_tokens: usize,
}

/// Reads `path` as a QASPER file when it is a file, else as a BEIR folder.
fn load_data(path: &Path, split: &str) -> Result<DataSet> {
    if !path.is_file() {
        return DataSet::load_split(path, split);
    }
    let (data, report) = DataSet::from_qasper(&[(split, path)])?;
    eprintln!("{}: {report}", path.display());
    Ok(data)
}

/// Runs `uae mine`.
pub fn run(args: MineArgs, device: &Device) -> Result<()> {
    // The candidates file is replaced whole at the end: a second mine into
    // it is refused rather than silently replacing this one's.
    let _lock = (args.out != "-").then(|| Lock::acquire(Path::new(&args.out))).transpose()?;
    let data = load_data(Path::new(&args.data), &args.split)?;
    let retriever = match (args.bm25, args.hybrid, &args.model) {
        (true, _, _) => Retriever::Bm25,
        (_, true, _) => Retriever::Hybrid,
        (_, _, Some(_)) => Retriever::Dense,
        (_, _, None) => bail!("nothing to retrieve with: give --model, --bm25 or both with --hybrid"),
    };
    let options = MineOptions {
        split: args.split.clone(),
        k: args.k,
        retriever,
        per_document: matches!(args.pool, Pool::Document),
        batch_tokens: args.batch_tokens,
    };
    let encoder = match (&args.model, retriever) {
        (Some(model), Retriever::Dense | Retriever::Hybrid) => Some(BiEncoder::load(model, device, &EncoderOptions::default())?),
        _ => None,
    };
    let store = match (&encoder, &args.index, &args.model) {
        (Some(encoder), Some(index), Some(model)) => {
            Some(corpus_index::open_matching(index, encoder, model, data.corpus.as_slice())?)
        }
        _ => None,
    };
    let dense = encoder.as_ref().map(|encoder| DenseSource { encoder, corpus: store.as_ref().map(|s| s.vectors()) });
    let lines = mine::mine(&data, dense, &options, &Bars::default())?;
    uae_data::records::write_candidates(Path::new(&args.out), &lines)?;
    eprintln!("{}", summary(&lines, args.k, &args.split, &args.out));
    Ok(())
}

/// What `uae mine` wrote: how many candidates each query got, saying how
/// many got fewer than `k` (a pool or BM25's matches can be smaller).
fn summary(lines: &[CandidateLine], k: usize, split: &str, out: &str) -> String {
    let total: usize = lines.iter().map(|l| l.doc_ids.len()).sum();
    let short: Vec<usize> = lines.iter().map(|l| l.doc_ids.len()).filter(|&n| n < k).collect();
    let each = match short.iter().min() {
        None => format!("{k} for each"),
        Some(min) => format!(
            "{k} for {} of them, fewer for {} (as few as {min}: their pool or BM25's matches are smaller than --k)",
            lines.len() - short.len(),
            short.len()
        ),
    };
    let inserted: usize = lines.iter().map(|l| l.inserted.len()).sum();
    format!(
        "mined {total} candidates for {} {split} queries into {out}, {each}; \
         {inserted} relevant passages were missed by retrieval and inserted",
        lines.len()
    )
}
