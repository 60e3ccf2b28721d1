//! Exact search: a blocked matrix product of queries against every stored
//! vector (or, for a lone query, a parallel scan), keeping a partial top-k
//! per query.
//!
//! Scores are inner products of normalised vectors (cosine similarity).
//! Results are in the one ranking order of `uae_data::ranking` (score
//! descending, then document id ascending, bytewise), the order the metrics
//! use, so ties are deterministic.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;
use uae_data::ranking::{self, Ranking};

use crate::dot::dot;

/// One search hit: a row of the index and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Row in the index.
    pub row: usize,
    /// Cosine similarity.
    pub score: f32,
}

/// Rows of the corpus scored per matrix product; bounds the scratch memory
/// to `queries x BLOCK` floats.
const BLOCK: usize = 8192;

/// A hit as kept in the heap; "greater" means "worse", so the heap's top is
/// the hit to evict.
struct Worse<'a> {
    hit: Hit,
    ids: &'a [String],
}

impl Ord for Worse<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        rank_order(self.hit, other.hit, self.ids)
    }
}
impl PartialOrd for Worse<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Worse<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worse<'_> {}

/// The ranking order of two rows (`uae_data::ranking::order` on their ids
/// and scores): `Less` when `a` ranks before `b`.
pub fn rank_order(a: Hit, b: Hit, ids: &[String]) -> Ordering {
    ranking::order((&ids[a.row], f64::from(a.score)), (&ids[b.row], f64::from(b.score)))
}

/// The `k` best hits offered so far. Scores below the k-th best are turned
/// away with one comparison; the rest (ties and NaN included) go through the
/// full [`rank_order`].
struct TopK<'a> {
    heap: BinaryHeap<Worse<'a>>,
    ids: &'a [String],
    k: usize,
    floor: f32,
}

impl<'a> TopK<'a> {
    fn new(k: usize, ids: &'a [String]) -> Self {
        Self { heap: BinaryHeap::with_capacity(k + 1), ids, k, floor: f32::NEG_INFINITY }
    }

    #[inline]
    fn offer(&mut self, hit: Hit) {
        if !(hit.score < self.floor) {
            self.insert(hit);
        }
    }

    /// Offers a run of consecutive rows' scores, the first being row
    /// `first`; runs whose best score is below the bar are skipped whole
    /// (a NaN never raises the best, and can only enter a heap not yet full,
    /// whose bar is minus infinity).
    fn offer_run(&mut self, first: usize, scores: &[f32]) {
        for (c, chunk) in scores.chunks(16).enumerate() {
            let best = chunk.iter().fold(f32::NEG_INFINITY, |m, &s| if s > m { s } else { m });
            if best < self.floor {
                continue;
            }
            for (i, &score) in chunk.iter().enumerate() {
                self.offer(Hit { row: first + 16 * c + i, score });
            }
        }
    }

    #[cold]
    fn insert(&mut self, hit: Hit) {
        let candidate = Worse { hit, ids: self.ids };
        if self.heap.len() < self.k {
            self.heap.push(candidate);
        } else if candidate < *self.heap.peek().expect("the heap holds k hits") {
            self.heap.pop();
            self.heap.push(candidate);
        }
        // Once full, the worst kept hit is the bar (a NaN one admits everything).
        self.floor = match self.heap.peek() {
            Some(worst) if self.heap.len() >= self.k && !worst.hit.score.is_nan() => worst.hit.score,
            _ => f32::NEG_INFINITY,
        };
    }

    fn into_sorted(self) -> Vec<Hit> {
        self.heap.into_sorted_vec().into_iter().map(|w| w.hit).collect()
    }
}

/// The hits of one query as a ranking of the ids of their rows.
pub fn ranking_of(hits: &[Hit], ids: &[String]) -> Ranking {
    hits.iter().map(|h| ranking::Hit::new(ids[h.row].clone(), h.score)).collect()
}

/// Exact search where each query may see only some rows: the whole of
/// `vectors` when `pools` is `None` (all queries in one blocked product),
/// else the rows `pools[i]` for query `i` (docs/method.md, "Mining and
/// candidate pools"). Queries are row-major unit vectors; returns each
/// query's `k` best documents in ranking order.
pub fn search_pools(
    vectors: &[f32],
    ids: &[String],
    dim: usize,
    queries: &[f32],
    pools: Option<&[Vec<usize>]>,
    k: usize,
) -> Vec<Ranking> {
    let Some(pools) = pools else {
        return search(vectors, ids, dim, queries, k).iter().map(|hits| ranking_of(hits, ids)).collect();
    };
    pools
        .iter()
        .zip(queries.chunks_exact(dim))
        .map(|(rows, query)| {
            let pool_ids: Vec<String> = rows.iter().map(|&r| ids[r].clone()).collect();
            let mut pool_vectors = Vec::with_capacity(rows.len() * dim);
            for &r in rows {
                pool_vectors.extend_from_slice(&vectors[r * dim..(r + 1) * dim]);
            }
            ranking_of(&search(&pool_vectors, &pool_ids, dim, query, k)[0], &pool_ids)
        })
        .collect()
}

/// Searches `queries` (row-major `n x dim`, normalised) against `vectors`
/// (row-major `count x dim`) and returns the `k` best hits per query in
/// ranking order. `ids` name the rows and break ties.
///
/// Several queries are scored by blocked matrix products (`gemm`, on the
/// rayon pool); a lone query by a scan of row ranges in parallel, which
/// streams the vectors from memory on every core.
pub fn search(vectors: &[f32], ids: &[String], dim: usize, queries: &[f32], k: usize) -> Vec<Vec<Hit>> {
    let n_queries = queries.len() / dim;
    if k == 0 || ids.is_empty() {
        return vec![Vec::new(); n_queries];
    }
    if n_queries == 1 {
        return vec![scan(vectors, ids, dim, queries, k)];
    }
    let count = ids.len();
    let mut tops: Vec<TopK> = (0..n_queries).map(|_| TopK::new(k, ids)).collect();
    let mut scores = vec![0f32; n_queries * BLOCK.min(count)];
    for start in (0..count).step_by(BLOCK) {
        let rows = BLOCK.min(count - start);
        let block = &vectors[start * dim..(start + rows) * dim];
        // scores[q, r] = sum_d queries[q, d] * block[r, d]
        // SAFETY: the pointers and strides describe the slices above, whose
        // lengths cover n_queries x dim, rows x dim and n_queries x rows.
        unsafe {
            gemm(
                n_queries,
                rows,
                dim,
                scores.as_mut_ptr(),
                1,
                rows as isize,
                false,
                queries.as_ptr(),
                1,
                dim as isize,
                block.as_ptr(),
                dim as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::Rayon(0),
            );
        }
        let blocks = scores.par_chunks(rows);
        tops.par_iter_mut().zip(blocks).for_each(|(top, row_scores)| top.offer_run(start, row_scores));
    }
    tops.into_iter().map(TopK::into_sorted).collect()
}

/// One query against every row: ranges of [`BLOCK`] rows scored in
/// parallel, each keeping its own top k, then merged.
fn scan(vectors: &[f32], ids: &[String], dim: usize, query: &[f32], k: usize) -> Vec<Hit> {
    let partial: Vec<Vec<Hit>> = vectors
        .par_chunks(BLOCK * dim)
        .enumerate()
        .map(|(b, block)| {
            let mut top = TopK::new(k, ids);
            for (r, row) in block.chunks_exact(dim).enumerate() {
                top.offer(Hit { row: b * BLOCK + r, score: dot(query, row) });
            }
            top.into_sorted()
        })
        .collect();
    let mut top = TopK::new(k, ids);
    partial.into_iter().flatten().for_each(|hit| top.offer(hit));
    top.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Scores everything, sorts everything: the reference.
    fn brute_force(vectors: &[f32], ids: &[String], dim: usize, query: &[f32], k: usize) -> Vec<Hit> {
        let mut hits: Vec<Hit> = vectors
            .chunks(dim)
            .enumerate()
            .map(|(row, v)| Hit { row, score: v.iter().zip(query).map(|(a, b)| a * b).sum() })
            .collect();
        hits.sort_by(|a, b| rank_order(*a, *b, ids));
        hits.truncate(k);
        hits
    }

    #[test]
    fn equals_brute_force_with_ties() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (dim, count, n_queries) = (16, 20_000, 7);
        // Values on a coarse grid so that many scores tie exactly.
        let mut vectors: Vec<f32> = (0..count * dim).map(|_| rng.random_range(-2i32..=2) as f32).collect();
        // Duplicate rows tie for every query.
        let (head, tail) = vectors.split_at_mut(dim * 10);
        tail[..dim * 10].copy_from_slice(head);
        let ids: Vec<String> = (0..count).map(|i| format!("doc{}", (i * 7919) % count)).collect();
        let queries: Vec<f32> = (0..n_queries * dim).map(|_| rng.random_range(-2i32..=2) as f32).collect();
        let got = search(&vectors, &ids, dim, &queries, 25);
        for (q, hits) in got.iter().enumerate() {
            let query = &queries[q * dim..(q + 1) * dim];
            let want = brute_force(&vectors, &ids, dim, query, 25);
            // The batched (gemm) path and the lone-query (scan) path.
            for hits in [hits, &search(&vectors, &ids, dim, query, 25)[0]] {
                let rows: Vec<usize> = hits.iter().map(|h| h.row).collect();
                assert_eq!(rows, want.iter().map(|h| h.row).collect::<Vec<_>>());
                for (a, b) in hits.iter().zip(&want) {
                    assert_eq!(a.score, b.score);
                }
            }
        }
    }

    #[test]
    fn k_larger_than_the_corpus_returns_everything() {
        let ids: Vec<String> = vec!["b".into(), "a".into()];
        let hits = search(&[1.0, 0.0, 1.0, 0.0], &ids, 2, &[1.0, 0.0], 10);
        // Equal scores: id "a" (row 1) first.
        assert_eq!(hits[0].iter().map(|h| h.row).collect::<Vec<_>>(), vec![1, 0]);
    }
}
