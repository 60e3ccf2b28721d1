//! What a hostile user can do to the `uae` binary's input and output: close
//! its standard output, put a byte-order mark before a file, give ids a
//! qrels file cannot hold, name a training run that is not there, export
//! truncated weights, and read mine's summary against what it wrote.

use std::path::Path;
use std::process::{Output, Stdio};

use uae_test_support::beir::Fixture;
use uae_test_support::cli::{command, stderr, uae};
use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};
use uae_test_support::tiny_llama::{TinyLlamaSpec, write_tiny_llama};

const METRICS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/fixtures/metrics");
const QASPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/fixtures/qasper/qasper-sample.json");

fn metrics_file(name: &str) -> String {
    format!("{METRICS}/{name}")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `uae` with a standard output whose reader has gone before it starts.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command().args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap()
}

/// A closed standard output ends the command quietly, with the status of a
/// process killed by SIGPIPE: no panic, no error message.
fn assert_quiet_end(out: &Output, what: &str) {
    let err = stderr(out);
    assert!(!err.contains("panicked") && !err.contains("error:"), "{what}: {err}");
    assert_eq!(out.status.code(), Some(141), "{what}: {err}");
}

/// A small BEIR data set with a train and a test split.
fn write_data(dir: &Path) {
    let mut data = Fixture::new();
    for i in 0..8 {
        data.passage(&format!("d{i}"), &format!("passage {i} about python list code number {i}"));
    }
    data.query("q1", "why is the python list slow", &["it copies"])
        .query("q2", "passage 3 code", &["x"])
        .query("q3", "what is a dict", &["y"])
        .judge("train", "q1", "d1", 1)
        .judge("train", "q2", "d3", 1)
        .judge("test", "q3", "d5", 1)
        .write(dir);
}

#[test]
fn every_printing_command_ends_quietly_on_a_closed_stdout() {
    let work = tempfile::tempdir().unwrap();
    let (qrels, run) = (metrics_file("qrels.trec"), metrics_file("run.trec"));
    for extra in [&[][..], &["--json"]] {
        let args = [&["eval", "metrics", "--qrels", &qrels, "--run", &run][..], extra].concat();
        assert_quiet_end(&with_closed_stdout(&args), &format!("eval metrics {extra:?}"));
    }

    let teacher = work.path().join("teacher");
    write_tiny_llama(&teacher, &TinyLlamaSpec::default()).unwrap();
    let generate = ["generate", "--teacher", path(&teacher), "--prompt", "hi", "--max-new-tokens", "3"];
    for extra in [&[][..], &["--json"]] {
        assert_quiet_end(&with_closed_stdout(&[&generate[..], extra].concat()), &format!("generate {extra:?}"));
    }
    // A prompts file with a byte-order mark, its results to the closed stdout.
    let prompts = work.path().join("prompts.jsonl");
    std::fs::write(&prompts, "\u{feff}{\"prompt\":\"hi\"}\n").unwrap();
    let batched = ["generate", "--teacher", path(&teacher), "--input", path(&prompts), "--max-new-tokens", "3"];
    assert_quiet_end(&with_closed_stdout(&[&batched[..], &["--output", "-"]].concat()), "generate --input");
    let generated = work.path().join("generated.jsonl");
    let out = uae(&[&batched[..], &["--output", path(&generated)]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&generated).unwrap().lines().count(), 1);

    let model = work.path().join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let data = work.path().join("data");
    write_data(&data);
    let index = work.path().join("index");
    let corpus = data.join("corpus.jsonl");
    let out = uae(&["index", "build", "--model", path(&model), "--corpus", path(&corpus), "--out", path(&index)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let search = with_closed_stdout(&["search", "--index", path(&index), "--query", "python list", "-k", "3"]);
    assert_quiet_end(&search, "search");
    let texts = work.path().join("texts.jsonl");
    std::fs::write(&texts, "{\"id\":1,\"text\":\"python list\"}\n").unwrap();
    let embed = ["embed", "--model", path(&model), "--input", path(&texts), "--output", "-"];
    assert_quiet_end(&with_closed_stdout(&embed), "embed");
}

/// `uae eval metrics --json` on `qrels` and `run`.
fn metrics_json(qrels: &str, run: &str) -> Output {
    uae(&["eval", "metrics", "--qrels", qrels, "--run", run, "--json"])
}

#[test]
fn a_byte_order_mark_keeps_the_first_line_of_runs_and_qrels() {
    let work = tempfile::tempdir().unwrap();
    let with_bom = |name: &str| {
        let copy = work.path().join(name);
        std::fs::write(&copy, format!("\u{feff}{}", std::fs::read_to_string(metrics_file(name)).unwrap())).unwrap();
        copy.to_str().unwrap().to_string()
    };
    let plain = metrics_json(&metrics_file("qrels.trec"), &metrics_file("run.trec"));
    assert!(plain.status.success(), "{}", stderr(&plain));
    for (qrels, run) in [
        (metrics_file("qrels.trec"), with_bom("run.trec")),
        (with_bom("qrels.trec"), metrics_file("run.trec")),
        (with_bom("qrels.tsv"), with_bom("run.trec")),
    ] {
        let out = metrics_json(&qrels, &run);
        assert!(out.status.success(), "{qrels} {run}: {}", stderr(&out));
        assert_eq!(out.stdout, plain.stdout, "{qrels} {run}");
    }

    // The fixture's run lacks judged q05 and holds q04 and q06, which have no
    // relevant judgement: both are said.
    let err = stderr(&plain);
    let run = metrics_file("run.trec");
    assert!(err.contains(&format!("note: judged queries missing from {run} (they score 0): 1")), "{err}");
    assert!(err.contains(&format!("note: queries of {run} without a relevant judgement (not scored): 2")), "{err}");
}

/// `uae mine --bm25` of `data` (no model needed) into `out`; its output.
fn mine_bm25(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let args = ["mine", "--bm25", "--data", path(data), "--split", "train", "--k", "4", "--out", path(out)];
    uae(&[&args[..], extra].concat())
}

#[test]
fn a_byte_order_mark_on_beir_files_changes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    write_data(&data);
    let (plain, marked) = (work.path().join("plain.jsonl"), work.path().join("marked.jsonl"));
    let out = mine_bm25(&data, &plain, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["corpus.jsonl", "queries.jsonl", "qrels/train.tsv"] {
        let file = data.join(name);
        std::fs::write(&file, format!("\u{feff}{}", std::fs::read_to_string(&file).unwrap())).unwrap();
    }
    let out = mine_bm25(&data, &marked, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&marked).unwrap(), std::fs::read_to_string(&plain).unwrap());
}

#[test]
fn ids_a_qrels_file_cannot_hold_are_refused_where_they_enter() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    write_data(&data);
    let corpus = data.join("corpus.jsonl");
    let text = std::fs::read_to_string(&corpus).unwrap();
    std::fs::write(&corpus, format!("{text}{{\"_id\":\"d\\t9\",\"text\":\"a tab\"}}\n")).unwrap();
    let out = mine_bm25(&data, &work.path().join("c.jsonl"), &[]);
    assert!(!out.status.success());
    let want = format!("{}:9: _id: \"d\\t9\" holds a tab or a line break", corpus.display());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));

    let mut qasper: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(QASPER).unwrap()).unwrap();
    qasper["1909.00694"]["qas"][0]["question_id"] = "a\t1".into();
    let file = work.path().join("qasper.json");
    std::fs::write(&file, qasper.to_string()).unwrap();
    let beir = work.path().join("beir");
    let out = uae(&["data", "qasper", "--split", &format!("dev={}", file.display()), "--out", path(&beir)]);
    assert!(!out.status.success());
    let want = format!("{}: paper 1909.00694: qas[0]: question_id: \"a\\t1\" holds a tab", file.display());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    assert!(!beir.join("qrels").exists());
}

#[test]
fn mine_says_how_many_candidates_each_query_got() {
    let work = tempfile::tempdir().unwrap();
    let out_file = work.path().join("c.jsonl");
    // Paper 2003.04707 has 3 paragraphs: its questions' pools are below --k 4.
    let out = mine_bm25(Path::new(QASPER), &out_file, &["--pool", "document"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let counts: Vec<usize> = std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["doc_ids"].as_array().unwrap().len())
        .collect();
    let short: Vec<usize> = counts.iter().copied().filter(|&n| n < 4).collect();
    assert!(!short.is_empty(), "{counts:?}");
    let want = format!(
        "mined {} candidates for {} train queries into {}, 4 for {} of them, fewer for {} (as few as {}",
        counts.iter().sum::<usize>(),
        counts.len(),
        out_file.display(),
        counts.len() - short.len(),
        short.len(),
        short.iter().min().unwrap()
    );
    assert!(stderr(&out).contains(&want), "{}\nwant: {want}", stderr(&out));
}

#[test]
fn eval_refuses_a_training_run_that_is_not_there() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let data = work.path().join("data");
    write_data(&data);
    let report = work.path().join("report");
    let missing = work.path().join("missing");
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for (run, want) in [(&missing, "is not a folder"), (&empty, "holds no training curve")] {
        let spec = format!("x={}", run.display());
        let args = ["eval", "--data", path(&data), "--model", path(&model), "--report", path(&report), "--run", &spec];
        let out = uae(&[&args[..], &["--test-resamples", "10"]].concat());
        assert!(!out.status.success(), "{want}");
        assert!(stderr(&out).contains(&format!("run x: {} {want}", run.display())), "{}", stderr(&out));
        assert!(!report.join("report.md").exists());
    }
}

#[test]
fn export_refuses_truncated_weights() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let run = work.path().join("run");
    std::fs::create_dir_all(run.join("base/1_Pooling")).unwrap();
    for name in ["config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json"] {
        std::fs::copy(model.join(name), run.join("base").join(name)).unwrap();
    }
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    let out_dir = work.path().join("exported");
    std::fs::write(run.join("model.safetensors"), &weights[..weights.len() - 100]).unwrap();
    let out = uae(&["export", "--run", path(&run), "--out", path(&out_dir)]);
    assert!(!out.status.success());
    let want = format!("{}: not a valid safetensors file", run.join("model.safetensors").display());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    assert!(!out_dir.join("model.safetensors").exists());

    std::fs::write(run.join("model.safetensors"), &weights).unwrap();
    let out = uae(&["export", "--run", path(&run), "--out", path(&out_dir)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(out_dir.join("model.safetensors")).unwrap(), weights);
}
