//! QASPER (AllenAI's questions on NLP papers) read into a [`DataSet`].
//!
//! A QASPER file is one JSON object mapping paper ids to papers; each paper
//! has `full_text` (sections of `section_name` and `paragraphs`) and `qas`
//! (questions with annotators' `answers`). How it becomes a data set:
//!
//! - Papers are taken in paper-id order. Each non-blank paragraph is a
//!   passage with id `<paper id>#<section index>.<paragraph index>` (0-based
//!   positions in `full_text` and in the section's `paragraphs`) and the
//!   section name (empty when null) as title.
//! - A question is a query with id `question_id`. Only answers not marked
//!   `unanswerable` are used. Each gives one gold answer: its non-blank
//!   extractive spans joined by a space, else its free-form answer, else
//!   "yes"/"no" from `yes_no`; repeated answers are kept once.
//! - Relevant passages (grade 1) are the paragraphs of the question's paper
//!   whose text equals, ignoring surrounding whitespace, an evidence string
//!   of a used answer. Evidence naming a figure or table ("FLOAT SELECTED:
//!   ...") matches no paragraph and is counted apart, as is evidence that
//!   matches no paragraph.
//! - A question without a gold answer or without a relevant passage is
//!   skipped and counted in the [`QasperReport`].
//! - Every kept query's pool is the passages of its own paper, in order.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use serde_json::Value;

use crate::{DataSet, Passage, Pools, Query};

/// How evidence strings that quote a figure or table caption begin.
const FLOAT_EVIDENCE: &str = "FLOAT SELECTED";

/// What reading QASPER kept and skipped, summed over the files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QasperReport {
    /// Papers read.
    pub papers: usize,
    /// Questions read.
    pub questions: usize,
    /// Questions kept as queries.
    pub kept: usize,
    /// Questions skipped because no answer gave a gold answer (all
    /// unanswerable, or empty).
    pub no_answer: usize,
    /// Questions skipped because no evidence matched a paragraph.
    pub no_evidence: usize,
    /// Evidence strings of used answers that quote a figure or table.
    pub float_evidence: usize,
    /// Other evidence strings of used answers that match no paragraph.
    pub unmatched_evidence: usize,
}

impl fmt::Display for QasperReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} papers, {} questions: {} kept, {} without an answer, {} without an evidence paragraph; \
             evidence strings: {} figure or table, {} unmatched",
            self.papers,
            self.questions,
            self.kept,
            self.no_answer,
            self.no_evidence,
            self.float_evidence,
            self.unmatched_evidence
        )
    }
}

impl DataSet {
    /// Reads QASPER files, each given with the split its questions go to
    /// (`[("train", "qasper-train-v0.3.json"), ("dev", ...)]`). Errors name
    /// the file, the paper and the JSON path of a malformed field.
    pub fn from_qasper<P: AsRef<Path>>(files: &[(&str, P)]) -> Result<(DataSet, QasperReport)> {
        let mut builder = Builder::default();
        for (split, path) in files {
            let name = path.as_ref().display().to_string();
            builder.data.qrels.entry((*split).to_owned()).or_default();
            for (paper_id, value) in read_papers(path.as_ref(), &name)? {
                let paper = parse_paper(value).map_err(|e| anyhow!("{name}: paper {paper_id}: {e}"))?;
                builder.add_paper(split, &paper_id, paper).map_err(|e| anyhow!("{name}: paper {paper_id}: {e}"))?;
            }
        }
        builder.data.pools = Some(builder.pools);
        Ok((builder.data, builder.report))
    }
}

/// A paper, as far as uae reads it.
#[derive(Deserialize)]
struct Paper {
    full_text: Vec<Section>,
    qas: Vec<Qa>,
}

/// One section of a paper's full text.
#[derive(Deserialize)]
struct Section {
    section_name: Option<String>,
    paragraphs: Vec<String>,
}

/// One question with its annotators' answers.
#[derive(Deserialize)]
struct Qa {
    question: String,
    question_id: String,
    answers: Vec<Annotation>,
}

/// One annotator's answer.
#[derive(Deserialize)]
struct Annotation {
    answer: Answer,
}

/// The answer proper.
#[derive(Deserialize)]
struct Answer {
    unanswerable: bool,
    extractive_spans: Vec<String>,
    yes_no: Option<bool>,
    free_form_answer: String,
    evidence: Vec<String>,
}

/// Reads a file's top-level object: paper id -> paper, in id order.
fn read_papers(path: &Path, name: &str) -> Result<BTreeMap<String, Value>> {
    let text = crate::text::read(path)?;
    serde_json::from_str(&text)
        .with_context(|| format!("{name}: not a QASPER file (one JSON object mapping paper ids to papers)"))
}

/// Deserialises one paper; an error names the JSON path inside it.
fn parse_paper(value: Value) -> Result<Paper> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        if e.path().iter().next().is_none() { anyhow!("{}", e.inner()) } else { anyhow!("{}: {}", e.path(), e.inner()) }
    })
}

/// The non-blank paragraphs of a paper as passages.
fn paragraphs(paper_id: &str, sections: &[Section]) -> Vec<Passage> {
    let mut passages = Vec::new();
    for (s, section) in sections.iter().enumerate() {
        for (p, text) in section.paragraphs.iter().enumerate().filter(|(_, t)| !t.trim().is_empty()) {
            let title = section.section_name.clone().unwrap_or_default();
            passages.push(Passage { id: format!("{paper_id}#{s}.{p}"), title, text: text.clone() });
        }
    }
    passages
}

/// The gold answer one annotator gives, if any.
fn answer_text(answer: &Answer) -> Option<String> {
    let spans: Vec<&str> = answer.extractive_spans.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    let free_form = answer.free_form_answer.trim();
    if !spans.is_empty() {
        Some(spans.join(" "))
    } else if !free_form.is_empty() {
        Some(free_form.to_owned())
    } else {
        answer.yes_no.map(|yes| if yes { "yes" } else { "no" }.to_owned())
    }
}

/// The data set under construction.
#[derive(Default)]
struct Builder {
    data: DataSet,
    pools: Pools,
    report: QasperReport,
}

impl Builder {
    /// Adds a paper's passages, and its usable questions to `split`.
    fn add_paper(&mut self, split: &str, paper_id: &str, paper: Paper) -> Result<()> {
        self.report.papers += 1;
        crate::trec::check_id(paper_id)?;
        let passages = paragraphs(paper_id, &paper.full_text);
        let pool: Vec<String> = passages.iter().map(|p| p.id.clone()).collect();
        let mut by_text: HashMap<&str, Vec<&str>> = HashMap::new();
        for passage in &passages {
            by_text.entry(passage.text.trim()).or_default().push(&passage.id);
        }
        for (i, qa) in paper.qas.iter().enumerate() {
            self.add_question(split, qa, &by_text, &pool).map_err(|e| anyhow!("qas[{i}]: {e}"))?;
        }
        for passage in passages {
            self.data.corpus.push(passage).map_err(|e| anyhow!("passage {e} (is the paper in two files?)"))?;
        }
        Ok(())
    }

    /// Adds one question as a query if it has a gold answer and a relevant
    /// passage; counts it as skipped otherwise.
    fn add_question(
        &mut self,
        split: &str,
        qa: &Qa,
        by_text: &HashMap<&str, Vec<&str>>,
        pool: &[String],
    ) -> Result<()> {
        self.report.questions += 1;
        crate::trec::check_id(&qa.question_id).map_err(|e| anyhow!("question_id: {e}"))?;
        let used: Vec<&Answer> = qa.answers.iter().map(|a| &a.answer).filter(|a| !a.unanswerable).collect();
        let mut answers: Vec<String> = Vec::new();
        for text in used.iter().filter_map(|a| answer_text(a)) {
            if !answers.contains(&text) {
                answers.push(text);
            }
        }
        let relevant = self.relevant(&used, by_text);
        if answers.is_empty() {
            self.report.no_answer += 1;
            return Ok(());
        }
        if relevant.is_empty() {
            self.report.no_evidence += 1;
            return Ok(());
        }
        let query = Query { id: qa.question_id.clone(), text: qa.question.clone(), answers };
        self.data.queries.push(query).map_err(|e| anyhow!("question_id: {e}"))?;
        self.data.qrels.entry(split.to_owned()).or_default().insert_query(qa.question_id.clone(), relevant);
        self.pools.insert(qa.question_id.clone(), pool.to_vec());
        self.report.kept += 1;
        Ok(())
    }

    /// The passages the answers' evidence quotes, each with grade 1;
    /// counts the evidence that quotes none.
    fn relevant(&mut self, used: &[&Answer], by_text: &HashMap<&str, Vec<&str>>) -> BTreeMap<String, i32> {
        let mut relevant = BTreeMap::new();
        for evidence in used.iter().flat_map(|a| &a.evidence) {
            if evidence.trim_start().starts_with(FLOAT_EVIDENCE) {
                self.report.float_evidence += 1;
            } else if let Some(ids) = by_text.get(evidence.trim()) {
                relevant.extend(ids.iter().map(|id| ((*id).to_owned(), 1)));
            } else {
                self.report.unmatched_evidence += 1;
            }
        }
        relevant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/fixtures/qasper/qasper-sample.json");

    fn ids<'a>(items: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
        items.into_iter().map(String::as_str).collect()
    }

    #[test]
    fn reads_the_sample() {
        let (data, report) = DataSet::from_qasper(&[("dev", SAMPLE)]).unwrap();
        let expected = QasperReport {
            papers: 2,
            questions: 8,
            kept: 4,
            no_answer: 2,
            no_evidence: 2,
            float_evidence: 2,
            unmatched_evidence: 1,
        };
        assert_eq!(report, expected);
        assert_eq!(
            report.to_string(),
            "2 papers, 8 questions: 4 kept, 2 without an answer, 2 without an evidence paragraph; \
             evidence strings: 2 figure or table, 1 unmatched"
        );
        let passages: Vec<&str> = data.corpus.as_slice().iter().map(|p| p.id.as_str()).collect();
        let paper_a = ["1909.00694#0.0", "1909.00694#0.1", "1909.00694#1.0", "1909.00694#1.1", "1909.00694#2.1"];
        let paper_b = ["2003.04707#0.0", "2003.04707#1.0", "2003.04707#1.1"];
        assert_eq!(passages, [&paper_a[..], &paper_b[..]].concat());
        let method = data.corpus.get("1909.00694#1.1").unwrap();
        assert_eq!(method.title, "Method ::: Discourse Relations");
        assert_eq!(method.text, "The seed lexicon consists of 15 positive and 15 negative predicates.");
        assert_eq!(data.corpus.get("2003.04707#0.0").unwrap().title, "");

        let queries: Vec<(&str, &str, Vec<&str>)> = data
            .queries
            .as_slice()
            .iter()
            .map(|q| (q.id.as_str(), q.text.as_str(), q.answers.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            queries,
            [
                (
                    "a1",
                    "What is the seed lexicon?",
                    vec!["15 positive 15 negative predicates", "a vocabulary of positive and negative predicates"]
                ),
                ("a2", "Do they use discourse relations?", vec!["yes"]),
                ("a4", "How big is the corpus?", vec!["About 100 million sentences"]),
                ("b3", "Does adversarial training fail?", vec!["no"]),
            ]
        );

        let dev = &data.qrels["dev"];
        assert_eq!(ids(dev.keys()), ["a1", "a2", "a4", "b3"]);
        assert_eq!(ids(dev["a1"].keys()), ["1909.00694#1.0", "1909.00694#1.1"]);
        assert_eq!(ids(dev["a2"].keys()), ["1909.00694#0.1"]);
        assert_eq!(ids(dev["a4"].keys()), ["1909.00694#2.1"]);
        assert_eq!(ids(dev["b3"].keys()), ["2003.04707#1.1"]);
        assert!(dev.values().flat_map(|r| r.values()).all(|&grade| grade == 1));

        let pools = data.pools.as_ref().unwrap();
        assert_eq!(ids(pools.keys()), ["a1", "a2", "a4", "b3"]);
        assert_eq!(ids(&pools["a4"]), paper_a);
        assert_eq!(ids(&pools["b3"]), paper_b);
        assert_eq!(data.queries_of_split("dev").unwrap().len(), 4);
    }

    /// The sample with one edit, written to a temporary file.
    fn edited(edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, std::path::PathBuf) {
        let mut json: Value = serde_json::from_str(&std::fs::read_to_string(SAMPLE).unwrap()).unwrap();
        edit(&mut json);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qasper-bad.json");
        std::fs::write(&path, json.to_string()).unwrap();
        (dir, path)
    }

    fn error_of(path: &Path) -> String {
        format!("{:#}", DataSet::from_qasper(&[("dev", path)]).unwrap_err())
    }

    #[test]
    fn malformed_fields_name_the_json_path() {
        let (_dir, path) = edited(|json| {
            json["1909.00694"]["qas"][2]["answers"][0]["answer"].as_object_mut().unwrap().remove("evidence");
        });
        let expected =
            format!("{}: paper 1909.00694: qas[2].answers[0].answer: missing field `evidence`", path.display());
        assert_eq!(error_of(&path), expected);

        let (_dir, path) = edited(|json| json["2003.04707"]["full_text"][1]["paragraphs"][1] = 5.into());
        let expected = format!(
            "{}: paper 2003.04707: full_text[1].paragraphs[1]: invalid type: integer `5`, expected a string",
            path.display()
        );
        assert_eq!(error_of(&path), expected);

        let (_dir, path) = edited(|json| json["2003.04707"].as_object_mut().unwrap().clear());
        assert_eq!(error_of(&path), format!("{}: paper 2003.04707: missing field `full_text`", path.display()));
    }

    #[test]
    fn ids_a_qrels_file_cannot_hold_are_refused() {
        let (_dir, path) = edited(|json| json["2003.04707"]["qas"][1]["question_id"] = "b\t2".into());
        let expected = format!(
            "{}: paper 2003.04707: qas[1]: question_id: \"b\\t2\" holds a tab or a line break, which a qrels or run file cannot hold",
            path.display()
        );
        assert_eq!(error_of(&path), expected);
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qasper-bom.json");
        std::fs::write(&path, format!("\u{feff}{}", std::fs::read_to_string(SAMPLE).unwrap())).unwrap();
        assert_eq!(DataSet::from_qasper(&[("dev", &path)]).unwrap().1.kept, 4);
    }

    #[test]
    fn a_file_that_is_not_an_object_is_refused() {
        let (_dir, path) = edited(|json| *json = Value::Array(vec![]));
        let err = error_of(&path);
        assert!(err.starts_with(&format!("{}: not a QASPER file", path.display())), "{err}");
    }

    #[test]
    fn a_paper_in_two_files_is_refused() {
        let err = format!("{:#}", DataSet::from_qasper(&[("train", SAMPLE), ("dev", SAMPLE)]).unwrap_err());
        assert!(err.ends_with("paper 1909.00694: qas[0]: question_id: duplicate id \"a1\""), "{err}");
    }

    /// Written as a BEIR folder with `pools.jsonl` and read back, the data
    /// set is unchanged, pools included.
    #[test]
    fn round_trips_through_the_beir_layout() {
        let (data, _) = DataSet::from_qasper(&[("dev", SAMPLE)]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        data.write_beir(dir.path()).unwrap();
        let back = DataSet::load(dir.path(), &["dev"]).unwrap();
        assert_eq!(back.corpus.as_slice(), data.corpus.as_slice());
        assert_eq!(back.queries.as_slice(), data.queries.as_slice());
        assert_eq!(back.qrels, data.qrels);
        assert!(back.pools.is_some());
        assert_eq!(back.pools, data.pools);
        std::fs::write(dir.path().join("pools.jsonl"), "{\"query_id\":\"a1\",\"doc_ids\":[\"nope\"]}\n").unwrap();
        let err = DataSet::load(dir.path(), &["dev"]).unwrap_err().to_string();
        assert!(err.contains("pools.jsonl:1: unknown passage id \"nope\""), "{err}");
    }
}
