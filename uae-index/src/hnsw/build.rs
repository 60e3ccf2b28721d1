//! Building the graph, and growing a saved one.
//!
//! Malkov and Yashunin's insertion (their algorithms 1, 2 and 4), with
//! faiss's choices: a row's level is `floor(-ln(u) / ln(M))`; rows are
//! inserted from the highest level down, in parallel within a level; each
//! layer keeps up to `M` links per row (`2M` on the base layer) chosen by the
//! neighbour heuristic (a candidate is kept only when it is closer to the new
//! row than to every neighbour kept before it), and a neighbour whose list
//! overflows is pruned by the same heuristic. Every row has one lock over its
//! link lists; a walk copies a row's list out under its lock.
//!
//! # Why not a crate
//!
//! `hnsw_rs` built the graph here before, at a tenth of faiss's speed on the
//! same 2 cores (BENCHMARKS.md: 428 s against 41 s for 100k x 384, M 16,
//! efConstruction 200), and neither it nor the other crates can take new rows
//! into a graph loaded from the adjacency table this index saves, so
//! `uae index add` had to rebuild. This builder walks the graph with the same
//! search code as queries do ([`super::beam`], reused walk buffers,
//! prefetched vectors) and starts from a saved graph as easily as from none.

use std::sync::{Mutex, PoisonError, RwLock};

use rayon::prelude::*;

use super::{HnswIndex, Layer, Walk, beam, greedy, score_rows};
use crate::dot::{dot, dot4};
use crate::exact::Hit;

/// No row is given a level above this (the file format allows 16 layers).
const MAX_LEVEL: usize = 15;

/// A graph being built: each row's link lists (base layer first) behind
/// their own lock, and the entry row with its level.
pub(super) struct Builder<'a> {
    vectors: &'a [f32],
    dim: usize,
    m: usize,
    ef_construction: usize,
    links: Vec<Mutex<Vec<Vec<u32>>>>,
    entry: RwLock<Option<(usize, usize)>>,
}

impl<'a> Builder<'a> {
    /// An empty graph over the rows of `vectors`; nothing is inserted yet.
    pub(super) fn new(vectors: &'a [f32], dim: usize, m: usize, ef_construction: usize) -> Self {
        let links = (0..vectors.len() / dim).map(|_| Mutex::new(Vec::new())).collect();
        Self { vectors, dim, m, ef_construction, links, entry: RwLock::new(None) }
    }

    /// The graph of `index` over its rows, ready to take the further rows
    /// of `vectors` (which begins with the rows `index` was built from).
    pub(super) fn resume(index: &HnswIndex, vectors: &'a [f32]) -> Self {
        let mut builder = Self::new(vectors, index.dim, index.params.m, index.params.ef_construction);
        if index.count == 0 {
            return builder;
        }
        let top = index.layers.len() - 1;
        for (row, lists) in builder.links.iter_mut().enumerate().take(index.count) {
            let lists = lists.get_mut().unwrap_or_else(PoisonError::into_inner);
            *lists = index.layers.iter().map(|layer| layer.links(row).to_vec()).collect();
            // A row's level is the highest layer it has links on; the entry's
            // is the top one.
            let level = if row == index.entry { top } else { lists.iter().rposition(|l| !l.is_empty()).unwrap_or(0) };
            lists.truncate(level + 1);
        }
        builder.entry = RwLock::new(Some((index.entry, top)));
        builder
    }

    /// Inserts `rows`, highest level first, in parallel within a level.
    pub(super) fn insert(&self, rows: &[usize]) {
        let mut by_level: Vec<(usize, usize)> = rows.iter().map(|&r| (level(r, self.m), r)).collect();
        by_level.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut rest = &by_level[..];
        if self.read_entry().is_none() {
            let Some((&(level, row), tail)) = rest.split_first() else { return };
            self.lock(row).resize(level + 1, Vec::new());
            *self.entry.write().unwrap_or_else(PoisonError::into_inner) = Some((row, level));
            rest = tail;
        }
        for group in rest.chunk_by(|a, b| a.0 == b.0) {
            group.par_iter().for_each_init(
                || Walk::new(self.links.len()),
                |walk, &(level, row)| self.insert_one(row, level, walk),
            );
        }
    }

    /// The entry row and the tables of every layer, as [`HnswIndex`] keeps
    /// them.
    pub(super) fn layers(&mut self) -> (usize, Vec<Layer>) {
        let Some((entry, top)) = self.read_entry() else { return (0, Vec::new()) };
        let lists: Vec<&Vec<Vec<u32>>> =
            self.links.iter_mut().map(|l| &*l.get_mut().unwrap_or_else(PoisonError::into_inner)).collect();
        let layers = (0..=top)
            .map(|layer| {
                let mut offsets = Vec::with_capacity(lists.len() + 1);
                let mut neighbours = Vec::new();
                offsets.push(0);
                for row in &lists {
                    neighbours.extend_from_slice(row.get(layer).map_or(&[][..], Vec::as_slice));
                    offsets.push(neighbours.len());
                }
                Layer { offsets, neighbours }
            })
            .collect();
        (entry, layers)
    }

    fn read_entry(&self) -> Option<(usize, usize)> {
        *self.entry.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self, row: usize) -> std::sync::MutexGuard<'_, Vec<Vec<u32>>> {
        self.links[row].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn row(&self, row: usize) -> &[f32] {
        &self.vectors[row * self.dim..(row + 1) * self.dim]
    }

    /// Copies `row`'s links on `layer` into `out` (none when the row does
    /// not reach the layer).
    fn copy_links(&self, row: usize, layer: usize, out: &mut Vec<u32>) {
        if let Some(links) = self.lock(row).get(layer) {
            out.extend_from_slice(links);
        }
    }

    fn insert_one(&self, row: usize, level: usize, walk: &mut Walk) {
        self.lock(row).resize(level + 1, Vec::new());
        let (entry, top) = self.read_entry().expect("the first row is inserted alone");
        let query = self.row(row);
        let score = |r: usize| dot(query, self.row(r));
        let mut nearest = Hit { row: entry, score: score(entry) };
        for layer in (level + 1..=top).rev() {
            nearest = greedy(nearest, &|r, out: &mut Vec<u32>| self.copy_links(r, layer, out), &score, &mut walk.neighbours);
        }
        for layer in (0..=level.min(top)).rev() {
            let links = |r, out: &mut Vec<u32>| self.copy_links(r, layer, out);
            let mut found = beam(nearest, self.ef_construction, walk, &links, query, &|r| self.row(r)).0;
            found.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
            found.retain(|h| h.row != row);
            let Some(&best) = found.first() else { continue };
            nearest = best;
            let max = self.max_links(layer);
            let chosen = self.select(&found, max);
            self.lock(row)[layer] = chosen.iter().map(|h| h.row as u32).collect();
            for hit in chosen {
                self.link(hit.row, row, hit.score, layer, max);
            }
        }
        if level > top {
            let mut entry = self.entry.write().unwrap_or_else(PoisonError::into_inner);
            if entry.is_none_or(|(_, top)| level > top) {
                *entry = Some((row, level));
            }
        }
    }

    /// Links per row on `layer`: `2M` on the base layer, `M` above.
    fn max_links(&self, layer: usize) -> usize {
        if layer == 0 { 2 * self.m } else { self.m }
    }

    /// The neighbour heuristic over `candidates`, best first: keeps a
    /// candidate unless a neighbour already kept is closer to it than the
    /// row they are candidates for (its score), up to `max`.
    fn select(&self, candidates: &[Hit], max: usize) -> Vec<Hit> {
        let mut kept: Vec<Hit> = Vec::with_capacity(max);
        for &c in candidates {
            if kept.len() == max {
                break;
            }
            let v = self.row(c.row);
            // The kept neighbours' products four at a time ([`dot4`]).
            let mut fours = kept.chunks_exact(4);
            let rest = fours.remainder();
            let near = |k: &[Hit]| dot4(v, [self.row(k[0].row), self.row(k[1].row), self.row(k[2].row), self.row(k[3].row)]);
            if fours.all(|k| near(k).iter().all(|&s| s <= c.score)) && rest.iter().all(|k| dot(v, self.row(k.row)) <= c.score) {
                kept.push(c);
            }
        }
        kept
    }

    /// Adds `new` (whose score against `to` is `score`) to `to`'s links on
    /// `layer`, pruning them back to `max` by the heuristic when full.
    fn link(&self, to: usize, new: usize, score: f32, layer: usize, max: usize) {
        let mut lists = self.lock(to);
        let Some(links) = lists.get_mut(layer) else { return };
        if links.contains(&(new as u32)) {
            return;
        }
        if links.len() < max {
            links.push(new as u32);
            return;
        }
        let mut scores = Vec::with_capacity(links.len());
        score_rows(self.row(to), links, &|r| self.row(r), &mut scores);
        let mut candidates: Vec<Hit> = links.iter().zip(&scores).map(|(&n, &score)| Hit { row: n as usize, score }).collect();
        candidates.push(Hit { row: new, score });
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        *links = self.select(&candidates, max).iter().map(|h| h.row as u32).collect();
    }
}

/// The level of `row` in a graph with `m` links per row: `floor(-ln(u) /
/// ln(m))` for `u` uniform in (0, 1] drawn from the row number alone, so a
/// graph's levels do not depend on the order rows are inserted in.
pub(super) fn level(row: usize, m: usize) -> usize {
    // SplitMix64 of the row number.
    let mut z = (row as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    ((-u.ln() / (m as f64).ln()) as usize).min(MAX_LEVEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_geometric_distribution() {
        let n = 200_000;
        let mut counts = [0usize; 4];
        (0..n).map(|r| level(r, 16)).for_each(|l| counts[l.min(3)] += 1);
        // P(level >= l) = 16^-l.
        let share = |c: usize| c as f64 / n as f64;
        assert!((share(n - counts[0]) - 1.0 / 16.0).abs() < 0.002, "{counts:?}");
        assert!((share(counts[2] + counts[3]) - 1.0 / 256.0).abs() < 0.0005, "{counts:?}");
        assert_eq!(level(7, 16), level(7, 16));
    }

    #[test]
    fn the_heuristic_drops_a_candidate_nearer_a_kept_neighbour() {
        // The row (1, 0); a at 10 degrees, b at 12 degrees on the same side
        // (nearer a than the row), c at -30 degrees (nearer the row than a).
        let unit = |deg: f32| [deg.to_radians().cos(), deg.to_radians().sin()];
        let vectors: Vec<f32> = [unit(0.0), unit(10.0), unit(12.0), unit(-30.0)].concat();
        let builder = Builder::new(&vectors, 2, 2, 8);
        let hits: Vec<Hit> = (1..4).map(|r| Hit { row: r, score: dot(&vectors[..2], builder.row(r)) }).collect();
        let kept: Vec<usize> = builder.select(&hits, 3).iter().map(|h| h.row).collect();
        assert_eq!(kept, [1, 3]);
        assert_eq!(builder.select(&hits, 1).len(), 1);
    }
}
