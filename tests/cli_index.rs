//! `uae index build|add` and `uae search` end to end on a tiny model.

use std::path::Path;

use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};
use uae_test_support::cli::uae;

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

/// `n` passages of words the tiny model knows, distinct ids and texts.
fn word_corpus(n: usize) -> String {
    const WORDS: [&str; 12] = ["python", "list", "dict", "code", "answer", "question", "model", "file", "error", "line", "fast", "slow"];
    (0..n)
        .map(|i| {
            let text: Vec<&str> = (0..4).map(|j| WORDS[(i * (j + 3) + j * j + i / 12) % WORDS.len()]).collect();
            format!("{{\"_id\":\"w{i}\",\"text\":\"{} {i}\"}}\n", text.join(" "))
        })
        .collect()
}

/// A work folder with the tiny model in `model/` and `word_corpus(n)` in
/// `corpus.jsonl`.
fn word_fixture(n: usize) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let corpus = work.path().join("corpus.jsonl");
    std::fs::write(&corpus, word_corpus(n)).unwrap();
    (work, model, corpus)
}

/// The lines of a TREC run: (query, document, rank) and score.
fn run_lines(run: &str) -> Vec<((String, String, String), f32)> {
    run.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            ((f[0].into(), f[2].into(), f[3].into()), f[4].parse().unwrap())
        })
        .collect()
}

#[test]
fn hnsw_graph_is_built_searched_and_kept_consistent() {
    let (work, model, corpus) = word_fixture(60);
    let index = work.path().join("index");
    let (index_s, model_s) = (path(&index), path(&model));
    let out = uae(&["index", "build", "--model", model_s, "--corpus", path(&corpus), "--out", index_s, "--hnsw"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("HNSW graph: efSearch"), "{stderr}");
    assert!(stderr.contains("calibrated on 15 held-out vectors"), "{stderr}");
    assert!(index.join("hnsw.graph").is_file() && index.join("hnsw.json").is_file());

    // With a candidate list as long as the index, graph search equals exact search.
    let queries = work.path().join("queries.jsonl");
    std::fs::write(&queries, "{\"_id\":\"q1\",\"text\":\"python list 7\"}\n{\"_id\":\"q2\",\"text\":\"slow error\"}\n").unwrap();
    let search = |extra: &[&str]| {
        let mut args = vec!["search", "--index", index_s, "--queries", path(&queries), "-k", "5", "--run-out", "-"];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let exact = run_lines(&search(&["--exact"]));
    let approximate = run_lines(&search(&["--ef-search", "64"]));
    assert_eq!(exact.len(), 10);
    for (a, e) in approximate.iter().zip(&exact) {
        // The two paths sum the dot products in different orders.
        assert_eq!(a.0, e.0);
        assert!((a.1 - e.1).abs() < 1e-5, "{a:?} {e:?}");
    }
    // The calibrated default, and a tiny candidate list, still return k hits.
    assert_eq!(run_lines(&search(&[])).len(), 10);
    assert_eq!(run_lines(&search(&["--ef-search", "1"])).len(), 10);

    // Adding passages inserts them into the graph.
    let stale: Vec<Vec<u8>> = ["hnsw.json", "hnsw.graph"].iter().map(|f| std::fs::read(index.join(f)).unwrap()).collect();
    let more = work.path().join("more.jsonl");
    std::fs::write(&more, "{\"_id\":\"new\",\"text\":\"why does the question help\"}\n").unwrap();
    let out = uae(&["index", "add", "--index", index_s, "--corpus", path(&more)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("inserted them into its HNSW graph"));
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(index.join("hnsw.json")).unwrap()).unwrap();
    assert_eq!(meta["count"], 61);
    let out = ok(&["search", "--index", index_s, "--query", "why does the question help", "-k", "1"]);
    assert!(out.ends_with("\tnew\n"), "{out}");

    // A graph an interrupted add left behind (older than the vectors) is
    // rebuilt over all of them by the next add.
    for (f, bytes) in ["hnsw.json", "hnsw.graph"].iter().zip(&stale) {
        std::fs::write(index.join(f), bytes).unwrap();
    }
    std::fs::write(&more, "{\"_id\":\"newer\",\"text\":\"where is the newest passage\"}\n").unwrap();
    let out = uae(&["index", "add", "--index", index_s, "--corpus", path(&more)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("rebuilt its stale HNSW graph"), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(index.join("hnsw.json")).unwrap()).unwrap();
    assert_eq!(meta["count"], 62);
    let out = ok(&["search", "--index", index_s, "--query", "where is the newest passage", "-k", "1"]);
    assert!(out.ends_with("\tnewer\n"), "{out}");

    // A damaged graph is named; exact search still works; `uae index hnsw` repairs it.
    let graph = index.join("hnsw.graph");
    let mut bytes = std::fs::read(&graph).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&graph, &bytes).unwrap();
    let e = err(&["search", "--index", index_s, "--query", "x"]);
    assert!(e.contains("hnsw.graph: checksum mismatch") && e.contains("uae index hnsw") && e.contains("--exact"), "{e}");
    ok(&["search", "--index", index_s, "--query", "x", "--exact"]);
    ok(&["index", "hnsw", "--index", index_s, "--hnsw-m", "8"]);
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(index.join("hnsw.json")).unwrap()).unwrap();
    assert_eq!(meta["params"]["m"], 8);
    ok(&["search", "--index", index_s, "--query", "x"]);

    // Rebuilding without --hnsw drops the graph; --ef-search then has nothing to tune.
    ok(&["index", "build", "--model", model_s, "--corpus", path(&corpus), "--out", index_s]);
    assert!(!graph.exists() && !index.join("hnsw.json").exists());
    let e = err(&["search", "--index", index_s, "--query", "x", "--ef-search", "10"]);
    assert!(e.contains("--ef-search needs an HNSW graph"), "{e}");
}

/// The rows of an index: its ids and unit vectors.
fn index_rows(dir: &Path) -> (Vec<String>, Vec<f32>) {
    let ids = std::fs::read_to_string(dir.join("ids.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let bytes = std::fs::read(dir.join("vectors.f32")).unwrap();
    (ids, bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
}

/// `uae index build --shard i/n` on three "machines" and `uae index merge`
/// give the index of an unsharded build: the same ids in corpus order and
/// the same vectors (within 1e-6: other batches), hence the same search
/// results; `uae embed --shard` splits the same way. Shards of another
/// corpus, a missing, repeated or whole index are refused.
#[test]
fn shard_indexes_merge_into_the_unsharded_index() {
    let (work, model, corpus) = word_fixture(40);
    let whole = work.path().join("whole");
    ok(&["index", "build", "--model", path(&model), "--corpus", path(&corpus), "--out", path(&whole)]);
    let shards: Vec<_> = (0..3).map(|i| work.path().join(format!("shard{i}"))).collect();
    for (i, dir) in shards.iter().enumerate() {
        let spec = format!("{i}/3");
        let out = uae(&["index", "build", "--model", path(&model), "--corpus", path(&corpus), "--out", path(dir), "--shard", &spec]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let expected = (40 + 2 - i) / 3;
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("indexed shard {i}/3: {expected} of 40 passages")));
    }
    // A shard is not searched or extended as if it were the corpus.
    assert!(err(&["index", "add", "--index", path(&shards[0]), "--corpus", path(&corpus)]).contains("merge the shards"));
    let merged = work.path().join("merged");
    let merge = |inputs: &[&Path]| {
        let mut args = vec!["index", "merge", "--out", path(&merged)];
        args.extend(inputs.iter().map(|p| path(p)));
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let all: Vec<&Path> = shards.iter().map(|p| p.as_path()).collect();
    let args = merge(&all);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (want_ids, want) = index_rows(&whole);
    let (got_ids, got) = index_rows(&merged);
    assert_eq!(got_ids, want_ids);
    let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-6, "largest difference {worst}");
    let search = |index: &Path| ok(&["search", "--index", path(index), "--query", "python list dict", "-k", "5"]);
    assert_eq!(search(&merged), search(&whole));

    let refused = |inputs: &[&Path], needle: &str| {
        let args = merge(inputs);
        let message = err(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(message.contains(needle), "{needle}: {message}");
    };
    refused(&all[..2], "shard 2/3 missing");
    refused(&[all[0], all[0], all[1], all[2]], "are both shard 0/3");
    refused(&[all[0], all[1], whole.as_path()], "is a whole index, not a shard");
    let other = work.path().join("other.jsonl");
    std::fs::write(&other, word_corpus(41)).unwrap();
    let stranger = work.path().join("stranger");
    ok(&["index", "build", "--model", path(&model), "--corpus", path(&other), "--out", path(&stranger), "--shard", "2/3"]);
    refused(&[all[0], all[1], stranger.as_path()], "are not shards of one corpus");

    // uae embed --shard takes the same lines.
    let texts = work.path().join("texts.jsonl");
    let lines: String = (0..7).map(|i| format!("{}\n", serde_json::json!({"id": i, "text": format!("text {i}")}))).collect();
    std::fs::write(&texts, lines).unwrap();
    let out = work.path().join("vectors.jsonl");
    ok(&["embed", "--model", path(&model), "--input", path(&texts), "--output", path(&out), "--shard", "1/3"]);
    let ids: Vec<u64> = std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 4]);
}

/// A TREC run's lines as (query, document) -> score.
fn run_scores(run: &str) -> Vec<((String, String), f32)> {
    run_lines(run).into_iter().map(|((q, d, _), s)| ((q, d), s)).collect()
}

/// Against a real Qdrant server (`UAE_QDRANT_URL`, its gRPC address; the
/// test says "skipped" without one): `uae index push` fills a sharded
/// collection that `uae search --qdrant` searches with the index's own
/// model, giving the ranking and scores of `uae search --exact`; a second
/// push resumes; `uae serve --qdrant` answers /search alike; an index of
/// another model is refused.
#[test]
fn qdrant_collection_searches_like_the_index() {
    let Ok(url) = std::env::var("UAE_QDRANT_URL") else {
        eprintln!("skipped: UAE_QDRANT_URL is not set (a Qdrant server's gRPC address, e.g. http://127.0.0.1:6334)");
        return;
    };
    let (work, model, corpus) = word_fixture(40);
    let index = work.path().join("index");
    ok(&["index", "build", "--model", path(&model), "--corpus", path(&corpus), "--out", path(&index)]);
    let collection = format!("uae-test-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let push = |index: &Path| uae(&["index", "push", "--index", path(index), "--qdrant", &url, "--collection", &collection, "--shards", "2", "--batch", "7", "--corpus", path(&corpus)]);
    let out = push(&index);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pushed 40 points"), "{}", String::from_utf8_lossy(&out.stderr));
    // Pushed again: the full batches are found, the last one rewritten.
    let out = push(&index);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pushed 5 points") && String::from_utf8_lossy(&out.stderr).contains("(35 were there already)"), "{}", String::from_utf8_lossy(&out.stderr));

    let queries = work.path().join("queries.jsonl");
    std::fs::write(&queries, "{\"_id\":\"q1\",\"text\":\"python list dict\"}\n{\"_id\":\"q2\",\"text\":\"slow error line\"}\n").unwrap();
    let search = |source: &[&str], exact: bool| {
        let mut args = vec!["search", "--queries", path(&queries), "-k", "5"];
        args.extend(source);
        if exact {
            args.push("--exact");
        }
        run_scores(&ok(&args))
    };
    let want = search(&["--index", path(&index)], true);
    for exact in [true, false] {
        let got = search(&["--qdrant", &url, "--collection", &collection], exact);
        assert_eq!(got.len(), want.len());
        for ((key, score), (want_key, want_score)) in got.iter().zip(&want) {
            assert_eq!(key, want_key);
            assert!((score - want_score).abs() < 1e-5, "{key:?}: {score} against {want_score}");
        }
    }
    // `uae serve --qdrant` answers /search from the collection the same way.
    let server = uae_test_support::serve::Server::start(&["--model", path(&model), "--qdrant", &url, "--collection", &collection]);
    let reply = server.post("/search", &serde_json::json!({"queries": ["python list dict", "slow error line"], "k": 5}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let served: Vec<((String, String), f32)> = reply.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["q1", "q2"])
        .flat_map(|(hits, q)| {
            hits.as_array().unwrap().iter().map(move |h| ((q.to_string(), h["id"].as_str().unwrap().to_string()), h["score"].as_f64().unwrap() as f32))
        })
        .collect();
    assert_eq!(served.len(), want.len());
    for ((key, score), (want_key, want_score)) in served.iter().zip(&want) {
        assert_eq!(key, want_key);
        assert!((score - want_score).abs() < 1e-5, "{key:?}: {score} against {want_score}");
    }
    assert_eq!(server.get("/info").json()["index"]["size"], 40);
    drop(server);
    // Another model's index is not mixed into the collection.
    let other = work.path().join("other");
    write_tiny_bert(&other, &TinyBertSpec { seed: 8, ..Default::default() }).unwrap();
    let other_index = work.path().join("other-index");
    ok(&["index", "build", "--model", path(&other), "--corpus", path(&corpus), "--out", path(&other_index)]);
    let out = push(&other_index);
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds vectors of model"), "{}", String::from_utf8_lossy(&out.stderr));
    let e = err(&["search", "--qdrant", &url, "--collection", &collection, "--model", path(&other), "--query", "x"]);
    assert!(e.contains("search it with the same model"), "{e}");
}
