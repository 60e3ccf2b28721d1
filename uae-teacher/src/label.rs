//! Utility labelling: for each query and each of its candidate passages, the
//! perplexity reduction the passage brings to the gold answer (research.md
//! section 1):
//!
//! `U(q, d) = mean log p(answer | prompt(q, d)) - mean log p(answer | prompt(q))`
//!
//! where the means are over the answer's tokens and the no-passage score is
//! computed once per query. The answer is the query's first gold answer.
//!
//! Output is append-only JSON lines, one per query, each written, flushed and
//! synced before the next is started. A restarted run reads the file, drops a
//! torn last line (a kill in the middle of a write) and skips the queries
//! already there, so a kill loses at most the queries in flight. A sidecar
//! `<out>.meta.json` records the teacher and prompt, and a resume with other
//! settings is refused rather than mixing two labellings in one file.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use uae_index::data::{DataSet, Qrels};
use uae_index::report::TeacherAgreement;
use uae_model::llm::CausalLm;

use crate::prompt::{UtilityPrompt, fit_passage};
use crate::score::{ScoreItem, score_all};

/// One line of the candidates file (other fields, such as `relevant`, are
/// ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CandidateInput {
    /// The query.
    pub query_id: String,
    /// Its candidate passages.
    pub doc_ids: Vec<String>,
}

/// One line of `labels.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelLine {
    /// The query.
    pub query_id: String,
    /// Its candidates, in the candidates file's order.
    pub doc_ids: Vec<String>,
    /// `logp_with[i] - logp_without`, per candidate.
    pub utilities: Vec<f64>,
    /// Mean answer log-likelihood with each candidate in the prompt.
    pub logp_with: Vec<f64>,
    /// Mean answer log-likelihood without a passage.
    pub logp_without: f64,
}

/// How often the highest-utility candidate of each labelled query in
/// `labels` is relevant in `qrels`, over the queries with a relevant
/// candidate (research.md section 1, FlagEmbedding #553). Ties go to the
/// earlier candidate.
pub fn teacher_agreement(labels: &Path, qrels: &Qrels) -> Result<TeacherAgreement> {
    let lines: Vec<LabelLine> = uae_model::jsonl::read(&labels.display().to_string())?;
    let mut a = TeacherAgreement { queries: 0, top_is_gold: 0, mean_gold_rank: 0.0, mean_candidates: 0.0 };
    for line in lines {
        let gold = |d: &String| qrels.get(&line.query_id).and_then(|j| j.get(d)).is_some_and(|&g| g > 0);
        let mut order: Vec<usize> = (0..line.doc_ids.len()).collect();
        order.sort_by(|&x, &y| line.utilities[y].total_cmp(&line.utilities[x]));
        let Some(rank) = order.iter().position(|&i| gold(&line.doc_ids[i])) else { continue };
        a.queries += 1;
        a.top_is_gold += usize::from(rank == 0);
        a.mean_gold_rank += (rank + 1) as f64;
        a.mean_candidates += line.doc_ids.len() as f64;
    }
    if a.queries > 0 {
        a.mean_gold_rank /= a.queries as f64;
        a.mean_candidates /= a.queries as f64;
    }
    Ok(a)
}

/// Which part of the queries this process labels: those whose position in
/// the candidates file is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;

    /// Parses `i/n` with `0 <= i < n`.
    fn from_str(s: &str) -> Result<Self> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => bail!("shard {s:?} must look like i/n with 0 <= i < n, e.g. 0/4"),
        }
    }
}

/// Settings of a labelling run.
#[derive(Debug, Clone)]
pub struct LabelOptions {
    /// The prompt.
    pub prompt: UtilityPrompt,
    /// Padded tokens per teacher batch.
    pub batch_tokens: usize,
    /// Passages longer than this many tokens are cut (and counted).
    pub max_passage_tokens: usize,
    /// Only this shard of the queries, if set.
    pub shard: Option<Shard>,
    /// Queries scored together before their lines are written: more fills
    /// batches better, fewer loses less to a kill.
    pub queries_per_step: usize,
}

impl Default for LabelOptions {
    fn default() -> Self {
        Self {
            prompt: UtilityPrompt::default(),
            batch_tokens: 4096,
            max_passage_tokens: 512,
            shard: None,
            queries_per_step: 8,
        }
    }
}

/// What a labelling run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelReport {
    /// Queries labelled by this run.
    pub labelled: usize,
    /// Queries found finished in the output and skipped.
    pub resumed: usize,
    /// Queries without a gold answer, skipped.
    pub no_answer: Vec<String>,
    /// Candidates whose passage text is empty (scored with an empty passage).
    pub empty_passages: usize,
    /// Candidates whose passage was cut to fit.
    pub truncated_passages: usize,
    /// Whether a torn last line (from a killed run) was removed.
    pub repaired_torn_line: bool,
    /// Tokens the teacher ran on.
    pub tokens: usize,
}

/// Progress of a labelling run.
#[derive(Debug, Clone, Copy)]
pub struct LabelProgress {
    /// Queries labelled so far by this run.
    pub done: usize,
    /// Queries this run has to label.
    pub total: usize,
    /// Tokens run so far.
    pub tokens: usize,
}

/// Reads a candidates file, naming the file and line of a malformed line.
pub fn read_candidates(path: &Path) -> Result<Vec<(usize, CandidateInput)>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}: cannot read the line", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: CandidateInput = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: invalid candidates line", path.display(), i + 1))?;
        out.push((i + 1, record));
    }
    Ok(out)
}

/// The settings that decide the numbers; a resume must use the same ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LabelMeta {
    teacher: String,
    with_passage: String,
    without_passage: String,
    system: Option<String>,
    chat_template: bool,
    max_passage_tokens: usize,
}

/// Labels the candidates of `candidates_path` against `data` with the teacher
/// `lm`, appending to `out` (see the module documentation for resuming).
pub fn label(
    lm: &CausalLm,
    data: &DataSet,
    candidates_path: &Path,
    out: &Path,
    options: &LabelOptions,
    mut progress: impl FnMut(LabelProgress),
) -> Result<LabelReport> {
    options.prompt.validate()?;
    let candidates = read_candidates(candidates_path)?;
    let mut seen = std::collections::HashMap::new();
    for (line, c) in &candidates {
        let at = || format!("{}:{line}", candidates_path.display());
        if let Some(first) = seen.insert(c.query_id.as_str(), *line) {
            bail!("{}: query {:?} already appears on line {first}", at(), c.query_id);
        }
        if data.queries.get(&c.query_id).is_none() {
            bail!("{}: unknown query id {:?} (not in the data set's queries)", at(), c.query_id);
        }
        if c.doc_ids.is_empty() {
            bail!("{}: query {:?} has no candidates", at(), c.query_id);
        }
        if let Some(missing) = c.doc_ids.iter().find(|d| data.corpus.get(d).is_none()) {
            bail!("{}: unknown doc id {missing:?} (not in the corpus)", at());
        }
    }
    let meta = LabelMeta {
        teacher: lm.source().display().to_string(),
        with_passage: options.prompt.with_passage.clone(),
        without_passage: options.prompt.without_passage.clone(),
        system: options.prompt.system.clone(),
        chat_template: options.prompt.use_chat_template && lm.has_chat_template(),
        max_passage_tokens: options.max_passage_tokens,
    };
    check_meta(out, &meta)?;
    let mut report = LabelReport::default();
    let (finished, repaired) = finished_queries(out)?;
    report.repaired_torn_line = repaired;

    let mut todo = Vec::new();
    for (position, (_, c)) in candidates.iter().enumerate() {
        if options.shard.is_some_and(|s| position % s.count != s.index) {
            continue;
        }
        if finished.contains(&c.query_id) {
            report.resumed += 1;
            continue;
        }
        let query = data.queries.get(&c.query_id).expect("checked above");
        if query.answers.iter().all(|a| a.trim().is_empty()) {
            report.no_answer.push(c.query_id.clone());
            continue;
        }
        todo.push(c);
    }

    let mut writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .with_context(|| format!("cannot open {} for appending", out.display()))?;
    let total = todo.len();
    for step in todo.chunks(options.queries_per_step.max(1)) {
        let (items, spans) = build_items(lm, data, step, options, &mut report)?;
        let scores = score_all(lm, &items, options.batch_tokens, |_, tokens| report.tokens += tokens)?;
        for (c, (start, end)) in step.iter().zip(spans) {
            let logp_without = scores[start].logprob_mean;
            let logp_with: Vec<f64> = scores[start + 1..end].iter().map(|s| s.logprob_mean).collect();
            let line = LabelLine {
                query_id: c.query_id.clone(),
                doc_ids: c.doc_ids.clone(),
                utilities: logp_with.iter().map(|w| w - logp_without).collect(),
                logp_with,
                logp_without,
            };
            let mut text = serde_json::to_string(&line)?;
            text.push('\n');
            writer.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", out.display()))?;
            writer.sync_data().with_context(|| format!("cannot sync {}", out.display()))?;
            report.labelled += 1;
        }
        progress(LabelProgress { done: report.labelled, total, tokens: report.tokens });
    }
    Ok(report)
}

/// The score items of a step of queries: per query, the no-passage prompt
/// first, then one per candidate; returns the items and each query's range.
fn build_items(
    lm: &CausalLm,
    data: &DataSet,
    step: &[&CandidateInput],
    options: &LabelOptions,
    report: &mut LabelReport,
) -> Result<(Vec<ScoreItem>, Vec<(usize, usize)>)> {
    let prompt = &options.prompt;
    let mut items = Vec::new();
    let mut spans = Vec::new();
    for c in step {
        let query = data.queries.get(&c.query_id).expect("checked");
        let answer = query.answers.iter().find(|a| !a.trim().is_empty()).expect("checked");
        let continuation = lm.encode(&prompt.continuation(lm, answer))?;
        let without = lm.encode(&prompt.render(lm, &query.text, None)?)?;
        // Room for the passage: the window minus the rest of the prompt, the
        // answer, and a margin for the with-passage template's own words.
        let room = lm.context_length().saturating_sub(without.len() + continuation.len() + 64);
        let limit = options.max_passage_tokens.min(room);
        if limit == 0 {
            bail!("query {:?}: the question and answer alone fill the teacher's context window", c.query_id);
        }
        let start = items.len();
        items.push(ScoreItem { prompt: without, continuation: continuation.clone() });
        for doc_id in &c.doc_ids {
            let passage = data.corpus.get(doc_id).expect("checked");
            let text = passage.embedding_text();
            if text.trim().is_empty() {
                report.empty_passages += 1;
            }
            let (text, cut) = fit_passage(lm, &text, limit)?;
            report.truncated_passages += usize::from(cut);
            let ids = lm.encode(&prompt.render(lm, &query.text, Some(&text))?)?;
            items.push(ScoreItem { prompt: ids, continuation: continuation.clone() });
        }
        spans.push((start, items.len()));
    }
    Ok((items, spans))
}

fn meta_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".meta.json");
    out.with_file_name(name)
}

/// Writes the sidecar on a fresh run; refuses a resume with other settings.
fn check_meta(out: &Path, meta: &LabelMeta) -> Result<()> {
    let path = meta_path(out);
    if out.exists() && path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let old: LabelMeta =
            serde_json::from_str(&text).with_context(|| format!("{} is not a uae label sidecar", path.display()))?;
        if &old != meta {
            bail!(
                "{} was labelled with other settings ({}); pass another --out or delete it to start over",
                out.display(),
                path.display()
            );
        }
        return Ok(());
    }
    let text = serde_json::to_string_pretty(meta)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The query ids already in `out`. A last line without its newline is the
/// trace of a killed write: it is cut off the file (returned flag). Any other
/// malformed line is an error naming it.
fn finished_queries(out: &Path) -> Result<(HashSet<String>, bool)> {
    let mut done = HashSet::new();
    let Ok(mut file) = OpenOptions::new().read(true).write(true).open(out) else {
        return Ok((done, false));
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).with_context(|| format!("cannot read {}", out.display()))?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let repaired = complete < bytes.len();
    if repaired {
        file.set_len(complete as u64).with_context(|| format!("cannot repair {}", out.display()))?;
        file.seek(SeekFrom::End(0))?;
        file.sync_data()?;
    }
    for (i, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: LabelLine = serde_json::from_slice(line)
            .with_context(|| format!("{}:{}: not a label line; is this a labels file?", out.display(), i + 1))?;
        done.insert(record.query_id);
    }
    Ok((done, repaired))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
        assert!("4/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn torn_last_line_is_cut_and_finished_queries_found() {
        let dir = std::env::temp_dir().join(format!("uae-label-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("labels.jsonl");
        let line = LabelLine {
            query_id: "q1".into(),
            doc_ids: vec!["d".into()],
            utilities: vec![0.5],
            logp_with: vec![-1.0],
            logp_without: -1.5,
        };
        let mut text = serde_json::to_string(&line).unwrap();
        text.push('\n');
        text.push_str("{\"query_id\":\"q2\",\"doc");
        std::fs::write(&out, &text).unwrap();
        let (done, repaired) = finished_queries(&out).unwrap();
        assert!(repaired);
        assert_eq!(done, HashSet::from(["q1".to_string()]));
        assert!(std::fs::read_to_string(&out).unwrap().ends_with("}\n"));
        std::fs::write(&out, "not json\n").unwrap();
        let err = finished_queries(&out).unwrap_err().to_string();
        assert!(err.contains("labels.jsonl:1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn teacher_agreement_counts_top_gold_candidates() {
        let dir = std::env::temp_dir().join(format!("uae-agreement-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels.jsonl");
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
        let a = teacher_agreement(&path, &qrels).unwrap();
        assert_eq!((a.queries, a.top_is_gold, a.mean_gold_rank, a.mean_candidates), (2, 1, 2.0, 2.5));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
