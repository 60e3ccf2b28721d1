//! Parity of the Burn teacher with transformers (PyTorch, fp32, eager
//! attention) on the real Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (Qwen2:
//! q/k/v biases, Q4_K and Q6_K blocks): token ids, logits, a padded batch,
//! continuation log-likelihoods, greedy continuations and the chat template.
//! The reference is assets/fixtures/qwen2.5-coder-1.5b_reference.json, made
//! by `assets/make_llm_reference.py --preset qwen2.5-coder-1.5b`; the weights
//! come from `assets/fetch.sh qwen2.5-coder-1.5b` (scripts/test.sh runs it).
//! The model is about 8 GB resident in f32.

mod common;

use std::sync::OnceLock;

use common::Parity;

/// Largest accepted |logit difference| (the bound).
const LOGIT_TOLERANCE: f64 = 1e-3;

/// The real model and its fixture, or `None` (the test is skipped) when the
/// model was not fetched.
fn parity() -> Option<&'static Parity> {
    static PARITY: OnceLock<Parity> = OnceLock::new();
    let path = uae_test_support::weights::qwen_coder()?;
    Some(PARITY.get_or_init(|| Parity::load(&path, "qwen2.5-coder-1.5b_reference.json", LOGIT_TOLERANCE)))
}

#[test]
fn token_ids_equal_transformers() {
    if let Some(p) = parity() {
        p.token_ids();
    }
}

#[test]
fn logits_equal_transformers_one_sequence_at_a_time() {
    if let Some(p) = parity() {
        p.logits_one_at_a_time();
    }
}

#[test]
fn padded_batch_logits_equal_transformers() {
    if let Some(p) = parity() {
        p.padded_batch();
    }
}

#[test]
fn continuation_logprobs_equal_transformers() {
    if let Some(p) = parity() {
        p.continuation_logprobs();
    }
}

#[test]
fn greedy_continuations_equal_transformers() {
    if let Some(p) = parity() {
        p.greedy();
    }
}

#[test]
fn chat_template_renders_like_transformers() {
    if let Some(p) = parity() {
        p.chat_template();
    }
}
