//! GGUF support against llama.cpp's Python `gguf` package and transformers.
//!
//! The references come from `assets/make_gguf_reference.py` and are committed
//! in `assets/fixtures/gguf/dequant_reference.json`; the SmolLM2 GGUF file is
//! fetched by `assets/fetch.sh smollm2` into
//! `$UAE_CACHE/models/SmolLM2-135M-Instruct-GGUF/`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;
use uae_model::gguf::dequant::dequantize;
use uae_test_support::quantize::quantize_q8_0;
use uae_model::gguf::tokenizer::{GgufTokenizerInfo, from_gguf};
use uae_test_support::gguf_write::GgufWriter;
use uae_model::gguf::{GgmlType, GgufFile, MetadataValue, ValueType};

#[derive(Deserialize)]
struct Reference {
    dequant: Vec<DequantCase>,
    q8_0_quantize: QuantizeCase,
    real_file: RealFile,
    tokenizer: TokenizerReference,
    tokenizer_llama_bpe: PreReference,
}

#[derive(Deserialize)]
struct DequantCase {
    #[serde(rename = "type")]
    type_name: String,
    ggml_type: u32,
    bytes_hex: String,
    values: Vec<f64>,
}

#[derive(Deserialize)]
struct QuantizeCase {
    input: Vec<f64>,
    bytes_hex: String,
}

#[derive(Deserialize)]
struct RealFile {
    tensors: Vec<RealTensor>,
}

#[derive(Deserialize)]
struct RealTensor {
    name: String,
    ggml_type: u32,
    shape: Vec<usize>,
    first: Vec<f64>,
    last: Vec<f64>,
}

#[derive(Deserialize)]
struct TokenizerReference {
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    cases: Vec<TokenizerCase>,
}

#[derive(Deserialize)]
struct TokenizerCase {
    text: String,
    ids: Vec<u32>,
    decoded: String,
}

#[derive(Deserialize)]
struct PreReference {
    pre: String,
    cases: Vec<PreCase>,
}

#[derive(Deserialize)]
struct PreCase {
    text: String,
    ids: Vec<u32>,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/fixtures/gguf/dequant_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The real model, as `assets/fetch.sh smollm2` stores it.
const SMOLLM2: &str = "SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The real model, or `None` (the test is skipped) when it was not fetched.
fn smollm2() -> Option<GgufFile> {
    let path = match std::env::var("UAE_SMOLLM2_GGUF") {
        Ok(path) => PathBuf::from(path),
        Err(_) => uae_test_support::weights::fetched(SMOLLM2, "smollm2")?,
    };
    Some(GgufFile::open(&path).unwrap())
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Asserts bit-identical f32 values (the fixture holds each f32 exactly as an f64).
fn assert_same(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), (w as f32).to_bits(), "{what}: value {i} is {g}, gguf-py gives {w}");
    }
}

fn temp_gguf(writer: &GgufWriter) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.gguf");
    writer.write(&path).unwrap();
    (dir, path)
}

fn error_of<T>(result: anyhow::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn dequantisation_matches_gguf_py_bit_for_bit() {
    let reference = reference();
    let mut seen = Vec::new();
    for case in &reference.dequant {
        let ggml_type = GgmlType::from_id(case.ggml_type).unwrap();
        assert_eq!(ggml_type.to_string(), case.type_name);
        assert!(ggml_type.can_dequantize());
        let values = dequantize(ggml_type, &hex(&case.bytes_hex)).unwrap();
        assert_same(&case.type_name, &values, &case.values);
        seen.push(case.type_name.as_str());
    }
    assert_eq!(seen, ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]);
}

#[test]
fn q8_0_quantiser_matches_gguf_py_bit_for_bit() {
    let case = reference().q8_0_quantize;
    let input: Vec<f32> = case.input.iter().map(|&x| x as f32).collect();
    assert_eq!(quantize_q8_0(&input).unwrap(), hex(&case.bytes_hex));
    assert!(quantize_q8_0(&input[..31]).is_err());
}

#[test]
fn smollm2_metadata_and_shapes() {
    let Some(file) = smollm2() else { return };
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 32);
    assert_eq!(file.architecture().unwrap(), "llama");
    assert_eq!(file.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(file.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(file.get_u32("llama.feed_forward_length").unwrap(), 1536);
    assert_eq!(file.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(file.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(file.get_u32("llama.context_length").unwrap(), 8192);
    assert_eq!(file.get_f32("llama.rope.freq_base").unwrap(), 100_000.0);
    assert_eq!(file.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(), 1e-5);
    assert_eq!(file.get_f32_opt("llama.rope.scaling.factor").unwrap(), None);
    let meta = file.metadata();
    assert_eq!(meta.entries().len(), 33);
    assert_eq!(meta.get_str_array("general.languages").unwrap(), ["en"]);
    assert_eq!(meta.get_str_array("tokenizer.ggml.tokens").unwrap().len(), 49152);
    assert_eq!(meta.get_str_array("tokenizer.ggml.merges").unwrap().len(), 48900);
    assert_eq!(meta.get_i32_array("tokenizer.ggml.token_type").unwrap().len(), 49152);
    assert!(!meta.get_bool("tokenizer.ggml.add_bos_token").unwrap());

    assert_eq!(file.tensors().len(), 272);
    let mut by_type = HashMap::new();
    for t in file.tensors() {
        *by_type.entry(t.ggml_type).or_insert(0) += 1;
    }
    assert_eq!(by_type, HashMap::from([(GgmlType::Q4_1, 210), (GgmlType::F32, 61), (GgmlType::Q8_0, 1)]));
    assert_eq!(file.tensor_names().next(), Some("token_embd.weight"));
    let embed = file.tensor_info("token_embd.weight").unwrap();
    assert_eq!(
        (embed.ggml_type, embed.dims.as_slice(), embed.shape()),
        (GgmlType::Q8_0, &[576, 49152][..], vec![49152, 576])
    );
    assert_eq!(file.tensor_info("blk.0.ffn_down.weight").unwrap().shape(), [576, 1536]);
    assert_eq!(file.tensor_info("blk.29.ffn_gate.weight").unwrap().shape(), [1536, 576]);
    assert_eq!(file.tensor_info("blk.0.attn_k.weight").unwrap().shape(), [192, 576]);
    assert_eq!(file.tensor_info("output_norm.weight").unwrap().shape(), [576]);
    assert!(!file.has_tensor("output.weight"), "SmolLM2 ties its output to token_embd");
}

#[test]
fn smollm2_tensors_match_gguf_py() {
    let Some(file) = smollm2() else { return };
    for want in reference().real_file.tensors {
        let info = file.tensor_info(&want.name).unwrap();
        assert_eq!(info.ggml_type.id(), want.ggml_type, "{}", want.name);
        let tensor = file.tensor_f32(&want.name).unwrap();
        assert_eq!(tensor.shape, want.shape, "{}", want.name);
        assert_eq!(tensor.data.len(), want.shape.iter().product::<usize>());
        assert_same(&format!("{} (first)", want.name), &tensor.data[..64], &want.first);
        assert_same(&format!("{} (last)", want.name), &tensor.data[tensor.data.len() - 64..], &want.last);
    }
}

/// Opening, building the tokenizer and dequantising every tensor, timed (the
/// work of every model load).
#[test]
fn smollm2_whole_file_dequantises() {
    let start = Instant::now();
    let Some(file) = smollm2() else { return };
    let opened = start.elapsed();
    from_gguf(&file).unwrap();
    let tokenizer = start.elapsed() - opened;
    let start = Instant::now();
    let mut values = 0usize;
    for name in file.tensor_names() {
        let tensor = file.tensor_f32(name).unwrap();
        assert!(tensor.data.iter().all(|x| x.is_finite()), "{name} has non-finite values");
        values += tensor.data.len();
    }
    let dequantised = start.elapsed();
    eprintln!(
        "SmolLM2-135M Q4_1: open {:.0} ms, tokenizer {:.0} ms, dequantise all {} tensors ({values} values) {:.0} ms",
        opened.as_secs_f64() * 1e3,
        tokenizer.as_secs_f64() * 1e3,
        file.tensors().len(),
        dequantised.as_secs_f64() * 1e3
    );
    assert_eq!(values, 134_515_008);
}

#[test]
fn smollm2_tokenizer_matches_transformers() {
    let Some(file) = smollm2() else { return };
    let reference = reference().tokenizer;
    let tokenizer = from_gguf(&file).unwrap();
    for case in &reference.cases {
        let encoding = tokenizer.encode(case.text.as_str(), false).unwrap();
        assert_eq!(encoding.get_ids(), case.ids, "ids of {:?}", case.text);
        let decoded = tokenizer.decode(&case.ids, false).unwrap();
        assert_eq!(decoded, case.decoded, "decoding of {:?}", case.text);
        assert_eq!(decoded, case.text, "round trip of {:?}", case.text);
    }
    // No BOS is added (tokenizer.ggml.add_bos_token is false), as in transformers.
    assert_eq!(tokenizer.encode("hello", true).unwrap().get_ids(), [28120]);
    assert_eq!(tokenizer.get_vocab_size(true), 49152);

    let info = GgufTokenizerInfo::read(&file).unwrap();
    assert_eq!(
        (info.bos_id, info.eos_id, info.pad_id),
        (Some(reference.bos_id), Some(reference.eos_id), Some(reference.pad_id))
    );
    assert_eq!(info.unk_id, Some(0));
    assert!(!info.add_bos && !info.add_eos);
    assert!(info.chat_template.unwrap().starts_with("{% for message in messages %}"));
    assert_eq!(tokenizer.id_to_token(1).as_deref(), Some("<|im_start|>"));
}

/// A GGUF holding only `file`'s tokenizer metadata (and architecture), with
/// `overrides` replacing or adding keys.
fn tokenizer_copy(file: &GgufFile, overrides: &[(&str, MetadataValue)]) -> (tempfile::TempDir, PathBuf) {
    let mut writer = GgufWriter::new();
    for (key, value) in file.metadata().entries() {
        if (key.starts_with("tokenizer.") || key == "general.architecture") && !overrides.iter().any(|(k, _)| k == key)
        {
            writer.add(key, value.clone());
        }
    }
    for (key, value) in overrides {
        writer.add(key, value.clone());
    }
    temp_gguf(&writer)
}

/// The same vocabulary with `tokenizer.ggml.pre = "llama-bpe"` splits digits
/// in threes (the Llama-3 regex), as transformers' converter does.
#[test]
fn llama_bpe_pre_tokenizer_matches_transformers() {
    let Some(file) = smollm2() else { return };
    let reference = reference().tokenizer_llama_bpe;
    let (_dir, path) = tokenizer_copy(&file, &[("tokenizer.ggml.pre", MetadataValue::String(reference.pre.clone()))]);
    let tokenizer = from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let default = from_gguf(&file).unwrap();
    let mut differs = 0;
    for case in &reference.cases {
        let ids = tokenizer.encode(case.text.as_str(), false).unwrap();
        assert_eq!(ids.get_ids(), case.ids, "{} ids of {:?}", reference.pre, case.text);
        differs += usize::from(default.encode(case.text.as_str(), false).unwrap().get_ids() != case.ids);
    }
    assert!(differs > 0, "the fixture should hold texts that the two pre-tokenizers split differently");
}

/// `tokenizer.ggml.add_bos_token` / `add_eos_token` wrap each sequence when
/// special tokens are asked for (transformers' `update_post_processor`).
#[test]
fn add_bos_and_eos_flags_wrap_sequences() {
    let Some(file) = smollm2() else { return };
    let (_dir, path) = tokenizer_copy(
        &file,
        &[
            ("tokenizer.ggml.add_bos_token", MetadataValue::Bool(true)),
            ("tokenizer.ggml.add_eos_token", MetadataValue::Bool(true)),
        ],
    );
    let tokenizer = from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(tokenizer.encode("hello", true).unwrap().get_ids(), [1, 28120, 2]);
    assert_eq!(tokenizer.encode("hello", false).unwrap().get_ids(), [28120]);
    let pair = tokenizer.encode(("hello", "hello"), true).unwrap();
    assert_eq!(pair.get_ids(), [1, 28120, 2, 1, 28120, 2]);
    assert_eq!(pair.get_type_ids(), [0, 0, 0, 1, 1, 1]);
}

#[test]
fn writer_round_trips_metadata_and_tensors() {
    let reference = reference();
    let q4_k = reference.dequant.iter().find(|c| c.type_name == "Q4_K").unwrap();
    let f32_data: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
    let f16_data: Vec<f32> = (0..32).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
    let q8_data: Vec<f32> = (0..128).map(|i| (i as f32 * 0.11).cos() * 3.0).collect();
    let nested = MetadataValue::Array(
        ValueType::Array,
        vec![
            MetadataValue::Array(ValueType::U8, vec![MetadataValue::U8(1), MetadataValue::U8(2)]),
            MetadataValue::Array(ValueType::U8, vec![]),
        ],
    );
    for version in [2, 3] {
        let mut writer = GgufWriter::new();
        writer.set_version(version).unwrap().set_alignment(64).unwrap();
        writer
            .add_str("general.architecture", "llama")
            .add_u32("llama.block_count", 2)
            .add_i32("test.i32", -7)
            .add_f32("test.f32", 1.5)
            .add_bool("test.bool", true)
            .add_str_array("test.strings", &["a", "b c", "ünï"])
            .add_i32_array("test.i32s", &[1, -2, 3])
            .add_f32_array("test.f32s", &[0.25, -4.0])
            .add_str_array::<&str>("test.empty", &[])
            .add("test.u64", MetadataValue::U64(u64::MAX))
            .add("test.i8", MetadataValue::I8(-3))
            .add("test.f64", MetadataValue::F64(0.1))
            .add("test.nested", nested.clone());
        writer.add_tensor("f32", &[2, 3], &f32_data, GgmlType::F32).unwrap();
        writer.add_tensor("f16", &[4, 8], &f16_data, GgmlType::F16).unwrap();
        writer.add_tensor("q8_0", &[2, 64], &q8_data, GgmlType::Q8_0).unwrap();
        writer.add_tensor_bytes("q4_k", &[2, 256], GgmlType::Q4_K, hex(&q4_k.bytes_hex)).unwrap();
        let (_dir, path) = temp_gguf(&writer);

        let file = GgufFile::open(&path).unwrap();
        assert_eq!((file.version(), file.alignment()), (version, 64));
        let meta = file.metadata();
        assert_eq!(meta.get_u32("general.alignment").unwrap(), 64);
        assert_eq!(file.get_u32("llama.block_count").unwrap(), 2);
        assert_eq!(meta.get_i32("test.i32").unwrap(), -7);
        assert_eq!(file.get_f32("test.f32").unwrap(), 1.5);
        assert!(meta.get_bool("test.bool").unwrap());
        assert_eq!(meta.get_str_array("test.strings").unwrap(), ["a", "b c", "ünï"]);
        assert_eq!(meta.get_i32_array("test.i32s").unwrap(), [1, -2, 3]);
        assert_eq!(meta.get_f32_array("test.f32s").unwrap(), [0.25, -4.0]);
        assert_eq!(meta.value("test.empty"), Some(&MetadataValue::Array(ValueType::String, vec![])));
        assert_eq!(meta.get_u64("test.u64").unwrap(), u64::MAX);
        assert_eq!(meta.get::<i64>("test.i8").unwrap(), -3);
        assert_eq!(meta.get::<f64>("test.f64").unwrap(), 0.1);
        assert_eq!(meta.value("test.nested"), Some(&nested));
        assert_eq!(meta.get::<Vec<Vec<u8>>>("test.nested").unwrap(), vec![vec![1, 2], vec![]]);

        let names: Vec<&str> = file.tensor_names().collect();
        assert_eq!(names, ["f32", "f16", "q8_0", "q4_k"]);
        assert!(file.tensors().iter().all(|t| t.offset % 64 == 0));
        let t = file.tensor_f32("f32").unwrap();
        assert_eq!((t.shape, t.data), (vec![2, 3], f32_data.clone()));
        let t = file.tensor_f32("f16").unwrap();
        assert_eq!(t.shape, [4, 8]);
        for (x, y) in f16_data.iter().zip(&t.data) {
            assert!((x - y).abs() <= x.abs() / 2048.0, "f16 round trip of {x} gave {y}");
        }
        let t = file.tensor_f32("q8_0").unwrap();
        assert_eq!(t.shape, [2, 64]);
        for (block, got) in q8_data.chunks(32).zip(t.data.chunks(32)) {
            // Half a quantisation step, plus the f16 rounding of the scale (2^-11 relative, times 127).
            let step = block.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
            for (x, y) in block.iter().zip(got) {
                assert!((x - y).abs() <= step * (0.5 + 127.0 / 2048.0), "Q8_0 round trip of {x} gave {y}");
            }
        }
        let t = file.tensor_f32("q4_k").unwrap();
        assert_eq!(t.shape, [2, 256]);
        assert_same("Q4_K through a file", &t.data, &q4_k.values);
    }
}

#[test]
fn writer_rejects_bad_input() {
    let mut writer = GgufWriter::new();
    assert!(writer.set_version(1).is_err());
    assert!(writer.set_alignment(48).is_err());
    assert!(error_of(writer.add_tensor("w", &[2, 3], &[0.0; 5], GgmlType::F32)).contains("tensor `w`"));
    assert!(error_of(writer.add_tensor("w", &[2, 16], &[0.0; 32], GgmlType::Q8_0)).contains("multiple of 32"));
    assert!(error_of(writer.add_tensor("w", &[32], &[0.0; 32], GgmlType::Q4_K)).contains("not supported"));
    writer.add_u32("k", 1).add_u32("k", 2);
    assert!(error_of(writer.to_bytes()).contains("`k` added twice"));
}

/// A small valid file with one metadata key and one F32 tensor `weight`.
fn small_file() -> Vec<u8> {
    let mut writer = GgufWriter::new();
    writer.add_str("general.architecture", "llama");
    writer.add_tensor("weight", &[4, 8], &[1.0; 32], GgmlType::F32).unwrap();
    writer.to_bytes().unwrap()
}

fn open_bytes(bytes: &[u8]) -> anyhow::Result<GgufFile> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    std::fs::write(&path, bytes).unwrap();
    GgufFile::open(&path)
}

#[test]
fn truncated_file_names_the_tensor() {
    let bytes = small_file();
    assert!(open_bytes(&bytes).is_ok());
    let error = error_of(open_bytes(&bytes[..bytes.len() - 1]));
    assert!(
        error.contains("broken.gguf") && error.contains("tensor `weight`") && error.contains("truncated"),
        "{error}"
    );
}

#[test]
fn truncated_header_names_the_key() {
    let bytes = small_file();
    // Cut inside the value of `general.architecture` (magic, version, counts, key = 24 + 8 + 20 bytes).
    let error = error_of(open_bytes(&bytes[..60]));
    assert!(error.contains("`general.architecture`") && error.contains("truncated"), "{error}");
    let error = error_of(open_bytes(&bytes[..10]));
    assert!(error.contains("tensor count") && error.contains("truncated"), "{error}");
}

#[test]
fn bad_magic_and_version_are_errors() {
    let mut bytes = small_file();
    bytes[..4].copy_from_slice(b"GGML");
    let error = error_of(open_bytes(&bytes));
    assert!(error.contains("not a GGUF file"), "{error}");
    let mut bytes = small_file();
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(error_of(open_bytes(&bytes)).contains("version 1"));
    bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert!(error_of(open_bytes(&bytes)).contains("big-endian"));
    assert!(error_of(open_bytes(b"")).contains("truncated"));
}

#[test]
fn missing_and_mistyped_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.gguf");
    std::fs::write(&path, small_file()).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let error = error_of(file.get_u32("llama.block_count"));
    assert!(error.contains("small.gguf") && error.contains("`llama.block_count` is missing"), "{error}");
    assert_eq!(file.get_u32_opt("llama.block_count").unwrap(), None);
    let error = error_of(file.get_u32("general.architecture"));
    assert!(error.contains("`general.architecture`") && error.contains("expected u32"), "{error}");
    let error = error_of(file.metadata().get_str_array("general.architecture"));
    assert!(error.contains("expected array of string"), "{error}");
    let error = error_of(file.tensor_f32("missing.weight"));
    assert!(error.contains("no tensor `missing.weight`"), "{error}");
    let error = error_of(from_gguf(&file));
    assert!(error.contains("`tokenizer.ggml.model` is missing"), "{error}");
}

#[test]
fn unsupported_type_and_tokenizer_are_errors() {
    let mut writer = GgufWriter::new();
    writer.add_str("tokenizer.ggml.model", "llama").add_str_array("tokenizer.ggml.tokens", &["a"]);
    writer.add_tensor_bytes("q2", &[256], GgmlType::Q2_K, vec![0; GgmlType::Q2_K.type_size()]).unwrap();
    let (_dir, path) = temp_gguf(&writer);
    let file = GgufFile::open(&path).unwrap();
    let error = error_of(file.tensor_f32("q2"));
    assert!(error.contains("tensor `q2`") && error.contains("Q2_K"), "{error}");
    assert_eq!(file.tensor_bytes("q2").unwrap().len(), 84);
    let error = error_of(from_gguf(&file));
    assert!(error.contains("only \"gpt2\""), "{error}");
    assert!(error_of(dequantize(GgmlType::Q8_0, &[0; 33])).contains("whole number"));
}
