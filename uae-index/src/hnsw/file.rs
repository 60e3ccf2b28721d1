//! The HNSW graph on disk, next to the store's files:
//!
//! - `hnsw.graph`: little-endian binary; the magic `UAEHNSW1`, then `count`,
//!   `layers` and the entry row as u64; then per layer (the base layer first)
//!   `count + 1` u64 offsets and the u32 neighbour rows they delimit.
//! - `hnsw.json`: format version, [`HnswParams`], the [`Calibration`] if
//!   efSearch was calibrated, point count, dimension, the CRC-32 of
//!   `hnsw.graph`, and the CRC-32 of the `vectors.f32` the graph was built
//!   from (a graph over other vectors is refused).
//!
//! The graph is written first and the JSON last, each to a temporary name
//! renamed into place, as the store does; removal deletes the JSON first.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::{Calibration, HnswIndex, HnswParams, Layer};
use crate::store::VectorStore;

/// The HNSW files this build reads and writes.
pub const HNSW_FORMAT_VERSION: u32 = 1;

const GRAPH: &str = "hnsw.graph";
const META: &str = "hnsw.json";
const MAGIC: &[u8; 8] = b"UAEHNSW1";
const REBUILD: &str = "rebuild it with `uae index hnsw` or search with `--exact`";

/// The contents of `hnsw.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    version: u32,
    params: HnswParams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calibration: Option<Calibration>,
    count: usize,
    dim: usize,
    graph_crc32: u32,
    vectors_crc32: u32,
}

impl HnswIndex {
    /// Writes `hnsw.graph` and `hnsw.json` into the index directory `dir` of
    /// `store`, which must hold the vectors the graph was built from.
    pub fn save(&self, dir: &Path, store: &VectorStore) -> Result<()> {
        let header = store.header();
        ensure!(
            header.count == self.count && header.dim == self.dim,
            "the HNSW graph has {} points of {} floats but the index in {} has {} of {}",
            self.count,
            self.dim,
            dir.display(),
            header.count,
            header.dim
        );
        let graph = self.encode();
        let meta = Meta {
            version: HNSW_FORMAT_VERSION,
            params: self.params,
            calibration: self.calibration,
            count: self.count,
            dim: self.dim,
            graph_crc32: crc32fast::hash(&graph),
            vectors_crc32: header.vectors_crc32,
        };
        uae_data::atomic::write_atomically(dir, GRAPH, &graph)?;
        uae_data::atomic::write_atomically(dir, META, serde_json::to_string_pretty(&meta)?.as_bytes())
    }

    /// Whether the index directory `dir` has a graph (its `hnsw.json`).
    pub fn exists(dir: &Path) -> bool {
        dir.join(META).is_file()
    }

    /// The parameters to rebuild the graph saved in `dir` with, whether or
    /// not it still matches the vectors there: those it was built with, and
    /// when its efSearch was calibrated the default starting efSearch, so
    /// that a rebuild calibrates afresh. `None` when there is no graph.
    pub fn saved_params(dir: &Path) -> Result<Option<HnswParams>> {
        if !Self::exists(dir) {
            return Ok(None);
        }
        let (meta, _) = read_meta(dir)?;
        let mut params = meta.params;
        if params.target_recall.is_some() {
            params.ef_search = HnswParams::default().ef_search;
        }
        Ok(Some(params))
    }

    /// Deletes the graph files of `dir`, if any.
    pub fn remove(dir: &Path) -> Result<()> {
        // The header goes first: without it the graph is ignored.
        for name in [META, GRAPH] {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("cannot remove {}", path.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Loads the graph saved in the index directory `dir` of `store`.
    pub fn load(dir: &Path, store: &VectorStore) -> Result<Self> {
        let (meta, meta_path) = read_meta(dir)?;
        check_meta(&meta, &meta_path, store)?;
        let graph_path = dir.join(GRAPH);
        let bytes =
            std::fs::read(&graph_path).with_context(|| format!("cannot read {}; {REBUILD}", graph_path.display()))?;
        if crc32fast::hash(&bytes) != meta.graph_crc32 {
            bail!("{}: checksum mismatch, the HNSW graph is corrupted; {REBUILD}", graph_path.display());
        }
        Self::decode(&bytes, meta).with_context(|| format!("{}: malformed HNSW graph; {REBUILD}", graph_path.display()))
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for n in [self.count, self.layers.len(), self.entry] {
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
        for layer in &self.layers {
            layer.offsets.iter().for_each(|&o| out.extend_from_slice(&(o as u64).to_le_bytes()));
            layer.neighbours.iter().for_each(|&n| out.extend_from_slice(&n.to_le_bytes()));
        }
        out
    }

    fn decode(bytes: &[u8], meta: Meta) -> Result<Self> {
        let mut input = Reader(bytes);
        ensure!(input.take(MAGIC.len())? == MAGIC, "bad magic");
        let (count, n_layers, entry) = (input.u64()?, input.u64()?, input.u64()?);
        ensure!(count == meta.count, "{count} points but {META} says {}", meta.count);
        ensure!(n_layers <= 16 && (n_layers > 0) == (count > 0), "{n_layers} layers for {count} points");
        ensure!(entry < count.max(1), "entry row {entry} out of range");
        let layers = (0..n_layers).map(|_| input.layer(count)).collect::<Result<_>>()?;
        ensure!(input.0.is_empty(), "{} trailing bytes", input.0.len());
        Ok(Self { params: meta.params, calibration: meta.calibration, count, dim: meta.dim, entry, layers })
    }
}

/// Reads and parses `hnsw.json` of `dir`; returns it with its path.
fn read_meta(dir: &Path) -> Result<(Meta, PathBuf)> {
    let meta_path = dir.join(META);
    let text = std::fs::read_to_string(&meta_path)
        .with_context(|| format!("cannot read {}: the index has no HNSW graph; {REBUILD}", meta_path.display()))?;
    let meta: Meta = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid HNSW header; {REBUILD}", meta_path.display()))?;
    if meta.version != HNSW_FORMAT_VERSION {
        bail!("{}: HNSW format version {} is not supported; {REBUILD}", meta_path.display(), meta.version);
    }
    Ok((meta, meta_path))
}

/// Checks that a graph described by `meta` belongs to `store`.
fn check_meta(meta: &Meta, meta_path: &Path, store: &VectorStore) -> Result<()> {
    let header = store.header();
    if meta.count != header.count || meta.dim != header.dim {
        bail!(
            "{}: the HNSW graph holds {} points of dimension {} but the index holds {} of dimension {}; {REBUILD}",
            meta_path.display(),
            meta.count,
            meta.dim,
            header.count,
            header.dim
        );
    }
    if meta.vectors_crc32 != header.vectors_crc32 {
        bail!("{}: the HNSW graph was built from other vectors than the index holds; {REBUILD}", meta_path.display());
    }
    Ok(())
}

/// A cursor over the bytes of `hnsw.graph`.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        ensure!(self.0.len() >= n, "truncated");
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u64(&mut self) -> Result<usize> {
        let n = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        usize::try_from(n).context("value out of range")
    }

    /// Reads one layer's table and checks its offsets and rows.
    fn layer(&mut self, count: usize) -> Result<Layer> {
        let offsets = (0..=count).map(|_| self.u64()).collect::<Result<Vec<_>>>()?;
        ensure!(offsets[0] == 0 && offsets.is_sorted(), "offsets out of order");
        let len = offsets[count];
        ensure!(len <= self.0.len() / 4, "truncated");
        let neighbours: Vec<u32> =
            self.take(len * 4)?.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        ensure!(neighbours.iter().all(|&n| (n as usize) < count), "neighbour row out of range");
        Ok(Layer { offsets, neighbours })
    }
}

