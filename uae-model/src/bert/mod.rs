//! The BERT encoder as Burn modules. Struct and field names follow the
//! Hugging Face checkpoint names (`embeddings.word_embeddings`,
//! `encoder.layer.N.attention.self.query`, `...output.LayerNorm`), so weights
//! load without a renaming table; the one exception is `self`, a Rust
//! keyword, spelt `self_attn` here and mapped in [`load`].

// `LayerNorm` fields keep the checkpoint's spelling; the Module derive repeats
// field names as local variables, hence a module-wide allowance.
#![allow(non_snake_case)]

pub mod config;
mod gelu;
pub mod load;

use std::ops::Range;

use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::skinny;

pub use config::{BertConfig, HiddenAct};

/// Token ids of a padded batch, ready for [`BertModel::forward`].
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// Token ids, `[batch, seq]`.
    pub input_ids: Tensor<2, Int>,
    /// Token type ids, `[batch, seq]`.
    pub token_type_ids: Tensor<2, Int>,
    /// 1.0 for real tokens and 0.0 for padding, `[batch, seq]`.
    pub attention_mask: Tensor<2>,
    /// Whether any input is shorter than `seq` (so `attention_mask` holds a 0).
    pub padded: bool,
}

impl TokenBatch {
    /// Pads `ids` and `type_ids` (one vector per input) to the longest input
    /// with `pad_id`, on `device`.
    pub fn pad(ids: &[&[u32]], type_ids: &[&[u32]], pad_id: u32, device: &Device) -> Self {
        let batch = ids.len();
        let seq = ids.iter().map(|x| x.len()).max().unwrap_or(0).max(1);
        let mut flat_ids = vec![pad_id as i32; batch * seq];
        let mut flat_types = vec![0i32; batch * seq];
        let mut mask = vec![0f32; batch * seq];
        let padded = ids.iter().any(|x| x.len() < seq);
        for (row, (ids, types)) in ids.iter().zip(type_ids).enumerate() {
            for (col, (&id, &ty)) in ids.iter().zip(types.iter()).enumerate() {
                flat_ids[row * seq + col] = id as i32;
                flat_types[row * seq + col] = ty as i32;
                mask[row * seq + col] = 1.0;
            }
        }
        Self {
            input_ids: Tensor::from_data(TensorData::new(flat_ids, [batch, seq]), device),
            token_type_ids: Tensor::from_data(TensorData::new(flat_types, [batch, seq]), device),
            attention_mask: Tensor::from_data(TensorData::new(mask, [batch, seq]), device),
            padded,
        }
    }

    /// Rows `range` of the batch, padded to the same length (the padding
    /// flag is kept: a mask of ones only costs a masked attention).
    pub fn rows(&self, range: Range<usize>) -> Self {
        Self {
            input_ids: self.input_ids.clone().slice(range.clone()),
            token_type_ids: self.token_type_ids.clone().slice(range.clone()),
            attention_mask: self.attention_mask.clone().slice(range),
            padded: self.padded,
        }
    }

    /// The batch without autodiff, for a model's inference copy
    /// (`Module::valid`), whose forward then takes the inference paths.
    pub fn without_autodiff(self) -> Self {
        Self {
            input_ids: self.input_ids.without_autodiff(),
            token_type_ids: self.token_type_ids.without_autodiff(),
            attention_mask: self.attention_mask.without_autodiff(),
            padded: self.padded,
        }
    }
}

/// Word, position and token-type embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// Word-piece embeddings `[vocab, hidden]`.
    pub word_embeddings: Embedding,
    /// Absolute position embeddings `[max_positions, hidden]`.
    pub position_embeddings: Embedding,
    /// Segment embeddings `[type_vocab, hidden]`.
    pub token_type_embeddings: Embedding,
    /// The embedding LayerNorm (HF name).
    pub LayerNorm: LayerNorm,
}

impl BertEmbeddings {
    fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            word_embeddings: EmbeddingConfig::new(config.vocab_size, config.hidden_size).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, config.hidden_size).init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, config.hidden_size).init(device),
            LayerNorm: layer_norm(config, device),
        }
    }

    fn forward(&self, input_ids: Tensor<2, Int>, token_type_ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
        let summed = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(token_type_ids);
        self.LayerNorm.forward(summed)
    }
}

/// Multi-head self-attention projections (HF `attention.self`).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Number of heads.
    pub num_heads: usize,
}

impl BertSelfAttention {
    fn forward(&self, hidden: Tensor<3>, pad_mask: Option<Tensor<4, Bool>>) -> Tensor<3> {
        let [batch, seq, width] = hidden.dims();
        let heads = |t: Tensor<3>| t.reshape([batch, seq, self.num_heads, width / self.num_heads]).swap_dims(1, 2);
        let [q, k, v] = skinny::linears([&self.query, &self.key, &self.value], hidden).map(heads);
        let context = attention(q, k, v, pad_mask, None, AttentionModuleOptions::default());
        context.swap_dims(1, 2).reshape([batch, seq, width])
    }
}

/// A projection, then a residual connection and LayerNorm (HF `BertSelfOutput`
/// and `BertOutput`, which share this shape).
#[derive(Module, Debug)]
pub struct BertResidualOutput {
    /// Output projection.
    pub dense: Linear,
    /// Post-residual LayerNorm (HF name).
    pub LayerNorm: LayerNorm,
}

impl BertResidualOutput {
    fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.LayerNorm.forward(skinny::linear(&self.dense, x) + residual)
    }
}

/// Self-attention and its output block (HF `attention`).
#[derive(Module, Debug)]
pub struct BertAttention {
    /// HF `attention.self`.
    pub self_attn: BertSelfAttention,
    /// HF `attention.output`.
    pub output: BertResidualOutput,
}

/// The first feed-forward projection and its activation (HF `intermediate`).
#[derive(Module, Debug)]
pub struct BertIntermediate {
    /// Projection to the inner width.
    pub dense: Linear,
    /// The activation.
    #[module(skip)]
    pub act: HiddenAct,
}

impl BertIntermediate {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = skinny::linear(&self.dense, x);
        match self.act {
            HiddenAct::Gelu => gelu::gelu(x),
            HiddenAct::GeluNew => activation::gelu_approximate(x),
            HiddenAct::Relu => activation::relu(x),
        }
    }
}

/// One post-norm encoder layer (HF `encoder.layer.N`).
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Attention block.
    pub attention: BertAttention,
    /// Feed-forward first half.
    pub intermediate: BertIntermediate,
    /// Feed-forward second half with residual and LayerNorm.
    pub output: BertResidualOutput,
}

impl BertLayer {
    fn forward(&self, hidden: Tensor<3>, pad_mask: Option<Tensor<4, Bool>>) -> Tensor<3> {
        let attended = self.attention.self_attn.forward(hidden.clone(), pad_mask);
        let hidden = self.attention.output.forward(attended, hidden);
        let inner = self.intermediate.forward(hidden.clone());
        self.output.forward(inner, hidden)
    }
}

/// The stack of encoder layers (HF `encoder`).
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// The layers, in order.
    pub layer: Vec<BertLayer>,
}

/// A BERT encoder without pooler: token ids in, contextual token vectors out.
#[derive(Module, Debug)]
pub struct BertModel {
    /// The embedding block.
    pub embeddings: BertEmbeddings,
    /// The encoder layers.
    pub encoder: BertEncoder,
}

fn layer_norm(config: &BertConfig, device: &Device) -> LayerNorm {
    LayerNormConfig::new(config.hidden_size).with_epsilon(config.layer_norm_eps).init(device)
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

impl BertModel {
    /// A randomly initialised model with the shapes of `config`.
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        let layer = (0..config.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attn: BertSelfAttention {
                        query: linear(h, h, device),
                        key: linear(h, h, device),
                        value: linear(h, h, device),
                        num_heads: config.num_attention_heads,
                    },
                    output: BertResidualOutput { dense: linear(h, h, device), LayerNorm: layer_norm(config, device) },
                },
                intermediate: BertIntermediate { dense: linear(h, config.intermediate_size, device), act: config.hidden_act },
                output: BertResidualOutput {
                    dense: linear(config.intermediate_size, h, device),
                    LayerNorm: layer_norm(config, device),
                },
            })
            .collect();
        Self { embeddings: BertEmbeddings::new(config, device), encoder: BertEncoder { layer } }
    }

    /// Contextual token vectors `[batch, seq, hidden]`. Padding positions
    /// (mask 0) are never attended to, so they do not change the real tokens'
    /// vectors.
    pub fn forward(&self, batch: &TokenBatch) -> Tensor<3> {
        let [b, s] = batch.input_ids.dims();
        let heads = self.encoder.layer.first().map_or(1, |l| l.attention.self_attn.num_heads);
        // True where the key is padding, expanded to every query row; none
        // when nothing is padded.
        let pad_mask = batch.padded.then(|| {
            let keys = batch.attention_mask.clone().equal_elem(0.0).reshape([b, 1, 1, s]);
            // flex's inference attention takes one mask for all heads and
            // reads a contiguous one in place (an expanded view is copied on
            // every layer); the autodiff and GPU paths need every head.
            #[cfg(feature = "flex")]
            if crate::flex::is_inference(&batch.attention_mask) {
                return crate::flex::contiguous(keys.expand([b, 1, s, s]));
            }
            keys.expand([b, heads, s, s])
        });
        let mut hidden = self.embeddings.forward(batch.input_ids.clone(), batch.token_type_ids.clone());
        for layer in &self.encoder.layer {
            hidden = layer.forward(hidden, pad_mask.clone());
        }
        hidden
    }
}
