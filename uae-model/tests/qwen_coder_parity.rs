//! Parity of the Burn teacher with transformers (PyTorch, fp32, eager
//! attention) on the real Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (Qwen2:
//! q/k/v biases, Q4_K and Q6_K blocks): token ids, logits, a padded batch,
//! continuation log-likelihoods, greedy continuations and the chat template.
//! The reference is assets/fixtures/qwen2.5-coder-1.5b_reference.json, made
//! by `assets/make_llm_reference.py --preset qwen2.5-coder-1.5b`; the weights
//! come from `assets/fetch.sh qwen2.5-coder-1.5b` (scripts/test.sh runs it).
//! The model is about 8 GB resident in f32.

#[macro_use]
mod common;

/// Largest accepted |logit difference| (the bound).
const LOGIT_TOLERANCE: f64 = 1e-3;

parity_tests!(uae_test_support::weights::qwen_coder(), "qwen2.5-coder-1.5b_reference.json", LOGIT_TOLERANCE);
