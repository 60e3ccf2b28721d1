//! `uae index bench`: exact and HNSW search measured on vectors from .npy
//! files (scripts/bench_search.sh runs it next to faiss).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use uae_index::bench::{self, BenchOptions};
use uae_index::npy::{self, Matrix};
use uae_index::store::normalize;

use super::HnswOptions;
use crate::stdout;

/// Arguments of `uae index bench`.
#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Database vectors: a 2-d float32 .npy file (rows are L2-normalised on reading).
    #[arg(long)]
    vectors: PathBuf,
    /// Query vectors: a 2-d float32 .npy file of the same width.
    #[arg(long)]
    queries: PathBuf,
    /// Hits per query.
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    #[command(flatten)]
    hnsw_options: HnswOptions,
    /// The efSearch values to measure.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256,512")]
    ef_search: Vec<usize>,
    /// Queries also searched one per call (the first N).
    #[arg(long, default_value_t = 200)]
    single_queries: usize,
    /// Measure exact search only (no HNSW graph is built).
    #[arg(long)]
    exact_only: bool,
}

/// Runs `uae index bench`.
pub(crate) fn run(args: BenchArgs) -> Result<()> {
    let read = |path: &PathBuf| -> Result<Matrix> {
        let mut m = npy::read_f32_matrix(path)?;
        m.values.chunks_mut(m.cols.max(1)).for_each(normalize);
        Ok(m)
    };
    let (rows, queries) = (read(&args.vectors)?, read(&args.queries)?);
    if rows.cols != queries.cols {
        bail!("{} has {} columns but {} has {}", args.vectors.display(), rows.cols, args.queries.display(), queries.cols);
    }
    let options = BenchOptions {
        k: args.k,
        params: args.hnsw_options.params(),
        ef_search: args.ef_search,
        single_queries: args.single_queries,
        exact_only: args.exact_only,
    };
    let report = bench::run(&rows.values, &queries.values, rows.cols, &options)?;
    stdout::print(&format!("{}\n", serde_json::to_string(&report)?))?;
    Ok(())
}
