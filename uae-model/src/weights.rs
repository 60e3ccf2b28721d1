//! The one weight source of uae's models: named f32 tensors in transformers'
//! naming and layout, read on demand from memory-mapped safetensors files
//! (one file, or shards with their index) or from a GGUF file. Both the BERT
//! encoder and the Llama-family teacher load through it.
//!
//! A safetensors header is parsed once, when the file is opened; a tensor is
//! then a slice of the map, converted to f32 (from f16, bf16 or f64) when it
//! is read. GGUF names (`blk.N.attn_q.weight`, the Llama family's, the only
//! GGUF models uae reads) are mapped to transformers' ones, quantised tensors
//! are dequantised, and the q/k rows that llama.cpp permutes for its
//! interleaved rotary layout are put back in transformers' "rotate half"
//! order. Every tensor read is remembered, so tensors the model does not use
//! can be reported.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use memmap2::Mmap;
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensors};

use crate::gguf::GgufFile;
use crate::llama::LlamaConfig;

/// An f32 tensor, row-major, with its shape.
#[derive(Debug, Clone)]
pub struct HostTensor {
    /// Values, row-major.
    pub data: Vec<f32>,
    /// Shape, outermost first (PyTorch order).
    pub shape: Vec<usize>,
}

impl HostTensor {
    /// The transpose of a matrix, written out row-major: a checkpoint's
    /// `[out, in]` Linear weight becomes Burn's `[in, out]` in memory rather
    /// than as a transposed view, which Burn's `linear` (it reshapes the
    /// weight) would copy whole on every forward.
    pub fn transposed(self) -> Self {
        let [rows, cols] = self.shape[..] else { panic!("transposed() takes a matrix, not shape {:?}", self.shape) };
        let mut data = vec![0f32; self.data.len()];
        for (r, row) in self.data.chunks_exact(cols.max(1)).enumerate() {
            for (c, &x) in row.iter().enumerate() {
                data[c * rows + r] = x;
            }
        }
        Self { data, shape: vec![cols, rows] }
    }
}

/// One memory-mapped safetensors file and its parsed header.
struct Shard {
    path: PathBuf,
    map: Mmap,
    /// Where the tensor data starts in the map (after the header).
    data_start: usize,
    metadata: Metadata,
}

/// Where the weights are.
enum Files {
    /// Safetensors files; `index` maps each tensor to its file.
    Safetensors { shards: Vec<Shard>, index: HashMap<String, usize> },
    /// One GGUF file, and whether its q/k rows are permuted (llama, mistral).
    Gguf { file: Box<GgufFile>, permuted: bool, heads: usize, kv_heads: usize },
}

/// Reads weights by transformers name, tracking which were read.
pub struct WeightReader {
    files: Files,
    read: BTreeSet<String>,
}

impl WeightReader {
    /// Opens `model.safetensors`, or the shards listed in
    /// `model.safetensors.index.json`, in `dir`.
    pub fn safetensors_dir(dir: &Path) -> Result<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index_path.is_file() {
            let index: serde_json::Value = uae_data::json::read_json(&index_path)?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .with_context(|| format!("{}: no \"weight_map\" object", index_path.display()))?;
            let names: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
            names.into_iter().map(|n| dir.join(n)).collect()
        } else {
            vec![dir.join("model.safetensors")]
        };
        Self::safetensors(&files)
    }

    /// Opens the given safetensors files.
    pub fn safetensors(paths: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::new();
        let mut index = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = File::open(path).with_context(|| format!("cannot open weights file {}", path.display()))?;
            // SAFETY: the file is opened read-only and not modified while mapped.
            let map = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
            // Parses and validates the header (offsets against the file length).
            let (header_len, metadata) = SafeTensors::read_metadata(&map)
                .map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file: {e}", path.display()))?;
            for name in metadata.tensors().into_keys() {
                index.insert(name, i);
            }
            shards.push(Shard { path: path.clone(), map, data_start: 8 + header_len, metadata });
        }
        Ok(Self { files: Files::Safetensors { shards, index }, read: BTreeSet::new() })
    }

    /// Reads weights from a GGUF file whose configuration is `config`.
    pub fn gguf(file: GgufFile, config: &LlamaConfig) -> Self {
        let permuted = matches!(config.model_type.as_str(), "llama" | "mistral");
        Self {
            files: Files::Gguf {
                file: Box::new(file),
                permuted,
                heads: config.num_attention_heads,
                kv_heads: config.kv_heads(),
            },
            read: BTreeSet::new(),
        }
    }

    /// Whether a tensor of this (transformers) name exists.
    pub fn contains(&self, name: &str) -> bool {
        match &self.files {
            Files::Safetensors { index, .. } => index.contains_key(name),
            Files::Gguf { file, .. } => gguf_name(name).is_some_and(|n| file.has_tensor(&n)),
        }
    }

    /// The shape of tensor `name` in a safetensors file, without reading it;
    /// `None` when there is no such tensor or the weights are GGUF.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        match &self.files {
            Files::Safetensors { shards, index } => {
                let &i = index.get(name)?;
                shards[i].metadata.info(name).map(|info| info.shape.as_slice())
            }
            Files::Gguf { .. } => None,
        }
    }

    /// The file (or shards) the weights come from, for messages.
    pub fn describe(&self) -> String {
        match &self.files {
            Files::Safetensors { shards, .. } => match shards.as_slice() {
                [shard] => shard.path.display().to_string(),
                _ => format!("{} safetensors shards", shards.len()),
            },
            Files::Gguf { file, .. } => file.path().display().to_string(),
        }
    }

    /// Reads tensor `name`, checking that its shape is `shape` and that every
    /// value is finite (a NaN or infinite weight, as a diverged run leaves,
    /// would turn every output NaN without a word).
    pub fn get(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let (tensor, file) = match &self.files {
            Files::Safetensors { shards, index } => {
                let &i = index.get(name).with_context(|| format!("{}: missing tensor {name}", self.describe()))?;
                let shard = &shards[i];
                let info = shard.metadata.info(name).with_context(|| format!("{}: missing tensor {name}", self.describe()))?;
                (read_safetensor(shard, info, name)?, format!("{}: tensor {name}", shard.path.display()))
            }
            Files::Gguf { file, permuted, heads, kv_heads } => {
                let gname = gguf_name(name).with_context(|| format!("no GGUF name for tensor {name}"))?;
                if !file.has_tensor(&gname) {
                    bail!("{}: missing tensor {gname} ({name})", file.path().display());
                }
                let t = file.tensor_f32(&gname)?;
                let mut tensor = HostTensor { data: t.data, shape: t.shape };
                if *permuted {
                    if gname.contains(".attn_q.") {
                        unpermute_rows(&mut tensor, *heads);
                    } else if gname.contains(".attn_k.") {
                        unpermute_rows(&mut tensor, *kv_heads);
                    }
                }
                (tensor, format!("{}: tensor {gname} ({name})", file.path().display()))
            }
        };
        if tensor.shape != shape {
            bail!("{file} has shape {:?}, the config expects {:?}", tensor.shape, shape);
        }
        if let Some(&bad) = tensor.data.iter().find(|x| !x.is_finite()) {
            bail!("{file} holds {bad}; a model's weights must all be finite");
        }
        self.read.insert(name.to_string());
        Ok(tensor)
    }

    /// The tensors in the files that were never read (e.g. `rotary_emb.inv_freq`).
    pub fn unread(&self) -> Vec<String> {
        let all: Vec<String> = match &self.files {
            Files::Safetensors { index, .. } => index.keys().cloned().collect(),
            Files::Gguf { file, .. } => {
                file.tensor_names().map(|g| hf_name(g).unwrap_or_else(|| g.to_string())).collect()
            }
        };
        let mut unread: Vec<String> = all.into_iter().filter(|n| !self.read.contains(n)).collect();
        unread.sort();
        unread
    }
}

/// Converts one safetensors tensor (f32, f16, bf16 or f64) to f32.
fn read_safetensor(shard: &Shard, info: &TensorInfo, name: &str) -> Result<HostTensor> {
    let (start, end) = info.data_offsets;
    // The header's offsets were validated against the file length on open.
    let bytes = &shard.map[shard.data_start + start..shard.data_start + end];
    let path = &shard.path;
    let data: Vec<f32> = match info.dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")) as f32)
            .collect(),
        other => bail!("{}: tensor {name} has dtype {other:?}; f32, f16, bf16 or f64 expected", path.display()),
    };
    Ok(HostTensor { data, shape: info.shape.clone() })
}

/// Writes `alpha * a + (1 - alpha) * b`, tensor by tensor, to the safetensors
/// file `out` (f32): weight interpolation of a fine-tuned model `a` with its
/// base `b` (FlagEmbedding's LM-Cocktail merges the same way). Both files must
/// hold the same tensor names and shapes; the error names the first that
/// differs.
pub fn interpolate(a: &Path, b: &Path, alpha: f32, out: &Path) -> Result<()> {
    let mut first = WeightReader::safetensors(&[a.to_path_buf()])?;
    let mut second = WeightReader::safetensors(&[b.to_path_buf()])?;
    let names = first.unread();
    if names != second.unread() {
        bail!("{} and {} hold different tensors", a.display(), b.display());
    }
    let mut tensors = Vec::with_capacity(names.len());
    for name in &names {
        let shape = first.shape(name).unwrap_or_default().to_vec();
        let x = first.get(name, &shape)?;
        let y = second.get(name, &shape).with_context(|| format!("merging {} with {}", a.display(), b.display()))?;
        let bytes: Vec<u8> =
            x.data.iter().zip(&y.data).flat_map(|(p, q)| (alpha * p + (1.0 - alpha) * q).to_le_bytes()).collect();
        tensors.push((name.clone(), shape, bytes));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| Ok((name.clone(), safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow::anyhow!("cannot lay out the merged tensors: {e}"))?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let bytes = safetensors::serialize(views, metadata).map_err(|e| anyhow::anyhow!("cannot serialise {}: {e}", out.display()))?;
    uae_data::atomic::write_file_atomically(out, &bytes)
}

/// llama.cpp's name for a transformers tensor name.
pub fn gguf_name(name: &str) -> Option<String> {
    translate(name, Naming::Transformers)
}

/// transformers' name for a llama.cpp tensor name.
fn hf_name(gname: &str) -> Option<String> {
    translate(gname, Naming::LlamaCpp)
}

/// The naming a tensor name is written in.
#[derive(Clone, Copy)]
enum Naming {
    Transformers,
    LlamaCpp,
}

/// Translates `name` from naming `from` to the other one, through the
/// whole-model names and the per-layer module table.
fn translate(name: &str, from: Naming) -> Option<String> {
    // (transformers, llama.cpp) pairs of column `from`, then of the other.
    let pick = |(hf, gg): (&'static str, &'static str)| match from {
        Naming::Transformers => (hf, gg),
        Naming::LlamaCpp => (gg, hf),
    };
    if let Some((_, to)) = MODEL_NAMES.iter().map(|&p| pick(p)).find(|(src, _)| *src == name) {
        return Some(to.to_string());
    }
    let (src_prefix, dst_prefix) = pick(("model.layers.", "blk."));
    let (layer, rest) = name.strip_prefix(src_prefix)?.split_once('.')?;
    let (module, param) = rest.rsplit_once('.')?;
    let (_, to) = LAYER_NAMES.iter().map(|&p| pick(p)).find(|(src, _)| *src == module)?;
    Some(format!("{dst_prefix}{layer}.{to}.{param}"))
}

/// Whole-model tensor names: transformers, llama.cpp.
const MODEL_NAMES: &[(&str, &str)] = &[
    ("model.embed_tokens.weight", "token_embd.weight"),
    ("model.norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

/// Per-layer module names: transformers, llama.cpp.
const LAYER_NAMES: &[(&str, &str)] = &[
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "ffn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Undoes llama.cpp's `permute(w, n_head)`: within each head, GGUF row
/// `2i + t` is transformers' row `t * head_dim/2 + i`. Applies to the rows of
/// a weight `[heads*head_dim, in]` and to a bias `[heads*head_dim]`.
fn unpermute_rows(tensor: &mut HostTensor, heads: usize) {
    let rows = tensor.shape[0];
    let cols: usize = tensor.shape[1..].iter().product();
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0f32; tensor.data.len()];
    for h in 0..heads {
        for i in 0..half {
            for t in 0..2 {
                let src = h * head_dim + 2 * i + t;
                let dst = h * head_dim + t * half + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&tensor.data[src * cols..(src + 1) * cols]);
            }
        }
    }
    tensor.data = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        for name in [
            "model.embed_tokens.weight",
            "model.norm.weight",
            "lm_head.weight",
            "model.layers.12.self_attn.q_proj.bias",
            "model.layers.0.mlp.down_proj.weight",
            "model.layers.3.post_attention_layernorm.weight",
        ] {
            let g = gguf_name(name).unwrap();
            assert_eq!(hf_name(&g).as_deref(), Some(name), "{g}");
        }
        assert_eq!(gguf_name("model.layers.1.self_attn.o_proj.weight").unwrap(), "blk.1.attn_output.weight");
    }

    /// llama.cpp's permutation followed by ours is the identity.
    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let (heads, head_dim, cols) = (3, 8, 2);
        let rows = heads * head_dim;
        let original: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        // llama.cpp: w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2)
        let mut permuted = vec![0f32; original.len()];
        let half = head_dim / 2;
        for h in 0..heads {
            for t in 0..2 {
                for i in 0..half {
                    let src = h * head_dim + t * half + i;
                    let dst = h * head_dim + i * 2 + t;
                    permuted[dst * cols..(dst + 1) * cols].copy_from_slice(&original[src * cols..(src + 1) * cols]);
                }
            }
        }
        let mut tensor = HostTensor { data: permuted, shape: vec![rows, cols] };
        unpermute_rows(&mut tensor, heads);
        assert_eq!(tensor.data, original);
    }
}
