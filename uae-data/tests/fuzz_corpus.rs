//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`, grown by
//! `cargo fuzz run`, see fuzz/README.md) through the same target bodies on
//! stable Rust: every input that once found new coverage, and every input
//! that once crashed a reader, must now be read or refused without a panic.

include!("../../fuzz/targets.rs");

#[test]
fn every_corpus_input_is_read_or_refused_without_a_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in targets::ALL {
        let dir = root.join(name);
        let inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}; every fuzz target has a committed corpus", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(!inputs.is_empty(), "{} is empty", dir.display());
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                panic!("fuzz target {name} panicked on {}", input.display());
            }
        }
    }
}
