//! Labelled queries for distillation: `labels.jsonl` (one line per query with
//! its candidates' teacher utilities, written by `uae label`) joined with the
//! BEIR data folder the candidates came from.
//!
//! Each [`LabelledQuery`] holds the query text, `K` candidate passage texts,
//! their utilities and whether each candidate is judged relevant in the
//! chosen qrels split.
//!
//! Bad input is never fatal in silence and never a crash:
//! - a torn last line (a killed `uae label`) is dropped and reported
//!   ([`LoadReport::torn_last_line`]); a malformed line elsewhere is an error
//!   naming the file and line;
//! - a candidate missing from the corpus is dropped from its pool and counted
//!   ([`LoadReport::missing_passages`]); an unknown query id skips the line;
//! - a NaN or infinite utility (`null` in the JSON) skips the query, counted;
//! - a query whose utilities are all equal carries no preference and is
//!   skipped, counted;
//! - a query left with fewer than `K` candidates (or fewer than 2) is skipped,
//!   counted.
//!
//! # Candidate sampling
//!
//! With [`Sampling::candidates`] `= K`, each query keeps its
//! `ceil(K * top_share)` highest-utility candidates, and the other slots are
//! drawn uniformly without replacement from the rest of its pool, with a
//! generator seeded by `seed` and the query's line number, so a run is
//! reproducible. The kept candidates stay in their pool order. Without `K`,
//! every query keeps the size of the smallest pool.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{Result, bail};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use uae_data::DataSet;
use uae_data::jsonl::Appended;
use uae_data::records::{by_utility, read_labels};

/// One query with its candidate pool, ready for tokenisation.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledQuery {
    /// The query id from `labels.jsonl`.
    pub query_id: String,
    /// The query text.
    pub query: String,
    /// The candidates' passage ids, in pool order.
    pub doc_ids: Vec<String>,
    /// The candidates' passage texts (title and text, as embedded).
    pub passages: Vec<String>,
    /// The teacher's utility of each candidate (all finite).
    pub utilities: Vec<f32>,
    /// Whether each candidate is judged relevant (grade > 0) in the split.
    pub relevant: Vec<bool>,
}

/// How many candidates each query keeps and how they are chosen (see the
/// module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    /// Candidates per query, `K`; `None` takes the smallest pool size.
    pub candidates: Option<usize>,
    /// Share of `K` filled with the highest-utility candidates (0 to 1);
    /// the rest are drawn at random. Default 0.5.
    pub top_share: f64,
    /// Seed of the random draw.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self { candidates: None, top_share: 0.5, seed: 42 }
    }
}

/// What loading skipped or repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// Lines read from `labels.jsonl`.
    pub lines: usize,
    /// Queries kept.
    pub kept: usize,
    /// Whether a torn last line was dropped.
    pub torn_last_line: bool,
    /// Lines whose query id is not in `queries.jsonl`.
    pub unknown_queries: usize,
    /// Candidates whose passage id is not in `corpus.jsonl` (dropped).
    pub missing_passages: usize,
    /// Queries skipped for a NaN or infinite utility.
    pub non_finite_utilities: usize,
    /// Queries skipped because all their utilities are equal.
    pub equal_utilities: usize,
    /// Queries skipped for having fewer than `K` (or 2) candidates.
    pub too_few_candidates: usize,
    /// The `K` every kept query has.
    pub candidates: usize,
}

impl LoadReport {
    /// Whether anything was skipped or repaired.
    pub fn has_skips(&self) -> bool {
        self.torn_last_line
            || self.unknown_queries + self.missing_passages + self.non_finite_utilities + self.equal_utilities
                + self.too_few_candidates
                > 0
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} labelled queries kept with K = {}; skipped: {} unknown queries, {} with non-finite utilities, \
             {} with all-equal utilities, {} with too few candidates; {} candidates missing from the corpus dropped{}",
            self.kept,
            self.lines,
            self.candidates,
            self.unknown_queries,
            self.non_finite_utilities,
            self.equal_utilities,
            self.too_few_candidates,
            self.missing_passages,
            if self.torn_last_line { "; a torn last line was dropped" } else { "" }
        )
    }
}

/// Loads the labelled queries of `labels` against the data set `data`, with
/// relevance flags from its qrels split `split` (none when `split` is
/// `None` or the split is not loaded).
pub fn load_labelled(
    labels: &Path,
    data: &DataSet,
    split: Option<&str>,
    sampling: &Sampling,
) -> Result<(Vec<LabelledQuery>, LoadReport)> {
    if !(0.0..=1.0).contains(&sampling.top_share) {
        bail!("top_share must lie in [0, 1], got {}", sampling.top_share);
    }
    let Appended { records: lines, torn } = read_labels(labels)?;
    let mut report = LoadReport { lines: lines.len(), torn_last_line: torn, ..Default::default() };
    let qrels = split.and_then(|s| data.qrels.get(s));
    let mut pools = Vec::new();
    for (line, label) in lines {
        let Some(query) = data.queries.get(&label.query_id) else {
            report.unknown_queries += 1;
            continue;
        };
        if label.utilities.iter().any(|u| !u.is_finite()) {
            report.non_finite_utilities += 1;
            continue;
        }
        let mut pool = LabelledQuery {
            query_id: label.query_id.clone(),
            query: query.text.clone(),
            doc_ids: Vec::new(),
            passages: Vec::new(),
            utilities: Vec::new(),
            relevant: Vec::new(),
        };
        for (doc_id, utility) in label.doc_ids.iter().zip(&label.utilities) {
            let Some(passage) = data.corpus.get(doc_id) else {
                report.missing_passages += 1;
                continue;
            };
            pool.doc_ids.push(doc_id.clone());
            pool.passages.push(passage.embedding_text());
            pool.utilities.push(*utility as f32);
            pool.relevant.push(qrels.is_some_and(|q| q.is_relevant(&label.query_id, doc_id)));
        }
        pools.push((line, pool));
    }
    let k = match sampling.candidates {
        Some(k) => k,
        None => pools.iter().map(|(_, p)| p.doc_ids.len()).filter(|&n| n >= 2).min().unwrap_or(0),
    };
    if k < 2 {
        bail!("{}: need at least 2 candidates per query, K = {k}", labels.display());
    }
    report.candidates = k;
    let mut kept = Vec::new();
    for (line, pool) in pools {
        if pool.doc_ids.len() < k {
            report.too_few_candidates += 1;
            continue;
        }
        let pool = sample_pool(pool, k, sampling, line as u64);
        let first = pool.utilities[0];
        if pool.utilities.iter().all(|&u| u == first) {
            report.equal_utilities += 1;
            continue;
        }
        kept.push(pool);
    }
    report.kept = kept.len();
    Ok((kept, report))
}

/// Keeps `k` candidates of `pool`: the `ceil(k * top_share)` best by
/// utility and a seeded uniform draw of the rest, in pool order.
fn sample_pool(pool: LabelledQuery, k: usize, sampling: &Sampling, line: u64) -> LabelledQuery {
    let n = pool.doc_ids.len();
    if n == k {
        return pool;
    }
    let top = ((k as f64 * sampling.top_share).ceil() as usize).min(k);
    let mut order: Vec<usize> = (0..n).collect();
    // Highest utility first; ties keep pool order.
    order.sort_by(|&a, &b| pool.utilities[b].total_cmp(&pool.utilities[a]).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = order[..top].to_vec();
    let rest = &order[top..];
    let mut rng = StdRng::seed_from_u64(sampling.seed ^ line.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let draw = sample(&mut rng, rest.len(), k - top);
    chosen.extend(draw.iter().map(|i| rest[i]));
    chosen.sort_unstable();
    LabelledQuery {
        query_id: pool.query_id,
        query: pool.query,
        doc_ids: chosen.iter().map(|&i| pool.doc_ids[i].clone()).collect(),
        passages: chosen.iter().map(|&i| pool.passages[i].clone()).collect(),
        utilities: chosen.iter().map(|&i| pool.utilities[i]).collect(),
        relevant: chosen.iter().map(|&i| pool.relevant[i]).collect(),
    }
}

/// Splits `queries` into training and validation sets: a seeded shuffle,
/// then `ceil(len * valid_share)` queries (at least 1 when there are 2 or
/// more) are held out for validation.
pub fn split_train_valid(
    mut queries: Vec<LabelledQuery>,
    valid_share: f64,
    seed: u64,
) -> Result<(Vec<LabelledQuery>, Vec<LabelledQuery>)> {
    if !(0.0..1.0).contains(&valid_share) {
        bail!("valid_share must lie in [0, 1), got {valid_share}");
    }
    if queries.len() < 2 {
        bail!("need at least 2 labelled queries to hold some out for validation, got {}", queries.len());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    rand::seq::SliceRandom::shuffle(queries.as_mut_slice(), &mut rng);
    let valid = ((queries.len() as f64 * valid_share).ceil() as usize).clamp(1, queries.len() - 1);
    let train = queries.split_off(valid);
    Ok((train, queries))
}

/// Counts of candidates by relevance, for a summary line: how often the
/// teacher's best candidate is a judged-relevant one (docs/method.md,
/// "Teacher agreement"; FlagEmbedding #553: measure it rather than assume it).
pub fn teacher_top_is_gold(queries: &[LabelledQuery]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for q in queries {
        if !q.relevant.iter().any(|&r| r) {
            *counts.entry("no gold in pool").or_insert(0) += 1;
            continue;
        }
        let best = by_utility(&q.utilities).first().copied();
        let key = if best.is_some_and(|b| q.relevant[b]) { "top is gold" } else { "top is not gold" };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use uae_data::{Passage, Query};

    fn data() -> DataSet {
        let mut data = DataSet::default();
        for id in ["a", "b", "c", "d"] {
            data.corpus
                .push(Passage { id: id.into(), title: String::new(), text: format!("text {id}") })
                .unwrap();
        }
        data.queries.push(Query { id: "q1".into(), text: "query one".into(), answers: vec![] }).unwrap();
        data.queries.push(Query { id: "q2".into(), text: "query two".into(), answers: vec![] }).unwrap();
        data.queries.push(Query { id: "q3".into(), text: "query three".into(), answers: vec![] }).unwrap();
        let qrels = uae_data::Qrels::from_triples([("q1", "b", 1)]);
        data.qrels.insert("train".into(), qrels);
        data
    }

    fn write(text: &str) -> (tempfile_dir::Dir, std::path::PathBuf) {
        let dir = tempfile_dir::Dir::new();
        let path = dir.0.join("labels.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// A throwaway directory under the system temp dir (no tempfile crate here).
    mod tempfile_dir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let n = N.fetch_add(1, Ordering::SeqCst);
                let p = std::env::temp_dir().join(format!("uae-train-data-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn loads_and_flags_gold() {
        let (_d, path) = write(
            r#"{"query_id":"q1","doc_ids":["a","b","c"],"utilities":[0.1,0.9,0.2],"logp_with":[0,0,0],"logp_without":0}
"#,
        );
        let (queries, report) = load_labelled(&path, &data(), Some("train"), &Sampling::default()).unwrap();
        assert_eq!(report.kept, 1);
        assert!(!report.has_skips());
        assert_eq!(queries[0].relevant, vec![false, true, false]);
        assert_eq!(queries[0].passages[1], "text b");
    }

    #[test]
    fn skips_are_counted_not_fatal() {
        let (_d, path) = write(concat!(
            r#"{"query_id":"q1","doc_ids":["a","zz","c"],"utilities":[0.1,0.9,0.2]}"#,
            "\n",
            r#"{"query_id":"q2","doc_ids":["a","b"],"utilities":[null,0.9]}"#,
            "\n",
            r#"{"query_id":"q3","doc_ids":["a","b"],"utilities":[0.5,0.5]}"#,
            "\n",
            r#"{"query_id":"nope","doc_ids":["a","b"],"utilities":[0.5,0.1]}"#,
            "\n",
            r#"{"query_id":"q1","doc_ids":["a","#,
        ));
        let (queries, report) = load_labelled(&path, &data(), None, &Sampling::default()).unwrap();
        assert_eq!(queries.len(), 1);
        assert_eq!(queries[0].doc_ids, vec!["a", "c"]);
        assert!(report.torn_last_line);
        assert_eq!(report.missing_passages, 1);
        assert_eq!(report.non_finite_utilities, 1);
        assert_eq!(report.equal_utilities, 1);
        assert_eq!(report.unknown_queries, 1);
        assert!(queries[0].utilities.iter().all(|u| u.is_finite()));
    }

    #[test]
    fn malformed_middle_line_names_the_line() {
        let (_d, path) = write("{oops}\n{\"query_id\":\"q1\",\"doc_ids\":[\"a\"],\"utilities\":[1]}\n");
        let err = format!("{:#}", load_labelled(&path, &data(), None, &Sampling::default()).unwrap_err());
        assert!(err.contains("labels.jsonl:1"), "{err}");
    }

    #[test]
    fn sampling_keeps_top_and_is_seeded() {
        let (_d, path) = write(
            r#"{"query_id":"q1","doc_ids":["a","b","c","d"],"utilities":[0.1,0.9,0.2,0.0]}
"#,
        );
        let sampling = Sampling { candidates: Some(2), top_share: 0.5, seed: 3 };
        let (a, _) = load_labelled(&path, &data(), None, &sampling).unwrap();
        let (b, _) = load_labelled(&path, &data(), None, &sampling).unwrap();
        assert_eq!(a, b);
        assert!(a[0].doc_ids.contains(&"b".to_string()));
        assert_eq!(a[0].doc_ids.len(), 2);
    }
}
