//! Parity of the Burn teacher with transformers (PyTorch, fp32, eager
//! attention) on the real SmolLM2-135M-Instruct Q4_1 GGUF: token ids, logits,
//! a padded batch, continuation log-likelihoods, greedy continuations and the
//! chat template. The reference is assets/fixtures/smollm2_reference.json,
//! made by assets/make_llm_reference.py; the weights come from
//! `assets/fetch.sh smollm2` (scripts/test.sh runs it).

mod common;

use std::sync::OnceLock;

use common::Parity;

/// Largest accepted |logit difference| (the bound).
const LOGIT_TOLERANCE: f64 = 1e-3;

/// The real model and its fixture, or `None` (the test is skipped) when the
/// model was not fetched.
fn parity() -> Option<&'static Parity> {
    static PARITY: OnceLock<Parity> = OnceLock::new();
    let path = uae_test_support::weights::smollm2()?;
    Some(PARITY.get_or_init(|| Parity::load(&path, "smollm2_reference.json", LOGIT_TOLERANCE)))
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
