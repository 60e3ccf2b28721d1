//! From labelled queries to padded tensors: each query and its `K`
//! candidates are tokenised once, with the model's prefixes and truncation
//! ([`tokenise`]), and the Burn [`Batcher`] pads every batch to its own
//! longest text ([`DistillBatcher`]).
//!
//! Tokenising up front rather than in the batcher means a tokeniser error is
//! reported once, before training starts, instead of inside a data-loader
//! thread that cannot return it, and each epoch reuses the ids.
//!
//! With a frozen passage encoder (`query_only`) the candidates are not
//! tokenised: they arrive as the frozen encoder's vectors, computed once.

use std::collections::HashMap;

use anyhow::{Result, bail};
use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;
use uae_model::bert::TokenBatch;
use uae_model::tokenize::{Encoded, TextTokenizer};

use crate::data::LabelledQuery;

/// One query and its candidates as token ids.
#[derive(Debug, Clone)]
pub struct TokenisedQuery {
    /// The query's id in `labels.jsonl`.
    pub query_id: String,
    /// The query's ids (with its prefix).
    pub query: Encoded,
    /// Each candidate, `K` of them.
    pub passages: CandidateItems,
    /// The teacher's utilities, `K`.
    pub utilities: Vec<f32>,
    /// Whether each candidate is judged relevant, `K`.
    pub relevant: Vec<bool>,
    /// Each candidate's passage id, `K`.
    pub doc_ids: Vec<String>,
}

/// A query's candidates as the model takes them.
#[derive(Debug, Clone)]
pub enum CandidateItems {
    /// Token ids (with the passage prefix), for the encoder under training.
    Tokens(Vec<Encoded>),
    /// The frozen passage encoder's unit vectors.
    Vectors(Vec<Vec<f32>>),
}

/// Prefixes put before queries and passages (the model's own, from its
/// sentence-transformers files).
#[derive(Debug, Clone, Default)]
pub struct Prefixes {
    /// Before each query.
    pub query: String,
    /// Before each passage.
    pub passage: String,
}

/// Tokenises every query and candidate; also returns how many texts were cut
/// to the tokenizer's maximum length. With `frozen` (passage id to the
/// frozen passage encoder's vector) candidates take their vectors instead.
pub fn tokenise(
    queries: &[LabelledQuery],
    tokenizer: &TextTokenizer,
    prefixes: &Prefixes,
    frozen: Option<&HashMap<String, Vec<f32>>>,
) -> Result<(Vec<TokenisedQuery>, usize)> {
    let mut out = Vec::with_capacity(queries.len());
    let mut truncated = 0;
    for q in queries {
        let mut texts = Vec::with_capacity(q.passages.len() + 1);
        texts.push(format!("{}{}", prefixes.query, q.query));
        if frozen.is_none() {
            texts.extend(q.passages.iter().map(|p| format!("{}{p}", prefixes.passage)));
        }
        let mut encoded = tokenizer
            .encode(&texts)
            .map_err(|e| anyhow::anyhow!("query {}: {e:#}", q.query_id))?;
        truncated += encoded.iter().filter(|e| e.truncated).count();
        let passages = match frozen {
            None => CandidateItems::Tokens(encoded.split_off(1)),
            Some(vectors) => CandidateItems::Vectors(
                q.doc_ids
                    .iter()
                    .map(|id| {
                        vectors.get(id).cloned().ok_or_else(|| {
                            anyhow::anyhow!("query {}: passage {id} has no frozen passage vector", q.query_id)
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        let Some(query) = encoded.pop() else {
            bail!("query {}: the tokenizer returned no encoding", q.query_id);
        };
        out.push(TokenisedQuery {
            query_id: q.query_id.clone(),
            query,
            passages,
            utilities: q.utilities.clone(),
            relevant: q.relevant.clone(),
            doc_ids: q.doc_ids.clone(),
        });
    }
    Ok((out, truncated))
}

/// The candidates of a batch, query by query.
#[derive(Debug, Clone)]
pub enum Candidates {
    /// Padded token ids, `[B * K, S_p]`.
    Tokens(TokenBatch),
    /// The frozen passage encoder's unit vectors, `[B * K, H]`.
    Vectors(Tensor<2>),
}

/// A padded batch of `B` queries with `K` candidates each.
#[derive(Debug, Clone)]
pub struct DistillBatch {
    /// The queries, `[B, S_q]`.
    pub queries: TokenBatch,
    /// The candidates.
    pub passages: Candidates,
    /// Teacher utilities, `[B, K]`.
    pub utilities: Tensor<2>,
    /// Relevance flags, `B` rows of `K`.
    pub relevant: Vec<Vec<bool>>,
    /// Passage ids of the candidates, `B` rows of `K`.
    pub doc_ids: Vec<Vec<String>>,
    /// The queries' ids, `B`, for errors.
    pub query_ids: Vec<String>,
}

/// For each query (row) of a batch and each other query's candidate, in
/// the column order of the in-batch scores (`[B, (B - 1) * K]`, row-major),
/// whether that passage is also one of the row's own candidates: as a
/// negative it would contradict the row's own targets (its gold, for one).
pub fn in_batch_duplicates(doc_ids: &[Vec<String>]) -> Vec<bool> {
    let mut out = Vec::new();
    for (row, own) in doc_ids.iter().enumerate() {
        let own: std::collections::HashSet<&str> = own.iter().map(String::as_str).collect();
        for (other, ids) in doc_ids.iter().enumerate() {
            if other != row {
                out.extend(ids.iter().map(|id| own.contains(id.as_str())));
            }
        }
    }
    out
}

/// Pads [`TokenisedQuery`] items into [`DistillBatch`]es.
#[derive(Debug, Clone)]
pub struct DistillBatcher {
    /// The id padding positions get.
    pub pad_id: u32,
}

impl Batcher<TokenisedQuery, DistillBatch> for DistillBatcher {
    fn batch(&self, items: Vec<TokenisedQuery>, device: &Device) -> DistillBatch {
        let k = items.first().map_or(0, |i| i.utilities.len());
        let query_ids: Vec<&[u32]> = items.iter().map(|i| i.query.ids.as_slice()).collect();
        let query_types: Vec<&[u32]> = items.iter().map(|i| i.query.type_ids.as_slice()).collect();
        let mut tokens = Vec::new();
        let mut vectors: Vec<f32> = Vec::new();
        for item in &items {
            match &item.passages {
                CandidateItems::Tokens(encoded) => tokens.extend(encoded),
                CandidateItems::Vectors(rows) => rows.iter().for_each(|row| vectors.extend(row)),
            }
        }
        let passages = if tokens.is_empty() {
            let rows = items.len() * k;
            let dim = vectors.len() / rows.max(1);
            Candidates::Vectors(Tensor::from_data(TensorData::new(vectors, [rows, dim]), device))
        } else {
            let ids: Vec<&[u32]> = tokens.iter().map(|p| p.ids.as_slice()).collect();
            let types: Vec<&[u32]> = tokens.iter().map(|p| p.type_ids.as_slice()).collect();
            Candidates::Tokens(TokenBatch::pad(&ids, &types, self.pad_id, device))
        };
        let utilities: Vec<f32> = items.iter().flat_map(|i| i.utilities.iter().copied()).collect();
        DistillBatch {
            queries: TokenBatch::pad(&query_ids, &query_types, self.pad_id, device),
            passages,
            utilities: Tensor::from_data(TensorData::new(utilities, [items.len(), k]), device),
            relevant: items.iter().map(|i| i.relevant.clone()).collect(),
            doc_ids: items.iter().map(|i| i.doc_ids.clone()).collect(),
            query_ids: items.iter().map(|i| i.query_id.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_batch_duplicates_follow_the_score_columns() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let batch = [ids(&["a", "b"]), ids(&["c", "a"]), ids(&["d", "e"])];
        // Row 0 sees q1's c, a then q2's d, e; row 1 sees a, b then d, e; row 2 sees a, b, c, a.
        let want = [[false, true, false, false], [true, false, false, false], [false, false, false, false]];
        assert_eq!(in_batch_duplicates(&batch), want.concat());
    }
}
