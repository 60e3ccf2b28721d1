//! Tiny, randomly initialised Llama-family models in the Hugging Face layout
//! (`config.json`, `model.safetensors`, a byte-level BPE `tokenizer.json`,
//! `tokenizer_config.json` with a ChatML template), written without Burn, so
//! tests can exercise the teacher's loaders, scoring, labelling and
//! generation in seconds. Qwen2-style q/k/v biases and untied output heads
//! are options.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

/// The shape of a tiny decoder.
#[derive(Debug, Clone)]
pub struct TinyLlamaSpec {
    /// Residual width.
    pub hidden: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// SwiGLU width.
    pub intermediate: usize,
    /// Context window.
    pub max_positions: usize,
    /// Rotary base.
    pub rope_theta: f64,
    /// `qwen2` (q/k/v biases) instead of `llama`.
    pub qwen2: bool,
    /// Tie the output head to the embeddings.
    pub tied: bool,
    /// Seed of the random weights.
    pub seed: u64,
}

impl Default for TinyLlamaSpec {
    fn default() -> Self {
        Self {
            hidden: 32,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            intermediate: 64,
            max_positions: 512,
            rope_theta: 10_000.0,
            qwen2: false,
            tied: true,
            seed: 11,
        }
    }
}

/// Special tokens, ids 0.. in this order.
const SPECIAL: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// A few merges so that common words are single tokens.
const MERGES: [(&str, &str); 8] =
    [("t", "h"), ("th", "e"), ("Ġ", "the"), ("i", "s"), ("Ġ", "is"), ("o", "n"), ("e", "r"), ("a", "n")];

/// The ChatML template SmolLM2 and Qwen2 use, without a default system turn.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// GPT-2's byte-to-character table: printable bytes map to themselves, the
/// rest to code points from 256 up.
pub fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut table = vec!['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        table[b as usize] = if printable.contains(&b) {
            char::from_u32(b).expect("byte")
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("code point")
        };
    }
    table
}

/// The vocabulary: special tokens, the 256 byte characters, then merges.
pub fn vocab() -> Vec<String> {
    let mut v: Vec<String> = SPECIAL.iter().map(|s| s.to_string()).collect();
    v.extend(byte_chars().into_iter().map(String::from));
    v.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    v
}

/// Writes a tiny random decoder directory.
pub fn write_tiny_llama(dir: &Path, spec: &TinyLlamaSpec) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let vocab = vocab();
    let config = serde_json::json!({
        "architectures": [if spec.qwen2 { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" }],
        "model_type": if spec.qwen2 { "qwen2" } else { "llama" },
        "vocab_size": vocab.len(), "hidden_size": spec.hidden, "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers, "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads, "max_position_embeddings": spec.max_positions,
        "rms_norm_eps": 1e-5, "rope_theta": spec.rope_theta, "tie_word_embeddings": spec.tied,
        "hidden_act": "silu", "bos_token_id": null, "eos_token_id": 2
    });
    write_json(&dir.join("config.json"), &config)?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &serde_json::json!({"eos_token": "<|im_end|>", "bos_token": null, "chat_template": CHATML_TEMPLATE}),
    )?;
    write_json(&dir.join("tokenizer.json"), &tokenizer_json(&vocab))?;
    let tensors = random_tensors(spec, vocab.len());
    write_safetensors(&dir.join("model.safetensors"), &tensors)
}

/// Writes the same tiny model (same seed, same weights) as one GGUF file the
/// way llama.cpp's converter does: llama.cpp tensor names, q/k rows permuted
/// for interleaved rotary embeddings (llama only; Qwen2 keeps them), the
/// vocabulary, merges and token types as `tokenizer.ggml.*` metadata, and
/// weights as f32 or Q8_0 (2-D tensors whose rows allow it).
pub fn write_tiny_llama_gguf(path: &Path, spec: &TinyLlamaSpec, quantize: bool) -> Result<()> {
    use crate::gguf_write::GgufWriter;
    use uae_model::gguf::GgmlType;
    let vocab = vocab();
    let arch = if spec.qwen2 { "qwen2" } else { "llama" };
    let key = |k: &str| format!("{arch}.{k}");
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", arch)
        .add_u32(&key("block_count"), spec.layers as u32)
        .add_u32(&key("context_length"), spec.max_positions as u32)
        .add_u32(&key("embedding_length"), spec.hidden as u32)
        .add_u32(&key("feed_forward_length"), spec.intermediate as u32)
        .add_u32(&key("attention.head_count"), spec.heads as u32)
        .add_u32(&key("attention.head_count_kv"), spec.kv_heads as u32)
        .add_f32(&key("rope.freq_base"), spec.rope_theta as f32)
        .add_f32(&key("attention.layer_norm_rms_epsilon"), 1e-5)
        .add_u32(&key("rope.dimension_count"), (spec.hidden / spec.heads) as u32)
        .add_str("tokenizer.ggml.model", "gpt2")
        .add_str("tokenizer.ggml.pre", "default")
        .add_str_array("tokenizer.ggml.tokens", &vocab)
        .add_i32_array(
            "tokenizer.ggml.token_type",
            &(0..vocab.len()).map(|i| if i < SPECIAL.len() { 3 } else { 1 }).collect::<Vec<i32>>(),
        )
        .add_str_array("tokenizer.ggml.merges", &MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect::<Vec<_>>())
        .add_u32("tokenizer.ggml.eos_token_id", 2)
        .add_u32("tokenizer.ggml.padding_token_id", 2)
        .add_str("tokenizer.chat_template", CHATML_TEMPLATE);
    let d = spec.hidden / spec.heads;
    for (name, shape, mut values) in random_tensors(spec, vocab.len()) {
        if !spec.qwen2 {
            if name.contains(".q_proj.") {
                values = llama_cpp_permute(&values, &shape, spec.heads, d);
            } else if name.contains(".k_proj.") {
                values = llama_cpp_permute(&values, &shape, spec.kv_heads, d);
            }
        }
        let gname = uae_model::weights::gguf_name(&name).context("tensor without a GGUF name")?;
        let ty = if quantize && shape.len() == 2 && shape[1] % 32 == 0 { GgmlType::Q8_0 } else { GgmlType::F32 };
        w.add_tensor(&gname, &shape, &values, ty)?;
    }
    w.write(path)
}

/// llama.cpp's `permute`: within each head, transformers' row `t*d/2 + i`
/// becomes row `2i + t`.
fn llama_cpp_permute(values: &[f32], shape: &[usize], heads: usize, d: usize) -> Vec<f32> {
    let cols: usize = shape[1..].iter().product();
    let mut out = vec![0f32; values.len()];
    for h in 0..heads {
        for t in 0..2 {
            for i in 0..d / 2 {
                let (src, dst) = (h * d + t * d / 2 + i, h * d + 2 * i + t);
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?).with_context(|| format!("cannot write {}", path.display()))
}

/// A byte-level BPE `tokenizer.json` in the layout transformers writes.
fn tokenizer_json(vocab: &[String]) -> serde_json::Value {
    let ids: serde_json::Map<String, serde_json::Value> =
        vocab.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::json!(i))).collect();
    let added: Vec<serde_json::Value> = SPECIAL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                               "normalized": false, "special": true})
        })
        .collect();
    let merges: Vec<serde_json::Value> = MERGES.iter().map(|(a, b)| serde_json::json!([a, b])).collect();
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": ids, "merges": merges}
    })
}

/// Random weights with transformers' names and layouts (`[out, in]`).
pub fn random_tensors(spec: &TinyLlamaSpec, vocab: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let (h, i) = (spec.hidden, spec.intermediate);
    let d = h / spec.heads;
    let (q, kv) = (spec.heads * d, spec.kv_heads * d);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![("model.embed_tokens.weight".into(), vec![vocab, h])];
    for l in 0..spec.layers {
        let p = format!("model.layers.{l}");
        let mut layer = vec![
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
            ("self_attn.q_proj.weight", vec![q, h]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.o_proj.weight", vec![h, q]),
            ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]),
            ("mlp.down_proj.weight", vec![h, i]),
        ];
        if spec.qwen2 {
            layer.extend([
                ("self_attn.q_proj.bias", vec![q]),
                ("self_attn.k_proj.bias", vec![kv]),
                ("self_attn.v_proj.bias", vec![kv]),
            ]);
        }
        shapes.extend(layer.into_iter().map(|(n, s)| (format!("{p}.{n}"), s)));
    }
    shapes.push(("model.norm.weight".into(), vec![h]));
    if !spec.tied {
        shapes.push(("lm_head.weight".into(), vec![vocab, h]));
    }
    let mut rng = StdRng::seed_from_u64(spec.seed);
    shapes
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = if name.ends_with("norm.weight") {
                (0..n).map(|_| 1.0 + rng.random_range(-0.1..0.1)).collect()
            } else {
                (0..n).map(|_| rng.random_range(-0.25..0.25)).collect()
            };
            (name, shape, values)
        })
        .collect()
}

fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| Ok((name.clone(), TensorView::new(Dtype::F32, shape.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(views, metadata, path).with_context(|| format!("cannot write {}", path.display()))
}
