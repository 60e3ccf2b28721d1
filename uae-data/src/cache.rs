//! uae's cache folder, where scripts keep fetched models, built data sets,
//! the quickstart's work and the Cargo target directory.

use std::path::PathBuf;

use anyhow::{Result, bail};

/// uae's cache folder: `$UAE_CACHE`, or `~/.cache/uae`.
pub fn uae_cache() -> PathBuf {
    match std::env::var_os("UAE_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/uae"),
    }
}

/// `path` under the cache's `models/` folder, where `assets/fetch.sh NAME`
/// puts model files; an error names the fetch command when it is missing.
pub fn fetched_model(path: &str, fetch_name: &str) -> Result<PathBuf> {
    let full = uae_cache().join("models").join(path);
    if !full.exists() {
        bail!("{} is missing: run assets/fetch.sh {fetch_name}", full.display());
    }
    Ok(full)
}
