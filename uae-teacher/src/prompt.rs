//! How a passage, a question and an answer are put in front of the teacher.
//!
//! The utility of a passage is measured on a target text, the answer
//! ([`Utility::Answer`]) or the question itself ([`Utility::Question`]), so
//! the prompt must make that text the natural next one. With a chat model the
//! prompt is the user's turn and the target the assistant's reply, right
//! after the chat template's assistant header. Without a chat template the
//! prompt is plain text ending in `Answer:` (or `Question:`) and the target
//! follows after one space. The templates are plain strings with `{passage}`
//! and `{question}` placeholders and can be replaced on the command line.

use anyhow::{Result, bail};
use uae_model::llm::{ChatMessage, LmTokenizer};

/// The default prompt with a passage.
pub const WITH_PASSAGE: &str =
    "Answer the question using the passage.\n\nPassage: {passage}\n\nQuestion: {question}";
/// The default prompt without a passage.
pub const WITHOUT_PASSAGE: &str = "Answer the question.\n\nQuestion: {question}";
/// The default prompt with a passage for [`Utility::Question`]: UPR's
/// (Sachan et al. 2022).
pub const QUESTION_WITH_PASSAGE: &str = "Passage: {passage}\n\nPlease write a question based on this passage.";
/// The default prompt without a passage for [`Utility::Question`].
pub const QUESTION_WITHOUT_PASSAGE: &str = "Please write a question.";

/// The text whose likelihood measures a passage's utility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Utility {
    /// The query's gold answer, after a prompt showing the question (the
    /// paper's perplexity reduction).
    #[default]
    Answer,
    /// The question, after a prompt showing only the passage (query
    /// likelihood, as UPR and ART): needs no answer, so it cannot collapse
    /// onto the passage an answer was copied from.
    Question,
}

impl Utility {
    /// The default templates, with and without a passage.
    pub fn default_prompts(self) -> (&'static str, &'static str) {
        match self {
            Self::Answer => (WITH_PASSAGE, WITHOUT_PASSAGE),
            Self::Question => (QUESTION_WITH_PASSAGE, QUESTION_WITHOUT_PASSAGE),
        }
    }

    /// The word that ends a plain-text prompt.
    fn cue(self) -> &'static str {
        match self {
            Self::Answer => "Answer:",
            Self::Question => "Question:",
        }
    }
}

impl std::fmt::Display for Utility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Answer => "answer",
            Self::Question => "question",
        })
    }
}

impl std::str::FromStr for Utility {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "answer" => Ok(Self::Answer),
            "question" => Ok(Self::Question),
            _ => bail!("unknown utility {s:?}: expected answer or question"),
        }
    }
}

/// A configurable utility prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtilityPrompt {
    /// The text scored.
    pub utility: Utility,
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
        Self::of(Utility::Answer)
    }
}

impl UtilityPrompt {
    /// The default prompts of `utility`.
    pub fn of(utility: Utility) -> Self {
        let (with_passage, without_passage) = utility.default_prompts();
        Self {
            utility,
            with_passage: with_passage.into(),
            without_passage: without_passage.into(),
            system: None,
            use_chat_template: true,
        }
    }

    /// Checks that the templates hold the placeholders they need: both show
    /// the question when the answer is scored, neither when the question is.
    pub fn validate(&self) -> Result<()> {
        let shows_question = self.utility == Utility::Answer;
        let question = |t: &str| t.contains("{question}") == shows_question;
        let needs = if shows_question { "" } else { "no " };
        if !self.with_passage.contains("{passage}") || !question(&self.with_passage) {
            bail!(
                "the with-passage prompt must contain {{passage}} and {needs}{{question}} for the {} utility: {:?}",
                self.utility,
                self.with_passage
            );
        }
        if !question(&self.without_passage) || self.without_passage.contains("{passage}") {
            bail!(
                "the without-passage prompt must contain {needs}{{question}} and no {{passage}} for the {} utility: {:?}",
                self.utility,
                self.without_passage
            );
        }
        Ok(())
    }

    /// The text scored for a query: its `answer`, or its `question`.
    pub fn target<'a>(&self, question: &'a str, answer: &'a str) -> &'a str {
        match self.utility {
            Utility::Answer => answer,
            Utility::Question => question,
        }
    }

    /// The prompt text for `question`, with `passage` or without one.
    pub fn render(&self, lm: &LmTokenizer, question: &str, passage: Option<&str>) -> Result<String> {
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
            Ok(format!("{body}\n{}", self.utility.cue()))
        }
    }

    /// The continuation text for `target` (the answer or the question): as it
    /// is after a chat template's assistant header, after one space in plain
    /// text.
    pub fn continuation(&self, lm: &LmTokenizer, target: &str) -> String {
        if self.use_chat_template && lm.has_chat_template() { target.to_string() } else { format!(" {target}") }
    }
}

/// `text` cut to at most `limit` teacher tokens (decoded back to text), and
/// whether it was cut.
pub fn fit_passage(lm: &LmTokenizer, text: &str, limit: usize) -> Result<(String, bool)> {
    let ids = lm.encode(text)?;
    if ids.len() <= limit {
        return Ok((text.to_string(), false));
    }
    Ok((lm.decode(&ids[..limit])?, true))
}
