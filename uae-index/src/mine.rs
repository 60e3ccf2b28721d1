//! Candidate mining: the passages the teacher will label for each query.
//!
//! For every query of a split, the top `k` passages of a retriever (dense,
//! BM25, or both fused by reciprocal rank), searched over the whole corpus or
//! over the query's own document pool. The relevant passages are guaranteed
//! to be in the pool: when the retriever missed one, it replaces the
//! lowest-ranked non-relevant candidate, and the line records which
//! candidates were inserted that way.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use uae_model::encoder::{BiEncoder, TextRole};

use crate::bm25::Bm25Index;
use crate::data::{DataSet, Passage, Query};
use crate::exact;
use crate::store::normalize;

/// The constant of reciprocal-rank fusion, `1 / (RRF_K + rank)` (Cormack et
/// al. 2009 use 60).
pub const RRF_K: f64 = 60.0;

/// One line of `candidates.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateLine {
    /// The query.
    pub query_id: String,
    /// The candidate passages, best first by the retriever.
    pub doc_ids: Vec<String>,
    /// The candidates that are relevant according to the qrels.
    pub relevant: Vec<String>,
    /// Relevant passages the retriever missed, inserted into the pool.
    pub inserted: Vec<String>,
}

/// A ranked list of (document id, score), best first.
pub type Ranking = Vec<(String, f32)>;

/// Fuses rankings by reciprocal rank: each document scores the sum over the
/// rankings of `1 / (RRF_K + rank)`, ranks counted from 1. Ties are broken by
/// document id.
pub fn reciprocal_rank_fusion(rankings: &[&Ranking]) -> Ranking {
    let mut fused: BTreeMap<&str, f64> = BTreeMap::new();
    for ranking in rankings {
        for (rank, (id, _)) in ranking.iter().enumerate() {
            *fused.entry(id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut out: Vec<(String, f32)> = fused.into_iter().map(|(id, s)| (id.to_string(), s as f32)).collect();
    // The map iterates ids in order and the sort is stable: ties keep id order.
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Cuts `ranking` to `k` and makes room for every relevant passage (by
/// qrels grade >= 1) the ranking missed, replacing the lowest-ranked
/// non-relevant candidates.
pub fn with_relevant(query_id: &str, ranking: &Ranking, relevant: &[&str], k: usize) -> Result<CandidateLine> {
    if relevant.len() > k {
        bail!("query {query_id} has {} relevant passages, more than --k {k}: raise --k", relevant.len());
    }
    let rel: HashSet<&str> = relevant.iter().copied().collect();
    let mut doc_ids: Vec<String> = ranking.iter().take(k).map(|(id, _)| id.clone()).collect();
    let present: HashSet<String> = doc_ids.iter().cloned().collect();
    let missing: Vec<String> = relevant.iter().filter(|id| !present.contains(**id)).map(|id| id.to_string()).collect();
    for id in &missing {
        if doc_ids.len() < k {
            doc_ids.push(id.clone());
            continue;
        }
        let victim = doc_ids.iter().rposition(|d| !rel.contains(d.as_str())).expect("fewer relevant than k");
        doc_ids.remove(victim);
        doc_ids.push(id.clone());
    }
    let relevant = doc_ids.iter().filter(|d| rel.contains(d.as_str())).cloned().collect();
    Ok(CandidateLine { query_id: query_id.to_string(), doc_ids, relevant, inserted: missing })
}

/// The queries of `split` with their relevant passage ids.
pub fn split_queries<'a>(data: &'a DataSet, split: &str) -> Result<Vec<(&'a Query, Vec<&'a str>)>> {
    let qrels = data.qrels.get(split);
    Ok(data
        .queries_of_split(split)?
        .into_iter()
        .map(|q| {
            let relevant = qrels
                .and_then(|qr| qr.get(&q.id))
                .map(|docs| docs.iter().filter(|(_, g)| **g >= 1).map(|(d, _)| d.as_str()).collect())
                .unwrap_or_default();
            (q, relevant)
        })
        .collect())
}

/// The passages a query may retrieve from: its document pool when the data
/// set has pools and `per_document` is set, else the whole corpus.
pub fn pool_of<'a>(data: &'a DataSet, query: &Query, per_document: bool) -> Result<Vec<&'a Passage>> {
    if !per_document {
        return Ok(data.corpus.as_slice().iter().collect());
    }
    let Some(pools) = &data.pools else {
        bail!("--pool document needs per-document pools (QASPER-style data); this data set has none");
    };
    let Some(ids) = pools.get(&query.id) else {
        bail!("query {} has no document pool", query.id);
    };
    ids.iter()
        .map(|id| data.corpus.get(id).ok_or_else(|| anyhow::anyhow!("pool of query {} names unknown passage {id}", query.id)))
        .collect()
}

/// Dense rankings of the top `k` passages for each of `queries`, from
/// `encoder`. The corpus is embedded once; with `per_document` each query is
/// searched over its own pool only.
pub fn dense_rankings(
    encoder: &BiEncoder,
    data: &DataSet,
    queries: &[&Query],
    per_document: bool,
    k: usize,
    batch_tokens: usize,
    progress: impl FnMut(usize),
) -> Result<Vec<Ranking>> {
    let passages = data.corpus.as_slice();
    let texts: Vec<String> = passages.iter().map(Passage::embedding_text).collect();
    let corpus = unit_rows(encoder.embed(&texts, TextRole::Passage, batch_tokens, progress)?.vectors);
    let query_texts: Vec<String> = queries.iter().map(|q| q.text.clone()).collect();
    let query_rows = unit_rows(encoder.embed(&query_texts, TextRole::Query, batch_tokens, |_| {})?.vectors);
    let dim = encoder.dim();
    let ids: Vec<String> = passages.iter().map(|p| p.id.clone()).collect();
    if !per_document {
        let hits = exact::search(&corpus, &ids, dim, &query_rows, k);
        return Ok(hits.into_iter().map(|h| h.into_iter().map(|h| (ids[h.row].clone(), h.score)).collect()).collect());
    }
    queries
        .iter()
        .enumerate()
        .map(|(qi, query)| {
            let pool = pool_of(data, query, true)?;
            let pool_ids: Vec<String> = pool.iter().map(|p| p.id.clone()).collect();
            let mut pool_rows = Vec::with_capacity(pool.len() * dim);
            for p in &pool {
                let row = data.corpus.position(&p.id).expect("pool passages are in the corpus");
                pool_rows.extend_from_slice(&corpus[row * dim..(row + 1) * dim]);
            }
            let hits = exact::search(&pool_rows, &pool_ids, dim, &query_rows[qi * dim..(qi + 1) * dim], k);
            Ok(hits[0].iter().map(|h| (pool_ids[h.row].clone(), h.score)).collect())
        })
        .collect()
}

/// BM25 rankings of the top `k` passages for each of `queries`: one index
/// over the corpus, or with `per_document` a small in-memory index per pool.
pub fn bm25_rankings(data: &DataSet, queries: &[&Query], per_document: bool, k: usize) -> Result<Vec<Ranking>> {
    if !per_document {
        let index = Bm25Index::build(data.corpus.as_slice(), None)?;
        let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
        return index.search_batch(&texts, k);
    }
    queries
        .iter()
        .map(|query| {
            let pool: Vec<Passage> = pool_of(data, query, true)?.into_iter().cloned().collect();
            Bm25Index::build(&pool, None)?.search(&query.text, k)
        })
        .collect()
}

/// Normalises each vector and flattens them row-major.
fn unit_rows(vectors: Vec<Vec<f32>>) -> Vec<f32> {
    vectors
        .into_iter()
        .flat_map(|mut v| {
            normalize(&mut v);
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(ids: &[&str]) -> Ranking {
        ids.iter().enumerate().map(|(i, id)| (id.to_string(), 1.0 - i as f32 * 0.1)).collect()
    }

    #[test]
    fn missed_relevant_passages_replace_the_worst_candidates() {
        let line = with_relevant("q", &ranking(&["a", "b", "c", "d"]), &["z", "b"], 3).unwrap();
        assert_eq!(line.doc_ids, vec!["a", "b", "z"]);
        assert_eq!(line.relevant, vec!["b", "z"]);
        assert_eq!(line.inserted, vec!["z"]);
        let short = with_relevant("q", &ranking(&["a"]), &["z"], 3).unwrap();
        assert_eq!(short.doc_ids, vec!["a", "z"]);
        assert!(with_relevant("q", &ranking(&["a"]), &["x", "y"], 1).unwrap_err().to_string().contains("raise --k"));
    }

    #[test]
    fn fusion_rewards_agreement_and_breaks_ties_by_id() {
        let dense = ranking(&["a", "b", "c"]);
        let lexical = ranking(&["c", "b", "a"]);
        let fused = reciprocal_rank_fusion(&[&dense, &lexical]);
        // b is second in both; a and c tie (first once, third once) and sort by id.
        assert_eq!(fused.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), vec!["a", "c", "b"]);
        assert!(fused[0].1 > fused[2].1);
        assert_eq!(fused[0].1, fused[1].1);
    }
}
