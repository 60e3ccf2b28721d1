//! BM25 lexical search over passages, through [tantivy], as a baseline
//! retriever and a source of candidates.
//!
//! - **What is indexed**: one text field holding the passage title and body
//!   as two values of the same field, so BM25 sees one document of
//!   `len(title) + len(text)` tokens (as Anserini's `contents` = title +
//!   text); the passage id is stored and not searchable.
//! - **Analysis**: tantivy's `en_stem` analyzer: the simple tokenizer (runs
//!   of letters and digits), tokens over 40 bytes dropped, lower-casing, and
//!   the Snowball English stemmer, so `running` matches `runs`. No stop words
//!   are removed: BM25's IDF already gives common words little weight.
//! - **Scoring**: tantivy's BM25 (`k1 = 1.2`, `b = 0.75`) with corpus-wide
//!   statistics, so scores do not depend on how the index is segmented.
//! - **Queries**: the query text goes through the same analyzer and every
//!   token becomes a `SHOULD` term clause (a repeated token counts twice).
//!   There is no query syntax, so no text is a syntax error: `what's a*b?`
//!   searches `what`, `s`, `a` and `b`. A query with no tokens finds nothing.
//! - **Ranking**: the one ranking order of `uae_data::ranking` (score
//!   descending, then passage id ascending). tantivy breaks ties by its internal
//!   document address instead, so [`Bm25Index::search`] fetches more than `k`
//!   hits until the fetched list ends below the `k`-th score (every passage
//!   tied with the `k`-th is then among them) and re-sorts.

use anyhow::{Result, anyhow};
use rayon::prelude::*;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query as TantivyQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, Index, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use uae_data::ranking::{self, Hit, Ranking};
use uae_data::{DataSet, Passage, Query};

/// Name of the stored passage-id field.
const ID_FIELD: &str = "id";

/// Name of the searchable title-and-text field.
const TEXT_FIELD: &str = "text";

/// tantivy's built-in analyzer: simple tokenizer, long-token filter,
/// lower-casing and English stemming.
const ANALYZER: &str = "en_stem";

/// Memory the index writer may use, shared among its threads.
const WRITER_MEMORY: usize = 256 << 20;

/// Hits fetched beyond `k` on the first try, to settle ties at the boundary.
const TIE_MARGIN: usize = 16;

/// An in-memory BM25 index of passages.
pub struct Bm25Index {
    searcher: Searcher,
    analyzer: TextAnalyzer,
    id: Field,
    text: Field,
}

impl Bm25Index {
    /// Indexes `passages` in memory.
    pub fn build(passages: &[Passage]) -> Result<Self> {
        let index = Index::create_in_ram(schema());
        let (id, text) = fields(&index.schema())?;
        let mut writer: IndexWriter = index.writer(WRITER_MEMORY)?;
        for passage in passages {
            writer.add_document(document(passage, id, text))?;
        }
        writer.commit()?;
        writer.wait_merging_threads()?;
        Self::from_index(index)
    }

    /// An index over the pool of `query` (docs/method.md, "Mining and
    /// candidate pools").
    pub fn over_pool(data: &DataSet, query: &Query) -> Result<Self> {
        let pool: Vec<Passage> = data.pool_of(query, true)?.into_iter().cloned().collect();
        Self::build(&pool)
    }

    /// Number of indexed passages.
    pub fn len(&self) -> usize {
        self.searcher.num_docs() as usize
    }

    /// Whether no passages are indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` best passages for `query` with their BM25 scores, in ranking
    /// order. Only passages sharing a token with the query are returned, so
    /// there may be fewer than `k`.
    pub fn search(&self, query: &str, k: usize) -> Result<Ranking> {
        let Some(query) = self.parse(query) else { return Ok(Vec::new()) };
        if k == 0 {
            return Ok(Vec::new());
        }
        let hits = self.top_hits(&query, k)?;
        let cutoff = hits[..k.min(hits.len())].last().map_or(f32::INFINITY, |h| h.0);
        let mut ranked = hits
            .into_iter()
            .take_while(|(score, _)| *score >= cutoff)
            .map(|(score, address)| Ok(Hit::new(self.passage_id(address)?, score)))
            .collect::<Result<Ranking>>()?;
        ranking::sort(&mut ranked);
        ranked.truncate(k);
        Ok(ranked)
    }

    /// [`Bm25Index::search`] for each of `queries`, in parallel, in order.
    pub fn search_batch<Q: AsRef<str> + Sync>(&self, queries: &[Q], k: usize) -> Result<Vec<Ranking>> {
        queries.par_iter().map(|q| self.search(q.as_ref(), k)).collect()
    }

    /// Wraps a committed index: its fields, analyzer and a searcher.
    fn from_index(index: Index) -> Result<Self> {
        let (id, text) = fields(&index.schema())?;
        let analyzer = index.tokenizer_for_field(text)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self { searcher: reader.searcher(), analyzer, id, text })
    }

    /// One `SHOULD` term clause per token of `text`; `None` without tokens.
    fn parse(&self, text: &str) -> Option<BooleanQuery> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut clauses: Vec<(Occur, Box<dyn TantivyQuery>)> = Vec::new();
        while let Some(token) = stream.next() {
            let term = Term::from_field_text(self.text, &token.text);
            clauses.push((Occur::Should, Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))));
        }
        (!clauses.is_empty()).then(|| BooleanQuery::new(clauses))
    }

    /// tantivy's best hits, score descending, including every hit tied with
    /// the `k`-th: the fetch limit doubles while the last fetched hit still
    /// ties with the `k`-th, since more tied hits may lie beyond it.
    fn top_hits(&self, query: &dyn TantivyQuery, k: usize) -> Result<Vec<(f32, DocAddress)>> {
        let mut limit = k + TIE_MARGIN;
        loop {
            let hits = self.searcher.search(query, &TopDocs::with_limit(limit).order_by_score())?;
            if hits.len() < limit || hits[limit - 1].0 < hits[k - 1].0 {
                return Ok(hits);
            }
            limit *= 2;
        }
    }

    /// The stored id of the passage at `address`.
    fn passage_id(&self, address: DocAddress) -> Result<String> {
        let doc: TantivyDocument = self.searcher.doc(address)?;
        let id = doc.get_first(self.id).and_then(|v| v.as_str());
        id.map(str::to_owned).ok_or_else(|| anyhow!("BM25 index document {address:?} has no id"))
    }
}

/// Score descending, then id ascending (UTF-8 bytes).
/// The index schema: a stored id and an analysed, unstored text field with
/// term frequencies (no positions: BM25 needs none).
fn schema() -> Schema {
    let indexing = TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqs);
    let mut builder = Schema::builder();
    builder.add_text_field(ID_FIELD, STORED);
    builder.add_text_field(TEXT_FIELD, TextOptions::default().set_indexing_options(indexing));
    builder.build()
}

/// The id and text fields of `schema`.
fn fields(schema: &Schema) -> Result<(Field, Field)> {
    Ok((schema.get_field(ID_FIELD)?, schema.get_field(TEXT_FIELD)?))
}

/// The tantivy document of `passage`: its id, and its title (when not
/// blank) and text as two values of the text field.
fn document(passage: &Passage, id: Field, text: Field) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_text(id, &passage.id);
    if !passage.title.trim().is_empty() {
        doc.add_text(text, &passage.title);
    }
    doc.add_text(text, &passage.text);
    doc
}

/// BM25 rankings of the top `k` passages for each of `queries`: one index
/// over the corpus, or with `per_document` a small in-memory index per
/// query's pool.
pub fn rankings(data: &DataSet, queries: &[&Query], per_document: bool, k: usize) -> Result<Vec<Ranking>> {
    if !per_document {
        let index = Bm25Index::build(data.corpus.as_slice())?;
        let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
        return index.search_batch(&texts, k);
    }
    queries.iter().map(|query| Bm25Index::over_pool(data, query)?.search(&query.text, k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(id: &str, title: &str, text: &str) -> Passage {
        Passage { id: id.into(), title: title.into(), text: text.into() }
    }

    fn corpus() -> Vec<Passage> {
        vec![
            passage("p1", "Rust", "The Rust compiler checks borrows at compile time."),
            passage("p2", "", "Python is an interpreted language with a garbage collector."),
            passage("p3", "Compilers", "A compiler translates source code; the borrow checker is part of rustc."),
            passage("p4", "Cooking", "Boil the pasta for nine minutes and drain it."),
        ]
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.id.as_str()).collect()
    }

    #[test]
    fn passage_with_the_query_terms_ranks_first() {
        let index = Bm25Index::build(&corpus()).unwrap();
        assert_eq!(index.len(), 4);
        let hits = index.search("rust compiler borrows", 10).unwrap();
        assert_eq!(ids(&hits)[0], "p1");
        assert!(!ids(&hits).contains(&"p4"), "{hits:?}");
        assert!(!ids(&hits).contains(&"p2"), "{hits:?}");
    }

    #[test]
    fn scores_are_positive_and_decreasing() {
        let index = Bm25Index::build(&corpus()).unwrap();
        let hits = index.search("rust compiler borrow checker", 10).unwrap();
        let mut found = ids(&hits);
        found.sort();
        assert_eq!(found, ["p1", "p3"]);
        assert!(hits.iter().all(|h| h.score > 0.0), "{hits:?}");
        assert!(hits.windows(2).all(|w| w[0].score > w[1].score), "{hits:?}");
    }

    #[test]
    fn title_is_searched_and_words_are_stemmed() {
        let index = Bm25Index::build(&corpus()).unwrap();
        assert_eq!(ids(&index.search("cooking", 10).unwrap()), ["p4"]);
        assert_eq!(ids(&index.search("BOILING", 10).unwrap()), ["p4"]);
    }

    #[test]
    fn query_syntax_is_plain_text() {
        let index = Bm25Index::build(&corpus()).unwrap();
        let hits = index.search("what's `pasta*drain`? AND (OR \"rust:", 10).unwrap();
        assert_eq!(ids(&hits), ["p4", "p1"]);
        for empty in ["", "  ", "?!* () :"] {
            assert!(index.search(empty, 10).unwrap().is_empty(), "{empty:?}");
        }
        assert!(index.search("rust", 0).unwrap().is_empty());
        assert!(index.search("unknownword", 10).unwrap().is_empty());
    }

    #[test]
    fn ties_are_broken_by_id_at_any_k() {
        // Identical passages tie; ids in scrambled order, more than TIE_MARGIN.
        let names: Vec<String> = (0..40).map(|i| format!("d{}", (i * 17) % 40)).collect();
        let mut passages: Vec<Passage> = names.iter().map(|id| passage(id, "", "apple banana")).collect();
        passages.push(passage("best", "", "apple apple banana"));
        let index = Bm25Index::build(&passages).unwrap();
        let mut sorted = names.clone();
        sorted.sort();
        for k in [1, 2, 3, 20, 41, 50] {
            let hits = index.search("apple", k).unwrap();
            let expected: Vec<&str> =
                std::iter::once("best").chain(sorted.iter().map(String::as_str)).take(k).collect();
            assert_eq!(ids(&hits), expected, "k = {k}");
        }
    }

    #[test]
    fn batch_equals_single_searches() {
        let index = Bm25Index::build(&corpus()).unwrap();
        let queries = ["rust", "garbage collector", "", "pasta"];
        let batch = index.search_batch(&queries, 2).unwrap();
        let single: Vec<_> = queries.iter().map(|q| index.search(q, 2).unwrap()).collect();
        assert_eq!(batch, single);
    }
}
