//! Length-sorted batching under a token budget, and the grouping of equal
//! inputs that are run once.
//!
//! Padding costs compute, so inputs of similar length go together: indices are
//! sorted by length (longest first, so a batch that does not fit in memory
//! fails at once rather than at the end) and cut into batches whose padded
//! size `batch_len * longest` stays within the budget. Each batch keeps the
//! original indices so results can be put back in input order.

use std::collections::HashMap;
use std::hash::Hash;

/// The distinct values among `keys`, in order of first appearance, and for
/// each key the index of its value among them (equal prompts of a batch are
/// run once and their results shared).
pub fn distinct<'a, T: Hash + Eq + ?Sized>(keys: impl IntoIterator<Item = &'a T>) -> (Vec<&'a T>, Vec<usize>) {
    let mut values = Vec::new();
    let mut index_of: HashMap<&T, usize> = HashMap::new();
    let source = keys
        .into_iter()
        .map(|key| {
            *index_of.entry(key).or_insert_with(|| {
                values.push(key);
                values.len() - 1
            })
        })
        .collect();
    (values, source)
}

/// How many leading elements every sequence of `sequences` shares (0 for
/// none, or when there are no sequences).
pub fn common_prefix<T: PartialEq>(sequences: &[&[T]]) -> usize {
    let Some((first, rest)) = sequences.split_first() else {
        return 0;
    };
    rest.iter().fold(first.len(), |shared, s| first[..shared].iter().zip(*s).take_while(|(a, b)| a == b).count())
}

/// Groups the inputs whose token counts are `lengths` into batches of indices.
/// Every batch holds at least one input, even one longer than `budget`.
pub fn token_budget_batches(lengths: &[usize], budget: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    // Stable sort: equal lengths keep input order, so batching is deterministic.
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for i in order {
        let len = lengths[i].max(1);
        let widest = longest.max(len);
        if !current.is_empty() && (current.len() + 1) * widest > budget {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_is_the_longest_every_sequence_begins_with() {
        assert_eq!(common_prefix::<u32>(&[]), 0);
        assert_eq!(common_prefix(&[&[1, 2, 3][..]]), 3);
        assert_eq!(common_prefix(&[&[1, 2, 3][..], &[1, 2, 4, 5], &[1, 2, 3]]), 2);
        assert_eq!(common_prefix(&[&[1, 2][..], &[1, 2, 3]]), 2);
        assert_eq!(common_prefix(&[&[1, 2][..], &[2, 2]]), 0);
        assert_eq!(common_prefix(&[&[1, 2][..], &[]]), 0);
    }

    #[test]
    fn every_input_lands_in_exactly_one_batch_within_budget() {
        let lengths = [5, 100, 3, 40, 40, 7, 1, 0, 64];
        let batches = token_budget_batches(&lengths, 128);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for batch in &batches {
            let longest = batch.iter().map(|&i| lengths[i].max(1)).max().unwrap();
            assert!(batch.len() == 1 || batch.len() * longest <= 128, "{batch:?}");
        }
    }

    #[test]
    fn oversized_input_gets_its_own_batch() {
        let batches = token_budget_batches(&[10, 500, 10], 100);
        assert_eq!(batches, vec![vec![1], vec![0, 2]]);
    }

    #[test]
    fn equal_keys_share_the_index_of_their_first_appearance() {
        let keys: [&[u32]; 5] = [&[1, 2], &[3], &[1, 2], &[], &[3]];
        let (values, source) = distinct(keys);
        assert_eq!(values, [&[1, 2][..], &[3], &[]]);
        assert_eq!(source, [0, 1, 0, 2, 1]);
    }

    #[test]
    fn lengths_are_sorted_longest_first() {
        let batches = token_budget_batches(&[1, 2, 3, 4], 1000);
        assert_eq!(batches, vec![vec![3, 2, 1, 0]]);
    }
}
