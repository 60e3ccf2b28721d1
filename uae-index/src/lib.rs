//! uae-index: corpus embedding, exact and approximate search, data-set
//! loaders and ranking metrics.

pub mod bm25;
pub mod corpus_index;
pub mod data;
pub mod exact;
pub mod hnsw;
pub mod metrics;
pub mod store;
pub mod trec;
pub mod mine;
