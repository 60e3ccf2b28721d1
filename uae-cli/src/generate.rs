//! `uae generate`: greedy decoding with the teacher LLM, of one prompt or of
//! a JSONL file of prompts in padded batches.

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::Args;
use serde::{Deserialize, Serialize};
use uae_data::jsonl::{self, JsonlWriter};
use uae_model::llm::{CausalLm, ChatMessage};

use crate::{progress, stdout};

/// Arguments of `uae generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// The teacher: a GGUF file, a Hugging Face directory, or a hub id.
    #[arg(long)]
    teacher: String,
    /// The prompt: a user message for chat models, plain text otherwise.
    #[arg(long, required_unless_present = "input", conflicts_with = "input")]
    prompt: Option<String>,
    /// A JSONL file (or `-`) of `{"prompt": ...}` lines, generated
    /// `--batch` at a time; results go to `--output`.
    #[arg(long, requires = "output")]
    input: Option<String>,
    /// Where `--input`'s results go, one `{"prompt", "text", "ids"}` line
    /// per input line, in order (`-` for standard output).
    #[arg(long)]
    output: Option<String>,
    /// Prompts decoded at once, left-padded into one batch (a result does not
    /// depend on its batch).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Most new tokens to generate.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Use the prompt as it is, without the model's chat template.
    #[arg(long)]
    raw: bool,
    /// Print a JSON object with the prompt and generated ids and the text.
    #[arg(long)]
    json: bool,
}

/// One line of `--input`.
#[derive(Deserialize)]
struct PromptLine {
    prompt: String,
}

/// One line of `--output`.
#[derive(Serialize)]
struct Generation<'a> {
    prompt: &'a str,
    text: String,
    ids: &'a [u32],
}

/// Runs `uae generate`.
pub fn run(args: GenerateArgs, device: &Device) -> Result<()> {
    let lm = CausalLm::load(&args.teacher, device)?;
    let render = |prompt: &str| -> Result<String> {
        if args.raw || !lm.has_chat_template() {
            Ok(prompt.to_string())
        } else {
            lm.chat_prompt(&[ChatMessage::new("user", prompt)], true)
        }
    };
    if let (Some(input), Some(output)) = (&args.input, &args.output) {
        if args.batch == 0 {
            bail!("--batch must be at least 1");
        }
        let lines: Vec<PromptLine> = jsonl::read(input)?;
        let prompts = lines.iter().map(|l| lm.encode(&render(&l.prompt)?)).collect::<Result<Vec<_>>>()?;
        if let Some(n) = prompts.iter().position(Vec::is_empty) {
            bail!("{input}:{}: the prompt is empty", n + 1);
        }
        if let Some(n) = prompts.iter().position(|p| p.len() > lm.context_length()) {
            bail!(
                "{input}:{}: the prompt has {} tokens, more than the teacher's context window of {}",
                n + 1,
                prompts[n].len(),
                lm.context_length()
            );
        }
        let mut writer = JsonlWriter::create(output)?;
        let bar = progress::bar(prompts.len() as u64, "prompts");
        let start = std::time::Instant::now();
        let mut tokens = 0;
        let mut full = 0;
        for (chunk, texts) in prompts.chunks(args.batch).zip(lines.chunks(args.batch)) {
            let refs: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
            for ((ids, line), prompt) in lm.generate_batch(&refs, args.max_new_tokens)?.iter().zip(texts).zip(chunk) {
                tokens += ids.len();
                full += usize::from(lm.context_exhausted(prompt.len(), ids));
                writer.write(&Generation { prompt: &line.prompt, text: lm.decode(ids)?, ids })?;
            }
            bar.inc(chunk.len() as u64);
        }
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        writer.finish()?;
        eprintln!(
            "generated {tokens} tokens for {} prompts in {seconds:.3} s ({:.1} tokens/s, batches of {})",
            prompts.len(),
            tokens as f64 / seconds.max(1e-9),
            args.batch
        );
        if full > 0 {
            eprintln!(
                "warning: {full} of {} generations stopped early: prompt and answer filled the context window of {} tokens",
                prompts.len(),
                lm.context_length()
            );
        }
        return Ok(());
    }
    let prompt = args.prompt.as_deref().expect("clap requires --prompt without --input");
    let prompt_ids = lm.encode(&render(prompt)?)?;
    let start = std::time::Instant::now();
    let ids = lm.generate(&prompt_ids, args.max_new_tokens)?;
    let seconds = start.elapsed().as_secs_f64();
    let answer = lm.decode(&ids)?;
    eprintln!("generated {} tokens in {seconds:.3} s ({:.1} tokens/s)", ids.len(), ids.len() as f64 / seconds.max(1e-9));
    if lm.context_exhausted(prompt_ids.len(), &ids) {
        eprintln!(
            "warning: generation stopped early: the prompt's {} tokens and the answer filled the context window of {} tokens",
            prompt_ids.len(),
            lm.context_length()
        );
    }
    let text = if args.json {
        serde_json::json!({ "prompt_ids": prompt_ids, "ids": ids, "text": answer }).to_string()
    } else {
        answer
    };
    stdout::print(&format!("{text}\n"))?;
    Ok(())
}
