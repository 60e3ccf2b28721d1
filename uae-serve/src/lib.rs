//! `uae serve`: a trained retriever behind an HTTP API.
//!
//! Routes (see [`api`] for the bodies): `POST /embed` (text-embeddings-
//! inference's), `POST /v1/embeddings` (OpenAI's), `POST /search` (the best
//! passages of an index for query texts, embedded by the index's own model),
//! `POST /v1/completions` with a teacher (greedy completions and prompt
//! log-probabilities: `echo`, `logprobs`, as vLLM and lm-evaluation-harness
//! use them), `GET /health`, `GET /info` and `GET /metrics` (Prometheus).
//!
//! Requests are parsed and validated on tokio's threads and queued for one
//! inference thread ([`worker`]), which merges whatever is waiting into one
//! batch, run in forward passes of at most `--max-batch-tokens`. Admission is bounded by
//! `--max-concurrent-requests` (429 beyond it); bodies over
//! `--payload-limit` get 413, inputs longer than the model's maximum 413
//! unless `truncate`, invalid ones 422 naming the field, a missing or wrong
//! bearer token 401 when `--api-key` is set. SIGTERM or Ctrl-C stops
//! accepting connections, answers the requests in flight, and returns.

pub mod api;
mod http;
mod metrics;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use burn::tensor::Device;
use tokio::sync::Semaphore;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The bi-encoder: a model directory or hub id.
    pub model: String,
    /// A corpus index built with `model`, for `/search`.
    pub index: Option<PathBuf>,
    /// Or a Qdrant collection `uae index push` filled with `model`'s vectors.
    pub qdrant: Option<uae_index::qdrant::Collection>,
    /// A teacher LLM (GGUF file, model directory or hub id), for `/v1/completions`.
    pub teacher: Option<String>,
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Padded tokens in one forward pass at most.
    pub max_batch_tokens: usize,
    /// Requests admitted at once (queued or running); more get 429.
    pub max_concurrent_requests: usize,
    /// Truncate inputs to this many tokens (default: the model's maximum).
    pub max_input_length: Option<usize>,
    /// Require `Authorization: Bearer <key>` on every route but `/health`.
    pub api_key: Option<String>,
    /// Largest request body in bytes; larger ones get 413.
    pub payload_limit: usize,
}

impl ServeConfig {
    /// Defaults for `model`: loopback port 8080, 2,048 batch tokens (on a
    /// CPU, larger batches are slower per text: BENCHMARKS.md, "Serving"),
    /// and TEI's other limits (512 concurrent requests, 2 MB bodies).
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            index: None,
            qdrant: None,
            teacher: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_batch_tokens: 2_048,
            max_concurrent_requests: 512,
            max_input_length: None,
            api_key: None,
            payload_limit: 2_000_000,
        }
    }
}

/// Loads the models on `device`, listens on `config.addr`, calls `ready`
/// with the bound address, and serves until SIGTERM or Ctrl-C, after which
/// the requests in flight are answered before it returns.
pub fn serve(config: ServeConfig, device: Device, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    if config.max_batch_tokens == 0 || config.max_concurrent_requests == 0 {
        anyhow::bail!("--max-batch-tokens and --max-concurrent-requests must be at least 1");
    }
    let metrics = Arc::new(metrics::Metrics::default());
    let models = worker::Models {
        model: config.model.clone(),
        max_input_length: config.max_input_length,
        index: config.index.clone(),
        qdrant: config.qdrant.clone(),
        teacher: config.teacher.clone(),
    };
    let (jobs, loaded, inference) =
        worker::start(models, device, config.max_batch_tokens, config.max_concurrent_requests, metrics.clone())?;
    let state = Arc::new(http::AppState {
        jobs,
        permits: Arc::new(Semaphore::new(config.max_concurrent_requests)),
        max_concurrent: config.max_concurrent_requests,
        loaded,
        model: config.model.clone(),
        teacher: config.teacher.clone(),
        api_key: config.api_key.clone(),
        max_batch_tokens: config.max_batch_tokens,
        payload_limit: config.payload_limit,
        metrics,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(config.addr).await.with_context(|| format!("cannot listen on {}", config.addr))?;
        ready(listener.local_addr()?);
        axum::serve(listener, http::router(state)).with_graceful_shutdown(shutdown()).await.context("the server failed")
    })?;
    // Every handler is done and the router (with the last queue sender) is
    // dropped, so the inference thread ends.
    drop(runtime);
    inference.join().map_err(|_| anyhow::anyhow!("the inference thread panicked"))?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
