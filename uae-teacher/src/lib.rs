//! uae-teacher: the teacher LLM's side of uae: utility labelling by answer
//! log-likelihood, the LLM re-ranking baseline and answer generation. Empty
//! until the teacher issue lands; the crate exists so the workspace has its
//! final shape.
