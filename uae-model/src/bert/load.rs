//! Loading and saving BERT weights in the Hugging Face safetensors layout
//! through burn-store.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::DType;

use super::{BertConfig, BertModel};

/// Checkpoint names that uae's modules do not use and that may be present:
/// the pooler head and the position-id buffer older checkpoints store.
const IGNORED_PREFIXES: &[&str] = &["pooler.", "embeddings.position_ids", "cls.", "lm_head."];

/// File names to module names: checkpoints of `BertFor*` classes nest the
/// encoder under `bert.`, and `self` is a Rust keyword.
fn load_remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(vec![(r"^bert\.", ""), (r"\.attention\.self\.", ".attention.self_attn.")])
        .expect("static patterns are valid")
}

/// Module names back to the Hugging Face names, for export.
fn save_remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(vec![(r"\.attention\.self_attn\.", ".attention.self.")]).expect("static patterns are valid")
}

impl BertModel {
    /// Builds a model for `config` and fills it from the safetensors file at
    /// `path`. Any float type in the file (f16, bf16, f64) is cast to f32.
    /// A tensor the model needs but the file lacks, a tensor of the wrong
    /// shape, or a tensor in the file that the model does not know (beyond a
    /// pooler or a position-id buffer) is an error that names them.
    pub fn load(config: &BertConfig, path: &Path, device: &Device) -> Result<Self> {
        if !path.is_file() {
            bail!("{} does not exist (uae reads BERT weights from model.safetensors)", path.display());
        }
        let mut model = Self::new(config, device);
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)))
            .remap(load_remapper())
            .allow_partial(true)
            .validate(false);
        let result = model
            .load_from(&mut store)
            .map_err(|e| anyhow::anyhow!("cannot read weights from {}: {e}", path.display()))?;
        let mut problems = Vec::new();
        if !result.missing.is_empty() {
            let names: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
            problems.push(format!("missing tensors: {}", names.join(", ")));
        }
        if !result.errors.is_empty() {
            let errs: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
            problems.push(format!("tensors that do not fit: {}", errs.join("; ")));
        }
        let unused: Vec<&str> = result
            .unused
            .iter()
            .map(String::as_str)
            .filter(|name| !IGNORED_PREFIXES.iter().any(|p| name.starts_with(p)))
            .collect();
        if !unused.is_empty() {
            problems.push(format!("tensors the model does not use: {}", unused.join(", ")));
        }
        if !problems.is_empty() {
            bail!("{} does not match its config.json: {}", path.display(), problems.join("; "));
        }
        Ok(model)
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
