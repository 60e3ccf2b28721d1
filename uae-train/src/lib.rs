//! uae-train: distillation of teacher utilities into a bi-encoder on Burn.
//!
//! [`loss`] holds the training objectives (UM-InfoNCE and the InfoNCE, KL
//! and stable-distillation baselines), the guard that inspects each batch's
//! teacher targets and losses, and host-side validation metrics.
//!
//! The training side: [`data`] joins `labels.jsonl` with the BEIR data set,
//! [`batcher`] turns labelled queries into padded token batches, [`model`]
//! wraps the bi-encoder for Burn's Learner, [`metrics`] and [`renderer`]
//! report progress, [`shuffle`] orders each epoch reproducibly, [`select`]
//! keeps the best weights by held-out retrieval, [`checkpoint`] saves and
//! checks the state a run resumes from, [`strategy`] is the training loop
//! (saving that state within epochs too), [`train`] runs the Learner and
//! [`export`] writes the trained model in the Hugging Face
//! layout.

pub mod batcher;
pub mod checkpoint;
pub mod data;
pub mod export;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod renderer;
pub mod select;
pub mod shuffle;
pub mod strategy;
pub mod train;
