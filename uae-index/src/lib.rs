//! uae-index: corpus embedding, exact and approximate search, data-set
//! loaders and ranking metrics. Empty until the retrieval issue lands; the
//! crate exists so the workspace has its final shape.
