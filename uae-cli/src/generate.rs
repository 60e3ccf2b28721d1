//! `uae generate`: greedy decoding with the teacher LLM.

use anyhow::Result;
use burn::tensor::Device;
use clap::Args;
use uae_model::llm::{CausalLm, ChatMessage};

/// Arguments of `uae generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// The teacher: a GGUF file, a Hugging Face directory, or a hub id.
    #[arg(long)]
    teacher: String,
    /// The prompt: a user message for chat models, plain text otherwise.
    #[arg(long)]
    prompt: String,
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

/// Runs `uae generate`.
pub fn run(args: GenerateArgs, device: &Device) -> Result<()> {
    let lm = CausalLm::load(&args.teacher, device)?;
    let text = if args.raw || !lm.has_chat_template() {
        args.prompt.clone()
    } else {
        lm.chat_prompt(&[ChatMessage::new("user", &args.prompt)], true)?
    };
    let prompt_ids = lm.encode(&text)?;
    let start = std::time::Instant::now();
    let ids = lm.generate(&prompt_ids, args.max_new_tokens)?;
    let seconds = start.elapsed().as_secs_f64();
    let answer = lm.decode(&ids)?;
    eprintln!("generated {} tokens in {seconds:.3} s ({:.1} tokens/s)", ids.len(), ids.len() as f64 / seconds.max(1e-9));
    if args.json {
        let object = serde_json::json!({ "prompt_ids": prompt_ids, "ids": ids, "text": answer });
        println!("{object}");
    } else {
        println!("{answer}");
    }
    Ok(())
}
