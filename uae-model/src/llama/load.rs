//! Builds a [`LlamaForCausalLM`] from a configuration and a [`WeightReader`]
//! (safetensors or GGUF), checking every tensor's shape and reporting missing
//! and unused tensors by name.

use anyhow::{Context, Result, bail};
use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm, RmsNormConfig};
use burn::prelude::*;

use crate::weights::{HostTensor, WeightReader};
use super::{LlamaAttention, LlamaConfig, LlamaDecoderLayer, LlamaForCausalLM, LlamaMlp, LlamaModel, rope};

/// Tensors a checkpoint may carry that the model derives itself.
const IGNORED_SUFFIXES: &[&str] = &["rotary_emb.inv_freq"];

impl LlamaForCausalLM {
    /// Builds the model from `weights`, which must hold every tensor the
    /// configuration calls for with the right shape. Unused tensors are an
    /// error too (they mean the config and the weights disagree), except
    /// rotary caches that older checkpoints store. A configuration
    /// [`LlamaConfig::validate`] refuses is an error before any module is
    /// built, and a NaN or infinite weight one that names its tensor.
    pub fn load(config: &LlamaConfig, weights: &mut WeightReader, device: &Device) -> Result<Self> {
        config.validate().context("the model configuration")?;
        let mut builder = Builder { weights, device };
        let hidden = config.hidden_size;
        let embed = builder.tensor2("model.embed_tokens.weight", [config.vocab_size, hidden])?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            layers.push(builder.layer(config, i)?);
        }
        let norm = builder.rms_norm("model.norm.weight", config)?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(builder.linear("lm_head", hidden, config.vocab_size, false)?)
        };
        let unread: Vec<String> = weights
            .unread()
            .into_iter()
            .filter(|n| !IGNORED_SUFFIXES.iter().any(|s| n.ends_with(s)))
            .filter(|n| !(config.tie_word_embeddings && n == "lm_head.weight"))
            .collect();
        if !unread.is_empty() {
            bail!(
                "{} holds {} tensor(s) the configuration does not use: {}",
                weights.describe(),
                unread.len(),
                unread.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
            );
        }
        Ok(Self {
            model: LlamaModel {
                embed_tokens: Embedding { weight: Param::from_tensor(embed) },
                layers,
                norm,
                inv_freq: rope::inverse_frequencies(config),
            },
            lm_head,
        })
    }
}

struct Builder<'a> {
    weights: &'a mut WeightReader,
    device: &'a Device,
}

impl Builder<'_> {
    fn host(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        self.weights.get(name, shape)
    }

    fn tensor2(&mut self, name: &str, shape: [usize; 2]) -> Result<Tensor<2>> {
        let t = self.host(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(t.data, shape), self.device))
    }

    fn tensor1(&mut self, name: &str, len: usize) -> Result<Tensor<1>> {
        let t = self.host(name, &[len])?;
        Ok(Tensor::from_data(TensorData::new(t.data, [len]), self.device))
    }

    /// A Linear from transformers' `[out, in]` weight (Burn keeps `[in, out]`).
    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        let weight = self.host(&format!("{prefix}.weight"), &[d_out, d_in])?.transposed();
        let weight = Tensor::from_data(TensorData::new(weight.data, [d_in, d_out]), self.device);
        let bias = if bias { Some(Param::from_tensor(self.tensor1(&format!("{prefix}.bias"), d_out)?)) } else { None };
        Ok(Linear { weight: Param::from_tensor(weight), bias })
    }

    fn rms_norm(&mut self, name: &str, config: &LlamaConfig) -> Result<RmsNorm> {
        let gamma = self.tensor1(name, config.hidden_size)?;
        let mut norm = RmsNormConfig::new(config.hidden_size).with_epsilon(config.rms_norm_eps).init(self.device);
        norm.gamma = Param::from_tensor(gamma);
        Ok(norm)
    }

    fn layer(&mut self, config: &LlamaConfig, i: usize) -> Result<LlamaDecoderLayer> {
        let p = format!("model.layers.{i}");
        let (hidden, d) = (config.hidden_size, config.head_dim());
        let (h, hkv) = (config.num_attention_heads, config.kv_heads());
        let qkv_bias = config.attention_bias;
        let self_attn = LlamaAttention {
            q_proj: self.linear(&format!("{p}.self_attn.q_proj"), hidden, h * d, qkv_bias)?,
            k_proj: self.linear(&format!("{p}.self_attn.k_proj"), hidden, hkv * d, qkv_bias)?,
            v_proj: self.linear(&format!("{p}.self_attn.v_proj"), hidden, hkv * d, qkv_bias)?,
            o_proj: self.linear(&format!("{p}.self_attn.o_proj"), h * d, hidden, config.o_proj_bias)?,
            num_heads: h,
            num_kv_heads: hkv,
            head_dim: d,
        };
        let inter = config.intermediate_size;
        let mlp = LlamaMlp {
            gate_proj: self.linear(&format!("{p}.mlp.gate_proj"), hidden, inter, config.mlp_bias)?,
            up_proj: self.linear(&format!("{p}.mlp.up_proj"), hidden, inter, config.mlp_bias)?,
            down_proj: self.linear(&format!("{p}.mlp.down_proj"), inter, hidden, config.mlp_bias)?,
        };
        Ok(LlamaDecoderLayer {
            self_attn,
            mlp,
            input_layernorm: self
                .rms_norm(&format!("{p}.input_layernorm.weight"), config)
                .with_context(|| format!("layer {i}"))?,
            post_attention_layernorm: self.rms_norm(&format!("{p}.post_attention_layernorm.weight"), config)?,
        })
    }
}
