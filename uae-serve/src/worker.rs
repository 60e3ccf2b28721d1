//! The inference thread: owns the models and the index, takes jobs from a
//! queue, and merges the embedding and search jobs waiting there into one
//! batch per role, run in forward passes under the token budget (dynamic
//! batching).
//!
//! Burn runs on this one thread (its CPU backend spreads each operation over
//! the cores itself), so the async threads only parse, validate and queue.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use burn::tensor::Device;
use tokio::sync::{mpsc, oneshot};
use uae_data::Ranking;
use uae_index::corpus_index::{self, Searcher};
use uae_index::qdrant::{Client, Collection};
use uae_index::store::VectorStore;
use uae_model::decoding::Decoding;
use uae_model::encoder::{BiEncoder, EncoderOptions, TextRole};
use uae_model::llm::CausalLm;
use uae_model::tokenize::TextTokenizer;

use crate::metrics::Metrics;

/// What the server needs to know about the loaded models, sent back by the
/// thread once they are loaded.
pub struct Loaded {
    /// The bi-encoder's tokenizer (with its truncation), for validation and
    /// token counts on the async side.
    pub tokenizer: TextTokenizer,
    /// The prefix of query texts.
    pub query_prefix: String,
    /// The prefix of passage texts.
    pub passage_prefix: String,
    /// Embedding width.
    pub dim: usize,
    /// Passages in the index, when there is one.
    pub index_size: Option<usize>,
    /// Whether the index has an HNSW graph.
    pub hnsw: bool,
    /// The teacher's tokenizer and context window, when there is a teacher.
    pub teacher: Option<(tokenizers::Tokenizer, usize)>,
}

/// What the thread loads.
pub struct Models {
    /// The bi-encoder: directory or hub id.
    pub model: String,
    /// Truncate inputs to this many tokens (default: the model's maximum).
    pub max_input_length: Option<usize>,
    /// A corpus index built with `model`.
    pub index: Option<PathBuf>,
    /// Or a Qdrant collection of `model`'s vectors.
    pub qdrant: Option<Collection>,
    /// A teacher LLM for `/v1/completions`.
    pub teacher: Option<String>,
}

/// One request's work.
pub enum Job {
    /// Embed texts in one role.
    Embed {
        /// The texts, without prefixes.
        texts: Vec<String>,
        /// Query or passage.
        role: TextRole,
        /// Their tokens (for the budget).
        tokens: usize,
        /// Where the vectors go, in input order.
        reply: oneshot::Sender<Result<Vec<Vec<f32>>, String>>,
    },
    /// Search the index.
    Search {
        /// Query texts.
        queries: Vec<String>,
        /// Hits per query.
        k: usize,
        /// Score every vector even when the index has a graph.
        exact: bool,
        /// Their tokens (for the budget).
        tokens: usize,
        /// Where the rankings go, in input order.
        reply: oneshot::Sender<Result<Vec<Ranking>, String>>,
    },
    /// Score and extend prompts with the teacher.
    Complete {
        /// Prompt token ids, one sequence per prompt.
        prompts: Vec<Vec<u32>>,
        /// Tokens to generate after each.
        max_tokens: usize,
        /// How each token is chosen.
        decoding: Decoding,
        /// Where the results go, in input order.
        reply: oneshot::Sender<Result<Vec<Scored>, String>>,
    },
}

impl Job {
    fn tokens(&self) -> usize {
        match self {
            Self::Embed { tokens, .. } | Self::Search { tokens, .. } => *tokens,
            Self::Complete { prompts, max_tokens, .. } => prompts.iter().map(|p| p.len() + max_tokens).sum(),
        }
    }
}

/// A prompt scored and extended by the teacher.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The prompt's ids followed by the generated ones.
    pub ids: Vec<u32>,
    /// How many of `ids` were generated.
    pub generated: usize,
    /// `log p(ids[i] | ids[..i])` for `i >= 1`.
    pub logprobs: Vec<f32>,
    /// The most likely token at each position `i >= 1` and its log-probability.
    pub top: Vec<(u32, f32)>,
}

/// How many token budgets of waiting requests one batch takes at most.
const COLLECTED_BUDGETS: usize = 16;

/// What `/search` searches.
enum Index {
    /// An index on disk.
    Local(VectorStore, Searcher),
    /// A Qdrant collection.
    Qdrant(Client),
}

struct State {
    encoder: BiEncoder,
    index: Option<Index>,
    teacher: Option<CausalLm>,
    max_batch_tokens: usize,
    metrics: Arc<Metrics>,
}

/// Starts the thread: loads `models` on `device` and answers jobs from the
/// returned queue (of `capacity`) until every sender is dropped. The
/// [`Loaded`] summary (or the loading error) comes back before any job is
/// taken.
pub fn start(
    models: Models,
    device: Device,
    max_batch_tokens: usize,
    capacity: usize,
    metrics: Arc<Metrics>,
) -> Result<(mpsc::Sender<Job>, Loaded, std::thread::JoinHandle<()>)> {
    let (jobs, mut queue) = mpsc::channel::<Job>(capacity.max(1));
    let (ready, loaded) = std::sync::mpsc::channel::<Result<Loaded>>();
    let handle = std::thread::Builder::new()
        .name("uae-inference".into())
        .spawn(move || {
            let state = match load(&models, &device, max_batch_tokens, metrics) {
                Ok((state, summary)) => {
                    let _ = ready.send(Ok(summary));
                    state
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            while let Some(first) = queue.blocking_recv() {
                let mut tokens = first.tokens();
                let mut batch = vec![first];
                // Everything already waiting joins the batch, up to
                // COLLECTED_BUDGETS budgets; the encoder sorts it by length
                // and runs it in forward passes of one budget each. Taking
                // all that waits (not one budget) pads less and gives every
                // request the same wait, as infinity's batches do.
                while tokens < state.max_batch_tokens * COLLECTED_BUDGETS {
                    match queue.try_recv() {
                        Ok(job) => {
                            tokens += job.tokens();
                            batch.push(job);
                        }
                        Err(_) => break,
                    }
                }
                state.metrics.observe_batch(batch.len(), tokens);
                state.run(batch);
            }
        })
        .context("cannot start the inference thread")?;
    let summary = loaded.recv().context("the inference thread stopped while loading")??;
    Ok((jobs, summary, handle))
}

fn load(models: &Models, device: &Device, max_batch_tokens: usize, metrics: Arc<Metrics>) -> Result<(State, Loaded)> {
    let options = EncoderOptions { max_length: models.max_input_length, ..EncoderOptions::default() };
    let encoder = BiEncoder::load(&models.model, device, &options)?;
    let index = match &models.index {
        Some(dir) => {
            let store = VectorStore::open(dir)?;
            store.check_model(&corpus_index::model_stamp(&encoder, &models.model)?, encoder.dim()).with_context(|| {
                format!("--index {} cannot be searched with --model {}", dir.display(), models.model)
            })?;
            let searcher = Searcher::open(dir, &store, false)?;
            Some(Index::Local(store, searcher))
        }
        None => match &models.qdrant {
            Some(collection) => {
                let client = Client::connect(collection)?;
                client.check_model(&encoder, &models.model)?;
                Some(Index::Qdrant(client))
            }
            None => None,
        },
    };
    let index_size = match &index {
        Some(Index::Local(store, _)) => Some(store.ids().len()),
        Some(Index::Qdrant(client)) => Some(client.count()?),
        None => None,
    };
    let teacher = models.teacher.as_deref().map(|t| CausalLm::load(t, device)).transpose()?;
    let summary = Loaded {
        tokenizer: encoder.tokenizer.clone(),
        query_prefix: encoder.sentence.query_prefix.clone(),
        passage_prefix: encoder.sentence.passage_prefix.clone(),
        dim: encoder.dim(),
        index_size,
        hnsw: matches!(index, Some(Index::Local(_, Searcher::Hnsw(_)))),
        teacher: teacher.as_ref().map(|t| (t.tokenizer().clone(), t.context_length())),
    };
    Ok((State { encoder, index, teacher, max_batch_tokens, metrics }, summary))
}

impl State {
    /// Answers a merged batch: the texts of every embedding job of a role go
    /// through the encoder together; search jobs with the same `k` and
    /// searcher are answered together; completions one by one.
    fn run(&self, batch: Vec<Job>) {
        let mut embeds: Vec<(Vec<String>, TextRole, oneshot::Sender<Result<Vec<Vec<f32>>, String>>)> = Vec::new();
        let mut searches = Vec::new();
        for job in batch {
            match job {
                Job::Embed { texts, role, reply, .. } => embeds.push((texts, role, reply)),
                Job::Search { queries, k, exact, reply, .. } => searches.push((queries, k, exact, reply)),
                Job::Complete { prompts, max_tokens, decoding, reply } => {
                    if !reply.is_closed() {
                        let _ = reply.send(self.complete(&prompts, max_tokens, decoding).map_err(|e| format!("{e:#}")));
                    }
                }
            }
        }
        for role in [TextRole::Query, TextRole::Passage] {
            // A client that went away no longer needs its texts embedded.
            let (group, rest): (Vec<_>, Vec<_>) = embeds.into_iter().partition(|(_, r, _)| *r == role);
            embeds = rest;
            let group: Vec<_> = group.into_iter().filter(|(_, _, reply)| !reply.is_closed()).collect();
            if group.is_empty() {
                continue;
            }
            let texts: Vec<String> = group.iter().flat_map(|(t, _, _)| t.iter().cloned()).collect();
            let result = self.encoder.embed(&texts, role, self.max_batch_tokens, |_| {}).map(|e| e.vectors);
            let mut at = 0;
            for (texts, _, reply) in group {
                let n = texts.len();
                let _ = reply.send(match &result {
                    Ok(vectors) => Ok(vectors[at..at + n].to_vec()),
                    Err(e) => Err(format!("{e:#}")),
                });
                at += n;
            }
        }
        let mut searches: Vec<_> = searches.into_iter().filter(|(_, _, _, reply)| !reply.is_closed()).collect();
        while let Some((_, k, exact, _)) = searches.first() {
            let (k, exact) = (*k, *exact);
            let (group, rest): (Vec<_>, Vec<_>) = searches.into_iter().partition(|s| s.1 == k && s.2 == exact);
            searches = rest;
            let queries: Vec<String> = group.iter().flat_map(|(q, ..)| q.iter().cloned()).collect();
            let result = self.search(&queries, k, exact);
            let mut at = 0;
            for (queries, _, _, reply) in group {
                let n = queries.len();
                let _ = reply.send(match &result {
                    Ok(rankings) => Ok(rankings[at..at + n].to_vec()),
                    Err(e) => Err(format!("{e:#}")),
                });
                at += n;
            }
        }
    }

    fn search(&self, queries: &[String], k: usize, exact: bool) -> Result<Vec<Ranking>> {
        match &self.index {
            Some(Index::Local(store, searcher)) => {
                let searcher = if exact { &Searcher::Exact } else { searcher };
                corpus_index::search_texts(store, searcher, &self.encoder, queries, k, self.max_batch_tokens)
            }
            Some(Index::Qdrant(client)) => client.search_texts(&self.encoder, queries, k, self.max_batch_tokens, exact),
            None => anyhow::bail!("the server was started without --index"),
        }
    }

    fn complete(&self, prompts: &[Vec<u32>], max_tokens: usize, decoding: Decoding) -> Result<Vec<Scored>> {
        let Some(lm) = &self.teacher else { anyhow::bail!("the server was started without --teacher") };
        prompts
            .iter()
            .map(|prompt| {
                let generated = match max_tokens {
                    0 => Vec::new(),
                    _ => lm.generate_batch_with(&[prompt], max_tokens, &[decoding])?.remove(0),
                };
                let ids = [prompt.as_slice(), &generated].concat();
                let positions: Vec<usize> = (0..ids.len() - 1).collect();
                let mut logprobs = Vec::with_capacity(positions.len());
                let mut top = Vec::with_capacity(positions.len());
                if !positions.is_empty() {
                    let rows = lm.logits_at(&[&ids], &[positions])?.remove(0);
                    for (p, row) in rows.iter().enumerate() {
                        let (best, max) =
                            row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                        let lse = max as f64 + row.iter().map(|&v| ((v - max) as f64).exp()).sum::<f64>().ln();
                        logprobs.push((row[ids[p + 1] as usize] as f64 - lse) as f32);
                        top.push((best as u32, (max as f64 - lse) as f32));
                    }
                }
                Ok(Scored { ids, generated: generated.len(), logprobs, top })
            })
            .collect()
    }
}
