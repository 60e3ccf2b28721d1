//! Loading BERT weights in the Hugging Face safetensors layout through the
//! shared [`WeightReader`], and saving them through burn-store.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, SafetensorsStore};

use super::{
    BertAttention, BertConfig, BertEmbeddings, BertEncoder, BertIntermediate, BertLayer, BertModel, BertResidualOutput,
    BertSelfAttention,
};
use crate::weights::{HostTensor, WeightReader};

/// Checkpoint names that uae's modules do not use and that may be present:
/// the pooler head, the position-id buffer older checkpoints store, and the
/// heads of `BertFor*` classes.
const IGNORED_PREFIXES: &[&str] = &["pooler.", "embeddings.position_ids", "cls.", "lm_head."];

/// The prefix `BertFor*` checkpoints nest the encoder under.
const NESTED_PREFIX: &str = "bert.";

/// Module names back to the Hugging Face names, for export (`self` is a Rust
/// keyword, spelt `self_attn` in the modules).
fn save_remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(vec![(r"\.attention\.self_attn\.", ".attention.self.")]).expect("static patterns are valid")
}

/// Every tensor the model reads: its Hugging Face name and shape.
fn layout(config: &BertConfig) -> Vec<(String, Vec<usize>)> {
    let (h, inner) = (config.hidden_size, config.intermediate_size);
    let mut out = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![config.vocab_size, h]),
        ("embeddings.position_embeddings.weight".to_string(), vec![config.max_position_embeddings, h]),
        ("embeddings.token_type_embeddings.weight".to_string(), vec![config.type_vocab_size, h]),
    ];
    let linear = |out: &mut Vec<_>, prefix: String, d_in: usize, d_out: usize| {
        out.push((format!("{prefix}.weight"), vec![d_out, d_in]));
        out.push((format!("{prefix}.bias"), vec![d_out]));
    };
    let norm = |out: &mut Vec<(String, Vec<usize>)>, prefix: String| {
        out.push((format!("{prefix}.weight"), vec![h]));
        out.push((format!("{prefix}.bias"), vec![h]));
    };
    norm(&mut out, "embeddings.LayerNorm".into());
    for i in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{i}");
        for proj in ["query", "key", "value"] {
            linear(&mut out, format!("{p}.attention.self.{proj}"), h, h);
        }
        linear(&mut out, format!("{p}.attention.output.dense"), h, h);
        norm(&mut out, format!("{p}.attention.output.LayerNorm"));
        linear(&mut out, format!("{p}.intermediate.dense"), h, inner);
        linear(&mut out, format!("{p}.output.dense"), inner, h);
        norm(&mut out, format!("{p}.output.LayerNorm"));
    }
    out
}

/// The name of Hugging Face tensor `name` in the file: under the `bert.`
/// prefix when the file nests the encoder, and with the `gamma`/`beta`
/// LayerNorm names of older checkpoints accepted.
fn file_name(weights: &WeightReader, prefix: &str, name: &str) -> Option<String> {
    let old = name.strip_suffix("LayerNorm.weight").map(|p| format!("{p}LayerNorm.gamma")).or_else(|| {
        name.strip_suffix("LayerNorm.bias").map(|p| format!("{p}LayerNorm.beta"))
    });
    std::iter::once(name.to_string()).chain(old).map(|n| format!("{prefix}{n}")).find(|n| weights.contains(n))
}

impl BertModel {
    /// Builds a model for `config` from the safetensors file at `path`. Any
    /// float type in the file (f16, bf16, f64) is cast to f32. A tensor the
    /// model needs but the file lacks, a tensor of the wrong shape, or a
    /// tensor in the file that the model does not know (beyond a pooler or a
    /// position-id buffer) is an error that names them, all at once; so is
    /// a configuration [`BertConfig::validate`] refuses, or a NaN or
    /// infinite weight.
    pub fn load(config: &BertConfig, path: &Path, device: &Device) -> Result<Self> {
        config.validate().context("the BERT configuration")?;
        if !path.is_file() {
            bail!("{} does not exist (uae reads BERT weights from model.safetensors)", path.display());
        }
        let mut weights = WeightReader::safetensors(&[path.to_path_buf()])?;
        let prefix = if weights.contains(&format!("{NESTED_PREFIX}embeddings.word_embeddings.weight")) {
            NESTED_PREFIX
        } else {
            ""
        };
        let mut names = HashMap::new();
        let mut missing = Vec::new();
        let mut misfits = Vec::new();
        for (name, shape) in layout(config) {
            match file_name(&weights, prefix, &name) {
                None => missing.push(name),
                Some(found) => {
                    let stored = weights.shape(&found).unwrap_or_default();
                    if stored != shape.as_slice() {
                        misfits.push(format!("{name} is {stored:?} in the file, {shape:?} by config.json"));
                    }
                    names.insert(name, found);
                }
            }
        }
        let used: BTreeSet<&String> = names.values().collect();
        let unused: Vec<String> = weights
            .unread()
            .into_iter()
            .filter(|n| !used.contains(n))
            .filter(|n| {
                let local = n.strip_prefix(prefix).unwrap_or(n);
                !IGNORED_PREFIXES.iter().any(|p| local.starts_with(p))
            })
            .collect();
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!("missing tensors: {}", missing.join(", ")));
        }
        if !misfits.is_empty() {
            problems.push(format!("tensors that do not fit: {}", misfits.join("; ")));
        }
        if !unused.is_empty() {
            problems.push(format!("tensors the model does not use: {}", unused.join(", ")));
        }
        if !problems.is_empty() {
            bail!("{} does not match its config.json: {}", path.display(), problems.join("; "));
        }
        Builder { weights: &mut weights, names: &names, device }.model(config)
    }

    /// Writes the weights to `path` as safetensors with the Hugging Face
    /// tensor names and layout, readable by transformers.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut store = SafetensorsStore::from_file(path)
            .with_to_adapter(BurnToPyTorchAdapter)
            .remap(save_remapper())
            .metadata("format", "pt")
            .overwrite(true);
        self.save_into(&mut store).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Reads the checked tensors into modules.
struct Builder<'a> {
    weights: &'a mut WeightReader,
    /// Hugging Face name -> name in the file.
    names: &'a HashMap<String, String>,
    device: &'a Device,
}

impl Builder<'_> {
    fn host(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let file_name = self.names.get(name).with_context(|| format!("missing tensor {name}"))?;
        self.weights.get(file_name, shape)
    }

    fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let t = self.host(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(t.data, shape), self.device))
    }

    fn embedding(&mut self, name: &str, rows: usize, width: usize) -> Result<Embedding> {
        Ok(Embedding { weight: Param::from_tensor(self.tensor(&format!("{name}.weight"), [rows, width])?) })
    }

    /// A Linear from the checkpoint's `[out, in]` weight (Burn keeps `[in, out]`).
    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize) -> Result<Linear> {
        let weight = self.host(&format!("{prefix}.weight"), &[d_out, d_in])?.transposed();
        let weight = Tensor::from_data(TensorData::new(weight.data, [d_in, d_out]), self.device);
        let bias = self.tensor(&format!("{prefix}.bias"), [d_out])?;
        Ok(Linear { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(bias)) })
    }

    fn layer_norm(&mut self, prefix: &str, config: &BertConfig) -> Result<LayerNorm> {
        let h = config.hidden_size;
        let mut norm = LayerNormConfig::new(h).with_epsilon(config.layer_norm_eps).init(self.device);
        norm.gamma = Param::from_tensor(self.tensor(&format!("{prefix}.weight"), [h])?);
        norm.beta = Some(Param::from_tensor(self.tensor(&format!("{prefix}.bias"), [h])?));
        Ok(norm)
    }

    fn residual(&mut self, prefix: &str, d_in: usize, config: &BertConfig) -> Result<BertResidualOutput> {
        Ok(BertResidualOutput {
            dense: self.linear(&format!("{prefix}.dense"), d_in, config.hidden_size)?,
            LayerNorm: self.layer_norm(&format!("{prefix}.LayerNorm"), config)?,
        })
    }

    fn model(&mut self, config: &BertConfig) -> Result<BertModel> {
        let h = config.hidden_size;
        let embeddings = BertEmbeddings {
            word_embeddings: self.embedding("embeddings.word_embeddings", config.vocab_size, h)?,
            position_embeddings: self.embedding("embeddings.position_embeddings", config.max_position_embeddings, h)?,
            token_type_embeddings: self.embedding("embeddings.token_type_embeddings", config.type_vocab_size, h)?,
            LayerNorm: self.layer_norm("embeddings.LayerNorm", config)?,
        };
        let mut layer = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let self_attn = BertSelfAttention {
                query: self.linear(&format!("{p}.attention.self.query"), h, h)?,
                key: self.linear(&format!("{p}.attention.self.key"), h, h)?,
                value: self.linear(&format!("{p}.attention.self.value"), h, h)?,
                num_heads: config.num_attention_heads,
            };
            layer.push(BertLayer {
                attention: BertAttention { self_attn, output: self.residual(&format!("{p}.attention.output"), h, config)? },
                intermediate: BertIntermediate {
                    dense: self.linear(&format!("{p}.intermediate.dense"), h, config.intermediate_size)?,
                    act: config.hidden_act,
                },
                output: self.residual(&format!("{p}.output"), config.intermediate_size, config)?,
            });
        }
        Ok(BertModel { embeddings, encoder: BertEncoder { layer } })
    }
}
