//! A causal language model ready to use: the Burn [`LlamaForCausalLM`], its
//! tokenizer, special tokens and chat template, loaded from a Hugging Face
//! directory, a hub id or a single GGUF file. Offers the two primitives the
//! teacher needs: continuation log-likelihoods of a padded batch, and
//! generation with a KV cache (greedy, or sampled: [`Decoding`]).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;
use burn::tensor::activation;

use crate::batch;
use crate::decoding::{Chooser, Decoding};
use crate::gguf::GgufFile;
use crate::weights::WeightReader;
use crate::llama::{KvCache, LlamaConfig, LlamaForCausalLM, Padding, index_tensor};
use crate::pool;

mod text;

pub use text::{ChatMessage, LmTokenizer};

/// The fewest tokens a preamble shared by every prompt of a generation batch
/// needs to be run once for all of them; a shorter one (a chat template's
/// opening) stays in each prompt's own pass.
pub const MIN_SHARED_PREFIX: usize = 64;

/// A loaded causal LM: the Burn model and its [`LmTokenizer`], whose methods
/// it offers through `Deref` (`lm.encode(...)`, `lm.chat_prompt(...)`).
pub struct CausalLm {
    /// The Burn model.
    pub model: LlamaForCausalLM,
    /// Its configuration.
    pub config: LlamaConfig,
    text: LmTokenizer,
    device: Device,
}

/// The error of [`CausalLm::continuation_logprobs`] when a log-probability
/// comes out NaN or infinite (the model's activations overflow): no score is
/// returned rather than one that would poison what it is summed into.
/// Callers may downcast to it to name the item by their own index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFiniteLogprob {
    /// The pair's position in the `pairs` given.
    pub pair: usize,
    /// The continuation token's position in its continuation.
    pub token: usize,
    /// The log-probability.
    pub value: f32,
}

impl std::fmt::Display for NonFiniteLogprob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pair {} (counting from 0): the log-probability of continuation token {} is {}; the model's activations overflow",
            self.pair, self.token, self.value
        )
    }
}

impl std::error::Error for NonFiniteLogprob {}

impl std::ops::Deref for CausalLm {
    type Target = LmTokenizer;

    fn deref(&self) -> &LmTokenizer {
        &self.text
    }
}

impl CausalLm {
    /// Loads `spec`: a `.gguf` file, a Hugging Face directory (`config.json`,
    /// safetensors weights, `tokenizer.json`), or a hub id.
    pub fn load(spec: &str, device: &Device) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_file() {
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
                return Self::from_gguf(path, device);
            }
            bail!("teacher {spec} is a file but not a .gguf file; pass a GGUF file or a Hugging Face directory");
        }
        let dir = crate::source::ModelDir::resolve_llm(spec)?;
        Self::from_dir(dir.root(), device)
    }

    /// Loads a single GGUF file: configuration from its metadata, tokenizer
    /// from its vocabulary and merges, weights dequantised to f32.
    pub fn from_gguf(path: &Path, device: &Device) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let (config, text) = LmTokenizer::of_gguf(&file, path)?;
        let mut weights = WeightReader::gguf(file, &config);
        let model = LlamaForCausalLM::load(&config, &mut weights, device)?;
        Ok(Self { model, config, text, device: device.clone() })
    }

    /// Loads a Hugging Face directory.
    pub fn from_dir(dir: &Path, device: &Device) -> Result<Self> {
        let (config, text) = LmTokenizer::of_dir(dir)?;
        let mut weights = WeightReader::safetensors_dir(dir)?;
        let model = LlamaForCausalLM::load(&config, &mut weights, device)?;
        Ok(Self { model, config, text, device: device.clone() })
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Log-probabilities of each continuation token given everything before
    /// it, for one batch of `(prompt, continuation)` id pairs run as one
    /// right-padded batch. Each pair needs a non-empty prompt and continuation
    /// whose total fits the context window. A NaN or infinite log-probability
    /// is a [`NonFiniteLogprob`] error.
    pub fn continuation_logprobs(&self, pairs: &[(&[u32], &[u32])]) -> Result<Vec<Vec<f32>>> {
        pool::on_worker(|| self.continuation_logprobs_on_worker(pairs))
    }

    /// [`Self::continuation_logprobs`], on a worker of rayon's pool.
    fn continuation_logprobs_on_worker(&self, pairs: &[(&[u32], &[u32])]) -> Result<Vec<Vec<f32>>> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let seq = pairs.iter().map(|(p, c)| p.len() + c.len()).max().unwrap_or(0);
        if seq > self.context_length() {
            bail!("a sequence of {seq} tokens exceeds the context window of {}", self.context_length());
        }
        let mut sequences = Vec::with_capacity(pairs.len());
        for (prompt, continuation) in pairs {
            if prompt.is_empty() || continuation.is_empty() {
                bail!("both the prompt and the continuation need at least one token");
            }
            sequences.push([*prompt, *continuation].concat());
        }
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for ((prompt, continuation), offset) in pairs.iter().zip(offsets(&sequences)) {
            for (j, &target) in continuation.iter().enumerate() {
                // The hidden state at position p predicts the token at p + 1.
                rows.push(offset + prompt.len() + j - 1);
                targets.push(target as i32);
            }
        }
        let hidden = self.model.hidden_states_packed(&sequences, None, Some(&rows));
        let values = self.gather_logprobs(hidden, &targets)?;
        Self::split_logprobs(&values, pairs.iter().map(|(_, c)| c.len()))
    }

    /// Cuts gathered log-probabilities into one run per pair (`lengths`, in
    /// order); a non-finite value is a [`NonFiniteLogprob`] error.
    fn split_logprobs(values: &[f32], lengths: impl Iterator<Item = usize>) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::new();
        let mut at = 0;
        for (b, len) in lengths.enumerate() {
            let logprobs = &values[at..at + len];
            if let Some(token) = logprobs.iter().position(|x| !x.is_finite()) {
                return Err(NonFiniteLogprob { pair: b, token, value: logprobs[token] }.into());
            }
            out.push(logprobs.to_vec());
            at += len;
        }
        Ok(out)
    }

    /// [`Self::continuation_logprobs`] of several continuations of one
    /// prompt: the prompt is run once, and its keys and values serve every
    /// continuation (one right-padded batch after it). The numbers are those
    /// of the pairs run whole, up to float rounding.
    pub fn shared_prompt_logprobs(&self, prompt: &[u32], continuations: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        pool::on_worker(|| self.shared_prompt_logprobs_on_worker(prompt, continuations))
    }

    /// [`Self::shared_prompt_logprobs`], on a worker of rayon's pool.
    fn shared_prompt_logprobs_on_worker(&self, prompt: &[u32], continuations: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        if continuations.is_empty() {
            return Ok(Vec::new());
        }
        if prompt.is_empty() || continuations.iter().any(|c| c.is_empty()) {
            bail!("both the prompt and the continuation need at least one token");
        }
        let width = continuations.iter().map(|c| c.len()).max().unwrap_or(0);
        if prompt.len() + width > self.context_length() {
            bail!("a sequence of {} tokens exceeds the context window of {}", prompt.len() + width, self.context_length());
        }
        let mut cache = KvCache::new();
        // The prompt's last position predicts every continuation's first
        // token; position j - 1 of a continuation predicts its token j.
        let last = self.model.hidden_states_packed(&[prompt], Some(&mut cache), Some(&[prompt.len() - 1]));
        cache.select_rows(&Tensor::<1, Int>::zeros([continuations.len()], &self.device));
        // The continuations' rows to run, and for each target the row of
        // `[last; those rows]` that predicts it: 0 for every first token.
        let mut rows = Vec::new();
        let mut order = Vec::new();
        let mut targets = Vec::new();
        for (continuation, offset) in continuations.iter().zip(offsets(continuations)) {
            for (j, &target) in continuation.iter().enumerate() {
                if j == 0 {
                    order.push(0);
                } else {
                    rows.push(offset + j - 1);
                    order.push(rows.len());
                }
                targets.push(target as i32);
            }
        }
        // None to run when every continuation is one token.
        let rows = match rows.is_empty() {
            true => last,
            false => Tensor::cat(vec![last, self.model.hidden_states_packed(continuations, Some(&mut cache), Some(&rows))], 0),
        };
        let hidden = rows.select(0, index_tensor(order, &self.device));
        let values = self.gather_logprobs(hidden, &targets)?;
        Self::split_logprobs(&values, continuations.iter().map(|c| c.len()))
    }

    /// `log_softmax(logits)[target]` of each row of `hidden` `[targets,
    /// hidden]` and its target, in chunks so that the `[rows, vocab]` logits
    /// stay small.
    fn gather_logprobs(&self, hidden: Tensor<2>, targets: &[i32]) -> Result<Vec<f32>> {
        const CHUNK: usize = 256;
        let mut out = Vec::with_capacity(targets.len());
        for (chunk, targets) in targets.chunks(CHUNK).enumerate() {
            let n = targets.len();
            let logits = self.model.logits(hidden.clone().narrow(0, chunk * CHUNK, n));
            let logp = activation::log_softmax(logits, 1);
            let target = Tensor::<2, Int>::from_data(TensorData::new(targets.to_vec(), [n, 1]), &self.device);
            let picked = logp.gather(1, target).reshape([n]);
            out.extend(picked.try_into_vec_as::<f32>().map_err(|e| anyhow!("reading log-probabilities: {e:?}"))?);
        }
        Ok(out)
    }

    /// Logits `[vocab]` at `positions` of each sequence in `sequences`, run as
    /// one right-padded batch (for parity checks).
    pub fn logits_at(&self, sequences: &[&[u32]], positions: &[Vec<usize>]) -> Result<Vec<Vec<Vec<f32>>>> {
        let rows: Vec<usize> = positions.iter().zip(offsets(sequences)).flat_map(|(ps, offset)| ps.iter().map(move |&p| offset + p)).collect();
        if rows.is_empty() {
            return Ok(vec![Vec::new(); positions.len()]);
        }
        let hidden = self.model.hidden_states_packed(sequences, None, Some(&rows));
        let mut out = Vec::new();
        let mut at = 0;
        for positions in positions {
            if positions.is_empty() {
                out.push(Vec::new());
                continue;
            }
            let logits = self.model.logits(hidden.clone().narrow(0, at, positions.len()));
            at += positions.len();
            let vocab = logits.dims()[1];
            let values = logits.try_into_vec_as::<f32>().map_err(|e| anyhow!("reading logits: {e:?}"))?;
            out.push(values.chunks(vocab).map(<[f32]>::to_vec).collect());
        }
        Ok(out)
    }

    /// Whether generation can start from `prompt`: it needs at least one
    /// token and must fit the context window.
    fn check_prompt(&self, prompt: &[u32]) -> Result<()> {
        if prompt.is_empty() {
            bail!("generation needs a prompt of at least one token");
        }
        if prompt.len() > self.context_length() {
            bail!(
                "the prompt has {} tokens, more than the model's context window of {}; shorten it",
                prompt.len(),
                self.context_length()
            );
        }
        Ok(())
    }

    /// Whether a generation that produced `generated` after a prompt of
    /// `prompt_len` tokens filled the context window, so that it could not go
    /// on, without ending at an end-of-sequence id.
    pub fn context_exhausted(&self, prompt_len: usize, generated: &[u32]) -> bool {
        prompt_len + generated.len() > self.context_length() && generated.last().is_none_or(|id| !self.eos_ids.contains(id))
    }

    /// Greedy decoding: up to `max_new_tokens` ids after `prompt`, stopping
    /// after an end-of-sequence id (which is included) or at the context
    /// window ([`Self::context_exhausted`] tells). A prompt longer than the
    /// window is an error. Uses a KV cache, so each new token costs one
    /// position.
    pub fn generate(&self, prompt: &[u32], max_new_tokens: usize) -> Result<Vec<u32>> {
        pool::on_worker(|| self.generate_on_worker(prompt, max_new_tokens))
    }

    /// [`Self::generate`], on a worker of rayon's pool.
    fn generate_on_worker(&self, prompt: &[u32], max_new_tokens: usize) -> Result<Vec<u32>> {
        self.check_prompt(prompt)?;
        let mut cache = KvCache::new();
        let mut next_input: Vec<u32> = prompt.to_vec();
        let mut out = Vec::new();
        while out.len() < max_new_tokens && cache.len() + next_input.len() <= self.context_length() {
            let n = next_input.len();
            let ids: Vec<i32> = next_input.iter().map(|&x| x as i32).collect();
            let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), &self.device);
            let hidden = self.model.hidden_states(input, Some(&mut cache));
            let width = hidden.dims()[2];
            let last = hidden.narrow(1, n - 1, 1).reshape([1, width]);
            let next = self.model.logits(last).argmax(1).reshape([1]);
            let id = next.try_into_vec_as::<i64>().map_err(|e| anyhow!("reading the next token: {e:?}"))?[0] as u32;
            out.push(id);
            if self.eos_ids.contains(&id) {
                break;
            }
            next_input = vec![id];
        }
        Ok(out)
    }

    /// Greedy decoding of several prompts at once, left-padded into one
    /// batch with one KV cache: each result is the ids [`Self::generate`]
    /// gives for that prompt alone (padding is masked and does not count as
    /// positions). A finished sequence keeps its place until the batch ends.
    /// An empty prompt, or one longer than the context window, is an error
    /// naming it.
    pub fn generate_batch(&self, prompts: &[&[u32]], max_new_tokens: usize) -> Result<Vec<Vec<u32>>> {
        self.generate_batch_with(prompts, max_new_tokens, &vec![Decoding::Greedy; prompts.len()])
    }

    /// [`Self::generate_batch`] with each prompt's own [`Decoding`]
    /// (`decodings[b]` for `prompts[b]`). A sampled sequence draws from its
    /// own seeded stream, so its tokens do not depend on the other rows.
    /// Equal prompts are read once: the prompt pass runs on the distinct
    /// prompts and their keys and values are copied to every row that
    /// repeats them (several samples of one prompt cost one prompt pass).
    /// Likewise a preamble of at least [`MIN_SHARED_PREFIX`] tokens that
    /// every distinct prompt begins with is run once for all of them.
    pub fn generate_batch_with(&self, prompts: &[&[u32]], max_new_tokens: usize, decodings: &[Decoding]) -> Result<Vec<Vec<u32>>> {
        pool::on_worker(|| self.generate_batch_with_on_worker(prompts, max_new_tokens, decodings))
    }

    /// [`Self::generate_batch_with`], on a worker of rayon's pool.
    fn generate_batch_with_on_worker(&self, prompts: &[&[u32]], max_new_tokens: usize, decodings: &[Decoding]) -> Result<Vec<Vec<u32>>> {
        if decodings.len() != prompts.len() {
            bail!("{} decodings for {} prompts", decodings.len(), prompts.len());
        }
        let sampled = decodings.iter().any(|d| matches!(d, Decoding::Sample { .. }));
        let mut choosers: Vec<Chooser> = decodings.iter().map(|&d| Chooser::new(d)).collect();
        for (b, prompt) in prompts.iter().enumerate() {
            self.check_prompt(prompt).with_context(|| format!("prompt {b} (counting from 0) of the batch"))?;
        }
        let rows = prompts.len();
        let width = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        // Row b repeats distinct prompt source[b].
        let (distinct, source) = batch::distinct(prompts.iter().copied());
        let mut outs: Vec<Vec<u32>> = vec![Vec::new(); rows];
        // A row may take another token while its own sequence fits the window.
        let open = |b: usize, out: &Vec<u32>| {
            out.len() < max_new_tokens
                && prompts[b].len() + out.len() <= self.context_length()
                && out.last().is_none_or(|id| !self.eos_ids.contains(id))
        };
        if rows == 0 || (0..rows).all(|b| !open(b, &outs[b])) {
            return Ok(outs);
        }
        // A preamble every distinct prompt begins with (few-shot examples, a
        // long system prompt) runs once at batch 1 and is copied to each;
        // the padding then goes between it and each prompt's own tokens
        // (every prompt keeps at least one of its own).
        let shortest = distinct.iter().map(|p| p.len()).min().unwrap_or(0);
        let shared = match batch::common_prefix(&distinct).min(shortest.saturating_sub(1)) {
            n if distinct.len() > 1 && n >= MIN_SHARED_PREFIX => n,
            _ => 0,
        };
        let mut cache = KvCache::new();
        if shared > 0 {
            let prefix: Vec<i32> = distinct[0][..shared].iter().map(|&id| id as i32).collect();
            self.model.hidden_states(Tensor::<2, Int>::from_data(TensorData::new(prefix, [1, shared]), &self.device), Some(&mut cache));
            cache.select_rows(&Tensor::<1, Int>::zeros([distinct.len()], &self.device));
        }
        // A prompt's pads are the same with or without a shared prefix: the
        // widest prompt's length less its own.
        let own_width = width - shared;
        let prompt_padding = Padding { at: shared, pads: distinct.iter().map(|p| width - p.len()).collect() };
        let mut ids = vec![0i32; distinct.len() * own_width];
        for ((row, prompt), &pad) in ids.chunks_exact_mut(own_width).zip(&distinct).zip(&prompt_padding.pads) {
            row[pad..].iter_mut().zip(&prompt[shared..]).for_each(|(to, &id)| *to = id as i32);
        }
        let hidden = self.model.hidden_states_padded(
            Tensor::<2, Int>::from_data(TensorData::new(ids, [distinct.len(), own_width]), &self.device),
            &prompt_padding,
            &mut cache,
        );
        let [_, seq, hidden_width] = hidden.dims();
        let mut last = hidden.narrow(1, seq - 1, 1).reshape([distinct.len(), hidden_width]);
        if distinct.len() < rows {
            let source = index_tensor(source.iter().copied(), &self.device);
            cache.select_rows(&source);
            last = last.select(0, source);
        }
        let padding = Padding { at: shared, pads: source.iter().map(|&d| prompt_padding.pads[d]).collect() };
        loop {
            let logits = self.model.logits(last);
            let next: Vec<i64> = if sampled {
                let values = logits.into_data().try_to_vec::<f32>().map_err(|e| anyhow!("reading the logits: {e:?}"))?;
                let vocab = values.len() / rows;
                choosers.iter_mut().zip(values.chunks_exact(vocab)).map(|(c, row)| i64::from(c.choose(row))).collect()
            } else {
                let next = logits.argmax(1).reshape([rows]);
                next.try_into_vec_as::<i64>().map_err(|e| anyhow!("reading the next tokens: {e:?}"))?
            };
            for (b, out) in outs.iter_mut().enumerate() {
                if open(b, out) {
                    out.push(next[b] as u32);
                }
            }
            if (0..rows).all(|b| !open(b, &outs[b])) {
                return Ok(outs);
            }
            let fed: Vec<i32> = next.iter().map(|&id| id as i32).collect();
            let input = Tensor::<2, Int>::from_data(TensorData::new(fed, [rows, 1]), &self.device);
            last = self.model.hidden_states_padded(input, &padding, &mut cache).reshape([rows, hidden_width]);
        }
    }
}

/// Where each of `sequences`, laid back to back, starts.
fn offsets<S: AsRef<[u32]>>(sequences: &[S]) -> Vec<usize> {
    sequences
        .iter()
        .scan(0, |at, s| {
            let start = *at;
            *at += s.as_ref().len();
            Some(start)
        })
        .collect()
}
