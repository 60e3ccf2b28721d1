//! BERT hyper-parameters, read with serde straight from a Hugging Face
//! `config.json` (the field names are the transformers ones).

use std::path::Path;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

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
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        if self.model_type != "bert" {
            bail!(
                "{}: model_type is {:?}; uae's bi-encoder implements BERT (model_type \"bert\")",
                path.display(),
                self.model_type
            );
        }
        if self.position_embedding_type != "absolute" {
            bail!("{}: position_embedding_type {:?} is not supported, only \"absolute\"", path.display(), self.position_embedding_type);
        }
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            bail!(
                "{}: hidden_size {} is not a multiple of num_attention_heads {}",
                path.display(),
                self.hidden_size,
                self.num_attention_heads
            );
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

    #[test]
    fn missing_field_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"model_type":"bert"}"#).unwrap();
        let err = format!("{:#}", BertConfig::from_file(&path).unwrap_err());
        assert!(err.contains("config.json") && err.contains("missing field"), "{err}");
    }
}
