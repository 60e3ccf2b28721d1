//! The end-to-end comparison report: one row per retrieval system with its
//! ranking metrics, the token F1 and exact match of the answers a generator
//! wrote from its top-1 passage, and its query latency; the paper's goals
//! checked against the rows; training curves. Written as `report.json`
//! (everything, including the configuration), `report.md` (the table) and
//! two PNG charts (`metrics.png`, `training.png`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use uae_data::TeacherAgreement;

use crate::plot::{self, BarSeries, LineSeries, Panel};
use crate::significance::{self, PairedTest, TestOptions};

/// The ranking metrics of the table, as `metrics::evaluate` names them, and
/// their column titles.
pub const TABLE_METRICS: [(&str, &str); 5] =
    [("recall@1", "Recall@1"), ("recall@5", "Recall@5"), ("map", "MAP"), ("mrr@10", "MRR@10"), ("ndcg@10", "nDCG@10")];

/// The per-query scores tested for significance: the table's ranking
/// metrics, then token F1 where answers were generated.
pub const TESTED_METRICS: [(&str, &str); 6] = [
    ("recall@1", "Recall@1"),
    ("recall@5", "Recall@5"),
    ("map", "MAP"),
    ("mrr@10", "MRR@10"),
    ("ndcg@10", "nDCG@10"),
    ("token_f1", "token F1"),
];

/// Marks of a significant difference in the table, one per reference
/// system in order.
const MARKS: [&str; 4] = ["*", "†", "‡", "§"];

/// Query latency statistics in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    /// The statistics of `samples` (milliseconds); percentiles by the
    /// nearest-rank method. NaN for no samples.
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self { p50_ms: f64::NAN, p95_ms: f64::NAN, mean_ms: f64::NAN };
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Self { p50_ms: rank(0.50), p95_ms: rank(0.95), mean_ms: sorted.iter().sum::<f64>() / sorted.len() as f64 }
    }
}

/// One system's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemRow {
    /// Short name (the table's first column).
    pub name: String,
    /// What the system is, in words.
    pub description: String,
    /// Every ranking metric of `metrics::evaluate` (recall@k, p@k, mrr@k,
    /// map, ndcg@k), averaged over the judged queries.
    pub metrics: BTreeMap<String, f64>,
    /// Mean token F1 of the generator's answers from the top-1 passage.
    pub token_f1: Option<f64>,
    /// Mean exact match of those answers.
    pub exact_match: Option<f64>,
    /// Per-query retrieval latency, one query per call.
    pub latency: Latency,
    /// LLM re-ranking's median latency divided by this system's.
    pub speedup_vs_rerank: Option<f64>,
    /// Query id -> score, per metric of [`TESTED_METRICS`] (token F1 and
    /// exact match only where answers were generated): the numbers the
    /// means and the significance tests are computed from. For a system
    /// with seeds, each query's mean over them.
    pub per_query: BTreeMap<String, BTreeMap<String, f64>>,
    /// The seeds the row averages (models given under one name, trained the
    /// same way); empty for a system of one model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<SeedRow>,
}

/// One seed of a system with several: its own figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRow {
    /// The model's path.
    pub model: String,
    /// Its ranking metrics, as [`SystemRow::metrics`].
    pub metrics: BTreeMap<String, f64>,
    /// Its answers' mean token F1.
    pub token_f1: Option<f64>,
    /// Its answers' mean exact match.
    pub exact_match: Option<f64>,
    /// Its per-query scores, as [`SystemRow::per_query`].
    pub per_query: BTreeMap<String, BTreeMap<String, f64>>,
    /// This seed alone against the first reference system, per tested
    /// metric (how many seeds would have been significant on their own).
    #[serde(default)]
    pub tests: BTreeMap<String, PairedTest>,
}

impl SystemRow {
    /// The lowest and highest of `f` over the seeds; `None` without seeds
    /// or where a seed lacks the figure.
    fn seed_range(&self, f: impl Fn(&SeedRow) -> Option<f64>) -> Option<(f64, f64)> {
        let values = self.seeds.iter().map(f).collect::<Option<Vec<f64>>>().filter(|v| !v.is_empty())?;
        Some(values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v))))
    }

    /// The table's name of the row: with its number of seeds, if any.
    fn title(&self) -> String {
        match self.seeds.len() {
            0 => self.name.clone(),
            n => format!("{} ({n} seeds)", self.name),
        }
    }
}

/// The paired test of one system against a reference system on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Significance {
    /// The system.
    pub system: String,
    /// The reference it is compared with.
    pub against: String,
    /// The metric (a key of [`TESTED_METRICS`]).
    pub metric: String,
    /// Mean difference (system minus reference), p-value and interval.
    #[serde(flatten)]
    pub test: PairedTest,
}

/// One of the paper's goals, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    /// What is compared.
    pub name: String,
    /// The target, as the paper reports it.
    pub target: String,
    /// The measured ratio; `None` where it has no value (a ratio over a
    /// zero: a base that never ranks a gold passage first, or whose answers
    /// never overlap the gold ones).
    pub measured: Option<f64>,
    /// The threshold the ratio must reach.
    pub threshold: f64,
    /// Whether it was reached.
    pub met: bool,
}

/// A training run's curves (from its metric logs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCurves {
    /// The run's name (the system it became).
    pub name: String,
    /// (step, training loss) per logged step, steps counted across epochs.
    pub train_loss: Vec<(f64, f64)>,
    /// (epoch, validation loss).
    pub valid_loss: Vec<(f64, f64)>,
    /// (epoch, validation Recall@1 of the gold candidates).
    pub valid_recall_at_1: Vec<(f64, f64)>,
    /// The model-selection metric (`map`, ...) and its dev value by
    /// training batch (0: the base model), from the run's `selection.json`.
    pub dev: Option<(String, Vec<(f64, f64)>)>,
    /// The training batch whose weights were exported (0: the base's).
    pub chosen_step: Option<usize>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonReport {
    /// The data set directory.
    pub data: String,
    /// The evaluated split.
    pub split: String,
    /// Judged queries evaluated.
    pub queries: usize,
    /// Passages searched.
    pub passages: usize,
    /// Mean number of relevant passages per evaluated query.
    pub mean_relevant: f64,
    /// The best Recall@1 any ranking can reach, the mean of 1/|relevant|:
    /// Recall@k divides by the number of relevant passages.
    pub recall_at_1_ceiling: f64,
    /// One row per system, in table order.
    pub systems: Vec<SystemRow>,
    /// The paper's goals (student against base encoder and LLM re-ranking).
    pub goals: Vec<Goal>,
    /// The teacher's agreement with the gold labels on its labelled queries.
    pub teacher: Option<TeacherAgreement>,
    /// Training curves of the fine-tuned systems.
    pub curves: Vec<RunCurves>,
    /// The systems every other system is tested against, in mark order.
    pub references: Vec<String>,
    /// Every system against every reference, per tested metric.
    pub significance: Vec<Significance>,
    /// Every setting that produced the figures (models, options, commands).
    pub config: serde_json::Value,
}

impl ComparisonReport {
    /// The paper's goals for `student` against `base` and `rerank` (system
    /// names), those whose systems are present.
    pub fn paper_goals(systems: &[SystemRow], base: &str, student: &str, rerank: &str) -> Vec<Goal> {
        let find = |name: &str| systems.iter().find(|s| s.name == name);
        let mut goals = Vec::new();
        let mut ratio = |name: String, target: &str, measured: f64, threshold: f64| {
            let measured = measured.is_finite().then_some(measured);
            let met = measured.is_some_and(|m| m >= threshold);
            goals.push(Goal { name, target: target.into(), measured, threshold, met });
        };
        if let (Some(b), Some(s)) = (find(base), find(student)) {
            for (key, title, target, threshold) in
                [("recall@1", "Recall@1", "+30.59%", 1.30), ("map", "MAP", "+30.16%", 1.30)]
            {
                ratio(format!("{title}: {student} / {base}"), target, s.metrics[key] / b.metrics[key], threshold);
            }
            if let (Some(sf), Some(bf)) = (s.token_f1, b.token_f1) {
                ratio(format!("token F1: {student} / {base}"), "+17.3%", sf / bf, 1.17);
            }
        }
        if let (Some(r), Some(s)) = (find(rerank), find(student)) {
            ratio(format!("query speed: {student} / {rerank} (p50)"), ">180x", r.latency.p50_ms / s.latency.p50_ms, 180.0);
            ratio(
                format!("Recall@1: {student} / {rerank}"),
                "competitive (within 5%)",
                s.metrics["recall@1"] / r.metrics["recall@1"],
                0.95,
            );
        }
        goals
    }

    /// Tests every system against each of `references` (system names) on
    /// each of [`TESTED_METRICS`] both have per-query scores for, pairing the
    /// queries by id.
    pub fn significance(systems: &[SystemRow], references: &[String], options: &TestOptions) -> Vec<Significance> {
        let mut out = Vec::new();
        for reference in references {
            let Some(r) = systems.iter().find(|s| &s.name == reference) else { continue };
            for s in systems.iter().filter(|s| &s.name != reference) {
                for (metric, test) in paired_by_query(&s.per_query, &r.per_query, options) {
                    out.push(Significance { system: s.name.clone(), against: reference.clone(), metric, test });
                }
            }
        }
        out
    }

    /// Tests each seed of every other system with seeds against
    /// `reference` (a system name) on each tested metric, into
    /// [`SeedRow::tests`].
    pub fn test_seeds(systems: &mut [SystemRow], reference: &str, options: &TestOptions) {
        let Some(r) = systems.iter().find(|s| s.name == reference).map(|r| r.per_query.clone()) else { return };
        for s in systems.iter_mut().filter(|s| s.name != reference) {
            for seed in &mut s.seeds {
                seed.tests = paired_by_query(&seed.per_query, &r, options).into_iter().collect();
            }
        }
    }

    /// The marks of `system`'s significant differences on `metric`.
    fn marks(&self, system: &str, metric: &str) -> String {
        self.references
            .iter()
            .zip(MARKS)
            .filter(|(reference, _)| {
                self.significance
                    .iter()
                    .any(|t| t.system == system && &t.against == *reference && t.metric == metric && t.test.significant)
            })
            .map(|(_, mark)| mark)
            .collect()
    }

    /// The Markdown report: the table, the goals, the teacher's agreement
    /// and pointers to the charts.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# uae comparison: {} ({} split, {} queries, {} passages)\n",
            self.data, self.split, self.queries, self.passages
        );
        md.push_str("| system |");
        for (_, title) in TABLE_METRICS {
            let _ = write!(md, " {title} |");
        }
        md.push_str(" token F1 | EM | p50 ms | p95 ms | speed-up vs LLM re-rank |\n|---|");
        md.push_str(&"---:|".repeat(TABLE_METRICS.len() + 5));
        md.push('\n');
        let opt = |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
        for s in &self.systems {
            let _ = write!(md, "| {} |", s.title());
            for (key, _) in TABLE_METRICS {
                let _ = write!(md, " {}{} |", opt(s.metrics.get(key).copied(), 3), self.marks(&s.name, key));
            }
            let _ = writeln!(
                md,
                " {}{} | {} | {:.1} | {:.1} | {} |",
                opt(s.token_f1, 3),
                self.marks(&s.name, "token_f1"),
                opt(s.exact_match, 3),
                s.latency.p50_ms,
                s.latency.p95_ms,
                s.speedup_vs_rerank.map_or("–".into(), |x| format!("{x:.1}x"))
            );
        }
        let _ = writeln!(
            md,
            "\nRecall@k divides by the number of relevant passages ({:.2} per query on average here), so the best reachable Recall@1 is {:.3}.",
            self.mean_relevant, self.recall_at_1_ceiling
        );
        let legend: Vec<String> = self
            .references
            .iter()
            .zip(MARKS)
            .map(|(reference, mark)| format!("{mark} differs from {reference}"))
            .collect();
        if !legend.is_empty() {
            let _ = writeln!(
                md,
                "\n{} with p < 0.05 (paired two-sided randomization test over the {} queries, 10,000 permutations; see \"Significance\" below).",
                legend.join(", "),
                self.queries
            );
        }
        md.push_str("\nSystems:\n");
        for s in &self.systems {
            let _ = writeln!(md, "- **{}**: {}", s.name, s.description);
        }
        self.seeds_markdown(&mut md);
        if !self.goals.is_empty() {
            md.push_str("\n## The paper's goals\n\n| goal | paper | measured | needed | met |\n|---|---|---:|---:|---|\n");
            for g in &self.goals {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.2}x | {} |",
                    g.name,
                    g.target,
                    g.measured.map_or("– (over 0)".to_string(), |m| format!("{m:.2}x")),
                    g.threshold,
                    if g.met { "yes" } else { "**no**" }
                );
            }
        }
        if !self.significance.is_empty() {
            md.push_str(
                "\n## Significance\n\nMean difference per query (system minus reference), its 95% bootstrap interval, and the p-value of a paired two-sided randomization test; **bold** where p < 0.05.\n\n| system | against |",
            );
            let tested: Vec<(&str, &str)> = TESTED_METRICS
                .into_iter()
                .filter(|(m, _)| self.significance.iter().any(|t| t.metric == *m))
                .collect();
            for (_, title) in &tested {
                let _ = write!(md, " {title} |");
            }
            md.push_str("\n|---|---|");
            md.push_str(&"---:|".repeat(tested.len()));
            md.push('\n');
            let mut pairs: Vec<(&str, &str)> = Vec::new();
            for t in &self.significance {
                if !pairs.contains(&(&t.system, &t.against)) {
                    pairs.push((&t.system, &t.against));
                }
            }
            for (system, against) in pairs {
                let _ = write!(md, "| {system} | {against} |");
                for (metric, _) in &tested {
                    let cell = self
                        .significance
                        .iter()
                        .find(|t| t.system == system && t.against == against && t.metric == *metric)
                        .map_or("–".to_string(), |t| {
                            let text = format!(
                                "{:+.3} [{:+.3}, {:+.3}] p={:.3}",
                                t.test.mean_difference, t.test.ci_low, t.test.ci_high, t.test.p_value
                            );
                            if t.test.significant { format!("**{text}**") } else { text }
                        });
                    let _ = write!(md, " {cell} |");
                }
                md.push('\n');
            }
        }
        if let Some(t) = &self.teacher {
            let _ = writeln!(
                md,
                "\n## Teacher and gold labels\n\nOn {} labelled training queries ({:.1} candidates each on average), the teacher's highest-utility candidate is a gold passage for {} ({:.1}%); the best gold candidate's mean utility rank is {:.2}.",
                t.queries,
                t.mean_candidates,
                t.top_is_gold,
                100.0 * t.share(),
                t.mean_gold_rank
            );
        }
        if let Some(serve) = self.config.pointer("/pipeline/serve").and_then(|v| v.as_str()) {
            let _ = writeln!(md, "\n## Serving the student\n\nThe trained student and its corpus index behind HTTP (`/search`, `/embed`, `/v1/embeddings`):\n\n    {serve}");
        }
        md.push_str("\n![metrics](metrics.png)\n");
        if !self.curves.is_empty() {
            md.push_str("\n![training](training.png)\n");
        }
        md
    }

    /// The "Seeds" section: how a system's seeds are pooled and each seed's
    /// own figures, where some system has seeds.
    fn seeds_markdown(&self, md: &mut String) {
        let with_seeds: Vec<&SystemRow> = self.systems.iter().filter(|s| !s.seeds.is_empty()).collect();
        if with_seeds.is_empty() {
            return;
        }
        md.push_str(
            "\n## Seeds\n\nA system of several models given under one name (`--model NAME=PATH` repeated: one recipe trained with different seeds) is the mean of its seeds: each query's score is averaged over the seeds, and the table's figures, the goals and the significance tests are computed from those per-query means; in `metrics.png` the whiskers over its bars span its seeds' lowest to highest figures. Each seed alone:\n\n| system | seed | model |",
        );
        for (_, title) in TABLE_METRICS {
            let _ = write!(md, " {title} |");
        }
        md.push_str(" token F1 |\n|---|---:|---|");
        md.push_str(&"---:|".repeat(TABLE_METRICS.len() + 1));
        md.push('\n');
        let cell = |seed: &SeedRow, key: &str, v: Option<f64>| {
            let mark = match seed.tests.get(key) {
                Some(t) if t.significant => MARKS[0],
                _ => "",
            };
            v.map_or("–".to_string(), |v| format!("{v:.3}{mark}"))
        };
        for s in with_seeds {
            for (i, seed) in s.seeds.iter().enumerate() {
                let _ = write!(md, "| {} | {} | {} |", s.name, i + 1, seed.model);
                for (key, _) in TABLE_METRICS {
                    let _ = write!(md, " {} |", cell(seed, key, seed.metrics.get(key).copied()));
                }
                let _ = writeln!(md, " {} |", cell(seed, "token_f1", seed.token_f1));
            }
        }
        if let Some(reference) = self.references.first() {
            let _ = writeln!(md, "\n{} this seed alone differs from {reference} with p < 0.05 (the same test).", MARKS[0]);
        }
    }

    /// Writes `report.json`, `report.md`, `metrics.png` and, when there are
    /// curves, `training.png` into `dir`. Machine paths in the text files
    /// become `$UAE_CACHE/...` (uae's cache) and `~/...` (the home directory).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let prefixes = portable_prefixes();
        let mut json = serde_json::to_value(self)?;
        portable_json(&mut json, &prefixes);
        uae_data::atomic::write_atomically(dir, "report.json", serde_json::to_string_pretty(&json)?.as_bytes())?;
        uae_data::atomic::write_atomically(dir, "report.md", portable_paths(&self.markdown(), &prefixes).as_bytes())?;
        let (groups, series) = self.metric_bars();
        let title = format!("{} ({} split, {} queries)", self.data_name(), self.split, self.queries);
        plot::bar_chart(&dir.join("metrics.png"), &title, &groups, &series, (1280, 560))?;
        if !self.curves.is_empty() {
            let series = |f: fn(&RunCurves) -> &Vec<(f64, f64)>| {
                self.curves.iter().map(|c| LineSeries { name: c.name.clone(), points: f(c).clone() }).collect()
            };
            let mut panels = vec![
                Panel {
                    title: "training loss".into(),
                    x_label: "step".into(),
                    y_label: "loss".into(),
                    series: series(|c| &c.train_loss),
                },
                Panel {
                    title: "validation loss".into(),
                    x_label: "epoch".into(),
                    y_label: "loss".into(),
                    series: series(|c| &c.valid_loss),
                },
                Panel {
                    title: "validation Recall@1 (gold candidate)".into(),
                    x_label: "epoch".into(),
                    y_label: "Recall@1".into(),
                    series: series(|c| &c.valid_recall_at_1),
                },
            ];
            let dev: Vec<LineSeries> = self
                .curves
                .iter()
                .filter_map(|c| {
                    let (_, points) = c.dev.as_ref()?;
                    let chosen = c.chosen_step.map_or(String::new(), |s| format!(", exported: batch {s}"));
                    Some(LineSeries { name: format!("{}{chosen}", c.name), points: points.clone() })
                })
                .collect();
            if let Some((metric, _)) = self.curves.iter().find_map(|c| c.dev.as_ref()) {
                panels.push(Panel {
                    title: format!("dev {metric}, full-corpus retrieval (batch 0 = base)"),
                    x_label: "training batch".into(),
                    y_label: metric.clone(),
                    series: dev,
                });
            }
            let width = 500 * panels.len() as u32;
            plot::line_charts(&dir.join("training.png"), &panels, (width, 480))?;
        }
        Ok(())
    }

    /// The groups (metrics) and series (systems) of `metrics.png`: the
    /// table's ranking metrics, then token F1 when some system generated
    /// answers (an empty group would be a label over nothing); a system with
    /// seeds has its seeds' range as whiskers.
    fn metric_bars(&self) -> (Vec<String>, Vec<BarSeries>) {
        let answered = self.systems.iter().any(|s| s.token_f1.is_some());
        let mut groups: Vec<String> = TABLE_METRICS.iter().map(|(_, t)| t.to_string()).collect();
        if answered {
            groups.push("token F1".into());
        }
        let series = self
            .systems
            .iter()
            .map(|s| {
                let mut values: Vec<f64> =
                    TABLE_METRICS.iter().map(|(k, _)| s.metrics.get(*k).copied().unwrap_or(f64::NAN)).collect();
                let mut spread: Vec<Option<(f64, f64)>> =
                    TABLE_METRICS.iter().map(|(k, _)| s.seed_range(|seed| seed.metrics.get(*k).copied())).collect();
                if answered {
                    values.push(s.token_f1.unwrap_or(f64::NAN));
                    spread.push(s.seed_range(|seed| seed.token_f1));
                }
                BarSeries { name: s.title(), values, spread }
            })
            .collect();
        (groups, series)
    }

    /// The data set's name for titles: its folder's name, or for a
    /// quickstart's report, whose data set is the copy `uae synth` wrote to
    /// `<out>/data`, the name of the data set the pipeline started from. A
    /// folder named `data` (a work directory's copy, evaluated on its own)
    /// is named with its parent: `<work>/data`.
    fn data_name(&self) -> String {
        let path = Path::new(self.config.pointer("/pipeline/data").and_then(|v| v.as_str()).unwrap_or(&self.data));
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        match (name(path), path.parent().and_then(name)) {
            (Some(last), Some(parent)) if last == "data" => format!("{parent}/{last}"),
            (Some(last), _) => last,
            (None, _) => path.display().to_string(),
        }
    }
}

/// The paired test of `a` against `b` (per metric, query id -> score) on
/// each of [`TESTED_METRICS`] both have, pairing the queries by id.
fn paired_by_query(
    a: &BTreeMap<String, BTreeMap<String, f64>>,
    b: &BTreeMap<String, BTreeMap<String, f64>>,
    options: &TestOptions,
) -> Vec<(String, PairedTest)> {
    let mut out = Vec::new();
    for (metric, _) in TESTED_METRICS {
        let (Some(a), Some(b)) = (a.get(metric), b.get(metric)) else { continue };
        let (xs, ys): (Vec<f64>, Vec<f64>) = a.iter().filter_map(|(q, x)| Some((*x, *b.get(q)?))).unzip();
        out.push((metric.to_string(), significance::paired(&xs, &ys, options)));
    }
    out
}

/// The machine prefixes a committed report should not hold, longest
/// first, with what replaces them: uae's cache (`$UAE_CACHE`), then the home
/// directory (`~`).
fn portable_prefixes() -> Vec<(String, &'static str)> {
    let mut prefixes = vec![(uae_data::cache::uae_cache().display().to_string(), "$UAE_CACHE")];
    if let Some(home) = std::env::var_os("HOME") {
        prefixes.push((Path::new(&home).display().to_string(), "~"));
    }
    prefixes.retain(|(from, _)| from.len() > 1);
    prefixes
}

/// `text` with each of `prefixes` replaced, in order.
fn portable_paths(text: &str, prefixes: &[(String, &str)]) -> String {
    prefixes.iter().fold(text.to_string(), |text, (from, to)| text.replace(from.as_str(), to))
}

fn portable_json(value: &mut serde_json::Value, prefixes: &[(String, &str)]) {
    match value {
        serde_json::Value::String(text) => *text = portable_paths(text, prefixes),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| portable_json(v, prefixes)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| portable_json(v, prefixes)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_paths_become_portable() {
        let prefixes = vec![("/home/u/.cache/uae".to_string(), "$UAE_CACHE"), ("/home/u".to_string(), "~")];
        let mut json = serde_json::json!({"data": "/home/u/.cache/uae/data/faq", "c": ["x /home/u/work/m"], "n": 1});
        portable_json(&mut json, &prefixes);
        assert_eq!(json, serde_json::json!({"data": "$UAE_CACHE/data/faq", "c": ["x ~/work/m"], "n": 1}));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=20).map(f64::from).collect();
        let l = Latency::of(&samples);
        assert_eq!((l.p50_ms, l.p95_ms, l.mean_ms), (10.0, 19.0, 10.5));
        assert_eq!(Latency::of(&[3.0]).p95_ms, 3.0);
        assert!(Latency::of(&[]).p50_ms.is_nan());
    }

    fn row(name: &str, r1: f64, map: f64, f1: f64, p50: f64) -> SystemRow {
        SystemRow {
            name: name.into(),
            description: String::new(),
            metrics: [("recall@1".to_string(), r1), ("map".to_string(), map)].into(),
            token_f1: Some(f1),
            exact_match: Some(0.0),
            latency: Latency { p50_ms: p50, p95_ms: p50, mean_ms: p50 },
            speedup_vs_rerank: None,
            per_query: BTreeMap::new(),
            seeds: Vec::new(),
        }
    }

    #[test]
    fn goals_compare_the_student_with_base_and_rerank() {
        let systems = [row("base", 0.5, 0.5, 0.4, 10.0), row("uae", 0.66, 0.6, 0.5, 10.0), row("rerank", 0.68, 0.7, 0.5, 2000.0)];
        let goals = ComparisonReport::paper_goals(&systems, "base", "uae", "rerank");
        let met: Vec<(f64, bool)> = goals.iter().map(|g| ((g.measured.unwrap() * 1000.0).round() / 1000.0, g.met)).collect();
        assert_eq!(met, [(1.32, true), (1.2, false), (1.25, true), (200.0, true), (0.971, true)]);
        assert!(ComparisonReport::paper_goals(&systems, "base", "missing", "rerank").is_empty());
        // A base without token F1 (0): that ratio has no value and is not met.
        let silent = [row("base", 0.5, 0.5, 0.0, 10.0), row("uae", 0.66, 0.6, 0.3, 10.0)];
        let goals = ComparisonReport::paper_goals(&silent, "base", "uae", "rerank");
        assert_eq!((goals[2].name.as_str(), goals[2].measured, goals[2].met), ("token F1: uae / base", None, false));
    }

    #[test]
    fn every_system_is_tested_against_each_reference_and_marked() {
        let scores = |values: &[f64]| -> BTreeMap<String, f64> {
            values.iter().enumerate().map(|(i, v)| (format!("q{i:02}"), *v)).collect()
        };
        let mut base = row("base", 0.0, 0.0, 0.0, 1.0);
        let mut better = row("better", 0.0, 0.0, 0.0, 1.0);
        base.per_query.insert("recall@1".into(), scores(&[0.0; 20]));
        better.per_query.insert("recall@1".into(), scores(&[1.0; 20]));
        // Token F1 only for the base: nothing to pair, no test.
        base.per_query.insert("token_f1".into(), scores(&[0.5; 20]));
        let systems = [base, better];
        let tests = ComparisonReport::significance(&systems, &["base".to_string()], &TestOptions::default());
        assert_eq!(tests.len(), 1);
        assert_eq!((tests[0].system.as_str(), tests[0].metric.as_str()), ("better", "recall@1"));
        assert!(tests[0].test.significant && tests[0].test.mean_difference == 1.0);
        let report = ComparisonReport {
            data: "d".into(),
            split: "test".into(),
            queries: 20,
            passages: 3,
            mean_relevant: 1.0,
            recall_at_1_ceiling: 1.0,
            systems: systems.to_vec(),
            goals: Vec::new(),
            teacher: None,
            curves: Vec::new(),
            references: vec!["base".into()],
            significance: tests,
            config: serde_json::Value::Null,
        };
        assert_eq!(report.data_name(), "d");
        let quickstart = ComparisonReport {
            data: "$UAE_CACHE/quickstart/data".into(),
            config: serde_json::json!({"pipeline": {"data": "$UAE_CACHE/data/python-faq-heldout"}}),
            ..report.clone()
        };
        assert_eq!(quickstart.data_name(), "python-faq-heldout");
        let work = ComparisonReport { data: "$UAE_CACHE/bench/data".into(), ..report.clone() };
        assert_eq!(work.data_name(), "bench/data");
        let (groups, series) = report.metric_bars();
        assert_eq!(groups.last().map(String::as_str), Some("token F1"), "the base generated answers");
        assert!(series.iter().all(|s| s.values.len() == groups.len()));
        let unanswered = ComparisonReport {
            systems: report.systems.iter().map(|s| SystemRow { token_f1: None, ..s.clone() }).collect(),
            ..report.clone()
        };
        let (groups, series) = unanswered.metric_bars();
        assert_eq!(groups.len(), TABLE_METRICS.len(), "no token F1 group without answers");
        assert!(series.iter().all(|s| s.values.len() == groups.len()));
        let md = report.markdown();
        assert!(md.contains("| better | 0.000* |"), "{md}");
        assert!(md.contains("* differs from base with p < 0.05"), "{md}");
        assert!(md.contains("| better | base | **+1.000 [+1.000, +1.000] p=0.000** |"), "{md}");
    }
}
