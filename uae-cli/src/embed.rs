//! `uae embed`: JSONL texts in, JSONL embeddings out, in input order.

use anyhow::Result;
use burn::tensor::Device;
use clap::Args;
use serde::{Deserialize, Serialize};
use uae_model::encoder::{BiEncoder, EncoderOptions, NonFiniteEmbedding, TextRole};
use uae_data::Shard;
use uae_data::jsonl::{self, JsonlWriter};

use crate::progress;

/// Arguments of `uae embed`.
#[derive(Args)]
pub struct EmbedArgs {
    /// A model directory in the Hugging Face layout, or a hub id.
    #[arg(long)]
    model: String,
    /// JSONL input with lines {"id": ..., "text": ...}; `-` reads standard input.
    #[arg(long)]
    input: String,
    /// JSONL output with lines {"id": ..., "embedding": [...]}; `-` writes standard output.
    #[arg(long)]
    output: String,
    /// Embed the texts as queries (with the model's query prefix) rather than passages.
    #[arg(long)]
    query: bool,
    /// Padded tokens per forward pass; inputs are sorted by length into batches under it.
    #[arg(long, default_value_t = 1024)]
    batch_tokens: usize,
    /// Truncate inputs to this many tokens (default: the model's maximum).
    #[arg(long)]
    max_length: Option<usize>,
    /// Override the model's query prefix.
    #[arg(long)]
    query_prefix: Option<String>,
    /// Override the model's passage prefix.
    #[arg(long)]
    passage_prefix: Option<String>,
    /// Embed only the lines at positions i mod n of the input, e.g. 0/4 (one
    /// shard per machine; the ids tell which text each vector is).
    #[arg(long)]
    shard: Option<Shard>,
}

#[derive(Deserialize)]
struct TextLine {
    id: serde_json::Value,
    text: String,
}

#[derive(Serialize)]
struct EmbeddingLine<'a> {
    id: &'a serde_json::Value,
    embedding: &'a [f32],
}

/// Runs `uae embed`.
pub fn run(args: EmbedArgs, device: &Device) -> Result<()> {
    let mut lines: Vec<TextLine> = jsonl::read(&args.input)?;
    if let Some(shard) = args.shard {
        lines = lines.into_iter().enumerate().filter(|(i, _)| shard.holds(*i)).map(|(_, l)| l).collect();
    }
    let options = EncoderOptions {
        max_length: args.max_length,
        query_prefix: args.query_prefix,
        passage_prefix: args.passage_prefix,
    };
    let encoder = BiEncoder::load(&args.model, device, &options)?;
    let texts: Vec<String> = lines.iter().map(|l| l.text.clone()).collect();
    let role = if args.query { TextRole::Query } else { TextRole::Passage };
    let bar = progress::bar(texts.len() as u64, "texts");
    let start = std::time::Instant::now();
    let output = encoder.embed(&texts, role, args.batch_tokens, |done| bar.inc(done as u64)).map_err(|e| {
        // Name the input line a non-finite vector came from by its id.
        match e.downcast_ref::<NonFiniteEmbedding>().map(|bad| &lines[bad.index].id) {
            Some(id) => e.context(format!("{}: the text with id {id}", args.input)),
            None => e,
        }
    })?;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    eprintln!(
        "embedded {} texts in {seconds:.3} s ({:.1} texts/s) on {device:?}",
        texts.len(),
        texts.len() as f64 / seconds.max(1e-9)
    );
    if output.truncated > 0 {
        eprintln!(
            "warning: {} of {} inputs were longer than {} tokens and were truncated",
            output.truncated,
            texts.len(),
            encoder.max_length()
        );
    }
    let mut writer = JsonlWriter::create(&args.output)?;
    for (line, embedding) in lines.iter().zip(&output.vectors) {
        writer.write(&EmbeddingLine { id: &line.id, embedding })?;
    }
    writer.finish()
}
