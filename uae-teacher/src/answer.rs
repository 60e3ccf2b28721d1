//! Answer generation for the end-to-end comparison: the generator reads the
//! top-1 passage a retriever found and answers the question greedily; token
//! F1 and exact match against the gold answers then tell how much the
//! retrieved passage helped (`uae_eval::metrics::{token_f1, exact_match}`).

use anyhow::Result;
use uae_model::llm::CausalLm;

use crate::prompt::{UtilityPrompt, fit_passage};

/// Settings of answer generation.
#[derive(Debug, Clone)]
pub struct AnswerOptions {
    /// The prompt: the same one the teacher labels with, so the generator
    /// is asked exactly what the utilities measured.
    pub prompt: UtilityPrompt,
    /// Passages are cut to this many tokens.
    pub max_passage_tokens: usize,
    /// Most tokens generated.
    pub max_new_tokens: usize,
}

impl Default for AnswerOptions {
    fn default() -> Self {
        Self { prompt: UtilityPrompt::default(), max_passage_tokens: 256, max_new_tokens: 48 }
    }
}

/// The generator's answer to `question` given `passage`, greedy, without
/// special tokens, trimmed.
pub fn answer(lm: &CausalLm, question: &str, passage: &str, options: &AnswerOptions) -> Result<String> {
    let (passage, _) = fit_passage(lm, passage, options.max_passage_tokens)?;
    let prompt = options.prompt.render(lm, question, Some(&passage))?;
    let ids = lm.generate(&lm.encode(&prompt)?, options.max_new_tokens)?;
    let text = lm.decode(&ids)?;
    Ok(text.trim().to_string())
}
