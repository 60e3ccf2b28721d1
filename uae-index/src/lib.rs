//! uae-index: corpus embedding, exact and approximate search, data-set
//! loaders, ranking metrics, and the comparison report with its charts.

pub mod bench;
pub mod bm25;
pub mod corpus_index;
pub mod data;
pub mod dot;
pub mod exact;
pub mod hnsw;
pub mod metrics;
pub mod npy;
pub mod plot;
pub mod report;
pub mod store;
pub mod trec;
pub mod mine;
