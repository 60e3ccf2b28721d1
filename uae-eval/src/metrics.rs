//! Ranking metrics that match trec_eval, and SQuAD token F1 / exact match.
//!
//! Conventions (see `assets/make_metric_reference.py`, whose fixture the tests
//! check against pytrec_eval):
//! - each query's run is ranked by [`Run::ranking`]: score descending, then
//!   document id ascending (trec_eval breaks ties by id descending);
//! - a document is relevant when its grade is at least 1;
//! - `recall@k` = relevant in the top k / relevant in the qrels; `p@k` =
//!   relevant in the top k / k; `mrr@k` = 1 / rank of the first relevant in the
//!   top k, else 0; `map` = (1 / relevant in the qrels) * sum of P@i over the
//!   ranks i of relevant documents in the whole ranking; `ndcg@k` = DCG@k /
//!   ideal DCG@k with gain = grade (linear, negative grades count 0) and
//!   discount log2(i + 1), the ideal from the query's judged grades;
//! - means are over the qrels queries with at least one relevant document; such
//!   a query absent from the run scores 0 (trec_eval -c); run queries without
//!   qrels are ignored.

use std::collections::{BTreeMap, HashMap};

use uae_data::{Qrels, Run};

/// The cut-offs evaluated by default.
pub const DEFAULT_KS: [usize; 5] = [1, 3, 5, 10, 100];

/// Metric values of a run against qrels.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Query id -> metric name -> value, for each query averaged over.
    pub per_query: BTreeMap<String, BTreeMap<String, f64>>,
    /// Metric name -> mean over `per_query` (NaN when it is empty).
    pub mean: BTreeMap<String, f64>,
}

/// The metric names [`evaluate`] computes for cut-offs `ks`, in reading order:
/// `recall@k`, `p@k`, `mrr@k` for each k, `map`, then `ndcg@k` for each k.
pub fn metric_names(ks: &[usize]) -> Vec<String> {
    let at = |name: &'static str| ks.iter().map(move |k| format!("{name}@{k}"));
    at("recall")
        .chain(at("p"))
        .chain(at("mrr"))
        .chain(["map".to_string()])
        .chain(at("ndcg"))
        .collect()
}

/// Evaluates `run` against `qrels` at cut-offs `ks` (each at least 1), with
/// the conventions of this module's documentation.
pub fn evaluate(qrels: &Qrels, run: &Run, ks: &[usize]) -> Report {
    assert!(ks.iter().all(|&k| k >= 1), "cut-offs must be at least 1, got {ks:?}");
    let per_query: BTreeMap<String, BTreeMap<String, f64>> = qrels
        .iter()
        .filter(|(_, judged)| judged.values().any(|&g| g >= 1))
        .map(|(query, judged)| {
            let ranking: Vec<&str> = run.ranking(query).into_iter().map(|(doc, _)| doc).collect();
            (query.to_string(), query_metrics(judged, &ranking, ks))
        })
        .collect();
    let n = per_query.len() as f64;
    let mean = metric_names(ks)
        .into_iter()
        .map(|name| {
            let sum: f64 = per_query.values().map(|m| m[&name]).sum();
            (name, sum / n)
        })
        .collect();
    Report { per_query, mean }
}

/// All metrics of one query: `judged` maps documents to grades, `ranking` is
/// the retrieved documents best first.
fn query_metrics(judged: &BTreeMap<String, i32>, ranking: &[&str], ks: &[usize]) -> BTreeMap<String, f64> {
    let gain = |doc: &str| judged.get(doc).map_or(0.0, |&g| g.max(0) as f64);
    let relevant: Vec<bool> = ranking
        .iter()
        .map(|doc| judged.get(*doc).is_some_and(|&g| g >= 1))
        .collect();
    let total_relevant = judged.values().filter(|&&g| g >= 1).count() as f64;
    let mut ideal: Vec<f64> = judged.values().map(|&g| g.max(0) as f64).collect();
    ideal.sort_by(|a, b| b.total_cmp(a));

    let mut out = BTreeMap::new();
    for &k in ks {
        let top = &relevant[..k.min(relevant.len())];
        let hits = top.iter().filter(|&&r| r).count() as f64;
        out.insert(format!("recall@{k}"), hits / total_relevant);
        out.insert(format!("p@{k}"), hits / k as f64);
        let first = top.iter().position(|&r| r);
        out.insert(format!("mrr@{k}"), first.map_or(0.0, |i| 1.0 / (i as f64 + 1.0)));
        let found = dcg(ranking.iter().take(k).map(|doc| gain(doc)));
        out.insert(format!("ndcg@{k}"), found / dcg(ideal.iter().take(k).copied()));
    }
    let mut hits = 0.0;
    let mut precision_sum = 0.0;
    for (i, _) in relevant.iter().enumerate().filter(|(_, r)| **r) {
        hits += 1.0;
        precision_sum += hits / (i as f64 + 1.0);
    }
    out.insert("map".to_string(), precision_sum / total_relevant);
    out
}

/// Discounted cumulative gain of gains in rank order: sum of gain / log2(rank + 1).
fn dcg(gains: impl Iterator<Item = f64>) -> f64 {
    gains.enumerate().map(|(i, g)| g / (i as f64 + 2.0).log2()).sum()
}

/// SQuAD answer normalisation, as tokens: lowercase, drop ASCII punctuation,
/// drop the words a/an/the, split on whitespace. Articles are dropped where
/// SQuAD's `\b(a|an|the)\b` matches: a whole run of alphanumeric characters
/// (`_` is punctuation, already gone), so the "the" of "the—end" goes too.
fn normalize(text: &str) -> Vec<String> {
    let chars: Vec<char> = text
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    let mut kept = String::new();
    for run in chars.chunk_by(|a, b| a.is_alphanumeric() == b.is_alphanumeric()) {
        let run: String = run.iter().collect();
        kept.push_str(if matches!(run.as_str(), "a" | "an" | "the") {
            " "
        } else {
            &run
        });
    }
    kept.split_whitespace().map(str::to_string).collect()
}

/// SQuAD token F1 of `prediction`, the best over `golds` (0 when `golds` is
/// empty): F1 of the multiset overlap of the normalised tokens; when either
/// side has no tokens, 1 if both have none, else 0.
pub fn token_f1(prediction: &str, golds: &[impl AsRef<str>]) -> f64 {
    let predicted = normalize(prediction);
    golds
        .iter()
        .map(|gold| f1(&predicted, &normalize(gold.as_ref())))
        .fold(0.0, f64::max)
}

fn f1(predicted: &[String], gold: &[String]) -> f64 {
    if predicted.is_empty() || gold.is_empty() {
        return (predicted.is_empty() && gold.is_empty()) as u8 as f64;
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for token in gold {
        *counts.entry(token).or_default() += 1;
    }
    let mut common = 0;
    for token in predicted {
        if let Some(n) = counts.get_mut(token.as_str()).filter(|n| **n > 0) {
            *n -= 1;
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / predicted.len() as f64;
    let recall = common as f64 / gold.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// SQuAD exact match: 1 when the normalised `prediction` equals some
/// normalised gold answer, else 0 (0 when `golds` is empty).
pub fn exact_match(prediction: &str, golds: &[impl AsRef<str>]) -> f64 {
    let predicted = normalize(prediction);
    golds.iter().any(|gold| normalize(gold.as_ref()) == predicted) as u8 as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn token_f1_and_exact_match() {
        assert_eq!(token_f1("The Eiffel Tower!", &["eiffel tower"]), 1.0);
        assert_eq!(exact_match("The  Eiffel, Tower!", &["eiffel tower"]), 1.0);
        // pred {paris, france}, gold {paris}: p = 1/2, r = 1 -> 2/3.
        assert!(close(token_f1("Paris, France", &["Paris"]), 2.0 / 3.0));
        assert_eq!(exact_match("Paris, France", &["Paris"]), 0.0);
        // Multiset overlap: one "new" in common, not two.
        assert!(close(token_f1("new new york", &["new york"]), 0.8));
        // Best over golds.
        assert_eq!(token_f1("london", &["paris", "London."]), 1.0);
        assert_eq!(exact_match("london", &["paris", "London."]), 1.0);
        // Empty on either side; articles and punctuation alone are empty.
        assert_eq!(token_f1("", &[""]), 1.0);
        assert_eq!(token_f1("the", &["?!"]), 1.0);
        assert_eq!(exact_match("a", &[""]), 1.0);
        assert_eq!(token_f1("", &["paris"]), 0.0);
        assert_eq!(token_f1("paris", &[""]), 0.0);
        assert_eq!(token_f1("paris", &[] as &[&str]), 0.0);
        // Articles only as whole words; punctuation goes before articles do.
        assert_eq!(
            normalize("Theory of an Anthem, a-ha"),
            ["theory", "of", "anthem", "aha"]
        );
        assert_eq!(normalize("the—end (the_end)"), ["—end", "theend"]);
        assert_eq!(token_f1("no overlap", &["different words"]), 0.0);
    }

    #[test]
    fn small_example_by_hand() {
        // Relevant: d1 (grade 2), d3 (grade 1); d2 judged 0; d4 unjudged.
        let qrels = Qrels::from_triples([("q", "d1", 2), ("q", "d2", 0), ("q", "d3", 1), ("empty", "d1", 0)]);
        let run = Run::from_triples([
            ("q", "d2", 0.9),
            ("q", "d1", 0.8),
            ("q", "d4", 0.7),
            ("q", "d3", 0.6),
            ("extra", "d1", 1.0),
        ]);
        let report = evaluate(&qrels, &run, &[1, 2, 10]);
        assert_eq!(report.per_query.keys().collect::<Vec<_>>(), ["q"]);
        let m = &report.per_query["q"];
        assert_eq!(m["recall@1"], 0.0);
        assert_eq!(m["recall@2"], 0.5);
        assert_eq!(m["p@2"], 0.5);
        assert_eq!(m["p@10"], 0.2);
        assert_eq!(m["mrr@1"], 0.0);
        assert_eq!(m["mrr@2"], 0.5);
        assert!(close(m["map"], (1.0 / 2.0 + 2.0 / 4.0) / 2.0));
        let idcg = 2.0 + 1.0 / 3f64.log2();
        assert!(close(m["ndcg@10"], (2.0 / 3f64.log2() + 1.0 / 5f64.log2()) / idcg));
        assert_eq!(report.mean, *m);
    }

    #[test]
    fn missing_query_scores_zero_and_ties_use_id_order() {
        let qrels = Qrels::from_triples([("q1", "b", 1), ("q2", "x", 1)]);
        // "a" and "b" tie: "a" ranks first, so b is at rank 2.
        let run = Run::from_triples([("q1", "b", 0.5), ("q1", "a", 0.5)]);
        let report = evaluate(&qrels, &run, &DEFAULT_KS);
        assert_eq!(report.per_query["q1"]["mrr@10"], 0.5);
        assert!(report.per_query["q2"].values().all(|&v| v == 0.0));
        assert_eq!(report.mean["mrr@10"], 0.25);
        assert_eq!(report.mean.keys().len(), metric_names(&DEFAULT_KS).len());
    }
}
