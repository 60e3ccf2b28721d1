//! TREC qrels and run files.
//!
//! Qrels are read from TREC qrels (`qid 0 docid rel`, whitespace separated)
//! or BEIR TSV (`query-id\tcorpus-id\tscore`, with or without that header).
//! Runs are standard TREC run files (`qid Q0 docid rank score tag`); the rank
//! column is ignored and a query's documents are ranked by [`Run::ranking`]
//! in the one ranking order of [`crate::ranking`].

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Result, anyhow, bail};

/// Relevance judgements: query id -> document id -> grade. A document is
/// relevant when its grade is at least 1; unjudged documents are not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Qrels {
    queries: BTreeMap<String, BTreeMap<String, i32>>,
}

impl Qrels {
    /// Builds qrels from `(query, document, grade)` triples; a repeated
    /// `(query, document)` keeps the last grade.
    pub fn from_triples<Q: Into<String>, D: Into<String>>(triples: impl IntoIterator<Item = (Q, D, i32)>) -> Self {
        let mut qrels = Self::default();
        for (query, doc, grade) in triples {
            qrels.insert(query, doc, grade);
        }
        qrels
    }

    /// Sets the grade of `doc` for `query`, returning the previous grade.
    pub fn insert(&mut self, query: impl Into<String>, doc: impl Into<String>, grade: i32) -> Option<i32> {
        self.queries.entry(query.into()).or_default().insert(doc.into(), grade)
    }

    /// Sets every judgement of `query` at once, returning the previous ones.
    pub fn insert_query(&mut self, query: impl Into<String>, judged: BTreeMap<String, i32>) -> Option<BTreeMap<String, i32>> {
        self.queries.insert(query.into(), judged)
    }

    /// Removes every judgement of `query`.
    pub fn remove_query(&mut self, query: &str) -> Option<BTreeMap<String, i32>> {
        self.queries.remove(query)
    }

    /// Whether `query` has a judgement (relevant or not).
    pub fn contains(&self, query: &str) -> bool {
        self.queries.contains_key(query)
    }

    /// The documents judged relevant (grade >= 1) for `query`, in id order.
    pub fn relevant<'a>(&'a self, query: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.queries.get(query).into_iter().flatten().filter(|(_, g)| **g >= 1).map(|(d, _)| d.as_str())
    }

    /// Whether `doc` is judged relevant (grade >= 1) for `query`.
    pub fn is_relevant(&self, query: &str, doc: &str) -> bool {
        self.queries.get(query).and_then(|j| j.get(doc)).is_some_and(|&g| g >= 1)
    }

    /// Reads a TREC qrels file or a BEIR qrels TSV, telling them apart by the
    /// first non-blank line: BEIR when it starts with `query-id` (a header,
    /// skipped) or has exactly three tab-separated columns. Errors name the
    /// file and line; a document judged twice with different grades is one.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::text::read(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, source: &str) -> Result<Self> {
        Self::parse_checked(text, source, false, |_, _| Ok(()))
    }

    /// The one qrels parser: TREC qrels or BEIR TSV (told apart as in
    /// [`Qrels::read`]). With `beir_header` the file must start with the
    /// BEIR header line (as `qrels/<split>.tsv` in a BEIR folder does), and
    /// `check` vets each judgement's (query, document) ids. Errors name
    /// `source` and the line.
    pub(crate) fn parse_checked(
        text: &str,
        source: &str,
        beir_header: bool,
        check: impl Fn(&str, &str) -> Result<()>,
    ) -> Result<Self> {
        if beir_header {
            let first = text.lines().next().unwrap_or_default();
            if first.trim_end() != BEIR_HEADER {
                bail!("{source}:1: expected the header {BEIR_HEADER:?}, found {first:?}");
            }
        }
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .peekable();
        let first = lines.peek().map_or("", |(_, l)| *l);
        let header = first.starts_with("query-id");
        let tsv = header || first.split('\t').count() == 3;
        if header {
            lines.next();
        }
        let mut qrels = Self::default();
        for (i, line) in lines {
            let at = || format!("{source}:{}", i + 1);
            let (query, doc, grade) = if tsv {
                match line.split('\t').map(str::trim).collect::<Vec<_>>()[..] {
                    [q, d, g] => (q, d, g),
                    ref cols => bail!(
                        "{}: expected 3 tab-separated columns (query-id, corpus-id, score), found {}",
                        at(),
                        cols.len()
                    ),
                }
            } else {
                match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [q, _, d, g] => (q, d, g),
                    ref cols => bail!("{}: expected 4 columns (qid 0 docid rel), found {}", at(), cols.len()),
                }
            };
            let Ok(grade) = grade.parse::<i32>() else {
                if tsv {
                    bail!("{}: score {grade:?} is not an integer", at());
                }
                bail!("{}: relevance grade {grade:?} is not an integer", at());
            };
            check(query, doc).map_err(|e| anyhow!("{}: {e}", at()))?;
            if let Some(old) = qrels.insert(query, doc, grade)
                && old != grade
            {
                if tsv {
                    bail!("{}: query {query:?} and passage {doc:?} were already judged {old}, now {grade}", at());
                }
                bail!(
                    "{}: document {doc:?} of query {query:?} judged twice ({old} and {grade})",
                    at()
                );
            }
        }
        Ok(qrels)
    }
}

/// The first line of a BEIR qrels file.
pub const BEIR_HEADER: &str = "query-id\tcorpus-id\tscore";

/// Refuses an id that a qrels TSV or a TREC run cannot hold: an empty one,
/// or one with a tab or a line break. Checked where ids enter a data set.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty() {
        bail!("an empty id cannot be written to a qrels or run file");
    }
    if id.contains(['\t', '\n', '\r']) {
        bail!("{id:?} holds a tab or a line break, which a qrels or run file cannot hold");
    }
    Ok(())
}

/// Read-only access to the judgements as a map: query id -> document id ->
/// grade, in id order.
impl std::ops::Deref for Qrels {
    type Target = BTreeMap<String, BTreeMap<String, i32>>;

    fn deref(&self) -> &Self::Target {
        &self.queries
    }
}

impl FromIterator<(String, BTreeMap<String, i32>)> for Qrels {
    fn from_iter<I: IntoIterator<Item = (String, BTreeMap<String, i32>)>>(iter: I) -> Self {
        Self { queries: iter.into_iter().collect() }
    }
}

impl<'a> IntoIterator for &'a Qrels {
    type Item = (&'a String, &'a BTreeMap<String, i32>);
    type IntoIter = std::collections::btree_map::Iter<'a, String, BTreeMap<String, i32>>;

    fn into_iter(self) -> Self::IntoIter {
        self.queries.iter()
    }
}

/// A run: query id -> document id -> retrieval score.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    queries: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Run {
    /// Builds a run from `(query, document, score)` triples; a repeated
    /// `(query, document)` keeps the last score.
    pub fn from_triples<Q: Into<String>, D: Into<String>>(triples: impl IntoIterator<Item = (Q, D, f64)>) -> Self {
        let mut run = Self::default();
        for (query, doc, score) in triples {
            run.insert(query, doc, score);
        }
        run
    }

    /// Sets the score of `doc` for `query`, returning the previous score.
    pub fn insert(&mut self, query: impl Into<String>, doc: impl Into<String>, score: f64) -> Option<f64> {
        self.queries.entry(query.into()).or_default().insert(doc.into(), score)
    }

    /// The query ids of the run, in order.
    pub fn queries(&self) -> impl Iterator<Item = &str> {
        self.queries.keys().map(String::as_str)
    }

    /// One query's documents and scores, best first: score descending, then
    /// document id ascending (UTF-8 bytes); NaN scores rank last. Empty for a
    /// query not in the run.
    pub fn ranking(&self, query: &str) -> Vec<(&str, f64)> {
        let mut ranked: Vec<(&str, f64)> = self
            .queries
            .get(query)
            .into_iter()
            .flatten()
            .map(|(d, &s)| (d.as_str(), s))
            .collect();
        ranked.sort_by(|a, b| crate::ranking::order(*a, *b));
        ranked
    }

    /// Reads a TREC run file (`qid Q0 docid rank score tag`). The `Q0` and
    /// rank columns are ignored. Errors name the file and line: a wrong column
    /// count, a score that is not a number, a document listed twice for a query.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::text::read(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, source: &str) -> Result<Self> {
        let mut run = Self::default();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = || format!("{source}:{}", i + 1);
            let [query, _, doc, _, score, _] = line.split_whitespace().collect::<Vec<_>>()[..] else {
                bail!(
                    "{}: expected 6 columns (qid Q0 docid rank score tag), found {}",
                    at(),
                    line.split_whitespace().count()
                );
            };
            let Some(score) = score.parse::<f64>().ok().filter(|s| !s.is_nan()) else {
                bail!("{}: score {score:?} is not a number", at());
            };
            if run.insert(query, doc, score).is_some() {
                bail!("{}: document {doc:?} listed twice for query {query:?}", at());
            }
        }
        Ok(run)
    }
}

/// Writes `run` as a TREC run file: per query (in id order) its documents in
/// [`Run::ranking`] order, ranked from 1, each line `qid Q0 docid rank score
/// tag`. Fails on an id or tag that is empty or contains whitespace, which the
/// format cannot hold.
pub fn write_run(run: &Run, tag: &str, mut out: impl Write) -> io::Result<()> {
    let check = |field: &str| {
        if field.is_empty() || field.contains(char::is_whitespace) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{field:?} cannot be written to a TREC run: empty or contains whitespace"),
            ));
        }
        Ok(())
    };
    check(tag)?;
    for query in run.queries() {
        check(query)?;
        for (rank, (doc, score)) in run.ranking(query).into_iter().enumerate() {
            check(doc)?;
            writeln!(out, "{query} Q0 {doc} {} {score} {tag}", rank + 1)?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_qrels_formats() {
        let trec = Qrels::parse("q1 0 d1 2\n\nq1 0 d2 0\nq2\t0\td1\t1\n", "q.trec").unwrap();
        let headed = Qrels::parse("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\td1\t1\n", "q.tsv").unwrap();
        let bare = Qrels::parse("q1\td1\t2\nq1\td2\t0\nq2\td1\t1\n", "q.tsv").unwrap();
        let expected = Qrels::from_triples([("q1", "d1", 2), ("q1", "d2", 0), ("q2", "d1", 1)]);
        assert_eq!(trec, expected);
        assert_eq!(headed, expected);
        assert_eq!(bare, expected);
    }

    #[test]
    fn qrels_errors_name_the_line() {
        let err = |text| format!("{:#}", Qrels::parse(text, "q.trec").unwrap_err());
        assert_eq!(
            err("q1 0 d1 1\nq1 0 d2\n"),
            "q.trec:2: expected 4 columns (qid 0 docid rel), found 3"
        );
        assert_eq!(
            err("q1 0 d1 1\n\nq1 0 d2 high\n"),
            "q.trec:3: relevance grade \"high\" is not an integer"
        );
        assert_eq!(
            err("q1 0 d1 1\nq1 0 d1 2\n"),
            "q.trec:2: document \"d1\" of query \"q1\" judged twice (1 and 2)"
        );
        assert!(err("query-id\tcorpus-id\tscore\nq1\td1\n").starts_with("q.trec:2: expected 3 tab-separated columns"));
        // The same judgement twice is harmless.
        assert!(Qrels::parse("q1 0 d1 1\nq1 0 d1 1\n", "q.trec").is_ok());
    }

    #[test]
    fn run_errors_name_the_line() {
        let err = |text| format!("{:#}", Run::parse(text, "run.trec").unwrap_err());
        assert_eq!(
            err("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.4\n"),
            "run.trec:2: expected 6 columns (qid Q0 docid rank score tag), found 5"
        );
        assert_eq!(err("q1 Q0 d1 1 high t\n"), "run.trec:1: score \"high\" is not a number");
        assert_eq!(err("q1 Q0 d1 1 NaN t\n"), "run.trec:1: score \"NaN\" is not a number");
        assert_eq!(
            err("q1 Q0 d1 1 0.5 t\nq2 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n"),
            "run.trec:3: document \"d1\" listed twice for query \"q1\""
        );
    }

    #[test]
    fn files_with_a_byte_order_mark_keep_their_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let (run, qrels) = (dir.path().join("run.trec"), dir.path().join("qrels.trec"));
        std::fs::write(&run, "\u{feff}q1 Q0 d1 1 0.5 t\n").unwrap();
        std::fs::write(&qrels, "\u{feff}q1 0 d1 1\n").unwrap();
        assert_eq!(Run::read(&run).unwrap(), Run::from_triples([("q1", "d1", 0.5)]));
        assert_eq!(Qrels::read(&qrels).unwrap(), Qrels::from_triples([("q1", "d1", 1)]));
        std::fs::write(&qrels, "\u{feff}query-id\tcorpus-id\tscore\nq1\td1\t1\n").unwrap();
        assert_eq!(Qrels::read(&qrels).unwrap(), Qrels::from_triples([("q1", "d1", 1)]));
    }

    #[test]
    fn ranks_by_score_then_id_bytes() {
        // Equal scores written differently tie; the rank column is ignored.
        let run = Run::parse(
            "q Q0 d9 1 0.5 t\nq Q0 d10 9 5e-1 t\nq Q0 K1 3 0.50 t\nq Q0 k1 2 0.50 t\nq Q0 top 7 1 t\nq Q0 low 1 -2 t\n",
            "run.trec",
        )
        .unwrap();
        let ids: Vec<&str> = run.ranking("q").iter().map(|(d, _)| *d).collect();
        assert_eq!(ids, ["top", "K1", "d10", "d9", "k1", "low"]);
        assert!(run.ranking("absent").is_empty());
        let nan = Run::from_triples([("q", "a", f64::NAN), ("q", "b", -1.0)]);
        assert_eq!(nan.ranking("q")[0].0, "b");
    }

    #[test]
    fn writes_and_reads_back() {
        let run = Run::from_triples([
            ("q2", "a", 0.25),
            ("q1", "b", 1e-20),
            ("q1", "a", 1e-20),
            ("q1", "c", 3.0),
        ]);
        let mut out = Vec::new();
        write_run(&run, "uae", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "q1 Q0 c 1 3 uae");
        assert!(
            lines[1].starts_with("q1 Q0 a 2 ") && lines[2].starts_with("q1 Q0 b 3 "),
            "{text}"
        );
        assert_eq!(lines[3], "q2 Q0 a 1 0.25 uae");
        assert_eq!(Run::parse(&text, "out").unwrap(), run);
        let bad = Run::from_triples([("q 1", "a", 1.0)]);
        assert!(write_run(&bad, "uae", Vec::new()).is_err());
    }
}
