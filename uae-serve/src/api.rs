//! The wire format: request and response bodies of every route, and the
//! JSON error every failure answers with.
//!
//! `/embed` follows text-embeddings-inference, `/v1/embeddings` and
//! `/v1/completions` follow OpenAI's API (the completions subset that vLLM
//! and lm-evaluation-harness use for prompt log-probabilities).

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// One text or many.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Texts {
    /// A single text.
    One(String),
    /// A list of texts.
    Many(Vec<String>),
}

impl Texts {
    /// The texts as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(t) => vec![t],
            Self::Many(v) => v,
        }
    }
}

fn yes() -> bool {
    true
}

/// `POST /embed` (text-embeddings-inference).
#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    /// The texts.
    pub inputs: Texts,
    /// L2-normalise the vectors (default true).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Cut inputs longer than the maximum input length instead of refusing them.
    #[serde(default)]
    pub truncate: bool,
    /// `query` or `passage`: which of the model's prefixes to use (default passage).
    pub prompt_name: Option<String>,
}

/// `POST /v1/embeddings` (OpenAI).
#[derive(Debug, Deserialize)]
pub struct OpenAiEmbedRequest {
    /// The texts (token arrays are not accepted).
    pub input: Texts,
    /// The model name; any value is accepted and the served model answers.
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32).
    pub encoding_format: Option<String>,
    /// Keep the first this many dimensions, renormalised.
    pub dimensions: Option<usize>,
}

/// One vector of an OpenAI embeddings response.
#[derive(Debug, Serialize)]
pub struct OpenAiEmbedding {
    /// Always `embedding`.
    pub object: &'static str,
    /// Position of its input.
    pub index: usize,
    /// Floats, or a base64 string of little-endian f32.
    pub embedding: serde_json::Value,
}

/// Token counts of a response.
#[derive(Debug, Serialize)]
pub struct Usage {
    /// Input tokens.
    pub prompt_tokens: usize,
    /// Generated tokens (completions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<usize>,
    /// All tokens.
    pub total_tokens: usize,
}

/// `POST /v1/embeddings`'s response.
#[derive(Debug, Serialize)]
pub struct OpenAiEmbedResponse {
    /// Always `list`.
    pub object: &'static str,
    /// One entry per input, in order.
    pub data: Vec<OpenAiEmbedding>,
    /// The served model's name.
    pub model: String,
    /// Token counts.
    pub usage: Usage,
}

/// `POST /search`: one query or many.
#[derive(Debug, Deserialize)]
pub struct SearchRequest {
    /// One query text.
    pub query: Option<String>,
    /// Several query texts.
    pub queries: Option<Vec<String>>,
    /// Hits per query (default 10).
    pub k: Option<usize>,
    /// Score every vector even when the index has an HNSW graph.
    #[serde(default)]
    pub exact: bool,
}

/// One passage found.
#[derive(Debug, Serialize)]
pub struct SearchHit {
    /// The passage id.
    pub id: String,
    /// Its cosine similarity to the query.
    pub score: f64,
}

/// `POST /search`'s response: one list of hits per query, in order.
#[derive(Debug, Serialize)]
pub struct SearchResponse {
    /// Hits per query, best first.
    pub results: Vec<Vec<SearchHit>>,
}

/// `POST /v1/completions` (OpenAI; greedy or sampled decoding).
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    /// The prompt or prompts.
    pub prompt: Texts,
    /// The model name; any value is accepted.
    pub model: Option<String>,
    /// Tokens to generate (default 16; 0 scores the prompt only).
    pub max_tokens: Option<usize>,
    /// Return the prompt (and its log-probabilities) before the completion.
    #[serde(default)]
    pub echo: bool,
    /// Return log-probabilities, with the top `logprobs` tokens (0 or 1).
    pub logprobs: Option<usize>,
    /// 0 (the default) decodes greedily; above 0, tokens are drawn from
    /// softmax(logits / temperature).
    pub temperature: Option<f64>,
    /// Sampling: the fewest most likely tokens whose probabilities sum to
    /// at least this, in (0, 1] (default 1).
    pub top_p: Option<f64>,
    /// Sampling: at most this many most likely tokens; 0 or below (vLLM's
    /// -1) or absent means all.
    pub top_k: Option<i64>,
    /// Sampling: the seed of the draws (a fresh one each request when absent).
    pub seed: Option<u64>,
    /// Only 1.
    pub n: Option<usize>,
    /// Only false.
    pub stream: Option<bool>,
    /// Stop sequences are not supported; only an empty value is accepted.
    pub stop: Option<serde_json::Value>,
}

/// Log-probabilities of a choice, in OpenAI's legacy completions layout.
#[derive(Debug, Serialize)]
pub struct Logprobs {
    /// Each token's text.
    pub tokens: Vec<String>,
    /// `log p(token | everything before)`; `null` for the first prompt token.
    pub token_logprobs: Vec<Option<f32>>,
    /// The most likely token at each position and its log-probability
    /// (`null` for the first prompt token); absent when `logprobs` is 0.
    pub top_logprobs: Option<Vec<Option<BTreeMap<String, f32>>>>,
    /// Character offset of each token in the choice's `text`.
    pub text_offset: Vec<usize>,
}

/// One completion.
#[derive(Debug, Serialize)]
pub struct Choice {
    /// The prompt's position.
    pub index: usize,
    /// The completion (after the prompt when `echo`).
    pub text: String,
    /// Log-probabilities when asked for.
    pub logprobs: Option<Logprobs>,
    /// `length` (hit `max_tokens`) or `stop` (end of sequence or context window).
    pub finish_reason: &'static str,
}

/// `POST /v1/completions`'s response.
#[derive(Debug, Serialize)]
pub struct CompletionResponse {
    /// A unique id.
    pub id: String,
    /// Always `text_completion`.
    pub object: &'static str,
    /// Unix time.
    pub created: u64,
    /// The teacher's name.
    pub model: String,
    /// One per prompt.
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: Usage,
}

/// A failed request: the status and a JSON body
/// `{"error": message, "error_type": kind}` (TEI's shape).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// Bad input (422), naming the field.
    pub fn validation(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, message: message.into() }
    }

    /// Too large (413).
    pub fn too_large(message: impl Into<String>) -> Self {
        Self { status: StatusCode::PAYLOAD_TOO_LARGE, message: message.into() }
    }

    /// Every slot taken (429).
    pub fn overloaded(max: usize) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("the server is answering {max} requests (--max-concurrent-requests); retry later"),
        }
    }

    /// Missing or wrong bearer token (401).
    pub fn unauthorized() -> Self {
        Self { status: StatusCode::UNAUTHORIZED, message: "a valid `Authorization: Bearer <key>` header is required".into() }
    }

    /// The route needs something the server was not started with (404).
    pub fn not_served(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    /// Inference failed (500).
    pub fn backend(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }

    /// The server is shutting down (503).
    pub fn unavailable() -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, message: "the server is shutting down".into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.status {
            StatusCode::UNPROCESSABLE_ENTITY => "validation",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::TOO_MANY_REQUESTS => "overloaded",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "backend",
        };
        let mut response = (self.status, Json(serde_json::json!({ "error": self.message, "error_type": kind }))).into_response();
        if matches!(self.status, StatusCode::UNAUTHORIZED | StatusCode::PAYLOAD_TOO_LARGE) {
            // Answered before the request body was read to its end: hyper
            // then closes the connection, so the response must say so, or a
            // keep-alive client sends its next request into the closing
            // socket and reads an unexpected EOF.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
