//! Training checkpoints that a kill cannot half-write and a resume cannot
//! misread.
//!
//! Burn's Learner saves three records after each epoch, each on its own
//! thread: the model, the optimiser and the learning-rate scheduler. Here
//! each record is written to a temporary file, synced and renamed into place
//! (`checkpoint/<kind>-<epoch>.bpk`), and only then is its sum written the
//! same way beside it (`<kind>-<epoch>.bpk.sum`: size and CRC-32). An epoch's
//! set is complete when all three sums are there; a kill at any point leaves
//! an incomplete set, never a torn file that looks whole. A resume picks the
//! newest complete set (or the one asked for), checks every file against its
//! sum before Burn loads it (Burn panics on a record it cannot read), and
//! removes the sets after it, which the resumed run writes again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Bytes;
use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};
use serde::{Deserialize, Serialize};

/// The records of one epoch's set, as Burn's Learner names them.
pub const KINDS: [&str; 3] = ["model", "optim", "scheduler"];

/// The checkpoint folder of a run directory.
pub fn folder(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Size and CRC-32 of a checkpoint file, written after the file itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Sum {
    bytes: u64,
    crc32: u32,
}

impl Sum {
    fn of(bytes: &[u8]) -> Self {
        Self { bytes: bytes.len() as u64, crc32: crc32fast::hash(bytes) }
    }
}

fn file_name(kind: &str, epoch: usize) -> String {
    format!("{kind}-{epoch}.bpk")
}

fn sum_name(kind: &str, epoch: usize) -> String {
    format!("{kind}-{epoch}.bpk.sum")
}

/// Saves one kind of record (see [`KINDS`]) atomically with its sum; Burn's
/// Learner calls it from a checkpointer thread of its own.
pub struct SafeCheckpointer {
    folder: PathBuf,
    kind: &'static str,
}

impl SafeCheckpointer {
    /// The checkpointers of the run directory `out`, one per kind, in the
    /// order of [`KINDS`] (Burn's order: model, optimiser, scheduler).
    pub fn set(out: &Path) -> Result<[Self; 3]> {
        let folder = folder(out);
        std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
        Ok(KINDS.map(|kind| Self { folder: folder.clone(), kind }))
    }
}

fn io_error(e: anyhow::Error) -> CheckpointerError {
    CheckpointerError::Unknown(format!("{e:#}"))
}

impl<R: Checkpoint> Checkpointer<R> for SafeCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let bytes = record.checkpoint_into_bytes().map_err(CheckpointerError::Record)?;
        let name = file_name(self.kind, epoch);
        uae_data::atomic::write_atomically(&self.folder, &name, &bytes).map_err(io_error)?;
        let sum = serde_json::to_vec(&Sum::of(&bytes)).map_err(|e| io_error(e.into()))?;
        uae_data::atomic::write_atomically(&self.folder, &sum_name(self.kind, epoch), &sum).map_err(io_error)
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        let bytes = read_verified(&self.folder, self.kind, epoch).map_err(io_error)?;
        R::checkpoint_from_bytes(Bytes::from_bytes_vec(bytes)).map_err(CheckpointerError::Record)
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        // The sum goes first: a kill in between leaves an incomplete set.
        for name in [sum_name(self.kind, epoch), file_name(self.kind, epoch)] {
            match std::fs::remove_file(self.folder.join(&name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(CheckpointerError::IOError(e)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Reads `<kind>-<epoch>.bpk` and checks it against its sum.
fn read_verified(folder: &Path, kind: &str, epoch: usize) -> Result<Vec<u8>> {
    let path = folder.join(file_name(kind, epoch));
    let sum_path = folder.join(sum_name(kind, epoch));
    let sum: Sum = uae_data::json::read_json(&sum_path)?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let found = Sum::of(&bytes);
    if found.bytes != sum.bytes {
        bail!("{} is truncated or damaged: {} bytes, {} when it was written", path.display(), found.bytes, sum.bytes);
    }
    if found.crc32 != sum.crc32 {
        bail!("{} is damaged: its CRC-32 is {:08x}, {:08x} when it was written", path.display(), found.crc32, sum.crc32);
    }
    Ok(bytes)
}

/// The checkpoint sets found in a run directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sets {
    /// Epochs whose three records and sums are all there, ascending.
    pub complete: Vec<usize>,
    /// Epochs with some checkpoint file but not a complete set, ascending.
    pub incomplete: Vec<usize>,
}

impl Sets {
    /// Reads the checkpoint folder of `out` (none: no sets).
    pub fn scan(out: &Path) -> Result<Self> {
        let folder = folder(out);
        let Ok(entries) = std::fs::read_dir(&folder) else { return Ok(Self::default()) };
        let mut sums: BTreeMap<usize, usize> = BTreeMap::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", folder.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let (stem, is_sum) = match name.strip_suffix(".bpk.sum") {
                Some(stem) => (stem, true),
                None => match name.strip_suffix(".bpk") {
                    Some(stem) => (stem, false),
                    None => continue,
                },
            };
            let Some(epoch) = KINDS
                .iter()
                .find_map(|kind| stem.strip_prefix(kind)?.strip_prefix('-')?.parse::<usize>().ok())
            else {
                continue;
            };
            *sums.entry(epoch).or_default() += usize::from(is_sum);
        }
        let (complete, incomplete): (Vec<_>, Vec<_>) = sums.into_iter().partition(|&(_, n)| n == KINDS.len());
        Ok(Self {
            complete: complete.into_iter().map(|(e, _)| e).collect(),
            incomplete: incomplete.into_iter().map(|(e, _)| e).collect(),
        })
    }

    /// Whether the folder holds any checkpoint file at all.
    pub fn is_empty(&self) -> bool {
        self.complete.is_empty() && self.incomplete.is_empty()
    }

    /// The newest complete set.
    pub fn newest(&self) -> Option<usize> {
        self.complete.last().copied()
    }
}

/// Readies the run directory `out` to resume after epoch `from` (the newest
/// complete set when `None`): every file of that set is checked against its
/// sum, and every set after it, complete or not, is removed. Returns the
/// epoch and one line per removed set, for the user.
pub fn prepare_resume(out: &Path, from: Option<usize>) -> Result<(usize, Vec<String>)> {
    let sets = Sets::scan(out)?;
    let complete = || {
        if sets.complete.is_empty() {
            "none".to_string()
        } else {
            sets.complete.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
        }
    };
    let epoch = match from {
        Some(epoch) if sets.complete.contains(&epoch) => epoch,
        Some(epoch) => bail!(
            "--resume-from {epoch}: {} holds no complete checkpoint of epoch {epoch} (complete: {})",
            folder(out).display(),
            complete()
        ),
        None => match sets.newest() {
            Some(epoch) => epoch,
            None if sets.incomplete.is_empty() => {
                bail!("--resume: {} holds no checkpoint", out.display())
            }
            None => bail!(
                "--resume: {} holds no complete checkpoint set (a run killed while saving its first one); \
                 start over in a new --out",
                folder(out).display()
            ),
        },
    };
    let folder = folder(out);
    for kind in KINDS {
        read_verified(&folder, kind, epoch).with_context(|| {
            let others: Vec<String> = sets.complete.iter().filter(|&&e| e != epoch).map(usize::to_string).collect();
            if others.is_empty() {
                "cannot resume from it: start over in a new --out".to_string()
            } else {
                format!("cannot resume from it: pass --resume-from N with another complete epoch ({}), or start over", others.join(", "))
            }
        })?;
    }
    let mut removed = Vec::new();
    for later in sets.complete.iter().chain(&sets.incomplete).copied().filter(|&e| e > epoch) {
        for kind in KINDS {
            <SafeCheckpointer as Checkpointer<()>>::delete(&SafeCheckpointer { folder: folder.clone(), kind }, later)
                .map_err(|e| anyhow::anyhow!("cannot remove the checkpoint of epoch {later} in {}: {e}", folder.display()))?;
        }
        let state = if sets.complete.contains(&later) { "complete" } else { "incomplete" };
        removed.push(format!("removed the {state} checkpoint set of epoch {later}, which the resumed run writes again"));
    }
    Ok((epoch, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpointer(dir: &Path, kind: &str) -> SafeCheckpointer {
        SafeCheckpointer::set(dir).unwrap().into_iter().find(|c| c.kind == kind).unwrap()
    }

    fn save(dir: &Path, kind: &str, epoch: usize, bytes: &[u8]) {
        Checkpointer::<Raw>::save(&checkpointer(dir, kind), epoch, Raw(bytes.to_vec())).unwrap();
    }

    /// A record that is its bytes.
    struct Raw(Vec<u8>);

    impl Checkpoint for Raw {
        fn save(self, _path: PathBuf) -> Result<(), CheckpointerError> {
            unreachable!("saved through the checkpointer")
        }
        fn load(_path: PathBuf) -> Result<Self, CheckpointerError> {
            unreachable!("loaded through the checkpointer")
        }
        fn checkpoint_from_bytes(bytes: Bytes) -> Result<Self, burn::store::RecordError> {
            Ok(Raw(bytes.to_vec()))
        }
        fn checkpoint_into_bytes(self) -> Result<Bytes, burn::store::RecordError> {
            Ok(Bytes::from_bytes_vec(self.0))
        }
    }

    fn save_set(dir: &Path, epoch: usize) {
        for kind in KINDS {
            save(dir, kind, epoch, format!("{kind} of epoch {epoch}").as_bytes());
        }
    }

    #[test]
    fn a_set_is_complete_only_with_all_three_sums() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Sets::scan(dir.path()).unwrap().is_empty());
        save_set(dir.path(), 1);
        save_set(dir.path(), 2);
        // A kill between the model and the optimiser of epoch 3.
        save(dir.path(), "model", 3, b"model of epoch 3");
        // A kill after the scheduler's file of epoch 4 but before its sum.
        save(dir.path(), "model", 4, b"m");
        save(dir.path(), "optim", 4, b"o");
        std::fs::write(folder(dir.path()).join("scheduler-4.bpk"), b"s").unwrap();
        let sets = Sets::scan(dir.path()).unwrap();
        assert_eq!(sets, Sets { complete: vec![1, 2], incomplete: vec![3, 4] });

        let (epoch, removed) = prepare_resume(dir.path(), None).unwrap();
        assert_eq!(epoch, 2);
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert_eq!(Sets::scan(dir.path()).unwrap(), Sets { complete: vec![1, 2], incomplete: vec![] });
        let restored: Raw = Checkpointer::restore(&checkpointer(dir.path(), "optim"), 2).unwrap();
        assert_eq!(restored.0, b"optim of epoch 2");
    }

    #[test]
    fn damaged_files_are_named_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        save_set(dir.path(), 1);
        save_set(dir.path(), 2);
        let model = folder(dir.path()).join("model-2.bpk");
        // One flipped bit.
        let mut bytes = std::fs::read(&model).unwrap();
        bytes[3] ^= 0x10;
        std::fs::write(&model, &bytes).unwrap();
        let err = format!("{:#}", prepare_resume(dir.path(), None).unwrap_err());
        assert!(err.contains("model-2.bpk is damaged") && err.contains("--resume-from N") && err.contains("(1)"), "{err}");
        // Truncated.
        std::fs::write(&model, &bytes[..4]).unwrap();
        let err = format!("{:#}", prepare_resume(dir.path(), None).unwrap_err());
        assert!(err.contains("model-2.bpk is truncated"), "{err}");
        // The older set still resumes, and the damaged newer one is removed.
        let (epoch, removed) = prepare_resume(dir.path(), Some(1)).unwrap();
        assert_eq!((epoch, removed.len()), (1, 1));
        assert!(!model.exists());
        let err = format!("{:#}", prepare_resume(dir.path(), Some(5)).unwrap_err());
        assert!(err.contains("no complete checkpoint of epoch 5 (complete: 1)"), "{err}");
    }

    #[test]
    fn an_only_incomplete_set_is_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "model", 1, b"m");
        let err = format!("{:#}", prepare_resume(dir.path(), None).unwrap_err());
        assert!(err.contains("no complete checkpoint set"), "{err}");
        assert!(!Sets::scan(dir.path()).unwrap().is_empty());
    }
}
