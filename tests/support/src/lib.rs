//! Test support shared by uae's test binaries, used only as a
//! dev-dependency: tiny randomly initialised models ([`tiny_bert`],
//! [`tiny_llama`]), model files damaged in place ([`damage`]), a GGUF writer with Q8_0 quantisation ([`gguf_write`],
//! [`quantize`]), a BEIR fixture builder ([`beir`]), the `uae` binary runner
//! ([`cli`]), a `uae serve` process with an HTTP client ([`serve`]), the
//! tests' Python interpreter ([`python`]) and the lookup of real weights that
//! skips a test when they were not fetched ([`weights`]).

pub mod beir;
pub mod cli;
pub mod damage;
pub mod gguf_write;
pub mod python;
pub mod quantize;
pub mod serve;
pub mod tiny_bert;
pub mod tiny_llama;
pub mod weights;
