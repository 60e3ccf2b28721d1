//! The routes: parse and validate on the async threads, queue a job for the
//! inference thread, and shape its answer.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use base64::Engine;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use uae_model::decoding::Decoding;
use uae_model::encoder::TextRole;

use crate::api::*;
use crate::metrics::Metrics;
use crate::worker::{Job, Loaded, Scored};

/// Everything a handler reads.
pub struct AppState {
    /// The inference thread's queue.
    pub jobs: mpsc::Sender<Job>,
    /// One permit per request admitted at once.
    pub permits: Arc<Semaphore>,
    /// `--max-concurrent-requests`.
    pub max_concurrent: usize,
    /// What the inference thread loaded.
    pub loaded: Loaded,
    /// The served model's name (its `--model`).
    pub model: String,
    /// The teacher's name (its `--teacher`).
    pub teacher: Option<String>,
    /// `--api-key`.
    pub api_key: Option<String>,
    /// `--max-batch-tokens`.
    pub max_batch_tokens: usize,
    /// `--payload-limit`.
    pub payload_limit: usize,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

type Shared = Arc<AppState>;

/// The router with every route, the bearer-token check, the body limit and
/// the request metrics.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/embed", post(embed))
        .route("/v1/embeddings", post(openai_embed))
        .route("/search", post(search))
        .route("/v1/completions", post(completions))
        .route("/health", get(|| async { "ok" }))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(DefaultBodyLimit::max(state.payload_limit))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Records each request's route, status and latency.
async fn track(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe_request(&route, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

/// With `--api-key`, every route but `/health` needs `Authorization: Bearer <key>`.
async fn authorize(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key
        && request.uri().path() != "/health"
    {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if given.and_then(|v| v.strip_prefix("Bearer ")) != Some(key.as_str()) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// An admitted request: holds its permit and counts in the queue depth.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.metrics.queue_depth.dec();
    }
}

fn admit(state: &AppState) -> Result<Admitted, ApiError> {
    let permit = state.permits.clone().try_acquire_owned().map_err(|_| ApiError::overloaded(state.max_concurrent))?;
    state.metrics.queue_depth.inc();
    Ok(Admitted { _permit: permit, metrics: state.metrics.clone() })
}

/// The JSON body as `T`; errors name the field (`inputs[2]: invalid type ...`).
fn parse<T: DeserializeOwned>(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!("the request body is larger than {} bytes (--payload-limit)", state.payload_limit))
        } else {
            ApiError::validation(format!("cannot read the request body: {e}"))
        }
    })?;
    let mut json = serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { format!("{path}: ") };
        ApiError::validation(format!("invalid request: {field}{}", e.inner()))
    })
}

/// Sends `job` and waits for its answer.
async fn ask<T>(state: &AppState, job: Job, answer: oneshot::Receiver<Result<T, String>>) -> Result<T, ApiError> {
    state.jobs.send(job).await.map_err(|_| ApiError::unavailable())?;
    answer.await.map_err(|_| ApiError::unavailable())?.map_err(ApiError::backend)
}

/// Texts checked against the encoder's maximum input length (refused with
/// 413 unless `truncate`), with each one's token count.
fn check_texts(state: &AppState, field: &str, texts: &[String], role: TextRole, truncate: bool) -> Result<usize, ApiError> {
    if texts.is_empty() {
        return Err(ApiError::validation(format!("{field}: at least one text is needed")));
    }
    let prefix = match role {
        TextRole::Query => &state.loaded.query_prefix,
        TextRole::Passage => &state.loaded.passage_prefix,
    };
    let prefixed: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
    let encoded = state.loaded.tokenizer.encode(&prefixed).map_err(|e| ApiError::validation(format!("{field}: {e:#}")))?;
    if !truncate && let Some(i) = encoded.iter().position(|e| e.truncated) {
        return Err(ApiError::too_large(format!(
            "{field}[{i}] is longer than the maximum input length of {} tokens; pass \"truncate\": true to cut it",
            state.loaded.tokenizer.max_length()
        )));
    }
    let tokens = encoded.iter().map(|e| e.ids.len()).sum();
    state.metrics.add_tokens(tokens);
    Ok(tokens)
}

async fn embed_texts(state: &AppState, texts: Vec<String>, role: TextRole, tokens: usize) -> Result<Vec<Vec<f32>>, ApiError> {
    let (reply, answer) = oneshot::channel();
    ask(state, Job::Embed { texts, role, tokens, reply }, answer).await
}

fn l2_normalised(mut v: Vec<f32>) -> Vec<f32> {
    uae_index::store::normalize(&mut v);
    v
}

async fn embed(State(state): State<Shared>, body: Result<Bytes, BytesRejection>) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    let _admitted = admit(&state)?;
    let request: EmbedRequest = parse(&state, body)?;
    let role = match request.prompt_name.as_deref() {
        None | Some("passage") => TextRole::Passage,
        Some("query") => TextRole::Query,
        Some(other) => return Err(ApiError::validation(format!("prompt_name: {other:?} is not one of query, passage"))),
    };
    let texts = request.inputs.into_vec();
    let tokens = check_texts(&state, "inputs", &texts, role, request.truncate)?;
    let vectors = embed_texts(&state, texts, role, tokens).await?;
    Ok(Json(if request.normalize { vectors.into_iter().map(l2_normalised).collect() } else { vectors }))
}

async fn openai_embed(State(state): State<Shared>, body: Result<Bytes, BytesRejection>) -> Result<Json<OpenAiEmbedResponse>, ApiError> {
    let _admitted = admit(&state)?;
    let request: OpenAiEmbedRequest = parse(&state, body)?;
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(ApiError::validation(format!("encoding_format: {other:?} is not one of float, base64"))),
    };
    let dim = state.loaded.dim;
    let keep = match request.dimensions {
        None => dim,
        Some(d) if (1..=dim).contains(&d) => d,
        Some(d) => return Err(ApiError::validation(format!("dimensions: {d} is not between 1 and the model's {dim}"))),
    };
    let texts = request.input.into_vec();
    // OpenAI's API has no truncate flag: inputs are cut to the maximum length.
    let tokens = check_texts(&state, "input", &texts, TextRole::Passage, true)?;
    let vectors = embed_texts(&state, texts, TextRole::Passage, tokens).await?;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let v = l2_normalised(v.into_iter().take(keep).collect());
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                serde_json::json!(v)
            };
            OpenAiEmbedding { object: "embedding", index, embedding }
        })
        .collect();
    let usage = Usage { prompt_tokens: tokens, completion_tokens: None, total_tokens: tokens };
    Ok(Json(OpenAiEmbedResponse { object: "list", data, model: state.model.clone(), usage }))
}

async fn search(State(state): State<Shared>, body: Result<Bytes, BytesRejection>) -> Result<Json<SearchResponse>, ApiError> {
    let _admitted = admit(&state)?;
    let request: SearchRequest = parse(&state, body)?;
    if state.loaded.index_size.is_none() {
        return Err(ApiError::not_served("/search needs an index: start the server with --index"));
    }
    let queries = match (request.query, request.queries) {
        (Some(q), None) => vec![q],
        (None, Some(qs)) => qs,
        _ => return Err(ApiError::validation("query, queries: give exactly one of them")),
    };
    let k = request.k.unwrap_or(10);
    if k == 0 {
        return Err(ApiError::validation("k: must be at least 1"));
    }
    let tokens = check_texts(&state, "queries", &queries, TextRole::Query, true)?;
    let (reply, answer) = oneshot::channel();
    let rankings = ask(&state, Job::Search { queries, k, exact: request.exact, tokens, reply }, answer).await?;
    let results = rankings
        .into_iter()
        .map(|ranking| ranking.into_iter().map(|hit| SearchHit { id: hit.id, score: hit.score }).collect())
        .collect();
    Ok(Json(SearchResponse { results }))
}

async fn completions(State(state): State<Shared>, body: Result<Bytes, BytesRejection>) -> Result<Json<CompletionResponse>, ApiError> {
    let _admitted = admit(&state)?;
    let request: CompletionRequest = parse(&state, body)?;
    let Some((tokenizer, context)) = &state.loaded.teacher else {
        return Err(ApiError::not_served("/v1/completions needs a teacher: start the server with --teacher"));
    };
    let decoding = match request.temperature.unwrap_or(0.0) {
        t if t == 0.0 => Decoding::Greedy,
        t if t > 0.0 && t.is_finite() => {
            let top_p = request.top_p.unwrap_or(1.0);
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(ApiError::validation(format!("top_p: {top_p} is not in (0, 1]")));
            }
            let top_k = request.top_k.filter(|&k| k > 0).map_or(usize::MAX, |k| k as usize);
            Decoding::Sample { temperature: t as f32, top_k, top_p: top_p as f32, seed: request.seed.unwrap_or_else(rand::random) }
        }
        t => return Err(ApiError::validation(format!("temperature: {t} is not 0 (greedy) or above"))),
    };
    if request.n.is_some_and(|n| n != 1) {
        return Err(ApiError::validation("n: only 1 is served"));
    }
    if request.stream == Some(true) {
        return Err(ApiError::validation("stream: streaming is not served"));
    }
    let no_stop = match &request.stop {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Array(a)) => a.is_empty(),
        Some(serde_json::Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if !no_stop {
        return Err(ApiError::validation("stop: stop sequences are not served"));
    }
    let top = match request.logprobs {
        None => None,
        Some(n @ (0 | 1)) => Some(n == 1),
        Some(n) => return Err(ApiError::validation(format!("logprobs: {n} is not served (0 or 1)"))),
    };
    let max_tokens = request.max_tokens.unwrap_or(16);
    let prompts = request.prompt.into_vec();
    let mut encoded = Vec::with_capacity(prompts.len());
    for (i, prompt) in prompts.iter().enumerate() {
        let e = tokenizer.encode_char_offsets(prompt.as_str(), false).map_err(|e| ApiError::validation(format!("prompt[{i}]: {e}")))?;
        if e.get_ids().is_empty() {
            return Err(ApiError::validation(format!("prompt[{i}]: the prompt has no tokens")));
        }
        if e.get_ids().len() + max_tokens > *context {
            return Err(ApiError::validation(format!(
                "prompt[{i}], max_tokens: {} prompt tokens and {max_tokens} new ones exceed the teacher's context window of {context}",
                e.get_ids().len()
            )));
        }
        encoded.push(e);
    }
    let prompt_tokens: usize = encoded.iter().map(|e| e.get_ids().len()).sum();
    state.metrics.add_tokens(prompt_tokens);
    let (reply, answer) = oneshot::channel();
    let ids: Vec<Vec<u32>> = encoded.iter().map(|e| e.get_ids().to_vec()).collect();
    let scored = ask(&state, Job::Complete { prompts: ids, max_tokens, decoding, reply }, answer).await?;
    let decode = |ids: &[u32], skip: bool| tokenizer.decode(ids, skip).unwrap_or_default();
    let mut choices = Vec::with_capacity(scored.len());
    let mut completion_tokens = 0;
    for (index, ((prompt, e), s)) in prompts.iter().zip(&encoded).zip(&scored).enumerate() {
        completion_tokens += s.generated;
        let n_prompt = s.ids.len() - s.generated;
        let generated = &s.ids[n_prompt..];
        let completion = decode(generated, true);
        let text = if request.echo { format!("{prompt}{completion}") } else { completion };
        let logprobs = top.map(|with_top| choice_logprobs(s, e, prompt, request.echo, with_top, &decode));
        let finish_reason = if s.generated == max_tokens { "length" } else { "stop" };
        choices.push(Choice { index, text, logprobs, finish_reason });
    }
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let usage = Usage { prompt_tokens, completion_tokens: Some(completion_tokens), total_tokens: prompt_tokens + completion_tokens };
    let model = state.teacher.clone().unwrap_or_default();
    Ok(Json(CompletionResponse { id: format!("cmpl-{created}-{prompt_tokens}"), object: "text_completion", created, model, choices, usage }))
}

/// The log-probabilities of one choice: the prompt's tokens first when
/// `echo` (the first has none), then the generated ones.
fn choice_logprobs(
    s: &Scored,
    e: &tokenizers::Encoding,
    prompt: &str,
    echo: bool,
    with_top: bool,
    decode: &dyn Fn(&[u32], bool) -> String,
) -> Logprobs {
    let n_prompt = s.ids.len() - s.generated;
    let mut out = Logprobs { tokens: Vec::new(), token_logprobs: Vec::new(), top_logprobs: with_top.then(Vec::new), text_offset: Vec::new() };
    let push = |out: &mut Logprobs, position: usize, offset: usize| {
        let id = s.ids[position];
        out.tokens.push(decode(&[id], false));
        out.text_offset.push(offset);
        // logprobs[i] scores ids[i + 1].
        let scored = position.checked_sub(1).map(|p| (s.logprobs[p], s.top[p]));
        out.token_logprobs.push(scored.map(|(lp, _)| lp));
        if let Some(tops) = &mut out.top_logprobs {
            tops.push(scored.map(|(_, (best, lp))| [(decode(&[best], false), lp)].into_iter().collect()));
        }
    };
    let mut offset = 0;
    if echo {
        for (position, &(start, _)) in e.get_offsets().iter().enumerate() {
            push(&mut out, position, start);
        }
        offset = prompt.chars().count();
    }
    for position in n_prompt..s.ids.len() {
        push(&mut out, position, offset);
        offset += decode(&[s.ids[position]], true).chars().count();
    }
    out
}

async fn info(State(state): State<Shared>) -> Json<serde_json::Value> {
    let loaded = &state.loaded;
    Json(serde_json::json!({
        "model_id": state.model,
        "model_dtype": "float32",
        "dimension": loaded.dim,
        "max_input_length": loaded.tokenizer.max_length(),
        "max_batch_tokens": state.max_batch_tokens,
        "max_concurrent_requests": state.max_concurrent,
        "index": loaded.index_size.map(|size| serde_json::json!({ "size": size, "hnsw": loaded.hnsw })),
        "teacher": state.teacher.as_ref().map(|t| serde_json::json!({
            "model_id": t,
            "context_length": loaded.teacher.as_ref().map(|(_, c)| *c),
        })),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
