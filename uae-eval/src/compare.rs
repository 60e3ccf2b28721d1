//! The end-to-end comparison of retrieval systems on one split, written as a
//! report ([`crate::report`]). Rows: BM25, each model (the first is the base
//! encoder, the last the student the paper's goals are checked for), and,
//! with a re-ranking teacher, the teacher re-ranking the base encoder's
//! top-k at query time (docs/method.md, "Query-likelihood re-ranking").
//! Several models under one name are the seeds of one system (the same
//! recipe trained with different seeds): each is searched and answered from
//! on its own, and the row holds their per-query means, so that the table
//! and the significance tests measure the recipe rather than one seed's luck.
//! Every query is timed alone, as a user would send it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use uae_data::atomic::write_atomically;
use uae_data::jsonl::JsonlWriter;
use uae_data::lock::check_name;
use uae_data::trec::write_run;
use uae_data::{DataSet, Hit, Progress, Qrels, Query, Ranking, Run, TeacherAgreement};
use uae_index::bm25::Bm25Index;
use uae_index::corpus_index;
use uae_index::exact;
use uae_index::store::{VectorStore, normalize};
use uae_model::encoder::{BiEncoder, EncoderOptions, TextRole};
use uae_teacher::teacher::Teacher;
use uae_teacher::answer::{self, AnswerOptions};
use uae_teacher::rerank::{RerankOptions, rerank};

use crate::metrics::{self, DEFAULT_KS};
use crate::report::{ComparisonReport, Latency, SeedRow, SystemRow, TESTED_METRICS};
use crate::significance::TestOptions;

/// The name of the LLM re-ranking row.
pub const RERANK: &str = "LLM re-rank";

/// What to compare and where to write the report.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Data set directory in the BEIR layout; queries need "answers" for token F1.
    pub data: PathBuf,
    /// The split evaluated (qrels/<split>.tsv).
    pub split: String,
    /// Bi-encoders as NAME=PATH (or PATH, named after its folder), one row
    /// per name: models given under the same name are the seeds of one
    /// system, averaged per query. The first name is the base encoder LLM
    /// re-ranking starts from (from its first model); the last is the
    /// student the paper's goals are checked for.
    pub models: Vec<String>,
    /// Where each model's corpus index is kept (`<DIR>/<NAME>`), reused when
    /// it matches the model and corpus; `None` is `<report>/indexes`.
    pub indexes: Option<PathBuf>,
    /// Re-rank the base encoder's top passages with this LLM (GGUF file,
    /// Hugging Face directory or hub id) at query time.
    pub rerank_teacher: Option<String>,
    /// Passages the LLM re-ranks per query.
    pub rerank_k: usize,
    /// The LLM that answers from each system's top-1 passage, for token F1
    /// and exact match; `None` is the re-ranking teacher.
    pub generator: Option<String>,
    /// Most tokens per generated answer.
    pub max_new_tokens: usize,
    /// Teacher passages (re-ranking and answering) are cut to this many tokens.
    pub max_passage_tokens: usize,
    /// A labels file of `uae label`: the report says how often the teacher's
    /// top candidate is a gold passage (judged by `labels_split`).
    pub labels: Option<PathBuf>,
    /// The split whose qrels judge `labels`.
    pub labels_split: String,
    /// Training runs as NAME=DIR whose metric logs become training curves.
    pub runs: Vec<String>,
    /// Systems (by name) every other system is tested against for
    /// significance, in the order of their marks; empty is the base encoder.
    pub against: Vec<String>,
    /// How the significance tests resample.
    pub tests: TestOptions,
    /// Passages ranked per query (the depth of MAP).
    pub k: usize,
    /// Padded tokens per forward pass when embedding the corpus.
    pub batch_tokens: usize,
    /// Stored in the report's configuration as "pipeline" (the quickstart
    /// records its stages there).
    pub pipeline: Option<serde_json::Value>,
    /// The command line that asked for the report, stored in its configuration.
    pub command: Vec<String>,
    /// The report directory (report.md, report.json, metrics.png,
    /// training.png, answers.jsonl, runs/).
    pub report: PathBuf,
}

/// A system's rankings and per-query latencies; for one seed of a system
/// with several, that seed's.
struct Ranked {
    name: String,
    /// The seed's number (from 1) where the system has several models.
    seed: Option<usize>,
    /// The model's path, for a bi-encoder.
    model: Option<String>,
    description: String,
    rankings: Vec<Ranking>,
    latencies_ms: Vec<f64>,
}

impl Ranked {
    /// The system's name, with its seed's number where it has seeds: the
    /// name of its run file, its index folder and its answers.
    fn label(&self) -> String {
        match self.seed {
            Some(seed) => format!("{}.seed{seed}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The models of each named system, in the order the names first appear.
fn systems_of(models: Vec<(String, String)>) -> Vec<(String, Vec<String>)> {
    let mut systems: Vec<(String, Vec<String>)> = Vec::new();
    for (name, path) in models {
        match systems.iter_mut().find(|(n, _)| *n == name) {
            Some((_, paths)) => paths.push(path),
            None => systems.push((name, vec![path])),
        }
    }
    systems
}

/// Splits `NAME=PATH` given with `flag`; a bare path is named after its
/// last component (that of its real path when it ends in `..`). A name
/// becomes a folder name (`<indexes>/<NAME>`), so one that would leave that
/// folder is refused.
fn named(spec: &str, flag: &str) -> Result<(String, String)> {
    let (name, path) = match spec.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') => (name.to_string(), path.to_string()),
        _ => {
            let path = Path::new(spec);
            let last = path.file_name().map(PathBuf::from).or_else(|| path.canonicalize().ok()?.file_name().map(PathBuf::from));
            (last.and_then(|n| n.to_str().map(str::to_owned)).unwrap_or_default(), spec.to_string())
        }
    };
    check_name(&format!("{flag} {spec}"), &name)?;
    Ok((name, path))
}

fn millis(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Runs the comparison and writes its report into `args.report`.
pub fn compare(args: &CompareOptions, device: &Device, progress: &dyn Progress) -> Result<ComparisonReport> {
    let (data_dir, report_dir) = (args.data.clone(), args.report.clone());
    if args.models.is_empty() {
        bail!("give at least one --model (the base encoder)");
    }
    // Checked before any work: each name becomes an index folder's.
    let models = systems_of(args.models.iter().map(|spec| named(spec, "--model")).collect::<Result<Vec<_>>>()?);
    for (name, paths) in &models {
        if name == "BM25" || name == RERANK {
            bail!("--model: {name:?} names another system of the comparison; name models as NAME=PATH");
        }
        // The same model twice would count one seed twice.
        if let Some(path) = paths.iter().enumerate().find_map(|(i, p)| paths[..i].contains(p).then_some(p)) {
            bail!("--model {name}={path} is given twice; a system's seeds are different models");
        }
    }
    if args.k == 0 || args.rerank_k == 0 || args.tests.resamples == 0 {
        bail!("--k, --rerank-k and --test-resamples must be at least 1");
    }
    // Read first, so that a --run without training logs stops the
    // comparison before any model runs.
    let curves = args
        .runs
        .iter()
        .map(|spec| {
            let (name, dir) = named(spec, "--run")?;
            crate::curves::read_curves(Path::new(&dir), &name)
        })
        .collect::<Result<Vec<_>>>()?;
    let data = DataSet::load(&data_dir, &[args.split.as_str()])?;
    let qrels = &data.qrels[&args.split];
    let queries: Vec<&Query> =
        data.queries_of_split(&args.split)?.into_iter().filter(|q| qrels.relevant(&q.id).next().is_some()).collect();
    if queries.is_empty() {
        bail!("{}: split {:?} has no query with a relevant passage", data_dir.display(), args.split);
    }
    let over = if data.pools.is_some() { "their own documents' passages" } else { "the whole corpus" };
    progress.message(&format!(
        "evaluating on {} {} queries, each ranked over {over} ({} passages)",
        queries.len(),
        args.split,
        data.corpus.len()
    ));

    let mut systems = vec![bm25_system(&data, &queries, args.k)?];
    let indexes = args.indexes.clone().unwrap_or_else(|| report_dir.join("indexes"));
    for (name, paths) in &models {
        for (i, path) in paths.iter().enumerate() {
            let seed = (paths.len() > 1).then_some(i + 1);
            systems.push(dense_system(name, seed, path, &data, &queries, &indexes, args, device, progress)?);
        }
    }
    let rerank_lm = args.rerank_teacher.as_deref().map(|t| Teacher::load(t, device)).transpose()?;
    if let (Some(lm), Some(teacher)) = (&rerank_lm, &args.rerank_teacher) {
        let system = rerank_system(lm, teacher, &systems[1], &data, &queries, args, progress)?;
        systems.push(system);
    }
    // The generator is the re-ranking teacher unless another is named.
    let own_generator = match &args.generator {
        Some(g) if args.rerank_teacher.as_ref() != Some(g) => Some(Teacher::load(g, device)?),
        _ => None,
    };
    let generator_lm = own_generator.as_ref().or(rerank_lm.as_ref());

    std::fs::create_dir_all(report_dir.join("runs"))
        .with_context(|| format!("cannot create {}", report_dir.join("runs").display()))?;
    let answers = match generator_lm {
        Some(lm) => Some(answer_all(lm, &systems, &data, &queries, args, &report_dir, progress)?),
        None => None,
    };

    let rerank_p50 = systems.iter().find(|s| s.name == RERANK).map(|s| Latency::of(&s.latencies_ms).p50_ms);
    let mut scored = Vec::new();
    for (i, system) in systems.iter().enumerate() {
        let answers = answers.as_ref().map(|a| a[i].as_slice());
        scored.push((system, score_system(system, qrels, &queries, answers, &report_dir)?));
    }
    // A system's seeds are adjacent in `systems`.
    let mut rows: Vec<SystemRow> =
        scored.chunk_by(|a, b| a.0.name == b.0.name).map(|group| system_row(group, rerank_p50)).collect();
    let base = &models[0].0;
    let student = &models[models.len() - 1].0;
    let goals = ComparisonReport::paper_goals(&rows, base, student, RERANK);
    let references = if args.against.is_empty() { vec![base.clone()] } else { args.against.clone() };
    if let Some(missing) = references.iter().find(|r| !rows.iter().any(|s| &s.name == *r)) {
        bail!("--against {missing:?} names no system of the comparison");
    }
    let significance = ComparisonReport::significance(&rows, &references, &args.tests);
    ComparisonReport::test_seeds(&mut rows, &references[0], &args.tests);
    let teacher = match &args.labels {
        Some(labels) => {
            let split = DataSet::load(&data_dir, &[args.labels_split.as_str()])?;
            Some(TeacherAgreement::of_labels(labels, &split.qrels[&args.labels_split])?)
        }
        None => None,
    };
    let config = serde_json::json!({
        "command": args.command,
        "data": data_dir, "split": args.split, "models": args.models,
        "rerank_teacher": args.rerank_teacher, "rerank_k": args.rerank_k,
        "generator": args.generator.as_ref().or(args.rerank_teacher.as_ref()),
        "max_new_tokens": args.max_new_tokens, "max_passage_tokens": args.max_passage_tokens,
        "answer_prompt": AnswerOptions::default().prompt.with_passage,
        "rerank_prompt": RerankOptions::default().prompt,
        "k": args.k, "labels": args.labels, "runs": args.runs,
        "against": &references, "test_resamples": args.tests.resamples, "test_seed": args.tests.seed,
        "device": format!("{device:?}"),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "pipeline": args.pipeline,
    });
    let relevant: Vec<f64> = queries.iter().map(|q| qrels.relevant(&q.id).count() as f64).collect();
    let report = ComparisonReport {
        data: data_dir.display().to_string(),
        split: args.split.clone(),
        queries: queries.len(),
        passages: data.corpus.len(),
        mean_relevant: relevant.iter().sum::<f64>() / relevant.len() as f64,
        recall_at_1_ceiling: relevant.iter().map(|n| 1.0 / n).sum::<f64>() / relevant.len() as f64,
        systems: rows,
        goals,
        teacher,
        curves,
        references,
        significance,
        config,
    };
    report.write(&report_dir)?;
    Ok(report)
}

/// Writes `system`'s run file into `<report>/runs` and scores it: its
/// ranking metrics, and token F1 and exact match from `answers` (per query).
fn score_system(
    system: &Ranked,
    qrels: &Qrels,
    queries: &[&Query],
    answers: Option<&[(f64, f64)]>,
    report_dir: &Path,
) -> Result<SeedRow> {
    let run = Run::from_triples(
        queries.iter().zip(&system.rankings).flat_map(|(q, r)| r.iter().map(move |h| (q.id.clone(), h.id.clone(), h.score))),
    );
    let label = file_name(&system.label());
    let name = format!("{label}.trec");
    let mut text = Vec::new();
    write_run(&run, &label, &mut text).with_context(|| format!("cannot write runs/{name}"))?;
    write_atomically(&report_dir.join("runs"), &name, &text)?;
    let evaluated = metrics::evaluate(qrels, &run, &DEFAULT_KS);
    let mut per_query: BTreeMap<String, BTreeMap<String, f64>> = TESTED_METRICS
        .iter()
        .filter(|(m, _)| evaluated.mean.contains_key(*m))
        .map(|(m, _)| (m.to_string(), evaluated.per_query.iter().map(|(q, v)| (q.clone(), v[*m])).collect()))
        .collect();
    let (mut token_f1, mut exact_match) = (None, None);
    if let Some(scores) = answers {
        let mean = |f: fn(&(f64, f64)) -> f64| scores.iter().map(f).sum::<f64>() / scores.len().max(1) as f64;
        token_f1 = Some(mean(|s| s.0));
        exact_match = Some(mean(|s| s.1));
        let by_query = |f: fn(&(f64, f64)) -> f64| queries.iter().zip(scores).map(|(q, s)| (q.id.clone(), f(s))).collect();
        per_query.insert("token_f1".into(), by_query(|s| s.0));
        per_query.insert("exact_match".into(), by_query(|s| s.1));
    }
    Ok(SeedRow {
        model: system.model.clone().unwrap_or_default(),
        metrics: evaluated.mean,
        token_f1,
        exact_match,
        per_query,
        tests: BTreeMap::new(),
    })
}

/// The row of one system from the figures of its models: one, or its
/// seeds, whose per-query scores are averaged (the means of their means),
/// with the latency of all their queries. (A mean over one model is its
/// own figures, unchanged.)
fn system_row(group: &[(&Ranked, SeedRow)], rerank_p50: Option<f64>) -> SystemRow {
    let (first, figures) = (group[0].0, &group[0].1);
    let n = group.len() as f64;
    let mean_of = |f: &dyn Fn(&SeedRow) -> Option<f64>| group.iter().map(|(_, s)| f(s)).sum::<Option<f64>>().map(|s| s / n);
    let metrics = figures.metrics.keys().map(|k| (k.clone(), mean_of(&|s| s.metrics.get(k).copied()).unwrap_or(f64::NAN))).collect();
    let per_query = figures
        .per_query
        .iter()
        .map(|(metric, queries)| {
            let pooled = queries
                .keys()
                .map(|q| (q.clone(), mean_of(&|s| s.per_query.get(metric)?.get(q).copied()).unwrap_or(f64::NAN)))
                .collect();
            (metric.clone(), pooled)
        })
        .collect();
    let latencies: Vec<f64> = group.iter().flat_map(|(s, _)| s.latencies_ms.iter().copied()).collect();
    let latency = Latency::of(&latencies);
    let (description, seeds) = match first.seed {
        None => (first.description.clone(), Vec::new()),
        Some(_) => {
            let models: Vec<&str> = group.iter().map(|(_, s)| s.model.as_str()).collect();
            let description = format!("the mean of {} seeds: bi-encoders {}, exact cosine search", group.len(), models.join(", "));
            (description, group.iter().map(|(_, s)| s.clone()).collect())
        }
    };
    SystemRow {
        name: first.name.clone(),
        description,
        metrics,
        token_f1: mean_of(&|s| s.token_f1),
        exact_match: mean_of(&|s| s.exact_match),
        latency,
        speedup_vs_rerank: rerank_p50.map(|r| r / latency.p50_ms),
        per_query,
        seeds,
    }
}

/// A system name as a file name and TREC tag: whitespace and slashes become `-`.
fn file_name(name: &str) -> String {
    name.chars().map(|c| if c.is_whitespace() || c == '/' { '-' } else { c }).collect()
}

fn bm25_system(data: &DataSet, queries: &[&Query], k: usize) -> Result<Ranked> {
    let mut out = Ranked {
        name: "BM25".into(),
        seed: None,
        model: None,
        description: "BM25 (tantivy, English stemming)".into(),
        rankings: Vec::new(),
        latencies_ms: Vec::new(),
    };
    // With pools, each query's own small index is built before its timing.
    let whole = if data.pools.is_none() { Some(Bm25Index::build(data.corpus.as_slice())?) } else { None };
    if let Some(index) = &whole {
        let _ = index.search(&queries[0].text, k)?;
    }
    for q in queries {
        let own;
        let index = match &whole {
            Some(index) => index,
            None => {
                own = Bm25Index::over_pool(data, q)?;
                &own
            }
        };
        let start = Instant::now();
        let hits = index.search(&q.text, k)?;
        out.latencies_ms.push(millis(start));
        out.rankings.push(hits);
    }
    Ok(out)
}

/// Embeds one query and searches the index exactly, over `rows` only when given.
fn dense_search(encoder: &BiEncoder, store: &VectorStore, text: &str, rows: Option<&[usize]>, k: usize) -> Result<Ranking> {
    let mut v = encoder.embed(&[text.to_string()], TextRole::Query, 1024, |_| {})?.vectors.remove(0);
    normalize(&mut v);
    let pools = rows.map(|r| vec![r.to_vec()]);
    Ok(exact::search_pools(store.vectors(), store.ids(), store.header().dim, &v, pools.as_deref(), k).remove(0))
}

fn dense_system(
    name: &str,
    seed: Option<usize>,
    path: &str,
    data: &DataSet,
    queries: &[&Query],
    indexes: &Path,
    args: &CompareOptions,
    device: &Device,
    progress: &dyn Progress,
) -> Result<Ranked> {
    let mut out = Ranked {
        name: name.to_string(),
        seed,
        model: Some(path.to_string()),
        description: format!("bi-encoder {path}, exact cosine search"),
        rankings: Vec::new(),
        latencies_ms: Vec::new(),
    };
    let name = &out.label();
    let encoder = BiEncoder::load(path, device, &EncoderOptions::default())?;
    let passages = data.corpus.as_slice();
    let index_dir = &indexes.join(name);
    // The system's own index, else any other index there whose passage
    // vectors are this model's (a query-side fine-tune searches its base's).
    let mut dirs = vec![index_dir.clone()];
    if let Ok(entries) = std::fs::read_dir(indexes) {
        let mut others: Vec<PathBuf> =
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir() && p != index_dir).collect();
        others.sort();
        dirs.extend(others);
    }
    let reused = dirs.iter().find_map(|dir| Some((dir, corpus_index::open_matching(dir, &encoder, path, passages).ok()?)));
    let store = match reused {
        Some((dir, store)) => {
            progress.message(&format!("{name}: reusing the index in {}", dir.display()));
            store
        }
        None => {
            progress.message(&format!("{name}: embedding {} passages into {}", passages.len(), index_dir.display()));
            progress.start(passages.len() as u64, "passages");
            corpus_index::build(&encoder, path, passages, index_dir, args.batch_tokens, None, |n| progress.advance(n as u64))?;
            progress.finish();
            corpus_index::open_matching(index_dir, &encoder, path, passages)?
        }
    };
    let pools = queries.iter().map(|q| data.pool_rows(q, data.pools.is_some())).collect::<Result<Vec<_>>>()?;
    // One untimed pass warms caches and thread pools, so timings are steady.
    for (q, rows) in queries.iter().zip(&pools) {
        dense_search(&encoder, &store, &q.text, rows.as_deref(), args.k)?;
    }
    for (q, rows) in queries.iter().zip(&pools) {
        let start = Instant::now();
        let ranking = dense_search(&encoder, &store, &q.text, rows.as_deref(), args.k)?;
        out.latencies_ms.push(millis(start));
        out.rankings.push(ranking);
    }
    Ok(out)
}

/// The base encoder's rankings with their top `rerank_k` re-ordered by the
/// teacher; a query's latency is the base search's plus the re-ranking's.
fn rerank_system(
    lm: &Teacher,
    teacher: &str,
    base: &Ranked,
    data: &DataSet,
    queries: &[&Query],
    args: &CompareOptions,
    progress: &dyn Progress,
) -> Result<Ranked> {
    let options = RerankOptions { max_passage_tokens: args.max_passage_tokens, ..RerankOptions::default() };
    let mut out = Ranked {
        name: RERANK.into(),
        seed: None,
        model: None,
        description: format!(
            "{teacher} re-ranks the top {} of {} by the likelihood of the question given each passage (UPR)",
            args.rerank_k,
            base.label()
        ),
        rankings: Vec::new(),
        latencies_ms: Vec::new(),
    };
    progress.message(&format!("{RERANK}: scoring the top {} passages of {} queries with the teacher", args.rerank_k, queries.len()));
    progress.start(queries.len() as u64, "queries");
    for (q, (ranking, base_ms)) in queries.iter().zip(base.rankings.iter().zip(&base.latencies_ms)) {
        let head = ranking.len().min(args.rerank_k);
        let candidates: Vec<(String, String)> = ranking[..head]
            .iter()
            .map(|h| (h.id.clone(), data.corpus.get(&h.id).expect("ranked ids are in the corpus").embedding_text()))
            .collect();
        let start = Instant::now();
        let reranked = rerank(lm, &q.text, &candidates, &options)?;
        out.latencies_ms.push(base_ms + millis(start));
        // Re-ranked passages first, in their new order (scores above the
        // untouched tail's so the run file sorts the same way).
        let mut rows: Ranking =
            reranked.into_iter().enumerate().map(|(i, hit)| Hit::new(hit.id, (2 * ranking.len() - i) as f64)).collect();
        rows.extend(ranking[head..].iter().enumerate().map(|(i, h)| Hit::new(h.id.clone(), (ranking.len() - head - i) as f64)));
        out.rankings.push(rows);
        progress.advance(1);
    }
    progress.finish();
    Ok(out)
}

/// Answers every query from each system's top-1 passage (each distinct
/// passage-query pair once), writes `answers.jsonl`, and returns each
/// system's token F1 and exact match per query, in query order.
fn answer_all(
    lm: &Teacher,
    systems: &[Ranked],
    data: &DataSet,
    queries: &[&Query],
    args: &CompareOptions,
    report_dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<Vec<(f64, f64)>>> {
    let options = AnswerOptions {
        max_passage_tokens: args.max_passage_tokens,
        max_new_tokens: args.max_new_tokens,
        ..AnswerOptions::default()
    };
    let mut pairs: Vec<(usize, String)> = Vec::new();
    for system in systems {
        for (qi, ranking) in system.rankings.iter().enumerate() {
            if let Some(top) = ranking.first()
                && !pairs.contains(&(qi, top.id.clone()))
            {
                pairs.push((qi, top.id.clone()));
            }
        }
    }
    progress.message(&format!("generating answers for {} distinct (query, top-1 passage) pairs", pairs.len()));
    progress.start(pairs.len() as u64, "answers");
    let passages: Vec<String> =
        pairs.iter().map(|(_, doc)| data.corpus.get(doc).expect("ranked ids are in the corpus").embedding_text()).collect();
    let inputs: Vec<(&str, &str)> =
        pairs.iter().zip(&passages).map(|((qi, _), passage)| (queries[*qi].text.as_str(), passage.as_str())).collect();
    let texts = answer::answer_all(lm, &inputs, &options, |n| progress.advance(n as u64))?;
    let cache: HashMap<(usize, String), String> = pairs.into_iter().zip(texts).collect();
    progress.finish();
    let mut lines = JsonlWriter::create(&report_dir.join("answers.jsonl").display().to_string())?;
    let mut scores = Vec::new();
    for system in systems {
        let mut per_query = Vec::new();
        for (qi, ranking) in system.rankings.iter().enumerate() {
            let q = queries[qi];
            let (doc, text) = match ranking.first() {
                Some(top) => (Some(&top.id), cache[&(qi, top.id.clone())].as_str()),
                None => (None, ""),
            };
            let (f, e) = (metrics::token_f1(text, &q.answers), metrics::exact_match(text, &q.answers));
            per_query.push((f, e));
            lines.write(&serde_json::json!({
                "system": system.name, "seed": system.seed, "query_id": q.id, "doc_id": doc, "answer": text,
                "gold": q.answers, "token_f1": f, "exact_match": e,
            }))?;
        }
        scores.push(per_query);
    }
    lines.finish()?;
    Ok(scores)
}
