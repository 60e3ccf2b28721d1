//! Parity of the Burn teacher with transformers (PyTorch, fp32, eager
//! attention) on the real SmolLM2-135M-Instruct Q4_1 GGUF: token ids, logits,
//! a padded batch, continuation log-likelihoods, greedy continuations and the
//! chat template. The reference is assets/fixtures/smollm2_reference.json,
//! made by assets/make_llm_reference.py; the weights come from
//! `assets/fetch.sh smollm2` (scripts/test.sh runs it).

#[macro_use]
mod common;

/// Largest accepted |logit difference| (the bound).
const LOGIT_TOLERANCE: f64 = 1e-3;

parity_tests!(uae_test_support::weights::smollm2(), "smollm2_reference.json", LOGIT_TOLERANCE);
