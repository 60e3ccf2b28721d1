//! Approximate nearest-neighbour search with an HNSW graph (Malkov and
//! Yashunin), built with the `hnsw_rs` crate and searched here over the
//! store's own vectors.
//!
//! # Why the graph is kept apart from `hnsw_rs`
//!
//! `hnsw_rs` builds the graph (parallel insertion) and is then dropped: its
//! points own a copy of every vector, and its `file_dump` writes a second copy
//! of them next to `vectors.f32`. Instead the links are copied out into a
//! compact adjacency table, saved as `hnsw.graph` ([`file`]), and searched
//! against the memory-mapped `vectors.f32` of the
//! [`VectorStore`](crate::store::VectorStore); nothing is duplicated on disk
//! or in memory, and a damaged file is an error rather than a panic in the
//! reader of `hnsw_rs`. A saved graph cannot take new points: adding to an
//! index rebuilds its graph.
//!
//! # efSearch
//!
//! By default efSearch is not a fixed number but calibrated when the graph is
//! built ([`calibrate`]): the smallest value whose recall@10 against exact
//! search, on rows held out of the graph, reaches [`HnswParams::target_recall`].
//! Easy data (real text embeddings) gets a small efSearch and fast search;
//! hard data (uniform random vectors in hundreds of dimensions) gets the large
//! one it needs, and the calibration says what fraction of the index each
//! query then scores.
//!
//! Distances during construction are `1 - dot` clamped at zero: the vectors
//! are L2-normalised, so this is the cosine distance. (`anndists`' `DistDot`
//! asserts `dot <= 1`, which rounding breaks for duplicate documents.)

pub mod calibrate;
pub mod file;

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use anyhow::{Result, ensure};
use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::hnsw::Hnsw;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dot::dot;
use crate::exact::{Hit, rank_order};
pub use calibrate::Calibration;

/// Construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per point on the upper layers (`max_nb_connection`; the base
    /// layer keeps twice as many). 2 to 255.
    pub m: usize,
    /// Candidate list length while inserting.
    pub ef_construction: usize,
    /// Candidate list length while searching for up to 10 hits; for
    /// `k > 10` hits `ef_search * k / 10` is used. With a target recall it is
    /// the smallest value calibration tries, and then the value it chose.
    pub ef_search: usize,
    /// Choose efSearch at build time so that recall@10 reaches this (see
    /// [`calibrate`]); `None` keeps `ef_search` as given.
    #[serde(default)]
    pub target_recall: Option<f64>,
}

impl Default for HnswParams {
    /// M 16, efConstruction 200, efSearch calibrated from 32 up to recall@10
    /// 0.95. (On 100k random 384-d vectors that takes efSearch ~4000; on
    /// MiniLM embeddings of the Python FAQ calibration alone stops at 11,
    /// where the FAQ's questions reach only 0.945, while 32 gives them 0.995:
    /// hence the floor. See BENCHMARKS.md.)
    fn default() -> Self {
        Self { m: 16, ef_construction: 200, ef_search: 32, target_recall: Some(0.95) }
    }
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
    calibration: Option<Calibration>,
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

impl HnswIndex {
    /// Builds the graph over `vectors` (row-major `count x dim`, normalised),
    /// inserting in parallel, and calibrates efSearch when `params` has a
    /// target recall.
    pub fn build(vectors: &[f32], dim: usize, params: HnswParams) -> Result<Self> {
        ensure!(dim > 0 && vectors.len() % dim == 0, "{} floats do not make rows of {dim}", vectors.len());
        ensure!((2..=255).contains(&params.m), "HNSW m must be between 2 and 255, not {}", params.m);
        ensure!(params.ef_construction > 0 && params.ef_search > 0, "HNSW ef values must be positive");
        if let Some(target) = params.target_recall {
            ensure!(target > 0.0 && target <= 1.0, "the HNSW target recall must be in (0, 1], not {target}");
        }
        let count = vectors.len() / dim;
        ensure!(count < u32::MAX as usize, "{count} vectors are too many for an HNSW graph");
        let mut index = Self { params, calibration: None, count, dim, entry: 0, layers: Vec::new() };
        if count == 0 {
            return Ok(index);
        }
        let max_layer = ((count as f64).ln() as usize).clamp(1, 16);
        let hnsw = Hnsw::<f32, UnitDot>::new(params.m, count, max_layer, params.ef_construction, UnitDot);
        let rows: Vec<(&[f32], usize)> = vectors.chunks_exact(dim).enumerate().map(|(r, v)| (v, r)).collect();
        let held_out = params.target_recall.map_or_else(Vec::new, |_| calibrate::held_out_rows(count));
        if held_out.is_empty() {
            hnsw.parallel_insert_slice(&rows);
        } else {
            let (queries, rest): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, r)| held_out.binary_search(r).is_ok());
            hnsw.parallel_insert_slice(&rest);
            (index.entry, index.layers) = copy_links(&hnsw, count);
            let target = params.target_recall.expect("held-out rows only with a target");
            let calibration = calibrate::calibrate(&index, vectors, &held_out, target);
            index.params.ef_search = calibration.ef_search;
            index.calibration = Some(calibration);
            hnsw.parallel_insert_slice(&queries);
        }
        (index.entry, index.layers) = copy_links(&hnsw, count);
        Ok(index)
    }

    /// The parameters.
    pub fn params(&self) -> &HnswParams {
        &self.params
    }

    /// How efSearch was calibrated, when it was.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
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
        queries
            .par_chunks(self.dim)
            .map(|q| {
                if k == 0 {
                    return Vec::new();
                }
                let mut hits = self.candidates(vectors, q, self.ef_for(k)).0;
                hits.sort_by(|a, b| rank_order(*a, *b, ids));
                hits.truncate(k);
                hits
            })
            .collect()
    }

    /// The candidate list length for `k` hits: efSearch up to k = 10, then
    /// growing in proportion to k so that recall@k holds up.
    fn ef_for(&self, k: usize) -> usize {
        (self.params.ef_search * k.max(10) / 10).max(k)
    }

    /// The `ef` best rows the graph walk finds for `query`, unordered, and
    /// how many rows it scored.
    fn candidates(&self, vectors: &[f32], query: &[f32], ef: usize) -> (Vec<Hit>, usize) {
        if self.count == 0 {
            return (Vec::new(), 0);
        }
        let row = |r: usize| &vectors[r * self.dim..(r + 1) * self.dim];
        let score = |r: usize| dot(query, row(r));
        let mut best = Hit { row: self.entry, score: score(self.entry) };
        for layer in self.layers[1..].iter().rev() {
            best = greedy(layer, best, &score);
        }
        beam(&self.layers[0], best, ef, self.count, &score, &|r| prefetch(row(r)))
    }
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

/// Asks the CPU to start loading `row` into its caches.
fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(16) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint; the address is valid anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
}

/// Best-first search of the base layer from `start`, keeping the `ef` best
/// hits found; returns them and the number of rows scored. The unvisited
/// neighbours of a node are gathered and `prefetch`ed before any is scored,
/// so their vectors load while the first ones are compared.
fn beam(
    layer: &Layer,
    start: Hit,
    ef: usize,
    count: usize,
    score: &impl Fn(usize) -> f32,
    prefetch: &impl Fn(usize),
) -> (Vec<Hit>, usize) {
    let mut visited = vec![0u64; count.div_ceil(64)];
    visited[start.row / 64] |= 1 << (start.row % 64);
    let mut scored = 1;
    let mut fresh = Vec::new();
    let mut candidates = BinaryHeap::from([ByScore(start)]);
    let mut found = BinaryHeap::from([std::cmp::Reverse(ByScore(start))]);
    while let Some(ByScore(current)) = candidates.pop() {
        let worst = found.peek().expect("found holds the start").0.0.score;
        if found.len() >= ef && current.score < worst {
            break;
        }
        fresh.clear();
        for &n in layer.links(current.row) {
            let n = n as usize;
            if visited[n / 64] & (1 << (n % 64)) == 0 {
                visited[n / 64] |= 1 << (n % 64);
                prefetch(n);
                fresh.push(n);
            }
        }
        scored += fresh.len();
        for &n in &fresh {
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
    (found.into_iter().map(|h| h.0.0).collect(), scored)
}
