//! The bi-encoder: tokenizer, BERT, pooling and normalisation behind one call
//! that turns texts into embeddings.

use anyhow::{Result, bail};
use burn::prelude::*;

use crate::batch::token_budget_batches;
use crate::bert::{BertConfig, BertModel, TokenBatch};
use crate::pooling::{l2_normalize, pool};
use crate::sentence::{Pooling, SentenceConfig};
use crate::source::ModelDir;
use crate::tokenize::TextTokenizer;

/// What `fingerprints/<key>.json` in uae's cache records of a file.
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct FileStamp {
    path: String,
    len: u64,
    modified_ns: u128,
    crc32: u32,
}

/// Files below this size are checksummed every time: reading them costs
/// less than the cache.
const STAMP_MIN_BYTES: u64 = 16 << 20;

/// The CRC-32 of a file's contents and its length, from uae's cache when the
/// file's path, size and modification time are those recorded; computed (and
/// recorded, when the cache is writable) otherwise.
fn file_crc32(path: &std::path::Path) -> Result<(u32, u64)> {
    let read_err = |e: std::io::Error| anyhow::anyhow!("cannot read {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .filter(|_| meta.len() >= STAMP_MIN_BYTES);
    let full = std::fs::canonicalize(path).map_err(read_err)?.display().to_string();
    let key = format!("{:08x}.json", crc32fast::hash(full.as_bytes()));
    let dir = uae_data::cache::uae_cache().join("fingerprints");
    if let Some(modified_ns) = modified_ns
        && let Ok(stamp) = uae_data::json::read_json::<FileStamp>(&dir.join(&key))
        && stamp.path == full
        && stamp.len == meta.len()
        && stamp.modified_ns == modified_ns
    {
        return Ok((stamp.crc32, stamp.len));
    }
    let crc32 = crc32fast::hash(&std::fs::read(path).map_err(read_err)?);
    if let Some(modified_ns) = modified_ns {
        let stamp = FileStamp { path: full, len: meta.len(), modified_ns, crc32 };
        // A cache that cannot be written only costs the next search a re-read.
        let _ = std::fs::create_dir_all(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| Ok(serde_json::to_vec(&stamp)?))
            .and_then(|bytes| uae_data::atomic::write_atomically(&dir, &key, &bytes));
    }
    Ok((crc32, meta.len()))
}

/// Whether a text is a query or a passage; they may get different prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextRole {
    /// A search query.
    Query,
    /// A passage of the corpus.
    Passage,
}

/// Choices a user may override when loading a bi-encoder.
#[derive(Debug, Clone, Default)]
pub struct EncoderOptions {
    /// Truncate inputs to this many tokens instead of the model's maximum.
    pub max_length: Option<usize>,
    /// Replace the model's query prefix.
    pub query_prefix: Option<String>,
    /// Replace the model's passage prefix.
    pub passage_prefix: Option<String>,
}

/// The trainable part of a bi-encoder: BERT plus pooling and normalisation.
#[derive(Module, Debug)]
pub struct SentenceEmbedder {
    /// The BERT encoder.
    pub bert: BertModel,
    /// How token vectors are pooled.
    #[module(skip)]
    pub pooling: Pooling,
    /// Whether sentence vectors are L2-normalised.
    pub normalize: bool,
}

impl SentenceEmbedder {
    /// Sentence embeddings `[batch, hidden]` for a padded batch.
    pub fn forward(&self, batch: &TokenBatch) -> Tensor<2> {
        let hidden = self.bert.forward(batch);
        let pooled = pool(hidden, batch.attention_mask.clone(), self.pooling);
        if self.normalize { l2_normalize(pooled) } else { pooled }
    }
}

/// Embeddings in input order, with the number of inputs that were cut.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// One vector per input text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// How many inputs were longer than the maximum length and truncated.
    pub truncated: usize,
}

/// The error of [`BiEncoder::embed`] when a text's embedding holds a NaN or
/// infinite value (the model's activations overflow): no vector is returned
/// rather than one that would poison every similarity it enters. Callers
/// may downcast to it to name the input by their own id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonFiniteEmbedding {
    /// The text's position in the `texts` given to [`BiEncoder::embed`].
    pub index: usize,
}

impl std::fmt::Display for NonFiniteEmbedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the embedding of text {} (counting from 0) holds NaN or infinite values: the model's activations overflow",
            self.index
        )
    }
}

impl std::error::Error for NonFiniteEmbedding {}

/// The folder of a model directory that holds a separate passage encoder.
///
/// A query-side fine-tune (`uae train --query-only`) exports the trained
/// query encoder at the root and the frozen encoder it started from here, as
/// a complete sentence-transformers model, so that passages keep the base
/// model's vectors and a corpus index the base built stays valid. The two
/// share the root's tokenizer, `config.json`, pooling and prefixes; only the
/// weights differ.
pub const PASSAGE_DIR: &str = "passage";

/// A loaded bi-encoder, ready to embed texts on one device.
pub struct BiEncoder {
    /// The modules that embed queries, and passages too unless
    /// [`BiEncoder::passage_embedder`] is set.
    pub embedder: SentenceEmbedder,
    /// A separate passage encoder, from [`PASSAGE_DIR`], when the model has one.
    pub passage_embedder: Option<SentenceEmbedder>,
    /// The tokenizer, with batch padding and the model's truncation.
    pub tokenizer: TextTokenizer,
    /// The BERT configuration.
    pub config: BertConfig,
    /// Pooling, normalisation and prefixes.
    pub sentence: SentenceConfig,
    /// Where the model came from.
    pub dir: ModelDir,
    /// The passage encoder's directory ([`PASSAGE_DIR`]), when there is one.
    passage_dir: Option<ModelDir>,
    device: Device,
}

impl BiEncoder {
    /// Loads a bi-encoder from a local directory or hub id (see
    /// [`ModelDir::resolve`]) onto `device`.
    pub fn load(spec: &str, device: &Device, options: &EncoderOptions) -> Result<Self> {
        let dir = ModelDir::resolve(spec)?;
        let config = BertConfig::from_file(&dir.file("config.json"))?;
        let mut sentence = SentenceConfig::load(&dir)?;
        if let Some(prefix) = &options.query_prefix {
            sentence.query_prefix = prefix.clone();
        }
        if let Some(prefix) = &options.passage_prefix {
            sentence.passage_prefix = prefix.clone();
        }
        let max_length = match options.max_length {
            Some(n) if n > config.max_position_embeddings => bail!(
                "--max-length {n} exceeds the model's {} positions (max_position_embeddings in {})",
                config.max_position_embeddings,
                dir.file("config.json").display()
            ),
            Some(n) => n,
            None => sentence.max_seq_length.unwrap_or(config.max_position_embeddings).min(config.max_position_embeddings),
        };
        let tokenizer = TextTokenizer::from_file(&dir.file("tokenizer.json"), max_length)?;
        let bert = BertModel::load(&config, &dir.file("model.safetensors"), device)?;
        let embedder = SentenceEmbedder { bert, pooling: sentence.pooling, normalize: sentence.normalize };
        let passage_dir = Self::find_passage_dir(&dir);
        let passage_embedder = match &passage_dir {
            Some(passage) => {
                let same_config = std::fs::read(passage.file("config.json")).ok() == std::fs::read(dir.file("config.json")).ok();
                if !same_config || SentenceConfig::load(&passage)?.pooling != sentence.pooling {
                    bail!(
                        "{}: the passage encoder must have the same config.json and pooling as the query encoder in {}",
                        passage.root().display(),
                        dir.root().display()
                    );
                }
                let bert = BertModel::load(&config, &passage.file("model.safetensors"), device)?;
                Some(SentenceEmbedder { bert, pooling: sentence.pooling, normalize: sentence.normalize })
            }
            None => None,
        };
        Ok(Self { embedder, passage_embedder, tokenizer, config, sentence, dir, passage_dir, device: device.clone() })
    }

    /// The separate passage encoder's directory ([`PASSAGE_DIR`]), if the
    /// model has one.
    fn find_passage_dir(dir: &ModelDir) -> Option<ModelDir> {
        let path = dir.file(PASSAGE_DIR);
        path.join("model.safetensors").is_file().then(|| ModelDir::local(&path).ok()).flatten()
    }

    /// The modules that embed texts of `role`.
    pub fn embedder_for(&self, role: TextRole) -> &SentenceEmbedder {
        match (role, &self.passage_embedder) {
            (TextRole::Passage, Some(passage)) => passage,
            _ => &self.embedder,
        }
    }

    /// The maximum number of tokens per input.
    pub fn max_length(&self) -> usize {
        self.tokenizer.max_length()
    }

    /// The embedding width.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// A fingerprint of everything that decides the passage embeddings: the
    /// weights that embed passages (the [`PASSAGE_DIR`] encoder's when there
    /// is one), `config.json`, pooling, normalisation, prefixes and maximum
    /// length. Indexes store it so that queries are never searched against
    /// passages another model embedded; a query-side fine-tune has the
    /// fingerprint of the base it started from, whose index it searches.
    ///
    /// The weights' checksum is kept in uae's cache (`fingerprints/`), keyed
    /// by the file's path, size and modification time, so a search does not
    /// read the whole weights file again; any change of the file recomputes it.
    pub fn fingerprint(&self) -> Result<String> {
        let mut hasher = crc32fast::Hasher::new();
        let side = self.passage_dir.as_ref().unwrap_or(&self.dir);
        let config = side.file("config.json");
        let bytes = std::fs::read(&config).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", config.display()))?;
        hasher.update(&bytes);
        // The same value as hashing the weights' bytes after the config's.
        let (crc, len) = file_crc32(&side.file("model.safetensors"))?;
        hasher.combine(&crc32fast::Hasher::new_with_initial_len(crc, len));
        hasher.update(format!("{:?}|{}", self.sentence, self.max_length()).as_bytes());
        Ok(format!("crc32:{:08x}", hasher.finalize()))
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The text as the model sees it, with the role's prefix.
    pub fn with_prefix(&self, text: &str, role: TextRole) -> String {
        let prefix = match role {
            TextRole::Query => &self.sentence.query_prefix,
            TextRole::Passage => &self.sentence.passage_prefix,
        };
        format!("{prefix}{text}")
    }

    /// Embeds `texts` in batches of at most `batch_tokens` padded tokens,
    /// longest first, and returns the vectors in input order. `progress` is
    /// called with the number of texts finished after each batch. A vector
    /// with a NaN or infinite value is a [`NonFiniteEmbedding`] error.
    pub fn embed(
        &self,
        texts: &[String],
        role: TextRole,
        batch_tokens: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Embeddings> {
        let prefixed: Vec<String> = texts.iter().map(|t| self.with_prefix(t, role)).collect();
        let encoded = self.tokenizer.encode(&prefixed)?;
        let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
        let mut vectors = vec![Vec::new(); texts.len()];
        let pad_id = self.config.pad_token_id as u32;
        for batch in token_budget_batches(&lengths, batch_tokens) {
            let ids: Vec<&[u32]> = batch.iter().map(|&i| encoded[i].ids.as_slice()).collect();
            let types: Vec<&[u32]> = batch.iter().map(|&i| encoded[i].type_ids.as_slice()).collect();
            let tokens = TokenBatch::pad(&ids, &types, pad_id, &self.device);
            let flat = crate::pool::on_worker(|| self.embedder_for(role).forward(&tokens).into_data().try_into_vec_as::<f32>())
                .map_err(|e| anyhow::anyhow!("cannot read embeddings back from the device: {e:?}"))?;
            let dim = self.dim();
            for (row, &i) in batch.iter().enumerate() {
                let vector = &flat[row * dim..(row + 1) * dim];
                if !vector.iter().all(|x| x.is_finite()) {
                    return Err(NonFiniteEmbedding { index: i }.into());
                }
                vectors[i] = vector.to_vec();
            }
            progress(batch.len());
        }
        let truncated = encoded.iter().filter(|e| e.truncated).count();
        Ok(Embeddings { vectors, truncated })
    }
}
