//! The distillation losses against PyTorch: values and gradients on Burn's
//! autodiff flex device equal `assets/fixtures/loss_reference.json`, written by
//! `assets/make_loss_reference.py` (float64 autograd). Plus the guard: NaN
//! utilities, uniform and one-hot targets, and extreme scores.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;
use uae_train::loss::{LossConfig, LossError, LossInput, LossKind, LossOutput};

/// Values are f32; the reference is f64. Allowed difference:
/// `TOLERANCE * max(1, |reference|)`.
const TOLERANCE: f64 = 1e-5;

#[derive(Deserialize)]
struct Reference {
    inputs: Inputs,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Inputs {
    scores: Vec<Vec<f64>>,
    in_batch: Vec<Vec<f64>>,
    utilities: Vec<Vec<f64>>,
    positive: Vec<usize>,
}

#[derive(Deserialize)]
struct Case {
    config: LossConfig,
    loss: f64,
    per_query: Vec<f64>,
    grad_scores: Vec<Vec<f64>>,
    grad_in_batch: Option<Vec<Vec<f64>>>,
}

fn reference() -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/fixtures/loss_reference.json");
    let text = std::fs::read_to_string(&path).expect("read the loss fixture");
    serde_json::from_str(&text).expect("parse the loss fixture")
}

fn device() -> Device {
    Device::flex().autodiff()
}

fn matrix(rows: &[Vec<f64>], device: &Device) -> Tensor<2> {
    let values: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, [rows.len(), rows[0].len()]), device)
}

fn read<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.try_into_vec_as::<f32>().unwrap().into_iter().map(f64::from).collect()
}

/// The largest `|actual - expected| / max(1, |expected|)`.
fn max_rel_diff(actual: &[f64], expected: &[f64]) -> f64 {
    assert_eq!(actual.len(), expected.len());
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs() / e.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn assert_close(what: &str, actual: &[f64], expected: &[f64]) {
    let diff = max_rel_diff(actual, expected);
    let abs = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0, f64::max);
    println!("{what}: max difference {abs:.3e}, scaled {diff:.3e}");
    assert!(
        diff <= TOLERANCE,
        "{what}: {actual:?} vs {expected:?} (difference {diff:e})"
    );
}

fn input(inputs: &Inputs, config: &LossConfig, device: &Device) -> LossInput {
    LossInput {
        scores: matrix(&inputs.scores, device).require_grad(),
        in_batch: config
            .use_in_batch
            .then(|| matrix(&inputs.in_batch, device).require_grad()),
        utilities: Some(matrix(&inputs.utilities, device)),
        positive: Some(inputs.positive.clone()),
    }
}

#[test]
fn losses_and_gradients_match_pytorch() {
    let reference = reference();
    let device = device();
    let mut seen = Vec::new();
    for case in &reference.cases {
        let config = case.config;
        let name = format!("{} (in_batch={})", config.kind, config.use_in_batch);
        let batch = input(&reference.inputs, &config, &device);
        let output = config.loss(&batch).unwrap();
        config.guard(&batch, &output).unwrap();
        let grads = output.loss.backward();

        assert_close(&format!("{name} loss"), &read(output.loss.clone()), &[case.loss]);
        assert_close(
            &format!("{name} per-query"),
            &read(output.per_query.clone()),
            &case.per_query,
        );
        let grad_scores = read(batch.scores.grad(&grads).expect("scores gradient"));
        assert_close(&format!("{name} d/dscores"), &grad_scores, &flat(&case.grad_scores));
        match (&batch.in_batch, &case.grad_in_batch) {
            (Some(in_batch), Some(expected)) => {
                let grad = read(in_batch.grad(&grads).expect("in_batch gradient"));
                assert_close(&format!("{name} d/din_batch"), &grad, &flat(expected));
            }
            (None, None) => {}
            _ => panic!("{name}: fixture and input disagree on in-batch negatives"),
        }
        seen.push((config.kind, config.use_in_batch));
    }
    for kind in LossKind::ALL {
        for flag in [false, true] {
            assert!(seen.contains(&(kind, flag)), "fixture lacks {kind} in_batch={flag}");
        }
    }
}

fn flat(rows: &[Vec<f64>]) -> Vec<f64> {
    rows.iter().flatten().copied().collect()
}

/// A batch of two queries over three candidates, no in-batch negatives.
fn small_batch(scores: [[f32; 3]; 2], utilities: [[f32; 3]; 2], device: &Device) -> LossInput {
    LossInput {
        scores: Tensor::from_data(scores, device),
        in_batch: None,
        utilities: Some(Tensor::from_data(utilities, device)),
        positive: Some(vec![0, 2]),
    }
}

fn config(kind: LossKind) -> LossConfig {
    LossConfig {
        use_in_batch: false,
        ..LossConfig::new(kind)
    }
}

fn run(config: &LossConfig, batch: &LossInput) -> (LossOutput, Result<uae_train::loss::TargetReport, LossError>) {
    let output = config.loss(batch).unwrap();
    let report = config.guard(batch, &output);
    (output, report)
}

#[test]
fn nan_utility_is_an_error_naming_the_row() {
    let device = Device::flex();
    let batch = small_batch(
        [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        [[1.0, 2.0, 3.0], [0.5, f32::NAN, 0.0]],
        &device,
    );
    for kind in [LossKind::UmInfonce, LossKind::Kl, LossKind::StableDistill] {
        let (_, report) = run(&config(kind), &batch);
        let error = report.unwrap_err();
        assert!(
            matches!(error, LossError::NonFiniteUtility { row: 1, column: 1, .. }),
            "{kind}: {error:?}"
        );
        assert!(error.to_string().contains("query row 1"), "{error}");
    }
}

#[test]
fn nan_score_is_a_loss_error_naming_the_row() {
    let device = Device::flex();
    let batch = small_batch(
        [[0.1, 0.2, 0.3], [0.4, f32::NAN, 0.6]],
        [[1.0, 2.0, 3.0], [0.5, 1.0, 0.0]],
        &device,
    );
    for kind in LossKind::ALL {
        let (_, report) = run(&config(kind), &batch);
        assert!(
            matches!(report, Err(LossError::NonFiniteLoss { row: 1, .. })),
            "{kind}: {report:?}"
        );
    }
}

#[test]
fn equal_utilities_are_reported_as_a_uniform_target() {
    let device = Device::flex();
    let batch = small_batch(
        [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        [[1.0, 2.0, 3.0], [0.7, 0.7, 0.7]],
        &device,
    );
    let (output, report) = run(&config(LossKind::UmInfonce), &batch);
    let report = report.unwrap();
    assert_eq!(report.rows, 2);
    assert_eq!(report.uniform_rows, vec![1]);
    assert!(report.one_hot_rows.is_empty());
    assert!(!report.is_clean());
    // The target of row 1 is uniform: its loss is the mean of -log p_theta.
    let per_query = read(output.per_query);
    let logits = [0.4f64 / 0.05, 0.5 / 0.05, 0.6 / 0.05];
    let lse = logits.iter().map(|z| z.exp()).sum::<f64>().ln();
    let expected = logits.iter().map(|z| lse - z).sum::<f64>() / 3.0;
    assert!((per_query[1] - expected).abs() < 1e-5, "{} vs {expected}", per_query[1]);
}

#[test]
fn underflowing_teacher_softmax_is_reported_as_one_hot() {
    let device = Device::flex();
    let batch = small_batch(
        [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        [[40.0, 0.0, -3.0], [0.1, 0.3, 0.2]],
        &device,
    );
    let (_, report) = run(&config(LossKind::Kl), &batch);
    let report = report.unwrap();
    assert_eq!(report.one_hot_rows, vec![0]);
    assert!(report.uniform_rows.is_empty());
    assert_eq!(report.widest_spread, 43.0);
    // A hotter teacher softens it.
    let soft = LossConfig {
        tau_u: 10.0,
        ..config(LossKind::Kl)
    };
    assert!(run(&soft, &batch).1.unwrap().is_clean());
}

#[test]
fn extreme_scores_give_finite_losses_and_gradients() {
    let device = Device::flex().autodiff();
    for kind in LossKind::ALL {
        for use_in_batch in [false, true] {
            let config = LossConfig {
                use_in_batch,
                ..LossConfig::new(kind)
            };
            let scores = Tensor::<2>::from_data([[1e4f32, -1e4, 0.0], [-1e4, 1e4, 1e4]], &device).require_grad();
            let in_batch = Tensor::<2>::from_data([[1e4f32, -1e4], [-1e4, 1e4]], &device).require_grad();
            let batch = LossInput {
                scores: scores.clone(),
                in_batch: use_in_batch.then_some(in_batch),
                utilities: Some(Tensor::from_data([[1e4f32, -1e4, 0.0], [0.0, -1e4, 1e4]], &device)),
                positive: Some(vec![1, 0]),
            };
            let (output, report) = run(&config, &batch);
            report.unwrap_or_else(|e| panic!("{kind} in_batch={use_in_batch}: {e}"));
            let grads = output.loss.backward();
            let grad = read(scores.grad(&grads).unwrap());
            assert!(grad.iter().all(|g| g.is_finite()), "{kind}: {grad:?}");
        }
    }
}

#[test]
fn empty_in_batch_equals_none() {
    let device = Device::flex();
    let batch = small_batch(
        [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        [[1.0, 2.0, 3.0], [0.5, 1.0, 0.0]],
        &device,
    );
    let empty = LossInput {
        in_batch: Some(Tensor::zeros([2, 0], &device)),
        ..batch.clone()
    };
    for kind in LossKind::ALL {
        let without = read(config(kind).loss(&batch).unwrap().per_query);
        let with_empty = LossConfig {
            use_in_batch: true,
            ..config(kind)
        };
        assert_eq!(read(with_empty.loss(&empty).unwrap().per_query), without, "{kind}");
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let device = Device::flex();
    let batch = small_batch(
        [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        [[1.0, 2.0, 3.0], [0.5, 1.0, 0.0]],
        &device,
    );
    let infonce = config(LossKind::Infonce);

    let out_of_range = LossInput {
        positive: Some(vec![0, 3]),
        ..batch.clone()
    };
    assert!(matches!(
        infonce.loss(&out_of_range),
        Err(LossError::PositiveOutOfRange {
            row: 1,
            positive: 3,
            candidates: 3
        })
    ));
    let no_positive = LossInput {
        positive: None,
        ..batch.clone()
    };
    assert!(matches!(infonce.loss(&no_positive), Err(LossError::MissingInput(_))));
    let no_teacher = LossInput {
        utilities: None,
        ..batch.clone()
    };
    assert!(matches!(
        config(LossKind::Kl).loss(&no_teacher),
        Err(LossError::MissingInput(_))
    ));
    assert!(infonce.loss(&no_teacher).is_ok(), "infonce needs no utilities");

    let wide = LossInput {
        utilities: Some(Tensor::zeros([2, 4], &device)),
        ..batch.clone()
    };
    assert!(matches!(
        config(LossKind::UmInfonce).loss(&wide),
        Err(LossError::Shape(_))
    ));
    let in_batch_needed = LossConfig::new(LossKind::UmInfonce);
    assert!(matches!(in_batch_needed.loss(&batch), Err(LossError::MissingInput(_))));
    let single = LossInput {
        scores: Tensor::zeros([2, 1], &device),
        utilities: Some(Tensor::zeros([2, 1], &device)),
        ..batch.clone()
    };
    assert!(matches!(
        config(LossKind::UmInfonce).loss(&single),
        Err(LossError::Shape(_))
    ));
    let cold = LossConfig {
        tau: 0.0,
        ..config(LossKind::UmInfonce)
    };
    assert!(matches!(cold.loss(&batch), Err(LossError::InvalidConfig(_))));
}

#[test]
fn loss_names_round_trip() {
    for kind in LossKind::ALL {
        assert_eq!(kind.name().parse::<LossKind>().unwrap(), kind);
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.name()));
    }
    assert!("mse".parse::<LossKind>().is_err());
    let config: LossConfig = serde_json::from_str(r#"{"kind": "stable-distill", "tau": 0.01}"#).unwrap();
    assert_eq!(
        config,
        LossConfig {
            kind: LossKind::StableDistill,
            tau: 0.01,
            ..LossConfig::default()
        }
    );
    assert!(serde_json::from_str::<LossConfig>(r#"{"temperature": 1}"#).is_err());
}

/// A distillation loss with an InfoNCE term is the loss without it plus the
/// weight times InfoNCE, query by query; the term needs the positives.
#[test]
fn infonce_term_adds_weighted_infonce() {
    let device = Device::flex();
    let batch = small_batch([[0.9, 0.1, 0.3], [0.2, 0.4, 0.8]], [[2.0, 0.5, 1.0], [0.0, 0.1, 3.0]], &device);
    let per_query = |config: &LossConfig| read(config.loss(&batch).unwrap().per_query);
    let infonce = per_query(&config(LossKind::Infonce));
    for kind in [LossKind::UmInfonce, LossKind::Kl, LossKind::StableDistill] {
        let plain = per_query(&config(kind));
        let mixed = per_query(&LossConfig { infonce_weight: 0.25, ..config(kind) });
        let expected: Vec<f64> = plain.iter().zip(&infonce).map(|(p, i)| p + 0.25 * i).collect();
        assert_close(&format!("{kind} + 0.25 infonce"), &mixed, &expected);
        let no_positive = LossInput { positive: None, ..batch.clone() };
        assert!(LossConfig { infonce_weight: 0.25, ..config(kind) }.loss(&no_positive).is_err());
        assert!(config(kind).loss(&no_positive).is_ok());
    }
    assert!(LossConfig { infonce_weight: -1.0, ..config(LossKind::UmInfonce) }.validate().is_err());
}
