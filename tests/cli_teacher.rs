//! `uae logprob`, `uae label` and `uae generate` end to end on a tiny random
//! decoder and a tiny BEIR data set, including a labelling run killed with
//! SIGKILL and resumed, label shards merged, and a teacher served by
//! `uae serve` over HTTP.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use uae_test_support::tiny_llama::{TinyLlamaSpec, write_tiny_llama};
use uae_test_support::beir::Fixture;
use uae_test_support::cli::{stderr, uae};
use uae_test_support::serve::Server;
use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};

const QUERIES: usize = 40;

/// A data set of `QUERIES` answered queries, one without an answer, 30
/// passages (one empty, one far longer than the teacher's window).
fn write_data(dir: &Path) {
    let mut data = Fixture::new();
    for i in 0..28 {
        data.passage(&format!("d{i}"), &format!("passage {i}: the answer to question {} is on line {i} of the file", i % 7));
    }
    data.passage("empty", "").passage("long", &"the list is long. ".repeat(200));
    for q in 0..QUERIES {
        data.query(&format!("q{q}"), &format!("where is the answer to question {q}?"), &[&format!("on line {q}")])
            .judge("train", &format!("q{q}"), &format!("d{}", q % 28), 1);
    }
    data.query("noanswer", "what?", &[]).query("qx", "is the list long?", &["yes"]).write(dir);
}

fn write_candidates(path: &Path) {
    let mut lines = String::new();
    for q in 0..QUERIES {
        let docs: Vec<String> = (0..6).map(|k| format!("\"d{}\"", (q + k * 5) % 28)).collect();
        lines += &format!("{{\"query_id\":\"q{q}\",\"doc_ids\":[{}],\"relevant\":[]}}\n", docs.join(","));
    }
    lines += "{\"query_id\":\"noanswer\",\"doc_ids\":[\"d1\"]}\n";
    lines += "{\"query_id\":\"qx\",\"doc_ids\":[\"empty\",\"long\"]}\n";
    std::fs::write(path, lines).unwrap();
}

struct Setup {
    _work: tempfile::TempDir,
    teacher: String,
    data: String,
    candidates: String,
    root: std::path::PathBuf,
}

fn setup() -> Setup {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().to_path_buf();
    let teacher = root.join("teacher");
    // max_positions 256 makes the "long" passage overflow the window.
    write_tiny_llama(&teacher, &TinyLlamaSpec { hidden: 64, layers: 3, max_positions: 1024, ..Default::default() }).unwrap();
    write_data(&root.join("data"));
    write_candidates(&root.join("candidates.jsonl"));
    Setup {
        teacher: teacher.to_str().unwrap().into(),
        data: root.join("data").to_str().unwrap().into(),
        candidates: root.join("candidates.jsonl").to_str().unwrap().into(),
        root,
        _work: work,
    }
}

fn label_args<'a>(s: &'a Setup, out: &'a str) -> Vec<&'a str> {
    vec![
        "label", "--teacher", &s.teacher, "--data", &s.data, "--candidates", &s.candidates, "--out", out,
        "--queries-per-step", "1", "--max-passage-tokens", "200",
    ]
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn killed_labelling_resumes_to_the_uninterrupted_result() {
    let s = setup();
    let full = s.root.join("full.jsonl");
    let out = uae(&label_args(&s, full.to_str().unwrap()));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("skipped 1 queries without a gold answer: noanswer"), "{err}");
    assert!(err.contains("1 passages were cut"), "{err}");
    assert!(err.contains("1 candidates have an empty passage"), "{err}");
    let expected = read_lines(&full);
    assert_eq!(expected.len(), QUERIES + 1);
    for line in &expected {
        let utilities = line["utilities"].as_array().unwrap();
        let with = line["logp_with"].as_array().unwrap();
        let without = line["logp_without"].as_f64().unwrap();
        assert_eq!(utilities.len(), line["doc_ids"].as_array().unwrap().len());
        for (u, w) in utilities.iter().zip(with) {
            assert!((u.as_f64().unwrap() - (w.as_f64().unwrap() - without)).abs() < 1e-9);
        }
    }

    let killed = s.root.join("killed.jsonl");
    let mut child = uae_test_support::cli::command()
        .args(label_args(&s, killed.to_str().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&killed).map(|t| t.lines().count()).unwrap_or(0);
        if lines >= 3 || start.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = std::fs::read_to_string(&killed).unwrap();
    let partial_lines = partial.lines().count();
    assert!(partial_lines < QUERIES + 1, "the run finished before the kill; make it slower");
    // Simulate a kill in the middle of a write as well: a torn last line.
    std::fs::write(&killed, format!("{partial}{{\"query_id\":\"q3")).unwrap();
    let out = uae(&label_args(&s, killed.to_str().unwrap()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("removed a torn last line"), "{}", stderr(&out));
    let mut resumed = read_lines(&killed);
    let mut expected = expected;
    let key = |v: &serde_json::Value| v["query_id"].as_str().unwrap().to_string();
    resumed.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(resumed, expected);
}

/// `--utility question` scores the question after a prompt showing only the
/// passage (UPR's), so a query without an answer is labelled too, and each
/// figure is the one `uae logprob` gives for the same texts. A labels file
/// of one utility is never continued with the other.
#[test]
fn question_utility_scores_the_question_after_the_passage() {
    let s = setup();
    let path = s.root.join("question.jsonl");
    let out_s = path.to_str().unwrap();
    let mut args = label_args(&s, out_s);
    args.extend(["--utility", "question", "--no-chat-template"]);
    let out = uae(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = read_lines(&path);
    assert_eq!(lines.len(), QUERIES + 2, "the query without an answer is labelled too");
    let q0 = lines.iter().find(|l| l["query_id"] == "q0").unwrap();
    assert_eq!(q0["doc_ids"][0], "d0");
    let question = " where is the answer to question 0?";
    let passage = "passage 0: the answer to question 0 is on line 0 of the file";
    let input = s.root.join("logprob.jsonl");
    let pairs = [
        ("with", format!("Passage: {passage}\n\nPlease write a question based on this passage.\nQuestion:")),
        ("without", "Please write a question.\nQuestion:".to_string()),
    ];
    let text: Vec<String> = pairs
        .iter()
        .map(|(id, prompt)| serde_json::json!({"id": id, "prompt": prompt, "continuation": question}).to_string())
        .collect();
    std::fs::write(&input, text.join("\n")).unwrap();
    let scored = s.root.join("scored.jsonl");
    let out = uae(&["logprob", "--teacher", &s.teacher, "--input", input.to_str().unwrap(), "--output", scored.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let scored = read_lines(&scored);
    let mean = |id: &str| scored.iter().find(|l| l["id"] == id).unwrap()["logprob_mean"].as_f64().unwrap();
    let with = q0["logp_with"][0].as_f64().unwrap();
    let without = q0["logp_without"].as_f64().unwrap();
    assert!((with - mean("with")).abs() < 1e-4, "{with} against {}", mean("with"));
    assert!((without - mean("without")).abs() < 1e-4, "{without} against {}", mean("without"));
    assert!((q0["utilities"][0].as_f64().unwrap() - (with - without)).abs() < 1e-9);

    let answer = uae(&label_args(&s, out_s));
    assert!(!answer.status.success());
    assert!(stderr(&answer).contains("was labelled with other settings"), "{}", stderr(&answer));
}

/// `uae synth` writes a BEIR folder whose held-out splits are the input's,
/// and a run killed with SIGKILL (and left with a torn last line) resumes to
/// the file an uninterrupted run writes.
#[test]
fn killed_synth_resumes_to_the_uninterrupted_result() {
    let s = setup();
    let held_out = "query-id\tcorpus-id\tscore\nq39\td11\t1\n";
    std::fs::write(format!("{}/qrels/test.tsv", s.data), held_out).unwrap();
    let student = s.root.join("student");
    uae_test_support::tiny_bert::write_tiny_bert(&student, &uae_test_support::tiny_bert::TinyBertSpec::default()).unwrap();
    let index = s.root.join("index");
    let corpus = format!("{}/corpus.jsonl", s.data);
    let built = uae(&["index", "build", "--model", student.to_str().unwrap(), "--corpus", &corpus, "--out", index.to_str().unwrap()]);
    assert!(built.status.success(), "{}", stderr(&built));
    let args = |out: &str| -> Vec<String> {
        [
            "synth", "--teacher", &s.teacher, "--data", &s.data, "--out", out, "--student", student.to_str().unwrap(),
            "--index", index.to_str().unwrap(), "--max-passages", "24", "--per-passage", "2", "--max-new-tokens", "12",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let full = s.root.join("full");
    let out = uae(&args(full.to_str().unwrap()).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("generated for 24 passages (0 already done) with 2 few-shot examples"), "{err}");
    assert!(err.contains("of 48 generations kept"), "{err}");
    let generations = std::fs::read_to_string(full.join("synth.jsonl")).unwrap();
    assert_eq!(generations.lines().count(), 48);
    assert_eq!(std::fs::read_to_string(full.join("verdicts.jsonl")).unwrap().lines().count(), 48);
    for file in ["corpus.jsonl", "qrels/train.tsv"] {
        assert!(full.join(file).is_file(), "{file} is missing");
    }
    let queries = std::fs::read_to_string(full.join("queries.jsonl")).unwrap();
    assert!(queries.lines().count() >= QUERIES + 2, "every input query is kept");

    let killed = s.root.join("killed");
    let mut child = uae_test_support::cli::command()
        .args(args(killed.to_str().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(killed.join("synth.jsonl")).map(|t| t.lines().count()).unwrap_or(0);
        if lines >= 4 || start.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = std::fs::read_to_string(killed.join("synth.jsonl")).unwrap();
    assert!(partial.lines().count() < 48, "the run finished before the kill; make it slower");
    std::fs::write(killed.join("synth.jsonl"), format!("{partial}{{\"passage_id\":\"d")).unwrap();
    let out = uae(&args(killed.to_str().unwrap()).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("removed a torn last line"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(killed.join("synth.jsonl")).unwrap(), generations);
    for file in ["queries.jsonl", "qrels/train.tsv", "verdicts.jsonl"] {
        assert_eq!(std::fs::read(killed.join(file)).unwrap(), std::fs::read(full.join(file)).unwrap(), "{file}");
    }
    assert_eq!(std::fs::read_to_string(full.join("qrels/test.tsv")).unwrap(), held_out, "the held-out split is the input's");
    assert!(err.contains("sources: corpus"), "{err}");

    // The stricter protocol leaves out the test query's gold passage d11.
    let strict = s.root.join("strict");
    let mut strict_args = args(strict.to_str().unwrap());
    strict_args.extend(["--sources", "not-held-out-gold"].map(String::from));
    let out = uae(&strict_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("sources: not-held-out-gold (1 passages gold for held-out queries left out)"), "{}", stderr(&out));
    let sources = std::fs::read_to_string(strict.join("synth.jsonl")).unwrap();
    assert!(!sources.contains("\"passage_id\":\"d11\""), "{sources}");

    // A reply budget that leaves too little of the context window drops
    // few-shot examples (and, below that, shortens the passage) instead of
    // failing; one that leaves nothing is an error naming the flag.
    let long_reply = |out: &str, tokens: &str| {
        let mut a = args(s.root.join(out).to_str().unwrap());
        for (flag, value) in [("--max-new-tokens", tokens), ("--max-passages", "2")] {
            let at = a.iter().position(|x| x == flag).unwrap();
            a[at + 1] = value.into();
        }
        uae(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = long_reply("fitted", "700");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("prompts left out few-shot examples, or shortened their passage"), "{}", stderr(&out));
    let out = long_reply("no-room", "1024");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--max-new-tokens 1024 leaves no room for a prompt in the teacher's context window of 1024"), "{}", stderr(&out));

    // Greedy later questions would repeat the first: refused, naming both flags.
    let mut greedy = args(s.root.join("greedy").to_str().unwrap());
    greedy.extend(["--temperature", "0"].map(String::from));
    let out = uae(&greedy.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--per-passage 2 needs a --temperature above 0"), "{}", stderr(&out));
    // A folder whose later questions were asked after the earlier replies
    // (its synth.json has no `later_questions`) is not resumed.
    let record = full.join("synth.json");
    let mut old: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert!(old.as_object_mut().unwrap().remove("later_questions").is_some(), "{old}");
    std::fs::write(&record, old.to_string()).unwrap();
    let out = uae(&args(full.to_str().unwrap()).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("was generated with another teacher or other options"), "{}", stderr(&out));
}

#[test]
fn labelling_errors_name_the_file_and_line() {
    let s = setup();
    let bad = s.root.join("bad.jsonl");
    std::fs::write(&bad, "{\"query_id\":\"q1\",\"doc_ids\":[\"d1\"]}\n{\"query_id\":\"q2\",\"doc_ids\":[\"nope\"]}\n").unwrap();
    let out_path = s.root.join("l.jsonl");
    let args = ["label", "--teacher", &s.teacher, "--data", &s.data, "--candidates", bad.to_str().unwrap(), "--out", out_path.to_str().unwrap()];
    let out = uae(&args);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad.jsonl:2: unknown doc id \"nope\""), "{}", stderr(&out));
    assert!(!out_path.exists(), "nothing is written before the input is checked");
    std::fs::write(&bad, "{\"query_id\":\"zz\",\"doc_ids\":[\"d1\"]}\n").unwrap();
    let out = uae(&args);
    assert!(stderr(&out).contains("bad.jsonl:1: unknown query id \"zz\""), "{}", stderr(&out));
    std::fs::write(&bad, "{\"query_id\":\"q1\",\"doc_ids\":[\"d1\"]}\n\n{\"query_id\":\"q1\",\"doc_ids\":[\"d2\"]}\n").unwrap();
    let out = uae(&args);
    assert!(stderr(&out).contains("bad.jsonl:3: query \"q1\" already appears on line 1"), "{}", stderr(&out));
    std::fs::write(&bad, "{\"query_id\":\"q1\"}\n").unwrap();
    let out = uae(&args);
    assert!(stderr(&out).contains("bad.jsonl:1: invalid candidates line"), "{}", stderr(&out));
    // A resume with another prompt is refused.
    std::fs::write(&bad, "{\"query_id\":\"q1\",\"doc_ids\":[\"d1\"]}\n").unwrap();
    assert!(uae(&args).status.success());
    let mut other = args.to_vec();
    other.extend(["--prompt-without-passage", "Q: {question}"]);
    let out = uae(&other);
    assert!(stderr(&out).contains("labelled with other settings"), "{}", stderr(&out));
    // A resume whose candidates changed for a labelled query is refused
    // rather than keeping the stale line.
    std::fs::write(&bad, "{\"query_id\":\"q2\",\"doc_ids\":[\"d2\"]}\n{\"query_id\":\"q1\",\"doc_ids\":[\"d1\",\"d3\"]}\n").unwrap();
    let out = uae(&args);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("l.jsonl:1: query \"q1\" was labelled with other candidates than") && err.contains("bad.jsonl:2"), "{err}");
    // A labels file that holds a query twice is refused, naming both lines.
    let labelled = std::fs::read_to_string(&out_path).unwrap();
    std::fs::write(&out_path, format!("{labelled}{labelled}")).unwrap();
    let out = uae(&args);
    assert!(stderr(&out).contains("l.jsonl:2: query \"q1\" is labelled twice (first at line 1)"), "{}", stderr(&out));
}

#[test]
fn logprob_and_generate_run_and_reject_empty_fields() {
    let s = setup();
    let input = s.root.join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":1,\"prompt\":\"the answer is\",\"continuation\":\" on the line\"}\n\
         {\"id\":\"b\",\"prompt\":\"<|im_start|>user\\nhi<|im_end|>\\n\",\"continuation\":\"is\"}\n",
    )
    .unwrap();
    let output = s.root.join("out.jsonl");
    let out = uae(&["logprob", "--teacher", &s.teacher, "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = read_lines(&output);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[1]["id"], "b");
    for line in &lines {
        let (sum, mean, n) = (line["logprob_sum"].as_f64().unwrap(), line["logprob_mean"].as_f64().unwrap(), line["n_tokens"].as_u64().unwrap());
        assert!(sum < 0.0 && n > 0 && (mean * n as f64 - sum).abs() < 1e-9, "{line}");
    }
    // Batching does not change the numbers.
    let single = s.root.join("single.jsonl");
    let out = uae(&["logprob", "--teacher", &s.teacher, "--input", input.to_str().unwrap(), "--output", single.to_str().unwrap(), "--batch-tokens", "1"]);
    assert!(out.status.success());
    for (a, b) in read_lines(&single).iter().zip(&lines) {
        assert!((a["logprob_sum"].as_f64().unwrap() - b["logprob_sum"].as_f64().unwrap()).abs() < 1e-4);
    }

    std::fs::write(&input, "{\"id\":1,\"prompt\":\"a\",\"continuation\":\"b\"}\n{\"id\":2,\"prompt\":\"\",\"continuation\":\"b\"}\n").unwrap();
    let missing = s.root.join("never.jsonl");
    let out = uae(&["logprob", "--teacher", &s.teacher, "--input", input.to_str().unwrap(), "--output", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("record 2 (id 2): empty prompt"), "{}", stderr(&out));
    assert!(!missing.exists());

    let out = uae(&["generate", "--teacher", &s.teacher, "--prompt", "hi", "--max-new-tokens", "5", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["ids"].as_array().unwrap().len() <= 5);
    assert_eq!(json["prompt_ids"][0], 1, "the chat template opens with <|im_start|>: {json}");

    // A file of prompts, decoded in padded batches, gives each prompt's
    // one-at-a-time generation, in order.
    let prompts = ["hi", "a much longer prompt than the others, to pad the batch", "x y"];
    let file = s.root.join("prompts.jsonl");
    std::fs::write(&file, prompts.iter().map(|p| format!("{{\"prompt\":{p:?}}}\n")).collect::<String>()).unwrap();
    let batched = s.root.join("generated.jsonl");
    let out = uae(&[
        "generate", "--teacher", &s.teacher, "--input", file.to_str().unwrap(), "--output", batched.to_str().unwrap(),
        "--batch", "2", "--max-new-tokens", "6",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("for 3 prompts"), "{}", stderr(&out));
    let lines = read_lines(&batched);
    assert_eq!(lines.len(), 3);
    for (line, prompt) in lines.iter().zip(prompts) {
        let out = uae(&["generate", "--teacher", &s.teacher, "--prompt", prompt, "--max-new-tokens", "6", "--json"]);
        let single: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["prompt"], prompt);
        assert_eq!(line["ids"], single["ids"], "{prompt}");
        assert_eq!(line["text"], single["text"], "{prompt}");
    }
    std::fs::write(&file, "{\"prompt\":\"hi\"}\n{\"text\":\"no prompt\"}\n").unwrap();
    let out = uae(&["generate", "--teacher", &s.teacher, "--input", file.to_str().unwrap(), "--output", "-"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("{}:2", file.display())), "{}", stderr(&out));
}

/// The largest difference between the mean log-probabilities of two
/// labellings of the same queries (sorted alike), which must hold the same
/// lines with the same candidates.
fn largest_difference(want: &[serde_json::Value], got: &[serde_json::Value]) -> f64 {
    assert_eq!(want.len(), got.len());
    let numbers = |v: &serde_json::Value| -> Vec<f64> {
        let mut out: Vec<f64> = v["logp_with"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        out.push(v["logp_without"].as_f64().unwrap());
        out
    };
    let mut worst = 0.0f64;
    for (w, g) in want.iter().zip(got) {
        assert_eq!(w["query_id"], g["query_id"]);
        assert_eq!(w["doc_ids"], g["doc_ids"]);
        for (a, b) in numbers(w).iter().zip(numbers(g)) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

fn sorted_lines(path: &Path) -> Vec<serde_json::Value> {
    let mut lines = read_lines(path);
    lines.sort_by_key(|v| v["query_id"].as_str().unwrap().to_string());
    lines
}

/// Shards `0/3..2/3` merge into exactly the unsharded labels (one query per
/// step, so each query's batches are the same whichever shard runs it);
/// a missing, repeated, unfinished, overlapping or differently labelled
/// shard is refused, naming the files.
#[test]
fn label_shards_merge_to_the_unsharded_labels() {
    let s = setup();
    let full = s.root.join("full.jsonl");
    let out = uae(&label_args(&s, full.to_str().unwrap()));
    assert!(out.status.success(), "{}", stderr(&out));
    let shards: Vec<String> = (0..3).map(|i| s.root.join(format!("shard{i}.jsonl")).to_str().unwrap().to_string()).collect();
    for (i, shard) in shards.iter().enumerate() {
        let spec = format!("{i}/3");
        let mut args = label_args(&s, shard);
        args.extend(["--shard", &spec]);
        let out = uae(&args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let merged = s.root.join("merged.jsonl");
    let merge = |inputs: &[&str]| {
        let mut args = vec!["label", "merge", "--out", merged.to_str().unwrap()];
        args.extend(inputs);
        uae(&args)
    };
    let all: Vec<&str> = shards.iter().map(String::as_str).collect();
    let out = merge(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("merged 3 shards into {}: {n} queries labelled of {n} expected", merged.display(), n = QUERIES + 1)), "{}", stderr(&out));
    assert_eq!(sorted_lines(&merged), sorted_lines(&full));
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.root.join("merged.jsonl.meta.json")).unwrap()).unwrap();
    assert!(meta.get("shard").is_none() && meta["expected"] == QUERIES + 1, "{meta}");

    let refused = |inputs: &[&str], needle: &str| {
        let out = merge(inputs);
        assert!(!out.status.success() && stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    };
    refused(&all[..2], "shard 2/3 missing");
    refused(&[all[0], all[0], all[1], all[2]], "are both shard 0/3");
    // An unfinished shard: its last line not yet written.
    let partial = s.root.join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    let text = std::fs::read_to_string(&shards[1]).unwrap();
    let cut = text.trim_end().rsplit_once('\n').unwrap().0.to_string() + "\n";
    std::fs::write(partial.join("shard1.jsonl"), cut).unwrap();
    std::fs::copy(format!("{}.meta.json", shards[1]), partial.join("shard1.jsonl.meta.json")).unwrap();
    let partial1 = partial.join("shard1.jsonl");
    let held = text.lines().count();
    refused(&[all[0], partial1.to_str().unwrap(), all[2]], &format!("holds {} of the {held} queries of its shard", held - 1));
    // A query in two shards: the same numbers, then other ones.
    let first_of_1 = text.lines().next().unwrap();
    let overlap = partial.join("shard2.jsonl");
    std::fs::write(&overlap, format!("{}{first_of_1}\n", std::fs::read_to_string(&shards[2]).unwrap())).unwrap();
    std::fs::copy(format!("{}.meta.json", shards[2]), partial.join("shard2.jsonl.meta.json")).unwrap();
    refused(&[all[0], all[1], overlap.to_str().unwrap()], "is in two shards (duplicate)");
    let mut line: serde_json::Value = serde_json::from_str(first_of_1).unwrap();
    line["utilities"][0] = serde_json::json!(9.5);
    std::fs::write(&overlap, format!("{}{line}\n", std::fs::read_to_string(&shards[2]).unwrap())).unwrap();
    refused(&[all[0], all[1], overlap.to_str().unwrap()], "is in two shards (conflict: other numbers)");
    // A shard labelled with another prompt.
    let other = s.root.join("other2.jsonl");
    let mut args = label_args(&s, other.to_str().unwrap());
    args.extend(["--shard", "2/3", "--prompt-without-passage", "Q: {question}"]);
    assert!(uae(&args).status.success());
    refused(&[all[0], all[1], other.to_str().unwrap()], "were labelled differently (without_passage");
    // A shard without its sidecar.
    std::fs::remove_file(partial.join("shard2.jsonl.meta.json")).unwrap();
    refused(&[all[0], all[1], overlap.to_str().unwrap()], "its sidecar");
}

/// `uae label --teacher openai:URL#MODEL` against `uae serve --teacher`
/// gives the labels of local labelling within 2e-5 nats: the same weights
/// and tokens, scored one sequence per request instead of in padded
/// batches, so only float summation order differs; `uae synth` through it
/// generates the same questions. A server without a teacher is a clear
/// error before any work.
#[test]
fn served_teacher_labels_like_the_local_one() {
    let s = setup();
    let local = s.root.join("local.jsonl");
    let out = uae(&label_args(&s, local.to_str().unwrap()));
    assert!(out.status.success(), "{}", stderr(&out));
    let model = s.root.join("bert");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let server = Server::start(&["--model", model.to_str().unwrap(), "--teacher", &s.teacher]);
    let spec = format!("openai:{}/v1#{}", server.base, s.teacher);
    let remote = s.root.join("remote.jsonl");
    let mut args = label_args(&s, remote.to_str().unwrap());
    args[2] = &spec;
    let out = uae(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let worst = largest_difference(&sorted_lines(&local), &sorted_lines(&remote));
    assert!(worst < 2e-5, "largest difference {worst}");
    let meta = std::fs::read_to_string(s.root.join("remote.jsonl.meta.json")).unwrap();
    assert!(meta.contains(&format!("\"teacher\": \"{spec}\"")), "{meta}");

    // uae synth generates through the server the questions it generates here.
    let index = s.root.join("index");
    let corpus = format!("{}/corpus.jsonl", s.data);
    let built = uae(&["index", "build", "--model", model.to_str().unwrap(), "--corpus", &corpus, "--out", index.to_str().unwrap()]);
    assert!(built.status.success(), "{}", stderr(&built));
    let synth = |teacher: &str, out: &Path| {
        let run = uae(&[
            "synth", "--teacher", teacher, "--data", &s.data, "--out", out.to_str().unwrap(), "--student", model.to_str().unwrap(),
            "--index", index.to_str().unwrap(), "--max-passages", "6", "--per-passage", "2", "--max-new-tokens", "12",
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        let lines: Vec<serde_json::Value> = read_lines(&out.join("synth.jsonl"));
        lines.into_iter().map(|l| (l["passage_id"].clone(), l["n"].clone(), l["output"].clone())).collect::<Vec<_>>()
    };
    let here = synth(&s.teacher, &s.root.join("synth-local"));
    assert_eq!(here.len(), 12);
    assert_eq!(synth(&spec, &s.root.join("synth-remote")), here);

    let bare = Server::start(&["--model", model.to_str().unwrap()]);
    let spec = format!("openai:{}/v1#{}", bare.base, s.teacher);
    let none = s.root.join("none.jsonl");
    let mut args = label_args(&s, none.to_str().unwrap());
    args[2] = &spec;
    let out = uae(&args);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("did not return prompt log-probabilities") && err.contains("HTTP 404"), "{err}");
    let out = uae(&["logprob", "--teacher", "openai:localhost:1/v1", "--input", "-", "--output", "-"]);
    assert!(stderr(&out).contains("names no model"), "{}", stderr(&out));
}

/// `uae label export` writes FlagEmbedding's fine-tuning JSONL and a
/// sentence-transformers distillation set: the teacher's best candidate is
/// the positive, every utility travels as a score.
#[test]
fn labels_export_to_flagembedding_and_sentence_transformers() {
    let s = setup();
    let labels = s.root.join("labels.jsonl");
    let out = uae(&label_args(&s, labels.to_str().unwrap()));
    assert!(out.status.success(), "{}", stderr(&out));
    let source = read_lines(&labels);
    let passage = |id: &str| -> String {
        let corpus = std::fs::read_to_string(Path::new(&s.data).join("corpus.jsonl")).unwrap();
        let line = corpus.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).find(|v| v["_id"] == id).unwrap();
        let (title, text) = (line["title"].as_str().unwrap_or(""), line["text"].as_str().unwrap());
        if title.trim().is_empty() { text.to_string() } else { format!("{title}. {text}") }
    };
    for format in ["flagembedding", "sentence-transformers"] {
        let path = s.root.join(format!("{format}.jsonl"));
        let out = uae(&["label", "export", "--labels", labels.to_str().unwrap(), "--data", &s.data, "--format", format, "--out", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let lines = read_lines(&path);
        assert_eq!(lines.len(), source.len());
        for (line, label) in lines.iter().zip(&source) {
            let utilities: Vec<f64> = label["utilities"].as_array().unwrap().iter().map(|u| u.as_f64().unwrap()).collect();
            let docs: Vec<&str> = label["doc_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
            let best = (0..utilities.len()).fold(0, |b, i| if utilities[i] > utilities[b] { i } else { b });
            let others: Vec<usize> = (0..docs.len()).filter(|&i| i != best).collect();
            assert!(line["query"].as_str().unwrap().starts_with("where is the answer") || line["query"] == "is the list long?");
            if format == "flagembedding" {
                assert_eq!(line["pos"], serde_json::json!([passage(docs[best])]));
                assert_eq!(line["pos_scores"], serde_json::json!([utilities[best]]));
                let negs: Vec<String> = others.iter().map(|&i| passage(docs[i])).collect();
                assert_eq!(line["neg"], serde_json::json!(negs));
                assert_eq!(line["neg_scores"], serde_json::json!(others.iter().map(|&i| utilities[i]).collect::<Vec<_>>()));
            } else {
                // "qx" has two candidates, so every line keeps one negative.
                assert_eq!(line["positive"], passage(docs[best]).as_str());
                assert_eq!(line["negative_1"], passage(docs[others[0]]).as_str());
                assert!(line.get("negative_2").is_none());
                assert_eq!(line["label"], serde_json::json!([utilities[best], utilities[others[0]]]));
            }
        }
    }
    let out = uae(&["label", "export", "--labels", labels.to_str().unwrap(), "--data", &s.data, "--format", "csv", "--out", "x"]);
    assert!(stderr(&out).contains("expected flagembedding or sentence-transformers"), "{}", stderr(&out));
}

/// A real third-party teacher server: llama-cpp-python's OpenAI server on
/// the SmolLM2 GGUF. `uae label --teacher openai:...` against it gives the
/// local labels within 0.15 nats per mean log-probability: llama.cpp
/// multiplies with the Q4_1 weights and Q8-quantised activations, uae with
/// the weights dequantised to f32 (measured on 4 Python FAQ questions x 3
/// candidates: at most 0.10). Its echoed log-probabilities are right only
/// after a leading BOS, which SmolLM2's chat prompts have (docs/scale.md).
#[test]
fn llama_cpp_server_teacher_labels_like_the_local_one() {
    let Some(gguf) = uae_test_support::weights::smollm2() else { return };
    let Some(python) = uae_test_support::python::test_python() else { return };
    let work = tempfile::tempdir().unwrap();
    let mut data = Fixture::new();
    let passages = [
        ("p0", "Python lists are mutable sequences; append adds an item to the end of a list."),
        ("p1", "A tuple is an immutable sequence, often used to group values of different kinds."),
        ("p2", "The GIL lets only one thread execute Python bytecode at a time."),
    ];
    for (id, text) in passages {
        data.passage(id, text);
    }
    data.query("q0", "How do I add an item to a list?", &["Use the append method."])
        .judge("train", "q0", "p0", 1)
        .query("q1", "Why can only one thread run Python code at once?", &["Because of the global interpreter lock."])
        .judge("train", "q1", "p2", 1)
        .write(&work.path().join("data"));
    let candidates = work.path().join("candidates.jsonl");
    std::fs::write(&candidates, "{\"query_id\":\"q0\",\"doc_ids\":[\"p0\",\"p1\",\"p2\"]}\n{\"query_id\":\"q1\",\"doc_ids\":[\"p2\",\"p0\",\"p1\"]}\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gguf = gguf.to_str().unwrap();
    let server = std::process::Command::new(python)
        .args(["-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1", "--port", &port.to_string(), "--n_ctx", "2048"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(server);
    let base = format!("http://127.0.0.1:{port}/v1");
    uae_test_support::serve::wait_until_up(&format!("{base}/models"), Duration::from_secs(120));
    let (d, c) = (work.path().join("data"), candidates.to_str().unwrap());
    let label = |teacher: &str, out: &str| {
        let out_path = work.path().join(out);
        let run = uae(&["label", "--teacher", teacher, "--data", d.to_str().unwrap(), "--candidates", c, "--out", out_path.to_str().unwrap()]);
        assert!(run.status.success(), "{}", stderr(&run));
        sorted_lines(&out_path)
    };
    let local = label(gguf, "local.jsonl");
    let remote = label(&format!("openai:{base}#{gguf}"), "remote.jsonl");
    let worst = largest_difference(&local, &remote);
    eprintln!("llama-cpp-python against local labelling: largest difference {worst:.4} nats");
    assert!(worst < 0.15, "largest difference {worst}");
}

/// The served teacher's client retries what may pass: a server that admits
/// one request at a time answers most of eight concurrent ones 429 (its
/// /metrics counts them), and the client retries each with backoff until
/// every score is in, equal to local scoring.
#[test]
fn served_teacher_retries_an_overloaded_server() {
    let s = setup();
    let model = s.root.join("bert");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let server = Server::start(&["--model", model.to_str().unwrap(), "--teacher", &s.teacher, "--max-concurrent-requests", "1"]);
    let input = s.root.join("lp.jsonl");
    let lines: String = (0..24)
        .map(|i| format!("{}\n", serde_json::json!({"id": i, "prompt": format!("the answer to question {i} is"), "continuation": format!(" on line {i}")})))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let score = |teacher: &str, out: &str| {
        let output = s.root.join(out);
        let run = uae_test_support::cli::command()
            .env("UAE_TEACHER_CONCURRENCY", "8")
            .env("UAE_TEACHER_RETRIES", "40")
            .args(["logprob", "--teacher", teacher, "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
        read_lines(&output).iter().map(|l| l["logprob_sum"].as_f64().unwrap()).collect::<Vec<_>>()
    };
    let local = score(&s.teacher, "local.jsonl");
    let remote = score(&format!("openai:{}/v1#{}", server.base, s.teacher), "remote.jsonl");
    assert_eq!(local.len(), 24);
    for (i, (a, b)) in local.iter().zip(&remote).enumerate() {
        assert!((a - b).abs() < 2e-5, "item {i}: {a} against {b}");
    }
    let metrics = server.get("/metrics").body;
    let refused: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("uae_requests_total{") && l.contains("status=\"429\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(refused > 0.0, "no request was refused, so no retry was tested:\n{metrics}");
}
