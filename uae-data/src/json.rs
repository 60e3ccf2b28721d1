//! Whole JSON files (configurations, index sidecars), read with the file
//! named in any error and a leading byte-order mark dropped.

use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

/// Reads and parses a JSON file, naming the file in any error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = crate::text::read(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
}
