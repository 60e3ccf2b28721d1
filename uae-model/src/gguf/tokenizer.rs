//! A `tokenizers` tokenizer built from a GGUF file's vocabulary, giving the
//! same ids as transformers' tokenizer for the file
//! (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`).
//!
//! Mirrors transformers 5's GGUF conversion
//! (`integrations/gguf/gguf_tokenizer_mapping.py`) for `tokenizer.ggml.model
//! = "gpt2"` (byte-level BPE):
//! - the model is BPE over `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`;
//!   a token that uses characters outside GPT-2's byte alphabet is respelled
//!   from its UTF-8 bytes;
//! - the pre-tokenizer is GPT-2's `ByteLevel` (its own split regex), or, for
//!   the `tokenizer.ggml.pre` values transformers knows (`llama-bpe`, `qwen2`,
//!   `gpt-4o`, ...), that split regex followed by `ByteLevel` without regex;
//! - the decoder is `ByteLevel`; there is no normaliser;
//! - control tokens (token type 3) written in the byte alphabet, and the bos,
//!   eos, unk and pad tokens, are special added tokens; user-defined tokens
//!   (type 4) are plain added tokens;
//! - the post-processor adds bos / eos only when `tokenizer.ggml.add_bos_token`
//!   / `add_eos_token` say so (both default to false).

use anyhow::{Context, Result, anyhow, bail};
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::file::GgufFile;

/// `tokenizer.ggml.token_type` of a control token (`<|im_start|>`).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// `tokenizer.ggml.token_type` of a user-defined added token (`<think>`).
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Special token ids, BOS/EOS flags and chat template from a GGUF file's
/// `tokenizer.*` metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTokenizerInfo {
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (false when absent): whether encoding
    /// with special tokens prepends BOS.
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token` (false when absent): whether encoding
    /// with special tokens appends EOS.
    pub add_eos: bool,
    /// `tokenizer.chat_template` (Jinja), if the file has one.
    pub chat_template: Option<String>,
}

impl GgufTokenizerInfo {
    /// Reads the info from `file`'s metadata; a special id outside the
    /// vocabulary is an error naming its key.
    pub fn read(file: &GgufFile) -> Result<Self> {
        let meta = file.metadata();
        let n_tokens = meta.get::<Vec<&str>>("tokenizer.ggml.tokens")?.len();
        let id = |key: &str| -> Result<Option<u32>> {
            match meta.get_u32_opt(key)? {
                Some(id) if id as usize >= n_tokens => {
                    bail!("{}: `{key}` is {id}, past the {n_tokens} tokens", file.path().display())
                }
                other => Ok(other),
            }
        };
        Ok(Self {
            bos_id: id("tokenizer.ggml.bos_token_id")?,
            eos_id: id("tokenizer.ggml.eos_token_id")?,
            unk_id: id("tokenizer.ggml.unknown_token_id")?,
            pad_id: id("tokenizer.ggml.padding_token_id")?,
            add_bos: meta.get_bool_opt("tokenizer.ggml.add_bos_token")?.unwrap_or(false),
            add_eos: meta.get_bool_opt("tokenizer.ggml.add_eos_token")?.unwrap_or(false),
            chat_template: meta.get_str_opt("tokenizer.chat_template")?.map(str::to_string),
        })
    }
}

/// Builds the tokenizer of `file` (see the module docs for what it mirrors).
/// Errors name the file and the metadata key at fault; a tokenizer model
/// other than `gpt2` is an error.
pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    let source = file.path().display();
    let meta = file.metadata();
    let model = meta.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        bail!("{source}: `tokenizer.ggml.model` is {model:?}; only \"gpt2\" (byte-level BPE) is supported");
    }
    let tokens = meta.get_str_array("tokenizer.ggml.tokens")?;
    let token_types = meta.get_opt::<Vec<i32>>("tokenizer.ggml.token_type")?.unwrap_or_default();
    if !token_types.is_empty() && token_types.len() != tokens.len() {
        bail!("{source}: `tokenizer.ggml.token_type` has {} entries for {} tokens", token_types.len(), tokens.len());
    }
    let info = GgufTokenizerInfo::read(file)?;

    let alphabet = ByteAlphabet::new();
    let vocab: Vocab = tokens.iter().enumerate().map(|(id, t)| (alphabet.spell(t), id as u32)).collect();
    let merges = meta
        .get_str_array("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| anyhow!("{source}: merge {m:?} in `tokenizer.ggml.merges` has no space"))
        })
        .collect::<Result<Merges>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| anyhow!("{source}: cannot build BPE from `tokenizer.ggml.tokens`/`merges`: {e}"))?;

    let mut tokenizer = Tokenizer::new(bpe);
    let pre = meta.get_str_opt("tokenizer.ggml.pre")?;
    match pre.and_then(|pre| Some((pre, split_regex(pre)?))) {
        None => {
            tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        }
        Some((pre, regex)) => {
            let split = Split::new(SplitPattern::Regex(regex.to_string()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| anyhow!("split regex for `tokenizer.ggml.pre` {pre:?}: {e}"))?;
            tokenizer
                .with_pre_tokenizer(Some(Sequence::new(vec![split.into(), ByteLevel::new(false, true, false).into()])));
        }
    }
    tokenizer.with_decoder(Some(ByteLevel::default()));

    let types =
        |wanted: i32| tokens.iter().zip(&token_types).filter(move |(_, t)| **t == wanted).map(|(token, _)| *token);
    let mut special: Vec<AddedToken> = types(TOKEN_TYPE_CONTROL)
        .filter(|t| alphabet.spells(t))
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
    special.extend(
        [info.bos_id, info.eos_id, info.unk_id, info.pad_id]
            .into_iter()
            .flatten()
            .map(|id| AddedToken::from(tokens[id as usize], true).normalized(false)),
    );
    tokenizer.add_special_tokens(&special);
    let user: Vec<AddedToken> =
        types(TOKEN_TYPE_USER_DEFINED).map(|t| AddedToken::from(t, false).normalized(false)).collect();
    tokenizer.add_tokens(&user);

    tokenizer.with_post_processor(Some(post_processor(&info, &tokens).with_context(|| source.to_string())?));
    Ok(tokenizer)
}

/// transformers' `update_post_processor`: `$A:0` (and `$A:0 $B:1` for pairs)
/// with BOS before / EOS after each sequence when the file asks for them.
fn post_processor(info: &GgufTokenizerInfo, tokens: &[&str]) -> Result<TemplateProcessing> {
    let bos = info.bos_id.filter(|_| info.add_bos).map(|id| (tokens[id as usize], id));
    let eos = info.eos_id.filter(|_| info.add_eos).map(|id| (tokens[id as usize], id));
    let sequence = |seq: &str, type_id: u32| {
        let mut parts = Vec::new();
        parts.extend(bos.map(|(t, _)| format!("{t}:{type_id}")));
        parts.push(format!("${seq}:{type_id}"));
        parts.extend(eos.map(|(t, _)| format!("{t}:{type_id}")));
        parts.join(" ")
    };
    let single = sequence("A", 0);
    let pair = format!("{single} {}", sequence("B", 1));
    let specials: Vec<(String, u32)> = bos.into_iter().chain(eos).map(|(t, id)| (t.to_string(), id)).collect();
    TemplateProcessing::builder()
        .try_single(single.as_str())
        .and_then(|b| b.try_pair(pair.as_str()))
        .map_err(|e| anyhow!("bad BOS/EOS template {pair:?}: {e}"))?
        .special_tokens(specials)
        .build()
        .map_err(|e| anyhow!("bad BOS/EOS template {pair:?}: {e}"))
}

/// The split regex transformers uses for a `tokenizer.ggml.pre` value
/// (`GGUF_PRE_TOKENIZER_SPLITS`); `None` means GPT-2's own (`ByteLevel` with
/// its regex), as for `smollm`, `gpt2` or `starcoder`.
fn split_regex(pre: &str) -> Option<&'static str> {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN35: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const TEKKEN: &str = concat!(
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+",
        r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*",
        r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    );
    const GPT4O: &str = concat!(
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    );
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"
        | "jina-v5-nano" | "dbrx" | "smaug-bpe" => LLAMA3,
        "tekken" => TEKKEN,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => QWEN2,
        "qwen35" => QWEN35,
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => GPT4O,
        _ => return None,
    })
}

/// GPT-2's byte-to-character map (`bytes_to_unicode`): printable Latin-1
/// bytes stand for themselves, the other 68 bytes for U+0100..U+0143.
struct ByteAlphabet {
    chars: [char; 256],
}

impl ByteAlphabet {
    fn new() -> Self {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut chars = ['\0'; 256];
        let mut others = ('\u{100}'..='\u{143}').into_iter();
        for b in 0..=255u8 {
            chars[b as usize] = if printable(b) { char::from(b) } else { others.next().unwrap_or_default() };
        }
        Self { chars }
    }

    /// Whether every character of `token` is in the alphabet.
    fn spells(&self, token: &str) -> bool {
        token.chars().all(|c| match u32::from(c) {
            0x100..=0x143 => true,
            c => u8::try_from(c).is_ok_and(|b| self.chars[b as usize] == char::from(b)),
        })
    }

    /// `token` as the vocabulary spells it: unchanged when written in the
    /// alphabet, otherwise its UTF-8 bytes mapped through the alphabet.
    fn spell(&self, token: &str) -> String {
        if self.spells(token) { token.to_string() } else { token.bytes().map(|b| self.chars[b as usize]).collect() }
    }
}
