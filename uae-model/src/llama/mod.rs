//! A decoder-only Llama-family language model (Llama 2/3, Mistral, Qwen2,
//! SmolLM/SmolLM2) as Burn modules. Struct and field names follow the Hugging
//! Face checkpoint names (`model.layers.N.self_attn.q_proj`,
//! `model.layers.N.mlp.gate_proj`, `model.norm`, `lm_head`), so a module path
//! is a safetensors key.
//!
//! Padding: scoring batches are right-padded and attention is causal, so a
//! real token never attends to a padding token and a padded batch gives each
//! sequence's own numbers; rows at padding positions are garbage and are
//! never read. Generation batches are left-padded, so that every sequence's
//! next token is in the last column: a key mask hides the padding from the
//! real tokens and positions count from each sequence's first real token
//! ([`LlamaForCausalLM::hidden_states_padded`]). When every prompt of a
//! batch begins with the same tokens, that prefix is run once and the
//! padding goes between it and each row's own tokens ([`Padding::at`]).
//! Either way only attention sees the padded layout: the projections, norms
//! and feed-forward blocks run on the real tokens alone (`Packing`); and a
//! scoring batch without a cache skips it there too, its sequences
//! attending where they lie packed (`causal::packed_causal_attention`).
//! A caller that reads a few rows' states (the positions before the
//! scored tokens) names them, and the last layer finishes only those.

mod causal;
pub mod config;
pub mod load;
pub mod rope;
mod swiglu;

use burn::nn::{Embedding, Linear, RmsNorm};
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::skinny;

pub use config::{EosTokens, LlamaConfig, RopeScaling};

/// Grouped-query self-attention with rotary positions.
#[derive(Module, Debug)]
pub struct LlamaAttention {
    /// Query projection `[hidden, heads * head_dim]`.
    pub q_proj: Linear,
    /// Key projection `[hidden, kv_heads * head_dim]`.
    pub k_proj: Linear,
    /// Value projection `[hidden, kv_heads * head_dim]`.
    pub v_proj: Linear,
    /// Output projection `[heads * head_dim, hidden]`.
    pub o_proj: Linear,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl LlamaAttention {
    /// The block's output for the rows of `x` that `keep` names (every
    /// row when `None`; `[1, kept, hidden]` otherwise).
    fn forward(&self, x: Tensor<3>, pass: &Pass, cache: Option<&mut Option<LayerCache>>, keep: Option<&Tensor<1, Int>>) -> Tensor<3> {
        let (h, hkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let [q, k, v] = skinny::linears([&self.q_proj, &self.k_proj, &self.v_proj], x);
        #[cfg(feature = "flex")]
        if let (None, Some(lengths)) = (&cache, &pass.sequences) {
            let flat = |t: &Tensor<3>| {
                let [batch, seq, width] = t.dims();
                t.clone().reshape([1, batch * seq, width])
            };
            let out = causal::packed_causal_attention(&flat(&q), &flat(&k), &flat(&v), &pass.cos, &pass.sin, lengths, h, hkv);
            if let Some(out) = out {
                return self.project(out.reshape(q.dims()), keep);
            }
        }
        let (cos, sin, padding, packing) = (&pass.cos, &pass.sin, pass.padding.as_ref(), pass.packing.as_ref());
        let [q, k, v] = match packing {
            Some(p) => [q, k, v].map(|t| p.pad(t)),
            None => [q, k, v],
        };
        let [batch, seq, _] = q.dims();
        let q = rope::split_heads(q, h, Some((cos, sin)));
        let k = rope::split_heads(k, hkv, Some((cos, sin)));
        let v = rope::split_heads(v, hkv, None);
        let (k, v) = match cache {
            Some(cache) => LayerCache::append(cache, k, v),
            None => (k, v),
        };
        let out = if shares_kv_heads(&q) {
            causal::causal_attention(q, k, v, padding)
        } else if seq == 1 && h > hkv {
            // A decode step: one query per head, which sees every key. The
            // query heads that share a key/value head become that head's
            // rows, so the cache is read where it lies instead of being
            // copied `h / hkv` times on every layer.
            let times = h / hkv;
            let keys = k.dims()[2];
            let mask = padding.map(|p| p.mask.clone().expand([batch, hkv, times, keys]));
            let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
            attention(q.reshape([batch, hkv, times, d]), k, v, mask, None, options).reshape([batch, h, 1, d])
        } else {
            causal::causal_attention(q, repeat_kv(k, h / hkv), repeat_kv(v, h / hkv), padding)
        };
        let out = out.swap_dims(1, 2).reshape([batch, seq, h * d]);
        let out = match packing {
            Some(p) => p.pack(out),
            None => out,
        };
        self.project(out, keep)
    }

    /// The output projection of the attention's rows that `keep` names.
    fn project(&self, out: Tensor<3>, keep: Option<&Tensor<1, Int>>) -> Tensor<3> {
        skinny::linear(&self.o_proj, select_rows(out, keep))
    }
}

/// A 1-d index tensor (for `select`) holding `indices`.
pub(crate) fn index_tensor(indices: impl IntoIterator<Item = usize>, device: &Device) -> Tensor<1, Int> {
    let indices: Vec<i32> = indices.into_iter().map(|i| i as i32).collect();
    let n = indices.len();
    Tensor::<1, Int>::from_data(TensorData::new(indices, [n]), device)
}

/// The rows of `x` `[batch, seq, width]` (counted `b * seq + p`) that `keep`
/// names, `[1, kept, width]`; `x` itself when `keep` is `None`.
fn select_rows(x: Tensor<3>, keep: Option<&Tensor<1, Int>>) -> Tensor<3> {
    match keep {
        Some(rows) => {
            let [batch, seq, width] = x.dims();
            let kept = rows.dims()[0];
            x.reshape([batch * seq, width]).select(0, rows.clone()).reshape([1, kept, width])
        }
        None => x,
    }
}

/// What every layer of one forward pass shares: the rotary tables of its
/// positions and how its batch is laid out.
struct Pass<'a> {
    cos: Tensor<3>,
    sin: Tensor<3>,
    padding: Option<PaddingMask<'a>>,
    packing: Option<Packing>,
    /// The sequences' lengths when they lie back to back in the input
    /// (packed, or all of one length) from position 0, without a cache:
    /// attention then takes them as they lie
    /// ([`causal::packed_causal_attention`]).
    sequences: Option<Vec<usize>>,
    /// The rows of the input (its tokens counted in order) whose final
    /// hidden states are read: the last layer gives only those (its keys
    /// and values are still every row's). `None`: every row.
    keep: Option<Tensor<1, Int>>,
}

impl Pass<'_> {
    /// A pass over positions `positions` (`rows` tables of them, as
    /// [`rope::tables`]) with nothing else set.
    fn new(inv_freq: &[f32], positions: &[usize], rows: usize, device: &Device) -> Self {
        let (cos, sin) = rope::tables(inv_freq, positions, rows, device);
        Self { cos, sin, padding: None, packing: None, sequences: None, keep: None }
    }
}

/// Whether the backend's attention shares each key/value head among its
/// group of query heads itself (flex does, in inference), so that the keys
/// and values need not be repeated.
fn shares_kv_heads(q: &Tensor<4>) -> bool {
    #[cfg(feature = "flex")]
    if crate::flex::is_inference(q) {
        return true;
    }
    let _ = q;
    false
}

/// Where the padding of a generation batch lies: row `b` holds `pads[b]`
/// padding positions from position `at` on (0 for a left-padded batch; the
/// length of a prefix every row shares, run once, when the padding goes
/// between that prefix and each row's own tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Padding {
    /// The first padding position of every row.
    pub at: usize,
    /// Padding positions of each row.
    pub pads: Vec<usize>,
}

/// A [`Padding`] and its mask `[batch, 1, seq, keys]` (true = hidden), which
/// hides the padding from the real queries (a padding query sees everything
/// before it, so that its softmax is never empty).
#[derive(Debug, Clone)]
struct PaddingMask<'a> {
    mask: Tensor<4, Bool>,
    /// Read by flex's attention, which skips the padding instead of masking it.
    #[cfg_attr(not(feature = "flex"), allow(dead_code))]
    padding: &'a Padding,
}

/// A padded batch held without its padding: row-wise work (the
/// projections, norms and feed-forward block, most of a forward pass) runs
/// on the real tokens only, `[1, tokens, width]`, and attention on the
/// padded layout `[batch, seq, width]` that it needs. The padding rows of
/// that layout are copies of another row: garbage that no real token
/// attends to (right padding: attention is causal; other padding: the key
/// mask hides it).
#[derive(Debug, Clone)]
struct Packing {
    batch: usize,
    seq: usize,
    /// For each padded position `b * seq + p`, its packed row (0 for padding).
    spread: Tensor<1, Int>,
    /// For each packed row, its padded position.
    gather: Tensor<1, Int>,
}

impl Packing {
    /// The packing of a `[batch, seq]` batch whose position `p` of row `b`
    /// is a token when `real(b, p)`, or `None` when every position is
    /// (nothing to leave out).
    fn of(batch: usize, seq: usize, real: impl Fn(usize, usize) -> bool, device: &Device) -> Option<Self> {
        let mut spread = vec![0; batch * seq];
        let mut gather = Vec::with_capacity(batch * seq);
        for b in 0..batch {
            for p in (0..seq).filter(|&p| real(b, p)) {
                spread[b * seq + p] = gather.len();
                gather.push(b * seq + p);
            }
        }
        if gather.len() == batch * seq {
            return None;
        }
        Some(Self { batch, seq, spread: index_tensor(spread, device), gather: index_tensor(gather, device) })
    }

    /// The token ids of the real positions of `ids` `[batch, seq]`, `[1, tokens]`.
    fn pack_ids(&self, ids: Tensor<2, Int>) -> Tensor<2, Int> {
        let tokens = self.gather.dims()[0];
        ids.reshape([self.batch * self.seq]).select(0, self.gather.clone()).reshape([1, tokens])
    }

    /// Packed rows `[1, tokens, width]` laid out padded, `[batch, seq, width]`.
    fn pad(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, tokens, width] = x.dims();
        x.reshape([tokens, width]).select(0, self.spread.clone()).reshape([self.batch, self.seq, width])
    }

    /// The real rows of a padded `[batch, seq, width]`, packed `[1, tokens, width]`.
    fn pack(&self, x: Tensor<3>) -> Tensor<3> {
        let width = x.dims()[2];
        let tokens = self.gather.dims()[0];
        x.reshape([self.batch * self.seq, width]).select(0, self.gather.clone()).reshape([1, tokens, width])
    }
}

/// Repeats each key/value head `times` so that every query head has its own
/// (the fused attention of every backend accepts equal head counts).
fn repeat_kv(x: Tensor<4>, times: usize) -> Tensor<4> {
    if times == 1 {
        return x;
    }
    let [b, hkv, s, d] = x.dims();
    x.unsqueeze_dim::<5>(2).expand([b, hkv, times, s, d]).reshape([b, hkv * times, s, d])
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct LlamaMlp {
    /// Gate projection.
    pub gate_proj: Linear,
    /// Up projection.
    pub up_proj: Linear,
    /// Down projection.
    pub down_proj: Linear,
}

impl LlamaMlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [gate, up] = skinny::linears([&self.gate_proj, &self.up_proj], x);
        skinny::linear(&self.down_proj, swiglu::swiglu(gate, up))
    }
}

/// One pre-norm decoder layer.
#[derive(Module, Debug)]
pub struct LlamaDecoderLayer {
    /// Attention block.
    pub self_attn: LlamaAttention,
    /// Feed-forward block.
    pub mlp: LlamaMlp,
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Norm before the feed-forward block.
    pub post_attention_layernorm: RmsNorm,
}

impl LlamaDecoderLayer {
    /// The layer's output for the rows of `x` that `keep` names (every row
    /// when `None`; `[1, kept, hidden]` otherwise).
    fn forward(&self, x: Tensor<3>, pass: &Pass, cache: Option<&mut Option<LayerCache>>, keep: Option<&Tensor<1, Int>>) -> Tensor<3> {
        let attended = self.self_attn.forward(self.input_layernorm.forward(x.clone()), pass, cache, keep);
        let x = select_rows(x, keep) + attended;
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }
}

/// The decoder stack without the output head (transformers' `LlamaModel`).
#[derive(Module, Debug)]
pub struct LlamaModel {
    /// Token embeddings `[vocab, hidden]`.
    pub embed_tokens: Embedding,
    /// The decoder layers.
    pub layers: Vec<LlamaDecoderLayer>,
    /// Final norm.
    pub norm: RmsNorm,
    /// Rotary inverse frequencies (derived from the config, not saved).
    pub inv_freq: Vec<f32>,
}

/// Positions a full layer cache grows by: a decode step writes its keys and
/// values in place, and one in this many copies the cache into a larger
/// buffer (doubling instead cost more in fresh pages than it saved, for the
/// short answers generated here).
const CACHE_GROWTH: usize = 64;

/// The cached keys and values of one layer, `[batch, kv_heads, capacity,
/// head_dim]` with the first `len` positions filled. New positions are
/// written in place (a decode step used to copy the whole cache with
/// `Tensor::cat`), and the capacity grows by [`CACHE_GROWTH`] when it runs
/// out.
#[derive(Debug, Clone)]
struct LayerCache {
    k: Tensor<4>,
    v: Tensor<4>,
    len: usize,
}

impl LayerCache {
    /// Appends `k` and `v` `[batch, kv_heads, seq, head_dim]` to `slot` and
    /// returns views of every cached position (to be dropped before the next
    /// append, which would otherwise copy the buffer they share).
    fn append(slot: &mut Option<Self>, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [batch, heads, seq, dim] = k.dims();
        let cache = match slot.take() {
            // The first positions: the cache is the projections themselves.
            None => Self { k, v, len: seq },
            Some(mut cache) => {
                let end = cache.len + seq;
                let capacity = cache.k.dims()[2];
                if end > capacity {
                    let room = (end - capacity).max(CACHE_GROWTH);
                    let device = k.device();
                    let grow = |t: Tensor<4>| Tensor::cat(vec![t, Tensor::zeros([batch, heads, room, dim], &device)], 2);
                    cache.k = grow(cache.k);
                    cache.v = grow(cache.v);
                }
                let rows = [0..batch, 0..heads, cache.len..end, 0..dim];
                cache.k = cache.k.slice_assign(rows.clone(), k);
                cache.v = cache.v.slice_assign(rows, v);
                cache.len = end;
                cache
            }
        };
        let filled = [0..batch, 0..heads, 0..cache.len, 0..dim];
        let views = (cache.k.clone().slice(filled.clone()), cache.v.clone().slice(filled));
        *slot = Some(cache);
        views
    }
}

/// Keys and values of the tokens seen so far, for incremental decoding.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        // Every layer holds the same positions.
        self.layers.first().and_then(Option::as_ref).map_or(0, |layer| layer.len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes row `b` of the cache a copy of its row `rows[b]` (the cache
    /// of a batch that repeats some of its sequences).
    pub fn select_rows(&mut self, rows: &Tensor<1, Int>) {
        for layer in self.layers.iter_mut().flatten() {
            layer.k = layer.k.clone().select(0, rows.clone());
            layer.v = layer.v.clone().select(0, rows.clone());
        }
    }
}

/// A Llama-family decoder with its language-model head
/// (transformers' `LlamaForCausalLM`).
#[derive(Module, Debug)]
pub struct LlamaForCausalLM {
    /// The decoder stack.
    pub model: LlamaModel,
    /// The output head `[hidden, vocab]`; `None` when tied to the embeddings.
    pub lm_head: Option<Linear>,
}

impl LlamaForCausalLM {
    /// Final hidden states `[batch, seq, hidden]` of right-padded token ids
    /// `[batch, seq]`. With a cache, the ids continue the cached positions and
    /// the cache is extended.
    pub fn hidden_states(&self, input_ids: Tensor<2, Int>, cache: Option<&mut KvCache>) -> Tensor<3> {
        let [_, seq] = input_ids.dims();
        let start = cache.as_ref().map_or(0, |c| c.len());
        let positions: Vec<usize> = (start..start + seq).collect();
        let pass = Pass::new(&self.model.inv_freq, &positions, 1, &input_ids.device());
        self.run(input_ids, &pass, cache)
    }

    /// Final hidden states `[tokens, hidden]` of `sequences` run as one
    /// right-padded batch, without the padding: sequence after sequence, row
    /// `offset + p` is position `p` of the sequence that starts at `offset`.
    /// Each row is what [`Self::hidden_states`] gives it in the padded batch
    /// (up to float rounding), but the projections and the feed-forward
    /// block skip the padding (and, without a cache, attention too). With a
    /// cache, the sequences continue its positions and extend it. With
    /// `rows` (at least one), only those rows are given (`[rows.len(),
    /// hidden]`, in that order), and the last layer does the rest of its
    /// work for them alone.
    pub fn hidden_states_packed<S: AsRef<[u32]>>(&self, sequences: &[S], cache: Option<&mut KvCache>, rows: Option<&[usize]>) -> Tensor<2> {
        let device = self.model.embed_tokens.weight.device();
        let lengths: Vec<usize> = sequences.iter().map(|s| s.as_ref().len()).collect();
        let tokens: usize = lengths.iter().sum();
        let seq = lengths.iter().copied().max().unwrap_or(0);
        let ids: Vec<i32> = sequences.iter().flat_map(|s| s.as_ref().iter().map(|&id| id as i32)).collect();
        let start = cache.as_ref().map_or(0, |c| c.len());
        let positions: Vec<usize> = (start..start + seq).collect();
        let mut pass = Pass::new(&self.model.inv_freq, &positions, 1, &device);
        pass.packing = Packing::of(sequences.len(), seq, |b, p| p < lengths[b], &device);
        let shape = match pass.packing {
            Some(_) => [1, tokens],
            None => [sequences.len(), seq],
        };
        if cache.is_none() {
            pass.sequences = Some(lengths);
        }
        pass.keep = rows.map(|rows| index_tensor(rows.iter().copied(), &device));
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids, shape), &device);
        let hidden = self.run(input, &pass, cache);
        let width = hidden.dims()[2];
        hidden.reshape([rows.map_or(tokens, <[usize]>::len), width])
    }

    /// [`Self::hidden_states`] of padded ids: row `b` holds `padding.pads[b]`
    /// padding tokens from position `padding.at` of the cache on (in the
    /// call that writes them; later calls continue the cache with the same
    /// `padding`). No real token attends to padding, and the positions after
    /// a row's padding count on from where it began, so every row's real
    /// positions get the numbers the row alone would. Padding rows hold
    /// finite garbage (the projections and the feed-forward block skip
    /// them).
    pub fn hidden_states_padded(&self, input_ids: Tensor<2, Int>, padding: &Padding, cache: &mut KvCache) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let start = cache.len();
        let keys = start + seq;
        let at = padding.at;
        let mut positions = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq * keys);
        let mut real = Vec::with_capacity(batch * seq);
        for &pad in &padding.pads {
            let gap = at..at + pad;
            for j in start..start + seq {
                positions.push(if j < at { j } else { at.max(j.saturating_sub(pad)) });
                // Real queries do not see padding keys; a padding query sees
                // everything before it, so that its softmax is never empty.
                let token = !gap.contains(&j);
                mask.extend((0..keys).map(|k| token && gap.contains(&k)));
                real.push(token);
            }
        }
        let mut pass = Pass::new(&self.model.inv_freq, &positions, batch, &device);
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [batch, 1, seq, keys]), &device);
        pass.padding = Some(PaddingMask { mask, padding });
        pass.packing = Packing::of(batch, seq, |b, p| real[b * seq + p], &device);
        match &pass.packing {
            Some(packing) => {
                let input = packing.pack_ids(input_ids);
                packing.pad(self.run(input, &pass, Some(cache)))
            }
            None => self.run(input_ids, &pass, Some(cache)),
        }
    }

    fn run(&self, input_ids: Tensor<2, Int>, pass: &Pass, cache: Option<&mut KvCache>) -> Tensor<3> {
        let mut x = self.model.embed_tokens.forward(input_ids);
        let layers = self.model.layers.len();
        let mut slots: Vec<Option<&mut Option<LayerCache>>> = match cache {
            Some(cache) => {
                cache.layers.resize(layers, None);
                cache.layers.iter_mut().map(Some).collect()
            }
            None => (0..layers).map(|_| None).collect(),
        };
        for (i, (layer, slot)) in self.model.layers.iter().zip(slots.iter_mut()).enumerate() {
            let keep = if i + 1 == layers { pass.keep.as_ref() } else { None };
            x = layer.forward(x, pass, slot.take(), keep);
        }
        self.model.norm.forward(x)
    }

    /// Logits `[rows, vocab]` of hidden states `[rows, hidden]`: only the rows
    /// that are needed go through the (vocabulary-wide, expensive) head.
    pub fn logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => skinny::linear(head, hidden),
            None => skinny::times_transposed(hidden, self.model.embed_tokens.weight.val()),
        }
    }

    /// Logits `[batch, seq, vocab]` at every position (for tests and small
    /// inputs; scoring uses [`Self::hidden_states`] and [`Self::logits`] on
    /// the rows it needs).
    pub fn forward(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let hidden = self.hidden_states(input_ids, None);
        let width = hidden.dims()[2];
        let logits = self.logits(hidden.reshape([batch * seq, width]));
        let vocab = logits.dims()[1];
        logits.reshape([batch, seq, vocab])
    }
}
