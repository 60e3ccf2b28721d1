//! The in-memory data set every stage works on: passages, queries, the
//! judgements of each split and optional per-query pools. [`crate::beir`]
//! and [`crate::qasper`] read files into it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use anyhow::{Result, bail};

use crate::Qrels;

/// Per-query candidate pools: query id -> the passage ids it is ranked among.
pub type Pools = BTreeMap<String, Vec<String>>;

/// A record with a unique string id.
pub trait Keyed {
    /// The record's id.
    fn id(&self) -> &str;
}

/// One retrievable passage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// Unique id.
    pub id: String,
    /// Title (a page or section name); empty when there is none.
    pub title: String,
    /// Body text.
    pub text: String,
}

impl Passage {
    /// The text a bi-encoder embeds for this passage: `"{title}. {text}"`,
    /// or the text alone when the title is empty or blank. The title is kept
    /// because it often names the subject the body leaves implicit; the ". "
    /// keeps it from running into the body's first sentence.
    pub fn embedding_text(&self) -> String {
        if self.title.trim().is_empty() { self.text.clone() } else { format!("{}. {}", self.title, self.text) }
    }
}

impl Keyed for Passage {
    fn id(&self) -> &str {
        &self.id
    }
}

/// One query with its gold answers (empty for retrieval-only data sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Unique id.
    pub id: String,
    /// The question text.
    pub text: String,
    /// Reference answers, for answer-level metrics and utility labelling.
    pub answers: Vec<String>,
}

impl Query {
    /// The prefix of a synthetic query's id (a question an LLM wrote about a
    /// corpus passage, `uae synth`), as in `synth:<passage>:<n>`.
    pub const SYNTHETIC_PREFIX: &'static str = "synth:";

    /// Whether `id` names a synthetic query.
    pub fn is_synthetic_id(id: &str) -> bool {
        id.starts_with(Self::SYNTHETIC_PREFIX)
    }

    /// The first answer that is not blank, the one utilities are measured on.
    pub fn first_answer(&self) -> Option<&str> {
        self.answers.iter().map(String::as_str).find(|a| !a.trim().is_empty())
    }
}

impl Keyed for Query {
    fn id(&self) -> &str {
        &self.id
    }
}

/// A record whose id is already taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateId {
    /// The repeated id.
    pub id: String,
    /// Position of the record that holds it.
    pub first: usize,
}

impl fmt::Display for DuplicateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "duplicate id {:?}", self.id)
    }
}

impl std::error::Error for DuplicateId {}

/// Records in input order, with an id -> position map.
#[derive(Debug, Clone)]
pub struct Records<T> {
    items: Vec<T>,
    index: HashMap<String, usize>,
}

impl<T> Default for Records<T> {
    fn default() -> Self {
        Self { items: Vec::new(), index: HashMap::new() }
    }
}

impl<T: Keyed> Records<T> {
    /// Appends a record and returns its position; a repeated id is refused.
    pub fn push(&mut self, item: T) -> Result<usize, DuplicateId> {
        if let Some(&first) = self.index.get(item.id()) {
            return Err(DuplicateId { id: item.id().to_owned(), first });
        }
        let position = self.items.len();
        self.index.insert(item.id().to_owned(), position);
        self.items.push(item);
        Ok(position)
    }

    /// The records in input order.
    pub fn as_slice(&self) -> &[T] {
        &self.items
    }

    /// The position of the record with this id.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The record with this id.
    pub fn get(&self, id: &str) -> Option<&T> {
        self.position(id).map(|i| &self.items[i])
    }

    /// Whether a record has this id.
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The passages to search, in input order.
pub type Corpus = Records<Passage>;

/// The queries, in input order.
pub type Queries = Records<Query>;

/// A retrieval data set: passages, queries, and relevance judgements per
/// split, plus optional per-query candidate pools.
#[derive(Debug, Clone, Default)]
pub struct DataSet {
    /// Every passage.
    pub corpus: Corpus,
    /// Every query, judged in a loaded split or not.
    pub queries: Queries,
    /// Split name (`train`, `dev`, `test`, ...) -> judgements.
    pub qrels: BTreeMap<String, Qrels>,
    /// Where each query is ranked among a fixed set of passages rather than
    /// the whole corpus (QASPER: the paragraphs of the query's own paper);
    /// `None` means every query is ranked against the whole corpus.
    pub pools: Option<Pools>,
}

impl DataSet {
    /// The queries judged in `split`, in query-file order. A split that was
    /// not loaded is an error naming the loaded ones.
    pub fn queries_of_split(&self, split: &str) -> Result<Vec<&Query>> {
        let Some(qrels) = self.qrels.get(split) else {
            let loaded: Vec<&str> = self.qrels.keys().map(String::as_str).collect();
            bail!("split {split:?} is not loaded (loaded: {})", loaded.join(", "));
        };
        Ok(self.queries.as_slice().iter().filter(|q| qrels.contains(&q.id)).collect())
    }

    /// The passages `query` is ranked among: its pool when the data set has
    /// per-query pools and `per_document` is set, else the whole corpus.
    pub fn pool_of(&self, query: &Query, per_document: bool) -> Result<Vec<&Passage>> {
        if !per_document {
            return Ok(self.corpus.as_slice().iter().collect());
        }
        let Some(pools) = &self.pools else {
            bail!("--pool document needs per-document pools (QASPER-style data); this data set has none");
        };
        let Some(ids) = pools.get(&query.id) else {
            bail!("query {} has no document pool", query.id);
        };
        ids.iter()
            .map(|id| self.corpus.get(id).ok_or_else(|| anyhow::anyhow!("pool of query {} names unknown passage {id}", query.id)))
            .collect()
    }

    /// The corpus positions of `query`'s pool when `per_document` is set
    /// (see [`DataSet::pool_of`]), or `None` for the whole corpus.
    pub fn pool_rows(&self, query: &Query, per_document: bool) -> Result<Option<Vec<usize>>> {
        if !per_document {
            return Ok(None);
        }
        let pool = self.pool_of(query, true)?;
        Ok(Some(pool.iter().map(|p| self.corpus.position(&p.id).expect("pool passages are in the corpus")).collect()))
    }
}
