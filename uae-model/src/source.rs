//! Where a model's files come from: a local Hugging Face-layout directory, or a
//! hub id resolved through the `hf-hub` crate and its cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A model's files, resolved to a local directory in the Hugging Face layout
/// (`config.json`, `model.safetensors`, `tokenizer.json`, and for
/// sentence-transformers models `modules.json` and `1_Pooling/config.json`).
#[derive(Debug, Clone)]
pub struct ModelDir {
    root: PathBuf,
}

/// Files fetched for a hub id: the first ones are required, the rest are
/// fetched when the repository has them.
const REQUIRED_FILES: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];
const OPTIONAL_FILES: &[&str] = &[
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    // A query-side fine-tune's passage encoder (`crate::encoder::PASSAGE_DIR`).
    "passage/config.json",
    "passage/model.safetensors",
    "passage/modules.json",
    "passage/1_Pooling/config.json",
];

impl ModelDir {
    /// Resolves `spec`: an existing directory is used as it is; otherwise a
    /// string shaped like a hub id (`org/name` or `name`) is fetched from the
    /// Hugging Face hub into its cache (`HF_HOME`), or read from that cache
    /// alone when `HF_HUB_OFFLINE=1`.
    pub fn resolve(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::local(path);
        }
        if path.exists() {
            bail!("model path {spec} is a file, expected a directory in the Hugging Face layout");
        }
        if !looks_like_hub_id(spec) {
            bail!("model directory {spec} does not exist");
        }
        Self::from_hub(spec)
    }

    /// A local directory, checked to hold `config.json`.
    pub fn local(path: &Path) -> Result<Self> {
        let config = path.join("config.json");
        if !config.is_file() {
            bail!(
                "{} is not a model directory: it has no config.json (expected the Hugging Face layout)",
                path.display()
            );
        }
        Ok(Self { root: path.to_path_buf() })
    }

    /// Resolves `spec` to a causal LM's directory: a local directory as it is,
    /// or a hub id whose `config.json`, `tokenizer.json`, tokenizer config and
    /// safetensors weights (one file, or every shard listed in
    /// `model.safetensors.index.json`) are fetched.
    pub fn resolve_llm(spec: &str) -> Result<Self> {
        let dir = Self::resolve_llm_tokenizer(spec)?;
        if Path::new(spec).is_dir() {
            return Ok(dir);
        }
        let index = dir.file("model.safetensors.index.json");
        let weights: Vec<String> = if index.is_file() {
            let json: serde_json::Value = uae_data::json::read_json(&index)?;
            let mut shards: Vec<String> = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| m.values().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            shards
        } else {
            vec!["model.safetensors".to_string()]
        };
        let names: Vec<&str> = weights.iter().map(String::as_str).collect();
        Self::from_hub_files(spec, &names, &[])
    }

    /// Resolves a causal LM's configuration, tokenizer and chat template
    /// only (a directory, or those files of a hub id, without the weights):
    /// what a teacher served elsewhere needs here.
    pub fn resolve_llm_tokenizer(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::local(path);
        }
        if !looks_like_hub_id(spec) {
            bail!("teacher {spec} is neither a GGUF file, a model directory, nor a hub id");
        }
        Self::from_hub_files(
            spec,
            &["config.json", "tokenizer.json"],
            &["tokenizer_config.json", "chat_template.jinja", "generation_config.json", "model.safetensors.index.json"],
        )
    }

    fn from_hub(id: &str) -> Result<Self> {
        Self::from_hub_files(id, REQUIRED_FILES, OPTIONAL_FILES)
    }

    /// Fetches `required` (an error if any is missing) and `optional` files of
    /// hub repository `id`, or finds them in the cache alone when
    /// `HF_HUB_OFFLINE=1`; returns the snapshot directory.
    fn from_hub_files(id: &str, required: &[&str], optional: &[&str]) -> Result<Self> {
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let cache = hf_hub::Cache::from_env();
        let cached = cache.model(id.to_string());
        let mut root = None;
        if offline {
            for file in required {
                let found = cached.get(file).with_context(|| {
                    format!(
                        "{id} is not a local directory and {file} of it is not in the Hugging Face cache at {} \
                         (HF_HUB_OFFLINE=1, so the hub was not asked)",
                        cache.path().display()
                    )
                })?;
                root = found.parent().map(Path::to_path_buf);
            }
            for file in optional {
                let _ = cached.get(file);
            }
        } else {
            let api = hf_hub::api::sync::ApiBuilder::from_env()
                .with_progress(false)
                .build()
                .context("cannot set up the Hugging Face hub client")?;
            let repo = api.model(id.to_string());
            for file in required {
                let path = repo.get(file).map_err(|e| {
                    anyhow::anyhow!(
                        "{id} is not a local directory, and fetching {file} for it from the Hugging Face hub failed: {e}. \
                         If you are offline, pass the model's local directory instead, or set HF_HUB_OFFLINE=1 to use only the cache"
                    )
                })?;
                root = path.parent().map(Path::to_path_buf);
            }
            for file in optional {
                // Absent optional files (no sentence-transformers files, no
                // chat template, unsharded weights) are not an error.
                let _ = repo.get(file);
            }
        }
        let root = root.context("no required file named")?;
        Self::local(&root)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a file inside the directory (which may not exist).
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// `org/name` or `name`, made of the characters the hub allows.
pub fn looks_like_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths_are_told_apart() {
        assert!(looks_like_hub_id("sentence-transformers/all-MiniLM-L6-v2"));
        assert!(looks_like_hub_id("bert-base-uncased"));
        assert!(!looks_like_hub_id("./models/x"));
        assert!(!looks_like_hub_id("/abs/path"));
        assert!(!looks_like_hub_id("a/b/c"));
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let err = ModelDir::resolve("/definitely/not/here").unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn directory_without_config_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ModelDir::resolve(dir.path().to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("no config.json"), "{err}");
    }

    /// One test for both hub modes: they share process-wide variables.
    #[test]
    fn hub_id_without_network_or_cache_fails_fast_with_a_clear_message() {
        let cache = tempfile::tempdir().unwrap();
        // SAFETY: no other test reads or writes these variables.
        unsafe {
            std::env::set_var("HF_HOME", cache.path());
            std::env::remove_var("HF_HUB_OFFLINE");
        }
        let start = std::time::Instant::now();
        let err = ModelDir::resolve("nobody-uae-test/no-such-model").unwrap_err().to_string();
        assert!(err.contains("from the Hugging Face hub failed") && err.contains("HF_HUB_OFFLINE"), "{err}");
        assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());

        unsafe { std::env::set_var("HF_HUB_OFFLINE", "1") };
        let start = std::time::Instant::now();
        let err = ModelDir::resolve("nobody-uae-test/no-such-model").unwrap_err().to_string();
        assert!(err.contains("HF_HUB_OFFLINE=1") && err.contains("not in the Hugging Face cache"), "{err}");
        assert!(start.elapsed().as_millis() < 1000);
    }
}
