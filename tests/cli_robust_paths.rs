//! Nothing lost, nothing written where it does not belong: a second writer
//! of the same labels or index is refused naming the first one's process,
//! a killed writer leaves nothing locked, names given on the command line
//! cannot lead writes out of their folder, and commands do not write into
//! folders that are not theirs without --force.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use uae_data::lock::Lock;
use uae_test_support::beir::Fixture;
use uae_test_support::cli::{stderr, uae};
use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};
use uae_test_support::tiny_llama::{TinyLlamaSpec, write_tiny_llama};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "stderr:\n{}", stderr(&out));
    out
}

/// The error of a run that must fail.
fn refused(out: Output) -> String {
    assert!(!out.status.success(), "succeeded; stderr:\n{}", stderr(&out));
    stderr(&out)
}

/// A data set of `queries` answered queries, each with a gold passage in
/// `split` and a distractor.
fn write_data(dir: &Path, queries: usize, split: &str) {
    let mut data = Fixture::new();
    for i in 0..queries {
        data.passage(&format!("d{i}"), &format!("passage {i}: the answer to question {i} is on line {i} of the file"))
            .passage(&format!("x{i}"), &format!("note {i}: the list is long and slow"))
            .query(&format!("q{i}"), &format!("where is the answer to question {i}?"), &[&format!("on line {i}")])
            .judge(split, &format!("q{i}"), &format!("d{i}"), 1);
    }
    data.write(dir);
}

/// Sends `signal` (STOP, KILL) to process `pid`.
#[cfg(unix)]
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[cfg(unix)]
#[test]
fn a_second_labeller_is_refused_and_a_killed_one_leaves_nothing_locked() {
    use std::os::unix::process::ExitStatusExt;

    const QUERIES: usize = 30;
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    let teacher = root.join("teacher");
    write_tiny_llama(&teacher, &TinyLlamaSpec { hidden: 64, layers: 3, max_positions: 256, ..Default::default() }).unwrap();
    write_data(&root.join("data"), QUERIES, "train");
    let candidates = root.join("candidates.jsonl");
    let lines: String = (0..QUERIES)
        .map(|q| format!("{{\"query_id\":\"q{q}\",\"doc_ids\":[\"d{q}\",\"x{q}\",\"d{}\"]}}\n", (q + 1) % QUERIES))
        .collect();
    std::fs::write(&candidates, lines).unwrap();
    let (data, labels) = (root.join("data"), root.join("labels.jsonl"));
    let args = [
        "label", "--teacher", path(&teacher), "--data", path(&data), "--candidates", path(&candidates),
        "--out", path(&labels), "--queries-per-step", "1",
    ];

    // Held by this process (the same lock the commands take): refused, and
    // nothing is written.
    let held = Lock::acquire(&labels).unwrap();
    let err = refused(uae(&args));
    let want = format!("{} is in use by process {}", labels.display(), std::process::id());
    assert!(err.contains(&want), "{err}");
    assert!(!labels.exists());
    drop(held);

    // Held by a running `uae label`, frozen so that it cannot finish first.
    let mut child = uae_test_support::cli::command().args(args).stderr(Stdio::null()).spawn().unwrap();
    let lock_file = root.join(".labels.jsonl.lock");
    let start = Instant::now();
    while std::fs::read_to_string(&lock_file).map(|t| t.trim() != child.id().to_string()).unwrap_or(true) {
        assert!(start.elapsed() < Duration::from_secs(120), "the labeller never took its lock");
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(child.id(), "STOP");
    let err = refused(uae(&args));
    assert!(err.contains(&format!("{} is in use by process {}", labels.display(), child.id())), "{err}");

    // Killed while holding the lock: the next run is not blocked and
    // finishes the labels, every query once.
    signal(child.id(), "KILL");
    assert_eq!(child.wait().unwrap().signal(), Some(9), "the labeller was killed, not finished");
    ok(uae(&args));
    let ids: Vec<String> = std::fs::read_to_string(&labels)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["query_id"].as_str().unwrap().to_string())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((ids.len(), unique.len()), (QUERIES, QUERIES), "{ids:?}");
}

/// A tiny model and a corpus of two passages in `dir`.
fn model_and_corpus(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let corpus = dir.join("corpus.jsonl");
    std::fs::write(&corpus, "{\"_id\":\"p1\",\"text\":\"how does python code work\"}\n{\"_id\":\"p2\",\"text\":\"the list of dict errors\"}\n")
        .unwrap();
    (model, corpus)
}

#[test]
fn index_writers_are_refused_while_another_process_writes_the_index() {
    let work = tempfile::tempdir().unwrap();
    let (model, corpus) = model_and_corpus(work.path());
    let more = work.path().join("more.jsonl");
    std::fs::write(&more, "{\"_id\":\"p3\",\"text\":\"fast answer\"}\n").unwrap();
    let index = work.path().join("index");
    let (m, c, i) = (path(&model), path(&corpus), path(&index));
    ok(uae(&["index", "build", "--model", m, "--corpus", c, "--out", i]));
    let header = std::fs::read(index.join("header.json")).unwrap();

    let held = Lock::acquire(&index).unwrap();
    let want = format!("{} is in use by process {}", index.display(), std::process::id());
    for args in [
        vec!["index", "add", "--index", i, "--corpus", path(&more)],
        vec!["index", "build", "--model", m, "--corpus", c, "--out", i, "--hnsw"],
        vec!["index", "hnsw", "--index", i],
    ] {
        let err = refused(uae(&args));
        assert!(err.contains(&want), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(index.join("header.json")).unwrap(), header, "the index is unchanged");
    // Another spelling of the same folder is the same index.
    let other = work.path().join("index/../index");
    let err = refused(uae(&["index", "add", "--index", path(&other), "--corpus", path(&more)]));
    assert!(err.contains("is in use by process"), "{err}");
    drop(held);

    ok(uae(&["index", "add", "--index", i, "--corpus", path(&more)]));
    let out = ok(uae(&["search", "--index", i, "--query", "fast answer", "-k", "1"]));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("\tp3\n"));
}

#[test]
fn eval_system_names_cannot_write_outside_the_indexes_folder() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    write_data(&root.join("data"), 6, "test");
    // The model sits in m/, with a subfolder to name it through `..`.
    let model = root.join("m");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    std::fs::create_dir(model.join("sub")).unwrap();
    std::fs::write(root.join("header.json"), "not an index").unwrap();
    let (data, report, indexes) = (root.join("data"), root.join("report"), root.join("indexes"));
    let eval = |model: &str, extra: &[&str]| {
        let mut args = vec![
            "eval", "--data", path(&data), "--report", path(&report), "--indexes", path(&indexes),
            "--model", model, "--k", "5", "--test-resamples", "10",
        ];
        args.extend(extra);
        uae(&args)
    };

    for (spec, name) in [(format!("..={}", model.display()), ".."), (format!(".={}", model.display()), "."), ("/".into(), "")] {
        let err = refused(eval(&spec, &[]));
        assert!(err.contains(&format!("--model {spec}: the name {name:?}")), "{err}");
    }
    let err = refused(eval(path(&model), &["--run", &format!("..={}", root.display())]));
    assert!(err.contains("--run ..="), "{err}");
    assert_eq!(std::fs::read_to_string(root.join("header.json")).unwrap(), "not an index");

    // `m/sub/..` is m: named after it, its index goes into indexes/m, not m/.
    let through = model.join("sub/..");
    let out = ok(eval(path(&through), &[]));
    assert!(indexes.join("m/header.json").is_file(), "{}", stderr(&out));
    assert!(!model.join("header.json").exists() && !root.join("vectors.f32").exists());
    assert_eq!(std::fs::read_to_string(root.join("header.json")).unwrap(), "not an index");
}

/// A folder of someone else's: one file, `notes.txt`.
fn foreign(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "mine").unwrap();
    notes
}

#[test]
fn index_build_refuses_a_foreign_folder_without_force() {
    let work = tempfile::tempdir().unwrap();
    let (model, corpus) = model_and_corpus(work.path());
    let (m, c) = (path(&model), path(&corpus));

    // Into the model's own folder, or any folder of other files: refused.
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    let err = refused(uae(&["index", "build", "--model", m, "--corpus", c, "--out", m]));
    assert!(err.contains("is not an index written by uae") && err.contains("--force"), "{err}");
    assert!(!model.join("header.json").exists());
    assert_eq!(std::fs::read(model.join("model.safetensors")).unwrap(), weights);
    let out = work.path().join("mine");
    let notes = foreign(&out);
    let err = refused(uae(&["index", "build", "--model", m, "--corpus", c, "--out", path(&out)]));
    assert!(err.contains("notes.txt") && err.contains("--force"), "{err}");
    assert!(!out.join("header.json").exists());

    // With --force it is written, and the other files are kept; an index
    // (or an empty folder) is rebuilt without it.
    ok(uae(&["index", "build", "--model", m, "--corpus", c, "--out", path(&out), "--force"]));
    assert!(out.join("header.json").is_file());
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
    ok(uae(&["index", "build", "--model", m, "--corpus", c, "--out", path(&out)]));
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ok(uae(&["index", "build", "--model", m, "--corpus", c, "--out", path(&empty)]));
}

#[test]
fn export_refuses_a_foreign_folder_without_force() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    // A finished run as `uae export` reads it: the base's files in base/,
    // the trained weights beside.
    let run = work.path().join("run");
    write_tiny_bert(&run.join("base"), &TinyBertSpec { seed: 9, ..Default::default() }).unwrap();
    std::fs::rename(run.join("base/model.safetensors"), run.join("model.safetensors")).unwrap();
    let r = path(&run);

    // Over the base model, a folder of other files, or the run itself: refused.
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    let err = refused(uae(&["export", "--run", r, "--out", path(&model)]));
    assert!(err.contains("is not a model export written by uae") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(model.join("model.safetensors")).unwrap(), weights);
    let out = work.path().join("mine");
    let notes = foreign(&out);
    let err = refused(uae(&["export", "--run", r, "--out", path(&out)]));
    assert!(err.contains("notes.txt") && err.contains("--force"), "{err}");
    assert!(!out.join("model.safetensors").exists());
    let err = refused(uae(&["export", "--run", r, "--out", r, "--force"]));
    assert!(err.contains("is inside the run"), "{err}");

    // With --force it is written and the other files kept; a new folder, and
    // an earlier export (it has the marker), need no --force.
    ok(uae(&["export", "--run", r, "--out", path(&out), "--force"]));
    assert!(out.join("model.safetensors").is_file() && out.join("uae_export.json").is_file());
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
    let fresh = work.path().join("exported");
    ok(uae(&["export", "--run", r, "--out", path(&fresh)]));
    ok(uae(&["export", "--run", r, "--out", path(&fresh)]));
    let texts = work.path().join("texts.jsonl");
    std::fs::write(&texts, "{\"id\":1,\"text\":\"python code\"}\n").unwrap();
    ok(uae(&["embed", "--model", path(&fresh), "--input", path(&texts), "--output", "-"]));
}

/// Train, synth, data conversion and the quickstart check their output
/// folder before reading any input, so these runs need no real inputs.
#[test]
fn other_whole_folder_writers_refuse_a_foreign_folder_and_bad_split_names() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("mine");
    let notes = foreign(&out);
    let missing = work.path().join("missing");
    let (o, missing) = (path(&out), path(&missing));
    for args in [
        vec!["train", "--model", missing, "--data", missing, "--labels", missing, "--out", o],
        vec!["synth", "--teacher", missing, "--data", missing, "--student", missing, "--out", o],
        vec!["data", "qasper", "--split", &format!("train={missing}"), "--out", o],
        vec!["quickstart", "--data", missing, "--student", missing, "--teacher", missing, "--out", o],
    ] {
        let err = refused(uae(&args));
        assert!(err.contains("notes.txt") && err.contains("--force"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1, "nothing was written into {o}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");

    let fresh = work.path().join("converted");
    for split in ["..", "../x", "a/b", ""] {
        let spec = format!("{split}={missing}");
        let err = refused(uae(&["data", "qasper", "--split", &spec, "--out", path(&fresh)]));
        assert!(err.contains(&format!("--split {spec}: the name")), "{err}");
    }
}
