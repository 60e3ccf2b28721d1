//! `uae mine` end to end on a tiny model and a tiny BEIR data set.

use std::path::Path;

use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};
use uae_test_support::beir::Fixture;
use uae_test_support::cli::uae;

fn write_data(dir: &Path) {
    let mut data = Fixture::new();
    for i in 0..12 {
        data.passage(&format!("d{i}"), &format!("passage {i} about python list code number {i}"));
    }
    data.passage("gold", "why is the dict slow")
        .query("q1", "why is the dict slow", &["hashing"])
        .query("q2", "passage 3 python", &["x"])
        .query("q3", "held out", &["y"])
        .judge("train", "q1", "gold", 1)
        .judge("train", "q2", "d7", 1)
        .judge("test", "q3", "d1", 1)
        .write(dir);
}

fn mine(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["mine", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--split", "train"];
    args.extend_from_slice(&["--k", "4", "--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let result = uae(&args);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn mines_train_queries_with_relevant_passages_guaranteed() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let data = work.path().join("data");
    write_data(&data);
    for extra in [&[][..], &["--bm25"][..], &["--hybrid"][..]] {
        let lines = mine(&model, &data, &work.path().join("c.jsonl"), extra);
        // Only the train split's queries: the test query never reaches training.
        assert_eq!(lines.iter().map(|l| l["query_id"].as_str().unwrap()).collect::<Vec<_>>(), vec!["q1", "q2"], "{extra:?}");
        for line in &lines {
            let docs: Vec<&str> = line["doc_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
            // BM25 returns only passages sharing a term with the query, so its pool may be short.
            if extra == ["--bm25"] {
                assert!(!docs.is_empty() && docs.len() <= 4, "{extra:?}: {line}");
            } else {
                assert_eq!(docs.len(), 4, "{extra:?}");
            }
            let want = if line["query_id"] == "q1" { "gold" } else { "d7" };
            assert!(docs.contains(&want), "{extra:?}: {line}");
            assert_eq!(line["relevant"], serde_json::json!([want]));
        }
        // "why is the dict slow" equals the gold passage: every retriever finds it unaided.
        assert_eq!(lines[0]["doc_ids"][0], "gold", "{extra:?}");
        assert_eq!(lines[0]["inserted"], serde_json::json!([]), "{extra:?}");
    }
    // Reusing an index's vectors gives the same candidates as embedding anew;
    // an index of another corpus is refused.
    let dense = mine(&model, &data, &work.path().join("c.jsonl"), &[]);
    let index = work.path().join("index");
    let built = uae(&["index", "build", "--model", model.to_str().unwrap(), "--corpus", data.join("corpus.jsonl").to_str().unwrap(), "--out", index.to_str().unwrap()]);
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    assert_eq!(mine(&model, &data, &work.path().join("c.jsonl"), &["--index", index.to_str().unwrap()]), dense);
    let other = work.path().join("other.jsonl");
    std::fs::write(&other, "{\"_id\":\"x\",\"text\":\"another corpus\"}\n").unwrap();
    let index2 = work.path().join("index2");
    assert!(uae(&["index", "build", "--model", model.to_str().unwrap(), "--corpus", other.to_str().unwrap(), "--out", index2.to_str().unwrap()]).status.success());
    let args = ["mine", "--model", model.to_str().unwrap(), "--index", index2.to_str().unwrap(), "--data", data.to_str().unwrap(), "--out", "-"];
    let refused = uae(&args);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not the data set's 13 passages"), "{}", String::from_utf8_lossy(&refused.stderr));

    // Only passage 3 has the term "3": BM25 ranks it first.
    let lines = mine(&model, &data, &work.path().join("c.jsonl"), &["--bm25"]);
    assert_eq!(lines[1]["doc_ids"][0], "d3");

    // Per-document pools need data that has them.
    let out = uae(&["mine", "--bm25", "--data", data.to_str().unwrap(), "--out", "-", "--pool", "document"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("per-document pools"));
}

const QASPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/fixtures/qasper/qasper-sample.json");

#[test]
fn mines_qasper_questions_within_their_own_papers() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let qasper = Path::new(QASPER);
    let out = work.path().join("c.jsonl");
    let relevant = |query: &str| -> Vec<&str> {
        match query {
            "a1" => vec!["1909.00694#1.0", "1909.00694#1.1"],
            "a2" => vec!["1909.00694#0.1"],
            "a4" => vec!["1909.00694#2.1"],
            _ => vec!["2003.04707#1.1"],
        }
    };
    for extra in [&["--pool", "document"][..], &["--pool", "document", "--bm25"], &["--pool", "document", "--hybrid"]] {
        let lines = mine(&model, qasper, &out, extra);
        // The sample's answerable questions with evidence paragraphs.
        let queries: Vec<&str> = lines.iter().map(|l| l["query_id"].as_str().unwrap()).collect();
        assert_eq!(queries, ["a1", "a2", "a4", "b3"], "{extra:?}");
        for line in &lines {
            let query = line["query_id"].as_str().unwrap();
            let paper = if query.starts_with('a') { "1909.00694#" } else { "2003.04707#" };
            let docs: Vec<&str> = line["doc_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
            assert!(docs.iter().all(|d| d.starts_with(paper)), "{extra:?}: {line}");
            // Paper 2003.04707 has 3 paragraphs: its pool is shorter than --k 4.
            if extra.len() == 2 || extra[2] == "--hybrid" {
                assert_eq!(docs.len(), if query == "b3" { 3 } else { 4 }, "{extra:?}: {line}");
            }
            let mut got: Vec<&str> = line["relevant"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
            got.sort();
            assert_eq!(got, relevant(query), "{extra:?}: {line}");
        }
    }
    // Over the whole corpus, b3's candidates come from both papers.
    let lines = mine(&model, qasper, &out, &[]);
    assert_eq!(lines[3]["doc_ids"].as_array().unwrap().len(), 4);

    let result = uae(&["mine", "--bm25", "--data", QASPER, "--out", "-", "--pool", "document"]);
    assert!(result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("qasper-sample.json: 2 papers, 8 questions: 4 kept"), "{stderr}");

    // `uae data qasper` writes a BEIR folder with pools that mines the same.
    let beir = work.path().join("beir");
    let split = format!("train={QASPER}");
    let converted = uae(&["data", "qasper", "--split", &split, "--out", beir.to_str().unwrap()]);
    assert!(converted.status.success(), "{}", String::from_utf8_lossy(&converted.stderr));
    assert!(beir.join("pools.jsonl").is_file() && beir.join("qrels/train.tsv").is_file());
    let from_json = mine(&model, qasper, &out, &["--pool", "document"]);
    assert_eq!(mine(&model, &beir, &out, &["--pool", "document"]), from_json);
}
