//! `uae mine`: candidate pools for the teacher to label.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use uae_index::corpus_index;
use uae_index::data::DataSet;
use uae_index::mine::{self, Ranking};
use uae_model::encoder::{BiEncoder, EncoderOptions};
use uae_model::jsonl::JsonlWriter;

use crate::progress;

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
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let data = load_data(Path::new(&args.data), &args.split)?;
    let queries = mine::split_queries(&data, &args.split)?;
    let query_refs: Vec<_> = queries.iter().map(|(q, _)| *q).collect();
    let per_document = matches!(args.pool, Pool::Document);
    // Fusion looks deeper than k so that a passage ranked just below the cut
    // by one retriever can still win on agreement.
    let depth = if args.hybrid { args.k * 4 } else { args.k };
    let dense = match (&args.model, args.bm25) {
        (Some(model), false) => {
            let encoder = BiEncoder::load(model, device, &EncoderOptions::default())?;
            if let Some(index) = &args.index {
                let store = corpus_index::open_matching(index, &encoder, model, data.corpus.as_slice())?;
                let vectors = store.vectors();
                Some(mine::dense_rankings_over(&encoder, &data, vectors, &query_refs, per_document, depth, args.batch_tokens)?)
            } else {
                let bar = progress::bar(data.corpus.len() as u64, "passages");
                let r = mine::dense_rankings(&encoder, &data, &query_refs, per_document, depth, args.batch_tokens, |n| {
                    bar.inc(n as u64)
                })?;
                bar.finish_and_clear();
                Some(r)
            }
        }
        _ => None,
    };
    let lexical =
        if args.bm25 || args.hybrid { Some(mine::bm25_rankings(&data, &query_refs, per_document, depth)?) } else { None };
    let rankings: Vec<Ranking> = match (dense, lexical) {
        (Some(d), Some(l)) => d.iter().zip(&l).map(|(d, l)| mine::reciprocal_rank_fusion(&[d, l])).collect(),
        (Some(d), None) => d,
        (None, Some(l)) => l,
        (None, None) => bail!("nothing to retrieve with: give --model, --bm25 or both with --hybrid"),
    };
    let mut writer = JsonlWriter::create(&args.out)?;
    let mut inserted = 0;
    for ((query, relevant), ranking) in queries.iter().zip(&rankings) {
        let line = mine::with_relevant(&query.id, ranking, relevant, args.k)?;
        inserted += line.inserted.len();
        writer.write(&line)?;
    }
    writer.finish()?;
    eprintln!(
        "mined {} candidates for each of {} {} queries into {}; {inserted} relevant passages were missed by retrieval and inserted",
        args.k,
        queries.len(),
        args.split,
        args.out
    );
    Ok(())
}
