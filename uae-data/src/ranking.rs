//! The one ranking type and its one order (docs/method.md, "Ranking
//! order"): score descending, NaN last, then document id ascending by UTF-8
//! bytes, so `"K1" < "d10" < "d9"`. Search, mining, re-ranking, run files
//! and metrics all rank this way (trec_eval breaks ties by id descending).

use std::cmp::Ordering;

/// One ranked document: its id and the score it was ranked by.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The document id.
    pub id: String,
    /// Its score; higher is better.
    pub score: f64,
}

impl Hit {
    /// A hit for `id` with `score`.
    pub fn new(id: impl Into<String>, score: impl Into<f64>) -> Self {
        Self { id: id.into(), score: score.into() }
    }
}

/// A query's documents, best first in [`order`].
pub type Ranking = Vec<Hit>;

/// The ranking order of two (id, score) pairs: `Less` when `a` ranks first.
pub fn order(a: (&str, f64), b: (&str, f64)) -> Ordering {
    let key = |s: f64| if s.is_nan() { f64::NEG_INFINITY } else { s };
    key(b.1).total_cmp(&key(a.1)).then_with(|| a.0.cmp(b.0))
}

/// Sorts hits into the ranking order.
pub fn sort(hits: &mut [Hit]) {
    hits.sort_by(|a, b| order((&a.id, a.score), (&b.id, b.score)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_then_id_bytes_nan_last() {
        let mut hits = vec![
            Hit::new("d9", 0.5),
            Hit::new("nan", f64::NAN),
            Hit::new("d10", 0.5),
            Hit::new("K1", 0.5),
            Hit::new("top", 1.0),
            Hit::new("low", -2.0),
        ];
        sort(&mut hits);
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["top", "K1", "d10", "d9", "low", "nan"]);
    }
}
