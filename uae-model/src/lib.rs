//! uae-model: backend-generic Burn modules for utility-aligned embeddings:
//! the BERT bi-encoder and the Llama-family teacher LLM, their configurations
//! read from Hugging Face `config.json` or GGUF metadata, weights from
//! safetensors and GGUF, and tokenisers from `tokenizer.json` or GGUF.

pub mod batch;
pub mod bert;
mod check;
pub mod decoding;
pub mod encoder;
#[cfg(feature = "flex")]
mod flex;
pub mod gguf;
pub mod llama;
pub mod llm;
mod pool;
pub mod pooling;
pub mod sentence;
mod skinny;
pub mod source;
pub mod tokenize;
pub mod weights;
