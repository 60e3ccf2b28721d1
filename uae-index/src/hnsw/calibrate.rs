//! Calibrating efSearch when the graph is built.
//!
//! [`held_out_rows`] picks up to [`SAMPLE`] rows, evenly spaced, that are
//! left out while the other rows are inserted. [`calibrate`] then searches
//! the graph of the others with each held-out row as a query and compares the
//! top [`K`] with exact search over the same rows: efSearch doubles from the
//! given value until the target recall is met (or until it is as large as
//! the graph), then bisection narrows it to within an eighth. "Met" means the
//! one-sided 95% lower confidence bound, the mean recall minus 1.645 standard
//! errors of the per-query recalls, reaches the target: the chosen value
//! should hold for other queries from the same distribution, not only for
//! these. The held-out rows are inserted afterwards.
//!
//! Data rows stand in for queries; for question embeddings searched against
//! passage embeddings recall can differ (BENCHMARKS.md measures both).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::HnswIndex;
use crate::exact;

/// At most this many rows are held out as calibration queries.
pub const SAMPLE: usize = 200;

/// Recall is measured at this depth.
pub const K: usize = 10;

/// The one-sided 95% quantile of the standard normal distribution.
const Z_95: f64 = 1.645;

/// What calibration chose and measured, saved with the graph.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Held-out rows used as queries.
    pub queries: usize,
    /// The efSearch chosen.
    pub ef_search: usize,
    /// Mean recall@10 at that efSearch on the held-out rows.
    pub recall: f64,
    /// Its one-sided 95% lower confidence bound.
    pub recall_lower_bound: f64,
    /// Mean fraction of the graph's rows a query scores at that efSearch.
    pub scored_fraction: f64,
}

/// The rows to hold out of a graph of `count` rows, sorted: a quarter of
/// them up to [`SAMPLE`], evenly spaced; none when the rest would be no more
/// than [`K`] rows (every efSearch then reaches them all).
pub fn held_out_rows(count: usize) -> Vec<usize> {
    let n = SAMPLE.min(count / 4);
    if n == 0 || count - n <= K {
        return Vec::new();
    }
    (0..n).map(|i| i * count / n + count / (2 * n)).collect()
}

/// Chooses efSearch for `index`, a graph of the rows of `vectors` other than
/// `held_out`, aiming at recall@10 `target` (see the module documentation).
pub fn calibrate(index: &HnswIndex, vectors: &[f32], held_out: &[usize], target: f64) -> Calibration {
    let (dim, count) = (index.dim, index.count);
    let in_graph = count - held_out.len();
    let ids: Vec<String> = (0..count).map(|r| format!("{r:010}")).collect();
    let queries: Vec<f32> = held_out.iter().flat_map(|&r| vectors[r * dim..(r + 1) * dim].iter().copied()).collect();
    // The exact top K among the graph's rows: held-out rows are dropped from
    // a list deep enough to hold all of them.
    let truth: Vec<Vec<usize>> = exact::search(vectors, &ids, dim, &queries, K + held_out.len())
        .into_iter()
        .map(|hits| hits.into_iter().map(|h| h.row).filter(|r| held_out.binary_search(r).is_err()).take(K).collect())
        .collect();
    let measure = |ef: usize| -> Calibration {
        let recall_of = |walk: &mut super::Walk, (query, want): (&[f32], &Vec<usize>)| {
            let (mut hits, scored) = index.candidates(vectors, query, ef, walk);
            hits.sort_by(|a, b| b.score.total_cmp(&a.score));
            let found = want.iter().filter(|r| hits.iter().take(K).any(|h| h.row == **r)).count();
            (found as f64 / want.len().max(1) as f64, scored)
        };
        let per_query: Vec<(f64, usize)> =
            queries.par_chunks(dim).zip(&truth).map_init(|| super::Walk::new(count), recall_of).collect();
        let n = per_query.len() as f64;
        let recall = per_query.iter().map(|p| p.0).sum::<f64>() / n;
        let variance = per_query.iter().map(|p| (p.0 - recall).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let scored = per_query.iter().map(|p| p.1 as f64).sum::<f64>() / n;
        Calibration {
            queries: per_query.len(),
            ef_search: ef,
            recall,
            recall_lower_bound: recall - Z_95 * (variance / n).sqrt(),
            scored_fraction: scored / in_graph as f64,
        }
    };
    let meets = |c: &Calibration| c.recall_lower_bound >= target;

    let cap = in_graph.max(K);
    let mut ef = index.params.ef_search.max(K).min(cap);
    let mut below = None;
    let mut best = measure(ef);
    while !meets(&best) && ef < cap {
        below = Some(ef);
        ef = (ef * 2).min(cap);
        best = measure(ef);
    }
    if let (Some(mut low), true) = (below, meets(&best)) {
        while best.ef_search - low > best.ef_search / 8 {
            let mid = measure((low + best.ef_search) / 2);
            if meets(&mid) {
                best = mid;
            } else {
                low = mid.ef_search;
            }
        }
    }
    // Four decimals: enough to report, and they read back from JSON exactly.
    let round = |x: f64| (x * 1e4).round() / 1e4;
    Calibration {
        recall: round(best.recall),
        recall_lower_bound: round(best.recall_lower_bound),
        scored_fraction: round(best.scored_fraction),
        ..best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_rows_are_spread_and_sorted() {
        assert_eq!(held_out_rows(8), Vec::<usize>::new());
        assert_eq!(held_out_rows(40), vec![2, 6, 10, 14, 18, 22, 26, 30, 34, 38]);
        let rows = held_out_rows(100_000);
        assert_eq!(rows.len(), SAMPLE);
        assert!(rows.is_sorted() && rows[0] == 250 && rows[SAMPLE - 1] == 99_750);
    }
}
