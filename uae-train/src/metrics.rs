//! Ranking metrics over each query's candidate pool, as Burn metrics:
//! Recall@1 and MRR of the judged-relevant candidates, Recall@1 of the
//! teacher's best candidate, and `KL(p_U || p_theta)` between the teacher's
//! and the student's distributions over the pool (no in-batch negatives).
//!
//! Ranks follow [`crate::loss::metrics::rank`]. Queries without a relevant
//! candidate in their pool do not count towards Recall@1 and MRR.

use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::TensorReadError;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry, SerializedEntry,
};

use crate::loss::metrics::{argmax, kl_divergence, rank, softmax};

/// Burn's `Numeric` for a metric whose values live in a `state:
/// NumericMetricState` field.
macro_rules! numeric_from_state {
    ($metric:ty) => {
        impl Numeric for $metric {
            fn value(&self) -> Option<NumericEntry> {
                Some(self.state.current_value())
            }

            fn running_value(&self) -> Option<NumericEntry> {
                Some(self.state.running_value())
            }

            fn final_value(&self) -> NumericEntry {
                self.state.final_value()
            }
        }
    };
}

/// What the pool metrics read from a step.
#[derive(Debug, Clone)]
pub struct PoolInput {
    /// Student cosines, `[B, K]`.
    pub scores: Tensor<2>,
    /// Teacher utilities, `[B, K]`.
    pub utilities: Tensor<2>,
    /// Relevance flags, `B` rows of `K`.
    pub relevant: Vec<Vec<bool>>,
    /// Student temperature.
    pub tau: f64,
    /// Teacher temperature.
    pub tau_u: f64,
}

/// Which pool statistic a [`PoolMetric`] reports. Burn uses a metric's
/// name as a file name for its log, so names hold no `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolStat {
    /// Share of queries whose top-scored candidate is relevant.
    RecallAt1,
    /// Mean reciprocal rank of the best-ranked relevant candidate.
    Mrr,
    /// Share of queries whose top-scored candidate is the teacher's best.
    TeacherRecallAt1,
    /// Mean `KL(p_U || p_theta)` over the pool, in nats.
    Kl,
}

impl PoolStat {
    /// The metric's display name.
    pub fn name(self) -> &'static str {
        match self {
            PoolStat::RecallAt1 => "Recall@1",
            PoolStat::Mrr => "MRR",
            PoolStat::TeacherRecallAt1 => "Teacher Recall@1",
            PoolStat::Kl => "KL teacher-student",
        }
    }

    /// One query's value, or `None` when it does not count.
    fn row_value(self, scores: &[f32], utilities: &[f32], relevant: &[bool], tau: f64, tau_u: f64) -> Option<f64> {
        match self {
            PoolStat::RecallAt1 | PoolStat::Mrr => {
                let best = (0..scores.len()).filter(|&i| relevant[i]).filter_map(|i| rank(scores, i).ok()).min()?;
                Some(if self == PoolStat::Mrr { 1.0 / best as f64 } else { f64::from(u8::from(best == 1)) })
            }
            PoolStat::TeacherRecallAt1 => {
                let top = argmax(utilities)?;
                Some(f64::from(u8::from(rank(scores, top).ok()? == 1)))
            }
            PoolStat::Kl => kl_divergence(&softmax(utilities, tau_u), &softmax(scores, tau)).ok(),
        }
    }
}

/// A Burn metric for one [`PoolStat`], averaged over queries.
#[derive(Clone)]
pub struct PoolMetric {
    stat: PoolStat,
    name: MetricName,
    state: NumericMetricState,
}

impl PoolMetric {
    /// A metric reporting `stat`.
    pub fn new(stat: PoolStat) -> Self {
        Self { stat, name: Arc::new(stat.name().to_string()), state: NumericMetricState::default() }
    }

    fn format(&self) -> FormatOptions {
        FormatOptions::new(self.name()).precision(4)
    }
}

impl Metric for PoolMetric {
    type Input = PoolInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes { unit: None, higher_is_better: self.stat != PoolStat::Kl }.into()
    }

    fn update(&mut self, item: &PoolInput, _metadata: &MetricMetadata) -> Result<SerializedEntry, TensorReadError> {
        let [b, k] = item.scores.dims();
        let scores = item.scores.clone().try_into_vec_as::<f32>()?;
        let utilities = item.utilities.clone().try_into_vec_as::<f32>()?;
        let values: Vec<f64> = (0..b)
            .filter_map(|row| {
                let span = row * k..(row + 1) * k;
                let relevant = item.relevant.get(row)?;
                self.stat.row_value(&scores[span.clone()], &utilities[span], relevant, item.tau, item.tau_u)
            })
            .collect();
        if !values.is_empty() {
            self.state.update(values.iter().sum::<f64>() / values.len() as f64, values.len());
        }
        Ok(self.state.compute_update(self.format()))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.state.compute_final(self.format()))
    }

    fn clear(&mut self) {
        self.state.reset();
    }
}

numeric_from_state!(PoolMetric);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_values() {
        let scores = [0.1, 0.9, 0.3];
        let utilities = [0.0, 1.0, 2.0];
        let relevant = [false, false, true];
        assert_eq!(PoolStat::RecallAt1.row_value(&scores, &utilities, &relevant, 0.05, 1.0), Some(0.0));
        assert_eq!(PoolStat::Mrr.row_value(&scores, &utilities, &relevant, 0.05, 1.0), Some(0.5));
        assert_eq!(PoolStat::TeacherRecallAt1.row_value(&scores, &utilities, &relevant, 0.05, 1.0), Some(0.0));
        assert_eq!(PoolStat::RecallAt1.row_value(&scores, &utilities, &[false; 3], 0.05, 1.0), None);
        assert!(PoolStat::Kl.row_value(&scores, &utilities, &relevant, 0.05, 1.0).unwrap() > 0.0);
    }
}

/// What the dev metric reads from a validation step.
#[derive(Debug, Clone, Copy)]
pub struct DevInput {
    /// The latest dev value of the selection metric (NaN before any).
    pub value: f64,
}

/// The selection metric on the dev queries by full-corpus retrieval
/// ([`crate::select`]), as measured for the epoch's weights; shown in the
/// TUI and the metric lines, and logged for the training chart.
#[derive(Clone)]
pub struct DevMetric {
    name: MetricName,
    state: NumericMetricState,
}

impl DevMetric {
    /// The metric for `metric`.
    pub fn new(metric: crate::select::SelectMetric) -> Self {
        Self { name: Arc::new(format!("Dev {}", metric.title())), state: NumericMetricState::default() }
    }

    fn format(&self) -> FormatOptions {
        FormatOptions::new(self.name()).precision(4)
    }
}

impl Metric for DevMetric {
    type Input = DevInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes { unit: None, higher_is_better: true }.into()
    }

    fn update(&mut self, item: &DevInput, _metadata: &MetricMetadata) -> Result<SerializedEntry, TensorReadError> {
        if item.value.is_finite() {
            self.state.update(item.value, 1);
        }
        Ok(self.state.compute_update(self.format()))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.state.compute_final(self.format()))
    }

    fn clear(&mut self) {
        self.state.reset();
    }
}

numeric_from_state!(DevMetric);

/// Training throughput: queries processed in the epoch so far per second of
/// wall time since the epoch's first step.
#[derive(Clone, Default)]
pub struct ExamplesPerSecond {
    start: Option<(std::time::Instant, usize)>,
    state: NumericMetricState,
}

impl ExamplesPerSecond {
    /// A fresh meter.
    pub fn new() -> Self {
        Self::default()
    }

    fn format(&self) -> FormatOptions {
        FormatOptions::new(self.name()).unit("ex/s").precision(1)
    }
}

impl Metric for ExamplesPerSecond {
    type Input = ();

    fn name(&self) -> MetricName {
        Arc::new("Examples per Second".to_string())
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes { unit: Some("ex/s".into()), higher_is_better: true }.into()
    }

    fn update(&mut self, _item: &(), metadata: &MetricMetadata) -> Result<SerializedEntry, TensorReadError> {
        let items = metadata.progress.items_processed;
        match self.start {
            // The first step's own items are not timed: the clock starts after it.
            None => self.start = Some((std::time::Instant::now(), items)),
            Some((start, first)) => {
                let seconds = start.elapsed().as_secs_f64();
                if seconds > 0.0 {
                    self.state.update(items.saturating_sub(first) as f64 / seconds, 1);
                }
            }
        }
        Ok(self.state.compute_update(self.format()))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.state.compute_final(self.format()))
    }

    fn clear(&mut self) {
        self.start = None;
        self.state.reset();
    }
}

numeric_from_state!(ExamplesPerSecond);
