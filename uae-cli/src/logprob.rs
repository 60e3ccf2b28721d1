//! `uae logprob`: the log-likelihood of each line's continuation given its
//! prompt, under a teacher LLM.

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::Args;
use serde::{Deserialize, Serialize};
use uae_data::jsonl::{self, JsonlWriter};
use uae_teacher::score::{ScoreItem, score_all};
use uae_teacher::teacher::Teacher;

use crate::progress;

/// Arguments of `uae logprob`.
#[derive(Args)]
pub struct LogprobArgs {
    /// The teacher: a GGUF file, a Hugging Face directory, a hub id, or a
    /// served one, `openai:http://HOST:PORT/v1#MODEL`.
    #[arg(long)]
    teacher: String,
    /// JSONL input with lines {"id", "prompt", "continuation"}; `-` reads standard input.
    #[arg(long)]
    input: String,
    /// JSONL output with lines {"id", "logprob_sum", "logprob_mean", "n_tokens"}; `-` writes standard output.
    #[arg(long)]
    output: String,
    /// Padded tokens per forward pass; inputs are sorted by length into batches under it.
    #[arg(long, default_value_t = 4096)]
    batch_tokens: usize,
}

#[derive(Deserialize)]
struct InputLine {
    id: serde_json::Value,
    prompt: String,
    continuation: String,
}

#[derive(Serialize)]
struct OutputLine<'a> {
    id: &'a serde_json::Value,
    logprob_sum: f64,
    logprob_mean: f64,
    n_tokens: usize,
}

/// Runs `uae logprob`.
pub fn run(args: LogprobArgs, device: &Device) -> Result<()> {
    let lines: Vec<InputLine> = jsonl::read(&args.input)?;
    for (i, line) in lines.iter().enumerate() {
        for (field, text) in [("prompt", &line.prompt), ("continuation", &line.continuation)] {
            if text.is_empty() {
                bail!("{}: record {} (id {}): empty {field}", args.input, i + 1, line.id);
            }
        }
    }
    let lm = Teacher::load(&args.teacher, device)?;
    let mut items = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let item = ScoreItem { prompt: lm.encode(&line.prompt)?, continuation: lm.encode(&line.continuation)? };
        if item.prompt.is_empty() || item.continuation.is_empty() {
            bail!("{}: record {} (id {}): the prompt or continuation has no tokens", args.input, i + 1, line.id);
        }
        if item.len() > lm.context_length() {
            bail!(
                "{}: record {} (id {}): {} tokens exceed the teacher's context window of {}",
                args.input,
                i + 1,
                line.id,
                item.len(),
                lm.context_length()
            );
        }
        items.push(item);
    }
    let total_tokens: usize = items.iter().map(ScoreItem::len).sum();
    let bar = progress::bar(total_tokens as u64, "tokens");
    let start = std::time::Instant::now();
    let scores = score_all(&lm, &items, args.batch_tokens, |_, tokens| bar.inc(tokens as u64))?;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    eprintln!(
        "scored {} items, {total_tokens} tokens in {seconds:.3} s ({:.1} tokens/s) on {device:?}",
        items.len(),
        total_tokens as f64 / seconds.max(1e-9)
    );
    let mut writer = JsonlWriter::create(&args.output)?;
    for (line, score) in lines.iter().zip(&scores) {
        writer.write(&OutputLine {
            id: &line.id,
            logprob_sum: score.logprob_sum,
            logprob_mean: score.logprob_mean,
            n_tokens: score.n_tokens,
        })?;
    }
    writer.finish()
}
