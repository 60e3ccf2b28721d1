//! Labels in the training formats of other tools, so that `torchrun` or
//! DeepSpeed users can train on uae's labels at any scale:
//!
//! - FlagEmbedding's fine-tuning JSONL: `{"query", "pos", "neg",
//!   "pos_scores", "neg_scores"}` per query, its knowledge-distillation
//!   form (the scores are the teacher's utilities);
//! - a sentence-transformers distillation data set (JSONL that `datasets`
//!   loads): `{"query", "positive", "negative_1", ..., "negative_k",
//!   "label"}`, `label` holding the utilities of the positive and each
//!   negative in that order, as `DistillKLDivLoss` reads them.
//!
//! The positive is the candidate with the highest utility (the teacher's
//! choice; ties keep candidate order), the negatives the others in
//! candidate order. Texts are the passages' embedding texts (title and
//! text), the queries' texts as they are.

use std::path::Path;

use anyhow::{Result, bail};

use crate::records::read_labels;
use crate::DataSet;

/// A format other trainers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelFormat {
    /// FlagEmbedding's fine-tuning JSONL with teacher scores.
    FlagEmbedding,
    /// A sentence-transformers distillation data set.
    SentenceTransformers,
}

impl std::str::FromStr for LabelFormat {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "flagembedding" => Ok(Self::FlagEmbedding),
            "sentence-transformers" => Ok(Self::SentenceTransformers),
            _ => bail!("unknown format {s:?}; expected flagembedding or sentence-transformers"),
        }
    }
}

/// What [`export_labels`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Lines written.
    pub written: usize,
    /// Queries left out: a utility that is not a number, or fewer than two
    /// candidates.
    pub skipped: usize,
    /// Negatives per line: FlagEmbedding, the most any query has;
    /// sentence-transformers, the fewest (every column must be filled, so
    /// the later negatives of longer lists are dropped).
    pub negatives: usize,
}

/// Writes the labels of `labels` (over `data`) to `out` in `format`,
/// atomically. Unknown query or passage ids are errors naming the line.
pub fn export_labels(data: &DataSet, labels: &Path, format: LabelFormat, out: &Path) -> Result<ExportReport> {
    let lines = read_labels(labels)?.records;
    let mut rows = Vec::with_capacity(lines.len());
    let mut skipped = 0;
    for (line, label) in &lines {
        let Some(query) = data.queries.get(&label.query_id) else {
            bail!("{}:{line}: unknown query id {:?} (not in the data set's queries)", labels.display(), label.query_id);
        };
        let mut texts = Vec::with_capacity(label.doc_ids.len());
        for id in &label.doc_ids {
            match data.corpus.get(id) {
                Some(p) => texts.push(p.embedding_text()),
                None => bail!("{}:{line}: unknown doc id {id:?} (not in the corpus)", labels.display()),
            }
        }
        if label.utilities.iter().any(|u| !u.is_finite()) || label.doc_ids.len() < 2 {
            skipped += 1;
            continue;
        }
        let best = label.by_utility()[0];
        let negatives: Vec<usize> = (0..texts.len()).filter(|&i| i != best).collect();
        rows.push((query.text.clone(), texts, label.utilities.clone(), best, negatives));
    }
    let negatives = match format {
        LabelFormat::FlagEmbedding => rows.iter().map(|r| r.4.len()).max().unwrap_or(0),
        LabelFormat::SentenceTransformers => rows.iter().map(|r| r.4.len()).min().unwrap_or(0),
    };
    let mut text = String::new();
    let mut written = 0;
    for (query, texts, utilities, best, negs) in &rows {
        let value = match format {
            LabelFormat::FlagEmbedding => serde_json::json!({
                "query": query,
                "pos": [texts[*best]],
                "neg": negs.iter().map(|&i| &texts[i]).collect::<Vec<_>>(),
                "pos_scores": [utilities[*best]],
                "neg_scores": negs.iter().map(|&i| utilities[i]).collect::<Vec<_>>(),
            }),
            LabelFormat::SentenceTransformers => {
                let mut row = serde_json::Map::new();
                row.insert("query".into(), query.clone().into());
                row.insert("positive".into(), texts[*best].clone().into());
                let kept = &negs[..negatives];
                for (k, &i) in kept.iter().enumerate() {
                    row.insert(format!("negative_{}", k + 1), texts[i].clone().into());
                }
                let label: Vec<f64> = std::iter::once(*best).chain(kept.iter().copied()).map(|i| utilities[i]).collect();
                row.insert("label".into(), serde_json::json!(label));
                serde_json::Value::Object(row)
            }
        };
        text += &serde_json::to_string(&value)?;
        text.push('\n');
        written += 1;
    }
    crate::atomic::write_file_atomically(out, text.as_bytes())?;
    Ok(ExportReport { written, skipped, negatives })
}
