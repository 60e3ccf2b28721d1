//! `uae quickstart` end to end on a tiny random BERT, a tiny random decoder
//! and a tiny data set: every stage's files exist, the report parses with a
//! row per system, the training split never sees a held-out query, a rerun
//! reuses every stage, and a changed option reruns only what depends on it.

use std::path::Path;
use std::process::Output;

use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};
use uae_test_support::tiny_llama::{TinyLlamaSpec, write_tiny_llama};
use uae_test_support::beir::Fixture;
use uae_test_support::cli::{stderr, uae};

/// 30 questions about 30 facts (one gold passage each, plus 30 distractor
/// passages), split 18 / 6 / 6 into train, dev and test.
fn write_data(dir: &Path) {
    let mut data = Fixture::new();
    for i in 0..30 {
        data.passage(&format!("gold{i}"), &format!("fact {i}: the value of item {i} is {}", i * 7))
            .passage(&format!("other{i}"), &format!("note {i}: nothing about item {} here", i + 40));
    }
    for q in 0..30 {
        let split = if q < 18 { "train" } else if q < 24 { "dev" } else { "test" };
        data.query(&format!("q{q}"), &format!("what is the value of item {q}?"), &[&(q * 7).to_string()])
            .judge(split, &format!("q{q}"), &format!("gold{q}"), 1);
    }
    data.write(dir);
}

fn quickstart(root: &Path, extra: &[&str]) -> Output {
    let s = |p: &str| root.join(p).to_str().unwrap().to_string();
    let (data, student, teacher, out) = (s("data"), s("student"), s("teacher"), s("work"));
    let mut args = vec![
        "quickstart", "--data", &data, "--student", &student, "--teacher", &teacher, "--out", &out,
        "--candidates", "4", "--train-candidates", "3", "--epochs", "1", "--batch-size", "6", "--max-length", "32", "--rerank-k", "3",
    ];
    // One seed unless the test asks for more: the stages are the subject.
    if !extra.contains(&"--seeds") {
        args.extend(["--seeds", "1"]);
    }
    args.extend(extra);
    uae(&args)
}

fn stage_line<'a>(log: &'a str, stage: &str) -> &'a str {
    log.lines().find(|l| l.starts_with(&format!("== {stage}"))).unwrap_or_else(|| panic!("no line for {stage} in\n{log}"))
}

#[test]
fn quickstart_runs_every_stage_reuses_them_and_keeps_the_test_split_out() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    write_data(&root.join("data"));
    write_tiny_bert(&root.join("student"), &TinyBertSpec::default()).unwrap();
    write_tiny_llama(&root.join("teacher"), &TinyLlamaSpec { hidden: 64, layers: 2, max_positions: 1024, ..Default::default() })
        .unwrap();

    let first = quickstart(root, &["--max-new-tokens", "4", "--synth-passages", "5"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let w = root.join("work");
    for file in [
        "indexes/base/header.json", "data/synth.jsonl", "data/verdicts.jsonl", "data/corpus.jsonl", "candidates.jsonl", "labels.jsonl", "runs/infonce/model.safetensors",
        "runs/uae/model.safetensors", "runs/uae/train/epoch-1/Loss.log", "models/infonce/config.json",
        "models/uae/model.safetensors", "models/uae/passage/model.safetensors", "report/report.md",
        "report/metrics.png", "report/training.png", "report/answers.jsonl", "report/runs/BM25.trec",
        "report/runs/LLM-re-rank.trec", "pipeline.json", "stages/eval.json",
    ] {
        assert!(w.join(file).is_file(), "{file} is missing");
    }
    // The query-side students search the base's index: no corpus is embedded again.
    let log = stderr(&first);
    for name in ["infonce", "uae"] {
        assert!(!w.join("indexes").join(name).exists(), "{name} got its own index:\n{log}");
        assert!(log.contains(&format!("{name}: reusing the index in {}", w.join("indexes/base").display())), "{log}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(w.join("report/report.json")).unwrap()).unwrap();
    let names: Vec<&str> = report["systems"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["BM25", "base", "infonce", "uae", "LLM re-rank"]);
    assert_eq!(report["queries"], 6);
    for system in report["systems"].as_array().unwrap() {
        for key in ["recall@1", "recall@5", "map", "mrr@10", "ndcg@10"] {
            let v = system["metrics"][key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{key} = {v}");
        }
        assert!(system["token_f1"].as_f64().is_some() && system["latency"]["p50_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(report["goals"].as_array().unwrap().len(), 5);
    // The teacher wrote for 5 passages; later stages read the synthetic data
    // set, whose held-out splits are the input's.
    assert_eq!(std::fs::read_to_string(w.join("data/synth.jsonl")).unwrap().lines().count(), 5);
    assert_eq!(std::fs::read(w.join("data/qrels/test.tsv")).unwrap(), std::fs::read(root.join("data/qrels/test.tsv")).unwrap());
    let kept = std::fs::read_to_string(w.join("data/verdicts.jsonl")).unwrap().matches("\"kept\"").count();
    assert_eq!(report["teacher"]["queries"], 18 + kept);
    assert_eq!(report["curves"].as_array().unwrap().len(), 2);
    assert_eq!(std::fs::read_to_string(w.join("report/answers.jsonl")).unwrap().lines().count(), 5 * 6);
    assert!(std::fs::read(w.join("report/metrics.png")).unwrap().starts_with(b"\x89PNG"));

    // Split hygiene: only training queries (real or synthetic) were mined and labelled.
    let train: Vec<String> = (0..18).map(|q| format!("q{q}")).collect();
    for file in ["candidates.jsonl", "labels.jsonl"] {
        let text = std::fs::read_to_string(w.join(file)).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["query_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 18 + kept, "{file}");
        assert!(ids.iter().all(|id| train.contains(id) || id.starts_with("synth:")), "{file} holds a held-out query: {ids:?}");
    }

    // A rerun reuses every stage.
    let second = quickstart(root, &["--max-new-tokens", "4", "--synth-passages", "5"]);
    let log = stderr(&second);
    assert!(second.status.success(), "{log}");
    for stage in ["index-base", "synth", "mine", "label", "train-infonce", "export-infonce", "train-uae", "export-uae", "eval"] {
        assert!(stage_line(&log, stage).contains("reused"), "{stage} was not reused:\n{log}");
    }
    assert!(String::from_utf8_lossy(&second.stdout).contains("| uae |"));
    // Standard output is the report alone; training's metric lines (stdout
    // is not a terminal here) went to the log.
    let report_md = String::from_utf8_lossy(&first.stdout);
    assert!(report_md.starts_with("# uae comparison") && !report_md.contains("epoch 1/1"), "{report_md}");
    assert!(stderr(&first).contains("epoch 1/1 train"), "{}", stderr(&first));

    // A changed evaluation option reruns the evaluation only.
    let third = quickstart(root, &["--max-new-tokens", "3", "--synth-passages", "5"]);
    let log = stderr(&third);
    assert!(third.status.success(), "{log}");
    assert!(stage_line(&log, "label").contains("reused") && stage_line(&log, "train-uae").contains("reused"), "{log}");
    assert!(!stage_line(&log, "eval").contains("reused"), "{log}");

    // The question writer is its own option: the teacher itself changes
    // nothing, another model reaches the synth stage (here one that is not
    // a model, so it stops there, naming it).
    let teacher = root.join("teacher").display().to_string();
    let same = quickstart(root, &["--max-new-tokens", "3", "--synth-passages", "5", "--synth-teacher", &teacher]);
    let log = stderr(&same);
    assert!(same.status.success() && stage_line(&log, "synth").contains("reused") && stage_line(&log, "eval").contains("reused"), "{log}");
    let writer = root.join("data").display().to_string();
    let other = quickstart(root, &["--max-new-tokens", "3", "--synth-passages", "5", "--synth-teacher", &writer]);
    let log = stderr(&other);
    assert!(!other.status.success() && !stage_line(&log, "synth").contains("reused"), "{log}");
    assert!(log.contains(&writer), "{log}");
    let pipeline: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(w.join("pipeline.json")).unwrap()).unwrap();
    assert_eq!(pipeline["synth_teacher"], teacher);

    // A second seed trains each recipe once more (the first seed's runs are
    // reused) and the report pools each recipe's two models per query.
    let seeds = quickstart(root, &["--max-new-tokens", "3", "--synth-passages", "5", "--seeds", "2"]);
    let log = stderr(&seeds);
    assert!(seeds.status.success(), "{log}");
    assert!(stage_line(&log, "label").contains("reused") && stage_line(&log, "train-uae:").contains("reused"), "{log}");
    for stage in ["train-infonce-s1", "export-infonce-s1", "train-uae-s1", "export-uae-s1", "eval"] {
        assert!(!stage_line(&log, stage).contains("reused"), "{stage} was reused:\n{log}");
    }
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(w.join("stages/train-uae-s1.json")).unwrap()).unwrap();
    assert!(record["command"].as_array().unwrap().windows(2).any(|a| a[0] == "--seed" && a[1] == "1"), "{record}");
    // Another seed draws other batches (dev selection may still export the
    // base's weights for both on this tiny model).
    let losses = |run: &str| std::fs::read_to_string(w.join(run).join("train/epoch-1/Loss.log")).unwrap();
    assert!(losses("runs/uae") != losses("runs/uae-s1"), "both seeds logged the same losses");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(w.join("report/report.json")).unwrap()).unwrap();
    let systems = report["systems"].as_array().unwrap();
    let names: Vec<&str> = systems.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["BM25", "base", "infonce", "uae", "LLM re-rank"]);
    let models: Vec<&str> = systems[3]["seeds"].as_array().unwrap().iter().map(|s| s["model"].as_str().unwrap()).collect();
    assert_eq!(models, [w.join("models/uae").to_str().unwrap(), w.join("models/uae-s1").to_str().unwrap()]);
    assert!(w.join("report/runs/infonce.seed2.trec").is_file());
}

/// A candidates file that names a test query stops the pipeline before
/// labelling, naming the file and line.
#[test]
fn held_out_queries_in_the_training_candidates_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    write_data(&root.join("data"));
    // Judging a test query in train too puts it into the mined candidates.
    let train = root.join("data/qrels/train.tsv");
    let text = std::fs::read_to_string(&train).unwrap() + "q29\tgold29\t1\n";
    std::fs::write(&train, text).unwrap();
    write_tiny_bert(&root.join("student"), &TinyBertSpec::default()).unwrap();
    // No teacher is written: the check must stop the run before it is needed.
    let out = quickstart(root, &["--synth-passages", "0"]);
    let log = stderr(&out);
    assert!(!out.status.success());
    assert!(log.contains("candidates.jsonl:19: query \"q29\" is also judged in the held-out test split"), "{log}");
    assert!(!root.join("work/labels.jsonl").exists());
}
