//! BERT hyper-parameters, read with serde straight from a Hugging Face
//! `config.json` (the field names are the transformers ones).

use std::path::Path;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::check;

/// The activation between the two feed-forward projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// The exact, erf-based GELU (transformers' `gelu`).
    Gelu,
    /// The tanh approximation of GELU (transformers' `gelu_new`, `gelu_pytorch_tanh`).
    #[serde(alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluNew,
    /// ReLU.
    Relu,
}

/// A BERT encoder's configuration, as transformers writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Size of the word-piece vocabulary.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward inner layer.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    #[serde(default = "default_act")]
    pub hidden_act: HiddenAct,
    /// Number of absolute positions the model has embeddings for.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Id of the padding token.
    #[serde(default)]
    pub pad_token_id: usize,
    /// Only `absolute` is supported.
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
    /// `bert` for the models uae supports.
    #[serde(default = "default_model_type")]
    pub model_type: String,
}

fn default_act() -> HiddenAct {
    HiddenAct::Gelu
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position_type() -> String {
    "absolute".into()
}
fn default_model_type() -> String {
    "bert".into()
}

impl BertConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = uae_data::json::read_json(path)?;
        config.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// Checks every value the modules rely on: a BERT with absolute
    /// positions, sizes above zero, a hidden size the heads divide, a finite
    /// positive LayerNorm epsilon and a padding id inside the vocabulary.
    /// Errors name the `config.json` key.
    pub fn validate(&self) -> Result<()> {
        if self.model_type != "bert" {
            bail!(
                "model_type is {:?}; uae's bi-encoder implements BERT (model_type \"bert\")",
                self.model_type
            );
        }
        if self.position_embedding_type != "absolute" {
            bail!("position_embedding_type {:?} is not supported, only \"absolute\"", self.position_embedding_type);
        }
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            check::positive(field, value)?;
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            bail!("hidden_size {} is not a multiple of num_attention_heads {}", self.hidden_size, self.num_attention_heads);
        }
        check::positive_finite("layer_norm_eps", self.layer_norm_eps)?;
        if self.pad_token_id >= self.vocab_size {
            bail!("pad_token_id {} is outside the vocabulary of vocab_size {}", self.pad_token_id, self.vocab_size);
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minilm_config() {
        let text = r#"{"_name_or_path":"nreimers/MiniLM-L6-H384-uncased","architectures":["BertModel"],
            "attention_probs_dropout_prob":0.1,"gradient_checkpointing":false,"hidden_act":"gelu",
            "hidden_dropout_prob":0.1,"hidden_size":384,"initializer_range":0.02,"intermediate_size":1536,
            "layer_norm_eps":1e-12,"max_position_embeddings":512,"model_type":"bert","num_attention_heads":12,
            "num_hidden_layers":6,"pad_token_id":0,"position_embedding_type":"absolute",
            "transformers_version":"4.8.2","type_vocab_size":2,"use_cache":true,"vocab_size":30522}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        let config = BertConfig::from_file(&path).unwrap();
        assert_eq!(config.hidden_size, 384);
        assert_eq!(config.head_dim(), 32);
        assert_eq!(config.hidden_act, HiddenAct::Gelu);
    }

    #[test]
    fn rejects_other_architectures_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"model_type":"mpnet","vocab_size":1,"hidden_size":4,"num_hidden_layers":1,
            "num_attention_heads":1,"intermediate_size":4,"max_position_embeddings":8}"#).unwrap();
        let err = BertConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("mpnet"), "{err}");
    }

    /// Values the modules would panic on or silently mis-compute with are
    /// refused, naming the file and the field.
    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let cases = [
            ("layer_norm_eps", serde_json::json!(0.0), "layer_norm_eps is 0"),
            ("layer_norm_eps", serde_json::json!(-1e-12), "layer_norm_eps is -0.000000000001"),
            ("num_attention_heads", serde_json::json!(0), "num_attention_heads is 0"),
            ("num_attention_heads", serde_json::json!(3), "hidden_size 4 is not a multiple of num_attention_heads 3"),
            ("hidden_size", serde_json::json!(0), "hidden_size is 0"),
            ("vocab_size", serde_json::json!(0), "vocab_size is 0"),
            ("num_hidden_layers", serde_json::json!(0), "num_hidden_layers is 0"),
            ("intermediate_size", serde_json::json!(0), "intermediate_size is 0"),
            ("max_position_embeddings", serde_json::json!(0), "max_position_embeddings is 0"),
            ("type_vocab_size", serde_json::json!(0), "type_vocab_size is 0"),
            ("pad_token_id", serde_json::json!(10), "pad_token_id 10 is outside the vocabulary of vocab_size 10"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        for (field, value, says) in cases {
            let mut json = serde_json::json!({"model_type": "bert", "vocab_size": 10, "hidden_size": 4,
                "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 8});
            json[field] = value;
            std::fs::write(&path, json.to_string()).unwrap();
            let err = format!("{:#}", BertConfig::from_file(&path).unwrap_err());
            assert!(err.contains("config.json") && err.contains(says), "{field}: {err}");
        }
    }

    #[test]
    fn missing_field_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"model_type":"bert"}"#).unwrap();
        let err = format!("{:#}", BertConfig::from_file(&path).unwrap_err());
        assert!(err.contains("config.json") && err.contains("missing field"), "{err}");
    }
}
