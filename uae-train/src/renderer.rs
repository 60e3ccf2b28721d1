//! A plain-text metrics renderer for logs and CI: one line every `every`
//! steps with the running mean of each metric over the split so far, and
//! one line at the end of each split. Burn's own fallback
//! (`CliMetricsRenderer`) prints debug snapshots of its progress structs and
//! no metric values.

use std::collections::HashMap;
use std::io::Write;

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation, MetricsRendererTraining,
};

/// Running mean of one metric over the current split.
#[derive(Debug, Clone, Default)]
struct Running {
    sum: f64,
    count: usize,
    last_final: Option<f64>,
}

impl Running {
    /// Adds an entry to the running mean. Entries without a value (a metric
    /// that has not measured anything yet reports NaN, e.g. examples/s on a
    /// split's first step) are skipped rather than poisoning the mean.
    fn add(&mut self, entry: &NumericEntry) {
        match entry {
            NumericEntry::Value(v) if !v.is_finite() => {}
            NumericEntry::Aggregated { aggregated_value, count } if *count == 0 || !aggregated_value.is_finite() => {}
            NumericEntry::Value(v) => {
                self.sum += v;
                self.count += 1;
            }
            NumericEntry::Aggregated { aggregated_value, count } => {
                self.sum += aggregated_value * *count as f64;
                self.count += count;
            }
            NumericEntry::Final(v) => self.last_final = Some(*v),
        }
    }

    fn value(&self) -> Option<f64> {
        self.last_final.or((self.count > 0).then(|| self.sum / self.count as f64))
    }
}

/// Where a [`LineRenderer`] writes: the stream the caller keeps for logs
/// (`uae train` prints its log on standard output; `uae quickstart` keeps
/// standard output for the report and logs on standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricLines {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Prints one concise line of metric values every `every` steps.
pub struct LineRenderer {
    every: usize,
    to: MetricLines,
    names: Vec<(MetricId, String)>,
    values: HashMap<MetricId, Running>,
    split: String,
    epoch: usize,
    total_epochs: usize,
    items: usize,
    total_items: usize,
    steps: usize,
}

impl LineRenderer {
    /// A renderer printing to `to` every `every` steps (at least 1).
    pub fn new(every: usize, to: MetricLines) -> Self {
        Self {
            every: every.max(1),
            to,
            names: Vec::new(),
            values: HashMap::new(),
            split: String::new(),
            epoch: 0,
            total_epochs: 0,
            items: 0,
            total_items: 0,
            steps: 0,
        }
    }

    fn record(&mut self, state: MetricState) {
        if let MetricState::Numeric(entry, Some(value)) = state {
            self.values.entry(entry.metric_id).or_default().add(&value);
        }
    }

    /// The current line: position, then each metric's running mean.
    pub fn line(&self) -> String {
        let mut line = format!(
            "epoch {}/{} {} {}/{}",
            self.epoch, self.total_epochs, self.split, self.items, self.total_items
        );
        for (id, name) in &self.names {
            if let Some(value) = self.values.get(id).and_then(Running::value) {
                line.push_str(&format!(" | {name} {}", format_value(value)));
            }
        }
        line
    }

    fn print(&self) {
        // A closed stream must not stop training.
        let line = self.line();
        let _ = match self.to {
            MetricLines::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            MetricLines::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
        };
    }
}

/// Four significant digits, in scientific notation for small rates.
fn format_value(value: f64) -> String {
    if value != 0.0 && value.abs() < 1e-3 { format!("{value:.3e}") } else { format!("{value:.4}") }
}

impl MetricsRendererTraining for LineRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.record(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(state);
    }
}

impl MetricsRendererEvaluation for LineRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.record(state);
    }
}

impl TrainingProgressLogger for LineRenderer {
    fn start(&mut self, total_epochs: usize, starting_epoch: usize, _total_items: Option<usize>, _label: Option<&str>) {
        self.total_epochs = total_epochs;
        self.epoch = starting_epoch.max(1);
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = split.to_string();
        self.total_items = total_items;
        self.items = 0;
        self.steps = 0;
        self.values.clear();
    }

    fn update_split(&mut self, items_processed: usize) {
        self.items = items_processed;
        self.steps += 1;
        if self.steps.is_multiple_of(self.every) {
            self.print();
        }
    }

    fn end_split(&mut self) {
        if !self.steps.is_multiple_of(self.every) {
            self.print();
        }
    }

    fn end(&mut self) {}

    /// Burn's per-iteration events; the metric lines say more.
    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for LineRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, name: &str, total_items: usize) {
        self.start_split(name, total_items);
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        self.update_split(items_processed);
    }

    fn end_test(&mut self) {
        self.end_split();
    }

    fn end_global_progress(&mut self) {}

    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for LineRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        if !self.names.iter().any(|(id, _)| *id == definition.metric_id) {
            self.names.push((definition.metric_id, definition.name.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_mean_skips_entries_without_a_value() {
        let mut running = Running::default();
        running.add(&NumericEntry::Aggregated { aggregated_value: f64::NAN, count: 0 });
        running.add(&NumericEntry::Value(f64::NAN));
        assert_eq!(running.value(), None);
        running.add(&NumericEntry::Value(2.0));
        running.add(&NumericEntry::Aggregated { aggregated_value: 5.0, count: 2 });
        assert_eq!(running.value(), Some(4.0));
    }
}
