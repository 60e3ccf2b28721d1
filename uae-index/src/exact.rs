//! Exact search: a blocked matrix product of queries against every stored
//! vector, keeping a partial top-k per query.
//!
//! Scores are inner products of normalised vectors (cosine similarity).
//! Results are ordered by score descending, then by document id ascending
//! (bytewise), the same order the metrics use, so ties are deterministic.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

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

/// The ranking order: `Less` when `a` ranks before `b` (higher score, or the
/// same score and a smaller id). NaN scores rank last.
pub fn rank_order(a: Hit, b: Hit, ids: &[String]) -> Ordering {
    let score = |h: Hit| if h.score.is_nan() { f32::NEG_INFINITY } else { h.score };
    score(b).total_cmp(&score(a)).then_with(|| ids[a.row].as_bytes().cmp(ids[b.row].as_bytes()))
}

/// Searches `queries` (row-major `n x dim`, normalised) against `vectors`
/// (row-major `count x dim`) and returns the `k` best hits per query in
/// ranking order. `ids` name the rows and break ties.
pub fn search(vectors: &[f32], ids: &[String], dim: usize, queries: &[f32], k: usize) -> Vec<Vec<Hit>> {
    let n_queries = queries.len() / dim;
    let count = ids.len();
    let mut heaps: Vec<BinaryHeap<Worse>> = (0..n_queries).map(|_| BinaryHeap::with_capacity(k + 1)).collect();
    if k == 0 || count == 0 {
        return vec![Vec::new(); n_queries];
    }
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
        heaps.par_iter_mut().zip(scores.par_chunks(rows)).for_each(|(heap, row_scores)| {
            for (r, &score) in row_scores.iter().enumerate() {
                let candidate = Worse { hit: Hit { row: start + r, score }, ids };
                if heap.len() < k {
                    heap.push(candidate);
                } else if candidate < *heap.peek().expect("heap holds k hits") {
                    heap.pop();
                    heap.push(candidate);
                }
            }
        });
    }
    heaps.into_iter().map(|heap| heap.into_sorted_vec().into_iter().map(|w| w.hit).collect()).collect()
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
            let want = brute_force(&vectors, &ids, dim, &queries[q * dim..(q + 1) * dim], 25);
            assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), want.iter().map(|h| h.row).collect::<Vec<_>>());
            for (a, b) in hits.iter().zip(&want) {
                assert_eq!(a.score, b.score);
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
