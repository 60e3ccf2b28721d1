//! uae-train: distillation of teacher utilities into a bi-encoder on Burn's
//! Learner. Empty until the training issue lands; the crate exists so the
//! workspace has its final shape.
