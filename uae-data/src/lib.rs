//! uae-data: the data every uae stage reads and writes, at the bottom of the
//! workspace.
//!
//! - [`DataSet`]: passages, queries, the judgements ([`Qrels`]) of each split
//!   and optional per-query pools, read from a BEIR folder ([`beir`]) or
//!   QASPER's JSON ([`qasper`]);
//! - TREC qrels and run files ([`trec`]), and the one ranking order
//!   ([`ranking`]) used by search, mining, re-ranking, runs and metrics;
//! - [`Shard`]: work split across machines and merged back;
//! - the files passed between stages ([`records`]: `candidates.jsonl`,
//!   `labels.jsonl`), and labels in other trainers' formats ([`interchange`]);
//! - JSON files read with the file named in errors ([`json`]), JSON Lines
//!   with one torn-tail rule ([`jsonl`]), text files read without a
//!   byte-order mark ([`text`]), atomic writes that
//!   always sync ([`atomic`]), uae's cache folder ([`cache`]), content
//!   fingerprints of inputs ([`fingerprint`]), and progress
//!   reporting for long stages ([`progress`]);
//! - guards on what a command writes ([`lock`]): a lock per output against a
//!   second uae process writing it, and checks that keep writes out of
//!   folders and paths that are not uae's.

pub mod atomic;
pub mod beir;
pub mod cache;
mod dataset;
pub mod fingerprint;
pub mod interchange;
pub mod json;
pub mod jsonl;
pub mod lock;
pub mod progress;
pub mod qasper;
pub mod ranking;
pub mod records;
mod shard;
pub mod text;
pub mod trec;

pub use dataset::{Corpus, DataSet, DuplicateId, Keyed, Passage, Pools, Queries, Query, Records};
pub use progress::Progress;
pub use ranking::{Hit, Ranking};
pub use records::{CandidateLine, LabelLine, TeacherAgreement};
pub use shard::Shard;
pub use trec::{Qrels, Run};
