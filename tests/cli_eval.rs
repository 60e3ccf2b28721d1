//! `uae eval metrics` on the committed fixture (assets/fixtures/metrics, made
//! by assets/make_metric_reference.py with pytrec_eval): every mean and every
//! per-query value must match reference.json, with both qrels formats. And
//! the comparison's seeds: models under one name are one system whose
//! figures are the per-query means of the models alone.

use std::path::Path;

use serde_json::Value;
use uae_eval::metrics::{DEFAULT_KS, evaluate};
use uae_eval::report::ComparisonReport;
use uae_data::{Qrels, Run};
use uae_test_support::beir::Fixture;
use uae_test_support::cli::{stderr, uae};
use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};
use uae_test_support::tiny_llama::{TinyLlamaSpec, write_tiny_llama};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/fixtures/metrics");

fn fixture(name: &str) -> String {
    format!("{FIXTURE}/{name}")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap()
}

fn assert_close(got: f64, want: &Value, what: &str) {
    let want = want.as_f64().unwrap();
    assert!((got - want).abs() < 1e-6, "{what}: got {got}, reference {want}");
}

#[test]
fn means_match_the_reference_with_both_qrels_formats() {
    let reference = reference();
    let want = reference["mean"].as_object().unwrap();
    for qrels in ["qrels.trec", "qrels.tsv"] {
        let out = uae(&[
            "eval",
            "metrics",
            "--qrels",
            &fixture(qrels),
            "--run",
            &fixture("run.trec"),
            "--json",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got.len(), want.len(), "{qrels}: {got:?}");
        for (name, value) in want {
            assert_close(got[name].as_f64().unwrap(), value, &format!("{qrels} {name}"));
        }
    }

    // The table has a row per metric.
    let out = uae(&[
        "eval",
        "metrics",
        "--qrels",
        &fixture("qrels.trec"),
        "--run",
        &fixture("run.trec"),
    ]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let map = format!("{:.4}", want["map"].as_f64().unwrap());
    assert!(
        table.lines().any(|l| l.split_whitespace().eq(["map", map.as_str()])),
        "{table}"
    );
    assert_eq!(table.lines().count(), want.len() + 1, "{table}");
}

#[test]
fn per_query_values_and_rankings_match_the_reference() {
    let reference = reference();
    let qrels = Qrels::read(fixture("qrels.trec")).unwrap();
    let run = Run::read(fixture("run.trec")).unwrap();
    for (query, docs) in reference["ranking"].as_object().unwrap() {
        let got: Vec<&str> = run.ranking(query).into_iter().map(|(doc, _)| doc).collect();
        assert_eq!(&got, docs.as_array().unwrap(), "ranking of {query}");
    }
    let report = evaluate(&qrels, &run, &DEFAULT_KS);
    let want = reference["per_query"].as_object().unwrap();
    assert_eq!(report.per_query.len(), want.len(), "{:?}", report.per_query.keys());
    for (query, metrics) in want {
        let metrics = metrics.as_object().unwrap();
        assert_eq!(report.per_query[query].len(), metrics.len(), "{query}");
        for (name, value) in metrics {
            assert_close(report.per_query[query][name], value, &format!("{query} {name}"));
        }
    }
}

#[test]
fn malformed_files_name_the_line() {
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("bad.trec");
    std::fs::write(&run, "q01 Q0 d1 1 0.9 t\nq01 Q0 d2 2 high t\n").unwrap();
    let out = uae(&[
        "eval",
        "metrics",
        "--qrels",
        &fixture("qrels.trec"),
        "--run",
        run.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("error: {}:2: score \"high\" is not a number", run.display());
    assert!(stderr.contains(&want), "{stderr}");

    let qrels = work.path().join("bad.qrels");
    std::fs::write(&qrels, "q01 0 d1 1\nq01 0 d2\n").unwrap();
    let out = uae(&[
        "eval",
        "metrics",
        "--qrels",
        qrels.to_str().unwrap(),
        "--run",
        &fixture("run.trec"),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("error: {}:2: expected 4 columns", qrels.display())),
        "{stderr}"
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Two models under one name make one row whose per-query scores (ranking
/// metrics and token F1), means and latency pool what each model scores
/// alone, tested for significance on those means; each seed keeps its own
/// run file, answers and figures.
#[test]
fn models_under_one_name_are_seeds_of_one_system() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    let mut data = Fixture::new();
    for i in 0..12 {
        data.passage(&format!("d{i}"), &format!("passage {i}: the answer to question {i} is on line {i} of the file"))
            .passage(&format!("x{i}"), &format!("note {i}: the list is long and slow"))
            .query(&format!("q{i}"), &format!("where is the answer to question {i}?"), &[&format!("on line {i}")])
            .judge("test", &format!("q{i}"), &format!("d{i}"), 1);
    }
    data.write(&root.join("data"));
    let models: Vec<String> = (1..=3)
        .map(|seed| {
            let dir = root.join(format!("m{seed}"));
            write_tiny_bert(&dir, &TinyBertSpec { seed, ..TinyBertSpec::default() }).unwrap();
            dir.display().to_string()
        })
        .collect();
    write_tiny_llama(&root.join("lm"), &TinyLlamaSpec::default()).unwrap();
    let (data, indexes, lm) = (root.join("data"), root.join("indexes"), root.join("lm"));
    let eval = |report: &str, specs: &[String]| -> ComparisonReport {
        let report = root.join(report);
        let mut args = vec!["eval", "--data", path(&data), "--report", path(&report), "--indexes", path(&indexes)];
        args.extend(["--generator", path(&lm), "--max-new-tokens", "4", "--k", "5", "--test-resamples", "200"]);
        for spec in specs {
            args.extend(["--model", spec.as_str()]);
        }
        let out = uae(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = std::fs::read_to_string(report.join("report.json")).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {}", text.lines().skip(60).take(15).collect::<Vec<_>>().join("\n")))
    };
    let alone = eval("alone", &[format!("base={}", models[0]), format!("a={}", models[1]), format!("b={}", models[2])]);
    let pooled = eval("pooled", &[format!("base={}", models[0]), format!("s={}", models[1]), format!("s={}", models[2])]);

    let row = |r: &ComparisonReport, name: &str| r.systems.iter().find(|s| s.name == name).unwrap().clone();
    let (a, b, s) = (row(&alone, "a"), row(&alone, "b"), row(&pooled, "s"));
    assert_eq!(pooled.systems.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["BM25", "base", "s"]);
    assert_eq!(s.seeds.len(), 2);
    assert_eq!((s.seeds[0].metrics.clone(), s.seeds[1].metrics.clone()), (a.metrics.clone(), b.metrics.clone()));
    assert_eq!((s.seeds[0].token_f1, s.seeds[1].token_f1), (a.token_f1, b.token_f1));
    assert_ne!(a.per_query["map"], b.per_query["map"], "the seeds rank alike: the test would prove nothing");
    for metric in ["recall@1", "map", "ndcg@10", "token_f1"] {
        for (q, x) in &a.per_query[metric] {
            let want = (x + b.per_query[metric][q]) / 2.0;
            assert!((s.per_query[metric][q] - want).abs() < 1e-12, "{metric} {q}");
        }
    }
    assert!((s.metrics["map"] - (a.metrics["map"] + b.metrics["map"]) / 2.0).abs() < 1e-12);
    assert!((s.token_f1.unwrap() - (a.token_f1.unwrap() + b.token_f1.unwrap()) / 2.0).abs() < 1e-12);
    // The goals and tests use the pooled row.
    assert!(pooled.goals[0].name.starts_with("Recall@1: s / base"));
    assert!((pooled.goals[1].measured.unwrap() - s.metrics["map"] / row(&pooled, "base").metrics["map"]).abs() < 1e-12);
    let test = pooled.significance.iter().find(|t| t.system == "s" && t.metric == "map").unwrap();
    let mean_difference = s.metrics["map"] - row(&pooled, "base").metrics["map"];
    assert!((test.test.mean_difference - mean_difference).abs() < 1e-12);

    // Each seed alone is tested against the base as its own system was.
    let a_map = alone.significance.iter().find(|t| t.system == "a" && t.metric == "map").unwrap();
    assert_eq!(s.seeds[0].tests["map"], a_map.test);

    let dir = root.join("pooled");
    for file in ["runs/s.seed1.trec", "runs/s.seed2.trec", "runs/base.trec"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let answers = std::fs::read_to_string(dir.join("answers.jsonl")).unwrap();
    assert_eq!(answers.lines().filter(|l| l.contains(r#""system":"s","#) && l.contains(r#""seed":2"#)).count(), 12);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("| s (2 seeds) |") && md.contains("## Seeds") && md.contains(&format!("| s | 2 | {} |", models[2])), "{md}");

    let out = uae(&["eval", "--data", path(&data), "--report", path(&root.join("r")), "--model", &format!("BM25={}", models[0])]);
    assert!(!out.status.success() && stderr(&out).contains("\"BM25\" names another system"), "{}", stderr(&out));
    let twice = format!("s={}", models[1]);
    let out = uae(&["eval", "--data", path(&data), "--report", path(&root.join("r")), "--model", &twice, "--model", &twice]);
    assert!(!out.status.success() && stderr(&out).contains(&format!("--model {twice} is given twice")), "{}", stderr(&out));
}
