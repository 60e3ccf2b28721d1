//! HNSW recall@10 against exact search on real embeddings, through the CLI:
//! all-MiniLM-L6-v2 (fetched by `assets/fetch.sh`) embeds the documentation
//! comments of uae's own sources, an index is built with `--hnsw` at the
//! default parameters, and `uae search` runs the same queries with the graph
//! and with `--exact`.
//!
//! The texts: every block of consecutive `///` or `//!` lines in the `.rs`
//! files under `uae-*/src` (paths in sorted order), joined by spaces, blank
//! and repeated blocks dropped; every fourth block is a query, the others
//! are passages. Deterministic for a given checkout.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// The `.rs` files under `dir`, recursively, in sorted order.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The documentation-comment blocks of uae's sources.
fn doc_blocks() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut crates: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("uae-") && p.join("src").is_dir())
        .collect();
    crates.sort();
    let mut files = Vec::new();
    crates.iter().for_each(|c| rust_files(&c.join("src"), &mut files));
    let (mut blocks, mut seen, mut current) = (Vec::new(), HashSet::new(), Vec::<String>::new());
    for file in files {
        for line in std::fs::read_to_string(&file).unwrap().lines().chain([""]) {
            let line = line.trim_start();
            if let Some(text) = line.strip_prefix("///").or_else(|| line.strip_prefix("//!")) {
                current.push(text.trim().to_string());
                continue;
            }
            let block = current.join(" ").trim().to_string();
            current.clear();
            if !block.is_empty() && seen.insert(block.clone()) {
                blocks.push(block);
            }
        }
    }
    blocks
}

/// Writes `{"_id", "text"}` lines.
fn write_jsonl(path: &Path, texts: &[(String, &String)]) {
    let lines: String =
        texts.iter().map(|(id, text)| serde_json::json!({ "_id": id, "text": text }).to_string() + "\n").collect();
    std::fs::write(path, lines).unwrap();
}

fn uae(args: &[&str]) {
    let out = uae_test_support::cli::uae(args);
    assert!(out.status.success(), "uae {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Query id -> the documents of a TREC run.
fn read_run(path: &Path) -> BTreeMap<String, Vec<String>> {
    let mut run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        run.entry(fields[0].to_string()).or_default().push(fields[2].to_string());
    }
    run
}

#[test]
fn hnsw_recall_at_10_on_real_embeddings() {
    let blocks = doc_blocks();
    let (queries, passages): (Vec<_>, Vec<_>) = blocks.iter().enumerate().partition(|(i, _)| i % 4 == 0);
    assert!(passages.len() >= 500, "only {} passages", passages.len());
    let work = tempfile::tempdir().unwrap();
    let corpus = work.path().join("corpus.jsonl");
    write_jsonl(&corpus, &passages.iter().map(|(i, t)| (format!("p{i}"), *t)).collect::<Vec<_>>());
    let query_file = work.path().join("queries.jsonl");
    write_jsonl(&query_file, &queries.iter().map(|(i, t)| (format!("q{i}"), *t)).collect::<Vec<_>>());

    let Some(model) = uae_test_support::weights::minilm() else { return };
    let index = work.path().join("index");
    let p = |path: &Path| path.to_str().unwrap().to_string();
    uae(&["index", "build", "--model", &p(&model), "--corpus", &p(&corpus), "--out", &p(&index), "--hnsw"]);
    let search = |name: &str, extra: &[&str]| {
        let run = work.path().join(name);
        let mut args = vec!["search".to_string(), "--index".into(), p(&index), "--queries".into(), p(&query_file)];
        args.extend(["-k", "10", "--run-out"].map(String::from));
        args.push(p(&run));
        args.extend(extra.iter().map(|s| s.to_string()));
        uae(&args.iter().map(String::as_str).collect::<Vec<_>>());
        read_run(&run)
    };
    let exact = search("exact.trec", &["--exact"]);
    let approximate = search("hnsw.trec", &[]);
    assert_eq!(exact.len(), queries.len());
    let found: usize = exact
        .iter()
        .map(|(q, docs)| docs.iter().filter(|d| approximate[q].contains(d)).count())
        .sum();
    let recall = found as f64 / exact.values().map(Vec::len).sum::<usize>() as f64;
    println!("{} passages, {} queries: HNSW recall@10 {recall:.4}", passages.len(), queries.len());
    assert!(recall >= 0.95, "HNSW recall@10 {recall}");
}
