//! JSON Lines input and output shared by every uae stage: one JSON object per
//! line, `-` for standard input or output, and errors that name the file and
//! the line. A byte-order mark before the first line is dropped
//! ([`crate::text`]).
//!
//! Append-only files (labels, and any stage that resumes after a kill) follow
//! one torn-tail rule, [`read_appended`]: a last line that lacks its newline
//! and does not parse is the trace of a killed write and is dropped; a last
//! line that parses is a complete record even without its newline; any other
//! malformed line is an error naming the file and line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
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
pub fn read_from<T: DeserializeOwned>(reader: impl BufRead, name: &str) -> Result<Vec<T>> {
    Ok(numbered_from(reader, name, "record")?.into_iter().map(|(_, r)| r).collect())
}

/// Reads every non-blank line of the file `path` as a `T`, with its 1-based
/// line number; `what` names a record in errors (`"{path}:{line}: invalid
/// {what}"`).
pub fn read_numbered<T: DeserializeOwned>(path: &Path, what: &str) -> Result<Vec<(usize, T)>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    numbered_from(BufReader::new(file), &path.display().to_string(), what)
}

fn numbered_from<T: DeserializeOwned>(mut reader: impl BufRead, name: &str, what: &str) -> Result<Vec<(usize, T)>> {
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
        let bytes = if line_no == 1 { crate::text::strip_bom(&buf) } else { &buf };
        let Ok(line) = std::str::from_utf8(bytes) else {
            bail!("{name}:{line_no}: the line is not valid UTF-8");
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let record = serde_json::from_str(line).with_context(|| format!("{name}:{line_no}: invalid {what}"))?;
        records.push((line_no, record));
    }
    Ok(records)
}

/// The records of an append-only JSON Lines file, each with its 1-based line
/// number, and whether a torn last line was found (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Appended<T> {
    /// Complete records in file order, with their line numbers.
    pub records: Vec<(usize, T)>,
    /// Whether the last line was torn (dropped here; cut by [`repair_tail`]).
    pub torn: bool,
}

/// Reads an append-only JSON Lines file under the torn-tail rule; `what`
/// names a record in errors (`"{path}:{line}: invalid {what}: ..."`).
pub fn read_appended<T: DeserializeOwned>(path: &Path, what: &str) -> Result<Appended<T>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_appended(&bytes, &path.display().to_string(), what)
}

fn parse_appended<T: DeserializeOwned>(bytes: &[u8], name: &str, what: &str) -> Result<Appended<T>> {
    let bytes = crate::text::strip_bom(bytes);
    let unterminated = !bytes.is_empty() && !bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let last = lines.len() - 1;
    let mut out = Appended { records: Vec::new(), torn: false };
    for (i, line) in lines.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<T>(line) {
            Ok(record) => out.records.push((i + 1, record)),
            Err(_) if i == last && unterminated => out.torn = true,
            Err(e) => bail!("{name}:{}: invalid {what}: {e}", i + 1),
        }
    }
    Ok(out)
}

/// Readies an append-only file for appending after a kill: a torn last line
/// (unterminated and not a `T`) is cut off, and a complete but unterminated
/// last line gets its newline. Returns whether a torn line was cut; a file
/// that does not exist is left alone.
pub fn repair_tail<T: DeserializeOwned>(path: &Path) -> Result<bool> {
    let Ok(mut file) = OpenOptions::new().read(true).write(true).open(path) else {
        return Ok(false);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(false);
    }
    let start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let last = if start == 0 { crate::text::strip_bom(&bytes) } else { &bytes[start..] };
    let torn = serde_json::from_slice::<T>(last).is_err();
    if torn {
        file.set_len(start as u64).with_context(|| format!("cannot repair {}", path.display()))?;
    } else {
        file.seek(SeekFrom::End(0))?;
        file.write_all(b"\n").with_context(|| format!("cannot repair {}", path.display()))?;
    }
    file.sync_data().with_context(|| format!("cannot sync {}", path.display()))?;
    Ok(torn)
}

/// Writes JSON lines to a file atomically (a temporary file in the same folder,
/// renamed into place on [`JsonlWriter::finish`]), or streams them to
/// standard output for `-` and straight into a device or named pipe
/// ([`crate::atomic::special`], e.g. `/dev/null`). An interrupted run never leaves a half-written
/// output file behind.
pub struct JsonlWriter {
    out: BufWriter<Box<dyn Write>>,
    pending: Option<(tempfile::TempPath, PathBuf, File)>,
}

impl JsonlWriter {
    /// Opens `target` (a path, or `-` for standard output).
    pub fn create(target: &str) -> Result<Self> {
        if target == "-" {
            return Ok(Self { out: BufWriter::new(Box::new(std::io::stdout().lock())), pending: None });
        }
        let path = Path::new(target);
        if crate::atomic::special(path) {
            let file = OpenOptions::new().write(true).open(path).with_context(|| format!("cannot open {target}"))?;
            return Ok(Self { out: BufWriter::new(Box::new(file)), pending: None });
        }
        let dir = crate::atomic::parent_of(path);
        let tmp = tempfile::Builder::new()
            .prefix(".uae-partial-")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {} for {target}", dir.display()))?;
        let (file, tmp_path) = tmp.into_parts();
        let sync = file.try_clone().with_context(|| format!("cannot open a file for {target}"))?;
        Ok(Self { out: BufWriter::new(Box::new(file)), pending: Some((tmp_path, path.to_path_buf(), sync)) })
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

    /// Flushes and, for a file, syncs it and moves it into place.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush().context("cannot write the output")?;
        if let Some((tmp, path, file)) = self.pending.take() {
            file.sync_all().with_context(|| format!("cannot sync the output for {}", path.display()))?;
            tmp.persist(&path).with_context(|| format!("cannot move the output into {}", path.display()))?;
            crate::atomic::sync_dir(crate::atomic::parent_of(&path))?;
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

    #[cfg(unix)]
    #[test]
    fn output_into_a_named_pipe_goes_through_it() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let (fifo, reader) = crate::atomic::tests::pipe_with_reader(dir.path());
        let mut out = JsonlWriter::create(fifo.to_str().unwrap()).unwrap();
        out.write(&serde_json::json!({"text": "a"})).unwrap();
        out.finish().unwrap();
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the pipe was replaced");
        assert_eq!(reader.join().unwrap(), b"{\"text\":\"a\"}\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
    fn a_leading_bom_is_dropped() {
        let input = b"\xEF\xBB\xBF{\"text\":\"a\"}\n{\"text\":\"b\"}\n";
        assert_eq!(read_from::<Rec>(&input[..], "in.jsonl").unwrap().len(), 2);
        let appended = parse_appended::<Rec>(&input[..], "l.jsonl", "record").unwrap();
        assert_eq!((appended.records.len(), appended.torn), (2, false));
        // A lone unterminated record after a BOM is complete, not torn.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        std::fs::write(&path, b"\xEF\xBB\xBF{\"text\":\"a\"}").unwrap();
        assert!(!repair_tail::<Rec>(&path).unwrap());
        assert_eq!(read_appended::<Rec>(&path, "record").unwrap().records.len(), 1);
    }

    #[test]
    fn torn_tail_rule() {
        let read = |bytes: &[u8]| parse_appended::<Rec>(bytes, "l.jsonl", "record");
        let ok = read(b"{\"text\":\"a\"}\n{\"text\":\"b\"}").unwrap();
        assert_eq!((ok.records.len(), ok.torn), (2, false));
        let torn = read(b"{\"text\":\"a\"}\n{\"te").unwrap();
        assert_eq!((torn.records.len(), torn.torn), (1, true));
        assert_eq!(torn.records[0].0, 1);
        let err = read(b"{\"text\":\"a\"}\n{\"te\n").unwrap_err().to_string();
        assert!(err.starts_with("l.jsonl:2: invalid record"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        std::fs::write(&path, b"{\"text\":\"a\"}\n{\"te").unwrap();
        assert!(repair_tail::<Rec>(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"text\":\"a\"}\n");
        std::fs::write(&path, b"{\"text\":\"a\"}").unwrap();
        assert!(!repair_tail::<Rec>(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"text\":\"a\"}\n");
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
