//! HNSW against exact search: recall on random and clustered vectors at the
//! default (calibrated) parameters, the save/load round trip, and the errors
//! for missing, damaged and stale graphs. Speed is measured by
//! `uae index bench` (scripts/bench_search.sh), not here.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uae_index::exact::{self, Hit};
use uae_index::hnsw::calibrate::held_out_rows;
use uae_index::hnsw::{HnswIndex, HnswParams};
use uae_index::store::{ModelStamp, VectorStore, normalize};

/// A standard normal sample (Box-Muller).
fn gaussian(rng: &mut StdRng) -> f32 {
    let u: f32 = rng.random_range(f32::EPSILON..1.0);
    let v: f32 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

/// `n` normalised rows of `dim` Gaussian values.
fn random_rows(rng: &mut StdRng, n: usize, dim: usize) -> Vec<f32> {
    unit_rows((0..n * dim).map(|_| gaussian(rng)).collect(), dim)
}

/// `n` normalised rows drawn around the rows of `centres` (spread 0.5 per
/// coordinate around unit-variance centres), like real embeddings.
fn clustered_rows(rng: &mut StdRng, n: usize, dim: usize, centres: &[f32]) -> Vec<f32> {
    let clusters = centres.len() / dim;
    let mut rows = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.random_range(0..clusters);
        let spread = 0.5 / (dim as f32).sqrt();
        rows.extend(centres[c * dim..(c + 1) * dim].iter().map(|x| x + spread * gaussian(rng)));
    }
    unit_rows(rows, dim)
}

fn unit_rows(mut rows: Vec<f32>, dim: usize) -> Vec<f32> {
    rows.chunks_mut(dim).for_each(normalize);
    rows
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("d{i:07}")).collect()
}

/// 10,000 rows of 48 floats around 100 random centres, and 100 queries
/// from the same clusters (real queries share topics with the passages).
fn clustered_set(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres = random_rows(&mut rng, 100, 48);
    let rows = clustered_rows(&mut rng, 10_000, 48, &centres);
    (rows, clustered_rows(&mut rng, 100, 48, &centres))
}

/// How many of the rows `which`, searched for, find themselves first.
fn found_themselves(index: &HnswIndex, rows: &[f32], ids: &[String], dim: usize, which: &[usize]) -> usize {
    let queries: Vec<f32> = which.iter().flat_map(|&r| rows[r * dim..(r + 1) * dim].to_vec()).collect();
    let hits = index.search(rows, ids, &queries, 1);
    hits.iter().zip(which).filter(|(h, row)| h[0].row == **row).count()
}

/// Mean fraction of the exact top-k rows that `got` finds.
fn recall(got: &[Vec<Hit>], want: &[Vec<Hit>]) -> f64 {
    let found: usize =
        got.iter().zip(want).map(|(g, w)| w.iter().filter(|h| g.iter().any(|x| x.row == h.row)).count()).sum();
    found as f64 / want.iter().map(Vec::len).sum::<usize>() as f64
}

/// Builds at the default parameters and returns recall@10 on `queries`.
fn default_recall(rows: &[f32], queries: &[f32], dim: usize) -> f64 {
    let ids = ids(rows.len() / dim);
    let index = HnswIndex::build(rows, dim, HnswParams::default()).unwrap();
    let calibration = index.calibration().expect("the default calibrates efSearch");
    println!("calibrated {calibration:?}");
    assert_eq!(calibration.ef_search, index.params().ef_search);
    assert!(calibration.recall_lower_bound >= 0.95, "{calibration:?}");
    let want = exact::search(rows, &ids, dim, queries, 10);
    let got = index.search(rows, &ids, queries, 10);
    for (hits, query) in got.iter().zip(queries.chunks(dim)) {
        for hit in hits {
            let row = &rows[hit.row * dim..(hit.row + 1) * dim];
            let score: f32 = row.iter().zip(query).map(|(a, b)| a * b).sum();
            assert!((hit.score - score).abs() < 1e-5, "{hit:?} should score {score}");
        }
    }
    recall(&got, &want)
}

#[test]
fn recall_at_10_on_random_vectors() {
    let mut rng = StdRng::seed_from_u64(1);
    let rows = random_rows(&mut rng, 10_000, 48);
    let queries = random_rows(&mut rng, 100, 48);
    let r = default_recall(&rows, &queries, 48);
    println!("random 10000 x 48: recall@10 {r:.4}");
    assert!(r >= 0.95, "recall@10 {r}");
}

#[test]
fn recall_at_10_on_clustered_vectors() {
    let (rows, queries) = clustered_set(2);
    let r = default_recall(&rows, &queries, 48);
    println!("clustered 10000 x 48: recall@10 {r:.4}");
    assert!(r >= 0.95, "recall@10 {r}");
}

fn stamp() -> ModelStamp {
    ModelStamp { name: "m".into(), fingerprint: "f".into() }
}

/// Writes a store of `rows` into `dir` and opens it.
fn make_store(dir: &Path, rows: &[f32], dim: usize) -> VectorStore {
    let vectors: Vec<Vec<f32>> = rows.chunks(dim).map(<[f32]>::to_vec).collect();
    VectorStore::create(dir, stamp(), dim, &ids(vectors.len()), &vectors).unwrap();
    VectorStore::open(dir).unwrap()
}

#[test]
fn save_load_round_trip_gives_identical_results() {
    let mut rng = StdRng::seed_from_u64(3);
    let dir = tempfile::tempdir().unwrap();
    let centres = random_rows(&mut rng, 20, 32);
    let store = make_store(dir.path(), &clustered_rows(&mut rng, 3000, 32, &centres), 32);
    let mut index = HnswIndex::build(store.vectors(), 32, HnswParams::default()).unwrap();
    index.save(dir.path(), &store).unwrap();
    let loaded = HnswIndex::load(dir.path(), &store).unwrap();
    assert_eq!(loaded, index);
    assert!(loaded.calibration().is_some());
    index.set_ef_search(40);
    index.save(dir.path(), &store).unwrap();
    let loaded = HnswIndex::load(dir.path(), &store).unwrap();
    assert_eq!(loaded.params().ef_search, 40);
    // A rebuild calibrates afresh, from the default starting efSearch.
    let saved = HnswIndex::saved_params(dir.path()).unwrap().unwrap();
    assert_eq!(saved, HnswParams::default());
    let queries = random_rows(&mut rng, 50, 32);
    let before = index.search(store.vectors(), store.ids(), &queries, 10);
    assert_eq!(loaded.search(store.vectors(), store.ids(), &queries, 10), before);
}

#[test]
fn missing_corrupted_and_stale_graphs_are_errors() {
    let mut rng = StdRng::seed_from_u64(4);
    let dir = tempfile::tempdir().unwrap();
    let store = make_store(dir.path(), &random_rows(&mut rng, 500, 8), 8);
    let load_err = |store: &VectorStore| HnswIndex::load(dir.path(), store).unwrap_err().to_string();
    let err = load_err(&store);
    assert!(err.contains("hnsw.json") && err.contains("uae index hnsw"), "{err}");

    HnswIndex::build(store.vectors(), 8, HnswParams::default()).unwrap().save(dir.path(), &store).unwrap();
    let graph = dir.path().join("hnsw.graph");
    let bytes = std::fs::read(&graph).unwrap();
    let mut damaged = bytes.clone();
    damaged[100] ^= 1;
    std::fs::write(&graph, &damaged).unwrap();
    let err = load_err(&store);
    assert!(err.contains("hnsw.graph: checksum mismatch"), "{err}");
    std::fs::remove_file(&graph).unwrap();
    let err = load_err(&store);
    assert!(err.contains("cannot read") && err.contains("hnsw.graph"), "{err}");
    std::fs::write(&graph, &bytes).unwrap();
    assert!(HnswIndex::load(dir.path(), &store).is_ok());

    store.add(&stamp(), &["new".to_string()], &[vec![1.0; 8]]).unwrap();
    let grown = VectorStore::open(dir.path()).unwrap();
    let err = load_err(&grown);
    assert!(err.contains("500 points") && err.contains("501") && err.contains("rebuild it with"), "{err}");
}

#[test]
fn empty_and_tiny_indexes() {
    let empty = HnswIndex::build(&[], 4, HnswParams::default()).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.search(&[], &[], &[1.0, 0.0, 0.0, 0.0], 3), vec![Vec::<Hit>::new()]);
    let rows = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
    let ids = vec!["b".to_string(), "c".to_string(), "a".to_string()];
    let index = HnswIndex::build(&rows, 2, HnswParams::default()).unwrap();
    let hits = index.search(&rows, &ids, &[0.0, 1.0], 5);
    // Rows 1 and 2 tie; id "a" (row 2) ranks first.
    assert_eq!(hits[0].iter().map(|h| h.row).collect::<Vec<_>>(), vec![2, 1, 0]);
}

#[test]
fn a_fixed_ef_search_is_kept_and_held_out_rows_are_in_the_graph() {
    let mut rng = StdRng::seed_from_u64(6);
    let rows = random_rows(&mut rng, 2000, 16);
    let ids = ids(2000);
    let fixed = HnswParams { ef_search: 77, target_recall: None, ..HnswParams::default() };
    let index = HnswIndex::build(&rows, 16, fixed).unwrap();
    assert_eq!((index.params().ef_search, index.calibration()), (77, None));

    // Calibration leaves rows out of the graph, then inserts them: the
    // held-out rows, searched for, find themselves first like the others.
    let index = HnswIndex::build(&rows, 16, HnswParams::default()).unwrap();
    let held_out = held_out_rows(2000);
    assert_eq!(held_out.len(), 200);
    let found = found_themselves(&index, &rows, &ids, 16, &held_out);
    assert!(found >= 198, "{found} of 200 held-out rows find themselves");
}

#[test]
fn rows_inserted_into_a_built_graph_are_found_like_the_others() {
    let (rows, queries) = clustered_set(7);
    let ids = ids(10_000);
    let mut index = HnswIndex::build(&rows[..8_000 * 48], 48, HnswParams::default()).unwrap();
    let ef_search = index.params().ef_search;

    // Nothing new: the graph is unchanged.
    let before = index.clone();
    index.insert(&rows[..8_000 * 48]).unwrap();
    assert_eq!(index, before);

    index.insert(&rows).unwrap();
    assert_eq!((index.len(), index.params().ef_search), (10_000, ef_search));
    let r = recall(&index.search(&rows, &ids, &queries, 10), &exact::search(&rows, &ids, 48, &queries, 10));
    println!("clustered 8000 + 2000 inserted x 48: recall@10 {r:.4}");
    assert!(r >= 0.95, "recall@10 {r}");
    // Every inserted row, searched for, finds itself.
    let found = found_themselves(&index, &rows, &ids, 48, &(8_000..10_000).collect::<Vec<_>>());
    assert!(found >= 1_990, "{found} of 2000 inserted rows find themselves");
    assert!(index.insert(&rows[..100 * 48]).is_err());
}
