//! The Python interpreter of the tests' small environment
//! (`assets/setup-test-env.sh`: llama-cpp-python's server, fastembed,
//! huggingface_hub). A test that needs it skips, saying how to install it,
//! when it is missing; `scripts/test.sh` installs it and sets
//! `UAE_TEST_PYTHON`, and under `UAE_REQUIRE_WEIGHTS` a missing one fails.

use std::io::Write;
use std::path::PathBuf;

/// `UAE_TEST_PYTHON`, else the venv in uae's cache, else `None` (with a
/// "skipped" line on standard error).
pub fn test_python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("UAE_TEST_PYTHON") {
        return Some(python.into());
    }
    let venv = uae_data::cache::uae_cache().join("test-venv/bin/python");
    if venv.is_file() {
        return Some(venv);
    }
    let message = format!("{} is missing: run assets/setup-test-env.sh", venv.display());
    if std::env::var_os("UAE_REQUIRE_WEIGHTS").is_some() {
        panic!("{message}");
    }
    let _ = writeln!(std::io::stderr(), "skipped: {message}");
    None
}
