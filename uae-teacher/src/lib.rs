//! uae-teacher: the teacher LLM's side of uae. [`score`] computes batched
//! answer log-likelihoods (the primitive of everything else), [`prompt`]
//! places a passage, a question and an answer in the teacher's prompt, and
//! [`label`] turns them into perplexity-reduction utilities per candidate,
//! written append-only so that a killed run resumes where it stopped.
//! [`rerank`] is the query-time LLM re-ranking baseline and [`answer`] the
//! generator behind the token-F1 comparison. [`synth`] writes synthetic
//! training questions from a corpus. [`teacher`] is the LLM itself, run here
//! or served by another process behind `/v1/completions`.

pub mod answer;
pub mod label;
pub mod prompt;
pub mod rerank;
pub mod score;
pub mod synth;
pub mod teacher;
