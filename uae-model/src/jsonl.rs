//! JSON Lines input and output shared by every uae stage: one JSON object per
//! line, `-` for standard input or output, and errors that name the file and
//! the line.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads every non-blank line of `source` (a path, or `-` for standard input)
/// as a `T`. A line that is not UTF-8 or not a valid `T` is an error naming
/// the source and the 1-based line number.
pub fn read<T: DeserializeOwned>(source: &str) -> Result<Vec<T>> {
    let reader: Box<dyn Read> = if source == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(source).with_context(|| format!("cannot open {source}"))?)
    };
    read_from(BufReader::new(reader), if source == "-" { "<stdin>" } else { source })
}

/// Like [`read`], from any reader; `name` is used in error messages.
pub fn read_from<T: DeserializeOwned>(mut reader: impl BufRead, name: &str) -> Result<Vec<T>> {
    let mut records = Vec::new();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).with_context(|| format!("cannot read {name}"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let Ok(line) = std::str::from_utf8(&buf) else {
            bail!("{name}:{line_no}: the line is not valid UTF-8");
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let record = serde_json::from_str(line).with_context(|| format!("{name}:{line_no}: invalid record"))?;
        records.push(record);
    }
    Ok(records)
}

/// Writes JSON lines to a file atomically (a temporary file in the same folder,
/// renamed into place on [`JsonlWriter::finish`]), or streams them to
/// standard output for `-`. An interrupted run never leaves a half-written
/// output file behind.
pub struct JsonlWriter {
    out: BufWriter<Box<dyn Write>>,
    pending: Option<(tempfile::TempPath, PathBuf)>,
}

impl JsonlWriter {
    /// Opens `target` (a path, or `-` for standard output).
    pub fn create(target: &str) -> Result<Self> {
        if target == "-" {
            return Ok(Self { out: BufWriter::new(Box::new(std::io::stdout().lock())), pending: None });
        }
        let path = Path::new(target);
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".uae-partial-")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {} for {target}", dir.display()))?;
        let (file, tmp_path) = tmp.into_parts();
        Ok(Self { out: BufWriter::new(Box::new(file)), pending: Some((tmp_path, path.to_path_buf())) })
    }

    /// Appends one record as a line.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// The underlying buffered writer, for output that is not JSON lines
    /// but wants the same atomic publication.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.out
    }

    /// Flushes and, for a file, moves it into place.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush().context("cannot write the output")?;
        if let Some((tmp, path)) = self.pending.take() {
            tmp.persist(&path).with_context(|| format!("cannot move the output into {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Rec {
        #[allow(dead_code)]
        text: String,
    }

    #[test]
    fn malformed_line_is_named() {
        let input = b"{\"text\":\"a\"}\n\n{\"text\": 3}\n";
        let err = format!("{:#}", read_from::<Rec>(&input[..], "in.jsonl").unwrap_err());
        assert!(err.starts_with("in.jsonl:3: invalid record"), "{err}");
    }

    #[test]
    fn non_utf8_line_is_named() {
        let input = b"{\"text\":\"a\"}\n{\"text\":\"\xff\"}\n";
        let err = read_from::<Rec>(&input[..], "in.jsonl").unwrap_err().to_string();
        assert_eq!(err, "in.jsonl:2: the line is not valid UTF-8");
    }

    #[test]
    fn writer_publishes_only_on_finish() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.jsonl");
        let mut w = JsonlWriter::create(target.to_str().unwrap()).unwrap();
        w.write(&serde_json::json!({"a": 1})).unwrap();
        assert!(!target.exists());
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "{\"a\":1}\n");
    }
}
