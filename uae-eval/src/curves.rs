//! Training curves read back from a run's metric logs, which Burn's file
//! logger writes as `<run>/{train,valid}/epoch-N/<Metric_Name>.log`, one
//! `value,count` line per logged step (validation ends with a
//! `value,final` line, the epoch's aggregate).

use std::path::Path;

use anyhow::{Context, Result, bail};
use crate::report::RunCurves;

/// One metric's per-epoch lines: `(epoch, values of the steps, final value)`.
type EpochLines = Vec<(usize, Vec<(f64, f64)>, Option<f64>)>;

fn read_metric(run: &Path, phase: &str, metric: &str) -> Result<EpochLines> {
    let dir = run.join(phase);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(out) };
    let mut epochs: Vec<usize> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("epoch-")?.parse().ok())
        .collect();
    epochs.sort_unstable();
    for epoch in epochs {
        let path = dir.join(format!("epoch-{epoch}")).join(format!("{metric}.log"));
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let mut steps = Vec::new();
        let mut last = None;
        for (n, line) in text.lines().enumerate() {
            let (value, count) = line
                .split_once(',')
                .with_context(|| format!("{}:{}: expected `value,count`", path.display(), n + 1))?;
            let value: f64 = value.trim().parse().with_context(|| format!("{}:{}: bad value", path.display(), n + 1))?;
            match count.trim() {
                "final" => last = Some(value),
                c => steps.push((value, c.parse::<f64>().unwrap_or(1.0))),
            }
        }
        out.push((epoch, steps, last));
    }
    Ok(out)
}

/// The epoch's aggregate: its `final` line, else the count-weighted mean.
fn epoch_value(steps: &[(f64, f64)], last: Option<f64>) -> Option<f64> {
    last.or_else(|| {
        let weight: f64 = steps.iter().map(|s| s.1).sum();
        (weight > 0.0).then(|| steps.iter().map(|(v, w)| v * w).sum::<f64>() / weight)
    })
}

/// The curves of the run in `run`, named `name`: the training loss at every
/// logged step (numbered across epochs, NaN entries skipped), the
/// validation loss and gold Recall@1 of each epoch, and, when the run kept
/// a `selection.json`, the dev retrieval metric by training batch. A folder
/// that does not exist or holds no curve at all is an error naming it.
pub fn read_curves(run: &Path, name: &str) -> Result<RunCurves> {
    if !run.is_dir() {
        bail!("run {name}: {} is not a folder (give a `uae train --out` folder)", run.display());
    }
    let mut train_loss = Vec::new();
    let mut step = 0usize;
    for (_, steps, _) in read_metric(run, "train", "Loss")? {
        for (value, _) in steps {
            step += 1;
            if value.is_finite() {
                train_loss.push((step as f64, value));
            }
        }
    }
    let per_epoch = |metric: &str| -> Result<Vec<(f64, f64)>> {
        Ok(read_metric(run, "valid", metric)?
            .into_iter()
            .filter_map(|(epoch, steps, last)| Some((epoch as f64, epoch_value(&steps, last)?)))
            .collect())
    };
    let selection_path = uae_train::select::summary_path(run);
    let selection: Option<uae_train::select::SelectionSummary> =
        if selection_path.is_file() { Some(uae_data::json::read_json(&selection_path)?) } else { None };
    let dev = selection.as_ref().map(|s| {
        let metric = s.metric.name();
        let points = s.history.iter().filter_map(|p| Some((p.step as f64, *p.metrics.get(metric)?))).collect();
        (s.metric.title().to_string(), points)
    });
    let curves = RunCurves {
        name: name.to_string(),
        train_loss,
        valid_loss: per_epoch("Loss")?,
        valid_recall_at_1: per_epoch("Recall@1")?,
        dev,
        chosen_step: selection.map(|s| s.chosen_step),
    };
    let points = [&curves.train_loss, &curves.valid_loss, &curves.valid_recall_at_1];
    if points.iter().all(|p| p.is_empty()) && curves.dev.as_ref().is_none_or(|(_, p)| p.is_empty()) {
        bail!(
            "run {name}: {} holds no training curve (train/epoch-N/Loss.log, valid/epoch-N/*.log or selection.json)",
            run.display()
        );
    }
    Ok(curves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_numbered_across_epochs_and_validation_uses_the_final_line() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("train/epoch-1/Loss.log", "3.0,4\n2.5,4\n");
        write("train/epoch-2/Loss.log", "NaN,4\n1.5,4\n");
        write("valid/epoch-1/Loss.log", "2.0,4\n1.0,2\n1.9,final\n");
        write("valid/epoch-2/Loss.log", "1.0,3\n2.0,1\n");
        write("valid/epoch-2/Recall@1.log", "0.5,final\n");
        let c = read_curves(dir.path(), "uae").unwrap();
        assert_eq!(c.train_loss, [(1.0, 3.0), (2.0, 2.5), (4.0, 1.5)]);
        assert_eq!(c.valid_loss, [(1.0, 1.9), (2.0, 1.25)]);
        assert_eq!(c.valid_recall_at_1, [(2.0, 0.5)]);
        write("train/epoch-1/Loss.log", "oops\n");
        assert!(read_curves(dir.path(), "uae").unwrap_err().to_string().contains("epoch-1/Loss.log:1"));
    }

    #[test]
    fn a_run_without_curves_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = read_curves(&missing, "x").unwrap_err().to_string();
        assert_eq!(err, format!("run x: {} is not a folder (give a `uae train --out` folder)", missing.display()));
        let err = read_curves(dir.path(), "x").unwrap_err().to_string();
        assert!(err.starts_with(&format!("run x: {} holds no training curve", dir.path().display())), "{err}");
    }
}
