//! The BEIR folder layout:
//!
//! - `corpus.jsonl`: lines `{"_id", "title", "text"}`; the title may be
//!   missing, null or empty.
//! - `queries.jsonl`: lines `{"_id", "text", "answers": [str]}`; `answers`
//!   may be missing (plain BEIR data sets have none).
//! - `qrels/<split>.tsv`: the header `query-id\tcorpus-id\tscore`, then one
//!   judgement a line with an integer score.
//! - `pools.jsonl` (optional, uae's extension): lines `{"query_id",
//!   "doc_ids"}` giving each query the passages it is ranked among instead
//!   of the whole corpus (QASPER: its own paper's paragraphs).
//!
//! An `_id` may be a JSON string or number; numbers become their decimal
//! text. Other fields are ignored. Errors name the file and line: malformed
//! JSON, repeated ids, judgements of unknown queries or passages, qrels lines
//! without three columns or with a non-integer score, and conflicting
//! judgements of one pair (an exact repeat is accepted).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde::de::{Deserializer, Error as _};

use crate::atomic::write_atomically;
use crate::trec::BEIR_HEADER;
use crate::{Corpus, DataSet, DuplicateId, Keyed, Passage, Pools, Qrels, Queries, Query, Records};

/// What a BEIR data-set folder must hold, for error messages.
const LAYOUT: &str = "a BEIR data set is a folder holding corpus.jsonl ({\"_id\", \"title\", \"text\"} lines), \
                      queries.jsonl ({\"_id\", \"text\"} lines) and qrels/<split>.tsv \
                      (header \"query-id\\tcorpus-id\\tscore\")";


impl DataSet {
    /// Reads the BEIR folder `dir` with the judgements of each of `splits`
    /// (`qrels/<split>.tsv`); no splits loads passages and queries only.
    pub fn load(dir: impl AsRef<Path>, splits: &[&str]) -> Result<Self> {
        let dir = dir.as_ref();
        let corpus = read_corpus(existing(dir, "corpus.jsonl")?)?;
        let queries = read_queries(existing(dir, "queries.jsonl")?)?;
        let mut data = DataSet { corpus, queries, ..Default::default() };
        let pools = dir.join(POOLS);
        if pools.is_file() {
            data.pools = Some(read_pools(&pools, &data)?);
        }
        for &split in splits {
            let qrels = read_qrels(&qrels_path(dir, split)?, &data)?;
            data.qrels.insert(split.to_owned(), qrels);
        }
        Ok(data)
    }

    /// Reads the BEIR folder `dir` with the judgements of every split it has
    /// (each `qrels/<split>.tsv`).
    pub fn load_all(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let qrels = dir.join("qrels");
        let mut splits: Vec<String> = match std::fs::read_dir(&qrels) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".tsv").map(str::to_string))
                .collect(),
            Err(_) => Vec::new(),
        };
        splits.sort();
        Self::load(dir, &splits.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Reads the BEIR folder `dir` with the judgements of one split.
    pub fn load_split(dir: impl AsRef<Path>, split: &str) -> Result<Self> {
        Self::load(dir, &[split])
    }
}

/// The optional per-query pools file of a BEIR folder.
pub const POOLS: &str = "pools.jsonl";

/// A line of `pools.jsonl`.
#[derive(serde::Serialize, Deserialize)]
struct PoolLine {
    query_id: String,
    doc_ids: Vec<String>,
}

/// Reads `pools.jsonl`, checking that every id is a known query or passage.
fn read_pools(path: &Path, data: &DataSet) -> Result<Pools> {
    let text = crate::text::read(path)?;
    let mut pools = Pools::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{}:{}", path.display(), n + 1);
        let line: PoolLine = serde_json::from_str(line).with_context(|| format!("{}: expected {{\"query_id\", \"doc_ids\"}}", at()))?;
        if !data.queries.contains(&line.query_id) {
            bail!("{}: unknown query id {:?}", at(), line.query_id);
        }
        if let Some(doc) = line.doc_ids.iter().find(|d| !data.corpus.contains(d)) {
            bail!("{}: unknown passage id {doc:?}", at());
        }
        if pools.insert(line.query_id.clone(), line.doc_ids).is_some() {
            bail!("{}: query {:?} has a pool already", at(), line.query_id);
        }
    }
    Ok(pools)
}

impl DataSet {
    /// Writes the data set as a BEIR folder (with `pools.jsonl` when it has
    /// pools), each file through a temporary file and a rename.
    pub fn write_beir(&self, dir: &Path) -> Result<()> {
        let qrels_dir = dir.join("qrels");
        std::fs::create_dir_all(&qrels_dir).with_context(|| format!("cannot create {}", qrels_dir.display()))?;
        let lines = |values: Vec<serde_json::Value>| -> Result<Vec<u8>> {
            let mut out = Vec::new();
            for v in values {
                serde_json::to_writer(&mut out, &v)?;
                out.push(b'\n');
            }
            Ok(out)
        };
        let corpus = self.corpus.as_slice().iter().map(|p| serde_json::json!({"_id": p.id, "title": p.title, "text": p.text}));
        write_atomically(dir, "corpus.jsonl", &lines(corpus.collect())?)?;
        let queries = self.queries.as_slice().iter().map(|q| serde_json::json!({"_id": q.id, "text": q.text, "answers": q.answers}));
        write_atomically(dir, "queries.jsonl", &lines(queries.collect())?)?;
        for (split, qrels) in &self.qrels {
            let mut text = String::from(BEIR_HEADER);
            text.push('\n');
            for (query, judged) in qrels.iter() {
                for (doc, grade) in judged {
                    text.push_str(&format!("{query}\t{doc}\t{grade}\n"));
                }
            }
            write_atomically(&qrels_dir, &format!("{split}.tsv"), text.as_bytes())?;
        }
        if let Some(pools) = &self.pools {
            let pools = pools.iter().map(|(q, docs)| serde_json::json!(PoolLine { query_id: q.clone(), doc_ids: docs.clone() }));
            write_atomically(dir, POOLS, &lines(pools.collect())?)?;
        }
        Ok(())
    }
}

/// Reads a `corpus.jsonl` file of `{"_id", "title", "text"}` lines.
pub fn read_corpus(path: impl AsRef<Path>) -> Result<Corpus> {
    read_records(path.as_ref(), <Passage as From<CorpusLine>>::from)
}

/// Reads a `queries.jsonl` file of `{"_id", "text", "answers"}` lines.
pub fn read_queries(path: impl AsRef<Path>) -> Result<Queries> {
    read_records(path.as_ref(), <Query as From<QueryLine>>::from)
}

/// A line of `corpus.jsonl`.
#[derive(Deserialize)]
struct CorpusLine {
    #[serde(rename = "_id", deserialize_with = "id_string")]
    id: String,
    #[serde(default)]
    title: Option<String>,
    text: String,
}

impl From<CorpusLine> for Passage {
    fn from(line: CorpusLine) -> Self {
        Passage { id: line.id, title: line.title.unwrap_or_default(), text: line.text }
    }
}

/// A line of `queries.jsonl`.
#[derive(Deserialize)]
struct QueryLine {
    #[serde(rename = "_id", deserialize_with = "id_string")]
    id: String,
    text: String,
    #[serde(default)]
    answers: Vec<String>,
}

impl From<QueryLine> for Query {
    fn from(line: QueryLine) -> Self {
        Query { id: line.id, text: line.text, answers: line.answers }
    }
}

/// Reads an `_id` given as a JSON string or number.
fn id_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(D::Error::custom(format!("_id must be a string or a number, not {other}"))),
    }
}

/// `dir/name`, or an error saying it is missing and what the layout is.
fn existing(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!("missing {}: {LAYOUT}", path.display());
    }
    Ok(path)
}

/// `dir/qrels/<split>.tsv`, or an error naming the splits that do exist.
fn qrels_path(dir: &Path, split: &str) -> Result<PathBuf> {
    let path = dir.join("qrels").join(format!("{split}.tsv"));
    if path.is_file() {
        return Ok(path);
    }
    let mut found: Vec<String> = std::fs::read_dir(dir.join("qrels"))
        .map(|entries| {
            entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".tsv").map(str::to_owned)).collect()
        })
        .unwrap_or_default();
    found.sort();
    bail!(
        "missing {} (splits found: {}): {LAYOUT}",
        path.display(),
        if found.is_empty() { "none".into() } else { found.join(", ") }
    );
}

/// Reads the JSON lines of `path` as `L` records converted to `T`, refusing
/// an id a qrels or run file cannot hold ([`crate::trec::check_id`]) and
/// repeated ids with both line numbers.
fn read_records<L, T>(path: &Path, convert: impl Fn(L) -> T) -> Result<Records<T>>
where
    L: serde::de::DeserializeOwned,
    T: Keyed,
{
    let name = path.display();
    let mut records = Records::default();
    let mut line_of = Vec::new();
    for (line, record) in crate::jsonl::read_numbered::<L>(path, "record")? {
        let record = convert(record);
        crate::trec::check_id(record.id()).map_err(|e| anyhow!("{name}:{line}: _id: {e}"))?;
        if let Err(DuplicateId { id, first }) = records.push(record) {
            bail!("{name}:{line}: duplicate _id {id:?} (first at line {})", line_of[first]);
        }
        line_of.push(line);
    }
    Ok(records)
}

/// Reads the judgements of `path` with the one qrels parser
/// ([`Qrels::parse_checked`]), checking every id against `data`.
fn read_qrels(path: &Path, data: &DataSet) -> Result<Qrels> {
    let text = crate::text::read(path)?;
    Qrels::parse_checked(&text, &path.display().to_string(), true, |qid, docid| {
        if !data.queries.contains(qid) {
            bail!("unknown query id {qid:?} (not in queries.jsonl)");
        }
        if !data.corpus.contains(docid) {
            bail!("unknown corpus id {docid:?} (not in corpus.jsonl)");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a BEIR folder with the given files into a temporary directory.
    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("qrels")).unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        dir
    }

    const CORPUS: &str = "{\"_id\": \"d1\", \"title\": \"Cats\", \"text\": \"Cats purr.\"}\n\
                          \n\
                          {\"_id\": 2, \"text\": \"Dogs bark.\"}\n\
                          {\"_id\": \"d3\", \"title\": null, \"text\": \"Birds sing.\", \"extra\": 1}\n";
    const QUERIES: &str = "{\"_id\": \"q1\", \"text\": \"What purrs?\", \"answers\": [\"cats\"]}\n\
                           {\"_id\": 7, \"text\": \"What barks?\"}\n";
    const TEST: &str = "query-id\tcorpus-id\tscore\nq1\td1\t1\n7\t2\t2\n7\td3\t0\n";

    fn valid(extra: &[(&str, &str)]) -> tempfile::TempDir {
        let mut files = vec![("corpus.jsonl", CORPUS), ("queries.jsonl", QUERIES), ("qrels/test.tsv", TEST)];
        files.extend_from_slice(extra);
        folder(&files)
    }

    fn load_err(dir: &tempfile::TempDir, splits: &[&str]) -> String {
        format!("{:#}", DataSet::load(dir.path(), splits).unwrap_err())
    }

    #[test]
    fn loads_a_folder() {
        let dir = valid(&[]);
        let data = DataSet::load_split(dir.path(), "test").unwrap();
        let ids: Vec<&str> = data.corpus.as_slice().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["d1", "2", "d3"]);
        assert_eq!(data.corpus.position("d3"), Some(2));
        assert_eq!(data.corpus.get("d1").unwrap().embedding_text(), "Cats. Cats purr.");
        assert_eq!(data.corpus.get("2").unwrap().embedding_text(), "Dogs bark.");
        assert_eq!(data.corpus.get("d3").unwrap().title, "");
        assert_eq!(data.queries.get("q1").unwrap().answers, ["cats"]);
        assert!(data.queries.get("7").unwrap().answers.is_empty());
        let test = &data.qrels["test"];
        assert_eq!(test["q1"].iter().collect::<Vec<_>>(), [(&"d1".to_owned(), &1)]);
        assert_eq!(test["7"]["2"], 2);
        assert_eq!(test["7"]["d3"], 0);
        assert!(data.pools.is_none());
        let split: Vec<&str> = data.queries_of_split("test").unwrap().iter().map(|q| q.id.as_str()).collect();
        assert_eq!(split, ["q1", "7"]);
        assert_eq!(data.queries_of_split("dev").unwrap_err().to_string(), "split \"dev\" is not loaded (loaded: test)");
    }

    #[test]
    fn loads_several_splits_and_none() {
        let dir = valid(&[("qrels/dev.tsv", "query-id\tcorpus-id\tscore\r\nq1\td3\t1\r\n")]);
        let data = DataSet::load(dir.path(), &["test", "dev"]).unwrap();
        assert_eq!(data.qrels.keys().collect::<Vec<_>>(), ["dev", "test"]);
        assert_eq!(data.queries_of_split("dev").unwrap().len(), 1);
        assert!(DataSet::load(dir.path(), &[]).unwrap().qrels.is_empty());
    }

    #[test]
    fn missing_files_are_named() {
        let dir = folder(&[("queries.jsonl", QUERIES)]);
        let err = load_err(&dir, &["test"]);
        assert!(
            err.starts_with(&format!("missing {}: a BEIR data set", dir.path().join("corpus.jsonl").display())),
            "{err}"
        );
        let dir = valid(&[]);
        let err = load_err(&dir, &["dev"]);
        assert!(err.contains("dev.tsv (splits found: test): a BEIR data set"), "{err}");
    }

    #[test]
    fn reads_single_files() {
        let dir = valid(&[]);
        assert_eq!(read_corpus(dir.path().join("corpus.jsonl")).unwrap().len(), 3);
        assert_eq!(read_queries(dir.path().join("queries.jsonl")).unwrap().as_slice()[1].text, "What barks?");
        let missing = dir.path().join("nope.jsonl");
        assert_eq!(
            format!("{:#}", read_corpus(&missing).unwrap_err()).split(':').next().unwrap(),
            format!("cannot open {}", missing.display())
        );
    }

    #[test]
    fn duplicate_ids_name_both_lines() {
        let corpus = format!("{CORPUS}{{\"_id\": \"2\", \"text\": \"again\"}}\n");
        let dir = valid(&[("corpus.jsonl", &corpus)]);
        let err = load_err(&dir, &[]);
        assert!(err.ends_with("corpus.jsonl:5: duplicate _id \"2\" (first at line 3)"), "{err}");
    }

    #[test]
    fn byte_order_marks_are_dropped() {
        let bom = |text: &str| format!("\u{feff}{text}");
        let (corpus, queries, test) = (bom(CORPUS), bom(QUERIES), bom(TEST));
        let dir = valid(&[("corpus.jsonl", &corpus), ("queries.jsonl", &queries), ("qrels/test.tsv", &test)]);
        let data = DataSet::load_split(dir.path(), "test").unwrap();
        assert_eq!(data.corpus.as_slice()[0].id, "d1");
        assert_eq!(data.queries.as_slice()[0].id, "q1");
        assert_eq!(data.qrels["test"]["q1"]["d1"], 1);
    }

    #[test]
    fn ids_a_qrels_file_cannot_hold_are_refused() {
        let dir = valid(&[("corpus.jsonl", "{\"_id\": \"d1\", \"text\": \"a\"}\n\n{\"_id\": \"d\\t2\", \"text\": \"b\"}\n")]);
        let err = load_err(&dir, &[]);
        assert!(err.ends_with("corpus.jsonl:3: _id: \"d\\t2\" holds a tab or a line break, which a qrels or run file cannot hold"), "{err}");
        let dir = valid(&[("queries.jsonl", "{\"_id\": \"\", \"text\": \"a\"}\n")]);
        let err = load_err(&dir, &[]);
        assert!(err.ends_with("queries.jsonl:1: _id: an empty id cannot be written to a qrels or run file"), "{err}");
    }

    #[test]
    fn malformed_lines_are_named() {
        let dir = valid(&[("queries.jsonl", "{\"_id\": \"q1\", \"text\": \"a\"}\n{\"_id\": [1], \"text\": \"b\"}\n")]);
        let err = load_err(&dir, &[]);
        assert!(err.contains("queries.jsonl:2: invalid record: _id must be a string or a number"), "{err}");
    }

    #[test]
    fn bad_qrels_lines_are_named() {
        let cases = [
            ("q1\td1\n", "test.tsv:2: expected 3 tab-separated columns (query-id, corpus-id, score), found 2"),
            ("q1\td1\t1.5\n", "test.tsv:2: score \"1.5\" is not an integer"),
            ("\nq9\td1\t1\n", "test.tsv:3: unknown query id \"q9\" (not in queries.jsonl)"),
            ("q1\td9\t1\n", "test.tsv:2: unknown corpus id \"d9\" (not in corpus.jsonl)"),
            (
                "q1\td1\t1\nq1\td1\t1\nq1\td1\t2\n",
                "test.tsv:4: query \"q1\" and passage \"d1\" were already judged 1, now 2",
            ),
        ];
        for (body, expected) in cases {
            let qrels = format!("{BEIR_HEADER}\n{body}");
            let dir = valid(&[("qrels/test.tsv", &qrels)]);
            let err = load_err(&dir, &["test"]);
            assert!(err.ends_with(expected), "{err}");
        }
        let dir = valid(&[("qrels/test.tsv", "q1\td1\t1\n")]);
        let err = load_err(&dir, &["test"]);
        assert!(
            err.ends_with("test.tsv:1: expected the header \"query-id\\tcorpus-id\\tscore\", found \"q1\\td1\\t1\""),
            "{err}"
        );
    }
}
