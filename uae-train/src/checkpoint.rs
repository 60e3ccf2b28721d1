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
//!
//! Within an epoch, the training loop ([`crate::strategy`]) saves the same
//! three records into `checkpoint/steps/`, each set named by the batches
//! trained since the run began (its *position*); only the newest complete
//! one is kept. A resume continues from whichever is further on: the newest
//! epoch set or the newest step set.

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

/// The folder of the sets saved within an epoch.
pub fn steps_folder(out: &Path) -> PathBuf {
    folder(out).join("steps")
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
        Self::set_in(folder(out))
    }

    /// The checkpointers of the sets saved within an epoch
    /// ([`steps_folder`]), named by position.
    pub fn steps(out: &Path) -> Result<[Self; 3]> {
        Self::set_in(steps_folder(out))
    }

    fn set_in(folder: PathBuf) -> Result<[Self; 3]> {
        std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
        Ok(KINDS.map(|kind| Self { folder: folder.clone(), kind }))
    }
}

/// An error of uae's own checkpoint code, as Burn's checkpointers report one.
pub(crate) fn io_error(e: anyhow::Error) -> CheckpointerError {
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
    /// Reads the epoch sets of the run directory `out` (no folder: no sets).
    pub fn scan(out: &Path) -> Result<Self> {
        Self::scan_in(&folder(out))
    }

    /// Reads the sets in `folder` (no folder: no sets).
    pub fn scan_in(folder: &Path) -> Result<Self> {
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

/// Where a resumed run continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// Epochs completed: trained, validated and saved.
    pub epochs: usize,
    /// Batches of the next epoch already trained (0: at its start).
    pub batches: usize,
}

impl ResumePoint {
    /// Batches trained since the run began, with `per_epoch` in an epoch.
    pub fn position(self, per_epoch: usize) -> usize {
        self.epochs * per_epoch + self.batches
    }
}

impl std::fmt::Display for ResumePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.batches {
            0 => write!(f, "after epoch {}", self.epochs),
            n => write!(f, "{n} batches into epoch {}", self.epochs + 1),
        }
    }
}

/// Removes the set `id` of `folder`, sums first (a kill in between leaves
/// an incomplete set).
fn remove_set(folder: &Path, id: usize) -> Result<()> {
    for kind in KINDS {
        <SafeCheckpointer as Checkpointer<()>>::delete(&SafeCheckpointer { folder: folder.to_path_buf(), kind }, id)
            .map_err(|e| anyhow::anyhow!("cannot remove the checkpoint set {id} in {}: {e}", folder.display()))?;
    }
    Ok(())
}

/// Removes every set saved within an epoch older than the newest complete
/// one (sets newer than it may still be being written).
pub fn prune_steps(out: &Path) -> Result<()> {
    let folder = steps_folder(out);
    let sets = Sets::scan_in(&folder)?;
    let Some(newest) = sets.newest() else { return Ok(()) };
    for &old in sets.complete.iter().chain(&sets.incomplete).filter(|&&p| p < newest) {
        remove_set(&folder, old)?;
    }
    Ok(())
}

/// Whether `out` holds a complete set, of an epoch or within one.
pub fn resumable(out: &Path) -> Result<bool> {
    Ok(Sets::scan(out)?.newest().is_some() || Sets::scan_in(&steps_folder(out))?.newest().is_some())
}

/// Readies the run directory `out` (with `per_epoch` batches in an epoch)
/// for a resume: after epoch `from` when given, otherwise from the newest
/// complete set, of an epoch or saved within one, whichever is further on.
/// Every file of that set is checked against its sum, and every set after
/// it, complete or not, is removed, as are all other sets saved within an
/// epoch. Returns where the run continues and one line per removed epoch
/// set, for the user.
pub fn prepare_resume(out: &Path, from: Option<usize>, per_epoch: usize) -> Result<(ResumePoint, Vec<String>)> {
    let sets = Sets::scan(out)?;
    let steps = Sets::scan_in(&steps_folder(out))?;
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
        None => match (sets.newest(), steps.newest()) {
            (Some(epoch), _) => epoch,
            (None, Some(_)) => 0,
            (None, None) if sets.is_empty() && steps.is_empty() => {
                bail!("--resume: {} holds no checkpoint", out.display())
            }
            (None, None) => bail!(
                "--resume: {} holds no complete checkpoint set (a run killed while saving its first one); \
                 start over in a new --out",
                folder(out).display()
            ),
        },
    };
    let step = steps.newest().filter(|&p| from.is_none() && p > epoch * per_epoch);
    let way_out = |skip: Option<usize>| {
        let others: Vec<String> = sets.complete.iter().filter(|&&e| Some(e) != skip).map(usize::to_string).collect();
        if others.is_empty() {
            "cannot resume from it: start over in a new --out".to_string()
        } else {
            format!("cannot resume from it: pass --resume-from N with another complete epoch ({}), or start over", others.join(", "))
        }
    };
    let (checked, point) = match step {
        Some(p) => (Some((steps_folder(out), p, None)), ResumePoint { epochs: p / per_epoch, batches: p % per_epoch }),
        None => ((epoch > 0).then(|| (folder(out), epoch, Some(epoch))), ResumePoint { epochs: epoch, batches: 0 }),
    };
    if let Some((folder, id, skip)) = checked {
        for kind in KINDS {
            read_verified(&folder, kind, id).with_context(|| way_out(skip))?;
        }
    }
    let mut removed = Vec::new();
    let folder = folder(out);
    for later in sets.complete.iter().chain(&sets.incomplete).copied().filter(|&e| e > epoch) {
        remove_set(&folder, later)?;
        let state = if sets.complete.contains(&later) { "complete" } else { "incomplete" };
        removed.push(format!("removed the {state} checkpoint set of epoch {later}, which the resumed run writes again"));
    }
    let steps_folder = steps_folder(out);
    for other in steps.complete.iter().chain(&steps.incomplete).copied().filter(|&p| Some(p) != step) {
        remove_set(&steps_folder, other)?;
    }
    Ok((point, removed))
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

        let (point, removed) = prepare_resume(dir.path(), None, 10).unwrap();
        assert_eq!(point, ResumePoint { epochs: 2, batches: 0 });
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
        let err = format!("{:#}", prepare_resume(dir.path(), None, 10).unwrap_err());
        assert!(err.contains("model-2.bpk is damaged") && err.contains("--resume-from N") && err.contains("(1)"), "{err}");
        // Truncated.
        std::fs::write(&model, &bytes[..4]).unwrap();
        let err = format!("{:#}", prepare_resume(dir.path(), None, 10).unwrap_err());
        assert!(err.contains("model-2.bpk is truncated"), "{err}");
        // The older set still resumes, and the damaged newer one is removed.
        let (point, removed) = prepare_resume(dir.path(), Some(1), 10).unwrap();
        assert_eq!((point.epochs, removed.len()), (1, 1));
        assert!(!model.exists());
        let err = format!("{:#}", prepare_resume(dir.path(), Some(5), 10).unwrap_err());
        assert!(err.contains("no complete checkpoint of epoch 5 (complete: 1)"), "{err}");
    }

    fn save_step(dir: &Path, kind: &str, position: usize) {
        let checkpointer = SafeCheckpointer::steps(dir).unwrap().into_iter().find(|c| c.kind == kind).unwrap();
        Checkpointer::<Raw>::save(&checkpointer, position, Raw(format!("{kind} at {position}").into_bytes())).unwrap();
    }

    #[test]
    fn a_set_saved_within_an_epoch_is_resumed_when_it_is_further_on() {
        let dir = tempfile::tempdir().unwrap();
        // Only a set within the first epoch (10 batches an epoch).
        KINDS.iter().for_each(|kind| save_step(dir.path(), kind, 4));
        let (point, _) = prepare_resume(dir.path(), None, 10).unwrap();
        assert_eq!((point, point.to_string()), (ResumePoint { epochs: 0, batches: 4 }, "4 batches into epoch 1".into()));

        save_set(dir.path(), 1);
        // A stale set from epoch 1, the newest complete one at 13 and one
        // still being written (or killed) at 15.
        KINDS.iter().for_each(|kind| save_step(dir.path(), kind, 8));
        KINDS.iter().for_each(|kind| save_step(dir.path(), kind, 13));
        save_step(dir.path(), "model", 15);
        prune_steps(dir.path()).unwrap();
        assert_eq!(Sets::scan_in(&steps_folder(dir.path())).unwrap(), Sets { complete: vec![13], incomplete: vec![15] });
        assert!(resumable(dir.path()).unwrap());

        let (point, removed) = prepare_resume(dir.path(), None, 10).unwrap();
        assert_eq!((point, removed.len()), (ResumePoint { epochs: 1, batches: 3 }, 0));
        assert_eq!(Sets::scan_in(&steps_folder(dir.path())).unwrap(), Sets { complete: vec![13], incomplete: vec![] });

        // Damaged: named, with the epoch set as the way out.
        std::fs::write(steps_folder(dir.path()).join("optim-13.bpk"), b"x").unwrap();
        let err = format!("{:#}", prepare_resume(dir.path(), None, 10).unwrap_err());
        assert!(err.contains("optim-13.bpk is truncated") && err.contains("--resume-from N") && err.contains("(1)"), "{err}");
        // --resume-from an epoch drops the sets saved within epochs.
        let (point, _) = prepare_resume(dir.path(), Some(1), 10).unwrap();
        assert_eq!(point, ResumePoint { epochs: 1, batches: 0 });
        assert!(Sets::scan_in(&steps_folder(dir.path())).unwrap().is_empty());
    }

    #[test]
    fn an_only_incomplete_set_is_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "model", 1, b"m");
        let err = format!("{:#}", prepare_resume(dir.path(), None, 10).unwrap_err());
        assert!(err.contains("no complete checkpoint set"), "{err}");
        assert!(!Sets::scan(dir.path()).unwrap().is_empty());
    }
}
