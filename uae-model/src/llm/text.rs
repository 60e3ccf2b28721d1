//! The text side of a causal LM: tokenizer, special tokens, chat template
//! and context window, from a GGUF file or a Hugging Face directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use tokenizers::Tokenizer;

use crate::gguf::GgufFile;
use crate::llama::LlamaConfig;

/// The text side of a causal LM, loadable without its weights: tokenizer,
/// special tokens, chat template and context window. A teacher served by
/// another process needs exactly this here, to build the prompts it sends.
pub struct LmTokenizer {
    tokenizer: Tokenizer,
    chat_template: Option<String>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    pub(super) eos_ids: Vec<u32>,
    context_length: usize,
    source: PathBuf,
}

/// One chat message for [`CausalLm::chat_prompt`].
#[derive(Debug, Clone)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

impl LmTokenizer {
    /// Loads the text side of `spec` (a `.gguf` file, a Hugging Face
    /// directory or a hub id) without its weights.
    pub fn load(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_file() {
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
                return Ok(Self::of_gguf(&GgufFile::open(path)?, path)?.1);
            }
            bail!("{spec} is a file but not a .gguf file; pass a GGUF file or a Hugging Face directory");
        }
        let dir = crate::source::ModelDir::resolve_llm_tokenizer(spec)?;
        Ok(Self::of_dir(dir.root())?.1)
    }

    /// The configuration and text side of GGUF `file` (read from `path`).
    pub(super) fn of_gguf(file: &GgufFile, path: &Path) -> Result<(LlamaConfig, Self)> {
        let config = LlamaConfig::from_gguf(file)?;
        let tokenizer = crate::gguf::tokenizer::from_gguf(file)?;
        let chat_template = file.get_str_opt("tokenizer.chat_template")?.map(str::to_string);
        let token = |key: &str| -> Result<Option<String>> {
            Ok(file.get_u32_opt(key)?.and_then(|id| tokenizer.id_to_token(id)))
        };
        let bos_token = token("tokenizer.ggml.bos_token_id")?;
        let eos_token = token("tokenizer.ggml.eos_token_id")?;
        let eos_ids = config.eos_token_id.as_ref().map(|e| e.ids()).unwrap_or_default();
        let context_length = config.max_position_embeddings;
        let text = Self { tokenizer, chat_template, bos_token, eos_token, eos_ids, context_length, source: path.into() };
        Ok((config, text))
    }

    /// The configuration and text side of Hugging Face directory `dir`.
    pub(super) fn of_dir(dir: &Path) -> Result<(LlamaConfig, Self)> {
        let config = LlamaConfig::from_file(&dir.join("config.json"))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| anyhow!("cannot load tokenizer {}: {e}", tokenizer_path.display()))?;
        let special = TokenizerConfig::read(dir)?;
        let mut eos_ids = config.eos_token_id.as_ref().map(|e| e.ids()).unwrap_or_default();
        if eos_ids.is_empty()
            && let Some(id) = special.eos_token.as_deref().and_then(|t| tokenizer.token_to_id(t))
        {
            eos_ids.push(id);
        }
        let text = Self {
            tokenizer,
            chat_template: special.chat_template,
            bos_token: special.bos_token,
            eos_token: special.eos_token,
            eos_ids,
            context_length: config.max_position_embeddings,
            source: dir.into(),
        };
        Ok((config, text))
    }

    /// The file or directory the model came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The longest sequence the model accepts.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Token ids of `text`, without special tokens (special-token strings in
    /// the text, such as `<|im_start|>`, still map to their ids).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(text, false).map_err(|e| anyhow!("tokenisation failed: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true).map_err(|e| anyhow!("decoding failed: {e}"))
    }

    /// Text of `ids` with special tokens kept, so that tokenising it again
    /// gives `ids` back (byte-level BPE): the text sent to a teacher served
    /// elsewhere, which tokenises it itself.
    pub fn text_of(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, false).map_err(|e| anyhow!("decoding failed: {e}"))
    }

    /// Whether the model ships a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// Renders `messages` with the model's chat template, ending with the
    /// assistant's turn opened when `add_generation_prompt`. Without a
    /// template, messages are joined as plain text (`content` blocks separated
    /// by blank lines), which suits base models.
    pub fn chat_prompt(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let Some(template) = &self.chat_template else {
            let text: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
            return Ok(text.join("\n\n") + "\n");
        };
        render_chat_template(template, messages, add_generation_prompt, self.bos_token.as_deref(), self.eos_token.as_deref())
    }
}

/// The special tokens and chat template of `tokenizer_config.json` (or
/// `chat_template.jinja`, where newer transformers keeps the template).
#[derive(Debug, Default)]
struct TokenizerConfig {
    chat_template: Option<String>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl TokenizerConfig {
    fn read(dir: &Path) -> Result<Self> {
        let mut out = Self::default();
        let path = dir.join("tokenizer_config.json");
        if path.is_file() {
            let json: serde_json::Value = uae_data::json::read_json(&path)?;
            let token = |key: &str| match json.get(key) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
                _ => None,
            };
            out.bos_token = token("bos_token");
            out.eos_token = token("eos_token");
            out.chat_template = match json.get("chat_template") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                // A list of named templates: use the default one.
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
                _ => None,
            };
        }
        let jinja = dir.join("chat_template.jinja");
        if out.chat_template.is_none() && jinja.is_file() {
            out.chat_template =
                Some(std::fs::read_to_string(&jinja).with_context(|| format!("cannot read {}", jinja.display()))?);
        }
        Ok(out)
    }
}

/// Renders a Hugging Face chat template (Jinja) with minijinja, with the
/// variables transformers passes (`messages`, `add_generation_prompt`,
/// `bos_token`, `eos_token`) and its `raise_exception` function.
fn render_chat_template(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: Option<&str>,
    eos_token: Option<&str>,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    // transformers renders with trim_blocks and lstrip_blocks.
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| anyhow!("chat template syntax: {e}"))?;
    env.set_syntax(syntax);
    env.add_function("raise_exception", |message: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
    });
    env.add_template("chat", template).map_err(|e| anyhow!("the chat template does not parse: {e}"))?;
    let context = minijinja::context! {
        messages => messages
            .iter()
            .map(|m| minijinja::Value::from_pairs([("role", m.role.as_str()), ("content", m.content.as_str())]))
            .collect::<minijinja::Value>(),
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token.unwrap_or(""),
        eos_token => eos_token.unwrap_or(""),
    };
    env.get_template("chat")
        .and_then(|t| t.render(context))
        .map_err(|e| anyhow!("rendering the chat template failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_template_renders_like_transformers() {
        let text = render_chat_template(CHATML, &[ChatMessage::new("user", "Hi")], true, None, None).unwrap();
        assert_eq!(text, "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        let text = render_chat_template(
            CHATML,
            &[ChatMessage::new("system", "S"), ChatMessage::new("user", "U")],
            false,
            None,
            None,
        )
        .unwrap();
        assert_eq!(text, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
    }

    #[test]
    fn raise_exception_is_an_error() {
        let err = render_chat_template("{{ raise_exception('no system role') }}", &[], false, None, None).unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
    }
}
