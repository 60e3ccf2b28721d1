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

/// The ranking metrics of the table, as `metrics::evaluate` names them, and
/// their column titles.
pub const TABLE_METRICS: [(&str, &str); 5] =
    [("recall@1", "Recall@1"), ("recall@5", "Recall@5"), ("map", "MAP"), ("mrr@10", "MRR@10"), ("ndcg@10", "nDCG@10")];

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
}

/// One of the paper's goals, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    /// What is compared.
    pub name: String,
    /// The target, as the paper reports it.
    pub target: String,
    /// The measured ratio.
    pub measured: f64,
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
            goals.push(Goal { name, target: target.into(), measured, threshold, met: measured >= threshold });
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
            let _ = write!(md, "| {} |", s.name);
            for (key, _) in TABLE_METRICS {
                let _ = write!(md, " {} |", opt(s.metrics.get(key).copied(), 3));
            }
            let _ = writeln!(
                md,
                " {} | {} | {:.1} | {:.1} | {} |",
                opt(s.token_f1, 3),
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
        md.push_str("\nSystems:\n");
        for s in &self.systems {
            let _ = writeln!(md, "- **{}**: {}", s.name, s.description);
        }
        if !self.goals.is_empty() {
            md.push_str("\n## The paper's goals\n\n| goal | paper | measured | needed | met |\n|---|---|---:|---:|---|\n");
            for g in &self.goals {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.2}x | {:.2}x | {} |",
                    g.name,
                    g.target,
                    g.measured,
                    g.threshold,
                    if g.met { "yes" } else { "**no**" }
                );
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
        md.push_str("\n![metrics](metrics.png)\n");
        if !self.curves.is_empty() {
            md.push_str("\n![training](training.png)\n");
        }
        md
    }

    /// Writes `report.json`, `report.md`, `metrics.png` and, when there are
    /// curves, `training.png` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        uae_data::atomic::write_atomically(dir, "report.json", serde_json::to_string_pretty(self)?.as_bytes())?;
        uae_data::atomic::write_atomically(dir, "report.md", self.markdown().as_bytes())?;
        let mut groups: Vec<String> = TABLE_METRICS.iter().map(|(_, t)| t.to_string()).collect();
        groups.push("token F1".into());
        let series: Vec<BarSeries> = self
            .systems
            .iter()
            .map(|s| {
                let mut values: Vec<f64> =
                    TABLE_METRICS.iter().map(|(k, _)| s.metrics.get(*k).copied().unwrap_or(f64::NAN)).collect();
                values.push(s.token_f1.unwrap_or(f64::NAN));
                BarSeries { name: s.name.clone(), values }
            })
            .collect();
        let title = format!("{} ({} split, {} queries)", self.data_name(), self.split, self.queries);
        plot::bar_chart(&dir.join("metrics.png"), &title, &groups, &series, (1280, 560))?;
        if !self.curves.is_empty() {
            let series = |f: fn(&RunCurves) -> &Vec<(f64, f64)>| {
                self.curves.iter().map(|c| LineSeries { name: c.name.clone(), points: f(c).clone() }).collect()
            };
            let panels = [
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
            plot::line_charts(&dir.join("training.png"), &panels, (1500, 480))?;
        }
        Ok(())
    }

    /// The data set's folder name.
    fn data_name(&self) -> &str {
        Path::new(&self.data).file_name().and_then(|n| n.to_str()).unwrap_or(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn goals_compare_the_student_with_base_and_rerank() {
        let systems = [row("base", 0.5, 0.5, 0.4, 10.0), row("uae", 0.66, 0.6, 0.5, 10.0), row("rerank", 0.68, 0.7, 0.5, 2000.0)];
        let goals = ComparisonReport::paper_goals(&systems, "base", "uae", "rerank");
        let met: Vec<(f64, bool)> = goals.iter().map(|g| ((g.measured * 1000.0).round() / 1000.0, g.met)).collect();
        assert_eq!(met, [(1.32, true), (1.2, false), (1.25, true), (200.0, true), (0.971, true)]);
        assert!(ComparisonReport::paper_goals(&systems, "base", "missing", "rerank").is_empty());
    }
}
