//! Loader and masking tests on tiny random BERT models written by the test
//! itself in the Hugging Face safetensors layout, and the refusal of what
//! would give wrong embeddings without a word (NaN weights and outputs, a
//! maximum length below the special tokens).

use burn::prelude::*;
use uae_model::bert::{BertConfig, BertModel, TokenBatch};
use uae_model::encoder::{BiEncoder, EncoderOptions, NonFiniteEmbedding, TextRole};
use uae_test_support::damage::fill_f32_tensor;
use uae_test_support::tiny_bert::{TinyBertSpec, write_tiny_bert};

fn tiny(spec: &TinyBertSpec) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), spec).unwrap();
    dir
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn safetensor_f32(path: &std::path::Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name).unwrap().data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn loader_maps_names_and_transposes_linear_weights() {
    let dir = tiny(&TinyBertSpec::default());
    let device = Device::flex();
    let config = BertConfig::from_file(&dir.path().join("config.json")).unwrap();
    let weights = dir.path().join("model.safetensors");
    let model = BertModel::load(&config, &weights, &device).unwrap();

    let word = values(model.embeddings.word_embeddings.weight.val());
    assert_eq!(word, safetensor_f32(&weights, "embeddings.word_embeddings.weight"));

    // PyTorch stores [out, in]; Burn's Linear holds [in, out].
    let query_pt = safetensor_f32(&weights, "encoder.layer.1.attention.self.query.weight");
    let query = model.encoder.layer[1].attention.self_attn.query.weight.val();
    let [d_in, d_out] = query.dims();
    let query = values(query);
    for o in 0..d_out {
        for i in 0..d_in {
            assert_eq!(query[i * d_out + o], query_pt[o * d_in + i]);
        }
    }
    let gamma = values(model.encoder.layer[0].output.LayerNorm.gamma.val());
    assert_eq!(gamma, safetensor_f32(&weights, "encoder.layer.0.output.LayerNorm.weight"));
}

#[test]
fn bf16_checkpoint_loads_as_f32() {
    let f32_dir = tiny(&TinyBertSpec::default());
    let bf16_dir = tiny(&TinyBertSpec { bf16: true, ..Default::default() });
    let device = Device::flex();
    let opts = EncoderOptions::default();
    let a = BiEncoder::load(f32_dir.path().to_str().unwrap(), &device, &opts).unwrap();
    let b = BiEncoder::load(bf16_dir.path().to_str().unwrap(), &device, &opts).unwrap();
    let texts = vec!["how does python code work".to_string()];
    let ea = a.embed(&texts, TextRole::Query, 512, |_| {}).unwrap();
    let eb = b.embed(&texts, TextRole::Query, 512, |_| {}).unwrap();
    // Same seed, weights rounded to bf16: close but not identical.
    let diff = ea.vectors[0].iter().zip(&eb.vectors[0]).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(diff > 0.0 && diff < 0.05, "{diff}");
}

#[test]
fn save_then_load_round_trips() {
    let dir = tiny(&TinyBertSpec::default());
    let device = Device::flex();
    let config = BertConfig::from_file(&dir.path().join("config.json")).unwrap();
    let model = BertModel::load(&config, &dir.path().join("model.safetensors"), &device).unwrap();
    let out = tempfile::tempdir().unwrap();
    let saved = out.path().join("model.safetensors");
    model.save(&saved).unwrap();

    // The saved file has transformers' names and layout.
    let original = dir.path().join("model.safetensors");
    for name in ["encoder.layer.0.attention.self.key.weight", "embeddings.LayerNorm.bias", "encoder.layer.1.intermediate.dense.weight"] {
        assert_eq!(safetensor_f32(&saved, name), safetensor_f32(&original, name), "{name}");
    }
    let reloaded = BertModel::load(&config, &saved, &device).unwrap();
    let batch = TokenBatch::pad(&[&[2, 7, 9, 3]], &[&[0, 0, 0, 0]], 0, &device);
    assert_eq!(values(model.forward(&batch)), values(reloaded.forward(&batch)));
}

#[test]
fn padding_never_changes_a_result() {
    let dir = tiny(&TinyBertSpec::default());
    let encoder = BiEncoder::load(dir.path().to_str().unwrap(), &Device::flex(), &EncoderOptions::default()).unwrap();
    let texts: Vec<String> = ["a", "what is the answer to the question of why python is slow", "list", "dict of code"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let together = encoder.embed(&texts, TextRole::Passage, 10_000, |_| {}).unwrap();
    for (i, text) in texts.iter().enumerate() {
        let alone = encoder.embed(std::slice::from_ref(text), TextRole::Passage, 10_000, |_| {}).unwrap();
        for (a, b) in alone.vectors[0].iter().zip(&together.vectors[i]) {
            assert!((a - b).abs() <= 1e-5, "text {i}: {a} vs {b}");
        }
    }
    // Embeddings are normalised and differ between texts.
    let norm: f32 = together.vectors[1].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    assert_ne!(together.vectors[0], together.vectors[2]);
}

#[test]
fn stored_padding_and_truncation_are_replaced() {
    let dir = tiny(&TinyBertSpec::default());
    let encoder = BiEncoder::load(dir.path().to_str().unwrap(), &Device::flex(), &EncoderOptions::default()).unwrap();
    // tokenizer.json pads and truncates at 16; uae pads per batch and truncates at 64.
    let long = "python ".repeat(100);
    let encoded = encoder.tokenizer.encode(&["a".to_string(), long]).unwrap();
    assert_eq!(encoded[0].ids, vec![2, 6, 3]);
    assert!(!encoded[0].truncated);
    assert_eq!(encoded[1].ids.len(), 64);
    assert!(encoded[1].truncated);
}

#[test]
fn weight_problems_are_named() {
    let dir = tiny(&TinyBertSpec::default());
    let device = Device::flex();
    let weights = dir.path().join("model.safetensors");

    // A config that disagrees with the weights: a shape mismatch.
    let mut config = BertConfig::from_file(&dir.path().join("config.json")).unwrap();
    config.intermediate_size = 48;
    let err = BertModel::load(&config, &weights, &device).unwrap_err().to_string();
    assert!(err.contains("model.safetensors") && err.contains("intermediate.dense.weight"), "{err}");

    // More layers than the file has: missing tensors.
    let mut config = BertConfig::from_file(&dir.path().join("config.json")).unwrap();
    config.num_hidden_layers = 3;
    let err = BertModel::load(&config, &weights, &device).unwrap_err().to_string();
    assert!(err.contains("missing tensors") && err.contains("encoder.layer.2."), "{err}");

    // Fewer layers: tensors the model does not use.
    config.num_hidden_layers = 1;
    let err = BertModel::load(&config, &weights, &device).unwrap_err().to_string();
    assert!(err.contains("does not use") && err.contains("encoder.layer.1."), "{err}");

    // A truncated file.
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let config = BertConfig::from_file(&dir.path().join("config.json")).unwrap();
    let err = BertModel::load(&config, &weights, &device).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

/// Interpolating two models writes `alpha * a + (1 - alpha) * b` for every
/// tensor, loadable as a model; models of other shapes are refused by name.
#[test]
fn weights_interpolate_tensor_by_tensor() {
    let a = tiny(&TinyBertSpec::default());
    let b = tiny(&TinyBertSpec { seed: 99, ..TinyBertSpec::default() });
    let (wa, wb) = (a.path().join("model.safetensors"), b.path().join("model.safetensors"));
    let out = a.path().join("merged.safetensors");
    uae_model::weights::interpolate(&wa, &wb, 0.25, &out).unwrap();
    for name in ["embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.bias"] {
        let (x, y, m) = (safetensor_f32(&wa, name), safetensor_f32(&wb, name), safetensor_f32(&out, name));
        assert_ne!(x, y, "{name}: the two models should differ");
        for ((x, y), m) in x.iter().zip(&y).zip(&m) {
            assert!((m - (0.25 * x + 0.75 * y)).abs() < 1e-6, "{name}");
        }
    }
    let config = BertConfig::from_file(&a.path().join("config.json")).unwrap();
    BertModel::load(&config, &out, &Device::flex()).unwrap();
    let wide = tiny(&TinyBertSpec { layers: 3, ..TinyBertSpec::default() });
    let err = uae_model::weights::interpolate(&wa, &wide.path().join("model.safetensors"), 0.5, &out).unwrap_err();
    assert!(err.to_string().contains("different tensors"), "{err}");
}

/// A NaN weight, as a diverged run leaves, is refused when the model is
/// loaded, naming the file and the tensor, instead of giving NaN embeddings.
#[test]
fn nan_weights_are_refused_naming_the_tensor() {
    let dir = tiny(&TinyBertSpec::default());
    let weights = dir.path().join("model.safetensors");
    fill_f32_tensor(&weights, "encoder.layer.0.attention.self.query.weight", f32::NAN).unwrap();
    let config = BertConfig::from_file(&dir.path().join("config.json")).unwrap();
    let err = format!("{:#}", BertModel::load(&config, &weights, &Device::flex()).unwrap_err());
    assert!(err.contains("model.safetensors: tensor encoder.layer.0.attention.self.query.weight holds NaN"), "{err}");
    let all_nan = tiny(&TinyBertSpec { nan_weights: true, ..Default::default() });
    let err = BiEncoder::load(all_nan.path().to_str().unwrap(), &Device::flex(), &EncoderOptions::default()).err().unwrap();
    assert!(format!("{err:#}").contains("holds NaN"), "{err:#}");
}

/// Finite weights whose activations overflow give non-finite vectors: embedding
/// fails naming the text instead of returning them.
#[test]
fn non_finite_embeddings_are_an_error_naming_the_text() {
    let dir = tiny(&TinyBertSpec::default());
    fill_f32_tensor(&dir.path().join("model.safetensors"), "encoder.layer.1.output.LayerNorm.weight", f32::MAX).unwrap();
    let encoder = BiEncoder::load(dir.path().to_str().unwrap(), &Device::flex(), &EncoderOptions::default()).unwrap();
    let texts = vec!["what is the answer".to_string(), "a".to_string()];
    let err = encoder.embed(&texts, TextRole::Passage, 512, |_| {}).unwrap_err();
    let bad = err.downcast_ref::<NonFiniteEmbedding>().unwrap_or_else(|| panic!("{err:#}"));
    assert!(bad.index < texts.len(), "{err}");
    assert!(err.to_string().contains("holds NaN or infinite values"), "{err}");
}

/// A maximum length that leaves no room for text after `[CLS]` and `[SEP]`
/// is refused (`tokenizers` would underflow, and cut nothing or everything);
/// the smallest useful one is honoured.
#[test]
fn max_length_below_the_special_tokens_is_refused() {
    let dir = tiny(&TinyBertSpec::default());
    let load = |n| {
        let options = EncoderOptions { max_length: Some(n), ..Default::default() };
        BiEncoder::load(dir.path().to_str().unwrap(), &Device::flex(), &options)
    };
    for n in [0, 1, 2] {
        let err = format!("{:#}", load(n).err().unwrap());
        assert!(err.contains(&format!("a maximum length of {n} tokens leaves no room for text")), "{err}");
        assert!(err.contains("tokenizer.json adds 2 special tokens") && err.contains("at least 3"), "{err}");
    }
    let encoder = load(3).unwrap();
    let encoded = encoder.tokenizer.encode(&["python list".to_string()]).unwrap();
    assert_eq!(encoded[0].ids.len(), 3);
    assert!(encoded[0].truncated);
}
