//! Guards on what a command writes, so that nothing is lost and nothing is
//! written where it does not belong:
//!
//! - [`Lock`]: an advisory lock on a file or folder a command appends to or
//!   rewrites (labels, an index, a run), held for the command's lifetime, so
//!   that a second uae process writing the same thing is refused instead of
//!   interleaving or losing its work. The operating system releases it when
//!   the process ends, however it ends.
//! - [`claim_folder`]: a folder a command writes into must be new, empty or
//!   one uae wrote (it holds the command's marker file), unless `--force`.
//! - [`check_name`]: a name given on the command line that becomes a file or
//!   folder name must stay inside its folder.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::atomic::parent_of;

/// An exclusive advisory lock on a file or folder, released when dropped or
/// when the process ends. The lock is taken on a companion file beside the
/// target, `.<name>.lock`, which holds the holder's process id so that a
/// refused command can name it; the companion stays (removing it would let
/// two processes lock two different files), and the target's own contents
/// are never touched.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Locks `path` (a file or a folder, existing or not; its parent folder
    /// is created), or fails at once with "`path` is in use by process N"
    /// when another process holds it. Two spellings of one path (a relative
    /// one, one through a symbolic link) take the same lock.
    pub fn acquire(path: &Path) -> Result<Self> {
        let lock_path = companion(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("cannot open the lock file {}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // The holder writes its id right after locking; in between, or
                // when the file cannot be read, it goes unnamed.
                let holder = std::fs::read_to_string(&lock_path).ok().and_then(|t| t.trim().parse::<u32>().ok());
                let holder = holder.map_or_else(|| "another process".to_string(), |pid| format!("process {pid}"));
                bail!(
                    "{} is in use by {holder} (another uae command is writing it); wait for it to finish or stop it",
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        file.set_len(0)
            .and_then(|()| (&file).write_all(format!("{}\n", std::process::id()).as_bytes()))
            .with_context(|| format!("cannot write {}", lock_path.display()))?;
        Ok(Self { _file: file })
    }
}

/// The lock file of `path`: `.<name>.lock` in its folder, both resolved to
/// the real path so that every spelling of `path` shares it.
fn companion(path: &Path) -> Result<PathBuf> {
    let real = match path.canonicalize() {
        Ok(real) => real,
        // Not there yet: its folder's real path and its name.
        Err(_) => {
            let name = path.file_name().with_context(|| format!("{} names no file or folder", path.display()))?;
            let parent = parent_of(path);
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            parent.canonicalize().with_context(|| format!("cannot resolve {}", parent.display()))?.join(name)
        }
    };
    let (Some(folder), Some(name)) = (real.parent(), real.file_name()) else {
        bail!("cannot lock {}: it has no parent folder to keep a lock file in", path.display());
    };
    let mut lock_name = OsString::from(".");
    lock_name.push(name);
    lock_name.push(".lock");
    Ok(folder.join(lock_name))
}

/// Whether a folder entry is named as a lock file of [`companion`].
fn is_lock_file(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".lock")
}

/// Checks that uae may write `what` (e.g. "an index") into the folder
/// `dir`: it does not exist yet, is empty (but for the lock files of
/// outputs inside it), or holds `marker`, the path of a file in `dir` that
/// only this kind of output has (an index's `header.json`). Any other
/// folder is refused, naming a few of its files, unless `force`.
pub fn claim_folder(dir: &Path, marker: &Path, what: &str, force: bool) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        entries => entries.with_context(|| format!("cannot list {} (it should be a folder)", dir.display()))?,
    };
    let mut names = entries
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .filter(|name| !matches!(name, Ok(n) if is_lock_file(n)))
        .collect::<std::io::Result<Vec<String>>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    if force || names.is_empty() || marker.exists() {
        return Ok(());
    }
    names.sort();
    let shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    let more = if names.len() > 3 { format!(" and {} more", names.len() - 3) } else { String::new() };
    let marker = marker.file_name().unwrap_or(marker.as_os_str()).to_string_lossy();
    bail!(
        "{} is not empty and is not {what} written by uae (it holds {shown}{more}, and no {marker}); \
         choose a new or empty folder, or pass --force to write into it anyway",
        dir.display()
    );
}

/// Checks a name that becomes a file or folder name inside one of uae's
/// folders (a system's index folder, a split's qrels file): it must not be
/// empty, `.` or `..`, nor hold `/`, `\` or NUL, any of which would write
/// elsewhere. `given` says where it came from (a flag and its value), for
/// the error.
pub fn check_name(given: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        bail!(
            "{given}: the name {name:?} cannot be a file name (it must not be empty, `.` or `..`, nor hold `/`, `\\` or NUL); \
             choose another"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/labels.jsonl");
        let held = Lock::acquire(&target).unwrap();
        // Another spelling of the same path shares the lock.
        let other = dir.path().join("sub/../sub/labels.jsonl");
        let err = Lock::acquire(&other).unwrap_err().to_string();
        assert!(err.contains(&format!("is in use by process {}", std::process::id())), "{err}");
        assert!(!target.exists(), "the target itself is not created");
        drop(held);
        Lock::acquire(&target).unwrap();
        // A folder, named through `.` and `..` too.
        std::fs::create_dir_all(dir.path().join("index/sub")).unwrap();
        let _folder = Lock::acquire(&dir.path().join("index")).unwrap();
        assert!(Lock::acquire(&dir.path().join("index/.")).is_err());
        assert!(Lock::acquire(&dir.path().join("index/sub/..")).is_err());
    }

    #[test]
    fn only_new_empty_or_marked_folders_are_claimed_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let header = out.join("header.json");
        claim_folder(&out, &header, "an index", false).unwrap();
        std::fs::create_dir(&out).unwrap();
        claim_folder(&out, &header, "an index", false).unwrap();
        let _inner = Lock::acquire(&out.join("index")).unwrap();
        claim_folder(&out, &header, "an index", false).unwrap();
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let err = claim_folder(&out, &header, "an index", false).unwrap_err().to_string();
        assert!(err.contains("notes.txt") && err.contains("--force") && err.contains("an index"), "{err}");
        claim_folder(&out, &header, "an index", true).unwrap();
        std::fs::write(out.join("header.json"), "{}").unwrap();
        claim_folder(&out, &header, "an index", false).unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let file = dir.path().join("file");
        assert!(claim_folder(&file, &file.join("header.json"), "an index", false).is_err());
    }

    #[test]
    fn names_that_leave_their_folder_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "/abs", "a\\b", "nul\0"] {
            let err = check_name("--model", bad).unwrap_err().to_string();
            assert!(err.starts_with("--model: the name"), "{err}");
        }
        for good in ["base", "my model", "a..b", ".hidden", "uae-v2"] {
            check_name("--model", good).unwrap();
        }
    }
}
