//! GGUF support: a memory-mapped reader for llama.cpp's model container
//! (versions 2 and 3), dequantisation of ggml blocks to f32, the tokenizer
//! described by the file's vocabulary.
//!
//! The container parser is written here rather than taken from a crate: it
//! is small, and keeping uae-model's dependency tree unchanged keeps Burn's
//! feature unification (and so its long build) unchanged too.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use uae_model::gguf::GgufFile;
//! let file = GgufFile::open("SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let layers = file.get_u32("llama.block_count")?;
//! let embed = file.tensor_f32("token_embd.weight")?; // shape [49152, 576]
//! let tokenizer = uae_model::gguf::tokenizer::from_gguf(&file)?;
//! # Ok(()) }
//! ```

pub mod dequant;
mod file;
mod ggml_type;
mod header;
mod metadata;
mod tensor;
pub mod tokenizer;

pub use file::GgufFile;
pub use ggml_type::{GgmlType, QK_K};
pub use header::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC};
pub use metadata::{FromMetadata, Metadata, MetadataValue, ValueType};
pub use tensor::{TensorF32, TensorInfo};
