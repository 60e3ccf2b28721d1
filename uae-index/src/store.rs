//! The on-disk vector index: a directory of three plain files.
//!
//! - `header.json`: format version, dimension, count, the embedding model's
//!   name and fingerprint, and CRC-32 checksums of the two data files.
//! - `vectors.f32`: `count x dim` little-endian f32, row-major, L2-normalised
//!   (scores are cosine similarities), loaded memory-mapped.
//! - `ids.jsonl`: one JSON string per line, the document id of each row.
//!
//! Files are written to temporary names and renamed into place, the header
//! last, so a reader sees either the old index or the new one; a mismatch
//! between the header and the data (a torn or corrupted file) is detected by
//! size and checksum and reported with the file's name.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use uae_data::atomic::{publish, stage};

/// The index format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The header's file name; a folder holding one is an index.
pub const HEADER: &str = "header.json";
const VECTORS: &str = "vectors.f32";
const IDS: &str = "ids.jsonl";

/// Which embedding model made the vectors; an index only answers queries
/// embedded by the same model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStamp {
    /// A readable name (the model directory or hub id).
    pub name: String,
    /// A fingerprint of the weights, configuration and pooling.
    pub fingerprint: String,
}

/// What a shard index (`uae index build --shard i/n`) holds: the passages
/// at positions `i mod n` of a corpus, which `uae index merge` puts back in
/// corpus order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardOf {
    /// The shard, `i/n`.
    pub shard: String,
    /// Passages in the whole corpus.
    pub corpus_count: usize,
    /// Fingerprint of the corpus file ([`uae_data::fingerprint`]).
    pub corpus: String,
}

/// The contents of `header.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// Vector width.
    pub dim: usize,
    /// Number of vectors.
    pub count: usize,
    /// The model that made the vectors.
    pub model: ModelStamp,
    /// CRC-32 of `vectors.f32`.
    pub vectors_crc32: u32,
    /// CRC-32 of `ids.jsonl`.
    pub ids_crc32: u32,
    /// Set on a shard of a corpus, absent on a whole index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardOf>,
}

/// An index opened for search: the header, the ids and the memory-mapped
/// vectors.
pub struct VectorStore {
    dir: PathBuf,
    header: Header,
    ids: Vec<String>,
    vectors: Option<Mmap>,
}

/// Divides `v` by its L2 norm (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Vectors normalised to unit length ([`normalize`]), flattened row after
/// row, as exact search and the stores take them.
pub fn unit_rows(vectors: Vec<Vec<f32>>) -> Vec<f32> {
    vectors
        .into_iter()
        .flat_map(|mut v| {
            normalize(&mut v);
            v
        })
        .collect()
}

impl VectorStore {
    /// Writes a new index to `dir` (created if needed, replacing any index
    /// there). Vectors are L2-normalised on the way in.
    pub fn create(dir: &Path, model: ModelStamp, dim: usize, ids: &[String], vectors: &[Vec<f32>]) -> Result<()> {
        write_files(dir, model, dim, ids, &[], vectors, None)
    }

    /// Writes a shard index ([`ShardOf`]) to `dir`, as [`Self::create`].
    pub fn create_shard(dir: &Path, model: ModelStamp, dim: usize, ids: &[String], vectors: &[Vec<f32>], shard: ShardOf) -> Result<()> {
        write_files(dir, model, dim, ids, &[], vectors, Some(shard))
    }

    /// Writes a whole index from `rows` that are unit length already (rows
    /// of other indexes), copied as they are.
    pub fn create_from_rows(dir: &Path, model: ModelStamp, dim: usize, ids: &[String], rows: &[f32]) -> Result<()> {
        write_files(dir, model, dim, ids, rows, &[], None)
    }

    /// Opens the index in `dir`, checking the header, the file sizes and the
    /// checksums.
    pub fn open(dir: &Path) -> Result<Self> {
        let header_path = dir.join(HEADER);
        let text = std::fs::read_to_string(&header_path).with_context(|| {
            format!("cannot read {} (is {} an index built by `uae index build`?)", header_path.display(), dir.display())
        })?;
        let header: Header =
            serde_json::from_str(&text).with_context(|| format!("{} is not a valid index header", header_path.display()))?;
        if header.version != FORMAT_VERSION {
            bail!(
                "{}: index format version {} is not supported by this uae (it reads version {FORMAT_VERSION}); rebuild the index",
                header_path.display(),
                header.version
            );
        }
        let vectors_path = dir.join(VECTORS);
        let file = File::open(&vectors_path).with_context(|| format!("cannot open {}", vectors_path.display()))?;
        let expected = header.count * header.dim * 4;
        let actual = file.metadata()?.len() as usize;
        if actual != expected {
            bail!(
                "{} holds {actual} bytes but the header promises {} vectors of {} floats ({expected} bytes): the index is truncated or corrupted; rebuild it",
                vectors_path.display(),
                header.count,
                header.dim
            );
        }
        // SAFETY: the file is opened read-only and uae never modifies an index
        // in place (updates write new files and rename them).
        let vectors = if expected == 0 { None } else { Some(unsafe { Mmap::map(&file) }?) };
        if let Some(map) = &vectors
            && crc32fast::hash(map) != header.vectors_crc32
        {
            bail!("{}: checksum mismatch, the index is corrupted; rebuild it", vectors_path.display());
        }
        let ids_path = dir.join(IDS);
        let ids_bytes = std::fs::read(&ids_path).with_context(|| format!("cannot read {}", ids_path.display()))?;
        if crc32fast::hash(&ids_bytes) != header.ids_crc32 {
            bail!("{}: checksum mismatch, the index is corrupted; rebuild it", ids_path.display());
        }
        let ids = read_ids(&ids_bytes, &ids_path)?;
        if ids.len() != header.count {
            bail!("{} has {} ids but the header says {}", ids_path.display(), ids.len(), header.count);
        }
        Ok(Self { dir: dir.to_path_buf(), header, ids, vectors })
    }

    /// Checks that queries embedded by `model` with width `dim` can be
    /// searched here.
    pub fn check_model(&self, model: &ModelStamp, dim: usize) -> Result<()> {
        if dim != self.header.dim {
            bail!(
                "the index in {} holds {}-dimensional vectors but the query model {} makes {dim}-dimensional ones",
                self.dir.display(),
                self.header.dim,
                model.name
            );
        }
        if model.fingerprint != self.header.model.fingerprint {
            bail!(
                "the index in {} was built with model {} (fingerprint {}), not with {} (fingerprint {}); search it with the same model or rebuild it",
                self.dir.display(),
                self.header.model.name,
                self.header.model.fingerprint,
                model.name,
                model.fingerprint
            );
        }
        Ok(())
    }

    /// Appends documents, rewriting the index files atomically. An id that
    /// is already present is an error.
    pub fn add(&self, model: &ModelStamp, ids: &[String], vectors: &[Vec<f32>]) -> Result<()> {
        if let Some(shard) = &self.header.shard {
            bail!(
                "{} is shard {} of a corpus; merge the shards (`uae index merge`) and add to the merged index",
                self.dir.display(),
                shard.shard
            );
        }
        self.check_model(model, vectors.first().map_or(self.header.dim, Vec::len))?;
        let all_ids: Vec<String> = self.ids.iter().chain(ids).cloned().collect();
        // The old rows are copied as they are: they are normalised already.
        write_files(&self.dir, self.header.model.clone(), self.header.dim, &all_ids, self.vectors(), vectors, None)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The document ids, one per row.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// All vectors, row-major `count x dim`.
    pub fn vectors(&self) -> &[f32] {
        self.vectors.as_deref().map_or(&[], bytemuck::cast_slice)
    }
}

/// Writes the three files: `ids` name the rows of `old_rows` (flat,
/// normalised) followed by those of `new_rows` (normalised here).
fn write_files(
    dir: &Path,
    model: ModelStamp,
    dim: usize,
    ids: &[String],
    old_rows: &[f32],
    new_rows: &[Vec<f32>],
    shard: Option<ShardOf>,
) -> Result<()> {
    let count = old_rows.len() / dim.max(1) + new_rows.len();
    if ids.len() != count {
        bail!("{} ids for {count} vectors", ids.len());
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(id.as_str()) {
            bail!("document id {id:?} occurs more than once; ids in an index must be unique");
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let mut vectors = Vec::with_capacity(count * dim * 4);
    vectors.extend_from_slice(bytemuck::cast_slice(old_rows));
    for (row, id) in new_rows.iter().zip(&ids[ids.len() - new_rows.len()..]) {
        if row.len() != dim {
            bail!("document {id:?} has a {}-dimensional vector, expected {dim}", row.len());
        }
        let mut row = row.clone();
        normalize(&mut row);
        vectors.extend_from_slice(bytemuck::cast_slice(&row));
    }
    let mut id_lines = Vec::new();
    for id in ids {
        serde_json::to_writer(&mut id_lines, id)?;
        id_lines.push(b'\n');
    }
    let header = Header {
        version: FORMAT_VERSION,
        dim,
        count,
        model,
        vectors_crc32: crc32fast::hash(&vectors),
        ids_crc32: crc32fast::hash(&id_lines),
        shard,
    };
    let header = serde_json::to_string_pretty(&header)?;
    let staged = [stage(dir, VECTORS, &vectors)?, stage(dir, IDS, &id_lines)?, stage(dir, HEADER, header.as_bytes())?];
    publish(dir, staged)
}

fn read_ids(bytes: &[u8], path: &Path) -> Result<Vec<String>> {
    BufReader::new(bytes)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let line = line.with_context(|| format!("{}:{}: not UTF-8", path.display(), i + 1))?;
            serde_json::from_str(&line).with_context(|| format!("{}:{}: not a JSON string", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(fp: &str) -> ModelStamp {
        ModelStamp { name: "m".into(), fingerprint: fp.into() }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i}")).collect()
    }

    #[test]
    fn create_open_add_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        VectorStore::create(dir.path(), stamp("a"), 2, &ids(2), &[vec![3.0, 4.0], vec![0.0, 2.0]]).unwrap();
        let store = VectorStore::open(dir.path()).unwrap();
        assert_eq!(store.ids(), ids(2));
        assert_eq!(store.vectors(), &[0.6, 0.8, 0.0, 1.0]);
        store.add(&stamp("a"), &["x".to_string()], &[vec![-1.0, 0.0]]).unwrap();
        let store = VectorStore::open(dir.path()).unwrap();
        assert_eq!(store.header().count, 3);
        assert_eq!(store.ids()[2], "x");
        assert_eq!(store.vectors(), &[0.6, 0.8, 0.0, 1.0, -1.0, 0.0]);
        let err = store.add(&stamp("a"), &["d1".to_string()], &[vec![1.0, 0.0]]).unwrap_err().to_string();
        assert!(err.contains("\"d1\" occurs more than once"), "{err}");
    }

    #[test]
    fn model_and_dimension_mismatches_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        VectorStore::create(dir.path(), stamp("a"), 2, &ids(1), &[vec![1.0, 0.0]]).unwrap();
        let store = VectorStore::open(dir.path()).unwrap();
        assert!(store.check_model(&stamp("a"), 2).is_ok());
        assert!(store.check_model(&stamp("b"), 2).unwrap_err().to_string().contains("was built with model"));
        assert!(store.check_model(&stamp("a"), 3).unwrap_err().to_string().contains("2-dimensional"));
    }

    #[test]
    fn truncated_and_corrupted_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        VectorStore::create(dir.path(), stamp("a"), 2, &ids(2), &[vec![1.0, 0.0], vec![0.0, 1.0]]).unwrap();
        let vectors = dir.path().join(VECTORS);
        let mut bytes = std::fs::read(&vectors).unwrap();
        bytes[3] ^= 0xff;
        std::fs::write(&vectors, &bytes).unwrap();
        let err = VectorStore::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("vectors.f32: checksum mismatch"), "{err}");
        std::fs::write(&vectors, &bytes[..12]).unwrap();
        let err = VectorStore::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("vectors.f32 holds 12 bytes"), "{err}");
        std::fs::write(dir.path().join(HEADER), "{").unwrap();
        let err = VectorStore::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("header.json is not a valid index header"), "{err}");
        let err = VectorStore::open(&dir.path().join("nope")).err().unwrap().to_string();
        assert!(err.contains("cannot read"), "{err}");
    }
}
