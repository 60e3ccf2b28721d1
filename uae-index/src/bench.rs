//! Search speed and recall on given vectors, for `uae index bench`: exact
//! search, and an HNSW graph at its own (by default calibrated) efSearch and
//! at several others, with recall@k measured against exact search.
//!
//! Each search is timed twice: all queries in one call (batched; the work is
//! spread over the rayon pool) and one query per call over the first
//! `single_queries` queries. A warm-up search of up to 10 queries precedes
//! the timings. Each timing is repeated until [`MIN_SECONDS`] have passed
//! (at most [`MAX_REPEATS`] runs) and the best rate is kept: on a shared
//! machine the fastest run is the one least disturbed by other work.

use std::time::Instant;

use anyhow::{Result, ensure};
use serde::Serialize;

use crate::exact::{self, Hit};
use crate::hnsw::{Calibration, HnswIndex, HnswParams};

/// Timings repeat until this much time has passed...
pub const MIN_SECONDS: f64 = 1.0;

/// ...or this many runs were made.
pub const MAX_REPEATS: usize = 5;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Hits per query.
    pub k: usize,
    /// HNSW parameters, as `uae index build --hnsw` takes them.
    pub params: HnswParams,
    /// Further efSearch values to measure.
    pub ef_search: Vec<usize>,
    /// Queries searched one per call.
    pub single_queries: usize,
    /// Measure exact search only.
    pub exact_only: bool,
}

/// Queries per second of one search method.
#[derive(Debug, Clone, Serialize)]
pub struct Rates {
    /// All queries in one call.
    pub batch_qps: f64,
    /// One query per call.
    pub one_at_a_time_qps: f64,
}

/// One efSearch value's recall and speed.
#[derive(Debug, Clone, Serialize)]
pub struct EfPoint {
    /// The candidate list length.
    pub ef_search: usize,
    /// Mean over the queries of |HNSW top k ∩ exact top k| / k.
    pub recall_at_k: f64,
    /// Speed.
    #[serde(flatten)]
    pub rates: Rates,
}

/// The HNSW measurements.
#[derive(Debug, Clone, Serialize)]
pub struct HnswReport {
    /// The parameters, with the efSearch calibration chose.
    pub params: HnswParams,
    /// What calibration measured, when it ran.
    pub calibration: Option<Calibration>,
    /// Graph construction time in seconds, calibration included.
    pub build_s: f64,
    /// At the graph's own efSearch.
    pub default: EfPoint,
    /// One point per further efSearch value.
    pub sweep: Vec<EfPoint>,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Database vectors.
    pub count: usize,
    /// Vector width.
    pub dim: usize,
    /// Query vectors.
    pub queries: usize,
    /// Hits per query.
    pub k: usize,
    /// Threads of the rayon pool.
    pub threads: usize,
    /// Exact search.
    pub exact: Rates,
    /// HNSW search, unless only exact search was measured.
    pub hnsw: Option<HnswReport>,
}

/// Measures exact and HNSW search of `queries` over `rows` (both row-major
/// with `dim` columns and L2-normalised).
pub fn run(rows: &[f32], queries: &[f32], dim: usize, options: &BenchOptions) -> Result<BenchReport> {
    ensure!(dim > 0 && rows.len() % dim == 0 && queries.len() % dim == 0, "rows and queries must have {dim} columns");
    ensure!(!queries.is_empty() && options.k > 0, "nothing to measure: no queries or k = 0");
    let count = rows.len() / dim;
    let ids: Vec<String> = (0..count).map(|i| format!("{i:010}")).collect();
    let exact_search = |q: &[f32]| exact::search(rows, &ids, dim, q, options.k);
    let (truth, exact) = measure(queries, dim, options.single_queries, exact_search);
    let mut report = BenchReport {
        count,
        dim,
        queries: queries.len() / dim,
        k: options.k,
        threads: rayon::current_num_threads(),
        exact,
        hnsw: None,
    };
    if options.exact_only {
        return Ok(report);
    }
    let start = Instant::now();
    let mut graph = HnswIndex::build(rows, dim, options.params)?;
    let build_s = start.elapsed().as_secs_f64();
    let (params, calibration) = (*graph.params(), graph.calibration().copied());
    let point = |graph: &HnswIndex| {
        let (found, rates) = measure(queries, dim, options.single_queries, |q| graph.search(rows, &ids, q, options.k));
        EfPoint { ef_search: graph.params().ef_search, recall_at_k: recall(&found, &truth), rates }
    };
    let default = point(&graph);
    let mut sweep = Vec::new();
    for &ef in &options.ef_search {
        graph.set_ef_search(ef);
        sweep.push(point(&graph));
    }
    report.hnsw = Some(HnswReport { params, calibration, build_s, default, sweep });
    Ok(report)
}

/// Runs `search` over all `queries` at once and over the first `single` one
/// at a time; returns the batched hits and both rates.
fn measure(
    queries: &[f32],
    dim: usize,
    single: usize,
    search: impl Fn(&[f32]) -> Vec<Vec<Hit>>,
) -> (Vec<Vec<Hit>>, Rates) {
    let n = queries.len() / dim;
    search(&queries[..n.min(10) * dim]);
    let mut hits = Vec::new();
    let batch_qps = best_rate(n, || hits = search(queries));
    let single = single.clamp(1, n);
    let one_at_a_time_qps = best_rate(single, || queries.chunks_exact(dim).take(single).for_each(|q| drop(search(q))));
    (hits, Rates { batch_qps, one_at_a_time_qps })
}

/// The best rate, in `items` per second, of repeated runs of `run`.
fn best_rate(items: usize, mut run: impl FnMut()) -> f64 {
    let (start, mut best) = (Instant::now(), 0f64);
    for _ in 0..MAX_REPEATS {
        let lap = Instant::now();
        run();
        best = best.max(items as f64 / lap.elapsed().as_secs_f64());
        if start.elapsed().as_secs_f64() >= MIN_SECONDS {
            break;
        }
    }
    best
}

/// Mean over the queries of the fraction of `truth`'s hits that `found`
/// has (rows compared; both lists hold k hits unless the data is smaller).
pub fn recall(found: &[Vec<Hit>], truth: &[Vec<Hit>]) -> f64 {
    let per_query = found.iter().zip(truth).map(|(f, t)| {
        let hits = t.iter().filter(|h| f.iter().any(|x| x.row == h.row)).count();
        hits as f64 / t.len().max(1) as f64
    });
    per_query.sum::<f64>() / truth.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_small_set() {
        let rows: Vec<f32> = (0..200).flat_map(|i| [(i as f32).cos(), (i as f32).sin()]).collect();
        let mut options = BenchOptions {
            k: 3,
            params: HnswParams::default(),
            ef_search: vec![8, 64],
            single_queries: 2,
            exact_only: false,
        };
        let report = run(&rows, &rows[..20], 2, &options).unwrap();
        assert_eq!((report.count, report.queries, report.k), (200, 10, 3));
        assert!(report.exact.batch_qps > 0.0 && report.exact.one_at_a_time_qps > 0.0);
        let hnsw = report.hnsw.unwrap();
        assert_eq!(hnsw.sweep.iter().map(|p| p.ef_search).collect::<Vec<_>>(), [8, 64]);
        assert_eq!(hnsw.sweep[1].recall_at_k, 1.0);
        assert!(hnsw.calibration.is_some());
        options.exact_only = true;
        assert!(run(&rows, &rows[..20], 2, &options).unwrap().hnsw.is_none());
    }

    #[test]
    fn recall_counts_shared_rows() {
        let hit = |row| Hit { row, score: 0.0 };
        let truth = vec![vec![hit(1), hit(2)], vec![hit(3), hit(4)]];
        let found = vec![vec![hit(2), hit(9)], vec![hit(4), hit(3)]];
        assert_eq!(recall(&found, &truth), 0.75);
    }
}
