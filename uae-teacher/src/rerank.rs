//! LLM re-ranking at query time, the baseline a utility-aligned student is
//! measured against: the teacher re-scores a first-stage retriever's top
//! passages by how likely it finds the question given each passage (query
//! likelihood, as in UPR, Sachan et al. 2022). The gold answer is unknown at
//! query time, so the perplexity is taken on the question instead of on the
//! answer; every candidate costs one teacher pass.

use anyhow::{Result, bail};
use uae_data::ranking::{self, Hit, Ranking};

use crate::prompt::{QUESTION_WITH_PASSAGE, Utility, UtilityPrompt, fit_passage};
use crate::score::{ScoreItem, score_all};
use crate::teacher::Teacher;

/// How candidates are put before the teacher.
#[derive(Debug, Clone)]
pub struct RerankOptions {
    /// Template with `{passage}`; the question is the continuation scored.
    pub prompt: String,
    /// Passages are cut to this many teacher tokens.
    pub max_passage_tokens: usize,
    /// Padded tokens per teacher batch.
    pub batch_tokens: usize,
}

impl Default for RerankOptions {
    fn default() -> Self {
        Self { prompt: QUESTION_WITH_PASSAGE.into(), max_passage_tokens: 256, batch_tokens: 4096 }
    }
}

/// Scores each of `passages` by the teacher's mean log-probability of the
/// question's tokens after the passage prompt (the prompts of
/// [`Utility::Question`]), in input order; a re-ranker sorts by it, highest
/// first.
pub fn question_likelihoods(lm: &Teacher, question: &str, passages: &[&str], options: &RerankOptions) -> Result<Vec<f64>> {
    let prompt = UtilityPrompt { with_passage: options.prompt.clone(), ..UtilityPrompt::of(Utility::Question) };
    prompt.validate().map_err(|e| anyhow::anyhow!("the re-ranking prompt: {e}"))?;
    let continuation = lm.encode(&prompt.continuation(lm, question))?;
    if continuation.is_empty() {
        bail!("the question is empty");
    }
    let items = passages
        .iter()
        .map(|passage| {
            let (passage, _) = fit_passage(lm, passage, options.max_passage_tokens)?;
            let text = prompt.render(lm, question, Some(&passage))?;
            Ok(ScoreItem { prompt: lm.encode(&text)?, continuation: continuation.clone() })
        })
        .collect::<Result<Vec<_>>>()?;
    let scores = score_all(lm, &items, options.batch_tokens, |_, _| {})?;
    Ok(scores.iter().map(|s| s.logprob_mean).collect())
}

/// Orders `candidates` (document id, passage text) by
/// [`question_likelihoods`], in the one ranking order (docs/method.md,
/// "Ranking order": score descending, then document id).
pub fn rerank(lm: &Teacher, question: &str, candidates: &[(String, String)], options: &RerankOptions) -> Result<Ranking> {
    let texts: Vec<&str> = candidates.iter().map(|(_, t)| t.as_str()).collect();
    let scores = question_likelihoods(lm, question, &texts, options)?;
    let mut ranked: Ranking = candidates.iter().zip(scores).map(|((id, _), score)| Hit::new(id.clone(), score)).collect();
    ranking::sort(&mut ranked);
    Ok(ranked)
}
