//! Tokenisation with the `tokenizers` crate, padded per batch rather than to a
//! length fixed in `tokenizer.json`.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use tokenizers::{PostProcessor, Tokenizer, TruncationParams};

/// One tokenised text: ids with the special tokens the model expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, truncated to the maximum length.
    pub ids: Vec<u32>,
    /// Token type (segment) ids, same length as `ids`.
    pub type_ids: Vec<u32>,
    /// Whether the text was longer than the maximum length and cut.
    pub truncated: bool,
}

/// A `tokenizer.json` tokenizer with its stored padding switched off and its
/// truncation set to the model's maximum length.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_length: usize,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`. Any padding stored in the file is removed
    /// (all-MiniLM-L6-v2's pads every input to 128), and truncation is set to
    /// `max_length` tokens, special tokens included; a length that leaves no
    /// room for text after the special tokens (BERT's `[CLS]` and `[SEP]`)
    /// is refused, as every text would become the same empty input.
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path).map_err(|e| anyhow!("cannot load tokenizer {}: {e}", path.display()))?;
        let special = inner.get_post_processor().map_or(0, |p| p.added_tokens(false));
        if max_length <= special {
            bail!(
                "a maximum length of {max_length} tokens leaves no room for text: {} adds {special} special tokens \
                 to every input, so the maximum length must be at least {}",
                path.display(),
                special + 1
            );
        }
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams { max_length, ..Default::default() }))
            .map_err(|e| anyhow!("{}: cannot set truncation to {max_length}: {e}", path.display()))?;
        Ok(Self { inner, max_length })
    }

    /// The maximum number of tokens of one encoded text.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Tokenises `texts` (in parallel), adding the model's special tokens.
    pub fn encode(&self, texts: &[String]) -> Result<Vec<Encoded>> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self.inner.encode_batch(inputs, true).map_err(|e| anyhow!("tokenisation failed: {e}"))?;
        Ok(encodings
            .into_iter()
            .map(|e| Encoded {
                truncated: !e.get_overflowing().is_empty(),
                ids: e.get_ids().to_vec(),
                type_ids: e.get_type_ids().to_vec(),
            })
            .collect())
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}
