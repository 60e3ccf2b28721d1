//! Atomic, durable file writes: every file uae publishes is written to a
//! temporary file in the target's folder, synced, and renamed over the
//! target, and the folder is synced after the rename. A reader sees the old
//! file or the new one, never a torn one, and a crash after the call returns
//! cannot lose the new file.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// Writes `bytes` to `dir/name` atomically and durably.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let staged = stage(dir, name, bytes)?;
    publish(dir, [staged])
}

/// Writes `bytes` to the file `path` atomically and durably (its folder is
/// `.` when the path has none); a [`special`] target is written straight to.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if special(path) {
        return std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()));
    }
    let name = path.file_name().and_then(|n| n.to_str()).with_context(|| format!("{} is not a file name", path.display()))?;
    write_atomically(parent_of(path), name, bytes)
}

/// A file written and synced under a temporary name, waiting for [`publish`].
pub struct Staged<'a> {
    tmp: NamedTempFile,
    name: &'a str,
}

/// Writes `bytes` to a synced temporary file in `dir`, to be renamed to
/// `name` by [`publish`]; staging several files first keeps a multi-file
/// update (an index's vectors, ids and header) from publishing half of it.
pub fn stage<'a>(dir: &Path, name: &'a str, bytes: &[u8]) -> Result<Staged<'a>> {
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    tmp.as_file().sync_all().with_context(|| format!("cannot sync {}", dir.join(name).display()))?;
    Ok(Staged { tmp, name })
}

/// Renames staged files into place, in order, then syncs `dir`.
pub fn publish<'a>(dir: &Path, staged: impl IntoIterator<Item = Staged<'a>>) -> Result<()> {
    for Staged { tmp, name } in staged {
        let target = dir.join(name);
        tmp.persist(&target).with_context(|| format!("cannot write {}", target.display()))?;
    }
    sync_dir(dir)
}

/// Syncs a folder, so that renames into it survive a crash. Folders cannot
/// be opened for syncing on every platform; there it is a no-op.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the folder {}", dir.display()))?;
    #[cfg(not(unix))]
    let _ = (dir, File::open);
    Ok(())
}

/// Whether `path` exists and is neither a regular file nor a folder: a
/// device such as `/dev/null`, a named pipe, a socket. Such a target is
/// written straight to, never replaced: renaming a file over it would
/// replace the device or pipe itself (as root, `--output /dev/null` would
/// turn `/dev/null` into a regular file).
pub fn special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// The folder of `path`: its parent, or `.` when it has none.
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A named pipe `pipe` in `dir`, and a thread reading it to the end.
    #[cfg(unix)]
    pub(crate) fn pipe_with_reader(dir: &Path) -> (std::path::PathBuf, std::thread::JoinHandle<Vec<u8>>) {
        let fifo = dir.join("pipe");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        (fifo, reader)
    }

    #[test]
    fn replaces_a_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "a.json", b"one").unwrap();
        write_file_atomically(&dir.path().join("a.json"), b"two").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_named_pipe_is_written_through_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let (fifo, reader) = pipe_with_reader(dir.path());
        assert!(special(&fifo) && !special(dir.path()) && !special(&dir.path().join("absent")));
        write_file_atomically(&fifo, b"through").unwrap();
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the pipe was replaced");
        assert_eq!(reader.join().unwrap(), b"through");
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    }
}
