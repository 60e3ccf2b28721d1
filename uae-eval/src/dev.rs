//! Held-out retrieval for model selection during training
//! ([`uae_train::select`]): the model embeds the corpus (or, with per-query
//! pools, the passages of the dev queries' pools) and the dev queries, exact
//! cosine search ranks each query's passages as `uae eval` does, and the
//! metrics are `uae eval`'s. The base model's passage vectors are computed
//! (or read from its index) once and reused by every evaluation whose
//! passages are the base's ([`PassageSide::Base`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::tensor::Device;
use uae_data::{DataSet, Run};
use uae_index::{corpus_index, exact};
use uae_index::store::unit_rows;
use uae_model::encoder::{BiEncoder, EncoderOptions, SentenceEmbedder, TextRole};
use uae_train::select::{DevEvaluator, DevQueries, PassageSide};

use crate::metrics::{self, DEFAULT_KS};

/// Passages ranked per dev query (the depth of MAP), as in `uae eval`.
pub const DEV_DEPTH: usize = 100;

/// Padded tokens per forward pass when embedding.
const BATCH_TOKENS: usize = 4096;

/// Scores a model by retrieval over a data set's corpus.
pub struct DevRetrieval {
    data: DataSet,
    /// The base model with the settings `uae eval` embeds with (pooling,
    /// prefixes, its own maximum length); its weights are replaced by those
    /// evaluated.
    encoder: BiEncoder,
    /// The base model as named for its corpus index.
    model: String,
    /// A corpus index of the base model whose vectors the base evaluation
    /// reuses when it matches (`uae index build` over the same corpus).
    base_index: Option<PathBuf>,
    /// The base model's modules, which embed [`PassageSide::Base`] passages.
    base: SentenceEmbedder,
    /// The base model's unit vectors of the rows dev queries rank, once
    /// computed.
    base_passages: Option<Vec<f32>>,
}

impl DevRetrieval {
    /// Retrieval over the corpus (and pools) of the BEIR folder `data`, with
    /// the tokenizer and sentence settings of the base `model`, on `device`.
    /// The base evaluation reuses `base_index` when it was built by `model`
    /// over this corpus.
    pub fn new(data: &Path, model: &str, base_index: Option<&Path>, device: &Device) -> Result<Self> {
        let encoder = BiEncoder::load(model, device, &EncoderOptions::default())?;
        Ok(Self {
            data: DataSet::load(data, &[])?,
            base: encoder.embedder.clone(),
            encoder,
            model: model.to_string(),
            base_index: base_index.map(Path::to_path_buf),
            base_passages: None,
        })
    }
}

impl DevEvaluator for DevRetrieval {
    fn evaluate(
        &mut self,
        embedder: &SentenceEmbedder,
        dev: &DevQueries,
        side: PassageSide,
    ) -> Result<BTreeMap<String, f64>> {
        let pooled = self.data.pools.is_some();
        let pools: Vec<Option<Vec<usize>>> =
            dev.queries.iter().map(|q| self.data.pool_rows(q, pooled)).collect::<Result<_>>()?;
        // The corpus rows any dev query may rank, in corpus order.
        let rows: Vec<usize> = if pooled {
            let mut rows: Vec<usize> = pools.iter().flatten().flatten().copied().collect();
            rows.sort_unstable();
            rows.dedup();
            rows
        } else {
            (0..self.data.corpus.len()).collect()
        };
        let corpus = self.data.corpus.as_slice();
        let ids: Vec<String> = rows.iter().map(|&r| corpus[r].id.clone()).collect();
        let dim = self.encoder.dim();
        let passages = match (side, &self.base_passages) {
            (PassageSide::Base, Some(vectors)) => vectors.clone(),
            (PassageSide::Base, None) => {
                // The encoder's fingerprint is of its files, the base's, so a
                // matching base index can stand in.
                let indexed = self.base_index.as_ref().and_then(|dir| {
                    corpus_index::open_matching(dir, &self.encoder, &self.model, corpus).ok()
                });
                let vectors: Vec<f32> = match indexed {
                    Some(store) => rows.iter().flat_map(|&r| store.vectors()[r * dim..(r + 1) * dim].iter().copied()).collect(),
                    None => {
                        self.encoder.embedder = self.base.clone();
                        self.embed_rows(&rows)?
                    }
                };
                self.base_passages = Some(vectors.clone());
                vectors
            }
            (PassageSide::Evaluated, _) => {
                self.encoder.embedder = embedder.clone();
                self.embed_rows(&rows)?
            }
        };
        self.encoder.embedder = embedder.clone();
        let query_texts: Vec<String> = dev.queries.iter().map(|q| q.text.clone()).collect();
        let queries = unit_rows(self.encoder.embed(&query_texts, TextRole::Query, BATCH_TOKENS, |_| {})?.vectors);
        // Pools as positions among the embedded rows.
        let local: Option<Vec<Vec<usize>>> = pooled.then(|| {
            pools
                .iter()
                .map(|pool| {
                    pool.iter().flatten().map(|r| rows.binary_search(r).expect("pool rows are embedded")).collect()
                })
                .collect()
        });
        let rankings = exact::search_pools(&passages, &ids, dim, &queries, local.as_deref(), DEV_DEPTH);
        let run = Run::from_triples(
            dev.queries.iter().zip(&rankings).flat_map(|(q, r)| r.iter().map(move |h| (q.id.clone(), h.id.clone(), h.score))),
        );
        Ok(metrics::evaluate(&dev.qrels, &run, &DEFAULT_KS).mean)
    }
}

impl DevRetrieval {
    /// The encoder's unit vectors of the corpus `rows`, row after row.
    fn embed_rows(&self, rows: &[usize]) -> Result<Vec<f32>> {
        let corpus = self.data.corpus.as_slice();
        let texts: Vec<String> = rows.iter().map(|&r| corpus[r].embedding_text()).collect();
        Ok(unit_rows(self.encoder.embed(&texts, TextRole::Passage, BATCH_TOKENS, |_| {})?.vectors))
    }
}
