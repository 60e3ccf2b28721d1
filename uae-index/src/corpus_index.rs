//! A corpus index tied to the bi-encoder that built it: embedding passages
//! into a [`VectorStore`], optionally with an HNSW graph over them, adding
//! more, answering text queries, and building one in shards on several
//! machines that merge back into the index an unsharded build writes.
//!
//! The graph, when the index has one, is kept consistent with the vectors:
//! building without a graph removes a stale one, and adding passages
//! inserts them into it (or rebuilds it with the parameters it was built
//! with, when the saved graph no longer matches the vectors).
//!
//! Every write holds the index folder's [`Lock`] from before it reads the
//! index until its last file is in place, so two writers never lose each
//! other's passages: the second is refused while the first runs.

use std::path::{Path, PathBuf};

use anyhow::Result;
use uae_model::encoder::{BiEncoder, TextRole};

use uae_data::lock::Lock;
use uae_data::{Passage, Ranking, Shard};

use crate::exact::{self, Hit};
use crate::hnsw::{HnswIndex, HnswParams};
use crate::store::{ModelStamp, ShardOf, VectorStore};

/// The stamp an index records for `encoder`, named `name` (the model
/// argument the user gave).
pub fn model_stamp(encoder: &BiEncoder, name: &str) -> Result<ModelStamp> {
    Ok(ModelStamp { name: name.to_string(), fingerprint: encoder.fingerprint()? })
}

/// Embeds `passages` as passages and returns their vectors in order;
/// `progress` is called with the number of passages finished.
fn embed_passages(
    encoder: &BiEncoder,
    passages: &[Passage],
    batch_tokens: usize,
    progress: impl FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    let texts: Vec<String> = passages.iter().map(Passage::embedding_text).collect();
    Ok(encoder.embed(&texts, TextRole::Passage, batch_tokens, progress)?.vectors)
}

/// Embeds `passages` and writes a new index to `dir`, with an HNSW graph
/// built with `hnsw` when given (and without any graph a previous index in
/// `dir` had, otherwise). Returns the graph. Refused while another process
/// writes `dir`.
pub fn build(
    encoder: &BiEncoder,
    model_name: &str,
    passages: &[Passage],
    dir: &Path,
    batch_tokens: usize,
    hnsw: Option<HnswParams>,
    progress: impl FnMut(usize),
) -> Result<Option<HnswIndex>> {
    let _lock = Lock::acquire(dir)?;
    let vectors = embed_passages(encoder, passages, batch_tokens, progress)?;
    let ids: Vec<String> = passages.iter().map(|p| p.id.clone()).collect();
    HnswIndex::remove(dir)?;
    VectorStore::create(dir, model_stamp(encoder, model_name)?, encoder.dim(), &ids, &vectors)?;
    hnsw.map(|params| save_graph(dir, params)).transpose()
}

/// Embeds the passages of `shard` (positions `i mod n` of `passages`, the
/// corpus whose file has fingerprint `corpus`) into a shard index in `dir`
/// for [`merge_shards`]; returns how many it holds. Refused while another
/// process writes `dir`.
#[allow(clippy::too_many_arguments)]
pub fn build_shard(
    encoder: &BiEncoder,
    model_name: &str,
    passages: &[Passage],
    corpus: u64,
    shard: Shard,
    dir: &Path,
    batch_tokens: usize,
    progress: impl FnMut(usize),
) -> Result<usize> {
    let _lock = Lock::acquire(dir)?;
    let mine: Vec<Passage> = passages.iter().enumerate().filter(|(i, _)| shard.holds(*i)).map(|(_, p)| p.clone()).collect();
    let vectors = embed_passages(encoder, &mine, batch_tokens, progress)?;
    let ids: Vec<String> = mine.iter().map(|p| p.id.clone()).collect();
    HnswIndex::remove(dir)?;
    let of = ShardOf { shard: shard.to_string(), corpus_count: passages.len(), corpus: format!("{corpus:016x}") };
    VectorStore::create_shard(dir, model_stamp(encoder, model_name)?, encoder.dim(), &ids, &vectors, of)?;
    Ok(ids.len())
}

/// Merges shard indexes ([`build_shard`]) into one index in `out`, its rows
/// back in corpus order, so that it equals an index built unsharded; with
/// `hnsw`, builds its graph. Refused, naming the folders: a folder that is
/// not a shard, shards of another model or corpus, a shard given twice or
/// missing, and one that does not hold its share of the corpus. Returns the
/// number of passages and the graph.
pub fn merge_shards(shards: &[PathBuf], out: &Path, hnsw: Option<HnswParams>) -> Result<(usize, Option<HnswIndex>)> {
    let _lock = Lock::acquire(out)?;
    let stores = shards.iter().map(|dir| VectorStore::open(dir)).collect::<Result<Vec<_>>>()?;
    let Some(first) = stores.first() else { anyhow::bail!("give the shard indexes to merge") };
    let of = |i: usize| -> Result<(&ShardOf, Shard)> {
        let of = stores[i].header().shard.as_ref().ok_or_else(|| {
            anyhow::anyhow!("{} is a whole index, not a shard (`uae index build --shard i/n` writes shards)", shards[i].display())
        })?;
        Ok((of, of.shard.parse()?))
    };
    let (reference, shard0) = of(0)?;
    let count = shard0.count;
    let mut by_index: Vec<Option<usize>> = vec![None; count];
    for (i, store) in stores.iter().enumerate() {
        let (this, shard) = of(i)?;
        if store.header().model != first.header().model || store.header().dim != first.header().dim {
            anyhow::bail!("{} and {} were built with other models; only shards of one build merge", shards[0].display(), shards[i].display());
        }
        if (this.corpus_count, &this.corpus, shard.count) != (reference.corpus_count, &reference.corpus, count) {
            anyhow::bail!(
                "{} (shard {shard} of {} passages, corpus {}) and {} (shard {shard0} of {} passages, corpus {}) are not shards of one corpus",
                shards[i].display(),
                this.corpus_count,
                this.corpus,
                shards[0].display(),
                reference.corpus_count,
                reference.corpus
            );
        }
        let expected = (reference.corpus_count + count - 1 - shard.index) / count;
        if store.ids().len() != expected {
            anyhow::bail!("{} holds {} passages; shard {shard} of {} has {expected}", shards[i].display(), store.ids().len(), reference.corpus_count);
        }
        if let Some(other) = by_index[shard.index].replace(i) {
            anyhow::bail!("{} and {} are both shard {shard}", shards[other].display(), shards[i].display());
        }
    }
    let missing: Vec<String> = (0..count).filter(|&i| by_index[i].is_none()).map(|i| format!("{i}/{count}")).collect();
    if !missing.is_empty() {
        anyhow::bail!("shard {} missing: every shard of the corpus is needed", missing.join(", "));
    }
    let dim = first.header().dim;
    let total = reference.corpus_count;
    let mut ids = Vec::with_capacity(total);
    let mut rows = Vec::with_capacity(total * dim);
    for position in 0..total {
        let store = &stores[by_index[position % count].expect("every shard is present")];
        let row = position / count;
        ids.push(store.ids()[row].clone());
        rows.extend_from_slice(&store.vectors()[row * dim..(row + 1) * dim]);
    }
    HnswIndex::remove(out)?;
    VectorStore::create_from_rows(out, first.header().model.clone(), dim, &ids, &rows)?;
    let graph = hnsw.map(|params| save_graph(out, params)).transpose()?;
    Ok((total, graph))
}

/// Opens the index in `dir` for reuse as the vectors of `passages` under
/// `encoder`: an error when another model built it, or when its documents
/// are not exactly `passages`' ids in order.
pub fn open_matching(dir: &Path, encoder: &BiEncoder, model_name: &str, passages: &[Passage]) -> Result<VectorStore> {
    let store = VectorStore::open(dir)?;
    store.check_model(&model_stamp(encoder, model_name)?, encoder.dim())?;
    let same = store.ids().len() == passages.len() && store.ids().iter().zip(passages).all(|(id, p)| *id == p.id);
    if !same {
        anyhow::bail!(
            "the index in {} holds {} documents that are not the data set's {} passages in order; rebuild it from this corpus",
            dir.display(),
            store.ids().len(),
            passages.len()
        );
    }
    Ok(store)
}

/// Builds an HNSW graph over the vectors of the index in `dir` and saves it
/// there, replacing any graph it had. Refused while another process writes
/// `dir`.
pub fn build_graph(dir: &Path, params: HnswParams) -> Result<HnswIndex> {
    let _lock = Lock::acquire(dir)?;
    save_graph(dir, params)
}

/// [`build_graph`] for a caller that holds the lock of `dir`.
fn save_graph(dir: &Path, params: HnswParams) -> Result<HnswIndex> {
    let store = VectorStore::open(dir)?;
    let graph = HnswIndex::build(store.vectors(), store.header().dim, params)?;
    graph.save(dir, &store)?;
    Ok(graph)
}

/// Embeds `passages` and appends them to the index in `dir`, which must
/// have been built with the same model. A graph the index has takes the new
/// rows ([`HnswIndex::insert`]) and is returned with whether it was grown
/// (`false`: it was stale, left by an interrupted add, and was rebuilt over
/// all the vectors with the parameters it was built with). Refused while
/// another process writes `dir`.
pub fn add(
    encoder: &BiEncoder,
    model_name: &str,
    passages: &[Passage],
    dir: &Path,
    batch_tokens: usize,
    progress: impl FnMut(usize),
) -> Result<Option<(HnswIndex, bool)>> {
    let _lock = Lock::acquire(dir)?;
    let store = VectorStore::open(dir)?;
    let stamp = model_stamp(encoder, model_name)?;
    store.check_model(&stamp, encoder.dim())?;
    // Read before anything is written, so an unreadable graph header stops
    // the command early.
    let params = HnswIndex::saved_params(dir)?;
    let current = params.and_then(|_| HnswIndex::load(dir, &store).ok());
    let vectors = embed_passages(encoder, passages, batch_tokens, progress)?;
    let ids: Vec<String> = passages.iter().map(|p| p.id.clone()).collect();
    store.add(&stamp, &ids, &vectors)?;
    match (current, params) {
        (Some(mut graph), _) => {
            let store = VectorStore::open(dir)?;
            graph.insert(store.vectors())?;
            graph.save(dir, &store)?;
            Ok(Some((graph, true)))
        }
        (None, Some(params)) => Ok(Some((save_graph(dir, params)?, false))),
        (None, None) => Ok(None),
    }
}

/// How an index is searched.
pub enum Searcher {
    /// Every vector is scored.
    Exact,
    /// The HNSW graph is walked.
    Hnsw(HnswIndex),
}

impl Searcher {
    /// The HNSW graph of the index in `dir` when it has one and `exact` is
    /// not set, else exact search. A graph that does not match `store` is an
    /// error.
    pub fn open(dir: &Path, store: &VectorStore, exact: bool) -> Result<Self> {
        if exact || !HnswIndex::exists(dir) {
            return Ok(Self::Exact);
        }
        Ok(Self::Hnsw(HnswIndex::load(dir, store)?))
    }

    /// The `k` best rows of `store` for each of `queries` (row-major,
    /// normalised), in ranking order.
    pub fn search(&self, store: &VectorStore, queries: &[f32], k: usize) -> Vec<Vec<Hit>> {
        match self {
            Self::Exact => exact::search(store.vectors(), store.ids(), store.header().dim, queries, k),
            Self::Hnsw(graph) => graph.search(store.vectors(), store.ids(), queries, k),
        }
    }
}

/// Embeds `queries` as queries with `encoder` and returns the `k` best
/// documents of `store` for each by `searcher`, in ranking order.
pub fn search_texts(
    store: &VectorStore,
    searcher: &Searcher,
    encoder: &BiEncoder,
    queries: &[String],
    k: usize,
    batch_tokens: usize,
) -> Result<Vec<Ranking>> {
    let flat = crate::store::unit_rows(encoder.embed(queries, TextRole::Query, batch_tokens, |_| {})?.vectors);
    Ok(searcher.search(store, &flat, k).iter().map(|hits| exact::ranking_of(hits, store.ids())).collect())
}
