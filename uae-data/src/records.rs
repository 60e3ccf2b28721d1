//! The files passed between stages, each one record type that is both
//! written and read: `candidates.jsonl` ([`CandidateLine`], written by
//! `uae mine`, read by `uae label` and the split-hygiene check) and
//! `labels.jsonl` ([`LabelLine`], written by `uae label`, read by training,
//! the comparison and the teacher-agreement summary).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Result, bail};
use serde::{Deserialize, Deserializer, Serialize};

use crate::Qrels;
use crate::jsonl::{self, Appended};

/// One line of `candidates.jsonl`: a query's candidate passages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateLine {
    /// The query.
    pub query_id: String,
    /// The candidate passages, best first by the retriever.
    pub doc_ids: Vec<String>,
    /// The candidates that are relevant according to the qrels (may be
    /// absent in a file made by other tools).
    #[serde(default)]
    pub relevant: Vec<String>,
    /// Relevant passages the retriever missed, inserted into the pool (may
    /// be absent in a file made by other tools).
    #[serde(default)]
    pub inserted: Vec<String>,
}

/// Reads `candidates.jsonl`, each line with its 1-based line number; a
/// malformed line is an error naming the file and line, and so is a query
/// that appears twice.
pub fn read_candidates(path: &Path) -> Result<Vec<(usize, CandidateLine)>> {
    let lines = jsonl::read_numbered::<CandidateLine>(path, "candidates line")?;
    let mut seen = HashMap::new();
    for (line, c) in &lines {
        if let Some(first) = seen.insert(c.query_id.as_str(), *line) {
            bail!("{}:{line}: query {:?} already appears on line {first}", path.display(), c.query_id);
        }
    }
    Ok(lines)
}

/// Writes `lines` to `path` as `candidates.jsonl`, atomically (the file
/// appears complete or not at all) and synced.
pub fn write_candidates(path: &Path, lines: &[CandidateLine]) -> Result<()> {
    let mut writer = jsonl::JsonlWriter::create(&path.display().to_string())?;
    for line in lines {
        writer.write(line)?;
    }
    writer.finish()
}

/// One line of `labels.jsonl`: the teacher's utility of each candidate of a
/// query (docs/method.md, "Utility"). A non-finite number is written as
/// `null` (serde_json's NaN) and read back as NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelLine {
    /// The query.
    pub query_id: String,
    /// Its candidates, in the candidates file's order.
    pub doc_ids: Vec<String>,
    /// `logp_with[i] - logp_without`, per candidate.
    #[serde(deserialize_with = "nullable_vec")]
    pub utilities: Vec<f64>,
    /// Mean answer log-likelihood with each candidate in the prompt (may be
    /// absent in a file made by other tools).
    #[serde(default, deserialize_with = "nullable_vec")]
    pub logp_with: Vec<f64>,
    /// Mean answer log-likelihood without a passage (NaN when absent).
    #[serde(default = "nan", deserialize_with = "nullable")]
    pub logp_without: f64,
}

impl LabelLine {
    /// The candidates by utility, best first; ties keep candidate order.
    pub fn by_utility(&self) -> Vec<usize> {
        by_utility(&self.utilities)
    }
}

/// Candidate positions by utility, best first, ties in candidate order (the
/// one tie rule for a teacher's preference; docs/method.md, "Teacher
/// agreement"). NaN ranks last.
pub fn by_utility<U: Copy + Into<f64>>(utilities: &[U]) -> Vec<usize> {
    let key = |i: usize| {
        let u: f64 = utilities[i].into();
        if u.is_nan() { f64::NEG_INFINITY } else { u }
    };
    let mut order: Vec<usize> = (0..utilities.len()).collect();
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    order
}

/// Reads `labels.jsonl` under the torn-tail rule of [`jsonl::read_appended`];
/// a line whose `doc_ids` and `utilities` differ in length, or a query
/// labelled on two lines (two writers, or files concatenated), is an error
/// naming the file and lines.
pub fn read_labels(path: &Path) -> Result<Appended<LabelLine>> {
    let labels = jsonl::read_appended::<LabelLine>(path, "label line; is this a labels file?")?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (line, label) in &labels.records {
        if label.doc_ids.len() != label.utilities.len() {
            bail!(
                "{}:{line}: {} doc_ids but {} utilities",
                path.display(),
                label.doc_ids.len(),
                label.utilities.len()
            );
        }
        if let Some(first) = seen.insert(&label.query_id, *line) {
            bail!(
                "{}:{line}: query {:?} is labelled twice (first at line {first}); a labels file holds one line per query",
                path.display(),
                label.query_id
            );
        }
    }
    Ok(labels)
}

/// How often the teacher's highest-utility candidate is a gold passage
/// (FlagEmbedding #553: when answers are copied from the gold passage, the
/// utility collapses towards the hard label).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherAgreement {
    /// Labelled queries with at least one gold candidate.
    pub queries: usize,
    /// Of those, queries whose top-utility candidate is gold.
    pub top_is_gold: usize,
    /// Mean rank (1 = best) of the best gold candidate by utility.
    pub mean_gold_rank: f64,
    /// Mean number of candidates per query.
    pub mean_candidates: f64,
}

impl TeacherAgreement {
    /// Measures the agreement over labelled queries given as (utilities,
    /// whether each candidate is gold); queries without a gold candidate do
    /// not count.
    pub fn measure<'a, U: Copy + Into<f64> + 'a>(queries: impl IntoIterator<Item = (&'a [U], Vec<bool>)>) -> Self {
        let mut a = TeacherAgreement { queries: 0, top_is_gold: 0, mean_gold_rank: 0.0, mean_candidates: 0.0 };
        for (utilities, gold) in queries {
            let Some(rank) = by_utility(utilities).iter().position(|&i| gold[i]) else { continue };
            a.queries += 1;
            a.top_is_gold += usize::from(rank == 0);
            a.mean_gold_rank += (rank + 1) as f64;
            a.mean_candidates += utilities.len() as f64;
        }
        if a.queries > 0 {
            a.mean_gold_rank /= a.queries as f64;
            a.mean_candidates /= a.queries as f64;
        }
        a
    }

    /// The agreement of a labels file with `qrels`.
    pub fn of_labels(labels: &Path, qrels: &Qrels) -> Result<Self> {
        let lines = read_labels(labels)?.records;
        Ok(Self::measure(lines.iter().map(|(_, l)| {
            (l.utilities.as_slice(), l.doc_ids.iter().map(|d| qrels.is_relevant(&l.query_id, d)).collect())
        })))
    }

    /// `top_is_gold / queries`.
    pub fn share(&self) -> f64 {
        self.top_is_gold as f64 / self.queries.max(1) as f64
    }
}

fn nan() -> f64 {
    f64::NAN
}

fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn nullable_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?.into_iter().map(|u| u.unwrap_or(f64::NAN)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teacher_agreement_counts_top_gold_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.jsonl");
        let line = |q: &str, docs: &[&str], u: &[f64]| {
            serde_json::to_string(&LabelLine {
                query_id: q.into(),
                doc_ids: docs.iter().map(|d| d.to_string()).collect(),
                utilities: u.to_vec(),
                logp_with: u.to_vec(),
                logp_without: 0.0,
            })
            .unwrap()
        };
        let text = [
            line("q1", &["a", "g1"], &[0.1, 0.5]),
            line("q2", &["g2", "b", "c"], &[0.0, 0.3, 0.2]),
            line("q3", &["x"], &[1.0]),
        ]
        .join("\n");
        std::fs::write(&path, text).unwrap();
        let qrels: Qrels =
            [("q1", "g1"), ("q2", "g2"), ("q3", "y")].iter().map(|(q, d)| (q.to_string(), [(d.to_string(), 1)].into())).collect();
        let a = TeacherAgreement::of_labels(&path, &qrels).unwrap();
        assert_eq!((a.queries, a.top_is_gold, a.mean_gold_rank, a.mean_candidates), (2, 1, 2.0, 2.5));
    }

    #[test]
    fn a_query_labelled_twice_is_refused_with_both_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.jsonl");
        let line = |q: &str| format!("{{\"query_id\":\"{q}\",\"doc_ids\":[\"a\"],\"utilities\":[1.0]}}\n");
        std::fs::write(&path, [line("q1"), line("q2"), line("q1")].concat()).unwrap();
        let err = read_labels(&path).unwrap_err().to_string();
        assert!(err.contains("labels.jsonl:3: query \"q1\" is labelled twice (first at line 1)"), "{err}");
        std::fs::write(&path, [line("q1"), line("q2")].concat()).unwrap();
        assert_eq!(read_labels(&path).unwrap().records.len(), 2);
    }

    #[test]
    fn null_utilities_read_as_nan_and_ties_keep_order() {
        let line: LabelLine = serde_json::from_str(r#"{"query_id":"q","doc_ids":["a","b","c"],"utilities":[null,1,1]}"#).unwrap();
        assert!(line.utilities[0].is_nan() && line.logp_without.is_nan() && line.logp_with.is_empty());
        assert_eq!(line.by_utility(), [1, 2, 0]);
    }
}
