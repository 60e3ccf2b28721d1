//! `uae eval metrics` on the committed fixture (assets/fixtures/metrics, made
//! by assets/make_metric_reference.py with pytrec_eval): every mean and every
//! per-query value must match reference.json, with both qrels formats.


use serde_json::Value;
use uae_eval::metrics::{DEFAULT_KS, evaluate};
use uae_data::{Qrels, Run};
use uae_test_support::cli::uae;

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
