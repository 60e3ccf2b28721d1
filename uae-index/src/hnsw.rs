//! Approximate nearest-neighbour search with an HNSW graph (Malkov and
//! Yashunin), built here (`hnsw/build.rs`) and searched over the store's own
//! vectors.
//!
//! The graph is a compact adjacency table per layer, saved as `hnsw.graph`
//! ([`file`]) and searched against the memory-mapped `vectors.f32` of the
//! [`VectorStore`](crate::store::VectorStore): no vector is copied into the
//! graph, on disk or in memory. New rows are inserted into a saved graph
//! ([`HnswIndex::insert`]), which is how `uae index add` grows one.
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
//! Scores are inner products of L2-normalised vectors (cosines), higher
//! nearer, in construction as in search.

mod build;
pub mod calibrate;
pub mod file;

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use anyhow::{Result, ensure};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dot::{dot, dot4};
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

impl HnswIndex {
    /// Builds the graph over `vectors` (row-major `count x dim`, normalised),
    /// inserting in parallel, and calibrates efSearch when `params` has a
    /// target recall.
    pub fn build(vectors: &[f32], dim: usize, params: HnswParams) -> Result<Self> {
        ensure!(dim > 0 && vectors.len().is_multiple_of(dim), "{} floats do not make rows of {dim}", vectors.len());
        ensure!((2..=255).contains(&params.m), "HNSW m must be between 2 and 255, not {}", params.m);
        ensure!(params.ef_construction > 0 && params.ef_search > 0, "HNSW ef values must be positive");
        if let Some(target) = params.target_recall {
            ensure!(target > 0.0 && target <= 1.0, "the HNSW target recall must be in (0, 1], not {target}");
        }
        let count = vectors.len() / dim;
        ensure!(count < u32::MAX as usize, "{count} vectors are too many for an HNSW graph");
        let mut index = Self { params, calibration: None, count, dim, entry: 0, layers: Vec::new() };
        let mut builder = build::Builder::new(vectors, dim, params.m, params.ef_construction);
        let held_out = params.target_recall.map_or_else(Vec::new, |_| calibrate::held_out_rows(count));
        if let Some(target) = params.target_recall.filter(|_| !held_out.is_empty()) {
            let rest: Vec<usize> = (0..count).filter(|r| held_out.binary_search(r).is_err()).collect();
            builder.insert(&rest);
            (index.entry, index.layers) = builder.layers();
            let calibration = calibrate::calibrate(&index, vectors, &held_out, target);
            index.params.ef_search = calibration.ef_search;
            index.calibration = Some(calibration);
            builder.insert(&held_out);
        } else {
            builder.insert(&(0..count).collect::<Vec<_>>());
        }
        (index.entry, index.layers) = builder.layers();
        Ok(index)
    }

    /// Inserts the rows of `vectors` past those the graph holds (`vectors`
    /// begins with the rows it was built from), as the build does; efSearch
    /// and its calibration are kept as they were.
    pub fn insert(&mut self, vectors: &[f32]) -> Result<()> {
        ensure!(
            vectors.len().is_multiple_of(self.dim) && vectors.len() / self.dim >= self.count,
            "{} floats are not the graph's {} rows of {} and more",
            vectors.len(),
            self.count,
            self.dim
        );
        let count = vectors.len() / self.dim;
        ensure!(count < u32::MAX as usize, "{count} vectors are too many for an HNSW graph");
        let mut builder = build::Builder::resume(self, vectors);
        builder.insert(&(self.count..count).collect::<Vec<_>>());
        self.count = count;
        (self.entry, self.layers) = builder.layers();
        Ok(())
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
        let search = |walk: &mut Walk, q: &[f32]| {
            if k == 0 {
                return Vec::new();
            }
            let mut hits = self.candidates(vectors, q, self.ef_for(k), walk).0;
            hits.sort_by(|a, b| rank_order(*a, *b, ids));
            hits.truncate(k);
            hits
        };
        queries.par_chunks(self.dim).map_init(|| Walk::new(self.count), search).collect()
    }

    /// The candidate list length for `k` hits: efSearch up to k = 10, then
    /// growing in proportion to k so that recall@k holds up.
    fn ef_for(&self, k: usize) -> usize {
        (self.params.ef_search * k.max(10) / 10).max(k)
    }

    /// The `ef` best rows the graph walk finds for `query`, unordered, and
    /// how many rows it scored; `walk` is scratch for `self.count` rows.
    fn candidates(&self, vectors: &[f32], query: &[f32], ef: usize, walk: &mut Walk) -> (Vec<Hit>, usize) {
        if self.count == 0 {
            return (Vec::new(), 0);
        }
        let row = |r: usize| &vectors[r * self.dim..(r + 1) * self.dim];
        let score = |r: usize| dot(query, row(r));
        let mut best = Hit { row: self.entry, score: score(self.entry) };
        for layer in self.layers[1..].iter().rev() {
            best = greedy(best, &|r, out: &mut Vec<u32>| out.extend_from_slice(layer.links(r)), &score, &mut walk.neighbours);
        }
        let base = |r, out: &mut Vec<u32>| out.extend_from_slice(self.layers[0].links(r));
        beam(best, ef, walk, &base, query, &row)
    }
}

/// Walks a layer from `start` to a local maximum of the score; `links`
/// appends a row's neighbours on the layer to a buffer, `neighbours`.
fn greedy(
    start: Hit,
    links: &impl Fn(usize, &mut Vec<u32>),
    score: &impl Fn(usize) -> f32,
    neighbours: &mut Vec<u32>,
) -> Hit {
    let mut best = start;
    loop {
        let current = best.row;
        neighbours.clear();
        links(current, neighbours);
        for &n in neighbours.iter() {
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

/// Asks the CPU to start loading `row` into its caches: its first two
/// cache lines, after which the hardware prefetcher follows the rest.
/// Prefetching every line cost more instructions than it saved (FAQ,
/// 2,293 x 384: 13% fewer queries/s; 20k random rows: no difference).
fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(16).take(2) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint; the address is valid anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
}

/// What one thread's graph walks reuse, so that a walk allocates only the
/// hits it returns: the rows it has seen (a bitmap whose touched words are
/// cleared afterwards), the neighbour and score buffers, and both heaps.
/// At efSearch 16 on the FAQ a walk takes about 12 us, and fresh buffers
/// and heaps per walk were several allocations of it.
struct Walk {
    bits: Vec<u64>,
    touched: Vec<usize>,
    neighbours: Vec<u32>,
    fresh: Vec<u32>,
    scores: Vec<f32>,
    candidates: BinaryHeap<ByScore>,
    found: BinaryHeap<std::cmp::Reverse<ByScore>>,
}

impl Walk {
    fn new(count: usize) -> Self {
        Self {
            bits: vec![0; count.div_ceil(64)],
            touched: Vec::new(),
            neighbours: Vec::new(),
            fresh: Vec::new(),
            scores: Vec::new(),
            candidates: BinaryHeap::new(),
            found: BinaryHeap::new(),
        }
    }
}

/// Marks `row` in a walk's bitmap; whether it was new.
fn visit(bits: &mut [u64], touched: &mut Vec<usize>, row: usize) -> bool {
    let (word, bit) = (row / 64, 1u64 << (row % 64));
    let w = &mut bits[word];
    if *w & bit != 0 {
        return false;
    }
    if *w == 0 {
        touched.push(word);
    }
    *w |= bit;
    true
}

/// Replaces `scores` with the inner products of `query` and the vectors
/// (`row`) of `rows` (row numbers as the adjacency stores them), four at a
/// time ([`dot4`]).
fn score_rows<'v>(query: &[f32], rows: &[u32], row: &impl Fn(usize) -> &'v [f32], scores: &mut Vec<f32>) {
    scores.clear();
    let fours = rows.chunks_exact(4);
    let rest = fours.remainder();
    for f in fours {
        scores.extend(dot4(query, std::array::from_fn(|i| row(f[i] as usize))));
    }
    scores.extend(rest.iter().map(|&n| dot(query, row(n as usize))));
}

/// Best-first search of a layer from `start`, keeping the `ef` best hits
/// found for `query`; returns them, unordered, and the number of rows
/// scored. `links` appends a row's neighbours on the layer to a buffer;
/// `row` is a row's vector. The unvisited neighbours of a node are gathered
/// and prefetched before any is scored, so their vectors load while the
/// first ones are compared, and scored four at a time ([`dot4`]).
fn beam<'v>(
    start: Hit,
    ef: usize,
    walk: &mut Walk,
    links: &impl Fn(usize, &mut Vec<u32>),
    query: &[f32],
    row: &impl Fn(usize) -> &'v [f32],
) -> (Vec<Hit>, usize) {
    let Walk { bits, touched, neighbours, fresh, scores, candidates, found } = walk;
    touched.drain(..).for_each(|w| bits[w] = 0);
    visit(bits, touched, start.row);
    let mut scored = 1;
    candidates.clear();
    candidates.push(ByScore(start));
    found.clear();
    found.push(std::cmp::Reverse(ByScore(start)));
    while let Some(ByScore(current)) = candidates.pop() {
        let worst = found.peek().expect("found holds the start").0.0.score;
        if found.len() >= ef && current.score < worst {
            break;
        }
        neighbours.clear();
        links(current.row, neighbours);
        fresh.clear();
        for &n in neighbours.iter() {
            if visit(bits, touched, n as usize) {
                prefetch(row(n as usize));
                fresh.push(n);
            }
        }
        scored += fresh.len();
        score_rows(query, fresh, row, scores);
        for (&n, &score) in fresh.iter().zip(scores.iter()) {
            let hit = Hit { row: n as usize, score };
            if found.len() < ef || hit.score > found.peek().expect("found is not empty").0.0.score {
                candidates.push(ByScore(hit));
                found.push(std::cmp::Reverse(ByScore(hit)));
                if found.len() > ef {
                    found.pop();
                }
            }
        }
    }
    (found.drain().map(|h| h.0.0).collect(), scored)
}
