// The fuzz targets' bodies, in one place: each `fuzz_targets/<name>.rs`
// includes this file and calls `targets::<name>`, and uae-data's
// `tests/fuzz_corpus.rs` includes it to replay the committed corpus
// (`fuzz/corpus/<name>/`) on stable Rust in every test run.

/// One reader of uae-data per fuzz target. A reader may refuse its input
/// with an error; it must never panic, hang or abort.
#[allow(dead_code)] // each fuzz binary calls one of them
pub mod targets {
    use std::path::PathBuf;

    use uae_data::LabelLine;

    /// Every target, by its name under `fuzz/fuzz_targets/` and `fuzz/corpus/`.
    pub const ALL: &[(&str, fn(&[u8]))] = &[
        ("qrels", qrels),
        ("run", run),
        ("candidates", candidates),
        ("labels", labels),
        ("beir", beir),
        ("qasper", qasper),
    ];

    /// Runs every committed input of `targets` (`fuzz/corpus/<name>/`)
    /// through its target, as the replay tests do; panics naming the first
    /// input a target panicked on, or a target without a corpus.
    pub fn replay(targets: &[(&str, fn(&[u8]))]) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        for (name, target) in targets {
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
        // The targets' scratch files.
        drop(std::fs::remove_dir_all(scratch_root()));
    }

    /// This process's scratch folder, where every target writes its input:
    /// file readers are what is fuzzed.
    fn scratch_root() -> PathBuf {
        std::env::temp_dir().join(format!("uae-fuzz-{}", std::process::id()))
    }

    /// The scratch folder `what` of this process (created).
    pub fn scratch(what: &str) -> PathBuf {
        let dir = scratch_root().join(what);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    }

    /// `data` written to `name` in the scratch folder (one file per name,
    /// rewritten on every call).
    fn file(name: &str, data: &[u8]) -> PathBuf {
        let path = scratch("data").join(name);
        std::fs::write(&path, data).expect("scratch file");
        path
    }

    /// TREC qrels or BEIR qrels TSV.
    pub fn qrels(data: &[u8]) {
        drop(uae_data::Qrels::read(file("qrels.tsv", data)));
    }

    /// A TREC run file.
    pub fn run(data: &[u8]) {
        drop(uae_data::Run::read(file("run.trec", data)));
    }

    /// A candidates file from `uae mine`.
    pub fn candidates(data: &[u8]) {
        drop(uae_data::records::read_candidates(&file("candidates.jsonl", data)));
    }

    /// A labels file as a resumed `uae label` meets it: the torn tail cut,
    /// then read.
    pub fn labels(data: &[u8]) {
        let p = file("labels.jsonl", data);
        if uae_data::jsonl::repair_tail::<LabelLine>(&p).is_ok() {
            drop(uae_data::records::read_labels(&p));
        }
    }

    /// A BEIR corpus and queries file (the same bytes read as both).
    pub fn beir(data: &[u8]) {
        let p = file("corpus.jsonl", data);
        drop(uae_data::beir::read_corpus(&p));
        drop(uae_data::beir::read_queries(&p));
    }

    /// One QASPER JSON file.
    pub fn qasper(data: &[u8]) {
        drop(uae_data::DataSet::from_qasper(&[("dev", file("qasper.json", data))]));
    }
}
