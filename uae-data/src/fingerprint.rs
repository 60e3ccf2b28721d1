//! Content fingerprints of input files and folders, to notice that an input
//! changed (the pipeline's stage keys) or that two machines worked on the
//! same input (label shards that merge).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A checksum of `path`: of a file, its size and contents; of a folder, the
/// same over its files in name order, with their relative paths. CRC-32
/// (crc32fast, already used for index integrity) over each file, combined
/// in one 64-bit FNV-1a; enough to notice a changed input, not a defence
/// against a crafted one.
pub fn fingerprint(path: &Path) -> Result<u64> {
    let mut files = Vec::new();
    collect_files(path, path, &mut files)?;
    if files.is_empty() {
        bail!("input {} does not exist", path.display());
    }
    let mut hash = FNV_OFFSET;
    for (relative, file) in files {
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        hash = fnv1a(hash, relative.as_bytes());
        hash = fnv1a(hash, &(bytes.len() as u64).to_le_bytes());
        hash = fnv1a(hash, &crc32fast::hash(&bytes).to_le_bytes());
    }
    Ok(hash)
}

/// The 64-bit FNV-1a hash of `parts`, separated so that `["ab", "c"]` and
/// `["a", "bc"]` differ.
pub fn hash_parts(parts: &[String]) -> u64 {
    fnv1a(FNV_OFFSET, parts.join("\u{1e}").as_bytes())
}

/// The 64-bit FNV-1a offset basis: the hash of no bytes.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds `bytes` into the 64-bit FNV-1a `hash` (the same on every platform
/// and Rust release, which std's hashers do not promise).
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn collect_files(root: &Path, path: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    if path.is_file() {
        let relative = path.strip_prefix(root).unwrap_or(path).display().to_string();
        out.push((relative, path.to_path_buf()));
    } else if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .map(|e| Ok(e?.path()))
            .collect::<Result<_>>()?;
        entries.sort();
        for entry in entries {
            collect_files(root, &entry, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_changes_the_fingerprint_and_the_path_does_not() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [&a, &b] {
            std::fs::write(dir.path().join("corpus.jsonl"), "{\"_id\":\"d\"}\n").unwrap();
        }
        assert_eq!(fingerprint(a.path()).unwrap(), fingerprint(b.path()).unwrap());
        std::fs::write(b.path().join("corpus.jsonl"), "{\"_id\":\"e\"}\n").unwrap();
        assert_ne!(fingerprint(a.path()).unwrap(), fingerprint(b.path()).unwrap());
        assert!(fingerprint(&a.path().join("missing")).is_err());
        assert_ne!(hash_parts(&["ab".into(), "c".into()]), hash_parts(&["a".into(), "bc".into()]));
    }
}
