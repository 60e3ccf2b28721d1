//! The sentence-transformers side of a model directory: which pooling, whether
//! to L2-normalise, the maximum sequence length and the query/passage prefixes.
//!
//! Read from `modules.json`, `1_Pooling/config.json` (or whichever folder
//! `modules.json` names for the Pooling module), `sentence_bert_config.json`
//! and `config_sentence_transformers.json`. A plain transformers directory
//! without these files gets mean pooling without normalisation, which is what
//! sentence-transformers itself falls back to.

use std::path::Path;

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::source::ModelDir;
use uae_data::json::read_json;

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The vector of the first token (`[CLS]`), as BGE does.
    Cls,
    /// The mean of the non-padding token vectors, as all-MiniLM-L6-v2 does.
    Mean,
}

/// Everything needed to turn encoder outputs into sentence embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceConfig {
    /// The pooling mode.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised (a `Normalize` module is listed).
    pub normalize: bool,
    /// `max_seq_length` from `sentence_bert_config.json`, if any.
    pub max_seq_length: Option<usize>,
    /// Text put before each query (BGE's instruction, E5's `query: `).
    pub query_prefix: String,
    /// Text put before each passage (E5's `passage: `).
    pub passage_prefix: String,
}

impl Default for SentenceConfig {
    fn default() -> Self {
        Self {
            pooling: Pooling::Mean,
            normalize: false,
            max_seq_length: None,
            query_prefix: String::new(),
            passage_prefix: String::new(),
        }
    }
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PoolingFile {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

#[derive(Deserialize)]
struct SentenceBertFile {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize, Default)]
struct StConfigFile {
    #[serde(default)]
    prompts: std::collections::HashMap<String, String>,
}

impl SentenceConfig {
    /// Reads the sentence-transformers files of `dir`; absent files take the
    /// defaults described in the module documentation.
    pub fn load(dir: &ModelDir) -> Result<Self> {
        let mut config = Self::default();
        let modules_path = dir.file("modules.json");
        if modules_path.is_file() {
            let modules: Vec<ModuleEntry> = read_json(&modules_path)?;
            for module in &modules {
                let kind = module.kind.rsplit('.').next().unwrap_or_default();
                match kind {
                    "Pooling" => {
                        let folder = if module.path.is_empty() { "1_Pooling" } else { module.path.as_str() };
                        let path = dir.file(folder).join("config.json");
                        config.pooling = parse_pooling(&read_json(&path)?, &path)?;
                    }
                    "Normalize" => config.normalize = true,
                    "Transformer" => {}
                    other => bail!(
                        "{}: module type {} is not supported (uae knows Transformer, Pooling and Normalize)",
                        modules_path.display(),
                        other
                    ),
                }
            }
        }
        let sbert_path = dir.file("sentence_bert_config.json");
        if sbert_path.is_file() {
            let sbert: SentenceBertFile = read_json(&sbert_path)?;
            config.max_seq_length = sbert.max_seq_length;
        }
        let st_path = dir.file("config_sentence_transformers.json");
        if st_path.is_file() {
            let st: StConfigFile = read_json(&st_path)?;
            if let Some(query) = st.prompts.get("query") {
                config.query_prefix = query.clone();
            }
            if let Some(passage) = st.prompts.get("passage").or_else(|| st.prompts.get("document")) {
                config.passage_prefix = passage.clone();
            }
        }
        Ok(config)
    }
}

fn parse_pooling(file: &PoolingFile, path: &Path) -> Result<Pooling> {
    let unsupported = file.pooling_mode_max_tokens
        || file.pooling_mode_mean_sqrt_len_tokens
        || file.pooling_mode_weightedmean_tokens
        || file.pooling_mode_lasttoken;
    match (file.pooling_mode_cls_token, file.pooling_mode_mean_tokens, unsupported) {
        (true, false, false) => Ok(Pooling::Cls),
        (false, true, false) => Ok(Pooling::Mean),
        _ => bail!(
            "{}: uae supports exactly one of pooling_mode_cls_token or pooling_mode_mean_tokens",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_minilm_style_files() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "config.json", "{}");
        write(
            tmp.path(),
            "modules.json",
            r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
               {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
               {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
        );
        write(tmp.path(), "1_Pooling/config.json", r#"{"word_embedding_dimension":384,"pooling_mode_mean_tokens":true}"#);
        write(tmp.path(), "sentence_bert_config.json", r#"{"max_seq_length":256,"do_lower_case":false}"#);
        write(tmp.path(), "config_sentence_transformers.json", r#"{"prompts":{"query":"query: ","document":"passage: "}}"#);
        let config = SentenceConfig::load(&ModelDir::local(tmp.path()).unwrap()).unwrap();
        assert_eq!(
            config,
            SentenceConfig {
                pooling: Pooling::Mean,
                normalize: true,
                max_seq_length: Some(256),
                query_prefix: "query: ".into(),
                passage_prefix: "passage: ".into(),
            }
        );
    }

    #[test]
    fn plain_transformers_directory_gets_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "config.json", "{}");
        let config = SentenceConfig::load(&ModelDir::local(tmp.path()).unwrap()).unwrap();
        assert_eq!(config, SentenceConfig::default());
    }

    #[test]
    fn malformed_pooling_file_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "config.json", "{}");
        write(tmp.path(), "modules.json", r#"[{"path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#);
        write(tmp.path(), "1_Pooling/config.json", "{not json");
        let err = format!("{:#}", SentenceConfig::load(&ModelDir::local(tmp.path()).unwrap()).unwrap_err());
        assert!(err.contains("1_Pooling/config.json"), "{err}");
    }
}
