//! uae-eval: the top of the library stack. Ranking and answer metrics
//! ([`metrics`]), the end-to-end comparison of BM25, bi-encoders and LLM
//! re-ranking ([`compare`]), its report ([`report`]) and charts ([`plot`]),
//! training curves read back from a run's metric logs ([`curves`]),
//! held-out retrieval for model selection during training ([`dev`]), synthetic
//! training questions filtered by a retrieval round trip ([`synth`]), and
//! the whole pipeline as typed stages ([`pipeline`]).

pub mod compare;
pub mod curves;
pub mod dev;
pub mod metrics;
pub mod pipeline;
pub mod plot;
pub mod report;
pub mod significance;
pub mod synth;
