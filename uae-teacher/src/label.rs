//! Utility labelling: for each query and each of its candidate passages, the
//! perplexity reduction the passage brings to the gold answer
//! (docs/method.md, "Utility"):
//!
//! `U(q, d) = mean log p(answer | prompt(q, d)) - mean log p(answer | prompt(q))`
//!
//! where the means are over the answer's tokens and the no-passage score is
//! computed once per query. The answer is the query's first gold answer.
//! With [`Utility::Question`] the scored text is the question itself, after
//! prompts that show only the passage (or nothing):
//! `U(q, d) = mean log p(q | prompt(d)) - mean log p(q | prompt())`.
//!
//! Output is append-only JSON lines, one per query, each written, flushed and
//! synced before the next is started. A restarted run reads the file, cuts a
//! torn last line (a kill in the middle of a write; the rule of
//! `uae_data::jsonl::read_appended`) and skips the queries already there, so a kill loses at most the queries in flight. A sidecar
//! `<out>.meta.json` records the teacher and prompt, and a resume with other
//! settings is refused rather than mixing two labellings in one file.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use uae_data::fingerprint::fingerprint;
use uae_data::jsonl::repair_tail;
use uae_data::records::{read_candidates, read_labels};
use uae_data::{CandidateLine, DataSet, LabelLine, Shard};

use crate::prompt::{Utility, UtilityPrompt, fit_passage};
use crate::score::{ScoreItem, score_each};
use crate::teacher::Teacher;

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
    /// Queries scored together. Each line is written as soon as its query's
    /// last prompt is scored, but batches are sorted by length across the
    /// step, so most queries finish in its last batch: more queries fill
    /// batches better, fewer lose less to a kill (about one step; finishing
    /// queries in order instead cost 14% of throughput, BENCHMARKS.md).
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
    /// Queries without a gold answer, skipped (answer utility only).
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

/// The settings that decide the numbers; a resume must use the same ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LabelMeta {
    teacher: String,
    /// Absent in sidecars written before the question utility existed.
    #[serde(default)]
    utility: Utility,
    with_passage: String,
    without_passage: String,
    system: Option<String>,
    chat_template: bool,
    max_passage_tokens: usize,
    /// Fingerprint of the data set folder ([`uae_data::fingerprint`]);
    /// absent in sidecars written before shards could merge, like the next
    /// three.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    /// Fingerprint of the candidates file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    candidates: Option<String>,
    /// The shard (`i/n`) this file holds; absent for all queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<String>,
    /// Queries the file holds once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expected: Option<usize>,
}

impl LabelMeta {
    /// Whether a file labelled under `self` may be resumed under `now`: the
    /// same teacher, prompt and shard. What the inputs were (data set and
    /// candidates fingerprints, the count expected) is rewritten by each run:
    /// a resume may extend the candidates, and each finished line is checked
    /// against them instead. A sidecar older than shards has no shard.
    fn resumable_as(&self, now: &Self) -> bool {
        let settings = |m: &Self, shard: Option<String>| Self { data: None, candidates: None, expected: None, shard, ..m.clone() };
        settings(self, self.shard.clone().or_else(|| now.shard.clone())) == settings(now, now.shard.clone())
    }
}

/// Labels the candidates of `candidates_path` against `data` (read from the
/// folder `data_dir`) with the teacher `lm`, appending to `out` (see the
/// module documentation for resuming).
pub fn label(
    lm: &Teacher,
    data: &DataSet,
    data_dir: &Path,
    candidates_path: &Path,
    out: &Path,
    options: &LabelOptions,
    mut progress: impl FnMut(LabelProgress),
) -> Result<LabelReport> {
    options.prompt.validate()?;
    let candidates = read_candidates(candidates_path)?;
    for (line, c) in &candidates {
        let at = || format!("{}:{line}", candidates_path.display());
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
    let mut meta = LabelMeta {
        teacher: lm.name(),
        utility: options.prompt.utility,
        with_passage: options.prompt.with_passage.clone(),
        without_passage: options.prompt.without_passage.clone(),
        system: options.prompt.system.clone(),
        chat_template: options.prompt.use_chat_template && lm.has_chat_template(),
        max_passage_tokens: options.max_passage_tokens,
        data: Some(format!("{:016x}", fingerprint(data_dir)?)),
        candidates: Some(format!("{:016x}", fingerprint(candidates_path)?)),
        shard: options.shard.map(|s| s.to_string()),
        expected: None,
    };
    let in_shard = |position: usize| options.shard.is_none_or(|s| s.holds(position));
    let answerable = |c: &CandidateLine| {
        options.prompt.utility == Utility::Question || data.queries.get(&c.query_id).and_then(|q| q.first_answer()).is_some()
    };
    meta.expected = Some(candidates.iter().enumerate().filter(|(p, (_, c))| in_shard(*p) && answerable(c)).count());
    check_meta(out, &meta)?;
    let mut report = LabelReport::default();
    let (finished, repaired) = finished_queries(out)?;
    report.repaired_torn_line = repaired;

    let mut todo = Vec::new();
    for (position, (_, c)) in candidates.iter().enumerate() {
        if !in_shard(position) {
            continue;
        }
        if let Some((line, doc_ids)) = finished.get(&c.query_id) {
            if doc_ids != &c.doc_ids {
                bail!(
                    "{}:{line}: query {:?} was labelled with other candidates than {}:{} holds now; \
                     label into another --out, or delete that line to label it again",
                    out.display(),
                    c.query_id,
                    candidates_path.display(),
                    candidates[position].0
                );
            }
            report.resumed += 1;
            continue;
        }
        if !answerable(c) {
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
        // Each query's line is written, flushed and synced as soon as its
        // last item is scored, so a kill loses only the queries in flight.
        let mut scores = vec![None; items.len()];
        let mut missing: Vec<usize> = spans.iter().map(|(start, end)| end - start).collect();
        let owner: Vec<usize> = spans.iter().enumerate().flat_map(|(q, &(start, end))| std::iter::repeat_n(q, end - start)).collect();
        score_each(lm, &items, options.batch_tokens, |batch, tokens| {
            report.tokens += tokens;
            for &(i, score) in batch {
                scores[i] = Some(score.logprob_mean);
                let q = owner[i];
                missing[q] -= 1;
                if missing[q] == 0 {
                    let (start, end) = spans[q];
                    let line = label_line(step[q], &scores[start..end]);
                    let mut text = serde_json::to_string(&line)?;
                    text.push('\n');
                    writer.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", out.display()))?;
                    writer.sync_data().with_context(|| format!("cannot sync {}", out.display()))?;
                    report.labelled += 1;
                }
            }
            progress(LabelProgress { done: report.labelled, total, tokens: report.tokens });
            Ok(())
        })?;
    }
    Ok(report)
}

/// The line of a query whose scores (the no-passage prompt's first, then one
/// per candidate) are all in.
fn label_line(c: &CandidateLine, scores: &[Option<f64>]) -> LabelLine {
    let mean = |s: &Option<f64>| s.expect("every item of the query is scored");
    let logp_without = mean(&scores[0]);
    let logp_with: Vec<f64> = scores[1..].iter().map(mean).collect();
    LabelLine {
        query_id: c.query_id.clone(),
        doc_ids: c.doc_ids.clone(),
        utilities: logp_with.iter().map(|w| w - logp_without).collect(),
        logp_with,
        logp_without,
    }
}

/// The score items of a step of queries: per query, the no-passage prompt
/// first, then one per candidate; returns the items and each query's range.
fn build_items(
    lm: &Teacher,
    data: &DataSet,
    step: &[&CandidateLine],
    options: &LabelOptions,
    report: &mut LabelReport,
) -> Result<(Vec<ScoreItem>, Vec<(usize, usize)>)> {
    let prompt = &options.prompt;
    let mut items = Vec::new();
    let mut spans = Vec::new();
    for c in step {
        let query = data.queries.get(&c.query_id).expect("checked");
        let answer = query.first_answer().unwrap_or("");
        let target = prompt.target(&query.text, answer);
        let continuation = lm.encode(&prompt.continuation(lm, target))?;
        if continuation.is_empty() {
            bail!("query {:?}: the {} to score is empty", c.query_id, prompt.utility);
        }
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

/// Writes the sidecar; refuses a resume with other settings
/// ([`LabelMeta::resumable_as`]).
fn check_meta(out: &Path, meta: &LabelMeta) -> Result<()> {
    let path = meta_path(out);
    if out.exists() && path.exists() {
        let old = read_meta(&path)?;
        if !old.resumable_as(meta) {
            bail!(
                "{} was labelled with other settings ({}); pass another --out or delete it to start over",
                out.display(),
                path.display()
            );
        }
    }
    uae_data::atomic::write_file_atomically(&path, serde_json::to_string_pretty(meta)?.as_bytes())
}

fn read_meta(path: &Path) -> Result<LabelMeta> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a uae label sidecar", path.display()))
}

/// The queries already in `out` with their line numbers and candidates,
/// after cutting a torn last line off the file (returned flag). Any other
/// malformed line, or a query on two lines, is an error naming it.
fn finished_queries(out: &Path) -> Result<(HashMap<String, (usize, Vec<String>)>, bool)> {
    if !out.exists() {
        return Ok((HashMap::new(), false));
    }
    let repaired = repair_tail::<LabelLine>(out)?;
    let labels = read_labels(out)?;
    Ok((labels.records.into_iter().map(|(line, l)| (l.query_id, (line, l.doc_ids))).collect(), repaired))
}

/// What [`merge`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeReport {
    /// Shard files merged.
    pub shards: usize,
    /// Queries in the merged file.
    pub queries: usize,
    /// Queries the shards were to label, all together.
    pub expected: usize,
}

/// Merges label shards (`uae label --shard i/n` outputs, each with its
/// sidecar) into `out`, written atomically with a sidecar for the whole.
/// Refused, naming the files: shards labelled with other settings or on
/// other inputs (teacher, prompt, data set and candidates fingerprints),
/// a shard given twice or missing, an unfinished shard (fewer lines than it
/// expects), and a query in two shards (a duplicate, or a conflict when the
/// numbers differ). Lines keep their shard's order, shard 0 first.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<MergeReport> {
    if shards.is_empty() {
        bail!("give the shard files to merge");
    }
    let mut loaded = Vec::with_capacity(shards.len());
    for path in shards {
        if path == out {
            bail!("{} is both a shard and the output; write the merge elsewhere", out.display());
        }
        let sidecar = meta_path(path);
        if !sidecar.is_file() {
            bail!("{}: its sidecar {} is missing; a shard travels with its sidecar", path.display(), sidecar.display());
        }
        let meta = read_meta(&sidecar)?;
        let labels = read_labels(path)?;
        if labels.torn {
            bail!("{} ends in a torn line: rerun its `uae label` (it resumes) to finish it", path.display());
        }
        loaded.push((path, meta, labels.records));
    }
    let (first_path, first_meta, _) = &loaded[0];
    let count = match &first_meta.shard {
        Some(s) => s.parse::<Shard>().with_context(|| format!("{}: its sidecar's shard", first_path.display()))?.count,
        None => 1,
    };
    let mut by_index: Vec<Option<&Path>> = vec![None; count];
    let comparable = |m: &LabelMeta| {
        let mut v = serde_json::to_value(LabelMeta { shard: None, expected: None, ..m.clone() }).expect("a sidecar serialises");
        v.as_object_mut().map(std::mem::take).unwrap_or_default()
    };
    let reference = comparable(first_meta);
    for (path, meta, _) in &loaded {
        let fields = comparable(meta);
        if let Some(key) = reference.keys().chain(fields.keys()).find(|k| reference.get(*k) != fields.get(*k)) {
            bail!(
                "{} and {} were labelled differently ({key}: {} against {}); only shards of one run merge",
                first_path.display(),
                path.display(),
                reference.get(key).map_or("absent".into(), |v| v.to_string()),
                fields.get(key).map_or("absent".into(), |v| v.to_string())
            );
        }
        let shard = match &meta.shard {
            Some(s) => s.parse::<Shard>().with_context(|| format!("{}: its sidecar's shard", path.display()))?,
            None => Shard { index: 0, count: 1 },
        };
        if shard.count != count {
            bail!("{} is shard {shard} but {} is one of {count}; only shards of one run merge", path.display(), first_path.display());
        }
        if let Some(other) = by_index[shard.index].replace(path) {
            bail!("{} and {} are both shard {shard}", other.display(), path.display());
        }
    }
    let missing: Vec<String> = (0..count).filter(|&i| by_index[i].is_none()).map(|i| format!("{i}/{count}")).collect();
    if !missing.is_empty() {
        bail!("shard {} missing: every shard of the run is needed", missing.join(", "));
    }
    let mut seen: HashMap<String, (&Path, usize, &LabelLine)> = HashMap::new();
    let mut expected = 0;
    let mut order: Vec<&(&PathBuf, LabelMeta, Vec<(usize, LabelLine)>)> = loaded.iter().collect();
    order.sort_by_key(|(_, m, _)| m.shard.as_deref().and_then(|s| s.parse::<Shard>().ok()).map_or(0, |s| s.index));
    let mut text = String::new();
    for (path, meta, records) in order {
        if let Some(want) = meta.expected {
            if records.len() < want {
                bail!(
                    "{} holds {} of the {want} queries of its shard: rerun its `uae label` (it resumes) to finish it",
                    path.display(),
                    records.len()
                );
            }
            expected += want;
        } else {
            expected += records.len();
        }
        for (line, label) in records {
            if let Some((other, other_line, previous)) = seen.insert(label.query_id.clone(), (path, *line, label)) {
                let kind = if same_numbers(previous, label) { "duplicate" } else { "conflict: other numbers" };
                bail!(
                    "query {:?} is in two shards ({kind}): {}:{other_line} and {}:{line}",
                    label.query_id,
                    other.display(),
                    path.display()
                );
            }
            text.push_str(&serde_json::to_string(label)?);
            text.push('\n');
        }
    }
    let queries = seen.len();
    let whole = LabelMeta { shard: None, expected: Some(expected), ..first_meta.clone() };
    uae_data::atomic::write_file_atomically(out, text.as_bytes())?;
    uae_data::atomic::write_file_atomically(&meta_path(out), serde_json::to_string_pretty(&whole)?.as_bytes())?;
    Ok(MergeReport { shards: shards.len(), queries, expected })
}

/// Whether two lines hold the same numbers (bit for bit; NaN equal to NaN).
fn same_numbers(a: &LabelLine, b: &LabelLine) -> bool {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    a.doc_ids == b.doc_ids
        && bits(&a.utilities) == bits(&b.utilities)
        && bits(&a.logp_with) == bits(&b.logp_with)
        && a.logp_without.to_bits() == b.logp_without.to_bits()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(done, HashMap::from([("q1".to_string(), (1, vec!["d".to_string()]))]));
        assert!(std::fs::read_to_string(&out).unwrap().ends_with("}\n"));
        std::fs::write(&out, "not json\n").unwrap();
        let err = finished_queries(&out).unwrap_err().to_string();
        assert!(err.contains("labels.jsonl:1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
