//! `uae embed` end to end: output order and ids, and a clear error with a
//! non-zero exit for each kind of bad input.

use std::path::Path;

use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};
use uae_test_support::cli::{stderr, uae};

fn tiny_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), &TinyBertSpec::default()).unwrap();
    dir
}

fn write(path: &Path, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn embeds_in_input_order_with_ids() {
    let model = tiny_model();
    let work = tempfile::tempdir().unwrap();
    let input = write(
        &work.path().join("in.jsonl"),
        b"{\"id\": \"long\", \"text\": \"what is the answer to the question of why python is slow\"}\n\n{\"id\": 7, \"text\": \"a\"}\n{\"id\": \"mid\", \"text\": \"list of code\"}\n",
    );
    let output = work.path().join("out.jsonl");
    let out = uae(&["embed", "--model", model.path().to_str().unwrap(), "--input", &input, "--output", output.to_str().unwrap(), "--batch-tokens", "20"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["id"], "long");
    assert_eq!(lines[1]["id"], 7);
    assert_eq!(lines[2]["id"], "mid");
    for line in &lines {
        assert_eq!(line["embedding"].as_array().unwrap().len(), 32);
    }

    // Standard input and output, as queries.
    let mut child = uae_test_support::cli::command()
        .args(["embed", "--model", model.path().to_str().unwrap(), "--input", "-", "--output", "-", "--query"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"{\"id\":1,\"text\":\"a\"}\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // "a" as a query equals "a" as a passage here: the tiny model has no prefixes.
    assert_eq!(line["embedding"], lines[1]["embedding"]);
}

#[test]
fn reports_truncation() {
    let model = tiny_model();
    let work = tempfile::tempdir().unwrap();
    let long = format!("{{\"id\":1,\"text\":\"{}\"}}\n", "python ".repeat(80));
    let input = write(&work.path().join("in.jsonl"), long.as_bytes());
    let out = uae(&["embed", "--model", model.path().to_str().unwrap(), "--input", &input, "--output", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 of 1 inputs were longer than 64 tokens"), "{}", stderr(&out));
}

/// Runs `uae embed` expecting failure, and returns its standard error.
fn fails(model: &str, input: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("out.jsonl");
    let out = uae(&["embed", "--model", model, "--input", input, "--output", output.to_str().unwrap()]);
    assert!(!out.status.success(), "expected failure, got success");
    assert!(!output.exists(), "no partial output is left behind");
    stderr(&out)
}

#[test]
fn bad_inputs_get_clear_errors() {
    let model = tiny_model();
    let model_path = model.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let good = write(&work.path().join("good.jsonl"), b"{\"id\":1,\"text\":\"a\"}\n");

    let err = fails(model_path, work.path().join("absent.jsonl").to_str().unwrap());
    assert!(err.contains("cannot open") && err.contains("absent.jsonl"), "{err}");

    let bad = write(&work.path().join("bad.jsonl"), b"{\"id\":1,\"text\":\"a\"}\n{\"id\":2,\"txt\":\"b\"}\n");
    let err = fails(model_path, &bad);
    assert!(err.contains("bad.jsonl:2: invalid record") && err.contains("missing field `text`"), "{err}");

    let latin1 = write(&work.path().join("latin1.jsonl"), b"{\"id\":1,\"text\":\"a\"}\n{\"id\":2,\"text\":\"caf\xe9\"}\n");
    let err = fails(model_path, &latin1);
    assert!(err.contains("latin1.jsonl:2: the line is not valid UTF-8"), "{err}");

    let err = fails(work.path().join("no-model").to_str().unwrap(), &good);
    assert!(err.contains("does not exist"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = fails(empty.path().to_str().unwrap(), &good);
    assert!(err.contains("no config.json"), "{err}");
}

#[test]
fn bad_weights_get_clear_errors() {
    let work = tempfile::tempdir().unwrap();
    let good = write(&work.path().join("good.jsonl"), b"{\"id\":1,\"text\":\"a\"}\n");

    let truncated = tiny_model();
    let weights = truncated.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() - 100]).unwrap();
    let err = fails(truncated.path().to_str().unwrap(), &good);
    assert!(err.contains("model.safetensors"), "{err}");

    let mismatched = tiny_model();
    let config_path = mismatched.path().join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap().replace("\"intermediate_size\": 64", "\"intermediate_size\": 80");
    std::fs::write(&config_path, config).unwrap();
    let err = fails(mismatched.path().to_str().unwrap(), &good);
    assert!(err.contains("does not match its config.json") && err.contains("intermediate.dense"), "{err}");
}

#[test]
fn device_not_built_is_a_clear_error() {
    let out = uae(&["--device", "cuda", "embed", "--model", "x", "--input", "-", "--output", "-"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("built without the cuda backend"), "{}", stderr(&out));
}
