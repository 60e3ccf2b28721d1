//! `uae train` and `uae export` end to end on a tiny random BERT and a
//! synthetic labelled data set whose teacher preference is known: the
//! teacher prefers the passage holding both of the query's topic words, then
//! the one holding the first word, then the rest.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};
use uae_test_support::beir::Fixture;
use uae_test_support::cli::uae;
use uae_test_support::damage::fill_f32_tensor;

const TOPIC: [&str; 12] =
    ["python", "list", "dict", "code", "model", "file", "error", "line", "fast", "slow", "help", "answer"];

fn check(out: &Output) {
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One labelled query: its text, candidate ids and texts, and utilities.
struct Pool {
    query: String,
    docs: Vec<(String, String)>,
    utilities: Vec<f64>,
}

/// A deterministic generator (no rand in this test crate).
fn next(state: &mut u64) -> usize {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*state >> 33) as usize
}

fn pools(n: usize) -> Vec<Pool> {
    let mut state = 11u64;
    (0..n)
        .map(|i| {
            let a = TOPIC[next(&mut state) % TOPIC.len()];
            let mut b = TOPIC[next(&mut state) % TOPIC.len()];
            while b == a {
                b = TOPIC[next(&mut state) % TOPIC.len()];
            }
            let others: Vec<&str> = TOPIC.iter().copied().filter(|w| *w != a && *w != b).collect();
            let mut pick = || others[next(&mut state) % others.len()];
            let texts = [
                format!("{a} {b} the {}", pick()),
                format!("{a} {} of {}", pick(), pick()),
                format!("{} {} a {}", pick(), pick(), pick()),
                format!("the {} {} is", pick(), pick()),
            ];
            let utilities = vec![2.0, 1.0, 0.0, -0.5];
            // Candidate order is shuffled so position says nothing.
            let shift = next(&mut state) % 4;
            let order: Vec<usize> = (0..4).map(|j| (j + shift) % 4).collect();
            Pool {
                query: format!("what is {a} {b}"),
                docs: order.iter().map(|&j| (format!("d{i}_{j}"), texts[j].clone())).collect(),
                utilities: order.iter().map(|&j| utilities[j]).collect(),
            }
        })
        .collect()
}

/// Writes the BEIR folder and labels.jsonl; the gold passage of each query
/// is the teacher's best.
fn write_data(dir: &Path, pools: &[Pool]) {
    let mut data = Fixture::new();
    let mut labels = String::new();
    for (i, pool) in pools.iter().enumerate() {
        data.query(&format!("q{i}"), &pool.query, &[]);
        for (id, text) in &pool.docs {
            data.passage(id, text);
        }
        let best = (0..4).max_by(|&x, &y| pool.utilities[x].total_cmp(&pool.utilities[y])).unwrap();
        data.judge("train", &format!("q{i}"), &pool.docs[best].0, 1);
        let ids: Vec<&str> = pool.docs.iter().map(|(id, _)| id.as_str()).collect();
        labels.push_str(
            &serde_json::json!({"query_id": format!("q{i}"), "doc_ids": ids, "utilities": pool.utilities,
                "logp_with": pool.utilities, "logp_without": 0.0})
            .to_string(),
        );
        labels.push('\n');
    }
    data.write(dir);
    std::fs::write(dir.join("labels.jsonl"), labels).unwrap();
}

/// Embeds `texts` with `uae embed`, as queries or passages.
fn embed(model: &Path, texts: &[String], query: bool, work: &Path) -> Vec<Vec<f32>> {
    let input = work.join("embed_in.jsonl");
    let output = work.join("embed_out.jsonl");
    let lines: Vec<String> =
        texts.iter().enumerate().map(|(i, t)| serde_json::json!({"id": i, "text": t}).to_string()).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let mut args = vec!["embed", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap()];
    args.extend(["--output", output.to_str().unwrap()]);
    if query {
        args.push("--query");
    }
    check(&uae(&args));
    std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// Agreement with the teacher: the mean, over queries, of the share of candidate pairs the student orders as the teacher does.
fn pair_agreement(model: &Path, pools: &[Pool], work: &Path) -> f64 {
    let queries: Vec<String> = pools.iter().map(|p| p.query.clone()).collect();
    let passages: Vec<String> = pools.iter().flat_map(|p| p.docs.iter().map(|(_, t)| t.clone())).collect();
    let q = embed(model, &queries, true, work);
    let d = embed(model, &passages, false, work);
    let mut agree = 0usize;
    let mut total = 0usize;
    for (i, pool) in pools.iter().enumerate() {
        let scores: Vec<f32> = (0..4).map(|j| cosine(&q[i], &d[i * 4 + j])).collect();
        for x in 0..4 {
            for y in 0..4 {
                if pool.utilities[x] > pool.utilities[y] {
                    total += 1;
                    agree += usize::from(scores[x] > scores[y]);
                }
            }
        }
    }
    agree as f64 / total as f64
}

fn train_args<'a>(model: &'a str, data: &'a str, labels: &'a str, out: &'a str, config: &'a str) -> Vec<&'a str> {
    vec!["train", "--model", model, "--data", data, "--labels", labels, "--out", out, "--config", config]
}

/// A work folder with the tiny model in `tiny/` and `n` labelled queries in
/// `data/`.
fn fixture(n: usize) -> (tempfile::TempDir, PathBuf, PathBuf, Vec<Pool>) {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("tiny");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let data = work.path().join("data");
    let pools = pools(n);
    write_data(&data, &pools);
    (work, model, data, pools)
}

/// A run's `selection.json`.
fn read_selection(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("selection.json")).unwrap()).unwrap()
}

/// `uae train` on `data`'s labels.jsonl.
fn train_on(model: &Path, data: &Path, run: &Path, config: &Path) -> Output {
    train_with(model, data, &data.join("labels.jsonl"), run, config, &[])
}

/// `uae train` on these paths, with `extra` flags after the usual ones.
fn train_with(model: &Path, data: &Path, labels: &Path, run: &Path, config: &Path, extra: &[&str]) -> Output {
    train_command(model, data, labels, run, config, extra).output().expect("uae runs")
}

/// The command of [`train_with`], to run or spawn.
fn train_command(model: &Path, data: &Path, labels: &Path, run: &Path, config: &Path, extra: &[&str]) -> Command {
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let (m, d, l, r, c) = (path(model), path(data), path(labels), path(run), path(config));
    let mut command = uae_test_support::cli::command();
    command.args(train_args(&m, &d, &l, &r, &c)).args(extra);
    command
}

/// Each run directory exported into `work/<name>`, and the export's
/// embeddings of every query and its first candidate.
fn exported_vectors(work: &Path, pools: &[Pool], runs: &[(&str, &Path)]) -> Vec<Vec<Vec<f32>>> {
    let texts = probe_texts(pools);
    runs.iter()
        .map(|(name, run)| {
            let exported = work.join(name);
            check(&uae(&["export", "--run", run.to_str().unwrap(), "--out", exported.to_str().unwrap()]));
            embed(&exported, &texts, false, work)
        })
        .collect()
}

/// Every query and its first candidate, the texts resumed runs are compared on.
fn probe_texts(pools: &[Pool]) -> Vec<String> {
    pools.iter().map(|p| p.query.clone()).chain(pools.iter().map(|p| p.docs[0].1.clone())).collect()
}

#[test]
fn training_moves_the_student_towards_the_teacher_and_exports() {
    let (work, model, data, pools) = fixture(48);
    // The tokenizer files a Hugging Face BERT carries besides tokenizer.json.
    std::fs::write(model.join("tokenizer_config.json"), r#"{"do_lower_case": true, "model_max_length": 512, "pad_token": "[PAD]"}"#).unwrap();
    std::fs::write(model.join("special_tokens_map.json"), r#"{"cls_token": "[CLS]", "sep_token": "[SEP]"}"#).unwrap();
    let config = work.path().join("train.json");
    std::fs::write(
        &config,
        r#"{"epochs": 6, "batch_size": 8, "lr": 0.002, "warmup_ratio": 0.1, "valid_share": 0.25, "seed": 5, "log_every": 2}"#,
    )
    .unwrap();
    let run = work.path().join("run");
    let (m, d, l, r, c) = (
        model.to_str().unwrap(),
        data.to_str().unwrap(),
        data.join("labels.jsonl"),
        run.to_str().unwrap(),
        config.to_str().unwrap(),
    );
    let out = uae(&train_args(m, d, l.to_str().unwrap(), r, c));
    check(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The text renderer prints metric values, not debug snapshots.
    assert!(stdout.contains("| Loss "), "{stdout}");
    assert!(stdout.contains("Teacher Recall@1"), "{stdout}");
    assert!(!stdout.contains("ProgressSnapshot"), "{stdout}");
    // Model selection scored the held-out queries by retrieval and kept a
    // fine-tuned checkpoint.
    assert!(stdout.contains("| Dev MAP "), "{stdout}");
    assert!(stdout.contains("exporting the weights after"), "{stdout}");
    let selection = read_selection(&run);
    assert_eq!(selection["history"].as_array().unwrap().len(), 7, "the base and six epochs: {selection}");
    assert!(selection["chosen_step"].as_u64().unwrap() > 0);

    let exported = work.path().join("exported");
    check(&uae(&["export", "--run", r, "--out", exported.to_str().unwrap()]));
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
    ] {
        assert!(exported.join(file).is_file(), "{file} missing");
    }
    assert_eq!(
        std::fs::read(exported.join("tokenizer_config.json")).unwrap(),
        std::fs::read(model.join("tokenizer_config.json")).unwrap()
    );
    // The model card: sentence-transformers metadata, the recipe and the
    // dev table of model selection.
    let card = std::fs::read_to_string(exported.join("README.md")).unwrap();
    assert!(card.starts_with("---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\n"), "{card}");
    assert!(card.contains("| loss | um-infonce (tau 0.05"), "{card}");
    assert!(card.contains("| 0 (base) |") && card.contains("(exported) |"), "{card}");
    assert!(card.contains(&format!("`{}`", data.join("labels.jsonl").display())), "{card}");
    // The Python loaders: huggingface_hub parses the card, fastembed's
    // tokenizer loader finds the tokenizer files and tokenises as uae does.
    if let Some(python) = uae_test_support::python::test_python() {
        let text = "what is a python list";
        let out = std::process::Command::new(python)
            .args([concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/check_export_loaders.py"), exported.to_str().unwrap(), text])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let loaded: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(loaded["library_name"], "sentence-transformers", "{loaded}");
        assert_eq!(loaded["pipeline_tag"], "sentence-similarity", "{loaded}");
        let mut tokenizer = tokenizers::Tokenizer::from_file(exported.join("tokenizer.json")).unwrap();
        // uae pads per batch; fastembed's single text is not padded either.
        tokenizer.with_padding(None);
        let ids: Vec<u64> = tokenizer.encode(text, true).unwrap().get_ids().iter().map(|&i| u64::from(i)).collect();
        assert_eq!(loaded["ids"], serde_json::json!(ids), "{loaded}");
    }
    let before = pair_agreement(&model, &pools, work.path());
    let after = pair_agreement(&exported, &pools, work.path());
    eprintln!("pairwise agreement with the teacher: before {before:.3}, after {after:.3}");
    assert!(after > before + 0.1, "before {before:.3}, after {after:.3}");
    assert!(after > 0.8, "after {after:.3}");

    // A second run into the same directory without --resume is refused.
    let again = uae(&train_args(m, d, l.to_str().unwrap(), r, c));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
}

/// Model selection never exports a model worse than its base: here the dev
/// split judges each query's teacher-worst candidate relevant, so every step
/// of training lowers dev MAP, and the run exports the base weights
/// byte for byte; it keeps only its two newest epoch sets.
#[test]
fn selection_exports_the_base_when_training_only_hurts() {
    let (work, model, data, pools) = fixture(24);
    let mut dev = String::from("query-id\tcorpus-id\tscore\n");
    for (i, pool) in pools.iter().enumerate() {
        let worst = (0..4).min_by(|&x, &y| pool.utilities[x].total_cmp(&pool.utilities[y])).unwrap();
        dev.push_str(&format!("q{i}\t{}\t1\n", pool.docs[worst].0));
    }
    std::fs::write(data.join("qrels").join("dev.tsv"), dev).unwrap();
    let config = work.path().join("train.json");
    std::fs::write(&config, r#"{"epochs": 3, "batch_size": 6, "lr": 0.003, "valid_share": 0.2, "seed": 3}"#).unwrap();
    let run = work.path().join("run");
    let out = train_on(&model, &data, &run, &config);
    check(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no checkpoint beat the base model on the dev split (24 queries)"), "{stdout}");
    assert!(stdout.contains("exporting the base weights unchanged"), "{stdout}");
    let selection = read_selection(&run);
    let history = selection["history"].as_array().unwrap();
    assert_eq!(history.len(), 4, "{selection}");
    assert_eq!(selection["chosen_step"], 0);
    let map = |i: usize| history[i]["metrics"]["map"].as_f64().unwrap();
    assert!((1..4).all(|i| map(i) < map(0)), "training should only hurt here: {selection}");
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), std::fs::read(model.join("model.safetensors")).unwrap());
    // The two newest epoch sets are kept, nothing older (the best weights
    // by dev retrieval live apart, so no set is kept for its loss).
    for kind in ["model", "optim", "scheduler"] {
        let kept: Vec<bool> = (1..=3).map(|e| run.join("checkpoint").join(format!("{kind}-{e}.bpk")).is_file()).collect();
        assert_eq!(kept, [false, true, true], "{kind}");
    }
}

/// Merging the chosen weights with the base: alpha 0 is the base and alpha
/// 1 the chosen weights, so neither beats the chosen checkpoint strictly;
/// both are evaluated and recorded, and the chosen weights are exported.
#[test]
fn merges_with_the_base_are_evaluated_and_exported_only_when_better() {
    let (work, model, data, _) = fixture(48);
    let config = work.path().join("train.json");
    std::fs::write(
        &config,
        r#"{"epochs": 3, "batch_size": 8, "lr": 0.002, "valid_share": 0.25, "seed": 5, "merge_base": [0.0, 1.0]}"#,
    )
    .unwrap();
    let run = work.path().join("run");
    check(&train_on(&model, &data, &run, &config));
    let selection = read_selection(&run);
    let chosen = selection["chosen_step"].as_u64().unwrap();
    assert!(chosen > 0, "{selection}");
    let history = selection["history"].as_array().unwrap();
    let map_at = |step: u64| history.iter().find(|p| p["step"] == step).unwrap()["metrics"]["map"].as_f64().unwrap();
    let merges = selection["merges"].as_array().unwrap();
    assert_eq!(merges.len(), 2, "{selection}");
    let merged_map = |i: usize| merges[i]["metrics"]["map"].as_f64().unwrap();
    assert!((merged_map(0) - map_at(0)).abs() < 1e-9, "alpha 0 is the base: {selection}");
    assert!((merged_map(1) - map_at(chosen)).abs() < 1e-9, "alpha 1 is the chosen weights: {selection}");
    assert!(selection["chosen_merge"].is_null());
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), std::fs::read(run.join("best.safetensors")).unwrap());
    let leftovers: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("merged-") || n == "base-export.safetensors")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Query-side training: the candidates' vectors come from the base model's
/// corpus index, only the query encoder learns, and the export carries the
/// base, byte for byte, as its passage encoder, so it embeds passages as the
/// base does and searches the base's index.
#[test]
fn query_only_training_keeps_the_base_passage_encoder() {
    let (work, model, data, pools) = fixture(48);
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let index = work.path().join("index");
    let corpus = data.join("corpus.jsonl");
    check(&uae(&["index", "build", "--model", &path(&model), "--corpus", &path(&corpus), "--out", &path(&index)]));
    let config = work.path().join("train.json");
    std::fs::write(
        &config,
        r#"{"epochs": 6, "batch_size": 8, "lr": 0.002, "valid_share": 0.25, "seed": 5, "query_only": true}"#,
    )
    .unwrap();
    let run = work.path().join("run");
    let (m, d, l, r, c) = (path(&model), path(&data), path(&data.join("labels.jsonl")), path(&run), path(&config));
    let mut args = train_args(&m, &d, &l, &r, &c);
    let i = path(&index);
    args.extend(["--base-index", i.as_str()]);
    let out = uae(&args);
    check(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("frozen passage vectors of 192 candidates read from"), "{stdout}");
    let selection = read_selection(&run);
    assert!(selection["chosen_step"].as_u64().unwrap() > 0, "{selection}");

    let exported = work.path().join("exported");
    check(&uae(&["export", "--run", &r, "--out", &path(&exported)]));
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert_eq!(weights(&exported.join("passage")), weights(&model), "the passage encoder is the base");
    assert_ne!(weights(&exported), weights(&model), "the query encoder was trained");
    let passages: Vec<String> = pools.iter().flat_map(|p| p.docs.iter().map(|(_, t)| t.clone())).collect();
    let (before, after) = (embed(&model, &passages, false, work.path()), embed(&exported, &passages, false, work.path()));
    assert!(max_abs_diff(&before, &after) < 1e-6, "passages are embedded as the base does");
    let queries: Vec<String> = pools.iter().map(|p| p.query.clone()).collect();
    let (before, after) = (embed(&model, &queries, true, work.path()), embed(&exported, &queries, true, work.path()));
    assert!(max_abs_diff(&before, &after) > 1e-3, "queries are embedded by the trained encoder");
    let agreement = (pair_agreement(&model, &pools, work.path()), pair_agreement(&exported, &pools, work.path()));
    assert!(agreement.1 > agreement.0 + 0.05, "pairwise agreement with the teacher before and after: {agreement:?}");
    // The export searches the base's index: its passage side is the base.
    let found = uae(&["search", "--index", &i, "--model", &path(&exported), "--query", &queries[0], "-k", "2"]);
    check(&found);
}

#[test]
fn bad_labels_are_reported_not_fatal() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("tiny");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let data = work.path().join("data");
    let pools = pools(8);
    write_data(&data, &pools);
    let labels = data.join("labels.jsonl");
    // q0's line is replaced by one with a null utility and an unknown passage.
    let mut text: String =
        std::fs::read_to_string(&labels).unwrap().lines().skip(1).map(|line| format!("{line}\n")).collect();
    text.push_str("{\"query_id\":\"q0\",\"doc_ids\":[\"d0_0\",\"nowhere\"],\"utilities\":[null,1.0]}\n");
    text.push_str("{\"query_id\":\"q1\",\"doc_ids\":[\"d1_0\",\"d1_1\"],\"utili");
    std::fs::write(&labels, text).unwrap();
    let config = work.path().join("train.json");
    // Also exercises accumulation, cosine decay, early stopping and every
    // other loss.
    std::fs::write(
        &config,
        r#"{"epochs": 2, "batch_size": 2, "grad_accumulation": 2, "decay": "cosine", "early_stopping_patience": 1,
            "max_grad_norm": 0.5, "sampling": {"candidates": 3, "top_share": 0.34, "seed": 1}}"#,
    )
    .unwrap();
    for loss in ["infonce", "kl", "stable-distill"] {
        let run = work.path().join(format!("run-{loss}"));
        let mut args = train_args(
            model.to_str().unwrap(),
            data.to_str().unwrap(),
            labels.to_str().unwrap(),
            run.to_str().unwrap(),
            config.to_str().unwrap(),
        );
        args.extend(["--loss", loss]);
        let out = uae(&args);
        check(&out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("7 of 8 labelled queries kept with K = 3"), "{stdout}");
        assert!(stdout.contains("1 with non-finite utilities"), "{stdout}");
        assert!(stdout.contains("torn last line"), "{stdout}");
        assert!(run.join("model.safetensors").is_file());
    }

    // An unknown config field is an error naming the file.
    std::fs::write(&config, r#"{"epoch": 1}"#).unwrap();
    let out = uae(&train_args(
        model.to_str().unwrap(),
        data.to_str().unwrap(),
        labels.to_str().unwrap(),
        work.path().join("run2").to_str().unwrap(),
        config.to_str().unwrap(),
    ));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("train.json"));
}

/// A run whose losses are not finite (here, from a model whose weights are
/// NaN, as after a divergence) is stopped by the loss guard with an error
/// naming the batch's queries, and no weights are saved.
#[test]
fn non_finite_loss_is_an_error_naming_the_queries() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("tiny");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    // Finite weights that overflow in the forward pass (NaN weights are
    // refused at load, see tests/cli_robust_model.rs).
    fill_f32_tensor(&model.join("model.safetensors"), "encoder.layer.1.output.LayerNorm.weight", f32::MAX).unwrap();
    let data = work.path().join("data");
    write_data(&data, &pools(16));
    let config = work.path().join("train.json");
    std::fs::write(&config, r#"{"epochs": 2, "batch_size": 4}"#).unwrap();
    let run = work.path().join("run");
    // Model selection meets the overflow first, in the base model's dev
    // evaluation.
    let out = train_on(&model, &data, &run, &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("evaluating the base model on the dev queries"), "{stderr}");
    assert!(stderr.contains("holds NaN or infinite values"), "{stderr}");
    // Without selection, the loss guard stops the first step.
    let run = work.path().join("run-no-select");
    let out = train_with(&model, &data, &data.join("labels.jsonl"), &run, &config, &["--no-select"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("training stopped: the batch of queries q"), "{stderr}");
    assert!(stderr.contains("loss is NaN"), "{stderr}");
    assert!(!run.join("model.safetensors").exists());
    // The same with cached gradients (GradCache): the guard's zero loss
    // still runs backward through the cached vectors.
    let run = work.path().join("run-grad-cache");
    let out = train_with(&model, &data, &data.join("labels.jsonl"), &run, &config, &["--no-select", "--grad-cache", "3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("training stopped: the batch of queries q") && stderr.contains("loss is NaN"), "{stderr}");
    let recorded: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("train_config.json")).unwrap()).unwrap();
    assert_eq!(recorded["grad_cache"], 3);
}

#[test]
fn resume_after_epoch_one_equals_an_uninterrupted_run() {
    let (work, model, data, pools) = fixture(24);
    let config = work.path().join("train.json");
    std::fs::write(&config, r#"{"epochs": 2, "batch_size": 5, "lr": 0.002, "valid_share": 0.2, "seed": 9}"#).unwrap();
    let labels = data.join("labels.jsonl");
    let run = |name: &str, resume: bool| {
        let out = work.path().join(name);
        check(&train_with(&model, &data, &labels, &out, &config, if resume { &["--resume"] } else { &[] }));
        out
    };
    let full = run("full", false);
    let interrupted = run("interrupted", false);
    // What a run killed between saving epoch 2's model and its optimiser
    // leaves: epoch 2's model file and sum, and epoch 1's complete set.
    for file in ["optim-2.bpk", "optim-2.bpk.sum", "scheduler-2.bpk", "scheduler-2.bpk.sum"] {
        let path = interrupted.join("checkpoint").join(file);
        assert!(path.is_file(), "{} missing", path.display());
        std::fs::remove_file(path).unwrap();
    }
    std::fs::remove_file(interrupted.join("model.safetensors")).unwrap();
    // A damaged copy of that state is refused with the file named, not a panic.
    let damaged = work.path().join("damaged");
    copy_dir(&interrupted, &damaged);
    let model_1 = damaged.join("checkpoint").join("model-1.bpk");
    let mut bytes = std::fs::read(&model_1).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&model_1, &bytes).unwrap();
    let out = train_with(&model, &data, &labels, &damaged, &config, &["--resume"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("model-1.bpk is damaged") && err.contains("start over"), "{err}");
    // Other labels than the run's are refused on resume.
    let other_labels = work.path().join("other_labels.jsonl");
    let text = std::fs::read_to_string(&labels).unwrap();
    std::fs::write(&other_labels, text.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let out = train_with(&model, &data, &other_labels, &interrupted, &config, &["--resume"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is not the labels file this run was trained on"), "{err}");

    let resumed = run("interrupted", true);
    // Epoch 2's incomplete set was removed and written again, complete.
    for file in ["model-2.bpk.sum", "optim-2.bpk.sum", "scheduler-2.bpk.sum"] {
        assert!(resumed.join("checkpoint").join(file).is_file(), "{file}");
    }

    let vectors = exported_vectors(work.path(), &pools, &[("full_export", &full), ("resumed_export", &resumed)]);
    let base = embed(&model, &probe_texts(&pools), false, work.path());
    let diff = max_abs_diff(&vectors[0], &vectors[1]);
    assert!(diff <= 1e-5, "resumed run differs by {diff}");
    // And training did change the model.
    assert!(max_abs_diff(&vectors[0], &base) > 1e-3);
}

/// A run killed (SIGKILL) part-way through its second epoch resumes from the
/// newest state saved within the epoch (`--checkpoint-every 2` steps) and
/// ends with the same weights as an uninterrupted run, bit for bit.
#[test]
fn resume_within_an_epoch_equals_an_uninterrupted_run() {
    let (work, model, data, pools) = fixture(100);
    let config = work.path().join("train.json");
    // 80 training queries in batches of 2 (accumulated in pairs): 40 batches
    // an epoch; no dev selection, so only training decides the weights.
    std::fs::write(
        &config,
        r#"{"epochs": 2, "batch_size": 2, "grad_accumulation": 2, "lr": 0.002, "valid_share": 0.2, "seed": 5, "select": false}"#,
    )
    .unwrap();
    let labels = data.join("labels.jsonl");
    let full = work.path().join("full");
    check(&train_with(&model, &data, &labels, &full, &config, &["--checkpoint-every", "2"]));
    assert!(!full.join("checkpoint").join("steps").exists(), "a finished run keeps no sets within epochs");

    let killed = work.path().join("killed");
    let mut child = train_command(&model, &data, &labels, &killed, &config, &["--checkpoint-every", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a set saved within the second epoch is complete.
    let steps = killed.join("checkpoint").join("steps");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let complete = std::fs::read_dir(&steps).ok().is_some_and(|entries| {
            let names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.iter().filter_map(|n| n.strip_prefix("scheduler-")?.strip_suffix(".bpk.sum")?.parse::<usize>().ok()).any(
                |p| p > 40 && ["model", "optim"].iter().all(|k| names.contains(&format!("{k}-{p}.bpk.sum"))),
            )
        });
        if complete {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed in epoch 2");
        assert!(std::time::Instant::now() < deadline, "no set saved within epoch 2");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join("model.safetensors").exists());

    let out = train_with(&model, &data, &labels, &killed, &config, &["--resume"]);
    check(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("batches into epoch 2"), "{stdout}");

    let vectors = exported_vectors(work.path(), &pools, &[("full_export", &full), ("resumed_export", &killed)]);
    assert_eq!(vectors[0], vectors[1], "the resumed run's weights differ from the uninterrupted run's");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f32::max)
}

/// Training runs through wgpu too (lavapipe in CI, tiny shapes): one epoch
/// on `--device wgpu` trains, validates and exports a model that `uae embed`
/// loads, with finite embeddings that differ from the base model's.
#[cfg(feature = "wgpu")]
#[test]
fn training_runs_on_wgpu() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("tiny");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let data = work.path().join("data");
    let pools = pools(12);
    write_data(&data, &pools);
    let config = work.path().join("train.json");
    std::fs::write(&config, r#"{"epochs": 1, "batch_size": 4, "lr": 0.002, "valid_share": 0.25, "seed": 5, "log_every": 1}"#)
        .unwrap();
    let run = work.path().join("run");
    let labels = data.join("labels.jsonl");
    let mut args = vec!["--device", "wgpu"];
    args.extend(train_args(
        model.to_str().unwrap(),
        data.to_str().unwrap(),
        labels.to_str().unwrap(),
        run.to_str().unwrap(),
        config.to_str().unwrap(),
    ));
    let out = uae(&args);
    check(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("| Loss "));
    let exported = work.path().join("exported");
    check(&uae(&["export", "--run", run.to_str().unwrap(), "--out", exported.to_str().unwrap()]));
    let texts: Vec<String> = pools.iter().map(|p| p.query.clone()).collect();
    let before = embed(&model, &texts, true, work.path());
    let after = embed(&exported, &texts, true, work.path());
    assert!(after.iter().flatten().all(|x| x.is_finite()));
    assert!(max_abs_diff(&before, &after) > 1e-4, "wgpu training changed nothing");
}
