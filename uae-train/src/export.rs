//! Export of a finished run as a Hugging Face / sentence-transformers model
//! directory that `uae embed` (and sentence-transformers) loads:
//! `config.json`, `model.safetensors` (transformers' tensor names),
//! `tokenizer.json`, `modules.json`, `1_Pooling/config.json` and
//! `sentence_bert_config.json`, plus the base model's
//! `config_sentence_transformers.json` (prompts), `tokenizer_config.json`,
//! `special_tokens_map.json` and `vocab.txt` when it had them, and a
//! `README.md` model card: sentence-transformers' YAML metadata (library,
//! pipeline tag, base model) over what the run trained on, how, and what
//! model selection measured.
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

use crate::select::{SelectionSummary, summary_path};
use crate::train::{BASE_FILES, Inputs, TrainConfig, config_path, inputs_path};

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
    uae_data::atomic::write_file_atomically(&out.join("README.md"), model_card(run)?.as_bytes())?;
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

/// The model card of run `run`: YAML metadata that the Hugging Face hub
/// and sentence-transformers read, then the training inputs, recipe and
/// the dev evaluations of model selection, from the run's own records
/// (each part that has no record, as in a run assembled by hand, is left
/// out).
fn model_card(run: &Path) -> Result<String> {
    let config = match config_path(run) {
        p if p.is_file() => Some(TrainConfig::from_file(&p)?),
        _ => None,
    };
    let inputs: Option<Inputs> = match inputs_path(run) {
        p if p.is_file() => Some(uae_data::json::read_json(&p)?),
        _ => None,
    };
    let selection: Option<SelectionSummary> = match summary_path(run) {
        p if p.is_file() => Some(uae_data::json::read_json(&p)?),
        _ => None,
    };
    // The hub id of the base when it was given as one. A local directory's
    // config.json `_name_or_path` often names the model it was trained
    // from rather than itself (all-MiniLM-L6-v2's names
    // nreimers/MiniLM-L6-H384-uncased), so it is not used.
    let given = inputs.as_ref().and_then(|i| i.model.clone());
    let hub_id = given.clone().filter(|s| looks_like_hub_id(s));
    let base_name = given.unwrap_or_else(|| "its base model".into());
    let mut card = String::from("---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\ntags:\n");
    for tag in ["sentence-transformers", "sentence-similarity", "feature-extraction", "uae", "utility-aligned-embeddings"] {
        card += &format!("- {tag}\n");
    }
    if let Some(id) = &hub_id {
        card += &format!("base_model: {id}\n");
    }
    card += "---\n\n";
    card += &format!("# Utility-aligned embeddings from {base_name}\n\n");
    card += "A bi-encoder fine-tuned by [uae](https://github.com/uae-rs/uae) to rank passages by how much they help \
             an LLM answer (Utility-Aligned Embeddings, arXiv 2604.22722): a teacher LLM scored each candidate passage \
             by the perplexity reduction it brings to the gold answer, and the encoder learned to imitate those scores. \
             No LLM runs at query time.\n\n";
    if selection.as_ref().is_some_and(|s| s.chosen_step == 0) {
        card += "**These are the base model's weights, unchanged**: no fine-tuned checkpoint beat the base on dev retrieval \
                 (see Model selection).\n\n";
    }
    card += "## Usage\n\n```python\nfrom sentence_transformers import SentenceTransformer\n\nmodel = SentenceTransformer(\"path/to/this/folder\")\n\
             embeddings = model.encode([\"How do I make an executable from a Python script?\"])\n```\n\n\
             With uae: `uae embed --model path/to/this/folder --input texts.jsonl --output vectors.jsonl`, or serve it: \
             `uae serve --model path/to/this/folder`.\n\n";
    card += "## Training\n\n| | |\n|---|---|\n";
    let mut row = |k: &str, v: String| card += &format!("| {k} | {} |\n", v.replace('|', "\\|"));
    row("base model", base_name.clone());
    if let Some(inputs) = &inputs {
        if let Some(data) = &inputs.data {
            row("data set", format!("`{}`", data.display()));
        }
        row("labels", format!("`{}` ({} bytes, CRC-32 {:08x})", inputs.labels.display(), inputs.labels_bytes, inputs.labels_crc32));
        let sidecar = inputs.labels.with_file_name(format!("{}.meta.json", inputs.labels.file_name().unwrap_or_default().to_string_lossy()));
        if let Ok(meta) = uae_data::json::read_json::<serde_json::Value>(&sidecar) {
            if let Some(teacher) = meta.get("teacher").and_then(|t| t.as_str()) {
                row("teacher", format!("`{teacher}`"));
            }
            if let Some(utility) = meta.get("utility").and_then(|t| t.as_str()) {
                row("utility", utility.to_string());
            }
        }
    }
    if let Some(config) = &config {
        let loss = &config.loss;
        row("loss", format!("{} (tau {}, tau_u {}, in-batch negatives {}, InfoNCE weight {})", loss.kind, loss.tau, loss.tau_u, loss.use_in_batch, loss.infonce_weight));
        row("epochs", config.epochs.to_string());
        row("batch size", format!("{} (x{} accumulated)", config.batch_size, config.grad_accumulation));
        row("learning rate", format!("{} (warm-up {}, {:?} decay, weight decay {})", config.lr, config.warmup_ratio, config.decay, config.weight_decay));
        row("seed", config.seed.to_string());
    }
    if let Some(selection) = &selection {
        card += &format!("\n## Model selection\n\n{selection}.\n\nEvaluated on {} by full-corpus retrieval:\n\n", selection.dev);
        let names: Vec<&str> = ["map", "recall@1", "recall@10", "mrr@10", "ndcg@10"]
            .into_iter()
            .filter(|n| selection.history.first().is_some_and(|p| p.metrics.contains_key(*n)))
            .collect();
        card += &format!("| step | {} |\n|---|{}\n", names.join(" | "), "---|".repeat(names.len()));
        for point in &selection.history {
            let cells: Vec<String> = names.iter().map(|n| point.metrics.get(*n).map_or("-".into(), |v| format!("{v:.4}"))).collect();
            let what = if point.step == 0 { "0 (base)".to_string() } else { point.step.to_string() };
            let chosen = if point.step == selection.chosen_step && selection.chosen_merge.is_none() { " (exported)" } else { "" };
            card += &format!("| {what}{chosen} | {} |\n", cells.join(" | "));
        }
        for merge in &selection.merges {
            let cells: Vec<String> = names.iter().map(|n| merge.metrics.get(*n).map_or("-".into(), |v| format!("{v:.4}"))).collect();
            let chosen = if selection.chosen_merge == Some(merge.alpha) { " (exported)" } else { "" };
            card += &format!("| merged with the base, alpha {}{chosen} | {} |\n", merge.alpha, cells.join(" | "));
        }
    }
    Ok(card)
}

/// Whether `s` names a hub repository (`owner/name`) rather than a path.
fn looks_like_hub_id(s: &str) -> bool {
    s.contains('/') && uae_model::source::looks_like_hub_id(s) && !Path::new(s).exists()
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
