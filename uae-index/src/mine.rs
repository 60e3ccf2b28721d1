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
    let texts: Vec<String> = data.corpus.as_slice().iter().map(Passage::embedding_text).collect();
    let corpus = unit_rows(encoder.embed(&texts, TextRole::Passage, batch_tokens, progress)?.vectors);
    dense_rankings_over(encoder, data, &corpus, queries, per_document, k, batch_tokens)
}

/// [`dense_rankings`] over corpus vectors already made by `encoder`
/// (unit-length, one row per passage of `data.corpus` in order), such as an
/// index's stored vectors; only the queries are embedded.
pub fn dense_rankings_over(
    encoder: &BiEncoder,
    data: &DataSet,
    corpus: &[f32],
    queries: &[&Query],
    per_document: bool,
    k: usize,
    batch_tokens: usize,
) -> Result<Vec<Ranking>> {
    let passages = data.corpus.as_slice();
    if corpus.len() != passages.len() * encoder.dim() {
        bail!(
            "{} corpus vectors of width {} do not match the {} passages of the data set",
            corpus.len() / encoder.dim().max(1),
            encoder.dim(),
            passages.len()
        );
    }
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

/// Split hygiene of candidates mined for training: every query must be
/// judged in `train` and in none of the `held_out` splits, and no gold
/// passage of a training query may be gold for a held-out query (its answer
/// would leak into the teacher's labels). `source` names the file in errors.
pub fn check_split_hygiene(
    data: &DataSet,
    candidates: &[CandidateLine],
    train: &str,
    held_out: &[&str],
    source: &str,
) -> Result<()> {
    let Some(train_qrels) = data.qrels.get(train) else { bail!("split {train:?} is not loaded") };
    let mut held_gold: BTreeMap<&str, &str> = BTreeMap::new();
    for split in held_out {
        let Some(qrels) = data.qrels.get(*split) else { bail!("split {split:?} is not loaded") };
        for (query, judged) in qrels {
            for (doc, &grade) in judged {
                if grade > 0 {
                    held_gold.insert(doc, query);
                }
            }
        }
    }
    for (n, line) in candidates.iter().enumerate() {
        let at = || format!("{source}:{}", n + 1);
        if !train_qrels.contains_key(&line.query_id) {
            bail!("{}: query {:?} is not a {train} query", at(), line.query_id);
        }
        if let Some(split) = held_out.iter().find(|s| data.qrels[**s].contains_key(&line.query_id)) {
            bail!("{}: query {:?} is also judged in the held-out {split} split", at(), line.query_id);
        }
        let gold = train_qrels[&line.query_id].iter().filter(|(_, g)| **g > 0).map(|(d, _)| d.as_str());
        for doc in gold {
            if let Some(query) = held_gold.get(doc) {
                bail!("{}: passage {doc:?} is gold for training query {:?} and for held-out query {query:?}", at(), line.query_id);
            }
        }
    }
    Ok(())
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

    #[test]
    fn split_hygiene_rejects_held_out_queries_and_shared_gold() {
        let qrels = |pairs: &[(&str, &str)]| -> crate::data::Qrels {
            let mut q = crate::data::Qrels::new();
            for (query, doc) in pairs {
                q.entry(query.to_string()).or_default().insert(doc.to_string(), 1);
            }
            q
        };
        let mut data = DataSet::default();
        data.qrels.insert("train".into(), qrels(&[("t1", "a"), ("t2", "b")]));
        data.qrels.insert("test".into(), qrels(&[("x1", "c")]));
        let line = |q: &str| CandidateLine { query_id: q.into(), doc_ids: vec!["a".into(), "c".into()], relevant: vec![], inserted: vec![] };
        let check = |data: &DataSet, lines: &[CandidateLine]| check_split_hygiene(data, lines, "train", &["test"], "c.jsonl");
        check(&data, &[line("t1"), line("t2")]).unwrap();
        assert!(check(&data, &[line("t1"), line("x1")]).unwrap_err().to_string().contains("c.jsonl:2: query \"x1\" is not a train query"));
        data.qrels.get_mut("test").unwrap().insert("t2".into(), [("z".to_string(), 1)].into());
        assert!(check(&data, &[line("t2")]).unwrap_err().to_string().contains("also judged in the held-out test split"));
        data.qrels.get_mut("test").unwrap().remove("t2");
        data.qrels.get_mut("test").unwrap().insert("x2".into(), [("b".to_string(), 1)].into());
        assert!(check(&data, &[line("t2")]).unwrap_err().to_string().contains("gold for training query"));
    }
}
