//! Running a whole forward pass on one of rayon's worker threads.
//!
//! Burn's flex backend and the fast paths here split each product and
//! element-wise op over rayon's global pool. Called from a thread outside
//! the pool (the main thread, a server's request thread), every such op
//! hands its work to the pool and puts the caller to sleep until it is done:
//! three context switches an op, hundreds a forward pass (a profile of
//! lone-query embedding had 15% of its samples in the scheduler). On a
//! worker, an op's halves are taken by the worker itself and the other
//! worker, which is usually still spinning from the op before: the caller
//! sleeps once per call instead. Measured against the binary before
//! (BENCHMARKS.md): lone texts embed 1.12-1.17x faster, greedy generation
//! runs 1.15x (batch 1) and 1.12x (batch 8) faster; large batches (embedding
//! 1,024-token batches, answer scoring), whose ops are long, gain little.
//!
//! Training steps are not wrapped: Burn's learner is generic over a model
//! type it does not require to be `Sync`, and a step's ops, on chunks of
//! 32 texts, are long like the large batches'.

/// `f()`, run on a worker of rayon's global pool (at once when this thread
/// is one; otherwise this thread waits for it).
pub(crate) fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_a_pool_worker_and_nested_calls_stay_on_it() {
        assert_eq!(rayon::current_thread_index(), None, "the test thread is not a worker");
        let (outer, inner) = on_worker(|| (rayon::current_thread_index(), on_worker(rayon::current_thread_index)));
        assert!(outer.is_some());
        assert_eq!(inner, outer);
    }
}
