//! uae-index: the on-disk vector store, exact, HNSW and BM25 search, and
//! candidate mining.

pub mod bench;
pub mod bm25;
pub mod corpus_index;
pub mod dot;
pub mod exact;
pub mod hnsw;
pub mod mine;
pub mod npy;
pub mod qdrant;
pub mod store;
