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

use uae_model::encoder::{BiEncoder, TextRole};

use uae_data::ranking::{self, Hit, Ranking};
use uae_data::{CandidateLine, DataSet, Passage, Progress, Query};

use crate::exact;
use crate::store::unit_rows;

/// The constant of reciprocal-rank fusion, `1 / (RRF_K + rank)` (Cormack et
/// al. 2009 use 60).
pub const RRF_K: f64 = 60.0;

/// Fuses rankings by reciprocal rank: each document scores the sum over the
/// rankings of `1 / (RRF_K + rank)`, ranks counted from 1, and the result is
/// in the one ranking order (ties by document id).
pub fn reciprocal_rank_fusion(rankings: &[&Ranking]) -> Ranking {
    let mut fused: BTreeMap<&str, f64> = BTreeMap::new();
    for ranking in rankings {
        for (rank, hit) in ranking.iter().enumerate() {
            *fused.entry(&hit.id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut out: Ranking = fused.into_iter().map(|(id, s)| Hit::new(id, s)).collect();
    ranking::sort(&mut out);
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
    let mut doc_ids: Vec<String> = ranking.iter().take(k).map(|h| h.id.clone()).collect();
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
            let relevant = qrels.map(|qr| qr.relevant(&q.id).collect()).unwrap_or_default();
            (q, relevant)
        })
        .collect())
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
    let ids: Vec<String> = passages.iter().map(|p| p.id.clone()).collect();
    let pools = if per_document {
        Some(queries.iter().map(|q| Ok(data.pool_rows(q, true)?.expect("per-document pools"))).collect::<Result<Vec<_>>>()?)
    } else {
        None
    };
    Ok(exact::search_pools(corpus, &ids, encoder.dim(), &query_rows, pools.as_deref(), k))
}

/// The retriever that proposes a query's candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retriever {
    /// Exact cosine search with the bi-encoder.
    Dense,
    /// BM25 (tantivy).
    Bm25,
    /// Both, fused by reciprocal rank, each list `4k` deep.
    Hybrid,
}

/// What [`mine`] mines.
#[derive(Debug, Clone)]
pub struct MineOptions {
    /// The split whose queries get candidates.
    pub split: String,
    /// Candidates per query.
    pub k: usize,
    /// How candidates are retrieved.
    pub retriever: Retriever,
    /// Search each query's own document pool instead of the whole corpus.
    pub per_document: bool,
    /// Padded tokens per forward pass of the encoder.
    pub batch_tokens: usize,
}

/// The dense side of mining: the encoder, and the corpus vectors it made
/// when they are reused from an index (else the corpus is embedded).
pub struct DenseSource<'a> {
    /// The bi-encoder.
    pub encoder: &'a BiEncoder,
    /// Unit-length corpus vectors, one row per passage in corpus order.
    pub corpus: Option<&'a [f32]>,
}

/// Mines the candidates of every query of `options.split` (docs/method.md,
/// "Mining and candidate pools"), one line per query in query-file order;
/// `dense` is needed for the dense and hybrid retrievers. Embedding the
/// corpus reports its progress in passages.
pub fn mine(data: &DataSet, dense: Option<DenseSource>, options: &MineOptions, progress: &dyn Progress) -> Result<Vec<CandidateLine>> {
    if options.k == 0 {
        bail!("--k must be at least 1");
    }
    let queries = split_queries(data, &options.split)?;
    let query_refs: Vec<&Query> = queries.iter().map(|(q, _)| *q).collect();
    // Fusion looks deeper than k so that a passage ranked just below the cut
    // by one retriever can still win on agreement.
    let depth = if options.retriever == Retriever::Hybrid { options.k * 4 } else { options.k };
    let dense_rankings = match (options.retriever, dense) {
        (Retriever::Bm25, _) => None,
        (_, None) => bail!("dense retrieval needs a bi-encoder (--model)"),
        (_, Some(DenseSource { encoder, corpus: Some(vectors) })) => {
            Some(dense_rankings_over(encoder, data, vectors, &query_refs, options.per_document, depth, options.batch_tokens)?)
        }
        (_, Some(DenseSource { encoder, corpus: None })) => {
            progress.start(data.corpus.len() as u64, "passages");
            let r = dense_rankings(encoder, data, &query_refs, options.per_document, depth, options.batch_tokens, |n| {
                progress.advance(n as u64)
            })?;
            progress.finish();
            Some(r)
        }
    };
    let lexical = if options.retriever == Retriever::Dense {
        None
    } else {
        Some(crate::bm25::rankings(data, &query_refs, options.per_document, depth)?)
    };
    let rankings: Vec<Ranking> = match (dense_rankings, lexical) {
        (Some(d), Some(l)) => d.iter().zip(&l).map(|(d, l)| reciprocal_rank_fusion(&[d, l])).collect(),
        (Some(d), None) => d,
        (None, Some(l)) => l,
        (None, None) => unreachable!("every retriever ranks with dense search, BM25 or both"),
    };
    queries.iter().zip(&rankings).map(|((query, relevant), ranking)| with_relevant(&query.id, ranking, relevant, options.k)).collect()
}

/// Split hygiene of candidates mined for training: every query must be
/// judged in `train` and in none of the `held_out` splits, and no gold
/// passage of a real training query may be gold for a held-out query (its
/// answer would leak into the teacher's labels). A synthetic query
/// ([`Query::is_synthetic_id`]) may judge a held-out query's gold passage
/// relevant: the teacher wrote it from the passage alone, never seeing a
/// held-out question (`uae synth` drops one that comes out equal or close to
/// a held-out question), as GPL and InPars generate from the whole target
/// corpus. `source` names the file in errors.
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
        for (query, judged) in qrels.iter() {
            for (doc, &grade) in judged {
                if grade > 0 {
                    held_gold.insert(doc, query);
                }
            }
        }
    }
    for (n, line) in candidates.iter().enumerate() {
        let at = || format!("{source}:{}", n + 1);
        if !train_qrels.contains(&line.query_id) {
            bail!("{}: query {:?} is not a {train} query", at(), line.query_id);
        }
        if let Some(split) = held_out.iter().find(|s| data.qrels[**s].contains(&line.query_id)) {
            bail!("{}: query {:?} is also judged in the held-out {split} split", at(), line.query_id);
        }
        if Query::is_synthetic_id(&line.query_id) {
            continue;
        }
        for doc in train_qrels.relevant(&line.query_id) {
            if let Some(query) = held_gold.get(doc) {
                bail!("{}: passage {doc:?} is gold for training query {:?} and for held-out query {query:?}", at(), line.query_id);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(ids: &[&str]) -> Ranking {
        ids.iter().enumerate().map(|(i, id)| Hit::new(*id, 1.0 - i as f64 * 0.1)).collect()
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
        assert_eq!(fused.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), vec!["a", "c", "b"]);
        assert!(fused[0].score > fused[2].score);
        assert_eq!(fused[0].score, fused[1].score);
    }

    #[test]
    fn split_hygiene_rejects_held_out_queries_and_shared_gold() {
        let qrels = |pairs: &[(&str, &str)]| uae_data::Qrels::from_triples(pairs.iter().map(|&(q, d)| (q, d, 1)));
        let mut data = DataSet::default();
        data.qrels.insert("train".into(), qrels(&[("t1", "a"), ("t2", "b")]));
        data.qrels.insert("test".into(), qrels(&[("x1", "c")]));
        let line = |q: &str| CandidateLine { query_id: q.into(), doc_ids: vec!["a".into(), "c".into()], relevant: vec![], inserted: vec![] };
        let check = |data: &DataSet, lines: &[CandidateLine]| check_split_hygiene(data, lines, "train", &["test"], "c.jsonl");
        check(&data, &[line("t1"), line("t2")]).unwrap();
        assert!(check(&data, &[line("t1"), line("x1")]).unwrap_err().to_string().contains("c.jsonl:2: query \"x1\" is not a train query"));
        data.qrels.get_mut("test").unwrap().insert_query("t2", [("z".to_string(), 1)].into());
        assert!(check(&data, &[line("t2")]).unwrap_err().to_string().contains("also judged in the held-out test split"));
        data.qrels.get_mut("test").unwrap().remove_query("t2");
        data.qrels.get_mut("test").unwrap().insert_query("x2", [("b".to_string(), 1)].into());
        assert!(check(&data, &[line("t2")]).unwrap_err().to_string().contains("gold for training query"));
        let synthetic = format!("{}b:0", Query::SYNTHETIC_PREFIX);
        data.qrels.get_mut("train").unwrap().insert_query(&synthetic, [("b".to_string(), 1)].into());
        check(&data, &[line(&synthetic)]).expect("a synthetic question may be about a held-out query's gold passage");
    }
}
