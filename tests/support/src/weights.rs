//! Real weights fetched by `assets/fetch.sh` into uae's cache. A test that
//! needs them skips, with a message saying how to fetch them, when they are
//! missing, so `cargo test` passes on a fresh clone; `scripts/test.sh` fetches
//! them and sets `UAE_REQUIRE_WEIGHTS=1`, under which a missing file fails
//! the test instead.

use std::io::Write;
use std::path::PathBuf;

/// `path` under the cache's `models/` folder, or `None` (with a "skipped"
/// line on standard error) when it was not fetched; panics instead when
/// `UAE_REQUIRE_WEIGHTS` is set.
pub fn fetched(path: &str, fetch_name: &str) -> Option<PathBuf> {
    match uae_data::cache::fetched_model(path, fetch_name) {
        Ok(path) => Some(path),
        Err(e) if std::env::var_os("UAE_REQUIRE_WEIGHTS").is_some() => panic!("{e:#}"),
        Err(e) => {
            // Straight to the stream: the test harness captures eprintln!,
            // and the skip must show in a plain `cargo test`.
            let _ = writeln!(std::io::stderr(), "skipped: {e:#}");
            None
        }
    }
}

/// The all-MiniLM-L6-v2 directory (`UAE_MINILM_DIR`, or the fetched copy).
pub fn minilm() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("UAE_MINILM_DIR") {
        return Some(dir.into());
    }
    fetched("all-MiniLM-L6-v2/model.safetensors", "minilm").map(|p| p.parent().expect("a folder").to_path_buf())
}

/// The SmolLM2-135M-Instruct Q4_1 GGUF file.
pub fn smollm2() -> Option<PathBuf> {
    fetched("SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2")
}

/// The Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF file (the stronger teacher).
pub fn qwen_coder() -> Option<PathBuf> {
    fetched("Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "qwen2.5-coder-1.5b")
}
