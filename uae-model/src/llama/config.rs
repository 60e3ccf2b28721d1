//! Hyper-parameters of a Llama-family decoder, read with serde straight from a
//! Hugging Face `config.json` (transformers' field names) or from a GGUF
//! file's `<arch>.*` metadata.

use std::path::Path;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::check;
use crate::gguf::GgufFile;

/// Llama 3's long-context rotary scaling (`rope_scaling` with
/// `rope_type: "llama3"`); other scaling types are refused when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `llama3` (transformers also accepts the older key `type`).
    #[serde(alias = "type")]
    pub rope_type: String,
    /// Overall stretch of the low frequencies.
    pub factor: f64,
    /// Wavelength bound (as a fraction of the original context) below which
    /// frequencies are stretched fully.
    #[serde(default = "one")]
    pub low_freq_factor: f64,
    /// Wavelength bound above which frequencies are kept as they are.
    #[serde(default = "four")]
    pub high_freq_factor: f64,
    /// The context length the model was pre-trained with.
    #[serde(default = "default_original_context")]
    pub original_max_position_embeddings: usize,
}

impl RopeScaling {
    /// Checks the values Llama 3 scaling divides by: a finite, positive
    /// factor and low-frequency factor, a high-frequency factor above the
    /// low one, and a positive original context.
    fn validate(&self) -> Result<()> {
        check::positive_finite("rope_scaling.factor", self.factor)?;
        check::positive_finite("rope_scaling.low_freq_factor", self.low_freq_factor)?;
        if !(self.high_freq_factor.is_finite() && self.high_freq_factor > self.low_freq_factor) {
            bail!(
                "rope_scaling.high_freq_factor is {}; it must be a finite number above low_freq_factor {}",
                self.high_freq_factor,
                self.low_freq_factor
            );
        }
        check::positive("rope_scaling.original_max_position_embeddings", self.original_max_position_embeddings)
    }
}

fn one() -> f64 {
    1.0
}
fn four() -> f64 {
    4.0
}
fn default_original_context() -> usize {
    8192
}

/// A decoder-only Llama-family model's configuration (Llama 2/3, Mistral,
/// Qwen2, SmolLM/SmolLM2), with transformers' field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// `llama`, `mistral`, `qwen2` (which implies biases on q/k/v) or `smollm`.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Vocabulary size (rows of the embedding and of the output head).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU inner layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads per layer.
    pub num_attention_heads: usize,
    /// Key/value heads per layer (grouped-query attention); defaults to the
    /// number of query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Epsilon of every RMSNorm.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// Base of the rotary frequencies.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Optional Llama 3 rotary scaling.
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// Longest sequence the model supports.
    #[serde(default = "default_context")]
    pub max_position_embeddings: usize,
    /// Whether the output head shares the token-embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on the q/k/v projections (Qwen2 has them; `attention_bias` in
    /// Llama configs).
    #[serde(default)]
    pub attention_bias: bool,
    /// Bias on the output projection too (some Llama configs).
    #[serde(default)]
    pub o_proj_bias: bool,
    /// Bias on the MLP projections (`mlp_bias` in Llama configs).
    #[serde(default)]
    pub mlp_bias: bool,
    /// Only `silu` (SwiGLU) is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Beginning-of-sequence token, if any.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token(s): transformers allows one id or a list.
    #[serde(default)]
    pub eos_token_id: Option<EosTokens>,
}

/// One end-of-sequence id or several (Llama 3 lists more than one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EosTokens {
    /// A single id.
    One(u32),
    /// Several ids, any of which ends generation.
    Many(Vec<u32>),
}

impl EosTokens {
    /// The ids as a list.
    pub fn ids(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

fn default_model_type() -> String {
    "llama".into()
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_context() -> usize {
    2048
}
fn default_act() -> String {
    "silu".into()
}

/// The GGUF metadata key (after the `<arch>.` prefix) of each configuration
/// field [`LlamaConfig::from_gguf`] reads, for messages.
const GGUF_KEYS: &[(&str, &str)] = &[
    ("vocab_size", "vocab_size"),
    ("hidden_size", "embedding_length"),
    ("intermediate_size", "feed_forward_length"),
    ("num_hidden_layers", "block_count"),
    ("num_attention_heads", "attention.head_count"),
    ("num_key_value_heads", "attention.head_count_kv"),
    ("rms_norm_eps", "attention.layer_norm_rms_epsilon"),
    ("rope_theta", "rope.freq_base"),
    ("max_position_embeddings", "context_length"),
];

impl LlamaConfig {
    /// Reads and validates a transformers `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut config: Self = uae_data::json::read_json(path)?;
        if config.model_type == "qwen2" {
            // Qwen2 always has q/k/v biases; its config does not say so.
            config.attention_bias = true;
        }
        config.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// Builds the configuration from a GGUF file's metadata (`general.architecture`
    /// names the key prefix: `llama`, `qwen2`, ...). Whether the output head is
    /// tied and whether q/k/v carry biases is read from the tensors present.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let arch = file.get_str("general.architecture")?.to_string();
        let model_type = match arch.as_str() {
            "llama" | "mistral" | "qwen2" => arch.clone(),
            other => bail!(
                "{}: general.architecture is {other:?}; uae's teacher supports llama, mistral and qwen2",
                file.path().display()
            ),
        };
        let key = |name: &str| format!("{arch}.{name}");
        let hidden_size = file.get_u32(&key("embedding_length"))? as usize;
        let num_attention_heads = file.get_u32(&key("attention.head_count"))? as usize;
        let key_length = file.get_u32_opt(&key("attention.key_length"))?;
        let head_dim_key = if key_length.is_some() { "attention.key_length" } else { "rope.dimension_count" };
        let head_dim = match key_length {
            Some(d) => Some(d as usize),
            None => file.get_u32_opt(&key(head_dim_key))?.map(|d| d as usize),
        };
        let vocab_size = match file.get_u32_opt(&key("vocab_size"))? {
            Some(v) => v as usize,
            None => file.tensor_info("token_embd.weight")?.shape()[0],
        };
        let rope_scaling = match file.get_str_opt(&key("rope.scaling.type"))? {
            None | Some("none") => None,
            Some(other) => bail!(
                "{}: {} is {other:?}; only unscaled rotary embeddings are read from GGUF",
                file.path().display(),
                key("rope.scaling.type")
            ),
        };
        let config = Self {
            model_type,
            vocab_size,
            hidden_size,
            intermediate_size: file.get_u32(&key("feed_forward_length"))? as usize,
            num_hidden_layers: file.get_u32(&key("block_count"))? as usize,
            num_attention_heads,
            num_key_value_heads: file.get_u32_opt(&key("attention.head_count_kv"))?.map(|n| n as usize),
            head_dim,
            rms_norm_eps: file.get_f32(&key("attention.layer_norm_rms_epsilon"))? as f64,
            rope_theta: file.get_f32_opt(&key("rope.freq_base"))?.map_or(10_000.0, f64::from),
            rope_scaling,
            max_position_embeddings: file.get_u32(&key("context_length"))? as usize,
            tie_word_embeddings: !file.has_tensor("output.weight"),
            attention_bias: file.has_tensor("blk.0.attn_q.bias"),
            o_proj_bias: file.has_tensor("blk.0.attn_output.bias"),
            mlp_bias: file.has_tensor("blk.0.ffn_up.bias"),
            hidden_act: "silu".into(),
            bos_token_id: file.get_u32_opt("tokenizer.ggml.bos_token_id")?,
            eos_token_id: file.get_u32_opt("tokenizer.ggml.eos_token_id")?.map(EosTokens::One),
        };
        // Report a bad value by the metadata key it was read from.
        let name = |field: &'static str| {
            let gguf = match field {
                "head_dim" => Some(head_dim_key),
                _ => GGUF_KEYS.iter().find(|(f, _)| *f == field).map(|(_, k)| *k),
            };
            gguf.map_or_else(|| field.to_string(), key)
        };
        config.validate_named(&name).map_err(|e| anyhow::anyhow!("{}: {e}", file.path().display()))?;
        Ok(config)
    }

    /// Checks every value the modules rely on (sizes and head counts above
    /// zero that divide as attention needs, epsilons and rotary parameters
    /// finite and positive), naming a bad one by its `config.json` key.
    pub fn validate(&self) -> Result<()> {
        self.validate_named(&|field| field.to_string())
    }

    /// [`Self::validate`], with `name` giving the name a field is reported
    /// by (its GGUF metadata key for a configuration read from GGUF).
    fn validate_named(&self, name: &dyn Fn(&'static str) -> String) -> Result<()> {
        if self.hidden_act != "silu" {
            bail!("hidden_act is {:?}; only silu (SwiGLU) is supported", self.hidden_act);
        }
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            check::positive(&name(field), value)?;
        }
        if let Some(kv_heads) = self.num_key_value_heads {
            check::positive(&name("num_key_value_heads"), kv_heads)?;
        }
        if let Some(head_dim) = self.head_dim {
            check::positive(&name("head_dim"), head_dim)?;
        }
        check::positive_finite(&name("rms_norm_eps"), self.rms_norm_eps)?;
        check::positive_finite(&name("rope_theta"), self.rope_theta)?;
        if self.head_dim.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            bail!(
                "{} {} is not a multiple of {} {}",
                name("hidden_size"),
                self.hidden_size,
                name("num_attention_heads"),
                self.num_attention_heads
            );
        }
        if self.head_dim() % 2 != 0 {
            bail!("{} {} must be even for rotary embeddings", name("head_dim"), self.head_dim());
        }
        if self.num_attention_heads % self.kv_heads() != 0 {
            bail!(
                "{} {} is not a multiple of {} {}",
                name("num_attention_heads"),
                self.num_attention_heads,
                name("num_key_value_heads"),
                self.kv_heads()
            );
        }
        if let Some(scaling) = &self.rope_scaling {
            match scaling.rope_type.as_str() {
                "default" => {}
                "llama3" => scaling.validate()?,
                other => bail!("rope_scaling type {other:?} is not supported (llama3 is)"),
            }
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Number of key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_config_json_reads() {
        let json = r#"{"architectures":["LlamaForCausalLM"],"bos_token_id":1,"eos_token_id":2,
            "hidden_act":"silu","hidden_size":576,"intermediate_size":1536,"max_position_embeddings":8192,
            "model_type":"llama","num_attention_heads":9,"num_hidden_layers":30,"num_key_value_heads":3,
            "rms_norm_eps":1e-05,"rope_theta":100000,"tie_word_embeddings":true,"vocab_size":49152}"#;
        let config: LlamaConfig = serde_json::from_str(json).unwrap();
        config.validate().unwrap();
        assert_eq!(config.head_dim(), 64);
        assert_eq!(config.kv_heads(), 3);
        assert!(config.tie_word_embeddings);
        assert_eq!(config.eos_token_id.unwrap().ids(), vec![2]);
    }

    #[test]
    fn llama3_scaling_and_eos_list_read() {
        let json = r#"{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,
            "vocab_size":100,"eos_token_id":[5,6],
            "rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
            "original_max_position_embeddings":8192,"rope_type":"llama3"}}"#;
        let config: LlamaConfig = serde_json::from_str(json).unwrap();
        config.validate().unwrap();
        assert_eq!(config.rope_scaling.unwrap().factor, 8.0);
        assert_eq!(config.eos_token_id.unwrap().ids(), vec![5, 6]);
    }

    /// Every value the modules would panic on or silently mis-compute with
    /// is refused, naming the field; from a file, the file too.
    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let base = r#"{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,
            "num_key_value_heads":2,"vocab_size":100}"#;
        let cases = [
            (r#"{"rms_norm_eps":0}"#, "rms_norm_eps is 0"),
            (r#"{"rms_norm_eps":-1e-6}"#, "rms_norm_eps is -0.000001"),
            (r#"{"rope_theta":0}"#, "rope_theta is 0"),
            (r#"{"num_key_value_heads":0}"#, "num_key_value_heads is 0"),
            (r#"{"num_key_value_heads":3}"#, "num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
            (r#"{"num_attention_heads":0}"#, "num_attention_heads is 0"),
            (r#"{"hidden_size":66}"#, "hidden_size 66 is not a multiple of num_attention_heads 4"),
            (r#"{"head_dim":0}"#, "head_dim is 0"),
            (r#"{"vocab_size":0}"#, "vocab_size is 0"),
            (r#"{"intermediate_size":0}"#, "intermediate_size is 0"),
            (r#"{"num_hidden_layers":0}"#, "num_hidden_layers is 0"),
            (r#"{"max_position_embeddings":0}"#, "max_position_embeddings is 0"),
            (r#"{"rope_scaling":{"rope_type":"llama3","factor":0}}"#, "rope_scaling.factor is 0"),
            (r#"{"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":0}}"#, "rope_scaling.low_freq_factor is 0"),
            (
                r#"{"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":4,"high_freq_factor":1}}"#,
                "rope_scaling.high_freq_factor is 1",
            ),
            (
                r#"{"rope_scaling":{"rope_type":"llama3","factor":8,"original_max_position_embeddings":0}}"#,
                "rope_scaling.original_max_position_embeddings is 0",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        for (change, says) in cases {
            let mut json: serde_json::Value = serde_json::from_str(base).unwrap();
            for (key, value) in serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(change).unwrap() {
                json[key] = value;
            }
            std::fs::write(&path, json.to_string()).unwrap();
            let err = format!("{:#}", LlamaConfig::from_file(&path).unwrap_err());
            assert!(err.contains("config.json") && err.contains(says), "{change}: {err}");
        }
    }

    #[test]
    fn unsupported_activation_is_refused() {
        let json = r#"{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,
            "vocab_size":100,"hidden_act":"gelu"}"#;
        let config: LlamaConfig = serde_json::from_str(json).unwrap();
        assert!(config.validate().unwrap_err().to_string().contains("silu"));
    }
}
