//! Synthetic training questions from a corpus (as InPars and Promptagator
//! generate them): for sampled passages the teacher writes a question that
//! the passage answers and a short answer in its own words, and filters keep
//! the questions worth training on.
//!
//! Two steps, each its own file:
//! - [`generate`] appends one [`Generated`] line per passage and question to
//!   `synth.jsonl`, a batch of passages at a time (one padded batch through
//!   the teacher), synced before the next batch; a rerun cuts a torn last
//!   line and skips the passages already there, so a kill loses at most the
//!   batch in flight, and a resumed run ends with the same file as an
//!   uninterrupted one (greedy decoding is deterministic, and padding does
//!   not change a row's tokens).
//! - [`assemble`] parses and filters the generations ([`Verdict`]) and builds
//!   a BEIR data set: the same corpus, the kept questions as extra `train`
//!   queries (ids `synth:<passage>:<n>`, the answer filled, the source
//!   passage judged relevant), and every other split untouched.
//!
//! Few-shot examples come from the data set's `train` split only: a query
//! judged in any other split is never shown to the teacher, and a generated
//! question equal or close to a held-out question ([`near_duplicate`]) is
//! dropped. Source passages are sampled from the whole corpus ([`Sources`]),
//! as GPL and InPars do on the target corpus; `Sources::NotHeldOutGold`
//! also leaves out every passage a held-out query judges relevant.

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use uae_data::fingerprint::{FNV_OFFSET, fnv1a};
use uae_data::jsonl::{read_appended, repair_tail};
use uae_data::{DataSet, Passage, Query};
use uae_model::decoding::Decoding;
use uae_model::llm::{ChatMessage, LmTokenizer};

use crate::prompt::fit_passage;
use crate::teacher::Teacher;

/// The instruction of every generation turn.
pub const INSTRUCTION: &str = "Write one question that a user could ask and that the passage answers, then a short \
answer to it in your own words (one sentence). Reply exactly in this form:\nQuestion: <the question>\nAnswer: <the answer>";

/// Passages generated for at once (one padded batch through the teacher,
/// of `--per-passage` rows each): as many as `uae eval` answers at once.
const SYNTH_BATCH: usize = crate::answer::ANSWER_BATCH;

/// Which corpus passages a run may write questions about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sources {
    /// Every passage with text: the user's case (a corpus and no questions),
    /// and the protocol of GPL and InPars on a target corpus. A held-out
    /// question is never seen; a passage it judges relevant may be a source.
    #[default]
    Corpus,
    /// Leave out every passage a held-out (dev or test) query judges
    /// relevant: no held-out gold passage becomes a training positive.
    NotHeldOutGold,
}

impl std::fmt::Display for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Corpus => "corpus",
            Self::NotHeldOutGold => "not-held-out-gold",
        })
    }
}

impl std::str::FromStr for Sources {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "corpus" => Ok(Self::Corpus),
            "not-held-out-gold" => Ok(Self::NotHeldOutGold),
            _ => bail!("unknown sources {s:?}: expected corpus or not-held-out-gold"),
        }
    }
}

/// Settings of a generation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthOptions {
    /// Which passages may be sources. A `synth.json` from before this
    /// option was written with `NotHeldOutGold`, the one behaviour then.
    #[serde(default = "not_held_out_gold")]
    pub sources: Sources,
    /// Only passages whose id starts with one of these may be sources (any
    /// passage when empty): a corpus that mixes the user's own documents
    /// with others (the FAQ's answers among library-reference distractors)
    /// gets questions about its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_prefixes: Vec<String>,
    /// Questions per sampled passage.
    pub per_passage: usize,
    /// Sample at most this many passages (all when `None`).
    pub max_passages: Option<usize>,
    /// Seed of the passage sample and of the few-shot examples.
    pub seed: u64,
    /// Few-shot examples from the train split.
    pub shots: usize,
    /// Passages (the source and the examples') are cut to this many tokens.
    pub max_passage_tokens: usize,
    /// Most tokens generated per question.
    pub max_new_tokens: usize,
    /// Sampling temperature of a passage's questions after its first (which
    /// is greedy); each is drawn from the first question's own prompt. Must
    /// be above 0 when `per_passage` is above 1 (greedy decoding would write
    /// the first question again); an older `synth.json` without it is read
    /// as 0.
    #[serde(default)]
    pub temperature: f32,
}

/// Nucleus mass of the sampled questions (GPL's doc2query setting).
const TOP_P: f32 = 0.95;
/// Candidate tokens of a sampled question (transformers' default `top_k`).
const TOP_K: usize = 50;

impl SynthOptions {
    /// The default [`Self::temperature`] (InPars and Promptagator sample
    /// their questions; 0.7 keeps them close to the passage).
    pub const DEFAULT_TEMPERATURE: f32 = 0.7;

    /// Whether a passage has questions after its first, which are sampled
    /// at [`Self::temperature`] (the one place that rule is kept).
    pub fn samples_later_questions(&self) -> bool {
        self.per_passage > 1
    }

    /// How question `n` of `passage_id` is decoded (see [`Self::temperature`]).
    fn decoding(&self, passage_id: &str, n: usize) -> Decoding {
        if n == 0 || self.temperature <= 0.0 {
            return Decoding::Greedy;
        }
        // FNV-1a over the seed, the passage id and n: the same on every
        // platform and release, so a resumed run draws what the first would have.
        let seed = [&self.seed.to_le_bytes()[..], passage_id.as_bytes(), &(n as u64).to_le_bytes()]
            .iter()
            .fold(FNV_OFFSET, |hash, bytes| fnv1a(hash, bytes));
        Decoding::Sample { temperature: self.temperature, top_k: TOP_K, top_p: TOP_P, seed }
    }
}

fn not_held_out_gold() -> Sources {
    Sources::NotHeldOutGold
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            sources: Sources::default(),
            source_prefixes: Vec::new(),
            per_passage: 1,
            max_passages: None,
            seed: 42,
            shots: 2,
            max_passage_tokens: 192,
            max_new_tokens: 64,
            temperature: Self::DEFAULT_TEMPERATURE,
        }
    }
}

/// One generation, a line of `synth.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    /// The source passage.
    pub passage_id: String,
    /// Which of the passage's questions (from 0).
    pub n: usize,
    /// The teacher's raw output.
    pub output: String,
}

/// A question and answer parsed from a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The question.
    pub question: String,
    /// The answer.
    pub answer: String,
}

/// Reads `Question: ...` and `Answer: ...` from the teacher's output; `None`
/// when either is missing or empty.
pub fn parse(output: &str) -> Option<Parsed> {
    let field = |name: &str| -> Option<String> {
        let at = output.find(name)? + name.len();
        let rest = &output[at..];
        let end = rest.find('\n').unwrap_or(rest.len());
        let value = rest[..end].trim().trim_matches('"').trim();
        (!value.is_empty()).then(|| value.to_string())
    };
    let question = field("Question:")?;
    let answer = field("Answer:")?;
    Some(Parsed { question, answer })
}

/// Word overlap (Jaccard over the sets of [`normalise`]d words) from which a
/// generated question counts as a near copy of a held-out question.
pub const NEAR_DUPLICATE: f64 = 0.7;

/// Whether two questions are equal or close: the Jaccard similarity of
/// their sets of normalised words is at least [`NEAR_DUPLICATE`].
pub fn near_duplicate(a: &str, b: &str) -> bool {
    let words = |t: &str| -> HashSet<String> { normalise(t).split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect() };
    let (a, b) = (words(a), words(b));
    let union = a.union(&b).count();
    union > 0 && a.intersection(&b).count() as f64 >= NEAR_DUPLICATE * union as f64
}

/// A question reduced for comparison: lowercase words of letters and digits.
pub fn normalise(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What became of a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Kept as a training question.
    Kept,
    /// No `Question:` and `Answer:` in the output.
    Malformed,
    /// The same question (normalised) as an earlier generation.
    Duplicate,
    /// The same question as a held-out (dev or test) one, or a close one
    /// ([`near_duplicate`]).
    HeldOut,
    /// The source passage is not among the base encoder's top passages for
    /// the question.
    RoundTrip,
}

/// The passages a run generates for, in order: a seeded sample of the
/// corpus's passages with text (and with an id of one of
/// `options.source_prefixes`, when there are any), with
/// `Sources::NotHeldOutGold` leaving out every passage a held-out query
/// judges relevant; and how many were left out so.
fn sample_passages<'a>(data: &'a DataSet, options: &SynthOptions) -> (Vec<&'a Passage>, usize) {
    let held_out: HashSet<&str> = if options.sources == Sources::Corpus {
        HashSet::new()
    } else {
        data
        .qrels
        .iter()
        .filter(|(split, _)| *split != "train")
            .flat_map(|(_, qrels)| qrels.iter().flat_map(|(_, judged)| judged.iter().filter(|(_, g)| **g > 0).map(|(d, _)| d.as_str())))
            .collect()
    };
    let prefixed = |p: &&Passage| options.source_prefixes.is_empty() || options.source_prefixes.iter().any(|x| p.id.starts_with(x.as_str()));
    let with_text = data.corpus.as_slice().iter().filter(|p| !p.embedding_text().trim().is_empty()).filter(prefixed);
    let (mut passages, left_out): (Vec<&Passage>, Vec<&Passage>) = with_text.partition(|p| !held_out.contains(p.id.as_str()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    passages.shuffle(&mut rng);
    passages.truncate(options.max_passages.unwrap_or(usize::MAX));
    (passages, left_out.len())
}

/// The ids of the queries judged in any split other than `train`.
fn held_out_queries(data: &DataSet) -> HashSet<&str> {
    data.qrels.iter().filter(|(split, _)| *split != "train").flat_map(|(_, q)| q.iter().map(|(id, _)| id.as_str())).collect()
}

/// Few-shot examples: train queries with an answer and a judged passage,
/// judged in no other split; a seeded choice of `options.shots`.
fn examples<'a>(data: &'a DataSet, options: &SynthOptions) -> Vec<(&'a Query, &'a Passage)> {
    let Some(train) = data.qrels.get("train") else { return Vec::new() };
    let held_out = held_out_queries(data);
    let mut pool: Vec<(&Query, &Passage)> = train
        .iter()
        .filter(|(id, _)| !held_out.contains(id.as_str()))
        .filter_map(|(id, _)| {
            let query = data.queries.get(id)?;
            query.first_answer()?;
            let passage = train.relevant(id).find_map(|doc| data.corpus.get(doc))?;
            Some((query, passage))
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed ^ 0x5eed);
    pool.shuffle(&mut rng);
    pool.truncate(options.shots);
    pool
}

/// The chat (or plain-text) prompt asking for a question about `passage`,
/// after the few-shot `shots` (passage, question, answer).
fn prompt(lm: &LmTokenizer, shots: &[(String, String, String)], passage: &str) -> Result<String> {
    let turn = |passage: &str| format!("{INSTRUCTION}\n\nPassage: {passage}");
    let reply = |q: &str, a: &str| format!("Question: {q}\nAnswer: {a}");
    if lm.has_chat_template() {
        let mut messages = Vec::new();
        for (p, q, a) in shots {
            messages.push(ChatMessage::new("user", &turn(p)));
            messages.push(ChatMessage::new("assistant", &reply(q, a)));
        }
        messages.push(ChatMessage::new("user", &turn(passage)));
        lm.chat_prompt(&messages, true)
    } else {
        let mut text = String::new();
        for (p, q, a) in shots {
            text.push_str(&format!("{}\n{}\n\n", turn(p), reply(q, a)));
        }
        text.push_str(&turn(passage));
        Ok(format!("{text}\n"))
    }
}

/// The token ids of the prompt for `passage`, fitted so that
/// `max_new_tokens` of the teacher's context window remain for the reply:
/// few-shot examples are left out from the last one first, and when even
/// the bare prompt is too long its passage is shortened. Also says whether
/// anything was left out.
fn fit_prompt(lm: &LmTokenizer, shots: &[(String, String, String)], passage: &str, max_new_tokens: usize) -> Result<(Vec<u32>, bool)> {
    let context = lm.context_length();
    let Some(budget) = context.checked_sub(max_new_tokens).filter(|&b| b > 0) else {
        bail!("--max-new-tokens {max_new_tokens} leaves no room for a prompt in the teacher's context window of {context} tokens");
    };
    for n in (0..=shots.len()).rev() {
        let ids = lm.encode(&prompt(lm, &shots[..n], passage)?)?;
        if ids.len() <= budget {
            return Ok((ids, n < shots.len()));
        }
    }
    // Still too long: shorten the passage by the excess (token boundaries
    // may move on re-encoding, so retry).
    let mut passage_ids = lm.encode(passage)?;
    loop {
        let ids = lm.encode(&prompt(lm, &[], &lm.decode(&passage_ids)?)?)?;
        if ids.len() <= budget {
            return Ok((ids, true));
        }
        let excess = ids.len() - budget;
        if excess >= passage_ids.len() {
            bail!(
                "the prompt needs {} tokens without its passage, more than the {budget} that --max-new-tokens {max_new_tokens} leaves of the teacher's context window of {context}",
                ids.len() - passage_ids.len()
            );
        }
        passage_ids.truncate(passage_ids.len() - excess);
    }
}

/// What a generation run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateReport {
    /// Passages generated for by this run.
    pub generated: usize,
    /// Passages found finished in `synth.jsonl` and skipped.
    pub resumed: usize,
    /// Whether a torn last line (from a killed run) was removed.
    pub repaired_torn_line: bool,
    /// Few-shot examples in every prompt that fits the teacher's context.
    pub shots: usize,
    /// Prompts that left out few-shot examples, or shortened their passage,
    /// to leave `max_new_tokens` of the context for the reply.
    pub fitted_prompts: usize,
    /// Passages never sampled because a held-out query judges them relevant
    /// (`Sources::NotHeldOutGold`).
    pub held_out_sources: usize,
}

/// Appends the teacher's generations for the sampled passages of `data` to
/// `path` (see the module documentation for resuming) and returns every
/// generation the file holds, earlier runs' first. `progress` gets the
/// passages done and to do by this run.
pub fn generate(
    lm: &Teacher,
    data: &DataSet,
    path: &Path,
    options: &SynthOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<(GenerateReport, Vec<Generated>)> {
    if options.per_passage == 0 {
        bail!("--per-passage must be at least 1");
    }
    if options.samples_later_questions() && options.temperature <= 0.0 {
        bail!("--per-passage {} needs a --temperature above 0: greedy decoding writes a passage's first question again", options.per_passage);
    }
    let mut report = GenerateReport::default();
    let mut all: Vec<Generated> = if path.exists() {
        report.repaired_torn_line = repair_tail::<Generated>(path)?;
        let done = read_appended::<Generated>(path, "generation line; is this a synth.jsonl file?")?;
        done.records.into_iter().map(|(_, g)| g).collect()
    } else {
        Vec::new()
    };
    let finished: HashSet<String> = all.iter().map(|g| g.passage_id.clone()).collect();
    let shots: Vec<(String, String, String)> = examples(data, options)
        .into_iter()
        .map(|(q, p)| {
            let answer = q.first_answer().unwrap_or_default().to_string();
            Ok((fit_passage(lm, &p.embedding_text(), options.max_passage_tokens)?.0, q.text.clone(), answer))
        })
        .collect::<Result<_>>()?;
    report.shots = shots.len();
    let (sample, held_out_sources) = sample_passages(data, options);
    if sample.is_empty() && !options.source_prefixes.is_empty() {
        bail!("no passage with text has an id starting with {}", options.source_prefixes.join(" or "));
    }
    report.held_out_sources = held_out_sources;
    let todo: Vec<&Passage> = sample
        .into_iter()
        .filter(|p| {
            let done = finished.contains(&p.id);
            report.resumed += usize::from(done);
            !done
        })
        .collect();
    let mut writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {} for appending", path.display()))?;
    let mut done = 0;
    for chunk in todo.chunks(SYNTH_BATCH) {
        let prompts = chunk
            .iter()
            .map(|passage| {
                let text = fit_passage(lm, &passage.embedding_text(), options.max_passage_tokens)?.0;
                let (ids, fitted) =
                    fit_prompt(lm, &shots, &text, options.max_new_tokens).with_context(|| format!("passage {:?}", passage.id))?;
                report.fitted_prompts += usize::from(fitted);
                Ok(ids)
            })
            .collect::<Result<Vec<_>>>()?;
        // A passage's first question is greedy; a later one is drawn from
        // the same prompt at `temperature`, from a stream seeded by the
        // run's seed, the passage and `n`, so that a resumed run draws the
        // same. (Asking for "another question" after the earlier replies
        // instead kept 18 second questions of 64 FAQ passages against 39
        // this way: SmolLM2 broke the reply format or left the passage.)
        // All of a chunk's questions are one batch, row (passage, n), so a
        // passage's prompt is read once for its `per_passage` questions.
        let rows: Vec<(&Passage, usize)> =
            chunk.iter().flat_map(|&p| (0..options.per_passage).map(move |n| (p, n))).collect();
        let refs: Vec<&[u32]> =
            prompts.iter().flat_map(|ids| std::iter::repeat_n(ids.as_slice(), options.per_passage)).collect();
        let decodings: Vec<Decoding> = rows.iter().map(|&(p, n)| options.decoding(&p.id, n)).collect();
        let mut lines = String::new();
        for (&(passage, n), ids) in rows.iter().zip(lm.generate_batch_with(&refs, options.max_new_tokens, &decodings)?) {
            let generated = Generated { passage_id: passage.id.clone(), n, output: lm.decode(&ids)? };
            lines.push_str(&serde_json::to_string(&generated)?);
            lines.push('\n');
            all.push(generated);
        }
        writer.write_all(lines.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
        writer.sync_data().with_context(|| format!("cannot sync {}", path.display()))?;
        report.generated += chunk.len();
        done += chunk.len();
        progress(done, todo.len());
    }
    Ok((report, all))
}

/// What assembling kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SynthSummary {
    /// Generations read.
    pub generations: usize,
    /// How many got each verdict.
    pub verdicts: BTreeMap<Verdict, usize>,
    /// Kept answers that are a verbatim span of their passage (normalised):
    /// the answer utility of those collapses onto the source passage.
    pub copied_answers: usize,
    /// The round-trip depth: the source passage had to be in this many of
    /// the base encoder's top passages.
    pub round_trip_depth: usize,
    /// Few-shot examples in every prompt.
    pub shots: usize,
}

impl std::fmt::Display for SynthSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |v: Verdict| self.verdicts.get(&v).copied().unwrap_or(0);
        write!(
            f,
            "{} of {} generations kept; dropped: {} malformed, {} duplicates, {} equal or close to a held-out question, \
             {} whose passage is not in the base encoder's top {}; {} kept answers copy their passage",
            count(Verdict::Kept),
            self.generations,
            count(Verdict::Malformed),
            count(Verdict::Duplicate),
            count(Verdict::HeldOut),
            count(Verdict::RoundTrip),
            self.round_trip_depth,
            self.copied_answers
        )
    }
}

/// One generation with what became of it, a line of `verdicts.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// The source passage.
    pub passage_id: String,
    /// Which of the passage's questions.
    pub n: usize,
    /// The parsed question, when there was one.
    pub question: Option<String>,
    /// The parsed answer, when there was one.
    pub answer: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
}

/// The id of the `n`-th synthetic question of `passage_id`.
pub fn synthetic_id(passage_id: &str, n: usize) -> String {
    format!("{}{passage_id}:{n}", Query::SYNTHETIC_PREFIX)
}

/// Filters `generations` and returns `data` with the kept questions added
/// as `train` queries judging their source passage relevant, each
/// generation's verdict, and the summary. `top` ranks the corpus for a
/// batch of questions with the base encoder and returns each one's best
/// `depth` passage ids (the round-trip check).
pub fn assemble(
    data: &DataSet,
    generations: &[Generated],
    depth: usize,
    top: impl FnOnce(&[String]) -> Result<Vec<Vec<String>>>,
) -> Result<(DataSet, Vec<Judged>, SynthSummary)> {
    let held_out: Vec<&str> = held_out_queries(data).into_iter().filter_map(|id| data.queries.get(id)).map(|q| q.text.as_str()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut judged = Vec::with_capacity(generations.len());
    for g in generations {
        let parsed = parse(&g.output);
        let verdict = match &parsed {
            None => Verdict::Malformed,
            Some(p) if held_out.iter().any(|h| near_duplicate(h, &p.question)) => Verdict::HeldOut,
            Some(p) if !seen.insert(normalise(&p.question)) => Verdict::Duplicate,
            Some(_) => Verdict::Kept,
        };
        judged.push(Judged {
            passage_id: g.passage_id.clone(),
            n: g.n,
            question: parsed.as_ref().map(|p| p.question.clone()),
            answer: parsed.map(|p| p.answer),
            verdict,
        });
    }
    let candidates: Vec<usize> = (0..judged.len()).filter(|&i| judged[i].verdict == Verdict::Kept).collect();
    let questions: Vec<String> = candidates.iter().map(|&i| judged[i].question.clone().unwrap_or_default()).collect();
    let ranked = if questions.is_empty() { Vec::new() } else { top(&questions)? };
    if ranked.len() != questions.len() {
        bail!("the round-trip retriever ranked {} of {} questions", ranked.len(), questions.len());
    }
    for (&i, ids) in candidates.iter().zip(&ranked) {
        if !ids.iter().take(depth).any(|id| *id == judged[i].passage_id) {
            judged[i].verdict = Verdict::RoundTrip;
        }
    }
    let mut out = data.clone();
    let train = out.qrels.entry("train".into()).or_default();
    let mut summary = SynthSummary { generations: generations.len(), round_trip_depth: depth, ..SynthSummary::default() };
    for j in &judged {
        *summary.verdicts.entry(j.verdict).or_default() += 1;
        if j.verdict != Verdict::Kept {
            continue;
        }
        let (question, answer) = (j.question.clone().unwrap_or_default(), j.answer.clone().unwrap_or_default());
        let passage = data.corpus.get(&j.passage_id).with_context(|| format!("generated for unknown passage {:?}", j.passage_id))?;
        if normalise(&passage.embedding_text()).contains(&normalise(&answer)) {
            summary.copied_answers += 1;
        }
        let id = synthetic_id(&j.passage_id, j.n);
        train.insert(id.clone(), j.passage_id.clone(), 1);
        out.queries
            .push(Query { id: id.clone(), text: question, answers: vec![answer] })
            .map_err(|e| anyhow::anyhow!("synthetic query {id} is already in the data set ({e:?})"))?;
    }
    Ok((out, judged, summary))
}

/// The files of a synthetic data set's folder besides the BEIR ones.
pub const GENERATIONS: &str = "synth.jsonl";
/// Each generation's verdict.
pub const VERDICTS: &str = "verdicts.jsonl";
/// The [`SynthSummary`] and the options.
pub const SUMMARY: &str = "synth.json";

/// What `synth.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SynthRecord {
    teacher: String,
    options: SynthOptions,
    /// How a passage's later questions are asked ([`LATER_QUESTIONS`]);
    /// absent with one question per passage, and in folders written when
    /// they were asked for after the earlier replies, which therefore do not
    /// resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    later_questions: Option<String>,
    summary: Option<SynthSummary>,
}

/// [`SynthRecord::later_questions`] of this release.
const LATER_QUESTIONS: &str = "sampled from the first question's prompt";

/// The whole of `uae synth`: generates (or resumes generating) into
/// `out/synth.jsonl`, filters with the round-trip retriever `top` (see
/// [`assemble`]), and writes the BEIR folder `out` with `verdicts.jsonl` and
/// `synth.json`. A resume with other options or another teacher is refused.
pub fn synthesize(
    lm: &Teacher,
    data: &DataSet,
    out: &Path,
    options: &SynthOptions,
    depth: usize,
    top: impl FnOnce(&[String]) -> Result<Vec<Vec<String>>>,
    progress: impl FnMut(usize, usize),
) -> Result<(GenerateReport, SynthSummary)> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let record_path = out.join(SUMMARY);
    // One question per passage is greedy whatever the temperature, so a
    // folder written before the option existed (temperature 0) resumes.
    let recorded = SynthOptions { temperature: if options.samples_later_questions() { options.temperature } else { 0.0 }, ..options.clone() };
    let later_questions = options.samples_later_questions().then(|| LATER_QUESTIONS.to_string());
    let mut record = SynthRecord { teacher: lm.name(), options: recorded, later_questions, summary: None };
    let generations = out.join(GENERATIONS);
    if generations.exists() && record_path.exists() {
        let old: SynthRecord = uae_data::json::read_json(&record_path)?;
        if (&old.teacher, &old.options, &old.later_questions) != (&record.teacher, &record.options, &record.later_questions) {
            bail!(
                "{} was generated with another teacher or other options ({}); pass another --out or delete it to start over",
                generations.display(),
                record_path.display()
            );
        }
    }
    uae_data::atomic::write_file_atomically(&record_path, serde_json::to_string_pretty(&record)?.as_bytes())?;
    let (report, all) = generate(lm, data, &generations, options, progress)?;
    let (synthetic, judged, mut summary) = assemble(data, &all, depth, top)?;
    summary.shots = report.shots;
    synthetic.write_beir(out)?;
    let mut verdicts = Vec::new();
    for j in &judged {
        serde_json::to_writer(&mut verdicts, j)?;
        verdicts.push(b'\n');
    }
    uae_data::atomic::write_file_atomically(&out.join(VERDICTS), &verdicts)?;
    record.summary = Some(summary.clone());
    uae_data::atomic::write_file_atomically(&record_path, serde_json::to_string_pretty(&record)?.as_bytes())?;
    Ok((report, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_questions_are_sampled_with_a_seed_per_passage() {
        let options = SynthOptions::default();
        assert_eq!(options.decoding("faq/1", 0), Decoding::Greedy, "a passage's first question is greedy");
        let Decoding::Sample { temperature, seed, .. } = options.decoding("faq/1", 1) else { panic!("sampled") };
        assert_eq!(temperature, SynthOptions::DEFAULT_TEMPERATURE);
        // FNV-1a of (42, "faq/1", 1): pinned, so that a resumed run on
        // another build draws the same questions.
        assert_eq!(seed, 12_983_138_838_213_383_140);
        assert_ne!(options.decoding("faq/1", 2), options.decoding("faq/1", 1));
        assert_ne!(options.decoding("faq/2", 1), options.decoding("faq/1", 1));
        let greedy = SynthOptions { temperature: 0.0, ..options };
        assert_eq!(greedy.decoding("faq/1", 1), Decoding::Greedy);
    }

    #[test]
    fn questions_and_answers_parse_from_the_reply() {
        let parsed = parse("Question: How do I sort a list?\nAnswer: Use sorted().\n").unwrap();
        assert_eq!(parsed, Parsed { question: "How do I sort a list?".into(), answer: "Use sorted().".into() });
        assert!(parse("Question: only a question").is_none());
        assert!(parse("Question:\nAnswer: x").is_none());
        assert_eq!(normalise("  How do I, sort a LIST? "), "how do i sort a list");
    }

    /// Passages p0..p3; q0 is a train query, q1 is judged in train and test
    /// (held out), q2 is a test query.
    fn data() -> DataSet {
        let mut data = DataSet::default();
        for i in 0..4 {
            let text = format!("passage {i} says the answer is {i}");
            data.corpus.push(Passage { id: format!("p{i}"), title: String::new(), text }).unwrap();
        }
        for (i, text) in ["what is zero", "what is one", "what is two"].iter().enumerate() {
            data.queries.push(Query { id: format!("q{i}"), text: text.to_string(), answers: vec![format!("{i}")] }).unwrap();
        }
        let train = data.qrels.entry("train".into()).or_default();
        train.insert("q0", "p0", 1);
        train.insert("q1", "p1", 1);
        let test = data.qrels.entry("test".into()).or_default();
        test.insert("q1", "p1", 1);
        test.insert("q2", "p2", 1);
        data
    }

    #[test]
    fn few_shot_examples_are_train_queries_judged_nowhere_else() {
        let data = data();
        let shots = examples(&data, &SynthOptions { shots: 5, ..SynthOptions::default() });
        let ids: Vec<&str> = shots.iter().map(|(q, p)| (q.id.as_str(), p.id.as_str())).map(|(q, _)| q).collect();
        assert_eq!(ids, ["q0"]);
    }

    #[test]
    fn sources_are_the_corpus_or_leave_out_held_out_gold() {
        let data = data();
        let ids = |sources: Sources| {
            let (sample, left_out) = sample_passages(&data, &SynthOptions { sources, ..SynthOptions::default() });
            let mut ids: Vec<&str> = sample.iter().map(|p| p.id.as_str()).collect();
            ids.sort();
            (ids, left_out)
        };
        assert_eq!(ids(Sources::Corpus), (vec!["p0", "p1", "p2", "p3"], 0));
        assert_eq!(ids(Sources::NotHeldOutGold), (vec!["p0", "p3"], 2), "p1 and p2 are gold for test queries");
    }

    #[test]
    fn source_prefixes_keep_the_passages_whose_id_starts_with_one() {
        let data = data();
        let ids = |prefixes: &[&str], sources: Sources| {
            let options = SynthOptions { sources, source_prefixes: prefixes.iter().map(|p| p.to_string()).collect(), ..SynthOptions::default() };
            let mut ids: Vec<&str> = sample_passages(&data, &options).0.iter().map(|p| p.id.as_str()).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&["p1"], Sources::Corpus), ["p1"]);
        assert_eq!(ids(&["p0", "p2"], Sources::Corpus), ["p0", "p2"]);
        assert_eq!(ids(&["p0", "p2"], Sources::NotHeldOutGold), ["p0"], "p2 is gold for a test query");
        assert!(ids(&["q"], Sources::Corpus).is_empty());
    }

    #[test]
    fn near_duplicates_share_most_of_their_words() {
        assert!(near_duplicate("Why is Python slow?", "why is python SLOW"));
        assert!(near_duplicate("How do I make a Python script executable?", "How can I make a Python script executable?"));
        assert!(!near_duplicate("How do I sort a list?", "How do I copy a file?"));
        assert!(!near_duplicate("", ""));
    }

    #[test]
    fn every_filter_counts_and_kept_questions_train_on_their_passage() {
        let data = data();
        let g = |passage: &str, n: usize, output: &str| Generated { passage_id: passage.into(), n, output: output.into() };
        let generations = [
            g("p0", 0, "Question: What does passage zero say?\nAnswer: It says zero."),
            g("p0", 1, "no question here"),
            g("p1", 0, "Question: what does passage ZERO say\nAnswer: Zero."),
            g("p2", 0, "Question: What is two, then?\nAnswer: Two."),
            g("p3", 0, "Question: Which passage is three?\nAnswer: the answer is 3"),
            g("p3", 1, "Question: Is this about p1?\nAnswer: No."),
        ];
        // The retriever finds p3 for its first question but p1 for its second.
        let top = |questions: &[String]| -> Result<Vec<Vec<String>>> {
            assert_eq!(questions.len(), 3, "only questions that passed the other filters are ranked: {questions:?}");
            Ok(vec![vec!["p0".into()], vec!["p2".into(), "p3".into()], vec!["p1".into()]])
        };
        let (out, judged, summary) = assemble(&data, &generations, 2, top).unwrap();
        let verdicts: Vec<Verdict> = judged.iter().map(|j| j.verdict).collect();
        use Verdict::*;
        assert_eq!(verdicts, [Kept, Malformed, Duplicate, HeldOut, Kept, RoundTrip]);
        assert_eq!(summary.verdicts[&Kept], 2);
        assert_eq!(summary.copied_answers, 1, "'the answer is 3' is a span of passage 3");
        let train = &out.qrels["train"];
        assert!(train.is_relevant(&synthetic_id("p0", 0), "p0") && train.is_relevant(&synthetic_id("p3", 0), "p3"));
        assert!(!train.contains(&synthetic_id("p3", 1)));
        assert_eq!(out.queries.get(&synthetic_id("p3", 0)).unwrap().answers, ["the answer is 3"]);
        assert_eq!(out.qrels["test"], data.qrels["test"], "held-out splits are untouched");
        assert_eq!(out.queries.len(), data.queries.len() + 2);
    }
}
