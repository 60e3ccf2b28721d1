//! A BEIR fixture builder: passages, queries and judgements added in code,
//! written with the library's own BEIR writer.

use std::path::Path;

use uae_data::{DataSet, Passage, Query};

/// A data set under construction.
#[derive(Default)]
pub struct Fixture {
    data: DataSet,
}

impl Fixture {
    /// An empty data set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a passage without a title.
    pub fn passage(&mut self, id: &str, text: &str) -> &mut Self {
        let passage = Passage { id: id.into(), title: String::new(), text: text.into() };
        self.data.corpus.push(passage).expect("unique passage id");
        self
    }

    /// Adds a query with its answers.
    pub fn query(&mut self, id: &str, text: &str, answers: &[&str]) -> &mut Self {
        let query = Query { id: id.into(), text: text.into(), answers: answers.iter().map(|a| a.to_string()).collect() };
        self.data.queries.push(query).expect("unique query id");
        self
    }

    /// Judges `doc` with `grade` for `query` in `split`.
    pub fn judge(&mut self, split: &str, query: &str, doc: &str, grade: i32) -> &mut Self {
        self.data.qrels.entry(split.into()).or_default().insert(query, doc, grade);
        self
    }

    /// Gives `query` a pool of passages (a `pools.jsonl` line).
    pub fn pool(&mut self, query: &str, docs: &[&str]) -> &mut Self {
        self.data.pools.get_or_insert_default().insert(query.into(), docs.iter().map(|d| d.to_string()).collect());
        self
    }

    /// Writes the BEIR folder (`corpus.jsonl`, `queries.jsonl`,
    /// `qrels/<split>.tsv`, and `pools.jsonl` when there are pools).
    pub fn write(&self, dir: &Path) {
        self.data.write_beir(dir).expect("the fixture is written");
    }
}
