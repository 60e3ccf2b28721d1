//! Parity of the Burn teacher with transformers (PyTorch, fp32, eager
//! attention) on the real SmolLM2-135M-Instruct Q4_1 GGUF: token ids, logits,
//! a padded batch, continuation log-likelihoods, greedy continuations and the
//! chat template. The reference is assets/fixtures/smollm2_reference.json,
//! made by assets/make_llm_reference.py; the weights come from
//! `assets/fetch.sh smollm2` (scripts/test.sh runs it).

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::prelude::*;
use serde_json::Value;
use uae_model::llm::{CausalLm, ChatMessage};

/// Largest accepted |logit difference| (the bound).
const LOGIT_TOLERANCE: f64 = 1e-3;

/// The real model, or `None` (the test is skipped) when it was not fetched.
fn gguf_path() -> Option<PathBuf> {
    uae_test_support::weights::smollm2()
}

fn fixture() -> &'static Value {
    static FIXTURE: OnceLock<Value> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/fixtures/smollm2_reference.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    })
}

fn model() -> Option<&'static CausalLm> {
    static MODEL: OnceLock<CausalLm> = OnceLock::new();
    let path = gguf_path()?;
    Some(MODEL.get_or_init(|| CausalLm::load(path.to_str().unwrap(), &Device::flex()).unwrap()))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// The largest difference between our logit rows and the fixture's summary
/// of transformers' rows (top 20, 32 probes, log-sum-exp, max, min, mean).
fn compare_rows(case: &Value, rows: &[Vec<f32>]) -> f64 {
    let probe_ids = ids(&fixture()["probe_ids"]);
    let mut worst = 0f64;
    let mut check = |ours: f64, theirs: f64| worst = worst.max((ours - theirs).abs());
    for (p, row) in rows.iter().enumerate() {
        for (&id, want) in ids(&case["top_ids"][p]).iter().zip(floats(&case["top_logits"][p])) {
            check(row[id as usize] as f64, want);
        }
        for (&id, want) in probe_ids.iter().zip(floats(&case["probe_logits"][p])) {
            check(row[id as usize] as f64, want);
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
        let mean = row.iter().map(|&x| x as f64).sum::<f64>() / row.len() as f64;
        let min = row.iter().copied().fold(f32::INFINITY, f32::min) as f64;
        check(lse, case["logsumexp"][p].as_f64().unwrap());
        check(max, case["max"][p].as_f64().unwrap());
        check(min, case["min"][p].as_f64().unwrap());
        check(mean, case["mean"][p].as_f64().unwrap());
    }
    worst
}

fn positions(case: &Value) -> Vec<usize> {
    case["positions"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as usize).collect()
}

#[test]
fn token_ids_equal_transformers() {
    let Some(model) = model() else { return };
    for case in fixture()["cases"].as_array().unwrap() {
        assert_eq!(model.encode(case["text"].as_str().unwrap()).unwrap(), ids(&case["ids"]), "case {}", case["name"]);
    }
}

#[test]
fn logits_equal_transformers_one_sequence_at_a_time() {
    let Some(model) = model() else { return };
    let mut report = Vec::new();
    for case in fixture()["cases"].as_array().unwrap() {
        let seq = ids(&case["ids"]);
        let rows = model.logits_at(&[seq.as_slice()], &[positions(case)]).unwrap();
        let worst = compare_rows(case, &rows[0]);
        report.push(format!("{} ({} tokens): {worst:.2e}", case["name"], seq.len()));
        assert!(worst <= LOGIT_TOLERANCE, "case {}: max |logit diff| {worst}", case["name"]);
    }
    eprintln!("max |logit diff| per case: {}", report.join(", "));
}

#[test]
fn padded_batch_logits_equal_transformers() {
    let Some(model) = model() else { return };
    let cases: Vec<&Value> = fixture()["batch"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| fixture()["cases"].as_array().unwrap().iter().find(|c| &c["name"] == name).unwrap())
        .collect();
    let seqs: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["ids"])).collect();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let all_positions: Vec<Vec<usize>> = cases.iter().map(|c| positions(c)).collect();
    let rows = model.logits_at(&refs, &all_positions).unwrap();
    let worst = cases.iter().zip(&rows).map(|(c, r)| compare_rows(c, r)).fold(0.0, f64::max);
    eprintln!("padded batch of {} (lengths {:?}): max |logit diff| {worst:.2e}", cases.len(), seqs.iter().map(Vec::len).collect::<Vec<_>>());
    assert!(worst <= LOGIT_TOLERANCE, "max |logit diff| {worst}");
}

#[test]
fn continuation_logprobs_equal_transformers() {
    let Some(model) = model() else { return };
    let items = fixture()["logprob"].as_array().unwrap();
    let mut pairs = Vec::new();
    for item in items {
        let prompt = model.encode(item["prompt"].as_str().unwrap()).unwrap();
        let continuation = model.encode(item["continuation"].as_str().unwrap()).unwrap();
        assert_eq!(prompt, ids(&item["prompt_ids"]), "{}", item["name"]);
        assert_eq!(continuation, ids(&item["continuation_ids"]), "{}", item["name"]);
        pairs.push((prompt, continuation));
    }
    let refs: Vec<(&[u32], &[u32])> = pairs.iter().map(|(p, c)| (p.as_slice(), c.as_slice())).collect();
    let ours = model.continuation_logprobs(&refs).unwrap();
    let mut worst = 0f64;
    for (item, values) in items.iter().zip(&ours) {
        for (&o, t) in values.iter().zip(floats(&item["token_logprobs"])) {
            worst = worst.max((o as f64 - t).abs());
        }
        let sum: f64 = values.iter().map(|&v| v as f64).sum();
        assert!((sum - item["logprob_sum"].as_f64().unwrap()).abs() <= 1e-2, "{}: sum {sum}", item["name"]);
    }
    eprintln!("continuation log-probabilities: max |diff| {worst:.2e}");
    assert!(worst <= LOGIT_TOLERANCE, "max |logprob diff| {worst}");
}

#[test]
fn greedy_continuations_equal_transformers() {
    let Some(model) = model() else { return };
    for item in fixture()["greedy"].as_array().unwrap() {
        let messages: Vec<ChatMessage> = item["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let prompt = model.chat_prompt(&messages, true).unwrap();
        assert_eq!(prompt, item["prompt"].as_str().unwrap());
        let prompt_ids = model.encode(&prompt).unwrap();
        assert_eq!(prompt_ids, ids(&item["prompt_ids"]), "{}", item["name"]);
        let new_ids = model.generate(&prompt_ids, 32).unwrap();
        assert_eq!(new_ids, ids(&item["new_ids"]), "{}: {:?}", item["name"], model.decode(&new_ids));
        assert_eq!(model.decode(&new_ids).unwrap(), item["text"].as_str().unwrap());
    }
}

#[test]
fn chat_template_renders_like_transformers() {
    let Some(model) = model() else { return };
    for example in fixture()["chat_template"]["examples"].as_array().unwrap() {
        let messages: Vec<ChatMessage> = example["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let add = example["add_generation_prompt"].as_bool().unwrap();
        assert_eq!(model.chat_prompt(&messages, add).unwrap(), example["rendered"].as_str().unwrap());
    }
}
