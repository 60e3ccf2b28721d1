//! Text files as every uae reader takes them: UTF-8, with a leading
//! byte-order mark (which some Windows editors write) dropped, so that it
//! never becomes part of the first line's id or field.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// U+FEFF, the byte-order mark, in UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading byte-order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// Reads the file `path` as UTF-8 text without a leading byte-order mark.
/// Errors name the file, and for text that is not UTF-8 the line.
pub fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = strip_bom(&bytes);
    match std::str::from_utf8(text) {
        Ok(text) => Ok(text.to_owned()),
        Err(e) => {
            let line = 1 + text[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
            bail!("{}:{line}: the line is not valid UTF-8", path.display())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_a_leading_bom_only() {
        assert_eq!(strip_bom(b"\xEF\xBB\xBFq1 0 d1 1"), b"q1 0 d1 1");
        assert_eq!(strip_bom(b"q1\xEF\xBB\xBF"), b"q1\xEF\xBB\xBF");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.trec");
        std::fs::write(&path, "\u{feff}q1 Q0 d1 1 0.5 t\n").unwrap();
        assert_eq!(read(&path).unwrap(), "q1 Q0 d1 1 0.5 t\n");
        std::fs::write(&path, b"\xEF\xBB\xBFa\nb\n\xff\n").unwrap();
        assert_eq!(read(&path).unwrap_err().to_string(), format!("{}:3: the line is not valid UTF-8", path.display()));
    }
}
