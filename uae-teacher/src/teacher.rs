//! The teacher: a causal LM run here ([`CausalLm`]), or one served by
//! another process behind OpenAI's `/v1/completions` (vLLM, llama.cpp's
//! Python server, `uae serve --teacher`), named
//! `openai:http://HOST:PORT/v1#MODEL`.
//!
//! A remote teacher still needs the text side here ([`LmTokenizer`]): the
//! prompts are rendered and tokenised locally exactly as for a local one,
//! so both kinds score the same tokens. `MODEL` is the model name sent to
//! the server and also where that text side is found (a GGUF file, a
//! Hugging Face directory or a hub id, fetched without its weights).
//!
//! Prompt log-probabilities come from `echo: true, logprobs: 1,
//! max_tokens: 1` (the contract lm-evaluation-harness uses with vLLM): the
//! server tokenises `prompt text + continuation text` itself and returns
//! every prompt token with its log-probability. The continuation's tokens
//! are found from the end of that list and must spell the continuation in
//! as many tokens as the local tokenizer makes of it (or, for servers that
//! list some tokens as bytes, start at the prompt's end by their offsets):
//! a server whose tokenizer differs, or that merges tokens across the
//! boundary, is an error rather than a silently shifted score.
//!
//! llama-cpp-python 0.3.36 pairs each echoed token with the log-probability
//! of the next position unless the prompt begins with the BOS token
//! (`llama.py`, `logits_to_logprobs(self._scores)[token_offset:]`): chat
//! prompts of a model whose template opens with its BOS token (SmolLM2's
//! `<|im_start|>`) are scored right, plain-text prompts are not, and
//! nothing in its answer tells them apart (docs/scale.md).

use std::ops::Deref;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::Device;
use serde::Deserialize;
use uae_model::decoding::Decoding;
use uae_model::llm::{CausalLm, LmTokenizer};

/// A teacher LLM, local or remote; its text side through `Deref`.
pub enum Teacher {
    /// Run here on Burn.
    Local(CausalLm),
    /// Served elsewhere behind `/v1/completions`.
    Remote(RemoteTeacher),
}

impl Teacher {
    /// Loads `spec`: `openai:URL#MODEL` for a served teacher, otherwise a
    /// GGUF file, a Hugging Face directory or a hub id run on `device`.
    pub fn load(spec: &str, device: &Device) -> Result<Self> {
        match spec.strip_prefix("openai:") {
            Some(rest) => Ok(Self::Remote(RemoteTeacher::connect(rest, RemoteOptions::from_env()?)?)),
            None => Ok(Self::Local(CausalLm::load(spec, device)?)),
        }
    }

    /// What labels record as their teacher: the local model's file or
    /// directory, or `openai:URL#MODEL`.
    pub fn name(&self) -> String {
        match self {
            Self::Local(lm) => lm.source().display().to_string(),
            Self::Remote(r) => format!("openai:{}#{}", r.base, r.model),
        }
    }

    /// Greedy continuations of `prompts`, at most `max_new_tokens` ids each
    /// (see [`CausalLm::generate_batch`]). A served teacher decodes with
    /// `temperature: 0` and its text is tokenised here; an end-of-sequence
    /// token is not part of it.
    pub fn generate_batch(&self, prompts: &[&[u32]], max_new_tokens: usize) -> Result<Vec<Vec<u32>>> {
        self.generate_batch_with(prompts, max_new_tokens, &vec![Decoding::Greedy; prompts.len()])
    }

    /// [`Self::generate_batch`] with each prompt's own [`Decoding`] (see
    /// [`CausalLm::generate_batch_with`]); a served teacher gets the
    /// sampling settings and seed in its request (`temperature`, `top_k`,
    /// `top_p`, `seed`: llama.cpp's server and vLLM read them).
    pub fn generate_batch_with(&self, prompts: &[&[u32]], max_new_tokens: usize, decodings: &[Decoding]) -> Result<Vec<Vec<u32>>> {
        match self {
            Self::Local(lm) => lm.generate_batch_with(prompts, max_new_tokens, decodings),
            Self::Remote(r) => {
                if decodings.len() != prompts.len() {
                    bail!("{} decodings for {} prompts", decodings.len(), prompts.len());
                }
                let pairs: Vec<(&[u32], Decoding)> = prompts.iter().copied().zip(decodings.iter().copied()).collect();
                r.each(&pairs, |&(prompt, decoding)| r.generate(prompt, max_new_tokens, decoding))
            }
        }
    }

    /// Log-probabilities of each continuation token given the prompt and the
    /// continuation tokens before it, per `(prompt, continuation)` id pair
    /// (see [`CausalLm::continuation_logprobs`]).
    pub fn continuation_logprobs(&self, pairs: &[(&[u32], &[u32])]) -> Result<Vec<Vec<f32>>> {
        match self {
            Self::Local(lm) => lm.continuation_logprobs(pairs),
            Self::Remote(r) => r.continuation_logprobs(pairs),
        }
    }

    /// [`Self::continuation_logprobs`] of several continuations of one
    /// prompt; a local teacher runs the prompt once for all of them (see
    /// [`CausalLm::shared_prompt_logprobs`]).
    pub fn shared_prompt_logprobs(&self, prompt: &[u32], continuations: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        match self {
            Self::Local(lm) => lm.shared_prompt_logprobs(prompt, continuations),
            Self::Remote(r) => {
                let pairs: Vec<(&[u32], &[u32])> = continuations.iter().map(|&c| (prompt, c)).collect();
                r.continuation_logprobs(&pairs)
            }
        }
    }
}

impl Deref for Teacher {
    type Target = LmTokenizer;

    fn deref(&self) -> &LmTokenizer {
        match self {
            Self::Local(lm) => lm,
            Self::Remote(r) => &r.text,
        }
    }
}

/// How a remote teacher is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Requests in flight at once (one per scored sequence).
    pub concurrency: usize,
    /// Retries of a request that failed to connect, timed out, or got a 429
    /// or 5xx answer, with exponential backoff from 0.5 s to 10 s.
    pub retries: u32,
    /// Time limit of one request.
    pub timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self { concurrency: 8, retries: 4, timeout: Duration::from_secs(300) }
    }
}

impl RemoteOptions {
    /// The defaults, overridden by `UAE_TEACHER_CONCURRENCY`,
    /// `UAE_TEACHER_RETRIES` and `UAE_TEACHER_TIMEOUT` (seconds).
    pub fn from_env() -> Result<Self> {
        fn var<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
            match std::env::var(name) {
                Ok(v) => v.trim().parse().map(Some).map_err(|_| anyhow!("{name}={v:?} is not a valid number")),
                Err(_) => Ok(None),
            }
        }
        let mut out = Self::default();
        if let Some(n) = var::<usize>("UAE_TEACHER_CONCURRENCY")? {
            out.concurrency = n.max(1);
        }
        if let Some(n) = var("UAE_TEACHER_RETRIES")? {
            out.retries = n;
        }
        if let Some(s) = var::<f64>("UAE_TEACHER_TIMEOUT")? {
            out.timeout = Duration::from_secs_f64(s.max(0.001));
        }
        Ok(out)
    }
}

/// The longest wait between two tries of a request.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A teacher behind an OpenAI-compatible `/v1/completions`.
pub struct RemoteTeacher {
    base: String,
    model: String,
    text: LmTokenizer,
    agent: ureq::Agent,
    api_key: Option<String>,
    options: RemoteOptions,
}

#[derive(Deserialize)]
struct CompletionBody {
    choices: Vec<CompletionChoice>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    text: String,
    logprobs: Option<ChoiceLogprobs>,
}

#[derive(Deserialize)]
struct ChoiceLogprobs {
    tokens: Vec<String>,
    token_logprobs: Vec<Option<f64>>,
    #[serde(default)]
    text_offset: Vec<usize>,
}

impl RemoteTeacher {
    /// Connects to `URL#MODEL` (what follows `openai:`), loads `MODEL`'s
    /// text side, and checks once that the server returns prompt
    /// log-probabilities. `OPENAI_API_KEY`, when set, is sent as a bearer
    /// token.
    pub fn connect(spec: &str, options: RemoteOptions) -> Result<Self> {
        let (base, model) = spec.split_once('#').ok_or_else(|| {
            anyhow!("teacher openai:{spec} names no model: write openai:http://HOST:PORT/v1#MODEL, where MODEL is the served model's name and a GGUF file, directory or hub id with its tokenizer")
        })?;
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("teacher openai:{spec}: the server address must start with http:// or https://");
        }
        let text = LmTokenizer::load(model)
            .with_context(|| format!("teacher openai:{spec}: loading the tokenizer of {model:?} (the part after #)"))?;
        let agent = ureq::AgentBuilder::new().timeout(options.timeout).build();
        let api_key = std::env::var("OPENAI_API_KEY").ok().filter(|k| !k.is_empty());
        let teacher = Self { base: base.trim_end_matches('/').to_string(), model: model.to_string(), text, agent, api_key, options };
        teacher.probe()?;
        Ok(teacher)
    }

    /// Scores one short pair, so that a server without prompt
    /// log-probabilities is found before any work is queued.
    fn probe(&self) -> Result<()> {
        let prompt = self.text.encode("The sky is")?;
        let continuation = self.text.encode(" blue")?;
        if prompt.is_empty() || continuation.is_empty() {
            return Ok(());
        }
        self.score_one(&prompt, &continuation).map(|_| ()).with_context(|| {
            format!("the teacher server {} did not return prompt log-probabilities for a test prompt", self.base)
        })
    }

    fn continuation_logprobs(&self, pairs: &[(&[u32], &[u32])]) -> Result<Vec<Vec<f32>>> {
        self.each(pairs, |&(prompt, continuation)| self.score_one(prompt, continuation))
    }

    /// The server's completion of `prompt` (greedy or sampled), tokenised here.
    fn generate(&self, prompt: &[u32], max_new_tokens: usize, decoding: Decoding) -> Result<Vec<u32>> {
        let mut request = serde_json::json!({
            "model": self.model,
            "prompt": self.text.text_of(prompt)?,
            "max_tokens": max_new_tokens,
            "temperature": 0,
        });
        if let Decoding::Sample { temperature, top_k, top_p, seed } = decoding {
            request["temperature"] = serde_json::json!(temperature);
            request["top_k"] = serde_json::json!(top_k);
            request["top_p"] = serde_json::json!(top_p);
            request["seed"] = serde_json::json!(seed);
        }
        let body: CompletionBody = self.post("completions", &request)?;
        let choice = body.choices.into_iter().next().ok_or_else(|| anyhow!("the answer has no choices"))?;
        self.text.encode(&choice.text)
    }

    /// `call` on every item, `concurrency` requests in flight; results in
    /// input order, the first error (naming its item) stops the rest.
    fn each<I: Sync, T: Send>(&self, items: &[I], call: impl Fn(&I) -> Result<T> + Sync) -> Result<Vec<T>> {
        let mut out: Vec<Option<Result<T>>> = (0..items.len()).map(|_| None).collect();
        let pairs = items;
        let threads = self.options.concurrency.min(pairs.len()).max(1);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(&mut out);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = pairs.get(i) else { break };
                        let result = call(item);
                        let failed = result.is_err();
                        results.lock().expect("no thread panics holding it")[i] = Some(result);
                        if failed {
                            // Stop handing out work; the first error is returned.
                            next.store(pairs.len(), std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        out.into_iter()
            .enumerate()
            .map(|(i, r)| r.unwrap_or_else(|| Err(anyhow!("item {i} was not sent"))).with_context(|| format!("item {i} (counting from 0)")))
            .collect()
    }

    /// Sends `prompt + continuation` as text and reads the continuation's
    /// log-probabilities (see the module documentation).
    fn score_one(&self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<f32>> {
        let prompt_text = self.text.text_of(prompt)?;
        let continuation_text = self.text.text_of(continuation)?;
        let full = format!("{prompt_text}{continuation_text}");
        let request = serde_json::json!({
            "model": self.model,
            "prompt": full,
            "echo": true,
            "logprobs": 1,
            "max_tokens": 1,
            "temperature": 0,
        });
        let body: CompletionBody = self.post("completions", &request)?;
        let choice = body.choices.into_iter().next().ok_or_else(|| anyhow!("the answer has no choices"))?;
        let logprobs = choice.logprobs.ok_or_else(|| {
            anyhow!("the answer has no logprobs: the server does not return prompt log-probabilities with echo (vLLM and llama-cpp-python do)")
        })?;
        let generated = choice.text.strip_prefix(full.as_str()).ok_or_else(|| {
            anyhow!("the answer's text does not begin with the prompt sent (echo is not honoured)")
        })?;
        let boundary = prompt_text.chars().count();
        let first = continuation_start(&logprobs, generated, &continuation_text, continuation.len(), boundary).ok_or_else(|| {
            let tail = &logprobs.tokens[logprobs.tokens.len().saturating_sub(continuation.len() + 2)..];
            anyhow!(
                "the server tokenises the text differently from the local tokenizer of {}: the continuation {continuation_text:?} \
                 is {} tokens here, and the server's echoed tokens end {tail:?}; serve the model that #MODEL names",
                self.model,
                continuation.len()
            )
        })?;
        logprobs.token_logprobs[first..first + continuation.len()]
            .iter()
            .enumerate()
            .map(|(j, lp)| match lp {
                Some(v) if v.is_finite() => Ok(*v as f32),
                other => bail!("continuation token {j}: the server gave log-probability {other:?}"),
            })
            .collect()
    }

    /// POSTs `body` to `{base}/{route}`, retrying what may pass (no
    /// connection, a time-out, 429, 5xx) with exponential backoff.
    fn post<T: serde::de::DeserializeOwned>(&self, route: &str, body: &serde_json::Value) -> Result<T> {
        let url = format!("{}/{route}", self.base);
        let mut delay = Duration::from_millis(500);
        for attempt in 0..=self.options.retries {
            let mut request = self.agent.post(&url);
            if let Some(key) = &self.api_key {
                request = request.set("Authorization", &format!("Bearer {key}"));
            }
            let retryable = match request.send_json(body) {
                Ok(response) => {
                    return response.into_json().with_context(|| format!("{url}: the answer is not the JSON of a completion"));
                }
                Err(ureq::Error::Status(code, response)) => {
                    let text = response.into_string().unwrap_or_default();
                    if code == 429 || code >= 500 {
                        format!("HTTP {code}: {text}")
                    } else {
                        bail!("{url}: HTTP {code}: {}", text.trim());
                    }
                }
                Err(ureq::Error::Transport(e)) => e.to_string(),
            };
            if attempt == self.options.retries {
                bail!("{url}: {retryable} (after {} tries)", attempt + 1);
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_BACKOFF);
        }
        unreachable!("the loop returns on its last attempt")
    }
}

/// Where the continuation's `n` tokens start among the echoed tokens, found
/// from the end: before the generated token (servers differ in whether it
/// is listed), `n` tokens must spell `continuation` (the local tokenizer's
/// split). Servers that list bytes
/// rather than text for some tokens fail that; then the offsets decide:
/// the continuation must start at character `boundary`, where the prompt
/// ends. Matching from the
/// end also copes with a server that leaves a leading BOS token out of the
/// list but not out of its text (llama-cpp-python).
fn continuation_start(logprobs: &ChoiceLogprobs, generated: &str, continuation: &str, n: usize, boundary: usize) -> Option<usize> {
    let tokens = &logprobs.tokens;
    if tokens.len() != logprobs.token_logprobs.len() {
        return None;
    }
    // The request generates one token, which a server may list after the
    // prompt's (uae serve, vLLM) or not (llama-cpp-python), and whose text
    // may be missing from the answer's (a special token): the prompt ends
    // before the last listed token or at the end, the first tried being the
    // one the last token's text suggests.
    let last_is_generated = !generated.is_empty() && tokens.last().is_some_and(|t| t == generated);
    let ends = if last_is_generated { [1, 0] } else { [0, 1] };
    let starts: Vec<usize> = ends.iter().filter_map(|&k| tokens.len().checked_sub(k + n).filter(|&s| s > 0)).collect();
    if let Some(&start) = starts.iter().find(|&&s| tokens[s..s + n].concat() == continuation) {
        return Some(start);
    }
    // By offsets, at the likelier end only: the continuation starts where
    // the prompt ends.
    starts.first().copied().filter(|&s| logprobs.text_offset.get(s) == Some(&boundary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logprobs(tokens: &[&str], offsets: &[usize]) -> ChoiceLogprobs {
        ChoiceLogprobs {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            token_logprobs: (0..tokens.len()).map(|i| (i > 0).then_some(-(i as f64))).collect(),
            text_offset: offsets.to_vec(),
        }
    }

    #[test]
    fn the_continuation_is_found_from_the_end() {
        // uae serve and vLLM: every prompt token, then the generated one.
        let served = logprobs(&["The", " sky", " is", " blue", "."], &[0, 3, 7, 10, 15]);
        assert_eq!(continuation_start(&served, ".", " blue", 1, 10), Some(3));
        // llama-cpp-python without the generated token in the list, and with
        // a leading BOS left out of the list (offsets shifted by its text).
        let llama = logprobs(&["The", " sky", " is", " bl", "ue"], &[0, 3, 7, 10, 13]);
        assert_eq!(continuation_start(&llama, "\n", " blue", 2, 22), Some(3));
        // Another split than the local tokenizer's: refused.
        assert_eq!(continuation_start(&llama, "\n", " blue", 1, 10), None);
        // A generated special token listed, its text not in the answer's.
        let silent = logprobs(&["The", " sky", " is", " blue", "<|endoftext|>"], &[0, 3, 7, 10, 15]);
        assert_eq!(continuation_start(&silent, "", " blue", 1, 10), Some(3));
        // A generated byte token, shown as U+FFFD in both the text and the list.
        let tiny: Vec<&str> = vec!["the"," ","an","s","w","er"," ","t","o"," ","q","u","e","s","t","i","on"," ","5"," is"," ","on"," ","l","i","n","e"," ","5","\u{fffd}"];
        let offs: Vec<usize> = (0..tiny.len()).collect();
        assert_eq!(continuation_start(&logprobs(&tiny, &offs), "\u{fffd}", " on line 5", 9, 27), Some(20));
        // Tokens listed as bytes: the offsets decide.
        let bytes = logprobs(&["The", " sky", " is", "bytes:\\xe2", "."], &[0, 3, 7, 10, 11]);
        assert_eq!(continuation_start(&bytes, ".", " ☀", 1, 10), Some(3));
        assert_eq!(continuation_start(&bytes, ".", " ☀", 1, 9), None);
        // The continuation can never be the first token (it has no context).
        assert_eq!(continuation_start(&served, ".", "The sky is blue", 4, 0), None);
    }
}
