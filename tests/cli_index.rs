//! `uae index build|add` and `uae search` end to end on a tiny model.

use std::path::Path;
use std::process::{Command, Output};

use uae_model::tiny::{TinyBertSpec, write_tiny_bert};

fn uae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uae")).args(args).output().expect("uae runs")
}

fn ok(args: &[&str]) -> String {
    let out = uae(args);
    assert!(out.status.success(), "uae {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn err(args: &[&str]) -> String {
    let out = uae(args);
    assert!(!out.status.success(), "uae {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

const CORPUS: &str = r#"{"_id": "p1", "title": "", "text": "how does python code work"}
{"_id": "p2", "text": "the list of dict errors"}
{"_id": 3, "title": "", "text": "why is the model slow"}
"#;

#[test]
fn build_search_add_and_mismatch() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let corpus = work.path().join("corpus.jsonl");
    std::fs::write(&corpus, CORPUS).unwrap();
    let index = work.path().join("index");
    ok(&["index", "build", "--model", path(&model), "--corpus", path(&corpus), "--out", path(&index)]);

    // A query equal to a passage finds that passage first, with cosine 1.
    let out = ok(&["search", "--index", path(&index), "--query", "why is the model slow", "-k", "2"]);
    let first: Vec<&str> = out.lines().next().unwrap().split('\t').collect();
    assert_eq!(first[0], "1");
    assert_eq!(first[2], "3");
    assert!((first[1].parse::<f32>().unwrap() - 1.0).abs() < 1e-5, "{out}");
    assert_eq!(out.lines().count(), 2);

    // Queries from a file into a TREC run.
    let queries = work.path().join("queries.jsonl");
    std::fs::write(&queries, "{\"_id\":\"q1\",\"text\":\"how does python code work\"}\n{\"_id\":\"q2\",\"text\":\"list of dict\"}\n").unwrap();
    let run = work.path().join("run.trec");
    ok(&["search", "--index", path(&index), "--queries", path(&queries), "-k", "3", "--run-out", path(&run)]);
    let text = std::fs::read_to_string(&run).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    assert!(lines[0].starts_with("q1 Q0 p1 1 "), "{text}");

    // Adding passages; a repeated id is refused.
    let more = work.path().join("more.jsonl");
    std::fs::write(&more, "{\"_id\":\"p4\",\"text\":\"fast answer\"}\n").unwrap();
    ok(&["index", "add", "--index", path(&index), "--corpus", path(&more)]);
    let out = ok(&["search", "--index", path(&index), "--query", "fast answer", "-k", "1"]);
    assert!(out.ends_with("\tp4\n"), "{out}");
    assert!(err(&["index", "add", "--index", path(&index), "--corpus", path(&more)]).contains("\"p4\" occurs more than once"));

    // Another model cannot query this index.
    let other = work.path().join("other");
    write_tiny_bert(&other, &TinyBertSpec { seed: 8, ..Default::default() }).unwrap();
    let e = err(&["search", "--index", path(&index), "--model", path(&other), "--query", "x"]);
    assert!(e.contains("was built with model"), "{e}");
    let wide = work.path().join("wide");
    write_tiny_bert(&wide, &TinyBertSpec { hidden: 48, heads: 4, ..Default::default() }).unwrap();
    let e = err(&["search", "--index", path(&index), "--model", path(&wide), "--query", "x"]);
    assert!(e.contains("32-dimensional") && e.contains("48-dimensional"), "{e}");

    // A damaged index is named.
    let vectors = index.join("vectors.f32");
    let bytes = std::fs::read(&vectors).unwrap();
    std::fs::write(&vectors, &bytes[..bytes.len() - 4]).unwrap();
    let e = err(&["search", "--index", path(&index), "--query", "x"]);
    assert!(e.contains("vectors.f32") && e.contains("truncated"), "{e}");
}
