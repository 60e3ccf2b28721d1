//! Standard output that a closed pipe cannot crash. Rust ignores SIGPIPE
//! (which `uae serve` relies on), so a write to a pipe whose reader has gone
//! (`uae eval metrics | head -1`) fails with `BrokenPipe`, and `print!`
//! panics on that. Every command prints through [`print`] instead, which
//! returns the error, and `main` ends quietly on it ([`is_closed`]).

use std::io::{self, ErrorKind, Write};

/// Writes `text` to standard output as it is, and flushes it.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Whether `err` comes from writing to a pipe whose reader has gone: an
/// I/O error of kind `BrokenPipe` anywhere in its chain, also inside a JSON
/// writer's error.
pub fn is_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        let kind = match e.downcast_ref::<io::Error>() {
            Some(io) => Some(io.kind()),
            None => e.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind),
        };
        kind == Some(ErrorKind::BrokenPipe)
    })
}
