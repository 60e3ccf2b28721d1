//! What a hostile model or length does to `uae embed` and `uae generate`:
//! bad hyper-parameters and NaN weights are refused by name without a panic,
//! a vector that overflows names its input, `--max-length` below the special
//! tokens is refused, and a prompt past the context window is an error
//! rather than an empty answer.

use std::path::Path;

use uae_test_support::cli::{stderr, uae};
use uae_test_support::damage::{fill_f32_tensor, set_gguf_value};
use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};
use uae_test_support::tiny_llama::{TinyLlamaSpec, write_tiny_llama, write_tiny_llama_gguf};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `uae embed` of two texts with `model` and `extra` arguments.
fn embed(work: &Path, model: &Path, extra: &[&str]) -> std::process::Output {
    let input = work.join("in.jsonl");
    std::fs::write(&input, "{\"id\": \"q1\", \"text\": \"what is the answer\"}\n{\"id\": 7, \"text\": \"python list code\"}\n")
        .unwrap();
    let output = work.join("out.jsonl");
    uae(&[&["embed", "--model", path(model), "--input", path(&input), "--output", path(&output)][..], extra].concat())
}

/// Fails cleanly: a non-zero status, an `error:` line, no panic.
fn assert_refused(out: &std::process::Output, what: &str) -> String {
    let err = stderr(out);
    assert!(!out.status.success() && err.contains("error:") && !err.contains("panicked"), "{what}: {err}");
    err
}

#[test]
fn embed_refuses_a_max_length_below_the_special_tokens_and_honours_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    for n in ["1", "2"] {
        let err = assert_refused(&embed(work.path(), &model, &["--max-length", n]), n);
        assert!(err.contains(&format!("a maximum length of {n} tokens leaves no room for text")), "{err}");
        assert!(err.contains("adds 2 special tokens") && err.contains("at least 3"), "{err}");
    }
    // Three tokens: [CLS], one word, [SEP]; both texts are cut, and differ.
    let out = embed(work.path(), &model, &["--max-length", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 of 2 inputs were longer than 3 tokens"), "{}", stderr(&out));
    let text = std::fs::read_to_string(work.path().join("out.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_ne!(lines[0]["embedding"], lines[1]["embedding"]);
}

#[test]
fn embed_names_nan_weights_and_non_finite_vectors() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_bert(&model, &TinyBertSpec::default()).unwrap();
    let weights = model.join("model.safetensors");
    fill_f32_tensor(&weights, "encoder.layer.1.output.LayerNorm.weight", f32::MAX).unwrap();
    let err = assert_refused(&embed(work.path(), &model, &[]), "overflow");
    assert!(err.contains("in.jsonl: the text with id") && err.contains("holds NaN or infinite values"), "{err}");
    assert!(!work.path().join("out.jsonl").exists(), "no embeddings are written");

    fill_f32_tensor(&weights, "encoder.layer.1.output.LayerNorm.weight", f32::NAN).unwrap();
    let err = assert_refused(&embed(work.path(), &model, &[]), "NaN");
    assert!(err.contains("model.safetensors: tensor encoder.layer.1.output.LayerNorm.weight holds NaN"), "{err}");

    let config = model.join("config.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["layer_norm_eps"] = 0.0.into();
    std::fs::write(&config, json.to_string()).unwrap();
    let err = assert_refused(&embed(work.path(), &model, &[]), "eps 0");
    assert!(err.contains("config.json: layer_norm_eps is 0"), "{err}");
}

#[test]
fn generate_refuses_bad_gguf_metadata_without_a_panic() {
    let work = tempfile::tempdir().unwrap();
    let teacher = work.path().join("tiny.gguf");
    for (key, value) in [
        ("llama.attention.layer_norm_rms_epsilon", f32::NAN.to_le_bytes()),
        ("llama.attention.head_count_kv", 0u32.to_le_bytes()),
    ] {
        write_tiny_llama_gguf(&teacher, &TinyLlamaSpec::default(), false).unwrap();
        set_gguf_value(&teacher, key, value).unwrap();
        let out = uae(&["generate", "--teacher", path(&teacher), "--prompt", "hi", "--max-new-tokens", "2"]);
        let err = assert_refused(&out, key);
        assert!(err.contains("tiny.gguf") && err.contains(key), "{err}");
    }
}

#[test]
fn generate_refuses_a_prompt_past_the_context_and_says_when_it_fills_it() {
    let work = tempfile::tempdir().unwrap();
    let teacher = work.path().join("teacher");
    write_tiny_llama(&teacher, &TinyLlamaSpec { max_positions: 16, ..Default::default() }).unwrap();
    let generate = |prompt: &str| {
        uae(&["generate", "--teacher", path(&teacher), "--raw", "--prompt", prompt, "--max-new-tokens", "8"])
    };
    // Each space and each x is a token: 40 tokens.
    let long = "x ".repeat(20);
    let err = assert_refused(&generate(&long), "long prompt");
    assert!(err.contains("the prompt has 40 tokens, more than the model's context window of 16"), "{err}");

    // Fifteen tokens leave room for two.
    let fits = "x ".repeat(7) + "x";
    let out = generate(&fits);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("filled the context window of 16 tokens"), "{}", stderr(&out));

    let input = work.path().join("prompts.jsonl");
    std::fs::write(&input, format!("{{\"prompt\": \"hi\"}}\n{{\"prompt\": \"{long}\"}}\n")).unwrap();
    let output = work.path().join("out.jsonl");
    let out = uae(&["generate", "--teacher", path(&teacher), "--raw", "--input", path(&input), "--output", path(&output)]);
    let err = assert_refused(&out, "long line");
    assert!(err.contains("prompts.jsonl:2: the prompt has") && err.contains("context window of 16"), "{err}");
}
