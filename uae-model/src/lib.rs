//! uae-model: backend-generic Burn modules for utility-aligned embeddings:
//! the BERT bi-encoder (and, later, the teacher LLM), their configurations
//! read from Hugging Face `config.json`, weights from safetensors, and
//! tokenisers from `tokenizer.json`.

pub mod batch;
pub mod bert;
pub mod encoder;
pub mod jsonl;
pub mod pooling;
pub mod sentence;
pub mod source;
pub mod tiny;
pub mod tokenize;
