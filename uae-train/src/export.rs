//! Export of a finished run as a Hugging Face / sentence-transformers model
//! directory that `uae embed` (and sentence-transformers) loads:
//! `config.json`, `model.safetensors` (transformers' tensor names),
//! `tokenizer.json`, `modules.json`, `1_Pooling/config.json` and
//! `sentence_bert_config.json`, plus the base model's
//! `config_sentence_transformers.json` (prompts), `tokenizer_config.json`,
//! `special_tokens_map.json` and `vocab.txt` when it had them.
//!
//! A query-only run (`query_only`) exports its trained query encoder this
//! way, and its frozen passage encoder (the base) as a second such directory
//! in [`uae_model::encoder::PASSAGE_DIR`].

use std::path::Path;

use anyhow::{Context, Result, bail};
use uae_model::bert::BertConfig;
use uae_model::sentence::{Pooling, SentenceConfig};
use uae_model::source::ModelDir;
use uae_model::weights::WeightReader;

use crate::train::BASE_FILES;

/// Writes the HF-layout model of the run directory `run` into `out`.
pub fn export(run: &Path, out: &Path) -> Result<()> {
    let weights = run.join("model.safetensors");
    if !weights.is_file() {
        bail!("{} does not exist: the run in {} has not finished training", weights.display(), run.display());
    }
    let base = run.join("base");
    for required in ["config.json", "tokenizer.json"] {
        if !base.join(required).is_file() {
            bail!("{} is missing from the run directory", base.join(required).display());
        }
    }
    let frozen = base.join("model.safetensors");
    check_weights(&weights)?;
    if frozen.is_file() {
        check_weights(&frozen)?;
    }
    write_model(&base, &weights, out)?;
    let passage = out.join(uae_model::encoder::PASSAGE_DIR);
    if frozen.is_file() {
        write_model(&base, &frozen, &passage)
    } else if passage.exists() {
        // A stale passage encoder of an earlier export would be loaded.
        std::fs::remove_dir_all(&passage).with_context(|| format!("cannot remove {}", passage.display()))
    } else {
        Ok(())
    }
}

/// Checks that `weights` is a whole safetensors file, before anything is
/// copied: its header parses and its tensors end where the file does (a
/// file cut short by a full disk or a kill does not). Errors name the file.
fn check_weights(weights: &Path) -> Result<()> {
    WeightReader::safetensors(&[weights.to_path_buf()]).map(drop)
}

/// Writes `weights` with the configuration and tokenizer files of `base`
/// as a sentence-transformers model directory `out`.
fn write_model(base: &Path, weights: &Path, out: &Path) -> Result<()> {
    let config = BertConfig::from_file(&base.join("config.json"))?;
    let sentence = SentenceConfig::load(&ModelDir::local(base)?)?;
    std::fs::create_dir_all(out.join("1_Pooling")).with_context(|| format!("cannot create {}", out.display()))?;
    for name in BASE_FILES {
        let from = base.join(name);
        if from.is_file() {
            copy(&from, &out.join(name))?;
        }
    }
    copy(weights, &out.join("model.safetensors"))?;
    let mut modules = vec![
        serde_json::json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        serde_json::json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    if sentence.normalize {
        modules.push(
            serde_json::json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}),
        );
    }
    write_json(&out.join("modules.json"), &serde_json::Value::Array(modules))?;
    write_json(
        &out.join("1_Pooling/config.json"),
        &serde_json::json!({
            "word_embedding_dimension": config.hidden_size,
            "pooling_mode_cls_token": sentence.pooling == Pooling::Cls,
            "pooling_mode_mean_tokens": sentence.pooling == Pooling::Mean,
        }),
    )?;
    let max_seq_length = sentence.max_seq_length.unwrap_or(config.max_position_embeddings);
    write_json(
        &out.join("sentence_bert_config.json"),
        &serde_json::json!({"max_seq_length": max_seq_length, "do_lower_case": false}),
    )
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    uae_data::atomic::write_file_atomically(path, serde_json::to_string_pretty(value)?.as_bytes())
}
