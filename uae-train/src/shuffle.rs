//! A training set whose order in epoch `e` depends only on the seed and `e`,
//! so that a run resumed after epoch `N` sees the same batches in epoch
//! `N + 1` as an uninterrupted run. (Burn's own shuffling draws each epoch's
//! order from one generator carried across epochs, which a resumed run
//! restarts.)
//!
//! Burn's batch loader reads a dataset's items in index order from 0 once
//! per pass, with one worker (the default this crate uses), so a request
//! for item 0 starts the next epoch.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataset::{Dataset, DatasetError};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Items served in a fresh seeded order each epoch.
pub struct EpochShuffled<I> {
    items: Vec<I>,
    seed: u64,
    epoch: AtomicUsize,
    order: Mutex<Vec<usize>>,
}

impl<I> EpochShuffled<I> {
    /// Serves `items`; the first pass is epoch `completed + 1` (pass the
    /// number of epochs already trained when resuming).
    pub fn new(items: Vec<I>, seed: u64, completed: usize) -> Self {
        let order = (0..items.len()).collect();
        Self { items, seed, epoch: AtomicUsize::new(completed), order: Mutex::new(order) }
    }

    /// The order of epoch `epoch` (from 1).
    pub fn order_of(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        let mut rng = StdRng::seed_from_u64(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        order.shuffle(&mut rng);
        order
    }
}

/// An index past the end of the set.
#[derive(Debug)]
struct OutOfRange(usize, usize);

impl std::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "item {} requested from a training set of {}", self.0, self.1)
    }
}

impl std::error::Error for OutOfRange {}

impl<I: Clone + Send + Sync> Dataset<I> for EpochShuffled<I> {
    fn get(&self, index: usize) -> Result<I, DatasetError> {
        let mut order = self.order.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if index == 0 {
            let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
            *order = self.order_of(epoch);
        }
        order
            .get(index)
            .and_then(|&i| self.items.get(i))
            .cloned()
            .ok_or_else(|| DatasetError::new(OutOfRange(index, self.items.len())))
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(set: &EpochShuffled<u32>) -> Vec<u32> {
        (0..set.len()).map(|i| set.get(i).unwrap()).collect()
    }

    #[test]
    fn epochs_differ_and_resume_matches() {
        let items: Vec<u32> = (0..20).collect();
        let full = EpochShuffled::new(items.clone(), 3, 0);
        let (first, second) = (pass(&full), pass(&full));
        assert_ne!(first, second);
        let resumed = EpochShuffled::new(items, 3, 1);
        assert_eq!(pass(&resumed), second);
        let mut sorted = second.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
    }
}
