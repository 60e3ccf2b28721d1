//! From labelled queries to padded tensors: each query and its `K`
//! candidates are tokenised once, with the model's prefixes and truncation
//! ([`tokenise`]), and the Burn [`Batcher`] pads every batch to its own
//! longest text ([`DistillBatcher`]).
//!
//! Tokenising up front rather than in the batcher means a tokeniser error is
//! reported once, before training starts, instead of inside a data-loader
//! thread that cannot return it, and each epoch reuses the ids.

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
    /// Each candidate's ids (with the passage prefix), `K` of them.
    pub passages: Vec<Encoded>,
    /// The teacher's utilities, `K`.
    pub utilities: Vec<f32>,
    /// Whether each candidate is judged relevant, `K`.
    pub relevant: Vec<bool>,
    /// Each candidate's passage id, `K`.
    pub doc_ids: Vec<String>,
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
/// to the tokenizer's maximum length.
pub fn tokenise(
    queries: &[LabelledQuery],
    tokenizer: &TextTokenizer,
    prefixes: &Prefixes,
) -> Result<(Vec<TokenisedQuery>, usize)> {
    let mut out = Vec::with_capacity(queries.len());
    let mut truncated = 0;
    for q in queries {
        let mut texts = Vec::with_capacity(q.passages.len() + 1);
        texts.push(format!("{}{}", prefixes.query, q.query));
        texts.extend(q.passages.iter().map(|p| format!("{}{p}", prefixes.passage)));
        let mut encoded = tokenizer
            .encode(&texts)
            .map_err(|e| anyhow::anyhow!("query {}: {e:#}", q.query_id))?;
        truncated += encoded.iter().filter(|e| e.truncated).count();
        let passages = encoded.split_off(1);
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

/// A padded batch of `B` queries with `K` candidates each.
#[derive(Debug, Clone)]
pub struct DistillBatch {
    /// The queries, `[B, S_q]`.
    pub queries: TokenBatch,
    /// The candidates, query by query, `[B * K, S_p]`.
    pub passages: TokenBatch,
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
        let k = items.first().map_or(0, |i| i.passages.len());
        let query_ids: Vec<&[u32]> = items.iter().map(|i| i.query.ids.as_slice()).collect();
        let query_types: Vec<&[u32]> = items.iter().map(|i| i.query.type_ids.as_slice()).collect();
        let passage_ids: Vec<&[u32]> = items.iter().flat_map(|i| i.passages.iter().map(|p| p.ids.as_slice())).collect();
        let passage_types: Vec<&[u32]> =
            items.iter().flat_map(|i| i.passages.iter().map(|p| p.type_ids.as_slice())).collect();
        let utilities: Vec<f32> = items.iter().flat_map(|i| i.utilities.iter().copied()).collect();
        DistillBatch {
            queries: TokenBatch::pad(&query_ids, &query_types, self.pad_id, device),
            passages: TokenBatch::pad(&passage_ids, &passage_types, self.pad_id, device),
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
