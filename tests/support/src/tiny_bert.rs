//! Tiny, randomly initialised BERT model directories in the Hugging Face
//! layout, written without Burn (safetensors and tokenizers crates only), so
//! tests and demos can exercise every loader and the whole pipeline in
//! seconds and independently of uae's own saving code.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// The shape of a tiny model.
#[derive(Debug, Clone)]
pub struct TinyBertSpec {
    /// Hidden width.
    pub hidden: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width.
    pub intermediate: usize,
    /// Positions (and the maximum sequence length).
    pub max_positions: usize,
    /// Seed of the random weights.
    pub seed: u64,
    /// Store the weights as bf16 instead of f32.
    pub bf16: bool,
    /// Make every weight NaN, as in a run that diverged.
    pub nan_weights: bool,
}

impl Default for TinyBertSpec {
    fn default() -> Self {
        Self { hidden: 32, layers: 2, heads: 4, intermediate: 64, max_positions: 64, seed: 7, bf16: false, nan_weights: false }
    }
}

const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const WORDS: [&str; 24] = [
    "the", "a", "is", "of", "what", "how", "python", "list", "dict", "code", "answer", "question", "passage",
    "help", "model", "file", "error", "line", "why", "does", "work", "use", "fast", "slow",
];

/// The vocabulary: special tokens, whole words, single characters and their
/// `##` continuations, so every ASCII text tokenises without `[UNK]`.
fn vocab() -> Vec<String> {
    let mut v: Vec<String> = SPECIAL.iter().chain(WORDS.iter()).map(|s| s.to_string()).collect();
    for c in ('a'..='z').chain('0'..='9').chain("!?.,:;'\"()[]{}<>=+-*/_#@$%&^~`|\\".chars()) {
        if !v.contains(&c.to_string()) {
            v.push(c.to_string());
        }
        v.push(format!("##{c}"));
    }
    v
}

/// Writes a tiny random BERT model directory: `config.json`,
/// `tokenizer.json` (with fixed padding and truncation stored in it, as
/// all-MiniLM-L6-v2 has), `model.safetensors` with transformers' tensor names
/// and layouts, and the sentence-transformers files (mean pooling, normalised).
pub fn write_tiny_bert(dir: &Path, spec: &TinyBertSpec) -> Result<()> {
    std::fs::create_dir_all(dir.join("1_Pooling")).with_context(|| format!("cannot create {}", dir.display()))?;
    let vocab = vocab();
    let config = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "vocab_size": vocab.len(), "hidden_size": spec.hidden, "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads, "intermediate_size": spec.intermediate,
        "max_position_embeddings": spec.max_positions, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute"
    });
    write_json(&dir.join("config.json"), &config)?;
    write_json(
        &dir.join("modules.json"),
        &serde_json::json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]),
    )?;
    write_json(
        &dir.join("1_Pooling/config.json"),
        &serde_json::json!({"word_embedding_dimension": spec.hidden, "pooling_mode_mean_tokens": true}),
    )?;
    write_json(&dir.join("sentence_bert_config.json"), &serde_json::json!({"max_seq_length": spec.max_positions}))?;
    write_tokenizer(dir, &vocab)?;
    write_weights(&dir.join("model.safetensors"), spec, vocab.len())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `vocab.txt` and the `tokenizer.json` built from it.
fn write_tokenizer(dir: &Path, vocab: &[String]) -> Result<()> {
    let vocab_path = dir.join("vocab.txt");
    std::fs::write(&vocab_path, vocab.join("\n") + "\n").with_context(|| format!("cannot write {}", vocab_path.display()))?;
    let model = WordPiece::from_file(&vocab_path.to_string_lossy())
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| anyhow!("{e}"))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::default()))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(("[SEP]".into(), 3), ("[CLS]".into(), 2))))
        .with_padding(Some(PaddingParams { strategy: PaddingStrategy::Fixed(16), ..Default::default() }));
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: 16, ..Default::default() }))
        .map_err(|e| anyhow!("{e}"))?;
    let path = dir.join("tokenizer.json");
    tokenizer.save(&path, true).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}

/// Tensor names and shapes (PyTorch layout: Linear weights are `[out, in]`).
fn tensor_shapes(spec: &TinyBertSpec, vocab: usize) -> Vec<(String, Vec<usize>)> {
    let (h, i) = (spec.hidden, spec.intermediate);
    let mut shapes = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![vocab, h]),
        ("embeddings.position_embeddings.weight".into(), vec![spec.max_positions, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
        ("pooler.dense.weight".into(), vec![h, h]),
        ("pooler.dense.bias".into(), vec![h]),
    ];
    for l in 0..spec.layers {
        let p = format!("encoder.layer.{l}");
        for (name, shape) in [
            ("attention.self.query.weight", vec![h, h]),
            ("attention.self.query.bias", vec![h]),
            ("attention.self.key.weight", vec![h, h]),
            ("attention.self.key.bias", vec![h]),
            ("attention.self.value.weight", vec![h, h]),
            ("attention.self.value.bias", vec![h]),
            ("attention.output.dense.weight", vec![h, h]),
            ("attention.output.dense.bias", vec![h]),
            ("attention.output.LayerNorm.weight", vec![h]),
            ("attention.output.LayerNorm.bias", vec![h]),
            ("intermediate.dense.weight", vec![i, h]),
            ("intermediate.dense.bias", vec![i]),
            ("output.dense.weight", vec![h, i]),
            ("output.dense.bias", vec![h]),
            ("output.LayerNorm.weight", vec![h]),
            ("output.LayerNorm.bias", vec![h]),
        ] {
            shapes.push((format!("{p}.{name}"), shape));
        }
    }
    shapes
}

fn write_weights(path: &Path, spec: &TinyBertSpec, vocab: usize) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = tensor_shapes(spec, vocab)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if spec.nan_weights {
                vec![f32::NAN; n]
            } else if name.ends_with("LayerNorm.weight") {
                (0..n).map(|_| 1.0 + rng.random_range(-0.1..0.1)).collect()
            } else {
                (0..n).map(|_| rng.random_range(-0.2..0.2)).collect()
            };
            let bytes = if spec.bf16 {
                // bf16 is the upper half of an f32's bits.
                values.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect()
            } else {
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            };
            (name, shape, bytes)
        })
        .collect();
    let dtype = if spec.bf16 { Dtype::BF16 } else { Dtype::F32 };
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, bytes)| Ok((name.clone(), TensorView::new(dtype, shape.clone(), bytes)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(views, metadata, path).with_context(|| format!("cannot write {}", path.display()))
}
