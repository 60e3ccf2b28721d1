//! Helpers shared by the real-weights parity tests of the LLM teachers
//! (smollm2_parity.rs, qwen_coder_parity.rs): each compares the Burn port
//! with a fixture that assets/make_llm_reference.py made with transformers
//! (PyTorch, fp32, eager attention) on the same GGUF file.

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;
use uae_model::llm::{CausalLm, ChatMessage};

/// A teacher loaded from its GGUF file beside its transformers fixture.
pub struct Parity {
    fixture: Value,
    model: CausalLm,
    /// Largest accepted |logit difference|.
    tolerance: f64,
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn positions(case: &Value) -> Vec<usize> {
    case["positions"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as usize).collect()
}

fn messages(v: &Value) -> Vec<ChatMessage> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

impl Parity {
    /// Loads the model at `gguf` (on the flex CPU backend) and the fixture
    /// `assets/fixtures/<fixture>`.
    pub fn load(gguf: &Path, fixture: &str, tolerance: f64) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/fixtures").join(fixture);
        let fixture = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let model = CausalLm::load(gguf.to_str().unwrap(), &Device::flex()).unwrap();
        Self { fixture, model, tolerance }
    }

    fn cases(&self) -> &Vec<Value> {
        self.fixture["cases"].as_array().unwrap()
    }

    /// The largest difference between our logit rows and the fixture's
    /// summary of transformers' rows (top 20, 32 probes, log-sum-exp, max,
    /// min, mean).
    fn compare_rows(&self, case: &Value, rows: &[Vec<f32>]) -> f64 {
        let probe_ids = ids(&self.fixture["probe_ids"]);
        let mut worst = 0f64;
        let mut check = |ours: f64, theirs: f64| worst = worst.max((ours - theirs).abs());
        for (p, row) in rows.iter().enumerate() {
            for (&id, want) in ids(&case["top_ids"][p]).iter().zip(floats(&case["top_logits"][p])) {
                check(row[id as usize] as f64, want);
            }
            for (&id, want) in probe_ids.iter().zip(floats(&case["probe_logits"][p])) {
                check(row[id as usize] as f64, want);
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            let mean = row.iter().map(|&x| x as f64).sum::<f64>() / row.len() as f64;
            let min = row.iter().copied().fold(f32::INFINITY, f32::min) as f64;
            check(lse, case["logsumexp"][p].as_f64().unwrap());
            check(max, case["max"][p].as_f64().unwrap());
            check(min, case["min"][p].as_f64().unwrap());
            check(mean, case["mean"][p].as_f64().unwrap());
        }
        worst
    }

    /// Every case's text tokenises to transformers' ids.
    pub fn token_ids(&self) {
        for case in self.cases() {
            assert_eq!(self.model.encode(case["text"].as_str().unwrap()).unwrap(), ids(&case["ids"]), "case {}", case["name"]);
        }
    }

    /// Every case's logits, one sequence at a time, are within the tolerance.
    pub fn logits_one_at_a_time(&self) {
        let mut report = Vec::new();
        for case in self.cases() {
            let seq = ids(&case["ids"]);
            let rows = self.model.logits_at(&[seq.as_slice()], &[positions(case)]).unwrap();
            let worst = self.compare_rows(case, &rows[0]);
            report.push(format!("{} ({} tokens): {worst:.2e}", case["name"], seq.len()));
            assert!(worst <= self.tolerance, "case {}: max |logit diff| {worst}", case["name"]);
        }
        eprintln!("max |logit diff| per case: {}", report.join(", "));
    }

    /// The fixture's batch of cases, padded together, gives each case's logits.
    pub fn padded_batch(&self) {
        let cases: Vec<&Value> = self.fixture["batch"]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| self.cases().iter().find(|c| &c["name"] == name).unwrap())
            .collect();
        let seqs: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["ids"])).collect();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let all_positions: Vec<Vec<usize>> = cases.iter().map(|c| positions(c)).collect();
        let rows = self.model.logits_at(&refs, &all_positions).unwrap();
        let worst = cases.iter().zip(&rows).map(|(c, r)| self.compare_rows(c, r)).fold(0.0, f64::max);
        let lengths: Vec<usize> = seqs.iter().map(Vec::len).collect();
        eprintln!("padded batch of {} (lengths {lengths:?}): max |logit diff| {worst:.2e}", cases.len());
        assert!(worst <= self.tolerance, "max |logit diff| {worst}");
    }

    /// Continuation log-probabilities (prompt and continuation tokenised
    /// apart, as lm-evaluation-harness does) equal transformers'.
    pub fn continuation_logprobs(&self) {
        let items = self.fixture["logprob"].as_array().unwrap();
        let mut pairs = Vec::new();
        for item in items {
            let prompt = self.model.encode(item["prompt"].as_str().unwrap()).unwrap();
            let continuation = self.model.encode(item["continuation"].as_str().unwrap()).unwrap();
            assert_eq!(prompt, ids(&item["prompt_ids"]), "{}", item["name"]);
            assert_eq!(continuation, ids(&item["continuation_ids"]), "{}", item["name"]);
            pairs.push((prompt, continuation));
        }
        let refs: Vec<(&[u32], &[u32])> = pairs.iter().map(|(p, c)| (p.as_slice(), c.as_slice())).collect();
        let ours = self.model.continuation_logprobs(&refs).unwrap();
        let mut worst = 0f64;
        for (item, values) in items.iter().zip(&ours) {
            for (&o, t) in values.iter().zip(floats(&item["token_logprobs"])) {
                worst = worst.max((o as f64 - t).abs());
            }
            let sum: f64 = values.iter().map(|&v| v as f64).sum();
            assert!((sum - item["logprob_sum"].as_f64().unwrap()).abs() <= 10.0 * self.tolerance, "{}: sum {sum}", item["name"]);
        }
        eprintln!("continuation log-probabilities: max |diff| {worst:.2e}");
        assert!(worst <= self.tolerance, "max |logprob diff| {worst}");
    }

    /// Greedy continuations of chat prompts are transformers' tokens.
    pub fn greedy(&self) {
        for item in self.fixture["greedy"].as_array().unwrap() {
            let prompt = self.model.chat_prompt(&messages(&item["messages"]), true).unwrap();
            assert_eq!(prompt, item["prompt"].as_str().unwrap());
            let prompt_ids = self.model.encode(&prompt).unwrap();
            assert_eq!(prompt_ids, ids(&item["prompt_ids"]), "{}", item["name"]);
            // transformers' run generated this many (fewer only when it stopped at EOS,
            // which is then the last one).
            let want = ids(&item["new_ids"]);
            let new_ids = self.model.generate(&prompt_ids, want.len()).unwrap();
            assert_eq!(new_ids, want, "{}: {:?}", item["name"], self.model.decode(&new_ids));
            assert_eq!(self.model.decode(&new_ids).unwrap(), item["text"].as_str().unwrap());
        }
    }

    /// The GGUF's chat template renders the fixture's conversations as transformers does.
    pub fn chat_template(&self) {
        for example in self.fixture["chat_template"]["examples"].as_array().unwrap() {
            let add = example["add_generation_prompt"].as_bool().unwrap();
            let rendered = self.model.chat_prompt(&messages(&example["messages"]), add).unwrap();
            assert_eq!(rendered, example["rendered"].as_str().unwrap());
        }
    }
}

/// The six parity tests of one teacher, each skipped when its weights were
/// not fetched: `$weights` gives the GGUF path (`Option<PathBuf>`), `$fixture`
/// names the file in `assets/fixtures`, `$tolerance` bounds |logit diff|.
macro_rules! parity_tests {
    ($weights:expr, $fixture:literal, $tolerance:expr) => {
        /// The real model and its fixture, or `None` when the model was not fetched.
        fn parity() -> Option<&'static common::Parity> {
            static PARITY: std::sync::OnceLock<common::Parity> = std::sync::OnceLock::new();
            let path = $weights?;
            Some(PARITY.get_or_init(|| common::Parity::load(&path, $fixture, $tolerance)))
        }

        #[test]
        fn token_ids_equal_transformers() {
            if let Some(p) = parity() {
                p.token_ids();
            }
        }

        #[test]
        fn logits_equal_transformers_one_sequence_at_a_time() {
            if let Some(p) = parity() {
                p.logits_one_at_a_time();
            }
        }

        #[test]
        fn padded_batch_logits_equal_transformers() {
            if let Some(p) = parity() {
                p.padded_batch();
            }
        }

        #[test]
        fn continuation_logprobs_equal_transformers() {
            if let Some(p) = parity() {
                p.continuation_logprobs();
            }
        }

        #[test]
        fn greedy_continuations_equal_transformers() {
            if let Some(p) = parity() {
                p.greedy();
            }
        }

        #[test]
        fn chat_template_renders_like_transformers() {
            if let Some(p) = parity() {
                p.chat_template();
            }
        }
    };
}
