// The bodies of the fuzz targets for model and index files, in one place:
// each `fuzz_targets/<name>.rs` of the `model` feature includes this file
// after `targets.rs` (whose scratch folder it shares), and uae-index's
// `tests/fuzz_corpus.rs` includes both to replay the committed corpus
// (`fuzz/corpus/<name>/`) on stable Rust in every test run.

/// One reader of uae-model or uae-index per fuzz target. A reader may refuse
/// its input with an error; it must never panic, hang or abort.
#[allow(dead_code)] // each fuzz binary calls one of them
pub mod model_targets {
    use std::path::Path;

    use uae_index::hnsw::{HnswIndex, HnswParams};
    use uae_index::store::{ModelStamp, VectorStore};
    use uae_model::bert::BertConfig;
    use uae_model::gguf::GgufFile;
    use uae_model::llama::config::LlamaConfig;
    use uae_model::weights::WeightReader;

    use crate::targets::scratch;

    /// Every target, by its name under `fuzz/fuzz_targets/` and `fuzz/corpus/`.
    pub const ALL: &[(&str, fn(&[u8]))] =
        &[("gguf", gguf), ("safetensors", safetensors), ("model_config", model_config), ("index", index)];

    fn write(path: &Path, data: &[u8]) {
        std::fs::write(path, data).expect("scratch file");
    }

    /// A GGUF file: its header and metadata, the Llama configuration and the
    /// tokenizer it describes, and every tensor dequantised.
    pub fn gguf(data: &[u8]) {
        let path = scratch("gguf").join("model.gguf");
        write(&path, data);
        let Ok(file) = GgufFile::open(&path) else { return };
        drop(LlamaConfig::from_gguf(&file));
        drop(uae_model::gguf::tokenizer::from_gguf(&file));
        let names: Vec<String> = file.tensor_names().map(str::to_string).collect();
        for name in names {
            drop(file.tensor_f32(&name));
        }
    }

    /// A safetensors file: its header, then every tensor read at the shape
    /// the header gives.
    pub fn safetensors(data: &[u8]) {
        let dir = scratch("safetensors");
        write(&dir.join("model.safetensors"), data);
        let Ok(mut reader) = WeightReader::safetensors_dir(&dir) else { return };
        for name in reader.unread() {
            if let Some(shape) = reader.shape(&name).map(<[usize]>::to_vec) {
                drop(reader.get(&name, &shape));
            }
        }
    }

    /// A `config.json` read as a BERT and as a Llama-family configuration.
    pub fn model_config(data: &[u8]) {
        let path = scratch("config").join("config.json");
        write(&path, data);
        drop(BertConfig::from_file(&path));
        drop(LlamaConfig::from_file(&path));
    }

    /// The files of an index with an HNSW graph. A valid index of 40 vectors
    /// is written first; the input's first byte picks the file its remaining
    /// bytes replace (header, ids, vectors, graph metadata or graph), and
    /// the checksums are recomputed, so that the fuzzer reaches the parsers
    /// and checks behind them. Then the index is opened, its
    /// graph loaded and searched.
    pub fn index(data: &[u8]) {
        let Some((&which, body)) = data.split_first() else { return };
        let dir = scratch("index");
        let (dim, count) = (8, 40);
        let ids: Vec<String> = (0..count).map(|i| format!("p{i}")).collect();
        let vectors: Vec<Vec<f32>> =
            (0..count).map(|i| (0..dim).map(|j| ((i * 7 + j * 3) % 11) as f32 - 5.0).collect()).collect();
        let stamp = ModelStamp { name: "fuzz".into(), fingerprint: "0".into() };
        VectorStore::create(&dir, stamp, dim, &ids, &vectors).expect("a valid index");
        let store = VectorStore::open(&dir).expect("the valid index opens");
        let params = HnswParams { m: 4, ef_construction: 16, ef_search: 8, target_recall: None };
        HnswIndex::build(store.vectors(), dim, params).expect("a graph").save(&dir, &store).expect("the graph saves");
        let files = ["header.json", "ids.jsonl", "vectors.f32", "hnsw.json", "hnsw.graph"];
        write(&dir.join(files[usize::from(which) % files.len()]), body);
        // The checksums are made to match whatever the files now hold.
        let crc = |name: &str| std::fs::read(dir.join(name)).map_or(0, |bytes| crc32fast::hash(&bytes));
        let (ids, vectors, graph) = (crc("ids.jsonl"), crc("vectors.f32"), crc("hnsw.graph"));
        set_fields(&dir.join("header.json"), &[("ids_crc32", ids), ("vectors_crc32", vectors)]);
        set_fields(&dir.join("hnsw.json"), &[("graph_crc32", graph), ("vectors_crc32", vectors)]);
        let Ok(store) = VectorStore::open(&dir) else { return };
        let Ok(graph) = HnswIndex::load(&dir, &store) else { return };
        let query = vec![0.5f32; store.header().dim];
        drop(graph.search(store.vectors(), store.ids(), &query, 5));
    }

    /// Sets `fields` of the JSON object in `path` (left alone when the file
    /// is not one).
    fn set_fields(path: &Path, fields: &[(&str, u32)]) {
        let Ok(text) = std::fs::read_to_string(path) else { return };
        let Ok(mut json) = serde_json::from_str::<serde_json::Value>(&text) else { return };
        if let Some(object) = json.as_object_mut() {
            for &(field, value) in fields {
                object.insert(field.into(), value.into());
            }
            write(path, json.to_string().as_bytes());
        }
    }
}
