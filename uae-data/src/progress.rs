//! How a long stage tells what it is doing without printing: libraries take
//! a [`Progress`] and only the `uae` binary renders it (as progress bars with
//! rate and ETA, and status lines on standard error).

/// Receives a stage's status lines and its advance through counted work.
pub trait Progress: Sync {
    /// A status line for the user ("embedding 2,293 passages into ...").
    fn message(&self, text: &str);
    /// Counted work of `total` `unit`s (passages, queries, answers) begins.
    fn start(&self, total: u64, unit: &str);
    /// `n` more units of the current work are done.
    fn advance(&self, n: u64);
    /// The current counted work is finished.
    fn finish(&self);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn message(&self, _: &str) {}
    fn start(&self, _: u64, _: &str) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
