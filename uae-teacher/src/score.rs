//! Batched continuation log-likelihoods: the log-probability of each
//! continuation token given the prompt and the continuation tokens before it.
//! Prompt and continuation are tokenised separately, without special tokens,
//! and their ids concatenated (the lm-evaluation-harness convention), so the
//! boundary never merges tokens across the two.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use uae_model::batch::{distinct, token_budget_batches};

use crate::teacher::Teacher;

/// One sequence to score: prompt ids, then continuation ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreItem {
    /// Context ids (never empty).
    pub prompt: Vec<u32>,
    /// Ids whose likelihood is measured (never empty).
    pub continuation: Vec<u32>,
}

impl ScoreItem {
    /// Total number of tokens the model runs on.
    pub fn len(&self) -> usize {
        self.prompt.len() + self.continuation.len()
    }

    /// Whether the item has no tokens at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The log-likelihood of one continuation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Sum of the continuation tokens' natural-log probabilities.
    pub logprob_sum: f64,
    /// That sum divided by the number of continuation tokens.
    pub logprob_mean: f64,
    /// Number of continuation tokens.
    pub n_tokens: usize,
}

impl Score {
    fn of(logprobs: &[f32]) -> Self {
        let sum: f64 = logprobs.iter().map(|&x| f64::from(x)).sum();
        Self { logprob_sum: sum, logprob_mean: sum / logprobs.len() as f64, n_tokens: logprobs.len() }
    }
}

/// Scores `items` in batches of at most `batch_tokens` padded tokens (see
/// [`score_each`]); returns the scores in input order. `progress` is called
/// after each batch with the number of items and of real tokens it held.
pub fn score_all(
    lm: &Teacher,
    items: &[ScoreItem],
    batch_tokens: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Score>> {
    let mut scores = vec![None; items.len()];
    score_each(lm, items, batch_tokens, |batch, tokens| {
        for &(i, score) in batch {
            scores[i] = Some(score);
        }
        progress(batch.len(), tokens);
        Ok(())
    })?;
    Ok(scores.into_iter().map(|s| s.expect("every item is in one batch")).collect())
}

/// Scores `items` as [`score_all`] does, handing each batch's scores (item
/// index, score) and real token count to `scored` as soon as the batch is
/// done, so that a caller can commit finished work before the rest is run.
/// Items that share their prompt run first, a prompt at a time (the prompt
/// once for all its continuations), then the others in batches, longest
/// first; an error from `scored` stops the run.
pub fn score_each(
    lm: &Teacher,
    items: &[ScoreItem],
    batch_tokens: usize,
    mut scored: impl FnMut(&[(usize, Score)], usize) -> Result<()>,
) -> Result<()> {
    for (i, item) in items.iter().enumerate() {
        if item.prompt.is_empty() || item.continuation.is_empty() {
            bail!("item {i}: the prompt and the continuation each need at least one token");
        }
        if item.len() > lm.context_length() {
            bail!("item {i}: {} tokens exceed the teacher's context window of {}", item.len(), lm.context_length());
        }
    }
    let lengths: Vec<usize> = items.iter().map(ScoreItem::len).collect();
    let mut finish = |batch: &[usize], logprobs: Vec<Vec<f32>>| {
        let mut done = Vec::with_capacity(batch.len());
        for (&i, values) in batch.iter().zip(&logprobs) {
            let score = Score::of(values);
            if !score.logprob_sum.is_finite() {
                bail!("item {i}: the teacher gave a non-finite log-likelihood ({})", score.logprob_sum);
            }
            done.push((i, score));
        }
        scored(&done, batch.iter().map(|&i| lengths[i]).sum())
    };
    // Items with the same prompt (a candidate passage of several queries in
    // question-utility labelling, the closed-book prompt of every query)
    // run a prompt at a time, the prompt once for all its continuations;
    // the rest in length-sorted batches.
    let (prompts, source) = distinct(items.iter().map(|item| item.prompt.as_slice()));
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); prompts.len()];
    for (i, &g) in source.iter().enumerate() {
        groups[g].push(i);
    }
    let (shared, single): (Vec<Vec<usize>>, Vec<Vec<usize>>) = groups.into_iter().partition(|g| g.len() > 1);
    for group in shared {
        let prompt = items[group[0]].prompt.as_slice();
        let widest = group.iter().map(|&i| lengths[i]).max().unwrap_or(1);
        for batch in group.chunks((batch_tokens / widest).max(1)) {
            let continuations: Vec<&[u32]> = batch.iter().map(|&i| items[i].continuation.as_slice()).collect();
            finish(batch, lm.shared_prompt_logprobs(prompt, &continuations)?)?;
        }
    }
    let single: Vec<usize> = single.into_iter().flatten().collect();
    let single_lengths: Vec<usize> = single.iter().map(|&i| lengths[i]).collect();
    for batch in token_budget_batches(&single_lengths, batch_tokens) {
        let batch: Vec<usize> = batch.into_iter().map(|b| single[b]).collect();
        let pairs: Vec<(&[u32], &[u32])> =
            batch.iter().map(|&i| (items[i].prompt.as_slice(), items[i].continuation.as_slice())).collect();
        finish(&batch, lm.continuation_logprobs(&pairs)?)?;
    }
    Ok(())
}
