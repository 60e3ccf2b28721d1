//! How a passage, a question and an answer are put in front of the teacher.
//!
//! The utility of a passage is measured on the answer tokens, so the prompt
//! must make the answer the natural next text. With a chat model the question
//! (and passage) is the user's turn and the answer the assistant's reply,
//! right after the chat template's assistant header. Without a chat template
//! the prompt is plain text ending in `Answer:` and the answer follows after
//! one space. The templates are plain strings with `{passage}` and
//! `{question}` placeholders and can be replaced on the command line.

use anyhow::{Result, bail};
use uae_model::llm::{CausalLm, ChatMessage};

/// The default prompt with a passage.
pub const WITH_PASSAGE: &str =
    "Answer the question using the passage.\n\nPassage: {passage}\n\nQuestion: {question}";
/// The default prompt without a passage.
pub const WITHOUT_PASSAGE: &str = "Answer the question.\n\nQuestion: {question}";

/// A configurable utility prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtilityPrompt {
    /// Template with `{passage}` and `{question}`.
    pub with_passage: String,
    /// Template with `{question}` only.
    pub without_passage: String,
    /// Optional system message (chat models only; `None` keeps the template's
    /// own default system turn, if it has one).
    pub system: Option<String>,
    /// Use the model's chat template when it has one.
    pub use_chat_template: bool,
}

impl Default for UtilityPrompt {
    fn default() -> Self {
        Self {
            with_passage: WITH_PASSAGE.into(),
            without_passage: WITHOUT_PASSAGE.into(),
            system: None,
            use_chat_template: true,
        }
    }
}

impl UtilityPrompt {
    /// Checks that the templates hold the placeholders they need.
    pub fn validate(&self) -> Result<()> {
        if !self.with_passage.contains("{passage}") || !self.with_passage.contains("{question}") {
            bail!("the with-passage prompt must contain {{passage}} and {{question}}: {:?}", self.with_passage);
        }
        if !self.without_passage.contains("{question}") || self.without_passage.contains("{passage}") {
            bail!("the without-passage prompt must contain {{question}} and no {{passage}}: {:?}", self.without_passage);
        }
        Ok(())
    }

    /// The prompt text for `question`, with `passage` or without one.
    pub fn render(&self, lm: &CausalLm, question: &str, passage: Option<&str>) -> Result<String> {
        let body = match passage {
            Some(p) => self.with_passage.replace("{question}", question).replace("{passage}", p),
            None => self.without_passage.replace("{question}", question),
        };
        if self.use_chat_template && lm.has_chat_template() {
            let mut messages = Vec::new();
            if let Some(system) = &self.system {
                messages.push(ChatMessage::new("system", system));
            }
            messages.push(ChatMessage::new("user", &body));
            lm.chat_prompt(&messages, true)
        } else {
            Ok(format!("{body}\nAnswer:"))
        }
    }

    /// The continuation text for `answer`: as it is after a chat template's
    /// assistant header, after one space in plain text.
    pub fn continuation(&self, lm: &CausalLm, answer: &str) -> String {
        if self.use_chat_template && lm.has_chat_template() { answer.to_string() } else { format!(" {answer}") }
    }
}

/// `text` cut to at most `limit` teacher tokens (decoded back to text), and
/// whether it was cut.
pub fn fit_passage(lm: &CausalLm, text: &str, limit: usize) -> Result<(String, bool)> {
    let ids = lm.encode(text)?;
    if ids.len() <= limit {
        return Ok((text.to_string(), false));
    }
    Ok((lm.decode(&ids[..limit])?, true))
}
