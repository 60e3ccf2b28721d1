//! How generation chooses each token: greedily, or drawn from the model's
//! distribution (temperature, top-k and nucleus sampling, as transformers'
//! `generate(do_sample=True)` does), with a seed per sequence so that a
//! sequence's tokens do not depend on the batch it is decoded in.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How a generated token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoding {
    /// The most likely token.
    Greedy,
    /// A token drawn from softmax(logits / `temperature`) restricted to the
    /// `top_k` most likely tokens, then to the fewest of those whose
    /// probabilities sum to at least `top_p`; `seed` starts the sequence's
    /// own random stream.
    Sample {
        /// Divides the logits (> 0; lower is closer to greedy).
        temperature: f32,
        /// Most candidate tokens (transformers' default is 50).
        top_k: usize,
        /// Nucleus mass in (0, 1].
        top_p: f32,
        /// Seed of this sequence's draws.
        seed: u64,
    },
}

/// Chooses the tokens of one sequence.
pub(crate) struct Chooser {
    decoding: Decoding,
    rng: Option<StdRng>,
    /// Reused candidate buffer: (scaled logit, token id).
    candidates: Vec<(f32, u32)>,
}

impl Chooser {
    /// A chooser for one sequence.
    pub(crate) fn new(decoding: Decoding) -> Self {
        let rng = match decoding {
            Decoding::Greedy => None,
            Decoding::Sample { seed, .. } => Some(StdRng::seed_from_u64(seed)),
        };
        Self { decoding, rng, candidates: Vec::new() }
    }

    /// The next token given the sequence's `logits` over the vocabulary.
    pub(crate) fn choose(&mut self, logits: &[f32]) -> u32 {
        let (Decoding::Sample { temperature, top_k, top_p, .. }, Some(rng)) = (self.decoding, self.rng.as_mut()) else {
            return argmax(logits);
        };
        let k = top_k.clamp(1, logits.len().max(1));
        self.candidates.clear();
        self.candidates.extend(logits.iter().enumerate().map(|(i, &l)| (l / temperature, i as u32)));
        // Most likely first, ties by id: a stable order whatever the vocabulary's.
        let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(k - 1, order);
            self.candidates.truncate(k);
        }
        self.candidates.sort_unstable_by(order);
        let max = self.candidates[0].0;
        let weights: Vec<f64> = self.candidates.iter().map(|&(l, _)| f64::from(l - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        let mut kept = 0;
        let mut mass = 0.0;
        for w in &weights {
            kept += 1;
            mass += w / total;
            if mass >= f64::from(top_p) {
                break;
            }
        }
        let nucleus: f64 = weights[..kept].iter().sum();
        let mut r = rng.random::<f64>() * nucleus;
        for (w, &(_, id)) in weights[..kept].iter().zip(&self.candidates) {
            r -= w;
            if r < 0.0 {
                return id;
            }
        }
        self.candidates[kept - 1].1
    }
}

/// The index of the largest logit (the first of equals).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> Chooser {
        Chooser::new(Decoding::Sample { temperature, top_k, top_p, seed })
    }

    #[test]
    fn draws_follow_the_tempered_distribution() {
        // p = softmax([0, ln 3, -inf-ish]) = [0.25, 0.75, 0].
        let logits = [0.0, 3f32.ln(), -100.0];
        let mut chooser = sample(1.0, 50, 1.0, 7);
        let draws: Vec<u32> = (0..20_000).map(|_| chooser.choose(&logits)).collect();
        let ones = draws.iter().filter(|&&id| id == 1).count() as f64 / draws.len() as f64;
        assert!((ones - 0.75).abs() < 0.015, "{ones}");
        assert!(!draws.contains(&2));
        // Temperature 0.5 squares the odds: 9 to 1.
        let mut chooser = sample(0.5, 50, 1.0, 7);
        let ones = (0..20_000).filter(|_| chooser.choose(&logits) == 1).count() as f64 / 20_000.0;
        assert!((ones - 0.9).abs() < 0.012, "{ones}");
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        let logits = [2.0, 1.9, 1.8, -5.0, 1.7];
        // top_k 2: only ids 0 and 1.
        let mut chooser = sample(1.0, 2, 1.0, 3);
        assert!((0..2_000).all(|_| chooser.choose(&logits) <= 1));
        // A tiny nucleus is the most likely token alone: greedy.
        let mut chooser = sample(1.0, 50, 1e-6, 3);
        assert!((0..2_000).all(|_| chooser.choose(&logits) == 0));
        // Greedy takes the first of equal logits.
        assert_eq!(Chooser::new(Decoding::Greedy).choose(&[1.0, 3.0, 3.0]), 1);
    }

    #[test]
    fn a_seed_gives_the_same_draws() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32) / 20.0).collect();
        let draws = |seed| {
            let mut chooser = sample(0.8, 50, 0.95, seed);
            (0..64).map(|_| chooser.choose(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draws(11), draws(11));
        assert_ne!(draws(11), draws(12));
    }
}
