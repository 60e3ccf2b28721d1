//! Answer generation for the end-to-end comparison: the generator reads the
//! top-1 passage a retriever found and answers the question greedily; token
//! F1 and exact match against the gold answers then tell how much the
//! retrieved passage helped (`uae_eval::metrics::{token_f1, exact_match}`).

use anyhow::Result;

use crate::prompt::{UtilityPrompt, fit_passage};
use crate::teacher::Teacher;

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

/// Questions answered together in one generation batch by [`answer_all`].
pub const ANSWER_BATCH: usize = 8;

/// The generator's answer to each `(question, passage)` pair, greedy,
/// without special tokens, trimmed, in order; generated
/// [`ANSWER_BATCH`] at a time (batching does not change an answer:
/// `CausalLm::generate_batch`). `progress` gets the number of answers
/// finished after each batch.
pub fn answer_all(
    lm: &Teacher,
    pairs: &[(&str, &str)],
    options: &AnswerOptions,
    mut progress: impl FnMut(usize),
) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(ANSWER_BATCH) {
        let prompts = chunk
            .iter()
            .map(|(question, passage)| {
                let (passage, _) = fit_passage(lm, passage, options.max_passage_tokens)?;
                lm.encode(&options.prompt.render(lm, question, Some(&passage))?)
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        for ids in lm.generate_batch(&refs, options.max_new_tokens)? {
            out.push(lm.decode(&ids)?.trim().to_string());
        }
        progress(chunk.len());
    }
    Ok(out)
}
