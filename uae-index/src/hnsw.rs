//! Approximate nearest-neighbour search with an HNSW graph (Malkov and
//! Yashunin), built with the `hnsw_rs` crate and searched here over the
//! store's own vectors.
//!
//! # Why the graph is kept apart from `hnsw_rs`
//!
//! `hnsw_rs` builds the graph (parallel insertion) and is then dropped: its
//! points own a copy of every vector, and its `file_dump` writes a second copy
//! of them next to `vectors.f32`. Instead the links are copied out into a
//! compact adjacency table, saved as `hnsw.graph`, and searched against the
//! memory-mapped `vectors.f32` of the [`VectorStore`]; nothing is duplicated on
//! disk or in memory, and a damaged file is an error rather than a panic in
//! the reader of `hnsw_rs`.
//!
//! # Files, next to the store's
//!
//! - `hnsw.graph`: little-endian binary; the magic `UAEHNSW1`, then `count`,
//!   `layers` and the entry row as u64; then per layer (the base layer first)
//!   `count + 1` u64 offsets and the u32 neighbour rows they delimit.
//! - `hnsw.json`: format version, [`HnswParams`], point count, dimension,
//!   the CRC-32 of `hnsw.graph`, and the CRC-32 of the `vectors.f32` the graph
//!   was built from (a graph over other vectors is refused).
//!
//! The graph is written first and the JSON last, each to a temporary name
//! renamed into place, as the store does.
//!
//! Distances during construction are `1 - dot` clamped at zero: the vectors
//! are L2-normalised, so this is the cosine distance. (`anndists`' `DistDot`
//! asserts `dot <= 1`, which rounding breaks for duplicate documents.)

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::hnsw::Hnsw;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::exact::{Hit, rank_order};
use crate::store::VectorStore;

/// The HNSW files this build reads and writes.
pub const HNSW_FORMAT_VERSION: u32 = 1;

const GRAPH: &str = "hnsw.graph";
const META: &str = "hnsw.json";
const MAGIC: &[u8; 8] = b"UAEHNSW1";
const REBUILD: &str = "rebuild with `uae index build --hnsw`";

/// Construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per point on the upper layers (`max_nb_connection`; the base
    /// layer keeps twice as many). 2 to 255.
    pub m: usize,
    /// Candidate list length while inserting.
    pub ef_construction: usize,
    /// Candidate list length while searching (at least `k` is used).
    pub ef_search: usize,
}

impl Default for HnswParams {
    /// M 16, efConstruction 200, efSearch 200. (efSearch 128 reached
    /// recall@10 0.949 on 20k random or clustered 64-dimensional vectors.)
    fn default() -> Self {
        Self { m: 16, ef_construction: 200, ef_search: 200 }
    }
}

/// The contents of `hnsw.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    version: u32,
    params: HnswParams,
    count: usize,
    dim: usize,
    graph_crc32: u32,
    vectors_crc32: u32,
}

/// The links of one layer for every row: row `r`'s neighbours are
/// `neighbours[offsets[r]..offsets[r + 1]]` (empty above the row's level).
#[derive(Debug, Clone, PartialEq)]
struct Layer {
    offsets: Vec<usize>,
    neighbours: Vec<u32>,
}

impl Layer {
    fn links(&self, row: usize) -> &[u32] {
        &self.neighbours[self.offsets[row]..self.offsets[row + 1]]
    }
}

/// An HNSW graph over the rows of a vector store.
#[derive(Debug, Clone, PartialEq)]
pub struct HnswIndex {
    params: HnswParams,
    count: usize,
    dim: usize,
    entry: usize,
    /// Base layer first.
    layers: Vec<Layer>,
}

/// Cosine distance of unit vectors, `1 - dot`, never negative.
#[derive(Default, Clone, Copy)]
struct UnitDot;

impl Distance<f32> for UnitDot {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

/// Inner product with eight independent sums, which the compiler vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for ((s, x), y) in sums.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    sums.iter().sum::<f32>() + tail
}

impl HnswIndex {
    /// Builds the graph over `vectors` (row-major `count x dim`, normalised),
    /// inserting in parallel.
    pub fn build(vectors: &[f32], dim: usize, params: HnswParams) -> Result<Self> {
        ensure!(dim > 0 && vectors.len() % dim == 0, "{} floats do not make rows of {dim}", vectors.len());
        ensure!((2..=255).contains(&params.m), "HNSW m must be between 2 and 255, not {}", params.m);
        ensure!(params.ef_construction > 0 && params.ef_search > 0, "HNSW ef values must be positive");
        let count = vectors.len() / dim;
        ensure!(count < u32::MAX as usize, "{count} vectors are too many for an HNSW graph");
        if count == 0 {
            return Ok(Self { params, count, dim, entry: 0, layers: Vec::new() });
        }
        let max_layer = ((count as f64).ln() as usize).clamp(1, 16);
        let hnsw = Hnsw::<f32, UnitDot>::new(params.m, count, max_layer, params.ef_construction, UnitDot);
        let rows: Vec<(&[f32], usize)> = vectors.chunks_exact(dim).enumerate().map(|(r, v)| (v, r)).collect();
        hnsw.parallel_insert_slice(&rows);
        let (entry, layers) = copy_links(&hnsw, count);
        Ok(Self { params, count, dim, entry, layers })
    }

    /// The parameters.
    pub fn params(&self) -> &HnswParams {
        &self.params
    }

    /// Changes the search candidate list length (saved with the graph).
    pub fn set_ef_search(&mut self, ef_search: usize) {
        self.params.ef_search = ef_search.max(1);
    }

    /// Number of points in the graph.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Searches `queries` (row-major `n x dim`, normalised) in parallel and
    /// returns up to `k` hits per query in [`rank_order`]. `vectors` and `ids`
    /// are those the graph was built from; scores are exact cosines.
    pub fn search(&self, vectors: &[f32], ids: &[String], queries: &[f32], k: usize) -> Vec<Vec<Hit>> {
        assert_eq!(vectors.len(), self.count * self.dim, "vectors do not match the HNSW graph");
        assert_eq!(ids.len(), self.count, "ids do not match the HNSW graph");
        queries.par_chunks(self.dim).map(|q| self.search_one(vectors, ids, q, k)).collect()
    }

    fn search_one(&self, vectors: &[f32], ids: &[String], query: &[f32], k: usize) -> Vec<Hit> {
        if k == 0 || self.count == 0 {
            return Vec::new();
        }
        let score = |row: usize| dot(query, &vectors[row * self.dim..(row + 1) * self.dim]);
        let mut best = Hit { row: self.entry, score: score(self.entry) };
        for layer in self.layers[1..].iter().rev() {
            best = greedy(layer, best, &score);
        }
        let mut hits = beam(&self.layers[0], best, self.params.ef_search.max(k), self.count, &score);
        hits.sort_by(|a, b| rank_order(*a, *b, ids));
        hits.truncate(k);
        hits
    }

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
            count: self.count,
            dim: self.dim,
            graph_crc32: crc32fast::hash(&graph),
            vectors_crc32: header.vectors_crc32,
        };
        write_atomically(dir, GRAPH, &graph)?;
        write_atomically(dir, META, serde_json::to_string_pretty(&meta)?.as_bytes())
    }

    /// Loads the graph saved in the index directory `dir` of `store`.
    pub fn load(dir: &Path, store: &VectorStore) -> Result<Self> {
        let meta_path = dir.join(META);
        let text = std::fs::read_to_string(&meta_path)
            .with_context(|| format!("cannot read {}: the index has no HNSW graph; {REBUILD}", meta_path.display()))?;
        let meta: Meta = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid HNSW header; {REBUILD}", meta_path.display()))?;
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
        Ok(Self { params: meta.params, count, dim: meta.dim, entry, layers })
    }
}

/// Checks that a graph described by `meta` belongs to `store`.
fn check_meta(meta: &Meta, meta_path: &Path, store: &VectorStore) -> Result<()> {
    let header = store.header();
    if meta.version != HNSW_FORMAT_VERSION {
        bail!("{}: HNSW format version {} is not supported; {REBUILD}", meta_path.display(), meta.version);
    }
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

/// Copies the links out of `hnsw`: the entry row (the lowest row on the top
/// layer) and one adjacency table per layer.
fn copy_links(hnsw: &Hnsw<f32, UnitDot>, count: usize) -> (usize, Vec<Layer>) {
    let n_layers = hnsw.get_max_level_observed() as usize + 1;
    let mut links: Vec<Vec<Vec<u32>>> = vec![vec![Vec::new(); count]; n_layers];
    let mut entry = usize::MAX;
    for point in hnsw.get_point_indexation() {
        let row = point.get_origin_id();
        if point.get_point_id().0 as usize == n_layers - 1 {
            entry = entry.min(row);
        }
        for (layer, neighbours) in point.get_neighborhood_id().into_iter().take(n_layers).enumerate() {
            links[layer][row] = neighbours.iter().map(|n| n.d_id as u32).collect();
        }
    }
    let layers = links
        .into_iter()
        .map(|rows| {
            let mut offsets = Vec::with_capacity(count + 1);
            offsets.push(0);
            rows.iter().for_each(|r| offsets.push(offsets.last().unwrap() + r.len()));
            Layer { offsets, neighbours: rows.concat() }
        })
        .collect();
    (entry, layers)
}

/// Walks `layer` from `start` to a local maximum of the score.
fn greedy(layer: &Layer, start: Hit, score: &impl Fn(usize) -> f32) -> Hit {
    let mut best = start;
    loop {
        let current = best.row;
        for &n in layer.links(current) {
            let s = score(n as usize);
            if s > best.score {
                best = Hit { row: n as usize, score: s };
            }
        }
        if best.row == current {
            return best;
        }
    }
}

/// A hit ordered by score alone, for the search heaps.
#[derive(Clone, Copy)]
struct ByScore(Hit);

impl Ord for ByScore {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.score.total_cmp(&other.0.score)
    }
}
impl PartialOrd for ByScore {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for ByScore {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ByScore {}

/// Best-first search of the base layer from `start`, keeping the `ef` best
/// hits found.
fn beam(layer: &Layer, start: Hit, ef: usize, count: usize, score: &impl Fn(usize) -> f32) -> Vec<Hit> {
    let mut visited = vec![0u64; count.div_ceil(64)];
    visited[start.row / 64] |= 1 << (start.row % 64);
    let mut candidates = BinaryHeap::from([ByScore(start)]);
    let mut found = BinaryHeap::from([std::cmp::Reverse(ByScore(start))]);
    while let Some(ByScore(current)) = candidates.pop() {
        let worst = found.peek().expect("found holds the start").0.0.score;
        if found.len() >= ef && current.score < worst {
            break;
        }
        for &n in layer.links(current.row) {
            let n = n as usize;
            if visited[n / 64] & (1 << (n % 64)) != 0 {
                continue;
            }
            visited[n / 64] |= 1 << (n % 64);
            let hit = Hit { row: n, score: score(n) };
            if found.len() < ef || hit.score > found.peek().expect("found is not empty").0.0.score {
                candidates.push(ByScore(hit));
                found.push(std::cmp::Reverse(ByScore(hit)));
                if found.len() > ef {
                    found.pop();
                }
            }
        }
    }
    found.into_iter().map(|h| h.0.0).collect()
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

/// Writes `bytes` to `dir/name` through a synced temporary file.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let (tmp, name) = crate::store::stage(dir, name, bytes)?;
    let target = dir.join(name);
    tmp.persist(&target).with_context(|| format!("cannot write {}", target.display()))?;
    Ok(())
}
