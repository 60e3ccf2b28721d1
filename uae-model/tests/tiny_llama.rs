//! The teacher LLM on tiny random models written by the test itself: batching
//! never changes a result, the KV cache gives the same logits as a full pass,
//! Qwen2 biases and untied heads load, and bad checkpoints (wrong shapes,
//! bad hyper-parameters, NaN weights) get named errors.

use burn::prelude::*;
use uae_model::decoding::Decoding;
use uae_model::llm::{CausalLm, NonFiniteLogprob};
use uae_test_support::damage::{fill_f32_tensor, set_gguf_value};
use uae_test_support::tiny_llama::{TinyLlamaSpec, write_tiny_llama, write_tiny_llama_gguf};

fn device() -> Device {
    Device::flex()
}

fn load(spec: &TinyLlamaSpec) -> (tempfile::TempDir, CausalLm) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), spec).unwrap();
    let lm = CausalLm::load(dir.path().to_str().unwrap(), &device()).unwrap();
    (dir, lm)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

const TEXTS: [&str; 4] = [
    "the answer is on the first line",
    "is",
    "What does the error mean? It means the file is missing, so the code does not run.",
    "<|im_start|>user\nhi<|im_end|>\n",
];

#[test]
fn padded_batch_equals_each_sequence_alone() {
    for spec in [TinyLlamaSpec::default(), TinyLlamaSpec { qwen2: true, tied: false, ..Default::default() }] {
        let (_dir, lm) = load(&spec);
        let ids: Vec<Vec<u32>> = TEXTS.iter().map(|t| lm.encode(t).unwrap()).collect();
        assert_eq!(ids[3][0], 1, "special tokens in the text map to their ids: {:?}", ids[3]);
        let positions: Vec<Vec<usize>> = ids.iter().map(|s| (0..s.len()).collect()).collect();
        let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let batched = lm.logits_at(&refs, &positions).unwrap();
        let mut worst = 0f32;
        for (i, seq) in ids.iter().enumerate() {
            let alone = lm.logits_at(&[seq.as_slice()], &positions[i..i + 1]).unwrap();
            for (a, b) in alone[0].iter().zip(&batched[i]) {
                worst = worst.max(max_diff(a, b));
            }
        }
        assert!(worst < 1e-5, "qwen2={} batched vs alone max |diff| {worst}", spec.qwen2);
    }
}

/// The rows a caller asks for (here every second position, in a packed
/// batch) get the numbers of a plain full pass over each sequence alone,
/// though the last layer computes only them and attention takes the
/// sequences packed.
#[test]
fn the_rows_asked_for_get_a_full_passs_numbers() {
    for spec in [TinyLlamaSpec::default(), TinyLlamaSpec { qwen2: true, tied: false, ..Default::default() }] {
        let (_dir, lm) = load(&spec);
        let ids: Vec<Vec<u32>> = TEXTS.iter().map(|t| lm.encode(t).unwrap()).collect();
        let positions: Vec<Vec<usize>> = ids.iter().map(|s| (0..s.len()).rev().step_by(2).collect()).collect();
        let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let some = lm.logits_at(&refs, &positions).unwrap();
        for (i, seq) in ids.iter().enumerate() {
            let input = Tensor::<2, Int>::from_data(TensorData::new(seq.iter().map(|&t| t as i32).collect(), [1, seq.len()]), &device());
            let full = lm.model.forward(input).try_into_vec_as::<f32>().unwrap();
            let vocab = full.len() / seq.len();
            assert_eq!(some[i].len(), positions[i].len());
            for (row, &p) in some[i].iter().zip(&positions[i]) {
                let diff = max_diff(row, &full[p * vocab..(p + 1) * vocab]);
                assert!(diff < 1e-5, "qwen2={} sequence {i} position {p}: max |diff| {diff}", spec.qwen2);
            }
        }
    }
}

#[test]
fn continuation_logprobs_match_full_logits() {
    let (_dir, lm) = load(&TinyLlamaSpec::default());
    let prompt = lm.encode("the question is").unwrap();
    let continuation = lm.encode(" on the line").unwrap();
    let scored = lm.continuation_logprobs(&[(&prompt, &continuation)]).unwrap();
    let full: Vec<u32> = prompt.iter().chain(&continuation).copied().collect();
    let positions: Vec<usize> = (prompt.len() - 1..full.len() - 1).collect();
    let logits = lm.logits_at(&[full.as_slice()], &[positions]).unwrap();
    for (j, row) in logits[0].iter().enumerate() {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
        let expected = row[continuation[j] as usize] - lse;
        assert!((scored[0][j] - expected).abs() < 1e-5, "token {j}: {} vs {expected}", scored[0][j]);
    }
}

#[test]
fn cached_generation_equals_recomputing_the_whole_sequence() {
    let (_dir, lm) = load(&TinyLlamaSpec { tied: false, ..Default::default() });
    let prompt = lm.encode("the answer is").unwrap();
    let generated = lm.generate(&prompt, 12).unwrap();
    assert!(!generated.is_empty());
    // Without a cache: argmax of the last position of the whole sequence.
    let mut seq = prompt.clone();
    for &expected in &generated {
        let logits = lm.logits_at(&[seq.as_slice()], &[vec![seq.len() - 1]]).unwrap();
        let row = &logits[0][0];
        let argmax = (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a))).unwrap();
        assert_eq!(argmax as u32, expected, "after {:?}", seq);
        seq.push(expected);
    }
}

/// A left-padded generation batch gives every prompt the tokens it gets
/// alone: padding is masked and does not shift positions (prompts of 1 to
/// about 20 tokens, both model families).
#[test]
fn batched_generation_equals_one_prompt_at_a_time() {
    for spec in [TinyLlamaSpec::default(), TinyLlamaSpec { qwen2: true, tied: false, ..Default::default() }] {
        let (_dir, lm) = load(&spec);
        let ids: Vec<Vec<u32>> = TEXTS.iter().map(|t| lm.encode(t).unwrap()).collect();
        let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let batched = lm.generate_batch(&refs, 10).unwrap();
        for (prompt, got) in refs.iter().zip(&batched) {
            assert_eq!(got, &lm.generate(prompt, 10).unwrap(), "qwen2={} prompt {prompt:?}", spec.qwen2);
        }
        assert!(lm.generate_batch(&[], 10).unwrap().is_empty());
        assert!(lm.generate_batch(&[&[]], 10).is_err());
    }
}

/// Prompts that begin with one long preamble (few-shot examples, as `uae
/// synth`'s do) run it once, with each prompt's own tokens padded after it,
/// and still get the tokens each gets alone: greedy and sampled rows, own
/// parts of different lengths (one of a single token), a repeated prompt,
/// both model families.
#[test]
fn prompts_after_a_shared_preamble_generate_as_each_alone() {
    for spec in [TinyLlamaSpec::default(), TinyLlamaSpec { qwen2: true, tied: false, ..Default::default() }] {
        let (_dir, lm) = load(&spec);
        let mut preamble = Vec::new();
        while preamble.len() < uae_model::llm::MIN_SHARED_PREFIX + 10 {
            preamble.extend(lm.encode(&TEXTS.join(" ")).unwrap());
        }
        let prompts: Vec<Vec<u32>> = TEXTS
            .iter()
            .map(|t| [preamble.as_slice(), &lm.encode(t).unwrap()].concat())
            .chain([[preamble.as_slice(), &preamble[..1]].concat()])
            .collect();
        let mut refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        refs.push(refs[1]);
        let sample = |seed| Decoding::Sample { temperature: 1.0, top_k: 50, top_p: 0.95, seed };
        let decodings: Vec<Decoding> =
            (0..refs.len()).map(|b| if b % 2 == 0 { Decoding::Greedy } else { sample(b as u64) }).collect();
        let batched = lm.generate_batch_with(&refs, 10, &decodings).unwrap();
        for ((prompt, got), decoding) in refs.iter().zip(&batched).zip(&decodings) {
            let alone = lm.generate_batch_with(&[prompt], 10, &[*decoding]).unwrap().remove(0);
            assert_eq!(got, &alone, "qwen2={} {decoding:?} prompt of {} tokens", spec.qwen2, prompt.len());
        }
    }
}

/// A sampled sequence draws from its own seeded stream: in a batch beside
/// greedy and other sampled rows it gets the tokens it gets alone, the same
/// seed gives the same tokens, and sampling leaves greedy's path.
#[test]
fn sampled_generation_depends_on_its_seed_not_its_batch() {
    let (_dir, lm) = load(&TinyLlamaSpec::default());
    let ids: Vec<Vec<u32>> = TEXTS.iter().map(|t| lm.encode(t).unwrap()).collect();
    let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let sample = |seed| Decoding::Sample { temperature: 1.0, top_k: 50, top_p: 0.95, seed };
    let decodings: Vec<Decoding> =
        (0..refs.len()).map(|b| if b % 3 == 0 { Decoding::Greedy } else { sample(b as u64) }).collect();
    let batched = lm.generate_batch_with(&refs, 10, &decodings).unwrap();
    for ((prompt, got), decoding) in refs.iter().zip(&batched).zip(&decodings) {
        assert_eq!(got, &lm.generate_batch_with(&[prompt], 10, &[*decoding]).unwrap()[0], "{decoding:?}");
    }
    let greedy = lm.generate_batch(&refs, 10).unwrap();
    let differ = batched.iter().zip(&greedy).zip(&decodings).filter(|((s, g), d)| **d != Decoding::Greedy && s != g).count();
    assert!(differ > 0, "a random model sampled at temperature 1 leaves the greedy path");
    assert!(lm.generate_batch_with(&refs, 10, &decodings[1..]).is_err(), "one decoding per prompt");
}

/// Continuations of one prompt scored against the prompt's cache get the
/// log-probabilities of each pair run whole (continuations of three
/// lengths, so the batch after the prompt is padded; both model families).
#[test]
fn a_shared_prompt_scores_as_the_pairs_run_whole() {
    for spec in [TinyLlamaSpec::default(), TinyLlamaSpec { qwen2: true, tied: false, ..Default::default() }] {
        let (_dir, lm) = load(&spec);
        let prompt = lm.encode(TEXTS[2]).unwrap();
        let continuations: Vec<Vec<u32>> = [TEXTS[0], TEXTS[1], TEXTS[3]].iter().map(|t| lm.encode(t).unwrap()).collect();
        let refs: Vec<&[u32]> = continuations.iter().map(Vec::as_slice).collect();
        let shared = lm.shared_prompt_logprobs(&prompt, &refs).unwrap();
        let pairs: Vec<(&[u32], &[u32])> = refs.iter().map(|&c| (prompt.as_slice(), c)).collect();
        let whole = lm.continuation_logprobs(&pairs).unwrap();
        assert_eq!(shared.len(), whole.len());
        for (s, w) in shared.iter().zip(&whole) {
            assert_eq!(s.len(), w.len());
            for (a, b) in s.iter().zip(w) {
                assert!((a - b).abs() < 1e-4, "qwen2={}: {a} against {b}", spec.qwen2);
            }
        }
        assert!(lm.shared_prompt_logprobs(&prompt, &[]).unwrap().is_empty());
        assert!(lm.shared_prompt_logprobs(&[], &refs).is_err());
    }
}

/// A batch that repeats prompts (several samples of one prompt, as `uae
/// synth` asks for) reads each distinct prompt once and still gives every
/// row the tokens it gets alone, whatever the order of the repeats.
#[test]
fn repeated_prompts_give_every_row_its_own_tokens() {
    let (_dir, lm) = load(&TinyLlamaSpec::default());
    let ids: Vec<Vec<u32>> = TEXTS.iter().take(2).map(|t| lm.encode(t).unwrap()).collect();
    assert_ne!(ids[0].len(), ids[1].len(), "prompts of two lengths, so that one is padded");
    let sample = |seed| Decoding::Sample { temperature: 1.0, top_k: 50, top_p: 0.95, seed };
    let rows: Vec<(&[u32], Decoding)> = vec![
        (&ids[1], sample(7)),
        (&ids[0], Decoding::Greedy),
        (&ids[1], Decoding::Greedy),
        (&ids[0], sample(1)),
        (&ids[0], sample(2)),
        (&ids[1], sample(7)),
    ];
    let prompts: Vec<&[u32]> = rows.iter().map(|r| r.0).collect();
    let decodings: Vec<Decoding> = rows.iter().map(|r| r.1).collect();
    let batched = lm.generate_batch_with(&prompts, 10, &decodings).unwrap();
    for ((prompt, decoding), got) in rows.iter().zip(&batched) {
        assert_eq!(got, &lm.generate_batch_with(&[prompt], 10, &[*decoding]).unwrap()[0], "{decoding:?}");
    }
    assert_eq!(batched[0], batched[5], "the same prompt and seed");
    assert_ne!(batched[3], batched[4], "two seeds of one prompt draw apart");
}

#[test]
fn chat_template_and_eos_come_from_the_directory() {
    let (_dir, lm) = load(&TinyLlamaSpec::default());
    assert!(lm.has_chat_template());
    let text = lm.chat_prompt(&[uae_model::llm::ChatMessage::new("user", "hi")], true).unwrap();
    assert_eq!(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    assert_eq!(lm.decode(&lm.encode("is the answer on the line").unwrap()).unwrap(), "is the answer on the line");
}

#[test]
fn bad_checkpoints_get_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinyLlamaSpec::default();
    write_tiny_llama(dir.path(), &spec).unwrap();
    let path = dir.path().to_str().unwrap();
    // The config promises more layers than the weights hold.
    let config_path = dir.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["num_hidden_layers"] = 3.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let err = format!("{:#}", CausalLm::load(path, &device()).err().unwrap());
    assert!(err.contains("missing tensor model.layers.2."), "{err}");
    // Wrong width.
    config["num_hidden_layers"] = 2.into();
    config["intermediate_size"] = 48.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let err = format!("{:#}", CausalLm::load(path, &device()).err().unwrap());
    assert!(err.contains("model.layers.0.mlp.gate_proj.weight has shape [64, 32]"), "{err}");
    // Fewer layers than the weights: unused tensors.
    config["intermediate_size"] = 64.into();
    config["num_hidden_layers"] = 1.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let err = format!("{:#}", CausalLm::load(path, &device()).err().unwrap());
    assert!(err.contains("does not use") && err.contains("model.layers.1."), "{err}");
    // A truncated weights file.
    let weights = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = format!("{:#}", CausalLm::load(path, &device()).err().unwrap());
    assert!(err.contains("model.safetensors") && err.contains("not a valid safetensors file"), "{err}");
}

/// The same weights written as GGUF (llama.cpp names, permuted q/k rows,
/// vocabulary in the metadata) give the safetensors model's logits and ids.
#[test]
fn gguf_and_safetensors_give_the_same_model() {
    let specs = [
        TinyLlamaSpec::default(),
        TinyLlamaSpec { qwen2: true, tied: false, ..Default::default() },
    ];
    for spec in specs {
        let (dir, lm) = load(&spec);
        for quantize in [false, true] {
            let path = dir.path().join(format!("tiny-{quantize}.gguf"));
            write_tiny_llama_gguf(&path, &spec, quantize).unwrap();
            let from_gguf = CausalLm::load(path.to_str().unwrap(), &device()).unwrap();
            assert!(from_gguf.has_chat_template());
            let mut worst = 0f32;
            for text in TEXTS {
                let ids = lm.encode(text).unwrap();
                assert_eq!(from_gguf.encode(text).unwrap(), ids, "{text:?}");
                let positions = vec![(0..ids.len()).collect::<Vec<_>>()];
                let a = lm.logits_at(&[ids.as_slice()], &positions).unwrap();
                let b = from_gguf.logits_at(&[ids.as_slice()], &positions).unwrap();
                for (x, y) in a[0].iter().zip(&b[0]) {
                    worst = worst.max(max_diff(x, y));
                }
            }
            // Q8_0 keeps 8 bits per weight: close, not equal.
            let bound = if quantize { 0.1 } else { 1e-5 };
            assert!(worst < bound, "qwen2={} quantize={quantize}: max |diff| {worst}", spec.qwen2);
        }
    }
}

/// Weights split into shards with `model.safetensors.index.json` load like
/// the single file.
#[test]
fn sharded_safetensors_load_like_one_file() {
    use safetensors::SafeTensors;
    let spec = TinyLlamaSpec::default();
    let (dir, lm) = load(&spec);
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(str::to_string).collect();
    names.sort();
    let sharded = tempfile::tempdir().unwrap();
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(dir.path().join(file), sharded.path().join(file)).unwrap();
    }
    let mut weight_map = serde_json::Map::new();
    for (i, chunk) in names.chunks(names.len() / 2 + 1).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let views: Vec<(String, safetensors::tensor::TensorView)> =
            chunk.iter().map(|n| (n.clone(), tensors.tensor(n).unwrap())).collect();
        safetensors::serialize_to_file(views, None, &sharded.path().join(&file)).unwrap();
        for n in chunk {
            weight_map.insert(n.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(sharded.path().join("model.safetensors.index.json"), index.to_string()).unwrap();
    let from_shards = CausalLm::load(sharded.path().to_str().unwrap(), &device()).unwrap();
    let ids = lm.encode(TEXTS[2]).unwrap();
    let positions = vec![(0..ids.len()).collect::<Vec<_>>()];
    let a = lm.logits_at(&[ids.as_slice()], &positions).unwrap();
    let b = from_shards.logits_at(&[ids.as_slice()], &positions).unwrap();
    for (x, y) in a[0].iter().zip(&b[0]) {
        assert_eq!(x, y);
    }
}

/// A hub id that is neither cached nor reachable fails fast and says how to
/// work offline. (The only test in this binary that sets these variables.)
#[test]
fn unknown_hub_teacher_is_a_clear_error_offline() {
    let cache = tempfile::tempdir().unwrap();
    // SAFETY: no other test in this binary reads or writes these variables.
    unsafe {
        std::env::set_var("HF_HOME", cache.path());
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    let err = format!("{:#}", CausalLm::load("nobody-uae-test/no-such-llm", &device()).err().unwrap());
    assert!(err.contains("not in the Hugging Face cache") && err.contains("config.json"), "{err}");
    let err = format!("{:#}", CausalLm::load("/no/such/teacher.gguf", &device()).err().unwrap());
    assert!(err.contains("neither a GGUF file, a model directory, nor a hub id"), "{err}");
}

/// Bad hyper-parameters in GGUF metadata are refused naming the file and the
/// metadata key, never a panic (burn's RmsNorm asserts on its epsilon, the
/// attention divides by the key/value heads) and never a silently wrong
/// model (a rotary base of 0).
#[test]
fn bad_gguf_metadata_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let cases: [(&str, [u8; 4], &str); 6] = [
        ("llama.attention.layer_norm_rms_epsilon", f32::NAN.to_le_bytes(), "is NaN"),
        ("llama.attention.layer_norm_rms_epsilon", 0f32.to_le_bytes(), "is 0"),
        ("llama.attention.head_count_kv", 0u32.to_le_bytes(), "is 0"),
        ("llama.attention.head_count_kv", 3u32.to_le_bytes(), "3"),
        ("llama.attention.head_count", 0u32.to_le_bytes(), "is 0"),
        ("llama.rope.freq_base", 0f32.to_le_bytes(), "is 0"),
    ];
    for (key, value, says) in cases {
        write_tiny_llama_gguf(&path, &TinyLlamaSpec::default(), false).unwrap();
        set_gguf_value(&path, key, value).unwrap();
        let err = format!("{:#}", CausalLm::load(path.to_str().unwrap(), &device()).err().unwrap());
        assert!(err.contains("tiny.gguf") && err.contains(&format!("{key} {says}")), "{key}: {err}");
    }
}

/// A NaN weight is refused when it is read, naming the file and the tensor,
/// from safetensors and from GGUF alike.
#[test]
fn nan_weights_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinyLlamaSpec::default();
    write_tiny_llama(dir.path(), &spec).unwrap();
    let weights = dir.path().join("model.safetensors");
    fill_f32_tensor(&weights, "model.layers.1.self_attn.q_proj.weight", f32::NAN).unwrap();
    let err = format!("{:#}", CausalLm::load(dir.path().to_str().unwrap(), &device()).err().unwrap());
    assert!(err.contains("model.safetensors: tensor model.layers.1.self_attn.q_proj.weight holds NaN"), "{err}");

    let path = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&path, &spec, false).unwrap();
    fill_f32_tensor(&path, "output_norm.weight", f32::INFINITY).unwrap();
    let err = format!("{:#}", CausalLm::load(path.to_str().unwrap(), &device()).err().unwrap());
    assert!(err.contains("tiny.gguf: tensor output_norm.weight (model.norm.weight) holds inf"), "{err}");
}

/// Finite weights whose activations overflow give NaN log-probabilities:
/// scoring says which pair, rather than handing back NaN scores.
#[test]
fn non_finite_logprobs_are_an_error_naming_the_pair() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), &TinyLlamaSpec::default()).unwrap();
    fill_f32_tensor(&dir.path().join("model.safetensors"), "model.norm.weight", f32::MAX).unwrap();
    let lm = CausalLm::load(dir.path().to_str().unwrap(), &device()).unwrap();
    let (prompt, continuation) = (lm.encode("the question is").unwrap(), lm.encode(" on the line").unwrap());
    let err = lm.continuation_logprobs(&[(&prompt, &continuation), (&prompt, &continuation)]).unwrap_err();
    let bad = err.downcast_ref::<NonFiniteLogprob>().unwrap_or_else(|| panic!("{err:#}"));
    assert_eq!((bad.pair, bad.token), (0, 0), "{err}");
    assert!(!bad.value.is_finite());
}

/// A prompt longer than the context window is an error, never an empty
/// generation; one that fills the window generates what fits and says so.
#[test]
fn prompts_past_the_context_window_are_refused() {
    let (_dir, lm) = load(&TinyLlamaSpec { max_positions: 16, ..Default::default() });
    let long: Vec<u32> = (0..17).map(|i| 3 + i % 200).collect();
    let err = format!("{:#}", lm.generate(&long, 4).unwrap_err());
    assert!(err.contains("the prompt has 17 tokens, more than the model's context window of 16"), "{err}");
    let err = format!("{:#}", lm.generate_batch(&[&long[..3], &long], 4).unwrap_err());
    assert!(err.contains("prompt 1 (counting from 0) of the batch") && err.contains("17 tokens"), "{err}");

    let fits = &long[..15];
    let generated = lm.generate(fits, 8).unwrap();
    assert_eq!(generated.len(), 2, "two tokens fit after 15 in a window of 16: {generated:?}");
    assert!(lm.context_exhausted(fits.len(), &generated));
    assert_eq!(lm.generate_batch(&[fits], 8).unwrap(), [generated]);
    let short = lm.generate(&long[..3], 2).unwrap();
    assert!(!lm.context_exhausted(3, &short));
}
