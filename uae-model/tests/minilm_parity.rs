//! Parity with sentence-transformers on the real all-MiniLM-L6-v2 weights.
//!
//! The reference embeddings come from `assets/make_bert_reference.py`
//! (PyTorch, sentence-transformers) and are committed in
//! `assets/fixtures/minilm_reference.json`; the weights are fetched by
//! `assets/fetch.sh` into `$UAE_CACHE/models/all-MiniLM-L6-v2`.


use burn::tensor::Device;
use serde::Deserialize;
use uae_model::encoder::{BiEncoder, EncoderOptions, TextRole};

#[derive(Deserialize)]
struct Reference {
    max_seq_length: usize,
    texts: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/fixtures/minilm_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(model_dir) = uae_test_support::weights::minilm() else { return };
    let reference = reference();
    let device = Device::flex();
    let encoder = BiEncoder::load(model_dir.to_str().unwrap(), &device, &EncoderOptions::default()).unwrap();
    assert_eq!(encoder.max_length(), reference.max_seq_length);

    let encoded = encoder.tokenizer.encode(&reference.texts).unwrap();
    for (i, (got, want)) in encoded.iter().zip(&reference.input_ids).enumerate() {
        assert_eq!(&got.ids, want, "token ids of text {i} ({:?})", reference.texts[i]);
    }

    // One call: inputs are sorted by length into padded batches.
    let batched = encoder.embed(&reference.texts, TextRole::Passage, 2048, |_| {}).unwrap();
    assert_eq!(batched.truncated, 1, "exactly the long text is truncated");
    let mut worst = f64::INFINITY;
    for (i, (got, want)) in batched.vectors.iter().zip(&reference.embeddings).enumerate() {
        let cos = cosine(got, want);
        worst = worst.min(cos);
        assert!(cos >= 0.9999, "text {i} ({:?}): cosine {cos}", reference.texts[i]);
    }
    eprintln!("worst cosine against sentence-transformers: {worst:.8}");

    // Each text alone must give the batched result: padding changes nothing.
    let mut max_diff = 0f32;
    for (i, text) in reference.texts.iter().enumerate() {
        let single = encoder.embed(std::slice::from_ref(text), TextRole::Passage, 2048, |_| {}).unwrap();
        for (a, b) in single.vectors[0].iter().zip(&batched.vectors[i]) {
            max_diff = max_diff.max((a - b).abs());
        }
    }
    eprintln!("largest batched-vs-single difference: {max_diff:e}");
    assert!(max_diff <= 1e-5, "batched and single embeddings differ by {max_diff}");
}
