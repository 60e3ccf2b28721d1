//! uae-index: corpus embedding, exact and approximate search, data-set
//! loaders and ranking metrics.

pub mod corpus_index;
pub mod data;
pub mod exact;
pub mod metrics;
pub mod store;
pub mod trec;
