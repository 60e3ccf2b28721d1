//! Damages model files in place, for the tests that a bad value is refused
//! by name rather than panicking or spreading: one GGUF metadata value, or
//! every value of one f32 tensor of a safetensors or GGUF file.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Sets GGUF metadata `key`, a u32 or f32 value, to the little-endian
/// `value` (`f32::NAN.to_le_bytes()`, `0u32.to_le_bytes()`).
pub fn set_gguf_value(path: &Path, key: &str, value: [u8; 4]) -> Result<()> {
    // A key is stored as its u64 length and bytes, then the u32 value type,
    // then the value.
    let mut needle = (key.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(key.as_bytes());
    let mut bytes = read(path)?;
    let at = find_once(&bytes, &needle).with_context(|| format!("{}: metadata key {key}", path.display()))? + needle.len() + 4;
    bytes[at..at + 4].copy_from_slice(&value);
    write(path, &bytes)
}

/// Sets every value of f32 tensor `name` (the file's own name for it) in the
/// safetensors or `.gguf` file `path` to `value`.
pub fn fill_f32_tensor(path: &Path, name: &str, value: f32) -> Result<()> {
    let mut bytes = read(path)?;
    let old = if path.extension().is_some_and(|e| e == "gguf") {
        let file = uae_model::gguf::GgufFile::open(path)?;
        if file.tensor_info(name)?.ggml_type != uae_model::gguf::GgmlType::F32 {
            bail!("{}: tensor {name} is not stored as f32", path.display());
        }
        file.tensor_bytes(name)?.to_vec()
    } else {
        let tensors = safetensors::SafeTensors::deserialize(&bytes)?;
        let tensor = tensors.tensor(name)?;
        if tensor.dtype() != safetensors::Dtype::F32 {
            bail!("{}: tensor {name} is not stored as f32", path.display());
        }
        tensor.data().to_vec()
    };
    // Random weights make a tensor's bytes occur once in the file.
    let at = find_once(&bytes, &old).with_context(|| format!("{}: the data of tensor {name}", path.display()))?;
    for value_bytes in bytes[at..at + old.len()].chunks_exact_mut(4) {
        value_bytes.copy_from_slice(&value.to_le_bytes());
    }
    write(path, &bytes)
}

/// Where `needle` starts in `bytes`, which must hold it exactly once.
fn find_once(bytes: &[u8], needle: &[u8]) -> Result<usize> {
    let mut found = bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i);
    match (found.next(), found.next()) {
        (Some(at), None) => Ok(at),
        (None, _) => bail!("not found"),
        (Some(_), Some(_)) => bail!("found more than once"),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
