//! `uae index build|add|merge|push|hnsw|bench` and `uae search`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};
use uae_data::fingerprint::fingerprint;
use uae_data::{Hit, Shard};
use uae_index::corpus_index::{self, Searcher};
use uae_data::beir::{read_corpus, read_queries};
use uae_index::hnsw::{HnswIndex, HnswParams};
use uae_index::qdrant;
use uae_index::store::{self, VectorStore};
use uae_data::Run;
use uae_data::trec::write_run;
use uae_model::encoder::{BiEncoder, EncoderOptions};
use uae_data::jsonl::JsonlWriter;
use uae_data::lock::claim_folder;

use crate::{progress, stdout};

mod bench;

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
    /// Embed more passages and append them to an existing index (and insert
    /// them into its HNSW graph, if any).
    Add(AddArgs),
    /// Merge shard indexes (`uae index build --shard i/n`) into one index,
    /// rows in corpus order: the index an unsharded build writes.
    Merge(MergeArgs),
    /// Copy an index into a Qdrant collection (created with cosine distance
    /// when missing); resumes a killed push.
    Push(PushArgs),
    /// Build (or rebuild) the HNSW graph of an existing index from its
    /// stored vectors; no model is needed.
    Hnsw(HnswArgs),
    /// Measure exact and HNSW search (queries/s, recall@k) on vectors from
    /// .npy files; prints JSON. See scripts/bench_search.sh.
    Bench(bench::BenchArgs),
}

/// HNSW construction and search parameters.
#[derive(Args)]
pub(crate) struct HnswOptions {
    /// HNSW links per point (twice as many on the base layer).
    #[arg(long, default_value_t = HnswParams::default().m)]
    hnsw_m: usize,
    /// HNSW candidate list length while building.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    hnsw_ef_construction: usize,
    /// Fix the HNSW candidate list length for k = 10 (scaled with k) instead
    /// of calibrating it.
    #[arg(long)]
    hnsw_ef_search: Option<usize>,
    /// Calibrate the HNSW candidate list length at build time so that
    /// recall@10 against exact search reaches this on held-out vectors.
    #[arg(long, conflicts_with = "hnsw_ef_search", default_value_t = HnswParams::default().target_recall.unwrap_or(0.95))]
    hnsw_target_recall: f64,
}

impl HnswOptions {
    pub(crate) fn params(&self) -> HnswParams {
        let (ef_search, target_recall) = match self.hnsw_ef_search {
            Some(ef) => (ef, None),
            None => (HnswParams::default().ef_search, Some(self.hnsw_target_recall)),
        };
        HnswParams { m: self.hnsw_m, ef_construction: self.hnsw_ef_construction, ef_search, target_recall }
    }
}

/// Describes a freshly built graph: its efSearch and, when calibrated, the
/// recall and cost measured, with a hint when exact search may be as fast.
fn describe_graph(graph: &HnswIndex) -> String {
    let ef = graph.params().ef_search;
    let Some(c) = graph.calibration() else {
        return format!("efSearch {ef} (fixed)");
    };
    let target = graph.params().target_recall.unwrap_or(0.0);
    let mut text = format!(
        "efSearch {ef}, calibrated on {} held-out vectors: recall@10 {:.3} (95% lower bound {:.3}, target {target}), \
         each query scoring {:.1}% of the index",
        c.queries,
        c.recall,
        c.recall_lower_bound,
        100.0 * c.scored_fraction
    );
    if c.recall_lower_bound < target {
        text.push_str("; the target was not reached");
    }
    if c.scored_fraction > 0.2 {
        text.push_str("; exact search (`uae search --exact`) may be as fast on these vectors");
    }
    text
}

#[derive(Args)]
struct BuildArgs {
    /// The bi-encoder: a model directory or hub id.
    #[arg(long)]
    model: String,
    /// The corpus, BEIR corpus.jsonl format.
    #[arg(long)]
    corpus: String,
    /// The index directory to write: a new or empty folder, or an index to
    /// replace.
    #[arg(long)]
    out: PathBuf,
    /// Write into --out even when it is a folder of other files (they are
    /// kept, but any of the index's own file names is replaced).
    #[arg(long)]
    force: bool,
    /// Padded tokens per forward pass.
    #[arg(long, default_value_t = 1024)]
    batch_tokens: usize,
    /// Also build an HNSW graph for approximate search.
    #[arg(long)]
    hnsw: bool,
    #[command(flatten)]
    hnsw_options: HnswOptions,
    /// Embed only the passages at positions i mod n of the corpus, e.g. 0/4,
    /// into a shard index for `uae index merge` (one per machine).
    #[arg(long, conflicts_with = "hnsw")]
    shard: Option<Shard>,
}

#[derive(Args)]
struct PushArgs {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// Qdrant's gRPC address, e.g. http://127.0.0.1:6334 (QDRANT_API_KEY is sent when set).
    #[arg(long)]
    qdrant: String,
    /// The collection.
    #[arg(long)]
    collection: String,
    /// Shards of a new collection.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// Copies of each shard of a new collection.
    #[arg(long, default_value_t = 1)]
    replicas: u32,
    /// Points per upsert.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// The corpus (BEIR corpus.jsonl), to keep each passage's title in its payload.
    #[arg(long)]
    corpus: Option<String>,
}

#[derive(Args)]
struct MergeArgs {
    /// The merged index directory: a new or empty folder, or an index to replace.
    #[arg(long)]
    out: PathBuf,
    /// Write into --out even when it is a folder of other files.
    #[arg(long)]
    force: bool,
    /// Also build an HNSW graph for approximate search.
    #[arg(long)]
    hnsw: bool,
    #[command(flatten)]
    hnsw_options: HnswOptions,
    /// The shard index directories.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
}

#[derive(Args)]
struct HnswArgs {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    #[command(flatten)]
    hnsw_options: HnswOptions,
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
    #[arg(long, required_unless_present = "qdrant", conflicts_with = "qdrant")]
    index: Option<PathBuf>,
    /// Search a Qdrant collection instead (`uae index push` fills it): its
    /// gRPC address, e.g. http://127.0.0.1:6334.
    #[arg(long, requires = "collection")]
    qdrant: Option<String>,
    /// The Qdrant collection.
    #[arg(long, requires = "qdrant")]
    collection: Option<String>,
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
    /// Score every vector even when the index has an HNSW graph.
    #[arg(long)]
    exact: bool,
    /// HNSW candidate list length for k = 10, instead of the graph's own.
    #[arg(long, conflicts_with = "exact")]
    ef_search: Option<usize>,
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
            claim_folder(&a.out, &a.out.join(store::HEADER), "an index", a.force)?;
            let passages = read_corpus(&a.corpus)?;
            let encoder = load_encoder(&a.model, device)?;
            if let Some(shard) = a.shard {
                let corpus = fingerprint(std::path::Path::new(&a.corpus))?;
                let mine = passages.as_slice().iter().enumerate().filter(|(i, _)| shard.holds(*i)).count();
                let bar = progress::bar(mine as u64, "passages");
                let n = corpus_index::build_shard(
                    &encoder,
                    &a.model,
                    passages.as_slice(),
                    corpus,
                    shard,
                    &a.out,
                    a.batch_tokens,
                    |n| bar.inc(n as u64),
                )?;
                bar.finish_and_clear();
                eprintln!("indexed shard {shard}: {n} of {} passages into {}", passages.len(), a.out.display());
                return Ok(());
            }
            let hnsw = a.hnsw.then(|| a.hnsw_options.params());
            let bar = progress::bar(passages.len() as u64, "passages");
            let progress = |n| bar.inc(n as u64);
            let graph =
                corpus_index::build(&encoder, &a.model, passages.as_slice(), &a.out, a.batch_tokens, hnsw, progress)?;
            bar.finish_and_clear();
            eprintln!("indexed {} passages into {}", passages.len(), a.out.display());
            if let Some(graph) = graph {
                eprintln!("HNSW graph: {}", describe_graph(&graph));
            }
        }
        IndexCommand::Merge(a) => {
            claim_folder(&a.out, &a.out.join(store::HEADER), "an index", a.force)?;
            let hnsw = a.hnsw.then(|| a.hnsw_options.params());
            let (n, graph) = corpus_index::merge_shards(&a.shards, &a.out, hnsw)?;
            eprintln!("merged {} shards: {n} passages into {}", a.shards.len(), a.out.display());
            if let Some(graph) = graph {
                eprintln!("HNSW graph: {}", describe_graph(&graph));
            }
        }
        IndexCommand::Push(a) => {
            let store = VectorStore::open(&a.index)?;
            let titles = match &a.corpus {
                Some(path) => read_corpus(path)?.as_slice().iter().filter(|p| !p.title.is_empty()).map(|p| (p.id.clone(), p.title.clone())).collect(),
                None => Default::default(),
            };
            let collection = qdrant::Collection { url: a.qdrant.clone(), name: a.collection.clone() };
            let options = qdrant::PushOptions { shards: a.shards, replicas: a.replicas, batch: a.batch };
            let bar = progress::bar(store.ids().len() as u64, "points");
            let report = qdrant::push(&store, &collection, options, &titles, |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            eprintln!(
                "pushed {} points to collection {:?} at {}{}",
                report.written,
                a.collection,
                a.qdrant,
                if report.resumed > 0 { format!(" ({} were there already)", report.resumed) } else { String::new() }
            );
        }
        IndexCommand::Add(a) => {
            let passages = read_corpus(&a.corpus)?;
            let model = match a.model {
                Some(m) => m,
                None => VectorStore::open(&a.index)?.header().model.name.clone(),
            };
            let encoder = load_encoder(&model, device)?;
            let bar = progress::bar(passages.len() as u64, "passages");
            let graph =
                corpus_index::add(&encoder, &model, passages.as_slice(), &a.index, a.batch_tokens, |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            eprintln!("added {} passages to {}", passages.len(), a.index.display());
            match graph {
                Some((graph, true)) => eprintln!("inserted them into its HNSW graph: {}", describe_graph(&graph)),
                Some((graph, false)) => eprintln!("rebuilt its stale HNSW graph: {}", describe_graph(&graph)),
                None => {}
            }
        }
        IndexCommand::Bench(a) => bench::run(a)?,
        IndexCommand::Hnsw(a) => {
            let graph = corpus_index::build_graph(&a.index, a.hnsw_options.params())?;
            let (n, dir) = (graph.len(), a.index.display());
            eprintln!("built an HNSW graph over the {n} vectors of {dir}: {}", describe_graph(&graph));
        }
    }
    Ok(())
}

/// Runs `uae search`.
pub fn run_search(args: SearchArgs, device: &Device) -> Result<()> {
    if args.k == 0 {
        bail!("-k must be at least 1");
    }
    let (ids, texts): (Vec<String>, Vec<String>) = match (&args.query, &args.queries) {
        (Some(text), _) => (vec!["q".into()], vec![text.clone()]),
        (None, Some(path)) => read_queries(path)?.as_slice().iter().map(|q| (q.id.clone(), q.text.clone())).unzip(),
        (None, None) => unreachable!("clap requires --query or --queries"),
    };
    let results = match (&args.index, &args.qdrant, &args.collection) {
        (Some(index), _, _) => {
            let store = VectorStore::open(index)?;
            let model = args.model.clone().unwrap_or_else(|| store.header().model.name.clone());
            let encoder = load_encoder(&model, device)?;
            store.check_model(&corpus_index::model_stamp(&encoder, &model)?, encoder.dim())?;
            let mut searcher = Searcher::open(index, &store, args.exact)?;
            match (&mut searcher, args.ef_search) {
                (Searcher::Hnsw(graph), Some(ef)) => graph.set_ef_search(ef),
                (Searcher::Exact, Some(_)) => bail!("--ef-search needs an HNSW graph, and {} has none", index.display()),
                _ => {}
            }
            corpus_index::search_texts(&store, &searcher, &encoder, &texts, args.k, args.batch_tokens)?
        }
        (None, Some(url), Some(name)) => {
            let client = qdrant::Client::connect(&qdrant::Collection { url: url.clone(), name: name.clone() })?;
            // The queries are embedded by the model the points were made with.
            let model = match args.model.clone() {
                Some(model) => model,
                None => client.model()?.name,
            };
            let encoder = load_encoder(&model, device)?;
            client.check_model(&encoder, &model)?;
            client.search_texts(&encoder, &texts, args.k, args.batch_tokens, args.exact)?
        }
        _ => unreachable!("clap requires --index or --qdrant with --collection"),
    };
    if args.query.is_some() && args.run_out.is_none() {
        let lines: String =
            results[0].iter().enumerate().map(|(rank, Hit { id, score })| format!("{}\t{score:.6}\t{id}\n", rank + 1)).collect();
        stdout::print(&lines)?;
        return Ok(());
    }
    let mut run = Run::default();
    for (qid, hits) in ids.iter().zip(&results) {
        for hit in hits {
            run.insert(qid.clone(), hit.id.clone(), hit.score);
        }
    }
    let target = args.run_out.as_deref().unwrap_or("-");
    let mut writer = JsonlWriter::create(target)?;
    write_run(&run, "uae", writer.writer()).with_context(|| format!("cannot write the run to {target}"))?;
    writer.finish()
}
