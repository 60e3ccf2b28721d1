//! `uae serve`: the bi-encoder, an index and a teacher behind HTTP (`uae_serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use clap::Args;
use uae_serve::{ServeConfig, serve};

/// Arguments of `uae serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The bi-encoder: a model directory in the Hugging Face layout, or a hub id.
    #[arg(long)]
    model: String,
    /// A corpus index built with this model, for POST /search.
    #[arg(long, conflicts_with = "qdrant")]
    index: Option<PathBuf>,
    /// Or a Qdrant server's gRPC address (http://HOST:6334) whose --collection
    /// `uae index push` filled with this model's vectors, for POST /search.
    #[arg(long, requires = "collection")]
    qdrant: Option<String>,
    /// The Qdrant collection.
    #[arg(long, requires = "qdrant")]
    collection: Option<String>,
    /// A teacher LLM (GGUF file, model directory or hub id), for POST /v1/completions.
    #[arg(long)]
    teacher: Option<String>,
    /// Address to listen on (loopback unless told otherwise; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Padded tokens in one forward pass at most.
    #[arg(long, default_value_t = ServeConfig::new("").max_batch_tokens)]
    max_batch_tokens: usize,
    /// Requests admitted at once (queued or running); more are answered 429.
    #[arg(long, default_value_t = ServeConfig::new("").max_concurrent_requests)]
    max_concurrent_requests: usize,
    /// Truncate inputs to this many tokens (default: the model's maximum).
    #[arg(long)]
    max_input_length: Option<usize>,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, env = "UAE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Largest request body in bytes; larger ones are answered 413.
    #[arg(long, default_value_t = ServeConfig::new("").payload_limit)]
    payload_limit: usize,
}

/// Runs `uae serve` until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs, device: Device) -> Result<()> {
    let config = ServeConfig {
        model: args.model,
        index: args.index,
        qdrant: args.qdrant.zip(args.collection).map(|(url, name)| uae_index::qdrant::Collection { url, name }),
        teacher: args.teacher,
        addr: args.addr,
        max_batch_tokens: args.max_batch_tokens,
        max_concurrent_requests: args.max_concurrent_requests,
        max_input_length: args.max_input_length,
        api_key: args.api_key,
        payload_limit: args.payload_limit,
    };
    serve(config, device, |addr| eprintln!("listening on http://{addr}"))?;
    eprintln!("stopped: every request in flight was answered");
    Ok(())
}
