//! Replays the committed fuzz corpus of the model and index file readers
//! (`fuzz/corpus/<target>/`, grown by `cargo fuzz run --features model`, see
//! fuzz/README.md) through the same target bodies on stable Rust: every
//! input that once found new coverage, and every input that once crashed a
//! reader, must now be read or refused without a panic.

include!("../../fuzz/targets.rs");
include!("../../fuzz/model_targets.rs");

#[test]
fn every_corpus_input_is_read_or_refused_without_a_panic() {
    targets::replay(model_targets::ALL);
}
