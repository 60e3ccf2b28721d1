//! A corpus index tied to the bi-encoder that built it: embedding passages
//! into a [`VectorStore`], adding more, and answering text queries.

use std::path::Path;

use anyhow::Result;
use uae_model::encoder::{BiEncoder, TextRole};

use crate::data::Passage;
use crate::exact::{self, Hit};
use crate::store::{ModelStamp, VectorStore};

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

/// Embeds `passages` and writes a new index to `dir`.
pub fn build(
    encoder: &BiEncoder,
    model_name: &str,
    passages: &[Passage],
    dir: &Path,
    batch_tokens: usize,
    progress: impl FnMut(usize),
) -> Result<()> {
    let vectors = embed_passages(encoder, passages, batch_tokens, progress)?;
    let ids: Vec<String> = passages.iter().map(|p| p.id.clone()).collect();
    VectorStore::create(dir, model_stamp(encoder, model_name)?, encoder.dim(), &ids, &vectors)
}

/// Embeds `passages` and appends them to the index in `dir`, which must
/// have been built with the same model.
pub fn add(
    encoder: &BiEncoder,
    model_name: &str,
    passages: &[Passage],
    dir: &Path,
    batch_tokens: usize,
    progress: impl FnMut(usize),
) -> Result<()> {
    let store = VectorStore::open(dir)?;
    let stamp = model_stamp(encoder, model_name)?;
    store.check_model(&stamp, encoder.dim())?;
    let vectors = embed_passages(encoder, passages, batch_tokens, progress)?;
    let ids: Vec<String> = passages.iter().map(|p| p.id.clone()).collect();
    store.add(&stamp, &ids, &vectors)
}

/// A document id and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Document id.
    pub id: String,
    /// Cosine similarity.
    pub score: f32,
}

/// Embeds `queries` as queries with `encoder` and returns the `k` best
/// documents of `store` for each, best first (ties by document id).
pub fn search_texts(
    store: &VectorStore,
    encoder: &BiEncoder,
    queries: &[String],
    k: usize,
    batch_tokens: usize,
) -> Result<Vec<Vec<Scored>>> {
    let vectors = encoder.embed(queries, TextRole::Query, batch_tokens, |_| {})?.vectors;
    let mut flat = Vec::with_capacity(vectors.len() * encoder.dim());
    for mut v in vectors {
        crate::store::normalize(&mut v);
        flat.extend(v);
    }
    let dim = store.header().dim;
    let hits = exact::search(store.vectors(), store.ids(), dim, &flat, k);
    Ok(hits
        .into_iter()
        .map(|row| row.into_iter().map(|Hit { row, score }| Scored { id: store.ids()[row].clone(), score }).collect())
        .collect())
}
